//! Every configuration key, declared once: its field, type, canonical spelling (as in the Go
//! service's YAML), default and parser. The schema (`--help`, `flytesecret config`, unknown-key
//! suggestions), the structs and the loader are all generated from these declarations.

use super::ConfigError;
use super::settings::{Values, invalid, settings};
use std::path::{Path, PathBuf};
use std::time::Duration;

settings! {
    /// The typed configuration the process runs with.
    pub struct Config {
        /// Where to listen (embedded mode binds loopback unless this was set).
        host: Host = "secret.server.host", "0.0.0.0", host;
        port: u16 = "secret.server.port", "8093", port;
        /// The longest any request may run; clients may ask for less.
        request_timeout: Duration = "secret.server.requestTimeout", "60s", positive_duration;
        limits: Limits;
        tls: TlsConfig;
        /// Where secret changes are announced (the Flyte webhook's cache invalidation).
        webhook_url: String = "secret.webhookURL", "http://localhost:9444", text;
        /// A kubeconfig file naming the API server to use; empty: in-cluster, else embedded.
        kubeconfig: String = "secret.kubernetes.kubeconfig", "", text;
        /// The namespace every Secret lives in.
        namespace: String = "secret.kubernetes.namespace", "flyte", namespace;
        /// Requests per second to a real API server (the embedded engine has no limit).
        qps: i64 = "secret.kubernetes.qps", "100", qps;
        burst: u32 = "secret.kubernetes.burst", "200", count(i64::from(u32::MAX));
        /// Each call's limit with a real API server (the embedded engine's calls are bounded by
        /// the request deadline); zero or empty: none.
        timeout: Option<Duration> = "secret.kubernetes.timeout", "30s", optional_duration;
        /// The cluster `SelectCluster` answers with.
        cluster_name: String = "secret.kubernetes.clusterName", "flyte-devbox", text;
        /// Refuse names the Go service would store but task pods could not find.
        strict_names: bool = "secret.strictNames", "true", boolean;
        /// The embedded store's directory (default: the user's data directory).
        data_dir: Option<PathBuf> = "secret.embedded.dataDir", "", non_empty;
        /// Keep the embedded store in memory only.
        ephemeral: bool = "secret.embedded.ephemeral", "false", boolean;
        /// Also serve the embedded engine's Kubernetes API on this address (for kubectl).
        kube_api_listen: Option<String> = "secret.embedded.kubeApiListen", "", non_empty;
        /// Write a kubeconfig for that API to this file.
        write_kubeconfig: Option<PathBuf> = "secret.embedded.writeKubeconfig", "", non_empty;
        /// Serve the fault-injection endpoint on the kube-api face (tests only).
        test_fault_injection: bool = "secret.embedded.testFaultInjection", "false", boolean;
        /// Key (32 bytes, base64) sealing the embedded store's records at rest; none: plaintext.
        encryption_key_file: Option<PathBuf> = "secret.embedded.encryption.keyFile", "", non_empty;
        /// kube-apiserver's static token file for the embedded engine's HTTP face.
        token_auth_file: Option<PathBuf> = "secret.embedded.tokenAuthFile", "", non_empty;
        /// Log lines as `text` or `json`.
        log_format: LogFormat = "secret.log.format", "text", log_format;
        /// Where to export traces over OTLP/gRPC; empty leaves tracing off.
        otlp_endpoint: String = "secret.tracing.otlpEndpoint", "", text;
        auth: AuthConfig;
        /// The audit log: `-` for stdout, a file, or nothing.
        audit_path: Option<String> = "secret.audit.path", "", non_empty;
    }
}

settings! {
    /// Connection limits and timeouts (`secret.server.*`), shared by both listeners.
    pub struct Limits {
        /// A connection must complete each request head within this time of its first byte
        /// (and send its first byte within this time of being accepted).
        header_read_timeout: Duration = "secret.server.headerReadTimeout", "10s", positive_duration;
        /// A connection with no request in flight for this long is closed (HTTP/2: GOAWAY).
        idle_timeout: Duration = "secret.server.idleTimeout", "120s", positive_duration;
        /// HTTP/2 keepalive pings after this long without frames; zero sends none.
        http2_keepalive_interval: Option<Duration> = "secret.server.http2KeepaliveInterval", "60s", optional_duration;
        /// An unanswered keepalive ping closes the connection after this long.
        http2_keepalive_timeout: Duration = "secret.server.http2KeepaliveTimeout", "20s", positive_duration;
        /// Concurrent streams per HTTP/2 connection.
        http2_max_concurrent_streams: u32 = "secret.server.http2MaxConcurrentStreams", "200", count(i64::from(u32::MAX));
        /// Open connections at most; further clients wait in the listen backlog.
        max_connections: usize = "secret.server.maxConnections", "4096", count(1 << 20);
        /// RPCs running at once on the service port (the pipeline's concurrency step).
        max_concurrent_requests: usize = "secret.server.maxConcurrentRequests", "1024", count(1 << 20);
        /// How long busy connections get to finish after shutdown begins.
        shutdown_grace: Duration = "secret.server.shutdownGrace", "30s", duration;
    }
}

settings! {
    /// `secret.server.tls`: TLS on the service port when a certificate is set.
    pub struct TlsConfig {
        cert_file: Option<PathBuf> = "secret.server.tls.certFile", "", non_empty;
        key_file: Option<PathBuf> = "secret.server.tls.keyFile", "", non_empty;
        /// Set: client certificates are required and verified against it (mTLS).
        client_ca_file: Option<PathBuf> = "secret.server.tls.clientCAFile", "", non_empty;
    }
}

settings! {
    /// `secret.auth`: who may call, and what they may do.
    pub struct AuthConfig {
        jwt: JwtConfig;
        /// Accept Kubernetes ServiceAccount tokens through TokenReview.
        token_review: bool = "secret.auth.kubernetes.tokenReview", "false", boolean;
        token_review_audiences: Vec<String> = "secret.auth.kubernetes.audiences", "", list;
        /// Absent: any authenticated caller may do everything.
        policy: Option<Vec<crate::auth::policy::Rule>> = "secret.auth.policy", "", policy;
    }
}

settings! {
    /// `secret.auth.jwt`: bearer JWTs verified against a JWKS.
    pub struct JwtConfig {
        issuer: String = "secret.auth.jwt.issuer", "", text;
        audiences: Vec<String> = "secret.auth.jwt.audiences", "", list;
        jwks_url: Option<String> = "secret.auth.jwt.jwksURL", "", non_empty;
        jwks_file: Option<PathBuf> = "secret.auth.jwt.jwksFile", "", non_empty;
        username_claim: String = "secret.auth.jwt.usernameClaim", "sub", text;
        groups_claim: String = "secret.auth.jwt.groupsClaim", "groups", text;
    }
}

/// The configured bind host.
#[derive(Clone, Debug, PartialEq)]
pub struct Host {
    pub name: String,
    /// Set by a file, the environment or a flag (not the default).
    pub explicit: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl TlsConfig {
    /// The certificate and key, when TLS is on.
    pub fn files(&self) -> Option<(&Path, &Path)> {
        Some((self.cert_file.as_deref()?, self.key_file.as_deref()?))
    }

    fn check(&self, values: &Values) -> Result<(), ConfigError> {
        match (&self.cert_file, &self.key_file) {
            (Some(_), Some(_)) => Ok(()),
            (None, None) if self.client_ca_file.is_none() => Ok(()),
            (None, None) => Err(invalid(
                values,
                "secret.server.tls.clientCAFile",
                "needs secret.server.tls.certFile and keyFile",
            )),
            (Some(_), None) => Err(invalid(
                values,
                "secret.server.tls.keyFile",
                "needed with secret.server.tls.certFile",
            )),
            (None, Some(_)) => Err(invalid(
                values,
                "secret.server.tls.certFile",
                "needed with secret.server.tls.keyFile",
            )),
        }
    }
}

impl JwtConfig {
    /// JWT authentication is configured (any of its keys is set).
    pub fn enabled(&self) -> bool {
        self.jwks_url.is_some() || self.jwks_file.is_some() || !self.issuer.is_empty()
    }

    fn check(&self, values: &Values) -> Result<(), ConfigError> {
        if !self.enabled() {
            return Ok(());
        }
        if self.jwks_url.is_some() == self.jwks_file.is_some() {
            return Err(invalid(
                values,
                "secret.auth.jwt.jwksURL",
                "set exactly one of secret.auth.jwt.jwksURL and secret.auth.jwt.jwksFile",
            ));
        }
        if self.issuer.is_empty() {
            return Err(invalid(
                values,
                "secret.auth.jwt.issuer",
                "required when JWT authentication is configured",
            ));
        }
        if self.audiences.is_empty() {
            return Err(invalid(
                values,
                "secret.auth.jwt.audiences",
                "name at least one audience",
            ));
        }
        Ok(())
    }
}

impl Config {
    /// The rules that span several keys.
    pub(crate) fn check(&self, values: &Values) -> Result<(), ConfigError> {
        self.tls.check(values)?;
        self.auth.jwt.check(values)
    }
}
