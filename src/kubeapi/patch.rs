//! PATCH bodies applied to an object's JSON form, as kube-apiserver's patch handler does
//! (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go): RFC 7386 merge patches and
//! RFC 6902 JSON patches through the `json-patch` crate, and strategic merge patches for the
//! fields a Secret or Namespace has (maps merge; `$patch`, `$retainKeys`,
//! `$deleteFromPrimitiveList` and `$setElementOrder` directives; `metadata.finalizers` merges as
//! a set, as its `patchStrategy:"merge"` says). Server-side apply lives in `apply.rs`.

use super::status::ApiError;
use serde_json::{Map, Value};

pub const JSON_PATCH: &str = "application/json-patch+json";
pub const MERGE_PATCH: &str = "application/merge-patch+json";
pub const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";
pub const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// The patch types a PATCH may carry, in the order the server lists them.
pub const SUPPORTED: [&str; 4] = [JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH];

/// The limit on operations in one JSON patch (`maxJSONPatchOperations`).
const MAX_JSON_PATCH_OPERATIONS: usize = 10000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

/// The patch type from the Content-Type (parameters dropped); 415 with the accepted list if none.
pub fn patch_type(content_type: Option<&str>) -> Result<PatchType, ApiError> {
    let base = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .unwrap_or("");
    match base {
        JSON_PATCH => Ok(PatchType::Json),
        MERGE_PATCH => Ok(PatchType::Merge),
        STRATEGIC_MERGE_PATCH => Ok(PatchType::Strategic),
        APPLY_PATCH => Ok(PatchType::Apply),
        _ => Err(ApiError::unsupported_media_type_of(&SUPPORTED)),
    }
}

/// The patch as JSON: apply patches are YAML (JSON is YAML too); the others must be valid JSON
/// (`validateAndTranscodePatch`).
pub fn transcode(patch_type: PatchType, body: &[u8]) -> Result<Value, ApiError> {
    match patch_type {
        PatchType::Apply => serde_yaml::from_slice::<Value>(body)
            .map_err(|e| ApiError::bad_request(format!("error encoding patch: {e}"))),
        _ => serde_json::from_slice::<Value>(body)
            .map_err(|_| ApiError::bad_request("invalid JSON patch")),
    }
}

/// A failed JSON patch operation: kube-apiserver answers a generic 422 whose message does not
/// carry the patch library's text (`NewGenericServerResponse(422, ...)` in apimachinery's
/// pkg/api/errors/errors.go).
fn rejected() -> ApiError {
    ApiError::generic_invalid("the server rejected our request due to an error in our request")
}

/// Applies a non-apply patch to `doc` (the object's JSON).
pub fn apply_patch(patch_type: PatchType, doc: &mut Value, patch: &Value) -> Result<(), ApiError> {
    match patch_type {
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            if ops.0.len() > MAX_JSON_PATCH_OPERATIONS {
                return Err(ApiError::too_large_with(format!(
                    "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
                    ops.0.len()
                )));
            }
            json_patch::patch(doc, &ops).map_err(|_| rejected())
        }
        PatchType::Merge => {
            if !patch.is_object() {
                // A merge patch that is not an object replaces the document, which then is no
                // object of the kind.
                *doc = patch.clone();
                return Ok(());
            }
            json_patch::merge(doc, patch);
            Ok(())
        }
        PatchType::Strategic => {
            let Value::Object(p) = patch else {
                return Err(ApiError::bad_request(
                    "unable to unmarshal patch: the patch is not a JSON object",
                ));
            };
            strategic_merge(doc, p, "")
        }
        PatchType::Apply => unreachable!("apply patches are handled by server-side apply"),
    }
}

/// Lists merged as sets under a strategic merge patch (`patchStrategy:"merge"` on primitives).
fn merges_as_set(path: &str) -> bool {
    path == "/metadata/finalizers"
}

fn strategic_merge(
    target: &mut Value,
    patch: &Map<String, Value>,
    path: &str,
) -> Result<(), ApiError> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replacement = patch.clone();
            replacement.remove("$patch");
            *target = Value::Object(replacement);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown patch type: {other:?} in map: {}",
                Value::Object(patch.clone())
            )));
        }
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let obj = target.as_object_mut().expect("made an object");
    let retain: Option<Vec<String>> = match patch.get("$retainKeys") {
        None => None,
        Some(Value::Array(keys)) => Some(
            keys.iter()
                .map(|k| {
                    k.as_str().map(str::to_owned).ok_or_else(|| {
                        ApiError::bad_request("$retainKeys should be a list of strings")
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(_) => return Err(ApiError::bad_request("$retainKeys should be a list")),
    };
    for (k, v) in patch {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let drop: Vec<Value> = v.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(list)) = obj.get_mut(field) {
                list.retain(|x| !drop.contains(x));
            }
            continue;
        }
        let child = format!("{path}/{k}");
        match v {
            Value::Null => {
                obj.remove(k);
            }
            Value::Object(p) => {
                let slot = obj.entry(k.clone()).or_insert(Value::Null);
                strategic_merge(slot, p, &child)?;
            }
            Value::Array(items) if merges_as_set(&child) => {
                let slot = obj
                    .entry(k.clone())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(list) = slot {
                    for item in items {
                        if !list.contains(item) {
                            list.push(item.clone());
                        }
                    }
                } else {
                    *slot = v.clone();
                }
            }
            _ => {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
    if let Some(keep) = retain {
        obj.retain(|k, _| keep.contains(k));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_of_secret_maps_and_directives() {
        let mut doc = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x"]}, "data": {"k": "dg==", "j": "eA=="}});
        let patch = json!({"metadata": {"labels": {"a": null, "c": "3"}, "finalizers": ["y", "x"]}, "data": {"$patch": "replace", "n": "bg=="}});
        apply_patch(PatchType::Strategic, &mut doc, &patch).unwrap();
        assert_eq!(doc["metadata"]["labels"], json!({"b": "2", "c": "3"}));
        assert_eq!(doc["metadata"]["finalizers"], json!(["x", "y"]));
        assert_eq!(doc["data"], json!({"n": "bg=="}));
        let patch = json!({"data": {"$retainKeys": ["n"], "m": "bQ=="}, "metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}});
        apply_patch(PatchType::Strategic, &mut doc, &patch).unwrap();
        assert_eq!(doc["data"], json!({"n": "bg=="}));
        assert_eq!(doc["metadata"]["finalizers"], json!(["y"]));
        let bad = json!({"data": {"$patch": "sideways"}});
        assert_eq!(
            apply_patch(PatchType::Strategic, &mut doc, &bad)
                .unwrap_err()
                .code,
            400
        );
    }

    #[test]
    fn json_patch_test_failure_is_the_generic_422() {
        let mut doc = json!({"data": {"k": "dg=="}});
        let patch = json!([{"op": "test", "path": "/data/k", "value": "eA=="}, {"op": "remove", "path": "/data/k"}]);
        let err = apply_patch(PatchType::Json, &mut doc, &patch).unwrap_err();
        assert_eq!((err.code, err.reason), (422, Some("Invalid")));
        assert_eq!(doc["data"]["k"], "dg==");
    }
}
