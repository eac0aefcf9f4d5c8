//! Golden records: loading, and comparing an implementation's answer with a record.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::{Value, json};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// How strictly an expected error text is compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorMatch {
    /// The texts must be equal.
    #[default]
    Exact,
    /// The answer must start with the expected text.
    Prefix,
    /// Any error will do (the text is not part of the contract).
    Any,
}

/// One golden record: `{"op", "input", "output"|"error", "source"?, "error_match"?}`.
#[derive(Clone, Debug, Deserialize)]
pub struct Record {
    pub op: String,
    pub input: Value,
    #[serde(default, deserialize_with = "present")]
    pub output: Option<Value>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub error_match: ErrorMatch,
}

/// Keeps `"output": null` distinct from a missing `output`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// An implementation's answer to one request.
pub type Answer = std::result::Result<Value, String>;

impl Record {
    /// The request line sent to an adapter.
    pub fn request_line(&self) -> String {
        json!({"op": self.op, "input": self.input}).to_string()
    }

    /// True when `answer` satisfies this record.
    pub fn accepts(&self, answer: &Answer) -> bool {
        match (&self.output, &self.error, answer) {
            (Some(want), None, Ok(got)) => want == got,
            (None, Some(want), Err(got)) => match self.error_match {
                ErrorMatch::Exact => want == got,
                ErrorMatch::Prefix => got.starts_with(want.as_str()),
                ErrorMatch::Any => true,
            },
            _ => false,
        }
    }

    fn expected(&self) -> Value {
        match (&self.output, &self.error) {
            (Some(v), _) => json!({ "output": v }),
            (None, Some(e)) => json!({ "error": e }),
            (None, None) => Value::Null,
        }
    }
}

/// A record an implementation got wrong. Its `Display` shows the op, input and both answers.
#[derive(Clone, Debug)]
pub struct Mismatch {
    pub origin: String,
    pub record: Record,
    pub actual: Answer,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let actual = match &self.actual {
            Ok(v) => json!({ "output": v }),
            Err(e) => json!({ "error": e }),
        };
        write!(
            f,
            "{}: op {}\n  input:    {}\n  expected: {}\n  actual:   {}",
            self.origin,
            self.record.op,
            self.record.input,
            self.record.expected(),
            actual
        )
    }
}

/// A record and where it came from (`file:line`).
#[derive(Clone, Debug)]
pub struct Located {
    pub origin: String,
    pub record: Record,
}

/// Loads every `*.jsonl` file of a directory, in file-name order.
pub fn load_jsonl_dir(dir: &Path) -> Result<Vec<Located>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "jsonl"));
    files.sort();
    if files.is_empty() {
        bail!("no .jsonl files in {}", dir.display());
    }
    let mut out = Vec::new();
    for file in files {
        let text =
            fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let origin = format!("{}:{}", file.display(), n + 1);
            let record: Record =
                serde_json::from_str(line).with_context(|| format!("{origin}: bad record"))?;
            out.push(Located { origin, record });
        }
    }
    Ok(out)
}

/// Loads a file holding a JSON array of records (the format of `shared/golden-go/`).
pub fn load_json_array(file: &Path) -> Result<Vec<Located>> {
    let text = fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let records: Vec<Record> =
        serde_json::from_str(&text).with_context(|| format!("{}: bad records", file.display()))?;
    Ok(records
        .into_iter()
        .enumerate()
        .map(|(i, record)| Located {
            origin: format!("{}[{i}]", file.display()),
            record,
        })
        .collect())
}

/// Checks every record with `answer`, returning the mismatches.
pub fn check_all(records: &[Located], mut answer: impl FnMut(&Record) -> Answer) -> Vec<Mismatch> {
    records
        .iter()
        .filter_map(|l| {
            let actual = answer(&l.record);
            (!l.record.accepts(&actual)).then(|| Mismatch {
                origin: l.origin.clone(),
                record: l.record.clone(),
                actual,
            })
        })
        .collect()
}

/// The repository's `golden/` directory.
pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(line: &str) -> Record {
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn null_output_is_an_expected_output() {
        let r = record(r#"{"op":"scope_error","input":{},"output":null}"#);
        assert!(r.accepts(&Ok(Value::Null)));
        assert!(!r.accepts(&Err("x".into())));
    }

    #[test]
    fn error_match_modes() {
        let exact = record(r#"{"op":"o","input":{},"error":"abc"}"#);
        assert!(exact.accepts(&Err("abc".into())));
        assert!(!exact.accepts(&Err("abcd".into())));
        assert!(!exact.accepts(&Ok(json!("abc"))));
        let prefix = record(r#"{"op":"o","input":{},"error":"abc","error_match":"prefix"}"#);
        assert!(prefix.accepts(&Err("abcd".into())));
        assert!(!prefix.accepts(&Err("xabc".into())));
        let any = record(r#"{"op":"o","input":{},"error":"abc","error_match":"any"}"#);
        assert!(any.accepts(&Err("other".into())));
        assert!(!any.accepts(&Ok(Value::Null)));
    }
}
