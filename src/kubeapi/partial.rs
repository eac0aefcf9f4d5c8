//! Metadata-only answers: `PartialObjectMetadata` for a GET (and each watch event) and
//! `PartialObjectMetadataList` for a LIST, which a client that needs nothing but metadata asks for
//! in its Accept header (kube's `Api::get_metadata`/`list_metadata`, client-go's metadata client).
//! GetSecret reads a Secret this way, so the value never leaves the store. Which form a request
//! gets (or its 406) is decided in [`super::negotiate`].

use super::negotiate::MetaVersion;
use super::object::{ObjectMeta, encode_meta, write_meta};
use super::status::{Reply, json_bytes_reply};
use serde_json::{Map, Value, json};

/// Writes one object's `PartialObjectMetadata`.
pub fn write_object(out: &mut Vec<u8>, api_version: &str, meta: &ObjectMeta) {
    out.extend_from_slice(br#"{"kind":"PartialObjectMetadata","apiVersion":""#);
    out.extend_from_slice(api_version.as_bytes());
    out.extend_from_slice(br#"","metadata":"#);
    write_meta(out, meta);
    out.push(b'}');
}

/// One object's `PartialObjectMetadata` as a JSON value (a Table row's object, a watch event's).
pub fn value(version: MetaVersion, meta: &ObjectMeta) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": version.api_version(),
        "metadata": encode_meta(meta)})
}

/// The answer to a list asked as `PartialObjectMetadataList`: the list's own metadata
/// (resourceVersion, continue, remainingItemCount) and one `PartialObjectMetadata` per item.
pub fn list_reply<'a>(
    version: MetaVersion,
    list_meta: &Map<String, Value>,
    items: impl Iterator<Item = &'a ObjectMeta>,
) -> Reply {
    let api_version = version.api_version();
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(br#"{"kind":"PartialObjectMetadataList","apiVersion":""#);
    out.extend_from_slice(api_version.as_bytes());
    out.extend_from_slice(br#"","metadata":"#);
    serde_json::to_writer(&mut out, list_meta).expect("writing to a Vec cannot fail");
    out.extend_from_slice(br#","items":["#);
    for (n, meta) in items.enumerate() {
        if n > 0 {
            out.push(b',');
        }
        write_object(&mut out, api_version, meta);
    }
    out.extend_from_slice(b"]}");
    json_bytes_reply(200, out, "application/json")
}

/// A write's answer in the form negotiated for it: the API server transforms what a create,
/// update, patch or delete returns as it transforms a read, after the write is done. A Status
/// (a delete's) and errors pass unchanged; a Table is not made of a write's answer here (the full
/// object is written).
pub fn of_written(
    reply: super::status::Reply,
    representation: super::negotiate::Representation,
) -> Result<super::status::Reply, super::status::ApiError> {
    use super::negotiate::Representation;
    let transforms = matches!(
        representation,
        Representation::Partial(_) | Representation::Refused(_)
    );
    if !transforms || !reply.status().is_success() {
        return Ok(reply);
    }
    let (parts, body) = reply.into_parts();
    let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(&body) else {
        return Ok(super::status::Reply::from_parts(parts, body));
    };
    if !matches!(
        object.get("kind").and_then(Value::as_str),
        Some("Secret" | "Namespace")
    ) {
        return Ok(super::status::Reply::from_parts(parts, body));
    }
    match representation {
        Representation::Refused(refusal) => Err(refusal.error()),
        Representation::Partial(version) => {
            let mut out = Map::new();
            out.insert("kind".into(), "PartialObjectMetadata".into());
            out.insert("apiVersion".into(), version.api_version().into());
            out.insert(
                "metadata".into(),
                object.remove("metadata").unwrap_or_default(),
            );
            let mut bytes =
                serde_json::to_vec(&Value::Object(out)).expect("writing to a Vec cannot fail");
            bytes.push(b'\n');
            Ok(super::status::Reply::from_parts(
                parts,
                bytes::Bytes::from(bytes),
            ))
        }
        _ => unreachable!("only these two transform"),
    }
}
