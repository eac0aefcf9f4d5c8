//! The consumption side: how a task pod finds and receives a secret the service wrote
//! (the embedded secret manager with the Kubernetes fetcher, docs/go-service.md §9).
//!
//! This is what `flytesecret resolve` explains to operators, and what the golden vectors pin so a
//! naming change can never silently make pods miss their secrets.

use crate::gostr;
use crate::naming::{EncodedId, ImagePullName, ObjectName, SecretId, image_pull_name};
use serde::Serialize;
use std::fmt;

/// Default `webhook.secretEnvVarPrefix`.
pub const DEFAULT_ENV_PREFIX: &str = "_UNION_";
/// Where FILE secrets are mounted in every container.
pub const SECRETS_DIR: &str = "/etc/flyte/secrets";

/// Which scope a lookup step tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Project,
    Domain,
    Org,
}

/// One step of the lookup cascade: the Secret a pod's webhook GETs and the data key it reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupStep {
    pub scope: Scope,
    pub data_key: EncodedId,
    pub object_name: ObjectName,
    /// The image-pull Secret consulted for this scope (only when image-pull injection is enabled).
    pub image_pull_name: ImagePullName,
}

/// Why the webhook refuses before looking anything up. Texts follow the Go errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupError {
    /// Go appends the requested secret's debug form after `Secret: `; we only pin the prefix.
    EmptyKey,
    EmptyLabel(&'static str),
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::EmptyKey => f.write_str("EmbeddedSecretManager requires key to be set"),
            LookupError::EmptyLabel(label) => write!(
                f,
                "[SecretRequirementsError] secret read requirements not met due to empty {label} field in the pod labels"
            ),
        }
    }
}

impl std::error::Error for LookupError {}

/// The pod labels the executor stamps (`organization` is always `flyte` in practice).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodLabels<'a> {
    pub organization: &'a str,
    pub project: &'a str,
    pub domain: &'a str,
}

/// The ordered lookup a pod walks for secret `key`: project+domain, then domain, then org.
/// The first Secret that exists decides; one that exists without the expected data key aborts the
/// cascade (broader scopes are not tried).
pub fn lookup_cascade(labels: PodLabels<'_>, key: &str) -> Result<[LookupStep; 3], LookupError> {
    if key.is_empty() {
        return Err(LookupError::EmptyKey);
    }
    for (label, value) in [
        ("organization", labels.organization),
        ("project", labels.project),
        ("domain", labels.domain),
    ] {
        if value.is_empty() {
            return Err(LookupError::EmptyLabel(label));
        }
    }
    let org = labels.organization;
    let step = |scope, domain, project| {
        let data_key = SecretId::new(org, domain, project, key).encode();
        LookupStep {
            scope,
            object_name: data_key.object_name(),
            image_pull_name: image_pull_name(org, domain, project, key),
            data_key,
        }
    };
    Ok([
        step(Scope::Project, labels.domain, labels.project),
        step(Scope::Domain, labels.domain, ""),
        step(Scope::Org, "", ""),
    ])
}

/// The environment variable an ENV_VAR (or ANY) secret is delivered under: the task's `env_var`
/// when set, else the prefix followed by Go's `strings.ToUpper(key)` (the prefix is not upper-cased).
pub fn env_var_name(key: &str, env_var: &str, prefix: &str) -> String {
    if env_var.is_empty() {
        format!("{prefix}{}", gostr::to_upper(key))
    } else {
        env_var.to_owned()
    }
}

/// Where a FILE secret lands, and the path the `env_var` (if any) points to. They differ for keys
/// with upper-case letters: the file keeps the key as is, the variable uses `strings.ToLower(key)`
/// (an upstream quirk, spec Q18).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileMount {
    pub path: String,
    pub env_var_path: String,
}

pub fn file_mount(key: &str) -> FileMount {
    FileMount {
        path: format!("{SECRETS_DIR}/{key}"),
        env_var_path: format!("{SECRETS_DIR}/{}", gostr::to_lower(key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABELS: PodLabels<'static> = PodLabels {
        organization: "flyte",
        project: "flytesnacks",
        domain: "development",
    };

    #[test]
    fn cascade_goes_from_narrow_to_broad() {
        let steps = lookup_cascade(LABELS, "my-secret").unwrap();
        let got: Vec<_> = steps
            .iter()
            .map(|s| (s.scope, s.object_name.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (Scope::Project, "209ab6535a0e009361229977898c057f"),
                (Scope::Domain, "85134ca16b7e3df19b51a492cdccf094"),
                (Scope::Org, "fb7ecc638177256036613dca61ecf9a7"),
            ]
        );
        assert_eq!(
            steps[2].image_pull_name.as_str(),
            "img-pull-317fa0f976f0a349"
        );
    }

    #[test]
    fn labels_are_checked_in_go_order() {
        let labels = PodLabels {
            organization: "flyte",
            project: "",
            domain: "",
        };
        assert_eq!(
            lookup_cascade(labels, "k").unwrap_err().to_string(),
            "[SecretRequirementsError] secret read requirements not met due to empty project field in the pod labels"
        );
        assert_eq!(
            lookup_cascade(LABELS, "").unwrap_err(),
            LookupError::EmptyKey
        );
    }

    #[test]
    fn env_var_uses_go_upper_casing_and_explicit_names_win() {
        assert_eq!(
            env_var_name("straße", "", DEFAULT_ENV_PREFIX),
            "_UNION_STRAßE"
        );
        assert_eq!(env_var_name("k", "MY_VAR", DEFAULT_ENV_PREFIX), "MY_VAR");
        assert_eq!(env_var_name("k", "", "_x_"), "_x_K");
    }

    #[test]
    fn file_path_keeps_case_but_env_path_lowercases() {
        let m = file_mount("Api_Key");
        assert_eq!(m.path, "/etc/flyte/secrets/Api_Key");
        assert_eq!(m.env_var_path, "/etc/flyte/secrets/api_key");
    }
}
