//! The official Python `kubernetes` client (a second real client nobody here wrote) against the
//! embedded API over HTTP: Secrets and Namespaces, create/read/list with paging/replace/patch/
//! watch/delete. The client is installed by `ci/setup-clients` into
//! `$FLYTESECRET_CLIENTS_DIR/venv-kube` (pinned in tests/clients/requirements-kube.txt).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

#[test]
fn python_kubernetes_client_secrets_and_namespaces() {
    let clients = std::env::var_os("FLYTESECRET_CLIENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/clients"));
    let python = clients.join("venv-kube/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run ci/setup-clients",
        python.display()
    );
    let dir = std::env::temp_dir().join(format!("flytesecret-kube-py-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    let mut api = Command::new(env!("CARGO_BIN_EXE_flytesecret"))
        .args([
            "kube-api",
            "--ephemeral",
            "--listen",
            "127.0.0.1:0",
            "--write-kubeconfig",
        ])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(api.stdout.take().unwrap()).lines();
    lines.next().expect("kube-api did not start").unwrap();
    std::thread::spawn(move || for _ in lines {});
    let out = Command::new(&python)
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/kube_python.py"))
        .arg(&kubeconfig)
        .output()
        .unwrap();
    let _ = api.kill();
    let _ = api.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "OK",
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
