//! The conformance checker end to end: the `service` suite against the real binary on the
//! embedded engine (over its HTTP face, so object checks go through a real kubeconfig) for every
//! protocol and both profiles, and proof that the checker fails on planted defects.

mod common;

use bytes::Bytes;
use common::{BIN, Server};
use flytesecret_conformance::report::Outcome;
use flytesecret_conformance::service::{self, Options, Profile, Protocol};
use flytesecret_conformance::{adapter, vectors};
use http_body_util::{BodyExt, Full};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

async fn options(
    server: &Server,
    protocol: Protocol,
    profile: Profile,
    with_objects: bool,
) -> Options {
    let kube = if with_objects {
        Some((
            service::kube_client(&server.kubeconfig).await.unwrap(),
            "flyte".to_owned(),
        ))
    } else {
        None
    };
    Options {
        endpoint: server.url(),
        protocol,
        profile,
        kube,
        known_failing: HashSet::new(),
        cases: service::load_cases(&service::cases_file()).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_suite_passes_on_every_protocol_with_object_checks() {
    let strict = Server::start(&["--ephemeral"]);
    let go = Server::start(&["--ephemeral", "--secret.strictNames", "false"]);
    for protocol in [
        Protocol::Grpc,
        Protocol::ConnectProto,
        Protocol::ConnectJson,
    ] {
        for (server, profile) in [(&strict, Profile::Strict), (&go, Profile::Go)] {
            let report = service::run(&options(server, protocol, profile, true).await)
                .await
                .unwrap();
            let failures: Vec<_> = report
                .cases
                .iter()
                .filter(|c| c.outcome != Outcome::Passed)
                .collect();
            assert!(
                failures.is_empty(),
                "{protocol:?} {profile:?}: {failures:#?}"
            );
            assert!(report.cases.len() >= 20);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_and_known_failing_lists_are_honoured() {
    // The strict profile against a server with Go's lax validation: the strict cases fail.
    let go = Server::start(&["--ephemeral", "--secret.strictNames", "false"]);
    let mut opts = options(&go, Protocol::ConnectJson, Profile::Strict, false).await;
    let report = service::run(&opts).await.unwrap();
    let failed: HashSet<String> = report
        .cases
        .iter()
        .filter(|c| c.outcome == Outcome::Failed)
        .map(|c| c.id.clone())
        .collect();
    let strict_only: HashSet<String> = [
        "strict-rejects-dotted-name",
        "strict-rejects-missing-id",
        "strict-rejects-aliasing-project",
    ]
    .map(String::from)
    .into();
    assert_eq!(failed, strict_only);
    assert!(!report.ok());
    // Declared as known failures they no longer fail the run; a stale entry does.
    opts.known_failing = strict_only
        .iter()
        .cloned()
        .chain(["get-not-found".to_owned()])
        .collect();
    let report = service::run(&opts).await.unwrap();
    assert_eq!(report.count(Outcome::ExpectedFailure), 3);
    let stale: Vec<_> = report
        .cases
        .iter()
        .filter(|c| c.outcome == Outcome::UnexpectedPass)
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(stale, ["get-not-found"]);
    assert_eq!(report.summary().1, 1);
}

/// A Connect JSON proxy in front of a real server that plants defects: it echoes the last created
/// value into Get responses, and turns `not_found` into `internal`.
async fn broken_proxy(upstream: std::net::SocketAddr) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let last_value: Arc<Mutex<String>> = Arc::default();
    tokio::spawn(async move {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(hyper_util::client::legacy::connect::HttpConnector::new());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (client, last_value) = (client.clone(), last_value.clone());
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (client, last_value) = (client.clone(), last_value.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            let path = parts.uri.path().to_owned();
                            if path.ends_with("/CreateSecret") {
                                let v: serde_json::Value =
                                    serde_json::from_slice(&body).unwrap_or_default();
                                if let Some(s) = v["secretSpec"]["stringValue"].as_str() {
                                    *last_value.lock().unwrap() = s.to_owned();
                                }
                            }
                            let fwd = http::Request::post(format!("http://{upstream}{path}"))
                                .header("content-type", "application/json")
                                .body(Full::new(body))
                                .unwrap();
                            let resp = client.request(fwd).await.unwrap();
                            let status = resp.status();
                            let mut out = resp
                                .into_body()
                                .collect()
                                .await
                                .unwrap()
                                .to_bytes()
                                .to_vec();
                            let text = String::from_utf8_lossy(&out).into_owned();
                            let mut code = status.as_u16();
                            if text.contains("\"not_found\"") {
                                out = text.replace("\"not_found\"", "\"internal\"").into_bytes();
                                code = 500;
                            } else if path.ends_with("/GetSecret") && status == 200 {
                                let mut v: serde_json::Value =
                                    serde_json::from_slice(&out).unwrap();
                                v["secret"]["id"]["organization"] =
                                    serde_json::json!(last_value.lock().unwrap().clone());
                                out = serde_json::to_vec(&v).unwrap();
                            }
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .status(code)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(out)))
                                    .unwrap(),
                            )
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_checker_catches_a_server_that_leaks_values_and_misreports_codes() {
    let server = Server::start(&["--ephemeral"]);
    let mut opts = options(&server, Protocol::ConnectJson, Profile::Strict, false).await;
    opts.endpoint = broken_proxy(server.addr).await;
    let report = service::run(&opts).await.unwrap();
    let by_id = |id: &str| report.cases.iter().find(|c| c.id == id).unwrap().clone();
    let leak = by_id("get-echoes-request-id");
    assert_eq!(leak.outcome, Outcome::Failed);
    assert!(
        leak.message
            .as_deref()
            .unwrap()
            .contains("contains a secret value"),
        "{leak:?}"
    );
    let code = by_id("get-not-found");
    assert_eq!(code.outcome, Outcome::Failed);
    assert!(
        code.message
            .as_deref()
            .unwrap()
            .contains("expected not_found, got internal"),
        "{code:?}"
    );
    assert!(!report.ok());
}

#[test]
fn naming_checker_catches_an_adapter_that_drops_an_underscore() {
    let records = vectors::load_jsonl_dir(&vectors::golden_dir()).unwrap();
    let broken = format!("'{BIN}' naming | sed 's/__/_/'");
    let mismatches = adapter::check_adapter(&broken, &records).unwrap();
    let ops: HashSet<&str> = mismatches.iter().map(|m| m.record.op.as_str()).collect();
    assert!(
        ops.contains("encode") && ops.contains("lookup_cascade"),
        "{ops:?}"
    );
    let correct = format!("'{BIN}' naming");
    assert!(
        adapter::check_adapter(&correct, &records)
            .unwrap()
            .is_empty()
    );
}
