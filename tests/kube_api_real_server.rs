//! The issue-13 fidelity cases as data, run over HTTP against the embedded engine and, where a
//! Docker engine exists, against a real kube-apiserver (a kwok cluster container), so the pinned
//! expectations themselves are checked against Kubernetes. Deliberate differences (README) are
//! not among these cases.

mod common;

use common::http;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a step expects of the answer's Status message.
enum Text {
    Any,
    Exact(&'static str),
    Prefix(&'static str),
}

struct Step {
    what: &'static str,
    method: &'static str,
    /// `{ns}` is replaced by the test namespace.
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
    code: u16,
    text: Text,
    /// Retried until it answers as expected (for informer-fed admission on a real server).
    eventually: bool,
}

const fn step(
    what: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
    code: u16,
    text: Text,
) -> Step {
    Step {
        what,
        method,
        path,
        content_type,
        body,
        code,
        text,
        eventually: false,
    }
}

const JSON: &str = "application/json";
const MERGE: &str = "application/merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";
const APPLY: &str = "application/apply-patch+yaml";

fn steps() -> Vec<Step> {
    vec![
        step(
            "create the namespace",
            "POST",
            "/api/v1/namespaces",
            JSON,
            r#"{"metadata":{"name":"{ns}"}}"#,
            201,
            Text::Any,
        ),
        step(
            "a body without apiVersion/kind",
            "POST",
            "/api/v1/namespaces/{ns}/secrets",
            JSON,
            r#"{"metadata":{"name":"bare"},"data":{"k":"dg=="}}"#,
            201,
            Text::Any,
        ),
        step(
            "PATCH with a non-patch type",
            "PATCH",
            "/api/v1/namespaces/{ns}/secrets/bare",
            JSON,
            "{}",
            415,
            Text::Exact(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml",
            ),
        ),
        step(
            "apply without a field manager",
            "PATCH",
            "/api/v1/namespaces/{ns}/secrets/bare",
            APPLY,
            "{}",
            422,
            Text::Exact(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ),
        ),
        step(
            "force on a merge patch",
            "PATCH",
            "/api/v1/namespaces/{ns}/secrets/bare?force=true",
            MERGE,
            "{}",
            422,
            Text::Exact(
                "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch",
            ),
        ),
        step(
            "a merge patch that is no JSON",
            "PATCH",
            "/api/v1/namespaces/{ns}/secrets/bare",
            MERGE,
            "{not json",
            400,
            Text::Exact("invalid JSON patch"),
        ),
        step(
            "a failing JSON patch test",
            "PATCH",
            "/api/v1/namespaces/{ns}/secrets/bare",
            JSON_PATCH,
            r#"[{"op":"test","path":"/data/k","value":"eA=="}]"#,
            422,
            Text::Exact("the server rejected our request due to an error in our request"),
        ),
        step(
            "a passing JSON patch test",
            "PATCH",
            "/api/v1/namespaces/{ns}/secrets/bare",
            JSON_PATCH,
            r#"[{"op":"test","path":"/data/k","value":"dg=="},{"op":"add","path":"/data/j","value":"ag=="}]"#,
            200,
            Text::Any,
        ),
        step(
            "apply creates",
            "PATCH",
            "/api/v1/namespaces/{ns}/secrets/ssa?fieldManager=alice",
            APPLY,
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"ssa"},"data":{"k":"dg=="}}"#,
            201,
            Text::Any,
        ),
        step(
            "a second applier conflicts",
            "PATCH",
            "/api/v1/namespaces/{ns}/secrets/ssa?fieldManager=bob",
            APPLY,
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"ssa"},"data":{"k":"eA=="}}"#,
            409,
            Text::Exact("Apply failed with 1 conflict: conflict with \"alice\": .data.k"),
        ),
        step(
            "force takes the field",
            "PATCH",
            "/api/v1/namespaces/{ns}/secrets/ssa?fieldManager=bob&force=true",
            APPLY,
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"ssa"},"data":{"k":"eA=="}}"#,
            200,
            Text::Any,
        ),
        step(
            "a Secret held by a finalizer",
            "POST",
            "/api/v1/namespaces/{ns}/secrets",
            JSON,
            r#"{"metadata":{"name":"held","finalizers":["example.com/hold"]}}"#,
            201,
            Text::Any,
        ),
        step(
            "delete the namespace",
            "DELETE",
            "/api/v1/namespaces/{ns}",
            JSON,
            "",
            200,
            Text::Any,
        ),
        Step {
            eventually: true,
            ..step(
                "create in a terminating namespace",
                "POST",
                "/api/v1/namespaces/{ns}/secrets",
                JSON,
                r#"{"metadata":{"name":"late"}}"#,
                403,
                Text::Prefix(
                    "secrets \"late\" is forbidden: unable to create new content in namespace ",
                ),
            )
        },
        step(
            "delete a terminating namespace",
            "DELETE",
            "/api/v1/namespaces/{ns}",
            JSON,
            "",
            409,
            Text::Exact(
                "Operation cannot be fulfilled on namespaces \"{ns}\": The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.",
            ),
        ),
        step(
            "release the finalizer",
            "PATCH",
            "/api/v1/namespaces/{ns}/secrets/held",
            MERGE,
            r#"{"metadata":{"finalizers":null}}"#,
            200,
            Text::Any,
        ),
    ]
}

fn run(addr: SocketAddr) {
    let ns = format!(
        "fidelity-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    for s in steps() {
        let path = s.path.replace("{ns}", &ns);
        let body = s.body.replace("{ns}", &ns);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (code, _, raw) = http(
                addr,
                s.method,
                &path,
                &[("content-type", s.content_type)],
                body.as_bytes(),
            )
            .unwrap();
            let v: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
            let message = v["message"].as_str().unwrap_or("").to_owned();
            let text_ok = match &s.text {
                Text::Any => true,
                Text::Exact(t) => message == t.replace("{ns}", &ns),
                Text::Prefix(p) => message.starts_with(&p.replace("{ns}", &ns)),
            };
            if code == s.code && text_ok {
                break;
            }
            if !s.eventually || Instant::now() > deadline {
                panic!("{}: {} {path}: got {code} {v}", s.what, s.method);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // A watch from a resourceVersion older than the history: an ERROR event with the 410 Status
    // (apiserver/pkg/storage/cacher/watch_cache_history.go).
    let (code, _, raw) = http(
        addr,
        "GET",
        "/api/v1/namespaces/default/secrets?watch=true&resourceVersion=1&timeoutSeconds=1",
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(code, 200);
    let first: Value = serde_json::from_slice(raw.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(first["type"], "ERROR", "{first}");
    assert_eq!(
        (
            first["object"]["code"].as_u64(),
            first["object"]["reason"].as_str()
        ),
        (Some(410), Some("Expired"))
    );
    assert!(
        first["object"]["message"]
            .as_str()
            .unwrap()
            .starts_with("too old resource version: 1 ("),
        "{first}"
    );
}

#[test]
fn pinned_cases_against_the_engine() {
    let mut api = Command::new(common::BIN)
        .args(["kube-api", "--ephemeral", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(api.stdout.take().unwrap()).lines();
    let line = lines.next().expect("kube-api did not start").unwrap();
    std::thread::spawn(move || for _ in lines {});
    let addr: SocketAddr = line
        .rsplit("http://")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let outcome = std::panic::catch_unwind(|| run(addr));
    let _ = api.kill();
    let _ = api.wait();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e);
    }
}

#[test]
#[ignore = "needs Docker"]
fn pinned_cases_against_a_real_api_server() {
    use testcontainers_modules::kwok::{KWOK_CLUSTER_PORT, KwokCluster};
    use testcontainers_modules::testcontainers::runners::SyncRunner as _;
    let node = KwokCluster::default().start().unwrap();
    let port = node.get_host_port_ipv4(KWOK_CLUSTER_PORT).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while http(addr, "GET", "/readyz", &[], b"")
        .map(|r| r.0)
        .unwrap_or(0)
        != 200
    {
        assert!(
            Instant::now() < deadline,
            "kwok's API server did not get ready"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    run(addr);
}
