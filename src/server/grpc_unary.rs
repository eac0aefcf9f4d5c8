//! The SecretService's unary gRPC calls in their usual form, served without tonic's generic
//! machinery: one uncompressed message in a single envelope, answered with one envelope and
//! the `grpc-status` trailer. Every answer is the one tonic gives for the same request (a test
//! sends each kind of request both ways and compares status, headers, body and trailers), and
//! a request in any other form (compressed, malformed, oversized, not POST, another content
//! type, a message that does not decode, a second message) is handed to the tonic server with
//! its body as read so far and the rest unread, at the point where tonic would answer by
//! itself (so a bad header is answered at once even while the client keeps the stream open):
//! tonic remains the one source of gRPC's edge-case behaviour. Memory per request is bounded
//! as tonic bounds it: at most the announced message, which is at most [`MAX_REQUEST_BYTES`].
//!
//! Why: tonic's unary path (a boxed `async_trait` future, its streaming decoder and encoder
//! and their header handling) costs about as much again as the RPC's own work here.

use super::grpc::{COMPRESS_MIN_BYTES, GrpcSecretService, status};
use super::{Body, MAX_REQUEST_BYTES};
use crate::proto::flyteidl2::secret::secret_service_server::SecretServiceServer;
use crate::proto::flyteidl2::secret::{
    CreateSecretRequest, DeleteSecretRequest, GetSecretRequest, ListSecretsRequest,
    UpdateSecretRequest,
};
use crate::service::{RpcError, SecretService};
use bytes::{BufMut as _, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, header};
use http_body::{Body as HttpBody, Frame};
use http_body_util::BodyExt as _;
use std::io::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The path prefix of the SecretService's methods.
pub const PREFIX: &str = "/flyteidl2.secret.SecretService/";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

// Header names made once: a `&str` name is parsed and hashed again at every lookup.
const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");
const GRPC_ACCEPT_ENCODING: HeaderName = HeaderName::from_static("grpc-accept-encoding");
pub(super) const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// The gRPC envelope's header: a compression flag and a big-endian length.
const ENVELOPE: usize = 5;

/// Which way a request went (the tests check that the usual form takes the direct one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    Direct,
    Tonic,
}

/// Serves one gRPC request to a SecretService path.
pub async fn serve<B>(
    svc: &std::sync::Arc<SecretService>,
    tonic: &SecretServiceServer<GrpcSecretService>,
    req: Request<B>,
) -> (Response<Body>, Path)
where
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError> + Send,
{
    let Some(rpc) = usual_form(&req) else {
        return (to_tonic(tonic, req).await, Path::Tonic);
    };
    let (parts, body) = req.into_parts();
    // As tonic reads a unary request: the envelope's header, then its message, decoded as soon
    // as it is complete; then the end of the body. A step that tonic would answer early (a
    // bad header, a message that does not decode, a second message) is given to tonic there,
    // with the body as read so far and the rest still unread.
    let read = match read_envelope(body).await {
        Ok(read) => read,
        Err(replay) => return (replayed(tonic, parts, replay).await, Path::Tonic),
    };
    let Some(decoded) = Decoded::of(rpc, &read.data[ENVELOPE..]) else {
        return (replayed(tonic, parts, read.replay()).await, Path::Tonic);
    };
    if let Err(replay) = read_end(read).await {
        return (replayed(tonic, parts, replay).await, Path::Tonic);
    }
    let gzip = accepts_gzip(&parts.headers);
    // Boxed but GetSecret's, as in the Connect adapter: the largest would otherwise set the
    // size of every request's future.
    let response = match decoded {
        Decoded::Create(r) => answer(Box::pin(svc.create(r)).await, gzip),
        Decoded::Update(r) => answer(Box::pin(svc.update(r)).await, gzip),
        Decoded::Get(r) => answer(svc.get(r).await, gzip),
        Decoded::Delete(r) => answer(Box::pin(svc.delete(r)).await, gzip),
        Decoded::List(r) => answer(Box::pin(svc.list(r)).await, gzip),
    };
    (response, Path::Direct)
}

async fn replayed<B>(
    tonic: &SecretServiceServer<GrpcSecretService>,
    parts: http::request::Parts,
    replay: Replay<B>,
) -> Response<Body>
where
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError> + Send,
{
    to_tonic(tonic, Request::from_parts(parts, replay)).await
}

/// A request message, decoded.
enum Decoded {
    Create(CreateSecretRequest),
    Update(UpdateSecretRequest),
    Get(GetSecretRequest),
    Delete(DeleteSecretRequest),
    List(ListSecretsRequest),
}

impl Decoded {
    fn of(rpc: Rpc, message: &[u8]) -> Option<Decoded> {
        use prost::Message as _;
        Some(match rpc {
            Rpc::Create => Decoded::Create(CreateSecretRequest::decode(message).ok()?),
            Rpc::Update => Decoded::Update(UpdateSecretRequest::decode(message).ok()?),
            Rpc::Get => Decoded::Get(GetSecretRequest::decode(message).ok()?),
            Rpc::Delete => Decoded::Delete(DeleteSecretRequest::decode(message).ok()?),
            Rpc::List => Decoded::List(ListSecretsRequest::decode(message).ok()?),
        })
    }
}

#[derive(Clone, Copy)]
enum Rpc {
    Create,
    Update,
    Get,
    Delete,
    List,
}

/// The method, when the request is in the form served directly: POST, `application/grpc` or
/// `application/grpc+proto`, no `grpc-encoding`.
fn usual_form<B>(req: &Request<B>) -> Option<Rpc> {
    if req.method() != Method::POST {
        return None;
    }
    let headers = req.headers();
    let content_type = headers.get(header::CONTENT_TYPE)?.as_bytes();
    if content_type != b"application/grpc" && content_type != b"application/grpc+proto" {
        return None;
    }
    if headers.contains_key(GRPC_ENCODING) {
        return None;
    }
    match req.uri().path().strip_prefix(PREFIX)? {
        "CreateSecret" => Some(Rpc::Create),
        "UpdateSecret" => Some(Rpc::Update),
        "GetSecret" => Some(Rpc::Get),
        "DeleteSecret" => Some(Rpc::Delete),
        "ListSecrets" => Some(Rpc::List),
        _ => None,
    }
}

/// Whether the client accepts gzip responses, read as tonic reads `grpc-accept-encoding`.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get(GRPC_ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim() == "gzip"))
}

/// The RPC's answer: its message, or its error as tonic renders it (trailers only).
fn answer<M: prost::Message>(result: Result<M, RpcError>, gzip: bool) -> Response<Body> {
    match result {
        Ok(message) => success(&message, gzip),
        Err(e) => status(e).into_http(),
    }
}

/// A successful answer: the message in one envelope (gzip-compressed from
/// [`COMPRESS_MIN_BYTES`] up when the client accepts it), then `grpc-status: 0`.
fn success<M: prost::Message>(message: &M, gzip: bool) -> Response<Body> {
    let len = message.encoded_len();
    let data = if gzip && len >= COMPRESS_MIN_BYTES {
        let mut out = BytesMut::with_capacity(ENVELOPE + len / 2);
        out.put_slice(&[1, 0, 0, 0, 0]);
        let mut encoder = flate2::write::GzEncoder::new(out.writer(), flate2::Compression::new(6));
        encoder
            .write_all(&message.encode_to_vec())
            .expect("compressing into memory does not fail");
        let mut data = encoder
            .finish()
            .expect("compressing into memory does not fail")
            .into_inner();
        let compressed = u32::try_from(data.len() - ENVELOPE).expect("answers are far below 4 GiB");
        data[1..ENVELOPE].copy_from_slice(&compressed.to_be_bytes());
        data.freeze()
    } else {
        let mut data = BytesMut::with_capacity(ENVELOPE + len);
        data.put_u8(0);
        data.put_u32(u32::try_from(len).expect("answers are far below 4 GiB"));
        message
            .encode(&mut data)
            .expect("the buffer has the message's length");
        data.freeze()
    };
    let mut trailers = HeaderMap::with_capacity(1);
    trailers.insert(GRPC_STATUS, HeaderValue::from_static("0"));
    let mut response = Response::new(Body::new(Unary {
        data: Some(data),
        trailers: Some(trailers),
    }));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    if gzip {
        headers.insert(GRPC_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

async fn to_tonic<B>(
    tonic: &SecretServiceServer<GrpcSecretService>,
    req: Request<B>,
) -> Response<Body>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError> + Send,
{
    match tower::ServiceExt::oneshot(tonic.clone(), req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}

/// A request body's first envelope, complete, and the rest of the body.
struct Envelope<B> {
    /// The envelope: its header and exactly the message it announces.
    data: Bytes,
    rest: B,
}

impl<B> Envelope<B> {
    fn replay(self) -> Replay<B> {
        Replay {
            data: Some(self.data),
            rest: Some(self.rest),
            ..Replay::default()
        }
    }
}

/// Reads the first envelope. Gives the body back for tonic as soon as tonic would answer by
/// itself: a header with the compression flag or a length over [`MAX_REQUEST_BYTES`] (tonic's
/// `max_decoding_message_size`), bytes beyond the envelope, or a body that ends (or fails)
/// before the envelope is complete.
async fn read_envelope<B>(mut body: B) -> Result<Envelope<B>, Replay<B>>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let mut data = crate::body::Gathered::default();
    let mut whole = None;
    loop {
        if whole.is_some_and(|whole| data.len() >= whole) {
            break;
        }
        match body.frame().await {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(chunk) => data.push(chunk),
                Err(frame) => {
                    return Err(Replay {
                        data: Some(data.freeze()),
                        trailers: frame.into_trailers().ok(),
                        ..Replay::default()
                    });
                }
            },
            None => {
                return Err(Replay {
                    data: Some(data.freeze()),
                    ..Replay::default()
                });
            }
            Some(Err(e)) => {
                return Err(Replay {
                    data: Some(data.freeze()),
                    error: Some(e.into()),
                    ..Replay::default()
                });
            }
        }
        if whole.is_none() && data.len() >= ENVELOPE {
            let header = data.bytes();
            let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
            if header[0] != 0 || len > MAX_REQUEST_BYTES {
                return Err(Replay {
                    data: Some(data.freeze()),
                    rest: Some(body),
                    ..Replay::default()
                });
            }
            // Nothing is reserved for the announced length: it costs memory only as it arrives.
            whole = Some(ENVELOPE + len);
        }
    }
    if whole.is_some_and(|whole| data.len() > whole) {
        return Err(Replay {
            data: Some(data.freeze()),
            rest: Some(body),
            ..Replay::default()
        });
    }
    Ok(Envelope {
        data: data.freeze(),
        rest: body,
    })
}

/// Waits for the end of the body after its one envelope (its trailers, if any, are read and
/// dropped, as the service ignores request metadata). A second message goes to tonic.
async fn read_end<B>(mut read: Envelope<B>) -> Result<(), Replay<B>>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    // A body that says it has ended has no trailers left to read (HTTP/2: not asked for).
    while !read.rest.is_end_stream() {
        match read.rest.frame().await {
            None => return Ok(()),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(chunk) if chunk.is_empty() => {}
                Ok(chunk) => {
                    let mut data = BytesMut::from(read.data);
                    data.extend_from_slice(&chunk);
                    return Err(Replay {
                        data: Some(data.freeze()),
                        rest: Some(read.rest),
                        ..Replay::default()
                    });
                }
                Err(_trailers) => {}
            },
            Some(Err(e)) => {
                return Err(Replay {
                    data: Some(read.data),
                    error: Some(e.into()),
                    ..Replay::default()
                });
            }
        }
    }
    Ok(())
}

/// A request body given back for tonic: what was read, then the unread rest, the trailers or
/// the read error.
struct Replay<B> {
    data: Option<Bytes>,
    rest: Option<B>,
    trailers: Option<HeaderMap>,
    error: Option<BoxError>,
}

impl<B> Default for Replay<B> {
    fn default() -> Self {
        Replay {
            data: None,
            rest: None,
            trailers: None,
            error: None,
        }
    }
}

impl<B> HttpBody for Replay<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(data) = this.data.take().filter(|d| !d.is_empty()) {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if let Some(rest) = this.rest.as_mut() {
            match Pin::new(rest).poll_frame(cx) {
                Poll::Ready(None) => this.rest = None,
                Poll::Ready(Some(r)) => return Poll::Ready(Some(r.map_err(Into::into))),
                Poll::Pending => return Poll::Pending,
            }
        }
        if let Some(e) = this.error.take() {
            return Poll::Ready(Some(Err(e)));
        }
        Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }
}

/// A unary answer's body: one data frame, then the trailers.
struct Unary {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl HttpBody for Unary {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = match self.data.take() {
            Some(data) => Frame::data(data),
            None => match self.trailers.take() {
                Some(trailers) => Frame::trailers(trailers),
                None => return Poll::Ready(None),
            },
        };
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
    // No exact size hint: hyper would turn it into a `content-length` that tonic's answers do
    // not carry.
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::flyteidl2::secret::*;
    use futures_util::StreamExt as _;
    use futures_util::stream;
    use http_body_util::StreamBody;
    use prost::Message as _;
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::time::timeout;

    type TestBody = StreamBody<stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>>;

    fn apps() -> (Arc<SecretService>, SecretServiceServer<GrpcSecretService>) {
        let engine = crate::kubeapi::Engine::ephemeral();
        engine.ensure_namespace("flyte");
        let kube = crate::service::kube_backend::KubeBackend::new(
            engine.kube_client("flyte"),
            0.0,
            0,
            None,
        );
        let service = Arc::new(SecretService::new(kube, Default::default(), None));
        let (tonic, _) = super::super::grpc_services(&service);
        (service, tonic)
    }

    fn envelope_header(flag: u8, len: usize) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(flag);
        b.put_u32(len as u32);
        b.freeze()
    }

    fn envelope(flag: u8, message: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(flag);
        b.put_u32(message.len() as u32);
        b.put_slice(message);
        b.freeze()
    }

    fn id(name: &str) -> Option<SecretIdentifier> {
        Some(SecretIdentifier {
            name: name.into(),
            domain: "development".into(),
            project: "flytesnacks".into(),
            ..Default::default()
        })
    }

    fn create(name: &str) -> Bytes {
        let req = CreateSecretRequest {
            id: id(name),
            secret_spec: Some(SecretSpec {
                value: Some(secret_spec::Value::StringValue(format!("value of {name}"))),
                ..Default::default()
            }),
        };
        envelope(0, &req.encode_to_vec())
    }

    fn get(name: &str) -> Bytes {
        envelope(
            0,
            &GetSecretRequest {
                id: id(name),
                ..Default::default()
            }
            .encode_to_vec(),
        )
    }

    /// A request as a client sends it: POST `method`, the given headers (gRPC's content type
    /// unless one is given), the body in `chunks`, then optional trailers.
    #[derive(Clone)]
    struct Sent {
        method: Method,
        path: String,
        headers: Vec<(&'static str, &'static str)>,
        chunks: Vec<Bytes>,
        trailers: Option<HeaderMap>,
        /// The client never ends the body (no END_STREAM after the chunks).
        open: bool,
    }

    fn sent(rpc: &str, body: Bytes) -> Sent {
        Sent {
            method: Method::POST,
            path: format!("{PREFIX}{rpc}"),
            headers: vec![("content-type", "application/grpc"), ("te", "trailers")],
            chunks: vec![body],
            trailers: None,
            open: false,
        }
    }

    impl Sent {
        fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
            f(&mut self);
            self
        }

        fn open(mut self) -> Self {
            self.open = true;
            self
        }

        fn in_chunks(mut self, size: usize) -> Self {
            let whole: Vec<u8> = self.chunks.concat();
            self.chunks = whole.chunks(size).map(Bytes::copy_from_slice).collect();
            self
        }

        fn header(mut self, name: &'static str, value: &'static str) -> Self {
            self.headers.retain(|(n, _)| *n != name);
            self.headers.push((name, value));
            self
        }

        fn request(&self) -> Request<TestBody> {
            let mut frames: Vec<_> = self
                .chunks
                .iter()
                .cloned()
                .map(Frame::data)
                .map(Ok)
                .collect();
            if let Some(t) = &self.trailers {
                frames.push(Ok(Frame::trailers(t.clone())));
            }
            let mut req = Request::builder()
                .method(self.method.clone())
                .uri(&self.path)
                .version(http::Version::HTTP_2);
            for (n, v) in &self.headers {
                req = req.header(*n, *v);
            }
            let frames = stream::iter(frames);
            let body = if self.open {
                frames.chain(stream::pending()).boxed()
            } else {
                frames.boxed()
            };
            req.body(StreamBody::new(body)).unwrap()
        }
    }

    /// Everything a client sees of an answer.
    #[derive(Debug)]
    struct Seen {
        /// What hyper reads of the body before sending the head: an exact size becomes a
        /// `content-length`, an ended body a HEADERS frame with END_STREAM.
        exact_size: Option<u64>,
        ended: bool,
        status: http::StatusCode,
        headers: HeaderMap,
        /// The body as the client's codec reads it: a gzip-compressed envelope keeps its flag
        /// and holds the decompressed message (with that message's length).
        data: Vec<u8>,
        /// The body's size on the wire, compressed or not.
        wire_len: usize,
        trailers: Option<HeaderMap>,
    }

    /// Equal answers: the same compressed bytes are not required, since zlib-rs's deflate may
    /// pick other (equally valid) matches from one call to the next depending on what its
    /// freshly allocated window held before (trifectatechfoundation/zlib-rs#459); `data` is
    /// compared after decompression.
    impl PartialEq for Seen {
        fn eq(&self, other: &Seen) -> bool {
            (
                self.exact_size,
                self.ended,
                self.status,
                &self.headers,
                &self.data,
                &self.trailers,
            ) == (
                other.exact_size,
                other.ended,
                other.status,
                &other.headers,
                &other.data,
                &other.trailers,
            )
        }
    }

    async fn seen(resp: Response<Body>) -> Seen {
        let (parts, body) = resp.into_parts();
        let (exact_size, ended) = (body.size_hint().exact(), body.is_end_stream());
        let collected = body.collect().await.unwrap();
        let trailers = collected.trailers().cloned();
        let wire = collected.to_bytes().to_vec();
        let gzip = parts.headers.get("grpc-encoding") == Some(&HeaderValue::from_static("gzip"));
        let data = if gzip && wire.len() >= ENVELOPE && wire[0] == 1 {
            let announced = u32::from_be_bytes(wire[1..ENVELOPE].try_into().unwrap()) as usize;
            assert_eq!(announced, wire.len() - ENVELOPE, "one whole envelope");
            let mut message = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::GzDecoder::new(&wire[ENVELOPE..]),
                &mut message,
            )
            .expect("a valid gzip stream");
            let mut data = vec![1];
            data.extend_from_slice(&(message.len() as u32).to_be_bytes());
            data.extend_from_slice(&message);
            data
        } else {
            wire.clone()
        };
        Seen {
            exact_size,
            ended,
            status: parts.status,
            headers: parts.headers,
            data,
            wire_len: wire.len(),
            trailers,
        }
    }

    /// Sends `direct` through [`serve`] and `reference` straight to tonic, on the same service,
    /// and checks that the answers are equal and that `serve` took `path`. Returns the answer.
    async fn same_as_tonic(
        app: &(Arc<SecretService>, SecretServiceServer<GrpcSecretService>),
        direct: Sent,
        reference: Sent,
        path: Path,
    ) -> Seen {
        // A body left open must be answered without waiting for its end, both ways.
        let limit = Duration::from_secs(10);
        let (resp, took) = timeout(limit, serve(&app.0, &app.1, direct.request()))
            .await
            .expect("answered");
        let ours = seen(resp).await;
        let theirs = timeout(limit, to_tonic(&app.1, reference.request()))
            .await
            .expect("answered");
        let theirs = seen(theirs).await;
        assert_eq!(ours, theirs, "{} {:?}", direct.path, direct.headers);
        assert_eq!(took, path, "{} {:?}", direct.path, direct.headers);
        ours
    }

    fn grpc_status(seen: &Seen) -> &str {
        seen.trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status"))
            .or(seen.headers.get("grpc-status"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
    }

    /// Every RPC, its errors, and every odd form of request: answered exactly as tonic answers
    /// them, the usual form directly and the rest by tonic itself.
    #[tokio::test]
    async fn every_answer_is_the_one_tonic_gives() {
        let app = apps();
        use Path::{Direct, Tonic};
        let check =
            |direct: Sent, reference: Sent, path| same_as_tonic(&app, direct, reference, path);
        // The same request both ways, answered directly.
        let direct = |sent: Sent| same_as_tonic(&app, sent.clone(), sent, Direct);

        // Not found, then created (each way creating its own secret), then already there.
        let missing = direct(sent("GetSecret", get("a"))).await;
        assert_eq!(grpc_status(&missing), "5");
        let made = check(
            sent("CreateSecret", create("a")),
            sent("CreateSecret", create("b")),
            Direct,
        )
        .await;
        assert_eq!(grpc_status(&made), "0");
        let again = direct(sent("CreateSecret", create("a"))).await;
        assert_eq!(grpc_status(&again), "6");
        // Invalid arguments, with the service's message percent-encoded by tonic's rules.
        let bad = direct(sent("CreateSecret", create(""))).await;
        assert_eq!(grpc_status(&bad), "3");
        // A read, with and without gzip accepted (a small answer goes uncompressed either way).
        let got = direct(sent("GetSecret", get("a"))).await;
        assert_eq!(grpc_status(&got), "0");
        assert!(!got.data.is_empty());
        let gz =
            sent("GetSecret", get("a")).header("grpc-accept-encoding", "identity, deflate, gzip");
        let got = direct(gz).await;
        assert_eq!(got.headers["grpc-encoding"], "gzip");
        assert_eq!(got.data[0], 0, "under the compression threshold");
        // Codecs the server does not send are passed over, whatever their place in the list.
        let zstd = sent("GetSecret", get("a")).header("grpc-accept-encoding", "zstd, gzip");
        let got = direct(zstd).await;
        assert_eq!(got.headers["grpc-encoding"], "gzip");
        // A message of no bytes decodes to the empty request: an id that names no secret.
        let empty = sent("GetSecret", envelope(0, &[]));
        let none = direct(empty).await;
        assert_eq!(grpc_status(&none), "5");
        // A message of exactly the largest size accepted is still read and decoded (the
        // service then refuses a value that large).
        let mut value = CreateSecretRequest {
            id: id("largest"),
            secret_spec: Some(SecretSpec {
                value: Some(secret_spec::Value::BinaryValue(vec![
                    7;
                    MAX_REQUEST_BYTES - 100
                ])),
                ..Default::default()
            }),
        };
        let fill = MAX_REQUEST_BYTES - value.encoded_len();
        if let Some(SecretSpec {
            value: Some(secret_spec::Value::BinaryValue(v)),
            ..
        }) = &mut value.secret_spec
        {
            v.extend(std::iter::repeat_n(7, fill));
        }
        assert_eq!(value.encoded_len(), MAX_REQUEST_BYTES);
        let largest =
            sent("CreateSecret", envelope(0, &value.encode_to_vec())).in_chunks(16 * 1024);
        let refused = direct(largest).await;
        assert_ne!(grpc_status(&refused), "0");
        // Updates and deletes.
        let update = UpdateSecretRequest {
            id: id("a"),
            secret_spec: Some(SecretSpec {
                value: Some(secret_spec::Value::StringValue("new".into())),
                ..Default::default()
            }),
        };
        let update = sent("UpdateSecret", envelope(0, &update.encode_to_vec()));
        direct(update).await;
        let delete = |name| {
            sent(
                "DeleteSecret",
                envelope(
                    0,
                    &DeleteSecretRequest {
                        id: id(name),
                        ..Default::default()
                    }
                    .encode_to_vec(),
                ),
            )
        };
        let gone = check(delete("a"), delete("b"), Direct).await;
        assert_eq!(grpc_status(&gone), "0");
        let gone = direct(delete("a")).await;
        assert_eq!(grpc_status(&gone), "5");
        // A list over the compression threshold, gzip-compressed when the client accepts it;
        // past 64 KiB (more than one of the gzip encoders' internal buffers) and four
        // Kubernetes pages (`LIST_PAGE`).
        for i in 0..360 {
            let name = format!(
                "listed-{i:02}{}",
                if i < 40 {
                    String::new()
                } else {
                    "x".repeat(150)
                }
            );
            let (resp, _) = serve(
                &app.0,
                &app.1,
                sent("CreateSecret", create(&name)).request(),
            )
            .await;
            assert_eq!(grpc_status(&seen(resp).await), "0");
        }
        let list = ListSecretsRequest {
            domain: "development".into(),
            project: "flytesnacks".into(),
            ..Default::default()
        };
        let list = sent("ListSecrets", envelope(0, &list.encode_to_vec()));
        let plain = direct(list.clone()).await;
        assert!(
            plain.data.len() > 64 * 1024 && plain.data[0] == 0,
            "{}",
            plain.data.len()
        );
        let listed = ListSecretsResponse::decode(&plain.data[ENVELOPE..]).unwrap();
        assert_eq!(listed.secrets.len(), 360);
        let list = list.header("grpc-accept-encoding", "gzip");
        let packed = direct(list).await;
        assert_eq!(packed.data[0], 1, "compressed");
        assert_eq!(packed.data[1..], plain.data[1..], "the same message");
        assert!(packed.wire_len < plain.wire_len);
        // The message split over frames, `application/grpc+proto`, and request trailers.
        let mut split =
            sent("GetSecret", Bytes::new()).header("content-type", "application/grpc+proto");
        let whole = get("listed-01");
        split.chunks = vec![whole.slice(..3), whole.slice(3..9), whole.slice(9..)];
        split.trailers = Some(HeaderMap::from_iter([(
            http::HeaderName::from_static("x-trailer"),
            HeaderValue::from_static("1"),
        )]));
        let got = direct(split).await;
        assert_eq!(grpc_status(&got), "0");

        // Everything else is tonic's to answer.
        let message = GetSecretRequest {
            id: id("listed-01"),
            ..Default::default()
        }
        .encode_to_vec();
        let mut gzipped = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzipped.write_all(&message).unwrap();
        let gzipped = gzipped.finish().unwrap();
        let mut two = get("listed-01").to_vec();
        two.extend_from_slice(&get("listed-02"));
        let mut get_method = sent("GetSecret", get("listed-01"));
        get_method.method = Method::GET;
        let odd = [
            (
                "compressed",
                sent("GetSecret", envelope(1, &gzipped)).header("grpc-encoding", "gzip"),
                Some("0"),
            ),
            (
                "compressed without an encoding",
                sent("GetSecret", envelope(1, &gzipped)),
                Some("13"),
            ),
            (
                "an unknown encoding",
                sent("GetSecret", get("listed-01")).header("grpc-encoding", "br"),
                Some("12"),
            ),
            (
                "truncated",
                sent("GetSecret", get("listed-01").slice(..8)),
                Some("13"),
            ),
            (
                "two messages",
                sent("GetSecret", Bytes::from(two)),
                Some("0"),
            ),
            ("no message", sent("GetSecret", Bytes::new()), Some("13")),
            (
                "not protobuf",
                sent("GetSecret", envelope(0, b"\xff\xff\xff")),
                Some("13"),
            ),
            (
                "oversized",
                sent(
                    "CreateSecret",
                    envelope(0, &vec![0x0a; MAX_REQUEST_BYTES + 1]),
                ),
                Some("11"),
            ),
            // tonic decodes protobuf whatever the subtype says; not pinned here.
            (
                "another content type",
                sent("GetSecret", get("listed-01")).header("content-type", "application/grpc+json"),
                None,
            ),
            ("GET", get_method, Some("0")),
            // Answered by tonic before the body ends: the header alone decides, or the
            // message as soon as it is complete.
            (
                "a length over the limit, the body left open",
                sent("CreateSecret", envelope(0, &[0; 16]).slice(..5))
                    .open()
                    .tap(|s| s.chunks[0] = envelope_header(0, MAX_REQUEST_BYTES + 1)),
                Some("11"),
            ),
            (
                "compressed without an encoding, the body left open",
                sent("GetSecret", envelope(1, &gzipped)).open(),
                Some("13"),
            ),
            (
                "not protobuf, the body left open",
                sent("GetSecret", envelope(0, b"\xff\xff\xff")).open(),
                Some("13"),
            ),
            (
                "oversized, in many frames",
                sent(
                    "CreateSecret",
                    envelope(0, &vec![0x0a; MAX_REQUEST_BYTES + 1]),
                )
                .in_chunks(16 * 1024),
                Some("11"),
            ),
            (
                "a second, large message after the first",
                sent("GetSecret", {
                    let mut two = get("listed-01").to_vec();
                    let large = GetSecretRequest {
                        id: id(&"n".repeat(300 * 1024)),
                        ..Default::default()
                    };
                    two.extend_from_slice(&envelope(0, &large.encode_to_vec()));
                    Bytes::from(two)
                })
                .in_chunks(get("listed-01").len()),
                Some("0"),
            ),
            (
                "the start of a second header in the envelope's frame",
                sent("GetSecret", {
                    let mut more = get("listed-01").to_vec();
                    more.extend_from_slice(&[0, 0]);
                    Bytes::from(more)
                }),
                Some("13"),
            ),
            (
                "an unknown method",
                sent("NoSuchRpc", get("listed-01")),
                Some("12"),
            ),
        ];
        for (what, request, status) in odd {
            let answer = check(request.clone(), request, Tonic).await;
            if let Some(status) = status {
                assert_eq!(grpc_status(&answer), status, "{what}: {answer:?}");
            }
        }
    }

    /// A body that fails mid-read is given to tonic with what was read and the error.
    #[tokio::test]
    async fn a_failing_body_goes_to_tonic_with_its_error() {
        let (svc, tonic) = apps();
        let whole = get("x");
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
            Ok(Frame::data(whole.slice(..4))),
            Err(std::io::Error::other("connection reset")),
        ];
        let req = Request::post(format!("{PREFIX}GetSecret"))
            .header("content-type", "application/grpc")
            .body(StreamBody::new(stream::iter(frames)))
            .unwrap();
        let (resp, took) = serve(&svc, &tonic, req).await;
        assert_eq!(took, Path::Tonic);
        let answer = seen(resp).await;
        assert_ne!(grpc_status(&answer), "0");
        assert_eq!(
            answer.headers["grpc-message"], "connection%20reset",
            "{answer:?}"
        );
    }
}
