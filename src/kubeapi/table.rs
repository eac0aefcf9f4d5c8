//! Table output for `kubectl get secrets` (docs/kubernetes-api.md §6) and
//! `kubectl get namespaces` (columns of kubernetes' pkg/printers/internalversion/printers.go).
//! The Table's group version (`meta.k8s.io/v1` or `v1beta1`) is the one negotiated; its rows'
//! `PartialObjectMetadata` carry the same.

use super::negotiate::MetaVersion;
use super::object::{Namespace, Secret};
use serde_json::{Value, json};

/// Go's `duration.HumanDuration`, as kubectl's AGE column shows it.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn age(created: Option<i64>, now: i64) -> String {
    created.map_or("<unknown>".to_owned(), |t| human_duration(now - t))
}

fn list_meta(
    resource_version: &str,
    continue_token: Option<&str>,
    remaining: Option<usize>,
) -> Value {
    let mut meta = serde_json::Map::new();
    meta.insert("resourceVersion".into(), json!(resource_version));
    if let Some(t) = continue_token {
        meta.insert("continue".into(), json!(t));
    }
    if let Some(r) = remaining {
        meta.insert("remainingItemCount".into(), json!(r));
    }
    Value::Object(meta)
}

fn row(version: MetaVersion, cells: Value, meta: &super::object::ObjectMeta) -> Value {
    json!({
        "cells": cells,
        "object": super::partial::value(version, meta),
    })
}

const NAME_COLUMN: &str = "Name must be unique within a namespace.";
const AGE_COLUMN: &str =
    "CreationTimestamp is a timestamp representing the server time when this object was created.";

/// The Table of `kubectl get namespaces`: NAME, STATUS, AGE.
pub fn namespaces_table<'a>(
    version: MetaVersion,
    items: impl Iterator<Item = &'a Namespace>,
    resource_version: &str,
) -> Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let rows: Vec<Value> = items
        .map(|n| {
            row(
                version,
                json!([
                    n.meta.name,
                    n.phase.as_str(),
                    age(n.meta.creation_timestamp, now)
                ]),
                &n.meta,
            )
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": version.api_version(),
        "metadata": list_meta(resource_version, None, None),
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "description": NAME_COLUMN, "priority": 0},
            {"name": "Status", "type": "string", "format": "", "description": "The status of the namespace", "priority": 0},
            {"name": "Age", "type": "string", "format": "", "description": AGE_COLUMN, "priority": 0},
        ],
        "rows": rows,
    })
}

pub fn secrets_table<'a>(
    version: MetaVersion,
    items: impl Iterator<Item = &'a Secret>,
    resource_version: &str,
    continue_token: Option<&str>,
    remaining: Option<usize>,
) -> Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let rows: Vec<Value> = items
        .map(|s| {
            row(
                version,
                json!([
                    s.meta.name,
                    s.type_,
                    s.data.len(),
                    age(s.meta.creation_timestamp, now)
                ]),
                &s.meta,
            )
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": version.api_version(),
        "metadata": list_meta(resource_version, continue_token, remaining),
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "description": NAME_COLUMN, "priority": 0},
            {"name": "Type", "type": "string", "format": "", "description": "Used to facilitate programmatic handling of secret data.", "priority": 0},
            {"name": "Data", "type": "string", "format": "", "description": "Data contains the secret data.", "priority": 0},
            {"name": "Age", "type": "string", "format": "", "description": AGE_COLUMN, "priority": 0},
        ],
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_like_kubectl() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (9 * 3600, "9h"),
            (50 * 3600, "2d2h"),
            (30 * 86400, "30d"),
            (800 * 86400, "2y70d"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }
}
