//! Every RPC against the embedded Kubernetes engine through the real `kube` client path, with the
//! exact objects each write leaves behind.

mod common;

use common::id;
use flytesecret::kubeapi::{Engine, Fault, Verb};
use flytesecret::proto::flyteidl2::secret::*;
use flytesecret::service::{Code, KubeBackend, SecretService, Settings};
use serde_json::{Value, json};
use std::sync::Arc;

struct Fixture {
    engine: Arc<Engine>,
    svc: SecretService,
}

fn fixture_with(settings: Settings) -> Fixture {
    let engine = Engine::ephemeral();
    engine.ensure_namespace(&settings.namespace);
    let kube = KubeBackend::new(engine.kube_client(&settings.namespace), 0.0, 1, None);
    Fixture {
        svc: SecretService::new(kube, settings, None),
        engine,
    }
}

fn fixture() -> Fixture {
    fixture_with(Settings::default())
}

fn string_spec(v: &str) -> Option<SecretSpec> {
    Some(SecretSpec {
        value: Some(secret_spec::Value::StringValue(v.into())),
        r#type: 0,
    })
}

fn binary_spec(v: &[u8]) -> Option<SecretSpec> {
    Some(SecretSpec {
        value: Some(secret_spec::Value::BinaryValue(v.to_vec())),
        r#type: 0,
    })
}

impl Fixture {
    async fn create(
        &self,
        id: Option<SecretIdentifier>,
        spec: Option<SecretSpec>,
    ) -> Result<(), flytesecret::service::RpcError> {
        self.svc
            .create(CreateSecretRequest {
                id,
                secret_spec: spec,
            })
            .await
            .map(|_| ())
    }

    /// The stored object as the API server returns it, with volatile fields blanked.
    async fn object(&self, name: &str) -> Value {
        let req = http::Request::get(format!("/api/v1/namespaces/flyte/secrets/{name}"))
            .body(bytes::Bytes::new())
            .unwrap();
        let resp = self.engine.handle(req).await;
        assert_eq!(resp.status(), 200, "{name}");
        let mut v: Value = serde_json::from_slice(resp.body()).unwrap();
        for k in ["uid", "resourceVersion", "creationTimestamp"] {
            v["metadata"][k] = json!("<volatile>");
        }
        v
    }
}

#[tokio::test]
async fn create_writes_the_go_object_shape() {
    let f = fixture();
    f.create(
        id("my-secret", "development", "flytesnacks"),
        string_spec("s3cr3t"),
    )
    .await
    .unwrap();
    f.create(
        id("bin", "development", ""),
        binary_spec(&[0, 159, 146, 150]),
    )
    .await
    .unwrap();
    f.create(id("global", "", ""), string_spec(""))
        .await
        .unwrap();
    insta::assert_json_snapshot!(
        "project_scoped_object",
        f.object("209ab6535a0e009361229977898c057f").await
    );
    let domain = flytesecret::naming::SecretId::new("flyte", "development", "", "bin")
        .encode()
        .object_name();
    insta::assert_json_snapshot!("domain_scoped_binary_object", f.object(&domain).await);
    let global = flytesecret::naming::SecretId::new("flyte", "", "", "global")
        .encode()
        .object_name();
    insta::assert_json_snapshot!("org_scoped_empty_object", f.object(&global).await);
}

#[tokio::test]
async fn get_echoes_the_request_id_and_reports_presence() {
    let f = fixture();
    f.create(
        id("my-secret", "development", "flytesnacks"),
        string_spec("v"),
    )
    .await
    .unwrap();
    let mut req_id = id("my-secret", "development", "flytesnacks").unwrap();
    req_id.organization = "acme".into();
    let got = f
        .svc
        .get(GetSecretRequest {
            id: Some(req_id.clone()),
            include_system_secrets: false,
        })
        .await
        .unwrap();
    let secret = got.secret.unwrap();
    assert_eq!(secret.id, Some(req_id));
    let meta = secret.secret_metadata.unwrap();
    assert!(meta.created_time.unwrap().seconds > 1_700_000_000);
    let json = serde_json::to_value(meta.secret_status.unwrap()).unwrap();
    assert_eq!(
        json,
        json!({"overallStatus": "FULLY_PRESENT", "clusterStatus": [{"cluster": {"name": "flyte-devbox"}, "presenceStatus": "PRESENT"}]})
    );
    let missing = f
        .svc
        .get(GetSecretRequest {
            id: id("nope", "", ""),
            include_system_secrets: false,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (missing.code, missing.message.as_str()),
        (Code::NotFound, "secret nope not found")
    );
}

#[tokio::test]
async fn errors_follow_the_go_mapping() {
    let f = fixture();
    let scope = f
        .create(id("n", "", "flytesnacks"), string_spec("v"))
        .await
        .unwrap_err();
    assert_eq!(scope.code, Code::InvalidArgument);
    assert_eq!(
        scope.message,
        "project-scoped secrets must also specify a domain, got project=\"flytesnacks\" domain=\"\""
    );
    let no_value = f.create(id("n", "d", ""), None).await.unwrap_err();
    assert_eq!(
        (no_value.code, no_value.message.as_str()),
        (
            Code::InvalidArgument,
            "string or binary value expected, got <nil>"
        )
    );
    f.create(id("n", "d", ""), string_spec("v")).await.unwrap();
    let dup = f
        .create(id("n", "d", ""), string_spec("v"))
        .await
        .unwrap_err();
    let object = flytesecret::naming::SecretId::new("flyte", "d", "", "n")
        .encode()
        .object_name();
    assert_eq!(
        (dup.code, dup.message),
        (
            Code::AlreadyExists,
            format!("secrets \"{object}\" already exists")
        )
    );
    // Update without a value: not_found for a missing secret, invalid_argument for an existing one.
    let upd = |name: &str| UpdateSecretRequest {
        id: id(name, "d", ""),
        secret_spec: None,
    };
    assert_eq!(
        f.svc.update(upd("missing")).await.unwrap_err().code,
        Code::NotFound
    );
    assert_eq!(
        f.svc.update(upd("n")).await.unwrap_err().code,
        Code::InvalidArgument
    );
    let del = f
        .svc
        .delete(DeleteSecretRequest {
            id: id("", "", ""),
            include_system_secrets: false,
        })
        .await
        .unwrap_err();
    assert_eq!(del.message, "secret  not found");
}

#[tokio::test]
async fn strict_names_reject_what_go_accepts_and_go_profile_accepts_it() {
    let f = fixture();
    for bad in [
        id("a.b", "", ""),
        id("", "", ""),
        None,
        id("n", "d", "p__key__x"),
    ] {
        let e = f.create(bad.clone(), string_spec("v")).await.unwrap_err();
        assert_eq!(e.code, Code::InvalidArgument, "{bad:?}");
    }
    let go = fixture_with(Settings {
        strict_names: false,
        ..Settings::default()
    });
    go.create(id("a.b", "", ""), string_spec("v"))
        .await
        .unwrap();
    go.create(None, string_spec("v")).await.unwrap();
    // Kubernetes itself still refuses a data key it cannot store: internal, as in Go.
    let e = go
        .create(id("bad name", "", ""), string_spec("v"))
        .await
        .unwrap_err();
    assert_eq!(e.code, Code::Internal);
    assert!(e.message.contains("a valid config key"), "{}", e.message);
}

#[tokio::test]
async fn update_replaces_the_value_and_keeps_labels() {
    let f = fixture();
    f.create(id("k", "development", ""), string_spec("one"))
        .await
        .unwrap();
    f.svc
        .update(UpdateSecretRequest {
            id: id("k", "development", ""),
            secret_spec: binary_spec(b"two"),
        })
        .await
        .unwrap();
    let object = flytesecret::naming::SecretId::new("flyte", "development", "", "k")
        .encode()
        .object_name();
    let v = f.object(&object).await;
    assert_eq!(
        v["data"],
        json!({"u__org__flyte__domain__development__project____key__k": "dHdv"})
    );
    assert_eq!(
        v["metadata"]["labels"],
        json!({"app.flyte.org/domain": "development", "app.flyte.org/managed": "true"})
    );
}

#[tokio::test]
async fn concurrent_updates_all_succeed_and_the_last_write_wins() {
    let f = Arc::new(fixture());
    f.create(id("race", "d", ""), string_spec("0"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 1..=8 {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            f.svc
                .update(UpdateSecretRequest {
                    id: id("race", "d", ""),
                    secret_spec: string_spec(&i.to_string()),
                })
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let object = flytesecret::naming::SecretId::new("flyte", "d", "", "race")
        .encode()
        .object_name();
    let v = f.object(&object).await;
    let stored = v["data"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    use base64::Engine as _;
    let value: u32 = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(stored)
            .unwrap(),
    )
    .unwrap()
    .parse()
    .unwrap();
    assert!((1..=8).contains(&value));
}

#[tokio::test]
async fn list_filters_by_scope_pages_and_skips_malformed_secrets() {
    let f = fixture();
    f.create(id("a", "development", "p1"), string_spec("v"))
        .await
        .unwrap();
    f.create(id("b", "development", ""), string_spec("v"))
        .await
        .unwrap();
    f.create(id("c", "staging", ""), string_spec("v"))
        .await
        .unwrap();
    f.create(id("g", "", ""), string_spec("v")).await.unwrap();
    // A managed Secret with two keys, as a hand edit might leave it: skipped.
    let body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "broken", "labels": {"app.flyte.org/managed": "true"}}, "stringData": {"x": "1", "y": "2"}});
    let req = http::Request::post("/api/v1/namespaces/flyte/secrets")
        .header("content-type", "application/json")
        .body(bytes::Bytes::from(body.to_string()))
        .unwrap();
    assert_eq!(f.engine.handle(req).await.status(), 201);
    let list = |domain: &str, project: &str, limit: i32, token: String| ListSecretsRequest {
        domain: domain.into(),
        project: project.into(),
        limit,
        token,
        ..Default::default()
    };
    let all = f.svc.list(list("", "", 0, String::new())).await.unwrap();
    let mut names: Vec<String> = all
        .secrets
        .iter()
        .map(|s| s.id.as_ref().unwrap().name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b", "c", "g"]);
    assert!(
        all.secrets
            .iter()
            .all(|s| s.id.as_ref().unwrap().organization.is_empty())
    );
    let dev = f
        .svc
        .list(list("development", "", 0, String::new()))
        .await
        .unwrap();
    assert_eq!(dev.secrets.len(), 2);
    let proj = f
        .svc
        .list(list("development", "p1", 0, String::new()))
        .await
        .unwrap();
    assert_eq!(proj.secrets[0].id, id("a", "development", "p1"));
    // Paging: follow tokens until none; every secret once.
    let (mut seen, mut token) = (Vec::new(), String::new());
    loop {
        let page = f.svc.list(list("", "", 2, token)).await.unwrap();
        seen.extend(page.secrets.into_iter().map(|s| s.id.unwrap().name));
        if page.token.is_empty() {
            break;
        }
        token = page.token;
    }
    seen.sort();
    assert_eq!(seen, ["a", "b", "c", "g"]);
    let e = f
        .svc
        .list(list("", "p1", 0, String::new()))
        .await
        .unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument);
}

#[tokio::test]
async fn a_secret_written_in_the_go_layout_by_hand_is_fully_manageable() {
    let f = fixture();
    let key = "u__org__flyte__domain__development__project__flytesnacks__key__handmade";
    let name = flytesecret::naming::object_name(key);
    let body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name.as_str(), "labels": {
        "app.flyte.org/managed": "true", "app.flyte.org/domain": "development", "app.flyte.org/project": "flytesnacks"}},
        "data": {key: "aGk="}});
    let req = http::Request::post("/api/v1/namespaces/flyte/secrets")
        .header("content-type", "application/json")
        .body(bytes::Bytes::from(body.to_string()))
        .unwrap();
    assert_eq!(f.engine.handle(req).await.status(), 201);
    let listed = f
        .svc
        .list(ListSecretsRequest {
            domain: "development".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        listed.secrets[0].id,
        id("handmade", "development", "flytesnacks")
    );
    f.svc
        .get(GetSecretRequest {
            id: id("handmade", "development", "flytesnacks"),
            include_system_secrets: false,
        })
        .await
        .unwrap();
    f.svc
        .update(UpdateSecretRequest {
            id: id("handmade", "development", "flytesnacks"),
            secret_spec: string_spec("new"),
        })
        .await
        .unwrap();
    f.svc
        .delete(DeleteSecretRequest {
            id: id("handmade", "development", "flytesnacks"),
            include_system_secrets: false,
        })
        .await
        .unwrap();
    assert!(
        f.svc
            .list(ListSecretsRequest::default())
            .await
            .unwrap()
            .secrets
            .is_empty()
    );
}

#[tokio::test]
async fn api_faults_map_to_internal_and_values_never_leak() {
    let f = fixture();
    f.create(id("k", "d", ""), string_spec("hunter2-value"))
        .await
        .unwrap();
    for fault in [
        Fault::TooManyRequests { retry_after: 1 },
        Fault::InternalError,
        Fault::ServiceUnavailable,
        Fault::GatewayTimeout,
    ] {
        f.engine.faults().inject(Some(Verb::Get), 1, fault.clone());
        let e = f
            .svc
            .get(GetSecretRequest {
                id: id("k", "d", ""),
                include_system_secrets: false,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code, Code::Internal, "{fault:?}");
        assert!(!e.message.contains("hunter2"));
    }
    let got = f
        .svc
        .get(GetSecretRequest {
            id: id("k", "d", ""),
            include_system_secrets: false,
        })
        .await
        .unwrap();
    assert!(!format!("{got:?}").contains("hunter2"));
    let listed = f.svc.list(ListSecretsRequest::default()).await.unwrap();
    assert!(!format!("{listed:?}").contains("hunter2"));
}

#[tokio::test]
async fn a_timeout_becomes_internal() {
    let engine = Engine::ephemeral();
    engine.ensure_namespace("flyte");
    let kube = KubeBackend::new(
        engine.kube_client("flyte"),
        0.0,
        1,
        Some(std::time::Duration::from_millis(50)),
    );
    let svc = SecretService::new(kube, Settings::default(), None);
    engine
        .faults()
        .inject(Some(Verb::List), 1, Fault::Delay { millis: 2000 });
    let e = svc.list(ListSecretsRequest::default()).await.unwrap_err();
    assert_eq!(e.code, Code::Internal);
    assert!(e.message.contains("did not answer"), "{}", e.message);
}
