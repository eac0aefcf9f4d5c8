//! HTTPS for the engine's HTTP face when it requires tokens: clients (kubectl among them) send a
//! bearer token only over TLS. A self-signed certificate for `localhost`, `127.0.0.1` and `::1`
//! is made at startup; the written kubeconfig carries it as `certificate-authority-data`.

use std::sync::Arc;

/// The face's certificate (PEM, to trust) and its server configuration.
pub struct FaceTls {
    pub ca_pem: String,
    pub config: Arc<rustls::ServerConfig>,
}

impl FaceTls {
    pub fn generate() -> Result<FaceTls, String> {
        let names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params = rcgen::CertificateParams::new(names).map_err(|e| e.to_string())?;
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            "flytesecret embedded Kubernetes API",
        );
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        let der_key = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], der_key)
        .map_err(|e| e.to_string())?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(FaceTls {
            ca_pem: cert.pem(),
            config: Arc::new(config),
        })
    }
}
