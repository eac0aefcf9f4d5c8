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
    // The writers really raced: their conflicts were met and retried, not avoided.
    assert!(
        f.svc.metrics().update_conflict_retries() > 0,
        "no Update met a conflict; the test proves nothing"
    );
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

// ---------------------------------------------------------------------------------------------
// Secret types and image-pull secrets.

const GHCR: &str = r#"{"auths":{"ghcr.io":{"auth":"dXNlcjpodW50ZXIy"}}}"#;

fn image_pull_spec(v: &[u8]) -> Option<SecretSpec> {
    Some(SecretSpec {
        value: Some(secret_spec::Value::BinaryValue(v.to_vec())),
        r#type: SecretType::ImagePullSecret as i32,
    })
}

fn object_name(name: &str, domain: &str, project: &str) -> String {
    flytesecret::naming::SecretId::new("flyte", domain, project, name)
        .encode()
        .object_name()
        .to_string()
}

fn companion_name(name: &str, domain: &str, project: &str) -> String {
    flytesecret::naming::image_pull_name("flyte", domain, project, name).to_string()
}

impl Fixture {
    async fn exists(&self, name: &str) -> bool {
        let req = http::Request::get(format!("/api/v1/namespaces/flyte/secrets/{name}"))
            .body(bytes::Bytes::new())
            .unwrap();
        self.engine.handle(req).await.status() == 200
    }

    /// Writes a Secret straight into the engine, as kubectl or the Go service would.
    async fn put_raw(&self, body: Value) {
        let req = http::Request::post("/api/v1/namespaces/flyte/secrets")
            .header("content-type", "application/json")
            .body(bytes::Bytes::from(body.to_string()))
            .unwrap();
        assert_eq!(self.engine.handle(req).await.status(), 201);
    }

    async fn remove_raw(&self, name: &str) {
        let req = http::Request::delete(format!("/api/v1/namespaces/flyte/secrets/{name}"))
            .body(bytes::Bytes::new())
            .unwrap();
        assert_eq!(self.engine.handle(req).await.status(), 200);
    }

    async fn get_type(&self, name: &str, domain: &str, project: &str) -> i32 {
        self.svc
            .get(GetSecretRequest {
                id: id(name, domain, project),
                include_system_secrets: false,
            })
            .await
            .unwrap()
            .secret
            .unwrap()
            .secret_metadata
            .unwrap()
            .r#type
    }

    async fn update(
        &self,
        name: &str,
        domain: &str,
        spec: Option<SecretSpec>,
    ) -> Result<(), flytesecret::service::RpcError> {
        self.svc
            .update(UpdateSecretRequest {
                id: id(name, domain, ""),
                secret_spec: spec,
            })
            .await
            .map(|_| ())
    }
}

fn b64(v: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(v)
}

#[tokio::test]
async fn image_pull_create_writes_the_generic_secret_and_its_dockerconfigjson_companion() {
    let f = fixture();
    f.create(id("ghcr", "", ""), image_pull_spec(GHCR.as_bytes()))
        .await
        .unwrap();
    let generic = f.object(&object_name("ghcr", "", "")).await;
    assert_eq!(
        generic["metadata"]["labels"],
        json!({"app.flyte.org/managed": "true", "app.flyte.org/secret-type": "image-pull"})
    );
    assert_eq!(
        generic["data"],
        json!({"u__org__flyte__domain____project____key__ghcr": b64(GHCR.as_bytes())})
    );
    assert_eq!(generic["type"], "Opaque");
    let companion = f.object(&companion_name("ghcr", "", "")).await;
    assert_eq!(
        companion,
        json!({
            "kind": "Secret", "apiVersion": "v1",
            "metadata": {
                "name": companion_name("ghcr", "", ""), "namespace": "flyte",
                "uid": "<volatile>", "resourceVersion": "<volatile>", "creationTimestamp": "<volatile>",
                "labels": {
                    "app.flyte.org/image-pull-for": object_name("ghcr", "", ""),
                    "union.ai/domain": "none", "union.ai/org": "flyte", "union.ai/project": "none",
                    "union.ai/secret-name": "ghcr", "union.ai/secret-type": "image-pull-secret",
                },
            },
            "data": {".dockerconfigjson": b64(GHCR.as_bytes())},
            "type": "kubernetes.io/dockerconfigjson",
        })
    );
    // Scoped, with a string value and a name the sanitiser changes.
    f.create(
        id("Reg_Creds-", "development", "flytesnacks"),
        Some(SecretSpec {
            value: Some(secret_spec::Value::StringValue(GHCR.into())),
            r#type: SecretType::ImagePullSecret as i32,
        }),
    )
    .await
    .unwrap();
    let scoped = f
        .object(&companion_name("Reg_Creds-", "development", "flytesnacks"))
        .await;
    assert_eq!(
        scoped["metadata"]["labels"]["union.ai/secret-name"],
        "Reg_Credsx"
    );
    assert_eq!(
        scoped["metadata"]["labels"]["union.ai/project"],
        "flytesnacks"
    );
    assert_eq!(scoped["data"][".dockerconfigjson"], b64(GHCR.as_bytes()));
    // What a task pod's webhook does with it: walk the cascade, stop at the first Secret that
    // exists, read the data key, then take the image-pull Secret that scope names.
    use flytesecret::consumption::{PodLabels, lookup_cascade};
    let pod = PodLabels {
        organization: "flyte",
        project: "flytesnacks",
        domain: "development",
    };
    let mut found = None;
    for step in lookup_cascade(pod, "ghcr").unwrap() {
        if f.exists(&step.object_name).await {
            found = Some(step);
            break;
        }
    }
    let step = found.expect("the pod finds the secret at some scope");
    let generic = f.object(&step.object_name).await;
    assert_eq!(
        generic["data"][step.data_key.as_str()],
        b64(GHCR.as_bytes())
    );
    let pulled = f.object(&step.image_pull_name).await;
    assert_eq!(pulled["type"], "kubernetes.io/dockerconfigjson");
    assert_eq!(pulled["data"][".dockerconfigjson"], b64(GHCR.as_bytes()));
    // Generic secrets are written exactly as before: no type label, no companion.
    f.create(id("plain", "", ""), string_spec("v"))
        .await
        .unwrap();
    assert_eq!(
        f.object(&object_name("plain", "", "")).await["metadata"]["labels"],
        json!({"app.flyte.org/managed": "true"})
    );
    assert!(!f.exists(&companion_name("plain", "", "")).await);
}

#[tokio::test]
async fn image_pull_values_that_are_not_docker_configs_are_refused_without_echo() {
    let f = fixture();
    for bad in [
        &b"hunter2-password"[..],
        br#"{"auths":{}}"#,
        br#"{"hunter2-password":{}}"#,
        br#"{"auths":{"r":{"auth":"hunter2-password"}}}"#,
    ] {
        let e = f
            .create(id("ip", "", ""), image_pull_spec(bad))
            .await
            .unwrap_err();
        assert_eq!(e.code, Code::InvalidArgument);
        assert!(
            e.message.starts_with("secret_spec.value: "),
            "{}",
            e.message
        );
        assert!(!e.message.contains("hunter2"), "{}", e.message);
        assert!(!f.exists(&object_name("ip", "", "")).await);
        assert!(!f.exists(&companion_name("ip", "", "")).await);
    }
    let e = f
        .create(
            id("ip", "", ""),
            Some(SecretSpec {
                value: Some(secret_spec::Value::StringValue("v".into())),
                r#type: 7,
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            Code::InvalidArgument,
            "secret_spec.type: unknown secret type 7"
        )
    );
}

#[tokio::test]
async fn image_pull_create_rolls_back_when_the_companion_cannot_be_written() {
    let f = fixture();
    // A Secret at the companion's name that this service did not write: left alone, Create fails.
    let foreign = companion_name("taken", "", "");
    f.put_raw(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": foreign}, "stringData": {"x": "1"}}))
        .await;
    let e = f
        .create(id("taken", "", ""), image_pull_spec(GHCR.as_bytes()))
        .await
        .unwrap_err();
    assert_eq!(e.code, Code::AlreadyExists, "{}", e.message);
    assert!(e.message.contains(&foreign), "{}", e.message);
    assert!(!f.exists(&object_name("taken", "", "")).await);
    assert_eq!(f.object(&foreign).await["data"], json!({"x": "MQ=="}));
    // A fault while writing the companion (its existence check): internal, generic rolled back.
    f.engine
        .faults()
        .inject(Some(Verb::Get), 1, Fault::InternalError);
    let e = f
        .create(id("faulty", "", ""), image_pull_spec(GHCR.as_bytes()))
        .await
        .unwrap_err();
    assert_eq!(e.code, Code::Internal);
    assert!(!f.exists(&object_name("faulty", "", "")).await);
    assert!(!f.exists(&companion_name("faulty", "", "")).await);
    // Nothing is left half-made: the same Create now succeeds.
    f.create(id("faulty", "", ""), image_pull_spec(GHCR.as_bytes()))
        .await
        .unwrap();
    // A stale companion of ours (a crash between the two deletes) is adopted.
    f.remove_raw(&object_name("faulty", "", "")).await;
    f.create(id("faulty", "", ""), image_pull_spec(GHCR.as_bytes()))
        .await
        .unwrap();
}

#[tokio::test]
async fn get_and_list_report_each_secrets_type() {
    let f = fixture();
    f.create(id("ip", "d", ""), image_pull_spec(GHCR.as_bytes()))
        .await
        .unwrap();
    f.create(id("plain", "d", ""), string_spec("v"))
        .await
        .unwrap();
    // As the Go service writes it: no type label.
    let key = "u__org__flyte__domain__d__project____key__gowritten";
    f.put_raw(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": flytesecret::naming::object_name(key).as_str(),
                     "labels": {"app.flyte.org/managed": "true", "app.flyte.org/domain": "d"}},
        "data": {key: "aGk="}}))
        .await;
    assert_eq!(f.get_type("ip", "d", "").await, 1);
    assert_eq!(f.get_type("plain", "d", "").await, 0);
    assert_eq!(f.get_type("gowritten", "d", "").await, 0);
    let listed = f
        .svc
        .list(ListSecretsRequest {
            domain: "d".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut types: Vec<(String, i32)> = listed
        .secrets
        .iter()
        .map(|s| {
            (
                s.id.as_ref().unwrap().name.clone(),
                s.secret_metadata.as_ref().unwrap().r#type,
            )
        })
        .collect();
    types.sort();
    // The companion (not managed) never appears.
    assert_eq!(
        types,
        [
            ("gowritten".into(), 0),
            ("ip".into(), 1),
            ("plain".into(), 0)
        ]
    );
    let json = serde_json::to_value(&listed).unwrap();
    assert!(json.to_string().contains("SECRET_TYPE_IMAGE_PULL_SECRET"));
}

#[tokio::test]
async fn image_pull_update_keeps_both_in_step_and_repairs_a_missing_companion() {
    let f = fixture();
    f.create(id("ip", "d", ""), image_pull_spec(GHCR.as_bytes()))
        .await
        .unwrap();
    let quay = r#"{"auths":{"quay.io":{"username":"u","password":"p"}}}"#;
    // A type-unaware client sends GENERIC (the proto3 default): the secret stays image-pull.
    f.update("ip", "d", string_spec(quay)).await.unwrap();
    assert_eq!(f.get_type("ip", "d", "").await, 1);
    let companion = companion_name("ip", "d", "");
    assert_eq!(
        f.object(&companion).await["data"][".dockerconfigjson"],
        b64(quay.as_bytes())
    );
    // Still a docker config, or refused with both objects unchanged.
    let e = f
        .update("ip", "d", string_spec("hunter2-not-json"))
        .await
        .unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument);
    assert!(!e.message.contains("hunter2"));
    assert_eq!(
        f.object(&companion).await["data"][".dockerconfigjson"],
        b64(quay.as_bytes())
    );
    // A missing companion is re-created.
    f.remove_raw(&companion).await;
    f.update("ip", "d", image_pull_spec(GHCR.as_bytes()))
        .await
        .unwrap();
    let repaired = f.object(&companion).await;
    assert_eq!(repaired["data"][".dockerconfigjson"], b64(GHCR.as_bytes()));
    assert_eq!(repaired["type"], "kubernetes.io/dockerconfigjson");
    // If the companion cannot be written, the previous value is put back.
    f.remove_raw(&companion).await;
    f.engine
        .faults()
        .inject(Some(Verb::Create), 1, Fault::InternalError);
    let e = f
        .update("ip", "d", image_pull_spec(quay.as_bytes()))
        .await
        .unwrap_err();
    assert_eq!(e.code, Code::Internal);
    let generic = f.object(&object_name("ip", "d", "")).await;
    assert_eq!(
        generic["data"]["u__org__flyte__domain__d__project____key__ip"],
        b64(GHCR.as_bytes())
    );
}

#[tokio::test]
async fn the_type_of_an_existing_secret_cannot_change() {
    let f = fixture();
    f.create(id("plain", "d", ""), string_spec("v"))
        .await
        .unwrap();
    let e = f
        .update("plain", "d", image_pull_spec(GHCR.as_bytes()))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            Code::InvalidArgument,
            "secret_spec.type: secret plain is SECRET_TYPE_GENERIC; the type of an existing secret cannot change (delete it and create it again)"
        )
    );
    assert_eq!(f.get_type("plain", "d", "").await, 0);
    assert!(!f.exists(&companion_name("plain", "d", "")).await);
}

#[tokio::test]
async fn image_pull_delete_removes_both_and_tolerates_a_missing_companion() {
    let f = fixture();
    let del = |name: &'static str| DeleteSecretRequest {
        id: id(name, "d", ""),
        include_system_secrets: false,
    };
    f.create(id("ip", "d", ""), image_pull_spec(GHCR.as_bytes()))
        .await
        .unwrap();
    f.svc.delete(del("ip")).await.unwrap();
    assert!(!f.exists(&object_name("ip", "d", "")).await);
    assert!(!f.exists(&companion_name("ip", "d", "")).await);
    // Missing companion: the delete still succeeds.
    f.create(id("ip2", "d", ""), image_pull_spec(GHCR.as_bytes()))
        .await
        .unwrap();
    f.remove_raw(&companion_name("ip2", "d", "")).await;
    f.svc.delete(del("ip2")).await.unwrap();
    assert!(!f.exists(&object_name("ip2", "d", "")).await);
    // A Secret at the companion's name that is not ours survives the delete.
    f.create(id("ip3", "d", ""), image_pull_spec(GHCR.as_bytes()))
        .await
        .unwrap();
    let foreign = companion_name("ip3", "d", "");
    f.remove_raw(&foreign).await;
    f.put_raw(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": foreign}, "stringData": {"x": "1"}}))
        .await;
    f.svc.delete(del("ip3")).await.unwrap();
    assert!(f.exists(&foreign).await);
    assert_eq!(
        f.svc.delete(del("ip3")).await.unwrap_err().code,
        Code::NotFound
    );
}

#[tokio::test]
async fn system_secrets_are_hidden_unless_asked_for() {
    let f = fixture();
    f.create(id("user", "d", ""), string_spec("v"))
        .await
        .unwrap();
    let key = "u__org__flyte__domain__d__project____key__platform";
    f.put_raw(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": flytesecret::naming::object_name(key).as_str(),
                     "labels": {"app.flyte.org/managed": "true", "app.flyte.org/domain": "d", "app.flyte.org/system": "true"}},
        "data": {key: "aGk="}}))
        .await;
    let names = |r: ListSecretsResponse| -> Vec<String> {
        let mut n: Vec<String> = r.secrets.into_iter().map(|s| s.id.unwrap().name).collect();
        n.sort();
        n
    };
    let list = |include: bool| ListSecretsRequest {
        domain: "d".into(),
        include_system_secrets: include,
        ..Default::default()
    };
    assert_eq!(names(f.svc.list(list(false)).await.unwrap()), ["user"]);
    assert_eq!(
        names(f.svc.list(list(true)).await.unwrap()),
        ["platform", "user"]
    );
    let get = |include: bool| GetSecretRequest {
        id: id("platform", "d", ""),
        include_system_secrets: include,
    };
    let hidden = f.svc.get(get(false)).await.unwrap_err();
    assert_eq!(
        (hidden.code, hidden.message.as_str()),
        (Code::NotFound, "secret platform not found")
    );
    f.svc.get(get(true)).await.unwrap();
    // Update cannot ask for system secrets, so it never touches them.
    assert_eq!(
        f.update("platform", "d", string_spec("new"))
            .await
            .unwrap_err()
            .code,
        Code::NotFound
    );
    let del = |include: bool| DeleteSecretRequest {
        id: id("platform", "d", ""),
        include_system_secrets: include,
    };
    assert_eq!(
        f.svc.delete(del(false)).await.unwrap_err().code,
        Code::NotFound
    );
    f.svc.delete(del(true)).await.unwrap();
    assert_eq!(names(f.svc.list(list(true)).await.unwrap()), ["user"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_image_pull_updates_all_succeed_and_leave_both_secrets_equal() {
    let f = Arc::new(fixture());
    f.create(id("race", "d", ""), image_pull_spec(GHCR.as_bytes()))
        .await
        .unwrap();
    for round in 0..10 {
        let mut tasks = Vec::new();
        for i in 1..=8 {
            let f = f.clone();
            tasks.push(tokio::spawn(async move {
                let value = format!(r#"{{"auths":{{"r{round}-{i}.io":{{"auth":"dTpw"}}}}}}"#);
                f.update("race", "d", image_pull_spec(value.as_bytes()))
                    .await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let generic = f.object(&object_name("race", "d", "")).await;
        let companion = f.object(&companion_name("race", "d", "")).await;
        assert_eq!(
            generic["data"]["u__org__flyte__domain__d__project____key__race"],
            companion["data"][".dockerconfigjson"],
            "round {round}"
        );
    }
}

/// A whole-namespace ListSecrets used to fetch every stored Secret, values included, in one
/// Kubernetes list: concurrent lists held the namespace's values many times over. It now reads
/// pages of at most `LIST_PAGE`, whatever the request's limit, with the same answer.
#[tokio::test]
async fn list_reads_kubernetes_in_bounded_pages_with_the_same_answer() {
    use flytesecret::service::LIST_PAGE;
    let (svc, calls) = recording_list_calls(std::time::Duration::ZERO);
    let limits = &calls.limits;
    let total = 2 * LIST_PAGE + 37;
    for i in 0..total {
        svc.create(CreateSecretRequest {
            id: id(&format!("s{i:04}"), "development", ""),
            secret_spec: string_spec("v"),
        })
        .await
        .unwrap();
    }
    let names = |r: &ListSecretsResponse| -> Vec<String> {
        r.secrets
            .iter()
            .map(|s| s.id.as_ref().unwrap().name.clone())
            .collect()
    };
    let expected: Vec<String> = (0..total).map(|i| format!("s{i:04}")).collect();

    limits.lock().unwrap().clear();
    let all = svc.list(ListSecretsRequest::default()).await.unwrap();
    let mut got = names(&all);
    got.sort();
    assert_eq!(got, expected);
    assert!(all.token.is_empty());
    let calls = std::mem::take(&mut *limits.lock().unwrap());
    assert_eq!(calls, vec![Some(LIST_PAGE); 3], "{calls:?}");

    // A limit above a page: the first `limit` Secrets over two calls, and a token that
    // resumes exactly after them.
    let limit = LIST_PAGE + 50;
    let first = svc
        .list(ListSecretsRequest {
            limit: limit as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(first.secrets.len(), limit);
    assert!(!first.token.is_empty());
    let calls = std::mem::take(&mut *limits.lock().unwrap());
    assert_eq!(calls, vec![Some(LIST_PAGE), Some(50)]);
    let rest = svc
        .list(ListSecretsRequest {
            token: first.token.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(rest.token.is_empty());
    let mut got = [names(&first), names(&rest)].concat();
    got.sort();
    assert_eq!(got, expected);
    assert_eq!(
        std::mem::take(&mut *limits.lock().unwrap()),
        vec![Some(LIST_PAGE)],
        "the rest is one page"
    );
    // A small limit is one call, as before.
    let small = svc
        .list(ListSecretsRequest {
            limit: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(small.secrets.len(), 3);
    assert_eq!(*limits.lock().unwrap(), vec![Some(3)]);
}

/// What the Kubernetes list calls of a [`recording_list_calls`] service looked like.
#[derive(Default)]
struct ListCalls {
    limits: std::sync::Mutex<Vec<Option<usize>>>,
    in_flight: std::sync::atomic::AtomicUsize,
    most_in_flight: std::sync::atomic::AtomicUsize,
}

/// A service over the embedded engine's real in-process transport, recording each Secrets
/// list call's `limit` and how many were in flight at once (each held for `hold`).
fn recording_list_calls(hold: std::time::Duration) -> (SecretService, Arc<ListCalls>) {
    use std::sync::atomic::Ordering::SeqCst;
    use tower::Service as _;
    let settings = Settings::default();
    let engine = Engine::ephemeral();
    engine.ensure_namespace(&settings.namespace);
    let calls = Arc::new(ListCalls::default());
    let transport = {
        let (inner, calls) = (
            flytesecret::kubeapi::http_face::InProcess(engine),
            calls.clone(),
        );
        tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let listing =
                req.method() == http::Method::GET && req.uri().path().ends_with("/secrets");
            if listing {
                let limit = req
                    .uri()
                    .query()
                    .unwrap_or("")
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("limit="))
                    .map(|l| l.parse().unwrap());
                calls.limits.lock().unwrap().push(limit);
            }
            let (mut inner, calls) = (inner.clone(), calls.clone());
            async move {
                if listing {
                    let now = calls.in_flight.fetch_add(1, SeqCst) + 1;
                    calls.most_in_flight.fetch_max(now, SeqCst);
                    tokio::time::sleep(hold).await;
                }
                let reply = inner.call(req).await;
                if listing {
                    calls.in_flight.fetch_sub(1, SeqCst);
                }
                reply
            }
        })
    };
    let kube = KubeBackend::new(
        kube::Client::new(transport, settings.namespace.clone()),
        0.0,
        1,
        None,
    );
    (SecretService::new(kube, settings, None), calls)
}

/// Many concurrent whole-namespace lists read at most `LIST_PAGES_AT_ONCE` pages at a time
/// (each page holds its Secrets' values), and every one of them still gets the whole answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_lists_read_a_bounded_number_of_pages_at_once() {
    use flytesecret::service::{LIST_PAGE, LIST_PAGES_AT_ONCE};
    use std::sync::atomic::Ordering::SeqCst;
    let (svc, calls) = recording_list_calls(std::time::Duration::from_millis(20));
    let svc = Arc::new(svc);
    let total = LIST_PAGE + 5;
    for i in 0..total {
        svc.create(CreateSecretRequest {
            id: id(&format!("s{i}"), "", ""),
            secret_spec: string_spec("v"),
        })
        .await
        .unwrap();
    }
    let lists: Vec<_> = (0..4 * LIST_PAGES_AT_ONCE)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move { svc.list(ListSecretsRequest::default()).await })
        })
        .collect();
    for list in lists {
        assert_eq!(list.await.unwrap().unwrap().secrets.len(), total);
    }
    let most = calls.most_in_flight.load(SeqCst);
    assert!(
        (2..=LIST_PAGES_AT_ONCE).contains(&most),
        "{most} list pages were read at once"
    );
    assert_eq!(
        calls.limits.lock().unwrap().len(),
        2 * 4 * LIST_PAGES_AT_ONCE
    );
}
