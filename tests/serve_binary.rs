//! The real `flytesecret serve` binary on the embedded engine: gRPC (tonic client), Connect
//! (JSON and proto over HTTP/1.1), health, graceful shutdown, and kubectl against its Kubernetes face.

mod common;

use common::{Server, header, http, id};
use flytesecret::proto::flyteidl2::secret::secret_service_client::SecretServiceClient;
use flytesecret::proto::flyteidl2::secret::*;
use prost::Message as _;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_client_runs_a_full_cycle() {
    let server = Server::start(&["--ephemeral"]);
    let mut c = SecretServiceClient::connect(server.url()).await.unwrap();
    let spec = Some(SecretSpec {
        value: Some(secret_spec::Value::StringValue("s3cr3t".into())),
        r#type: 0,
    });
    c.create_secret(CreateSecretRequest {
        id: id("api-key", "development", "flytesnacks"),
        secret_spec: spec.clone(),
    })
    .await
    .unwrap();
    let dup = c
        .create_secret(CreateSecretRequest {
            id: id("api-key", "development", "flytesnacks"),
            secret_spec: spec.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(dup.code(), tonic::Code::AlreadyExists);
    let got = c
        .get_secret(GetSecretRequest {
            id: id("api-key", "development", "flytesnacks"),
            include_system_secrets: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        got.secret.unwrap().id,
        id("api-key", "development", "flytesnacks")
    );
    let bad = c
        .create_secret(CreateSecretRequest {
            id: id("a.b", "", ""),
            secret_spec: spec.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().starts_with("id.name:"));
    let upd = Some(SecretSpec {
        value: Some(secret_spec::Value::BinaryValue(vec![1, 2])),
        r#type: 0,
    });
    c.update_secret(UpdateSecretRequest {
        id: id("api-key", "development", "flytesnacks"),
        secret_spec: upd,
    })
    .await
    .unwrap();
    let listed = c
        .list_secrets(ListSecretsRequest {
            domain: "development".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.secrets.len(), 1);
    assert!(!format!("{listed:?}").contains("s3cr3t"));
    c.delete_secret(DeleteSecretRequest {
        id: id("api-key", "development", "flytesnacks"),
        include_system_secrets: false,
    })
    .await
    .unwrap();
    let gone = c
        .get_secret(GetSecretRequest {
            id: id("api-key", "development", "flytesnacks"),
            include_system_secrets: false,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (gone.code(), gone.message()),
        (tonic::Code::NotFound, "secret api-key not found")
    );
}

const P: &str = "/flyteidl2.secret.SecretService";

fn connect_json(server: &Server, method: &str, body: Value) -> (u16, Value) {
    let (code, headers, raw) = http(
        server.addr,
        "POST",
        &format!("{P}/{method}"),
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/json"),
        "{method}"
    );
    (code, serde_json::from_slice(&raw).unwrap())
}

#[test]
fn connect_json_and_proto_speak_canonical_forms() {
    let server = Server::start(&["--ephemeral"]);
    let sid = json!({"name": "my-secret", "domain": "development", "project": "flytesnacks"});
    let (code, body) = connect_json(
        &server,
        "CreateSecret",
        json!({"id": sid, "secretSpec": {"stringValue": "v"}, "unknownField": 1}),
    );
    assert_eq!((code, body), (200, json!({})));
    let (code, body) = connect_json(&server, "GetSecret", json!({"id": sid}));
    assert_eq!(code, 200);
    let created = body["secret"]["secretMetadata"]["createdTime"]
        .as_str()
        .unwrap();
    assert!(created.len() == 20 && created.ends_with('Z'), "{created}");
    assert_eq!(
        body["secret"]["secretMetadata"]["secretStatus"],
        json!({"overallStatus": "FULLY_PRESENT", "clusterStatus": [{"cluster": {"name": "flyte-devbox"}, "presenceStatus": "PRESENT"}]})
    );
    let (code, body) = connect_json(&server, "GetSecret", json!({"id": {"name": "nope"}}));
    assert_eq!(
        (code, body),
        (
            404,
            json!({"code": "not_found", "message": "secret nope not found"})
        )
    );
    let (code, body) = connect_json(&server, "ListSecrets", json!({"project": "p"}));
    assert_eq!(code, 400);
    assert_eq!(body["code"], "invalid_argument");
    // Binary proto.
    let req = GetSecretRequest {
        id: id("my-secret", "development", "flytesnacks"),
        include_system_secrets: false,
    };
    let (code, headers, raw) = http(
        server.addr,
        "POST",
        &format!("{P}/GetSecret"),
        &[("content-type", "application/proto")],
        &req.encode_to_vec(),
    )
    .unwrap();
    assert_eq!(
        (code, header(&headers, "content-type")),
        (200, Some("application/proto"))
    );
    assert_eq!(
        GetSecretResponse::decode(&raw[..])
            .unwrap()
            .secret
            .unwrap()
            .id,
        req.id
    );
    // Protocol errors.
    let (code, headers, _) = http(server.addr, "GET", &format!("{P}/GetSecret"), &[], b"").unwrap();
    assert_eq!((code, header(&headers, "allow")), (405, Some("POST")));
    let (code, _, _) = http(
        server.addr,
        "POST",
        &format!("{P}/GetSecret"),
        &[("content-type", "text/plain")],
        b"x",
    )
    .unwrap();
    assert_eq!(code, 415);
    let (code, _, raw) = http(
        server.addr,
        "POST",
        &format!("{P}/Nope"),
        &[("content-type", "application/json")],
        b"{}",
    )
    .unwrap();
    assert_eq!(
        (code, String::from_utf8_lossy(&raw).trim()),
        (404, "404 page not found")
    );
    let (code, _, raw) = http(
        server.addr,
        "POST",
        &format!("{P}/GetSecret"),
        &[("content-type", "application/json")],
        b"",
    )
    .unwrap();
    assert_eq!(code, 400);
    assert!(String::from_utf8_lossy(&raw).contains("invalid_argument"));
    // gzip request bodies.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, json!({"id": sid}).to_string().as_bytes()).unwrap();
    let (code, _, _) = http(
        server.addr,
        "POST",
        &format!("{P}/GetSecret"),
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        &gz.finish().unwrap(),
    )
    .unwrap();
    assert_eq!(code, 200);
    // Oversized requests.
    let big =
        json!({"id": {"name": "big"}, "secretSpec": {"stringValue": "x".repeat(1600 * 1024)}})
            .to_string();
    let (code, _, raw) = http(
        server.addr,
        "POST",
        &format!("{P}/CreateSecret"),
        &[("content-type", "application/json")],
        big.as_bytes(),
    )
    .unwrap();
    assert_eq!(code, 429, "{}", String::from_utf8_lossy(&raw));
    assert!(String::from_utf8_lossy(&raw).contains("resource_exhausted"));
}

#[test]
fn health_and_graceful_shutdown() {
    let server = Server::start(&["--ephemeral"]);
    assert_eq!(
        http(server.addr, "GET", "/healthz", &[], b"").unwrap().0,
        200
    );
    assert_eq!(
        http(server.addr, "GET", "/readyz", &[], b"").unwrap().0,
        200
    );
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn data_survives_a_restart_of_the_durable_embedded_store() {
    let dir = std::env::temp_dir().join(format!("flytesecret-durable-{}", uuid::Uuid::new_v4()));
    let data = dir.to_str().unwrap().to_owned();
    {
        let server = Server::start(&["--data-dir", &data]);
        let (code, _) = connect_json(
            &server,
            "CreateSecret",
            json!({"id": {"name": "kept"}, "secretSpec": {"stringValue": "v"}}),
        );
        assert_eq!(code, 200);
    }
    let server = Server::start(&["--data-dir", &data]);
    let (code, body) = connect_json(&server, "ListSecrets", json!({}));
    assert_eq!(code, 200);
    assert_eq!(body["secrets"][0]["id"]["name"], "kept");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn kubectl_sees_what_the_service_wrote() {
    if !common::kubectl_available() {
        return;
    }
    let server = Server::start(&["--ephemeral"]);
    let (code, _) = connect_json(
        &server,
        "CreateSecret",
        json!({"id": {"name": "my-secret", "domain": "development", "project": "flytesnacks"}, "secretSpec": {"stringValue": "v"}}),
    );
    assert_eq!(code, 200);
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&server.kubeconfig)
        .args(["--cache-dir"])
        .arg(server.dir.join("kcache"))
        .args([
            "-n",
            "flyte",
            "get",
            "secret",
            "209ab6535a0e009361229977898c057f",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["data"],
        json!({"u__org__flyte__domain__development__project__flytesnacks__key__my-secret": "dg=="})
    );
    assert_eq!(
        v["metadata"]["labels"]["app.flyte.org/project"],
        "flytesnacks"
    );
}

#[test]
fn secret_values_never_reach_the_logs_and_metrics_count_rpcs() {
    let log = std::env::temp_dir().join(format!("flytesecret-log-{}.txt", uuid::Uuid::new_v4()));
    let server = Server::start_logging(&["--ephemeral", "--log-format", "json"], Some(&log));
    let value = "hunter2-7f3a9c";
    let sid = json!({"name": "logged", "domain": "d"});
    connect_json(
        &server,
        "CreateSecret",
        json!({"id": sid, "secretSpec": {"stringValue": value}}),
    );
    connect_json(
        &server,
        "UpdateSecret",
        json!({"id": sid, "secretSpec": {"stringValue": value}}),
    );
    connect_json(&server, "GetSecret", json!({"id": sid}));
    connect_json(&server, "ListSecrets", json!({}));
    connect_json(
        &server,
        "CreateSecret",
        json!({"id": {"name": "bad name"}, "secretSpec": {"stringValue": value}}),
    );
    let (code, _, metrics) = http(server.addr, "GET", "/metrics", &[], b"").unwrap();
    assert_eq!(code, 200);
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("flytesecret_rpc_requests_total{method=\"CreateSecret\",code=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "flytesecret_rpc_requests_total{method=\"CreateSecret\",code=\"invalid_argument\"} 1"
        ),
        "{metrics}"
    );
    drop(server);
    let logs = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    assert!(
        logs.lines().count() > 10,
        "trace logging produced too little to mean anything"
    );
    assert!(
        logs.lines().any(|l| l.contains("created secret")),
        "no structured log line for the create"
    );
    assert!(!logs.contains(value), "a secret value reached the logs");
    use base64::Engine as _;
    assert!(
        !logs.contains(&base64::engine::general_purpose::STANDARD.encode(value)),
        "a base64 secret value reached the logs"
    );
}

fn inject_get_delay(server: &Server, millis: u64) {
    let body = json!({"verb": "get", "count": 1, "fault": {"kind": "delay", "millis": millis}})
        .to_string();
    let (code, _, _) = http(
        server.kube_api.unwrap(),
        "POST",
        "/_flytesecret/faults",
        &[],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(code, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_and_size_limits_hold_on_every_protocol() {
    let server = Server::start(&["--ephemeral", "--test-fault-injection"]);
    // gRPC: the client's grpc-timeout bounds a slow Kubernetes call. Sent by hand over h2c, since
    // tonic's client would also cancel on its own side at the same moment.
    inject_get_delay(&server, 3000);
    let msg = GetSecretRequest {
        id: id("slow", "d", ""),
        include_system_secrets: false,
    }
    .encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend((msg.len() as u32).to_be_bytes());
    frame.extend(msg);
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = http::Request::post(format!("{}{P}/GetSecret", server.url()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "200m")
        .body(http_body_util::Full::new(bytes::Bytes::from(frame)))
        .unwrap();
    let resp = h2.request(req).await.unwrap();
    assert_eq!(
        resp.headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap()),
        Some("4"),
        "{resp:?}"
    );
    // Connect: connect-timeout-ms does the same.
    inject_get_delay(&server, 3000);
    let (code, _, raw) = http(
        server.addr,
        "POST",
        &format!("{P}/GetSecret"),
        &[
            ("content-type", "application/json"),
            ("connect-timeout-ms", "200"),
        ],
        br#"{"id":{"name":"slow"}}"#,
    )
    .unwrap();
    assert_eq!(code, 504);
    assert!(String::from_utf8_lossy(&raw).contains("deadline_exceeded"));
    // gRPC: an oversized message is resource_exhausted, as with connect-go.
    let mut c = SecretServiceClient::connect(server.url()).await.unwrap();
    let big = Some(SecretSpec {
        value: Some(secret_spec::Value::StringValue("x".repeat(1600 * 1024))),
        r#type: 0,
    });
    let e = c
        .create_secret(CreateSecretRequest {
            id: id("big", "d", ""),
            secret_spec: big,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
}

#[test]
fn the_server_bounds_requests_that_set_no_deadline() {
    let server = Server::start(&[
        "--ephemeral",
        "--test-fault-injection",
        "--secret.server.requestTimeout",
        "300ms",
    ]);
    inject_get_delay(&server, 3000);
    let (code, body) = connect_json(&server, "GetSecret", json!({"id": {"name": "slow"}}));
    assert_eq!(
        (code, body["code"].as_str()),
        (504, Some("deadline_exceeded"))
    );
}

/// gRPC responses are gzip-compressed for clients that accept it only from
/// `COMPRESS_MIN_BYTES` up: setting up a deflate stream for a small message cost many times the
/// RPC (over 700k server instructions per grpcio GetSecret, against ~90k uncompressed), for no
/// saving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_compresses_only_responses_worth_it() {
    use flytesecret::server::grpc::COMPRESS_MIN_BYTES;
    use tonic::codec::CompressionEncoding::Gzip;
    let server = Server::start(&["--ephemeral"]);
    let mut c = SecretServiceClient::connect(server.url())
        .await
        .unwrap()
        .accept_compressed(Gzip);
    let writer = c.clone();
    let create = |n: usize| {
        let mut c = writer.clone();
        async move {
            c.create_secret(CreateSecretRequest {
                id: id(
                    &format!("secret-with-a-longish-name-{n:03}"),
                    "development",
                    "",
                ),
                secret_spec: Some(SecretSpec {
                    value: Some(secret_spec::Value::StringValue("v".into())),
                    r#type: 0,
                }),
            })
            .await
            .unwrap();
        }
    };
    create(0).await;
    // The grpc-encoding header names what messages may use; each message's first byte says
    // whether it is compressed. Read by hand over h2c, as a gzip-accepting client.
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let list_frame = || async {
        let frame = vec![0u8; 5]; // uncompressed, length 0: an empty ListSecretsRequest
        let req = http::Request::post(format!(
            "{}/flyteidl2.secret.SecretService/ListSecrets",
            server.url()
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-accept-encoding", "gzip")
        .body(http_body_util::Full::new(bytes::Bytes::from(frame)))
        .unwrap();
        let resp = h2.request(req).await.unwrap();
        use http_body_util::BodyExt as _;
        resp.into_body().collect().await.unwrap().to_bytes()
    };
    // One secret's listing is far below the threshold; 60 of them are well above it.
    for (count, compressed) in [(1, false), (60, true)] {
        for n in 1..count {
            create(n).await;
        }
        let frame = list_frame().await;
        assert_eq!(frame[0], u8::from(compressed), "{count} secrets");
        let listed = c
            .list_secrets(ListSecretsRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            listed.encoded_len() >= COMPRESS_MIN_BYTES,
            compressed,
            "{count} secrets: {} bytes",
            listed.encoded_len()
        );
        // The listing arrives whole either way (tonic undoes the gzip).
        assert_eq!(listed.secrets.len(), count);
    }
}

/// The binary's built-in jemalloc options are in force, and the environment still overrides
/// them (jemalloc prints its options at exit when asked to).
#[test]
fn the_allocator_options_are_built_in_and_overridable() {
    let option = |conf: &str| {
        let out = std::process::Command::new(common::BIN)
            .arg("--version")
            .env("_RJEM_MALLOC_CONF", conf)
            .output()
            .unwrap();
        assert!(out.status.success());
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!stderr.contains("Invalid conf"), "{stderr}");
        stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix("opt.tcache_gc_incr_bytes: "))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no tcache_gc_incr_bytes in:\n{stderr}"))
    };
    assert_eq!(option("stats_print:true"), "1048576");
    assert_eq!(
        option("stats_print:true,tcache_gc_incr_bytes:65536"),
        "65536"
    );
}
