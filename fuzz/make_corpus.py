#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/<target>/: valid inputs laid out the way each harness in
fuzz/harness.rs reads them (selector bytes first). Run from the repository root; the WAL seeds
come from fuzz/seeds/wal.jsonl, a log written by `flytesecret kube-api` with kubectl."""
import base64, gzip, json, os, struct

ROOT = 'fuzz/corpus'


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def varint(n):
    out = b''
    while True:
        b, n = n & 0x7f, n >> 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def ld(field, payload):
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def ident(name, domain='development', project='p'):
    return ld(1, name.encode()) + ld(3, domain.encode()) + ld(4, project.encode())


# Procedures by index: Create, Update, Get, Delete, List, SelectCluster.
create = ld(1, ident('a1')) + ld(2, ld(1, b'v'))
update = ld(1, ident('a')) + ld(2, ld(2, b'\x00\xff'))
get = ld(1, ident('a'))
lst = ld(2, b'development') + ld(3, b'p') + varint(4 << 3) + varint(1)
select = varint(8 << 3) + varint(8)  # operation = OPERATION_USE_SECRETS
msgs = [(0, create), (1, update), (2, get), (3, get), (4, lst), (5, select)]
for path, m in msgs:
    frame = b'\x00' + struct.pack('>I', len(m)) + m
    put('grpc', f'p{path}-plain', bytes([path, 0, 0]) + frame)
    gz = gzip.compress(m)
    put('grpc', f'p{path}-gzip', bytes([path, 1, 1]) + b'\x01' + struct.pack('>I', len(gz)) + gz)
    put('grpc_web', f'p{path}-binary', bytes([path, 0, 0]) + frame)
    put('grpc_web', f'p{path}-text', bytes([path, 2, 0]) + base64.b64encode(frame))
put('grpc', 'empty-frames', bytes([4, 0, 0]) + b'\x00\x00\x00\x00\x00' * 2)

ident_json = {"name": "a", "domain": "development", "project": "p"}
jmsgs = {
    0: {"id": dict(ident_json, name="a1"), "secretSpec": {"stringValue": "v"}},
    1: {"id": ident_json, "secretSpec": {"binaryValue": "dg=="}},
    2: {"id": ident_json},
    3: {"id": dict(ident_json, name="b")},
    4: {"domain": "development", "project": "p", "limit": 1},
    5: {"operation": "OPERATION_USE_SECRETS"},
}
for path, m in jmsgs.items():
    body = json.dumps(m).encode()
    put('connect', f'p{path}-json', bytes([path, 0, 0]) + body)
    put('connect', f'p{path}-json-gzip', bytes([path, 0, 1]) + gzip.compress(body))
for path, m in msgs:
    put('connect', f'p{path}-proto', bytes([path, 1, 0]) + m)

# rest: method (GET, POST, PUT, DELETE), then path \0 query \0 body.
put('rest', 'list', b'\x00\x00domain=development&project=p&limit=1\x00')
put('rest', 'get', b'\x00/name/a\x00id.domain=development&id.project=p\x00')
put('rest', 'create', b'\x01\x00\x00' + json.dumps(jmsgs[0]).encode())
put('rest', 'update', b'\x02/name/a\x00\x00' + json.dumps(jmsgs[1]).encode())
put('rest', 'delete', b'\x03/name/b%2Fx\x00id.domain=development&id.project=p\x00')

# kubeapi_json: method (POST, PUT, PATCH, DELETE), path, content type.
sec = {"apiVersion": "v1", "kind": "Secret",
       "metadata": {"name": "x", "namespace": "flyte", "labels": {"a": "b"}},
       "data": {"k": "dg=="}, "stringData": {"s": "t"}, "type": "Opaque"}
replaced = dict(sec, metadata=dict(sec['metadata'], resourceVersion="1"))
put('kubeapi_json', 'create-secret', bytes([0, 0, 0]) + json.dumps(sec).encode())
put('kubeapi_json', 'replace-secret', bytes([1, 1, 0]) + json.dumps(replaced).encode())
put('kubeapi_json', 'create-namespace',
    bytes([0, 2, 0]) + json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}).encode())
put('kubeapi_json', 'delete-options', bytes([3, 1, 0]) + json.dumps(
    {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "u"},
     "propagationPolicy": "Background"}).encode())
put('kubeapi_json', 'patch', bytes([2, 1, 1]) + b'{"metadata":{"labels":{"x":"y"}}}')


# kubeapi_protobuf: method (POST, PUT), path; body = "k8s\0" + runtime.Unknown.
def secret_pb(name):
    meta = ld(1, name.encode()) + ld(3, b'flyte')
    return ld(1, meta) + ld(2, ld(1, b'k') + ld(2, b'v')) + ld(3, b'Opaque')


def unknown(kind, raw):
    return b'k8s\x00' + ld(1, ld(1, b'v1') + ld(2, kind.encode())) + ld(2, raw)


put('kubeapi_protobuf', 'create', bytes([0, 0]) + unknown('Secret', secret_pb('x')))
put('kubeapi_protobuf', 'replace', bytes([1, 1]) + unknown('Secret', secret_pb('x')))
put('kubeapi_protobuf', 'namespace', bytes([0, 2]) + unknown('Namespace', ld(1, ld(1, b'team'))))

# selectors: label selector \0 field selector.
for i, (l, f) in enumerate([
        ("a=b", "metadata.name=x"),
        ("env in (a,b),!x", "type=Opaque"),
        ("app.kubernetes.io/name!=y,z", "metadata.namespace!=flyte"),
        ("flyte.org/managed=true,domain=development", ""),
        ("x notin (a),y", "metadata.name==a,type!=kubernetes.io/tls")]):
    put('selectors', f's{i}', (l + '\x00' + f).encode())

# continue_token: path (namespaced, all), limit, then the token (the engine's format).
tok = base64.b64encode(json.dumps({"v": "meta.k8s.io/v1", "rv": 1009, "start": "s1\u0000"}).encode())
put('continue_token', 'namespaced', bytes([0, 0]) + tok)
put('continue_token', 'cluster', bytes([1, 1]) + tok)
put('continue_token', 'empty', bytes([0, 0]))

# wal_replay: the log; with a NUL, state.json before it and the log after it.
wal = open('fuzz/seeds/wal.jsonl', 'rb').read()
put('wal_replay', 'real-log', wal)
put('wal_replay', 'torn-tail', wal[:-40])
lines = wal.split(b'\n')
state = {"rv": 1006, "m": [json.loads(lines[0])["m"][0], json.loads(lines[2])["m"][0]]}
put('wal_replay', 'state-and-log', json.dumps(state).encode() + b'\x00' + lines[3] + b'\n')

put('config_file', 'deploy', open('deploy/base/config.yaml', 'rb').read())
put('config_file', 'auth', open('deploy/components/auth/auth.yaml', 'rb').read())
put('config_file', 'types', b'secret:\n  server: {port: "8093", requestTimeout: 1m30s}\n'
    b'  kubernetes: {qps: 5, burst: 10, timeout: 500ms}\n  strictNames: false\nother: [1, 2]\n')

for op in ['encode', 'prefix', 'decode', 'k8s_name', 'image_pull_name', 'scope_error',
           'invalidate_body', 'invalidation_targets', 'lookup_cascade', 'env_var_name', 'file_mount']:
    path = f'golden/{op}.jsonl'
    if os.path.exists(path):
        with open(path, 'rb') as f:
            put('naming_adapter', op, b''.join(f.readlines()[:3]))
