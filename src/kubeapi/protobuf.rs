//! Protocol Buffers request bodies (`application/vnd.kubernetes.protobuf`), which kubectl 1.32+
//! sends for typed creates such as `kubectl create secret generic`. A body is transcoded to the
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

/// Transcodes a protobuf Secret body to its JSON form; errors carry the 400 message.
pub fn secret_to_json(body: &[u8]) -> Result<Vec<u8>, String> {
    let unknown_err = |e: &dyn std::fmt::Display| {
        format!("the object provided is unrecognized (must be of type Secret): {e}")
    };
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| unknown_err(&"missing the protobuf magic prefix"))?;
    let envelope: Unknown = prost::Message::decode(rest).map_err(|e| unknown_err(&e))?;
    let tm = envelope.type_meta.unwrap_or_default();
    let secret: Secret = prost::Message::decode(&envelope.raw[..]).map_err(|e| unknown_err(&e))?;
    let meta = secret.metadata.unwrap_or_default();
    let m = super::object::encode_meta(&super::object::ObjectMeta {
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
    });
    let data: Map<String, Value> = secret
        .data
        .iter()
        .map(|(k, v)| (k.clone(), json!(STANDARD.encode(v))))
        .collect();
    let mut obj = json!({
        "apiVersion": if tm.api_version.is_empty() { "v1".to_owned() } else { tm.api_version },
        "kind": if tm.kind.is_empty() { "Secret".to_owned() } else { tm.kind },
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
    Ok(serde_json::to_vec(&obj).expect("serialisable"))
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
        let json: Value = serde_json::from_slice(&secret_to_json(&body).unwrap()).unwrap();
        assert_eq!(
            json["metadata"],
            json!({"name": "lit", "namespace": "default"})
        );
        assert_eq!(json["data"]["user"], "YWRtaW4=");
        assert!(secret_to_json(b"nope").is_err());
    }
}
