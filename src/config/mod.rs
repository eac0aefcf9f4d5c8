//! Configuration: a YAML file with a top-level `secret:` section shaped like the Go service's,
//! overridable by environment variables and flags, with Go's defaults and spellings.
//!
//! Layers, lowest first: defaults, files, environment, flags. Keys are case-insensitive (as with
//! Go's viper); values are weakly typed (`"8093"` is a fine port). Environment variables are
//! spelled like Go's (`SECRET.KUBERNETES.NAMESPACE`, dots kept), and also with underscores
//! (`SECRET_KUBERNETES_NAMESPACE`) for shells. Errors name the source, the key and the bad value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

mod keys;
pub(crate) mod settings;
pub(crate) mod value;

pub use keys::{AuthConfig, Config, Host, JwtConfig, Limits, LogFormat, TlsConfig};
pub use settings::Key;
use settings::Values;

/// Every key, in declaration order (see `keys.rs`, the one place keys are declared).
pub fn schema() -> &'static [Key] {
    static SCHEMA: std::sync::LazyLock<Vec<Key>> = std::sync::LazyLock::new(|| {
        let mut keys = Vec::new();
        Config::keys(&mut keys);
        keys
    });
    &SCHEMA
}

/// The default of a configuration key, as declared.
pub fn default_of(key: &str) -> &'static str {
    schema()
        .iter()
        .find(|k| k.name == key)
        .map(|k| k.default)
        .unwrap_or_else(|| panic!("{key} is not a configuration key"))
}

/// Where a value came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(String),
    Flag,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("the default"),
            Source::File(p) => write!(f, "config file {}", p.display()),
            Source::Env(name) => write!(f, "environment variable {name}"),
            Source::Flag => f.write_str("command-line flag"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}: key {key}: invalid value {value:?}: {reason}")]
    Invalid {
        origin: Source,
        key: String,
        value: String,
        reason: String,
    },
    #[error("config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("unknown configuration key {key:?} ({origin}){}", did_you_mean(*.suggestion))]
    UnknownKey {
        origin: Source,
        key: String,
        suggestion: Option<&'static str>,
    },
    #[error("--config {pattern:?} matches no file")]
    NoMatch { pattern: String },
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!("; did you mean {s:?}?"))
}

/// The `--secret.*` flags for `--help`: one per configuration key, with its default.
pub fn flags_help() -> String {
    let mut out =
        String::from("Every configuration key is also a flag (the Go service's spelling):\n");
    for key in schema() {
        out.push_str(&format!(
            "  --{} VALUE   (default {:?})",
            key.name, key.default
        ));
        if !key.doc.is_empty() {
            let doc: Vec<&str> = key.doc.iter().map(|line| line.trim()).collect();
            out.push_str(&format!("\n      {}", doc.join(" ")));
        }
        out.push('\n');
    }
    out
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// The known key closest to a misspelled one, when it is close enough to be a likely typo.
fn suggestion(key_lower: &str) -> Option<&'static str> {
    schema()
        .iter()
        .map(|k| {
            (
                edit_distance(&k.name.to_ascii_lowercase(), key_lower),
                k.name,
            )
        })
        .filter(|(d, k)| *d <= 3.max(k.len() / 8))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn unknown_key(origin: Source, key: &str) -> ConfigError {
    ConfigError::UnknownKey {
        origin,
        key: key.to_owned(),
        suggestion: suggestion(&key.to_ascii_lowercase()),
    }
}

/// The canonical spelling of a key given in any case.
fn canonical(key_lower: &str) -> Option<&'static str> {
    schema()
        .iter()
        .find(|k| k.name.to_ascii_lowercase() == key_lower)
        .map(|k| k.name)
}

/// Flattens a YAML mapping to `lowercased.dotted.keys` → scalar text.
fn flatten(
    prefix: &str,
    v: &serde_yaml::Value,
    out: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    match v {
        serde_yaml::Value::Mapping(m) => {
            for (k, v) in m {
                let k = match k {
                    serde_yaml::Value::String(s) => s.to_ascii_lowercase(),
                    other => return Err(format!("non-string key {other:?}")),
                };
                let key = if prefix.is_empty() {
                    k
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out)?;
            }
        }
        serde_yaml::Value::Null => {
            out.insert(prefix.to_owned(), String::new());
        }
        serde_yaml::Value::Bool(b) => {
            out.insert(prefix.to_owned(), b.to_string());
        }
        serde_yaml::Value::Number(n) => {
            out.insert(prefix.to_owned(), n.to_string());
        }
        serde_yaml::Value::String(s) => {
            out.insert(prefix.to_owned(), s.clone());
        }
        serde_yaml::Value::Sequence(_) => {
            // Lists (audiences, policy) keep their structure as YAML text, parsed by kind.
            let text = serde_yaml::to_string(v).map_err(|e| format!("key {prefix}: {e}"))?;
            out.insert(prefix.to_owned(), text);
        }
        other => return Err(format!("key {prefix}: expected a scalar, got {other:?}")),
    }
    Ok(())
}

/// The files a `--config` value names: a path or a glob (`*` in the file name); with no value,
/// every existing one of Go's default locations.
pub fn config_files(config: Option<&str>) -> Result<Vec<PathBuf>, ConfigError> {
    let Some(pattern) = config.filter(|c| !c.is_empty()) else {
        return Ok(["config.yaml", "/etc/flyte/config/config.yaml"]
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.is_file())
            .collect());
    };
    let path = Path::new(pattern);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !name.contains('*') {
        return Ok(vec![path.to_owned()]);
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let (head, tail) = name.split_once('*').unwrap_or((name, ""));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ConfigError::File {
            path: dir.to_owned(),
            reason: e.to_string(),
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(head) && n.ends_with(tail) && n.len() >= head.len() + tail.len()
            })
        })
        .collect();
    if files.is_empty() {
        return Err(ConfigError::NoMatch {
            pattern: pattern.to_owned(),
        });
    }
    files.sort();
    Ok(files)
}

/// Every key's text and where it came from, after the layers (defaults, files, env, flags).
fn layered(
    files: &[PathBuf],
    env: impl Fn(&str) -> Option<String>,
    flags: &[(String, String)],
) -> Result<Values, ConfigError> {
    let mut values = settings::defaults();
    for path in files {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let yaml: serde_yaml::Value =
            serde_yaml::from_str(&text).map_err(|e| ConfigError::File {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let mut flat = BTreeMap::new();
        flatten("", &yaml, &mut flat).map_err(|reason| ConfigError::File {
            path: path.clone(),
            reason,
        })?;
        for (k, v) in flat {
            if !k.starts_with("secret.") {
                continue; // other sections belong to other services
            }
            match canonical(&k) {
                Some(key) => {
                    values.insert(key, (v, Source::File(path.clone())));
                }
                None => return Err(unknown_key(Source::File(path.clone()), &k)),
            }
        }
    }
    for key in schema().iter().map(|k| k.name) {
        let dotted = key.to_ascii_uppercase().replace('-', "_");
        for name in [dotted.clone(), dotted.replace('.', "_")] {
            if let Some(v) = env(&name) {
                values.insert(key, (v, Source::Env(name)));
                break;
            }
        }
    }
    for (k, v) in flags {
        let key = canonical(&k.to_ascii_lowercase()).ok_or_else(|| unknown_key(Source::Flag, k))?;
        values.insert(key, (v.clone(), Source::Flag));
    }
    Ok(values)
}

/// Builds the configuration from files, an environment and flags (`key` → value).
pub fn load(
    files: &[PathBuf],
    env: impl Fn(&str) -> Option<String>,
    flags: &[(String, String)],
) -> Result<Config, ConfigError> {
    let values = layered(files, env, flags)?;
    let config = Config::read(&values)?;
    config.check(&values)?;
    Ok(config)
}

/// What a redacted value is shown as.
pub const REDACTED: &str = "<redacted>";

/// A value as `flytesecret config` may print it: keys that name a credential are hidden whole,
/// and a password in a URL's user info (`https://user:pass@host`) is replaced.
fn redact(key: &str, value: &str) -> String {
    let leaf = key.rsplit('.').next().unwrap_or(key).to_ascii_lowercase();
    let credential = [
        "password",
        "secret",
        "token",
        "apikey",
        "credentials",
        "bearer",
    ]
    .iter()
    .any(|w| leaf.ends_with(w));
    if credential && !value.is_empty() {
        return REDACTED.to_owned();
    }
    if let Some((scheme, rest)) = value.split_once("://") {
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        if let Some((userinfo, host)) = authority.rsplit_once('@') {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            return format!("{scheme}://{user}:{REDACTED}@{host}{tail}");
        }
    }
    value.to_owned()
}

/// The effective configuration as YAML (`flytesecret config`): every key with the value the
/// process would run with, credentials redacted, each followed by where it came from. Fails
/// exactly as `serve` would on a bad file, key or value.
pub fn render_effective(
    files: &[PathBuf],
    env: impl Fn(&str) -> Option<String>,
    flags: &[(String, String)],
) -> Result<String, ConfigError> {
    let values = layered(files, &env, flags)?;
    load(files, &env, flags)?;
    let mut out = String::from("# effective configuration: defaults, then ");
    if files.is_empty() {
        out.push_str("no config file");
    } else {
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        out.push_str(&names.join(", "));
    }
    out.push_str(", then environment variables, then flags\n");
    let mut open: Vec<&str> = Vec::new();
    // Keys grouped by section (stable, so each section keeps the schema's order), so every
    // YAML mapping is written once.
    let mut keys: Vec<&str> = schema().iter().map(|k| k.name).collect();
    keys.sort_by_key(|key| {
        let mut parts: Vec<&str> = key.split('.').collect();
        parts.pop();
        parts
    });
    for key in keys {
        let (value, source) = &values[key];
        let parts: Vec<&str> = key.split('.').collect();
        let (leaf, sections) = parts.split_last().expect("keys are dotted");
        let common = open
            .iter()
            .zip(sections)
            .take_while(|(a, b)| a == b)
            .count();
        open.truncate(common);
        for section in &sections[common..] {
            out.push_str(&format!("{}{section}:\n", "  ".repeat(open.len())));
            open.push(section);
        }
        let shown = serde_json::to_string(&redact(key, value)).expect("a string serializes");
        out.push_str(&format!(
            "{}{leaf}: {shown}  # {source}\n",
            "  ".repeat(open.len())
        ));
    }
    Ok(out)
}

/// Expands a leading `~/` the way Go's config does for the kubeconfig path.
pub fn expand_home(path: &str) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => dirs::home_dir().unwrap_or_default().join(rest),
        None => PathBuf::from(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A fresh directory for a test's configuration files (the test removes it).
    fn temp_config_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("flytesecret-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_match_go() {
        let c = load(&[], no_env, &[]).unwrap();
        assert_eq!(
            (c.host.name.as_str(), c.host.explicit, c.port),
            ("0.0.0.0", false, 8093)
        );
        assert_eq!(c.webhook_url, "http://localhost:9444");
        assert_eq!((c.namespace.as_str(), c.qps, c.burst), ("flyte", 100, 200));
        assert_eq!(c.timeout, Some(Duration::from_secs(30)));
        assert_eq!(c.cluster_name, "flyte-devbox");
        assert!(c.strict_names);
        assert_eq!(c.encryption_key_file, None);
    }

    #[test]
    fn the_encryption_key_file_comes_from_files_env_and_flags() {
        let env = |name: &str| {
            (name == "SECRET_EMBEDDED_ENCRYPTION_KEYFILE").then(|| "/from/env".to_owned())
        };
        assert_eq!(
            load(&[], env, &[]).unwrap().encryption_key_file,
            Some(PathBuf::from("/from/env"))
        );
        let flags = vec![(
            "secret.embedded.encryption.keyFile".to_owned(),
            "/from/flag".to_owned(),
        )];
        assert_eq!(
            load(&[], env, &flags).unwrap().encryption_key_file,
            Some(PathBuf::from("/from/flag"))
        );
        let dir = temp_config_dir();
        let file = dir.join("config.yaml");
        std::fs::write(
            &file,
            "secret:\n  embedded:\n    encryption:\n      keyFile: /from/file\n",
        )
        .unwrap();
        assert_eq!(
            load(std::slice::from_ref(&file), no_env, &[])
                .unwrap()
                .encryption_key_file,
            Some(PathBuf::from("/from/file"))
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn precedence_is_flags_env_files_defaults_and_keys_ignore_case() {
        let dir = temp_config_dir();
        let file = dir.join("config.yaml");
        std::fs::write(&file, "secret:\n  server: { port: \"9000\" }\n  kubernetes:\n    NAMESPACE: from-file\n    clustername: c1\nother: { x: 1 }\n").unwrap();
        let env = |name: &str| match name {
            "SECRET.KUBERNETES.NAMESPACE" => Some("from-env".to_owned()),
            "SECRET_KUBERNETES_QPS" => Some("7".to_owned()),
            _ => None,
        };
        let flags = vec![(
            "secret.kubernetes.clusterName".to_owned(),
            "from-flag".to_owned(),
        )];
        let c = load(std::slice::from_ref(&file), env, &flags).unwrap();
        assert_eq!(
            (c.port, c.namespace.as_str(), c.qps, c.cluster_name.as_str()),
            (9000, "from-env", 7, "from-flag")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn errors_name_source_key_and_value() {
        let env = |name: &str| (name == "SECRET.SERVER.PORT").then(|| "eighty".to_owned());
        let e = load(&[], env, &[]).unwrap_err().to_string();
        assert_eq!(
            e,
            "environment variable SECRET.SERVER.PORT: key secret.server.port: invalid value \"eighty\": expected a port number (0-65535)"
        );
        let flags = vec![("secret.kubernetes.timeout".to_owned(), "30".to_owned())];
        let e = load(&[], no_env, &flags).unwrap_err().to_string();
        assert!(
            e.contains("key secret.kubernetes.timeout") && e.contains("missing unit"),
            "{e}"
        );
    }

    fn yaml(text: &str) -> (PathBuf, PathBuf) {
        let dir = temp_config_dir();
        let file = dir.join("config.yaml");
        std::fs::write(&file, text).unwrap();
        (dir, file)
    }

    /// Issue 9, item 10: a misspelled key in a file used to be ignored with a warning.
    #[test]
    fn unknown_file_keys_are_refused_with_a_suggestion() {
        let (dir, file) = yaml("secret:\n  kubernetes:\n    namspace: x\n");
        let e = load(std::slice::from_ref(&file), no_env, &[])
            .unwrap_err()
            .to_string();
        std::fs::remove_dir_all(dir).unwrap();
        assert!(e.contains("\"secret.kubernetes.namspace\""), "{e}");
        assert!(
            e.contains("did you mean \"secret.kubernetes.namespace\"?"),
            "{e}"
        );
        let flags = vec![("secret.server.prot".to_owned(), "1".to_owned())];
        let e = load(&[], no_env, &flags).unwrap_err().to_string();
        assert!(e.contains("did you mean \"secret.server.port\"?"), "{e}");
        let flags = vec![("secret.nothing.like.it".to_owned(), "1".to_owned())];
        let e = load(&[], no_env, &flags).unwrap_err().to_string();
        assert!(!e.contains("did you mean"), "{e}");
    }

    #[test]
    fn a_glob_that_matches_nothing_is_an_error() {
        let (dir, _file) = yaml("secret: {}\n");
        let found = config_files(Some(&format!("{}/config*.yaml", dir.display()))).unwrap();
        assert_eq!(found.len(), 1);
        let e = config_files(Some(&format!("{}/nomatch*.yaml", dir.display())))
            .unwrap_err()
            .to_string();
        std::fs::remove_dir_all(dir).unwrap();
        assert!(e.contains("matches no file"), "{e}");
    }

    #[test]
    fn qps_burst_namespace_and_limits_are_validated() {
        for (key, value, expect) in [
            ("secret.kubernetes.qps", "0", "more than zero"),
            ("secret.kubernetes.qps", "-1", "more than zero"),
            ("secret.kubernetes.burst", "0", "between 1 and"),
            (
                "secret.kubernetes.namespace",
                "Bad_NS",
                "not a valid namespace name",
            ),
            (
                "secret.kubernetes.namespace",
                "",
                "not a valid namespace name",
            ),
            ("secret.server.maxConnections", "0", "between 1 and"),
            ("secret.server.headerReadTimeout", "0", "more than zero"),
            ("secret.server.idleTimeout", "0", "more than zero"),
        ] {
            let flags = vec![(key.to_owned(), value.to_owned())];
            let e = load(&[], no_env, &flags).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(expect), "{key}={value}: {e}");
        }
        let flags = vec![(
            "secret.server.http2KeepaliveInterval".to_owned(),
            "0".to_owned(),
        )];
        let c = load(&[], no_env, &flags).unwrap();
        assert_eq!(c.limits.http2_keepalive_interval, None);
    }

    #[test]
    fn effective_config_is_valid_yaml_with_sources_and_redacts_credentials() {
        let dir = temp_config_dir();
        let file = dir.join("config.yaml");
        std::fs::write(
            &file,
            "secret:\n  kubernetes: { namespace: from-file }\n  webhookURL: http://hook:s3cr3tpw@webhook:9444/x\n",
        )
        .unwrap();
        let env = |name: &str| (name == "SECRET_KUBERNETES_QPS").then(|| "7".to_owned());
        let flags = vec![("secret.server.port".to_owned(), "9000".to_owned())];
        let text = render_effective(std::slice::from_ref(&file), env, &flags).unwrap();
        assert!(!text.contains("s3cr3tpw"), "{text}");
        let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let s = &yaml["secret"];
        assert_eq!(s["kubernetes"]["namespace"].as_str(), Some("from-file"));
        assert_eq!(s["kubernetes"]["qps"].as_str(), Some("7"));
        assert_eq!(s["server"]["port"].as_str(), Some("9000"));
        assert_eq!(s["server"]["host"].as_str(), Some("0.0.0.0"));
        assert_eq!(
            s["webhookURL"].as_str(),
            Some("http://hook:<redacted>@webhook:9444/x")
        );
        assert!(text.contains("qps: \"7\"  # environment variable SECRET_KUBERNETES_QPS"));
        assert!(text.contains("port: \"9000\"  # command-line flag"));
        assert!(text.contains(&format!(
            "namespace: \"from-file\"  # config file {}",
            file.display()
        )));
        // The rendered file is itself a configuration that loads to the same values.
        let again = dir.join("again.yaml");
        std::fs::write(&again, &text).unwrap();
        let reloaded = load(std::slice::from_ref(&again), no_env, &[]).unwrap();
        assert_eq!((reloaded.port, reloaded.qps), (9000, 7));
        // A bad value fails as it would for `serve`.
        let bad = vec![("secret.kubernetes.timeout".to_owned(), "30".to_owned())];
        assert!(render_effective(&[], no_env, &bad).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn credential_keys_are_hidden_whole() {
        assert_eq!(redact("secret.auth.oidc.clientSecret", "abc"), REDACTED);
        assert_eq!(redact("secret.auth.apiToken", "abc"), REDACTED);
        assert_eq!(redact("secret.auth.apiToken", ""), "");
        assert_eq!(redact("secret.embedded.encryption.keyFile", "/k"), "/k");
        assert_eq!(
            redact("secret.tracing.otlpEndpoint", "https://u@h:4317"),
            "https://u:<redacted>@h:4317"
        );
        assert_eq!(redact("secret.server.host", "0.0.0.0"), "0.0.0.0");
    }

    #[test]
    fn security_keys_take_lists_from_files_env_and_flags() {
        let dir = temp_config_dir();
        let file = dir.join("config.yaml");
        std::fs::write(
            &file,
            "secret:\n  server:\n    tls: {certFile: /c.crt, keyFile: /c.key}\n  auth:\n    jwt:\n      issuer: https://idp\n      audiences: [a, b]\n      jwksFile: /jwks.json\n    policy:\n      - subjects: [alice, \"group:ml\"]\n        verbs: [get]\n        domains: [\"\"]\n        projects: [\"*\"]\n  audit: {path: \"-\"}\n",
        )
        .unwrap();
        let c = load(std::slice::from_ref(&file), no_env, &[]).unwrap();
        assert!(c.auth.jwt.enabled());
        let jwt = c.auth.jwt.clone();
        assert_eq!(jwt.audiences, ["a", "b"]);
        assert_eq!(
            (jwt.username_claim.as_str(), jwt.groups_claim.as_str()),
            ("sub", "groups")
        );
        let policy = c.auth.policy.clone().unwrap();
        assert_eq!(policy[0].subjects, ["alice", "group:ml"]);
        assert_eq!(policy[0].domains, [""]);
        assert_eq!(c.audit_path.as_deref(), Some("-"));
        assert_eq!(
            (c.tls.files(), c.tls.client_ca_file.as_deref()),
            (Some((Path::new("/c.crt"), Path::new("/c.key"))), None)
        );
        // environment: comma-separated lists, the policy as YAML/JSON text
        let env = |name: &str| match name {
            "SECRET_AUTH_JWT_AUDIENCES" => Some("x, y".to_owned()),
            "SECRET_AUTH_POLICY" => Some(
                r#"[{"subjects":["bob"],"verbs":["*"],"domains":["*"],"projects":["*"]}]"#
                    .to_owned(),
            ),
            _ => None,
        };
        let c = load(std::slice::from_ref(&file), env, &[]).unwrap();
        assert_eq!(c.auth.jwt.audiences, ["x", "y"]);
        assert_eq!(c.auth.policy.unwrap()[0].subjects, ["bob"]);
        // flags: an empty policy list allows nothing (and differs from no policy)
        let flags = vec![("secret.auth.policy".to_owned(), "[]".to_owned())];
        let c = load(std::slice::from_ref(&file), no_env, &flags).unwrap();
        assert_eq!(c.auth.policy, Some(vec![]));
        assert_eq!(load(&[], no_env, &[]).unwrap().auth, AuthConfig::default());
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Each key is declared once (issue 15): no two declarations share a spelling, in any case,
    /// and `--help` shows every key with its default and the doc of the field it fills.
    #[test]
    fn keys_are_declared_once_and_documented_in_help() {
        let mut seen = std::collections::BTreeSet::new();
        for key in schema() {
            assert!(
                seen.insert(key.name.to_ascii_lowercase()),
                "{} is declared twice",
                key.name
            );
            assert!(key.name.starts_with("secret."), "{}", key.name);
        }
        assert!(seen.len() >= 40, "{}", seen.len());
        let help = flags_help();
        for key in schema() {
            assert!(
                help.contains(&format!(
                    "--{} VALUE   (default {:?})",
                    key.name, key.default
                )),
                "{help}"
            );
        }
        assert!(
            help.contains("Requests per second to a real API server"),
            "{help}"
        );
        // A group's Default is its declared defaults, as the loader reads them.
        let c = load(&[], no_env, &[]).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.limits, Limits::default());
        assert_eq!(default_of("secret.server.maxConnections"), "4096");
        assert_eq!(c.limits.max_connections, 4096);
    }

    #[test]
    fn cross_key_rules_name_the_key_to_fix() {
        for (flags, key, expect) in [
            (
                vec![("secret.server.tls.certFile", "/c")],
                "secret.server.tls.keyFile",
                "needed with",
            ),
            (
                vec![("secret.server.tls.clientCAFile", "/ca")],
                "secret.server.tls.clientCAFile",
                "needs secret.server.tls.certFile",
            ),
            (
                vec![("secret.auth.jwt.issuer", "https://i")],
                "secret.auth.jwt.jwksURL",
                "exactly one",
            ),
            (
                vec![
                    ("secret.auth.jwt.issuer", "https://i"),
                    ("secret.auth.jwt.jwksFile", "/j"),
                ],
                "secret.auth.jwt.audiences",
                "at least one audience",
            ),
        ] {
            let flags: Vec<(String, String)> = flags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let e = load(&[], no_env, &flags).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(expect), "{flags:?}: {e}");
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(
            crate::gostr::parse_go_duration("1m30s").unwrap(),
            Duration::from_secs(90)
        );
        assert_eq!(
            crate::gostr::parse_go_duration("500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(
            crate::gostr::parse_go_duration("0").unwrap(),
            Duration::ZERO
        );
        assert!(crate::gostr::parse_go_duration("abc").is_err());
        // Longer than Go's int64 nanoseconds, or than any Duration (found by fuzzing: it
        // panicked in Duration::from_secs_f64): an invalid duration, as Go says.
        assert_eq!(
            crate::gostr::parse_go_duration("2562047h").unwrap(),
            Duration::from_secs(2_562_047 * 3600)
        );
        let huge = format!("{}s", "9".repeat(400)); // infinite as a float
        for long in ["2562048h", "1m304444444444444444444444444444444444s", &huge] {
            assert_eq!(
                crate::gostr::parse_go_duration(long),
                Err(format!("time: invalid duration \"{long}\"")),
                "{long}"
            );
        }
    }
}
