# syntax=docker/dockerfile:1
# The flytesecret image: a release build, then a distroless final stage with only the binary
# (glibc and libgcc from the base; no shell, no package manager), run as a numeric non-root user.
#   docker build --build-arg RUST_VERSION=1.95 -t flytesecret .
#   docker run --rm -p 8093:8093 flytesecret serve --ephemeral --secret.server.host 0.0.0.0
ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
# make: the jemalloc allocator is compiled from source (tikv-jemalloc-sys).
RUN apt-get update && apt-get install -y --no-install-recommends make \
 && rm -rf /var/lib/apt/lists/*
# Dependencies are cached across builds by BuildKit cache mounts (the registry and the target
# directory), so a source change recompiles only this workspace's crates.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin flytesecret \
 && install -D -m 0755 target/release/flytesecret /out/flytesecret

# Same Debian release as the build stage, so the glibc the binary links against is present.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/flytesecret /usr/local/bin/flytesecret
# 65532 is distroless' `nonroot`; numeric so `runAsNonRoot` can verify it without /etc/passwd.
USER 65532:65532
EXPOSE 8093
ENTRYPOINT ["/usr/local/bin/flytesecret"]
CMD ["serve"]
