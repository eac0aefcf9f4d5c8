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
    // trailers the stream cannot have.
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
/// together.
#[derive(Debug, Default)]
pub struct Gathered {
    first: Bytes,
    joined: Option<BytesMut>,
    /// How much is expected in all, when known: the room made when chunks are joined.
    expected: usize,
}

impl Gathered {
    /// Says how many bytes are expected in all (the caller bounds it), so chunks joined later
    /// are copied into one buffer of that size rather than into ever larger ones.
    pub fn expect(&mut self, total: usize) {
        self.expected = total;
        if let Some(buf) = &mut self.joined {
            buf.reserve(total.saturating_sub(buf.len()));
        }
    }

    pub fn push(&mut self, chunk: Bytes) {
        match &mut self.joined {
            _ if chunk.is_empty() => {}
            Some(buf) => buf.extend_from_slice(&chunk),
            None if self.first.is_empty() => self.first = chunk,
            None => {
                let room = self.expected.max(self.first.len() + chunk.len());
                let mut buf = BytesMut::with_capacity(room);
                buf.extend_from_slice(&self.first);
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

    /// Chunks come out in order whatever their sizes; once the total is known, the chunks
    /// joined after it are copied into one buffer made that large, never regrown.
    #[test]
    fn gathered_chunks_join_into_one_buffer_of_the_expected_size() {
        let chunks: Vec<Bytes> = (0u8..10).map(|i| Bytes::from(vec![i; 10])).collect();
        let whole: Vec<u8> = chunks.concat();
        for expect_after in 0..=3 {
            let mut g = Gathered::default();
            for (i, chunk) in chunks.iter().enumerate() {
                if i == expect_after {
                    g.expect(whole.len());
                }
                g.push(chunk.clone());
                if i >= expect_after.max(1) {
                    let buf = g.joined.as_ref().expect("two chunks are joined");
                    assert!(buf.capacity() >= whole.len(), "regrown at chunk {i}");
                }
            }
            assert_eq!(g.len(), whole.len());
            assert_eq!(g.freeze(), whole, "expected after chunk {expect_after}");
        }
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
}
