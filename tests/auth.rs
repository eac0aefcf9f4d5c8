//! Authentication, authorization and the audit log, against the real binary: tokens signed here
//! with RSA and EC keys, a JWKS file and a JWKS URL, every rejection case, a per-scope policy,
//! audit lines checked field by field, and the kube-api face's static tokens and TokenReview.

mod common;
mod secure;

use secure::*;
use serde_json::{Value, json};

fn jwt_config(jwks_key: &str, jwks: &str, extra: &str) -> String {
    format!(
        "secret:\n  auth:\n    jwt:\n      issuer: {ISSUER}\n      audiences: [{AUDIENCE}]\n      {jwks_key}: {jwks}\n{extra}"
    )
}

fn list_body() -> Value {
    json!({"domain": "development", "project": "flytesnacks"})
}

fn assert_unauthenticated(reply: &(u16, Vec<(String, String)>, Value), case: &str) {
    let (code, headers, body) = reply;
    assert_eq!(*code, 401, "{case}: {body}");
    assert_eq!(
        common::header(headers, "www-authenticate"),
        Some("Bearer"),
        "{case}"
    );
    assert_eq!(body["code"], "unauthenticated", "{case}: {body}");
}

#[test]
fn jwt_from_a_jwks_file_accepts_rsa_and_ec_and_refuses_every_bad_token() {
    let dir = TempDir::new();
    let rsa = rsa_key("rsa-1");
    let ec = ec_key("ec-1");
    let jwks_file = dir.write("jwks.json", jwks(&[&rsa, &ec]));
    let server = Secure::start(
        &dir,
        &jwt_config("jwksFile", jwks_file.to_str().unwrap(), ""),
        &[],
    );
    server.wait_ready(|| {
        matches!(
            common::http(server.addr, "GET", "/readyz", &[], b""),
            Ok((200, _, _))
        )
    });

    for (key, name) in [(&rsa, "rsa"), (&ec, "ec")] {
        let token = sign(key, &claims("alice", &["ml-team"]));
        let (code, _, body) = connect(server.addr, "ListSecrets", &list_body(), Some(&token));
        assert_eq!(code, 200, "{name}: {body}");
    }

    let other = ec_key("ec-1"); // same kid, different key: the signature does not verify
    let unknown = ec_key("ec-unknown");
    let mut wrong_iss = claims("alice", &[]);
    wrong_iss["iss"] = json!("https://evil.example");
    let mut wrong_aud = claims("alice", &[]);
    wrong_aud["aud"] = json!(["someone-else"]);
    let mut expired = claims("alice", &[]);
    expired["exp"] = json!(now() - 3600);
    expired["nbf"] = json!(now() - 7200);
    let mut not_yet = claims("alice", &[]);
    not_yet["nbf"] = json!(now() + 3600);
    let mut no_sub = claims("alice", &[]);
    no_sub.as_object_mut().unwrap().remove("sub");
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims("alice", &[]),
        &jsonwebtoken::EncodingKey::from_secret(b"shared"),
    )
    .unwrap();
    let good = sign(&ec, &claims("alice", &[]));
    let tampered = {
        // a valid token whose payload was swapped for another subject
        let parts: Vec<&str> = good.split('.').collect();
        let other_payload = sign(&ec, &claims("root", &[]));
        let swapped: Vec<&str> = other_payload.split('.').collect();
        format!("{}.{}.{}", parts[0], swapped[1], parts[2])
    };
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("bad signature", Some(sign(&other, &claims("alice", &[])))),
        ("tampered payload", Some(tampered)),
        ("unknown kid", Some(sign(&unknown, &claims("alice", &[])))),
        ("wrong issuer", Some(sign(&ec, &wrong_iss))),
        ("wrong audience", Some(sign(&ec, &wrong_aud))),
        ("expired", Some(sign(&rsa, &expired))),
        ("not yet valid", Some(sign(&rsa, &not_yet))),
        ("alg none", Some(unsigned(&claims("alice", &[])))),
        ("symmetric HS256", Some(hs)),
        ("no subject claim", Some(sign(&ec, &no_sub))),
        ("garbage", Some("not-a-jwt".into())),
    ];
    for (case, token) in &cases {
        let reply = connect(server.addr, "ListSecrets", &list_body(), token.as_deref());
        assert_unauthenticated(&reply, case);
    }
    // a non-bearer scheme is refused too
    let (code, _, _) = common::http(
        server.addr,
        "POST",
        "/flyteidl2.secret.SecretService/ListSecrets",
        &[
            ("content-type", "application/json"),
            ("authorization", "Basic YWxpY2U6cHc="),
        ],
        b"{}",
    )
    .unwrap();
    assert_eq!(code, 401);

    // REST answers 401 the same way
    let (code, headers, _) = common::http(
        server.addr,
        "GET",
        "/secrets/api/v1?domain=development",
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(code, 401);
    assert_eq!(common::header(&headers, "www-authenticate"), Some("Bearer"));

    // probes, metrics and SelectCluster stay open
    for path in ["/healthz", "/readyz", "/metrics"] {
        let (code, _, _) = common::http(server.addr, "GET", path, &[], b"").unwrap();
        assert_eq!(code, 200, "{path}");
    }
    let (code, _, body) = common::http(
        server.addr,
        "POST",
        "/flyteidl2.cluster.ClusterService/SelectCluster",
        &[("content-type", "application/json")],
        br#"{"operation":"OPERATION_USE_SECRETS"}"#,
    )
    .unwrap();
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));

    // gRPC: status 16 without a token, OK with one
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use flytesecret::proto::flyteidl2::secret::ListSecretsRequest;
        use flytesecret::proto::flyteidl2::secret::secret_service_client::SecretServiceClient;
        let mut c = SecretServiceClient::connect(format!("http://{}", server.addr))
            .await
            .unwrap();
        let err = c
            .list_secrets(ListSecretsRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
        let mut req = tonic::Request::new(ListSecretsRequest::default());
        req.metadata_mut()
            .insert("authorization", format!("Bearer {good}").parse().unwrap());
        c.list_secrets(req).await.unwrap();
        let mut req = tonic::Request::new(ListSecretsRequest::default());
        let expired_token = sign(&rsa, &expired);
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {expired_token}").parse().unwrap(),
        );
        assert_eq!(
            c.list_secrets(req).await.unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    });

    // tokens never reach the logs
    let logs = server.logs();
    assert!(logs.contains("unauthenticated request refused"), "{logs}");
    assert!(!logs.contains(&good), "a token was logged");
}

#[test]
fn jwks_url_is_fetched_cached_and_refreshed_on_an_unknown_kid() {
    let dir = TempDir::new();
    let first = ec_key("k1");
    let second = rsa_key("k2");
    let idp = JwksServer::start(jwks(&[&first]));
    let server = Secure::start(&dir, &jwt_config("jwksURL", &idp.url, ""), &[]);
    server.wait_ready(|| {
        matches!(
            common::http(server.addr, "GET", "/readyz", &[], b""),
            Ok((200, _, _))
        )
    });
    let t1 = sign(&first, &claims("alice", &[]));
    for _ in 0..3 {
        let (code, _, body) = connect(server.addr, "ListSecrets", &list_body(), Some(&t1));
        assert_eq!(code, 200, "{body}");
    }
    assert_eq!(idp.fetches(), 1, "the JWKS is cached between requests");

    // The identity provider rotates in a new key; a token naming it triggers a refresh (once
    // the minimum refresh interval since the last fetch has passed).
    *idp.doc.lock().unwrap() = jwks(&[&first, &second]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let t2 = sign(&second, &claims("bob", &[]));
    let (code, _, body) = connect(server.addr, "ListSecrets", &list_body(), Some(&t2));
    assert_eq!(code, 200, "{body}");
    assert_eq!(idp.fetches(), 2);

    // Unknown kids right after a refresh do not cause more fetches.
    let stranger = ec_key("k3");
    for _ in 0..5 {
        let reply = connect(
            server.addr,
            "ListSecrets",
            &list_body(),
            Some(&sign(&stranger, &claims("eve", &[]))),
        );
        assert_unauthenticated(&reply, "unknown kid");
    }
    assert_eq!(idp.fetches(), 2, "unknown kids are rate-limited");
}

/// `secret.auth.policy`, indented to sit under `secret.auth` in a config file.
const POLICY: &str = r#"    policy:
      - subjects: [alice, "group:ml-team"]
        verbs: [get, list]
        domains: [development]
        projects: ["*"]
      - subjects: [admin]
        verbs: ["*"]
        domains: ["*"]
        projects: ["*"]
"#;

#[test]
fn policy_decides_per_scope_and_every_rpc_is_audited_without_values() {
    let dir = TempDir::new();
    let key = ec_key("k");
    let jwks_file = dir.write("jwks.json", jwks(&[&key]));
    let audit = dir.path("audit.jsonl");
    let extra = format!("  audit:\n    path: {}\n", audit.display());
    let config = format!(
        "{}{POLICY}{extra}",
        jwt_config("jwksFile", jwks_file.to_str().unwrap(), "")
    );
    let server = Secure::start(&dir, &config, &[]);
    server.wait_ready(|| {
        matches!(
            common::http(server.addr, "GET", "/readyz", &[], b""),
            Ok((200, _, _))
        )
    });
    let admin = sign(&key, &claims("admin", &[]));
    let alice = sign(&key, &claims("alice", &[]));
    let dave = sign(&key, &claims("dave", &["ml-team"]));
    let mallory = sign(&key, &claims("mallory", &["other"]));
    const VALUE: &str = "s3cr3t-value-9f8e7d";
    let id = json!({"name": "db-password", "domain": "development", "project": "flytesnacks"});
    let create = json!({"id": id, "secret_spec": {"string_value": VALUE}});

    // alice may not create; the refusal names the verb and scope, never the value
    let (code, _, body) = connect(server.addr, "CreateSecret", &create, Some(&alice));
    assert_eq!(code, 403, "{body}");
    assert_eq!(body["code"], "permission_denied");
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.contains("create")
            && msg.contains("\"development\"")
            && msg.contains("\"flytesnacks\""),
        "{msg}"
    );
    assert!(!msg.contains(VALUE));

    let (code, _, body) = connect(server.addr, "CreateSecret", &create, Some(&admin));
    assert_eq!(code, 200, "{body}");
    let get = json!({"id": id});
    for (who, token, want) in [
        ("alice", &alice, 200),
        ("dave (group ml-team)", &dave, 200),
        ("mallory", &mallory, 403),
    ] {
        let (code, _, body) = connect(server.addr, "GetSecret", &get, Some(token));
        assert_eq!(code, want, "{who}: {body}");
    }
    // alice's list must name a domain: an empty domain means all, which only "*" covers
    let (code, _, _) = connect(
        server.addr,
        "ListSecrets",
        &json!({"domain": "development"}),
        Some(&alice),
    );
    assert_eq!(code, 200);
    let (code, _, body) = connect(server.addr, "ListSecrets", &json!({}), Some(&alice));
    assert_eq!(code, 403, "{body}");
    assert!(body["message"].as_str().unwrap().contains("every domain"));
    let (code, _, _) = connect(
        server.addr,
        "GetSecret",
        &json!({"id": {"name": "db-password", "domain": "production", "project": "flytesnacks"}}),
        Some(&alice),
    );
    assert_eq!(code, 403);
    // gRPC: permission_denied is status 7
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use flytesecret::proto::flyteidl2::secret::DeleteSecretRequest;
        use flytesecret::proto::flyteidl2::secret::secret_service_client::SecretServiceClient;
        let mut c = SecretServiceClient::connect(format!("http://{}", server.addr))
            .await
            .unwrap();
        let mut req = tonic::Request::new(DeleteSecretRequest {
            id: common::id("db-password", "development", "flytesnacks"),
            include_system_secrets: false,
        });
        req.metadata_mut()
            .insert("authorization", format!("Bearer {alice}").parse().unwrap());
        let err = c.delete_secret(req).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
    });
    // a request id sent by the client is kept, and echoed
    let (code, headers, _) = common::http(
        server.addr,
        "POST",
        "/flyteidl2.secret.SecretService/GetSecret",
        &[
            ("content-type", "application/json"),
            ("authorization", &format!("Bearer {alice}")),
            ("x-request-id", "req-12345"),
        ],
        get.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(code, 200);
    assert_eq!(common::header(&headers, "x-request-id"), Some("req-12345"));
    // an unauthenticated call is audited too
    let (code, _, _) = connect(server.addr, "GetSecret", &get, None);
    assert_eq!(code, 401);

    let lines = read_lines(&audit);
    let raw = std::fs::read_to_string(&audit).unwrap();
    assert!(!raw.contains(VALUE), "the audit log holds a secret value");
    assert!(!raw.contains(&alice), "the audit log holds a token");
    // one line per RPC: 1 denied create + 1 create + 3 gets + 2 lists + 1 denied get + 1 delete
    // + 1 get with request id + 1 unauthenticated
    assert_eq!(lines.len(), 11, "{raw}");
    let denied = &lines[0];
    assert_eq!(denied["caller"]["subject"], "alice");
    assert_eq!(denied["caller"]["groups"], json!([]));
    assert_eq!(denied["caller"]["method"], "jwt");
    assert_eq!(
        denied["method"],
        "flyteidl2.secret.SecretService/CreateSecret"
    );
    assert_eq!(
        denied["secret"],
        json!({"organization": "", "domain": "development", "project": "flytesnacks", "name": "db-password"})
    );
    assert_eq!(denied["code"], "permission_denied");
    assert!(
        denied["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{denied}"
    );
    assert!(
        time::OffsetDateTime::parse(
            denied["time"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok(),
        "{denied}"
    );
    assert_eq!(denied["requestId"].as_str().unwrap().len(), 36);
    assert_eq!(lines[1]["caller"]["subject"], "admin");
    assert_eq!(lines[1]["code"], "ok");
    assert_eq!(lines[3]["caller"]["groups"], json!(["ml-team"]));
    assert_eq!(
        lines[6]["method"],
        "flyteidl2.secret.SecretService/ListSecrets"
    );
    assert_eq!(
        lines[6]["secret"],
        json!({"organization": "", "domain": "", "project": "", "name": ""})
    );
    assert_eq!(lines[6]["code"], "permission_denied");
    assert_eq!(
        lines[8]["method"],
        "flyteidl2.secret.SecretService/DeleteSecret"
    );
    assert_eq!(lines[9]["requestId"], "req-12345");
    let unauth = &lines[10];
    assert_eq!(unauth["code"], "unauthenticated");
    assert_eq!(unauth["caller"]["method"], "none");
    assert_eq!(unauth["secret"], Value::Null);
    assert_eq!(unauth["method"], "flyteidl2.secret.SecretService/GetSecret");
    let logs = server.logs();
    assert!(!logs.contains(VALUE), "a value reached the logs");
}

#[test]
fn an_unwritable_audit_log_is_refused_at_startup() {
    let dir = TempDir::new();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--ephemeral", "--secret.server.port", "0"])
        .args(["--secret.audit.path", "/nonexistent-dir/audit.jsonl"])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("opening the audit log"), "{err}");
}

#[test]
fn a_failed_audit_write_is_logged_loudly_and_the_rpc_still_answers() {
    let dir = TempDir::new();
    let server = Secure::start(&dir, "secret:\n  audit:\n    path: /dev/full\n", &[]);
    server.wait_ready(|| {
        matches!(
            common::http(server.addr, "GET", "/readyz", &[], b""),
            Ok((200, _, _))
        )
    });
    let (code, _, _) = connect(server.addr, "ListSecrets", &json!({}), None);
    assert_eq!(code, 200);
    let logs = server.logs();
    assert!(
        logs.contains("ERROR") && logs.contains("AUDIT LOG WRITE FAILED"),
        "{logs}"
    );
}

#[test]
fn warns_when_serving_without_authentication_on_a_non_loopback_address() {
    let dir = TempDir::new();
    let server = Secure::start(&dir, "secret: {}\n", &["--secret.server.host", "0.0.0.0"]);
    let loopback = Secure::start(&dir, "secret: {}\n", &[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !server.logs().contains("no authentication") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        server
            .logs()
            .contains("non-loopback address with no authentication")
    );
    assert!(!loopback.logs().contains("no authentication"));
}

const TOKENS: &str = "t0ken-alice,alice,uid-1,\"ml-team,dev\"\nt0ken-bob,bob,uid-2\n";

#[test]
fn kube_api_face_requires_static_tokens_over_https_and_answers_token_reviews() {
    let dir = TempDir::new();
    let tokens = dir.write("tokens.csv", TOKENS);
    let kubeconfig = dir.path("kc");
    let mut child = Reaper(
        std::process::Command::new(BIN)
            .args(["kube-api", "--listen", "127.0.0.1:0", "--ephemeral"])
            .arg("--token-auth-file")
            .arg(&tokens)
            .arg("--write-kubeconfig")
            .arg(&kubeconfig)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.0.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr = line
        .split("https://")
        .nth(1)
        .expect(&line)
        .trim()
        .to_owned();
    // the kubeconfig trusts the face's certificate and carries the first token
    let kc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&kubeconfig).unwrap()).unwrap();
    let cluster = &kc["clusters"][0]["cluster"];
    assert_eq!(
        cluster["server"].as_str(),
        Some(format!("https://{addr}").as_str())
    );
    assert_eq!(
        kc["users"][0]["user"]["token"].as_str(),
        Some("t0ken-alice")
    );
    let ca_pem = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(cluster["certificate-authority-data"].as_str().unwrap())
            .unwrap()
    };
    let ca = dir.write("kube-ca.pem", ca_pem);
    let ca = ca.to_str().unwrap();
    let url = |path: &str| format!("https://{addr}{path}");
    let secrets = url("/api/v1/namespaces/default/secrets");
    let (code, _, body) = curl(&["--cacert", ca], &secrets).unwrap();
    assert_eq!(code, 401);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
    );
    let (code, _, _) = curl(
        &["--cacert", ca, "-H", "authorization: Bearer wrong"],
        &secrets,
    )
    .unwrap();
    assert_eq!(code, 401);
    let (code, _, _) = curl(
        &["--cacert", ca, "-H", "authorization: Bearer t0ken-bob"],
        &secrets,
    )
    .unwrap();
    assert_eq!(code, 200);

    let review = |token: &str| {
        let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                          "spec": {"token": token, "audiences": ["flytesecret"]}});
        let (code, _, raw) = curl(
            &[
                "--cacert",
                ca,
                "-H",
                "authorization: Bearer t0ken-bob",
                "-H",
                "content-type: application/json",
                "-d",
                &body.to_string(),
            ],
            &url("/apis/authentication.k8s.io/v1/tokenreviews"),
        )
        .unwrap();
        assert_eq!(code, 201);
        serde_json::from_str::<Value>(&raw).unwrap()
    };
    let yes = review("t0ken-alice");
    assert_eq!(yes["kind"], "TokenReview");
    assert_eq!(yes["status"]["authenticated"], true);
    assert_eq!(
        yes["status"]["user"],
        json!({"username": "alice", "uid": "uid-1", "groups": ["ml-team", "dev"]})
    );
    assert_eq!(yes["status"]["audiences"], json!(["flytesecret"]));
    assert!(
        !yes.to_string().contains("t0ken-alice"),
        "the token is echoed"
    );
    let no = review("nope");
    assert_ne!(no["status"]["authenticated"], true);

    // clients built from the kubeconfig just work: kube-rs, and kubectl when installed
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
            kube::Api::namespaced(client, "default");
        secrets.list(&Default::default()).await.unwrap();
    });
    if common::kubectl_available() {
        let out = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["get", "secrets", "-n", "default"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn serve_accepts_kubernetes_tokens_through_token_review_on_the_embedded_engine() {
    let dir = TempDir::new();
    let tokens = dir.write("tokens.csv", TOKENS);
    let audit = dir.path("audit.jsonl");
    let config = format!(
        "secret:\n  embedded:\n    tokenAuthFile: {}\n  auth:\n    kubernetes:\n      tokenReview: true\n      audiences: [flytesecret]\n    policy:\n      - subjects: [\"group:ml-team\"]\n        verbs: [\"*\"]\n        domains: [\"*\"]\n        projects: [\"*\"]\n  audit:\n    path: {}\n",
        tokens.display(),
        audit.display()
    );
    let server = Secure::start(&dir, &config, &[]);
    server.wait_ready(|| {
        matches!(
            common::http(server.addr, "GET", "/readyz", &[], b""),
            Ok((200, _, _))
        )
    });
    let (code, _, body) = connect(server.addr, "ListSecrets", &json!({}), Some("t0ken-alice"));
    assert_eq!(code, 200, "{body}");
    let (code, _, _) = connect(server.addr, "ListSecrets", &json!({}), Some("t0ken-bob"));
    assert_eq!(code, 403, "bob is authenticated but not in the policy");
    let (code, _, _) = connect(server.addr, "ListSecrets", &json!({}), Some("forged"));
    assert_eq!(code, 401);
    let lines = read_lines(&audit);
    assert_eq!(lines[0]["caller"]["subject"], "alice");
    assert_eq!(lines[0]["caller"]["method"], "tokenreview");
    assert_eq!(lines[0]["caller"]["groups"], json!(["ml-team", "dev"]));
    assert_eq!(lines[1]["caller"]["subject"], "bob");
    assert_eq!(lines[1]["code"], "permission_denied");
}

#[test]
fn config_errors_name_the_key() {
    let dir = TempDir::new();
    for (args, key) in [
        (
            vec!["--secret.auth.jwt.issuer", "https://x"],
            "secret.auth.jwt.jwksURL",
        ),
        (
            vec![
                "--secret.auth.policy",
                "[{subjects: [a], verbs: [read], domains: [x], projects: [y]}]",
            ],
            "secret.auth.policy",
        ),
        (
            vec!["--secret.server.tls.certFile", "/x.crt"],
            "secret.server.tls.keyFile",
        ),
    ] {
        let out = std::process::Command::new(BIN)
            .args(["serve", "--ephemeral", "--secret.server.port", "0"])
            .args(&args)
            .current_dir(&dir.0)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{args:?}: {err}");
    }
}
