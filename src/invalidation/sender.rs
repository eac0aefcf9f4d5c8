//! Sends cache invalidations to every webhook replica, as the Go service does: synchronously within
//! the RPC, sequentially, one 5 s budget for resolution and all POSTs, success only on HTTP 200,
//! failures logged and never surfaced (best effort). The work runs in its own task, so a client
//! hanging up does not cut it short.

use super::{TargetError, WebhookEndpoint, invalidation_body};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::IpAddr;
use std::time::Duration;

/// The budget for one invalidation: resolution and every POST together.
pub const BUDGET: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Invalidator {
    webhook_url: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

const STALE: &str = "the old value may be served until the webhook cache TTL expires";

impl Invalidator {
    /// `None` when invalidation is disabled (an empty `webhookURL`).
    pub fn new(webhook_url: &str) -> Option<Self> {
        if webhook_url.is_empty() {
            return None;
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(BUDGET));
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Some(Invalidator {
            webhook_url: webhook_url.to_owned(),
            client,
        })
    }

    /// Invalidates the webhook caches for one secret; returns how many replicas confirmed.
    pub async fn invalidate(&self, domain: &str, project: &str, name: &str) -> usize {
        let this = self.clone();
        let body = Bytes::from(invalidation_body(domain, project, name));
        let secret = name.to_owned();
        let task = tokio::spawn(async move {
            match tokio::time::timeout(BUDGET, this.run(body, &secret)).await {
                Ok(n) => n,
                Err(_) => {
                    tracing::warn!(secret = %secret, "webhook cache invalidation ran out of its {BUDGET:?} budget; {STALE}");
                    0
                }
            }
        });
        task.await.unwrap_or(0)
    }

    async fn targets(&self) -> Result<Vec<String>, TargetError> {
        let endpoint = WebhookEndpoint::parse(&self.webhook_url)?;
        let addrs: Vec<IpAddr> = match endpoint.ip_literal() {
            Some(ip) => vec![ip],
            None => {
                let found = tokio::net::lookup_host((endpoint.host.as_str(), 0))
                    .await
                    .map_err(|e| TargetError::Resolve {
                        host: endpoint.host.clone(),
                        reason: e.to_string(),
                    })?;
                let mut unique = Vec::new();
                for a in found {
                    if !unique.contains(&a.ip()) {
                        unique.push(a.ip());
                    }
                }
                unique
            }
        };
        endpoint.targets(&addrs)
    }

    async fn run(&self, body: Bytes, secret: &str) -> usize {
        let targets = match self.targets().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(secret = %secret, error = %e, "webhook cache invalidation: no targets; {STALE}");
                return 0;
            }
        };
        let mut confirmed = 0;
        for url in targets {
            let request = http::Request::post(&url)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(body.clone()));
            let Ok(request) = request else {
                tracing::warn!(secret = %secret, %url, "webhook cache invalidation: invalid target URL; {STALE}");
                continue;
            };
            match tokio::time::timeout(BUDGET, self.client.request(request)).await {
                Ok(Ok(resp)) if resp.status() == http::StatusCode::OK => confirmed += 1,
                Ok(Ok(resp)) => {
                    tracing::warn!(secret = %secret, %url, status = resp.status().as_u16(), "webhook cache invalidation refused; {STALE}")
                }
                Ok(Err(e)) => {
                    tracing::warn!(secret = %secret, %url, error = %e, "webhook cache invalidation failed; {STALE}")
                }
                Err(_) => {
                    tracing::warn!(secret = %secret, %url, "webhook cache invalidation timed out; {STALE}")
                }
            }
        }
        confirmed
    }
}
