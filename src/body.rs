//! Reading a whole HTTP body into one buffer, with a size limit: the Connect and REST request
//! bodies, the engine's requests, and the engine's answers to the service's metadata reads.
//!
//! Almost every body here arrives as one frame, which is handed back as it is (no copy, no
//! buffer list); only bodies in several frames are copied together. Trailers are not kept.

use bytes::{Bytes, BytesMut};
use http_body::Body;
use std::future::poll_fn;
use std::pin::pin;

/// Why a body could not be read whole.
#[derive(Debug, PartialEq, Eq)]
pub enum CollectError<E> {
    /// More data than the limit.
    TooLarge,
    /// The body itself failed (the client went away, a protocol error).
    Body(E),
}

/// The data of `body`, at most `limit` bytes of it (a body with more is `TooLarge`, found as
/// soon as the data read so far passes the limit, without reading the rest).
pub async fn collect_at_most<B>(body: B, limit: usize) -> Result<Bytes, CollectError<B::Error>>
where
    B: Body<Data = Bytes>,
{
    let mut body = pin!(body);
    let mut read = Gathered::default();
    // A body that says it has ended is not polled again: for HTTP/2 that saves asking for
    // trailers the stream cannot have. (hyper's HTTP/2 bodies say so only for a stream that
    // ended cleanly, not a reset one: h2 0.4.10 and later, which Cargo.toml's hyper requires.)
    while !body.is_end_stream() {
        let Some(frame) = poll_fn(|cx| body.as_mut().poll_frame(cx)).await else {
            break;
        };
        let Ok(data) = frame.map_err(CollectError::Body)?.into_data() else {
            continue;
        };
        if read.len().saturating_add(data.len()) > limit {
            return Err(CollectError::TooLarge);
        }
        read.push(data);
    }
    Ok(read.freeze())
}

/// The data read so far: the first chunk as it came, until a second one makes them be copied
/// together. The joined buffer grows with what has arrived (doubling, as a `Vec` does), never
/// with what a peer announces: a body's or a gRPC envelope's declared length costs no memory
/// until its bytes come.
#[derive(Debug, Default)]
pub struct Gathered {
    first: Bytes,
    joined: Option<BytesMut>,
}

impl Gathered {
    pub fn push(&mut self, chunk: Bytes) {
        match &mut self.joined {
            _ if chunk.is_empty() => {}
            Some(buf) => buf.extend_from_slice(&chunk),
            None if self.first.is_empty() => self.first = chunk,
            None => {
                // The first chunk is let go once copied (it may pin a connection's read buffer).
                let first = std::mem::take(&mut self.first);
                let mut buf = BytesMut::with_capacity(first.len() + chunk.len());
                buf.extend_from_slice(&first);
                buf.extend_from_slice(&chunk);
                self.joined = Some(buf);
            }
        }
    }

    pub fn bytes(&self) -> &[u8] {
        self.joined.as_deref().unwrap_or(&self.first)
    }

    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn freeze(self) -> Bytes {
        self.joined.map_or(self.first, BytesMut::freeze)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Frame;
    use http_body_util::{BodyExt as _, Full, StreamBody};
    use std::convert::Infallible;

    /// A body of the given frames (data, or trailers where `None`), then an end or an error.
    fn frames(
        parts: &[Option<&'static [u8]>],
        then_fail: bool,
    ) -> impl Body<Data = Bytes, Error = &'static str> {
        let mut items: Vec<Result<Frame<Bytes>, &'static str>> = parts
            .iter()
            .map(|p| {
                Ok(match p {
                    Some(d) => Frame::data(Bytes::from_static(d)),
                    None => Frame::trailers(http::HeaderMap::new()),
                })
            })
            .collect();
        if then_fail {
            items.push(Err("the peer went away"));
        }
        StreamBody::new(futures_util::stream::iter(items))
    }

    /// What http-body-util's `Limited` + `collect` gives, the reading this replaces.
    async fn reference(
        body: impl Body<Data = Bytes, Error = &'static str>,
        limit: usize,
    ) -> Result<Bytes, String> {
        http_body_util::Limited::new(body, limit)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn reads_what_limited_collect_reads() {
        let cases: &[&[Option<&'static [u8]>]] = &[
            &[],
            &[Some(b"")],
            &[Some(b"abc")],
            &[Some(b"ab"), Some(b"cd")],
            &[Some(b""), Some(b"abc"), Some(b""), Some(b"d")],
            &[Some(b"ab"), None],
            &[Some(b"a"), Some(b"bc"), Some(b"def")],
            &[None],
        ];
        for parts in cases {
            for limit in 0..8 {
                for fail in [false, true] {
                    let ours = collect_at_most(frames(parts, fail), limit).await;
                    let theirs = reference(frames(parts, fail), limit).await;
                    match (&ours, &theirs) {
                        (Ok(a), Ok(b)) => assert_eq!(a, b, "{parts:?} limit {limit}"),
                        (Err(CollectError::TooLarge), Err(e)) => {
                            assert!(e.contains("length limit"), "{parts:?} {limit}: {e}")
                        }
                        (Err(CollectError::Body(a)), Err(b)) => assert_eq!(a, b),
                        _ => panic!("{parts:?} limit {limit}: {ours:?} vs {theirs:?}"),
                    }
                }
            }
        }
    }

    /// Chunks come out in order whatever their sizes; once joined, the first is no longer held
    /// and the buffer's room stays within twice what has arrived.
    #[test]
    fn gathered_chunks_join_in_order_in_a_buffer_sized_by_what_arrived() {
        let chunks: Vec<Bytes> = (0u8..40).map(|i| Bytes::from(vec![i; 1000])).collect();
        let mut g = Gathered::default();
        g.push(Bytes::new());
        for (i, chunk) in chunks.iter().enumerate() {
            g.push(chunk.clone());
            g.push(Bytes::new());
            if i > 0 {
                assert!(g.first.is_empty(), "the first chunk is still held");
                let buf = g.joined.as_ref().unwrap();
                assert!(
                    buf.capacity() <= 2 * buf.len(),
                    "room {} for {}",
                    buf.capacity(),
                    buf.len()
                );
            }
        }
        assert_eq!(g.len(), 40_000);
        assert_eq!(g.freeze(), chunks.concat());
    }

    /// One frame comes back as the very buffer it arrived in.
    #[tokio::test]
    async fn a_single_frame_is_not_copied() {
        let data = Bytes::from(vec![7u8; 1000]);
        let body = Full::new(data.clone()).map_err(|never: Infallible| match never {});
        let read = collect_at_most(body, 1000).await.unwrap();
        assert_eq!(read.as_ptr(), data.as_ptr());
        assert_eq!(read, data);
    }

    /// A body past the limit is refused at the frame that passes it: what follows is not read.
    #[tokio::test]
    async fn stops_at_the_frame_past_the_limit() {
        let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = read.clone();
        let endless = futures_util::stream::repeat_with(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"0123456789")))
        });
        let got = collect_at_most(StreamBody::new(endless), 95).await;
        assert_eq!(got, Err(CollectError::TooLarge));
        assert_eq!(read.load(std::sync::atomic::Ordering::Relaxed), 10);
    }

    /// Over a real HTTP/2 connection (hyper on both sides): a request whose stream ends cleanly
    /// is read whole; one reset after its first DATA frame is a body error, never a short body
    /// taken for the whole one.
    #[tokio::test]
    async fn an_http2_stream_reset_midway_is_an_error_not_a_short_body() {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (read_tx, mut read_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let read_tx = read_tx.clone();
                    async move {
                        let read = match collect_at_most(req.into_body(), 1 << 20).await {
                            Ok(bytes) => Ok(bytes),
                            Err(CollectError::TooLarge) => Err("too large".to_owned()),
                            Err(CollectError::Body(e)) => Err(e.to_string()),
                        };
                        let _ = read_tx.send(read);
                        Ok::<_, Infallible>(http::Response::new(
                            http_body_util::Empty::<Bytes>::new(),
                        ))
                    }
                });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let post = |items: Vec<Result<Frame<Bytes>, std::io::Error>>| {
            http::Request::post("http://flytesecret.test/")
                .body(StreamBody::new(futures_util::stream::iter(items)))
                .unwrap()
        };
        let data = |d: &'static [u8]| Ok(Frame::data(Bytes::from_static(d)));

        let whole = post(vec![data(b"abc"), data(b"def")]);
        send.send_request(whole).await.unwrap();
        assert_eq!(
            read_rx.recv().await.unwrap(),
            Ok(Bytes::from_static(b"abcdef"))
        );

        // The client's body fails after one frame: hyper resets the stream.
        let reset = post(vec![
            data(b"abc"),
            Err(std::io::Error::other("the client gave up")),
        ]);
        let _ = send.send_request(reset).await;
        let read = read_rx.recv().await.unwrap();
        assert!(read.is_err(), "a reset stream was read as {read:?}");
    }
}
