//! Pipeline tasks, written with xshell: the conformance run `.ci/run` performs, and the
//! end-to-end harnesses that run the conformance `service` suite against real Kubernetes
//! (kind; k3s and kwok in containers) where a Docker engine answers.

pub mod e2e;
pub mod serve;

use std::path::PathBuf;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("ci/ is in the workspace")
        .to_owned()
}

/// The built binaries (`cargo build --workspace` first).
pub fn bin(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    target.join("debug").join(name)
}

/// The three protocols every service run covers.
pub const PROTOCOLS: [&str; 3] = ["grpc", "connect-proto", "connect-json"];
