//! Server-side apply for Secrets (`application/apply-patch+yaml`): field managers, the
//! `managedFields` they own, conflicts (409 with structured-merge-diff's text unless `force`),
//! and removal of fields an applier stops applying when nobody else owns them.
//!
//! Tracking follows apimachinery's skip-non-applied manager
//! (pkg/util/managedfields/internal/skipnonapplied.go): an object gets `managedFields` only from
//! its first apply on, when the fields it already had are assigned to `before-first-apply`
//! (operation Update); from then on every write records its manager. The fields of a Secret are
//! `data.<key>` (`stringData` keys count as `data` keys), `metadata.labels.<key>`,
//! `metadata.annotations.<key>`, `type` and `immutable`.

use super::object::{Secret, Timestamp, format_time, parse_time};
use super::status::ApiError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// A field: `["data", key]`, `["metadata", "labels", key]`, `["type"]`, ...
type Path = Vec<String>;
type FieldSet = BTreeSet<Path>;

const BEFORE_FIRST_APPLY: &str = "before-first-apply";

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    manager: String,
    operation: String,
    time: Option<Timestamp>,
    fields: FieldSet,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str) -> bool {
        self.manager == manager && self.operation == operation
    }

    /// How conflicts name this manager (`printManager` in internal/conflict.go: appliers by
    /// name, updaters with their apiVersion).
    fn printed(&self) -> String {
        let name = crate::gostr::quote(&self.manager);
        if self.operation == "Update" {
            format!("{name} using v1")
        } else {
            name
        }
    }
}

fn path_string(p: &Path) -> String {
    p.iter().map(|s| format!(".{s}")).collect()
}

fn fields_of(s: &Secret) -> FieldSet {
    let mut set = FieldSet::new();
    for k in s.data.keys() {
        set.insert(vec!["data".into(), k.clone()]);
    }
    for k in s.meta.labels.keys() {
        set.insert(vec!["metadata".into(), "labels".into(), k.clone()]);
    }
    for k in s.meta.annotations.keys() {
        set.insert(vec!["metadata".into(), "annotations".into(), k.clone()]);
    }
    if !s.type_.is_empty() {
        set.insert(vec!["type".into()]);
    }
    if s.immutable.is_some() {
        set.insert(vec!["immutable".into()]);
    }
    set
}

fn value_of(s: &Secret, p: &Path) -> Option<Value> {
    match p.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["data", k] => s.data.get(*k).map(|v| json!(STANDARD.encode(v))),
        ["metadata", "labels", k] => s.meta.labels.get(*k).map(|v| json!(v)),
        ["metadata", "annotations", k] => s.meta.annotations.get(*k).map(|v| json!(v)),
        ["type"] => (!s.type_.is_empty()).then(|| json!(s.type_)),
        ["immutable"] => s.immutable.map(|i| json!(i)),
        _ => None,
    }
}

fn remove(s: &mut Secret, p: &Path) {
    match p.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["data", k] => {
            s.data.remove(*k);
        }
        ["metadata", "labels", k] => {
            s.meta.labels.remove(*k);
        }
        ["metadata", "annotations", k] => {
            s.meta.annotations.remove(*k);
        }
        ["immutable"] => s.immutable = None,
        _ => {}
    }
}

fn copy_field(to: &mut Secret, from: &Secret, p: &Path) {
    match p.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["data", k] => {
            if let Some(v) = from.data.get(*k) {
                to.data.insert((*k).to_owned(), v.clone());
            }
        }
        ["metadata", "labels", k] => {
            if let Some(v) = from.meta.labels.get(*k) {
                to.meta.labels.insert((*k).to_owned(), v.clone());
            }
        }
        ["metadata", "annotations", k] => {
            if let Some(v) = from.meta.annotations.get(*k) {
                to.meta.annotations.insert((*k).to_owned(), v.clone());
            }
        }
        ["type"] => to.type_.clone_from(&from.type_),
        ["immutable"] => to.immutable = from.immutable,
        _ => {}
    }
}

/// FieldsV1: `{"f:data":{".":{},"f:k":{}},"f:type":{}}`; a map that has owned keys is itself
/// owned (`"."`).
fn encode_fields(fields: &FieldSet) -> Value {
    let mut root = Map::new();
    for p in fields {
        let mut node = &mut root;
        for (i, seg) in p.iter().enumerate() {
            let child = node
                .entry(format!("f:{seg}"))
                .or_insert_with(|| Value::Object(Map::new()));
            let child = child.as_object_mut().expect("nodes are objects");
            let is_map = matches!(
                p[..=i]
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .as_slice(),
                ["data"] | ["metadata", "labels"] | ["metadata", "annotations"]
            );
            if is_map && i + 1 < p.len() {
                child.insert(".".into(), json!({}));
            }
            node = child;
        }
    }
    Value::Object(root)
}

fn decode_fields(v: &Value, prefix: &mut Path, out: &mut FieldSet) {
    let Some(m) = v.as_object() else { return };
    let children: Vec<(&String, &Value)> = m.iter().filter(|(k, _)| k.starts_with("f:")).collect();
    if children.is_empty() && !prefix.is_empty() {
        out.insert(prefix.clone());
        return;
    }
    for (k, child) in children {
        prefix.push(k[2..].to_owned());
        decode_fields(child, prefix, out);
        prefix.pop();
    }
}

fn parse_entries(raw: &[Value]) -> Vec<Entry> {
    raw.iter()
        .filter_map(|e| {
            let mut fields = FieldSet::new();
            decode_fields(e.get("fieldsV1")?, &mut Vec::new(), &mut fields);
            Some(Entry {
                manager: e.get("manager")?.as_str()?.to_owned(),
                operation: e.get("operation")?.as_str()?.to_owned(),
                time: e.get("time").and_then(Value::as_str).and_then(parse_time),
                fields,
            })
        })
        .collect()
}

/// Renders entries in the server's order (operation, time, manager), dropping empty ones.
fn render_entries(mut entries: Vec<Entry>) -> Vec<Value> {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|a, b| {
        (&a.operation, a.time.unwrap_or(0), &a.manager).cmp(&(
            &b.operation,
            b.time.unwrap_or(0),
            &b.manager,
        ))
    });
    entries
        .iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("manager".into(), json!(e.manager));
            m.insert("operation".into(), json!(e.operation));
            m.insert("apiVersion".into(), json!("v1"));
            if let Some(t) = e.time {
                m.insert("time".into(), json!(format_time(t)));
            }
            m.insert("fieldsType".into(), json!("FieldsV1"));
            m.insert("fieldsV1".into(), encode_fields(&e.fields));
            Value::Object(m)
        })
        .collect()
}

/// The fields an apply configuration sets: what its body names (a defaulted `type` is not).
fn applied_fields(config: &Secret, raw: &Value) -> FieldSet {
    let mut set = fields_of(config);
    if raw.get("type").is_none_or(Value::is_null) {
        set.remove(&vec!["type".to_owned()]);
    }
    set
}

/// Applies `config` (decoded from `raw`) for `manager` onto `live` (None: the apply creates).
pub fn apply(
    live: Option<&Secret>,
    config: &Secret,
    raw: &Value,
    manager: &str,
    force: bool,
    now: Timestamp,
) -> Result<Secret, ApiError> {
    let mut entries = live.map_or_else(Vec::new, |l| parse_entries(&l.meta.managed_fields));
    if let Some(l) = live
        && entries.is_empty()
    {
        entries.push(Entry {
            manager: BEFORE_FIRST_APPLY.into(),
            operation: "Update".into(),
            time: Some(now),
            fields: fields_of(l),
        });
    }
    let applied = applied_fields(config, raw);
    let mut conflicts: Vec<(usize, Path)> = Vec::new();
    for p in &applied {
        let current = live.and_then(|l| value_of(l, p));
        if current.is_none() || current == value_of(config, p) {
            continue;
        }
        for (i, e) in entries.iter().enumerate() {
            if !e.is(manager, "Apply") && e.fields.contains(p) {
                conflicts.push((i, p.clone()));
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            return Err(conflict_error(&entries, &conflicts));
        }
        for (i, p) in &conflicts {
            entries[*i].fields.remove(p);
        }
    }
    let mut out = match live {
        Some(l) => l.clone(),
        None => {
            let mut s = config.clone();
            s.data.clear();
            s.meta.labels.clear();
            s.meta.annotations.clear();
            s.immutable = None;
            s
        }
    };
    let previous = entries
        .iter()
        .find(|e| e.is(manager, "Apply"))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for p in previous.difference(&applied) {
        let owned_elsewhere = entries
            .iter()
            .any(|e| !e.is(manager, "Apply") && e.fields.contains(p));
        if !owned_elsewhere {
            remove(&mut out, p);
        }
    }
    for p in &applied {
        copy_field(&mut out, config, p);
    }
    if out.type_.is_empty() {
        out.type_ = "Opaque".into();
    }
    entries.retain(|e| !e.is(manager, "Apply"));
    entries.push(Entry {
        manager: manager.to_owned(),
        operation: "Apply".into(),
        time: Some(now),
        fields: applied,
    });
    out.meta.managed_fields = render_entries(entries);
    Ok(out)
}

fn conflict_error(entries: &[Entry], conflicts: &[(usize, Path)]) -> ApiError {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(i, p)| {
            json!({"reason": "FieldManagerConflict", "message": format!("conflict with {}", entries[*i].printed()), "field": path_string(p)})
        })
        .collect();
    let message = if let [(i, p)] = conflicts {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            entries[*i].printed(),
            path_string(p)
        )
    } else {
        let mut managers: Vec<&Entry> = Vec::new();
        for (i, _) in conflicts {
            if !managers.contains(&&entries[*i]) {
                managers.push(&entries[*i]);
            }
        }
        // getConflictMessage sorts by the encoded manager identifier, which starts with the name.
        managers.sort_by(|a, b| a.manager.cmp(&b.manager));
        let mut lines = Vec::new();
        for m in managers {
            lines.push(format!("conflicts with {}:", m.printed()));
            for (i, p) in conflicts {
                if entries[*i] == *m {
                    lines.push(format!("- {}", path_string(p)));
                }
            }
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    ApiError::apply_conflict(message, causes)
}

/// Records a non-apply write by `manager` on an object that is tracked (has `managedFields`):
/// the fields it changed become its own and leave the other managers; removed fields leave all.
pub fn record_update(old: &Secret, new: &mut Secret, manager: &str, now: Timestamp) {
    if old.meta.managed_fields.is_empty() && new.meta.managed_fields.is_empty() {
        return;
    }
    let base = if new.meta.managed_fields.is_empty() {
        &old.meta.managed_fields
    } else {
        &new.meta.managed_fields
    };
    let mut entries = parse_entries(base);
    let all: FieldSet = fields_of(old).union(&fields_of(new)).cloned().collect();
    let changed: Vec<Path> = all
        .into_iter()
        .filter(|p| value_of(old, p) != value_of(new, p))
        .collect();
    if changed.is_empty() {
        new.meta.managed_fields = old.meta.managed_fields.clone();
        return;
    }
    for e in &mut entries {
        for p in &changed {
            e.fields.remove(p);
        }
    }
    let mut mine = entries
        .iter()
        .position(|e| e.is(manager, "Update"))
        .map(|i| entries.remove(i))
        .unwrap_or(Entry {
            manager: manager.to_owned(),
            operation: "Update".into(),
            time: None,
            fields: FieldSet::new(),
        });
    mine.time = Some(now);
    for p in changed {
        if value_of(new, &p).is_some() {
            mine.fields.insert(p);
        }
    }
    entries.push(mine);
    new.meta.managed_fields = render_entries(entries);
}

/// The manager of a write: `fieldManager`, else the User-Agent up to its first `/`, else
/// `unknown` (apiserver's `managerOrUserAgent`).
pub fn manager_name(field_manager: Option<&str>, user_agent: Option<&str>) -> String {
    if let Some(m) = field_manager.filter(|m| !m.is_empty()) {
        return m.to_owned();
    }
    match user_agent.map(|ua| ua.split('/').next().unwrap_or("")) {
        Some(prefix) if !prefix.is_empty() => prefix.to_owned(),
        _ => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(data: &[(&str, &str)]) -> Secret {
        Secret {
            data: data
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
                .collect(),
            type_: "Opaque".into(),
            ..Default::default()
        }
    }

    #[test]
    fn fields_round_trip_through_fields_v1() {
        let mut s = secret(&[("k", "v")]);
        s.meta.labels.insert("app".into(), "x".into());
        let fields = fields_of(&s);
        let encoded = encode_fields(&fields);
        assert_eq!(
            encoded,
            json!({"f:data": {".": {}, "f:k": {}}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:type": {}})
        );
        let mut back = FieldSet::new();
        decode_fields(&encoded, &mut Vec::new(), &mut back);
        assert_eq!(back, fields);
    }

    #[test]
    fn second_manager_conflicts_then_forces() {
        let raw = json!({"data": {}});
        let first = apply(None, &secret(&[("k", "a")]), &raw, "one", false, 0).unwrap();
        let err = apply(Some(&first), &secret(&[("k", "b")]), &raw, "two", false, 0).unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"one\": .data.k"
        );
        // Same value: shared ownership, no conflict.
        assert!(apply(Some(&first), &secret(&[("k", "a")]), &raw, "two", false, 0).is_ok());
        let forced = apply(Some(&first), &secret(&[("k", "b")]), &raw, "two", true, 0).unwrap();
        assert_eq!(forced.data["k"], b"b");
        // "one" lost the field; applying without it removes nothing "two" owns.
        let again = apply(Some(&forced), &secret(&[]), &raw, "one", false, 0).unwrap();
        assert_eq!(again.data["k"], b"b");
    }

    #[test]
    fn an_applier_dropping_a_field_removes_it() {
        let raw = json!({});
        let first = apply(
            None,
            &secret(&[("k", "a"), ("j", "b")]),
            &raw,
            "me",
            false,
            0,
        )
        .unwrap();
        let second = apply(Some(&first), &secret(&[("k", "a")]), &raw, "me", false, 0).unwrap();
        assert!(!second.data.contains_key("j"));
    }

    #[test]
    fn manager_names() {
        assert_eq!(manager_name(Some("m"), Some("kubectl/v1.33")), "m");
        assert_eq!(manager_name(None, Some("kubectl/v1.33 (linux)")), "kubectl");
        assert_eq!(manager_name(None, None), "unknown");
    }
}
