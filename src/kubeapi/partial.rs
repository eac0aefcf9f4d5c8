//! Metadata-only answers: `PartialObjectMetadata` for a GET and `PartialObjectMetadataList` for
//! a LIST, which a client that needs nothing but metadata asks for in its Accept header (kube's
//! `Api::get_metadata`/`list_metadata`, client-go's metadata client). GetSecret reads a Secret
//! this way, so the value never leaves the store. Asking for the single form on a list, or the
//! list form on a single object, is refused with 406 as the API server does.

use super::object::{ObjectMeta, write_meta};
use super::status::ApiError;
use serde_json::{Map, Value};

/// The metadata-only form a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// `PartialObjectMetadataList` rather than `PartialObjectMetadata`.
    pub list: bool,
    /// `meta.k8s.io/v1` or `meta.k8s.io/v1beta1`, as asked.
    pub api_version: &'static str,
}

/// The metadata-only form `accept` asks for, if any: media types are tried in order and the
/// first one this server can produce decides (it writes JSON only, so client-go's metadata
/// client, which lists `application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;…` first,
/// gets the JSON form it lists next). The form is
/// `application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1` (or `v1beta1`, the
/// parameters in any order); plain JSON, `*/*` or a Table decide for the full object.
pub fn wanted(accept: Option<&str>) -> Option<Wanted> {
    for media in accept?.split(',') {
        let mut parts = media.split(';');
        let essence = parts.next().unwrap_or_default().trim();
        if !["application/json", "*/*", "application/*", ""]
            .iter()
            .any(|t| essence.eq_ignore_ascii_case(t))
        {
            continue; // protobuf, YAML, ...: not produced here
        }
        let (mut kind, mut group, mut version) = (None, None, None);
        for param in parts {
            match param.trim().split_once('=') {
                Some(("as", v)) => kind = Some(v),
                Some(("g", v)) => group = Some(v),
                Some(("v", v)) => version = Some(v),
                _ => {}
            }
        }
        let Some(kind) = kind else {
            return None; // the full object
        };
        let api_version = match (group, version) {
            (Some("meta.k8s.io"), Some("v1")) => "meta.k8s.io/v1",
            (Some("meta.k8s.io"), Some("v1beta1")) => "meta.k8s.io/v1beta1",
            _ => continue,
        };
        return match kind {
            "PartialObjectMetadata" => Some(Wanted {
                list: false,
                api_version,
            }),
            "PartialObjectMetadataList" => Some(Wanted {
                list: true,
                api_version,
            }),
            _ => None, // a Table, answered before this is asked
        };
    }
    None
}

/// The list form asked of a single object; `go_type` is how the API server names the object's
/// type in the message (`*core.Secret`).
pub fn list_of_one(go_type: &str) -> ApiError {
    ApiError::not_acceptable_because(format!(
        "you requested PartialObjectMetadataList, but the requested object is not a list ({go_type})"
    ))
}

/// The single form asked of a list (`*core.SecretList`).
pub fn one_of_list(go_type: &str) -> ApiError {
    ApiError::not_acceptable_because(format!(
        "you requested PartialObjectMetadata, but the requested object is a list ({go_type})"
    ))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_producible_media_type_decides() {
        let one = Some(Wanted {
            list: false,
            api_version: "meta.k8s.io/v1",
        });
        assert_eq!(
            wanted(Some(
                "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
            )),
            one
        );
        assert_eq!(
            wanted(Some(
                "application/json; v=v1; as=PartialObjectMetadata; g=meta.k8s.io"
            )),
            one
        );
        assert_eq!(
            wanted(Some(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1beta1"
            )),
            Some(Wanted {
                list: true,
                api_version: "meta.k8s.io/v1beta1"
            })
        );
        // client-go's metadata client: protobuf first, which this server does not write.
        assert_eq!(
            wanted(Some(
                "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
            )),
            one
        );
        // A form of another group or version is skipped for the next one.
        assert_eq!(
            wanted(Some(
                "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v2,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
            )),
            one
        );
        for not_metadata in [
            None,
            Some("application/json"),
            Some("*/*"),
            Some("application/json;as=Table;g=meta.k8s.io;v=v1"),
            Some("application/json;as=PartialObjectMetadata;g=apps;v=v1"),
            Some("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v2"),
            Some("application/json;as=PartialObjectMetadata;v=v1"),
            Some("application/yaml;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"),
            Some("application/json,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"),
        ] {
            assert_eq!(wanted(not_metadata), None, "{not_metadata:?}");
        }
    }
}
