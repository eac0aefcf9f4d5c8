//! The versioned object store behind the engine: one global, only-growing resourceVersion,
//! persistent maps (cheap snapshots for consistent paged lists), and optional durability through
//! a write-ahead log.
//!
//! Durability design: every commit appends one JSON line (`{"rv":N,"m":[...]}`) to `wal.jsonl`
//! and fsyncs it *before* the change becomes visible or is acknowledged. Appending is O(change),
//! where rewriting a whole state file per write would be O(store). A kill -9 can only tear the
//! last line, which replay detects (no newline or not JSON) and drops: that write was never
//! acknowledged. When the log grows long, the state is written to `state.json.tmp`, fsynced and
//! renamed over `state.json` (atomic), the directory is fsynced, and only then is the log
//! truncated; replay skips log records at or below the state's resourceVersion, so a crash
//! between rename and truncate loses nothing and applies nothing twice.

use super::object::{
    Namespace, Secret, decode_namespace, decode_secret, encode_namespace, encode_secret,
};
use super::status::ApiError;
use imbl::OrdMap;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Storage key: `<namespace>/<name>`; its byte order is the API server's list order.
pub type Key = String;

pub fn key(namespace: &str, name: &str) -> Key {
    format!("{namespace}/{name}")
}

pub type SecretMap = OrdMap<Key, Arc<Secret>>;

/// A consistent read of the store.
#[derive(Clone)]
pub struct View {
    pub rv: u64,
    pub secrets: SecretMap,
    pub namespaces: OrdMap<String, Arc<Namespace>>,
}

/// A change a commit applies.
#[derive(Clone, Debug)]
pub enum Mutation {
    PutSecret(Secret),
    DeleteSecret(Key),
    PutNamespace(Namespace),
}

/// How many list snapshots are kept for continue tokens, and for how long.
const PAGED_SNAPSHOTS: usize = 256;
const PAGED_RETENTION: Duration = Duration::from_secs(300);
const COMPACT_AFTER_RECORDS: usize = 4096;

struct Inner {
    view: View,
    paged: VecDeque<(u64, Instant, SecretMap)>,
    wal: Option<Wal>,
}

pub struct Store {
    inner: Mutex<Inner>,
}

/// Where the store keeps its data.
#[derive(Clone, Debug)]
pub enum Durability {
    Memory,
    Directory(PathBuf),
}

impl Store {
    /// Opens (or creates) a store. A directory store replays its state and log.
    pub fn open(durability: &Durability) -> io::Result<Self> {
        let mut view = View {
            rv: 1000,
            secrets: OrdMap::new(),
            namespaces: OrdMap::new(),
        };
        let wal = match durability {
            Durability::Memory => None,
            Durability::Directory(dir) => Some(Wal::open(dir, &mut view)?),
        };
        let store = Store {
            inner: Mutex::new(Inner {
                view,
                paged: VecDeque::new(),
                wal,
            }),
        };
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn read(&self) -> View {
        self.lock().view.clone()
    }

    /// Runs `f` on the current state with the resourceVersion the commit will get; applies the
    /// mutations it returns (durably first, when the store is durable) and returns its result.
    pub fn commit<R>(
        &self,
        f: impl FnOnce(&View, u64) -> Result<(Vec<Mutation>, R), ApiError>,
    ) -> Result<R, ApiError> {
        let mut inner = self.lock();
        let next_rv = inner.view.rv + 1 + u64::from(rand::random::<u8>() % 3);
        let (mutations, result) = f(&inner.view, next_rv)?;
        if mutations.is_empty() {
            return Ok(result);
        }
        if let Some(wal) = inner.wal.as_mut() {
            wal.append(next_rv, &mutations)
                .map_err(|e| ApiError::internal(&format!("writing the store log: {e}")))?;
        }
        let mut view = inner.view.clone();
        apply(&mut view, next_rv, mutations);
        inner.view = view;
        let compact = inner
            .wal
            .as_ref()
            .is_some_and(|w| w.records >= COMPACT_AFTER_RECORDS);
        if compact {
            let view = inner.view.clone();
            if let Some(wal) = inner.wal.as_mut()
                && let Err(e) = wal.compact(&view)
            {
                tracing::warn!(error = %e, "compacting the store log failed; the log keeps growing");
            }
        }
        Ok(result)
    }

    /// Remembers `snapshot` as the state a paged list was read at.
    pub fn keep_for_paging(&self, rv: u64, snapshot: SecretMap) {
        let mut inner = self.lock();
        let now = Instant::now();
        inner
            .paged
            .retain(|(_, at, _)| now.duration_since(*at) < PAGED_RETENTION);
        if inner.paged.iter().any(|(r, _, _)| *r == rv) {
            return;
        }
        if inner.paged.len() == PAGED_SNAPSHOTS {
            inner.paged.pop_front();
        }
        inner.paged.push_back((rv, now, snapshot));
    }

    /// The snapshot a continue token refers to, if still retained.
    pub fn paged_snapshot(&self, rv: u64) -> Option<SecretMap> {
        let inner = self.lock();
        let now = Instant::now();
        inner
            .paged
            .iter()
            .find(|(r, at, _)| *r == rv && now.duration_since(*at) < PAGED_RETENTION)
            .map(|(_, _, s)| s.clone())
    }

    /// Forgets every list snapshot, as etcd compaction would (continue tokens then expire).
    pub fn compact_history(&self) {
        self.lock().paged.clear();
    }
}

fn apply(view: &mut View, rv: u64, mutations: Vec<Mutation>) {
    for m in mutations {
        match m {
            Mutation::PutSecret(s) => {
                view.secrets
                    .insert(key(&s.meta.namespace, &s.meta.name), Arc::new(s));
            }
            Mutation::DeleteSecret(k) => {
                view.secrets.remove(&k);
            }
            Mutation::PutNamespace(ns) => {
                view.namespaces.insert(ns.meta.name.clone(), Arc::new(ns));
            }
        }
    }
    view.rv = rv;
}

fn encode_mutation(m: &Mutation) -> Value {
    match m {
        Mutation::PutSecret(s) => json!({"put": encode_secret(s, true)}),
        Mutation::DeleteSecret(k) => json!({"del": k}),
        Mutation::PutNamespace(ns) => json!({"ns": encode_namespace(ns, true)}),
    }
}

fn decode_mutation(v: &Value) -> Option<Mutation> {
    if let Some(s) = v.get("put") {
        let bytes = serde_json::to_vec(s).ok()?;
        return decode_secret(&bytes)
            .ok()
            .map(|(s, _)| Mutation::PutSecret(s));
    }
    if let Some(Value::String(k)) = v.get("del") {
        return Some(Mutation::DeleteSecret(k.clone()));
    }
    if let Some(ns) = v.get("ns") {
        let bytes = serde_json::to_vec(ns).ok()?;
        return decode_namespace(&bytes).ok().map(Mutation::PutNamespace);
    }
    None
}

struct Wal {
    dir: PathBuf,
    file: File,
    records: usize,
}

fn corrupt(path: &Path, line: usize, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}:{line}: {what}", path.display()),
    )
}

impl Wal {
    fn open(dir: &Path, view: &mut View) -> io::Result<Wal> {
        fs::create_dir_all(dir)?;
        let state_path = dir.join("state.json");
        if state_path.exists() {
            let state: Value = serde_json::from_slice(&fs::read(&state_path)?)
                .map_err(|e| corrupt(&state_path, 1, &e.to_string()))?;
            let rv = state["rv"]
                .as_u64()
                .ok_or_else(|| corrupt(&state_path, 1, "no rv"))?;
            let mut mutations = Vec::new();
            for m in state["m"].as_array().into_iter().flatten() {
                mutations
                    .push(decode_mutation(m).ok_or_else(|| corrupt(&state_path, 1, "bad object"))?);
            }
            apply(view, rv, mutations);
        }
        let wal_path = dir.join("wal.jsonl");
        let mut records = 0;
        let mut good_len = 0u64;
        if wal_path.exists() {
            let mut reader = BufReader::new(File::open(&wal_path)?);
            let mut line = Vec::new();
            let mut n = 0;
            loop {
                line.clear();
                let read = reader.read_until(b'\n', &mut line)?;
                if read == 0 {
                    break;
                }
                n += 1;
                let complete = line.last() == Some(&b'\n');
                let parsed: Option<(u64, Vec<Mutation>)> =
                    serde_json::from_slice::<Value>(&line).ok().and_then(|v| {
                        let rv = v["rv"].as_u64()?;
                        let ms = v["m"]
                            .as_array()?
                            .iter()
                            .map(decode_mutation)
                            .collect::<Option<Vec<_>>>()?;
                        Some((rv, ms))
                    });
                match (complete, parsed) {
                    (true, Some((rv, ms))) => {
                        if rv > view.rv {
                            apply(view, rv, ms);
                        }
                        records += 1;
                        good_len += read as u64;
                    }
                    _ => {
                        // Only the final record can be torn by a crash; anything after it is damage.
                        let mut rest = Vec::new();
                        io::Read::read_to_end(&mut reader, &mut rest)?;
                        if !rest.is_empty() {
                            return Err(corrupt(
                                &wal_path,
                                n,
                                "unreadable record before the end of the log",
                            ));
                        }
                        tracing::warn!(path = %wal_path.display(), line = n, "dropping a torn final log record (never acknowledged)");
                        break;
                    }
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&wal_path)?;
        if file.metadata()?.len() != good_len {
            file.set_len(good_len)?;
            file.sync_all()?;
        }
        sync_dir(dir)?;
        Ok(Wal {
            dir: dir.to_owned(),
            file,
            records,
        })
    }

    fn append(&mut self, rv: u64, mutations: &[Mutation]) -> io::Result<()> {
        let record =
            json!({"rv": rv, "m": mutations.iter().map(encode_mutation).collect::<Vec<_>>()});
        let mut line = serde_json::to_vec(&record)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()?;
        self.records += 1;
        Ok(())
    }

    fn compact(&mut self, view: &View) -> io::Result<()> {
        let mut all: Vec<Value> = view
            .namespaces
            .values()
            .map(|ns| encode_mutation(&Mutation::PutNamespace((**ns).clone())))
            .collect();
        all.extend(
            view.secrets
                .values()
                .map(|s| encode_mutation(&Mutation::PutSecret((**s).clone()))),
        );
        let tmp = self.dir.join("state.json.tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&serde_json::to_vec(&json!({"rv": view.rv, "m": all}))?)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, self.dir.join("state.json"))?;
        sync_dir(&self.dir)?;
        self.file.set_len(0)?;
        self.file.sync_all()?;
        self.records = 0;
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::super::object::ObjectMeta;
    use super::*;

    fn secret(name: &str) -> Secret {
        Secret {
            meta: ObjectMeta {
                name: name.into(),
                namespace: "ns".into(),
                ..Default::default()
            },
            data: [("k".to_owned(), b"v".to_vec())].into(),
            type_: "Opaque".into(),
            ..Default::default()
        }
    }

    #[test]
    fn directory_store_survives_reopen_compaction_and_a_torn_tail() {
        let dir = std::env::temp_dir().join(format!("flytesecret-store-{}", uuid::Uuid::new_v4()));
        let durable = Durability::Directory(dir.clone());
        let store = Store::open(&durable).unwrap();
        for i in 0..(COMPACT_AFTER_RECORDS + 10) {
            store
                .commit(|_, _| Ok((vec![Mutation::PutSecret(secret(&format!("s{i}")))], ())))
                .unwrap();
        }
        store
            .commit(|_, _| Ok((vec![Mutation::DeleteSecret(key("ns", "s0"))], ())))
            .unwrap();
        let before = store.read();
        drop(store);
        // A torn, unacknowledged record at the end is dropped on replay.
        let mut wal = OpenOptions::new()
            .append(true)
            .open(dir.join("wal.jsonl"))
            .unwrap();
        wal.write_all(br#"{"rv":999999,"m":[{"del":"ns/s1"#)
            .unwrap();
        drop(wal);
        let reopened = Store::open(&durable).unwrap().read();
        assert_eq!(reopened.rv, before.rv);
        assert_eq!(reopened.secrets.len(), COMPACT_AFTER_RECORDS + 9);
        assert!(reopened.secrets.get(&key("ns", "s0")).is_none());
        assert_eq!(
            reopened.secrets.get(&key("ns", "s1")).unwrap().data["k"],
            b"v"
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
