//! [`SecretHead`]: what GetSecret reads of a stored Secret. The service interprets two labels
//! and the creation time, nothing else, so it asks the API server for the object's metadata
//! alone (`PartialObjectMetadata`, like client-go's metadata client: the value never leaves the
//! API server), in protobuf or JSON as the server answers, and keeps only what those say: the
//! rest is skipped without allocating for it.

use super::image_pull::{self, LABEL_SECRET_TYPE, LABEL_SYSTEM};
use crate::proto::flyteidl2::secret::SecretType;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use std::fmt;

/// A stored Secret's metadata as far as the service reads it. Small (it is moved through every
/// layer of a GetSecret) and with nothing to free.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SecretHead {
    /// `creationTimestamp`, in seconds since the epoch; `None` when unset.
    pub created: Option<i64>,
    /// Labelled `app.flyte.org/system: "true"`.
    pub system: bool,
    /// The type its `app.flyte.org/secret-type` label records.
    pub secret_type: SecretType,
}

impl SecretHead {
    /// The head of a Secret with these interpreted labels' values (`None`: not labelled).
    fn of(created: Option<i64>, system: Option<&str>, secret_type: Option<&str>) -> SecretHead {
        SecretHead {
            created,
            system: image_pull::system_labelled(system),
            secret_type: image_pull::type_labelled(secret_type),
        }
    }

    /// The head of a whole stored Secret (ListSecrets reads whole Secrets).
    pub fn of_secret(secret: &k8s_openapi::api::core::v1::Secret) -> SecretHead {
        SecretHead {
            created: secret
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second()),
            system: image_pull::is_system(secret),
            secret_type: image_pull::stored_type(secret),
        }
    }

    /// A `PartialObjectMetadata` answer in protobuf (`application/vnd.kubernetes.protobuf`),
    /// read in place, nothing copied out. An empty `Time` message is how Go writes an unset one.
    pub fn from_protobuf(body: &[u8]) -> Result<SecretHead, String> {
        use crate::k8s_wire::{Field, fields, map_entry, raw_of, time_seconds};
        let mut created = None;
        let (mut system, mut secret_type) = (None, None);
        for field in fields(raw_of(body)?) {
            let (1, Field::Bytes(meta)) = field? else {
                continue;
            };
            for field in fields(meta) {
                match field? {
                    (8, Field::Bytes(time)) => created = time_seconds(time)?,
                    (11, Field::Bytes(entry)) => {
                        let (key, value) = map_entry(entry)?;
                        if let Some(label) = Label::of(key) {
                            let value = std::str::from_utf8(value)
                                .map_err(|e| format!("label {}: {e}", label.key()))?;
                            match label {
                                Label::System => system = Some(value),
                                Label::SecretType => secret_type = Some(value),
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        // What the JSON form accepts as a creationTimestamp, so both forms refuse alike.
        if let Some(seconds) = created {
            k8s_openapi::jiff::Timestamp::from_second(seconds)
                .map_err(|e| format!("creationTimestamp: {e}"))?;
        }
        Ok(SecretHead::of(created, system, secret_type))
    }
}

/// A label the service interprets (in either form of answer).
#[derive(Clone, Copy)]
enum Label {
    System,
    SecretType,
}

impl Label {
    /// The label `key` names, when it is one the service interprets.
    fn of(key: &[u8]) -> Option<Label> {
        [Label::System, Label::SecretType]
            .into_iter()
            .find(|l| l.key().as_bytes() == key)
    }

    fn key(self) -> &'static str {
        match self {
            Label::System => LABEL_SYSTEM,
            Label::SecretType => LABEL_SECRET_TYPE,
        }
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
        let labels = wire.metadata.labels.unwrap_or_default();
        Ok(SecretHead::of(
            wire.metadata.creation_timestamp.map(|t| t.0.as_second()),
            labels.system.as_deref(),
            labels.secret_type.as_deref(),
        ))
    }
}

/// The values of the labels the service interprets; the others are skipped unread.
#[derive(Default)]
struct InterpretedLabels {
    system: Option<String>,
    secret_type: Option<String>,
}

/// A label key, compared without copying it.
enum LabelKey {
    Interpreted(Label),
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
                Ok(Label::of(key.as_bytes()).map_or(LabelKey::Other, LabelKey::Interpreted))
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
                let mut kept = InterpretedLabels::default();
                while let Some(key) = map.next_key::<LabelKey>()? {
                    match key {
                        LabelKey::Interpreted(Label::System) => {
                            kept.system = Some(map.next_value()?);
                        }
                        LabelKey::Interpreted(Label::SecretType) => {
                            kept.secret_type = Some(map.next_value()?);
                        }
                        LabelKey::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(kept)
            }
        }
        d.deserialize_map(LabelsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
                head,
                SecretHead { created: Some(seconds), system: true, secret_type: SecretType::Generic }
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
        assert_eq!(
            h,
            SecretHead {
                created: Some(1_796_096_647),
                system: true,
                secret_type: SecretType::ImagePullSecret
            }
        );
        // Only "true" makes a system secret, only "image-pull" an image-pull one.
        let h = head(json!({"metadata": {"labels": {
            "app.flyte.org/system": "yes", "app.flyte.org/secret-type": "generic"}}}));
        assert_eq!(h, SecretHead::default());
    }

    /// The head of a whole Secret (ListSecrets) reads the same labels the same way.
    #[test]
    fn a_whole_secret_has_the_head_its_metadata_answer_has() {
        let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
            "metadata": {
                "name": "n", "creationTimestamp": "2026-12-01T03:44:07Z",
                "labels": {"app.flyte.org/system": "true", "app.flyte.org/secret-type": "image-pull"}
            },
            "data": {"k": "dg=="}
        }))
        .unwrap();
        let whole = SecretHead::of_secret(&secret);
        assert_eq!(
            whole,
            head(serde_json::to_value(&secret).unwrap()),
            "{whole:?}"
        );
        assert!(whole.system && whole.secret_type == SecretType::ImagePullSecret);
    }

    #[test]
    fn a_secret_without_labels_or_time_is_generic_and_not_system() {
        for v in [
            json!({}),
            json!({"metadata": {"name": "n"}}),
            json!({"metadata": {"labels": {}}}),
        ] {
            assert_eq!(head(v), SecretHead::default());
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
