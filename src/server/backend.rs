//! Backend selection: a kubeconfig if configured, else in-cluster, else the embedded engine
//! (optionally also served over HTTP for kubectl); and the service built over it.

use crate::config::{Config, expand_home};
use crate::invalidation::Invalidator;
use crate::kubeapi::{self, Durability, Engine};
use crate::service::{KubeBackend, SecretService, Settings};
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The Kubernetes side of the process.
pub struct Backend {
    pub client: kube::Client,
    /// Set when the embedded engine is in use.
    pub engine: Option<Arc<Engine>>,
    /// Where the embedded engine's HTTP face listens, when enabled.
    pub kube_api_addr: Option<SocketAddr>,
}

impl Backend {
    /// A real API server (kubeconfig or in-cluster), which the client-side rate limit protects.
    pub fn is_real_api_server(&self) -> bool {
        self.engine.is_none()
    }
}

async fn kube_config_client(c: &Config) -> Result<kube::Client> {
    let mut kc = if !c.kubeconfig.is_empty() {
        let path = expand_home(&c.kubeconfig);
        let kubeconfig = kube::config::Kubeconfig::read_from(&path)
            .with_context(|| format!("reading kubeconfig {}", path.display()))?;
        kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .with_context(|| format!("loading kubeconfig {}", path.display()))?
    } else {
        kube::Config::incluster().context("loading in-cluster Kubernetes configuration")?
    };
    // Faults surface as `internal` at once, as with client-go without Retry-After; the service
    // bounds each call with `secret.kubernetes.timeout` itself.
    kc.default_retry = false;
    kc.read_timeout = None;
    kube::Client::try_from(kc).context("building the Kubernetes client")
}

/// Picks the backend: a kubeconfig if configured, else in-cluster, else the embedded engine.
pub async fn backend(c: &Config) -> Result<Backend> {
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    if !c.kubeconfig.is_empty() || in_cluster {
        return Ok(Backend {
            client: kube_config_client(c).await?,
            engine: None,
            kube_api_addr: None,
        });
    }
    let durability = if c.ephemeral {
        Durability::Memory
    } else {
        let dir = c.data_dir.clone().unwrap_or_else(|| {
            dirs::data_dir()
                .unwrap_or_else(std::env::temp_dir)
                .join("flytesecret")
                .join("kube")
        });
        Durability::on_disk(dir, c.encryption_key_file.clone())
    };
    let engine = Engine::open(&durability).with_context(|| match &durability {
        Durability::Directory(dir) | Durability::Encrypted { dir, .. } => {
            format!("opening the embedded Kubernetes store in {}", dir.display())
        }
        Durability::Memory => "opening the in-memory Kubernetes store".to_owned(),
    })?;
    if let Some(path) = &c.token_auth_file {
        engine
            .set_token_file(
                kubeapi::tokens::TokenFile::load(path)
                    .map_err(|e| anyhow::anyhow!("token file {e}"))?,
            )
            .map_err(|e| anyhow::anyhow!("TLS for the Kubernetes API: {e}"))?;
    }
    let mut kube_api_addr = None;
    if let Some(listen) = &c.kube_api_listen {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the embedded Kubernetes API on {listen}"))?;
        let addr = listener.local_addr()?;
        if let Some(path) = &c.write_kubeconfig {
            kubeapi::http_face::write_kubeconfig(path, addr, &c.namespace, &engine)
                .with_context(|| format!("writing kubeconfig {}", path.display()))?;
        }
        tokio::spawn(kubeapi::http_face::serve(
            engine.clone(),
            listener,
            c.limits.clone(),
            c.test_fault_injection,
            std::future::pending(),
        ));
        kube_api_addr = Some(addr);
    }
    tracing::info!(store = ?durability, kube_api = ?kube_api_addr, "using the embedded Kubernetes engine");
    Ok(Backend {
        client: engine.kube_client(&c.namespace),
        engine: Some(engine),
        kube_api_addr,
    })
}

/// Builds the service over a backend, with the policy and the audit log when configured. The
/// `qps`/`burst` limit and the per-call `timeout` are for real API servers only: the embedded
/// engine runs in this process, needs no protection, and its calls are bounded by the request
/// deadline (a timer per call costs ~3% of a GetSecret's instructions).
pub fn service(
    c: &Config,
    backend: &Backend,
    audit: Option<Arc<crate::audit::AuditLog>>,
) -> Arc<SecretService> {
    let (qps, burst, timeout) = if backend.is_real_api_server() {
        (c.qps as f64, c.burst, c.timeout)
    } else {
        (0.0, 1, None)
    };
    let kube = KubeBackend::new(backend.client.clone(), qps, burst, timeout);
    let settings = Settings {
        namespace: c.namespace.clone(),
        cluster_name: c.cluster_name.clone(),
        strict_names: c.strict_names,
        ..Settings::default()
    };
    Arc::new(
        SecretService::new(kube, settings, Invalidator::new(&c.webhook_url))
            .with_security(c.auth.policy.clone(), audit),
    )
}

/// The address to bind: with the embedded engine, loopback unless a host was set explicitly
/// (an unauthenticated secret store must not appear on the network by accident).
pub fn bind_host(c: &Config, embedded: bool) -> String {
    if embedded && !c.host.explicit {
        "127.0.0.1".to_owned()
    } else {
        c.host.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::{Duration, Instant};

    fn config(flags: &[(&str, &str)]) -> Config {
        let flags: Vec<(String, String)> = flags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        crate::config::load(&[], |_| None, &flags).unwrap()
    }

    /// Issue 14: the qps/burst limit, meant for real API servers, capped the embedded engine.
    #[tokio::test(start_paused = true)]
    async fn only_a_real_api_server_gets_the_client_rate_limit() {
        let c = config(&[
            ("secret.embedded.ephemeral", "true"),
            ("secret.kubernetes.qps", "1"),
            ("secret.kubernetes.burst", "1"),
        ]);
        let embedded = backend(&c).await.unwrap();
        assert!(!embedded.is_real_api_server());
        let engine = embedded.engine.clone().unwrap();
        engine.ensure_namespace("flyte");
        let svc = service(&c, &embedded, None);
        let start = Instant::now();
        for _ in 0..10 {
            svc.kube().ping("flyte").await.unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the embedded engine was rate limited: {:?}",
            start.elapsed()
        );
        // The same client presented as a real API server is limited to 1 call per second.
        let real = Backend {
            client: embedded.client.clone(),
            engine: None,
            kube_api_addr: None,
        };
        let svc = service(&c, &real, None);
        let start = Instant::now();
        for _ in 0..3 {
            svc.kube().ping("flyte").await.unwrap();
        }
        assert!(
            start.elapsed() >= Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    /// The per-call timeout bounds calls to a real API server; the embedded engine's calls are
    /// bounded by the request deadline instead.
    #[tokio::test(start_paused = true)]
    async fn only_a_real_api_server_gets_the_per_call_timeout() {
        use crate::kubeapi::faults::{Fault, Verb};
        let c = config(&[
            ("secret.embedded.ephemeral", "true"),
            ("secret.kubernetes.timeout", "1s"),
        ]);
        let embedded = backend(&c).await.unwrap();
        let engine = embedded.engine.clone().unwrap();
        engine.ensure_namespace("flyte");
        let slow = || {
            engine
                .faults()
                .inject(Some(Verb::List), 1, Fault::Delay { millis: 2000 })
        };
        slow();
        service(&c, &embedded, None)
            .kube()
            .ping("flyte")
            .await
            .unwrap();
        let real = Backend {
            client: embedded.client.clone(),
            engine: None,
            kube_api_addr: None,
        };
        slow();
        let e = service(&c, &real, None)
            .kube()
            .ping("flyte")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("did not answer within 1s"), "{e}");
    }
}
