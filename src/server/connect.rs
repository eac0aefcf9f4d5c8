//! The Connect protocol, unary only (all five RPCs are unary): `application/proto` and
//! `application/json` bodies, gzip request bodies, `connect-timeout-ms`, and Connect error bodies
//! with the HTTP status of each code. Written here rather than pulled in: the surface is small,
//! and it keeps one implementation of each RPC (the [`SecretService`]) behind every protocol.

use super::{Body, MAX_REQUEST_BYTES, plain};
use crate::service::{Code, RpcError, SecretService};
use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::Read as _;
use std::sync::Arc;

/// The services served over Connect, by path prefix.
pub const SERVICES: &[&str] = &[
    "/flyteidl2.secret.SecretService/",
    "/flyteidl2.cluster.ClusterService/",
];

/// Every unary procedure served (Connect answers 404 for any other path under `SERVICES`).
pub const PROCEDURES: &[&str] = &[
    "/flyteidl2.secret.SecretService/CreateSecret",
    "/flyteidl2.secret.SecretService/UpdateSecret",
    "/flyteidl2.secret.SecretService/GetSecret",
    "/flyteidl2.secret.SecretService/DeleteSecret",
    "/flyteidl2.secret.SecretService/ListSecrets",
    "/flyteidl2.cluster.ClusterService/SelectCluster",
];

/// True when `path` belongs to a service served over Connect.
pub fn is_connect_path(path: &str) -> bool {
    SERVICES.iter().any(|p| path.starts_with(p))
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Proto,
    Json,
}

impl Codec {
    fn from_content_type(ct: &str) -> Option<Codec> {
        let essence = ct.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/proto") {
            Some(Codec::Proto)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Some(Codec::Json)
        } else {
            None
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Codec::Proto => "application/proto",
            Codec::Json => "application/json",
        }
    }
}

/// Renders an RPC error as a Connect error response.
pub fn error_response(e: &RpcError) -> Response<Body> {
    let body = serde_json::json!({"code": e.code.connect_name(), "message": e.message});
    Response::builder()
        .status(
            StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        )
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::new(http_body_util::Full::new(Bytes::from(
            body.to_string(),
        ))))
        .expect("valid response")
}

fn decode<T: prost::Message + Default + DeserializeOwned>(
    codec: Codec,
    body: &[u8],
) -> Result<T, RpcError> {
    match codec {
        Codec::Proto => T::decode(body).map_err(|e| {
            RpcError::invalid_argument(format!(
                "unmarshal into request message: {}",
                crate::service::echo(&e.to_string())
            ))
        }),
        Codec::Json => {
            if body.is_empty() {
                return Err(RpcError::invalid_argument(
                    "zero-length payload is not a valid JSON object",
                ));
            }
            serde_json::from_slice(body).map_err(|e| {
                RpcError::invalid_argument(format!(
                    "unmarshal into request message: {}",
                    crate::service::echo(&e.to_string())
                ))
            })
        }
    }
}

fn encode<T: prost::Message + Serialize>(codec: Codec, msg: &T) -> Bytes {
    match codec {
        Codec::Proto => Bytes::from(msg.encode_to_vec()),
        Codec::Json => Bytes::from(serde_json::to_vec(msg).expect("messages serialise")),
    }
}

/// Decodes the body (gunzipping when asked), checks the size limit.
pub fn request_bytes(headers: &HeaderMap, body: Bytes) -> Result<Bytes, RpcError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity");
    let encoding = encoding.trim();
    let bytes = if encoding.is_empty() || encoding.eq_ignore_ascii_case("identity") {
        body
    } else if encoding.eq_ignore_ascii_case("gzip") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .take(MAX_REQUEST_BYTES as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| RpcError::invalid_argument(format!("decompress gzip request: {e}")))?;
        Bytes::from(out)
    } else {
        return Err(RpcError::new(
            Code::Unimplemented,
            format!(
                "unknown compression {:?}: supported encodings are gzip",
                crate::service::echo(&encoding.to_ascii_lowercase())
            ),
        ));
    };
    if bytes.len() > MAX_REQUEST_BYTES {
        return Err(super::oversized());
    }
    Ok(bytes)
}

async fn call<Req, Resp, F, Fut>(codec: Codec, body: &[u8], f: F) -> Result<Bytes, RpcError>
where
    Req: prost::Message + Default + DeserializeOwned,
    Resp: prost::Message + Serialize,
    F: FnOnce(Req) -> Fut,
    Fut: Future<Output = Result<Resp, RpcError>>,
{
    let req = decode::<Req>(codec, body)?;
    let resp = f(req).await?;
    Ok(encode(codec, &resp))
}

/// Handles one request to a path of [`SERVICES`].
pub async fn handle(
    svc: Arc<SecretService>,
    method: &Method,
    headers: &HeaderMap,
    path: &str,
    body: Bytes,
) -> Response<Body> {
    if !PROCEDURES.contains(&path) {
        return plain(404, "404 page not found\n");
    }
    let procedure = path.rsplit('/').next().unwrap_or("");
    if method != Method::POST {
        let mut r = plain(405, "405 method not allowed\n");
        r.headers_mut()
            .insert(header::ALLOW, http::HeaderValue::from_static("POST"));
        return r;
    }
    let Some(codec) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Codec::from_content_type)
    else {
        let mut r = plain(415, "415 unsupported media type\n");
        r.headers_mut().insert("accept-post", http::HeaderValue::from_static(
            "application/grpc, application/grpc+json, application/grpc+proto, application/grpc-web, application/grpc-web+json, application/grpc-web+proto, application/json, application/proto",
        ));
        return r;
    };
    let body = match request_bytes(headers, body) {
        Ok(b) => b,
        Err(e) => return error_response(&e),
    };
    // The writes' and ListSecrets' futures are boxed: held inline, the largest (UpdateSecret,
    // ~9 KB) would set the size of every request's future, GetSecret's too, and every move of
    // it in the pipeline would copy that much.
    let work = async {
        match procedure {
            "CreateSecret" => call(codec, &body, |r| Box::pin(svc.create(r))).await,
            "UpdateSecret" => call(codec, &body, |r| Box::pin(svc.update(r))).await,
            "GetSecret" => call(codec, &body, |r| svc.get(r)).await,
            "DeleteSecret" => call(codec, &body, |r| Box::pin(svc.delete(r))).await,
            "ListSecrets" => call(codec, &body, |r| Box::pin(svc.list(r))).await,
            _ => {
                let cluster = svc.settings().cluster_name.clone();
                call(codec, &body, |r| async move {
                    crate::service::cluster::select_cluster(&r, &cluster)
                })
                .await
            }
        }
    };
    // Deadlines (`connect-timeout-ms`) are enforced where requests enter, in `server::dispatch`.
    let result = work.await;
    match result {
        Ok(bytes) => {
            let mut response = Response::new(Body::new(http_body_util::Full::new(bytes)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static(codec.content_type()),
            );
            response
        }
        Err(e) => error_response(&e),
    }
}
