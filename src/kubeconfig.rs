//! Writing kubeconfig files: one cluster, one user, one context, built as `kube`'s own
//! [`Kubeconfig`] type and serialized with serde, so what `kubectl` and `kube::Config` read is
//! what they would write themselves. Written atomically and owner-only (it may hold a token).

use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};
use std::io::Write as _;
use std::path::Path;

/// Where a kubeconfig points and how it authenticates.
#[derive(Clone, Debug, Default)]
pub struct Target<'a> {
    /// `http://host:port` or `https://host:port`.
    pub server: &'a str,
    pub namespace: &'a str,
    /// A bearer token for the user.
    pub token: Option<&'a str>,
    /// The PEM of the CA that signs the server's certificate.
    pub ca_pem: Option<&'a str>,
    /// The name to check the server's certificate against, when not the host dialled.
    pub tls_server_name: Option<&'a str>,
}

const NAME: &str = "flytesecret";

/// The kubeconfig for `target`.
pub fn build(target: &Target<'_>) -> Kubeconfig {
    use base64::Engine as _;
    Kubeconfig {
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        clusters: vec![NamedCluster {
            name: NAME.into(),
            cluster: Some(Cluster {
                server: Some(target.server.into()),
                certificate_authority_data: target
                    .ca_pem
                    .map(|pem| base64::engine::general_purpose::STANDARD.encode(pem)),
                tls_server_name: target.tls_server_name.map(Into::into),
                ..Cluster::default()
            }),
            ..NamedCluster::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: NAME.into(),
            auth_info: Some(AuthInfo {
                token: target.token.map(|t| t.to_owned().into()),
                ..AuthInfo::default()
            }),
            ..NamedAuthInfo::default()
        }],
        contexts: vec![NamedContext {
            name: NAME.into(),
            context: Some(Context {
                cluster: NAME.into(),
                user: Some(NAME.into()),
                namespace: Some(target.namespace.into()),
                ..Context::default()
            }),
            ..NamedContext::default()
        }],
        current_context: Some(NAME.into()),
        ..Kubeconfig::default()
    }
}

/// Writes the kubeconfig for `target` to `path`: a temporary file (0600), fsynced, renamed.
pub fn write(path: &Path, target: &Target<'_>) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let text = serde_yaml::to_string(&build(target)).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_reads_back_what_is_written() {
        let dir = std::env::temp_dir().join(format!("flytesecret-kc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kubeconfig");
        let target = Target {
            server: "https://127.0.0.1:6443",
            namespace: "flyte",
            token: Some("t0ken"),
            ca_pem: Some("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"),
            tls_server_name: Some("localhost"),
        };
        write(&path, &target).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let back = Kubeconfig::read_from(&path).unwrap();
        assert_eq!(back.current_context.as_deref(), Some(NAME));
        let cluster = back.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some(target.server));
        assert_eq!(cluster.tls_server_name.as_deref(), Some("localhost"));
        assert!(cluster.certificate_authority_data.is_some());
        let context = back.contexts[0].context.as_ref().unwrap();
        assert_eq!(context.namespace.as_deref(), Some("flyte"));
        assert!(text.contains("token: t0ken"), "{text}");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(dir);
    }
}
