//! Secret types on the stored objects, and the image-pull companion Secret.
//!
//! An image-pull secret is stored twice: as the generic Secret every secret has (so the webhook's
//! lookup finds it at its scope), marked with [`LABEL_SECRET_TYPE`], and as the
//! `kubernetes.io/dockerconfigjson` Secret the webhook copies into the pod's namespace and adds to
//! `imagePullSecrets` (upstream `embedded_secret_manager.go`, `findAndAddImagePullSecret`). The
//! companion carries the webhook's own labels plus [`LABEL_IMAGE_PULL_FOR`], which ties it to the
//! generic Secret without `app.flyte.org/managed`, so ListSecrets never sees it.

use crate::naming::{self, DEFAULT_ORGANIZATION, ImagePullName, ObjectName};
use crate::proto::flyteidl2::secret::{SecretIdentifier, SecretType};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret as K8sSecret;
use kube::api::ObjectMeta;
use std::collections::BTreeMap;

/// On the generic Secret: the secret's type when it is not generic. Absent (as on every Secret the
/// Go service wrote) means `SECRET_TYPE_GENERIC`.
pub const LABEL_SECRET_TYPE: &str = "app.flyte.org/secret-type";
/// The value of [`LABEL_SECRET_TYPE`] for `SECRET_TYPE_IMAGE_PULL_SECRET`.
pub const TYPE_IMAGE_PULL: &str = "image-pull";
/// On the generic Secret, set by operators only: a system secret (see `include_system_secrets`).
pub const LABEL_SYSTEM: &str = "app.flyte.org/system";
/// On the companion: the object name of the generic Secret it belongs to.
pub const LABEL_IMAGE_PULL_FOR: &str = "app.flyte.org/image-pull-for";

/// The webhook's labels (upstream `ToImagePullK8sLabels`).
const LABEL_UNION_SECRET_TYPE: &str = "union.ai/secret-type";
const UNION_IMAGE_PULL: &str = "image-pull-secret";
const LABEL_UNION_ORG: &str = "union.ai/org";
const LABEL_UNION_PROJECT: &str = "union.ai/project";
const LABEL_UNION_DOMAIN: &str = "union.ai/domain";
const LABEL_UNION_NAME: &str = "union.ai/secret-name";

pub const DOCKER_CONFIG_JSON_TYPE: &str = "kubernetes.io/dockerconfigjson";
pub const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";

/// A label of a stored Secret.
fn label<'a>(secret: &'a K8sSecret, key: &str) -> Option<&'a str> {
    secret
        .metadata
        .labels
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// The type a stored generic Secret records.
pub fn stored_type(secret: &K8sSecret) -> SecretType {
    type_labelled(label(secret, LABEL_SECRET_TYPE))
}

/// The type recorded by a [`LABEL_SECRET_TYPE`] of `value` (or none).
pub fn type_labelled(value: Option<&str>) -> SecretType {
    match value {
        Some(TYPE_IMAGE_PULL) => SecretType::ImagePullSecret,
        _ => SecretType::Generic,
    }
}

/// True for a Secret an operator labelled `app.flyte.org/system: "true"`.
pub fn is_system(secret: &K8sSecret) -> bool {
    system_labelled(label(secret, LABEL_SYSTEM))
}

/// True for a [`LABEL_SYSTEM`] of `value`.
pub fn system_labelled(value: Option<&str>) -> bool {
    value == Some("true")
}

/// The companion's name: `ToImagePullK8sName` over the components the data key is encoded from
/// (the organization is always the service's, like the data key's).
pub fn companion_name(id: &SecretIdentifier) -> ImagePullName {
    naming::image_pull_name(DEFAULT_ORGANIZATION, &id.domain, &id.project, &id.name)
}

/// True when `companion` was written by this service for the generic Secret `object`.
pub fn belongs_to(companion: &K8sSecret, object: &ObjectName) -> bool {
    label(companion, LABEL_IMAGE_PULL_FOR) == Some(object.as_str())
}

/// The companion Secret for the secret `id` (stored as `object`) holding the Docker config `value`.
pub fn companion(
    namespace: &str,
    id: &SecretIdentifier,
    object: &ObjectName,
    value: &[u8],
) -> K8sSecret {
    let labels = BTreeMap::from([
        (
            LABEL_UNION_SECRET_TYPE.to_owned(),
            UNION_IMAGE_PULL.to_owned(),
        ),
        (
            LABEL_UNION_ORG.to_owned(),
            naming::sanitize_label_value(DEFAULT_ORGANIZATION),
        ),
        (
            LABEL_UNION_PROJECT.to_owned(),
            naming::sanitize_label_value(&id.project),
        ),
        (
            LABEL_UNION_DOMAIN.to_owned(),
            naming::sanitize_label_value(&id.domain),
        ),
        (
            LABEL_UNION_NAME.to_owned(),
            naming::sanitize_label_value(&id.name),
        ),
        (LABEL_IMAGE_PULL_FOR.to_owned(), object.to_string()),
    ]);
    K8sSecret {
        metadata: ObjectMeta {
            name: Some(companion_name(id).to_string()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels),
            ..Default::default()
        },
        type_: Some(DOCKER_CONFIG_JSON_TYPE.to_owned()),
        data: Some(BTreeMap::from([(
            DOCKER_CONFIG_JSON_KEY.to_owned(),
            ByteString(value.to_vec()),
        )])),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn companion_carries_the_webhook_labels_and_the_tie() {
        let id = SecretIdentifier {
            name: "ghcr_creds".into(),
            organization: "ignored".into(),
            domain: String::new(),
            project: String::new(),
        };
        let object = naming::SecretId::new("flyte", "", "", "ghcr_creds")
            .encode()
            .object_name();
        let c = companion("flyte", &id, &object, b"{}");
        assert_eq!(
            c.metadata.name.as_deref(),
            Some(naming::image_pull_name("flyte", "", "", "ghcr_creds").as_str())
        );
        let labels = c.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["union.ai/org"], "flyte");
        assert_eq!(labels["union.ai/domain"], "none");
        assert_eq!(labels["union.ai/secret-name"], "ghcr_creds");
        assert!(!labels.contains_key("app.flyte.org/managed"));
        assert!(belongs_to(&c, &object));
        assert!(!belongs_to(&c, &naming::object_name("other")));
        assert_eq!(stored_type(&c), SecretType::Generic);
    }
}
