//! One entry per decoder that reads untrusted bytes, shared by the coverage-guided fuzz targets
//! (`fuzz/fuzz_targets/*.rs`) and the never-panic properties (`tests/decoders_never_panic.rs`).
//! Each takes arbitrary bytes, shapes them into the input that decoder sees in production, runs
//! it through the real public entry point, and drains the answer. None may panic. Each returns a
//! short outcome (a status) so tests can check that the seeds reach the decoder and succeed.
#![allow(dead_code)]

use bytes::Bytes;
use flytesecret::kubeapi::{Durability, Engine};
use flytesecret::server::connect::PROCEDURES;
use flytesecret::service::{KubeBackend, SecretService, Settings};
use http::{HeaderValue, Method, Request};
use http_body_util::BodyExt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// A harness: bytes in, a short outcome out.
pub type Harness = fn(&[u8]) -> String;

/// Every harness, by name (the fuzz target names).
pub const TARGETS: &[(&str, Harness)] = &[
    ("grpc", grpc),
    ("grpc_web", grpc_web),
    ("connect", connect),
    ("rest", rest),
    ("kubeapi_json", kubeapi_json),
    ("kubeapi_protobuf", kubeapi_protobuf),
    ("selectors", selectors),
    ("continue_token", continue_token),
    ("wal_replay", wal_replay),
    ("config_file", config_file),
    ("naming_adapter", naming_adapter),
];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// A fresh service over a fresh in-memory engine holding a few secrets (so reads, updates and
/// pages have something to find).
fn service() -> (Arc<SecretService>, Arc<Engine>) {
    let engine = Engine::ephemeral();
    engine.ensure_namespace("flyte");
    // The client's request buffer spawns its worker onto the runtime.
    let _enter = runtime().enter();
    let kube = KubeBackend::new(engine.kube_client("flyte"), 0.0, 1, None);
    let svc = Arc::new(SecretService::new(kube, Settings::default(), None));
    runtime().block_on(async {
        for (name, project) in [("a", "p"), ("b", "p"), ("c", "")] {
            use flytesecret::proto::flyteidl2::secret::*;
            let _ = svc
                .create(CreateSecretRequest {
                    id: Some(SecretIdentifier {
                        name: name.into(),
                        organization: String::new(),
                        domain: "development".into(),
                        project: project.into(),
                    }),
                    secret_spec: Some(SecretSpec {
                        value: Some(secret_spec::Value::StringValue("v".into())),
                        r#type: 0,
                    }),
                })
                .await;
        }
    });
    (svc, engine)
}

/// Takes one selector byte off the front.
fn pick<'a, T>(data: &mut &[u8], choices: &'a [T]) -> &'a T {
    let (first, rest) = data.split_first().unwrap_or((&0, &[]));
    *data = rest;
    &choices[usize::from(*first) % choices.len()]
}

/// Splits at the first NUL: (head as lossy text, rest).
fn field(data: &mut &[u8]) -> String {
    let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    *data = data.get(end + 1..).unwrap_or(&[]);
    head
}

/// The server's own gRPC services (gRPC framing, size limit, gzip, prost decoding), routed.
fn grpc_routes(svc: Arc<SecretService>) -> tonic::service::Routes {
    let (secret, cluster) = flytesecret::server::grpc_services(&svc);
    tonic::service::Routes::new(secret).add_service(cluster)
}

fn framed_request(data: &[u8], content_types: &[&str]) -> Request<tonic::body::Body> {
    let mut data = data;
    let path = *pick(&mut data, PROCEDURES);
    let content_type = *pick(&mut data, content_types);
    let encoding = *pick(&mut data, &["", "gzip", "identity", "deflate"]);
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .version(http::Version::HTTP_2)
        .header("content-type", content_type)
        .header("te", "trailers");
    if !encoding.is_empty() {
        req = req.header("grpc-encoding", encoding);
    }
    req.body(tonic::body::Body::new(http_body_util::Full::new(
        Bytes::copy_from_slice(data),
    )))
    .expect("valid request")
}

/// Reads the whole body; the gRPC status from the headers, the trailers, or (gRPC-Web) the
/// trailer frame in the body, binary or base64.
async fn drain(resp: http::Response<tonic::body::Body>) -> String {
    use base64::Engine as _;
    let status = resp.status().as_u16();
    let (parts, body) = resp.into_parts();
    let (trailers, bytes) = match body.collect().await {
        Ok(c) => (c.trailers().cloned(), c.to_bytes()),
        Err(_) => (None, Bytes::new()),
    };
    let in_frame = |b: &[u8]| {
        let at = b.windows(12).position(|w| w == b"grpc-status:")?;
        let digits: String = b[at + 12..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .map(|c| char::from(*c))
            .collect();
        Some(digits)
    };
    let grpc = [Some(&parts.headers), trailers.as_ref()]
        .into_iter()
        .flatten()
        .find_map(|h| h.get("grpc-status"))
        .and_then(|v| v.to_str().ok().map(str::to_owned))
        .or_else(|| in_frame(&bytes))
        .or_else(|| {
            let text: Vec<u8> = bytes
                .iter()
                .copied()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            // grpc-web-text concatenates base64 chunks, each padded.
            let mut decoded = Vec::new();
            for chunk in text.split_inclusive(|c| *c == b'=').filter(|c| *c != b"=") {
                decoded.extend(
                    base64::engine::general_purpose::STANDARD
                        .decode(chunk)
                        .ok()?,
                );
            }
            in_frame(&decoded)
        })
        .map(|v| format!(" grpc-status={v}"))
        .unwrap_or_default();
    format!("{status}{grpc}")
}

/// gRPC framing: the 5-byte message prefix, compression flag, gzip, the protobuf message.
/// Connect streaming envelopes are the same bytes (the server bridges them onto these routes).
/// SecretService calls go through the server's own gRPC entry (its direct unary path, which
/// hands every other form to tonic), and the same request also goes to tonic alone on an
/// identically seeded service: the two must give the same HTTP and gRPC status.
pub fn grpc(data: &[u8]) -> String {
    use flytesecret::server::grpc_unary;
    let (svc, _engine) = service();
    let (reference, _reference_engine) = service();
    let content_types = ["application/grpc", "application/grpc+proto"];
    let req = framed_request(data, &content_types);
    let same = framed_request(data, &content_types);
    runtime().block_on(async {
        let ours = if req.uri().path().starts_with(grpc_unary::PREFIX) {
            let (secret, _) = flytesecret::server::grpc_services(&svc);
            grpc_unary::serve(&svc, &secret, req).await.0
        } else {
            match tower::ServiceExt::oneshot(grpc_routes(svc), req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            }
        };
        let theirs = match tower::ServiceExt::oneshot(grpc_routes(reference), same).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        };
        let (ours, theirs) = (drain(ours).await, drain(theirs).await);
        assert_eq!(ours, theirs, "the direct gRPC path and tonic disagree");
        ours
    })
}

/// gRPC-Web framing, binary and base64 text, through the same tonic-web layer the server uses.
pub fn grpc_web(data: &[u8]) -> String {
    let (svc, _engine) = service();
    let req = framed_request(
        data,
        &[
            "application/grpc-web",
            "application/grpc-web+proto",
            "application/grpc-web-text",
            "application/grpc-web-text+proto",
        ],
    );
    runtime().block_on(async {
        let web = tower::Layer::layer(&tonic_web::GrpcWebLayer::new(), grpc_routes(svc));
        match tower::ServiceExt::oneshot(web, req).await {
            Ok(resp) => drain(resp).await,
            Err(e) => format!("error {e}"),
        }
    })
}

/// Connect unary: JSON and protobuf bodies, gzip, the procedure path.
pub fn connect(data: &[u8]) -> String {
    let (svc, _engine) = service();
    let mut data = data;
    let path = *pick(&mut data, PROCEDURES);
    let content_type = *pick(
        &mut data,
        &[
            "application/json",
            "application/proto",
            "application/json; charset=utf-8",
        ],
    );
    let encoding = *pick(&mut data, &["", "gzip", "identity", "br"]);
    let mut headers = http::HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    if !encoding.is_empty() {
        headers.insert("content-encoding", HeaderValue::from_static(encoding));
    }
    let body = Bytes::copy_from_slice(data);
    runtime().block_on(async {
        let resp =
            flytesecret::server::connect::handle(svc, &Method::POST, &headers, path, body).await;
        drain(resp).await
    })
}

/// REST: the path after `/secrets/api/v1`, the query string, the JSON body.
pub fn rest(data: &[u8]) -> String {
    let (svc, _engine) = service();
    let mut data = data;
    let method = pick(
        &mut data,
        &[Method::GET, Method::POST, Method::PUT, Method::DELETE],
    )
    .clone();
    let path = format!("/secrets/api/v1{}", field(&mut data));
    let query = field(&mut data);
    let body = Bytes::copy_from_slice(data);
    runtime().block_on(async {
        let q = (!query.is_empty()).then_some(query.as_str());
        let resp = flytesecret::server::rest::handle(svc, &method, &path, q, body).await;
        drain(resp).await
    })
}

async fn kube_request(
    engine: &Engine,
    method: Method,
    uri: &str,
    content_type: &str,
    body: &[u8],
) -> String {
    let Ok(req) = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(Bytes::copy_from_slice(body))
    else {
        return "unparsable request".into(); // an HTTP server would not have parsed it either
    };
    let resp = engine.handle(req).await;
    resp.status().as_u16().to_string()
}

const KUBE_PATHS: &[&str] = &[
    "/api/v1/namespaces/flyte/secrets",
    "/api/v1/namespaces/flyte/secrets/x",
    "/api/v1/namespaces",
    "/api/v1/namespaces/flyte",
    "/api/v1/secrets",
];

/// The kube-api face's JSON bodies (create, replace, patch of every patch type).
pub fn kubeapi_json(data: &[u8]) -> String {
    let engine = Engine::ephemeral();
    engine.ensure_namespace("flyte");
    let mut data = data;
    let method = pick(
        &mut data,
        &[Method::POST, Method::PUT, Method::PATCH, Method::DELETE],
    )
    .clone();
    let path = *pick(&mut data, KUBE_PATHS);
    let content_type = *pick(
        &mut data,
        &[
            "application/json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
            "application/json-patch+json",
            "application/apply-patch+yaml",
        ],
    );
    runtime().block_on(kube_request(&engine, method, path, content_type, data))
}

/// The kube-api face's protobuf bodies (kubectl's `application/vnd.kubernetes.protobuf`).
pub fn kubeapi_protobuf(data: &[u8]) -> String {
    let engine = Engine::ephemeral();
    engine.ensure_namespace("flyte");
    let mut data = data;
    let method = pick(&mut data, &[Method::POST, Method::PUT]).clone();
    let path = *pick(&mut data, KUBE_PATHS);
    runtime().block_on(kube_request(
        &engine,
        method,
        path,
        "application/vnd.kubernetes.protobuf",
        data,
    ))
}

fn populated_engine() -> Arc<Engine> {
    let (_svc, engine) = service();
    engine
}

/// Label and field selectors on a list.
pub fn selectors(data: &[u8]) -> String {
    let engine = populated_engine();
    let mut data = data;
    let label = field(&mut data);
    let fields = String::from_utf8_lossy(data).into_owned();
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("labelSelector", &label)
        .append_pair("fieldSelector", &fields)
        .finish();
    let uri = format!("/api/v1/namespaces/flyte/secrets?{query}");
    runtime().block_on(kube_request(&engine, Method::GET, &uri, "", b""))
}

/// Continue tokens, with a page size, in a namespace and across namespaces.
pub fn continue_token(data: &[u8]) -> String {
    let engine = populated_engine();
    let mut data = data;
    let path = *pick(
        &mut data,
        &["/api/v1/namespaces/flyte/secrets", "/api/v1/secrets"],
    );
    let limit = *pick(&mut data, &["1", "2", "0", "-1", "500"]);
    let token = String::from_utf8_lossy(data).into_owned();
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("limit", limit)
        .append_pair("continue", &token)
        .finish();
    let uri = format!("{path}?{query}");
    runtime().block_on(kube_request(&engine, Method::GET, &uri, "", b""))
}

/// A scratch directory per process (on tmpfs where there is one), emptied before each use.
fn scratch(tag: &str) -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!(
        "flytesecret-fuzz-{tag}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// WAL replay: the bytes as `wal.jsonl` (the part after a first NUL, if any, as `state.json`),
/// then opening the store; when it opens, it must answer a list.
pub fn wal_replay(data: &[u8]) -> String {
    let dir = scratch("wal");
    let (wal, state) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[i + 1..], Some(&data[..i])),
        None => (data, None),
    };
    std::fs::write(dir.join("wal.jsonl"), wal).expect("writing the WAL");
    if let Some(state) = state {
        std::fs::write(dir.join("state.json"), state).expect("writing the state");
    }
    let outcome = match Engine::open(&Durability::Directory(dir.clone())) {
        Ok(engine) => runtime().block_on(kube_request(
            &engine,
            Method::GET,
            "/api/v1/secrets",
            "",
            b"",
        )),
        Err(_) => "refused".into(),
    };
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

/// Config files: the bytes as a YAML config file, loaded as `serve` would.
pub fn config_file(data: &[u8]) -> String {
    let dir = scratch("config");
    let file = dir.join("config.yaml");
    std::fs::write(&file, data).expect("writing the config");
    let loaded = flytesecret::config::load(std::slice::from_ref(&file), |_| None, &[]);
    let _ = flytesecret::config::render_effective(std::slice::from_ref(&file), |_| None, &[]);
    let _ = std::fs::remove_dir_all(&dir);
    if loaded.is_ok() { "ok" } else { "refused" }.into()
}

/// The naming adapter's JSON Lines input.
pub fn naming_adapter(data: &[u8]) -> String {
    let mut out = Vec::new();
    let _ = flytesecret::naming_adapter::serve(data, &mut out);
    format!("{} answers", out.iter().filter(|b| **b == b'\n').count())
}
