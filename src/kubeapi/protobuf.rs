//! Protocol Buffers (`application/vnd.kubernetes.protobuf`; the wire form is in
//! [`crate::k8s_wire`]).
//!
//! Request bodies, which kubectl 1.32+ sends for typed creates such as `kubectl create secret
//! generic` and `kubectl create namespace`: a body is transcoded to the JSON form the rest of the
//! engine handles, so there is one decoding and validation path.
//!
//! Answers are JSON, which those clients accept, except one object's `PartialObjectMetadata`
//! asked for in protobuf (client-go's metadata client and the service's GetSecret list it first):
//! [`write_partial`] writes it as the API server does, field by field from the stored metadata.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

pub use crate::k8s_wire::CONTENT_TYPE;
use crate::k8s_wire::{Unknown, put_bytes, put_map_entry, put_time, put_varint};

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
    let envelope: Unknown = crate::k8s_wire::open(body).map_err(|e| unknown_err(&e))?;
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

/// Writes one object's `PartialObjectMetadata` in protobuf: the envelope (`meta.k8s.io/v1` or
/// `v1beta1`), then `metadata` with the fields in number order, the strings, `generation` and
/// `creationTimestamp` always (as the API server's generated code writes them), the rest when set.
pub fn write_partial(out: &mut Vec<u8>, api_version: &str, meta: &super::object::ObjectMeta) {
    let mut fields = Vec::with_capacity(256);
    put_bytes(&mut fields, 1, meta.name.as_bytes());
    put_bytes(&mut fields, 2, meta.generate_name.as_bytes());
    put_bytes(&mut fields, 3, meta.namespace.as_bytes());
    put_bytes(&mut fields, 4, b""); // selfLink: no longer set by the API server
    put_bytes(&mut fields, 5, meta.uid.as_bytes());
    put_bytes(&mut fields, 6, meta.resource_version.as_bytes());
    put_varint(&mut fields, 7, meta.generation.unwrap_or(0) as u64);
    put_time(&mut fields, 8, meta.creation_timestamp);
    if let Some(t) = meta.deletion_timestamp {
        put_time(&mut fields, 9, Some(t));
    }
    if let Some(g) = meta.deletion_grace_period_seconds {
        put_varint(&mut fields, 10, g as u64);
    }
    for (k, v) in &meta.labels {
        put_map_entry(&mut fields, 11, k, v);
    }
    for (k, v) in &meta.annotations {
        put_map_entry(&mut fields, 12, k, v);
    }
    for owner in &meta.owner_references {
        put_bytes(&mut fields, 13, &owner_reference(owner));
    }
    for f in &meta.finalizers {
        put_bytes(&mut fields, 14, f.as_bytes());
    }
    for entry in &meta.managed_fields {
        put_bytes(&mut fields, 17, &managed_fields_entry(entry));
    }
    crate::k8s_wire::put_partial_object_metadata(out, api_version, &fields);
}

/// The answer to a get asked as `PartialObjectMetadata` in protobuf.
pub fn partial_reply(
    version: super::negotiate::MetaVersion,
    meta: &super::object::ObjectMeta,
) -> super::status::Reply {
    let mut body = Vec::with_capacity(256);
    write_partial(&mut body, version.api_version(), meta);
    super::status::protobuf_reply(body)
}

fn str_of<'a>(object: &'a Value, key: &str) -> &'a str {
    object.get(key).and_then(Value::as_str).unwrap_or("")
}

/// An `OwnerReference` (stored as the JSON the API returns): kind 1, name 3, uid 4,
/// apiVersion 5, then controller 6 and blockOwnerDeletion 7 when set.
fn owner_reference(owner: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    for (tag, key) in [(1, "kind"), (3, "name"), (4, "uid"), (5, "apiVersion")] {
        put_bytes(&mut out, tag, str_of(owner, key).as_bytes());
    }
    for (tag, key) in [(6, "controller"), (7, "blockOwnerDeletion")] {
        if let Some(b) = owner.get(key).and_then(Value::as_bool) {
            put_varint(&mut out, tag, u64::from(b));
        }
    }
    out
}

/// A `ManagedFieldsEntry` (stored as JSON): manager 1, operation 2, apiVersion 3, time 4 when
/// set, fieldsType 6, fieldsV1 7 (its JSON, as `FieldsV1.Raw`) when set, subresource 8.
fn managed_fields_entry(entry: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    for (tag, key) in [(1, "manager"), (2, "operation"), (3, "apiVersion")] {
        put_bytes(&mut out, tag, str_of(entry, key).as_bytes());
    }
    if let Some(t) = entry
        .get("time")
        .and_then(Value::as_str)
        .and_then(super::object::parse_time)
    {
        put_time(&mut out, 4, Some(t));
    }
    put_bytes(&mut out, 6, str_of(entry, "fieldsType").as_bytes());
    if let Some(fields) = entry.get("fieldsV1") {
        let mut raw = Vec::new();
        put_bytes(
            &mut raw,
            1,
            &serde_json::to_vec(fields).expect("writing to a Vec cannot fail"),
        );
        put_bytes(&mut out, 7, &raw);
    }
    put_bytes(&mut out, 8, str_of(entry, "subresource").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s_wire::{MAGIC, TypeMeta};
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

/// Test-only: the whole `ObjectMeta` message as generated.proto declares it, to read back what
/// [`write_partial`] writes independently of how it writes it.
#[cfg(test)]
mod full {
    use std::collections::BTreeMap;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Partial {
        #[prost(message, optional, tag = "1")]
        pub metadata: Option<Meta>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Meta {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub generate_name: String,
        #[prost(string, tag = "3")]
        pub namespace: String,
        #[prost(string, tag = "4")]
        pub self_link: String,
        #[prost(string, tag = "5")]
        pub uid: String,
        #[prost(string, tag = "6")]
        pub resource_version: String,
        #[prost(int64, tag = "7")]
        pub generation: i64,
        #[prost(message, optional, tag = "8")]
        pub creation_timestamp: Option<crate::k8s_wire::Time>,
        #[prost(message, optional, tag = "9")]
        pub deletion_timestamp: Option<crate::k8s_wire::Time>,
        #[prost(int64, optional, tag = "10")]
        pub deletion_grace_period_seconds: Option<i64>,
        #[prost(btree_map = "string, string", tag = "11")]
        pub labels: BTreeMap<String, String>,
        #[prost(btree_map = "string, string", tag = "12")]
        pub annotations: BTreeMap<String, String>,
        #[prost(message, repeated, tag = "13")]
        pub owner_references: Vec<Owner>,
        #[prost(string, repeated, tag = "14")]
        pub finalizers: Vec<String>,
        #[prost(message, repeated, tag = "17")]
        pub managed_fields: Vec<Managed>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Owner {
        #[prost(string, tag = "1")]
        pub kind: String,
        #[prost(string, tag = "3")]
        pub name: String,
        #[prost(string, tag = "4")]
        pub uid: String,
        #[prost(string, tag = "5")]
        pub api_version: String,
        #[prost(bool, optional, tag = "6")]
        pub controller: Option<bool>,
        #[prost(bool, optional, tag = "7")]
        pub block_owner_deletion: Option<bool>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Managed {
        #[prost(string, tag = "1")]
        pub manager: String,
        #[prost(string, tag = "2")]
        pub operation: String,
        #[prost(string, tag = "3")]
        pub api_version: String,
        #[prost(message, optional, tag = "4")]
        pub time: Option<crate::k8s_wire::Time>,
        #[prost(string, tag = "6")]
        pub fields_type: String,
        #[prost(message, optional, tag = "7")]
        pub fields_v1: Option<FieldsV1>,
        #[prost(string, tag = "8")]
        pub subresource: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FieldsV1 {
        #[prost(bytes = "vec", tag = "1")]
        pub raw: Vec<u8>,
    }
}

#[cfg(test)]
mod partial_tests {
    use super::super::object::{ObjectMeta, parse_time};
    use super::full;
    use crate::k8s_wire::{Time, TypeMeta, open};
    use prost::Message as _;
    use serde_json::json;

    /// Every field of the stored metadata comes back from the protobuf answer; the strings
    /// are written even when empty, the fields in number order, and nothing follows the message.
    #[test]
    fn a_partial_answer_carries_all_the_metadata() {
        let meta = ObjectMeta {
            name: "abc".into(),
            generate_name: String::new(),
            namespace: "flyte".into(),
            uid: "u-1".into(),
            resource_version: "42".into(),
            generation: Some(3),
            creation_timestamp: parse_time("2026-01-02T03:04:05Z"),
            deletion_timestamp: parse_time("2026-01-03T00:00:00Z"),
            deletion_grace_period_seconds: Some(30),
            labels: [("b".into(), "2".into()), ("a".into(), "1".into())].into(),
            annotations: [("note".into(), String::new())].into(),
            owner_references: vec![json!({"apiVersion": "v1", "kind": "Pod", "name": "p",
                "uid": "u-2", "controller": true})],
            finalizers: vec!["keep".into()],
            managed_fields: vec![json!({"manager": "kubectl", "operation": "Apply",
                "apiVersion": "v1", "time": "2026-01-02T03:04:05Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {}}})],
        };
        let mut body = Vec::new();
        super::write_partial(&mut body, "meta.k8s.io/v1", &meta);
        let envelope = open(&body).unwrap();
        assert_eq!(
            envelope.type_meta,
            Some(TypeMeta {
                api_version: "meta.k8s.io/v1".into(),
                kind: "PartialObjectMetadata".into()
            })
        );
        assert!(
            body.ends_with(&[0x1a, 0, 0x22, 0]),
            "contentEncoding, contentType"
        );
        let got = full::Partial::decode(&envelope.raw[..])
            .unwrap()
            .metadata
            .unwrap();
        let time = |s| {
            Some(Time {
                seconds: parse_time(s).unwrap(),
                nanos: 0,
            })
        };
        let want = full::Meta {
            name: "abc".into(),
            generate_name: String::new(),
            namespace: "flyte".into(),
            self_link: String::new(),
            uid: "u-1".into(),
            resource_version: "42".into(),
            generation: 3,
            creation_timestamp: time("2026-01-02T03:04:05Z"),
            deletion_timestamp: time("2026-01-03T00:00:00Z"),
            deletion_grace_period_seconds: Some(30),
            labels: meta.labels.clone(),
            annotations: meta.annotations.clone(),
            owner_references: vec![full::Owner {
                kind: "Pod".into(),
                name: "p".into(),
                uid: "u-2".into(),
                api_version: "v1".into(),
                controller: Some(true),
                block_owner_deletion: None,
            }],
            finalizers: vec!["keep".into()],
            managed_fields: vec![full::Managed {
                manager: "kubectl".into(),
                operation: "Apply".into(),
                api_version: "v1".into(),
                time: time("2026-01-02T03:04:05Z"),
                fields_type: "FieldsV1".into(),
                fields_v1: Some(full::FieldsV1 {
                    raw: br#"{"f:data":{}}"#.to_vec(),
                }),
                subresource: String::new(),
            }],
        };
        assert_eq!(got, want);
        // Field numbers ascend through the metadata message (as the API server writes them),
        // and the empty strings are there: name 1, generateName 2, namespace 3, selfLink 4.
        let mut rest = &envelope.raw[..];
        let decode = prost::encoding::decode_varint;
        assert_eq!(
            decode(&mut rest).unwrap(),
            (1 << 3) | 2,
            "metadata, length-delimited"
        );
        assert_eq!(
            decode(&mut rest).unwrap() as usize,
            rest.len(),
            "metadata is all of it"
        );
        let mut tags = Vec::new();
        while !rest.is_empty() {
            let key = decode(&mut rest).unwrap();
            tags.push(key >> 3);
            match key & 7 {
                0 => {
                    decode(&mut rest).unwrap();
                }
                2 => {
                    let len = decode(&mut rest).unwrap() as usize;
                    rest = &rest[len..];
                }
                other => panic!("wire type {other}"),
            }
        }
        assert_eq!(
            tags,
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 11, 12, 13, 14, 17],
            "every field, in number order"
        );
    }

    /// An object without the optional fields: the always-written ones only, an unset creation
    /// time as an empty message.
    #[test]
    fn a_bare_object_writes_the_fields_the_api_server_always_writes() {
        let meta = ObjectMeta {
            name: "n".into(),
            ..Default::default()
        };
        let mut body = Vec::new();
        super::write_partial(&mut body, "meta.k8s.io/v1beta1", &meta);
        let envelope = open(&body).unwrap();
        assert_eq!(
            envelope.type_meta.unwrap().api_version,
            "meta.k8s.io/v1beta1"
        );
        let expected_meta: &[u8] = &[
            0x0a, 1, b'n', 0x12, 0, 0x1a, 0, 0x22, 0, 0x2a, 0, 0x32, 0, 0x38, 0, 0x42, 0,
        ];
        let mut expected = vec![0x0a, expected_meta.len() as u8];
        expected.extend_from_slice(expected_meta);
        assert_eq!(envelope.raw, expected);
    }
}
