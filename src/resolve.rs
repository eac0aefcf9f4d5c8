//! `flytesecret resolve`: answers "why doesn't my task see my secret?" by printing what a task
//! pod's webhook looks up, in order, and how the value is delivered.

use crate::consumption::{self, LookupError, PodLabels};
use serde_json::json;
use std::fmt::Write as _;

/// What the operator asked about.
#[derive(Clone, Debug)]
pub struct Query<'a> {
    pub labels: PodLabels<'a>,
    pub key: &'a str,
    pub env_var: &'a str,
    pub env_prefix: &'a str,
    /// The secrets namespace (`webhook.embeddedSecretManagerConfig.k8sConfig.namespace`).
    pub namespace: &'a str,
}

pub fn render_json(q: &Query<'_>) -> Result<String, LookupError> {
    let steps = consumption::lookup_cascade(q.labels, q.key)?;
    let mount = consumption::file_mount(q.key);
    let value = json!({
        "namespace": q.namespace,
        "lookups": steps.iter().map(|s| json!({
            "scope": s.scope,
            "object_name": s.object_name.as_str(),
            "data_key": s.data_key.as_str(),
            "image_pull_name": s.image_pull_name.as_str(),
        })).collect::<Vec<_>>(),
        "env_var": consumption::env_var_name(q.key, q.env_var, q.env_prefix),
        "file": mount.path,
        "file_env_var_path": if q.env_var.is_empty() { None } else { Some(mount.env_var_path) },
    });
    Ok(serde_json::to_string_pretty(&value).expect("a JSON value serialises"))
}

pub fn render_text(q: &Query<'_>) -> Result<String, LookupError> {
    let steps = consumption::lookup_cascade(q.labels, q.key)?;
    let l = q.labels;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Secret key {:?} for a task pod labelled organization={} project={} domain={}\n",
        q.key, l.organization, l.project, l.domain
    );
    let _ = writeln!(
        out,
        "The pod webhook tries these Secrets in namespace {:?}, in order; the first that exists decides:",
        q.namespace
    );
    for (n, s) in steps.iter().enumerate() {
        let scope = format!("{:?}", s.scope).to_lowercase();
        let _ = writeln!(out, "  {}. {scope} scope", n + 1);
        let _ = writeln!(out, "     Secret    {}", s.object_name);
        let _ = writeln!(out, "     data key  {}", s.data_key);
        let _ = writeln!(
            out,
            "     check     kubectl -n {} get secret {}",
            q.namespace, s.object_name
        );
        let _ = writeln!(out, "     image pull {}", s.image_pull_name);
    }
    out.push_str(
        "A Secret that exists but lacks its data key stops the lookup: broader scopes are not tried.\n\n",
    );
    let _ = writeln!(
        out,
        "Image pull (webhook with embeddedSecretManagerConfig.imagePullSecrets.enabled): the scope that\n\
         matched also names the pod's image-pull Secret. When that Secret exists in namespace {:?}\n\
         (`flyte create secret NAME --type image_pull` writes it, type kubernetes.io/dockerconfigjson),\n\
         the webhook copies it into the pod's namespace and adds it to imagePullSecrets; otherwise the\n\
         pod gets none. Check with: kubectl -n {} get secret <image pull name above>\n",
        q.namespace, q.namespace
    );
    let mount = consumption::file_mount(q.key);
    let _ = writeln!(out, "Delivered as:");
    let _ = writeln!(
        out,
        "  env var  {}   (mount requirement ANY or ENV_VAR; the value must be UTF-8)",
        consumption::env_var_name(q.key, q.env_var, q.env_prefix)
    );
    let _ = writeln!(out, "  file     {}   (mount requirement FILE)", mount.path);
    if !q.env_var.is_empty() {
        let _ = writeln!(
            out,
            "  {} points to {} for FILE mounts",
            q.env_var, mount.env_var_path
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(key: &str) -> Query<'_> {
        Query {
            labels: PodLabels {
                organization: "flyte",
                project: "flytesnacks",
                domain: "development",
            },
            key,
            env_var: "",
            env_prefix: consumption::DEFAULT_ENV_PREFIX,
            namespace: "flyte",
        }
    }

    #[test]
    fn text_report() {
        insta::assert_snapshot!(render_text(&query("my-secret")).unwrap());
    }

    #[test]
    fn json_report() {
        insta::assert_snapshot!(render_json(&query("my-secret")).unwrap());
    }

    #[test]
    fn explains_refusals() {
        let err = render_text(&query("")).unwrap_err();
        assert_eq!(err, LookupError::EmptyKey);
    }
}
