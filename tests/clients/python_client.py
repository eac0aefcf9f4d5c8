"""Drives a Secret Service endpoint with clients nobody here wrote: the `flyteidl2` package's
Connect client (binary proto, JSON, gRPC and gRPC-Web protocols) and its gRPC stub over `grpcio`.

Usage: python_client.py ENDPOINT MODE    (MODE: connect-proto, connect-json, connect-grpc,
connect-grpcweb, grpcio). Prints "OK <mode>" and exits 0 when every step behaved.
"""
import sys
import uuid

from flyteidl2.secret import definition_pb2, payload_pb2

ENDPOINT, MODE = sys.argv[1], sys.argv[2]
SUFFIX = uuid.uuid4().hex[:8]


class Failure(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Failure(what)


def make_client():
    """Returns (call(method, request) -> response, error_code(exception) -> str)."""
    if MODE == "grpcio":
        import grpc
        from flyteidl2.secret import secret_pb2_grpc

        channel = grpc.insecure_channel(ENDPOINT.removeprefix("http://"))
        stub = secret_pb2_grpc.SecretServiceStub(channel)

        def call(method, request):
            return getattr(stub, method)(request, timeout=30)

        def code(exc):
            return exc.code().name.lower() if isinstance(exc, grpc.RpcError) else None

        return call, code
    from connectrpc.codec import proto_binary_codec, proto_json_codec
    from connectrpc.errors import ConnectError
    from connectrpc.protocol import ProtocolType
    from flyteidl2.secret.secret_connect import SecretServiceClientSync

    protocol = {"connect-proto": ProtocolType.CONNECT, "connect-json": ProtocolType.CONNECT,
                "connect-grpc": ProtocolType.GRPC, "connect-grpcweb": ProtocolType.GRPC_WEB}[MODE]
    codec = proto_json_codec() if MODE == "connect-json" else proto_binary_codec()
    client = SecretServiceClientSync(ENDPOINT, codec=codec, protocol=protocol, timeout_ms=30000)
    names = {"CreateSecret": "create_secret", "GetSecret": "get_secret", "UpdateSecret": "update_secret",
             "DeleteSecret": "delete_secret", "ListSecrets": "list_secrets"}

    def call(method, request):
        return getattr(client, names[method])(request)

    def code(exc):
        return exc.code.name.lower() if isinstance(exc, ConnectError) else None

    return call, code


def main():
    call, code = make_client()

    def fails_with(expected, method, request):
        try:
            call(method, request)
        except Exception as exc:  # noqa: BLE001 - any client error type
            got = code(exc)
            expect(got == expected, f"{method}: expected {expected}, got {got} ({exc})")
            return exc
        raise Failure(f"{method}: expected {expected}, but it succeeded")

    domain, project = "development", f"proj-{SUFFIX}"
    ident = lambda name, d=domain, p=project: definition_pb2.SecretIdentifier(name=name, domain=d, project=p)
    value = "s3cr3t-" + SUFFIX

    call("CreateSecret", payload_pb2.CreateSecretRequest(id=ident("api-key"), secret_spec=definition_pb2.SecretSpec(string_value=value)))
    fails_with("already_exists", "CreateSecret", payload_pb2.CreateSecretRequest(id=ident("api-key"), secret_spec=definition_pb2.SecretSpec(string_value=value)))
    fails_with("invalid_argument", "CreateSecret", payload_pb2.CreateSecretRequest(id=ident("x", d="", p=project), secret_spec=definition_pb2.SecretSpec(string_value="v")))
    fails_with("invalid_argument", "CreateSecret", payload_pb2.CreateSecretRequest(id=ident("x")))

    got = call("GetSecret", payload_pb2.GetSecretRequest(id=ident("api-key")))
    expect(got.secret.id.name == "api-key" and got.secret.id.project == project, f"get returned {got}")
    status = got.secret.secret_metadata.secret_status
    expect(status.overall_status == definition_pb2.FULLY_PRESENT, f"status {status}")
    expect(got.secret.secret_metadata.created_time.seconds > 0, "no created_time")
    expect(value not in str(got), "value returned by Get")
    fails_with("not_found", "GetSecret", payload_pb2.GetSecretRequest(id=ident("nope")))

    for i in range(5):
        call("CreateSecret", payload_pb2.CreateSecretRequest(id=ident(f"page-{i}"), secret_spec=definition_pb2.SecretSpec(binary_value=bytes([i, 0, 255]))))
    seen, token, pages = [], "", 0
    while True:
        page = call("ListSecrets", payload_pb2.ListSecretsRequest(domain=domain, project=project, limit=2, token=token))
        expect(value not in str(page), "value returned by List")
        seen += [s.id.name for s in page.secrets]
        pages += 1
        token = page.token
        if not token:
            break
        expect(pages < 10, "paging does not end")
    expect(sorted(seen) == sorted(["api-key"] + [f"page-{i}" for i in range(5)]), f"listed {seen}")
    expect(pages >= 3, f"only {pages} pages for 6 secrets at limit 2")

    call("UpdateSecret", payload_pb2.UpdateSecretRequest(id=ident("api-key"), secret_spec=definition_pb2.SecretSpec(string_value="new")))
    fails_with("not_found", "UpdateSecret", payload_pb2.UpdateSecretRequest(id=ident("nope"), secret_spec=definition_pb2.SecretSpec(string_value="new")))
    for name in ["api-key"] + [f"page-{i}" for i in range(5)]:
        call("DeleteSecret", payload_pb2.DeleteSecretRequest(id=ident(name)))
    fails_with("not_found", "DeleteSecret", payload_pb2.DeleteSecretRequest(id=ident("api-key")))
    left = call("ListSecrets", payload_pb2.ListSecretsRequest(domain=domain, project=project))
    expect(len(left.secrets) == 0, f"left over: {left}")
    print(f"OK {MODE}")


if __name__ == "__main__":
    try:
        main()
    except Failure as f:
        print(f"FAIL {MODE}: {f}", file=sys.stderr)
        sys.exit(1)
