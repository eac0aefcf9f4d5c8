//! `cargo run -p flytesecret-ci -- TASK`:
//!   conformance        naming and service suites against the built binary (what .ci/run does)
//!   e2e kind|k3s|kwok  the service suite against an ephemeral real cluster (needs Docker)

use anyhow::{Result, bail};
use xshell::{Shell, cmd};

fn conformance() -> Result<()> {
    let sh = Shell::new()?;
    let flytesecret = flytesecret_ci::bin("flytesecret");
    let checker = flytesecret_ci::bin("flytesecret-conformance");
    let adapter = format!("{} naming", flytesecret.display());
    cmd!(sh, "{checker} naming --impl {adapter}").run()?;
    let dir = std::env::temp_dir().join(format!("flytesecret-ci-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let kubeconfig = dir.join("kubeconfig");
    let kc = kubeconfig.to_str().unwrap_or_default().to_owned();
    for (profile, strict) in [("strict", "true"), ("go", "false")] {
        let (svc, _) = flytesecret_ci::serve::start(&[
            "--ephemeral",
            "--kube-api-listen",
            "127.0.0.1:0",
            "--write-kubeconfig",
            &kc,
            "--secret.strictNames",
            strict,
        ])?;
        flytesecret_ci::serve::service_suite(&svc.endpoint, &kubeconfig, "flyte", profile)?;
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["conformance"] => conformance(),
        ["e2e", which] => flytesecret_ci::e2e::run(which).map(|_| ()),
        _ => bail!("usage: ci conformance | ci e2e kind|k3s|kwok"),
    }
}
