//! The accept loop and the life of a connection, shared by both listeners (the service port and
//! the kube-api face): a cap on open connections, backoff on accept errors, `TCP_NODELAY`,
//! timeouts for connections that send nothing, stall in a request head, or sit idle, HTTP/2
//! keepalive pings, and a shutdown that closes idle connections at once and lets busy ones
//! finish within a grace period.
//!
//! The protocol is picked per connection from its first bytes (the HTTP/2 preface or not), or
//! with TLS from the ALPN protocol the handshake agreed, so each connection runs on hyper's
//! HTTP/1 or HTTP/2 machinery directly. Every request carries its connection's
//! [`ConnInfo`] (peer address, verified client certificate name) in its extensions.

pub mod tls;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tls::TlsAcceptor;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a listener serves: an HTTP service shared by every connection that answers each request
/// (failures are answers too, never errors).
pub trait Serves<B>:
    tower::Service<
        Request<Incoming>,
        Response = Response<B>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S, B> Serves<B> for S
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
}

/// A response body a connection can send.
pub trait ResponseBody:
    http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static
{
}

impl<B> ResponseBody for B
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
}

/// What the accept loop knows about a connection, put into each request's extensions.
#[derive(Clone, Debug, Default)]
pub struct ConnInfo {
    pub peer: Option<std::net::SocketAddr>,
    /// The common name of the verified client certificate (mTLS).
    pub client_cn: Option<String>,
}

/// Connection limits and timeouts: the `secret.server.*` keys, declared with the rest of the
/// configuration (their defaults are `Limits::default()`).
pub use crate::config::Limits;

/// Backoff after a failed `accept` (descriptor exhaustion and the like): 5 ms doubling to 1 s,
/// reset by a success, with at most one log line per second.
struct AcceptBackoff {
    delay: Duration,
    last_log: Option<Instant>,
    suppressed: u64,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);
    const LOG_EVERY: Duration = Duration::from_secs(1);

    fn new() -> Self {
        AcceptBackoff {
            delay: Duration::ZERO,
            last_log: None,
            suppressed: 0,
        }
    }

    fn succeeded(&mut self) {
        self.delay = Duration::ZERO;
    }

    /// Records a failure; returns how long to pause before accepting again.
    fn failed(&mut self, what: &str, e: &io::Error) -> Duration {
        self.delay = if self.delay.is_zero() {
            Self::FIRST
        } else {
            (self.delay * 2).min(Self::MAX)
        };
        let now = Instant::now();
        if self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= Self::LOG_EVERY)
        {
            tracing::warn!(
                listener = what,
                error = %e,
                suppressed = self.suppressed,
                backoff = ?self.delay,
                "accept failed; pausing before accepting again"
            );
            self.last_log = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
        self.delay
    }
}

/// Serves connections from `listener` with `service` until `shutdown` resolves; then stops
/// accepting, closes idle connections, and waits up to `limits.shutdown_grace` for busy ones.
/// `what` names the listener in logs. Never returns early: accept errors are waited out.
pub async fn serve<S, B>(
    what: &'static str,
    listener: TcpListener,
    limits: Limits,
    service: S,
    shutdown: impl Future<Output = ()>,
) where
    S: Serves<B>,
    B: ResponseBody,
{
    serve_with(what, listener, limits, None, service, shutdown).await
}

/// [`serve`], with TLS on every connection when `tls` is given (the handshake must finish
/// within the header-read timeout).
pub async fn serve_with<S, B>(
    what: &'static str,
    listener: TcpListener,
    limits: Limits,
    tls: Option<Arc<TlsAcceptor>>,
    service: S,
    shutdown: impl Future<Output = ()>,
) where
    S: Serves<B>,
    B: ResponseBody,
{
    let max = limits.max_connections.clamp(1, u32::MAX as usize);
    let permits = Arc::new(Semaphore::new(max));
    let limits = Arc::new(limits);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut backoff = AcceptBackoff::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff.succeeded();
                accepted
            }
            Err(e) => {
                drop(permit);
                let pause = backoff.failed(what, &e);
                tokio::select! {
                    () = tokio::time::sleep(pause) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let stream = accepted_socket(stream);
        let (service, limits, stop, tls) = (
            service.clone(),
            limits.clone(),
            stop_rx.clone(),
            tls.clone(),
        );
        tokio::spawn(async move {
            let info = ConnInfo {
                peer: Some(peer),
                client_cn: None,
            };
            match tls {
                None => connection(stream, info, service, limits, stop).await,
                Some(tls) => tls_connection(stream, info, &tls, service, limits, stop).await,
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    tracing::info!(
        listener = what,
        "shutting down: finishing in-flight requests"
    );
    let all_closed = permits.acquire_many(max as u32);
    match tokio::time::timeout(limits.shutdown_grace, all_closed).await {
        Ok(_) => tracing::info!(listener = what, "all connections closed"),
        Err(_) => tracing::warn!(
            listener = what,
            "grace period over; closing remaining connections"
        ),
    }
}

/// Socket options for every accepted connection: `TCP_NODELAY`, so small unary replies (a
/// gRPC trailers frame) do not wait for Nagle's algorithm and the peer's delayed ACK.
fn accepted_socket(stream: TcpStream) -> TcpStream {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
    stream
}

/// What a connection is doing, for its watchdog: requests in flight, since when it is idle, and
/// since when a request head has been arriving (HTTP/1).
struct Activity {
    in_flight: usize,
    idle_since: Instant,
    head_since: Option<Instant>,
}

#[derive(Clone)]
struct Tracker(Arc<Mutex<Activity>>);

impl Tracker {
    fn new() -> Self {
        Tracker(Arc::new(Mutex::new(Activity {
            in_flight: 0,
            idle_since: Instant::now(),
            head_since: None,
        })))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Activity) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn bytes_read(&self) {
        self.with(|a| {
            if a.in_flight == 0 && a.head_since.is_none() {
                a.head_since = Some(Instant::now());
            }
        });
    }

    fn begin(&self) -> InFlight {
        self.with(|a| {
            a.in_flight += 1;
            a.head_since = None;
        });
        InFlight(self.clone())
    }
}

/// One request in flight; ends when its response body is finished or dropped.
struct InFlight(Tracker);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.with(|a| {
            a.in_flight -= 1;
            if a.in_flight == 0 {
                a.idle_since = Instant::now();
            }
        });
    }
}

/// A response body that keeps its request counted as in flight until it is done.
struct TrackedBody<B> {
    inner: Pin<Box<B>>,
    _in_flight: InFlight,
}

impl<B: http_body::Body> http_body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        self.inner.as_mut().poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The per-connection service: counts requests in flight around the shared pipeline.
#[derive(Clone)]
struct Counted<S> {
    inner: S,
    tracker: Tracker,
    info: ConnInfo,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Counted<S>
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<TrackedBody<B>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(self.info.clone());
        let in_flight = self.tracker.begin();
        let svc = self.inner.clone();
        Box::pin(async move {
            let resp = tower::ServiceExt::oneshot(svc, req).await?;
            Ok(resp.map(|b| TrackedBody {
                inner: Box::pin(b),
                _in_flight: in_flight,
            }))
        })
    }
}

/// The socket, noting when bytes arrive (to time HTTP/1 request heads).
struct Watched<I> {
    io: I,
    tracker: Tracker,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.tracker.bytes_read();
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Waits for enough bytes to tell HTTP/2 (its preface) from HTTP/1; `None` when the peer
/// closes first. Peeks, so hyper still reads every byte.
async fn is_http2(stream: &TcpStream) -> io::Result<Option<bool>> {
    let mut buf = [0u8; 24];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Ok(Some(false));
        }
        if n == H2_PREFACE.len() {
            return Ok(Some(true));
        }
        // Part of the preface so far: peeking again at once would spin.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn connection<S, B>(
    stream: TcpStream,
    info: ConnInfo,
    service: S,
    limits: Arc<Limits>,
    stop: watch::Receiver<bool>,
) where
    S: Serves<B>,
    B: ResponseBody,
{
    // A connection that sends nothing (or not even a whole HTTP/2 preface) in time is closed;
    // so is one that has sent nothing when shutdown begins.
    let mut stop = stop;
    if *stop.borrow() {
        return;
    }
    let sniff = tokio::time::timeout(limits.header_read_timeout, is_http2(&stream));
    let h2 = tokio::select! {
        sniffed = sniff => match sniffed {
            Ok(Ok(Some(h2))) => h2,
            Ok(Ok(None)) | Ok(Err(_)) => return,
            Err(_) => {
                tracing::debug!("closing a connection that sent no request in time");
                return;
            }
        },
        _ = stop.changed() => return,
    };
    run(stream, h2, info, service, limits, stop).await
}

async fn tls_connection<S, B>(
    stream: TcpStream,
    mut info: ConnInfo,
    tls: &TlsAcceptor,
    service: S,
    limits: Arc<Limits>,
    stop: watch::Receiver<bool>,
) where
    S: Serves<B>,
    B: ResponseBody,
{
    let stream = match tokio::time::timeout(limits.header_read_timeout, tls.accept(stream)).await {
        Ok(Ok((stream, client_cn))) => {
            info.client_cn = client_cn;
            stream
        }
        Ok(Err(e)) => {
            tracing::debug!(peer = ?info.peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(peer = ?info.peer, "closing a connection whose TLS handshake stalled");
            return;
        }
    };
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    run(stream, h2, info, service, limits, stop).await
}

async fn run<I, S, B>(
    stream: I,
    h2: bool,
    info: ConnInfo,
    service: S,
    limits: Arc<Limits>,
    stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Serves<B>,
    B: ResponseBody,
{
    let tracker = Tracker::new();
    let svc = Counted {
        inner: service,
        tracker: tracker.clone(),
        info,
    };
    if h2 {
        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .keep_alive_interval(limits.http2_keepalive_interval)
            .keep_alive_timeout(limits.http2_keepalive_timeout)
            .max_concurrent_streams(limits.http2_max_concurrent_streams);
        let conn = builder.serve_connection(TokioIo::new(stream), svc);
        watch_connection(conn, tracker, &limits, stop, false).await;
    } else {
        let watched = Watched {
            io: stream,
            tracker: tracker.clone(),
        };
        let conn = hyper::server::conn::http1::Builder::new()
            // The watchdog times request heads; hyper's own timer would also cut idle
            // keep-alive connections at the header timeout.
            .header_read_timeout(None)
            .serve_connection(TokioIo::new(watched), svc);
        watch_connection(conn, tracker, &limits, stop, true).await;
    }
}

/// Runs a connection to its end, closing it when it stalls in a request head (HTTP/1), stays
/// idle too long, or shutdown begins while it is idle.
async fn watch_connection<C>(
    conn: C,
    tracker: Tracker,
    limits: &Limits,
    mut stop: watch::Receiver<bool>,
    http1: bool,
) where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    /// Time an idle connection gets to say goodbye (HTTP/2 GOAWAY) before it is dropped.
    const GOODBYE: Duration = Duration::from_millis(250);
    tokio::pin!(conn);
    let mut closing: Option<Instant> = None;
    let mut stopping = false;
    let mut goaway_sent = false;
    loop {
        let now = Instant::now();
        let (in_flight, idle_since, head_since) =
            tracker.with(|a| (a.in_flight, a.idle_since, a.head_since));
        let mut next = now + limits.idle_timeout;
        if in_flight == 0 {
            let head_since = head_since.filter(|_| http1);
            if let Some(t) = head_since
                && now >= t + limits.header_read_timeout
            {
                tracing::debug!("closing a connection stalled in a request head");
                return;
            }
            let idle_over = head_since.is_none() && now >= idle_since + limits.idle_timeout;
            if http1 && (stopping || idle_over) {
                // Idle or part-way through a head: nothing is lost by closing now.
                return;
            }
            if stopping || idle_over {
                match closing {
                    None => {
                        if !goaway_sent {
                            conn.as_mut().graceful_shutdown();
                            goaway_sent = true;
                        }
                        closing = Some(now + GOODBYE);
                    }
                    Some(t) if now >= t => return,
                    Some(_) => {}
                }
            } else {
                next = match head_since {
                    Some(t) => t + limits.header_read_timeout,
                    None => idle_since + limits.idle_timeout,
                };
            }
        } else if stopping {
            // Busy: re-check soon, so the connection closes as soon as it goes idle.
            next = now + Duration::from_millis(50);
        }
        if let Some(t) = closing {
            next = next.min(t);
        }
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended");
                }
                return;
            }
            () = tokio::time::sleep_until(next) => {}
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() && in_flight > 0 && !goaway_sent {
                    // Busy: finish what is in flight, accept nothing new.
                    conn.as_mut().graceful_shutdown();
                    goaway_sent = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_documented_ones() {
        // README's Operations table states these; the schema is where they are declared.
        let d = Limits::default();
        assert_eq!(d.header_read_timeout, Duration::from_secs(10));
        assert_eq!(d.idle_timeout, Duration::from_secs(120));
        assert_eq!(d.http2_keepalive_interval, Some(Duration::from_secs(60)));
        assert_eq!(d.http2_keepalive_timeout, Duration::from_secs(20));
        assert_eq!(d.http2_max_concurrent_streams, 200);
        assert_eq!(d.max_connections, 4096);
        assert_eq!(d.max_concurrent_requests, 1024);
        assert_eq!(d.shutdown_grace, Duration::from_secs(30));
    }

    /// Issue 9, defect 4: accepted sockets kept Nagle's algorithm on (44 ms per grpcio call).
    #[tokio::test]
    async fn accepted_sockets_have_nodelay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        assert!(
            !stream.nodelay().unwrap(),
            "the OS default changed; the test means nothing"
        );
        assert!(accepted_socket(stream).nodelay().unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn accept_backoff_doubles_to_a_second_and_logs_rarely() {
        let mut b = AcceptBackoff::new();
        let e = io::Error::from_raw_os_error(24); // EMFILE
        let mut delays = Vec::new();
        for _ in 0..10 {
            delays.push(b.failed("test", &e).as_millis());
        }
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(
            b.suppressed, 9,
            "only the first failure within a second is logged"
        );
        b.succeeded();
        assert_eq!(b.failed("test", &e), Duration::from_millis(5));
        tokio::time::advance(Duration::from_secs(1)).await;
        b.failed("test", &e);
        assert_eq!(b.suppressed, 0, "a second later the next failure is logged");
    }
}
