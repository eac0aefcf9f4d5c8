//! Protocol Buffers request bodies (`application/vnd.kubernetes.protobuf`), which kubectl 1.32+
//! sends for typed creates such as `kubectl create secret generic` and `kubectl create namespace`. A body is transcoded to the
//! JSON form the rest of the engine handles, so there is one decoding and validation path.
//! Responses stay JSON, which those clients accept.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";

#[derive(Clone, PartialEq, prost::Message)]
struct Unknown {
    #[prost(message, optional, tag = "1")]
    type_meta: Option<TypeMeta>,
    #[prost(bytes = "vec", tag = "2")]
    raw: Vec<u8>,
    #[prost(string, tag = "3")]
    content_encoding: String,
    #[prost(string, tag = "4")]
    content_type: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TypeMeta {
    #[prost(string, tag = "1")]
    api_version: String,
    #[prost(string, tag = "2")]
    kind: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ObjectMeta {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    generate_name: String,
    #[prost(string, tag = "3")]
    namespace: String,
    #[prost(string, tag = "5")]
    uid: String,
    #[prost(string, tag = "6")]
    resource_version: String,
    #[prost(int64, optional, tag = "7")]
    generation: Option<i64>,
    #[prost(btree_map = "string, string", tag = "11")]
    labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "12")]
    annotations: BTreeMap<String, String>,
    #[prost(string, repeated, tag = "14")]
    finalizers: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Secret {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(btree_map = "string, bytes", tag = "2")]
    data: BTreeMap<String, Vec<u8>>,
    #[prost(string, tag = "3")]
    type_: String,
    #[prost(btree_map = "string, string", tag = "4")]
    string_data: BTreeMap<String, String>,
    #[prost(bool, optional, tag = "5")]
    immutable: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct NamespaceSpec {
    #[prost(string, repeated, tag = "1")]
    finalizers: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Namespace {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<NamespaceSpec>,
}

/// The kinds whose protobuf bodies are transcoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Secret,
    Namespace,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Secret => "Secret",
            Kind::Namespace => "Namespace",
        }
    }
}

/// Transcodes a protobuf body of `kind` (taken from the URL) to its JSON form; errors carry the
/// 400 message.
pub fn to_json(kind: Kind, body: &[u8]) -> Result<Vec<u8>, String> {
    let unknown_err = |e: &dyn std::fmt::Display| {
        format!(
            "the object provided is unrecognized (must be of type {}): {e}",
            kind.name()
        )
    };
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| unknown_err(&"missing the protobuf magic prefix"))?;
    let envelope: Unknown = prost::Message::decode(rest).map_err(|e| unknown_err(&e))?;
    let tm = envelope.type_meta.unwrap_or_default();
    let api_version = if tm.api_version.is_empty() {
        "v1".to_owned()
    } else {
        tm.api_version
    };
    let kind_name = if tm.kind.is_empty() {
        kind.name().to_owned()
    } else {
        tm.kind
    };
    let obj = match kind {
        Kind::Secret => {
            let secret: Secret =
                prost::Message::decode(&envelope.raw[..]).map_err(|e| unknown_err(&e))?;
            secret_json(secret, api_version, kind_name)
        }
        Kind::Namespace => {
            let ns: Namespace =
                prost::Message::decode(&envelope.raw[..]).map_err(|e| unknown_err(&e))?;
            json!({
                "apiVersion": api_version,
                "kind": kind_name,
                "metadata": meta_json(ns.metadata.unwrap_or_default()),
                "spec": {"finalizers": ns.spec.unwrap_or_default().finalizers},
            })
        }
    };
    Ok(serde_json::to_vec(&obj).expect("serialisable"))
}

fn meta_json(meta: ObjectMeta) -> Value {
    super::object::encode_meta(&super::object::ObjectMeta {
        name: meta.name,
        generate_name: meta.generate_name,
        namespace: meta.namespace,
        uid: meta.uid,
        resource_version: meta.resource_version,
        generation: meta.generation,
        labels: meta.labels,
        annotations: meta.annotations,
        finalizers: meta.finalizers,
        ..Default::default()
    })
}

fn secret_json(secret: Secret, api_version: String, kind: String) -> Value {
    let m = meta_json(secret.metadata.unwrap_or_default());
    let data: Map<String, Value> = secret
        .data
        .iter()
        .map(|(k, v)| (k.clone(), json!(STANDARD.encode(v))))
        .collect();
    let mut obj = json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": m,
        "data": Value::Object(data),
        "type": secret.type_,
    });
    if !secret.string_data.is_empty() {
        obj["stringData"] = json!(secret.string_data);
    }
    if let Some(i) = secret.immutable {
        obj["immutable"] = json!(i);
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn transcodes_a_kubectl_style_body() {
        let secret = Secret {
            metadata: Some(ObjectMeta {
                name: "lit".into(),
                namespace: "default".into(),
                ..Default::default()
            }),
            data: BTreeMap::from([("user".to_owned(), b"admin".to_vec())]),
            type_: "Opaque".into(),
            ..Default::default()
        };
        let envelope = Unknown {
            type_meta: Some(TypeMeta {
                api_version: "v1".into(),
                kind: "Secret".into(),
            }),
            raw: secret.encode_to_vec(),
            ..Default::default()
        };
        let mut body = MAGIC.to_vec();
        body.extend(envelope.encode_to_vec());
        let json: Value = serde_json::from_slice(&to_json(Kind::Secret, &body).unwrap()).unwrap();
        assert_eq!(
            json["metadata"],
            json!({"name": "lit", "namespace": "default"})
        );
        assert_eq!(json["data"]["user"], "YWRtaW4=");
        assert!(to_json(Kind::Secret, b"nope").is_err());
    }

    #[test]
    fn transcodes_a_namespace_without_type_meta() {
        let ns = Namespace {
            metadata: Some(ObjectMeta {
                name: "team".into(),
                ..Default::default()
            }),
            spec: None,
        };
        let envelope = Unknown {
            raw: ns.encode_to_vec(),
            ..Default::default()
        };
        let mut body = MAGIC.to_vec();
        body.extend(envelope.encode_to_vec());
        let json: Value =
            serde_json::from_slice(&to_json(Kind::Namespace, &body).unwrap()).unwrap();
        assert_eq!(json["kind"], "Namespace");
        assert_eq!(json["metadata"]["name"], "team");
    }
}
