//! Readiness: `/readyz` and the gRPC health service report serving once the Kubernetes API has
//! answered; before that, the secrets namespace is made sure of (created when missing).

use super::App;
use std::sync::Arc;
use std::time::Duration;

/// Startup chores that need the API: the namespace (created when missing; a refusal is logged
/// once), then readiness once the API answers (retried with backoff up to 5 s).
pub async fn prepare(app: Arc<App>) {
    let svc = &app.service;
    let ns = svc.settings().namespace.clone();
    if let Err(e) = svc.kube().ensure_namespace(&ns).await {
        tracing::warn!(namespace = %ns, error = %e, "could not make sure the secrets namespace exists; going on");
    }
    let mut delay = Duration::from_millis(100);
    loop {
        match svc.kube().ping(&ns).await {
            Ok(()) => {
                app.set_ready().await;
                tracing::info!("ready: the Kubernetes API answers");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "the Kubernetes API does not answer yet"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
