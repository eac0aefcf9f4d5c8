//! Namespaces: create, get, list (with kubectl's Table), patch of labels and annotations, and
//! delete with kube-apiserver's lifecycle: a deleted namespace turns `Terminating`, the namespace
//! controller's work (removing its Secrets) runs in the engine, and once no Secret is left the
//! namespace is gone. Secrets kept by finalizers keep it `Terminating`; creating in it is refused
//! by the NamespaceLifecycle admission text. A fresh server has `default`, `kube-system`,
//! `kube-public` and `kube-node-lease`.

use super::events::Db;
use super::handlers::{Call, now, writes};
use super::negotiate::Representation;
use super::object::{self, Namespace, Phase, encode_namespace};
use super::partial;
use super::patch::{self, PatchType};
use super::selector::{FieldSelector, LabelSelector};
use super::status::{ApiError, FieldError, Reply, json_reply};
use super::store::{Mutation, View, key};
use super::table;
use super::validation::namespace_name_errors;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The namespaces a new API server creates.
pub const DEFAULT_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// `namespace` if it exists (terminating or not); a tombstone counts as absent.
pub fn lookup(view: &View, name: &str) -> Option<Arc<Namespace>> {
    view.namespaces
        .get(name)
        .filter(|n| n.phase != Phase::Gone)
        .cloned()
}

/// A Namespace as the server stores it: fresh uid and timestamp, and the
/// `kubernetes.io/metadata.name` label the server always adds.
fn new_namespace(
    name: &str,
    rv: u64,
    mut labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
) -> Namespace {
    labels.insert(NAME_LABEL.to_owned(), name.to_owned());
    Namespace {
        meta: object::ObjectMeta {
            name: name.to_owned(),
            uid: uuid::Uuid::new_v4().to_string(),
            resource_version: rv.to_string(),
            creation_timestamp: Some(now()),
            labels,
            annotations,
            ..Default::default()
        },
        phase: Phase::Active,
    }
}

pub async fn create(db: &Db, call: &Call<'_>) -> Result<Reply, ApiError> {
    let mut ns = object::decode_namespace(call.body)?;
    let name = ns.meta.name.clone();
    let errors: Vec<FieldError> = namespace_name_errors(&name);
    if !errors.is_empty() {
        return Err(ApiError::invalid("Namespace", &name, &errors));
    }
    let dry_run = call.query.contains_key("dryRun");
    let committed = db.commit(|view, rv| {
        if let Some(existing) = lookup(view, &name) {
            return Err(ApiError::namespace_already_exists(
                &name,
                existing.phase == Phase::Terminating,
            ));
        }
        let created = new_namespace(
            &name,
            rv,
            std::mem::take(&mut ns.meta.labels),
            std::mem::take(&mut ns.meta.annotations),
        );
        let mutations = writes(dry_run, Mutation::PutNamespace(created.clone()));
        Ok((mutations, created))
    });
    let created = committed.await?;
    Ok(json_reply(201, &encode_namespace(&created, true)))
}

pub fn ensure(db: &Db, name: &str) {
    let _ = db.commit_blocking(|view, rv| {
        if lookup(view, name).is_some() {
            return Ok((vec![], ()));
        }
        let ns = new_namespace(name, rv, Default::default(), Default::default());
        Ok((vec![Mutation::PutNamespace(ns)], ()))
    });
}

pub fn get(db: &Db, name: &str, representation: Representation) -> Result<Reply, ApiError> {
    let view = db.read();
    let ns = lookup(&view, name).ok_or_else(|| ApiError::not_found("namespaces", name))?;
    match representation {
        Representation::Table(version) => Ok(json_reply(
            200,
            &table::namespaces_table(version, std::iter::once(&*ns), &ns.meta.resource_version),
        )),
        Representation::Refused(refusal) => Err(refusal.error()),
        Representation::Partial(version) => {
            let mut body = Vec::with_capacity(256);
            partial::write_object(&mut body, version.api_version(), &ns.meta);
            Ok(super::status::json_bytes_reply(
                200,
                body,
                "application/json",
            ))
        }
        Representation::PartialProtobuf(version) => {
            Ok(super::protobuf::partial_reply(version, &ns.meta))
        }
        // The list form never reaches a single object (negotiation refuses it).
        Representation::Json | Representation::PartialList(_) => {
            Ok(json_reply(200, &encode_namespace(&ns, true)))
        }
    }
}

pub fn list(db: &Db, call: &Call<'_>) -> Result<Reply, ApiError> {
    let labels = LabelSelector::parse(call.query.get("labelSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    let fields =
        FieldSelector::parse_namespace(call.query.get("fieldSelector").map_or("", String::as_str))
            .map_err(ApiError::bad_request)?;
    let view = db.read();
    let items: Vec<Arc<Namespace>> = view
        .namespaces
        .values()
        .filter(|n| {
            n.phase != Phase::Gone && labels.matches(&n.meta.labels) && fields.matches_namespace(n)
        })
        .cloned()
        .collect();
    match call.representation {
        Representation::Table(version) => {
            return Ok(json_reply(
                200,
                &table::namespaces_table(version, items.iter().map(|n| &**n), &view.rv.to_string()),
            ));
        }
        Representation::Refused(refusal) => return Err(refusal.error()),
        Representation::PartialList(version) => {
            let mut meta = serde_json::Map::new();
            meta.insert("resourceVersion".into(), json!(view.rv.to_string()));
            return Ok(partial::list_reply(
                version,
                &meta,
                items.iter().map(|n| &n.meta),
            ));
        }
        // A list is never answered in a single object's form (negotiation sees to it).
        Representation::Json | Representation::Partial(_) | Representation::PartialProtobuf(_) => {}
    }
    Ok(json_reply(
        200,
        &json!({
            "kind": "NamespaceList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": view.rv.to_string()},
            "items": items.iter().map(|n| encode_namespace(n, false)).collect::<Vec<_>>(),
        }),
    ))
}

/// PUT of a Namespace (`kubectl replace`/`edit`): labels and annotations change, guarded by the
/// body's resourceVersion like any update; spec and status are not changed through this verb.
pub async fn replace(db: &Db, name: &str, call: &Call<'_>) -> Result<Reply, ApiError> {
    let body = object::decode_namespace(call.body)?;
    if body.meta.name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            body.meta.name
        )));
    }
    let dry_run = call.query.contains_key("dryRun");
    let committed = db.commit(|view, rv| {
        let old = lookup(view, name).ok_or_else(|| ApiError::not_found("namespaces", name))?;
        match body.meta.resource_version.as_str() {
            "" | "0" => {}
            v if v == old.meta.resource_version => {}
            _ => {
                return Err(ApiError::conflict_on(
                    "namespaces",
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
        }
        let mut ns = (*old).clone();
        ns.meta.labels = body.meta.labels.clone();
        ns.meta.labels.insert(NAME_LABEL.to_owned(), name.to_owned());
        ns.meta.annotations = body.meta.annotations.clone();
        if ns == *old {
            return Ok((vec![], ns));
        }
        ns.meta.resource_version = rv.to_string();
        let mutations = writes(dry_run, Mutation::PutNamespace(ns.clone()));
        Ok((mutations, ns))
    });
    let stored = committed.await?;
    Ok(json_reply(200, &encode_namespace(&stored, true)))
}

/// PATCH of a Namespace: labels and annotations change; everything else is the server's. An
/// apply patch merges like a merge patch (no field managers for Namespaces) and creates a
/// missing Namespace.
pub async fn patch(db: &Db, name: &str, call: &Call<'_>) -> Result<Reply, ApiError> {
    let patch_type = patch::patch_type(call.content_type)?;
    let body = patch::transcode(patch_type, call.body)?;
    let dry_run = call.query.contains_key("dryRun");
    let committed = db.commit(|view, rv| {
        let Some(old) = lookup(view, name) else {
            // Server-side apply creates what does not exist (`kubectl apply --server-side`).
            if patch_type != PatchType::Apply {
                return Err(ApiError::not_found("namespaces", name));
            }
            let applied =
                object::decode_namespace(&serde_json::to_vec(&body).expect("serialisable"))?;
            if applied.meta.name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    applied.meta.name
                )));
            }
            let errors: Vec<FieldError> = namespace_name_errors(name);
            if !errors.is_empty() {
                return Err(ApiError::invalid("Namespace", name, &errors));
            }
            let ns = new_namespace(name, rv, applied.meta.labels, applied.meta.annotations);
            let mutations = writes(dry_run, Mutation::PutNamespace(ns.clone()));
            return Ok((mutations, (true, ns)));
        };
        let mut doc = encode_namespace(&old, true);
        let patch_type = if patch_type == PatchType::Apply {
            PatchType::Merge
        } else {
            patch_type
        };
        patch::apply_patch(patch_type, &mut doc, &body)?;
        let patched = object::decode_namespace(&serde_json::to_vec(&doc).expect("serialisable"))?;
        let mut ns = (*old).clone();
        ns.meta.labels = patched.meta.labels;
        ns.meta
            .labels
            .insert(NAME_LABEL.to_owned(), name.to_owned());
        ns.meta.annotations = patched.meta.annotations;
        if ns == *old {
            return Ok((vec![], (false, ns)));
        }
        ns.meta.resource_version = rv.to_string();
        let mutations = writes(dry_run, Mutation::PutNamespace(ns.clone()));
        Ok((mutations, (false, ns)))
    });
    let (created, stored) = committed.await?;
    Ok(json_reply(
        if created { 201 } else { 200 },
        &encode_namespace(&stored, true),
    ))
}

/// Text of the Conflict for deleting a namespace that is already terminating
/// (kubernetes pkg/registry/core/namespace/storage/storage.go).
const STILL_TERMINATING: &str = "The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.";

pub async fn delete(db: &Db, name: &str, call: &Call<'_>) -> Result<Reply, ApiError> {
    let dry_run = call.query.contains_key("dryRun")
        || serde_json::from_slice::<Value>(call.body)
            .ok()
            .and_then(|o| o.get("dryRun").cloned())
            .is_some_and(|d| d.as_array().is_some_and(|a| !a.is_empty()));
    let committed = db.commit(|view, rv| {
        let old = lookup(view, name).ok_or_else(|| ApiError::not_found("namespaces", name))?;
        if old.phase == Phase::Terminating {
            return Err(ApiError::conflict_on("namespaces", name, STILL_TERMINATING));
        }
        let mut ns = (*old).clone();
        ns.phase = Phase::Terminating;
        ns.meta.deletion_timestamp = Some(now());
        ns.meta.deletion_grace_period_seconds = Some(0);
        ns.meta.resource_version = rv.to_string();
        let mutations = writes(dry_run, Mutation::PutNamespace(ns.clone()));
        Ok((mutations, ns))
    });
    let terminating = committed.await?;
    if !dry_run {
        finalize(db, name).await;
    }
    Ok(json_reply(200, &encode_namespace(&terminating, true)))
}

/// The namespace controller's work for a terminating namespace: delete its Secrets (those with
/// finalizers are marked for deletion and stay), and remove the namespace once none is left.
/// Does nothing for a namespace that is not terminating.
pub async fn finalize(db: &Db, name: &str) {
    let committed = db.commit(|view, rv| {
        let Some(ns) = lookup(view, name).filter(|n| n.phase == Phase::Terminating) else {
            return Ok((vec![], ()));
        };
        let prefix = key(name, "");
        let mut mutations = Vec::new();
        let mut remaining = 0;
        for (k, s) in view.secrets.range(prefix.clone()..) {
            if !k.starts_with(&prefix) {
                break;
            }
            if s.meta.finalizers.is_empty() {
                mutations.push(Mutation::DeleteSecret(k.clone()));
                continue;
            }
            remaining += 1;
            if s.meta.deletion_timestamp.is_none() {
                let mut marked = (**s).clone();
                marked.meta.deletion_timestamp = Some(now());
                marked.meta.deletion_grace_period_seconds = Some(0);
                marked.meta.resource_version = rv.to_string();
                mutations.push(Mutation::PutSecret(marked));
            }
        }
        if remaining == 0 {
            let mut gone = (*ns).clone();
            gone.phase = Phase::Gone;
            gone.meta.resource_version = rv.to_string();
            mutations.push(Mutation::PutNamespace(gone));
        }
        Ok((mutations, ()))
    });
    let result = committed.await;
    if let Err(e) = result {
        tracing::warn!(namespace = name, error = %e.message, "finalizing a namespace failed");
    }
}
