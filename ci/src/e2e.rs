//! End-to-end harnesses: an ephemeral real cluster, the real binary against it, the conformance
//! `service` suite with object checks over every protocol, then the cluster is deleted.
//!
//! * `kind`: a kind cluster (the `kind` CLI).
//! * `k3s`: a k3s server container (`rancher/k3s`).
//! * `kwok`: a kwok cluster container (`registry.k8s.io/kwok/cluster`), a light real kube-apiserver.
//!
//! They need a Docker engine; without one they skip with a printed reason (exit 0).

use anyhow::{Context, Result, bail};
use std::path::Path;
use xshell::{Shell, cmd};

pub const K3S_IMAGE: &str = "rancher/k3s:v1.33.1-k3s1";
pub const KWOK_IMAGE: &str = "registry.k8s.io/kwok/cluster:v0.7.0-k8s.v1.33.0";
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

fn container(sh: &Shell, kubeconfig: &Path, cluster: Cluster) -> Result<()> {
    let name = format!("flytesecret-e2e-{}", std::process::id());
    let id = match cluster {
        Cluster::K3s => cmd!(sh, "docker run -d --privileged --name {name} -p 127.0.0.1::6443 {K3S_IMAGE} server --disable=traefik,metrics-server").read()?,
        Cluster::Kwok => cmd!(sh, "docker run -d --name {name} -p 127.0.0.1::8080 {KWOK_IMAGE}").read()?,
    };
    let result = (|| -> Result<()> {
        let inner = match cluster {
            Cluster::K3s => "6443/tcp",
            Cluster::Kwok => "8080/tcp",
        };
        let port = cmd!(sh, "docker port {id} {inner}").read()?;
        let host_port = port
            .lines()
            .next()
            .context("no published port")?
            .trim()
            .to_owned();
        let text = match cluster {
            Cluster::K3s => {
                let mut k = String::new();
                for _ in 0..120 {
                    if let Ok(t) = cmd!(sh, "docker exec {id} cat /etc/rancher/k3s/k3s.yaml")
                        .quiet()
                        .ignore_stderr()
                        .read()
                    {
                        k = t;
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
                if k.is_empty() {
                    bail!("k3s did not write its kubeconfig");
                }
                k.replace("https://127.0.0.1:6443", &format!("https://{host_port}"))
            }
            Cluster::Kwok => format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: kwok\n  cluster:\n    server: http://{host_port}\ncontexts:\n- name: kwok\n  context: {{cluster: kwok, user: kwok}}\ncurrent-context: kwok\nusers:\n- name: kwok\n  user: {{}}\n"
            ),
        };
        std::fs::write(kubeconfig, text)?;
        wait_for_api(sh, kubeconfig)?;
        against(kubeconfig)
    })();
    cmd!(sh, "docker rm -f {id}")
        .quiet()
        .ignore_stdout()
        .run()?;
    result
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
