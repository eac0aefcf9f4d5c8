//! OIDC / JWT bearer tokens, verified by `jsonwebtoken` against a JWKS (a URL or a file).
//!
//! Keys are cached; the JWKS is fetched again when the cache is older than [`JWKS_TTL`], and at
//! once when a token names a key id the cache lacks. Fetches start at most once per
//! [`REFRESH_MIN_INTERVAL`], whether the last one worked or not, and one at a time, so random
//! key ids cannot make us hammer the identity provider, even while it is down. No request
//! waits for a fetch when the cache has a key for its token (a stale cache is refreshed in the
//! background); one whose key is missing waits for the fetch under way, at most
//! [`FETCH_TIMEOUT`], and never holds anything others need while it does. Only asymmetric algorithms
//! are accepted (RSA, RSA-PSS, ECDSA, EdDSA), and a key is only used with an algorithm of its
//! own family; `alg: none` never parses.

use super::{AuthMethod, Caller};
use crate::config::JwtConfig;
use http_body_util::{BodyExt, Empty, Limited};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long fetched keys are trusted before the JWKS is fetched again.
pub const JWKS_TTL: Duration = Duration::from_secs(300);
/// The least time between two fetches caused by unknown key ids.
pub const REFRESH_MIN_INTERVAL: Duration = Duration::from_secs(1);
/// How long one JWKS fetch may take.
#[cfg(not(test))]
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
#[cfg(test)]
pub const FETCH_TIMEOUT: Duration = Duration::from_millis(300);
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;
const MAX_JWKS_BYTES: usize = 1024 * 1024;

type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<bytes::Bytes>,
>;

enum Source {
    File(PathBuf),
    Url(String, Box<HttpsClient>),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Family {
    Rsa,
    Ec,
    Ed,
}

fn family_of(alg: Algorithm) -> Option<Family> {
    use Algorithm::*;
    match alg {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Some(Family::Rsa),
        ES256 | ES384 => Some(Family::Ec),
        EdDSA => Some(Family::Ed),
        HS256 | HS384 | HS512 => None,
    }
}

struct Key {
    kid: Option<String>,
    family: Family,
    /// The JWK's own `alg`, when it names one.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

#[derive(Default)]
struct Cache {
    keys: Vec<Arc<Key>>,
    /// When the keys were last fetched.
    fetched: Option<Instant>,
    /// When the last fetch started, whatever came of it.
    attempted: Option<Instant>,
    /// Why the last fetch failed, until one works.
    failure: Option<String>,
}

/// Where the keys come from and what is known of them, shared with background refreshes.
struct Keys {
    source: Source,
    cache: std::sync::Mutex<Cache>,
    /// Held for the length of a fetch: one at a time, and a way to wait for the one under way.
    fetching: Arc<tokio::sync::Mutex<()>>,
}

/// Verifies JWT bearer tokens for one issuer and its audiences.
pub struct JwtVerifier {
    issuer: String,
    audiences: Vec<String>,
    username_claim: String,
    groups_claim: String,
    keys: Arc<Keys>,
}

/// Parses a JWKS document, keeping the usable signature keys (others are skipped, not fatal).
fn parse_jwks(text: &[u8]) -> Result<Vec<Arc<Key>>, String> {
    #[derive(serde::Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_slice(text).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut out = Vec::new();
    for raw in set.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw) else {
            continue;
        };
        if matches!(
            jwk.common.public_key_use,
            Some(ref u) if *u != jsonwebtoken::jwk::PublicKeyUse::Signature
        ) {
            continue;
        }
        let family = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Family::Rsa,
            AlgorithmParameters::EllipticCurve(_) => Family::Ec,
            AlgorithmParameters::OctetKeyPair(_) => Family::Ed,
            AlgorithmParameters::OctetKey(_) => continue, // symmetric keys are never trusted
        };
        let alg = jwk
            .common
            .key_algorithm
            .and_then(|a| a.to_string().parse::<Algorithm>().ok());
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        out.push(Arc::new(Key {
            kid: jwk.common.key_id.clone(),
            family,
            alg,
            key,
        }));
    }
    Ok(out)
}

impl JwtVerifier {
    pub fn new(cfg: &JwtConfig) -> anyhow::Result<JwtVerifier> {
        let source = match (&cfg.jwks_url, &cfg.jwks_file) {
            (Some(url), _) => {
                // The system's trusted roots; none found is only a problem for an https URL,
                // and then every fetch fails with a clear error (startup does not).
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
                if roots.is_empty() && url.starts_with("https:") {
                    tracing::warn!(
                        "no trusted CA certificates found on this system: fetching the JWKS over https will fail"
                    );
                }
                let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_or_http()
                    .enable_http1()
                    .build();
                let client = hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .build(connector);
                Source::Url(url.clone(), Box::new(client))
            }
            (None, Some(file)) => Source::File(file.clone()),
            (None, None) => anyhow::bail!("secret.auth.jwt needs jwksURL or jwksFile"),
        };
        Ok(JwtVerifier {
            issuer: cfg.issuer.clone(),
            audiences: cfg.audiences.clone(),
            username_claim: cfg.username_claim.clone(),
            groups_claim: cfg.groups_claim.clone(),
            keys: Arc::new(Keys {
                source,
                cache: std::sync::Mutex::new(Cache::default()),
                fetching: Arc::new(tokio::sync::Mutex::new(())),
            }),
        })
    }
}

impl Keys {
    async fn fetch(&self) -> Result<Vec<Arc<Key>>, String> {
        let bytes = match &self.source {
            Source::File(path) => tokio::fs::read(path)
                .await
                .map_err(|e| format!("reading {}: {e}", path.display()))?,
            Source::Url(url, client) => {
                let uri: http::Uri = url.parse().map_err(|e| format!("jwksURL: {e}"))?;
                let get = async {
                    let resp = client
                        .get(uri)
                        .await
                        .map_err(|e| format!("fetching {url}: {e}"))?;
                    if resp.status() != http::StatusCode::OK {
                        return Err(format!("fetching {url}: HTTP {}", resp.status()));
                    }
                    Limited::new(resp.into_body(), MAX_JWKS_BYTES)
                        .collect()
                        .await
                        .map(|c| c.to_bytes().to_vec())
                        .map_err(|e| format!("reading {url}: {e}"))
                };
                tokio::time::timeout(FETCH_TIMEOUT, get)
                    .await
                    .map_err(|_| format!("fetching {url}: timed out"))??
            }
        };
        parse_jwks(&bytes)
    }

    /// Fetches the JWKS into the cache in a task of its own, so that no caller going away cuts
    /// a fetch that others may be waiting for; `claim` is the claim on the fetch.
    fn refresh(
        self: &Arc<Self>,
        claim: tokio::sync::OwnedMutexGuard<()>,
    ) -> tokio::task::JoinHandle<()> {
        let keys = self.clone();
        tokio::spawn(async move { keys.fetch_into_cache(claim).await })
    }

    async fn fetch_into_cache(&self, _claim: tokio::sync::OwnedMutexGuard<()>) {
        let fetched = self.fetch().await;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        match fetched {
            Ok(keys) => {
                cache.keys = keys;
                cache.fetched = Some(Instant::now());
                cache.failure = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, cached_keys = cache.keys.len(), "could not fetch the JWKS");
                cache.failure = Some(e);
            }
        }
    }
}

impl JwtVerifier {
    /// The candidate keys for a token's `kid` and family, refreshing the cache as described above.
    async fn keys_for(&self, kid: Option<&str>, family: Family) -> Result<Vec<Arc<Key>>, String> {
        let matching = |cache: &Cache| -> Vec<Arc<Key>> {
            cache
                .keys
                .iter()
                .filter(|k| k.family == family && (kid.is_none() || k.kid.as_deref() == kid))
                .cloned()
                .collect()
        };
        let lock = || self.keys.cache.lock().unwrap_or_else(|e| e.into_inner());
        // Under the cache's lock, briefly: the keys for this token, and the claim on a fetch
        // when one is wanted and may start now.
        let (found, claim) = {
            let mut cache = lock();
            let found = matching(&cache);
            let stale = cache.fetched.is_none_or(|t| t.elapsed() >= JWKS_TTL);
            let due = cache
                .attempted
                .is_none_or(|t| t.elapsed() >= REFRESH_MIN_INTERVAL);
            let claim = if due && (stale || found.is_empty()) {
                self.keys.fetching.clone().try_lock_owned().ok()
            } else {
                None
            };
            if claim.is_some() {
                cache.attempted = Some(Instant::now());
            }
            (found, claim)
        };
        if !found.is_empty() {
            if let Some(claim) = claim {
                self.keys.refresh(claim);
            }
            return Ok(found);
        }
        match claim {
            Some(claim) => {
                let _ = self.keys.refresh(claim).await;
            }
            // A fetch may be under way: its keys may be the ones this token needs.
            None => drop(self.keys.fetching.lock().await),
        }
        let cache = lock();
        let found = matching(&cache);
        if !found.is_empty() {
            return Ok(found);
        }
        Err(match (&cache.failure, kid) {
            (Some(e), _) if cache.keys.is_empty() => format!("no signing keys: {e}"),
            (_, Some(kid)) => format!("unknown key id {kid:?}"),
            (_, None) => "no key of the token's algorithm".into(),
        })
    }

    /// Verifies a token: signature, `iss`, `aud`, `exp`, `nbf`; then the caller from the claims.
    pub async fn verify(&self, token: &str) -> Result<Caller, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("bad token: {e}"))?;
        let family = family_of(header.alg)
            .ok_or_else(|| format!("algorithm {:?} is not accepted", header.alg))?;
        let keys = self.keys_for(header.kid.as_deref(), family).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&self.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let mut last = String::from("no key verified the signature");
        for key in keys {
            if key.alg.is_some_and(|a| a != header.alg) {
                continue;
            }
            match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
                token,
                &key.key,
                &validation,
            ) {
                Ok(data) => return self.caller(&data.claims),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }

    fn caller(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Caller, String> {
        let subject = claims
            .get(&self.username_claim)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("the token has no {:?} claim", self.username_claim))?
            .to_owned();
        let groups = match claims.get(&self.groups_claim) {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        Ok(Caller {
            subject,
            groups,
            method: AuthMethod::Jwt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_keeps_only_usable_signature_keys() {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let raw = pair.public_key_raw();
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let ec = serde_json::json!({"kty": "EC", "crv": "P-256", "kid": "ec", "alg": "ES256",
                                    "x": b64(&raw[1..33]), "y": b64(&raw[33..65])});
        let mut enc = ec.clone();
        enc["use"] = "enc".into();
        enc["kid"] = "enc".into();
        let doc = serde_json::json!({"keys": [
            ec,
            enc,
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "weird", "kid": "junk"},
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes()).unwrap();
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, [Some("ec")]);
        assert_eq!(keys[0].family, Family::Ec);
        assert_eq!(keys[0].alg, Some(Algorithm::ES256));
        assert!(parse_jwks(b"{}").is_err());
    }

    #[tokio::test]
    async fn a_key_is_only_used_with_its_own_algorithm() {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let raw = pair.public_key_raw();
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        // the JWKS pins ES384 for a P-256 key; an ES256 token for it must not verify
        let doc = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k", "alg": "ES384",
                                    "x": b64(&raw[1..33]), "y": b64(&raw[33..65])}]});
        let dir = std::env::temp_dir().join(format!("jwks-{}", uuid::Uuid::new_v4()));
        std::fs::write(&dir, doc.to_string()).unwrap();
        let verifier = JwtVerifier::new(&JwtConfig {
            issuer: "iss".into(),
            audiences: vec!["aud".into()],
            jwks_url: None,
            jwks_file: Some(dir.clone()),
            username_claim: "sub".into(),
            groups_claim: "groups".into(),
        })
        .unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = serde_json::json!({"iss": "iss", "aud": "aud", "sub": "a", "exp": now + 60});
        let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
        header.kid = Some("k".into());
        let token = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_ec_der(&pair.serialize_der()),
        )
        .unwrap();
        assert!(verifier.verify(&token).await.is_err());
        // the same token verifies once the JWKS names ES256
        let mut fixed = doc.clone();
        fixed["keys"][0]["alg"] = "ES256".into();
        std::fs::write(&dir, fixed.to_string()).unwrap();
        {
            let mut cache = verifier.keys.cache.lock().unwrap();
            cache.fetched = None;
            cache.attempted = None;
        }
        // The stale cache still has a key for the token: the answer does not wait for the
        // refresh, which runs in the background; once it is done the new key is used.
        assert!(verifier.verify(&token).await.is_err());
        drop(verifier.keys.fetching.lock().await);
        assert_eq!(verifier.verify(&token).await.unwrap().subject, "a");
        std::fs::remove_file(dir).unwrap();
    }

    /// An identity provider that accepts connections and never answers: tokens with key ids
    /// the cache lacks (all of them: nothing was ever fetched) share one fetch, wait for it at
    /// most `FETCH_TIMEOUT`, and are refused with the reason. Before, each waited its turn for
    /// a fetch of its own, under the cache's lock.
    #[tokio::test]
    async fn an_unanswering_identity_provider_costs_one_fetch_for_all_waiting_tokens() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        });
        let verifier = Arc::new(
            JwtVerifier::new(&JwtConfig {
                issuer: "iss".into(),
                audiences: vec!["aud".into()],
                jwks_url: Some(url),
                jwks_file: None,
                username_claim: "sub".into(),
                groups_claim: "groups".into(),
            })
            .unwrap(),
        );
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let key = jsonwebtoken::EncodingKey::from_ec_der(&pair.serialize_der());
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = serde_json::json!({"iss": "iss", "aud": "aud", "sub": "a", "exp": now + 60});
        let waiting: Vec<_> = (0..16)
            .map(|i| {
                let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
                header.kid = Some(format!("random-{i}"));
                let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
                let verifier = verifier.clone();
                tokio::spawn(async move { verifier.verify(&token).await })
            })
            .collect();
        for task in waiting {
            let refused = task.await.unwrap().unwrap_err();
            assert!(
                refused.starts_with("no signing keys: fetching") && refused.ends_with("timed out"),
                "{refused}"
            );
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1, "one fetch for all");
    }
}
