//! End-to-end runs against real Kubernetes (kind; k3s and kwok in containers): the conformance
//! `service` suite with object checks over every protocol. They run where a Docker engine answers
//! and skip with a printed reason otherwise; the skip path itself is tested here too.

use flytesecret_ci::e2e::{self, Ran};
use std::os::unix::fs::PermissionsExt;

fn gated(which: &str) {
    match e2e::run(which).unwrap() {
        Ran::Passed => {}
        Ran::Skipped(why) => eprintln!("skipping e2e {which}: {why}"),
    }
}

#[test]
fn kind_cluster() {
    gated("kind");
}

#[test]
fn k3s_container() {
    gated("k3s");
}

#[test]
fn kwok_container() {
    gated("kwok");
}

#[test]
fn every_harness_skips_with_a_reason_when_no_docker_engine_answers() {
    // A `docker` that answers like a client without an engine: exit 1.
    let dir = std::env::temp_dir().join(format!("flytesecret-nodocker-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let docker = dir.join("docker");
    std::fs::write(
        &docker,
        "#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sh = xshell::Shell::new().unwrap();
    sh.set_var("PATH", &dir);
    for which in ["kind", "k3s", "kwok"] {
        match e2e::run_with(&sh, which).unwrap() {
            Ran::Skipped(why) => {
                assert!(why.contains("no Docker engine answers"), "{which}: {why}")
            }
            Ran::Passed => panic!("{which} ran without an engine"),
        }
    }
    assert!(e2e::run_with(&sh, "minikube").is_err());
    let _ = std::fs::remove_dir_all(dir);
}
