//! `flytesecret naming`: the JSON Lines adapter through which a conformance run drives this
//! implementation's naming rules across a process boundary. The protocol is specified in
//! `conformance/PROTOCOL.md`; requests have the shape of the golden records.

use crate::consumption::{self, PodLabels};
use crate::invalidation::{WebhookEndpoint, invalidation_body};
use crate::naming::{self, SecretId};
use serde::Deserialize;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::IpAddr;

/// Every op the adapter answers, in the order PROTOCOL.md lists them.
pub const OPS: &[&str] = &[
    "encode",
    "prefix",
    "decode",
    "k8s_name",
    "image_pull_name",
    "scope_error",
    "invalidate_body",
    "invalidation_targets",
    "lookup_cascade",
    "env_var_name",
    "file_mount",
    "sanitize_label_value",
];

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow)]
    op: Cow<'a, str>,
    #[serde(borrow, default)]
    input: Input<'a>,
}

/// The union of every op's input fields; each op reads the ones it needs.
#[derive(Deserialize, Default)]
struct Input<'a> {
    #[serde(borrow)]
    org: Option<Cow<'a, str>>,
    #[serde(borrow)]
    domain: Option<Cow<'a, str>>,
    #[serde(borrow)]
    project: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    encoded: Option<Cow<'a, str>>,
    #[serde(borrow)]
    secret_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    webhook_url: Option<Cow<'a, str>>,
    #[serde(borrow)]
    key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    env_var: Option<Cow<'a, str>>,
    #[serde(borrow)]
    prefix: Option<Cow<'a, str>>,
    #[serde(borrow)]
    value: Option<Cow<'a, str>>,
}

fn field<'s>(value: &'s Option<Cow<'_, str>>, name: &str) -> Result<&'s str, String> {
    value
        .as_deref()
        .ok_or_else(|| format!("missing input field {name:?}"))
}

/// The stand-in resolver the golden `invalidation_targets` vectors were computed with
/// (spec Appendix A). Real resolution is the service's business, not the naming contract's.
pub fn stand_in_resolver(host: &str) -> Result<Vec<IpAddr>, String> {
    let addrs: &[&str] = match host {
        "webhook.flyte.svc" => &["10.1.0.11", "10.1.0.12", "10.1.0.13"],
        "dual.example" => &["10.2.0.1", "fd00::20"],
        "localhost" => &["127.0.0.1", "::1"],
        "empty.example" => &[],
        _ => return Err(format!("lookup {host}: no such host")),
    };
    Ok(addrs
        .iter()
        .map(|a| a.parse().expect("valid literal"))
        .collect())
}

/// Answers one request: `Ok(output)` or `Err(error text)`.
pub fn answer(line: &str) -> Result<Value, String> {
    let req: Request<'_> =
        serde_json::from_str(line).map_err(|e| format!("malformed request: {e}"))?;
    let i = &req.input;
    match req.op.as_ref() {
        "encode" => {
            let id = SecretId::new(
                field(&i.org, "org")?,
                field(&i.domain, "domain")?,
                field(&i.project, "project")?,
                field(&i.name, "name")?,
            );
            Ok(Value::String(id.encode().into_string()))
        }
        "prefix" => Ok(Value::String(naming::encode_prefix(
            field(&i.org, "org")?,
            field(&i.domain, "domain")?,
            field(&i.project, "project")?,
        ))),
        "decode" => {
            let id = naming::decode(field(&i.encoded, "encoded")?).map_err(|e| e.to_string())?;
            Ok(json!({"org": id.org, "domain": id.domain, "project": id.project, "name": id.name}))
        }
        "k8s_name" => Ok(Value::String(
            naming::object_name(field(&i.secret_name, "secret_name")?).to_string(),
        )),
        "image_pull_name" => Ok(Value::String(
            naming::image_pull_name(
                field(&i.org, "org")?,
                field(&i.domain, "domain")?,
                field(&i.project, "project")?,
                field(&i.name, "name")?,
            )
            .to_string(),
        )),
        "scope_error" => {
            naming::check_scope(field(&i.domain, "domain")?, field(&i.project, "project")?)
                .map_err(|e| e.to_string())?;
            Ok(Value::Null)
        }
        "invalidate_body" => Ok(Value::String(invalidation_body(
            field(&i.domain, "domain")?,
            field(&i.project, "project")?,
            field(&i.name, "name")?,
        ))),
        "invalidation_targets" => WebhookEndpoint::resolve_targets(
            field(&i.webhook_url, "webhook_url")?,
            stand_in_resolver,
        )
        .map(|urls| json!(urls))
        .map_err(|e| e.to_string()),
        "lookup_cascade" => {
            let labels = PodLabels {
                organization: field(&i.org, "org")?,
                project: field(&i.project, "project")?,
                domain: field(&i.domain, "domain")?,
            };
            let steps = consumption::lookup_cascade(labels, field(&i.key, "key")?)
                .map_err(|e| e.to_string())?;
            Ok(Value::Array(
                steps
                    .iter()
                    .map(|s| {
                        json!({
                            "scope": s.scope,
                            "data_key": s.data_key.as_str(),
                            "object_name": s.object_name.as_str(),
                            "image_pull_name": s.image_pull_name.as_str(),
                        })
                    })
                    .collect(),
            ))
        }
        "env_var_name" => Ok(Value::String(consumption::env_var_name(
            field(&i.key, "key")?,
            i.env_var.as_deref().unwrap_or(""),
            i.prefix
                .as_deref()
                .unwrap_or(consumption::DEFAULT_ENV_PREFIX),
        ))),
        "file_mount" => Ok(json!(consumption::file_mount(field(&i.key, "key")?))),
        "sanitize_label_value" => Ok(Value::String(naming::sanitize_label_value(field(
            &i.value, "value",
        )?))),
        other => Err(format!(
            "unknown op {other:?}; known ops: {}",
            OPS.join(", ")
        )),
    }
}

/// Serves the protocol: one response line per non-blank request line, in order. Output is flushed
/// whenever no further input is already buffered, so an interactive peer never waits on us while
/// a bulk run costs one write per buffer, not per line.
pub fn serve(input: impl Read, output: impl Write) -> io::Result<()> {
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let mut out = io::BufWriter::with_capacity(64 * 1024, output);
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        if line.trim().is_empty() {
            continue;
        }
        let response = match answer(&line) {
            Ok(output) => json!({ "output": output }),
            Err(error) => json!({ "error": error }),
        };
        serde_json::to_writer(&mut out, &response)?;
        out.write_all(b"\n")?;
        if input.buffer().is_empty() {
            out.flush()?;
        }
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &str) -> String {
        let mut out = Vec::new();
        serve(input.as_bytes(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn answers_in_order_and_never_crashes_on_bad_lines() {
        let got = run(concat!(
            r#"{"op":"k8s_name","input":{"secret_name":"hello"}}"#,
            "\nnot json\n\n",
            r#"{"op":"nope","input":{}}"#,
            "\n",
            r#"{"op":"encode","input":{"org":"o"}}"#,
            "\n",
            r#"{"op":"scope_error","input":{"domain":"d","project":"p"},"output":null}"#,
        ));
        let lines: Vec<Value> = got
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(
            lines[0],
            json!({"output": "5d41402abc4b2a76b9719d911017c592"})
        );
        assert!(
            lines[1]["error"]
                .as_str()
                .unwrap()
                .starts_with("malformed request")
        );
        assert!(
            lines[2]["error"]
                .as_str()
                .unwrap()
                .starts_with("unknown op \"nope\"")
        );
        assert_eq!(lines[3], json!({"error": "missing input field \"domain\""}));
        assert_eq!(lines[4], json!({"output": null}));
    }
}
