"""Drives an authenticated TLS Secret Service endpoint with the `flyteidl2` package's clients:
the Connect client (pyqwest transport with the test CA) and the gRPC stub over `grpcio` with
`ssl_channel_credentials`. Every call carries `authorization: Bearer TOKEN`.

Usage: secure_client.py ENDPOINT MODE TOKEN CA_FILE
       (MODE: connect-proto, connect-json, connect-grpcweb, grpcio)
Prints "OK <mode>" when create/get/list/delete worked and a call without the token was refused
as unauthenticated.
"""
import sys
import uuid

from flyteidl2.secret import definition_pb2, payload_pb2

ENDPOINT, MODE, TOKEN, CA_FILE = sys.argv[1:5]
CA = open(CA_FILE, "rb").read()
NAME = "tls-" + uuid.uuid4().hex[:8]
AUTH = {"authorization": f"Bearer {TOKEN}"}


def make_client():
    """Returns (call(method, request, authenticated) -> response, error_code(exc) -> str)."""
    if MODE == "grpcio":
        import grpc
        from flyteidl2.secret import secret_pb2_grpc

        channel = grpc.secure_channel(
            ENDPOINT.removeprefix("https://"), grpc.ssl_channel_credentials(root_certificates=CA)
        )
        stub = secret_pb2_grpc.SecretServiceStub(channel)

        def call(method, request, authenticated=True):
            metadata = list(AUTH.items()) if authenticated else []
            return getattr(stub, method)(request, timeout=30, metadata=metadata)

        def code(exc):
            return exc.code().name.lower() if isinstance(exc, grpc.RpcError) else None

        return call, code
    import pyqwest
    from connectrpc.codec import proto_binary_codec, proto_json_codec
    from connectrpc.errors import ConnectError
    from connectrpc.protocol import ProtocolType
    from flyteidl2.secret.secret_connect import SecretServiceClientSync

    http = pyqwest.SyncClient(pyqwest.SyncHTTPTransport(tls_ca_cert=CA))
    codec = proto_json_codec() if MODE == "connect-json" else proto_binary_codec()
    protocol = ProtocolType.GRPC_WEB if MODE == "connect-grpcweb" else ProtocolType.CONNECT
    client = SecretServiceClientSync(ENDPOINT, codec=codec, protocol=protocol, timeout_ms=30000,
                                     http_client=http)
    names = {"CreateSecret": "create_secret", "GetSecret": "get_secret",
             "DeleteSecret": "delete_secret", "ListSecrets": "list_secrets"}

    def call(method, request, authenticated=True):
        return getattr(client, names[method])(request, headers=AUTH if authenticated else {})

    def code(exc):
        return exc.code.name.lower() if isinstance(exc, ConnectError) else None

    return call, code


def main():
    call, code = make_client()
    ident = definition_pb2.SecretIdentifier(name=NAME, domain="development", project="flytesnacks")
    try:
        call("ListSecrets", payload_pb2.ListSecretsRequest(domain="development"), authenticated=False)
        raise SystemExit("a call without a token was answered")
    except Exception as exc:  # noqa: BLE001 - the client's own error type
        if code(exc) != "unauthenticated":
            raise
    call("CreateSecret", payload_pb2.CreateSecretRequest(
        id=ident, secret_spec=definition_pb2.SecretSpec(string_value="tls-value")))
    got = call("GetSecret", payload_pb2.GetSecretRequest(id=ident))
    assert got.secret.id.name == NAME, got
    listed = call("ListSecrets", payload_pb2.ListSecretsRequest(domain="development", project="flytesnacks"))
    assert any(s.id.name == NAME for s in listed.secrets), listed
    call("DeleteSecret", payload_pb2.DeleteSecretRequest(id=ident))
    print(f"OK {MODE}")


main()
