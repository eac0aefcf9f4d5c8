//! Strict validation of Create requests (`secret.strictNames`, on by default): the contract the
//! protos declare but the Go service never enforces (docs/go-service.md §2.2), plus what Kubernetes would only
//! reject later as a bare `internal`, plus the identifiers that would alias another secret
//! (docs/go-service.md §3.5). Every rejection is `invalid_argument` and names the field.
//!
//! Also the value rule of image-pull secrets ([`check_docker_config`]), which applies whatever
//! `secret.strictNames` says: their value must be something a kubelet can pull with.

use super::error::RpcError;
use crate::k8s_rules::label_value_ok;
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
        if !crate::naming::component_round_trips(value) {
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

const DOCKER_CONFIG: &str = "secret_spec.value: an image-pull secret must be a Docker config JSON ({\"auths\": {\"<registry>\": {\"auth\": \"<base64 of user:password>\"}}})";

/// The fields of a Docker config entry a kubelet reads, all strings when present.
const ENTRY_STRINGS: [&str; 6] = [
    "auth",
    "username",
    "password",
    "email",
    "identitytoken",
    "registrytoken",
];

/// Checks an image-pull secret's value: a JSON object whose `auths` is a non-empty object of
/// registry entries, each an object whose credential fields are strings and whose `auth`, when
/// present, is base64 of `user:password` (what the kubelet decodes). Errors say what is wrong and
/// where (a registry key at most), never any part of a credential.
pub fn check_docker_config(value: &[u8]) -> Result<(), RpcError> {
    use base64::Engine as _;
    let bad = |why: String| RpcError::invalid_argument(format!("{DOCKER_CONFIG}: {why}"));
    let doc: serde_json::Value = serde_json::from_slice(value).map_err(|e| {
        bad(format!(
            "the value is not JSON (syntax error at line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let Some(top) = doc.as_object() else {
        return Err(bad("the value is not a JSON object".into()));
    };
    let Some(auths) = top.get("auths").and_then(|a| a.as_object()) else {
        return Err(bad("it has no \"auths\" object".into()));
    };
    if auths.is_empty() {
        return Err(bad("its \"auths\" object is empty".into()));
    }
    for (registry, entry) in auths {
        let Some(entry) = entry.as_object() else {
            return Err(bad(format!("auths[{registry:?}] is not an object")));
        };
        for field in ENTRY_STRINGS {
            if entry.get(field).is_some_and(|v| !v.is_string()) {
                return Err(bad(format!("auths[{registry:?}].{field} is not a string")));
            }
        }
        if let Some(auth) = entry.get("auth").and_then(|v| v.as_str()) {
            let decoded = base64::engine::general_purpose::STANDARD.decode(auth);
            if !decoded.is_ok_and(|d| d.contains(&b':')) {
                return Err(bad(format!(
                    "auths[{registry:?}].auth is not base64 of user:password"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_rules_name_the_problem_and_never_the_value() {
        let ok = br#"{"auths":{"ghcr.io":{"auth":"dXNlcjpodW50ZXIy"}}}"#;
        assert!(check_docker_config(ok).is_ok());
        assert!(
            check_docker_config(br#"{"auths":{"r":{"username":"u","password":"p"}},"x":1}"#)
                .is_ok()
        );
        let cases: [(&[u8], &str); 8] = [
            (b"hunter2", "not JSON"),
            (b"[\"hunter2\"]", "not a JSON object"),
            (br#"{"hunter2":1}"#, "no \"auths\""),
            (br#"{"auths":["hunter2"]}"#, "no \"auths\""),
            (br#"{"auths":{}}"#, "is empty"),
            (
                br#"{"auths":{"r":"hunter2"}}"#,
                "auths[\"r\"] is not an object",
            ),
            (
                br#"{"auths":{"r":{"password":7}}}"#,
                "auths[\"r\"].password is not a string",
            ),
            (
                br#"{"auths":{"r":{"auth":"aHVudGVyMg=="}}}"#,
                "auths[\"r\"].auth is not base64",
            ),
        ];
        for (value, want) in cases {
            let e = check_docker_config(value).unwrap_err();
            assert_eq!(e.code, super::super::Code::InvalidArgument);
            assert!(
                e.message.starts_with("secret_spec.value: "),
                "{}",
                e.message
            );
            assert!(e.message.contains(want), "{}", e.message);
            assert!(
                !e.message.contains("hunter2") && !e.message.contains("aHVudGVyMg"),
                "{}",
                e.message
            );
        }
    }

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
