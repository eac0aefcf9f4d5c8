"""Builds the service with kube-client's `Buffer` hop taken out, to price that hop. Measurement
only: the binary it makes is never shipped, and nothing of kube-client is kept in this repository.

`kube::Client::new` puts the service it is given behind `tower::buffer::Buffer` (a channel, a
worker task, a oneshot back) so that `Client` clones cheaply. This script copies the kube-client
source that Cargo.lock names into `target/`, edits it so that `Client` holds the service as a
`tower::util::BoxCloneSyncService` instead (its `new` then asks for a `Clone + Sync` service; the
kubeconfig path keeps a `Buffer` of its own under it), and builds a release binary against it in
its own target directory. Cargo.lock is put back as it was.

    python3 benches/without_kube_buffer.py
    # then compare the two binaries, e.g.
    target/clients/venv-clients/bin/python benches/callgrind_per_request.py target/release/flytesecret
    target/clients/venv-clients/bin/python benches/callgrind_per_request.py target/unbuffered/release/flytesecret

Prints the path of the binary. Fails, naming the file and the text it expected, when the
kube-client in Cargo.lock no longer reads as 5.0.0 did.
"""
import json
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
COPY = ROOT / "target" / "kube-client-unbuffered"
TARGET_DIR = ROOT / "target" / "unbuffered"

# (file, text expected exactly once, its replacement)
EDITS = [
    (
        "src/client/mod.rs",
        "buffer::Buffer};",
        "util::BoxCloneSyncService};",
    ),
    (
        "src/client/mod.rs",
        "inner: Buffer<Request<Body>, BoxFuture<'static, Result<Response<Body>, BoxError>>>,",
        "inner: BoxCloneSyncService<Request<Body>, Response<Body>, BoxError>,",
    ),
    (
        "src/client/mod.rs",
        "S: Service<Request<Body>, Response = Response<B>> + Send + 'static,\n"
        "        S::Future: Send + 'static,\n"
        "        S::Error: Into<BoxError>,\n"
        "        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,\n"
        "        B::Error: Into<BoxError>,\n"
        "        T: Into<String>,",
        "S: Service<Request<Body>, Response = Response<B>> + Clone + Send + Sync + 'static,\n"
        "        S::Future: Send + 'static,\n"
        "        S::Error: Into<BoxError>,\n"
        "        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,\n"
        "        B::Error: Into<BoxError>,\n"
        "        T: Into<String>,",
    ),
    (
        "src/client/mod.rs",
        ".map_err(Into::into)\n            .boxed();",
        ".map_err(Into::into);",
    ),
    (
        "src/client/mod.rs",
        "inner: Buffer::new(service, 1024),",
        "inner: BoxCloneSyncService::new(service),",
    ),
    (
        "src/client/builder.rs",
        "Client::new(self.service, self.default_ns)",
        "Client::new(\n"
        "            tower::buffer::Buffer::new(\n"
        "                tower::ServiceExt::map_err(\n"
        "                    tower_http::ServiceExt::map_response_body(\n"
        "                        self.service,\n"
        "                        crate::client::Body::wrap_body,\n"
        "                    ),\n"
        "                    Into::<BoxError>::into,\n"
        "                )\n"
        "                .boxed(),\n"
        "                1024,\n"
        "            ),\n"
        "            self.default_ns,\n"
        "        )",
    ),
]


def kube_client_source() -> pathlib.Path:
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    for package in meta["packages"]:
        if package["name"] == "kube-client":
            return pathlib.Path(package["manifest_path"]).parent
    sys.exit("kube-client is not in Cargo.lock")


def edit_copy(source: pathlib.Path) -> None:
    if COPY.exists():
        shutil.rmtree(COPY)
    shutil.copytree(source, COPY)
    for name, old, new in EDITS:
        path = COPY / name
        text = path.read_text()
        if text.count(old) != 1:
            sys.exit(f"{source.name}/{name}: expected this text once, found it {text.count(old)} times:\n{old}")
        path.write_text(text.replace(old, new))


def main() -> None:
    source = kube_client_source()
    edit_copy(source)
    lock = ROOT / "Cargo.lock"
    kept = lock.read_bytes()
    try:
        subprocess.run(
            [
                "cargo",
                "build",
                "--release",
                "--bin",
                "flytesecret",
                "--target-dir",
                str(TARGET_DIR),
                "--config",
                f'patch.crates-io.kube-client.path="{COPY}"',
            ],
            cwd=ROOT,
            check=True,
        )
    finally:
        lock.write_bytes(kept)
    print(TARGET_DIR / "release" / "flytesecret")


if __name__ == "__main__":
    main()
