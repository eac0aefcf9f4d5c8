//! The Secret and Namespace verbs, in the API server's processing order (docs/kubernetes-api.md §3.3), so that the
//! same error wins as on a real server.

use super::apply;
use super::events::Db;
use super::namespace;
use super::negotiate::Representation;
use super::object::{self, Phase, Secret, Timestamp, encode_secret};
use super::partial;
use super::patch::{self, PatchType};
use super::selector::{FieldSelector, LabelSelector};
use super::status::{ApiError, Reply, json_reply};
use super::store::{Mutation, SecretMap, View, key};
use super::table;
use super::validation::{validate_secret, validate_secret_update};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::ops::Bound;

pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// What a handler needs from the HTTP request.
pub struct Call<'a> {
    pub query: HashMap<String, String>,
    pub content_type: Option<&'a str>,
    /// What the `Accept` header asked for, as negotiated for this route (reads follow it).
    pub representation: Representation,
    /// The request's headers (the `User-Agent` names the manager of a write).
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
}

impl Call<'_> {
    /// Who this write is recorded as in `managedFields`.
    fn manager(&self) -> String {
        apply::manager_name(
            self.query.get("fieldManager").map(String::as_str),
            self.headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
        )
    }
}

pub fn now() -> Timestamp {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn check_write_options(call: &Call<'_>) -> Result<String, ApiError> {
    let fv = call
        .query
        .get("fieldValidation")
        .cloned()
        .unwrap_or_default();
    if !matches!(fv.as_str(), "" | "Ignore" | "Strict" | "Warn") {
        return Err(ApiError::invalid_options(
            "CreateOptions",
            &format!(
                "fieldValidation: Unsupported value: {}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"",
                crate::gostr::quote(&fv)
            ),
        ));
    }
    if let Some(d) = call.query.get("dryRun")
        && d != "All"
    {
        return Err(ApiError::invalid_options(
            "CreateOptions",
            &format!(
                "dryRun: Unsupported value: {}: supported values: \"All\"",
                crate::gostr::quote(d)
            ),
        ));
    }
    match call
        .content_type
        .map(|c| c.split(';').next().unwrap_or("").trim())
    {
        None | Some("") | Some("application/json") => Ok(fv),
        Some(_) => Err(ApiError::unsupported_media_type()),
    }
}

fn decode_for_write(
    call: &Call<'_>,
    field_validation: &str,
) -> Result<(Secret, Vec<String>), ApiError> {
    let (secret, decoded) = object::decode_secret(call.body)?;
    if field_validation == "Strict" && !decoded.unknown_fields.is_empty() {
        let list: Vec<String> = decoded
            .unknown_fields
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        return Err(ApiError::bad_request(format!(
            "Secret in version \"v1\" cannot be handled as a Secret: strict decoding error: {}",
            list.join(", ")
        )));
    }
    let warnings = if matches!(field_validation, "" | "Warn") {
        decoded
            .unknown_fields
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect()
    } else {
        Vec::new()
    };
    Ok((secret, warnings))
}

fn with_warnings(mut reply: Reply, warnings: &[String]) -> Reply {
    for w in warnings {
        let text = format!("299 - {}", serde_json::Value::String(w.clone()));
        if let Ok(v) = HeaderValue::from_str(&text) {
            reply.headers_mut().append("warning", v);
        }
    }
    reply
}

const GENERATE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn generated_name(prefix: &str) -> String {
    let mut p = prefix.to_owned();
    if p.len() > 58 {
        let mut cut = 58;
        while !p.is_char_boundary(cut) {
            cut -= 1;
        }
        p.truncate(cut);
    }
    for _ in 0..5 {
        p.push(GENERATE_ALPHABET[rand::random_range(0..GENERATE_ALPHABET.len())] as char);
    }
    p
}

pub async fn create_secret(db: &Db, ns: &str, call: &Call<'_>) -> Result<Reply, ApiError> {
    let fv = check_write_options(call)?;
    let (mut s, warnings) = decode_for_write(call, &fv)?;
    let body_rv = std::mem::take(&mut s.meta.resource_version);
    s.meta.creation_timestamp = None;
    s.meta.uid.clear();
    s.meta.deletion_timestamp = None;
    s.meta.deletion_grace_period_seconds = None;
    if !s.meta.namespace.is_empty() && s.meta.namespace != ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    s.meta.namespace = ns.to_owned();
    let dry_run = call.query.contains_key("dryRun");
    s.meta.managed_fields.clear();
    let committed = db.commit(|view, rv| {
        match namespace::lookup(view, ns) {
            None => return Err(ApiError::not_found("namespaces", ns)),
            Some(n) if n.phase == Phase::Terminating => {
                return Err(ApiError::namespace_terminating("secrets", &s.meta.name, ns));
            }
            Some(_) => {}
        }
        s.meta.uid = uuid::Uuid::new_v4().to_string();
        s.meta.creation_timestamp = Some(now());
        let generated = s.meta.name.is_empty() && !s.meta.generate_name.is_empty();
        if generated {
            s.meta.name = generated_name(&s.meta.generate_name);
        }
        let errors = validate_secret(&s);
        if !errors.is_empty() {
            return Err(ApiError::invalid("Secret", &s.meta.name, &errors));
        }
        if body_rv.parse::<u64>().is_ok_and(|n| n > 0) {
            return Err(ApiError::bare_internal(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        for _ in 0..8 {
            if !view.secrets.contains_key(&key(ns, &s.meta.name)) || !generated {
                break;
            }
            s.meta.name = generated_name(&s.meta.generate_name);
        }
        if let Some(existing) = view.secrets.get(&key(ns, &s.meta.name)) {
            return Err(ApiError::already_exists(
                &s.meta.name,
                existing.meta.deletion_timestamp.is_some(),
            ));
        }
        s.meta.resource_version = rv.to_string();
        let mutations = writes(dry_run, Mutation::PutSecret(s.clone()));
        Ok((mutations, s.clone()))
    });
    let created = committed.await?;
    Ok(with_warnings(
        json_reply(201, &encode_secret(&created, true)),
        &warnings,
    ))
}

pub fn get_secret(
    db: &Db,
    ns: &str,
    name: &str,
    representation: Representation,
) -> Result<Reply, ApiError> {
    let view = db.read();
    let s = view
        .secrets
        .get(&key(ns, name))
        .ok_or_else(|| ApiError::not_found("secrets", name))?;
    let mut body = Vec::with_capacity(512);
    match representation {
        Representation::Table(version) => {
            return Ok(json_reply(
                200,
                &table::secrets_table(
                    version,
                    std::iter::once(&**s),
                    &s.meta.resource_version,
                    None,
                    None,
                ),
            ));
        }
        Representation::Refused(refusal) => return Err(refusal.error()),
        Representation::Partial(version) => {
            partial::write_object(&mut body, version.api_version(), &s.meta)
        }
        Representation::PartialProtobuf(version) => {
            return Ok(super::protobuf::partial_reply(version, &s.meta));
        }
        // The list form never reaches a single object (negotiation refuses it).
        Representation::Json | Representation::PartialList(_) => {
            object::write_secret(&mut body, s, true)
        }
    }
    Ok(super::status::json_bytes_reply(
        200,
        body,
        "application/json",
    ))
}

pub async fn replace_secret(
    db: &Db,
    ns: &str,
    name: &str,
    call: &Call<'_>,
) -> Result<Reply, ApiError> {
    let fv = check_write_options(call)?;
    let (mut s, warnings) = decode_for_write(call, &fv)?;
    if !s.meta.namespace.is_empty() && s.meta.namespace != ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if s.meta.name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            s.meta.name
        )));
    }
    s.meta.namespace = ns.to_owned();
    let dry_run = call.query.contains_key("dryRun");
    let manager = call.manager();
    let committed = db.commit(|view, rv| {
        let old = view
            .secrets
            .get(&key(ns, name))
            .ok_or_else(|| ApiError::not_found("secrets", name))?;
        update_stored(old, s, rv, dry_run, Some(&manager))
    });
    let stored = committed.await?;
    Ok(with_warnings(
        json_reply(200, &encode_secret(&stored, true)),
        &warnings,
    ))
}

/// The update path shared by PUT and PATCH, in the server's order: uid and resourceVersion
/// preconditions, server-owned fields copied from the stored object, validation, managed fields,
/// and no write at all when nothing changed.
fn update_stored(
    old: &Secret,
    mut s: Secret,
    rv: u64,
    dry_run: bool,
    manager: Option<&str>,
) -> Result<(Vec<Mutation>, Secret), ApiError> {
    let (ns, name) = (old.meta.namespace.as_str(), old.meta.name.as_str());
    if !s.meta.uid.is_empty() && s.meta.uid != old.meta.uid {
        return Err(ApiError::conflict(
            name,
            &format!(
                "StorageError: invalid object, Code: 4, Key: /registry/secrets/{ns}/{name}, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: {}, UID in object meta: {}",
                s.meta.uid, old.meta.uid
            ),
        ));
    }
    match s.meta.resource_version.as_str() {
        "" | "0" => {}
        v if v == old.meta.resource_version => {}
        v if v.parse::<u64>().is_ok() => return Err(ApiError::stale_resource_version(name)),
        v => {
            return Err(ApiError::bare_internal(format!(
                "invalid resource version {v:?}"
            )));
        }
    }
    s.meta.generation = old.meta.generation;
    s.meta.creation_timestamp = old.meta.creation_timestamp;
    s.meta.uid = old.meta.uid.clone();
    s.meta.deletion_timestamp = old.meta.deletion_timestamp;
    if s.meta.deletion_grace_period_seconds.is_none() {
        s.meta.deletion_grace_period_seconds = old.meta.deletion_grace_period_seconds;
    }
    let errors = validate_secret_update(&s, old);
    if !errors.is_empty() {
        return Err(ApiError::invalid("Secret", name, &errors));
    }
    if let Some(manager) = manager {
        apply::record_update(old, &mut s, manager, now());
    }
    s.meta.resource_version = old.meta.resource_version.clone();
    if s == *old || same_but_for_times(&s, old) {
        return Ok((vec![], old.clone()));
    }
    s.meta.resource_version = rv.to_string();
    let mutation = if s.meta.deletion_timestamp.is_some() && s.meta.finalizers.is_empty() {
        Mutation::DeleteSecret(key(ns, name))
    } else {
        Mutation::PutSecret(s.clone())
    };
    Ok((writes(dry_run, mutation), s))
}

/// The mutations a write commits: none for a dry run (`?dryRun=All`), which is validated and
/// answered like the real write but changes nothing.
pub(super) fn writes(dry_run: bool, mutation: Mutation) -> Vec<Mutation> {
    if dry_run { vec![] } else { vec![mutation] }
}

/// A write that changes nothing but managed-field timestamps is no write
/// (`IgnoreManagedFieldsTimestampsTransformer`).
fn same_but_for_times(a: &Secret, b: &Secret) -> bool {
    let strip = |s: &Secret| {
        let mut s = s.clone();
        for e in &mut s.meta.managed_fields {
            if let Some(m) = e.as_object_mut() {
                m.remove("time");
            }
        }
        s
    };
    strip(a) == strip(b)
}

/// PATCH of a Secret: merge, JSON, strategic merge, or server-side apply
/// (apiserver/pkg/endpoints/handlers/patch.go). Options are checked first, then the patch
/// body, then the stored object is patched and goes through the update path; an apply patch of
/// a missing Secret creates it (201).
pub async fn patch_secret(
    db: &Db,
    ns: &str,
    name: &str,
    call: &Call<'_>,
) -> Result<Reply, ApiError> {
    let patch_type = patch::patch_type(call.content_type)?;
    check_patch_options(call, patch_type)?;
    let body = patch::transcode(patch_type, call.body)?;
    let dry_run = call.query.contains_key("dryRun");
    let manager = call.manager();
    let force = call
        .query
        .get("force")
        .is_some_and(|f| f == "true" || f == "1");
    let committed = db.commit(|view, rv| {
        let old = view.secrets.get(&key(ns, name));
        if patch_type == PatchType::Apply {
            return apply_secret(view, ns, name, old.map(|o| &**o), &body, &manager, force, rv, dry_run);
        }
        let old = old.ok_or_else(|| ApiError::not_found("secrets", name))?;
        let mut doc = encode_secret(old, true);
        patch::apply_patch(patch_type, &mut doc, &body)?;
        let (mut s, _) = object::decode_secret(&serde_json::to_vec(&doc).expect("serialisable"))?;
        if s.meta.name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                s.meta.name
            )));
        }
        if !s.meta.namespace.is_empty() && s.meta.namespace != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        s.meta.namespace = ns.to_owned();
        let (mutations, stored) = update_stored(old, s, rv, dry_run, Some(&manager))?;
        Ok((mutations, (false, stored)))
    });
    let (created, stored) = committed.await?;
    Ok(json_reply(
        if created { 201 } else { 200 },
        &encode_secret(&stored, true),
    ))
}

#[allow(clippy::too_many_arguments)]
fn apply_secret(
    view: &View,
    ns: &str,
    name: &str,
    old: Option<&Secret>,
    body: &Value,
    manager: &str,
    force: bool,
    rv: u64,
    dry_run: bool,
) -> Result<(Vec<Mutation>, (bool, Secret)), ApiError> {
    let (mut config, _) = object::decode_secret(&serde_json::to_vec(body).expect("serialisable"))?;
    if config.meta.name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            config.meta.name
        )));
    }
    if !config.meta.namespace.is_empty() && config.meta.namespace != ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    config.meta.namespace = ns.to_owned();
    let mut applied = apply::apply(old, &config, body, manager, force, now())?;
    let Some(old) = old else {
        match namespace::lookup(view, ns) {
            None => return Err(ApiError::not_found("namespaces", ns)),
            Some(n) if n.phase == Phase::Terminating => {
                return Err(ApiError::namespace_terminating("secrets", name, ns));
            }
            Some(_) => {}
        }
        applied.meta.uid = uuid::Uuid::new_v4().to_string();
        applied.meta.creation_timestamp = Some(now());
        applied.meta.resource_version.clear();
        let errors = validate_secret(&applied);
        if !errors.is_empty() {
            return Err(ApiError::invalid("Secret", name, &errors));
        }
        applied.meta.resource_version = rv.to_string();
        let mutations = writes(dry_run, Mutation::PutSecret(applied.clone()));
        return Ok((mutations, (true, applied)));
    };
    // The applier's managed fields are computed: the update path keeps them as they are.
    applied.meta.resource_version = config.meta.resource_version.clone();
    let (mutations, stored) = update_stored(old, applied, rv, dry_run, None)?;
    Ok((mutations, (false, stored)))
}

fn check_patch_options(call: &Call<'_>, patch_type: PatchType) -> Result<(), ApiError> {
    let q = &call.query;
    let mut errors: Vec<String> = Vec::new();
    if patch_type == PatchType::Apply {
        if q.get("fieldManager").is_none_or(String::is_empty) {
            errors.push("fieldManager: Required value: is required for apply patch".into());
        }
    } else if q.contains_key("force") {
        errors.push("force: Forbidden: may not be specified for non-apply patch".into());
    }
    if q.get("fieldManager").is_some_and(|m| m.len() > 128) {
        errors.push("fieldManager: Too long: may not be more than 128 bytes".into());
    }
    if let Some(d) = q.get("dryRun")
        && d != "All"
    {
        errors.push(format!(
            "dryRun: Unsupported value: {}: supported values: \"All\"",
            crate::gostr::quote(d)
        ));
    }
    let fv = q.get("fieldValidation").cloned().unwrap_or_default();
    if !matches!(fv.as_str(), "" | "Ignore" | "Strict" | "Warn") {
        errors.push(format!(
            "fieldValidation: Unsupported value: {}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"",
            crate::gostr::quote(&fv)
        ));
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(ApiError::invalid_options("PatchOptions", &errors[0])),
        _ => Err(ApiError::invalid_options(
            "PatchOptions",
            &format!("[{}]", errors.join(", ")),
        )),
    }
}

pub async fn delete_secret(
    db: &Db,
    ns: &str,
    name: &str,
    call: &Call<'_>,
) -> Result<Reply, ApiError> {
    let options: Value = if call.body.iter().all(u8::is_ascii_whitespace) {
        let mut m = serde_json::Map::new();
        if let Some(p) = call.query.get("propagationPolicy") {
            m.insert("propagationPolicy".into(), json!(p));
        }
        if call.query.contains_key("dryRun") {
            m.insert("dryRun".into(), json!(["All"]));
        }
        Value::Object(m)
    } else {
        serde_json::from_slice(call.body).map_err(|e| {
            ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type DeleteOptions): {e}"
            ))
        })?
    };
    let policy = options
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(p) = &policy
        && !matches!(p.as_str(), "Foreground" | "Background" | "Orphan")
    {
        return Err(ApiError::invalid_options(
            "DeleteOptions",
            &format!(
                "propagationPolicy: Unsupported value: {}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\"",
                crate::gostr::quote(p)
            ),
        ));
    }
    let dry_run = options
        .get("dryRun")
        .is_some_and(|d| d.as_array().is_some_and(|a| !a.is_empty()));
    let pre_uid = options
        .pointer("/preconditions/uid")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let pre_rv = options
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let committed = db.commit(|view, rv| {
        let old = view
            .secrets
            .get(&key(ns, name))
            .ok_or_else(|| ApiError::not_found("secrets", name))?;
        if let Some(uid) = &pre_uid
            && *uid != old.meta.uid
        {
            return Err(ApiError::delete_precondition(
                name,
                "UID",
                uid,
                &old.meta.uid,
                "deleted and then recreated",
            ));
        }
        if let Some(prv) = &pre_rv
            && *prv != old.meta.resource_version
        {
            return Err(ApiError::delete_precondition(
                name,
                "ResourceVersion",
                prv,
                &old.meta.resource_version,
                "modified",
            ));
        }
        let finalizer = match policy.as_deref() {
            Some("Foreground") => Some("foregroundDeletion"),
            Some("Orphan") => Some("orphan"),
            _ => None,
        };
        if old.meta.finalizers.is_empty() && finalizer.is_none() {
            let status = json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "kind": "secrets", "uid": old.meta.uid},
            });
            let mutations = writes(dry_run, Mutation::DeleteSecret(key(ns, name)));
            return Ok((mutations, status));
        }
        let mut s = (**old).clone();
        if s.meta.deletion_timestamp.is_none() {
            s.meta.deletion_timestamp = Some(now());
            s.meta.deletion_grace_period_seconds = Some(0);
        }
        if let Some(f) = finalizer
            && !s.meta.finalizers.iter().any(|x| x == f)
        {
            s.meta.finalizers.push(f.to_owned());
        }
        if s == **old {
            return Ok((vec![], encode_secret(&s, true)));
        }
        s.meta.resource_version = rv.to_string();
        let body = encode_secret(&s, true);
        Ok((writes(dry_run, Mutation::PutSecret(s)), body))
    });
    let outcome = committed.await?;
    Ok(json_reply(200, &outcome))
}

/// A decoded continue token: the list's resourceVersion and the key to resume after.
fn decode_continue(token: &str) -> Result<(i64, String), ApiError> {
    let bad = |detail: &str| {
        ApiError::bad_request(format!(
            "invalid continue token: continue key is not valid: {detail}"
        ))
    };
    let raw = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|e| bad(&e.to_string()))?;
    let v: Value = serde_json::from_slice(&raw).map_err(|e| bad(&e.to_string()))?;
    let version = v.get("v").and_then(Value::as_str).unwrap_or("");
    if version != "meta.k8s.io/v1" {
        return Err(bad(&format!(
            "server does not recognize this encoded version {version:?}"
        )));
    }
    let rv = v
        .get("rv")
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("incorrect encoded start resourceVersion (version meta.k8s.io/v1)"))?;
    let start = v.get("start").and_then(Value::as_str).unwrap_or("");
    if start.is_empty() {
        return Err(bad("encoded start key empty (version meta.k8s.io/v1)"));
    }
    Ok((rv, start.trim_start_matches('/').to_owned()))
}

fn encode_continue(rv: i64, start: &str) -> String {
    let json = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start});
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json).expect("serialisable"))
}

const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/// LIST in one namespace (`Some`) or all of them (`None`), with selectors and paging.
pub fn list_secrets(db: &Db, ns: Option<&str>, call: &Call<'_>) -> Result<Reply, ApiError> {
    let q = &call.query;
    let labels = LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    let limit: i64 = match q.get("limit").map(String::as_str) {
        None | Some("") => 0,
        Some(l) => l
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
    };
    let rv_param = q.get("resourceVersion").cloned().unwrap_or_default();
    let rv_match = q.get("resourceVersionMatch").cloned().unwrap_or_default();
    let token = q.get("continue").cloned().unwrap_or_default();
    if !rv_param.is_empty() && rv_param.parse::<u64>().is_err() {
        return Err(ApiError::bad_request(format!(
            "invalid resource version: {rv_param}"
        )));
    }
    if !token.is_empty() && !rv_match.is_empty() {
        return Err(ApiError::invalid_options(
            "ListOptions",
            "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided",
        ));
    }
    if !rv_match.is_empty() && rv_param.is_empty() {
        return Err(ApiError::invalid_options(
            "ListOptions",
            "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
        ));
    }
    if rv_match == "Exact" && rv_param == "0" {
        return Err(ApiError::invalid_options(
            "ListOptions",
            "resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
        ));
    }
    if !token.is_empty() && !rv_param.is_empty() && rv_param != "0" {
        return Err(ApiError::bad_request(
            "specifying resource version is not allowed when using continue",
        ));
    }
    let prefix = ns.map(|n| format!("{n}/")).unwrap_or_default();
    let (list_rv, snapshot, start): (u64, SecretMap, String) = if token.is_empty() {
        let view = db.read();
        (view.rv, view.secrets, prefix.clone())
    } else {
        let (rv, start) = decode_continue(&token)?;
        let snapshot = u64::try_from(rv)
            .ok()
            .and_then(|rv| db.store().paged_snapshot(rv));
        match snapshot {
            Some(s) => (rv as u64, s, format!("{prefix}{start}")),
            None => {
                let fresh = encode_continue(-1, &start);
                return Err(ApiError::expired(CONTINUE_EXPIRED, Some(fresh)));
            }
        }
    };
    let limit = if rv_param == "0" && token.is_empty() {
        0
    } else {
        limit.max(0) as usize
    };
    let mut items = Vec::new();
    let mut last_key: Option<String> = None;
    let mut more = false;
    let mut remaining = 0usize;
    let selecting = !labels.is_empty() || !fields.is_empty();
    for (k, s) in snapshot.range((Bound::Included(start.clone()), Bound::Unbounded)) {
        if !k.starts_with(&prefix) {
            break;
        }
        if limit > 0 && items.len() == limit {
            more = true;
            remaining += 1;
            continue;
        }
        if labels.matches(&s.meta.labels) && fields.matches(s) {
            items.push(s.clone());
            last_key = Some(k.clone());
        }
    }
    let mut meta = serde_json::Map::new();
    meta.insert("resourceVersion".into(), json!(list_rv.to_string()));
    let continue_token = match (more, &last_key) {
        (true, Some(last)) => {
            db.store().keep_for_paging(list_rv, snapshot.clone());
            let relative = &last[prefix.len()..];
            Some(encode_continue(list_rv as i64, &format!("{relative}\u{0}")))
        }
        _ => None,
    };
    if let Some(t) = &continue_token {
        meta.insert("continue".into(), json!(t));
        if !selecting {
            meta.insert("remainingItemCount".into(), json!(remaining));
        }
    }
    if let Representation::Table(version) = call.representation {
        let remaining = (continue_token.is_some() && !selecting).then_some(remaining);
        return Ok(json_reply(
            200,
            &table::secrets_table(
                version,
                items.iter().map(|s| &**s),
                &list_rv.to_string(),
                continue_token.as_deref(),
                remaining,
            ),
        ));
    }
    if let Representation::Refused(refusal) = call.representation {
        return Err(refusal.error());
    }
    if let Representation::PartialList(version) = call.representation {
        return Ok(partial::list_reply(
            version,
            &meta,
            items.iter().map(|s| &s.meta),
        ));
    }
    let body = json!({
        "kind": "SecretList",
        "apiVersion": "v1",
        "metadata": Value::Object(meta),
        "items": items.iter().map(|s| encode_secret(s, false)).collect::<Vec<_>>(),
    });
    Ok(json_reply(200, &body))
}
