//! Kubernetes ServiceAccount (or any Kubernetes) tokens, checked with a TokenReview against the
//! configured Kubernetes API (or the embedded engine, which answers for its static token file).
//! Answers are cached briefly, keyed by a SHA-256 of the token (the token itself is never kept).

use super::{AuthMethod, Caller};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long an accepted token is trusted without asking again.
pub const ACCEPTED_TTL: Duration = Duration::from_secs(10);
/// How long a refused token is refused without asking again.
pub const REFUSED_TTL: Duration = Duration::from_secs(2);
const MAX_CACHE_ENTRIES: usize = 4096;
const REVIEW_TIMEOUT: Duration = Duration::from_secs(5);

type Answer = Result<Caller, String>;

pub struct TokenReviewer {
    client: kube::Client,
    audiences: Vec<String>,
    cache: std::sync::Mutex<HashMap<[u8; 32], (Instant, Answer)>>,
}

impl TokenReviewer {
    pub fn new(client: kube::Client, audiences: Vec<String>) -> TokenReviewer {
        TokenReviewer {
            client,
            audiences,
            cache: std::sync::Mutex::new(HashMap::new()),
        }
    }

    pub async fn review(&self, token: &str) -> Answer {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some((expires, answer)) = self.cache.lock().expect("cache lock").get(&digest)
            && Instant::now() < *expires
        {
            return answer.clone();
        }
        let answer = match tokio::time::timeout(REVIEW_TIMEOUT, self.ask(token)).await {
            Ok(Ok(answer)) => answer,
            // The API did not answer: refuse this request, but remember nothing.
            Ok(Err(e)) => return Err(format!("TokenReview failed: {e}")),
            Err(_) => return Err("TokenReview timed out".into()),
        };
        let ttl = if answer.is_ok() {
            ACCEPTED_TTL
        } else {
            REFUSED_TTL
        };
        let mut cache = self.cache.lock().expect("cache lock");
        if cache.len() >= MAX_CACHE_ENTRIES {
            let now = Instant::now();
            cache.retain(|_, (expires, _)| *expires > now);
            if cache.len() >= MAX_CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(digest, (Instant::now() + ttl, answer.clone()));
        answer
    }

    /// One TokenReview: `Ok(answer)` when the API answered, `Err` when it could not be asked.
    async fn ask(&self, token: &str) -> Result<Answer, kube::Error> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: (!self.audiences.is_empty()).then(|| self.audiences.clone()),
            },
            ..Default::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let reviewed = api.create(&PostParams::default(), &review).await?;
        let Some(status) = reviewed.status else {
            return Ok(Err("the TokenReview has no status".into()));
        };
        if status.authenticated != Some(true) {
            return Ok(Err(status
                .error
                .unwrap_or_else(|| "the token was not accepted".into())));
        }
        if !self.audiences.is_empty() {
            let granted = status.audiences.unwrap_or_default();
            if !granted.iter().any(|a| self.audiences.contains(a)) {
                return Ok(Err("the token is not for any configured audience".into()));
            }
        }
        let user = status.user.unwrap_or_default();
        let subject = user.username.unwrap_or_default();
        if subject.is_empty() {
            return Ok(Err("the TokenReview names no user".into()));
        }
        Ok(Ok(Caller {
            subject,
            groups: user.groups.unwrap_or_default(),
            method: AuthMethod::TokenReview,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A Kubernetes API that answers TokenReviews for "good" (granting `granted` audiences),
    /// counting the reviews it is asked for.
    fn api(granted: &'static [&'static str], asked: Arc<AtomicU32>) -> kube::Client {
        let svc = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let asked = asked.clone();
            async move {
                asked.fetch_add(1, Ordering::SeqCst);
                let body = req.into_body().collect().await.unwrap().to_bytes();
                let review: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let good = review["spec"]["token"] == "good";
                let answer = serde_json::json!({
                    "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                    "spec": {},
                    "status": if good {
                        serde_json::json!({"authenticated": true, "audiences": granted,
                            "user": {"username": "system:serviceaccount:flyte:bot", "groups": ["system:serviceaccounts"]}})
                    } else {
                        serde_json::json!({"error": "invalid token"})
                    }
                });
                Ok::<_, std::convert::Infallible>(
                    http::Response::builder()
                        .status(201)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(answer.to_string())))
                        .unwrap(),
                )
            }
        });
        kube::Client::new(svc, "default")
    }

    #[tokio::test]
    async fn reviews_are_cached_and_audiences_checked() {
        let asked = Arc::new(AtomicU32::new(0));
        let tr = TokenReviewer::new(
            api(&["flytesecret"], asked.clone()),
            vec!["flytesecret".into()],
        );
        let caller = tr.review("good").await.unwrap();
        assert_eq!(caller.subject, "system:serviceaccount:flyte:bot");
        assert_eq!(caller.groups, ["system:serviceaccounts"]);
        assert_eq!(caller.method, AuthMethod::TokenReview);
        tr.review("good").await.unwrap();
        assert_eq!(
            asked.load(Ordering::SeqCst),
            1,
            "the second review came from the cache"
        );
        assert!(tr.review("bad").await.is_err());
        assert!(tr.review("bad").await.is_err());
        assert_eq!(
            asked.load(Ordering::SeqCst),
            2,
            "refusals are cached briefly too"
        );

        let other = Arc::new(AtomicU32::new(0));
        let tr = TokenReviewer::new(api(&["someone-else"], other), vec!["flytesecret".into()]);
        let e = tr.review("good").await.unwrap_err();
        assert!(e.contains("audience"), "{e}");
    }
}
