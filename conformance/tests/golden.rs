//! The naming library against every golden record, in-process and through `flytesecret naming`.

use flytesecret::naming_adapter;
use flytesecret_conformance::vectors::{self, Located, Mismatch, check_all};
use std::collections::BTreeSet;
use std::path::Path;

pub fn shared_go_records() -> Option<Vec<Located>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/golden-go");
    if !dir.exists() {
        // CI always lays shared/ beside the checkout: there, a missing copy is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "shared/golden-go not found at {} under CI",
            dir.display()
        );
        eprintln!(
            "skipping shared/golden-go checks: {} not found",
            dir.display()
        );
        return None;
    }
    let mut all = Vec::new();
    for f in ["vectors.json", "extra_vectors.json", "spec_examples.json"] {
        all.extend(vectors::load_json_array(&dir.join(f)).unwrap());
    }
    Some(all)
}

fn assert_none(mismatches: &[Mismatch], total: usize) {
    if !mismatches.is_empty() {
        let shown: Vec<String> = mismatches
            .iter()
            .take(20)
            .map(ToString::to_string)
            .collect();
        panic!(
            "{} of {total} records failed; first ones:\n{}",
            mismatches.len(),
            shown.join("\n")
        );
    }
}

fn in_process(records: &[Located]) -> Vec<Mismatch> {
    check_all(records, |r| naming_adapter::answer(&r.request_line()))
}

#[test]
fn golden_suite_is_large_and_covers_every_op() {
    let records = vectors::load_jsonl_dir(&vectors::golden_dir()).unwrap();
    assert!(
        records.len() >= 20_000,
        "only {} golden records",
        records.len()
    );
    let ops: BTreeSet<&str> = records.iter().map(|l| l.record.op.as_str()).collect();
    let known: BTreeSet<&str> = naming_adapter::OPS.iter().copied().collect();
    assert_eq!(ops, known, "golden ops and adapter ops differ");
    let sources: BTreeSet<&str> = records
        .iter()
        .map(|l| l.record.source.as_deref().unwrap_or("(none)"))
        .collect();
    assert_eq!(
        sources,
        BTreeSet::from(["derived", "go", "go:spec-example"])
    );
    assert!(
        records.iter().any(|l| l.record.request_line().len() > 3000),
        "no long inputs"
    );
}

#[test]
fn library_matches_every_golden_record() {
    let records = vectors::load_jsonl_dir(&vectors::golden_dir()).unwrap();
    assert_none(&in_process(&records), records.len());
}

#[test]
fn library_matches_shared_go_records() {
    let Some(records) = shared_go_records() else {
        return;
    };
    assert_eq!(records.len(), 5201);
    assert_none(&in_process(&records), records.len());
}

#[test]
fn checker_catches_a_planted_defect() {
    // An implementation that drops one `_` from every encoded id must fail loudly.
    let records = vectors::load_jsonl_dir(&vectors::golden_dir()).unwrap();
    let encode: Vec<Located> = records
        .into_iter()
        .filter(|l| l.record.op == "encode")
        .collect();
    let broken = check_all(&encode, |r| {
        naming_adapter::answer(&r.request_line())
            .map(|v| serde_json::Value::String(v.as_str().unwrap().replacen("__", "_", 1)))
    });
    assert_eq!(broken.len(), encode.len());
    let shown = broken[0].to_string();
    assert!(shown.contains("op encode") && shown.contains("expected") && shown.contains("actual"));
}

#[test]
fn the_checkers_own_naming_matches_every_encode_k8s_name_and_image_pull_name_record() {
    // The object checks of the service suite use `flytesecret_conformance::naming`, not the
    // implementation's naming: hold that independent statement to the vectors too.
    use flytesecret_conformance::naming::{data_key, object_name};
    let records = vectors::load_jsonl_dir(&vectors::golden_dir()).unwrap();
    let field = |r: &vectors::Record, k: &str| r.input[k].as_str().unwrap().to_owned();
    let mut checked = 0;
    let mismatches = check_all(&records, |r| match r.op.as_str() {
        "encode" => {
            checked += 1;
            let key = data_key(
                &field(r, "org"),
                &field(r, "domain"),
                &field(r, "project"),
                &field(r, "name"),
            );
            Ok(serde_json::Value::String(key))
        }
        "image_pull_name" => {
            checked += 1;
            Ok(serde_json::Value::String(
                flytesecret_conformance::naming::image_pull_name(
                    &field(r, "org"),
                    &field(r, "domain"),
                    &field(r, "project"),
                    &field(r, "name"),
                ),
            ))
        }
        "k8s_name" => {
            checked += 1;
            Ok(serde_json::Value::String(object_name(&field(
                r,
                "secret_name",
            ))))
        }
        _ => naming_adapter::answer(&r.request_line()),
    });
    assert!(checked > 2_000, "only {checked} records exercised");
    assert_none(&mismatches, records.len());
}
