//! The five RPCs of `flyteidl2.secret.SecretService`, protocol-neutral: every protocol adapter
//! (gRPC, gRPC-Web, Connect, REST) calls these and only renders the result. Behaviour follows
//! the Go service as `docs/go-service.md` §2 to §7 describe it; deliberate differences are marked.

pub mod cluster;
pub mod deadline;
mod error;
pub mod image_pull;
pub mod kube_backend;
pub mod metrics;
pub mod secret_head;
pub mod transport;
mod validate;

pub use error::{Code, MAX_ECHO_CHARS, RpcError, echo};
pub use kube_backend::{KubeBackend, KubeError, Reason};

use crate::auth::{Caller, Verb, policy};
use crate::invalidation::Invalidator;
use crate::naming::{self, DEFAULT_ORGANIZATION, SecretId};
use crate::proto::flyteidl2::common::ClusterIdentifier;
use crate::proto::flyteidl2::secret::{
    ClusterSecretStatus, CreateSecretRequest, CreateSecretResponse, DeleteSecretRequest,
    DeleteSecretResponse, GetSecretRequest, GetSecretResponse, ListSecretsRequest,
    ListSecretsResponse, OverallStatus, Secret, SecretIdentifier, SecretMetadata,
    SecretPresenceStatus, SecretStatus, SecretType, UpdateSecretRequest, UpdateSecretResponse,
    secret_spec,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret as K8sSecret;
use kube::api::{ListParams, ObjectMeta};
use secret_head::SecretHead;
use std::collections::BTreeMap;
use std::sync::Arc;

pub const LABEL_MANAGED: &str = "app.flyte.org/managed";
pub const LABEL_DOMAIN: &str = "app.flyte.org/domain";
pub const LABEL_PROJECT: &str = "app.flyte.org/project";

/// The name of the span each RPC runs in (exported over OTLP, named there by `otel.name`).
pub const RPC_SPAN: &str = "rpc";

/// The most Secrets one Kubernetes list call of ListSecrets asks for (kubectl's chunk size is
/// 500; values ride along with every listed Secret, so a page is kept small).
pub const LIST_PAGE: usize = 100;
/// How many of those pages are read at once across all ListSecrets calls (each holds its
/// Secrets' values until it is turned into ids): many concurrent lists wait their turn instead
/// of holding the namespace's values many times over.
pub const LIST_PAGES_AT_ONCE: usize = 4;
const NO_VALUE: &str = "string or binary value expected, got <nil>";

/// Settings read on every request (the Go service reads these from live config).
#[derive(Clone, Debug)]
pub struct Settings {
    pub namespace: String,
    pub cluster_name: String,
    /// Enforce the declared request contract on Create (see `validate.rs`).
    pub strict_names: bool,
    /// How often Update re-reads and re-applies after a 409 Conflict before giving up.
    pub update_conflict_retries: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespace: crate::config::default_of("secret.kubernetes.namespace").into(),
            cluster_name: crate::config::default_of("secret.kubernetes.clusterName").into(),
            strict_names: crate::config::default_of("secret.strictNames") == "true",
            update_conflict_retries: 16,
        }
    }
}

pub struct SecretService {
    kube: KubeBackend,
    settings: Settings,
    invalidator: Option<Invalidator>,
    metrics: metrics::Metrics,
    /// `secret.auth.policy`; `None` allows every authenticated caller everything.
    policy: Option<Vec<crate::auth::policy::Rule>>,
    audit: Option<Arc<crate::audit::AuditLog>>,
    /// Kubernetes list pages being read at once, across every ListSecrets.
    list_pages: tokio::sync::Semaphore,
}

/// What an RPC acts on, for authorization and the audit log.
pub struct Target {
    verb: Verb,
    organization: String,
    domain: String,
    project: String,
    name: String,
    /// ListSecrets: the domain and project are a filter (empty means all).
    is_filter: bool,
}

impl Target {
    fn one(verb: Verb, id: Option<&SecretIdentifier>) -> Target {
        let id = id.cloned().unwrap_or_default();
        Target {
            verb,
            organization: id.organization,
            domain: id.domain,
            project: id.project,
            name: id.name,
            is_filter: false,
        }
    }

    fn list(req: &ListSecretsRequest) -> Target {
        Target {
            verb: Verb::List,
            organization: req.organization.clone(),
            domain: req.domain.clone(),
            project: req.project.clone(),
            name: String::new(),
            is_filter: true,
        }
    }

    fn scope(&self) -> policy::Scope<'_> {
        policy::Scope {
            domain: &self.domain,
            project: &self.project,
            is_filter: self.is_filter,
        }
    }

    /// `permission_denied`, naming the verb and scope (never a value).
    fn denied(&self, caller: &Caller) -> RpcError {
        let who = if caller.subject.is_empty() {
            "an anonymous caller".to_owned()
        } else {
            format!("{:?}", caller.subject)
        };
        let part = |what: &str, v: &str| {
            if v.is_empty() && self.is_filter {
                format!("every {what}")
            } else if v.is_empty() {
                format!("no {what}")
            } else {
                format!("{what} {v:?}")
            }
        };
        RpcError::new(
            Code::PermissionDenied,
            format!(
                "{who} may not {} secrets in {}, {}",
                self.verb.as_str(),
                part("domain", &self.domain),
                part("project", &self.project)
            ),
        )
    }
}

fn check_scope(domain: &str, project: &str) -> Result<(), RpcError> {
    // The rule only looks at whether the domain is empty; the message repeats the project, so
    // a long one is shortened first (see `echo`).
    naming::check_scope(domain, &echo(project))
        .map_err(|e| RpcError::invalid_argument(e.to_string()))
}

fn not_found(name: &str) -> RpcError {
    RpcError::not_found(format!("secret {} not found", echo(name)))
}

/// Go's mapping for calls on one secret: `NotFound` names the user's secret, all else is internal.
fn on_secret(name: &str) -> impl Fn(KubeError) -> RpcError + '_ {
    move |e| {
        if e.reason() == Reason::NotFound {
            not_found(name)
        } else {
            RpcError::internal(e.to_string())
        }
    }
}

/// The encoded id and object name of a request's identifier (org is always `flyte`).
fn names(id: &SecretIdentifier) -> (naming::EncodedId, naming::ObjectName) {
    let encoded = SecretId::new(DEFAULT_ORGANIZATION, &id.domain, &id.project, &id.name).encode();
    let object = encoded.object_name();
    (encoded, object)
}

/// Puts the value into the object: a string goes to `stringData`, bytes to `data`; the other is
/// cleared, so any other data keys are dropped (as in Go).
fn set_value(secret: &mut K8sSecret, key: &naming::EncodedId, value: &secret_spec::Value) {
    match value {
        secret_spec::Value::StringValue(s) => {
            secret.string_data = Some(BTreeMap::from([(key.as_str().to_owned(), s.clone())]));
            secret.data = None;
        }
        secret_spec::Value::BinaryValue(b) => {
            secret.data = Some(BTreeMap::from([(
                key.as_str().to_owned(),
                ByteString(b.clone()),
            )]));
            secret.string_data = None;
        }
    }
}

fn value_bytes(value: &secret_spec::Value) -> &[u8] {
    match value {
        secret_spec::Value::StringValue(s) => s.as_bytes(),
        secret_spec::Value::BinaryValue(b) => b,
    }
}

/// The type a request asks for; a number the enum does not know is refused.
fn requested_type(number: i32) -> Result<SecretType, RpcError> {
    SecretType::try_from(number).map_err(|_| {
        RpcError::invalid_argument(format!("secret_spec.type: unknown secret type {number}"))
    })
}

/// Whether the RPC may see a stored Secret: a system secret is not found unless the request
/// asks for system secrets.
fn visible(system: bool, name: &str, include_system: bool) -> Result<(), RpcError> {
    if system && !include_system {
        Err(not_found(name))
    } else {
        Ok(())
    }
}

fn metadata(head: &SecretHead, status: SecretStatus) -> SecretMetadata {
    SecretMetadata {
        created_time: head
            .created
            .map(|seconds| crate::proto::Timestamp { seconds, nanos: 0 }),
        secret_status: Some(status),
        r#type: head.secret_type as i32,
    }
}

impl SecretService {
    pub fn new(kube: KubeBackend, settings: Settings, invalidator: Option<Invalidator>) -> Self {
        SecretService {
            kube,
            settings,
            invalidator,
            metrics: metrics::Metrics::default(),
            policy: None,
            audit: None,
            list_pages: tokio::sync::Semaphore::new(LIST_PAGES_AT_ONCE),
        }
    }

    /// Enforces `policy` on every RPC and writes each RPC to `audit`.
    pub fn with_security(
        mut self,
        policy: Option<Vec<crate::auth::policy::Rule>>,
        audit: Option<Arc<crate::audit::AuditLog>>,
    ) -> Self {
        self.policy = policy;
        self.audit = audit;
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn kube(&self) -> &KubeBackend {
        &self.kube
    }

    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// Runs one RPC in its span (named like the Go service's OpenTelemetry interceptor names it)
    /// if the policy allows the caller, records its outcome and latency, and audits it before
    /// the response leaves.
    async fn observed<T, F: Future<Output = Result<T, RpcError>>>(
        &self,
        method: metrics::Method,
        target: Target,
        rpc: impl FnOnce() -> F,
    ) -> Result<T, RpcError> {
        use tracing::Instrument as _;
        let span = tracing::info_span!(
            RPC_SPAN,
            otel.name = %format_args!("flyteidl2.secret.SecretService/{}", method.name()),
            otel.kind = "server",
            rpc.system = transport::current_name(),
            rpc.service = "flyteidl2.secret.SecretService",
            rpc.method = method.name(),
            rpc.connect_rpc.error_code = tracing::field::Empty,
        );
        // Recorded by a guard, so an RPC whose future is dropped (client reset, deadline) is
        // counted too: as `deadline_exceeded` when its deadline has passed, else `canceled`.
        let mut outcome = metrics::Outcome::new(&self.metrics, method, span.clone());
        let ctx = crate::auth::current();
        let anonymous = Caller::anonymous();
        let caller = ctx.as_ref().map_or(&anonymous, |c| &c.caller);
        let result =
            if !policy::allowed(self.policy.as_deref(), caller, target.verb, &target.scope()) {
                Err(target.denied(caller))
            } else if span.is_disabled() {
                // Nothing records it (no OTLP, no debug logs): no span to enter on every poll.
                rpc().await
            } else {
                rpc().instrument(span).await
            };
        let code = result.as_ref().err().map(|e| e.code);
        outcome.finish(code);
        if let Some(audit) = &self.audit {
            audit.write(&crate::audit::AuditRecord {
                caller,
                peer: ctx.as_ref().and_then(|c| c.peer),
                method: &format!("flyteidl2.secret.SecretService/{}", method.name()),
                secret: Some(crate::audit::SecretRef {
                    organization: &target.organization,
                    domain: &target.domain,
                    project: &target.project,
                    name: &target.name,
                }),
                code: code.map_or("ok", Code::connect_name),
                request_id: ctx.as_ref().map_or("", |c| c.request_id.as_str()),
            });
        }
        result
    }

    /// What an RPC on one secret acts on. Only the policy and the audit log read it, so without
    /// either the identifier is not copied.
    fn target(&self, verb: Verb, id: Option<&SecretIdentifier>) -> Target {
        if self.policy.is_none() && self.audit.is_none() {
            Target::one(verb, None)
        } else {
            Target::one(verb, id)
        }
    }

    fn status(&self) -> SecretStatus {
        SecretStatus {
            overall_status: OverallStatus::FullyPresent as i32,
            cluster_status: vec![ClusterSecretStatus {
                cluster: Some(ClusterIdentifier {
                    organization: String::new(),
                    name: self.settings.cluster_name.clone(),
                }),
                presence_status: SecretPresenceStatus::Present as i32,
            }],
        }
    }

    async fn invalidate(&self, id: &SecretIdentifier) {
        if let Some(inv) = &self.invalidator {
            inv.invalidate(&id.domain, &id.project, &id.name).await;
        }
    }

    pub async fn create(&self, req: CreateSecretRequest) -> Result<CreateSecretResponse, RpcError> {
        let target = self.target(Verb::Create, req.id.as_ref());
        self.observed(metrics::Method::CreateSecret, target, || {
            self.create_rpc(req)
        })
        .await
    }

    async fn create_rpc(&self, req: CreateSecretRequest) -> Result<CreateSecretResponse, RpcError> {
        let id = req.id.clone().unwrap_or_default();
        check_scope(&id.domain, &id.project)?;
        if self.settings.strict_names {
            validate::check_create(req.id.as_ref())?;
        }
        let spec = req.secret_spec.unwrap_or_default();
        let value = spec
            .value
            .ok_or_else(|| RpcError::invalid_argument(NO_VALUE))?;
        let kind = requested_type(spec.r#type)?;
        if kind == SecretType::ImagePullSecret {
            validate::check_docker_config(value_bytes(&value))?;
        }
        let (encoded, object) = names(&id);
        let mut labels = BTreeMap::from([(LABEL_MANAGED.to_owned(), "true".to_owned())]);
        if !id.domain.is_empty() {
            labels.insert(LABEL_DOMAIN.to_owned(), id.domain.clone());
        }
        if !id.project.is_empty() {
            labels.insert(LABEL_PROJECT.to_owned(), id.project.clone());
        }
        if kind == SecretType::ImagePullSecret {
            labels.insert(
                image_pull::LABEL_SECRET_TYPE.to_owned(),
                image_pull::TYPE_IMAGE_PULL.to_owned(),
            );
        }
        let mut secret = K8sSecret {
            metadata: ObjectMeta {
                name: Some(object.to_string()),
                namespace: Some(self.settings.namespace.clone()),
                labels: Some(labels),
                ..Default::default()
            },
            ..Default::default()
        };
        set_value(&mut secret, &encoded, &value);
        match self.kube.create(&self.settings.namespace, &secret).await {
            Ok(_) => {}
            Err(e) if e.reason() == Reason::AlreadyExists => {
                return Err(RpcError::new(Code::AlreadyExists, e.to_string()));
            }
            Err(e) => return Err(RpcError::internal(e.to_string())),
        }
        if kind == SecretType::ImagePullSecret
            && let Err(e) = self
                .write_companion(&id, &object, value_bytes(&value))
                .await
        {
            // Both or neither: take the generic Secret back.
            if let Err(undo) = self.kube.delete(&self.settings.namespace, &object).await {
                tracing::error!(object = %object, error = %undo, "could not roll back a created secret whose image-pull Secret failed");
            }
            return Err(e);
        }
        tracing::info!(name = %id.name, domain = %id.domain, project = %id.project, object = %object, r#type = kind.as_str_name(), "created secret");
        self.invalidate(&id).await;
        Ok(CreateSecretResponse {})
    }

    /// Creates or replaces the image-pull companion of `object`. A Secret of that name that this
    /// service did not write for `object` is left alone and the write fails. A concurrent writer
    /// (409 Conflict, or a create racing ours) makes it re-read and try again, boundedly.
    async fn write_companion(
        &self,
        id: &SecretIdentifier,
        object: &naming::ObjectName,
        value: &[u8],
    ) -> Result<(), RpcError> {
        let ns = &self.settings.namespace;
        let name = image_pull::companion_name(id);
        let internal =
            |e: KubeError| RpcError::internal(format!("writing the image-pull Secret {name}: {e}"));
        let mut attempt = 0;
        loop {
            let mut desired = image_pull::companion(ns, id, object, value);
            let written = match self.kube.get(ns, &name).await {
                Ok(existing) => {
                    if !image_pull::belongs_to(&existing, object) {
                        return Err(RpcError::new(
                            Code::AlreadyExists,
                            format!(
                                "image-pull Secret {name:?} already exists and does not belong to this secret"
                            ),
                        ));
                    }
                    desired.metadata.resource_version = existing.metadata.resource_version;
                    self.kube.replace(ns, &name, &desired).await
                }
                Err(e) if e.reason() == Reason::NotFound => self.kube.create(ns, &desired).await,
                Err(e) => return Err(internal(e)),
            };
            match written {
                Ok(_) => return Ok(()),
                Err(e)
                    if matches!(e.reason(), Reason::Conflict | Reason::AlreadyExists)
                        && attempt < self.settings.update_conflict_retries =>
                {
                    attempt += 1;
                    tracing::debug!(companion = %name, attempt, "image-pull Secret write conflict; re-reading");
                }
                Err(e) => return Err(internal(e)),
            }
        }
    }

    /// After an Update wrote `written`: writes the companion, then makes sure it holds what the
    /// generic Secret holds now. A concurrent Update may have written the generic Secret after us
    /// but its companion before ours; then ours is stale, so it is written again from the generic
    /// Secret's current value until the generic Secret stops changing under it (bounded).
    async fn companion_follows(
        &self,
        id: &SecretIdentifier,
        object: &naming::ObjectName,
        encoded: &naming::EncodedId,
        written: &K8sSecret,
        value: &[u8],
    ) -> Result<(), RpcError> {
        let ns = &self.settings.namespace;
        let mut value = value.to_vec();
        let mut version = written.metadata.resource_version.clone();
        for _ in 0..=self.settings.update_conflict_retries {
            self.write_companion(id, object, &value).await?;
            let current = match self.kube.get(ns, object).await {
                Ok(c) => c,
                // Deleted meanwhile: the Delete removed (or will find) the companion itself.
                Err(e) if e.reason() == Reason::NotFound => return Ok(()),
                Err(e) => return Err(RpcError::internal(e.to_string())),
            };
            if current.metadata.resource_version == version
                || image_pull::stored_type(&current) != SecretType::ImagePullSecret
            {
                return Ok(());
            }
            let Some(now) = current.data.as_ref().and_then(|d| d.get(encoded.as_str())) else {
                return Ok(());
            };
            value = now.0.clone();
            version = current.metadata.resource_version;
        }
        Ok(())
    }

    /// Deletes the image-pull companion of `object` if there is one that belongs to it.
    async fn remove_companion(
        &self,
        id: &SecretIdentifier,
        object: &naming::ObjectName,
    ) -> Result<(), RpcError> {
        let ns = &self.settings.namespace;
        let name = image_pull::companion_name(id);
        let internal = |e: KubeError| {
            RpcError::internal(format!("deleting the image-pull Secret {name}: {e}"))
        };
        let existing = match self.kube.get(ns, &name).await {
            Ok(s) => s,
            Err(e) if e.reason() == Reason::NotFound => return Ok(()),
            Err(e) => return Err(internal(e)),
        };
        if !image_pull::belongs_to(&existing, object) {
            tracing::warn!(object = %object, companion = %name, "leaving an image-pull Secret this service did not write");
            return Ok(());
        }
        match self.kube.delete(ns, &name).await {
            Ok(()) => Ok(()),
            Err(e) if e.reason() == Reason::NotFound => Ok(()),
            Err(e) => Err(internal(e)),
        }
    }

    /// Reads the generic Secret of a request; system secrets are not found unless asked for.
    async fn read(
        &self,
        id: &SecretIdentifier,
        object: &naming::ObjectName,
        include_system: bool,
    ) -> Result<K8sSecret, RpcError> {
        let secret = self
            .kube
            .get(&self.settings.namespace, object)
            .await
            .map_err(on_secret(&id.name))?;
        visible(image_pull::is_system(&secret), &id.name, include_system)?;
        Ok(secret)
    }

    pub async fn get(&self, req: GetSecretRequest) -> Result<GetSecretResponse, RpcError> {
        let target = self.target(Verb::Get, req.id.as_ref());
        self.observed(metrics::Method::GetSecret, target, || self.get_rpc(req))
            .await
    }

    async fn get_rpc(&self, req: GetSecretRequest) -> Result<GetSecretResponse, RpcError> {
        let absent = SecretIdentifier::default();
        let id = req.id.as_ref().unwrap_or(&absent);
        check_scope(&id.domain, &id.project)?;
        let (_, object) = names(id);
        // The response is the object's metadata (creation time, type label): ask the API server
        // for that alone, so the value never leaves it and nothing decodes it.
        let head = self
            .kube
            .get_head(&self.settings.namespace, &object)
            .await
            .map_err(on_secret(&id.name))?;
        visible(head.system, &id.name, req.include_system_secrets)?;
        Ok(GetSecretResponse {
            secret: Some(Secret {
                id: req.id,
                secret_metadata: Some(metadata(&head, self.status())),
            }),
        })
    }

    /// Get, replace the value, PUT with the fetched resourceVersion. Unlike Go, a 409 Conflict
    /// from a concurrent writer is retried (re-read, re-apply) a bounded number of times. The
    /// stored type stays: asking for image-pull on a generic secret is refused, and GENERIC (the
    /// proto3 default every type-unaware client sends) leaves an image-pull secret image-pull. An
    /// image-pull secret's companion is rewritten (re-created when missing); if that fails, the
    /// previous value is put back.
    pub async fn update(&self, req: UpdateSecretRequest) -> Result<UpdateSecretResponse, RpcError> {
        let target = self.target(Verb::Update, req.id.as_ref());
        self.observed(metrics::Method::UpdateSecret, target, || {
            self.update_rpc(req)
        })
        .await
    }

    async fn update_rpc(&self, req: UpdateSecretRequest) -> Result<UpdateSecretResponse, RpcError> {
        let id = req.id.clone().unwrap_or_default();
        check_scope(&id.domain, &id.project)?;
        let (encoded, object) = names(&id);
        let ns = &self.settings.namespace;
        let asked_type = req.secret_spec.as_ref().map_or(0, |s| s.r#type);
        let value = req.secret_spec.and_then(|s| s.value);
        let mut attempt = 0;
        let (written, previous, kind) = loop {
            let mut secret = self.read(&id, &object, false).await?;
            let value = value
                .as_ref()
                .ok_or_else(|| RpcError::invalid_argument(NO_VALUE))?;
            let kind = image_pull::stored_type(&secret);
            if requested_type(asked_type)? == SecretType::ImagePullSecret
                && kind != SecretType::ImagePullSecret
            {
                return Err(RpcError::invalid_argument(format!(
                    "secret_spec.type: secret {} is {}; the type of an existing secret cannot change (delete it and create it again)",
                    id.name,
                    kind.as_str_name()
                )));
            }
            if kind == SecretType::ImagePullSecret {
                validate::check_docker_config(value_bytes(value))?;
            }
            let previous = secret.data.clone();
            set_value(&mut secret, &encoded, value);
            match self.kube.replace(ns, &object, &secret).await {
                Ok(written) => break (written, previous, kind),
                Err(e)
                    if e.reason() == Reason::Conflict
                        && attempt < self.settings.update_conflict_retries =>
                {
                    attempt += 1;
                    self.metrics.update_conflict_retried();
                    tracing::debug!(object = %object, attempt, "update conflict; re-reading");
                    let jitter = rand::random_range(1..=5u64) * u64::from(attempt.min(8));
                    tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
                }
                Err(e) => return Err(on_secret(&id.name)(e)),
            }
        };
        if kind == SecretType::ImagePullSecret {
            let value = value.as_ref().map_or(&[][..], value_bytes);
            if let Err(e) = self
                .companion_follows(&id, &object, &encoded, &written, value)
                .await
            {
                // Only if nobody wrote since: the restore carries our resourceVersion.
                let mut restore = written;
                restore.data = previous;
                restore.string_data = None;
                if let Err(undo) = self.kube.replace(ns, &object, &restore).await {
                    tracing::error!(object = %object, error = %undo, "could not restore a secret whose image-pull Secret failed to update");
                }
                return Err(e);
            }
        }
        tracing::info!(name = %id.name, domain = %id.domain, project = %id.project, object = %object, "updated secret");
        self.invalidate(&id).await;
        Ok(UpdateSecretResponse {})
    }

    pub async fn delete(&self, req: DeleteSecretRequest) -> Result<DeleteSecretResponse, RpcError> {
        let target = self.target(Verb::Delete, req.id.as_ref());
        self.observed(metrics::Method::DeleteSecret, target, || {
            self.delete_rpc(req)
        })
        .await
    }

    async fn delete_rpc(&self, req: DeleteSecretRequest) -> Result<DeleteSecretResponse, RpcError> {
        let id = req.id.unwrap_or_default();
        check_scope(&id.domain, &id.project)?;
        let (_, object) = names(&id);
        let result = self
            .delete_both(&id, &object, req.include_system_secrets)
            .await;
        if result.is_ok() {
            tracing::info!(name = %id.name, domain = %id.domain, project = %id.project, object = %object, "deleted secret");
        }
        // Like Go, invalidation runs whatever the outcome of the delete.
        self.invalidate(&id).await;
        result.map(|()| DeleteSecretResponse {})
    }

    /// The companion goes first: if the generic delete then fails, the secret still exists and an
    /// Update re-creates its companion.
    async fn delete_both(
        &self,
        id: &SecretIdentifier,
        object: &naming::ObjectName,
        include_system: bool,
    ) -> Result<(), RpcError> {
        let secret = self.read(id, object, include_system).await?;
        if image_pull::stored_type(&secret) == SecretType::ImagePullSecret {
            self.remove_companion(id, object).await?;
        }
        self.kube
            .delete(&self.settings.namespace, object)
            .await
            .map_err(on_secret(&id.name))
    }

    pub async fn list(&self, req: ListSecretsRequest) -> Result<ListSecretsResponse, RpcError> {
        self.observed(metrics::Method::ListSecrets, Target::list(&req), || {
            self.list_rpc(req)
        })
        .await
    }

    async fn list_rpc(&self, req: ListSecretsRequest) -> Result<ListSecretsResponse, RpcError> {
        check_scope(&req.domain, &req.project)?;
        // controller-runtime's MatchingLabels: sorted by key, raw values.
        let mut selector = String::new();
        if !req.domain.is_empty() {
            selector.push_str(&format!("{LABEL_DOMAIN}={},", req.domain));
        }
        selector.push_str(&format!("{LABEL_MANAGED}=true"));
        if !req.project.is_empty() {
            selector.push_str(&format!(",{LABEL_PROJECT}={}", req.project));
        }
        if !req.include_system_secrets {
            selector.push_str(&format!(",{}!=true", image_pull::LABEL_SYSTEM));
        }
        // The Kubernetes list is read in pages of at most LIST_PAGE Secrets, whatever the
        // request's limit (none: every Secret), at most LIST_PAGES_AT_ONCE pages at a time
        // across all calls: the values every listed Secret carries are held a page at a time,
        // not the whole namespace per call (the response carries no values anyway).
        let wanted = usize::try_from(req.limit)
            .ok()
            .filter(|l| *l > 0)
            .unwrap_or(usize::MAX);
        let mut secrets = Vec::new();
        let mut token = req.token.clone();
        loop {
            let page = (wanted - secrets.len()).min(LIST_PAGE);
            let mut params = ListParams::default().labels(&selector).limit(page as u32);
            if !token.is_empty() {
                params = params.continue_token(&token);
            }
            let turn = self
                .list_pages
                .acquire()
                .await
                .expect("the semaphore is never closed");
            let mut list = self
                .kube
                .list(&self.settings.namespace, &params)
                .await
                .map_err(|e| RpcError::internal(e.to_string()))?;
            secrets.extend(list.items.iter().filter_map(|item| self.listed(item)));
            token = list.metadata.continue_.take().unwrap_or_default();
            drop(list);
            drop(turn);
            if token.is_empty() || secrets.len() >= wanted {
                break;
            }
        }
        Ok(ListSecretsResponse {
            secrets,
            token,
            per_cluster_tokens: Default::default(),
        })
    }

    /// A listed Secret's id and metadata; `None` (logged) for a managed Secret that is not
    /// one of ours: not exactly one data key, or a key that is not an encoded id.
    fn listed(&self, item: &K8sSecret) -> Option<Secret> {
        let object = item.metadata.name.as_deref().unwrap_or("");
        let keys: Vec<&String> = item.data.iter().flat_map(|d| d.keys()).collect();
        let [key] = keys.as_slice() else {
            tracing::error!(
                object,
                keys = keys.len(),
                "skipping a managed Secret without exactly one data key"
            );
            return None;
        };
        let decoded = match naming::decode(key) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(object, error = %e, "skipping a managed Secret whose data key is not an encoded id");
                return None;
            }
        };
        Some(Secret {
            id: Some(SecretIdentifier {
                name: decoded.name.to_owned(),
                organization: String::new(),
                domain: decoded.domain.to_owned(),
                project: decoded.project.to_owned(),
            }),
            secret_metadata: Some(metadata(&SecretHead::of_secret(item), self.status())),
        })
    }
}
