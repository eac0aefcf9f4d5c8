//! The request pipeline: every request on the service port passes these tower layers, outermost
//! first, before the protocol router ([`super::router::route`]):
//!
//! 1. **trace** (tower-http): a `request` span and request/response/failure events, all at
//!    debug level; present only when the log filter enables them (it costs every request a
//!    timing and a body wrapper even when nothing records its output).
//! 2. **classify**: decides the [`Protocol`] once and stores it in the request's extensions, so
//!    every later step answers in the client's protocol.
//! 3. **catch panic**: a panic anywhere below becomes `internal` (HTTP 500 for Connect/REST) for
//!    that request only; the connection and the process go on.
//! 4. **deadline**: the client's `grpc-timeout` / `connect-timeout-ms` bounded by
//!    `secret.server.requestTimeout` ([`super::deadline`]); a malformed value is
//!    `invalid_argument`; when time runs out the request is dropped and answered
//!    `deadline_exceeded`. The deadline is visible to the RPC code ([`crate::service::deadline`]),
//!    which bounds its rate-limiter waits by it and counts dropped RPCs in `/metrics`.
//! 5. **concurrency**: at most `secret.server.maxConcurrentRequests` RPCs run at once; more
//!    wait for a slot within their deadline. The plain endpoints are exempt, so probes answer
//!    under load.
//! 6. **authentication slot** ([`AuthLayer`]): empty today; see below.
//!
//! Steps 2 to 5 are one layer ([`RequestGuardLayer`]), so a request's future is boxed once for
//! all of them.
//!
//! Limits that belong to connections rather than requests (connection count, header and idle
//! timeouts, HTTP/2 keepalive) are in [`super::accept`]; body size limits are where bodies are
//! read (the gRPC unary path, which hands larger bodies to tonic, tonic's
//! `max_decoding_message_size` and the router's `collect_limited`, all
//! [`super::MAX_REQUEST_BYTES`]).

use super::router::{self, Protocol};
use super::{App, Body};
#[cfg(test)]
use crate::service::SecretService;
use crate::service::{Code, RpcError};
use futures_util::FutureExt as _;
use http::{Request, Response};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::ServiceBuilder;
use tower::util::{BoxCloneSyncService, BoxCloneSyncServiceLayer};

/// A service in the pipeline: an HTTP request in, a response out, never an error (every failure
/// is an answer in the client's protocol).
pub type HttpService = BoxCloneSyncService<Request<Incoming>, Response<Body>, Infallible>;

/// **The authentication slot.** A layer given here wraps the protocol router and runs inside the
/// deadline (so its own work is bounded by it) and the panic guard. It sees each
/// `http::Request` with its [`Protocol`] in the extensions, may answer by itself (401/403, or
/// `unauthenticated`/`permission_denied` in the client's protocol via
/// [`router::error_response`]), and passes accepted requests on with the caller's identity in
/// the request extensions for the RPC code to read. It also sees the plain endpoints
/// (`/healthz`, `/readyz`, `/metrics`) and decides whether they need credentials.
pub type AuthLayer =
    BoxCloneSyncServiceLayer<HttpService, Request<Incoming>, Response<Body>, Infallible>;

/// Keeps one timer pending in the runtime's timer wheel while it lives, so that registering a
/// request's deadline does not wake the runtime's I/O driver.
///
/// Tokio's multi-thread runtime wakes its driver (an eventfd write now, a spurious `epoll_wait`
/// return later) whenever a timer is registered that is due before the wake-up the driver
/// planned when it last parked, and it plans none when the wheel was empty then
/// (tokio-rs/tokio#5207). Under load a GetSecret runs well under a millisecond, so the wheel was
/// often empty at a park, and the next deadlines registered each paid that write: 0.4 per
/// request at 61k Connect requests/s (`perf stat -e syscalls:sys_enter_write`), none with this
/// keeper. A timer due within [`Self::PERIOD`] keeps the planned wake-up at most that far
/// ahead, so only deadlines shorter than that still wake the driver. It costs one wake-up per
/// period while the process is idle. Under a paused test clock it makes time advance in steps
/// of the period whenever the runtime idles, so tests with paused time do not start it.
pub struct TimerWheelKeeper(tokio::task::JoinHandle<()>);

impl TimerWheelKeeper {
    pub const PERIOD: Duration = Duration::from_secs(1);

    /// Starts the keeper on the current runtime; it stops when this is dropped.
    pub fn start() -> TimerWheelKeeper {
        TimerWheelKeeper(tokio::spawn(async {
            let mut tick = tokio::time::interval(Self::PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
            }
        }))
    }
}

impl Drop for TimerWheelKeeper {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Builds the pipeline over the router, with at most `max_concurrent` RPCs running at once.
/// `auth` fills the authentication slot.
pub fn build(app: Arc<App>, max_concurrent: usize, auth: Option<AuthLayer>) -> HttpService {
    use tower::Layer as _;
    let guard = RequestGuardLayer::new(app.request_timeout, max_concurrent);
    let router = tower::service_fn(move |req: Request<Incoming>| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(router::route(app, req).await) }
    });
    // The router's future (some 4 KB) is boxed where it is made: the guard's future holds only
    // the box, so moving it into its own box copies little.
    let mut inner = HttpService::new(router);
    if let Some(auth) = auth {
        inner = auth.layer(inner);
    }
    let guarded = HttpService::new(guard.layer(inner));
    // tower-http's layer only makes a DEBUG span and DEBUG events, but it times every request
    // and wraps every response body whether or not anything records them: it is put in only
    // when the log filter (or another subscriber layer) wants them.
    if !http_trace_wanted() {
        return guarded;
    }
    let traced = ServiceBuilder::new()
        .map_response(|r: Response<_>| r.map(Body::new))
        .layer(
            // 5xx answers are normal outcomes here (a deadline, readiness): debug, not error.
            tower_http::trace::TraceLayer::new_for_http().on_failure(
                tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG),
            ),
        )
        .service(guarded);
    HttpService::new(traced)
}

/// True when the current subscriber records tower-http's request span or events (all at DEBUG).
fn http_trace_wanted() -> bool {
    use tracing::Level;
    tracing::enabled!(target: "tower_http::trace::make_span", Level::DEBUG)
        || tracing::enabled!(target: "tower_http::trace::on_request", Level::DEBUG)
        || tracing::enabled!(target: "tower_http::trace::on_response", Level::DEBUG)
        || tracing::enabled!(target: "tower_http::trace::on_failure", Level::DEBUG)
}

type Answer = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// Steps 2 to 5 of the module documentation (classify, catch panic, deadline, concurrency) in
/// one layer, so a request's future is boxed once for all four rather than once a step.
#[derive(Clone, Debug)]
pub struct RequestGuardLayer {
    /// `secret.server.requestTimeout`: the longest any request may run.
    limit: Duration,
    /// The slots for RPCs running at once.
    permits: Arc<tokio::sync::Semaphore>,
}

impl RequestGuardLayer {
    pub fn new(limit: Duration, max_concurrent: usize) -> Self {
        RequestGuardLayer {
            limit,
            permits: Arc::new(tokio::sync::Semaphore::new(
                max_concurrent.clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
            )),
        }
    }
}

impl<S> tower::Layer<S> for RequestGuardLayer {
    type Service = RequestGuard<S>;
    fn layer(&self, inner: S) -> RequestGuard<S> {
        RequestGuard {
            inner,
            limit: self.limit,
            permits: self.permits.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct RequestGuard<S> {
    inner: S,
    limit: Duration,
    permits: Arc<tokio::sync::Semaphore>,
}

fn panicked(protocol: Protocol) -> Response<Body> {
    tracing::error!("a request handler panicked; answered internal");
    router::error_response(protocol, &RpcError::internal("internal error"))
}

/// `fut`, boxed, with a panic while it is polled or dropped answered `internal`.
fn caught(
    protocol: Protocol,
    fut: impl Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
) -> Answer {
    Box::pin(
        AssertUnwindSafe(fut)
            .catch_unwind()
            .map(move |caught| caught.unwrap_or_else(|_| Ok(panicked(protocol)))),
    )
}

impl<S> tower::Service<Request<Incoming>> for RequestGuard<S>
where
    S: tower::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Incoming>) -> Answer {
        // 2. The protocol, decided once: every answer below is in the client's protocol.
        let protocol = Protocol::of(&req);
        req.extensions_mut().insert(protocol);
        // 3. A panic while the request is started (here) or run (in the future) is `internal`.
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.start(protocol, req))) {
            Ok(answer) => answer,
            Err(_) => Box::pin(std::future::ready(Ok(panicked(protocol)))),
        }
    }
}

impl<S> RequestGuard<S>
where
    S: tower::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    fn start(&mut self, protocol: Protocol, req: Request<Incoming>) -> Answer {
        // The plain endpoints (probes, metrics) have no deadline and need no slot.
        if protocol == Protocol::Plain {
            return caught(protocol, self.inner.call(req));
        }
        // 4. The deadline.
        let timeout = match super::deadline::effective(req.headers(), self.limit) {
            Ok(t) => t,
            Err(e) => {
                return Box::pin(std::future::ready(Ok(router::error_response(protocol, &e))));
            }
        };
        let deadline = tokio::time::Instant::now() + timeout;
        use crate::service::transport::{self, RpcSystem};
        let system = match protocol {
            Protocol::Grpc | Protocol::GrpcWeb => RpcSystem::Grpc,
            Protocol::Rest => RpcSystem::Rest,
            Protocol::Connect | Protocol::ConnectStream | Protocol::Plain => RpcSystem::Connect,
        };
        // 5. A slot: a free one runs the request at once on `self.inner` (made ready by this
        // call's `poll_ready`); otherwise the ready service goes with the request, which waits
        // for a slot within its deadline, and a clone is left for the next caller.
        let started = match self.permits.clone().try_acquire_owned() {
            Ok(slot) => Ok((slot, self.inner.call(req))),
            Err(_) => {
                let inner = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, inner);
                Err((ready, req, self.permits.clone()))
            }
        };
        // The request's future is made inside the guarded block, on its first poll, so it is
        // never moved from wrapper to wrapper; and the timeout is awaited inside that block, so
        // a request dropped when its deadline passes is dropped under the panic guard too.
        let guarded = async move {
            let run = async move {
                match started {
                    Ok((_slot, fut)) => fut.await,
                    Err((mut inner, req, permits)) => {
                        let _slot = permits
                            .acquire_owned()
                            .await
                            .expect("the semaphore is never closed");
                        inner.call(req).await
                    }
                }
            };
            let run = transport::scope(system, crate::service::deadline::scope(deadline, run));
            match tokio::time::timeout_at(deadline, run).await {
                Ok(answer) => answer,
                Err(_) => Ok(router::error_response(
                    protocol,
                    &RpcError::new(Code::DeadlineExceeded, "the request deadline was exceeded"),
                )),
            }
        };
        caught(protocol, guarded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt as _, Empty};
    use hyper_util::rt::TokioIo;

    use crate::telemetry::Captured;

    /// `svc` served by the listener on a loopback port, with one keep-alive HTTP/1.1 client
    /// connection to it.
    struct Served {
        send: hyper::client::conn::http1::SendRequest<Empty<bytes::Bytes>>,
        conn: tokio::task::JoinHandle<hyper::Result<()>>,
        stop: tokio::sync::oneshot::Sender<()>,
        server: tokio::task::JoinHandle<()>,
    }

    impl Served {
        async fn start(svc: impl crate::listener::Serves<Body>) -> Served {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(crate::listener::serve(
                "test",
                listener,
                super::super::Limits::default(),
                svc,
                async {
                    let _ = stopped.await;
                },
            ));
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .unwrap();
            Served {
                send,
                conn: tokio::spawn(conn),
                stop,
                server,
            }
        }

        /// GETs `path`: status and body.
        async fn get(&mut self, path: &str) -> (u16, String) {
            self.send.ready().await.unwrap();
            let resp = self
                .send
                .send_request(
                    Request::get(path)
                        .header("host", "test")
                        .body(Empty::<bytes::Bytes>::new())
                        .unwrap(),
                )
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }

        /// Closes the client connection, then stops the server and waits for it.
        async fn close(self) {
            drop(self.send);
            let _ = self.conn.await;
            let _ = self.stop.send(());
            self.server.await.unwrap();
        }
    }

    /// Builds the pipeline under a subscriber at `level`, serves one `/healthz` through it and
    /// returns what was logged.
    async fn logs_of_one_request(level: tracing::Level) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        // Other tests build pipelines on other threads with no subscriber. A callsite whose
        // registration there straddles this subscriber's arrival keeps the interest "never"
        // (tracing computes it from the subscribers it saw, then publishes the callsite), even
        // past a rebuild made before it was published. So: one request registers every
        // callsite on the path, a rebuild then sees them all, and the second request is the
        // one whose logs count.
        for _ in 0..2 {
            tracing::callsite::rebuild_interest_cache();
            captured.0.lock().unwrap().clear();
            let mut served = Served::start(build(app(None), 8, None)).await;
            let (status, _) = served.get("/healthz").await;
            assert_eq!(status, 200);
            served.close().await;
        }
        captured.text()
    }

    /// The timer keeper runs while its guard lives and stops with it (a server's `serve` holds
    /// it; nothing of it outlives the server).
    #[tokio::test]
    async fn the_timer_keeper_stops_with_its_guard() {
        let keeper = TimerWheelKeeper::start();
        let task = keeper.0.abort_handle();
        tokio::task::yield_now().await;
        assert!(!task.is_finished(), "the keeper runs until dropped");
        drop(keeper);
        for _ in 0..10 {
            if task.is_finished() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the keeper outlived its guard");
    }

    /// An app over an ephemeral embedded engine.
    fn app(liveness: Option<super::super::Liveness>) -> Arc<App> {
        let engine = crate::kubeapi::Engine::ephemeral();
        let kube = crate::service::kube_backend::KubeBackend::new(
            engine.kube_client("flyte"),
            0.0,
            0,
            None,
        );
        let service = Arc::new(SecretService::new(kube, Default::default(), None));
        App::new(service, Duration::from_secs(5), liveness)
    }

    /// `/healthz` fails, with the reason, while the process cannot recover without a restart
    /// (a poisoned durable store), so the kubelet's liveness probe restarts it; it is healthy
    /// again as soon as the condition clears.
    #[tokio::test]
    async fn healthz_fails_while_only_a_restart_would_recover() {
        let condition: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        let check = condition.clone();
        let liveness: super::super::Liveness = Box::new(move || check.lock().unwrap().clone());
        let mut served = Served::start(build(app(Some(liveness)), 8, None)).await;
        assert_eq!(served.get("/healthz").await, (200, "OK".to_owned()));
        *condition.lock().unwrap() = Some("writing the store log: No space left".into());
        let (status, body) = served.get("/healthz").await;
        assert_eq!(status, 503);
        assert!(
            body.contains("No space left") && body.contains("restart"),
            "{body}"
        );
        assert_eq!(
            served.get("/readyz").await.0,
            503,
            "readiness is its own check"
        );
        *condition.lock().unwrap() = None;
        assert_eq!(served.get("/healthz").await.0, 200);
        served.close().await;
    }

    /// tower-http's request tracing is in the pipeline when debug logs want it, and left out
    /// (with the pipeline still answering) when nothing would record it.
    #[tokio::test]
    async fn http_tracing_only_when_debug_logs_want_it() {
        let debug = logs_of_one_request(tracing::Level::DEBUG).await;
        assert!(
            debug.contains("started processing request")
                && debug.contains("finished processing request"),
            "{debug}"
        );
        let info = logs_of_one_request(tracing::Level::INFO).await;
        assert!(!info.contains("processing request"), "{info}");
    }

    /// A panic in a handler answers `internal` to that request only; the same keep-alive
    /// connection then serves the next request.
    #[tokio::test]
    async fn a_panic_is_internal_for_that_request_and_the_connection_lives_on() {
        let svc = ServiceBuilder::new()
            .layer(RequestGuardLayer::new(Duration::from_secs(5), 8))
            .service(tower::service_fn(|req: Request<Incoming>| async move {
                if req.uri().path().ends_with("/Boom") {
                    panic!("a handler bug");
                }
                Ok::<_, Infallible>(Response::new(Body::empty()))
            }));
        let mut served = Served::start(svc).await;
        let send = &mut served.send;
        let request = |path: &str, content_type: &str| {
            Request::post(path)
                .header("host", "test")
                .header("content-type", content_type)
                .body(Empty::<bytes::Bytes>::new())
                .unwrap()
        };
        let resp = send
            .send_request(request(
                "/flyteidl2.secret.SecretService/Boom",
                "application/json",
            ))
            .await
            .unwrap();
        assert_eq!(resp.status(), 500);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains("\"internal\""));
        send.ready().await.unwrap();
        let resp = send
            .send_request(request(
                "/flyteidl2.secret.SecretService/Boom",
                "application/grpc-web+proto",
            ))
            .await
            .unwrap();
        assert_eq!(resp.headers()["grpc-status"], "13");
        send.ready().await.unwrap();
        let resp = send
            .send_request(request("/healthz", "text/plain"))
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            200,
            "the connection did not survive the panic"
        );
        served.close().await;
    }

    /// A request still running at its deadline is dropped under the panic guard: a panic in
    /// that drop is `internal` for that request, and the connection serves the next one.
    #[tokio::test]
    async fn a_panic_while_dropping_a_late_request_is_internal_too() {
        struct PanicsWhenDropped;
        impl Drop for PanicsWhenDropped {
            fn drop(&mut self) {
                panic!("a handler's state panicked when dropped");
            }
        }
        let svc = ServiceBuilder::new()
            .layer(RequestGuardLayer::new(Duration::from_secs(5), 8))
            .service(tower::service_fn(|req: Request<Incoming>| async move {
                if req.uri().path().ends_with("/Hang") {
                    let _state = PanicsWhenDropped;
                    std::future::pending::<()>().await;
                }
                Ok::<_, Infallible>(Response::new(Body::empty()))
            }));
        let mut served = Served::start(svc).await;
        let send = &mut served.send;
        let hang = Request::post("/flyteidl2.secret.SecretService/Hang")
            .header("host", "test")
            .header("content-type", "application/json")
            .header("connect-timeout-ms", "50")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = send.send_request(hang).await.unwrap();
        assert_eq!(resp.status(), 500);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(
            String::from_utf8_lossy(&body).contains("\"internal\""),
            "{body:?}"
        );
        send.ready().await.unwrap();
        let resp = send
            .send_request(
                Request::get("/healthz")
                    .header("host", "test")
                    .body(Empty::<bytes::Bytes>::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "the connection did not survive");
        served.close().await;
    }
}
