//! The engine's two faces: an HTTP server on a socket, and an in-process `tower::Service` that a
//! `kube::Client` can use as its transport.

use super::Engine;
use super::faults::Injection;
use super::watch::Body;
use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::net::TcpListener;

/// Path of the fault-injection control endpoint on the HTTP face.
pub const FAULTS_PATH: &str = "/_flytesecret/faults";

/// Collects a body, refusing more than the API server's 3 MiB (plus one byte to detect excess).
async fn collect<B>(body: B) -> Result<Bytes, ()>
where
    B: hyper::body::Body<Data = Bytes>,
{
    crate::body::collect_at_most(body, super::handlers::MAX_BODY + 1)
        .await
        .map_err(|_| ())
}

async fn control(engine: &Engine, body: Bytes) -> Response<Bytes> {
    let reply = |code: u16, text: String| {
        Response::builder()
            .status(code)
            .header("content-type", "text/plain")
            .body(Bytes::from(text))
            .expect("valid")
    };
    if body.is_empty() {
        engine.faults().clear();
        return reply(200, "cleared\n".into());
    }
    match serde_json::from_slice::<Injection>(&body) {
        Ok(i) => {
            engine.faults().inject(i.verb, i.count, i.fault);
            reply(200, "injected\n".into())
        }
        Err(e) => reply(400, format!("bad injection: {e}\n")),
    }
}

/// How long a request may take to arrive and be answered (kube-apiserver's `--request-timeout`
/// default): a client that trickles a body in, or a write that waits on a stuck disk, is
/// answered 504 `Timeout` then, as the API server answers it.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Serves the engine over HTTP/1.1 and h2c on `listener` until `shutdown` resolves, or HTTPS
/// (ALPN h2, http/1.1) when the engine has a token file, with the same connection handling as
/// the service port ([`crate::listener`]). The
/// fault-injection endpoint ([`FAULTS_PATH`]) exists only when `fault_injection` is set (a
/// switch meant for tests: it lets any caller make the API fail).
pub async fn serve(
    engine: Arc<Engine>,
    listener: TcpListener,
    limits: crate::listener::Limits,
    fault_injection: bool,
    shutdown: impl Future<Output = ()>,
) {
    let engine_tls = engine.face_tls().map(|t| t.config.clone());
    let watched = engine.clone();
    let service = tower::service_fn(move |req: Request<Incoming>| {
        let engine = engine.clone();
        async move {
            if let Some(tokens) = engine.token_file()
                && tokens.authenticate(req.headers()).is_none()
            {
                return Ok(super::tokens::unauthorized().map(Body::full));
            }
            let (parts, body) = req.into_parts();
            let answer = async move {
                match collect(body).await {
                    Err(()) => super::status::ApiError::too_large()
                        .into_reply()
                        .map(Body::full),
                    Ok(bytes)
                        if fault_injection
                            && parts.uri.path() == FAULTS_PATH
                            && parts.method == http::Method::POST =>
                    {
                        control(&engine, bytes).await.map(Body::full)
                    }
                    Ok(bytes) => engine.respond(Request::from_parts(parts, bytes)).await,
                }
            };
            // Reading the body and answering, not a watch's stream, which goes on after.
            let reply = match tokio::time::timeout(REQUEST_TIMEOUT, answer).await {
                Ok(reply) => reply,
                Err(_) => super::status::ApiError::timeout(
                    "request did not complete within requested timeout - context deadline exceeded",
                )
                .into_reply()
                .map(Body::full),
            };
            Ok::<_, Infallible>(reply)
        }
    });
    let tls = engine_tls.map(|t| Arc::new(crate::listener::tls::TlsAcceptor::fixed(t)));
    // Watches never finish on their own: end them when shutdown begins, as kube-apiserver
    // does, so the grace period is spent only on requests that do.
    let shutdown = async move {
        shutdown.await;
        watched.end_watches();
    };
    crate::listener::serve_with("kube-api", listener, limits, tls, service, shutdown).await;
}

/// `http` or `https`: how the engine's HTTP face is reached.
pub fn scheme(engine: &Engine) -> &'static str {
    if engine.face_tls().is_some() {
        "https"
    } else {
        "http"
    }
}

/// Writes a kubeconfig that points `kubectl` (or `flytesecret serve`) at `addr`. With a token
/// file, it trusts the face's certificate and carries the file's first token (and is private,
/// 0600).
pub fn write_kubeconfig(
    path: &Path,
    addr: SocketAddr,
    namespace: &str,
    engine: &Engine,
) -> std::io::Result<()> {
    let server = format!("{}://{addr}", scheme(engine));
    let tls = engine.face_tls();
    crate::kubeconfig::write(
        path,
        &crate::kubeconfig::Target {
            server: &server,
            namespace,
            token: engine.token_file().and_then(|t| t.first_token()),
            ca_pem: tls.map(|t| t.ca_pem.as_str()),
            // The certificate names localhost and the loopback addresses.
            tls_server_name: tls
                .filter(|_| !addr.ip().is_loopback())
                .map(|_| "localhost"),
        },
    )
}

/// The in-process transport: `kube::Client` requests go straight to [`Engine::handle`].
#[derive(Clone)]
pub struct InProcess(pub Arc<Engine>);

impl tower::Service<Request<kube::client::Body>> for InProcess {
    type Response = Response<Body>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<kube::client::Body>) -> Self::Future {
        let engine = self.0.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            Ok(match collect(body).await {
                Ok(bytes) => engine.respond(Request::from_parts(parts, bytes)).await,
                Err(()) => super::status::ApiError::too_large()
                    .into_reply()
                    .map(Body::full),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An engine with the `default` namespace, and a loopback listener for its face.
    async fn listening() -> (Arc<Engine>, TcpListener, SocketAddr) {
        let engine = Engine::ephemeral();
        engine.ensure_namespace("default");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (engine, listener, addr)
    }

    /// What the server sent, up to and including `end`.
    async fn read_until(stream: &mut tokio::net::TcpStream, end: &str) -> Vec<u8> {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains(end) {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the connection closed before {end:?}");
            seen.extend_from_slice(&buf[..n]);
        }
        seen
    }

    /// A watch never finishes by itself; shutdown used to wait the whole grace period for it
    /// (`kubectl get -w` held `kube-api` up for 30 s after SIGTERM).
    #[tokio::test]
    async fn shutdown_ends_open_watches_instead_of_waiting_out_the_grace_period() {
        let (engine, listener, addr) = listening().await;
        let limits = crate::listener::Limits {
            shutdown_grace: Duration::from_secs(300),
            ..Default::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(engine, listener, limits, false, async {
            let _ = stopped.await;
        }));
        let mut watch = tokio::net::TcpStream::connect(addr).await.unwrap();
        watch
            .write_all(
                b"GET /api/v1/namespaces/default/secrets?watch=true HTTP/1.1\r\nHost: t\r\n\r\n",
            )
            .await
            .unwrap();
        let mut seen = read_until(&mut watch, "\r\n\r\n").await;
        assert!(
            seen.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&seen)
        );

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(20), server)
            .await
            .expect("shutdown waited for the open watch")
            .unwrap();
        // The watch's response was ended properly (the last chunk), not cut off.
        let rest = tokio::time::timeout(Duration::from_secs(5), async {
            let mut rest = Vec::new();
            let _ = watch.read_to_end(&mut rest).await;
            rest
        })
        .await
        .unwrap();
        seen.extend_from_slice(&rest);
        assert!(
            seen.ends_with(b"0\r\n\r\n"),
            "{}",
            String::from_utf8_lossy(&seen)
        );
    }

    /// A request whose body stops arriving is answered 504 `Timeout` at [`REQUEST_TIMEOUT`],
    /// with the API server's text, instead of holding its connection and buffer for as long as
    /// the client likes.
    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_arriving_is_a_timeout() {
        let (engine, listener, addr) = listening().await;
        let limits = crate::listener::Limits {
            header_read_timeout: REQUEST_TIMEOUT * 10,
            idle_timeout: REQUEST_TIMEOUT * 10,
            ..Default::default()
        };
        tokio::spawn(serve(
            engine,
            listener,
            limits,
            false,
            std::future::pending(),
        ));
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client
            .write_all(
                b"POST /api/v1/namespaces/default/secrets HTTP/1.1\r\nHost: t\r\n\
                  content-type: application/json\r\ncontent-length: 100\r\n\r\n{\"metadata\"",
            )
            .await
            .unwrap();
        let answer = tokio::time::timeout(REQUEST_TIMEOUT * 2, read_until(&mut client, "}"))
            .await
            .expect("no answer while the body stopped arriving");
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 504"), "{text}");
        assert!(
            text.contains(r#""reason":"Timeout""#)
                && text.contains("Timeout: request did not complete within requested timeout - context deadline exceeded"),
            "{text}"
        );
    }
}
