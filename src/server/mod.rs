//! The process: one port where every request passes one pipeline of layers ([`pipeline`]) in
//! front of the protocol router ([`router`]: gRPC/gRPC-Web via tonic, Connect, REST, and the
//! health endpoints); connections and their limits ([`accept`]); the Kubernetes backend
//! ([`backend`]: kubeconfig, in-cluster, or the embedded engine); readiness ([`readiness`]).

mod backend;
pub mod connect;
mod connect_stream;
mod deadline;
pub mod grpc;
pub mod grpc_unary;
pub mod pipeline;
mod readiness;
pub mod rest;
pub mod router;

pub use crate::listener::{Limits, tls};
pub use backend::{Backend, backend, bind_host, service};

use crate::proto::flyteidl2::cluster::cluster_service_server::ClusterServiceServer;
use crate::proto::flyteidl2::secret::secret_service_server::SecretServiceServer;
use crate::service::SecretService;
use anyhow::Result;
use bytes::Bytes;
use http::{Response, header};
use http_body_util::Full;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;

/// Every response body on the service port.
pub type Body = tonic::body::Body;

/// The largest request accepted on any protocol: Kubernetes caps a Secret at 1 MiB.
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// The one answer to a request body over [`MAX_REQUEST_BYTES`], on every protocol that reads
/// bodies itself (gRPC's comes from tonic and is mapped to the same code).
pub fn oversized() -> crate::service::RpcError {
    crate::service::RpcError::new(
        crate::service::Code::ResourceExhausted,
        format!("request message is larger than the limit of {MAX_REQUEST_BYTES} bytes"),
    )
}

pub fn plain(code: u16, text: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::new(Full::new(text.into())))
        .expect("valid response")
}

/// Asked by `/healthz`: why the process cannot recover without a restart, if it cannot (the
/// embedded engine's durable store refusing writes). The kubelet's liveness probe then
/// restarts the container, which recovers it.
pub type Liveness = Box<dyn Fn() -> Option<String> + Send + Sync>;

/// What a request needs, shared by every connection.
pub struct App {
    pub service: Arc<SecretService>,
    /// The SecretService's tonic server on its own: `grpc_unary` hands it the requests it does
    /// not serve directly, without the route table that `grpc` holds for every service.
    secret_grpc: SecretServiceServer<grpc::GrpcSecretService>,
    grpc: tonic::service::Routes,
    grpc_web: tonic_web::GrpcWebService<tonic::service::Routes>,
    ready: AtomicBool,
    health: tonic_health::server::HealthReporter,
    /// The longest any request may run (clients may ask for less).
    request_timeout: std::time::Duration,
    liveness: Option<Liveness>,
}

/// The Secret and Cluster services' gRPC servers, with the request size limit and gzip as the
/// port serves them (the fuzz harness drives these same servers).
pub fn grpc_services(
    service: &Arc<SecretService>,
) -> (
    SecretServiceServer<grpc::GrpcSecretService>,
    ClusterServiceServer<grpc::GrpcClusterService>,
) {
    use tonic::codec::CompressionEncoding::Gzip;
    let secret = SecretServiceServer::new(grpc::GrpcSecretService(service.clone()))
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .accept_compressed(Gzip)
        .send_compressed(Gzip);
    let cluster = ClusterServiceServer::new(grpc::GrpcClusterService(service.clone()))
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .accept_compressed(Gzip)
        .send_compressed(Gzip);
    (secret, cluster)
}

impl App {
    pub fn new(
        service: Arc<SecretService>,
        request_timeout: std::time::Duration,
        liveness: Option<Liveness>,
    ) -> Arc<App> {
        let (secret, cluster) = grpc_services(&service);
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .build_v1()
            .expect("our descriptor set is valid");
        let reflection_alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .expect("our descriptor set is valid");
        let (health, health_service) = tonic_health::server::health_reporter();
        let routes = tonic::service::Routes::new(secret.clone())
            .add_service(cluster)
            .add_service(reflection)
            .add_service(reflection_alpha)
            .add_service(health_service);
        let grpc_web = tower::Layer::layer(&tonic_web::GrpcWebLayer::new(), routes.clone());
        Arc::new(App {
            service,
            secret_grpc: secret,
            grpc: routes,
            grpc_web,
            ready: AtomicBool::new(false),
            health,
            request_timeout,
            liveness,
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

    /// Why the process cannot recover without a restart, if it cannot ([`Liveness`]).
    pub fn unrecoverable(&self) -> Option<String> {
        self.liveness.as_ref().and_then(|check| check())
    }
}

/// What guards the port: TLS, authentication, and the audit log (for refused requests too).
pub struct Guard {
    pub tls: Option<tls::TlsAcceptor>,
    pub auth: crate::auth::Authenticator,
    pub audit: Option<Arc<crate::audit::AuditLog>>,
}

impl Default for Guard {
    /// Plain TCP, no authentication, no audit: the drop-in default.
    fn default() -> Self {
        Guard {
            tls: None,
            auth: crate::auth::Authenticator::disabled(),
            audit: None,
        }
    }
}

impl Guard {
    /// The layer for the pipeline's authentication slot: [`crate::auth::gate`] in front of the
    /// router. None when there is nothing to do (no authenticator, no audit log), so the
    /// default pipeline stays as short as it was.
    fn layer(self: &Arc<Self>) -> Option<pipeline::AuthLayer> {
        if !self.auth.is_enabled() && self.audit.is_none() {
            return None;
        }
        let guard = self.clone();
        Some(pipeline::AuthLayer::new(tower::layer::layer_fn(
            move |inner: pipeline::HttpService| {
                let guard = guard.clone();
                tower::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (guard, inner) = (guard.clone(), inner.clone());
                    async move {
                        let resp = crate::auth::gate(
                            &guard.auth,
                            guard.audit.as_deref(),
                            req,
                            |req| async move {
                                match tower::ServiceExt::oneshot(inner, req).await {
                                    Ok(resp) => resp,
                                    Err(never) => match never {},
                                }
                            },
                        )
                        .await;
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                })
            },
        )))
    }
}

/// Serves the pipeline on `listener` until `shutdown` resolves; then closes idle connections
/// and lets in-flight requests finish (up to `limits.shutdown_grace`). `guard` supplies TLS and
/// fills the pipeline's authentication slot.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    limits: Limits,
    guard: Guard,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    tokio::spawn(readiness::prepare(app.clone()));
    let _timers = pipeline::TimerWheelKeeper::start();
    let Guard { tls, auth, audit } = guard;
    let tls = tls.map(Arc::new);
    let edge = Arc::new(Guard {
        tls: None,
        auth,
        audit,
    });
    let service = pipeline::build(app, limits.max_concurrent_requests, edge.layer());
    crate::listener::serve_with("service", listener, limits, tls, service, shutdown).await;
    Ok(())
}

/// Percent-decodes a URL path segment or a `grpc-message` (invalid escapes are kept as they are,
/// invalid UTF-8 is replaced).
pub(crate) fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}
