//! An embedded Kubernetes API server for core/v1 Secrets and Namespaces: the default backend of
//! `flytesecret serve` when no cluster is configured, and of hermetic tests.
//!
//! One engine, two faces: [`Engine::handle`] answers `http::Request`s; [`http_face`] serves it on a
//! socket (for `kubectl` and any client) and [`Engine::kube_client`] wires it into a
//! `kube::Client` with no socket, so the service's real Kubernetes code path runs either way.
//! Behaviour follows kube-apiserver as summarised in `docs/kubernetes-api.md`.

mod apply;
mod discovery;
mod events;
pub mod face_tls;
pub mod faults;
mod handlers;
mod health;
pub mod http_face;
mod namespace;
mod negotiate;
mod object;
mod partial;
mod patch;
mod protobuf;
mod selector;
mod status;
pub mod store;
mod table;
pub mod tokens;
mod validation;
pub mod watch;

pub use faults::{Fault, Faults, Verb};
pub use store::Durability;

use bytes::Bytes;
use events::Db;
use handlers::Call;
use http::{Method, Request, Response};
use negotiate::{Endpoint, Kind, Representation};
use status::{ApiError, Reply, json_reply, text_reply};
use std::collections::HashMap;
use std::sync::Arc;
use store::Store;

/// The engine: a store with its watch events, fault rules, and the request router.
pub struct Engine {
    db: Db,
    faults: Faults,
    /// The static token file: when set, the HTTP face requires one of its tokens.
    tokens: std::sync::OnceLock<tokens::TokenFile>,
    /// HTTPS for the HTTP face, made with the token file (tokens only travel over TLS).
    face_tls: std::sync::OnceLock<face_tls::FaceTls>,
}

enum Route<'a> {
    Secrets(Option<&'a str>),
    Secret(&'a str, &'a str),
    Namespaces,
    Namespace(&'a str),
    Discovery(serde_json::Value),
    /// `/version`, written as it is whatever the `Accept` header (the API server writes it raw).
    Version,
    /// `/livez`, `/readyz`, `/healthz`, or one of their checks.
    Health(health::Probe, Option<&'a str>),
    OpenApiV2,
    Unrouted,
}

/// The segments after the first '/' of `path` without its trailing slashes, as
/// `trim_end_matches('/').split('/').skip(1)` gives them, and how many; `None` past six (no path
/// with more is routed). No allocation (every request is routed), and found byte by byte: a
/// `char` pattern's searcher costs more than these short segments.
fn segments(path: &str) -> Option<([&str; 6], usize)> {
    let mut segments = [""; 6];
    let mut n = 0;
    let path = path.trim_end_matches('/');
    let slash = |from: usize| path.as_bytes()[from..].iter().position(|b| *b == b'/');
    if let Some(first) = slash(0) {
        let mut start = first + 1;
        loop {
            let end = slash(start).map_or(path.len(), |i| start + i);
            *segments.get_mut(n)? = &path[start..end];
            n += 1;
            if end == path.len() {
                break;
            }
            start = end + 1;
        }
    }
    Some((segments, n))
}

fn route(path: &str) -> Route<'_> {
    let Some((segments, n)) = segments(path) else {
        return Route::Unrouted;
    };
    if n <= 2
        && let Some(probe) = health::Probe::from_segment(segments[0])
    {
        return Route::Health(probe, (n == 2).then_some(segments[1]));
    }
    match &segments[..n] {
        ["api"] => Route::Discovery(discovery::api_versions("127.0.0.1")),
        ["apis"] => Route::Discovery(discovery::api_groups()),
        ["api", "v1"] => Route::Discovery(discovery::core_v1_resources()),
        ["version"] => Route::Version,
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::Discovery(discovery::openapi_v3_root()),
        ["openapi", "v3", "api", "v1"] => Route::Discovery(discovery::openapi_v3_core()),
        ["api", "v1", "secrets"] => Route::Secrets(None),
        ["api", "v1", "namespaces"] => Route::Namespaces,
        ["api", "v1", "namespaces", ns] => Route::Namespace(ns),
        ["api", "v1", "namespaces", ns, "secrets"] => Route::Secrets(Some(ns)),
        ["api", "v1", "namespaces", ns, "secrets", name] => Route::Secret(ns, name),
        _ => Route::Unrouted,
    }
}

fn parse_query(query: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// What answers `method` on `route`, for content negotiation: `None` where the API server does
/// not negotiate (`/version`, OpenAPI v2, unrouted paths, methods a route does not serve).
fn endpoint(route: &Route<'_>, method: &Method) -> Option<Endpoint> {
    let object = matches!(
        *method,
        Method::GET | Method::PUT | Method::PATCH | Method::DELETE
    );
    match route {
        Route::Secrets(_) if method == Method::GET => Some(Endpoint::List(Kind::Secret)),
        Route::Secrets(Some(_)) if method == Method::POST => Some(Endpoint::Object(Kind::Secret)),
        Route::Secret(..) if method == Method::GET => Some(Endpoint::Get(Kind::Secret)),
        Route::Secret(..) if object => Some(Endpoint::Object(Kind::Secret)),
        Route::Namespaces if method == Method::GET => Some(Endpoint::List(Kind::Namespace)),
        Route::Namespaces if method == Method::POST => Some(Endpoint::Object(Kind::Namespace)),
        Route::Namespace(_) if method == Method::GET => Some(Endpoint::Get(Kind::Namespace)),
        Route::Namespace(_) if object => Some(Endpoint::Object(Kind::Namespace)),
        Route::Discovery(_) if method == Method::GET => Some(Endpoint::Discovery),
        _ => None,
    }
}

fn accept_header(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
}

impl Engine {
    /// Opens an engine over a store; the namespaces of a fresh API server always exist.
    pub fn open(durability: &Durability) -> std::io::Result<Arc<Engine>> {
        let engine = Engine {
            db: Db::new(Store::open(durability)?),
            faults: Faults::default(),
            tokens: std::sync::OnceLock::new(),
            face_tls: std::sync::OnceLock::new(),
        };
        for name in namespace::DEFAULT_NAMESPACES {
            namespace::ensure(&engine.db, name);
        }
        Ok(Arc::new(engine))
    }

    /// An in-memory engine, for tests.
    pub fn ephemeral() -> Arc<Engine> {
        Self::open(&Durability::Memory).expect("a memory store cannot fail to open")
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Forgets list snapshots and watch history, as etcd compaction would: outstanding continue
    /// tokens expire (410) and watches resuming from before now are told their version is too old.
    pub fn compact(&self) {
        self.db.store().compact_history();
        self.db.compact();
    }

    /// Why the engine cannot accept writes again without a restart, if it cannot (its durable
    /// store is poisoned; a restart replays the log, which drops the failed tail).
    pub fn unrecoverable(&self) -> Option<String> {
        self.db.store().refusing_writes()
    }

    /// Ends open watches (shutdown): a graceful stop then waits only for short requests.
    pub fn end_watches(&self) {
        self.db.end_watches();
    }

    /// Requires a listed bearer token on the HTTP face, which then serves HTTPS with a fresh
    /// self-signed certificate (set once, before the face serves).
    pub fn set_token_file(&self, file: tokens::TokenFile) -> Result<(), String> {
        let tls = face_tls::FaceTls::generate()?;
        let _ = self.face_tls.set(tls);
        let _ = self.tokens.set(file);
        Ok(())
    }

    pub fn face_tls(&self) -> Option<&face_tls::FaceTls> {
        self.face_tls.get()
    }

    pub fn token_file(&self) -> Option<&tokens::TokenFile> {
        self.tokens.get()
    }

    /// Makes sure a namespace exists (what `kubectl create namespace` would do).
    pub fn ensure_namespace(&self, name: &str) {
        namespace::ensure(&self.db, name);
    }

    /// Answers one request, streaming when it is a watch: what both faces serve.
    pub async fn respond(&self, req: Request<Bytes>) -> Response<watch::Body> {
        // Only a GET with a query can be a watch: every other request goes straight on. The
        // query is parsed once, here or in `handle`; the path is routed here only for a watch.
        let query = match req.uri().query() {
            Some(query) if req.method() == Method::GET => parse_query(Some(query)),
            _ => return self.handle(req).await.map(watch::Body::full),
        };
        let watched = || match route(req.uri().path()) {
            Route::Secrets(ns) => Some((watch::Resource::Secrets, ns.map(str::to_owned))),
            Route::Namespaces => Some((watch::Resource::Namespaces, None)),
            _ => None,
        };
        if watch::is_watch(&query)
            && let Some((resource, ns)) = watched()
        {
            let kind = match resource {
                watch::Resource::Secrets => Kind::Secret,
                watch::Resource::Namespaces => Kind::Namespace,
            };
            let answer =
                match negotiate::negotiate(accept_header(req.headers()), Endpoint::Watch(kind)) {
                    Ok(Representation::Refused(refusal)) => Err(refusal.error()),
                    Ok(representation) => {
                        watch::watch(&self.db, resource, ns.as_deref(), &query, representation)
                    }
                    Err(e) => Err(e),
                };
            return answer.unwrap_or_else(|e| e.into_reply().map(watch::Body::full));
        }
        self.answer(req, query).await.map(watch::Body::full)
    }

    /// A `kube::Client` whose requests this engine answers in-process.
    pub fn kube_client(self: &Arc<Self>, default_namespace: &str) -> kube::Client {
        kube::Client::new(
            http_face::InProcess(self.clone()),
            default_namespace.to_owned(),
        )
    }

    /// Answers one request; the body is already collected.
    pub async fn handle(&self, req: Request<Bytes>) -> Response<Bytes> {
        let query = parse_query(req.uri().query());
        self.answer(req, query).await
    }

    /// [`Self::handle`] with the request's query already parsed.
    async fn answer(&self, req: Request<Bytes>, query: HashMap<String, String>) -> Response<Bytes> {
        let (parts, mut body) = req.into_parts();
        if parts.uri.path() == tokens::TOKENREVIEWS_PATH && parts.method == Method::POST {
            return tokens::review(self.tokens.get(), &body);
        }
        let mut content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let route = route(parts.uri.path());
        let proto_kind = match route {
            Route::Secrets(_) | Route::Secret(..) => Some(protobuf::Kind::Secret),
            Route::Namespaces | Route::Namespace(_) => Some(protobuf::Kind::Namespace),
            _ => None,
        };
        // A protobuf body is read as the JSON it stands for, from here on.
        if content_type.is_some_and(|c| c.starts_with(protobuf::CONTENT_TYPE))
            && matches!(parts.method, Method::POST | Method::PUT)
            && let Some(kind) = proto_kind
        {
            match protobuf::to_json(kind, &body) {
                Ok(json) => {
                    body = Bytes::from(json);
                    content_type = Some("application/json");
                }
                Err(message) => return ApiError::bad_request(message).into_reply(),
            }
        }
        let mut call = Call {
            query,
            content_type,
            representation: Representation::Json,
            headers: &parts.headers,
            body: &body,
        };
        if let Some(verb) = fault_verb(&route, &parts.method)
            && let Some(fault) = self.faults.take(verb)
        {
            match fault.delay() {
                Some(d) => tokio::time::sleep(d).await,
                None => return fault.reply(verb).expect("non-delay faults reply"),
            }
        }
        if body.len() > handlers::MAX_BODY {
            return ApiError::too_large().into_reply();
        }
        if let Some(endpoint) = endpoint(&route, &parts.method) {
            match negotiate::negotiate(accept_header(&parts.headers), endpoint) {
                Ok(representation) => call.representation = representation,
                Err(e) => return e.into_reply(),
            }
        }
        // A read at resourceVersion N sees state at least that new: wait for the store to get
        // there (briefly) rather than answer with older state.
        if parts.method == Method::GET
            && !matches!(
                route,
                Route::Unrouted
                    | Route::Discovery(_)
                    | Route::Version
                    | Route::OpenApiV2
                    | Route::Health(..)
            )
            && let Some(rv) = call
                .query
                .get("resourceVersion")
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|rv| *rv > 0)
            && let Err(e) = self.db.reach(rv).await
        {
            return e.into_reply();
        }
        let db = &self.db;
        // The writes' futures are boxed: held inline, the largest would set the size of every
        // request's future, a GET's too, and each move of it would copy that much.
        let result: Result<Reply, ApiError> = match (route, &parts.method) {
            (Route::Discovery(doc), &Method::GET) => Ok(json_reply(200, &doc)),
            (Route::Version, &Method::GET) => Ok(json_reply(200, &discovery::version())),
            (Route::Health(probe, check), _) => Ok(health::answer(
                probe,
                check,
                parts.uri.query(),
                self.unrecoverable().as_deref(),
            )),
            (Route::OpenApiV2, &Method::GET) => Ok(discovery::openapi_v2()),
            (Route::Secrets(Some(ns)), &Method::POST) => {
                Box::pin(handlers::create_secret(db, ns, &call)).await
            }
            (Route::Secrets(ns), &Method::GET) => handlers::list_secrets(db, ns, &call),
            (Route::Secret(ns, name), &Method::GET) => {
                handlers::get_secret(db, ns, name, call.representation)
            }
            (Route::Secret(ns, name), &Method::PUT) => {
                let written = Box::pin(handlers::replace_secret(db, ns, name, &call)).await;
                Box::pin(finalizing(db, ns, written)).await
            }
            (Route::Secret(ns, name), &Method::PATCH) => {
                let written = Box::pin(handlers::patch_secret(db, ns, name, &call)).await;
                Box::pin(finalizing(db, ns, written)).await
            }
            (Route::Secret(ns, name), &Method::DELETE) => {
                let written = Box::pin(handlers::delete_secret(db, ns, name, &call)).await;
                Box::pin(finalizing(db, ns, written)).await
            }
            (Route::Namespaces, &Method::POST) => Box::pin(namespace::create(db, &call)).await,
            (Route::Namespaces, &Method::GET) => namespace::list(db, &call),
            (Route::Namespace(name), &Method::GET) => namespace::get(db, name, call.representation),
            (Route::Namespace(name), &Method::PATCH) => {
                Box::pin(namespace::patch(db, name, &call)).await
            }
            (Route::Namespace(name), &Method::PUT) => {
                Box::pin(namespace::replace(db, name, &call)).await
            }
            (Route::Namespace(name), &Method::DELETE) => {
                Box::pin(namespace::delete(db, name, &call)).await
            }
            (Route::Unrouted | Route::Discovery(_) | Route::Version | Route::OpenApiV2, _) => {
                Ok(text_reply(404, "404 page not found"))
            }
            (Route::Secrets(_), m) => Err(ApiError::method_not_allowed(
                &m.as_str().to_lowercase(),
                "secrets",
            )),
            (Route::Secret(..), m) => Err(ApiError::method_not_allowed(
                &m.as_str().to_lowercase(),
                "secrets",
            )),
            (Route::Namespaces | Route::Namespace(_), m) => Err(ApiError::method_not_allowed(
                &m.as_str().to_lowercase(),
                "namespaces",
            )),
        };
        let result = match parts.method {
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE => {
                result.and_then(|reply| partial::of_written(reply, call.representation))
            }
            _ => result,
        };
        result.unwrap_or_else(ApiError::into_reply)
    }
}

/// After a write that may have removed a Secret, a terminating namespace may now be empty.
async fn finalizing(db: &Db, ns: &str, result: Result<Reply, ApiError>) -> Result<Reply, ApiError> {
    if result.is_ok() {
        namespace::finalize(db, ns).await;
    }
    result
}

fn fault_verb(route: &Route<'_>, method: &Method) -> Option<Verb> {
    match (route, method) {
        (Route::Secrets(_), &Method::GET) => Some(Verb::List),
        (Route::Secrets(_), &Method::POST) => Some(Verb::Create),
        (Route::Secret(..), &Method::GET) => Some(Verb::Get),
        (Route::Secret(..), &Method::PUT) => Some(Verb::Update),
        (Route::Secret(..), &Method::DELETE) => Some(Verb::Delete),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{Route, route, segments};

    #[test]
    fn segments_are_what_splitting_on_slashes_gives() {
        fn reference(path: &str) -> Option<([&str; 6], usize)> {
            let all: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
            (all.len() <= 6).then(|| {
                let mut fixed = [""; 6];
                fixed[..all.len()].copy_from_slice(&all);
                (fixed, all.len())
            })
        }
        let mut paths: Vec<String> = [
            "",
            "/",
            "//",
            "a",
            "a/b",
            "/a//b/",
            "/api/v1/namespaces/flyte/secrets/abc",
            "/a/b/c/d/e/f",
            "/a/b/c/d/e/f/g",
            "/a/b/c/d/e/f//",
            "/ä/ö/",
            "///x///",
            "x//",
        ]
        .map(String::from)
        .to_vec();
        // Every string of up to five characters over '/', 'a' and 'é'.
        let mut layer = vec![String::new()];
        for _ in 0..5 {
            layer = layer
                .iter()
                .flat_map(|p| ["/", "a", "é"].map(|c| format!("{p}{c}")))
                .collect();
            paths.extend(layer.iter().cloned());
        }
        for path in &paths {
            assert_eq!(segments(path), reference(path), "{path:?}");
        }
    }

    #[test]
    fn routes_by_whole_segments_and_nothing_longer() {
        assert!(matches!(
            route("/api/v1/namespaces/flyte/secrets/abc"),
            Route::Secret("flyte", "abc")
        ));
        assert!(matches!(
            route("/api/v1/namespaces/flyte/secrets/"),
            Route::Secrets(Some("flyte"))
        ));
        assert!(matches!(route("/api/v1/secrets"), Route::Secrets(None)));
        assert!(matches!(
            route("/livez"),
            Route::Health(super::health::Probe::Livez, None)
        ));
        assert!(matches!(
            route("/readyz/etcd"),
            Route::Health(super::health::Probe::Readyz, Some("etcd"))
        ));
        assert!(matches!(route("/healthz/etcd/x"), Route::Unrouted));
        assert!(matches!(
            route("/api/v1/namespaces/x"),
            Route::Namespace("x")
        ));
        for unrouted in [
            "/api/v1/namespaces/flyte/secrets/abc/status",
            "/api/v1/namespaces/flyte/secrets/abc/x/y/z",
            "/api/v2/namespaces/flyte/secrets/abc",
            "/apis/v1/secrets",
            "/",
        ] {
            assert!(matches!(route(unrouted), Route::Unrouted), "{unrouted}");
        }
    }

    /// A durable store that refuses writes until a restart fails `/livez` (so a liveness probe
    /// restarts the process) and tells the service's `/healthz` through `unrecoverable`.
    #[tokio::test]
    async fn a_poisoned_store_fails_livez() {
        use super::{Durability, Engine, store::Injection};
        let dir = std::env::temp_dir().join(format!("flytesecret-livez-{}", uuid::Uuid::new_v4()));
        let engine = Engine::open(&Durability::Directory(dir.clone())).unwrap();
        engine.ensure_namespace("flyte");
        let get = |path: &'static str| {
            let engine = engine.clone();
            async move {
                let req = http::Request::get(path).body(bytes::Bytes::new()).unwrap();
                engine.handle(req).await.status().as_u16()
            }
        };
        assert_eq!(get("/livez").await, 200);
        assert_eq!(engine.unrecoverable(), None);
        engine.db.store().inject(Some(Injection {
            fail_writes: true,
            fail_rollback: true,
            ..Default::default()
        }));
        let create = http::Request::post("/api/v1/namespaces/flyte/secrets")
            .header("content-type", "application/json")
            .body(bytes::Bytes::from_static(
                br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}"#,
            ))
            .unwrap();
        assert_eq!(engine.handle(create).await.status(), 500);
        assert_eq!(get("/livez").await, 500);
        assert_eq!(get("/readyz").await, 500);
        assert!(
            engine
                .unrecoverable()
                .is_some_and(|why| why.contains("rolling the log back"))
        );
        drop(engine);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
