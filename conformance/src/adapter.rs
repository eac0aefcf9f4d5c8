//! Drives a naming adapter (any command speaking `PROTOCOL.md`) over a pipe.

use crate::vectors::{Answer, Located, Mismatch, check_all};
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::{Command, Stdio};

/// Sends every record's request to `command` (run with `sh -c`), reads one answer per request,
/// and returns the mismatches. Fails if the adapter dies, answers with a line that is not a
/// response, or answers a different number of times.
pub fn check_adapter(command: &str, records: &[Located]) -> Result<Vec<Mismatch>> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting adapter {command:?}"))?;
    let stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let requests: Vec<String> = records.iter().map(|l| l.record.request_line()).collect();
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut w = BufWriter::new(stdin);
        for line in requests {
            w.write_all(line.as_bytes())?;
            w.write_all(b"\n")?;
        }
        w.flush()
    });
    let mut answers = Vec::with_capacity(records.len());
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading adapter output")?;
        answers.push(parse_response(&line).with_context(|| {
            format!(
                "adapter response #{} is not a response: {line}",
                answers.len() + 1
            )
        })?);
    }
    let status = child.wait()?;
    if let Ok(Err(e)) = writer.join() {
        bail!("writing to adapter: {e} (adapter exited with {status})");
    }
    if answers.len() != records.len() {
        bail!(
            "adapter answered {} of {} requests (exited with {status})",
            answers.len(),
            records.len()
        );
    }
    let mut answers = answers.into_iter();
    Ok(check_all(records, |_| answers.next().expect("counted")))
}

/// Parses `{"output": ...}` or `{"error": "..."}`.
pub fn parse_response(line: &str) -> Result<Answer> {
    let value: Value = serde_json::from_str(line)?;
    let Value::Object(mut map) = value else {
        bail!("not a JSON object")
    };
    match (map.remove("output"), map.remove("error")) {
        (Some(output), None) => Ok(Ok(output)),
        (None, Some(Value::String(e))) => Ok(Err(e)),
        _ => bail!("expected exactly one of \"output\" or a string \"error\""),
    }
}
