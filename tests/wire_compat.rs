//! Our protos against the upstream flyteidl2 descriptors (from the PyPI `flyteidl2` package),
//! field by field: names, numbers, types, labels, JSON names, oneofs, enum values, methods.

mod common;

use std::path::PathBuf;
use std::process::Command;

#[test]
fn descriptors_match_upstream_flyteidl2() {
    let Some(dir) = common::clients_dir() else {
        return;
    };
    let python = dir.join("venv-clients/bin/python");
    let fds = std::env::temp_dir().join(format!("flytesecret-fds-{}.bin", std::process::id()));
    std::fs::write(&fds, flytesecret::proto::FILE_DESCRIPTOR_SET).unwrap();
    let out = Command::new(python)
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/compare_descriptors.py"))
        .arg(&fds)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&fds);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(": 0 differences"), "{stdout}");
}
