//! `?watch=true` on a list: a chunked stream of newline-terminated JSON events
//! (`ADDED`/`MODIFIED`/`DELETED`/`BOOKMARK`, and `ERROR` with a 410 Status for a
//! resourceVersion older than the kept history), as kube-apiserver's watch handler writes them
//! (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/watch.go, storage/cacher).

use super::events::{Db, Event, EventType, Object};
use super::negotiate::Representation;
use super::object::{encode_namespace, encode_secret};
use super::partial;
use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::table;
use bytes::Bytes;
use http::{Response, StatusCode, header};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// Bookmarks are sent this often on an idle watch that asked for them, and once before closing.
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);

/// A response body: a complete reply, or a stream of watch events.
pub enum Body {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl Body {
    pub fn full(bytes: Bytes) -> Body {
        Body::Full(Some(bytes))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(http_body::Frame::data(b)))),
            Body::Stream(rx) => rx
                .poll_recv(cx)
                .map(|b| b.map(|b| Ok(http_body::Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Body::Full(Some(b)) => http_body::SizeHint::with_exact(b.len() as u64),
            Body::Full(None) => http_body::SizeHint::with_exact(0),
            Body::Stream(_) => http_body::SizeHint::default(),
        }
    }
}

/// What is watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Secrets,
    Namespaces,
}

/// A boolean query parameter as Go's `strconv.ParseBool` reads it (the Python client sends
/// `watch=True`).
fn flag(query: &HashMap<String, String>, name: &str) -> Option<bool> {
    match query.get(name)?.as_str() {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        _ => Some(false),
    }
}

pub fn is_watch(query: &HashMap<String, String>) -> bool {
    flag(query, "watch") == Some(true)
}

struct Filter {
    resource: Resource,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn matches(&self, object: &Object) -> bool {
        match (self.resource, object) {
            (Resource::Secrets, Object::Secret(s)) => {
                self.namespace
                    .as_deref()
                    .is_none_or(|n| n == s.meta.namespace)
                    && self.labels.matches(&s.meta.labels)
                    && self.fields.matches(s)
            }
            (Resource::Namespaces, Object::Namespace(n)) => {
                self.labels.matches(&n.meta.labels) && self.fields.matches_namespace(n)
            }
            _ => false,
        }
    }

    /// The event this watcher sees, if any: an object entering the selection is ADDED, one
    /// leaving it is DELETED (as the watch cache filters).
    fn view(&self, e: &Event) -> Option<(EventType, Object)> {
        let now = self.matches(&e.object);
        let before = e.previous.as_ref().is_some_and(|p| self.matches(p));
        match (e.kind, e.previous.is_some(), before, now) {
            (EventType::Modified, true, true, true) => {
                Some((EventType::Modified, e.object.clone()))
            }
            (EventType::Modified, true, false, true) => Some((EventType::Added, e.object.clone())),
            (EventType::Modified, true, true, false) => {
                Some((EventType::Deleted, e.object.clone()))
            }
            (EventType::Modified, _, _, _) => None,
            (kind, _, _, true) => Some((kind, e.object.clone())),
            _ => None,
        }
    }
}

fn object_json(object: &Object) -> Value {
    match object {
        Object::Secret(s) => encode_secret(s, true),
        Object::Namespace(n) => encode_namespace(n, true),
    }
}

fn kind_name(resource: Resource) -> &'static str {
    match resource {
        Resource::Secrets => "Secret",
        Resource::Namespaces => "Namespace",
    }
}

fn line(kind: &str, object: Value) -> Bytes {
    let mut bytes =
        serde_json::to_vec(&json!({"type": kind, "object": object})).expect("JSON serialises");
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// A bookmark: an empty object carrying the resourceVersion, in the object form, or as its
/// `PartialObjectMetadata` on a metadata-only watch (the API server transforms bookmarks too).
fn bookmark(
    representation: Representation,
    resource: Resource,
    rv: u64,
    initial_end: bool,
) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let (kind, api_version) = match representation {
        Representation::Partial(version) => ("PartialObjectMetadata", version.api_version()),
        _ => (kind_name(resource), "v1"),
    };
    line(
        "BOOKMARK",
        json!({"kind": kind, "apiVersion": api_version, "metadata": meta}),
    )
}

/// Renders objects as the client asked: the object, its `PartialObjectMetadata`, or a one-row
/// Table (column definitions only on the first event, as the server's watch encoder does).
struct Renderer {
    representation: Representation,
    headers_sent: bool,
}

impl Renderer {
    fn render(&mut self, kind: EventType, object: &Object) -> Bytes {
        let meta = match object {
            Object::Secret(s) => &s.meta,
            Object::Namespace(n) => &n.meta,
        };
        let version = match self.representation {
            Representation::Table(version) => version,
            Representation::Partial(version) => {
                return line(kind.as_str(), partial::value(version, meta));
            }
            // Negotiation answers a watch with no other form.
            Representation::Json
            | Representation::PartialList(_)
            | Representation::PartialProtobuf(_)
            | Representation::Refused(_) => {
                return line(kind.as_str(), object_json(object));
            }
        };
        let mut t = match object {
            Object::Secret(s) => table::secrets_table(
                version,
                std::iter::once(&**s),
                &s.meta.resource_version,
                None,
                None,
            ),
            Object::Namespace(n) => {
                table::namespaces_table(version, std::iter::once(&**n), &n.meta.resource_version)
            }
        };
        if self.headers_sent {
            if let Some(m) = t.as_object_mut() {
                m.remove("columnDefinitions");
            }
        }
        self.headers_sent = true;
        line(kind.as_str(), t)
    }
}

fn parse_rv(q: &HashMap<String, String>) -> Result<Option<u64>, ApiError> {
    match q.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {v}"))),
    }
}

/// Validates the watch options (apimachinery's `validateWatchOptions`, WatchList enabled).
fn check_options(q: &HashMap<String, String>) -> Result<bool, ApiError> {
    let send_initial = match q.get("sendInitialEvents").map(String::as_str) {
        None | Some("") => None,
        Some(_) => flag(q, "sendInitialEvents"),
    };
    let rv_match = q.get("resourceVersionMatch").cloned().unwrap_or_default();
    let forbid = |field: &str, detail: &str| {
        ApiError::invalid_options("ListOptions", &format!("{field}: Forbidden: {detail}"))
    };
    match send_initial {
        Some(_) if rv_match != "NotOlderThan" => Err(forbid(
            "resourceVersionMatch",
            "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        )),
        None if !rv_match.is_empty() => Err(forbid(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        )),
        _ => Ok(send_initial == Some(true)),
    }
}

/// What a watch sends before its live events, in order.
enum Start {
    /// Already rendered: an error, a bookmark.
    Line(Bytes),
    /// Rendered when the client has read what came before.
    Event(EventType, Object),
}

/// Answers a watch request on `resource` (in `namespace`, for Secrets).
pub fn watch(
    db: &Db,
    resource: Resource,
    namespace: Option<&str>,
    query: &HashMap<String, String>,
    representation: Representation,
) -> Result<Response<Body>, ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    let field_text = query.get("fieldSelector").map_or("", String::as_str);
    let fields = match resource {
        Resource::Secrets => FieldSelector::parse(field_text),
        Resource::Namespaces => FieldSelector::parse_namespace(field_text),
    }
    .map_err(ApiError::bad_request)?;
    let send_initial = check_options(query)?;
    let since = parse_rv(query)?;
    let bookmarks = flag(query, "allowWatchBookmarks") == Some(true);
    let timeout = match query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
    {
        Some(t) if t > 0 => Duration::from_secs(t),
        _ => Duration::from_secs(rand::random_range(1800..3600)),
    };
    let filter = Filter {
        resource,
        namespace: namespace.map(str::to_owned),
        labels,
        fields,
    };
    let mut renderer = Renderer {
        representation,
        headers_sent: false,
    };
    // With sendInitialEvents the initial state is sent whatever the resourceVersion.
    let since = if send_initial { None } else { since };
    // What the watch starts with, rendered only as the client reads it: a watcher that does not
    // read holds the objects (shared with the store) and a channel's worth of rendered events,
    // never the whole namespace rendered with its values.
    let mut first: Vec<Start> = Vec::new();
    let (rx, mut last_rv) = match db.subscribe(since) {
        Err(floor) => {
            let rv = since.unwrap_or_default();
            let status =
                ApiError::expired(format!("too old resource version: {rv} ({floor})"), None)
                    .status_body();
            first.push(Start::Line(line("ERROR", status)));
            (None, rv)
        }
        Ok(sub) => {
            if since.is_none() {
                let objects: Vec<Object> = match resource {
                    Resource::Secrets => {
                        let prefix = namespace.map(|n| format!("{n}/")).unwrap_or_default();
                        sub.view
                            .secrets
                            .range(prefix.clone()..)
                            .take_while(|(k, _)| k.starts_with(&prefix))
                            .map(|(_, s)| Object::Secret(s.clone()))
                            .collect()
                    }
                    Resource::Namespaces => sub
                        .view
                        .namespaces
                        .values()
                        .filter(|n| n.phase != super::object::Phase::Gone)
                        .map(|n| Object::Namespace(n.clone()))
                        .collect(),
                };
                first.extend(
                    objects
                        .into_iter()
                        .filter(|o| filter.matches(o))
                        .map(|o| Start::Event(EventType::Added, o)),
                );
                if send_initial {
                    first.push(Start::Line(bookmark(
                        representation,
                        resource,
                        sub.view.rv,
                        true,
                    )));
                }
            }
            for e in &sub.backlog {
                if let Some((kind, o)) = filter.view(e) {
                    first.push(Start::Event(kind, o));
                }
            }
            let last = sub
                .backlog
                .last()
                .map_or(since.unwrap_or(sub.view.rv), |e| e.rv);
            (Some((sub.rx, sub.closing)), last.max(since.unwrap_or(0)))
        }
    };
    let (tx, body_rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        for item in first {
            let bytes = match item {
                Start::Line(bytes) => bytes,
                Start::Event(kind, object) => renderer.render(kind, &object),
            };
            if tx.send(bytes).await.is_err() {
                return;
            }
        }
        let Some((mut rx, mut closing)) = rx else {
            return;
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next_bookmark = tokio::time::Instant::now() + BOOKMARK_EVERY;
            tokio::select! {
                _ = tx.closed() => return,
                () = async {
                    let _ = closing.wait_for(|closing| *closing).await;
                } => return,
                _ = tokio::time::sleep_until(deadline) => {
                    if bookmarks {
                        let _ = tx.send(bookmark(representation, resource, last_rv, false)).await;
                    }
                    return;
                }
                _ = tokio::time::sleep_until(next_bookmark), if bookmarks => {
                    if tx.send(bookmark(representation, resource, last_rv, false)).await.is_err() {
                        return;
                    }
                }
                event = rx.recv() => match event {
                    Ok(e) => {
                        if e.rv <= last_rv {
                            continue;
                        }
                        last_rv = e.rv;
                        if let Some((kind, o)) = filter.view(&e)
                            && tx.send(renderer.render(kind, &o)).await.is_err()
                        {
                            return;
                        }
                    }
                    // A watcher too slow for the channel is closed; it resumes from its last
                    // resourceVersion, as after any server-side watch close.
                    Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::Stream(body_rx))
        .expect("static headers are valid"))
}
