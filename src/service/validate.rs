//! Strict validation of Create requests (`secret.strictNames`, on by default): the contract the
//! protos declare but the Go service never enforces (spec 2.2), plus what Kubernetes would only
//! reject later as a bare `internal`, plus the identifiers that would alias another secret
//! (spec 3.5). Every rejection is `invalid_argument` and names the field.

use super::error::RpcError;
use crate::kubeapi::validation_rules::label_value_ok;
use crate::naming::{DEFAULT_ORGANIZATION, SecretId};
use crate::proto::flyteidl2::secret::SecretIdentifier;

const NAME_PATTERN: &str = "^[-a-zA-Z0-9_]+$";
const MAX_DATA_KEY: usize = 253;

fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks a Create request's identifier. `id` is `None` when the request carried none.
pub fn check_create(id: Option<&SecretIdentifier>) -> Result<(), RpcError> {
    let Some(id) = id else {
        return Err(RpcError::invalid_argument("id: value is required"));
    };
    if id.name.is_empty() {
        return Err(RpcError::invalid_argument(
            "id.name: value length must be at least 1 characters",
        ));
    }
    if !name_ok(&id.name) {
        return Err(RpcError::invalid_argument(format!(
            "id.name: value does not match regex pattern {NAME_PATTERN:?}, got {:?}",
            super::echo(&id.name)
        )));
    }
    for (field, value) in [("id.domain", &id.domain), ("id.project", &id.project)] {
        if !label_value_ok(value) {
            return Err(RpcError::invalid_argument(format!(
                "{field}: {:?} is not a valid Kubernetes label value (at most 63 characters: letters, digits, '-', '_' or '.', starting and ending with a letter or digit)",
                super::echo(value)
            )));
        }
        if value.contains("__") || value.ends_with('_') {
            return Err(RpcError::invalid_argument(format!(
                "{field}: {:?} must not contain \"__\" or end with \"_\": the encoded id would be shared with another secret",
                super::echo(value)
            )));
        }
    }
    let encoded = SecretId::new(DEFAULT_ORGANIZATION, &id.domain, &id.project, &id.name).encode();
    if encoded.as_str().len() > MAX_DATA_KEY {
        return Err(RpcError::invalid_argument(format!(
            "id: name, domain and project are too long together: the encoded key would be {} characters, Kubernetes allows {MAX_DATA_KEY}",
            encoded.as_str().len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str, domain: &str, project: &str) -> SecretIdentifier {
        SecretIdentifier {
            name: name.into(),
            domain: domain.into(),
            project: project.into(),
            organization: String::new(),
        }
    }

    #[test]
    fn accepts_the_declared_contract() {
        assert!(check_create(Some(&id("my-secret_1", "development", "flytesnacks"))).is_ok());
        assert!(check_create(Some(&id("k", "", ""))).is_ok());
    }

    #[test]
    fn rejections_name_the_field() {
        let msg = |r: Result<(), RpcError>| r.unwrap_err().message;
        assert!(msg(check_create(None)).starts_with("id:"));
        assert!(msg(check_create(Some(&id("", "", "")))).starts_with("id.name:"));
        assert!(msg(check_create(Some(&id("a.b", "", "")))).starts_with("id.name:"));
        assert!(msg(check_create(Some(&id("n", "bad value", "")))).starts_with("id.domain:"));
        assert!(msg(check_create(Some(&id("n", "d", "p__key__x")))).starts_with("id.project:"));
        assert!(msg(check_create(Some(&id("n", "d", "p_")))).starts_with("id.project:"));
        assert!(msg(check_create(Some(&id(&"n".repeat(213), "", "")))).starts_with("id:"));
        assert!(check_create(Some(&id(&"n".repeat(212), "", ""))).is_ok());
    }
}
