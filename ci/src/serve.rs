//! Starting `flytesecret serve` for a pipeline task and finding its addresses.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running service, stopped on drop.
pub struct Service {
    child: Child,
    pub endpoint: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the service with `args` on a free port; returns once it printed where it serves and
/// its readiness endpoint answers.
pub fn start(args: &[&str]) -> Result<(Service, Option<String>)> {
    let mut child = Command::new(crate::bin("flytesecret"))
        .args([
            "serve",
            "--secret.server.port",
            "0",
            "--secret.webhookURL",
            "",
        ])
        .args(args)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .spawn()
        .context("starting flytesecret serve (build the workspace first)")?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut kube_api = None;
    let endpoint = loop {
        let Some(line) = lines.next() else {
            bail!("flytesecret serve exited before serving")
        };
        let line = line?;
        if let Some(rest) = line
            .split_once("embedded Kubernetes API on ")
            .map(|(_, r)| r.trim().to_owned())
        {
            kube_api = Some(rest);
        }
        if let Some((_, url)) = line.split_once("SecretService on ") {
            break url.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let service = Service { child, endpoint };
    wait_ready(&service.endpoint)?;
    Ok((service, kube_api))
}

fn wait_ready(endpoint: &str) -> Result<()> {
    let addr = endpoint.trim_start_matches("http://");
    for _ in 0..600 {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            use std::io::{Read, Write};
            let _ = write!(
                s,
                "GET /readyz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
            );
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.1 200") {
                return Ok(());
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    bail!("{endpoint} never became ready")
}

/// Runs the conformance `service` suite for every protocol, with object checks.
pub fn service_suite(
    endpoint: &str,
    kubeconfig: &Path,
    namespace: &str,
    profile: &str,
) -> Result<()> {
    let sh = xshell::Shell::new()?;
    let checker = crate::bin("flytesecret-conformance");
    for protocol in crate::PROTOCOLS {
        xshell::cmd!(
            sh,
            "{checker} service --endpoint {endpoint} --protocol {protocol} --kubeconfig {kubeconfig} --namespace {namespace} --profile {profile}"
        )
        .run()?;
    }
    Ok(())
}
