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
use std::time::Duration;

/// Every key, its default, and its type. Canonical spelling (as in Go's YAML).
/// The default of a configuration key, as the schema declares it (the one place defaults live).
pub fn default_of(key: &str) -> &'static str {
    SCHEMA
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, default, _)| *default)
        .unwrap_or_else(|| panic!("{key} is not a configuration key"))
}

const SCHEMA: &[(&str, &str, Kind)] = &[
    ("secret.server.host", "0.0.0.0", Kind::Str),
    ("secret.server.port", "8093", Kind::Port),
    ("secret.server.requestTimeout", "60s", Kind::Duration),
    ("secret.server.headerReadTimeout", "10s", Kind::Duration),
    ("secret.server.idleTimeout", "120s", Kind::Duration),
    (
        "secret.server.http2KeepaliveInterval",
        "60s",
        Kind::Duration,
    ),
    ("secret.server.http2KeepaliveTimeout", "20s", Kind::Duration),
    ("secret.server.http2MaxConcurrentStreams", "200", Kind::Int),
    ("secret.server.maxConnections", "4096", Kind::Int),
    ("secret.server.maxConcurrentRequests", "1024", Kind::Int),
    ("secret.server.shutdownGrace", "30s", Kind::Duration),
    ("secret.webhookURL", "http://localhost:9444", Kind::Str),
    ("secret.kubernetes.kubeconfig", "", Kind::Str),
    ("secret.kubernetes.namespace", "flyte", Kind::Str),
    ("secret.kubernetes.qps", "100", Kind::Int),
    ("secret.kubernetes.burst", "200", Kind::Int),
    ("secret.kubernetes.timeout", "30s", Kind::Duration),
    ("secret.kubernetes.clusterName", "flyte-devbox", Kind::Str),
    ("secret.strictNames", "true", Kind::Bool),
    ("secret.embedded.dataDir", "", Kind::Str),
    ("secret.embedded.ephemeral", "false", Kind::Bool),
    ("secret.embedded.kubeApiListen", "", Kind::Str),
    ("secret.embedded.writeKubeconfig", "", Kind::Str),
    ("secret.embedded.testFaultInjection", "false", Kind::Bool),
    ("secret.embedded.encryption.keyFile", "", Kind::Str),
    ("secret.log.format", "text", Kind::Str),
    ("secret.tracing.otlpEndpoint", "", Kind::Str),
    ("secret.server.tls.certFile", "", Kind::Str),
    ("secret.server.tls.keyFile", "", Kind::Str),
    ("secret.server.tls.clientCAFile", "", Kind::Str),
    ("secret.auth.jwt.issuer", "", Kind::Str),
    ("secret.auth.jwt.audiences", "", Kind::List),
    ("secret.auth.jwt.jwksURL", "", Kind::Str),
    ("secret.auth.jwt.jwksFile", "", Kind::Str),
    ("secret.auth.jwt.usernameClaim", "sub", Kind::Str),
    ("secret.auth.jwt.groupsClaim", "groups", Kind::Str),
    ("secret.auth.kubernetes.tokenReview", "false", Kind::Bool),
    ("secret.auth.kubernetes.audiences", "", Kind::List),
    ("secret.auth.policy", "", Kind::List),
    ("secret.audit.path", "", Kind::Str),
    ("secret.embedded.tokenAuthFile", "", Kind::Str),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Port,
    Bool,
    Duration,
    /// A YAML sequence in files; YAML/JSON text (or, for strings, comma-separated) elsewhere.
    List,
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

/// The typed configuration the process runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The configured host, and whether it was set explicitly (embedded mode binds loopback
    /// unless it was).
    pub host: String,
    pub host_explicit: bool,
    pub port: u16,
    /// The longest any request may run; clients may ask for less.
    pub request_timeout: Duration,
    pub webhook_url: String,
    pub kubeconfig: String,
    pub namespace: String,
    pub qps: i64,
    pub burst: i64,
    pub timeout: Option<Duration>,
    pub cluster_name: String,
    pub strict_names: bool,
    pub data_dir: Option<PathBuf>,
    pub ephemeral: bool,
    pub kube_api_listen: Option<String>,
    pub write_kubeconfig: Option<PathBuf>,
    /// Serve the fault-injection endpoint on the kube-api face (tests only).
    pub test_fault_injection: bool,
    /// Connection limits and timeouts (`secret.server.*`).
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    /// `None` when `secret.server.http2KeepaliveInterval` is 0.
    pub http2_keepalive_interval: Option<Duration>,
    pub http2_keepalive_timeout: Duration,
    pub http2_max_concurrent_streams: u32,
    pub max_connections: usize,
    pub max_concurrent_requests: usize,
    pub shutdown_grace: Duration,
    /// Key (32 bytes, base64) sealing the embedded store's records at rest; none: plaintext.
    pub encryption_key_file: Option<PathBuf>,
    pub log_json: bool,
    /// Where to export traces over OTLP/gRPC; empty leaves tracing off.
    pub otlp_endpoint: String,
    /// `secret.server.tls`: TLS on the service port when set.
    pub tls: Option<TlsConfig>,
    /// `secret.auth`: who may call, and what they may do.
    pub auth: AuthConfig,
    /// `secret.audit.path`: `-` for stdout, a file, or nothing.
    pub audit_path: Option<String>,
    /// kube-apiserver's static token file for the embedded engine's HTTP face.
    pub token_auth_file: Option<PathBuf>,
}

/// `secret.server.tls`.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Set: client certificates are required and verified against it (mTLS).
    pub client_ca_file: Option<PathBuf>,
}

/// `secret.auth.jwt`.
#[derive(Clone, Debug, PartialEq)]
pub struct JwtConfig {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub jwks_url: Option<String>,
    pub jwks_file: Option<PathBuf>,
    pub username_claim: String,
    pub groups_claim: String,
}

/// `secret.auth`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuthConfig {
    pub jwt: Option<JwtConfig>,
    /// Accept Kubernetes ServiceAccount tokens through TokenReview.
    pub token_review: bool,
    pub token_review_audiences: Vec<String>,
    /// `None` (absent): any authenticated caller may do everything.
    pub policy: Option<Vec<crate::auth::policy::Rule>>,
}

/// The `--secret.*` flags for `--help`: one per configuration key, with its default.
pub fn flags_help() -> String {
    let mut out =
        String::from("Every configuration key is also a flag (the Go service's spelling):\n");
    for (key, default, _) in SCHEMA {
        out.push_str(&format!("  --{key} VALUE   (default {default:?})\n"));
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
    SCHEMA
        .iter()
        .map(|(k, _, _)| (edit_distance(&k.to_ascii_lowercase(), key_lower), *k))
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

fn canonical(key_lower: &str) -> Option<(&'static str, &'static str, Kind)> {
    SCHEMA
        .iter()
        .copied()
        .find(|(k, _, _)| k.to_ascii_lowercase() == key_lower)
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

/// Every key's value and where it came from, after the layers (defaults, files, env, flags).
type Layered = BTreeMap<&'static str, (String, Source)>;

fn layered(
    files: &[PathBuf],
    env: impl Fn(&str) -> Option<String>,
    flags: &[(String, String)],
) -> Result<Layered, ConfigError> {
    let mut values: Layered = SCHEMA
        .iter()
        .map(|(k, d, _)| (*k, (d.to_string(), Source::Default)))
        .collect();
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
                Some((key, _, _)) => {
                    values.insert(key, (v, Source::File(path.clone())));
                }
                None => return Err(unknown_key(Source::File(path.clone()), &k)),
            }
        }
    }
    for (key, _, _) in SCHEMA {
        let dotted = key.to_ascii_uppercase().replace('-', "_");
        for name in [dotted.clone(), dotted.replace('.', "_")] {
            if let Some(v) = env(&name) {
                values.insert(key, (v, Source::Env(name)));
                break;
            }
        }
    }
    for (k, v) in flags {
        let (key, _, _) =
            canonical(&k.to_ascii_lowercase()).ok_or_else(|| unknown_key(Source::Flag, k))?;
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
    let get = |key: &str| -> (&String, &Source) {
        let (v, s) = &values[key];
        (v, s)
    };
    let invalid = |key: &str, reason: String| {
        let (v, s) = get(key);
        ConfigError::Invalid {
            origin: s.clone(),
            key: key.to_owned(),
            value: v.clone(),
            reason,
        }
    };
    let text = |key: &str| get(key).0.clone();
    let int = |key: &str| {
        get(key)
            .0
            .trim()
            .parse::<i64>()
            .map_err(|_| invalid(key, "expected an integer".into()))
    };
    let boolean = |key: &str| match get(key).0.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "t" | "yes" => Ok(true),
        "false" | "0" | "f" | "no" | "" => Ok(false),
        _ => Err(invalid(key, "expected true or false".into())),
    };
    let port = get("secret.server.port")
        .0
        .trim()
        .parse::<u16>()
        .map_err(|_| {
            invalid(
                "secret.server.port",
                "expected a port number (0-65535)".into(),
            )
        })?;
    let timeout_text = text("secret.kubernetes.timeout");
    let timeout = if timeout_text.is_empty() {
        None
    } else {
        Some(
            crate::gostr::parse_go_duration(&timeout_text)
                .map_err(|r| invalid("secret.kubernetes.timeout", r))?,
        )
    };
    let request_timeout = crate::gostr::parse_go_duration(&text("secret.server.requestTimeout"))
        .map_err(|r| invalid("secret.server.requestTimeout", r))?;
    if request_timeout.is_zero() {
        return Err(invalid(
            "secret.server.requestTimeout",
            "must be more than zero".into(),
        ));
    }
    let duration =
        |key: &str| crate::gostr::parse_go_duration(&text(key)).map_err(|r| invalid(key, r));
    let positive_duration = |key: &str| {
        let d = duration(key)?;
        if d.is_zero() {
            return Err(invalid(key, "must be more than zero".into()));
        }
        Ok(d)
    };
    let positive_int = |key: &str, max: i64| {
        let n = int(key)?;
        if n <= 0 || n > max {
            return Err(invalid(key, format!("must be between 1 and {max}")));
        }
        Ok(n)
    };
    // Go's client-go turns qps <= 0 into its default and burst <= 0 into an error at the first
    // call; refuse both here, where the mistake is made.
    let qps = int("secret.kubernetes.qps")?;
    if qps <= 0 {
        return Err(invalid(
            "secret.kubernetes.qps",
            "must be more than zero (the limit protects a real API server; the embedded engine has none)".into(),
        ));
    }
    let burst = positive_int("secret.kubernetes.burst", i64::from(u32::MAX))?;
    let namespace = text("secret.kubernetes.namespace");
    if !crate::k8s_rules::is_namespace_name(&namespace) {
        return Err(invalid(
            "secret.kubernetes.namespace",
            "not a valid namespace name (a lowercase RFC 1123 label: at most 63 characters, lower case letters, digits and '-', starting and ending with a letter or digit)".into(),
        ));
    }
    let keepalive = duration("secret.server.http2KeepaliveInterval")?;
    let log_format = text("secret.log.format");
    if !matches!(log_format.as_str(), "text" | "json") {
        return Err(invalid("secret.log.format", "expected text or json".into()));
    }
    let non_empty = |key: &str| Some(text(key)).filter(|s| !s.is_empty());
    let list = |key: &str| -> Result<Vec<String>, ConfigError> {
        let t = text(key);
        let t = t.trim();
        if t.is_empty() {
            return Ok(Vec::new());
        }
        if t.starts_with('[') || t.starts_with('-') {
            return serde_yaml::from_str::<Vec<String>>(t)
                .map_err(|e| invalid(key, format!("expected a list of strings: {e}")));
        }
        Ok(t.split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect())
    };
    let tls = match (
        non_empty("secret.server.tls.certFile"),
        non_empty("secret.server.tls.keyFile"),
    ) {
        (Some(cert), Some(key)) => Some(TlsConfig {
            cert_file: PathBuf::from(cert),
            key_file: PathBuf::from(key),
            client_ca_file: non_empty("secret.server.tls.clientCAFile").map(PathBuf::from),
        }),
        (None, None) if non_empty("secret.server.tls.clientCAFile").is_none() => None,
        (None, None) => {
            return Err(invalid(
                "secret.server.tls.clientCAFile",
                "needs secret.server.tls.certFile and keyFile".into(),
            ));
        }
        (Some(_), None) => {
            return Err(invalid(
                "secret.server.tls.keyFile",
                "needed with secret.server.tls.certFile".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "secret.server.tls.certFile",
                "needed with secret.server.tls.keyFile".into(),
            ));
        }
    };
    let jwt_url = non_empty("secret.auth.jwt.jwksURL");
    let jwt_file = non_empty("secret.auth.jwt.jwksFile");
    let jwt_issuer = text("secret.auth.jwt.issuer");
    let jwt = if jwt_url.is_none() && jwt_file.is_none() && jwt_issuer.is_empty() {
        None
    } else {
        if jwt_url.is_some() == jwt_file.is_some() {
            return Err(invalid(
                "secret.auth.jwt.jwksURL",
                "set exactly one of secret.auth.jwt.jwksURL and secret.auth.jwt.jwksFile".into(),
            ));
        }
        if jwt_issuer.is_empty() {
            return Err(invalid(
                "secret.auth.jwt.issuer",
                "required when JWT authentication is configured".into(),
            ));
        }
        let audiences = list("secret.auth.jwt.audiences")?;
        if audiences.is_empty() {
            return Err(invalid(
                "secret.auth.jwt.audiences",
                "name at least one audience".into(),
            ));
        }
        Some(JwtConfig {
            issuer: jwt_issuer,
            audiences,
            jwks_url: jwt_url,
            jwks_file: jwt_file.map(PathBuf::from),
            username_claim: text("secret.auth.jwt.usernameClaim"),
            groups_claim: text("secret.auth.jwt.groupsClaim"),
        })
    };
    let policy_text = text("secret.auth.policy");
    let policy = if policy_text.trim().is_empty() {
        None
    } else {
        Some(
            crate::auth::policy::parse_rules(&policy_text)
                .map_err(|r| invalid("secret.auth.policy", r))?,
        )
    };
    let auth = AuthConfig {
        jwt,
        token_review: boolean("secret.auth.kubernetes.tokenReview")?,
        token_review_audiences: list("secret.auth.kubernetes.audiences")?,
        policy,
    };
    Ok(Config {
        host: text("secret.server.host"),
        host_explicit: get("secret.server.host").1 != &Source::Default,
        port,
        request_timeout,
        webhook_url: text("secret.webhookURL"),
        kubeconfig: text("secret.kubernetes.kubeconfig"),
        namespace,
        qps,
        burst,
        timeout,
        cluster_name: text("secret.kubernetes.clusterName"),
        strict_names: boolean("secret.strictNames")?,
        data_dir: non_empty("secret.embedded.dataDir").map(PathBuf::from),
        ephemeral: boolean("secret.embedded.ephemeral")?,
        kube_api_listen: non_empty("secret.embedded.kubeApiListen"),
        write_kubeconfig: non_empty("secret.embedded.writeKubeconfig").map(PathBuf::from),
        test_fault_injection: boolean("secret.embedded.testFaultInjection")?,
        header_read_timeout: positive_duration("secret.server.headerReadTimeout")?,
        idle_timeout: positive_duration("secret.server.idleTimeout")?,
        http2_keepalive_interval: Some(keepalive).filter(|d| !d.is_zero()),
        http2_keepalive_timeout: positive_duration("secret.server.http2KeepaliveTimeout")?,
        http2_max_concurrent_streams: positive_int(
            "secret.server.http2MaxConcurrentStreams",
            i64::from(u32::MAX),
        )? as u32,
        max_connections: positive_int("secret.server.maxConnections", 1 << 20)? as usize,
        max_concurrent_requests: positive_int("secret.server.maxConcurrentRequests", 1 << 20)?
            as usize,
        shutdown_grace: duration("secret.server.shutdownGrace")?,
        encryption_key_file: non_empty("secret.embedded.encryption.keyFile").map(PathBuf::from),
        log_json: log_format == "json",
        otlp_endpoint: text("secret.tracing.otlpEndpoint"),
        tls,
        auth,
        audit_path: non_empty("secret.audit.path"),
        token_auth_file: non_empty("secret.embedded.tokenAuthFile").map(PathBuf::from),
    })
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
    let mut keys: Vec<&str> = SCHEMA.iter().map(|(key, _, _)| *key).collect();
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

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_match_go() {
        let c = load(&[], no_env, &[]).unwrap();
        assert_eq!(
            (c.host.as_str(), c.host_explicit, c.port),
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
        let dir = std::env::temp_dir().join(format!("flytesecret-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
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
        let dir = std::env::temp_dir().join(format!("flytesecret-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
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
        let dir = std::env::temp_dir().join(format!("flytesecret-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
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
        assert_eq!(c.http2_keepalive_interval, None);
    }

    #[test]
    fn effective_config_is_valid_yaml_with_sources_and_redacts_credentials() {
        let dir = std::env::temp_dir().join(format!("flytesecret-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
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
        let dir = std::env::temp_dir().join(format!("flytesecret-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("config.yaml");
        std::fs::write(
            &file,
            "secret:\n  server:\n    tls: {certFile: /c.crt, keyFile: /c.key}\n  auth:\n    jwt:\n      issuer: https://idp\n      audiences: [a, b]\n      jwksFile: /jwks.json\n    policy:\n      - subjects: [alice, \"group:ml\"]\n        verbs: [get]\n        domains: [\"\"]\n        projects: [\"*\"]\n  audit: {path: \"-\"}\n",
        )
        .unwrap();
        let c = load(std::slice::from_ref(&file), no_env, &[]).unwrap();
        let jwt = c.auth.jwt.clone().unwrap();
        assert_eq!(jwt.audiences, ["a", "b"]);
        assert_eq!(
            (jwt.username_claim.as_str(), jwt.groups_claim.as_str()),
            ("sub", "groups")
        );
        let policy = c.auth.policy.clone().unwrap();
        assert_eq!(policy[0].subjects, ["alice", "group:ml"]);
        assert_eq!(policy[0].domains, [""]);
        assert_eq!(c.audit_path.as_deref(), Some("-"));
        let tls = c.tls.clone().unwrap();
        assert_eq!(
            (tls.cert_file.to_str(), tls.client_ca_file),
            (Some("/c.crt"), None)
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
        assert_eq!(c.auth.jwt.unwrap().audiences, ["x", "y"]);
        assert_eq!(c.auth.policy.unwrap()[0].subjects, ["bob"]);
        // flags: an empty policy list allows nothing (and differs from no policy)
        let flags = vec![("secret.auth.policy".to_owned(), "[]".to_owned())];
        let c = load(std::slice::from_ref(&file), no_env, &flags).unwrap();
        assert_eq!(c.auth.policy, Some(vec![]));
        assert_eq!(load(&[], no_env, &[]).unwrap().auth, AuthConfig::default());
        std::fs::remove_dir_all(dir).unwrap();
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
    }
}
