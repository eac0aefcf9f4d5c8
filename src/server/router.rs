//! The protocol router: the innermost service of the pipeline. It hands each request to its
//! protocol's adapter (the SecretService's unary gRPC path, tonic for other gRPC services and
//! gRPC-Web, the Connect streaming bridge, Connect unary, REST) or answers the plain endpoints
//! (`/healthz`, `/readyz`, `/metrics`).

use super::{App, Body, MAX_REQUEST_BYTES, connect, connect_stream, grpc_unary, plain, rest};
use crate::service::RpcError;
use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::Full;
use hyper::body::Incoming;
use std::sync::Arc;

/// The protocol of a request, decided once (by the pipeline's classify step) from its content
/// type and path, and kept in the request's extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    GrpcWeb,
    ConnectStream,
    Connect,
    Rest,
    Plain,
}

impl Protocol {
    pub fn of<B>(req: &Request<B>) -> Protocol {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let path = req.uri().path();
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
}

/// An RPC error in the terms of `protocol` (the one rendering used by every pipeline layer that
/// answers by itself: deadlines, bad timeouts, panics, and the authentication slot).
pub fn error_response(protocol: Protocol, e: &RpcError) -> Response<Body> {
    match protocol {
        Protocol::Grpc | Protocol::GrpcWeb | Protocol::ConnectStream => {
            let mut resp: Response<Body> = super::grpc::status(e.clone()).into_http();
            match protocol {
                Protocol::GrpcWeb => {
                    resp.headers_mut().insert(
                        header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/grpc-web+proto"),
                    );
                    resp
                }
                Protocol::ConnectStream => connect_stream::from_grpc_response(resp),
                _ => resp,
            }
        }
        Protocol::Rest => rest::error_response(e),
        Protocol::Connect | Protocol::Plain => connect::error_response(e),
    }
}

/// tonic answers an oversized gRPC message with `out_of_range`; the contract (and connect-go)
/// says `resource_exhausted`.
fn oversized_is_resource_exhausted(mut resp: Response<Body>) -> Response<Body> {
    let h = resp.headers_mut();
    let oversized = h.get(grpc_unary::GRPC_STATUS).is_some_and(|v| v == "11")
        && h.get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| {
                m.contains("message%20length%20too%20large")
                    || m.contains("message length too large")
            });
    if oversized {
        h.insert(grpc_unary::GRPC_STATUS, http::HeaderValue::from_static("8"));
    }
    resp
}

fn plain_route(app: &App, path: &str) -> Response<Body> {
    match path {
        "/healthz" => match app.unrecoverable() {
            None => plain(200, "OK"),
            Some(why) => plain(503, format!("unhealthy, a restart recovers: {why}\n")),
        },
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

/// The body of a Connect or REST request, at most [`MAX_REQUEST_BYTES`] (gRPC's limit is
/// tonic's `max_decoding_message_size`, set to the same).
async fn collect_limited(body: Incoming) -> Result<Bytes, RpcError> {
    crate::body::collect_at_most(body, MAX_REQUEST_BYTES + 1)
        .await
        .map_err(|_| super::oversized())
}

/// Routes one request to its protocol's adapter.
pub async fn route(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let protocol = req
        .extensions()
        .get::<Protocol>()
        .copied()
        .unwrap_or_else(|| Protocol::of(&req));
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
            if req.uri().path().starts_with(grpc_unary::PREFIX) {
                // Only tonic says `out_of_range` for an oversized message; the direct path's
                // answers are the service's own.
                return match grpc_unary::serve(&app.service, &app.secret_grpc, req).await {
                    (resp, grpc_unary::Path::Direct) => resp,
                    (resp, grpc_unary::Path::Tonic) => oversized_is_resource_exhausted(resp),
                };
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
