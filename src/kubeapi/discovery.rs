//! Discovery, `/version` and the minimal OpenAPI v3 documents `kubectl` needs (docs/kubernetes-api.md §7).
//! Legacy discovery: simplest, and what every kubectl falls back to.

use serde_json::{Value, json};

pub fn api_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
}

pub fn api_groups() -> Value {
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
}

pub fn core_v1_resources() -> Value {
    json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        {"name": "namespaces", "singularName": "namespace", "namespaced": false, "kind": "Namespace",
         "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"], "shortNames": ["ns"]},
        {"name": "secrets", "singularName": "secret", "namespaced": true, "kind": "Secret",
         "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"], "storageVersionHash": "S6u1pOWzb84="},
    ]})
}

pub fn version() -> Value {
    json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0", "gitCommit": "0000000000000000000000000000000000000000",
           "gitTreeState": "clean", "buildDate": "2025-04-23T00:00:00Z", "goVersion": "go1.24.2", "compiler": "gc",
           "platform": "linux/amd64"})
}

pub fn openapi_v3_root() -> Value {
    json!({"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=F1E75E7B3C6A1D2B"}}})
}

pub fn openapi_v3_core() -> Value {
    json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": {"/api/v1/namespaces/{namespace}/secrets/{name}": {"patch": {
            "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": "Secret"},
            "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
            "responses": {}}}}})
}

/// `/openapi/v2` as kubectl 1.27 asks for it (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`,
/// gnostic's `openapi_v2.Document`): a document with no definitions, so kubectl's client-side
/// validation finds no schema for the kind and lets the server validate.
pub fn openapi_v2() -> http::Response<bytes::Bytes> {
    fn field(tag: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![tag << 3 | 2, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }
    let info = [field(1, b"Kubernetes"), field(2, b"v1.33.0")].concat();
    let doc = [field(1, b"2.0"), field(2, &info)].concat();
    http::Response::builder()
        .status(200)
        .header(
            http::header::CONTENT_TYPE,
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
        )
        .body(bytes::Bytes::from(doc))
        .expect("static headers are valid")
}
