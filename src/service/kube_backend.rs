//! Kubernetes access for the service: typed `Api<Secret>` calls through a client-side token bucket
//! (`qps`/`burst`) and a per-call `timeout`, like the Go service's client-go settings.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, ObjectList, PostParams};
use std::fmt;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

impl KubeError {
    pub fn reason(&self) -> &str {
        match self {
            KubeError::Api { reason, .. } => reason,
            _ => "",
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

/// A token bucket: `qps` tokens per second, at most `burst` saved up.
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// `qps <= 0` disables limiting.
    pub fn new(qps: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            qps,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// How long to wait before the next call may go; takes its token.
    fn reserve(&self) -> Duration {
        if self.qps <= 0.0 {
            return Duration::ZERO;
        }
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(s.1).as_secs_f64() * self.qps;
        s.0 = (s.0 + refill).min(self.burst);
        s.1 = now;
        s.0 -= 1.0;
        if s.0 >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.0 / self.qps)
        }
    }

    pub async fn acquire(&self) {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

pub struct KubeBackend {
    client: kube::Client,
    limiter: TokenBucket,
    timeout: Option<Duration>,
}

impl KubeBackend {
    pub fn new(client: kube::Client, qps: f64, burst: u32, timeout: Option<Duration>) -> Self {
        KubeBackend {
            client,
            limiter: TokenBucket::new(qps, burst),
            timeout,
        }
    }

    fn api(&self, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), namespace)
    }

    async fn call<T>(
        &self,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, KubeError> {
        self.limiter.acquire().await;
        match self.timeout {
            Some(d) if !d.is_zero() => match tokio::time::timeout(d, fut).await {
                Ok(r) => r.map_err(KubeError::from),
                Err(_) => Err(KubeError::Timeout(d)),
            },
            _ => fut.await.map_err(KubeError::from),
        }
    }

    pub async fn create(&self, namespace: &str, secret: &Secret) -> Result<Secret, KubeError> {
        self.call(self.api(namespace).create(&PostParams::default(), secret))
            .await
    }

    pub async fn get(&self, namespace: &str, name: &str) -> Result<Secret, KubeError> {
        self.call(self.api(namespace).get(name)).await
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
            Err(e) if e.reason() == "NotFound" => {
                let ns = Namespace {
                    metadata: kube::api::ObjectMeta {
                        name: Some(namespace.to_owned()),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                match self.call(api.create(&PostParams::default(), &ns)).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.reason() == "AlreadyExists" => Ok(()),
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

    #[test]
    fn bucket_allows_a_burst_then_paces() {
        let b = TokenBucket::new(10.0, 3);
        for _ in 0..3 {
            assert_eq!(b.reserve(), Duration::ZERO);
        }
        let wait = b.reserve();
        assert!(
            wait > Duration::from_millis(50) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        assert_eq!(TokenBucket::new(0.0, 1).reserve(), Duration::ZERO);
    }
}
