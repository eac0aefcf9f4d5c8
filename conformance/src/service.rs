//! The `service` suite: drives a live Secret Service endpoint (any implementation) through the
//! behavioural contract in `cases/service.yaml`, over gRPC, Connect proto or Connect JSON, and,
//! given a kubeconfig, checks the Kubernetes objects each write leaves behind.

use crate::naming::{ORGANIZATION, data_key, image_pull_name, object_name};
use crate::report::{CaseResult, Outcome, Report};
use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use flytesecret::proto::flyteidl2::secret::secret_service_client::SecretServiceClient;
use flytesecret::proto::flyteidl2::secret::*;
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

/// The cases shipped with the suite.
pub fn cases_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cases/service.yaml")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    ConnectProto,
    ConnectJson,
}

impl std::str::FromStr for Protocol {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "grpc" => Protocol::Grpc,
            "connect-proto" => Protocol::ConnectProto,
            "connect-json" => Protocol::ConnectJson,
            other => bail!("unknown protocol {other:?}: use grpc, connect-proto or connect-json"),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Strict,
    Go,
}

impl std::str::FromStr for Profile {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "strict" => Ok(Profile::Strict),
            "go" => Ok(Profile::Go),
            other => bail!("unknown profile {other:?}: use strict or go"),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Case {
    pub id: String,
    pub spec: String,
    #[serde(default)]
    pub profiles: Option<Vec<String>>,
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Step {
    pub rpc: String,
    #[serde(default)]
    pub request: Value,
    #[serde(default)]
    pub paginate: bool,
    pub expect: Expect,
    #[serde(default)]
    pub object: Option<ObjectExpect>,
    #[serde(default)]
    pub object_absent: Option<IdOnly>,
    /// With a kubeconfig: the image-pull Secret (`kubernetes.io/dockerconfigjson`) of the id.
    #[serde(default)]
    pub image_pull: Option<ObjectExpect>,
    #[serde(default)]
    pub image_pull_absent: Option<IdOnly>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Expect {
    pub code: String,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub message_prefix: Option<String>,
    #[serde(default)]
    pub response: Option<Value>,
    #[serde(default)]
    pub names: Option<Vec<String>>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct IdOnly {
    pub id: IdSpec,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct IdSpec {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub project: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ObjectExpect {
    pub id: IdSpec,
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub value_base64: Option<String>,
}

pub fn load_cases(path: &Path) -> Result<Vec<Case>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// What to run the suite against.
pub struct Options {
    pub endpoint: String,
    pub protocol: Protocol,
    pub profile: Profile,
    /// Kubernetes access for object checks.
    pub kube: Option<(kube::Client, String)>,
    pub known_failing: HashSet<String>,
    pub cases: Vec<Case>,
}

/// Builds a Kubernetes client from a kubeconfig file.
pub async fn kube_client(kubeconfig: &Path) -> Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    config.default_retry = false;
    Ok(kube::Client::try_from(config)?)
}

/// An RPC outcome: the response as proto3 JSON, or (Connect code name, message).
type Outcome2 = std::result::Result<Value, (String, String)>;

enum Client {
    Grpc(SecretServiceClient<tonic::transport::Channel>),
    Connect {
        http: hyper_util::client::legacy::Client<
            hyper_util::client::legacy::connect::HttpConnector,
            Full<Bytes>,
        >,
        base: String,
        json: bool,
    },
}

fn grpc_code_name(code: tonic::Code) -> String {
    let s = match code {
        tonic::Code::Ok => "ok",
        tonic::Code::Cancelled => "canceled",
        tonic::Code::Unknown => "unknown",
        tonic::Code::InvalidArgument => "invalid_argument",
        tonic::Code::DeadlineExceeded => "deadline_exceeded",
        tonic::Code::NotFound => "not_found",
        tonic::Code::AlreadyExists => "already_exists",
        tonic::Code::PermissionDenied => "permission_denied",
        tonic::Code::ResourceExhausted => "resource_exhausted",
        tonic::Code::FailedPrecondition => "failed_precondition",
        tonic::Code::Aborted => "aborted",
        tonic::Code::OutOfRange => "out_of_range",
        tonic::Code::Unimplemented => "unimplemented",
        tonic::Code::Internal => "internal",
        tonic::Code::Unavailable => "unavailable",
        tonic::Code::DataLoss => "data_loss",
        tonic::Code::Unauthenticated => "unauthenticated",
    };
    s.to_owned()
}

macro_rules! grpc_call {
    ($client:expr, $method:ident, $req_ty:ty, $request:expr) => {{
        let req: $req_ty = serde_json::from_value($request.clone())
            .map_err(|e| anyhow!("bad request JSON: {e}"))?;
        match $client.$method(req).await {
            Ok(r) => Ok(serde_json::to_value(r.into_inner())?),
            Err(s) => Err((grpc_code_name(s.code()), s.message().to_owned())),
        }
    }};
}

fn decode_proto<T: prost::Message + Default + serde::Serialize>(bytes: &[u8]) -> Result<Value> {
    Ok(serde_json::to_value(T::decode(bytes)?)?)
}

fn encode_proto<T: prost::Message + serde::de::DeserializeOwned>(v: &Value) -> Result<Vec<u8>> {
    let m: T = serde_json::from_value(v.clone()).map_err(|e| anyhow!("bad request JSON: {e}"))?;
    Ok(m.encode_to_vec())
}

impl Client {
    async fn connect(endpoint: &str, protocol: Protocol) -> Result<Client> {
        Ok(match protocol {
            Protocol::Grpc => Client::Grpc(
                SecretServiceClient::connect(endpoint.to_owned())
                    .await
                    .with_context(|| format!("connecting to {endpoint}"))?,
            ),
            _ => Client::Connect {
                http: hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .build(hyper_util::client::legacy::connect::HttpConnector::new()),
                base: endpoint.trim_end_matches('/').to_owned(),
                json: protocol == Protocol::ConnectJson,
            },
        })
    }

    async fn call(&mut self, rpc: &str, request: &Value) -> Result<Outcome2> {
        match self {
            Client::Grpc(c) => Ok(match rpc {
                "CreateSecret" => grpc_call!(c, create_secret, CreateSecretRequest, request),
                "UpdateSecret" => grpc_call!(c, update_secret, UpdateSecretRequest, request),
                "GetSecret" => grpc_call!(c, get_secret, GetSecretRequest, request),
                "DeleteSecret" => grpc_call!(c, delete_secret, DeleteSecretRequest, request),
                "ListSecrets" => grpc_call!(c, list_secrets, ListSecretsRequest, request),
                other => bail!("unknown rpc {other}"),
            }),
            Client::Connect { http, base, json } => {
                let body = if *json {
                    serde_json::to_vec(request)?
                } else {
                    match rpc {
                        "CreateSecret" => encode_proto::<CreateSecretRequest>(request)?,
                        "UpdateSecret" => encode_proto::<UpdateSecretRequest>(request)?,
                        "GetSecret" => encode_proto::<GetSecretRequest>(request)?,
                        "DeleteSecret" => encode_proto::<DeleteSecretRequest>(request)?,
                        "ListSecrets" => encode_proto::<ListSecretsRequest>(request)?,
                        other => bail!("unknown rpc {other}"),
                    }
                };
                let req =
                    http::Request::post(format!("{base}/flyteidl2.secret.SecretService/{rpc}"))
                        .header(
                            "content-type",
                            if *json {
                                "application/json"
                            } else {
                                "application/proto"
                            },
                        )
                        .header("connect-protocol-version", "1")
                        .body(Full::new(Bytes::from(body)))?;
                let resp = http
                    .request(req)
                    .await
                    .with_context(|| format!("calling {rpc}"))?;
                let status = resp.status();
                let bytes = resp.into_body().collect().await?.to_bytes();
                if status != 200 {
                    let err: Value = serde_json::from_slice(&bytes).map_err(|_| {
                        anyhow!("{rpc}: HTTP {status} with a body that is not a Connect error")
                    })?;
                    let code = err["code"].as_str().unwrap_or("unknown").to_owned();
                    let message = err["message"].as_str().unwrap_or("").to_owned();
                    return Ok(Err((code, message)));
                }
                if *json {
                    return Ok(Ok(serde_json::from_slice(&bytes)?));
                }
                Ok(Ok(match rpc {
                    "CreateSecret" => decode_proto::<CreateSecretResponse>(&bytes)?,
                    "UpdateSecret" => decode_proto::<UpdateSecretResponse>(&bytes)?,
                    "GetSecret" => decode_proto::<GetSecretResponse>(&bytes)?,
                    "DeleteSecret" => decode_proto::<DeleteSecretResponse>(&bytes)?,
                    _ => decode_proto::<ListSecretsResponse>(&bytes)?,
                }))
            }
        }
    }
}

fn substitute(v: &Value, uid: &str) -> Value {
    match v {
        Value::String(s) => Value::String(s.replace("{{uid}}", uid)),
        Value::Array(a) => Value::Array(a.iter().map(|x| substitute(x, uid)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), substitute(x, uid)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// True when everything in `expected` is in `actual` (arrays: element-wise, same length).
fn contains(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e
            .iter()
            .all(|(k, ev)| a.get(k).is_some_and(|av| contains(av, ev))),
        (Value::Array(a), Value::Array(e)) => {
            a.len() == e.len() && a.iter().zip(e).all(|(av, ev)| contains(av, ev))
        }
        (a, e) => a == e,
    }
}

fn values_in_request(rpc: &str, request: &Value) -> Vec<String> {
    if !matches!(rpc, "CreateSecret" | "UpdateSecret") {
        return Vec::new();
    }
    let spec = &request["secretSpec"];
    let mut out = Vec::new();
    if let Some(s) = spec["stringValue"].as_str().filter(|s| s.len() >= 4) {
        out.push(s.to_owned());
        out.push(STANDARD.encode(s));
    }
    if let Some(b) = spec["binaryValue"].as_str().filter(|s| s.len() >= 4) {
        out.push(b.to_owned());
    }
    out
}

struct CaseRun<'a> {
    client: &'a mut Client,
    kube: Option<&'a (kube::Client, String)>,
    values: Vec<String>,
    created: Vec<Value>,
}

impl CaseRun<'_> {
    async fn step(&mut self, step: &Step, uid: &str) -> Result<()> {
        let request = substitute(&step.request, uid);
        self.values.extend(values_in_request(&step.rpc, &request));
        if step.rpc == "CreateSecret" {
            self.created.push(request["id"].clone());
        }
        let expect_code = step.expect.code.as_str();
        let outcome = if step.paginate {
            self.paginate(&request).await?
        } else {
            self.client.call(&step.rpc, &request).await?
        };
        let shown = match &outcome {
            Ok(v) => v.to_string(),
            Err((c, m)) => format!("{c}: {m}"),
        };
        for v in &self.values {
            if shown.contains(v.as_str()) {
                bail!(
                    "{}: the response contains a secret value: {shown}",
                    step.rpc
                );
            }
        }
        match (&outcome, expect_code) {
            (Ok(_), "ok") => {}
            (Ok(v), want) => bail!("{}: expected {want}, got ok: {v}", step.rpc),
            (Err((got, msg)), want) if got != want => {
                bail!("{}: expected {want}, got {got}: {msg}", step.rpc)
            }
            (Err((_, msg)), _) => {
                if let Some(m) = &step.expect.message {
                    let m = m.replace("{{uid}}", uid);
                    if *msg != m {
                        bail!("{}: expected message {m:?}, got {msg:?}", step.rpc);
                    }
                }
                if let Some(p) = &step.expect.message_prefix
                    && !msg.starts_with(&p.replace("{{uid}}", uid))
                {
                    bail!(
                        "{}: expected a message starting {p:?}, got {msg:?}",
                        step.rpc
                    );
                }
            }
        }
        if let (Ok(actual), Some(expected)) = (&outcome, &step.expect.response) {
            let expected = substitute(expected, uid);
            if !contains(actual, &expected) {
                bail!(
                    "{}: response {actual} does not contain {expected}",
                    step.rpc
                );
            }
        }
        if let (Ok(actual), Some(names)) = (&outcome, &step.expect.names) {
            let got: BTreeSet<String> = actual["secrets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["id"]["name"].as_str().map(str::to_owned))
                .collect();
            let want: BTreeSet<String> = names.iter().map(|n| n.replace("{{uid}}", uid)).collect();
            if got != want {
                bail!("{}: listed {got:?}, expected {want:?}", step.rpc);
            }
        }
        if let (Some(kube), Some(obj)) = (self.kube, &step.object) {
            check_object(kube, obj, uid).await?;
        }
        if let (Some(kube), Some(obj)) = (self.kube, &step.image_pull) {
            check_image_pull(kube, obj, uid).await?;
        }
        if let (Some(kube), Some(absent)) = (self.kube, &step.image_pull_absent) {
            let name = image_pull_of(&absent.id, uid);
            let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
                kube::Api::namespaced(kube.0.clone(), &kube.1);
            if api.get_opt(&name).await?.is_some() {
                bail!(
                    "{}: expected no image-pull Secret {name}, found one",
                    step.rpc
                );
            }
        }
        if let (Some(kube), Some(absent)) = (self.kube, &step.object_absent) {
            let (name, _) = object_of(&absent.id, uid);
            let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
                kube::Api::namespaced(kube.0.clone(), &kube.1);
            if api.get_opt(&name).await?.is_some() {
                bail!(
                    "{}: expected no Kubernetes Secret {name}, found one",
                    step.rpc
                );
            }
        }
        Ok(())
    }

    /// Follows `token` over pages, concatenating `secrets`.
    async fn paginate(&mut self, request: &Value) -> Result<Outcome2> {
        let mut all = Vec::new();
        let mut req = request.clone();
        for _ in 0..1000 {
            match self.client.call("ListSecrets", &req).await? {
                Err(e) => return Ok(Err(e)),
                Ok(page) => {
                    all.extend(page["secrets"].as_array().cloned().unwrap_or_default());
                    match page["token"].as_str().filter(|t| !t.is_empty()) {
                        Some(t) => req["token"] = Value::String(t.to_owned()),
                        None => return Ok(Ok(serde_json::json!({"secrets": all}))),
                    }
                }
            }
        }
        bail!("ListSecrets: paging did not end after 1000 pages")
    }

    async fn cleanup(&mut self) {
        for id in std::mem::take(&mut self.created) {
            let _ = self
                .client
                .call("DeleteSecret", &serde_json::json!({"id": id}))
                .await;
        }
    }
}

fn object_of(id: &IdSpec, uid: &str) -> (String, String) {
    let (name, domain, project) = (
        id.name.replace("{{uid}}", uid),
        id.domain.replace("{{uid}}", uid),
        id.project.replace("{{uid}}", uid),
    );
    let key = data_key(ORGANIZATION, &domain, &project, &name);
    (object_name(&key), key)
}

fn image_pull_of(id: &IdSpec, uid: &str) -> String {
    image_pull_name(
        ORGANIZATION,
        &id.domain.replace("{{uid}}", uid),
        &id.project.replace("{{uid}}", uid),
        &id.name.replace("{{uid}}", uid),
    )
}

/// The expected value of an object check, if the case gives one.
fn expected_value(obj: &ObjectExpect, uid: &str) -> Result<Option<Vec<u8>>> {
    Ok(match (&obj.value, &obj.value_base64) {
        (Some(v), _) => Some(v.replace("{{uid}}", uid).into_bytes()),
        (None, Some(b)) => Some(STANDARD.decode(b)?),
        _ => None,
    })
}

/// The image-pull Secret the webhook copies into pods: named by `ToImagePullK8sName`, of type
/// `kubernetes.io/dockerconfigjson`, exactly the expected labels (`{{object}}` stands for the
/// generic Secret's name) and the single key `.dockerconfigjson` holding the value.
async fn check_image_pull(
    kube: &(kube::Client, String),
    obj: &ObjectExpect,
    uid: &str,
) -> Result<()> {
    let name = image_pull_of(&obj.id, uid);
    let (object, _) = object_of(&obj.id, uid);
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(kube.0.clone(), &kube.1);
    let secret = api
        .get_opt(&name)
        .await?
        .ok_or_else(|| anyhow!("no image-pull Secret {name}"))?;
    let kind = secret.type_.as_deref().unwrap_or("");
    if kind != "kubernetes.io/dockerconfigjson" {
        bail!(
            "image-pull Secret {name}: type {kind:?}, expected \"kubernetes.io/dockerconfigjson\""
        );
    }
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    let want: BTreeMap<String, String> = obj
        .labels
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.replace("{{uid}}", uid).replace("{{object}}", &object),
            )
        })
        .collect();
    if labels != want {
        bail!("image-pull Secret {name}: labels {labels:?}, expected {want:?}");
    }
    let data = secret.data.clone().unwrap_or_default();
    let keys: Vec<&String> = data.keys().collect();
    if keys != [".dockerconfigjson"] {
        bail!(
            "image-pull Secret {name}: data keys {keys:?}, expected exactly [\".dockerconfigjson\"]"
        );
    }
    if let Some(e) = expected_value(obj, uid)?
        && data[".dockerconfigjson"].0 != e
    {
        bail!("image-pull Secret {name}: the stored value differs from the one sent");
    }
    Ok(())
}

async fn check_object(kube: &(kube::Client, String), obj: &ObjectExpect, uid: &str) -> Result<()> {
    let (name, key) = object_of(&obj.id, uid);
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(kube.0.clone(), &kube.1);
    let secret = api
        .get_opt(&name)
        .await?
        .ok_or_else(|| anyhow!("no Kubernetes Secret {name} for data key {key}"))?;
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    let want: BTreeMap<String, String> = obj
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.replace("{{uid}}", uid)))
        .collect();
    if labels != want {
        bail!("Secret {name}: labels {labels:?}, expected {want:?}");
    }
    let data = secret.data.clone().unwrap_or_default();
    let keys: Vec<&String> = data.keys().collect();
    if keys != [&key] {
        bail!("Secret {name}: data keys {keys:?}, expected exactly [{key:?}]");
    }
    let stored = &data[&key].0;
    if let Some(e) = expected_value(obj, uid)?
        && *stored != e
    {
        bail!("Secret {name}: the stored value differs from the one sent");
    }
    if secret.string_data.is_some() {
        bail!("Secret {name}: stringData was stored");
    }
    Ok(())
}

fn applies(case: &Case, profile: Profile) -> bool {
    let name = match profile {
        Profile::Strict => "strict",
        Profile::Go => "go",
    };
    case.profiles
        .as_ref()
        .is_none_or(|p| p.iter().any(|x| x == name))
}

/// Runs every case that applies to the profile.
pub async fn run(opts: &Options) -> Result<Report> {
    let mut client = Client::connect(&opts.endpoint, opts.protocol).await?;
    let mut report = Report::default();
    for case in opts.cases.iter().filter(|c| applies(c, opts.profile)) {
        let uid = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let mut run = CaseRun {
            client: &mut client,
            kube: opts.kube.as_ref(),
            values: Vec::new(),
            created: Vec::new(),
        };
        let mut failure = None;
        for (i, step) in case.steps.iter().enumerate() {
            if let Err(e) = run.step(step, &uid).await {
                failure = Some(format!("step {}: {e:#}", i + 1));
                break;
            }
        }
        run.cleanup().await;
        let known = opts.known_failing.contains(&case.id);
        let outcome = match (failure.is_some(), known) {
            (false, false) => Outcome::Passed,
            (true, false) => Outcome::Failed,
            (true, true) => Outcome::ExpectedFailure,
            (false, true) => Outcome::UnexpectedPass,
        };
        report.cases.push(CaseResult {
            id: case.id.clone(),
            spec: case.spec.clone(),
            outcome,
            message: failure,
        });
    }
    Ok(report)
}

/// Reads a known-failing file: one case id per line, `#` comments.
pub fn load_known_failing(path: &Path) -> Result<HashSet<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_cases_parse_and_have_unique_ids() {
        let cases = load_cases(&cases_file()).unwrap();
        assert!(cases.len() >= 20);
        let ids: HashSet<&str> = cases.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids.len(), cases.len());
        assert!(
            cases.iter().any(|c| !applies(c, Profile::Go))
                && cases.iter().any(|c| !applies(c, Profile::Strict))
        );
    }

    #[tokio::test]
    async fn image_pull_check_catches_a_wrong_companion() {
        use k8s_openapi::api::core::v1::Secret;
        let engine = flytesecret::kubeapi::Engine::ephemeral();
        engine.ensure_namespace("flyte");
        let kube = (engine.kube_client("flyte"), "flyte".to_owned());
        let api: kube::Api<Secret> = kube::Api::namespaced(kube.0.clone(), "flyte");
        let id = IdSpec {
            name: "s-{{uid}}".into(),
            domain: "d".into(),
            project: String::new(),
        };
        let (object, _) = object_of(&id, "u1");
        let value = r#"{"auths":{"r":{"auth":"dTpw"}}}"#;
        let expect = ObjectExpect {
            id: id.clone(),
            labels: BTreeMap::from([
                (
                    "app.flyte.org/image-pull-for".to_owned(),
                    "{{object}}".to_owned(),
                ),
                ("union.ai/secret-name".to_owned(), "s-{{uid}}".to_owned()),
            ]),
            value: Some(value.to_owned()),
            value_base64: None,
        };
        let companion = |kind: &str, tie: &str, v: &str| -> Secret {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": image_pull_of(&id, "u1"), "labels": {
                    "app.flyte.org/image-pull-for": tie, "union.ai/secret-name": "s-u1"}},
                "type": kind,
                "data": {".dockerconfigjson": STANDARD.encode(v)},
            }))
            .unwrap()
        };
        let pp = kube::api::PostParams::default();
        let name = image_pull_of(&id, "u1");
        let missing = check_image_pull(&kube, &expect, "u1").await.unwrap_err();
        assert!(
            missing.to_string().contains("no image-pull Secret"),
            "{missing}"
        );
        for (wrong, why) in [
            (companion("Opaque", &object, value), "type"),
            (
                companion("kubernetes.io/dockerconfigjson", "other", value),
                "labels",
            ),
            (
                companion(
                    "kubernetes.io/dockerconfigjson",
                    &object,
                    r#"{"auths":{"x":{}}}"#,
                ),
                "value differs",
            ),
        ] {
            api.create(&pp, &wrong).await.unwrap();
            let e = check_image_pull(&kube, &expect, "u1").await.unwrap_err();
            assert!(e.to_string().contains(why), "{e}");
            api.delete(&name, &Default::default()).await.unwrap();
        }
        api.create(
            &pp,
            &companion("kubernetes.io/dockerconfigjson", &object, value),
        )
        .await
        .unwrap();
        check_image_pull(&kube, &expect, "u1").await.unwrap();
    }

    #[test]
    fn subset_matching() {
        let actual = serde_json::json!({"a": 1, "b": {"c": [1, {"d": 2, "e": 3}]}});
        assert!(contains(
            &actual,
            &serde_json::json!({"b": {"c": [1, {"d": 2}]}})
        ));
        assert!(!contains(&actual, &serde_json::json!({"b": {"c": [1]}})));
        assert!(!contains(&actual, &serde_json::json!({"a": 2})));
    }
}
