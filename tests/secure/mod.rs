//! Helpers for the security tests: signing keys and tokens made in the test, certificates from
//! rcgen, a tiny JWKS server, and the binary started with a config file.
#![allow(dead_code)]

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const BIN: &str = env!("CARGO_BIN_EXE_flytesecret");
pub const ISSUER: &str = "https://idp.test.example";
pub const AUDIENCE: &str = "flytesecret";

/// A signing key and its public JWK.
pub struct SigningKey {
    pub alg: Algorithm,
    pub kid: String,
    pub key: EncodingKey,
    pub jwk: Value,
}

fn b64url(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A fresh P-256 key.
pub fn ec_key(kid: &str) -> SigningKey {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = pair.public_key_raw();
    assert_eq!(raw.len(), 65, "an uncompressed P-256 point");
    SigningKey {
        alg: Algorithm::ES256,
        kid: kid.into(),
        key: EncodingKey::from_ec_der(&pair.serialize_der()),
        jwk: json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                    "x": b64url(&raw[1..33]), "y": b64url(&raw[33..65])}),
    }
}

/// The test RSA key (a fixture: ring cannot generate RSA keys).
pub fn rsa_key(kid: &str) -> SigningKey {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let pem = std::fs::read(dir.join("jwt-rsa-test-key.pem")).unwrap();
    let mut jwk: Value =
        serde_json::from_slice(&std::fs::read(dir.join("jwt-rsa-test-key.jwk.json")).unwrap())
            .unwrap();
    jwk["kid"] = json!(kid);
    SigningKey {
        alg: Algorithm::RS256,
        kid: kid.into(),
        key: EncodingKey::from_rsa_pem(&pem).unwrap(),
        jwk,
    }
}

pub fn jwks(keys: &[&SigningKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Valid claims for `sub` with `groups`, expiring in an hour.
pub fn claims(sub: &str, groups: &[&str]) -> Value {
    json!({"iss": ISSUER, "aud": [AUDIENCE], "sub": sub, "groups": groups,
           "iat": now(), "nbf": now() - 10, "exp": now() + 3600})
}

pub fn sign(key: &SigningKey, claims: &Value) -> String {
    sign_with_kid(key, Some(&key.kid), claims)
}

pub fn sign_with_kid(key: &SigningKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key.key).unwrap()
}

/// An unsigned token (`alg: none`).
pub fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(claims.to_string().as_bytes())
    )
}

/// A JWKS served over HTTP on 127.0.0.1, its document swappable, counting fetches.
pub struct JwksServer {
    pub url: String,
    pub doc: Arc<Mutex<String>>,
    pub fetches: Arc<Mutex<u32>>,
}

impl JwksServer {
    pub fn start(doc: String) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        let doc = Arc::new(Mutex::new(doc));
        let fetches = Arc::new(Mutex::new(0));
        let (d, f) = (doc.clone(), fetches.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut buf = [0u8; 4096];
                let mut req = Vec::new();
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                *f.lock().unwrap() += 1;
                let body = d.lock().unwrap().clone();
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        JwksServer { url, doc, fetches }
    }

    pub fn fetches(&self) -> u32 {
        *self.fetches.lock().unwrap()
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("flytesecret-sec-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    pub fn write(&self, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `flytesecret serve` with a config file, on a free port, killed on drop. Its stderr (logs) is
/// kept in `log`.
pub struct Secure {
    pub child: Child,
    pub addr: SocketAddr,
    pub https: bool,
    pub log: PathBuf,
    pub stdout_lines: Arc<Mutex<Vec<String>>>,
}

impl Secure {
    pub fn start(dir: &TempDir, config_yaml: &str, extra: &[&str]) -> Secure {
        let config = dir.write(
            &format!("config-{}.yaml", uuid::Uuid::new_v4()),
            config_yaml,
        );
        let log = dir.path(&format!("server-{}.log", uuid::Uuid::new_v4()));
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .args([
                "--secret.server.port",
                "0",
                "--secret.webhookURL",
                "",
                "--ephemeral",
            ])
            .args(extra)
            .env("RUST_LOG", "info")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .current_dir(&dir.0)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut found = None;
        let stdout_lines = Arc::new(Mutex::new(Vec::new()));
        while found.is_none() {
            let Some(Ok(line)) = lines.next() else {
                panic!(
                    "server exited before serving: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            };
            stdout_lines.lock().unwrap().push(line.clone());
            if let Some((_, rest)) = line.split_once("SecretService on ") {
                let (https, addr) = match rest.strip_prefix("https://") {
                    Some(a) => (true, a),
                    None => (false, rest.trim_start_matches("http://")),
                };
                found = Some((https, addr.trim().parse::<SocketAddr>().unwrap()));
            }
        }
        let sink = stdout_lines.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let (https, addr) = found.unwrap();
        Secure {
            child,
            addr,
            https,
            log,
            stdout_lines,
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `/readyz` answers 200 through `probe`.
    pub fn wait_ready(&self, probe: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if probe() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server never became ready: {}", self.logs());
    }
}

impl Drop for Secure {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Connect JSON call over plain HTTP: status, headers, parsed body.
pub fn connect(
    addr: SocketAddr,
    method: &str,
    body: &Value,
    token: Option<&str>,
) -> (u16, Vec<(String, String)>, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let path = format!("/flyteidl2.secret.SecretService/{method}");
    let (code, h, raw) =
        crate::common::http(addr, "POST", &path, &headers, body.to_string().as_bytes()).unwrap();
    let v = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    (code, h, v)
}

/// The certificates of a test PKI.
pub struct Pki {
    pub ca_pem: String,
    ca_params: rcgen::CertificateParams,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_cert = params.self_signed(&ca_key).unwrap();
        Pki {
            ca_pem: ca_cert.pem(),
            ca_params: params,
            ca_key,
        }
    }

    fn issue(&self, cn: &str, sans: Vec<String>, client: bool) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(sans).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A server certificate for 127.0.0.1 and localhost: (cert PEM, key PEM).
    pub fn server(&self, cn: &str) -> (String, String) {
        self.issue(cn, vec!["127.0.0.1".into(), "localhost".into()], false)
    }

    pub fn client(&self, cn: &str) -> (String, String) {
        self.issue(cn, vec![], true)
    }
}

/// curl over TLS: (HTTP status, HTTP version, body); `None` when curl could not connect
/// (handshake refused, unknown CA).
pub fn curl(args: &[&str], url: &str) -> Option<(u16, String, String)> {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-o",
            "-",
            "-w",
            "\n%{http_code} %{http_version}",
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        eprintln!(
            "curl {args:?} {url}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    let (body, tail) = text.rsplit_once('\n')?;
    let (code, version) = tail.split_once(' ')?;
    Some((code.parse().ok()?, version.to_owned(), body.to_owned()))
}

pub fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line {l:?}: {e}")))
        .collect()
}

/// A child process killed on drop (so a failed assertion leaves nothing running).
pub struct Reaper(pub Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
