//! The engine against a model (a map): for random sequences of operations, every response code
//! and every paged list agree with what the map says.

use bytes::Bytes;
use flytesecret::kubeapi::Engine;
use http::{Method, Request};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
enum Op {
    Create(String, u8),
    Get(String),
    /// Replace with the current resourceVersion, a stale one, or none.
    Replace(String, u8, RvMode),
    Delete(String),
    List(u8),
}

#[derive(Clone, Copy, Debug)]
enum RvMode {
    Current,
    Stale,
    Unconditional,
}

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "d", "e"]).prop_map(str::to_owned)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (name(), any::<u8>()).prop_map(|(n, v)| Op::Create(n, v)),
        name().prop_map(Op::Get),
        (
            name(),
            any::<u8>(),
            prop_oneof![
                Just(RvMode::Current),
                Just(RvMode::Stale),
                Just(RvMode::Unconditional)
            ]
        )
            .prop_map(|(n, v, m)| Op::Replace(n, v, m)),
        name().prop_map(Op::Delete),
        (0u8..4).prop_map(Op::List),
    ]
}

async fn call(engine: &Engine, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(bytes)
        .unwrap();
    let resp = engine.handle(req).await;
    (
        resp.status().as_u16(),
        serde_json::from_slice(resp.body()).unwrap_or(Value::Null),
    )
}

const BASE: &str = "/api/v1/namespaces/default/secrets";

fn secret(name: &str, v: u8, rv: Option<&str>) -> Value {
    let mut meta = json!({"name": name});
    if let Some(rv) = rv {
        meta["resourceVersion"] = json!(rv);
    }
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": {"v": v.to_string()}})
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let engine = Engine::ephemeral();
    // The model: name -> (value, resourceVersion).
    let mut model: BTreeMap<String, (u8, String)> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Create(n, v) => {
                let (code, body) =
                    call(&engine, Method::POST, BASE, Some(secret(&n, v, None))).await;
                match model.entry(n) {
                    std::collections::btree_map::Entry::Occupied(_) => prop_assert_eq!(code, 409),
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        prop_assert_eq!(code, 201);
                        let rv = body["metadata"]["resourceVersion"]
                            .as_str()
                            .unwrap()
                            .to_owned();
                        slot.insert((v, rv));
                    }
                }
            }
            Op::Get(n) => {
                let (code, body) = call(&engine, Method::GET, &format!("{BASE}/{n}"), None).await;
                match model.get(&n) {
                    Some((_, rv)) => {
                        prop_assert_eq!(code, 200);
                        prop_assert_eq!(
                            body["metadata"]["resourceVersion"].as_str(),
                            Some(rv.as_str())
                        );
                    }
                    None => prop_assert_eq!(code, 404),
                }
            }
            Op::Replace(n, v, mode) => {
                let rv = match (mode, model.get(&n)) {
                    (RvMode::Current, Some((_, rv))) => Some(rv.clone()),
                    (RvMode::Stale, Some((_, rv))) => {
                        Some((rv.parse::<u64>().unwrap() - 1).to_string())
                    }
                    _ => None,
                };
                let (code, body) = call(
                    &engine,
                    Method::PUT,
                    &format!("{BASE}/{n}"),
                    Some(secret(&n, v, rv.as_deref())),
                )
                .await;
                match (model.get(&n).cloned(), mode) {
                    (None, _) => prop_assert_eq!(code, 404),
                    (Some(_), RvMode::Stale) => prop_assert_eq!(code, 409),
                    (Some((old, old_rv)), _) => {
                        prop_assert_eq!(code, 200);
                        let new_rv = body["metadata"]["resourceVersion"]
                            .as_str()
                            .unwrap()
                            .to_owned();
                        if old == v {
                            prop_assert_eq!(
                                &new_rv,
                                &old_rv,
                                "a no-op write keeps the resourceVersion"
                            );
                        } else {
                            prop_assert!(
                                new_rv.parse::<u64>().unwrap() > old_rv.parse::<u64>().unwrap()
                            );
                        }
                        model.insert(n, (v, new_rv));
                    }
                }
            }
            Op::Delete(n) => {
                let (code, _) = call(
                    &engine,
                    Method::DELETE,
                    &format!("{BASE}/{n}"),
                    Some(json!({})),
                )
                .await;
                prop_assert_eq!(code, if model.remove(&n).is_some() { 200 } else { 404 });
            }
            Op::List(limit) => {
                let mut names = Vec::new();
                let mut token = String::new();
                for _ in 0..10 {
                    let mut q = format!("?limit={limit}");
                    if !token.is_empty() {
                        q.push_str(&format!("&continue={token}"));
                    }
                    let (code, body) =
                        call(&engine, Method::GET, &format!("{BASE}{q}"), None).await;
                    prop_assert_eq!(code, 200);
                    for item in body["items"].as_array().unwrap() {
                        let n = item["metadata"]["name"].as_str().unwrap().to_owned();
                        let value: u8 = {
                            use base64::Engine as _;
                            let b = base64::engine::general_purpose::STANDARD
                                .decode(item["data"]["v"].as_str().unwrap())
                                .unwrap();
                            String::from_utf8(b).unwrap().parse().unwrap()
                        };
                        prop_assert_eq!(Some(value), model.get(&n).map(|m| m.0));
                        names.push(n);
                    }
                    match body["metadata"]["continue"].as_str() {
                        Some(t) => {
                            prop_assert!(limit > 0);
                            token = t.to_owned();
                        }
                        None => break,
                    }
                }
                prop_assert_eq!(names, model.keys().cloned().collect::<Vec<_>>());
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn engine_agrees_with_a_map(ops in prop::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(ops))?;
    }
}
