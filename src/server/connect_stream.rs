//! Connect streaming (`application/connect+proto`) bridged onto the gRPC services: the envelopes
//! are byte-identical, so a request only needs its headers renamed, and a response only needs its
//! gRPC trailers turned into Connect's end-of-stream envelope. This is what lets `buf curl
//! --protocol connect` use server reflection (a bidirectional stream) on the service port.

use super::Body;
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response, header};
use http_body::Frame;
use std::pin::Pin;
use std::task::{Context, Poll};

pub const CONTENT_TYPE: &str = "application/connect+proto";

/// True for a Connect streaming request this bridge handles.
pub fn is_connect_stream(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|c| c.trim().eq_ignore_ascii_case(CONTENT_TYPE))
}

/// Rewrites a Connect streaming request into a gRPC one.
pub fn to_grpc_request<B>(mut req: Request<B>) -> Request<B> {
    let h = req.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc+proto"),
    );
    h.insert("te", HeaderValue::from_static("trailers"));
    if let Some(ms) = h.remove("connect-timeout-ms")
        && let Ok(v) = HeaderValue::from_str(&format!("{}m", ms.to_str().unwrap_or("0")))
    {
        h.insert("grpc-timeout", v);
    }
    for (from, to) in [
        ("connect-content-encoding", "grpc-encoding"),
        ("connect-accept-encoding", "grpc-accept-encoding"),
    ] {
        if let Some(v) = h.remove(from) {
            h.insert(to, v);
        }
    }
    req
}

/// Rewrites a gRPC response into a Connect streaming one.
pub fn from_grpc_response(resp: Response<Body>) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    // A trailers-only gRPC response carries its status in the headers.
    let status_in_headers = end_of_stream(&parts.headers);
    parts.status = http::StatusCode::OK;
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    if let Some(enc) = parts.headers.remove("grpc-encoding") {
        parts.headers.insert("connect-content-encoding", enc);
    }
    for name in [
        "grpc-status",
        "grpc-message",
        "grpc-status-details-bin",
        "grpc-accept-encoding",
    ] {
        parts.headers.remove(name);
    }
    let body = EndOfStream {
        inner: body,
        pending: status_in_headers,
        done: false,
    };
    Response::from_parts(parts, Body::new(body))
}

/// The Connect end-of-stream JSON for gRPC status metadata, if the metadata holds a status.
fn end_of_stream(meta: &HeaderMap) -> Option<Bytes> {
    let status: i32 = meta.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let json = if status == 0 {
        serde_json::json!({})
    } else {
        let message = meta
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .map(super::percent_decode)
            .unwrap_or_default();
        let code = crate::service::Code::from_grpc(status).map_or("unknown", |c| c.connect_name());
        serde_json::json!({"error": {"code": code, "message": message}})
    };
    let payload = serde_json::to_vec(&json).expect("serialisable");
    let mut frame = BytesMut::with_capacity(5 + payload.len());
    frame.put_u8(0x02);
    frame.put_u32(payload.len() as u32);
    frame.put_slice(&payload);
    Some(frame.freeze())
}

struct EndOfStream {
    inner: Body,
    pending: Option<Bytes>,
    done: bool,
}

impl http_body::Body for EndOfStream {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.pending.is_none() {
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => match frame.into_trailers() {
                    Ok(trailers) => {
                        self.pending =
                            Some(end_of_stream(&trailers).unwrap_or_else(end_of_stream_ok))
                    }
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => self.pending = Some(end_of_stream_ok()),
            }
        }
        self.done = true;
        Poll::Ready(self.pending.take().map(|b| Ok(Frame::data(b))))
    }
}

fn end_of_stream_ok() -> Bytes {
    let mut h = HeaderMap::new();
    h.insert("grpc-status", HeaderValue::from_static("0"));
    end_of_stream(&h).expect("status present")
}
