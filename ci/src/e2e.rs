//! End-to-end harnesses: an ephemeral real cluster, the real binary against it, the conformance
//! `service` suite with object checks over every protocol, then the cluster is deleted.
//!
//! * `kind`: a kind cluster (the `kind` CLI).
//! * `k3s`: a k3s server container, through testcontainers (`testcontainers-modules`' K3s).
//! * `kwok`: a kwok cluster container through testcontainers: a light, real kube-apiserver.
//!
//! They need a Docker engine; without one they skip with a printed reason (exit 0).

use anyhow::{Context, Result, bail};
use std::path::Path;
use xshell::{Shell, cmd};

const NAMESPACE: &str = "flyte";

/// Why a harness cannot run here, if it cannot.
pub fn docker_unavailable(sh: &Shell) -> Option<String> {
    let format = "{{.ServerVersion}}";
    match cmd!(sh, "docker info --format {format}")
        .quiet()
        .ignore_stderr()
        .read()
    {
        Ok(v) if !v.trim().is_empty() => None,
        Ok(_) => Some("the Docker engine did not report a version".into()),
        Err(e) => Some(format!("no Docker engine answers ({e})")),
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Ran {
    Passed,
    Skipped(String),
}

/// Runs one harness by name.
pub fn run(which: &str) -> Result<Ran> {
    run_with(&Shell::new()?, which)
}

/// Runs one harness in `sh` (whose environment decides which `docker`, `kind` and `kubectl` run).
pub fn run_with(sh: &Shell, which: &str) -> Result<Ran> {
    if !matches!(which, "kind" | "k3s" | "kwok") {
        bail!("unknown harness {which:?}: kind, k3s or kwok");
    }
    let sh = sh.clone();
    if let Some(why) = docker_unavailable(&sh) {
        println!("e2e {which}: skipped: {why}");
        return Ok(Ran::Skipped(why));
    }
    let dir = std::env::temp_dir().join(format!("flytesecret-e2e-{which}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let kubeconfig = dir.join("kubeconfig");
    let result = match which {
        "kind" => kind(&sh, &kubeconfig),
        "k3s" => container(&sh, &kubeconfig, Cluster::K3s),
        _ => container(&sh, &kubeconfig, Cluster::Kwok),
    };
    let _ = std::fs::remove_dir_all(&dir);
    result.map(|()| Ran::Passed)
}

fn against(kubeconfig: &Path) -> Result<()> {
    let kc = kubeconfig
        .to_str()
        .context("kubeconfig path is not UTF-8")?;
    for (profile, strict) in [("strict", "true"), ("go", "false")] {
        let (svc, _) = crate::serve::start(&[
            "--secret.kubernetes.kubeconfig",
            kc,
            "--secret.kubernetes.namespace",
            NAMESPACE,
            "--secret.strictNames",
            strict,
        ])?;
        crate::serve::service_suite(&svc.endpoint, kubeconfig, NAMESPACE, profile)?;
    }
    Ok(())
}

fn kind(sh: &Shell, kubeconfig: &Path) -> Result<()> {
    if cmd!(sh, "kind version")
        .quiet()
        .ignore_stderr()
        .read()
        .is_err()
    {
        bail!("a Docker engine answers but the kind CLI is missing: install kind");
    }
    let name = format!("flytesecret-e2e-{}", std::process::id());
    cmd!(
        sh,
        "kind create cluster --name {name} --kubeconfig {kubeconfig} --wait 180s"
    )
    .run()?;
    let result = against(kubeconfig);
    cmd!(sh, "kind delete cluster --name {name}").run()?;
    result
}

enum Cluster {
    K3s,
    Kwok,
}

/// k3s and kwok through testcontainers: the container is removed when the handle drops.
fn container(sh: &Shell, kubeconfig: &Path, cluster: Cluster) -> Result<()> {
    use testcontainers_modules::testcontainers::ImageExt as _;
    use testcontainers_modules::testcontainers::runners::SyncRunner as _;
    match cluster {
        Cluster::K3s => {
            use testcontainers_modules::k3s::{K3s, KUBE_SECURE_PORT};
            let conf = kubeconfig
                .parent()
                .context("kubeconfig has a directory")?
                .join("k3s");
            std::fs::create_dir_all(&conf)?;
            let node = K3s::default()
                .with_conf_mount(&conf)
                .with_privileged(true)
                .with_userns_mode("host")
                .start()?;
            let port = node.get_host_port_ipv4(KUBE_SECURE_PORT)?;
            let text = node.image().read_kube_config()?;
            let text = text.replace(
                "https://127.0.0.1:6443",
                &format!("https://127.0.0.1:{port}"),
            );
            std::fs::write(kubeconfig, text)?;
            wait_for_api(sh, kubeconfig)?;
            against(kubeconfig)
        }
        Cluster::Kwok => {
            use testcontainers_modules::kwok::{KWOK_CLUSTER_PORT, KwokCluster};
            let node = KwokCluster::default().start()?;
            let port = node.get_host_port_ipv4(KWOK_CLUSTER_PORT)?;
            let server = format!("http://127.0.0.1:{port}");
            flytesecret::kubeconfig::write(
                kubeconfig,
                &flytesecret::kubeconfig::Target {
                    server: &server,
                    namespace: "default",
                    ..Default::default()
                },
            )?;
            wait_for_api(sh, kubeconfig)?;
            against(kubeconfig)
        }
    }
}

fn wait_for_api(sh: &Shell, kubeconfig: &Path) -> Result<()> {
    for _ in 0..120 {
        if cmd!(sh, "kubectl --kubeconfig {kubeconfig} get --raw /readyz")
            .quiet()
            .ignore_stderr()
            .ignore_stdout()
            .run()
            .is_ok()
        {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    bail!("the cluster's API server never became ready")
}
