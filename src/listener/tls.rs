//! TLS on the service port (`secret.server.tls`): rustls with ALPN `h2` and `http/1.1`, so every
//! protocol is served over it. The certificate, key and client CA files are checked on every
//! handshake (a `stat` each) and re-read when they change, so a rotation (cert-manager) takes
//! effect without a restart; a half-written rotation that does not load keeps the previous
//! configuration. With `clientCAFile`, client certificates are required and verified (mTLS), and
//! the certificate's common name is reported for the caller's identity (`cert:<CN>`).

use crate::config::TlsConfig;
use anyhow::{Context, Result};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// What identifies a file's content without reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp(Option<(SystemTime, u64, u64)>);

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt as _;
    Stamp(
        std::fs::metadata(path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len(), m.ino()))),
    )
}

struct Loaded {
    config: Arc<ServerConfig>,
    stamps: Vec<Stamp>,
}

/// Accepts TLS connections with the current certificate files (or a fixed configuration).
pub struct TlsAcceptor {
    files: Vec<PathBuf>,
    /// `None` for a fixed configuration that is never re-read.
    settings: Option<TlsConfig>,
    loaded: Mutex<Loaded>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing certificates in {}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in {}", path.display());
    Ok(certs)
}

/// The certificate and key files, which a TLS configuration must name.
fn files(settings: &TlsConfig) -> Result<(&Path, &Path)> {
    settings
        .files()
        .context("TLS needs secret.server.tls.certFile and keyFile")
}

fn load(settings: &TlsConfig) -> Result<ServerConfig> {
    let (cert_file, key_file) = files(settings)?;
    let certs = read_certs(cert_file)?;
    let key_pem =
        std::fs::read(key_file).with_context(|| format!("reading {}", key_file.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .with_context(|| format!("parsing the private key in {}", key_file.display()))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &settings.client_ca_file {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots
                    .add(cert)
                    .with_context(|| format!("adding a client CA from {}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .context("building the client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).with_context(|| {
        format!(
            "{} and {} do not form a usable certificate and key",
            cert_file.display(),
            key_file.display()
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The common name of a DER certificate's subject.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    cert.subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()
        .map(str::to_owned)
}

impl TlsAcceptor {
    /// Loads the files once; fails when they do not make a working configuration.
    pub fn new(settings: &TlsConfig) -> Result<TlsAcceptor> {
        let (cert_file, key_file) = files(settings)?;
        let mut files = vec![cert_file.to_owned(), key_file.to_owned()];
        files.extend(settings.client_ca_file.clone());
        let stamps = files.iter().map(|f| stamp(f)).collect();
        let config = Arc::new(load(settings)?);
        Ok(TlsAcceptor {
            files,
            settings: Some(settings.clone()),
            loaded: Mutex::new(Loaded { config, stamps }),
        })
    }

    /// An acceptor with a configuration made in memory (no files to watch).
    pub fn fixed(config: Arc<ServerConfig>) -> TlsAcceptor {
        TlsAcceptor {
            files: Vec::new(),
            settings: None,
            loaded: Mutex::new(Loaded {
                config,
                stamps: Vec::new(),
            }),
        }
    }

    /// The configuration for the next handshake, re-read first if any file changed.
    fn current(&self) -> Arc<ServerConfig> {
        let Some(settings) = &self.settings else {
            return self
                .loaded
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .config
                .clone();
        };
        let stamps: Vec<Stamp> = self.files.iter().map(|f| stamp(f)).collect();
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if stamps != loaded.stamps {
            match load(settings) {
                Ok(config) => {
                    loaded.config = Arc::new(config);
                    loaded.stamps = stamps;
                    tracing::info!(cert = %self.files[0].display(), "reloaded the TLS certificate files");
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "the TLS files changed but do not load; keeping the previous ones");
                }
            }
        }
        loaded.config.clone()
    }

    /// Runs the handshake on an accepted connection; returns the stream and, with mTLS, the
    /// client certificate's common name.
    pub async fn accept(
        &self,
        stream: TcpStream,
    ) -> std::io::Result<(TlsStream<TcpStream>, Option<String>)> {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.current());
        // The handshake's time limit is the caller's (the listener bounds it by
        // `secret.server.headerReadTimeout`, like every connection's first bytes).
        let tls = acceptor.accept(stream).await?;
        let cn = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| common_name(leaf));
        Ok((tls, cn))
    }
}
