//! Metadata-only answers: `PartialObjectMetadata` for a GET (and each watch event) and
//! `PartialObjectMetadataList` for a LIST, which a client that needs nothing but metadata asks for
//! in its Accept header (kube's `Api::get_metadata`/`list_metadata`, client-go's metadata client).
//! GetSecret reads a Secret this way, so the value never leaves the store. Which form a request
//! gets (or its 406) is decided in [`super::negotiate`].

use super::object::{ObjectMeta, write_meta};
use serde_json::{Map, Value};

/// Writes one object's `PartialObjectMetadata`.
pub fn write_object(out: &mut Vec<u8>, api_version: &str, meta: &ObjectMeta) {
    out.extend_from_slice(br#"{"kind":"PartialObjectMetadata","apiVersion":""#);
    out.extend_from_slice(api_version.as_bytes());
    out.extend_from_slice(br#"","metadata":"#);
    write_meta(out, meta);
    out.push(b'}');
}

/// Writes a `PartialObjectMetadataList` with the list's own metadata (resourceVersion,
/// continue, remainingItemCount) and one `PartialObjectMetadata` per item.
pub fn write_list<'a>(
    api_version: &str,
    list_meta: &Map<String, Value>,
    items: impl Iterator<Item = &'a ObjectMeta>,
) -> Vec<u8> {
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
    out
}
