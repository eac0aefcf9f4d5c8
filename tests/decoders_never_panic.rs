//! Never-panic properties for every decoder that reads untrusted bytes: the same harnesses the
//! coverage-guided fuzz targets run (`fuzz/harness.rs`), fed random bytes and random mutations of
//! the checked-in corpora (`fuzz/corpus/<target>/`), plus every crash the fuzzers ever found
//! (`fuzz/regressions/<target>/`).

#[path = "../fuzz/harness.rs"]
mod harness;

use proptest::prelude::*;
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn files(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Vec<u8>> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    out.sort();
    out
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let seeds = files(&Path::new(ROOT).join("fuzz/corpus").join(target));
    assert!(!seeds.is_empty(), "fuzz/corpus/{target} has no seeds");
    seeds
}

/// A corpus seed with random bytes overwritten, inserted or cut.
fn mutated(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let seeds = corpus(target);
    (
        0..seeds.len(),
        prop::collection::vec((any::<u16>(), any::<u8>(), 0u8..3), 0..8),
    )
        .prop_map(move |(i, edits)| {
            let mut b = seeds[i].clone();
            for (at, byte, op) in edits {
                let at = usize::from(at) % (b.len() + 1);
                match op {
                    0 if at < b.len() => b[at] = byte,
                    1 => b.insert(at, byte),
                    _ => b.truncate(at),
                }
            }
            b
        })
}

fn run(target: &str, data: &[u8]) -> String {
    let f = harness::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap()
        .1;
    f(data)
}

/// The seeds are valid inputs: each reaches its decoder and succeeds, so mutations of them
/// explore past the first check.
#[test]
fn seeds_reach_their_decoders_and_succeed() {
    let seed = |target: &str, name: &str| {
        let path = Path::new(ROOT).join("fuzz/corpus").join(target).join(name);
        run(target, &std::fs::read(&path).unwrap())
    };
    for target in ["grpc", "grpc_web"] {
        for p in 0..6 {
            let name = if target == "grpc" {
                format!("p{p}-plain")
            } else {
                format!("p{p}-binary")
            };
            assert_eq!(seed(target, &name), "200 grpc-status=0", "{target} {name}");
        }
    }
    assert_eq!(seed("grpc", "p2-gzip"), "200 grpc-status=0");
    assert_eq!(seed("grpc_web", "p4-text"), "200 grpc-status=0");
    for p in 0..6 {
        assert_eq!(
            seed("connect", &format!("p{p}-json")),
            "200",
            "connect p{p}"
        );
        assert_eq!(
            seed("connect", &format!("p{p}-proto")),
            "200",
            "connect p{p}"
        );
    }
    assert_eq!(seed("connect", "p2-json-gzip"), "200");
    for name in ["list", "get", "create", "update"] {
        assert_eq!(seed("rest", name), "200", "rest {name}");
    }
    assert_eq!(seed("kubeapi_json", "create-secret"), "201");
    assert_eq!(seed("kubeapi_json", "create-namespace"), "201");
    assert_eq!(seed("kubeapi_protobuf", "create"), "201");
    for s in 0..5 {
        assert_eq!(seed("selectors", &format!("s{s}")), "200", "selector s{s}");
    }
    assert_eq!(seed("continue_token", "empty"), "200");
    assert_eq!(seed("wal_replay", "real-log"), "200");
    assert_eq!(seed("wal_replay", "torn-tail"), "200");
    assert_eq!(seed("wal_replay", "state-and-log"), "200");
    assert_eq!(seed("config_file", "deploy"), "ok");
    assert_eq!(seed("naming_adapter", "encode"), "3 answers");
    // And garbage is refused, not accepted: the outcome tells them apart.
    assert_eq!(run("config_file", b"secret: ["), "refused");
    assert_eq!(
        run("wal_replay", b"{\"rv\":1,\"m\":[]}\nnot json\n{}\n"),
        "refused"
    );
}

#[test]
fn every_target_has_a_fuzz_binary_and_a_corpus() {
    for (name, _) in harness::TARGETS {
        assert!(
            Path::new(ROOT)
                .join(format!("fuzz/fuzz_targets/{name}.rs"))
                .is_file(),
            "{name}"
        );
        corpus(name);
    }
}

#[test]
fn the_corpora_and_past_crashes_do_not_panic() {
    for (name, f) in harness::TARGETS {
        for input in corpus(name) {
            let _ = f(&input);
        }
        for input in files(&Path::new(ROOT).join("fuzz/regressions").join(name)) {
            let _ = f(&input);
        }
    }
}

macro_rules! never_panics {
    ($($target:ident),* $(,)?) => {$(
        proptest! {
            #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]
            #[test]
            fn $target(random in prop::collection::vec(any::<u8>(), 0..256), seeded in mutated(stringify!($target))) {
                run(stringify!($target), &random);
                run(stringify!($target), &seeded);
            }
        }
    )*};
}

never_panics!(
    grpc,
    grpc_web,
    connect,
    rest,
    kubeapi_json,
    kubeapi_protobuf,
    selectors,
    continue_token,
    wal_replay,
    config_file,
    naming_adapter,
);
