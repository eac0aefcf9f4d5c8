//! Who is calling: authentication of every RPC request (JWT bearer tokens, Kubernetes
//! ServiceAccount tokens through TokenReview, client certificates), and the request context
//! (caller, peer, request id) the service reads to authorize and audit each RPC.
//!
//! [`gate`] is the one entry: it authenticates a request, answers `unauthenticated` itself in the
//! request's protocol, and otherwise runs the rest of the request inside the caller's
//! [`RequestContext`] (a task-local, so every protocol adapter sees it without plumbing).

pub mod jwt;
pub mod policy;
pub mod tokenreview;

use crate::audit::{AuditLog, AuditRecord};
use crate::server::Body;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, header};
use http_body_util::BodyExt as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// How a caller proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// No authentication is configured.
    None,
    Jwt,
    /// A Kubernetes token accepted by TokenReview.
    TokenReview,
    /// A verified client certificate (mTLS), used when no token was sent.
    Certificate,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::Jwt => "jwt",
            AuthMethod::TokenReview => "tokenreview",
            AuthMethod::Certificate => "certificate",
        }
    }
}

/// The authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The user name (`sub` or the configured claim, a ServiceAccount user name, `cert:<CN>`);
    /// empty for an anonymous caller.
    pub subject: String,
    pub groups: Vec<String>,
    pub method: AuthMethod,
}

impl Caller {
    pub fn anonymous() -> Caller {
        Caller {
            subject: String::new(),
            groups: Vec::new(),
            method: AuthMethod::None,
        }
    }
}

/// The verbs of the authorization policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Create,
    Get,
    Update,
    Delete,
    List,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Get => "get",
            Verb::Update => "update",
            Verb::Delete => "delete",
            Verb::List => "list",
        }
    }
}

/// What one request carries from the edge to the RPC: caller, peer address, request id.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub caller: Caller,
    pub peer: Option<SocketAddr>,
    pub request_id: String,
}

tokio::task_local! {
    static REQUEST: Arc<RequestContext>;
}

/// The context of the request being served, when there is one (direct in-process calls have none).
pub fn current() -> Option<Arc<RequestContext>> {
    REQUEST.try_with(Arc::clone).ok()
}

/// Runs `f` with `ctx` as the current request context.
pub async fn with_context<F: Future>(ctx: RequestContext, f: F) -> F::Output {
    REQUEST.scope(Arc::new(ctx), f).await
}

pub use crate::listener::ConnInfo;

/// Why a request was not authenticated (logged; the client only sees a generic message).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Rejection(pub String);

/// The configured authenticators. With none configured every caller is anonymous and allowed
/// through (the drop-in default).
pub struct Authenticator {
    jwt: Option<jwt::JwtVerifier>,
    token_review: Option<tokenreview::TokenReviewer>,
    client_certs: bool,
}

impl Authenticator {
    pub fn new(
        jwt: Option<jwt::JwtVerifier>,
        token_review: Option<tokenreview::TokenReviewer>,
        client_certs: bool,
    ) -> Authenticator {
        Authenticator {
            jwt,
            token_review,
            client_certs,
        }
    }

    /// The authenticators `cfg` configures; TokenReviews go to `kube`.
    pub fn from_config(
        cfg: &crate::config::Config,
        kube: &kube::Client,
    ) -> anyhow::Result<Authenticator> {
        let jwt = cfg
            .auth
            .jwt
            .enabled()
            .then(|| jwt::JwtVerifier::new(&cfg.auth.jwt))
            .transpose()?;
        let token_review = cfg.auth.token_review.then(|| {
            tokenreview::TokenReviewer::new(kube.clone(), cfg.auth.token_review_audiences.clone())
        });
        let client_certs = cfg.tls.files().is_some() && cfg.tls.client_ca_file.is_some();
        Ok(Self::new(jwt, token_review, client_certs))
    }

    /// No authentication at all.
    pub fn disabled() -> Authenticator {
        Self::new(None, None, false)
    }

    pub fn is_enabled(&self) -> bool {
        self.jwt.is_some() || self.token_review.is_some() || self.client_certs
    }

    /// Authenticates a request from its headers and its connection's client certificate.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        client_cn: Option<&str>,
    ) -> Result<Caller, Rejection> {
        if !self.is_enabled() {
            return Ok(Caller::anonymous());
        }
        let token = match bearer_token(headers) {
            Ok(t) => t,
            Err(e) => return Err(e),
        };
        let Some(token) = token else {
            return match client_cn {
                Some(cn) => Ok(Caller {
                    subject: format!("cert:{cn}"),
                    groups: Vec::new(),
                    method: AuthMethod::Certificate,
                }),
                None => Err(Rejection("no bearer token".into())),
            };
        };
        let mut reasons = Vec::new();
        if let Some(jwt) = &self.jwt {
            match jwt.verify(token).await {
                Ok(caller) => return Ok(caller),
                Err(e) => reasons.push(format!("jwt: {e}")),
            }
        }
        if let Some(tr) = &self.token_review {
            match tr.review(token).await {
                Ok(caller) => return Ok(caller),
                Err(e) => reasons.push(format!("tokenreview: {e}")),
            }
        }
        if reasons.is_empty() {
            reasons.push("bearer tokens are not accepted here (only client certificates)".into());
        }
        Err(Rejection(reasons.join("; ")))
    }
}

/// The bearer token of an `authorization` header; `Ok(None)` when there is no such header.
fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, Rejection> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| Rejection("malformed authorization header".into()))?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or_else(|| Rejection("malformed authorization header".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Rejection(
            "the authorization header is not a bearer token".into(),
        ));
    }
    Ok(Some(token.trim()))
}

/// Paths that never need a caller: probes, metrics, the gRPC health service and `SelectCluster`
/// (clients call it before anything else to find the endpoint).
pub fn is_open_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
        || path == "/flyteidl2.cluster.ClusterService/SelectCluster"
        || path.starts_with("/grpc.health.v1.Health/")
}

const DRAIN_LIMIT: usize = 64 * 1024;
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

const UNAUTHENTICATED: &str = "unauthenticated: a valid bearer token is required";

/// The `unauthenticated` answer in the request's protocol: gRPC and gRPC-Web get status 16 in
/// headers (a trailers-only response), everything else HTTP 401 with a Connect error body; all
/// with `WWW-Authenticate: Bearer`.
pub fn unauthenticated_response(content_type: &str) -> Response<Body> {
    let builder = Response::builder().header(header::WWW_AUTHENTICATE, "Bearer");
    let grpc = content_type.starts_with("application/grpc");
    if grpc {
        builder
            .status(200)
            .header(header::CONTENT_TYPE, content_type)
            .header("grpc-status", "16")
            .header(
                "grpc-message",
                "unauthenticated:%20a%20valid%20bearer%20token%20is%20required",
            )
            .body(Body::empty())
            .expect("valid response")
    } else {
        let body = serde_json::json!({"code": "unauthenticated", "message": UNAUTHENTICATED});
        builder
            .status(401)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::new(http_body_util::Full::new(Bytes::from(
                body.to_string(),
            ))))
            .expect("valid response")
    }
}

/// The request id: the client's `x-request-id` when it is a short printable token, else a new one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The edge of every request: authenticates it (open paths excepted), answers `unauthenticated`
/// itself (and audits it), or runs `next` inside the request's [`RequestContext`]. The response
/// carries the request id in `x-request-id`.
pub async fn gate<B, F, Fut>(
    auth: &Authenticator,
    audit: Option<&AuditLog>,
    req: Request<B>,
    next: F,
) -> Response<Body>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    F: FnOnce(Request<B>) -> Fut,
    Fut: Future<Output = Response<Body>>,
{
    let conn = req
        .extensions()
        .get::<ConnInfo>()
        .cloned()
        .unwrap_or_default();
    let request_id = request_id(req.headers());
    let path = req.uri().path().to_owned();
    let caller = if is_open_path(&path) {
        Ok(Caller::anonymous())
    } else {
        auth.authenticate(req.headers(), conn.client_cn.as_deref())
            .await
    };
    let mut resp = match caller {
        Ok(caller) => {
            let ctx = RequestContext {
                caller,
                peer: conn.peer,
                request_id: request_id.clone(),
            };
            with_context(ctx, next(req)).await
        }
        Err(reason) => {
            tracing::info!(path = %path, peer = ?conn.peer, request_id = %request_id, reason = %reason, "unauthenticated request refused");
            if let Some(audit) = audit {
                audit.write(&AuditRecord {
                    caller: &Caller::anonymous(),
                    peer: conn.peer,
                    method: path.trim_start_matches('/'),
                    secret: None,
                    code: "unauthenticated",
                    request_id: &request_id,
                });
            }
            let (parts, body) = req.into_parts();
            // Read a small request body before answering, so HTTP/2 clients see a cleanly
            // closed stream rather than a reset (larger bodies are simply cut off).
            let drain = http_body_util::Limited::new(body, DRAIN_LIMIT).collect();
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain).await;
            let content_type = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            unauthenticated_response(content_type)
        }
    };
    if let Ok(v) = http::HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn unauthenticated_speaks_each_protocol() {
        for ct in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc-web+proto",
        ] {
            let r = unauthenticated_response(ct);
            assert_eq!(r.status(), 200, "{ct}");
            assert_eq!(r.headers()["grpc-status"], "16", "{ct}");
            assert_eq!(r.headers()["content-type"], ct);
            assert_eq!(r.headers()["www-authenticate"], "Bearer");
        }
        for ct in [
            "application/json",
            "application/proto",
            "",
            "application/connect+proto",
        ] {
            let r = unauthenticated_response(ct);
            assert_eq!(r.status(), 401, "{ct}");
            assert_eq!(r.headers()["www-authenticate"], "Bearer");
            assert!(r.headers().get("grpc-status").is_none());
        }
    }

    #[tokio::test]
    async fn callers_come_from_tokens_or_client_certificates() {
        let off = Authenticator::disabled();
        assert_eq!(
            off.authenticate(&HeaderMap::new(), None).await.unwrap(),
            Caller::anonymous()
        );
        let mtls = Authenticator::new(None, None, true);
        let c = mtls
            .authenticate(&HeaderMap::new(), Some("robot"))
            .await
            .unwrap();
        assert_eq!(
            (c.subject.as_str(), c.method),
            ("cert:robot", AuthMethod::Certificate)
        );
        assert!(mtls.authenticate(&HeaderMap::new(), None).await.is_err());
        // a token that nothing here can verify is refused, even with a certificate
        let h = headers(&[("authorization", "Bearer abc")]);
        assert!(mtls.authenticate(&h, Some("robot")).await.is_err());
        let h = headers(&[("authorization", "Basic abc")]);
        assert!(bearer_token(&h).is_err());
        let h = headers(&[("authorization", "bearer  tok ")]);
        assert_eq!(bearer_token(&h).unwrap(), Some("tok"));
    }

    #[test]
    fn request_ids_are_kept_when_sane() {
        assert_eq!(
            request_id(&headers(&[("x-request-id", "abc-1.2:3")])),
            "abc-1.2:3"
        );
        let fresh = request_id(&headers(&[("x-request-id", "has space")]));
        assert_eq!(fresh.len(), 36);
        assert!(is_open_path("/healthz") && is_open_path("/grpc.health.v1.Health/Check"));
        assert!(!is_open_path("/flyteidl2.secret.SecretService/GetSecret"));
        assert!(!is_open_path(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
    }
}
