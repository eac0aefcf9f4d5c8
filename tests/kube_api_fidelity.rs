//! The fidelity checklist (kube-apiserver behaviour as `docs/kubernetes-api.md` describes it), one test per case,
//! against the embedded engine's request handler.

use bytes::Bytes;
use flytesecret::kubeapi::{Engine, Fault, Verb};
use http::{HeaderMap, Method, Request};
use serde_json::{Value, json};
use std::sync::Arc;

struct Reply {
    code: u16,
    headers: HeaderMap,
    raw: Bytes,
    body: Value,
}

struct Api(Arc<Engine>);

impl Api {
    fn new() -> Self {
        Api(Engine::ephemeral())
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self.0.handle(req.body(Bytes::from(body)).unwrap()).await;
        let code = resp.status().as_u16();
        let headers = resp.headers().clone();
        let raw = resp.into_body();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Reply {
            code,
            headers,
            raw,
            body,
        }
    }

    async fn json(&self, method: Method, path: &str, body: Value) -> Reply {
        self.send(
            method,
            path,
            &[("content-type", "application/json")],
            serde_json::to_vec(&body).unwrap(),
        )
        .await
    }

    async fn get_accepting(&self, path: &str, accept: &str) -> Reply {
        self.send(Method::GET, path, &[("accept", accept)], vec![])
            .await
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], vec![]).await
    }

    async fn create(&self, body: Value) -> Reply {
        self.json(Method::POST, SECRETS, body).await
    }
}

const SECRETS: &str = "/api/v1/namespaces/default/secrets";

fn s(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data})
}

#[track_caller]
fn assert_status(r: &Reply, code: u16, reason: &str, message: &str) {
    assert_eq!(r.code, code, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.body["kind"], "Status");
    assert_eq!(r.body["apiVersion"], "v1");
    assert_eq!(r.body["status"], "Failure");
    assert_eq!(r.body["code"], code);
    assert_eq!(r.body["reason"], reason, "{}", r.body);
    assert_eq!(r.body["message"], message);
}

fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

const SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

#[tokio::test]
async fn case_01_create_returns_the_stored_secret() {
    let api = Api::new();
    let r = api.create(s("a", json!({"k": "dg=="}))).await;
    assert_eq!(r.code, 201);
    let b = &r.body;
    assert_eq!(
        (b["kind"].as_str(), b["apiVersion"].as_str()),
        (Some("Secret"), Some("v1"))
    );
    assert_eq!(b["metadata"]["namespace"], "default");
    assert!(uuid::Uuid::parse_str(b["metadata"]["uid"].as_str().unwrap()).is_ok());
    assert!(rv(b) > 0);
    let ts = b["metadata"]["creationTimestamp"].as_str().unwrap();
    assert_eq!(ts.len(), 20);
    assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T');
    assert_eq!(b["type"], "Opaque");
    assert_eq!(b["data"]["k"], "dg==");
    assert!(b.get("stringData").is_none());
    for absent in ["generation", "selfLink"] {
        assert!(b["metadata"].get(absent).is_none());
    }
    assert!(r.raw.ends_with(b"\n"));
}

#[tokio::test]
async fn case_02_create_twice_is_already_exists() {
    let api = Api::new();
    api.create(s("a", json!({"k": "dg=="}))).await;
    let r = api.create(s("a", json!({"k": "dg=="}))).await;
    assert_status(&r, 409, "AlreadyExists", "secrets \"a\" already exists");
    assert_eq!(r.body["details"], json!({"name": "a", "kind": "secrets"}));
}

#[tokio::test]
async fn case_03_string_data_is_merged_into_data() {
    let api = Api::new();
    let r = api
        .create(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3"},
                       "data": {"u": "eA=="}, "stringData": {"u": "admin", "v": "x"}}),
        )
        .await;
    assert_eq!(r.code, 201);
    assert_eq!(r.body["data"], json!({"u": "YWRtaW4=", "v": "eA=="}));
    assert!(r.body.get("stringData").is_none());
}

#[tokio::test]
async fn case_04_type_defaults_to_opaque_and_custom_types_pass() {
    let api = Api::new();
    assert_eq!(api.create(s("a", json!({}))).await.body["type"], "Opaque");
    let mut custom = s("b", json!({}));
    custom["type"] = json!("example.com/custom");
    assert_eq!(api.create(custom).await.body["type"], "example.com/custom");
}

#[tokio::test]
async fn case_05_invalid_name() {
    let api = Api::new();
    let r = api.create(s("Bad_Name", json!({}))).await;
    let body = format!("Invalid value: \"Bad_Name\": {SUBDOMAIN}");
    assert_status(
        &r,
        422,
        "Invalid",
        &format!("Secret \"Bad_Name\" is invalid: metadata.name: {body}"),
    );
    assert_eq!(r.body["details"]["kind"], "Secret");
    assert_eq!(
        r.body["details"]["causes"],
        json!([{"reason": "FieldValueInvalid", "message": body, "field": "metadata.name"}])
    );
}

#[tokio::test]
async fn case_06_name_length_limit() {
    let api = Api::new();
    let long = "a".repeat(254);
    let r = api.create(s(&long, json!({}))).await;
    assert_eq!(r.code, 422);
    assert_eq!(
        r.body["details"]["causes"][0]["message"],
        format!("Invalid value: \"{long}\": must be no more than 253 characters")
    );
    assert_eq!(api.create(s(&"a".repeat(253), json!({}))).await.code, 201);
}

#[tokio::test]
async fn case_07_name_required() {
    let api = Api::new();
    let r = api
        .create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {}}))
        .await;
    assert_status(
        &r,
        422,
        "Invalid",
        "Secret \"\" is invalid: metadata.name: Required value: name or generateName is required",
    );
    assert_eq!(
        r.body["details"]["causes"][0]["reason"],
        "FieldValueRequired"
    );
}

#[tokio::test]
async fn case_08_generate_name() {
    let api = Api::new();
    let r = api
        .create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"generateName": "gen-"}}))
        .await;
    assert_eq!(r.code, 201);
    let name = r.body["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    assert!(
        name[4..]
            .chars()
            .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
    );
    assert_eq!(r.body["metadata"]["generateName"], "gen-");
}

#[tokio::test]
async fn case_09_create_in_missing_namespace() {
    let api = Api::new();
    let r = api
        .json(
            Method::POST,
            "/api/v1/namespaces/ghost/secrets",
            s("a", json!({})),
        )
        .await;
    assert_status(&r, 404, "NotFound", "namespaces \"ghost\" not found");
    assert_eq!(
        r.body["details"],
        json!({"name": "ghost", "kind": "namespaces"})
    );
}

#[tokio::test]
async fn case_10_missing_namespace_beats_invalid_body() {
    let api = Api::new();
    let r = api
        .json(
            Method::POST,
            "/api/v1/namespaces/ghost/secrets",
            s("Bad_Name", json!({"bad key": "dg=="})),
        )
        .await;
    assert_status(&r, 404, "NotFound", "namespaces \"ghost\" not found");
}

#[tokio::test]
async fn case_11_invalid_data_keys() {
    let api = Api::new();
    let r = api.create(s("a", json!({"bad key": "dg=="}))).await;
    assert_eq!(r.code, 422);
    assert_eq!(r.body["details"]["causes"][0]["field"], "data[bad key]");
    assert_eq!(
        r.body["details"]["causes"][0]["message"],
        "Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
    );
    let r = api.create(s("b", json!({"..": "dg=="}))).await;
    assert_eq!(
        r.body["details"]["causes"][0],
        json!({"reason": "FieldValueInvalid", "message": "Invalid value: \"..\": must not be '..'", "field": "data[..]"})
    );
}

#[tokio::test]
async fn case_12_size_limit() {
    use base64::Engine as _;
    let api = Api::new();
    let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![b'x'; n]);
    let r = api
        .create(s("big", json!({"a": b64(1_048_000), "b": b64(577)})))
        .await;
    assert_status(
        &r,
        422,
        "Invalid",
        "Secret \"big\" is invalid: data: Too long: may not be more than 1048576 bytes",
    );
    assert_eq!(
        r.body["details"]["causes"][0]["reason"],
        "FieldValueTooLong"
    );
    assert_eq!(r.body["details"]["causes"][0]["field"], "data");
    assert_eq!(
        api.create(s("big", json!({"a": b64(1_048_000), "b": b64(576)})))
            .await
            .code,
        201
    );
}

#[tokio::test]
async fn case_13_14_dockerconfigjson() {
    let api = Api::new();
    let mut missing = s("d", json!({}));
    missing["type"] = json!("kubernetes.io/dockerconfigjson");
    let r = api.create(missing).await;
    assert_eq!(
        r.body["message"],
        "Secret \"d\" is invalid: data[.dockerconfigjson]: Required value"
    );
    let mut bad = s("d", json!({".dockerconfigjson": "e2JhZA=="}));
    bad["type"] = json!("kubernetes.io/dockerconfigjson");
    let r = api.create(bad).await;
    assert_eq!(
        r.body["details"]["causes"][0]["field"],
        "data[.dockerconfigjson]"
    );
    assert!(
        r.body["details"]["causes"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid value: \"<secret contents redacted>\": ")
    );
}

#[tokio::test]
async fn case_15_tls_requires_both_keys_in_order() {
    let api = Api::new();
    let mut tls = s("t", json!({}));
    tls["type"] = json!("kubernetes.io/tls");
    let r = api.create(tls).await;
    assert_status(
        &r,
        422,
        "Invalid",
        "Secret \"t\" is invalid: [data[tls.crt]: Required value, data[tls.key]: Required value]",
    );
    let fields: Vec<&str> = r.body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["data[tls.crt]", "data[tls.key]"]);
}

#[tokio::test]
async fn case_16_basic_auth() {
    let api = Api::new();
    let mut one = s("b1", json!({"username": "dQ=="}));
    one["type"] = json!("kubernetes.io/basic-auth");
    assert_eq!(api.create(one).await.code, 201);
    let mut none = s("b2", json!({}));
    none["type"] = json!("kubernetes.io/basic-auth");
    let r = api.create(none).await;
    assert_eq!(r.code, 422);
    assert_eq!(r.body["details"]["causes"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn case_17_namespace_mismatch() {
    let api = Api::new();
    let r = api.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a", "namespace": "other"}})).await;
    assert_status(
        &r,
        400,
        "BadRequest",
        "the namespace of the provided object does not match the namespace sent on the request",
    );
}

#[tokio::test]
async fn case_18_resource_version_on_create() {
    let api = Api::new();
    let r = api.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a", "resourceVersion": "5"}})).await;
    assert_eq!(r.code, 500);
    assert!(r.body.get("reason").is_none());
    assert_eq!(
        r.body["message"],
        "resourceVersion should not be set on objects to be created"
    );
    for (name, v) in [("b", "0"), ("c", "abc")] {
        let r = api.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "resourceVersion": v}})).await;
        assert_eq!(r.code, 201);
    }
}

#[tokio::test]
async fn case_19_unpadded_base64() {
    let api = Api::new();
    let r = api.create(s("a", json!({"k": "dg"}))).await;
    assert_eq!(
        (r.code, r.body["reason"].as_str()),
        (400, Some("BadRequest"))
    );
    assert!(r.body["message"].as_str().unwrap().starts_with(
        "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte"
    ));
}

#[tokio::test]
async fn case_20_21_unknown_fields_strict_and_warn() {
    let api = Api::new();
    let mut body = s("a", json!({}));
    body["foo"] = json!(1);
    let r = api
        .json(
            Method::POST,
            &format!("{SECRETS}?fieldValidation=Strict"),
            body.clone(),
        )
        .await;
    assert_eq!(r.code, 400);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("strict decoding error: unknown field \"foo\"")
    );
    let r = api.create(body).await;
    assert_eq!(r.code, 201);
    assert_eq!(r.headers["warning"], "299 - \"unknown field \\\"foo\\\"\"");
}

#[tokio::test]
async fn case_22_invalid_label_value() {
    let api = Api::new();
    let r = api.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a", "labels": {"k": "bad value!"}}})).await;
    assert_eq!(r.body["details"]["causes"][0]["field"], "metadata.labels");
    assert!(
        r.body["details"]["causes"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with(
                "Invalid value: \"bad value!\": a valid label must be an empty string or consist of"
            )
    );
}

#[tokio::test]
async fn case_23_bad_field_validation_option() {
    let api = Api::new();
    let r = api
        .json(
            Method::POST,
            &format!("{SECRETS}?fieldValidation=Foo"),
            s("a", json!({})),
        )
        .await;
    assert_eq!(r.code, 422);
    assert_eq!(
        r.body["message"],
        "CreateOptions.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"Foo\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
    );
}

#[tokio::test]
async fn case_24_content_types() {
    let api = Api::new();
    let body = serde_json::to_vec(&s("a", json!({}))).unwrap();
    let r = api
        .send(
            Method::POST,
            SECRETS,
            &[("content-type", "text/plain")],
            body.clone(),
        )
        .await;
    assert_eq!(
        (r.code, r.body["reason"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );
    assert_eq!(api.send(Method::POST, SECRETS, &[], body).await.code, 201);
}

#[tokio::test]
async fn case_25_get_returns_the_created_object() {
    let api = Api::new();
    let created = api.create(s("a", json!({"k": "dg=="}))).await.body;
    assert_eq!(api.get(&format!("{SECRETS}/a")).await.body, created);
}

#[tokio::test]
async fn case_26_27_get_missing() {
    let api = Api::new();
    let r = api.get(&format!("{SECRETS}/nope")).await;
    assert_status(&r, 404, "NotFound", "secrets \"nope\" not found");
    assert_eq!(
        r.body["details"],
        json!({"name": "nope", "kind": "secrets"})
    );
    let r = api.get("/api/v1/namespaces/ghost/secrets/a").await;
    assert_status(&r, 404, "NotFound", "secrets \"a\" not found");
}

#[tokio::test]
async fn case_28_29_30_replace_and_conflicts() {
    let api = Api::new();
    let created = api.create(s("a", json!({"k": "dg=="}))).await.body;
    let mut changed = created.clone();
    changed["data"] = json!({"k": "eA=="});
    let r = api
        .json(Method::PUT, &format!("{SECRETS}/a"), changed.clone())
        .await;
    assert_eq!(r.code, 200);
    assert!(rv(&r.body) > rv(&created));
    assert_eq!(r.body["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(
        r.body["metadata"]["creationTimestamp"],
        created["metadata"]["creationTimestamp"]
    );
    let stale = api
        .json(Method::PUT, &format!("{SECRETS}/a"), changed.clone())
        .await;
    assert_status(
        &stale,
        409,
        "Conflict",
        "Operation cannot be fulfilled on secrets \"a\": the object has been modified; please apply your changes to the latest version and try again",
    );
    assert_eq!(
        stale.body["details"],
        json!({"name": "a", "kind": "secrets"})
    );
    for v in [None, Some("0")] {
        let mut body = changed.clone();
        body["data"] = json!({"k": "eQ=="});
        match v {
            None => body["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("resourceVersion")
                .map(|_| ())
                .unwrap(),
            Some(v) => body["metadata"]["resourceVersion"] = json!(v),
        }
        assert_eq!(
            api.json(Method::PUT, &format!("{SECRETS}/a"), body)
                .await
                .code,
            200
        );
    }
    assert_eq!(
        api.get(&format!("{SECRETS}/a")).await.body["data"]["k"],
        "eQ=="
    );
}

#[tokio::test]
async fn case_31_noop_replace_keeps_the_resource_version() {
    let api = Api::new();
    let created = api.create(s("a", json!({"k": "dg=="}))).await.body;
    let list_rv = rv(&api.get(SECRETS).await.body);
    let r = api
        .json(Method::PUT, &format!("{SECRETS}/a"), created.clone())
        .await;
    assert_eq!(r.code, 200);
    assert_eq!(rv(&r.body), rv(&created));
    assert_eq!(rv(&api.get(SECRETS).await.body), list_rv);
}

#[tokio::test]
async fn case_32_name_mismatch() {
    let api = Api::new();
    api.create(s("a", json!({}))).await;
    let r = api
        .json(Method::PUT, &format!("{SECRETS}/a"), s("b", json!({})))
        .await;
    assert_status(
        &r,
        400,
        "BadRequest",
        "the name of the object (b) does not match the name on the URL (a)",
    );
    let r = api
        .json(
            Method::PUT,
            &format!("{SECRETS}/a"),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {}}),
        )
        .await;
    assert_status(
        &r,
        400,
        "BadRequest",
        "the name of the object () does not match the name on the URL (a)",
    );
}

#[tokio::test]
async fn case_33_put_or_delete_missing() {
    let api = Api::new();
    let r = api
        .json(Method::PUT, &format!("{SECRETS}/zz"), s("zz", json!({})))
        .await;
    assert_status(&r, 404, "NotFound", "secrets \"zz\" not found");
    let r = api
        .json(Method::DELETE, &format!("{SECRETS}/zz"), json!({}))
        .await;
    assert_status(&r, 404, "NotFound", "secrets \"zz\" not found");
}

#[tokio::test]
async fn case_34_35_type_is_immutable() {
    let api = Api::new();
    api.create(s("a", json!({}))).await;
    let mut tls = s("a", json!({"tls.crt": "", "tls.key": ""}));
    tls["type"] = json!("kubernetes.io/tls");
    let r = api
        .json(Method::PUT, &format!("{SECRETS}/a"), tls.clone())
        .await;
    assert_eq!(
        r.body["message"],
        "Secret \"a\" is invalid: type: Invalid value: \"kubernetes.io/tls\": field is immutable"
    );
    tls["metadata"]["name"] = json!("t");
    api.create(tls).await;
    let r = api
        .json(
            Method::PUT,
            &format!("{SECRETS}/t"),
            s("t", json!({"tls.crt": "", "tls.key": ""})),
        )
        .await;
    assert_eq!(
        r.body["message"],
        "Secret \"t\" is invalid: type: Invalid value: \"Opaque\": field is immutable"
    );
}

#[tokio::test]
async fn case_36_immutable_secrets() {
    let api = Api::new();
    let mut body = s("i", json!({"k": "dg=="}));
    body["immutable"] = json!(true);
    api.create(body.clone()).await;
    let mut changed = body.clone();
    changed["data"] = json!({"k": "eA=="});
    let r = api
        .json(Method::PUT, &format!("{SECRETS}/i"), changed)
        .await;
    assert_status(
        &r,
        422,
        "Invalid",
        "Secret \"i\" is invalid: data: Forbidden: field is immutable when `immutable` is set",
    );
    assert_eq!(
        r.body["details"]["causes"][0],
        json!({"reason": "FieldValueForbidden", "message": "Forbidden: field is immutable when `immutable` is set", "field": "data"})
    );
    let mut labelled = body.clone();
    labelled["metadata"]["labels"] = json!({"a": "b"});
    assert_eq!(
        api.json(Method::PUT, &format!("{SECRETS}/i"), labelled)
            .await
            .code,
        200
    );
    let mut unset = body;
    unset["immutable"] = json!(false);
    let r = api.json(Method::PUT, &format!("{SECRETS}/i"), unset).await;
    assert_eq!(r.body["details"]["causes"][0]["field"], "immutable");
}

#[tokio::test]
async fn case_37_38_uid_precondition_and_conflict_beats_validation() {
    let api = Api::new();
    let created = api.create(s("a", json!({}))).await.body;
    let mut wrong_uid = created.clone();
    wrong_uid["metadata"]["uid"] = json!("00000000-0000-0000-0000-000000000000");
    let r = api
        .json(Method::PUT, &format!("{SECRETS}/a"), wrong_uid)
        .await;
    assert_eq!((r.code, r.body["reason"].as_str()), (409, Some("Conflict")));
    let m = r.body["message"].as_str().unwrap();
    assert!(
        m.starts_with("Operation cannot be fulfilled on secrets \"a\": ")
            && m.contains("Precondition failed: UID in precondition:")
    );
    let mut stale_and_invalid = created.clone();
    stale_and_invalid["metadata"]["resourceVersion"] = json!("1");
    stale_and_invalid["data"] = json!({"bad key": ""});
    assert_eq!(
        api.json(Method::PUT, &format!("{SECRETS}/a"), stale_and_invalid)
            .await
            .code,
        409
    );
}

#[tokio::test]
async fn case_39_40_server_owned_fields_and_string_data_on_put() {
    let api = Api::new();
    let created = api.create(s("a", json!({}))).await.body;
    let mut body = created.clone();
    body["metadata"]["creationTimestamp"] = json!("2001-01-01T00:00:00Z");
    body["metadata"]["generation"] = json!(7);
    body["stringData"] = json!({"k": "new"});
    let r = api.json(Method::PUT, &format!("{SECRETS}/a"), body).await;
    assert_eq!(r.code, 200);
    assert_eq!(
        r.body["metadata"]["creationTimestamp"],
        created["metadata"]["creationTimestamp"]
    );
    assert!(r.body["metadata"].get("generation").is_none());
    assert_eq!(r.body["data"]["k"], "bmV3");
    assert!(r.body.get("stringData").is_none());
}

#[tokio::test]
async fn case_41_42_delete_answers_success_status() {
    let api = Api::new();
    for (name, body) in [
        ("a", Some(json!({}))),
        (
            "b",
            Some(
                json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}),
            ),
        ),
        ("c", None),
    ] {
        let uid = api.create(s(name, json!({}))).await.body["metadata"]["uid"].clone();
        let path = format!("{SECRETS}/{name}");
        let r = match body {
            Some(b) => api.json(Method::DELETE, &path, b).await,
            None => api.send(Method::DELETE, &path, &[], vec![]).await,
        };
        assert_eq!(r.code, 200);
        assert_eq!(
            r.body,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": {"name": name, "kind": "secrets", "uid": uid}})
        );
        assert_eq!(api.get(&path).await.code, 404);
    }
}

#[tokio::test]
async fn case_43_delete_uid_precondition() {
    let api = Api::new();
    let uid = api.create(s("a", json!({}))).await.body["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = api
        .json(
            Method::DELETE,
            &format!("{SECRETS}/a"),
            json!({"preconditions": {"uid": "wrong"}}),
        )
        .await;
    assert_status(
        &r,
        409,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on Secret \"a\": the UID in the precondition (wrong) does not match the UID in record ({uid}). The object might have been deleted and then recreated"
        ),
    );
    assert_eq!(r.body["details"]["kind"], "Secret");
    assert_eq!(api.get(&format!("{SECRETS}/a")).await.code, 200);
}

#[tokio::test]
async fn case_44_bad_propagation_policy() {
    let api = Api::new();
    api.create(s("a", json!({}))).await;
    let r = api
        .json(
            Method::DELETE,
            &format!("{SECRETS}/a"),
            json!({"propagationPolicy": "Bogus"}),
        )
        .await;
    assert_eq!(r.code, 422);
    assert_eq!(
        r.body["message"],
        "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"Bogus\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
    );
}

#[tokio::test]
async fn case_45_finalizers_defer_deletion() {
    let api = Api::new();
    let created = api.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "f", "finalizers": ["example.com/hold"]}})).await.body;
    let r = api
        .json(Method::DELETE, &format!("{SECRETS}/f"), json!({}))
        .await;
    assert_eq!(r.code, 200);
    assert_eq!(r.body["kind"], "Secret");
    assert!(r.body["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(r.body["metadata"]["deletionGracePeriodSeconds"], 0);
    assert!(rv(&r.body) > rv(&created));
    assert_eq!(api.get(&format!("{SECRETS}/f")).await.code, 200);
    let again = api.create(s("f", json!({}))).await;
    assert_status(
        &again,
        409,
        "AlreadyExists",
        "object is being deleted: secrets \"f\" already exists",
    );
    let mut release = r.body.clone();
    release["metadata"]["finalizers"] = json!([]);
    assert_eq!(
        api.json(Method::PUT, &format!("{SECRETS}/f"), release)
            .await
            .code,
        200
    );
    assert_eq!(api.get(&format!("{SECRETS}/f")).await.code, 404);
}

#[tokio::test]
async fn case_46_list_in_missing_namespace_is_empty() {
    let api = Api::new();
    let r = api.get("/api/v1/namespaces/ghost/secrets").await;
    assert_eq!(r.code, 200);
    assert_eq!(r.body["kind"], "SecretList");
    assert_eq!(r.body["items"], json!([]));
    assert!(r.body["metadata"]["resourceVersion"].is_string());
}

#[tokio::test]
async fn case_47_list_is_ordered_by_name() {
    let api = Api::new();
    let mut max_rv = 0;
    for n in ["c", "a", "b"] {
        max_rv = max_rv.max(rv(&api.create(s(n, json!({}))).await.body));
    }
    let r = api.get(SECRETS).await;
    let names: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(r.body["items"][0].get("kind").is_none());
    assert!(rv(&r.body) >= max_rv);
}

async fn page(api: &Api, query: &str) -> Value {
    let r = api.get(&format!("{SECRETS}?{query}")).await;
    assert_eq!(r.code, 200, "{}", r.body);
    r.body
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn case_48_49_paging_is_a_consistent_snapshot() {
    let api = Api::new();
    for n in ["a", "b", "c", "d", "e"] {
        api.create(s(n, json!({"k": "dg=="}))).await;
    }
    let p1 = page(&api, "limit=2").await;
    assert_eq!(names(&p1), ["a", "b"]);
    assert_eq!(p1["metadata"]["remainingItemCount"], 3);
    api.create(s("zz", json!({}))).await;
    api.json(Method::DELETE, &format!("{SECRETS}/c"), json!({}))
        .await;
    let token = p1["metadata"]["continue"].as_str().unwrap();
    let p2 = page(&api, &format!("limit=2&continue={token}")).await;
    assert_eq!(names(&p2), ["c", "d"]);
    assert_eq!(p2["items"][0]["data"]["k"], "dg==");
    assert_eq!(p2["metadata"]["remainingItemCount"], 1);
    let p3 = page(
        &api,
        &format!(
            "limit=2&continue={}",
            p2["metadata"]["continue"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(names(&p3), ["e"]);
    assert!(
        p3["metadata"].get("continue").is_none()
            && p3["metadata"].get("remainingItemCount").is_none()
    );
    assert_eq!(
        p1["metadata"]["resourceVersion"],
        p2["metadata"]["resourceVersion"]
    );
    assert_eq!(
        p2["metadata"]["resourceVersion"],
        p3["metadata"]["resourceVersion"]
    );
}

#[tokio::test]
async fn case_50_paging_with_a_selector() {
    let api = Api::new();
    for (n, app) in [("a", "x"), ("b", "y"), ("c", "x"), ("d", "y")] {
        api.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": n, "labels": {"app": app}}})).await;
    }
    let mut token = String::new();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let q = if token.is_empty() {
            "labelSelector=app%3Dx&limit=1".to_owned()
        } else {
            format!("labelSelector=app%3Dx&limit=1&continue={token}")
        };
        let p = page(&api, &q).await;
        assert!(p["metadata"].get("remainingItemCount").is_none());
        seen.extend(names(&p));
        match p["metadata"]["continue"].as_str() {
            Some(t) => token = t.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, ["a", "c"]);
}

#[tokio::test]
async fn case_51_52_label_selector_semantics() {
    let api = Api::new();
    for (n, labels) in [
        ("p", json!({"env": "prod"})),
        ("d", json!({"env": "dev"})),
        ("u", json!({})),
    ] {
        api.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": n, "labels": labels}})).await;
    }
    for (sel, count) in [
        ("env+in+%28prod%2Cdev%29", 2),
        ("env%21%3Dprod", 2),
        ("%21env", 1),
        ("env", 2),
    ] {
        assert_eq!(
            names(&page(&api, &format!("labelSelector={sel}")).await).len(),
            count,
            "{sel}"
        );
    }
    let r = api
        .get(&format!("{SECRETS}?labelSelector=env+in+%28%29"))
        .await;
    assert_eq!(
        (r.code, r.body["reason"].as_str()),
        (400, Some("BadRequest"))
    );
}

#[tokio::test]
async fn case_53_field_selectors() {
    let api = Api::new();
    api.create(s("a", json!({}))).await;
    api.create(s("b", json!({}))).await;
    assert_eq!(
        names(&page(&api, "fieldSelector=metadata.name%3Da").await),
        ["a"]
    );
    assert_eq!(
        names(&page(&api, "fieldSelector=type%3DOpaque").await).len(),
        2
    );
    let r = api.get(&format!("{SECRETS}?fieldSelector=foo%3Dbar")).await;
    assert_status(&r, 400, "BadRequest", "field label not supported: foo");
}

/// Creates `a` and `b`, lists one per page, and returns the continue token of the first page.
async fn two_secrets_and_a_continue_token(api: &Api) -> String {
    for n in ["a", "b"] {
        api.create(s(n, json!({}))).await;
    }
    let first = page(api, "limit=1").await;
    first["metadata"]["continue"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn case_54_bad_continue_requests() {
    let api = Api::new();
    let token = two_secrets_and_a_continue_token(&api).await;
    let r = api
        .get(&format!("{SECRETS}?continue={token}&resourceVersion=5"))
        .await;
    assert_status(
        &r,
        400,
        "BadRequest",
        "specifying resource version is not allowed when using continue",
    );
    let r = api.get(&format!("{SECRETS}?continue=abc")).await;
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid continue token: continue key is not valid")
    );
}

#[tokio::test]
async fn case_55_expired_continue_token() {
    let api = Api::new();
    let token = two_secrets_and_a_continue_token(&api).await;
    api.0.compact();
    let r = api
        .get(&format!("{SECRETS}?limit=1&continue={token}"))
        .await;
    assert_eq!((r.code, r.body["reason"].as_str()), (410, Some("Expired")));
    assert!(r.body["message"].as_str().unwrap().starts_with(
        "The provided continue parameter is too old to display a consistent list result."
    ));
    assert!(!r.body["metadata"]["continue"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn case_56_unlimited_lists() {
    let api = Api::new();
    for n in ["a", "b", "c"] {
        api.create(s(n, json!({}))).await;
    }
    for q in ["limit=0", "resourceVersion=0&limit=1"] {
        let p = page(&api, q).await;
        assert_eq!(names(&p).len(), 3, "{q}");
        assert!(p["metadata"].get("continue").is_none());
    }
}

#[tokio::test]
async fn case_57_resource_version_match_needs_a_version() {
    let api = Api::new();
    let r = api
        .get(&format!("{SECRETS}?resourceVersionMatch=Exact"))
        .await;
    assert_eq!(r.code, 422);
    assert_eq!(
        r.body["message"],
        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
    );
}

const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

#[tokio::test]
async fn case_58_table_output() {
    let api = Api::new();
    for n in ["a", "b"] {
        api.create(s(n, json!({"x": "", "y": ""}))).await;
    }
    let r = api
        .send(
            Method::GET,
            &format!("{SECRETS}?limit=1"),
            &[("accept", TABLE_ACCEPT)],
            vec![],
        )
        .await;
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(
        (r.body["kind"].as_str(), r.body["apiVersion"].as_str()),
        (Some("Table"), Some("meta.k8s.io/v1"))
    );
    let cols: Vec<&str> = r.body["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["Name", "Type", "Data", "Age"]);
    assert_eq!(r.body["columnDefinitions"][0]["format"], "name");
    assert_eq!(
        r.body["rows"][0]["cells"].as_array().unwrap()[0..3],
        [json!("a"), json!("Opaque"), json!(2)]
    );
    assert_eq!(r.body["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert!(r.body["metadata"]["continue"].is_string());
}

#[tokio::test]
async fn case_59_discovery_never_404s() {
    let api = Api::new();
    let accept =
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    for path in ["/api", "/apis", "/api/v1", "/version"] {
        let r = api
            .send(Method::GET, path, &[("accept", accept)], vec![])
            .await;
        assert_eq!(r.code, 200, "{path}");
    }
    let r = api.get("/nowhere").await;
    assert_eq!((r.code, &r.raw[..]), (404, &b"404 page not found"[..]));
}

#[tokio::test]
async fn case_60_fault_injection() {
    let api = Api::new();
    api.create(s("a", json!({}))).await;
    api.0.faults().inject(
        Some(Verb::Get),
        1,
        Fault::TooManyRequests { retry_after: 1 },
    );
    let r = api.get(&format!("{SECRETS}/a")).await;
    assert_eq!(
        (r.code, r.headers["retry-after"].to_str().unwrap()),
        (429, "1")
    );
    assert_eq!(api.get(&format!("{SECRETS}/a")).await.code, 200);
    api.0
        .faults()
        .inject(Some(Verb::List), 1, Fault::ServerTimeout { retry_after: 2 });
    let r = api.get(SECRETS).await;
    assert_status(
        &r,
        500,
        "ServerTimeout",
        "The list operation against secrets could not be completed at this time, please try again.",
    );
    assert_eq!(r.headers["retry-after"], "2");
    api.0.faults().inject(None, 1, Fault::InternalError);
    assert_eq!(api.get(&format!("{SECRETS}/a")).await.code, 500);
}

#[tokio::test]
async fn namespace_validation_names_the_namespace_kind() {
    let api = Api::new();
    let r = api
        .json(
            Method::POST,
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "Bad_NS"}}),
        )
        .await;
    assert_eq!((r.code, r.body["reason"].as_str()), (422, Some("Invalid")));
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .starts_with("Namespace \"Bad_NS\" is invalid: metadata.name: "),
        "{}",
        r.body
    );
    assert_eq!(r.body["details"]["kind"], "Namespace");
    let r = api.json(Method::POST, "/api/v1/namespaces", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ok", "labels": {"a": "b"}}})).await;
    assert_eq!(r.code, 201);
    assert_eq!(
        r.body["metadata"]["labels"],
        json!({"a": "b", "kubernetes.io/metadata.name": "ok"})
    );
}

// ---------------------------------------------------------------------------------------------
// Issue 13: bodies without apiVersion/kind, Namespaces, PATCH, server-side apply, watch.
// Texts are pinned to kube-apiserver's source; each test names the file.

impl Api {
    async fn patch(&self, path: &str, content_type: &str, body: &str) -> Reply {
        self.send(
            Method::PATCH,
            path,
            &[("content-type", content_type)],
            body.as_bytes().to_vec(),
        )
        .await
    }

    /// Opens a watch and returns its events as they arrive.
    async fn watch(&self, path: &str, headers: &[(&str, &str)]) -> Watch {
        let mut req = Request::builder().method(Method::GET).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self.0.respond(req.body(Bytes::new()).unwrap()).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/json");
        Watch {
            body: resp.into_body(),
            buf: Vec::new(),
        }
    }
}

struct Watch {
    body: flytesecret::kubeapi::watch::Body,
    buf: Vec<u8>,
}

impl Watch {
    /// The next event, or None when the stream ends; panics after 5 s of silence.
    async fn next(&mut self) -> Option<Value> {
        use http_body_util::BodyExt;
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            let frame = tokio::time::timeout(std::time::Duration::from_secs(5), self.body.frame())
                .await
                .expect("no watch event within 5 s");
            match frame {
                None => return None,
                Some(f) => self.buf.extend_from_slice(&f.unwrap().into_data().unwrap()),
            }
        }
    }

    async fn event(&mut self) -> (String, Value) {
        let e = self.next().await.expect("the watch ended");
        (e["type"].as_str().unwrap().to_owned(), e["object"].clone())
    }
}

const MERGE: &str = "application/merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";
const APPLY: &str = "application/apply-patch+yaml";

#[tokio::test]
async fn bodies_without_api_version_and_kind_take_them_from_the_url() {
    // apiserver/pkg/endpoints/handlers/create.go and update.go decode with the request's kind as
    // the default (`scope.Kind`), so the Python client's bodies without TypeMeta are Secrets.
    let api = Api::new();
    let r = api
        .create(json!({"metadata": {"name": "bare"}, "data": {"k": "dg=="}}))
        .await;
    assert_eq!(r.code, 201, "{}", r.body);
    assert_eq!(
        (r.body["kind"].as_str(), r.body["apiVersion"].as_str()),
        (Some("Secret"), Some("v1"))
    );
    let r = api
        .json(
            Method::PUT,
            &format!("{SECRETS}/bare"),
            json!({"metadata": {"name": "bare"}, "data": {"k": "eA=="}}),
        )
        .await;
    assert_eq!((r.code, r.body["data"]["k"].as_str()), (200, Some("eA==")));
    let r = api
        .json(
            Method::POST,
            "/api/v1/namespaces",
            json!({"metadata": {"name": "bare-ns"}}),
        )
        .await;
    assert_eq!((r.code, r.body["kind"].as_str()), (201, Some("Namespace")));
    // A different kind is still refused with the decoder's text.
    let r = api
        .create(json!({"kind": "ConfigMap", "metadata": {"name": "cm"}}))
        .await;
    assert_status(
        &r,
        400,
        "BadRequest",
        "ConfigMap in version \"v1\" cannot be handled as a Secret: no kind \"ConfigMap\" is registered for version \"v1\"",
    );
}

#[tokio::test]
async fn a_fresh_server_has_the_default_namespaces_with_phase_and_table() {
    let api = Api::new();
    let r = api.get("/api/v1/namespaces").await;
    assert_eq!(r.body["kind"], "NamespaceList");
    let names: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    for n in r.body["items"].as_array().unwrap() {
        assert_eq!(n["status"]["phase"], "Active");
        assert_eq!(n["spec"]["finalizers"], json!(["kubernetes"]));
    }
    let r = api
        .send(
            Method::GET,
            "/api/v1/namespaces",
            &[("accept", TABLE_ACCEPT)],
            vec![],
        )
        .await;
    let cols: Vec<&str> = r.body["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["Name", "Status", "Age"]);
    assert_eq!(
        r.body["rows"][0]["cells"].as_array().unwrap()[0..2],
        [json!("default"), json!("Active")]
    );
    let r = api
        .send(
            Method::GET,
            "/api/v1/namespaces/kube-system",
            &[("accept", TABLE_ACCEPT)],
            vec![],
        )
        .await;
    assert_eq!(r.body["rows"][0]["cells"][1], "Active");
    let r = api
        .get("/api/v1/namespaces?fieldSelector=metadata.name%3Dkube-public")
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
}

/// A protobuf Namespace as client-go's typed clientset sends it (`kubectl create namespace`).
fn protobuf_namespace(name: &str) -> Vec<u8> {
    // runtime.Unknown{raw: Namespace{metadata: ObjectMeta{name}}}, hand-encoded.
    let meta = [&[0x0a, name.len() as u8][..], name.as_bytes()].concat();
    let ns = [&[0x0a, meta.len() as u8][..], &meta].concat();
    let type_meta = b"\x0a\x02v1\x12\x09Namespace";
    let unknown = [
        &[0x0a, type_meta.len() as u8][..],
        type_meta,
        &[0x12, ns.len() as u8][..],
        &ns,
    ]
    .concat();
    [&b"k8s\0"[..], &unknown].concat()
}

#[tokio::test]
async fn namespaces_accept_protobuf_bodies() {
    let api = Api::new();
    let r = api
        .send(
            Method::POST,
            "/api/v1/namespaces",
            &[
                ("content-type", "application/vnd.kubernetes.protobuf"),
                (
                    "accept",
                    "application/vnd.kubernetes.protobuf, application/json",
                ),
            ],
            protobuf_namespace("team"),
        )
        .await;
    assert_eq!(r.code, 201, "{}", r.body);
    assert_eq!(r.body["metadata"]["name"], "team");
    assert_eq!(r.body["status"]["phase"], "Active");
    let r = api
        .send(
            Method::POST,
            "/api/v1/namespaces",
            &[("content-type", "application/vnd.kubernetes.protobuf")],
            protobuf_namespace("team"),
        )
        .await;
    assert_status(
        &r,
        409,
        "AlreadyExists",
        "namespaces \"team\" already exists",
    );
}

#[tokio::test]
async fn namespace_delete_lifecycle() {
    let api = Api::new();
    let ns = "/api/v1/namespaces";
    api.json(Method::POST, ns, json!({"metadata": {"name": "team"}}))
        .await;
    let team = "/api/v1/namespaces/team/secrets";
    api.json(Method::POST, team, s("plain", json!({}))).await;
    let mut kept = s("kept", json!({}));
    kept["metadata"]["finalizers"] = json!(["example.com/hold"]);
    assert_eq!(api.json(Method::POST, team, kept).await.code, 201);
    // DELETE answers the Namespace, now Terminating (the namespace registry's Delete).
    let r = api
        .send(Method::DELETE, "/api/v1/namespaces/team", &[], vec![])
        .await;
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(r.body["kind"], "Namespace");
    assert_eq!(r.body["status"]["phase"], "Terminating");
    assert!(r.body["metadata"]["deletionTimestamp"].is_string());
    // Its Secrets are removed; one held by a finalizer stays, marked, and keeps it Terminating.
    assert_eq!(api.get(&format!("{team}/plain")).await.code, 404);
    let held = api.get(&format!("{team}/kept")).await;
    assert!(held.body["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(
        api.get("/api/v1/namespaces/team").await.body["status"]["phase"],
        "Terminating"
    );
    // Creating in it is refused: apiserver/pkg/admission/plugin/namespace/lifecycle/admission.go.
    let r = api.json(Method::POST, team, s("new", json!({}))).await;
    assert_status(
        &r,
        403,
        "Forbidden",
        "secrets \"new\" is forbidden: unable to create new content in namespace team because it is being terminated",
    );
    assert_eq!(
        r.body["details"]["causes"][0],
        json!({"reason": "NamespaceTerminating", "message": "namespace team is being terminated", "field": "metadata.namespace"})
    );
    // Deleting again: kubernetes pkg/registry/core/namespace/storage/storage.go.
    let r = api
        .send(Method::DELETE, "/api/v1/namespaces/team", &[], vec![])
        .await;
    assert_status(
        &r,
        409,
        "Conflict",
        "Operation cannot be fulfilled on namespaces \"team\": The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.",
    );
    let r = api
        .json(Method::POST, ns, json!({"metadata": {"name": "team"}}))
        .await;
    assert_status(
        &r,
        409,
        "AlreadyExists",
        "object is being deleted: namespaces \"team\" already exists",
    );
    // Releasing the finalizer lets the namespace go.
    let r = api
        .patch(
            &format!("{team}/kept"),
            MERGE,
            r#"{"metadata":{"finalizers":null}}"#,
        )
        .await;
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(api.get(&format!("{team}/kept")).await.code, 404);
    let r = api.get("/api/v1/namespaces/team").await;
    assert_status(&r, 404, "NotFound", "namespaces \"team\" not found");
    // And the name can be used again.
    let r = api
        .json(Method::POST, ns, json!({"metadata": {"name": "team"}}))
        .await;
    assert_eq!(
        (r.code, r.body["status"]["phase"].as_str()),
        (201, Some("Active"))
    );
}

#[tokio::test]
async fn patch_merge_json_and_strategic() {
    let api = Api::new();
    let created = api
        .create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "p", "labels": {"a": "1"}}, "data": {"k": "dg==", "j": "eA=="}}))
        .await;
    let path = format!("{SECRETS}/p");
    // RFC 7386: null removes, stringData merges into data as on create.
    let r = api
        .patch(
            &path,
            MERGE,
            r#"{"data":{"j":null},"stringData":{"s":"plain"},"metadata":{"labels":{"b":"2"}}}"#,
        )
        .await;
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(r.body["data"], json!({"k": "dg==", "s": "cGxhaW4="}));
    assert_eq!(r.body["metadata"]["labels"], json!({"a": "1", "b": "2"}));
    assert!(rv(&r.body) > rv(&created.body));
    assert_eq!(r.body["metadata"]["uid"], created.body["metadata"]["uid"]);
    // RFC 6902 with a passing `test`.
    let r = api
        .patch(&path, JSON_PATCH, r#"[{"op":"test","path":"/data/k","value":"dg=="},{"op":"add","path":"/data/n","value":"bg=="}]"#)
        .await;
    assert_eq!((r.code, r.body["data"]["n"].as_str()), (200, Some("bg==")));
    // A failing `test` is apimachinery's generic 422 (NewGenericServerResponse in
    // pkg/api/errors/errors.go, called from apiserver/pkg/endpoints/handlers/patch.go).
    let before = rv(&api.get(&path).await.body);
    let r = api
        .patch(
            &path,
            JSON_PATCH,
            r#"[{"op":"test","path":"/data/k","value":"eA=="},{"op":"remove","path":"/data/k"}]"#,
        )
        .await;
    assert_status(
        &r,
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
    );
    assert_eq!(r.body["details"], json!({}));
    assert_eq!(rv(&api.get(&path).await.body), before);
    // Strategic merge: maps merge, `$patch: replace` and `$retainKeys` directives.
    let r = api
        .patch(
            &path,
            STRATEGIC,
            r#"{"metadata":{"labels":{"a":null}},"data":{"$retainKeys":["k"],"x":"eQ=="}}"#,
        )
        .await;
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(r.body["data"], json!({"k": "dg=="}));
    assert_eq!(r.body["metadata"]["labels"], json!({"b": "2"}));
    let r = api
        .patch(
            &path,
            STRATEGIC,
            r#"{"data":{"$patch":"replace","only":"bw=="}}"#,
        )
        .await;
    assert_eq!(r.body["data"], json!({"only": "bw=="}));
    // A no-op patch writes nothing.
    let same = api.patch(&path, MERGE, r#"{"data":{"only":"bw=="}}"#).await;
    assert_eq!(rv(&same.body), rv(&r.body));
    // A stale resourceVersion in the patch is the update path's Conflict.
    let r = api
        .patch(
            &path,
            MERGE,
            r#"{"metadata":{"resourceVersion":"1"},"data":{"z":"eg=="}}"#,
        )
        .await;
    assert_status(
        &r,
        409,
        "Conflict",
        "Operation cannot be fulfilled on secrets \"p\": the object has been modified; please apply your changes to the latest version and try again",
    );
    // Validation still applies (type is immutable).
    let r = api
        .patch(&path, MERGE, r#"{"type":"kubernetes.io/tls"}"#)
        .await;
    assert_eq!((r.code, r.body["reason"].as_str()), (422, Some("Invalid")));
    // Missing object.
    let r = api.patch(&format!("{SECRETS}/nope"), MERGE, "{}").await;
    assert_status(&r, 404, "NotFound", "secrets \"nope\" not found");
}

#[tokio::test]
async fn patch_content_types_and_options() {
    let api = Api::new();
    api.create(s("o", json!({}))).await;
    let path = format!("{SECRETS}/o");
    // apiserver/pkg/endpoints/installer.go lists the patch types; handlers/negotiation/errors.go
    // words the refusal.
    let r = api.patch(&path, "application/json", "{}").await;
    assert_status(
        &r,
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml",
    );
    // apimachinery/pkg/apis/meta/v1/validation/validation.go (ValidatePatchOptions).
    let r = api.patch(&path, APPLY, "{}").await;
    assert_status(
        &r,
        422,
        "Invalid",
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
    );
    let r = api.patch(&format!("{path}?force=true"), MERGE, "{}").await;
    assert_status(
        &r,
        422,
        "Invalid",
        "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch",
    );
    // handlers/patch.go (validateAndTranscodePatch).
    let r = api.patch(&path, MERGE, "{not json").await;
    assert_status(&r, 400, "BadRequest", "invalid JSON patch");
    // dryRun answers the patched object without storing it.
    let r = api
        .patch(
            &format!("{path}?dryRun=All"),
            MERGE,
            r#"{"data":{"d":"ZA=="}}"#,
        )
        .await;
    assert_eq!((r.code, r.body["data"]["d"].as_str()), (200, Some("ZA==")));
    assert!(api.get(&path).await.body["data"].get("d").is_none());
}

#[tokio::test]
async fn server_side_apply_managers_conflicts_and_force() {
    let api = Api::new();
    let path = format!("{SECRETS}/ssa");
    let config = |v: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: ssa\n  labels:\n    app: web\ndata:\n  k: {v}\n"
        )
    };
    // Apply creates.
    let r = api
        .patch(
            &format!("{path}?fieldManager=alice"),
            APPLY,
            &config("dg=="),
        )
        .await;
    assert_eq!(r.code, 201, "{}", r.body);
    assert_eq!(r.body["type"], "Opaque");
    let mf = &r.body["metadata"]["managedFields"];
    assert_eq!(mf.as_array().unwrap().len(), 1);
    assert_eq!(
        (
            mf[0]["manager"].as_str(),
            mf[0]["operation"].as_str(),
            mf[0]["fieldsType"].as_str()
        ),
        (Some("alice"), Some("Apply"), Some("FieldsV1"))
    );
    assert_eq!(
        mf[0]["fieldsV1"],
        json!({"f:data": {".": {}, "f:k": {}}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}})
    );
    // Re-applying the same configuration is no write.
    let again = api
        .patch(
            &format!("{path}?fieldManager=alice"),
            APPLY,
            &config("dg=="),
        )
        .await;
    assert_eq!((again.code, rv(&again.body)), (200, rv(&r.body)));
    // Another manager changing an owned field: the conflict text of
    // apimachinery/pkg/util/managedfields/internal/conflict.go.
    let bob = |v: &str| {
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: ssa\ndata:\n  k: {v}\n")
    };
    let r = api
        .patch(&format!("{path}?fieldManager=bob"), APPLY, &bob("eA=="))
        .await;
    assert_status(
        &r,
        409,
        "Conflict",
        "Apply failed with 1 conflict: conflict with \"alice\": .data.k",
    );
    assert_eq!(
        r.body["details"]["causes"][0],
        json!({"reason": "FieldManagerConflict", "message": "conflict with \"alice\"", "field": ".data.k"})
    );
    // force=true takes the field.
    let r = api
        .patch(
            &format!("{path}?fieldManager=bob&force=true"),
            APPLY,
            &bob("eA=="),
        )
        .await;
    assert_eq!((r.code, r.body["data"]["k"].as_str()), (200, Some("eA==")));
    let managers: Vec<&str> = r.body["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["alice", "bob"]);
    // alice stops applying her label: nobody else owns it, so it goes; bob's field stays.
    let r = api
        .patch(
            &format!("{path}?fieldManager=alice"),
            APPLY,
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: ssa\n",
        )
        .await;
    assert_eq!(r.code, 200, "{}", r.body);
    assert!(r.body["metadata"].get("labels").is_none(), "{}", r.body);
    assert_eq!(r.body["data"]["k"], "eA==");
    // After the first apply, ordinary updates are tracked too; applying over one conflicts with
    // the updater, named with its apiVersion.
    let r = api
        .patch(
            &format!("{path}?fieldManager=carol"),
            MERGE,
            r#"{"data":{"k":"Yw=="}}"#,
        )
        .await;
    assert_eq!(r.code, 200);
    let r = api
        .patch(&format!("{path}?fieldManager=bob"), APPLY, &bob("eA=="))
        .await;
    assert_status(
        &r,
        409,
        "Conflict",
        "Apply failed with 1 conflict: conflict with \"carol\" using v1: .data.k",
    );
}

#[tokio::test]
async fn server_side_apply_over_an_untracked_object_conflicts_with_before_first_apply() {
    // skipnonapplied.go: fields that existed before the first apply belong to
    // "before-first-apply" (operation Update).
    let api = Api::new();
    api.create(s("old", json!({"k": "dg=="}))).await;
    let r = api
        .patch(
            &format!("{SECRETS}/old?fieldManager=kubectl"),
            APPLY,
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"old"},"data":{"k":"eA=="}}"#,
        )
        .await;
    assert_status(
        &r,
        409,
        "Conflict",
        "Apply failed with 1 conflict: conflict with \"before-first-apply\" using v1: .data.k",
    );
    let r = api
        .patch(&format!("{SECRETS}/old?fieldManager=kubectl"), APPLY, r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"old"},"data":{"k":"dg==","j":"eA=="}}"#)
        .await;
    assert_eq!(r.code, 200, "{}", r.body);
    let managers: Vec<(&str, &str)> = r.body["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap(),
                e["operation"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        managers,
        [("kubectl", "Apply"), ("before-first-apply", "Update")]
    );
}

#[tokio::test]
async fn watch_streams_events_from_a_resource_version() {
    let api = Api::new();
    let start = rv(&api.get(SECRETS).await.body);
    api.create(s("a", json!({"k": "dg=="}))).await;
    let mut w = api
        .watch(
            &format!("{SECRETS}?watch=true&resourceVersion={start}"),
            &[],
        )
        .await;
    let (t, o) = w.event().await;
    assert_eq!(
        (
            t.as_str(),
            o["kind"].as_str(),
            o["metadata"]["name"].as_str()
        ),
        ("ADDED", Some("Secret"), Some("a"))
    );
    assert_eq!(o["data"]["k"], "dg==");
    api.patch(&format!("{SECRETS}/a"), MERGE, r#"{"data":{"k":"eA=="}}"#)
        .await;
    let (t, o) = w.event().await;
    assert_eq!(
        (t.as_str(), o["data"]["k"].as_str()),
        ("MODIFIED", Some("eA=="))
    );
    let modified_rv = rv(&o);
    let r = api
        .send(Method::DELETE, &format!("{SECRETS}/a"), &[], vec![])
        .await;
    assert_eq!(r.code, 200);
    let (t, o) = w.event().await;
    assert_eq!(t, "DELETED");
    assert!(rv(&o) > modified_rv);
    // Other namespaces are not this watch's business.
    api.json(
        Method::POST,
        "/api/v1/namespaces/kube-system/secrets",
        s("elsewhere", json!({})),
    )
    .await;
    api.create(s("b", json!({}))).await;
    let (t, o) = w.event().await;
    assert_eq!(
        (t.as_str(), o["metadata"]["name"].as_str()),
        ("ADDED", Some("b"))
    );
}

#[tokio::test]
async fn watch_without_resource_version_starts_with_the_current_state() {
    let api = Api::new();
    api.create(s("x", json!({}))).await;
    api.create(s("y", json!({}))).await;
    let mut w = api.watch(&format!("{SECRETS}?watch=True"), &[]).await;
    assert_eq!(w.event().await.1["metadata"]["name"], "x");
    assert_eq!(w.event().await.1["metadata"]["name"], "y");
    api.create(s("z", json!({}))).await;
    let (t, o) = w.event().await;
    assert_eq!(
        (t.as_str(), o["metadata"]["name"].as_str()),
        ("ADDED", Some("z"))
    );
}

#[tokio::test]
async fn watch_selectors_turn_leaving_into_deleted() {
    let api = Api::new();
    let mut w = api
        .watch(
            &format!("{SECRETS}?watch=true&labelSelector=app%3Dweb&fieldSelector=type%3DOpaque"),
            &[],
        )
        .await;
    api.create(s("plain", json!({}))).await;
    let mut labelled = s("web", json!({}));
    labelled["metadata"]["labels"] = json!({"app": "web"});
    api.create(labelled).await;
    let (t, o) = w.event().await;
    assert_eq!(
        (t.as_str(), o["metadata"]["name"].as_str()),
        ("ADDED", Some("web"))
    );
    api.patch(
        &format!("{SECRETS}/plain"),
        MERGE,
        r#"{"metadata":{"labels":{"app":"web"}}}"#,
    )
    .await;
    let (t, o) = w.event().await;
    assert_eq!(
        (t.as_str(), o["metadata"]["name"].as_str()),
        ("ADDED", Some("plain"))
    );
    api.patch(
        &format!("{SECRETS}/web"),
        MERGE,
        r#"{"metadata":{"labels":{"app":"db"}}}"#,
    )
    .await;
    let (t, o) = w.event().await;
    assert_eq!(
        (t.as_str(), o["metadata"]["name"].as_str()),
        ("DELETED", Some("web"))
    );
}

#[tokio::test]
async fn watch_too_old_resource_version_is_a_410_error_event() {
    // apiserver/pkg/storage/cacher/watch_cache_history.go: "too old resource version: %d (%d)".
    let api = Api::new();
    api.create(s("a", json!({}))).await;
    api.0.compact();
    let now = rv(&api.get(SECRETS).await.body);
    let mut w = api
        .watch(&format!("{SECRETS}?watch=true&resourceVersion=5"), &[])
        .await;
    let (t, o) = w.event().await;
    assert_eq!(t, "ERROR");
    assert_eq!(
        o,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": format!("too old resource version: 5 ({now})"), "reason": "Expired", "code": 410})
    );
    assert!(w.next().await.is_none());
}

#[tokio::test]
async fn watch_timeout_bookmarks_and_initial_events() {
    let api = Api::new();
    api.create(s("a", json!({}))).await;
    let current = rv(&api.get(SECRETS).await.body);
    let mut w = api
        .watch(&format!("{SECRETS}?watch=true&resourceVersion={current}&allowWatchBookmarks=true&timeoutSeconds=1"), &[])
        .await;
    let (t, o) = w.event().await;
    assert_eq!(t, "BOOKMARK");
    assert_eq!(
        o,
        json!({"kind": "Secret", "apiVersion": "v1", "metadata": {"resourceVersion": current.to_string(), "creationTimestamp": null}})
    );
    assert!(w.next().await.is_none(), "the watch ends at timeoutSeconds");
    // sendInitialEvents: the state, then a bookmark marking its end.
    let mut w = api
        .watch(&format!("{SECRETS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"), &[])
        .await;
    assert_eq!(w.event().await.0, "ADDED");
    let (t, o) = w.event().await;
    assert_eq!(t, "BOOKMARK");
    assert_eq!(
        o["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    // apimachinery/pkg/apis/meta/internalversion/validation/validation.go.
    let req = Request::builder()
        .uri(format!("{SECRETS}?watch=true&sendInitialEvents=true"))
        .body(Bytes::new())
        .unwrap();
    let resp = api.0.respond(req).await;
    assert_eq!(resp.status(), 422);
    let body = {
        use http_body_util::BodyExt;
        resp.into_body().collect().await.unwrap().to_bytes()
    };
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["message"],
        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
    );
}

#[tokio::test]
async fn watch_as_table_sends_column_definitions_once() {
    // apiserver/pkg/endpoints/handlers/response.go: later events set NoHeaders.
    let api = Api::new();
    api.create(s("a", json!({}))).await;
    api.create(s("b", json!({}))).await;
    let mut w = api
        .watch(
            &format!("{SECRETS}?watch=true"),
            &[("accept", TABLE_ACCEPT)],
        )
        .await;
    let (_, first) = w.event().await;
    assert_eq!(first["kind"], "Table");
    assert!(first["columnDefinitions"].is_array());
    assert_eq!(first["rows"][0]["cells"][0], "a");
    let (_, second) = w.event().await;
    assert!(second.get("columnDefinitions").is_none());
    assert_eq!(second["rows"][0]["cells"][0], "b");
}

#[tokio::test]
async fn watch_namespaces_sees_a_deletion_through_to_the_end() {
    let api = Api::new();
    api.json(
        Method::POST,
        "/api/v1/namespaces",
        json!({"metadata": {"name": "gone"}}),
    )
    .await;
    let mut w = api
        .watch(
            "/api/v1/namespaces?watch=true&fieldSelector=metadata.name%3Dgone",
            &[],
        )
        .await;
    assert_eq!(w.event().await.0, "ADDED");
    api.send(Method::DELETE, "/api/v1/namespaces/gone", &[], vec![])
        .await;
    let (t, o) = w.event().await;
    assert_eq!(
        (t.as_str(), o["status"]["phase"].as_str()),
        ("MODIFIED", Some("Terminating"))
    );
    let (t, o) = w.event().await;
    assert_eq!(
        (t.as_str(), o["metadata"]["name"].as_str()),
        ("DELETED", Some("gone"))
    );
}

#[tokio::test]
async fn kube_runtime_watcher_follows_secrets_through_the_in_process_client() {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Patch, PatchParams, PostParams};
    use kube::runtime::{WatchStreamExt, watcher};
    let engine = Engine::ephemeral();
    let api: kube::Api<Secret> = kube::Api::namespaced(engine.kube_client("default"), "default");
    let secret = |name: &str| -> Secret {
        serde_json::from_value(json!({"metadata": {"name": name}, "stringData": {"k": "v"}}))
            .unwrap()
    };
    api.create(&PostParams::default(), &secret("before"))
        .await
        .unwrap();
    let mut stream = watcher(api.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    let mut next_name = async || {
        tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
            .await
            .expect("the watcher saw nothing within 5 s")
            .unwrap()
            .unwrap()
            .metadata
            .name
            .unwrap()
    };
    assert_eq!(next_name().await, "before");
    api.create(&PostParams::default(), &secret("after"))
        .await
        .unwrap();
    assert_eq!(next_name().await, "after");
    let patch = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "after", "labels": {"x": "y"}}});
    let applied = api
        .patch("after", &PatchParams::apply("rust"), &Patch::Apply(&patch))
        .await
        .unwrap();
    assert_eq!(applied.metadata.labels.unwrap()["x"], "y");
    assert_eq!(next_name().await, "after");
}

#[tokio::test]
async fn openapi_v2_answers_kubectl_1_27_in_protobuf() {
    // kubectl 1.27 validates `create -f`/`apply -f` against /openapi/v2 (gnostic protobuf) and
    // fails outright on a 404; a document without definitions leaves validation to the server.
    let api = Api::new();
    let r = api
        .send(
            Method::GET,
            "/openapi/v2",
            &[(
                "accept",
                "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
            )],
            vec![],
        )
        .await;
    assert_eq!(r.code, 200);
    assert_eq!(
        r.headers["content-type"],
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    );
    assert!(r.raw.starts_with(b"\x0a\x032.0\x12"));
}

#[tokio::test]
async fn namespace_replace_and_patch_change_labels_and_annotations() {
    let api = Api::new();
    let created = api
        .json(
            Method::POST,
            "/api/v1/namespaces",
            json!({"metadata": {"name": "lab"}}),
        )
        .await;
    let mut body = created.body.clone();
    body["metadata"]["labels"]["team"] = json!("a");
    let r = api
        .json(Method::PUT, "/api/v1/namespaces/lab", body.clone())
        .await;
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(
        r.body["metadata"]["labels"],
        json!({"kubernetes.io/metadata.name": "lab", "team": "a"})
    );
    // The stale body now conflicts.
    let r = api.json(Method::PUT, "/api/v1/namespaces/lab", body).await;
    assert_status(
        &r,
        409,
        "Conflict",
        "Operation cannot be fulfilled on namespaces \"lab\": the object has been modified; please apply your changes to the latest version and try again",
    );
    let r = api
        .patch(
            "/api/v1/namespaces/lab",
            STRATEGIC,
            r#"{"metadata":{"annotations":{"n":"1"},"labels":{"team":null}}}"#,
        )
        .await;
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(r.body["metadata"]["annotations"], json!({"n": "1"}));
    assert_eq!(
        r.body["metadata"]["labels"],
        json!({"kubernetes.io/metadata.name": "lab"})
    );
    assert_eq!(r.body["status"]["phase"], "Active");
}

#[tokio::test]
async fn namespace_lifecycle_survives_a_restart() {
    use flytesecret::kubeapi::Durability;
    let dir = std::env::temp_dir().join(format!("flytesecret-ns-{}", uuid::Uuid::new_v4()));
    let durable = Durability::Directory(dir.clone());
    {
        let api = Api(Engine::open(&durable).unwrap());
        for name in ["gone", "held"] {
            api.json(
                Method::POST,
                "/api/v1/namespaces",
                json!({"metadata": {"name": name}}),
            )
            .await;
        }
        let mut kept = s("kept", json!({}));
        kept["metadata"]["finalizers"] = json!(["example.com/hold"]);
        api.json(Method::POST, "/api/v1/namespaces/held/secrets", kept)
            .await;
        for name in ["gone", "held"] {
            let r = api
                .send(
                    Method::DELETE,
                    &format!("/api/v1/namespaces/{name}"),
                    &[],
                    vec![],
                )
                .await;
            assert_eq!(r.code, 200);
        }
    }
    let api = Api(Engine::open(&durable).unwrap());
    assert_eq!(api.get("/api/v1/namespaces/gone").await.code, 404);
    let held = api.get("/api/v1/namespaces/held").await;
    assert_eq!(held.body["status"]["phase"], "Terminating", "{}", held.body);
    let names: Vec<String> = api.get("/api/v1/namespaces").await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(!names.contains(&"gone".to_owned()), "{names:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// docs/kubernetes-api.md §2.6: a read at a resourceVersion the store has not reached waits
/// up to 3 s for it, then fails with 504 `Too large resource version` and `Retry-After: 1`.
#[tokio::test(start_paused = true)]
async fn case_61_a_future_resource_version_waits_then_times_out() {
    let api = Arc::new(Api::new());
    let current = rv(&api.create(s("a", json!({"k": "dg=="}))).await.body);
    let future = current + 1000;
    for path in [
        format!("{SECRETS}/a?resourceVersion={future}"),
        format!("{SECRETS}?resourceVersion={future}"),
        format!("{SECRETS}?resourceVersion={future}&resourceVersionMatch=NotOlderThan"),
    ] {
        let started = tokio::time::Instant::now();
        let r = api.get(&path).await;
        assert!(started.elapsed() >= std::time::Duration::from_secs(3));
        let now = rv(&api.get(SECRETS).await.body);
        assert_status(
            &r,
            504,
            "Timeout",
            &format!("Timeout: Too large resource version: {future}, current: {now}"),
        );
        assert_eq!(r.headers["retry-after"], "1");
        assert_eq!(
            r.body["details"],
            json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1})
        );
    }
    // A version the store reaches while the read waits is served as soon as it is there.
    let waiting = {
        let api = api.clone();
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let r = api
                .get(&format!("{SECRETS}?resourceVersion={}", current + 1))
                .await;
            (r.code, started.elapsed())
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(api.create(s("b", json!({}))).await.code, 201);
    let (code, waited) = waiting.await.unwrap();
    assert_eq!(code, 200);
    assert!(waited < std::time::Duration::from_secs(1), "{waited:?}");
    // Versions already reached are answered without waiting.
    let started = tokio::time::Instant::now();
    assert_eq!(
        api.get(&format!("{SECRETS}/a?resourceVersion={current}"))
            .await
            .code,
        200
    );
    assert_eq!(started.elapsed(), std::time::Duration::ZERO);
}

const PARTIAL: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
const PARTIAL_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

#[tokio::test]
async fn case_62_metadata_only_answers() {
    let api = Api::new();
    for n in ["a", "b"] {
        let mut body = s(n, json!({"k": "dmFsdWU="}));
        body["metadata"]["labels"] = json!({"team": "x"});
        api.create(body).await;
    }
    let full = api.get(&format!("{SECRETS}/a")).await;
    let api = &api;
    let get_as = |path: String, accept: &'static str| async move {
        api.send(Method::GET, &path, &[("accept", accept)], vec![])
            .await
    };

    let one = get_as(format!("{SECRETS}/a"), PARTIAL).await;
    assert_eq!(one.code, 200);
    assert_eq!(one.headers["content-type"], "application/json");
    assert_eq!(
        one.body,
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
               "metadata": full.body["metadata"]}),
        "the whole metadata and nothing else: no data, no type"
    );
    let beta = get_as(
        format!("{SECRETS}/a"),
        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1",
    )
    .await;
    assert_eq!(beta.body["apiVersion"], "meta.k8s.io/v1beta1");
    let wrong = get_as(format!("{SECRETS}/a"), PARTIAL_LIST).await;
    assert_status(
        &wrong,
        406,
        "NotAcceptable",
        "you requested PartialObjectMetadataList, but the requested object is not a list (*core.Secret)",
    );

    let page = get_as(format!("{SECRETS}?limit=1"), PARTIAL_LIST).await;
    assert_eq!(page.code, 200);
    assert_eq!(page.body["kind"], "PartialObjectMetadataList");
    assert_eq!(page.body["apiVersion"], "meta.k8s.io/v1");
    assert!(page.body["metadata"]["continue"].is_string());
    assert_eq!(page.body["metadata"]["remainingItemCount"], 1);
    assert_eq!(
        page.body["items"],
        json!([{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": full.body["metadata"]}])
    );
    let wrong = get_as(SECRETS.to_owned(), PARTIAL).await;
    assert_status(
        &wrong,
        406,
        "NotAcceptable",
        "you requested PartialObjectMetadata, but the requested object is a list (*core.SecretList)",
    );
    assert!(
        !String::from_utf8_lossy(&one.raw).contains("dmFsdWU=")
            && !String::from_utf8_lossy(&page.raw).contains("dmFsdWU="),
        "a metadata-only answer carries no value"
    );
}

/// docs/kubernetes-api.md §1.7: a get with client-go's metadata Accept (protobuf first) is
/// answered in protobuf, for a Secret and a Namespace alike, carrying what the JSON form
/// carries; errors stay JSON, as the API server writes them.
#[tokio::test]
async fn case_62b_metadata_only_answers_in_protobuf() {
    use flytesecret::k8s_wire::{
        CONTENT_TYPE, Field, PARTIAL_OBJECT_METADATA_ACCEPT, fields, map_entry, raw_of,
        time_seconds,
    };
    /// What a protobuf `PartialObjectMetadata` says: its strings 1-6, creation time, labels.
    fn read(body: &[u8]) -> Value {
        let mut out = serde_json::Map::new();
        let mut labels = serde_json::Map::new();
        for field in fields(raw_of(body).unwrap()) {
            let (1, Field::Bytes(meta)) = field.unwrap() else {
                panic!("PartialObjectMetadata has only its metadata");
            };
            for field in fields(meta) {
                match field.unwrap() {
                    (n @ 1..=6, Field::Bytes(s)) if !s.is_empty() => {
                        let key = ["name", "generateName", "namespace", "selfLink", "uid"]
                            .get(n as usize - 1)
                            .copied()
                            .unwrap_or("resourceVersion");
                        out.insert(key.into(), json!(std::str::from_utf8(s).unwrap()));
                    }
                    (8, Field::Bytes(t)) => {
                        out.insert("created".into(), json!(time_seconds(t).unwrap()));
                    }
                    (11, Field::Bytes(entry)) => {
                        let (k, v) = map_entry(entry).unwrap();
                        labels.insert(
                            String::from_utf8(k.to_vec()).unwrap(),
                            json!(std::str::from_utf8(v).unwrap()),
                        );
                    }
                    _ => {}
                }
            }
        }
        if !labels.is_empty() {
            out.insert("labels".into(), Value::Object(labels));
        }
        Value::Object(out)
    }
    /// The same fields of the JSON form.
    fn expected(meta: &Value) -> Value {
        let mut out = serde_json::Map::new();
        for key in ["name", "namespace", "uid", "resourceVersion", "labels"] {
            if let Some(v) = meta.get(key) {
                out.insert(key.into(), v.clone());
            }
        }
        let created = meta["creationTimestamp"].as_str().unwrap();
        let seconds =
            time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
                .unwrap()
                .unix_timestamp();
        out.insert("created".into(), json!(seconds));
        Value::Object(out)
    }

    let api = Api::new();
    let mut body = s("a", json!({"k": "dmFsdWU="}));
    body["metadata"]["labels"] = json!({"team": "x", "app.flyte.org/managed": "true"});
    api.create(body).await;
    for path in [
        format!("{SECRETS}/a"),
        "/api/v1/namespaces/default".to_owned(),
    ] {
        let json_form = api.get_accepting(&path, PARTIAL).await;
        let answer = api
            .get_accepting(&path, PARTIAL_OBJECT_METADATA_ACCEPT)
            .await;
        assert_eq!(answer.code, 200, "{path}");
        assert_eq!(answer.headers["content-type"], CONTENT_TYPE, "{path}");
        assert!(answer.raw.starts_with(b"k8s\0"), "{path}");
        assert!(!answer.raw.ends_with(b"\n"), "no newline after a message");
        assert_eq!(
            read(&answer.raw),
            expected(&json_form.body["metadata"]),
            "{path}"
        );
        assert!(
            !answer.raw.windows(5).any(|w| w == b"value"),
            "a metadata-only answer carries no value"
        );
    }
    let missing = api
        .get_accepting(&format!("{SECRETS}/nope"), PARTIAL_OBJECT_METADATA_ACCEPT)
        .await;
    assert_status(&missing, 404, "NotFound", "secrets \"nope\" not found");
    assert_eq!(missing.headers["content-type"], "application/json");
}

#[tokio::test]
async fn kube_metadata_calls_through_the_in_process_client() {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{ListParams, PostParams};
    let engine = Engine::ephemeral();
    let api: kube::Api<Secret> = kube::Api::namespaced(engine.kube_client("default"), "default");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "m", "labels": {"app.flyte.org/system": "true"}},
        "stringData": {"k": "v"}
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &secret).await.unwrap();
    let meta = api.get_metadata("m").await.unwrap().metadata;
    assert_eq!(meta, created.metadata);
    let list = api.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(
        list.items.iter().map(|p| &p.metadata).collect::<Vec<_>>(),
        [&created.metadata]
    );
    let missing = api.get_metadata("nope").await.unwrap_err();
    assert!(
        matches!(&missing, kube::Error::Api(s) if s.code == 404),
        "{missing:?}"
    );
}

/// docs/kubernetes-api.md §1.5: the Accept header's media ranges are tried in kube-apiserver's
/// order (higher q first, concrete types before wildcards), and the first the engine can write
/// decides; a transformation the route cannot produce is passed over, never guessed.
#[tokio::test]
async fn case_63_accept_ranges_are_tried_in_order() {
    let api = Api::new();
    api.create(s("a", json!({"k": "dmFsdWU="}))).await;
    let api = &api;
    let get = |path: &'static str, accept: &'static str| api.get_accepting(path, accept);
    let one = "/api/v1/namespaces/default/secrets/a";
    let kinds = [
        // A wildcard is ordered after the Table it precedes.
        (
            SECRETS,
            "*/*,application/json;as=Table;v=v1;g=meta.k8s.io",
            "Table",
        ),
        // A type the server does not write is passed over, not the end of the search.
        (
            SECRETS,
            "text/html,application/json;as=Table;v=v1;g=meta.k8s.io",
            "Table",
        ),
        // q orders the ranges: plain JSON preferred over a Table.
        (
            SECRETS,
            "application/json;as=Table;v=v1;g=meta.k8s.io;q=0.5,application/json",
            "SecretList",
        ),
        (
            one,
            "application/json;as=Table;v=v1;g=meta.k8s.io;q=0.5,application/json",
            "Secret",
        ),
        // A Table without its group and version is no Table: the next range decides.
        (one, "application/json;as=Table,application/json", "Secret"),
    ];
    for (path, accept, kind) in kinds {
        let r = get(path, accept).await;
        assert_eq!(r.code, 200, "{accept}: {}", r.body);
        assert_eq!(r.body["kind"], kind, "{accept}");
    }
    for refused in [
        "application/json;as=Table",
        "application/json;as=Table;g=meta.k8s.io;v=v2",
        "application/json-patch+json",
        "Application/JSON",
        ",",
    ] {
        let r = get(one, refused).await;
        assert_status(
            &r,
            406,
            "NotAcceptable",
            "only the following media types are accepted: application/json",
        );
    }
    // A Table asked in v1beta1 is a v1beta1 Table, rows included.
    let beta = get(SECRETS, "application/json;as=Table;v=v1beta1;g=meta.k8s.io").await;
    assert_eq!(beta.body["apiVersion"], "meta.k8s.io/v1beta1");
    assert_eq!(
        beta.body["rows"][0]["object"]["apiVersion"],
        "meta.k8s.io/v1beta1"
    );
}

/// docs/kubernetes-api.md §1.5: Namespaces have metadata-only forms too, with their own 406s.
#[tokio::test]
async fn case_64_namespaces_answer_metadata_only() {
    let api = Api::new();
    let api = &api;
    let get = |path: &'static str, accept: &'static str| api.get_accepting(path, accept);
    let full = api.get("/api/v1/namespaces/default").await;
    let one = get("/api/v1/namespaces/default", PARTIAL).await;
    assert_eq!(one.code, 200);
    assert_eq!(
        one.body,
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
               "metadata": full.body["metadata"]})
    );
    let list = get("/api/v1/namespaces", PARTIAL_LIST).await;
    assert_eq!(list.body["kind"], "PartialObjectMetadataList");
    assert!(list.body["metadata"]["resourceVersion"].is_string());
    assert!(
        list.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["metadata"] == full.body["metadata"])
    );
    assert_status(
        &get("/api/v1/namespaces/default", PARTIAL_LIST).await,
        406,
        "NotAcceptable",
        "you requested PartialObjectMetadataList, but the requested object is not a list (*core.Namespace)",
    );
    assert_status(
        &get("/api/v1/namespaces", PARTIAL).await,
        406,
        "NotAcceptable",
        "you requested PartialObjectMetadata, but the requested object is a list (*core.NamespaceList)",
    );
    // The missing object is found missing before its form is refused.
    assert_eq!(get("/api/v1/namespaces/nope", PARTIAL_LIST).await.code, 404);
}

/// docs/kubernetes-api.md §1.5, §7: legacy discovery takes no transformation; `/version` is
/// written as it is whatever the header.
#[tokio::test]
async fn case_65_discovery_and_version_negotiation() {
    let api = Api::new();
    let api = &api;
    let get = |path: &'static str, accept: &'static str| api.get_accepting(path, accept);
    let kubectl =
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    for path in ["/api", "/apis", "/api/v1"] {
        assert_eq!(get(path, kubectl).await.code, 200, "{path}");
        assert_status(
            &get(path, "application/json;as=Table;v=v1;g=meta.k8s.io").await,
            406,
            "NotAcceptable",
            "only the following media types are accepted: application/json",
        );
    }
    let version = get("/version", "text/html").await;
    assert_eq!(version.code, 200);
    assert_eq!(version.body["gitVersion"], "v1.33.0");
}

/// docs/kubernetes-api.md §1.5: a metadata-only watch sends each object's
/// `PartialObjectMetadata` (no value); a watch whose first choice is YAML cannot be streamed.
#[tokio::test]
async fn case_66_watch_negotiation() {
    let api = Api::new();
    api.create(s("a", json!({"k": "dmFsdWU="}))).await;
    let full = api.get(&format!("{SECRETS}/a")).await;
    let mut w = api
        .watch(&format!("{SECRETS}?watch=true"), &[("accept", PARTIAL)])
        .await;
    let (kind, object) = w.event().await;
    assert_eq!(kind, "ADDED");
    assert_eq!(
        object,
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
               "metadata": full.body["metadata"]})
    );
    // Bookmarks are transformed too.
    let mut w = api
        .watch(
            &format!("{SECRETS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"),
            &[("accept", PARTIAL)],
        )
        .await;
    assert_eq!(w.event().await.0, "ADDED");
    let (kind, mark) = w.event().await;
    assert_eq!(kind, "BOOKMARK");
    assert_eq!(
        (mark["kind"].as_str(), mark["apiVersion"].as_str()),
        (Some("PartialObjectMetadata"), Some("meta.k8s.io/v1"))
    );
    assert_eq!(
        mark["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    let refuse = |accept: &'static str| {
        let req = Request::builder()
            .uri(format!("{SECRETS}?watch=true"))
            .header("accept", accept)
            .body(Bytes::new())
            .unwrap();
        let engine = api.0.clone();
        async move {
            use http_body_util::BodyExt;
            let resp = engine.respond(req).await;
            let code = resp.status().as_u16();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            let body: Value = serde_json::from_slice(&body).unwrap();
            (
                code,
                body["message"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    assert_eq!(
        refuse("application/yaml,application/json").await,
        (
            406,
            "only the following media types are accepted: application/json;stream=watch".to_owned()
        )
    );
    assert_eq!(
        refuse(PARTIAL_LIST).await,
        (
            406,
            "you requested PartialObjectMetadataList, but the requested object is not a list (*core.Secret)".to_owned()
        )
    );
}

/// docs/kubernetes-api.md §1.5: a write's answer is transformed as a read's is, after the write
/// (client-go's metadata client patches this way; the value does not come back).
#[tokio::test]
async fn case_67_writes_answer_in_the_negotiated_form() {
    let api = Api::new();
    let body = serde_json::to_vec(&s("a", json!({"k": "dmFsdWU="}))).unwrap();
    let created = api
        .send(
            Method::POST,
            SECRETS,
            &[("content-type", "application/json"), ("accept", PARTIAL)],
            body,
        )
        .await;
    assert_eq!(created.code, 201);
    let full = api.get(&format!("{SECRETS}/a")).await;
    assert_eq!(
        created.body,
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
               "metadata": full.body["metadata"]})
    );
    let patched = api
        .send(
            Method::PATCH,
            &format!("{SECRETS}/a"),
            &[
                ("content-type", "application/merge-patch+json"),
                ("accept", PARTIAL),
            ],
            br#"{"metadata":{"labels":{"x":"y"}}}"#.to_vec(),
        )
        .await;
    assert_eq!(patched.code, 200);
    assert_eq!(patched.body["kind"], "PartialObjectMetadata");
    assert_eq!(patched.body["metadata"]["labels"]["x"], "y");
    assert!(!String::from_utf8_lossy(&patched.raw).contains("dmFsdWU="));
    // The list form is refused only once the write is done, as the API server transforms after it.
    let body = serde_json::to_vec(&s("b", json!({}))).unwrap();
    let refused = api
        .send(
            Method::POST,
            SECRETS,
            &[
                ("content-type", "application/json"),
                ("accept", PARTIAL_LIST),
            ],
            body,
        )
        .await;
    assert_status(
        &refused,
        406,
        "NotAcceptable",
        "you requested PartialObjectMetadataList, but the requested object is not a list (*core.Secret)",
    );
    assert_eq!(api.get(&format!("{SECRETS}/b")).await.code, 200);
    // Errors pass unchanged.
    let delete = |name: &'static str| {
        let api = &api;
        async move {
            api.send(
                Method::DELETE,
                &format!("{SECRETS}/{name}"),
                &[("accept", PARTIAL)],
                vec![],
            )
            .await
        }
    };
    assert_eq!(delete("nope").await.code, 404);
    let deleted = delete("a").await;
    assert_eq!(deleted.code, 200);
    assert!(!String::from_utf8_lossy(&deleted.raw).contains("dmFsdWU="));
}

/// `/livez`, `/readyz`, `/healthz` as kube-apiserver answers them (its `healthz` package):
/// `ok`, or the checks with `?verbose`, exclusions with a warning for unknown ones, and each
/// check on its own path; anything else under them is 404. (A failing store check is unit
/// tested in `kubeapi::health`.)
#[tokio::test]
async fn case_68_health_endpoints() {
    let api = Api::new();
    for probe in ["livez", "readyz", "healthz"] {
        let r = api
            .send(Method::GET, &format!("/{probe}"), &[], vec![])
            .await;
        assert_eq!((r.code, &r.raw[..]), (200, &b"ok"[..]), "/{probe}");
        assert_eq!(r.headers["content-type"], "text/plain; charset=utf-8");
        let r = api
            .send(Method::GET, &format!("/{probe}/etcd"), &[], vec![])
            .await;
        assert_eq!((r.code, &r.raw[..]), (200, &b"ok"[..]), "/{probe}/etcd");
    }
    let r = api
        .send(
            Method::GET,
            "/readyz?verbose&exclude=ping&exclude=shutdown",
            &[],
            vec![],
        )
        .await;
    assert_eq!(r.code, 200);
    assert_eq!(
        String::from_utf8_lossy(&r.raw),
        "[+]ping excluded: ok\n[+]etcd ok\nwarn: some health checks cannot be excluded: no \
         matches for \"shutdown\"\nreadyz check passed\n"
    );
    let r = api.send(Method::GET, "/livez/nope", &[], vec![]).await;
    assert_eq!((r.code, &r.raw[..]), (404, &b"404 page not found"[..]));
    let r = api.send(Method::GET, "/livez/etcd/x", &[], vec![]).await;
    assert_eq!(r.code, 404);
}

/// Owner references are typed and validated on the way in (`v1.OwnerReference`,
/// `ValidateOwnerReferences`). Stored as sent, a malformed one would make every typed client's
/// read of the object, and of any list holding it, fail to decode: the service's ListSecrets
/// among them.
#[tokio::test]
async fn owner_references_are_typed_and_validated_on_the_way_in() {
    let api = Api::new();
    let with_owners = |name: &str, owners: Value| {
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": name, "ownerReferences": owners}, "data": {"k": "dg=="}})
    };
    let r = api.create(with_owners("a", json!([1]))).await;
    assert_status(
        &r,
        400,
        "BadRequest",
        "Secret in version \"v1\" cannot be handled as a Secret: json: cannot unmarshal number into Go struct field ObjectMeta.ownerReferences of type v1.OwnerReference",
    );
    let r = api
        .create(with_owners(
            "b",
            json!([{"apiVersion": "v1", "kind": "Pod", "name": "p"}]),
        ))
        .await;
    assert_status(
        &r,
        422,
        "Invalid",
        "Secret \"b\" is invalid: metadata.ownerReferences.uid: Invalid value: \"\": uid must not be empty",
    );
    let owner = json!({"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u1", "controller": true, "color": "red"});
    let r = api.create(with_owners("c", json!([owner]))).await;
    assert_eq!(r.code, 201, "{}", r.body);
    assert_eq!(
        r.body["metadata"]["ownerReferences"],
        json!([{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u1", "controller": true}])
    );
    // Updates are held to the same rules.
    let mut update = r.body.clone();
    update["metadata"]["ownerReferences"] = json!([owner, {"apiVersion": "v1", "kind": "Pod", "name": "q", "uid": "u2", "controller": true}]);
    let r = api.json(Method::PUT, &format!("{SECRETS}/c"), update).await;
    assert_eq!(r.code, 422, "{}", r.body);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .ends_with("Only one reference can have Controller set to true. Found \"true\" in references for Pod/p and Pod/q"),
        "{}",
        r.body
    );
    // What is stored, a typed client reads.
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(api.0.kube_client("default"), "default");
    let listed = secrets.list(&Default::default()).await.unwrap();
    let owners: Vec<_> = listed
        .items
        .iter()
        .flat_map(|s| s.metadata.owner_references.clone().unwrap_or_default())
        .map(|o| (o.name, o.uid, o.controller))
        .collect();
    assert_eq!(owners, [("p".to_owned(), "u1".to_owned(), Some(true))]);
}
