//! The process: one port, one place where requests enter ([`dispatch`]), routed by path and
//! content type to gRPC/gRPC-Web (tonic), Connect, or the health endpoints; the Kubernetes
//! backend (kubeconfig, in-cluster, or the embedded engine); readiness; graceful shutdown.

pub mod connect;
mod connect_stream;
pub mod grpc;
pub mod rest;
pub mod tls;

use crate::config::{Config, expand_home};
use crate::invalidation::Invalidator;
use crate::kubeapi::{self, Durability, Engine};
use crate::proto::flyteidl2::cluster::cluster_service_server::ClusterServiceServer;
use crate::proto::flyteidl2::secret::secret_service_server::SecretServiceServer;
use crate::service::{KubeBackend, SecretService, Settings};
use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;

/// Every response body on the service port.
pub type Body = tonic::body::Body;

/// The largest request accepted on any protocol: Kubernetes caps a Secret at 1 MiB.
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// How long in-flight requests get to finish after SIGTERM.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

pub fn plain(code: u16, text: &'static str) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::new(Full::new(Bytes::from_static(text.as_bytes()))))
        .expect("valid response")
}

/// What a request needs, shared by every connection.
pub struct App {
    pub service: Arc<SecretService>,
    grpc: tonic::service::Routes,
    grpc_web: tonic_web::GrpcWebService<tonic::service::Routes>,
    ready: AtomicBool,
    health: tonic_health::server::HealthReporter,
    /// The longest any request may run (clients may ask for less).
    request_timeout: Duration,
}

impl App {
    pub fn new(service: Arc<SecretService>, request_timeout: Duration) -> Arc<App> {
        use tonic::codec::CompressionEncoding::Gzip;
        let secret = SecretServiceServer::new(grpc::GrpcSecretService(service.clone()))
            .max_decoding_message_size(MAX_REQUEST_BYTES)
            .accept_compressed(Gzip)
            .send_compressed(Gzip);
        let cluster = ClusterServiceServer::new(grpc::GrpcClusterService(service.clone()))
            .max_decoding_message_size(MAX_REQUEST_BYTES)
            .accept_compressed(Gzip)
            .send_compressed(Gzip);
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .build_v1()
            .expect("our descriptor set is valid");
        let reflection_alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .expect("our descriptor set is valid");
        let (health, health_service) = tonic_health::server::health_reporter();
        let routes = tonic::service::Routes::new(secret)
            .add_service(cluster)
            .add_service(reflection)
            .add_service(reflection_alpha)
            .add_service(health_service);
        let grpc_web = tower::Layer::layer(&tonic_web::GrpcWebLayer::new(), routes.clone());
        Arc::new(App {
            service,
            grpc: routes,
            grpc_web,
            ready: AtomicBool::new(false),
            health,
            request_timeout,
        })
    }

    /// Marks the process ready (`/readyz` and the gRPC health service report serving).
    pub async fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
        self.health
            .set_serving::<SecretServiceServer<grpc::GrpcSecretService>>()
            .await;
        self.health
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// The protocol of a request, decided once from its content type and path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Grpc,
    GrpcWeb,
    ConnectStream,
    Connect,
    Rest,
    Plain,
}

fn protocol_of(content_type: &str, path: &str) -> Protocol {
    if connect_stream::is_connect_stream(content_type) {
        Protocol::ConnectStream
    } else if content_type.starts_with("application/grpc-web") {
        Protocol::GrpcWeb
    } else if content_type.starts_with("application/grpc") {
        Protocol::Grpc
    } else if connect::is_connect_path(path) {
        Protocol::Connect
    } else if rest::is_rest_path(path) {
        Protocol::Rest
    } else {
        Protocol::Plain
    }
}

/// Go's `grpc-timeout` header: digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The deadline a request runs under: the client's (`grpc-timeout`, `connect-timeout-ms`),
/// bounded by the server's own per-request limit.
fn deadline(headers: &http::HeaderMap, server_limit: Duration) -> Duration {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let client = header("grpc-timeout")
        .and_then(parse_grpc_timeout)
        .or_else(|| {
            header("connect-timeout-ms")
                .and_then(|v| v.trim().parse().ok())
                .map(Duration::from_millis)
        });
    client.map_or(server_limit, |c| c.min(server_limit))
}

/// The reply when a request runs out of time, in its protocol's terms.
fn deadline_exceeded(protocol: Protocol) -> Response<Body> {
    let e = crate::service::RpcError::new(
        crate::service::Code::DeadlineExceeded,
        "the request deadline was exceeded",
    );
    match protocol {
        Protocol::Grpc | Protocol::GrpcWeb | Protocol::ConnectStream => {
            let content_type = match protocol {
                Protocol::Grpc => "application/grpc",
                Protocol::GrpcWeb => "application/grpc-web+proto",
                _ => connect_stream::CONTENT_TYPE,
            };
            Response::builder()
                .status(200)
                .header(header::CONTENT_TYPE, content_type)
                .header("grpc-status", "4")
                .header("grpc-message", "the%20request%20deadline%20was%20exceeded")
                .body(Body::empty())
                .expect("valid response")
        }
        Protocol::Rest => rest::error_response(&e),
        _ => connect::error_response(&e),
    }
}

/// tonic answers an oversized gRPC message with `out_of_range`; the contract (and connect-go)
/// says `resource_exhausted`.
fn oversized_is_resource_exhausted(mut resp: Response<Body>) -> Response<Body> {
    let h = resp.headers_mut();
    let oversized = h.get("grpc-status").is_some_and(|v| v == "11")
        && h.get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| {
                m.contains("message%20length%20too%20large")
                    || m.contains("message length too large")
            });
    if oversized {
        h.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    resp
}

/// The one place where requests enter.
pub async fn dispatch(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let protocol = protocol_of(content_type, req.uri().path());
    if protocol == Protocol::Plain {
        return plain_route(&app, req.uri().path());
    }
    let limit = deadline(req.headers(), app.request_timeout);
    match tokio::time::timeout(limit, route(app, req, protocol)).await {
        Ok(resp) => resp,
        Err(_) => deadline_exceeded(protocol),
    }
}

fn plain_route(app: &App, path: &str) -> Response<Body> {
    match path {
        "/healthz" => plain(200, "OK"),
        "/metrics" => Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "text/plain; version=0.0.4")
            .body(Body::new(Full::new(Bytes::from(
                app.service.metrics().render(),
            ))))
            .expect("valid response"),
        "/readyz" if app.is_ready() => plain(200, "OK"),
        "/readyz" => plain(503, "not ready: the Kubernetes API has not answered yet"),
        _ => plain(404, "404 page not found\n"),
    }
}

async fn collect_limited(body: Incoming) -> Result<Bytes, crate::service::RpcError> {
    match Limited::new(body, MAX_REQUEST_BYTES + 1).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(_) => Err(crate::service::RpcError::new(
            crate::service::Code::ResourceExhausted,
            format!("request message is larger than the limit of {MAX_REQUEST_BYTES} bytes"),
        )),
    }
}

async fn route(app: Arc<App>, req: Request<Incoming>, protocol: Protocol) -> Response<Body> {
    match protocol {
        Protocol::ConnectStream => {
            if req.version() < http::Version::HTTP_2 {
                return plain(505, "Connect streaming requires HTTP/2 here\n");
            }
            let req = connect_stream::to_grpc_request(req);
            match tower::ServiceExt::oneshot(app.grpc.clone(), req).await {
                Ok(resp) => connect_stream::from_grpc_response(resp),
                Err(never) => match never {},
            }
        }
        Protocol::GrpcWeb => match tower::ServiceExt::oneshot(app.grpc_web.clone(), req).await {
            Ok(resp) => oversized_is_resource_exhausted(resp),
            Err(e) => {
                tracing::warn!(error = %e, "gRPC-Web transport error");
                plain(500, "internal error")
            }
        },
        Protocol::Grpc => {
            if req.version() < http::Version::HTTP_2 {
                // gRPC needs HTTP/2 trailers; refuse before running anything (gRPC-Web and
                // Connect are the HTTP/1.1 protocols).
                return plain(505, "gRPC requires HTTP/2\n");
            }
            match tower::ServiceExt::oneshot(app.grpc.clone(), req).await {
                Ok(resp) => oversized_is_resource_exhausted(resp),
                Err(never) => match never {},
            }
        }
        Protocol::Connect => {
            let (parts, body) = req.into_parts();
            match collect_limited(body).await {
                Ok(bytes) => {
                    connect::handle(
                        app.service.clone(),
                        &parts.method,
                        &parts.headers,
                        parts.uri.path(),
                        bytes,
                    )
                    .await
                }
                Err(e) => connect::error_response(&e),
            }
        }
        Protocol::Rest => {
            let (parts, body) = req.into_parts();
            match collect_limited(body).await {
                Ok(bytes) => {
                    rest::handle(
                        app.service.clone(),
                        &parts.method,
                        parts.uri.path(),
                        parts.uri.query(),
                        bytes,
                    )
                    .await
                }
                Err(e) => rest::error_response(&e),
            }
        }
        Protocol::Plain => plain_route(&app, req.uri().path()),
    }
}

/// The Kubernetes side of the process.
pub struct Backend {
    pub client: kube::Client,
    /// Set when the embedded engine is in use.
    pub engine: Option<Arc<Engine>>,
    /// Where the embedded engine's HTTP face listens, when enabled.
    pub kube_api_addr: Option<SocketAddr>,
}

async fn kube_config_client(c: &Config) -> Result<kube::Client> {
    let mut kc = if !c.kubeconfig.is_empty() {
        let path = expand_home(&c.kubeconfig);
        let kubeconfig = kube::config::Kubeconfig::read_from(&path)
            .with_context(|| format!("reading kubeconfig {}", path.display()))?;
        kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .with_context(|| format!("loading kubeconfig {}", path.display()))?
    } else {
        kube::Config::incluster().context("loading in-cluster Kubernetes configuration")?
    };
    // Faults surface as `internal` at once, as with client-go without Retry-After; the service
    // bounds each call with `secret.kubernetes.timeout` itself.
    kc.default_retry = false;
    kc.read_timeout = None;
    kube::Client::try_from(kc).context("building the Kubernetes client")
}

/// Picks the backend: a kubeconfig if configured, else in-cluster, else the embedded engine.
pub async fn backend(c: &Config) -> Result<Backend> {
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    if !c.kubeconfig.is_empty() || in_cluster {
        return Ok(Backend {
            client: kube_config_client(c).await?,
            engine: None,
            kube_api_addr: None,
        });
    }
    let durability = if c.ephemeral {
        Durability::Memory
    } else {
        let dir = c.data_dir.clone().unwrap_or_else(|| {
            dirs::data_dir()
                .unwrap_or_else(std::env::temp_dir)
                .join("flytesecret")
                .join("kube")
        });
        Durability::Directory(dir)
    };
    let engine = Engine::open(&durability)
        .with_context(|| format!("opening the embedded Kubernetes store ({durability:?})"))?;
    if let Some(path) = &c.token_auth_file {
        engine
            .set_token_file(
                kubeapi::tokens::TokenFile::load(path)
                    .map_err(|e| anyhow::anyhow!("token file {e}"))?,
            )
            .map_err(|e| anyhow::anyhow!("kube-api TLS: {e}"))?;
    }
    let mut kube_api_addr = None;
    if let Some(listen) = &c.kube_api_listen {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the embedded Kubernetes API on {listen}"))?;
        let addr = listener.local_addr()?;
        if let Some(path) = &c.write_kubeconfig {
            kubeapi::http_face::write_kubeconfig(path, addr, &c.namespace, &engine)
                .with_context(|| format!("writing kubeconfig {}", path.display()))?;
        }
        tokio::spawn(kubeapi::http_face::serve(engine.clone(), listener));
        kube_api_addr = Some(addr);
    }
    tracing::info!(store = ?durability, kube_api = ?kube_api_addr, "using the embedded Kubernetes engine");
    Ok(Backend {
        client: engine.kube_client(&c.namespace),
        engine: Some(engine),
        kube_api_addr,
    })
}

/// Builds the service over a backend (with the policy, and the audit log when configured).
pub fn service(
    c: &Config,
    backend: &Backend,
    audit: Option<Arc<crate::audit::AuditLog>>,
) -> Arc<SecretService> {
    let kube = KubeBackend::new(
        backend.client.clone(),
        c.qps as f64,
        c.burst.max(1) as u32,
        c.timeout,
    );
    let settings = Settings {
        namespace: c.namespace.clone(),
        cluster_name: c.cluster_name.clone(),
        strict_names: c.strict_names,
        ..Settings::default()
    };
    Arc::new(
        SecretService::new(kube, settings, Invalidator::new(&c.webhook_url))
            .with_security(c.auth.policy.clone(), audit),
    )
}

/// Startup chores that need the API: the namespace (created when missing; a refusal is logged
/// once), then readiness once the API answers.
async fn prepare(app: Arc<App>) {
    let svc = &app.service;
    let ns = svc.settings().namespace.clone();
    if let Err(e) = svc.kube().ensure_namespace(&ns).await {
        tracing::warn!(namespace = %ns, error = %e, "could not make sure the secrets namespace exists; going on");
    }
    let mut delay = Duration::from_millis(100);
    loop {
        match svc.kube().ping(&ns).await {
            Ok(()) => {
                app.set_ready().await;
                tracing::info!("ready: the Kubernetes API answers");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "the Kubernetes API does not answer yet"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// The address to bind: with the embedded engine, loopback unless a host was set explicitly
/// (an unauthenticated secret store must not appear on the network by accident).
pub fn bind_host(c: &Config, embedded: bool) -> String {
    if embedded && !c.host_explicit {
        "127.0.0.1".to_owned()
    } else {
        c.host.clone()
    }
}

/// What guards the port: TLS, authentication, and the audit log for refused requests.
pub struct Guard {
    pub tls: Option<tls::TlsAcceptor>,
    pub auth: crate::auth::Authenticator,
    pub audit: Option<Arc<crate::audit::AuditLog>>,
}

impl Default for Guard {
    /// Plain TCP, no authentication: the drop-in default.
    fn default() -> Self {
        Guard {
            tls: None,
            auth: crate::auth::Authenticator::disabled(),
            audit: None,
        }
    }
}

/// Serves one accepted connection (after the TLS handshake, if any) until it ends.
async fn serve_connection<I>(
    app: Arc<App>,
    guard: Arc<Guard>,
    io: I,
    conn_info: crate::auth::ConnInfo,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let (app, guard) = (app.clone(), guard.clone());
        req.extensions_mut().insert(conn_info.clone());
        async move {
            let resp = crate::auth::gate(&guard.auth, guard.audit.as_deref(), req, |req| {
                dispatch(app, req)
            })
            .await;
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(io, svc).into_owned();
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, "connection ended");
    }
}

/// Serves until `shutdown` resolves, then drains in-flight requests (up to [`SHUTDOWN_GRACE`]).
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    guard: Guard,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    tokio::spawn(prepare(app.clone()));
    let guard = Arc::new(guard);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(s) => s,
                    Err(e) => { tracing::warn!(error = %e, "accept failed"); continue; }
                };
                let (app, guard, watcher) = (app.clone(), guard.clone(), graceful.watcher());
                tokio::spawn(async move {
                    let mut info = crate::auth::ConnInfo { peer: Some(peer), client_cn: None };
                    match &guard.tls {
                        None => serve_connection(app, guard.clone(), TokioIo::new(stream), info, watcher).await,
                        Some(tls) => match tls.accept(stream).await {
                            Ok((stream, cn)) => {
                                info.client_cn = cn;
                                serve_connection(app, guard.clone(), TokioIo::new(stream), info, watcher).await
                            }
                            Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        },
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::warn!("grace period over; closing remaining connections"),
    }
    Ok(())
}

/// Percent-decodes a URL path segment or a `grpc-message` (invalid escapes are kept as they are).
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
