//! [`SecretHead`]: what GetSecret reads of a stored Secret. The service interprets two labels
//! and the creation time, nothing else, so it asks the API server for the object's metadata
//! alone (`PartialObjectMetadata`, like client-go's metadata client: the value never leaves the
//! API server), in protobuf or JSON as the server answers, and keeps only those three fields:
//! the rest of the JSON is skipped without allocating for it.

use super::image_pull::{LABEL_SECRET_TYPE, LABEL_SYSTEM};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ObjectMeta;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// A stored Secret's metadata as far as the service reads it: `creationTimestamp` and the
/// labels it interprets (every other field and label is dropped while decoding).
#[derive(Clone, Debug, Default)]
pub struct SecretHead {
    metadata: ObjectMeta,
}

impl kube::Resource for SecretHead {
    type DynamicType = ();
    type Scope = <Secret as kube::Resource>::Scope;

    fn metadata_api() -> bool {
        true
    }
    fn kind(dt: &()) -> Cow<'_, str> {
        Secret::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        Secret::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        Secret::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        Secret::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[derive(Deserialize)]
struct Wire {
    #[serde(default)]
    metadata: WireMeta,
}

#[derive(Default, Deserialize)]
struct WireMeta {
    #[serde(rename = "creationTimestamp", default)]
    creation_timestamp: Option<Time>,
    #[serde(default)]
    labels: Option<InterpretedLabels>,
}

impl<'de> Deserialize<'de> for SecretHead {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = Wire::deserialize(d)?;
        Ok(SecretHead {
            metadata: ObjectMeta {
                creation_timestamp: wire.metadata.creation_timestamp,
                labels: wire.metadata.labels.map(|l| l.0),
                ..ObjectMeta::default()
            },
        })
    }
}

impl SecretHead {
    /// A `PartialObjectMetadata` answer in protobuf (`application/vnd.kubernetes.protobuf`),
    /// read in place: only the creation time and the interpreted labels are copied out. An
    /// empty `Time` message is how Go writes an unset one.
    pub fn from_protobuf(body: &[u8]) -> Result<SecretHead, String> {
        use crate::k8s_wire::{Field, fields, map_entry, raw_of, time_seconds};
        let mut created = None;
        let mut labels = BTreeMap::new();
        for field in fields(raw_of(body)?) {
            let (1, Field::Bytes(meta)) = field? else {
                continue;
            };
            for field in fields(meta) {
                match field? {
                    (8, Field::Bytes(time)) => created = time_seconds(time)?,
                    (11, Field::Bytes(entry)) => {
                        let (key, value) = map_entry(entry)?;
                        if let Some(key) = interpreted(key) {
                            let value = std::str::from_utf8(value)
                                .map_err(|e| format!("label {key}: {e}"))?;
                            labels.insert(key.to_owned(), value.to_owned());
                        }
                    }
                    _ => {}
                }
            }
        }
        let creation_timestamp = created
            .map(|seconds| {
                k8s_openapi::jiff::Timestamp::from_second(seconds)
                    .map(Time)
                    .map_err(|e| format!("creationTimestamp: {e}"))
            })
            .transpose()?;
        Ok(SecretHead {
            metadata: ObjectMeta {
                creation_timestamp,
                labels: Some(labels),
                ..ObjectMeta::default()
            },
        })
    }
}

/// The label `key` names, when it is one the service interprets (in either form of answer).
fn interpreted(key: &[u8]) -> Option<&'static str> {
    [LABEL_SYSTEM, LABEL_SECRET_TYPE]
        .into_iter()
        .find(|k| k.as_bytes() == key)
}

/// The labels the service interprets; the others are skipped unread.
struct InterpretedLabels(BTreeMap<String, String>);

/// A label key, compared without copying it.
enum LabelKey {
    Interpreted(&'static str),
    Other,
}

impl<'de> Deserialize<'de> for LabelKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = LabelKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a label key")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<LabelKey, E> {
                Ok(interpreted(key.as_bytes()).map_or(LabelKey::Other, LabelKey::Interpreted))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for InterpretedLabels {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LabelsVisitor;
        impl<'de> Visitor<'de> for LabelsVisitor {
            type Value = InterpretedLabels;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of labels")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut kept = BTreeMap::new();
                while let Some(key) = map.next_key::<LabelKey>()? {
                    match key {
                        LabelKey::Interpreted(k) => {
                            kept.insert(k.to_owned(), map.next_value::<String>()?);
                        }
                        LabelKey::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(InterpretedLabels(kept))
            }
        }
        d.deserialize_map(LabelsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::flyteidl2::secret::SecretType;
    use crate::service::image_pull;
    use serde_json::json;

    proptest::proptest! {
        /// Any bytes, and any cut of a well-formed answer, decode or fail without a panic; a
        /// well-formed answer keeps its creation time and interpreted labels.
        #[test]
        fn a_protobuf_answer_of_any_bytes_decodes_or_fails_cleanly(
            junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            seconds in 1i64..4_000_000_000,
            cut in 0usize..400,
        ) {
            use crate::k8s_wire::{put_bytes, put_map_entry, put_partial_object_metadata, put_time};
            let _ = SecretHead::from_protobuf(&junk);
            let mut prefixed = crate::k8s_wire::MAGIC.to_vec();
            prefixed.extend_from_slice(&junk);
            let _ = SecretHead::from_protobuf(&prefixed);
            let mut meta = Vec::new();
            put_bytes(&mut meta, 1, b"name");
            put_time(&mut meta, 8, Some(seconds));
            put_map_entry(&mut meta, 11, LABEL_SYSTEM, "true");
            put_map_entry(&mut meta, 11, "other", "x");
            let mut body = Vec::new();
            put_partial_object_metadata(&mut body, "meta.k8s.io/v1", &meta);
            let head = SecretHead::from_protobuf(&body).unwrap();
            proptest::prop_assert_eq!(
                head.metadata.creation_timestamp.map(|t| t.0.as_second()),
                Some(seconds)
            );
            proptest::prop_assert_eq!(
                head.metadata.labels,
                Some(BTreeMap::from([(LABEL_SYSTEM.to_owned(), "true".to_owned())]))
            );
            let _ = SecretHead::from_protobuf(&body[..cut.min(body.len())]);
        }
    }

    fn head(v: serde_json::Value) -> SecretHead {
        serde_json::from_str(&v.to_string()).unwrap()
    }

    #[test]
    fn keeps_the_creation_time_and_the_interpreted_labels_only() {
        let h = head(json!({
            "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": {
                "name": "n", "namespace": "flyte", "uid": "u", "resourceVersion": "7",
                "creationTimestamp": "2026-12-01T03:44:07Z",
                "labels": {"app.flyte.org/managed": "true", "app.flyte.org/system": "true",
                           "app.flyte.org/secret-type": "image-pull", "a\"b": "c"},
                "managedFields": [{"manager": "m", "fieldsV1": {"f:data": {}}}]
            }
        }));
        let meta = kube::Resource::meta(&h);
        assert_eq!(
            meta.creation_timestamp.as_ref().map(|t| t.0.as_second()),
            Some(1_796_096_647)
        );
        assert_eq!(
            meta.labels.as_ref().unwrap().keys().collect::<Vec<_>>(),
            ["app.flyte.org/secret-type", "app.flyte.org/system"]
        );
        assert!(image_pull::is_system(&h));
        assert_eq!(image_pull::stored_type(&h), SecretType::ImagePullSecret);
        assert!(meta.name.is_none() && meta.uid.is_none());
    }

    #[test]
    fn a_secret_without_labels_or_time_is_generic_and_not_system() {
        for v in [
            json!({}),
            json!({"metadata": {"name": "n"}}),
            json!({"metadata": {"labels": {}}}),
        ] {
            let h = head(v);
            assert!(!image_pull::is_system(&h));
            assert_eq!(image_pull::stored_type(&h), SecretType::Generic);
            assert!(kube::Resource::meta(&h).creation_timestamp.is_none());
        }
    }

    #[test]
    fn malformed_metadata_is_an_error_not_a_default() {
        for bad in [
            r#"{"metadata": {"creationTimestamp": "yesterday"}}"#,
            r#"{"metadata": {"labels": ["x"]}}"#,
            r#"{"metadata": {"labels": {"app.flyte.org/system": 1}}}"#,
            r#"{"metadata": "#,
        ] {
            assert!(serde_json::from_str::<SecretHead>(bad).is_err(), "{bad}");
        }
    }
}
