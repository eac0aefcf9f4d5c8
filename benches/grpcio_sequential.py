"""Sequential GetSecret latency through the real grpcio client (issue 14: under 2 ms).

Run against a serving binary that holds the secret (see BENCHMARKS.md for the commands):
    target/clients/venv-clients/bin/python benches/grpcio_sequential.py 127.0.0.1:8093 --create
"""
import sys
import time

import grpc
from flyteidl2.secret import definition_pb2, payload_pb2, secret_pb2_grpc


def main() -> None:
    address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8093"
    stub = secret_pb2_grpc.SecretServiceStub(grpc.insecure_channel(address))
    if "--create" in sys.argv[2:]:
        stub.CreateSecret(
            payload_pb2.CreateSecretRequest(
                id=definition_pb2.SecretIdentifier(name="grpcio_bench", domain="development"),
                secret_spec=definition_pb2.SecretSpec(string_value="v"),
            )
        )
    req = payload_pb2.GetSecretRequest(
        id=definition_pb2.SecretIdentifier(name="grpcio_bench", domain="development")
    )
    for _ in range(50):
        stub.GetSecret(req)
    ms = []
    for _ in range(1000):
        start = time.perf_counter()
        stub.GetSecret(req)
        ms.append((time.perf_counter() - start) * 1000)
    ms.sort()
    print(f"grpcio sequential GetSecret: p50 {ms[500]:.3f} ms, p99 {ms[990]:.3f} ms over {len(ms)}")


if __name__ == "__main__":
    main()
