//! The REST routes the proto declares (`google.api.http`), served as JSON in the grpc-gateway
//! style. The Go service declares them but never serves them; here they call the same
//! [`SecretService`] as every other protocol.

use super::Body;
use crate::proto::flyteidl2::secret::{
    CreateSecretRequest, DeleteSecretRequest, GetSecretRequest, ListSecretsRequest,
    SecretIdentifier, UpdateSecretRequest,
};
use crate::service::{Code, RpcError, SecretService};
use bytes::Bytes;
use http::{Method, Response, header};
use http_body_util::Full;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

pub const PREFIX: &str = "/secrets/api/v1";

fn json_response<T: Serialize>(status: u16, body: &T) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::new(Full::new(Bytes::from(
            serde_json::to_vec(body).expect("serialisable"),
        ))))
        .expect("valid response")
}

/// grpc-gateway's error body: `{"code": <gRPC number>, "message": ..., "details": []}`.
pub fn error_response(e: &RpcError) -> Response<Body> {
    let status = match e.code {
        Code::Canceled => 499,
        Code::ResourceExhausted => 429,
        other => other.http_status(),
    };
    json_response(
        status,
        &serde_json::json!({"code": e.code.grpc_number(), "message": e.message, "details": []}),
    )
}

fn parse_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, RpcError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        RpcError::invalid_argument(format!(
            "invalid JSON body: {}",
            crate::service::echo(&e.to_string())
        ))
    })
}

fn query(q: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn id_from(name: &str, q: &HashMap<String, String>) -> SecretIdentifier {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    SecretIdentifier {
        name: name.to_owned(),
        organization: get("id.organization"),
        domain: get("id.domain"),
        project: get("id.project"),
    }
}

/// True when `path` is one of the REST routes.
pub fn is_rest_path(path: &str) -> bool {
    path == PREFIX || path.starts_with("/secrets/api/v1/name/")
}

pub async fn handle(
    svc: Arc<SecretService>,
    method: &Method,
    path: &str,
    q: Option<&str>,
    body: Bytes,
) -> Response<Body> {
    let q = query(q);
    let name = path
        .strip_prefix("/secrets/api/v1/name/")
        .map(super::percent_decode);
    // `Ok(None)`: the path exists but not for this method (405, not an RPC error).
    let result: Result<Option<Response<Body>>, RpcError> = async {
        match (method, name) {
            (&Method::POST, None) => {
                let req: CreateSecretRequest = parse_body(&body)?;
                Ok(Some(json_response(200, &Box::pin(svc.create(req)).await?)))
            }
            (&Method::GET, None) => {
                let get = |k: &str| q.get(k).cloned().unwrap_or_default();
                let limit = match q.get("limit") {
                    Some(l) => l.parse().map_err(|_| {
                        RpcError::invalid_argument(format!(
                            "limit: invalid number {:?}",
                            crate::service::echo(l)
                        ))
                    })?,
                    None => 0,
                };
                let req = ListSecretsRequest {
                    organization: get("organization"),
                    domain: get("domain"),
                    project: get("project"),
                    limit,
                    token: get("token"),
                    ..Default::default()
                };
                Ok(Some(json_response(200, &Box::pin(svc.list(req)).await?)))
            }
            (&Method::PUT, Some(name)) => {
                let mut req: UpdateSecretRequest = parse_body(&body)?;
                let mut id = req.id.take().unwrap_or_default();
                id.name = name;
                req.id = Some(id);
                Ok(Some(json_response(200, &Box::pin(svc.update(req)).await?)))
            }
            (&Method::GET, Some(name)) => {
                let req = GetSecretRequest {
                    id: Some(id_from(&name, &q)),
                    include_system_secrets: false,
                };
                Ok(Some(json_response(200, &svc.get(req).await?)))
            }
            (&Method::DELETE, Some(name)) => {
                let req = DeleteSecretRequest {
                    id: Some(id_from(&name, &q)),
                    include_system_secrets: false,
                };
                Ok(Some(json_response(200, &Box::pin(svc.delete(req)).await?)))
            }
            _ => Ok(None),
        }
    }
    .await;
    match result {
        Ok(Some(r)) => r,
        Ok(None) => {
            let mut r = super::plain(405, "405 method not allowed\n");
            let allow = if path == PREFIX {
                "GET, POST"
            } else {
                "GET, PUT, DELETE"
            };
            r.headers_mut()
                .insert(header::ALLOW, http::HeaderValue::from_static(allow));
            r
        }
        Err(e) => error_response(&e),
    }
}
