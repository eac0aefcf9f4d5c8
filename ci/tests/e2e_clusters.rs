//! End-to-end runs against real Kubernetes (kind; k3s and kwok in containers): the conformance
//! `service` suite with object checks over every protocol. They need a Docker engine, so they are
//! `#[ignore]`d and run by `.ci/run`'s explicit `--ignored` step only where an engine answers;
//! run explicitly without one, they fail rather than pass by skipping. The harnesses' own skip
//! path is an ordinary test.

use flytesecret_ci::e2e::{self, Ran};
use std::os::unix::fs::PermissionsExt;

fn on_a_real_cluster(which: &str) {
    match e2e::run(which).unwrap() {
        Ran::Passed => {}
        Ran::Skipped(why) => panic!("e2e {which} was asked for but cannot run: {why}"),
    }
}

#[test]
#[ignore = "needs Docker (kind)"]
fn kind_cluster() {
    on_a_real_cluster("kind");
}

#[test]
#[ignore = "needs Docker (k3s container)"]
fn k3s_container() {
    on_a_real_cluster("k3s");
}

#[test]
#[ignore = "needs Docker (kwok container)"]
fn kwok_container() {
    on_a_real_cluster("kwok");
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
