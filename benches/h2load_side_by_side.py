"""GetSecret under h2load, the issue's own tool, side by side with the kube-api face's GET.

`benches/load.rs` drives the service with Rust clients (tonic, hyper) that share the two cores
with the server; h2load is a C client that costs far less per request, so the server's own cost
dominates what this measures. One run of the release binary (`serve --ephemeral`, default
configuration apart from the ports), one secret, then for each protocol `h2load -c C -m 1 -D S`:

  floor GET h1     GET of the Secret on the kube-api face, HTTP/1.1 (h2load --h1)
  floor GET h2     the same GET over HTTP/2 (h2c): the floor of gRPC's transport
  gRPC             POST of one GetSecret envelope over HTTP/2
  Connect proto    POST over HTTP/1.1, application/proto
  Connect JSON     POST over HTTP/1.1, application/json
  Connect proto h2 the Connect proto POST over HTTP/2 (h2c), for the HTTP/2 floor

Prints req/s, the server's CPU per request (user + system from /proc/<pid>/stat), and each
RPC's ratios to both floors (throughput, and CPU per request).

    apt-get install nghttp2-client
    cargo build --release
    target/clients/venv-clients/bin/python benches/h2load_side_by_side.py target/release/flytesecret [SECONDS] [CLIENTS]
"""
import json
import os
import re
import struct
import subprocess
import sys

from flyteidl2.secret import definition_pb2, payload_pb2

import bench_server

def main() -> None:
    binary = os.path.abspath(sys.argv[1])
    seconds = sys.argv[2] if len(sys.argv) > 2 else "5"
    clients = sys.argv[3] if len(sys.argv) > 3 else "64"
    server, service, kube_api = bench_server.start([binary])
    try:
        run_all(server, service, kube_api, seconds, clients)
    finally:
        server.terminate()
        server.wait()


def run_all(server, service: str, kube_api: str, seconds: str, clients: str) -> None:
    svc, kube = bench_server.connect(service), bench_server.connect(kube_api)
    obj = bench_server.create_secret(svc, kube)
    proto = payload_pb2.GetSecretRequest(
        id=definition_pb2.SecretIdentifier(**bench_server.IDENT)).SerializeToString()
    bodies = {
        "proto": proto,
        "json": json.dumps({"id": bench_server.IDENT}).encode(),
        "grpc": b"\0" + struct.pack(">I", len(proto)) + proto,
    }
    for kind, body in bodies.items():
        with open(f"/tmp/h2load-side-by-side-{os.getpid()}.{kind}", "wb") as f:
            f.write(body)

    def body(kind: str) -> str:
        return f"/tmp/h2load-side-by-side-{os.getpid()}.{kind}"

    def cpu_seconds() -> float:
        fields = open(f"/proc/{server.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def run(label: str, args: list) -> tuple:
        before = cpu_seconds()
        out = subprocess.run(["h2load", "-c", clients, "-m", "1", "-D", seconds, "-t", "1"] + args,
                             capture_output=True, text=True, check=True).stdout
        used = cpu_seconds() - before
        rate = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
        done = int(re.search(r"(\d+) succeeded", out).group(1))
        ok = int(re.search(r"status codes: (\d+) 2xx", out).group(1))
        if ok != done or done == 0:
            sys.exit(f"{label}: {done} requests, {ok} answered 2xx\n{out}")
        per = used / done * 1e6
        print(f"{label:18s} {rate:10.0f} req/s {per:8.1f} us/req", flush=True)
        return rate, per

    floor = f"http://{kube_api}/api/v1/namespaces/flyte/secrets/{obj}"
    rpc = f"http://{service}/flyteidl2.secret.SecretService/GetSecret"
    print(f"GetSecret, {clients} h2load clients, {seconds} s each")
    h1 = run("floor GET h1", ["--h1", "-H", "accept: application/json", floor])
    h2 = run("floor GET h2", ["-H", "accept: application/json", floor])
    rows = {
        "gRPC": run("gRPC", ["-d", body("grpc"), "-H", "content-type: application/grpc",
                              "-H", "te: trailers", rpc]),
        "Connect proto": run("Connect proto", ["--h1", "-d", body("proto"),
                                               "-H", "content-type: application/proto", rpc]),
        "Connect JSON": run("Connect JSON", ["--h1", "-d", body("json"),
                                             "-H", "content-type: application/json", rpc]),
        # Connect over HTTP/2 (h2c), against the floor on the same transport.
        "Connect proto h2": run("Connect proto h2", ["-d", body("proto"),
                                                     "-H", "content-type: application/proto", rpc]),
    }
    print(f"{'':18s} {'x h1 floor':>10s} {'cpu x':>7s} {'x h2 floor':>11s} {'cpu x':>7s}")
    for label, (rate, per) in rows.items():
        print(f"{label:18s} {rate / h1[0]:10.2f} {per / h1[1]:7.2f} {rate / h2[0]:11.2f} {per / h2[1]:7.2f}")
    for kind in bodies:
        os.remove(body(kind))


if __name__ == "__main__":
    main()
