//! `flytesecret naming` (the real binary, across a pipe) against every golden record and every
//! Go-computed record in `shared/golden-go/`.

use flytesecret_conformance::adapter::check_adapter;
use flytesecret_conformance::vectors;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_flytesecret");

#[test]
fn reproduces_every_golden_and_go_record() {
    let mut records = vectors::load_jsonl_dir(&vectors::golden_dir()).unwrap();
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/golden-go");
    if shared.exists() {
        for f in ["vectors.json", "extra_vectors.json", "spec_examples.json"] {
            records.extend(vectors::load_json_array(&shared.join(f)).unwrap());
        }
    } else {
        eprintln!(
            "shared/golden-go not found at {}; checking golden/ only",
            shared.display()
        );
    }
    let mismatches = check_adapter(&format!("'{BIN}' naming"), &records).unwrap();
    let shown: Vec<String> = mismatches
        .iter()
        .take(20)
        .map(ToString::to_string)
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        shown.join("\n")
    );
}

#[test]
fn answers_each_line_before_reading_the_next() {
    // Streaming: a peer that waits for each answer before sending the next request must not hang.
    let mut child = Command::new(BIN)
        .arg("naming")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    for name in ["a", "b"] {
        writeln!(
            stdin,
            r#"{{"op":"k8s_name","input":{{"secret_name":"{name}"}}}}"#
        )
        .unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        let expected = flytesecret::naming::object_name(name);
        assert_eq!(line.trim(), format!(r#"{{"output":"{expected}"}}"#));
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn resolve_prints_the_cascade() {
    let out = Command::new(BIN)
        .args([
            "resolve",
            "--key",
            "my-secret",
            "-p",
            "flytesnacks",
            "-d",
            "development",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["lookups"][0]["object_name"],
        "209ab6535a0e009361229977898c057f"
    );
    assert_eq!(
        v["lookups"][2]["object_name"],
        "fb7ecc638177256036613dca61ecf9a7"
    );
    assert_eq!(v["env_var"], "_UNION_MY-SECRET");
    // The image-pull Secret a pod would get at each scope (flyte CLI image-pull secrets are org-scoped).
    assert_eq!(
        v["lookups"][2]["image_pull_name"],
        flytesecret::naming::image_pull_name("flyte", "", "", "my-secret").as_str()
    );
    let text = Command::new(BIN)
        .args(["resolve", "--key", "ghcr_creds", "-p", "p", "-d", "d"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    let org_scope = flytesecret::naming::image_pull_name("flyte", "", "", "ghcr_creds");
    assert!(
        text.contains(&format!("image pull {org_scope}")) && text.contains("imagePullSecrets"),
        "{text}"
    );

    let refused = Command::new(BIN)
        .args(["resolve", "--key", "k", "-p", "", "-d", "development"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("empty project field"));
}
