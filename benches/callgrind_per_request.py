"""Server instructions per GetSecret, by protocol, against the kube-api face's GET (the floor).

Counts are taken with valgrind's callgrind, so they are deterministic within about 1% and do
not move with the machine's load (timings on the shared 2-core machine do, by 20-50%). One
client at a time, sequential calls: this measures the code path, not concurrency effects.
User-space instructions only (the kernel's socket work is not counted).

    apt-get install valgrind
    cargo build --release
    target/clients/venv-clients/bin/python benches/callgrind_per_request.py target/release/flytesecret [N]

Prints thousands of instructions per call and the ratio to the floor. With CALLGRIND_KEEP=DIR,
each protocol's profile is kept in DIR for `callgrind_annotate --inclusive=yes`. gRPC goes through grpcio,
which accepts gzip, so its responses are compressed (as the Go service compresses them).
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time

import grpc
from flyteidl2.secret import definition_pb2, payload_pb2

import bench_server


def main() -> None:
    binary = os.path.abspath(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    out = f"/tmp/flytesecret-callgrind-{os.getpid()}"
    server, service, kube_api = bench_server.start(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", binary])
    svc, kube = bench_server.connect(service), bench_server.connect(kube_api)
    obj = bench_server.create_secret(svc, kube)
    ident = bench_server.IDENT
    proto = payload_pb2.GetSecretRequest(
        id=definition_pb2.SecretIdentifier(**ident)).SerializeToString()
    as_json = json.dumps({"id": ident})
    rpc = grpc.insecure_channel(service).unary_unary("/flyteidl2.secret.SecretService/GetSecret")

    def floor() -> None:
        kube.request("GET", f"/api/v1/namespaces/flyte/secrets/{obj}",
                     headers={"accept": "application/json"})
        r = kube.getresponse()
        r.read()
        assert r.status == 200

    def connect_call(body, content_type: str) -> None:
        svc.request("POST", "/flyteidl2.secret.SecretService/GetSecret", body,
                    {"content-type": content_type})
        r = svc.getresponse()
        r.read()
        assert r.status == 200

    calls = [
        ("kube-api GET (floor)", floor),
        ("gRPC (grpcio, gzip)", lambda: rpc(proto)),
        ("Connect proto", lambda: connect_call(proto, "application/proto")),
        ("Connect JSON", lambda: connect_call(as_json, "application/json")),
    ]

    keep = os.environ.get("CALLGRIND_KEEP")  # a directory: keep each protocol's profile there

    def dump(label: str = "") -> int:
        """Writes the counts since the last dump (callgrind zeroes them) and returns their total."""
        before = set(glob.glob(f"{out}.{server.pid}.*"))
        subprocess.run(["callgrind_control", "-d", str(server.pid)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        for _ in range(50):
            new = set(glob.glob(f"{out}.{server.pid}.*")) - before
            if new:
                break
            time.sleep(0.1)
        time.sleep(0.3)
        path = new.pop()
        if keep and label:
            os.makedirs(keep, exist_ok=True)
            shutil.copy(path, os.path.join(keep, re.sub(r"\W+", "_", label).strip("_") + ".out"))
        for line in open(path):
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
        raise RuntimeError("no totals in the callgrind dump")

    results = []
    try:
        for name, call in calls:
            for _ in range(50):  # warm-up, not counted
                call()
            dump()
            for _ in range(n):
                call()
            results.append((name, dump(name) / n))
    finally:
        server.terminate()
        server.wait()
        for f in glob.glob(f"{out}.*"):
            os.remove(f)
    floor_count = results[0][1]
    print(f"server instructions per GetSecret ({n} sequential calls each)")
    for name, count in results:
        print(f"{name:<24} {count / 1000:8.1f}k  {count / floor_count:5.2f}x floor")


if __name__ == "__main__":
    main()
