//! The deployment in `deploy/`: rendered with the real `kubectl kustomize`, every object parsed
//! with k8s-openapi types, the Role checked against the verbs the service's Kubernetes calls
//! really use (found by running every call under the rendered Role), the hardening fields, the
//! ConfigMap's file through `flytesecret config`, and the binary run the way the image runs it:
//! a numeric non-root user, no HOME, a read-only root filesystem.

mod common;

use bytes::Bytes;
use common::{BIN, http, id};
use flytesecret::kubeapi::{Engine, http_face::InProcess};
use flytesecret::proto::flyteidl2::secret::*;
use flytesecret::service::{KubeBackend, SecretService, Settings};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The namespace `deploy/kustomization.yaml` places everything in.
const NAMESPACE: &str = "flyte";
/// The port the service listens on (the image's EXPOSE, the config's secret.server.port).
const PORT: i32 = 8093;

/// `kubectl kustomize DIR` as parsed YAML documents. kubectl is required (CI installs it).
fn render(dir: &str) -> Vec<serde_yaml::Value> {
    let out = Command::new("kubectl")
        .args(["kustomize", &format!("{ROOT}/{dir}")])
        .output()
        .expect("kubectl is required for this test (.ci/run installs it)");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

fn kind(doc: &serde_yaml::Value) -> &str {
    doc["kind"].as_str().unwrap_or("")
}

/// The one object of type `T` (by its kind), parsed with its k8s-openapi type.
fn one<T: DeserializeOwned + k8s_openapi::Resource>(docs: &[serde_yaml::Value]) -> T {
    let matching: Vec<_> = docs.iter().filter(|d| kind(d) == T::KIND).collect();
    assert_eq!(matching.len(), 1, "exactly one {}", T::KIND);
    serde_yaml::from_value(matching[0].clone())
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", T::KIND))
}

/// Parses every rendered object with its typed form; unknown kinds fail the test.
fn parse_all(docs: &[serde_yaml::Value]) {
    fn typed<T: DeserializeOwned>(doc: &serde_yaml::Value) {
        serde_yaml::from_value::<T>(doc.clone()).unwrap_or_else(|e| panic!("{}: {e}", kind(doc)));
    }
    for doc in docs {
        match kind(doc) {
            "ServiceAccount" => typed::<ServiceAccount>(doc),
            "Role" => typed::<Role>(doc),
            "RoleBinding" => typed::<RoleBinding>(doc),
            "ConfigMap" => typed::<ConfigMap>(doc),
            "Service" => typed::<Service>(doc),
            "Deployment" => typed::<Deployment>(doc),
            "PodDisruptionBudget" => typed::<PodDisruptionBudget>(doc),
            "NetworkPolicy" => typed::<NetworkPolicy>(doc),
            // cert-manager's CRD has no k8s-openapi type: its metadata must still be an ObjectMeta.
            "Certificate" => {
                assert_eq!(doc["apiVersion"].as_str(), Some("cert-manager.io/v1"));
                typed::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>(
                    &doc["metadata"],
                )
            }
            other => panic!("unexpected kind {other:?} in the rendered manifests"),
        }
    }
}

fn pod_spec(d: &Deployment) -> &PodSpec {
    d.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn container(d: &Deployment) -> &Container {
    let spec = pod_spec(d);
    assert_eq!(spec.containers.len(), 1, "one container");
    &spec.containers[0]
}

fn pod_labels(d: &Deployment) -> BTreeMap<String, String> {
    let template = &d.spec.as_ref().unwrap().template;
    template.metadata.as_ref().unwrap().labels.clone().unwrap()
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The `config.yaml` of the rendered ConfigMap.
fn config_file(docs: &[serde_yaml::Value], key: &str) -> String {
    let cm: ConfigMap = one(docs);
    cm.data
        .unwrap()
        .remove(key)
        .unwrap_or_else(|| panic!("ConfigMap has no {key}"))
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flytesecret-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn base_renders_only_namespaced_objects_and_names_no_namespace_itself() {
    let docs = render("deploy");
    parse_all(&docs);
    let kinds: BTreeSet<&str> = docs.iter().map(kind).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ConfigMap",
            "Deployment",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ])
    );
    for doc in &docs {
        assert_eq!(
            doc["metadata"]["namespace"].as_str(),
            Some(NAMESPACE),
            "{} {:?}",
            kind(doc),
            doc["metadata"]["name"]
        );
    }
    // The base itself leaves the namespace to whoever uses it.
    let base = render("deploy/base");
    for doc in &base {
        assert!(
            doc["metadata"]["namespace"].is_null(),
            "{} hard-codes a namespace",
            kind(doc)
        );
    }
}

#[test]
fn the_deployment_is_hardened_and_probed() {
    let docs = render("deploy");
    let d: Deployment = one(&docs);
    let spec = d.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = pod_spec(&d);
    let psc = pod.security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert!(
        psc.run_as_user.is_some_and(|u| u > 0),
        "numeric non-root user"
    );
    assert_eq!(
        psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );
    let c = container(&d);
    assert_eq!(
        c.args.as_deref(),
        Some(
            &[
                "serve".to_owned(),
                "--config".to_owned(),
                "/etc/flytesecret/config.yaml".to_owned()
            ][..]
        )
    );
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.privileged, Some(false));
    let caps = sc.capabilities.as_ref().unwrap();
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_owned()][..]));
    assert!(caps.add.is_none());
    assert_eq!(
        sc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );
    assert!(pod.host_network.is_none() && pod.host_pid.is_none());
    // Probes: readiness on /readyz, liveness and startup on /healthz, all on the service port.
    let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        let get = p.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.port, IntOrString::String("http".into()));
        get.path.clone().unwrap()
    };
    assert_eq!(path(&c.readiness_probe), "/readyz");
    assert_eq!(path(&c.liveness_probe), "/healthz");
    assert_eq!(path(&c.startup_probe), "/healthz");
    let ports = c.ports.as_ref().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(
        (ports[0].name.as_deref(), ports[0].container_port),
        (Some("http"), PORT)
    );
    // Requests and limits are both set, memory limit above the request.
    let res = c.resources.as_ref().unwrap();
    let (req, lim) = (res.requests.as_ref().unwrap(), res.limits.as_ref().unwrap());
    assert!(req.contains_key("cpu") && req.contains_key("memory"));
    let mib = |q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity| {
        q.0.strip_suffix("Mi").unwrap().parse::<u64>().unwrap()
    };
    assert!(mib(&lim["memory"]) > mib(&req["memory"]));
    // Spread over nodes, selecting the pods themselves.
    let labels = pod_labels(&d);
    let spread = pod.topology_spread_constraints.as_ref().unwrap();
    assert!(
        spread
            .iter()
            .any(|t| t.topology_key == "kubernetes.io/hostname")
    );
    for t in spread {
        let sel = t
            .label_selector
            .as_ref()
            .unwrap()
            .match_labels
            .clone()
            .unwrap();
        assert!(selects(&sel, &labels), "{sel:?} vs {labels:?}");
    }
    // Drains in-flight requests before the kubelet kills it.
    assert!(
        pod.termination_grace_period_seconds.unwrap()
            > flytesecret::listener::Limits::default()
                .shutdown_grace
                .as_secs() as i64
    );
}

#[test]
fn selectors_and_references_agree() {
    let docs = render("deploy");
    let d: Deployment = one(&docs);
    let labels = pod_labels(&d);
    let pod = pod_spec(&d);

    let svc: Service = one(&docs);
    let svc_spec = svc.spec.unwrap();
    assert!(selects(&svc_spec.selector.unwrap(), &labels));
    let sp = &svc_spec.ports.unwrap()[0];
    assert_eq!(
        (sp.port, sp.target_port.clone()),
        (PORT, Some(IntOrString::String("http".into())))
    );

    let pdb: PodDisruptionBudget = one(&docs);
    let pdb_spec = pdb.spec.unwrap();
    assert!(selects(
        &pdb_spec.selector.unwrap().match_labels.unwrap(),
        &labels
    ));
    assert_eq!(pdb_spec.min_available, Some(IntOrString::Int(1)));

    // NetworkPolicy: ingress to the service port only.
    let np: NetworkPolicy = one(&docs);
    let np_spec = np.spec.unwrap();
    assert!(selects(
        &np_spec.pod_selector.unwrap().match_labels.unwrap(),
        &labels
    ));
    assert_eq!(
        np_spec.policy_types.as_deref(),
        Some(&["Ingress".to_owned()][..])
    );
    let rules = np_spec.ingress.unwrap();
    let ports: Vec<_> = rules
        .iter()
        .flat_map(|r| r.ports.clone().unwrap())
        .collect();
    assert_eq!(ports.len(), rules.len(), "every rule names its port");
    for p in ports {
        assert_eq!(p.port, Some(IntOrString::Int(PORT)));
        assert_eq!(p.protocol.as_deref(), Some("TCP"));
    }

    // ServiceAccount ← RoleBinding → Role, all in one namespace.
    let sa: ServiceAccount = one(&docs);
    let sa_name = sa.metadata.name.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some(sa_name.as_str()));
    let rb: RoleBinding = one(&docs);
    let role: Role = one(&docs);
    assert_eq!(
        (rb.role_ref.kind.as_str(), &rb.role_ref.name),
        ("Role", role.metadata.name.as_ref().unwrap())
    );
    let subjects = rb.subjects.unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(
        (
            subjects[0].kind.as_str(),
            subjects[0].name.as_str(),
            subjects[0].namespace.as_deref()
        ),
        ("ServiceAccount", sa_name.as_str(), Some(NAMESPACE))
    );

    // The config volume is the generated ConfigMap, mounted where the args point.
    let cm: ConfigMap = one(&docs);
    let volumes = pod.volumes.as_ref().unwrap();
    let config_volume = volumes
        .iter()
        .find(|v| v.config_map.as_ref().map(|c| &c.name) == cm.metadata.name.as_ref())
        .expect("a volume from the ConfigMap");
    let mounts = container(&d).volume_mounts.clone().unwrap();
    let mount = mounts
        .iter()
        .find(|m| m.name == config_volume.name)
        .unwrap();
    assert_eq!(mount.mount_path, "/etc/flytesecret/config.yaml");
    assert_eq!(mount.sub_path.as_deref(), Some("config.yaml"));
    assert!(cm.data.unwrap().contains_key("config.yaml"));
}

/// The RBAC verb of a Kubernetes API request, with its resource and namespace (`None` for
/// cluster-scoped), as kube-apiserver's request-info resolver names them.
fn rbac_attributes(method: &http::Method, uri: &http::Uri) -> (String, Option<String>, String) {
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let watch = uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let (resource, namespace, named) = match segments.as_slice() {
        ["api", "v1", "namespaces", ns, resource] => (*resource, Some(*ns), false),
        ["api", "v1", "namespaces", ns, resource, _name] => (*resource, Some(*ns), true),
        ["api", "v1", "namespaces", _name] => ("namespaces", None, true),
        ["api", "v1", resource] => (*resource, None, false),
        other => panic!("unexpected API path {other:?}"),
    };
    let verb = match (method.as_str(), named) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", false) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        other => panic!("unexpected request {other:?} on {uri}"),
    };
    (
        resource.to_owned(),
        namespace.map(str::to_owned),
        verb.to_owned(),
    )
}

/// A transport that lets through only what `role` grants in `namespace` (answering anything else
/// 403 Forbidden, as kube-apiserver would) and records every request's attributes.
#[derive(Clone)]
struct Rbac {
    inner: InProcess,
    role: Arc<Role>,
    namespace: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// One request: resource, namespace, verb, and whether the Role allowed it.
type Seen = (String, Option<String>, String, bool);

impl Rbac {
    fn allows(&self, resource: &str, namespace: Option<&str>, verb: &str) -> bool {
        namespace == Some(self.namespace.as_str())
            && self.role.rules.iter().flatten().any(|r| {
                r.api_groups.iter().flatten().any(|g| g.is_empty())
                    && r.resources.iter().flatten().any(|x| x == resource)
                    && r.verbs.iter().any(|v| v == verb || v == "*")
            })
    }
}

impl tower::Service<http::Request<kube::client::Body>> for Rbac {
    type Response = http::Response<flytesecret::kubeapi::watch::Body>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower::Service::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, req: http::Request<kube::client::Body>) -> Self::Future {
        let (resource, namespace, verb) = rbac_attributes(req.method(), req.uri());
        let allowed = self.allows(&resource, namespace.as_deref(), &verb);
        self.seen
            .lock()
            .unwrap()
            .push((resource.clone(), namespace, verb.clone(), allowed));
        if allowed {
            return tower::Service::call(&mut self.inner, req);
        }
        let body = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("{resource} is forbidden: cannot {verb}"),
            "reason": "Forbidden", "code": 403,
        });
        Box::pin(async move {
            Ok(http::Response::builder()
                .status(403)
                .header("content-type", "application/json")
                .body(flytesecret::kubeapi::watch::Body::full(Bytes::from(
                    body.to_string(),
                )))
                .unwrap())
        })
    }
}

fn spec(v: &str) -> Option<SecretSpec> {
    Some(SecretSpec {
        value: Some(secret_spec::Value::StringValue(v.into())),
        r#type: 0,
    })
}

/// Every Kubernetes call the service makes, run through the rendered Role: the startup chores
/// (`server::prepare`: ensure the namespace, then the readiness ping) and all five RPCs, on
/// every path that reaches the API (paging, a missing secret, an update). The secrets verbs they
/// use must be exactly the Role's, and every RPC must succeed under it.
#[tokio::test]
async fn the_role_grants_exactly_the_verbs_the_service_uses() {
    let docs = render("deploy");
    let role: Role = one(&docs);
    let rules = role.rules.clone().unwrap();
    assert_eq!(rules.len(), 1, "one rule, on secrets");
    assert_eq!(rules[0].api_groups.as_deref(), Some(&["".to_owned()][..]));
    assert_eq!(
        rules[0].resources.as_deref(),
        Some(&["secrets".to_owned()][..])
    );
    assert!(rules[0].resource_names.is_none());
    assert!(!docs.iter().any(|d| kind(d).starts_with("Cluster")));

    let engine = Engine::ephemeral();
    engine.ensure_namespace(NAMESPACE);
    let rbac = Rbac {
        inner: InProcess(engine.clone()),
        role: Arc::new(role.clone()),
        namespace: NAMESPACE.to_owned(),
        seen: Arc::default(),
    };
    let client = kube::Client::new(rbac.clone(), NAMESPACE);
    let settings = Settings {
        namespace: NAMESPACE.to_owned(),
        ..Settings::default()
    };
    let svc = SecretService::new(KubeBackend::new(client, 0.0, 1, None), settings, None);

    // Startup: the namespace check is refused (nothing cluster-wide is granted) and `prepare`
    // only warns about that; readiness needs the list.
    let ns = svc.kube().ensure_namespace(NAMESPACE).await;
    assert_eq!(
        ns.unwrap_err().reason(),
        flytesecret::service::Reason::Forbidden
    );
    svc.kube()
        .ping(NAMESPACE)
        .await
        .expect("readiness under the Role");

    let ok = |what: &str, r: Result<(), flytesecret::service::RpcError>| {
        r.unwrap_or_else(|e| panic!("{what} under the Role: {e:?}"))
    };
    for name in ["a", "b", "c"] {
        ok(
            "create",
            svc.create(CreateSecretRequest {
                id: id(name, "development", "p"),
                secret_spec: spec("v1"),
            })
            .await
            .map(drop),
        );
    }
    ok(
        "get",
        svc.get(GetSecretRequest {
            id: id("a", "development", "p"),
            ..Default::default()
        })
        .await
        .map(drop),
    );
    assert!(
        svc.get(GetSecretRequest {
            id: id("missing", "development", "p"),
            ..Default::default()
        })
        .await
        .is_err()
    );
    ok(
        "update",
        svc.update(UpdateSecretRequest {
            id: id("a", "development", "p"),
            secret_spec: spec("v2"),
        })
        .await
        .map(drop),
    );
    let page = svc
        .list(ListSecretsRequest {
            domain: "development".into(),
            project: "p".into(),
            limit: 2,
            ..Default::default()
        })
        .await
        .expect("list under the Role");
    assert!(!page.token.is_empty(), "a second page exists");
    ok(
        "list page 2",
        svc.list(ListSecretsRequest {
            domain: "development".into(),
            project: "p".into(),
            limit: 2,
            token: page.token,
            ..Default::default()
        })
        .await
        .map(drop),
    );
    ok(
        "list all",
        svc.list(ListSecretsRequest::default()).await.map(drop),
    );
    ok(
        "delete",
        svc.delete(DeleteSecretRequest {
            id: id("b", "development", "p"),
            ..Default::default()
        })
        .await
        .map(drop),
    );

    let seen = rbac.seen.lock().unwrap().clone();
    let refused: Vec<_> = seen.iter().filter(|s| !s.3).collect();
    assert_eq!(
        refused,
        [&("namespaces".to_owned(), None, "get".to_owned(), false)],
        "only the optional namespace check may be refused"
    );
    let used: BTreeSet<String> = seen
        .iter()
        .filter(|(resource, ns, _, _)| resource == "secrets" && ns.as_deref() == Some(NAMESPACE))
        .map(|(_, _, verb, _)| verb.clone())
        .collect();
    let granted: BTreeSet<String> = rules[0].verbs.iter().cloned().collect();
    assert_eq!(
        used, granted,
        "the Role must grant exactly the verbs the service uses"
    );
}

#[test]
fn the_configmap_file_passes_flytesecret_config_and_a_bad_one_fails() {
    let docs = render("deploy");
    let dir = temp_dir("deploy-config");
    let file = dir.join("config.yaml");
    std::fs::write(&file, config_file(&docs, "config.yaml")).unwrap();
    let run = |path: &Path| {
        Command::new(BIN)
            .args(["config", "--config"])
            .arg(path)
            .env_clear()
            .env("SECRET_KUBERNETES_NAMESPACE", "team-ns")
            .output()
            .unwrap()
    };
    let out = run(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let effective: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    let s = &effective["secret"];
    assert_eq!(s["server"]["port"].as_str(), Some("8093"));
    assert_eq!(
        s["kubernetes"]["kubeconfig"].as_str(),
        Some(""),
        "in-cluster"
    );
    // The Deployment's environment wins over the file, as in the pod.
    assert_eq!(s["kubernetes"]["namespace"].as_str(), Some("team-ns"));
    assert_eq!(
        s["webhookURL"].as_str(),
        Some("http://flyte-binary-webhook-headless:9444")
    );
    assert_eq!(s["log"]["format"].as_str(), Some("json"));

    std::fs::write(&file, "secret:\n  kubernetes:\n    timeout: 30\n").unwrap();
    let out = run(&file);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&file.display().to_string()) && err.contains("secret.kubernetes.timeout"),
        "{err}"
    );
    std::fs::write(&file, "secret: [unclosed\n").unwrap();
    let out = run(&file);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&file.display().to_string()));
    let out = run(&dir.join("missing.yaml"));
    assert!(!out.status.success());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_secure_overlay_adds_tls_authentication_and_scraping() {
    let docs = render("deploy/overlays/secure");
    parse_all(&docs);
    let d: Deployment = one(&docs);
    let c = container(&d);
    let pod = pod_spec(&d);

    // TLS: the cert-manager Secret is mounted where secret.server.tls.* point.
    let cert = docs
        .iter()
        .find(|d| kind(d) == "Certificate")
        .expect("a Certificate");
    let secret_name = cert["spec"]["secretName"].as_str().unwrap();
    let tls_volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some(secret_name))
        .expect("the certificate's Secret as a volume");
    let mounts = c.volume_mounts.clone().unwrap();
    let tls_mount = mounts.iter().find(|m| m.name == tls_volume.name).unwrap();
    let env: BTreeMap<String, String> = c
        .env
        .iter()
        .flatten()
        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
        .collect();
    for (var, file) in [
        ("SECRET_SERVER_TLS_CERTFILE", "tls.crt"),
        ("SECRET_SERVER_TLS_KEYFILE", "tls.key"),
    ] {
        assert_eq!(env[var], format!("{}/{file}", tls_mount.mount_path));
    }
    // The non-root user can read the mounted key through the pod's fsGroup.
    let psc = pod.security_context.as_ref().unwrap();
    assert_eq!(psc.fs_group, psc.run_as_group);
    for probe in [&c.readiness_probe, &c.liveness_probe, &c.startup_probe] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.scheme.as_deref(), Some("HTTPS"));
    }

    // Prometheus scraping of /metrics on the service port, over HTTPS.
    let annotations = d
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .clone()
        .unwrap();
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], PORT.to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    assert_eq!(annotations["prometheus.io/scheme"], "https");

    // Authentication: auth.yaml carries the secret.auth keys and is read beside config.yaml.
    let auth: serde_yaml::Value = serde_yaml::from_str(&config_file(&docs, "auth.yaml")).unwrap();
    let a = &auth["secret"]["auth"];
    assert!(a["jwt"]["issuer"].as_str().unwrap().starts_with("https://"));
    assert!(
        a["jwt"]["audiences"]
            .as_sequence()
            .is_some_and(|s| !s.is_empty())
    );
    for key in ["jwksURL", "usernameClaim", "groupsClaim"] {
        assert!(a["jwt"][key].as_str().is_some(), "{key}");
    }
    assert!(a["kubernetes"]["tokenReview"].as_bool().is_some());
    for rule in a["policy"].as_sequence().unwrap() {
        for field in ["subjects", "verbs", "domains", "projects"] {
            assert!(
                rule[field].as_sequence().is_some(),
                "policy rule without {field}"
            );
        }
    }
    assert_eq!(
        c.args.as_deref(),
        Some(
            &[
                "serve".to_owned(),
                "--config".to_owned(),
                "/etc/flytesecret/*.yaml".to_owned()
            ][..]
        )
    );
    let mounted: BTreeSet<&str> = mounts.iter().map(|m| m.mount_path.as_str()).collect();
    assert!(
        mounted.contains("/etc/flytesecret/config.yaml")
            && mounted.contains("/etc/flytesecret/auth.yaml")
    );
}

/// Runs `args` as the image does: uid/gid 65532 with no supplementary groups, no capabilities,
/// no new privileges, an empty environment plus `env` (no HOME), in a private mount namespace
/// whose root filesystem is read-only.
fn run_like_the_image(
    bin: &Path,
    args: &[String],
    env: &[(String, String)],
) -> std::process::Child {
    assert_eq!(
        unsafe_geteuid(),
        0,
        "this test needs root to drop to a numeric user and remount / read-only (CI runs as root)"
    );
    let mut script = String::from(
        "mount --make-rprivate / && mount -o remount,bind,ro / && exec setpriv --reuid 65532 --regid 65532 --clear-groups --no-new-privs --inh-caps=-all --bounding-set=-all env -i",
    );
    for (k, v) in env {
        script.push_str(&format!(" '{k}={v}'"));
    }
    script.push_str(&format!(" '{}'", bin.display()));
    for a in args {
        script.push_str(&format!(" '{a}'"));
    }
    Command::new("unshare")
        .args(["--mount", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("unshare and setpriv (util-linux) are needed")
}

fn unsafe_geteuid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// The final stage's settings, proven on the binary: a numeric non-root user, no HOME, a
/// read-only root filesystem, with the Deployment's args and environment and the ConfigMap's
/// file. It serves, and its writes reach the Kubernetes API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_as_the_image_runs_it() {
    let docs = render("deploy");
    let d: Deployment = one(&docs);
    let c = container(&d);
    let dir = temp_dir("deploy-image");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // The binary and its files where uid 65532 can read them (the target dir may not be).
    let bin = dir.join("flytesecret");
    std::fs::copy(BIN, &bin).unwrap();
    let config = dir.join("config.yaml");
    std::fs::write(&config, config_file(&docs, "config.yaml")).unwrap();

    // The Kubernetes API: the embedded engine's HTTP face, standing in for the cluster's.
    let engine = Engine::ephemeral();
    engine.ensure_namespace(NAMESPACE);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    let kubeconfig = dir.join("kubeconfig");
    flytesecret::kubeapi::http_face::write_kubeconfig(&kubeconfig, api, NAMESPACE, &engine)
        .unwrap();
    // Written owner-only (it may carry a token); the non-root user the image runs as reads it,
    // as it would read a mounted ServiceAccount's files.
    std::fs::set_permissions(
        &kubeconfig,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let server = tokio::spawn(flytesecret::kubeapi::http_face::serve(
        engine.clone(),
        listener,
        flytesecret::listener::Limits::default(),
        false,
        std::future::pending(),
    ));

    // The Deployment's args, with the config path moved; its env (fieldRefs resolved as the
    // kubelet would); and what the cluster would provide, here as flags.
    let mut args: Vec<String> = c.args.clone().unwrap();
    assert_eq!(args[..2], ["serve", "--config"]);
    args[2] = config.display().to_string();
    args.extend(
        [
            "--secret.kubernetes.kubeconfig",
            &kubeconfig.display().to_string(),
            "--secret.server.host",
            "127.0.0.1",
            "--secret.server.port",
            "0",
            "--secret.webhookURL",
            "",
        ]
        .map(str::to_owned),
    );
    let env: Vec<(String, String)> = c
        .env
        .iter()
        .flatten()
        .map(|e| {
            let value = match (&e.value, &e.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(from)) => {
                    assert_eq!(
                        from.field_ref.as_ref().unwrap().field_path,
                        "metadata.namespace"
                    );
                    NAMESPACE.to_owned()
                }
                _ => String::new(),
            };
            (e.name.clone(), value)
        })
        .collect();
    assert!(!env.iter().any(|(k, _)| k == "HOME"));

    let bin_for_child = bin.clone();
    let mut child =
        tokio::task::spawn_blocking(move || run_like_the_image(&bin_for_child, &args, &env))
            .await
            .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let addr = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        loop {
            let line = lines.next().expect("exited before serving").unwrap();
            if let Some((_, a)) = line.split_once("SecretService on http://") {
                std::thread::spawn(move || for _ in lines {});
                return a.trim().parse::<std::net::SocketAddr>().unwrap();
            }
        }
    })
    .await
    .unwrap();

    // It is the process we meant: uid 65532, no HOME, / mounted read-only.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid.split_whitespace().skip(1).collect::<Vec<_>>(),
        ["65532"; 4]
    );
    let cap_eff = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    assert!(cap_eff.ends_with("0000000000000000"), "{cap_eff}");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        !environ
            .split(|b| *b == 0)
            .any(|kv| kv.starts_with(b"HOME="))
    );
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let root = mountinfo
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .unwrap();
    assert!(
        root.split_whitespace()
            .nth(5)
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "{root}"
    );

    let ready = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok((200, _, _)) = http(addr, "GET", "/readyz", &[], b"") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    })
    .await
    .unwrap();
    assert!(ready, "never ready");
    let created = tokio::task::spawn_blocking(move || {
        http(
            addr,
            "POST",
            "/flyteidl2.secret.SecretService/CreateSecret",
            &[("content-type", "application/json")],
            br#"{"id":{"name":"image-check","domain":"development","project":"p"},"secretSpec":{"stringValue":"v"}}"#,
        )
        .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(created.0, 200, "{}", String::from_utf8_lossy(&created.2));
    let listed = engine
        .handle(
            http::Request::get(format!("/api/v1/namespaces/{NAMESPACE}/secrets"))
                .body(Bytes::new())
                .unwrap(),
        )
        .await;
    let list: serde_json::Value = serde_json::from_slice(listed.body()).unwrap();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "the write reached the API"
    );

    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "graceful exit on SIGTERM: {exit:?}");
    server.abort();
    std::fs::remove_dir_all(dir).unwrap();
}
