//! `flytesecret-conformance`: checks an implementation of Flyte's Secret Service against the
//! golden vectors (`naming`).

use anyhow::Result;
use flytesecret_conformance::{adapter, vectors};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: flytesecret-conformance naming --impl \"CMD ARGS\" [--golden DIR]";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flytesecret-conformance: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<String>) -> Result<ExitCode> {
    let mut args = args.into_iter();
    let Some(suite) = args.next() else {
        anyhow::bail!("{USAGE}")
    };
    if suite != "naming" {
        anyhow::bail!("unknown suite {suite:?}\n{USAGE}");
    }
    let mut implementation = None;
    let mut golden = vectors::golden_dir();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--impl" => implementation = Some(value()?),
            "--golden" => golden = PathBuf::from(value()?),
            other => anyhow::bail!("unknown flag {other:?}\n{USAGE}"),
        }
    }
    let Some(implementation) = implementation else {
        anyhow::bail!("{USAGE}")
    };
    let records = vectors::load_jsonl_dir(&golden)?;
    let mismatches = adapter::check_adapter(&implementation, &records)?;
    for m in mismatches.iter().take(50) {
        println!("FAIL {m}");
    }
    if mismatches.len() > 50 {
        println!("... and {} more", mismatches.len() - 50);
    }
    println!(
        "naming: {} passed, {} failed",
        records.len() - mismatches.len(),
        mismatches.len()
    );
    Ok(if mismatches.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
