//! The real `kubectl` against the embedded engine's HTTP face (`flytesecret kube-api`).
//! Skips, with a printed reason, only when no kubectl is on PATH.

mod common;

use common::BIN;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

struct KubeApi {
    child: Child,
    dir: PathBuf,
}

impl KubeApi {
    fn start() -> KubeApi {
        let dir =
            std::env::temp_dir().join(format!("flytesecret-kubectl-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new(BIN)
            .args([
                "kube-api",
                "--ephemeral",
                "--listen",
                "127.0.0.1:0",
                "--write-kubeconfig",
            ])
            .arg(dir.join("kubeconfig"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        lines.next().expect("kube-api did not start").unwrap();
        std::thread::spawn(move || for _ in lines {});
        KubeApi { child, dir }
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(self.dir.join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.join("cache"))
            .args(args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn err(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded"
        );
        String::from_utf8(out.stderr).unwrap()
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn manifest(name: &str, labels: &str, data: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"{name}","labels":{{{labels}}}}},"data":{{{data}}}}}"#
    )
}

#[test]
fn kubectl_create_get_list_replace_delete() {
    if !common::kubectl_available() {
        return;
    }
    let api = KubeApi::start();
    for (name, app) in [("a", "x"), ("b", "y"), ("c", "x"), ("d", "y"), ("e", "x")] {
        let out = api.ok(
            &["create", "-f", "-"],
            Some(&manifest(
                name,
                &format!(r#""app":"{app}""#),
                r#""k":"dg==""#,
            )),
        );
        assert_eq!(out.trim(), format!("secret/{name} created"));
    }
    // Table output.
    let table = api.ok(&["get", "secrets"], None);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "TYPE", "DATA", "AGE"]);
    assert_eq!(table.lines().count(), 6);
    assert!(table.lines().nth(1).unwrap().starts_with("a "));
    // -o json of one Secret.
    let one: serde_json::Value =
        serde_json::from_str(&api.ok(&["get", "secret", "a", "-o", "json"], None)).unwrap();
    assert_eq!(one["data"]["k"], "dg==");
    // Label selectors and chunked listing across pages.
    let selected = api.ok(&["get", "secrets", "-l", "app=x", "-o", "name"], None);
    assert_eq!(
        selected.lines().collect::<Vec<_>>(),
        ["secret/a", "secret/c", "secret/e"]
    );
    let chunked = api.ok(&["get", "secrets", "--chunk-size=2", "-o", "name"], None);
    assert_eq!(chunked.lines().count(), 5);
    // Replace with a stale resourceVersion: the exact Conflict text.
    let mut stale = one.clone();
    stale["data"]["k"] = serde_json::json!("eA==");
    api.ok(&["replace", "-f", "-"], Some(&stale.to_string()));
    let conflict = api.err(&["replace", "-f", "-"], Some(&stale.to_string()));
    assert!(
        conflict.contains("Operation cannot be fulfilled on secrets \"a\": the object has been modified; please apply your changes to the latest version and try again"),
        "{conflict}"
    );
    assert!(
        conflict.contains("Error from server (Conflict)"),
        "{conflict}"
    );
    // Delete, then NotFound.
    assert_eq!(
        api.ok(&["delete", "secret", "a"], None).trim(),
        "secret \"a\" deleted"
    );
    let missing = api.err(&["get", "secret", "a"], None);
    assert!(
        missing.contains("Error from server (NotFound): secrets \"a\" not found"),
        "{missing}"
    );
}

#[test]
fn kubectl_create_secret_generic() {
    if !common::kubectl_available() {
        return;
    }
    let api = KubeApi::start();
    // kubectl >= 1.32 sends a protobuf body for typed creates; the engine decodes it.
    let out = api.ok(
        &[
            "create",
            "secret",
            "generic",
            "lit",
            "--from-literal=user=admin",
            "--from-literal=pw=s3cr3t",
        ],
        None,
    );
    assert_eq!(out.trim(), "secret/lit created");
    let v: serde_json::Value =
        serde_json::from_str(&api.ok(&["get", "secret", "lit", "-o", "json"], None)).unwrap();
    assert_eq!(
        v["data"],
        serde_json::json!({"pw": "czNjcjN0", "user": "YWRtaW4="})
    );
    assert_eq!(v["type"], "Opaque");
}
