//! Kubernetes access for the service: typed `Api<Secret>` calls through a client-side token bucket
//! (`qps`/`burst`) and a per-call `timeout`, like the Go service's client-go settings.

use super::secret_head::SecretHead;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, ObjectList, PostParams};
use std::fmt;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// A failed Kubernetes call, classified the way the service needs.
#[derive(Debug)]
pub enum KubeError {
    /// The API server answered with a Status.
    Api {
        reason: String,
        code: u16,
        message: String,
    },
    /// The call did not complete within `timeout`.
    Timeout(Duration),
    /// Transport, decoding and everything else.
    Other(String),
}

/// The Status reasons the service acts on (`metav1.StatusReason`); a typo cannot compile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    NotFound,
    AlreadyExists,
    Conflict,
    Forbidden,
    /// Any other reason, or no Status at all.
    Other,
}

impl Reason {
    fn of(reason: &str) -> Reason {
        match reason {
            "NotFound" => Reason::NotFound,
            "AlreadyExists" => Reason::AlreadyExists,
            "Conflict" => Reason::Conflict,
            "Forbidden" => Reason::Forbidden,
            _ => Reason::Other,
        }
    }
}

impl KubeError {
    pub fn reason(&self) -> Reason {
        match self {
            KubeError::Api { reason, .. } => Reason::of(reason),
            _ => Reason::Other,
        }
    }
}

impl fmt::Display for KubeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KubeError::Api { message, .. } => f.write_str(message),
            KubeError::Timeout(d) => write!(f, "the Kubernetes API did not answer within {d:?}"),
            KubeError::Other(m) => f.write_str(m),
        }
    }
}

impl From<kube::Error> for KubeError {
    fn from(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(status) => KubeError::Api {
                reason: status.reason.clone(),
                code: status.code,
                message: if status.message.is_empty() {
                    status.to_string()
                } else {
                    status.message.clone()
                },
            },
            other => KubeError::Other(other.to_string()),
        }
    }
}

/// A token bucket: `qps` tokens per second, at most `burst` saved up (client-go's limiter).
///
/// A caller that has to wait holds a reservation; when its wait is cancelled (the request was
/// dropped: client reset, deadline) the token goes back, so cancelled requests leave no debt
/// behind. A wait that would outlast the request deadline is refused at once.
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    state: Mutex<Bucket>,
}

struct Bucket {
    /// Saved tokens; negative while callers wait (one token per waiting caller).
    tokens: f64,
    last: Instant,
}

/// The limiter would have to wait past the request deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WouldExceedDeadline;

impl fmt::Display for WouldExceedDeadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // client-go's wording for the same refusal.
        f.write_str(
            "client rate limiter Wait returned an error: rate: Wait(n=1) would exceed context deadline",
        )
    }
}

impl TokenBucket {
    /// `qps <= 0` disables limiting.
    pub fn new(qps: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            qps,
            burst,
            state: Mutex::new(Bucket {
                tokens: burst,
                last: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.saturating_duration_since(s.last).as_secs_f64() * self.qps;
        s.tokens = (s.tokens + refill).min(self.burst);
        s.last = now;
        s
    }

    /// Takes a token; returns how long to wait before using it.
    fn reserve(&self) -> Duration {
        let mut s = self.lock();
        s.tokens -= 1.0;
        if s.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.tokens / self.qps)
        }
    }

    /// Gives back a token taken by [`reserve`](Self::reserve) but never used.
    fn refund(&self) {
        let mut s = self.lock();
        s.tokens = (s.tokens + 1.0).min(self.burst);
    }

    /// Waits for a token, at most until `deadline`. Dropping the future gives the token back.
    pub async fn acquire(&self, deadline: Option<Instant>) -> Result<(), WouldExceedDeadline> {
        if self.qps <= 0.0 {
            return Ok(());
        }
        let wait = self.reserve();
        if wait.is_zero() {
            return Ok(());
        }
        if deadline.is_some_and(|d| Instant::now() + wait > d) {
            self.refund();
            return Err(WouldExceedDeadline);
        }
        struct Reservation<'a>(Option<&'a TokenBucket>);
        impl Drop for Reservation<'_> {
            fn drop(&mut self) {
                if let Some(bucket) = self.0 {
                    bucket.refund();
                }
            }
        }
        let mut held = Reservation(Some(self));
        tokio::time::sleep(wait).await;
        held.0 = None;
        Ok(())
    }
}

/// `GET /api/v1/namespaces/{namespace}/secrets/{name}` for the object's metadata alone: the
/// method and path of kube's `Api::get_metadata`, with client-go's metadata client's Accept
/// (protobuf first; [`read_head`] reads either form).
fn metadata_get(namespace: &str, name: &str) -> Result<http::Request<Vec<u8>>, KubeError> {
    use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
    if name.is_empty() {
        return Err(KubeError::Other("a non-empty name is required".into()));
    }
    const NAMESPACES: &str = "/api/v1/namespaces/";
    const SECRETS: &str = "/secrets/";
    let mut path =
        String::with_capacity(NAMESPACES.len() + namespace.len() + SECRETS.len() + name.len());
    for part in [NAMESPACES, namespace, SECRETS, name] {
        path.push_str(part);
    }
    let mut request = http::Request::new(Vec::new());
    // From the String itself: `parse` would copy it first.
    *request.uri_mut() = http::Uri::try_from(path).map_err(|e| KubeError::Other(e.to_string()))?;
    let headers = request.headers_mut();
    headers.insert(
        ACCEPT,
        HeaderValue::from_static(crate::k8s_wire::PARTIAL_OBJECT_METADATA_ACCEPT),
    );
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(request)
}

/// Sends a metadata read and decodes the answer in the form the API server chose, by its
/// Content-Type: protobuf, or JSON as kube's `Client::request` decodes it. An error answer
/// becomes `kube::Error::Api` as kube makes it: the JSON `Status` it carries (the form the API
/// server writes errors in, whatever the Accept), or any other body, trimmed, as the message of
/// a failure with the HTTP code. Unlike kube, a body that is not UTF-8 is read lossily, not
/// refused, and a protobuf `Status` is read too, should a server send one.
async fn read_head(
    client: &kube::Client,
    request: http::Request<Vec<u8>>,
) -> Result<SecretHead, kube::Error> {
    use crate::body::{CollectError, collect_at_most};
    let response = client.send(request.map(kube::client::Body::from)).await?;
    let (parts, body) = response.into_parts();
    // Far above any object's metadata (the API server stores objects of at most 1.5 MiB):
    // a misbehaving server or proxy cannot make the service hold more than this.
    const MAX_ANSWER_BYTES: usize = 16 << 20;
    let bytes = match collect_at_most(body, MAX_ANSWER_BYTES).await {
        Ok(bytes) => bytes,
        Err(CollectError::Body(e)) => return Err(e),
        Err(CollectError::TooLarge) => {
            return Err(kube::Error::Service(
                format!("the API server's answer is over {MAX_ANSWER_BYTES} bytes").into(),
            ));
        }
    };
    let protobuf = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with(crate::k8s_wire::CONTENT_TYPE));
    if parts.status.is_client_error() || parts.status.is_server_error() {
        return Err(kube::Error::Api(
            api_status(parts.status, protobuf, &bytes).boxed(),
        ));
    }
    if protobuf {
        SecretHead::from_protobuf(&bytes).map_err(|e| {
            kube::Error::Service(
                format!("decoding the API server's PartialObjectMetadata: {e}").into(),
            )
        })
    } else {
        serde_json::from_slice(&bytes).map_err(kube::Error::SerdeError)
    }
}

/// The `Status` of an error answer.
fn api_status(code: http::StatusCode, protobuf: bool, body: &[u8]) -> kube::core::Status {
    use kube::core::Status;
    use kube::core::response::{StatusCause, StatusDetails, StatusSummary};
    use prost::Message as _;
    if protobuf
        && let Ok(envelope) = crate::k8s_wire::open(body)
        && let Ok(s) = crate::k8s_wire::Status::decode(&envelope.raw[..])
    {
        return Status {
            status: match s.status.as_str() {
                "Success" => Some(StatusSummary::Success),
                "Failure" => Some(StatusSummary::Failure),
                _ => None,
            },
            code: u16::try_from(s.code).unwrap_or(0),
            message: s.message,
            metadata: None,
            reason: s.reason,
            details: s.details.map(|d| StatusDetails {
                name: d.name,
                group: d.group,
                kind: d.kind,
                uid: d.uid,
                causes: d
                    .causes
                    .into_iter()
                    .map(|c| StatusCause {
                        reason: c.reason,
                        message: c.message,
                        field: c.field,
                    })
                    .collect(),
                retry_after_seconds: u32::try_from(d.retry_after_seconds).unwrap_or(0),
            }),
        };
    }
    if !protobuf && let Ok(status) = serde_json::from_slice::<kube::core::Status>(body) {
        return status;
    }
    let text = String::from_utf8_lossy(body);
    Status::failure(text.trim(), "Failed to parse error data").with_code(code.as_u16())
}

pub struct KubeBackend {
    client: kube::Client,
    limiter: TokenBucket,
    timeout: Option<Duration>,
    /// The `Api<Secret>` of the namespace used first (the service's one namespace), made once:
    /// building an `Api` allocates its resource description and URL prefix on every call.
    secrets: std::sync::OnceLock<(String, Api<Secret>)>,
}

impl KubeBackend {
    pub fn new(client: kube::Client, qps: f64, burst: u32, timeout: Option<Duration>) -> Self {
        KubeBackend {
            client,
            limiter: TokenBucket::new(qps, burst),
            timeout,
            secrets: std::sync::OnceLock::new(),
        }
    }

    /// The `Api` of the first namespace asked for is kept; any other gets a fresh one.
    fn api(&self, namespace: &str) -> std::borrow::Cow<'_, Api<Secret>> {
        let (ns, api) = self.secrets.get_or_init(|| {
            (
                namespace.to_owned(),
                Api::namespaced(self.client.clone(), namespace),
            )
        });
        if ns == namespace {
            std::borrow::Cow::Borrowed(api)
        } else {
            std::borrow::Cow::Owned(Api::namespaced(self.client.clone(), namespace))
        }
    }

    /// Runs one Kubernetes call behind the limiter and the timeout. The call's future (deep:
    /// kube's request, its buffer hand-off, the response decoding; some 3 KB) is boxed here,
    /// before anything awaits, so every RPC future that holds this one stays small and moving
    /// it (into a task, a box, a protocol's wrapper) copies a pointer, not kilobytes.
    fn call<'a, T: 'a>(
        &'a self,
        fut: impl Future<Output = Result<T, kube::Error>> + Send + 'a,
    ) -> impl Future<Output = Result<T, KubeError>> + Send + 'a {
        let fut = Box::pin(fut);
        async move {
            self.limiter
                .acquire(super::deadline::current())
                .await
                .map_err(|e| KubeError::Other(e.to_string()))?;
            match self.timeout {
                Some(d) if !d.is_zero() => match tokio::time::timeout(d, fut).await {
                    Ok(r) => r.map_err(KubeError::from),
                    Err(_) => Err(KubeError::Timeout(d)),
                },
                _ => fut.await.map_err(KubeError::from),
            }
        }
    }

    pub async fn create(&self, namespace: &str, secret: &Secret) -> Result<Secret, KubeError> {
        self.call(self.api(namespace).create(&PostParams::default(), secret))
            .await
    }

    pub async fn get(&self, namespace: &str, name: &str) -> Result<Secret, KubeError> {
        self.call(self.api(namespace).get(name)).await
    }

    /// What GetSecret reads of a Secret: its metadata only (`PartialObjectMetadata`), decoded
    /// into [`SecretHead`]. The request is the one kube's `Api::get_metadata` sends, built
    /// directly (kube's builder costs more than the rest of the request's preparation).
    pub async fn get_head(&self, namespace: &str, name: &str) -> Result<SecretHead, KubeError> {
        let request = metadata_get(namespace, name)?;
        self.call(read_head(&self.client, request)).await
    }

    pub async fn replace(
        &self,
        namespace: &str,
        name: &str,
        secret: &Secret,
    ) -> Result<Secret, KubeError> {
        self.call(
            self.api(namespace)
                .replace(name, &PostParams::default(), secret),
        )
        .await
    }

    pub async fn delete(&self, namespace: &str, name: &str) -> Result<(), KubeError> {
        self.call(self.api(namespace).delete(name, &DeleteParams::default()))
            .await
            .map(|_| ())
    }

    pub async fn list(
        &self,
        namespace: &str,
        params: &ListParams,
    ) -> Result<ObjectList<Secret>, KubeError> {
        self.call(self.api(namespace).list(params)).await
    }

    /// Makes sure the namespace exists, creating it when missing (startup, like Go).
    pub async fn ensure_namespace(&self, namespace: &str) -> Result<(), KubeError> {
        use k8s_openapi::api::core::v1::Namespace;
        let api: Api<Namespace> = Api::all(self.client.clone());
        match self.call(api.get(namespace)).await {
            Ok(_) => Ok(()),
            Err(e) if e.reason() == Reason::NotFound => {
                let ns = Namespace {
                    metadata: kube::api::ObjectMeta {
                        name: Some(namespace.to_owned()),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                match self.call(api.create(&PostParams::default(), &ns)).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.reason() == Reason::AlreadyExists => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// One cheap call to learn whether the API server answers (readiness).
    pub async fn ping(&self, namespace: &str) -> Result<(), KubeError> {
        self.call(self.api(namespace).list(&ListParams::default().limit(1)))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_a_burst_then_paces() {
        let b = TokenBucket::new(10.0, 3);
        for _ in 0..3 {
            assert_eq!(b.reserve(), Duration::ZERO);
        }
        let wait = b.reserve();
        assert!(
            wait > Duration::from_millis(50) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        let start = Instant::now();
        TokenBucket::new(0.0, 1).acquire(None).await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    /// Issue 9, defect 1: thousands of requests cancelled while waiting used to leave their
    /// tokens taken, so every later call waited for all of them.
    #[tokio::test(start_paused = true)]
    async fn cancelled_waits_give_their_tokens_back() {
        let b = TokenBucket::new(10.0, 1);
        b.acquire(None).await.unwrap(); // the burst is spent
        // 2000 concurrent callers all queue, then all give up after 1 ms.
        let waits =
            (0..2000).map(|_| tokio::time::timeout(Duration::from_millis(1), b.acquire(None)));
        for cancelled in futures_util::future::join_all(waits).await {
            assert!(cancelled.is_err(), "the wait should have been cut short");
        }
        let start = Instant::now();
        b.acquire(None).await.unwrap();
        assert!(
            start.elapsed() <= Duration::from_millis(100),
            "waited {:?} behind cancelled requests",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_the_deadline_is_refused_at_once_and_costs_nothing() {
        let b = TokenBucket::new(1.0, 1);
        b.acquire(None).await.unwrap();
        let start = Instant::now();
        let deadline = Some(start + Duration::from_millis(200));
        for _ in 0..100 {
            assert_eq!(b.acquire(deadline).await, Err(WouldExceedDeadline));
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "refusals must not wait");
        let deadline = Some(start + Duration::from_secs(2));
        b.acquire(deadline).await.unwrap();
        assert!(
            start.elapsed() <= Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
    }

    /// A kube client over one canned answer (status, content type, body), recording the
    /// method, URI and headers of every request it gets.
    #[allow(clippy::type_complexity)]
    fn answering(
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> (
        kube::Client,
        std::sync::Arc<Mutex<Vec<(http::Method, String, http::HeaderMap)>>>,
    ) {
        let seen: std::sync::Arc<Mutex<Vec<_>>> = Default::default();
        let recorder = seen.clone();
        let body = bytes::Bytes::from(body);
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            recorder.lock().unwrap().push((
                req.method().clone(),
                req.uri().to_string(),
                req.headers().clone(),
            ));
            let answer = http::Response::builder()
                .status(status)
                .header(http::header::CONTENT_TYPE, content_type)
                .body(http_body_util::Full::new(body.clone()))
                .unwrap();
            async move { Ok::<_, std::convert::Infallible>(answer) }
        });
        (kube::Client::new(service, "flyte"), seen)
    }

    /// GetSecret's read is the request kube's `Api::get_metadata` sends (method, path, every
    /// header) but for its Accept, which is client-go's metadata client's (protobuf first, then
    /// the same JSON form), so the API server answers metadata alone and the value never leaves
    /// it. A JSON answer is read as kube reads it.
    #[tokio::test]
    async fn get_head_sends_kubes_metadata_get_asking_for_protobuf_first() {
        use crate::proto::flyteidl2::secret::SecretType;
        let body = r#"{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1",
            "metadata":{"name":"abc","creationTimestamp":"2026-01-02T03:04:05Z",
            "labels":{"app.flyte.org/secret-type":"image-pull"}}}"#;
        let (client, seen) = answering(200, "application/json", body.into());
        let kube = KubeBackend::new(client.clone(), 0.0, 1, None);
        let head = kube.get_head("flyte", "abc").await.unwrap();
        assert_eq!(
            head,
            SecretHead {
                created: Some(1_767_323_045),
                system: false,
                secret_type: SecretType::ImagePullSecret
            }
        );
        Api::<Secret>::namespaced(client, "flyte")
            .get_metadata("abc")
            .await
            .unwrap();
        let mut seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        let ours = seen[0].2.remove(http::header::ACCEPT).unwrap();
        let kubes = seen[1].2.remove(http::header::ACCEPT).unwrap();
        assert_eq!(seen[0], seen[1], "ours, then kube's get_metadata");
        assert_eq!(seen[0].1, "/api/v1/namespaces/flyte/secrets/abc");
        assert_eq!(ours, crate::k8s_wire::PARTIAL_OBJECT_METADATA_ACCEPT);
        assert_eq!(
            ours.to_str().unwrap().split(',').nth(1),
            kubes.to_str().ok(),
            "the JSON form kube asks for comes right after protobuf"
        );
    }

    /// A protobuf answer (as the API server writes it: envelope, every string, the labels in
    /// key order) gives the creation time and the interpreted labels, nothing else; an unset
    /// time (an empty message) is none.
    #[tokio::test]
    async fn get_head_reads_a_protobuf_answer() {
        use crate::k8s_wire::{
            put_bytes, put_map_entry, put_partial_object_metadata, put_time, put_varint,
        };
        use crate::proto::flyteidl2::secret::SecretType;
        let answer = |seconds: Option<i64>| {
            let mut meta = Vec::new();
            for (tag, s) in [
                (1, "abc"),
                (2, ""),
                (3, "flyte"),
                (4, ""),
                (5, "u-1"),
                (6, "7"),
            ] {
                put_bytes(&mut meta, tag, s.as_bytes());
            }
            put_varint(&mut meta, 7, 0);
            put_time(&mut meta, 8, seconds);
            put_map_entry(&mut meta, 11, "app.flyte.org/managed", "true");
            put_map_entry(&mut meta, 11, "app.flyte.org/secret-type", "image-pull");
            put_map_entry(&mut meta, 12, "note", "x");
            let mut body = Vec::new();
            put_partial_object_metadata(&mut body, "meta.k8s.io/v1", &meta);
            body
        };
        let (client, _) = answering(
            200,
            "application/vnd.kubernetes.protobuf",
            answer(Some(1_767_323_045)),
        );
        let head = KubeBackend::new(client, 0.0, 1, None)
            .get_head("flyte", "abc")
            .await
            .unwrap();
        assert_eq!(
            head,
            SecretHead {
                created: Some(1_767_323_045),
                system: false,
                secret_type: SecretType::ImagePullSecret
            },
            "created 2026-01-02T03:04:05Z; the other labels and the annotation change nothing"
        );
        let (client, _) = answering(200, "application/vnd.kubernetes.protobuf", answer(None));
        let head = KubeBackend::new(client, 0.0, 1, None)
            .get_head("flyte", "abc")
            .await
            .unwrap();
        assert_eq!(head.created, None);
        // The epoch is a time like any other (Go writes only the zero time as an empty message).
        let (client, _) = answering(200, "application/vnd.kubernetes.protobuf", answer(Some(0)));
        let head = KubeBackend::new(client, 0.0, 1, None)
            .get_head("flyte", "abc")
            .await
            .unwrap();
        assert_eq!(head.created, Some(0));
    }

    /// An answer over the size limit is refused with an error saying so, not read whole.
    #[tokio::test]
    async fn get_head_refuses_an_oversized_answer() {
        let (client, _) = answering(200, "application/json", vec![b' '; (16 << 20) + 1]);
        let err = KubeBackend::new(client, 0.0, 1, None)
            .get_head("flyte", "abc")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("is over 16777216 bytes"), "{err}");
    }

    /// An error answer is the error kube's own `get_metadata` makes of it (a JSON Status, a
    /// body that is no Status), and a protobuf Status gives the same error as its JSON form.
    #[tokio::test]
    async fn get_head_errors_are_kubes() {
        let json_status = br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"secrets \"abc\" not found","reason":"NotFound","details":{"name":"abc","kind":"secrets"},"code":404}"#.to_vec();
        let answers: [(u16, &'static str, Vec<u8>); 4] = [
            (404, "application/json", json_status.clone()),
            (503, "text/plain", b"  upstream connect error \n".to_vec()),
            (500, "application/json", Vec::new()),
            (429, "application/json", br#"{"kind":"Status","code":429,"reason":"TooManyRequests","message":"slow down","details":{"retryAfterSeconds":1}}"#.to_vec()),
        ];
        for (code, content_type, body) in answers {
            let (client, _) = answering(code, content_type, body.clone());
            let ours = KubeBackend::new(client.clone(), 0.0, 1, None)
                .get_head("flyte", "abc")
                .await
                .unwrap_err();
            let kubes = KubeError::from(
                Api::<Secret>::namespaced(client, "flyte")
                    .get_metadata("abc")
                    .await
                    .unwrap_err(),
            );
            assert_eq!(format!("{ours:?}"), format!("{kubes:?}"), "{code} {body:?}");
        }
        // The protobuf form of the 404 above.
        let mut status = Vec::new();
        {
            use crate::k8s_wire::{put_bytes, put_envelope, put_varint};
            put_bytes(&mut status, 1, b"");
            put_bytes(&mut status, 2, b"Failure");
            put_bytes(&mut status, 3, br#"secrets "abc" not found"#);
            put_bytes(&mut status, 4, b"NotFound");
            let mut details = Vec::new();
            put_bytes(&mut details, 1, b"abc");
            put_bytes(&mut details, 2, b"");
            put_bytes(&mut details, 3, b"secrets");
            put_bytes(&mut status, 5, &details);
            put_varint(&mut status, 6, 404);
            let raw = status;
            status = Vec::new();
            put_envelope(&mut status, "v1", "Status", &raw);
        }
        let (client, _) = answering(404, "application/vnd.kubernetes.protobuf", status);
        let from_protobuf = KubeBackend::new(client, 0.0, 1, None)
            .get_head("flyte", "abc")
            .await
            .unwrap_err();
        let (client, _) = answering(404, "application/json", json_status);
        let from_json = KubeBackend::new(client, 0.0, 1, None)
            .get_head("flyte", "abc")
            .await
            .unwrap_err();
        assert_eq!(format!("{from_protobuf:?}"), format!("{from_json:?}"));
        assert!(
            matches!(&from_protobuf, KubeError::Api { code: 404, reason, .. } if reason == "NotFound"),
            "{from_protobuf:?}"
        );
        // A success that does not decode is an error that says what failed.
        let (client, _) = answering(
            200,
            "application/vnd.kubernetes.protobuf",
            b"k8s\0\x0a\xff".to_vec(),
        );
        let broken = KubeBackend::new(client, 0.0, 1, None)
            .get_head("flyte", "abc")
            .await
            .unwrap_err();
        assert!(
            broken.to_string().contains("PartialObjectMetadata"),
            "{broken}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_of_the_request_scope_bounds_the_backend_wait() {
        let engine = crate::kubeapi::Engine::ephemeral();
        engine.ensure_namespace("flyte");
        let kube = KubeBackend::new(engine.kube_client("flyte"), 1.0, 1, None);
        kube.ping("flyte").await.unwrap();
        let deadline = Instant::now() + Duration::from_millis(100);
        let e = super::super::deadline::scope(deadline, kube.ping("flyte"))
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("would exceed context deadline"),
            "{e}"
        );
    }

    /// kube-client logs the whole text of an answer it cannot parse, Secrets' data included.
    /// The service's log filter keeps that out of the logs at any verbosity. Control: under the
    /// same subscriber without it, the value is logged (so the test sees the path fire).
    #[tokio::test]
    async fn an_answer_kube_cannot_parse_never_puts_secret_data_in_the_logs() {
        use crate::telemetry::Captured;
        use tracing_subscriber::Layer as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        // "hunter2", base64: the form the value has in the answer.
        const VALUE: &str = "aHVudGVyMg==";
        let answer = format!(
            r#"{{"kind":"SecretList","apiVersion":"v1","metadata":{{}},"items":[{{"metadata":
            {{"name":"abc","ownerReferences":[1]}},"data":{{"token":"{VALUE}"}}}}]}}"#
        );
        for filtered in [false, true] {
            let captured = Captured::default();
            let writer = captured.clone();
            let everything = tracing_subscriber::EnvFilter::new("trace");
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone());
            let layer = if filtered {
                layer
                    .with_filter(crate::telemetry::logs_filter(everything))
                    .boxed()
            } else {
                layer.with_filter(everything).boxed()
            };
            let _default =
                tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
            // Other tests' threads may have registered kube's callsites with no subscriber;
            // a rebuild makes them ask this one.
            tracing::callsite::rebuild_interest_cache();
            let (client, _) = answering(200, "application/json", answer.clone().into_bytes());
            let e = KubeBackend::new(client, 0.0, 1, None)
                .list("flyte", &ListParams::default())
                .await
                .unwrap_err();
            assert!(!e.to_string().contains(VALUE), "{e}");
            tracing::warn!("a line of our own");
            let logs = captured.text();
            assert!(logs.contains("a line of our own"), "{logs}");
            assert_eq!(
                logs.contains(VALUE),
                !filtered,
                "filtered: {filtered}\n{logs}"
            );
        }
    }
}
