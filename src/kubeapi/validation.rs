//! Secret validation with the API server's rules, order and texts (docs/kubernetes-api.md §3.5).

use super::object::Secret;
use super::status::FieldError;
pub use crate::k8s_rules::label_value_ok;
use crate::k8s_rules::{is_dns1123_label, is_dns1123_subdomain, is_qualified_part};

pub const MAX_SECRET_SIZE: usize = 1024 * 1024;
const MAX_ANNOTATIONS_SIZE: usize = 256 * 1024;

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const IMMUTABLE_MSG: &str = "field is immutable when `immutable` is set";

pub fn namespace_name_errors(name: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if name.len() > 63 {
        errs.push(FieldError::invalid(
            "metadata.name",
            name,
            "must be no more than 63 characters",
        ));
    }
    if !is_dns1123_label(name) {
        errs.push(FieldError::invalid(
            "metadata.name",
            name,
            DNS1123_LABEL_MSG,
        ));
    }
    errs
}

fn qualified_name_errors(field: &str, key: &str, out: &mut Vec<FieldError>) {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if name.is_empty() {
        out.push(FieldError::invalid(
            field,
            key,
            "name part must be non-empty",
        ));
    } else {
        if name.len() > 63 {
            out.push(FieldError::invalid(
                field,
                key,
                "name part must be no more than 63 bytes",
            ));
        }
        if !is_qualified_part(name, false) {
            out.push(FieldError::invalid(field, key, QUALIFIED_NAME_MSG));
        }
    }
    if let Some(p) = prefix {
        if p.is_empty() {
            out.push(FieldError::invalid(
                field,
                key,
                "prefix part must be non-empty",
            ));
        } else if !is_dns1123_subdomain(p) {
            out.push(FieldError::invalid(
                field,
                key,
                &format!("prefix part {DNS1123_SUBDOMAIN_MSG}"),
            ));
        }
    }
}

/// Data keys: `[-._a-zA-Z0-9]+`, at most 253, not `.`, `..` or `..`-prefixed.
pub fn data_key_errors(key: &str) -> Vec<FieldError> {
    let field = format!("data[{key}]");
    let mut errs = Vec::new();
    if key.len() > 253 {
        errs.push(FieldError::invalid(
            &field,
            key,
            "must be no more than 253 characters",
        ));
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
    {
        errs.push(FieldError::invalid(&field, key, CONFIG_KEY_MSG));
    }
    if key == "." {
        errs.push(FieldError::invalid(&field, key, "must not be '.'"));
    } else if key == ".." {
        errs.push(FieldError::invalid(&field, key, "must not be '..'"));
    } else if key.starts_with("..") {
        errs.push(FieldError::invalid(&field, key, "must not start with '..'"));
    }
    errs
}

fn metadata_errors(s: &Secret, check_owners: bool, out: &mut Vec<FieldError>) {
    let m = &s.meta;
    if m.name.is_empty() && m.generate_name.is_empty() {
        out.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if !m.name.is_empty() {
        if m.name.len() > 253 {
            out.push(FieldError::invalid(
                "metadata.name",
                &m.name,
                "must be no more than 253 characters",
            ));
        }
        if !is_dns1123_subdomain(&m.name) {
            out.push(FieldError::invalid(
                "metadata.name",
                &m.name,
                DNS1123_SUBDOMAIN_MSG,
            ));
        }
    }
    if let Some(g) = m.generation
        && g < 0
    {
        out.push(FieldError::invalid_raw(
            "metadata.generation",
            g.to_string(),
            "must be greater than or equal to 0",
        ));
    }
    for (k, v) in &m.labels {
        qualified_name_errors("metadata.labels", k, out);
        if !label_value_ok(v) {
            if v.len() > 63 {
                out.push(FieldError::invalid(
                    "metadata.labels",
                    v,
                    "must be no more than 63 bytes",
                ));
            }
            if !is_qualified_part(v, true) {
                out.push(FieldError::invalid("metadata.labels", v, LABEL_VALUE_MSG));
            }
        }
    }
    let mut annotations_size = 0;
    for (k, v) in &m.annotations {
        qualified_name_errors("metadata.annotations", &k.to_ascii_lowercase(), out);
        annotations_size += k.len() + v.len();
    }
    if annotations_size > MAX_ANNOTATIONS_SIZE {
        out.push(FieldError::too_long(
            "metadata.annotations",
            MAX_ANNOTATIONS_SIZE,
        ));
    }
    if check_owners {
        owner_reference_errors(&m.owner_references, out);
    }
    for f in &m.finalizers {
        qualified_name_errors("metadata.finalizers", f, out);
    }
}

/// `ValidateOwnerReferences` (v1.33-v1.36): every reference names a version, a kind, a name and
/// a uid, none is an Event, and at most one is the controller (named `Kind/name`). The
/// references are as `decode_meta` keeps them.
fn owner_reference_errors(refs: &[serde_json::Value], out: &mut Vec<FieldError>) {
    const FIELD: &str = "metadata.ownerReferences";
    let text = |r: &serde_json::Value, key: &str| -> String {
        r.get(key)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut controller: Option<String> = None;
    for r in refs {
        let [api_version, kind, name, uid] =
            ["apiVersion", "kind", "name", "uid"].map(|k| text(r, k));
        // The version part of apiVersion as `schema.ParseGroupVersion` reads it: `v1`, or
        // `group/v1`; more than one `/` does not parse and leaves it empty.
        let (group, version) = match api_version.split('/').collect::<Vec<_>>()[..] {
            [version] => ("", version),
            [group, version] => (group, version),
            _ => ("", ""),
        };
        // (field, the value it is judged by, the value shown, the message)
        let checks = [
            (
                "apiVersion",
                version,
                api_version.as_str(),
                "version must not be empty",
            ),
            ("kind", kind.as_str(), "", "kind must not be empty"),
            ("name", name.as_str(), "", "name must not be empty"),
            ("uid", uid.as_str(), "", "uid must not be empty"),
        ];
        for (key, judged, shown, message) in checks {
            if judged.is_empty() {
                out.push(FieldError::invalid(
                    format!("{FIELD}.{key}"),
                    shown,
                    message,
                ));
            }
        }
        if (group, version) == ("", "v1") && kind == "Event" {
            out.push(FieldError::invalid_raw(
                FIELD,
                r.to_string(),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if r.get("controller") == Some(&serde_json::Value::Bool(true)) {
            let name = format!("{kind}/{name}");
            match &controller {
                Some(first) => out.push(FieldError::invalid_raw(
                    FIELD,
                    serde_json::Value::Array(refs.to_vec()).to_string(),
                    &format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {name}"
                    ),
                )),
                None => controller = Some(name),
            }
        }
    }
}

fn json_object_error(value: &[u8]) -> Option<String> {
    match serde_json::from_slice::<serde_json::Value>(value) {
        Ok(serde_json::Value::Object(_)) => None,
        Ok(other) => Some(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            match other {
                serde_json::Value::Array(_) => "array",
                serde_json::Value::String(_) => "string",
                serde_json::Value::Number(_) => "number",
                serde_json::Value::Bool(_) => "bool",
                _ => "null",
            }
        )),
        Err(e) if e.is_eof() => Some("unexpected end of JSON input".to_owned()),
        Err(e) => Some(e.to_string()),
    }
}

fn type_errors(s: &Secret, out: &mut Vec<FieldError>) {
    let require = |key: &str, out: &mut Vec<FieldError>| {
        if !s.data.contains_key(key) {
            out.push(FieldError::required(format!("data[{key}]"), ""));
            false
        } else {
            true
        }
    };
    match s.type_.as_str() {
        "kubernetes.io/service-account-token" => {
            let key = "kubernetes.io/service-account.name";
            if s.meta.annotations.get(key).is_none_or(|v| v.is_empty()) {
                out.push(FieldError::required(
                    format!("metadata.annotations[{key}]"),
                    "",
                ));
            }
        }
        t @ ("kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson") => {
            let key = if t.ends_with("json") {
                ".dockerconfigjson"
            } else {
                ".dockercfg"
            };
            if require(key, out)
                && let Some(err) = json_object_error(&s.data[key])
            {
                out.push(FieldError::invalid(
                    format!("data[{key}]"),
                    "<secret contents redacted>",
                    &err,
                ));
            }
        }
        "kubernetes.io/basic-auth"
            if !s.data.contains_key("username") && !s.data.contains_key("password") =>
        {
            out.push(FieldError::required("data[username]", ""));
            out.push(FieldError::required("data[password]", ""));
        }
        "kubernetes.io/ssh-auth" if s.data.get("ssh-privatekey").is_none_or(|v| v.is_empty()) => {
            out.push(FieldError::required("data[ssh-privatekey]", ""));
        }
        "kubernetes.io/tls" => {
            require("tls.crt", out);
            require("tls.key", out);
        }
        _ => {}
    }
}

/// `ValidateSecret`: metadata, data keys and size, then type-specific rules.
pub fn validate_secret(s: &Secret) -> Vec<FieldError> {
    secret_errors(s, true)
}

fn secret_errors(s: &Secret, check_owners: bool) -> Vec<FieldError> {
    let mut out = Vec::new();
    metadata_errors(s, check_owners, &mut out);
    let mut total = 0usize;
    for (k, v) in &s.data {
        out.extend(data_key_errors(k));
        total += v.len();
    }
    if total > MAX_SECRET_SIZE {
        out.push(FieldError::too_long("data", MAX_SECRET_SIZE));
    }
    type_errors(s, &mut out);
    out
}

/// `ValidateSecretUpdate`: everything of create plus type and immutability rules. Owner
/// references the update leaves as they were are not judged again: the engine checks them only
/// since this version, and an object stored before with references it now refuses must stay
/// writable (the service's UpdateSecret sends back what it read).
pub fn validate_secret_update(new: &Secret, old: &Secret) -> Vec<FieldError> {
    let mut out = secret_errors(new, new.meta.owner_references != old.meta.owner_references);
    if new.type_ != old.type_ {
        out.push(FieldError::invalid(
            "type",
            &new.type_,
            "field is immutable",
        ));
    }
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            out.push(FieldError::forbidden("immutable", IMMUTABLE_MSG));
        }
        if new.data != old.data {
            out.push(FieldError::forbidden("data", IMMUTABLE_MSG));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains() {
        for ok in ["a", "a-b.c", "0", "209ab6535a0e009361229977898c057f"] {
            assert!(is_dns1123_subdomain(ok), "{ok}");
        }
        for bad in ["", "Bad_Name", "-a", "a-", "a..b", ".a"] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
    }

    #[test]
    fn data_keys() {
        assert!(data_key_errors("u__org__flyte__domain____project____key__").is_empty());
        assert_eq!(
            data_key_errors("bad key")[0].to_string(),
            format!("data[bad key]: Invalid value: \"bad key\": {CONFIG_KEY_MSG}")
        );
        assert_eq!(
            data_key_errors("..")[0].to_string(),
            "data[..]: Invalid value: \"..\": must not be '..'"
        );
        assert_eq!(
            data_key_errors(&"a".repeat(254))[0].detail,
            "must be no more than 253 characters"
        );
    }

    /// `ValidateOwnerReferences`, message for message.
    #[test]
    fn owner_references() {
        let errors = |refs: serde_json::Value| {
            let mut out = Vec::new();
            owner_reference_errors(refs.as_array().unwrap(), &mut out);
            out.iter().map(ToString::to_string).collect::<Vec<_>>()
        };
        let full = |name: &str| serde_json::json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name, "uid": "u"});
        assert!(errors(serde_json::json!([full("a"), full("b")])).is_empty());
        assert_eq!(
            errors(serde_json::json!([{"apiVersion": "apps/", "kind": "", "name": "", "uid": ""}])),
            [
                "metadata.ownerReferences.apiVersion: Invalid value: \"apps/\": version must not be empty",
                "metadata.ownerReferences.kind: Invalid value: \"\": kind must not be empty",
                "metadata.ownerReferences.name: Invalid value: \"\": name must not be empty",
                "metadata.ownerReferences.uid: Invalid value: \"\": uid must not be empty",
            ]
        );
        for unparsed in ["", "/", "a/b/v1"] {
            let mut r = full("a");
            r["apiVersion"] = unparsed.into();
            assert_eq!(errors(serde_json::json!([r])).len(), 1, "{unparsed:?}");
        }
        let event =
            serde_json::json!({"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "u"});
        let found = errors(serde_json::json!([event]));
        assert_eq!(found.len(), 1);
        assert!(
            found[0].ends_with("/v1, Kind=Event is disallowed from being an owner"),
            "{found:?}"
        );
        let (mut a, mut b) = (full("a"), full("b"));
        a["controller"] = true.into();
        b["controller"] = true.into();
        let found = errors(serde_json::json!([a, b]));
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with("metadata.ownerReferences: Invalid value: ")
                && found[0].ends_with(
                    "Only one reference can have Controller set to true. Found \"true\" in references for ReplicaSet/a and ReplicaSet/b"
                ),
            "{found:?}"
        );
    }

    /// An update that leaves owner references as they were is not refused for them (an
    /// object stored before they were checked stays writable); one that changes them is.
    #[test]
    fn owner_references_an_update_leaves_alone_are_not_judged_again() {
        let mut old = Secret::default();
        old.meta.name = "s".into();
        old.meta.owner_references =
            vec![serde_json::json!({"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": ""})];
        let mut new = old.clone();
        new.data.insert("k".into(), b"v".to_vec());
        assert!(validate_secret_update(&new, &old).is_empty());
        assert_eq!(validate_secret(&new).len(), 1);
        new.meta.owner_references[0]["name"] = "q".into();
        let errors = validate_secret_update(&new, &old);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "metadata.ownerReferences.uid");
    }

    #[test]
    fn label_values() {
        assert!(label_value_ok("") && label_value_ok("a__b") && label_value_ok("development"));
        assert!(
            !label_value_ok("bad value!")
                && !label_value_ok("a_")
                && !label_value_ok(&"a".repeat(64))
        );
    }
}
