//! The stored objects (Secret, Namespace) and their JSON forms: decoding request bodies the way
//! the API server does (stringData merged into data, type defaulted, system fields wiped by the
//! caller) and encoding responses in the server's field order.

use super::status::ApiError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::fmt;

/// Seconds since the Unix epoch; the API server keeps second precision only.
pub type Timestamp = i64;

pub fn format_time(t: Timestamp) -> String {
    let dt =
        time::OffsetDateTime::from_unix_timestamp(t).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    dt.format(&f).expect("formattable")
}

pub fn parse_time(s: &str) -> Option<Timestamp> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

#[derive(Clone, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    pub name: String,
    pub generate_name: String,
    pub namespace: String,
    pub uid: String,
    pub resource_version: String,
    pub generation: Option<i64>,
    pub creation_timestamp: Option<Timestamp>,
    pub deletion_timestamp: Option<Timestamp>,
    pub deletion_grace_period_seconds: Option<i64>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub owner_references: Vec<Value>,
    pub finalizers: Vec<String>,
    /// Server-side apply bookkeeping, kept as the JSON entries the server returns.
    pub managed_fields: Vec<Value>,
}

/// A core/v1 Secret as stored. `Debug` never shows data values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret {
    pub meta: ObjectMeta,
    pub immutable: Option<bool>,
    pub data: BTreeMap<String, Vec<u8>>,
    pub type_: String,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("namespace", &self.meta.namespace)
            .field("name", &self.meta.name)
            .field("resource_version", &self.meta.resource_version)
            .field("type", &self.type_)
            .field("data_keys", &self.data.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ObjectMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectMeta")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("resource_version", &self.resource_version)
            .finish_non_exhaustive()
    }
}

/// Extra facts a decoded body carries that are not part of the stored object.
#[derive(Debug, Default)]
pub struct Decoded {
    pub unknown_fields: Vec<String>,
}

fn cannot_handle(detail: impl fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "Secret in version \"v1\" cannot be handled as a Secret: {detail}"
    ))
}

fn go_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_error(v: &Value, field: &str, go_type: &str) -> ApiError {
    cannot_handle(format!(
        "json: cannot unmarshal {} into Go struct field {field} of type {go_type}",
        go_type_name(v)
    ))
}

fn opt_str(obj: &Map<String, Value>, key: &str, field: &str) -> Result<String, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(type_error(v, field, "string")),
    }
}

fn opt_i64(obj: &Map<String, Value>, key: &str, field: &str) -> Result<Option<i64>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| type_error(v, field, "int64")),
        Some(v) => Err(type_error(v, field, "int64")),
    }
}

fn string_map(
    obj: &Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<BTreeMap<String, String>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(type_error(other, field, "string")),
            })
            .collect(),
        Some(v) => Err(type_error(v, field, "map[string]string")),
    }
}

/// Go's base64 decoding of `[]byte` fields: standard alphabet, padding required, CR/LF ignored.
fn decode_base64(s: &str) -> Result<Vec<u8>, ApiError> {
    let cleaned: String;
    let input = if s.contains(['\r', '\n']) {
        cleaned = s.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        cleaned.as_str()
    } else {
        s
    };
    STANDARD.decode(input).map_err(|e| {
        let offset = match e {
            base64::DecodeError::InvalidByte(i, _)
            | base64::DecodeError::InvalidLastSymbol(i, _) => i,
            base64::DecodeError::InvalidLength(len) => len - len % 4,
            base64::DecodeError::InvalidPadding => input.find('=').unwrap_or(input.len()),
        };
        cannot_handle(format!("illegal base64 data at input byte {offset}"))
    })
}

const KNOWN_SECRET_FIELDS: &[&str] = &[
    "kind",
    "apiVersion",
    "metadata",
    "immutable",
    "data",
    "stringData",
    "type",
];
const KNOWN_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Decodes a Secret request body (JSON). `stringData` is merged into `data` (winning on equal
/// keys) and `type` defaults to `Opaque`, as the server does while decoding, before validation.
pub fn decode_secret(body: &[u8]) -> Result<(Secret, Decoded), ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type Secret): couldn't get version/kind; json parse error: {e}"
        ))
    })?;
    let Value::Object(obj) = value else {
        return Err(ApiError::bad_request(
            "the object provided is unrecognized (must be of type Secret): couldn't get version/kind; json parse error: not an object",
        ));
    };
    // The request's kind is the decoding default, as kube-apiserver's create and update handlers
    // decode with the URL's GroupVersionKind: a body without `kind`/`apiVersion` is a v1 Secret.
    let mut kind = opt_str(&obj, "kind", "Secret.kind")?;
    let mut api_version = opt_str(&obj, "apiVersion", "Secret.apiVersion")?;
    if kind.is_empty() {
        kind = "Secret".to_owned();
    }
    if api_version.is_empty() {
        api_version = "v1".to_owned();
    }
    if kind != "Secret" || api_version != "v1" {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{api_version}\" cannot be handled as a Secret: no kind \"{kind}\" is registered for version \"{api_version}\""
        )));
    }
    let mut decoded = Decoded::default();
    for key in obj.keys() {
        if !KNOWN_SECRET_FIELDS.contains(&key.as_str()) {
            decoded.unknown_fields.push(key.clone());
        }
    }
    let meta = match obj.get("metadata") {
        None | Some(Value::Null) => ObjectMeta::default(),
        Some(Value::Object(m)) => {
            for key in m.keys() {
                if !KNOWN_META_FIELDS.contains(&key.as_str()) {
                    decoded.unknown_fields.push(format!("metadata.{key}"));
                }
            }
            if let Some(Value::Array(owners)) = m.get("ownerReferences") {
                for (i, owner) in owners.iter().enumerate() {
                    for key in owner.as_object().into_iter().flat_map(|o| o.keys()) {
                        if !OWNER_REFERENCE_FIELDS.contains(&key.as_str()) {
                            decoded
                                .unknown_fields
                                .push(format!("metadata.ownerReferences[{i}].{key}"));
                        }
                    }
                }
            }
            decode_meta(m)?
        }
        Some(v) => return Err(type_error(v, "Secret.metadata", "v1.ObjectMeta")),
    };
    let immutable = match obj.get("immutable") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(v) => return Err(type_error(v, "Secret.immutable", "bool")),
    };
    let mut data = BTreeMap::new();
    match obj.get("data") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                match v {
                    Value::String(s) => {
                        data.insert(k.clone(), decode_base64(s)?);
                    }
                    Value::Null => {
                        data.insert(k.clone(), Vec::new());
                    }
                    other => return Err(type_error(other, "Secret.data", "[]uint8")),
                }
            }
        }
        Some(v) => return Err(type_error(v, "Secret.data", "map[string][]uint8")),
    }
    for (k, v) in string_map(&obj, "stringData", "Secret.stringData")? {
        data.insert(k, v.into_bytes());
    }
    let mut type_ = opt_str(&obj, "type", "Secret.type")?;
    if type_.is_empty() {
        type_ = "Opaque".to_owned();
    }
    Ok((
        Secret {
            meta,
            immutable,
            data,
            type_,
        },
        decoded,
    ))
}

fn decode_meta(m: &Map<String, Value>) -> Result<ObjectMeta, ApiError> {
    let time_field = |key: &str| -> Result<Option<Timestamp>, ApiError> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => parse_time(s)
                .map(Some)
                .ok_or_else(|| cannot_handle(format!("parsing time {s:?} as RFC 3339"))),
            Some(v) => Err(type_error(v, &format!("ObjectMeta.{key}"), "v1.Time")),
        }
    };
    let finalizers = match m.get("finalizers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(type_error(other, "ObjectMeta.finalizers", "string")),
            })
            .collect::<Result<_, _>>()?,
        Some(v) => Err(type_error(v, "ObjectMeta.finalizers", "[]string"))?,
    };
    let owner_references = match m.get("ownerReferences") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.iter().map(owner_reference).collect::<Result<_, _>>()?,
        Some(v) => Err(type_error(
            v,
            "ObjectMeta.ownerReferences",
            "[]v1.OwnerReference",
        ))?,
    };
    let managed_fields = match m.get("managedFields") {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    Ok(ObjectMeta {
        name: opt_str(m, "name", "ObjectMeta.name")?,
        generate_name: opt_str(m, "generateName", "ObjectMeta.generateName")?,
        namespace: opt_str(m, "namespace", "ObjectMeta.namespace")?,
        uid: opt_str(m, "uid", "ObjectMeta.uid")?,
        resource_version: opt_str(m, "resourceVersion", "ObjectMeta.resourceVersion")?,
        generation: opt_i64(m, "generation", "ObjectMeta.generation")?,
        creation_timestamp: time_field("creationTimestamp")?,
        deletion_timestamp: time_field("deletionTimestamp")?,
        deletion_grace_period_seconds: opt_i64(
            m,
            "deletionGracePeriodSeconds",
            "ObjectMeta.deletionGracePeriodSeconds",
        )?,
        labels: string_map(m, "labels", "ObjectMeta.labels")?,
        annotations: string_map(m, "annotations", "ObjectMeta.annotations")?,
        owner_references,
        finalizers,
        managed_fields,
    })
}

/// The fields of a `v1.OwnerReference`, in the server's order.
const OWNER_REFERENCE_FIELDS: [&str; 6] = [
    "apiVersion",
    "kind",
    "name",
    "uid",
    "controller",
    "blockOwnerDeletion",
];

/// One owner reference, typed as the API server decodes it (`v1.OwnerReference`) and kept with
/// its known fields only, in the server's order. Stored as sent, a malformed one would make
/// every typed client's read of the object (and of any list holding it) fail to decode. A
/// `null` entry is an empty reference, as Go's decoder leaves it (validation then refuses it).
fn owner_reference(v: &Value) -> Result<Value, ApiError> {
    if v.is_null() {
        return owner_reference(&Value::Object(Map::new()));
    }
    let Value::Object(o) = v else {
        return Err(type_error(
            v,
            "ObjectMeta.ownerReferences",
            "v1.OwnerReference",
        ));
    };
    let mut out = Map::new();
    for &key in &OWNER_REFERENCE_FIELDS[..4] {
        let text = opt_str(o, key, &format!("OwnerReference.{key}"))?;
        out.insert(key.into(), Value::String(text));
    }
    for &key in &OWNER_REFERENCE_FIELDS[4..] {
        match o.get(key) {
            None | Some(Value::Null) => {}
            Some(b @ Value::Bool(_)) => {
                out.insert(key.into(), b.clone());
            }
            Some(other) => {
                return Err(type_error(other, &format!("OwnerReference.{key}"), "bool"));
            }
        }
    }
    Ok(Value::Object(out))
}

pub fn encode_meta(meta: &ObjectMeta) -> Value {
    let mut m = Map::new();
    let mut put_str = |k: &str, v: &str| {
        if !v.is_empty() {
            m.insert(k.into(), json!(v));
        }
    };
    put_str("name", &meta.name);
    put_str("generateName", &meta.generate_name);
    put_str("namespace", &meta.namespace);
    put_str("uid", &meta.uid);
    put_str("resourceVersion", &meta.resource_version);
    if let Some(g) = meta.generation {
        m.insert("generation".into(), json!(g));
    }
    if let Some(t) = meta.creation_timestamp {
        m.insert("creationTimestamp".into(), json!(format_time(t)));
    }
    if let Some(t) = meta.deletion_timestamp {
        m.insert("deletionTimestamp".into(), json!(format_time(t)));
    }
    if let Some(g) = meta.deletion_grace_period_seconds {
        m.insert("deletionGracePeriodSeconds".into(), json!(g));
    }
    if !meta.labels.is_empty() {
        m.insert("labels".into(), json!(meta.labels));
    }
    if !meta.annotations.is_empty() {
        m.insert("annotations".into(), json!(meta.annotations));
    }
    if !meta.owner_references.is_empty() {
        m.insert("ownerReferences".into(), json!(meta.owner_references));
    }
    if !meta.finalizers.is_empty() {
        m.insert("finalizers".into(), json!(meta.finalizers));
    }
    if !meta.managed_fields.is_empty() {
        m.insert("managedFields".into(), json!(meta.managed_fields));
    }
    Value::Object(m)
}

/// The JSON of a Secret; `top_level` adds `kind`/`apiVersion` (list items go without).
pub fn encode_secret(s: &Secret, top_level: bool) -> Value {
    let mut m = Map::new();
    if top_level {
        m.insert("kind".into(), json!("Secret"));
        m.insert("apiVersion".into(), json!("v1"));
    }
    m.insert("metadata".into(), encode_meta(&s.meta));
    if let Some(i) = s.immutable {
        m.insert("immutable".into(), json!(i));
    }
    if !s.data.is_empty() {
        let data: Map<String, Value> = s
            .data
            .iter()
            .map(|(k, v)| (k.clone(), json!(STANDARD.encode(v))))
            .collect();
        m.insert("data".into(), Value::Object(data));
    }
    if !s.type_.is_empty() {
        m.insert("type".into(), json!(s.type_));
    }
    Value::Object(m)
}

/// Writes the JSON of a Secret: byte for byte what serializing [`encode_secret`]'s value gives
/// (the same field order, escaping and number forms), without building the value tree. The GET
/// path, which every GetSecret and the kube-api face's GET take, uses this.
pub fn write_secret(out: &mut Vec<u8>, s: &Secret, top_level: bool) {
    out.push(b'{');
    if top_level {
        out.extend_from_slice(br#""kind":"Secret","apiVersion":"v1","#);
    }
    out.extend_from_slice(br#""metadata":"#);
    write_meta(out, &s.meta);
    if let Some(i) = s.immutable {
        out.extend_from_slice(if i {
            br#","immutable":true"#
        } else {
            br#","immutable":false"#
        });
    }
    if !s.data.is_empty() {
        out.extend_from_slice(br#","data":{"#);
        for (n, (k, v)) in s.data.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            write_json(out, k);
            out.extend_from_slice(b":\"");
            // The standard alphabet and padding need no JSON escaping.
            let start = out.len();
            out.resize(start + base64::encoded_len(v.len(), true).expect("fits"), 0);
            let written = STANDARD
                .encode_slice(v, &mut out[start..])
                .expect("sized to fit");
            out.truncate(start + written);
            out.push(b'"');
        }
        out.push(b'}');
    }
    if !s.type_.is_empty() {
        out.extend_from_slice(br#","type":"#);
        write_json(out, &s.type_);
    }
    out.push(b'}');
}

/// Serializes any value the way `serde_json` serializes it inside a `Value` tree.
fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    serde_json::to_writer(&mut *out, v).expect("strings, maps and JSON values serialize");
}

/// [`encode_meta`]'s JSON, written directly.
pub(super) fn write_meta(out: &mut Vec<u8>, meta: &ObjectMeta) {
    let mut first = true;
    let mut key = |out: &mut Vec<u8>, k: &str| {
        out.extend_from_slice(if first { b"{\"" } else { b",\"" });
        first = false;
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"\":");
    };
    for (k, v) in [
        ("name", &meta.name),
        ("generateName", &meta.generate_name),
        ("namespace", &meta.namespace),
        ("uid", &meta.uid),
        ("resourceVersion", &meta.resource_version),
    ] {
        if !v.is_empty() {
            key(out, k);
            write_json(out, v);
        }
    }
    if let Some(g) = meta.generation {
        key(out, "generation");
        write_json(out, &g);
    }
    if let Some(t) = meta.creation_timestamp {
        key(out, "creationTimestamp");
        write_json(out, &format_time(t));
    }
    if let Some(t) = meta.deletion_timestamp {
        key(out, "deletionTimestamp");
        write_json(out, &format_time(t));
    }
    if let Some(g) = meta.deletion_grace_period_seconds {
        key(out, "deletionGracePeriodSeconds");
        write_json(out, &g);
    }
    if !meta.labels.is_empty() {
        key(out, "labels");
        write_json(out, &meta.labels);
    }
    if !meta.annotations.is_empty() {
        key(out, "annotations");
        write_json(out, &meta.annotations);
    }
    if !meta.owner_references.is_empty() {
        key(out, "ownerReferences");
        write_json(out, &meta.owner_references);
    }
    if !meta.finalizers.is_empty() {
        key(out, "finalizers");
        write_json(out, &meta.finalizers);
    }
    if !meta.managed_fields.is_empty() {
        key(out, "managedFields");
        write_json(out, &meta.managed_fields);
    }
    if first {
        out.push(b'{');
    }
    out.push(b'}');
}

/// Where a Namespace is in its lifecycle. `Gone` is a tombstone: the store keeps the record (it
/// has no namespace removal), and every reader treats it as absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Phase {
    #[default]
    Active,
    Terminating,
    Gone,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Active => "Active",
            Phase::Terminating => "Terminating",
            Phase::Gone => "Gone",
        }
    }
}

/// A Namespace: metadata and lifecycle phase (spec.finalizers is always `kubernetes` until gone).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Namespace {
    pub meta: ObjectMeta,
    pub phase: Phase,
}

pub fn encode_namespace(ns: &Namespace, top_level: bool) -> Value {
    let mut m = Map::new();
    if top_level {
        m.insert("kind".into(), json!("Namespace"));
        m.insert("apiVersion".into(), json!("v1"));
    }
    m.insert("metadata".into(), encode_meta(&ns.meta));
    let finalizers: &[&str] = if ns.phase == Phase::Gone {
        &[]
    } else {
        &["kubernetes"]
    };
    m.insert("spec".into(), json!({"finalizers": finalizers}));
    m.insert("status".into(), json!({"phase": ns.phase.as_str()}));
    Value::Object(m)
}

fn cannot_handle_namespace(detail: impl fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "Namespace in version \"v1\" cannot be handled as a Namespace: {detail}"
    ))
}

/// Decodes a Namespace body; like Secrets, a missing `kind`/`apiVersion` defaults to v1 Namespace.
pub fn decode_namespace(body: &[u8]) -> Result<Namespace, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type Namespace): couldn't get version/kind; json parse error: {e}"
        ))
    })?;
    let Value::Object(obj) = value else {
        return Err(ApiError::bad_request(
            "the object provided is unrecognized (must be of type Namespace): couldn't get version/kind; json parse error: not an object",
        ));
    };
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let (kind, api_version) = (
        if kind.is_empty() { "Namespace" } else { kind },
        if api_version.is_empty() {
            "v1"
        } else {
            api_version
        },
    );
    if kind != "Namespace" || api_version != "v1" {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{api_version}\" cannot be handled as a Namespace: no kind \"{kind}\" is registered for version \"{api_version}\""
        )));
    }
    let meta = match obj.get("metadata") {
        None | Some(Value::Null) => ObjectMeta::default(),
        Some(Value::Object(m)) => decode_meta(m).map_err(|e| {
            cannot_handle_namespace(
                e.message
                    .trim_start_matches("Secret in version \"v1\" cannot be handled as a Secret: "),
            )
        })?,
        Some(v) => {
            return Err(cannot_handle_namespace(format!(
                "json: cannot unmarshal {} into Go struct field Namespace.metadata of type v1.ObjectMeta",
                go_type_name(v)
            )));
        }
    };
    let phase = match obj
        .get("status")
        .and_then(|s| s.get("phase"))
        .and_then(Value::as_str)
    {
        Some("Terminating") => Phase::Terminating,
        Some("Gone") => Phase::Gone,
        _ => Phase::Active,
    };
    Ok(Namespace { meta, phase })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_data_wins_and_type_defaults() {
        let body = br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s3"},"data":{"u":"eA=="},"stringData":{"u":"admin","v":"x"}}"#;
        let (s, _) = decode_secret(body).unwrap();
        assert_eq!(s.type_, "Opaque");
        assert_eq!(s.data["u"], b"admin");
        assert_eq!(s.data["v"], b"x");
        let json = encode_secret(&s, true);
        assert_eq!(json["data"], json!({"u": "YWRtaW4=", "v": "eA=="}));
        assert!(json.get("stringData").is_none());
    }

    /// The direct writer gives exactly the bytes of the value tree, for every field and for
    /// strings that need escaping.
    #[test]
    fn write_secret_matches_the_value_tree_byte_for_byte() {
        let mut full = Secret {
            meta: ObjectMeta {
                name: "n\"ame\u{1}\u{e9}\u{2028}".into(),
                generate_name: "gen-".into(),
                namespace: "ns".into(),
                uid: "u-1".into(),
                resource_version: "42".into(),
                generation: Some(-3),
                creation_timestamp: Some(1_700_000_000),
                deletion_timestamp: Some(1_700_000_100),
                deletion_grace_period_seconds: Some(0),
                labels: BTreeMap::from([("b".into(), "2".into()), ("a/x".into(), "\\1".into())]),
                annotations: BTreeMap::from([("note".into(), "line\nbreak\t<&>".into())]),
                owner_references: vec![
                    json!({"kind": "X", "name": "o", "uid": "1", "controller": true}),
                ],
                finalizers: vec!["f/one".into(), "two".into()],
                managed_fields: vec![
                    json!({"manager": "m", "fieldsV1": {"f:data": {".": {}}}, "time": "t"}),
                ],
            },
            immutable: Some(false),
            data: BTreeMap::from([
                ("k".into(), b"v".to_vec()),
                ("empty".into(), Vec::new()),
                ("bin".into(), vec![0, 255, 128, 10]),
            ]),
            type_: "kubernetes.io/\"odd\"".into(),
        };
        let mut cases = vec![full.clone(), Secret::default()];
        full.immutable = Some(true);
        full.data.clear();
        cases.push(full.clone());
        full.meta = ObjectMeta::default();
        full.type_ = String::new();
        cases.push(full);
        cases.push(Secret {
            meta: ObjectMeta {
                labels: BTreeMap::from([("only".into(), "label".into())]),
                ..Default::default()
            },
            ..Default::default()
        });
        for s in &cases {
            for top_level in [true, false] {
                let mut written = Vec::new();
                write_secret(&mut written, s, top_level);
                let tree = serde_json::to_vec(&encode_secret(s, top_level)).unwrap();
                assert_eq!(
                    String::from_utf8(written).unwrap(),
                    String::from_utf8(tree).unwrap()
                );
            }
        }
    }

    #[test]
    fn unpadded_base64_is_a_bad_request() {
        let body =
            br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"},"data":{"k":"dg"}}"#;
        let err = decode_secret(body).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(err.message.starts_with("Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte"), "{}", err.message);
    }

    /// Owner references are typed as `v1.OwnerReference` and kept with their known fields:
    /// stored as sent, a malformed one would break every typed client's reads of the object.
    #[test]
    fn owner_references_are_typed_and_kept_with_known_fields_only() {
        let decode = |refs: &str| {
            let body = format!(
                r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"x","ownerReferences":{refs}}}}}"#
            );
            decode_secret(body.as_bytes()).map(|(s, _)| s.meta.owner_references)
        };
        let kept = decode(
            r#"[{"uid":"u","name":"p","kind":"Pod","apiVersion":"v1","controller":true,"extra":{"a":1},"blockOwnerDeletion":null}]"#,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&kept).unwrap(),
            r#"[{"apiVersion":"v1","kind":"Pod","name":"p","uid":"u","controller":true}]"#
        );
        assert_eq!(decode("null").unwrap(), Vec::<Value>::new());
        assert_eq!(
            serde_json::to_string(&decode("[null]").unwrap()).unwrap(),
            r#"[{"apiVersion":"","kind":"","name":"","uid":""}]"#
        );
        let body = br#"{"metadata":{"name":"x","ownerReferences":[{"kind":"Pod","color":"red"}]}}"#;
        assert_eq!(
            decode_secret(body).unwrap().1.unknown_fields,
            ["metadata.ownerReferences[0].color"]
        );
        for (refs, detail) in [
            (
                "[1]",
                "cannot unmarshal number into Go struct field ObjectMeta.ownerReferences of type v1.OwnerReference",
            ),
            (
                r#""p""#,
                "cannot unmarshal string into Go struct field ObjectMeta.ownerReferences of type []v1.OwnerReference",
            ),
            (
                r#"[{"name":7}]"#,
                "cannot unmarshal number into Go struct field OwnerReference.name of type string",
            ),
            (
                r#"[{"controller":"yes"}]"#,
                "cannot unmarshal string into Go struct field OwnerReference.controller of type bool",
            ),
        ] {
            let err = decode(refs).unwrap_err();
            assert_eq!(err.code, 400, "{refs}");
            assert!(err.message.ends_with(detail), "{refs}: {}", err.message);
        }
    }

    #[test]
    fn debug_never_shows_values() {
        let body = br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"},"stringData":{"k":"hunter2"}}"#;
        let (s, _) = decode_secret(body).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn kind_and_api_version_default_from_the_url() {
        let (s, _) = decode_secret(br#"{"metadata":{"name":"x"}}"#).unwrap();
        assert_eq!(s.meta.name, "x");
        let err = decode_secret(br#"{"kind":"ConfigMap","metadata":{"name":"x"}}"#).unwrap_err();
        assert_eq!(
            err.message,
            "ConfigMap in version \"v1\" cannot be handled as a Secret: no kind \"ConfigMap\" is registered for version \"v1\""
        );
        let ns = decode_namespace(br#"{"metadata":{"name":"team"}}"#).unwrap();
        assert_eq!((ns.meta.name.as_str(), ns.phase), ("team", Phase::Active));
    }

    #[test]
    fn times_have_second_precision() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_time("2025-05-01T12:00:00.5Z"), Some(1746100800));
    }
}
