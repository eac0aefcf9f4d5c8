//! The snapshot: the whole state at one resourceVersion, so the log before it can be deleted.
//!
//! `snapshot.jsonl` is a header line `{"snapshot":1,"rv":N,"count":C[,"k":KEY_ID]}` followed by
//! one object per line, in the clear as a mutation record or sealed as `{"e":…}` (AAD
//! `snap:N:INDEX`). It is streamed from an immutable view (no lock held, no JSON tree), written
//! to a temporary file, fsynced, renamed into place and the directory fsynced: a crash leaves
//! either the old snapshot or the new one. `state.json`, the single-document form of earlier
//! versions, is still read and is removed by the first new snapshot.

use super::codec::{self, MutRec, RecordError};
use super::crypto::Cipher;
use super::wal::{damaged, unreadable};
use super::{Mutation, View, files};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

const SNAPSHOT: &str = "snapshot.jsonl";
const TMP: &str = "snapshot.jsonl.tmp";
const LEGACY: &str = "state.json";

#[derive(Serialize, Deserialize)]
struct Header<'a> {
    snapshot: u32,
    rv: u64,
    count: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<Cow<'a, str>>,
}

#[derive(Serialize, Deserialize)]
struct Sealed<'a> {
    e: Cow<'a, str>,
}

fn aad(rv: u64, index: usize) -> Vec<u8> {
    format!("snap:{rv}:{index}").into_bytes()
}

/// Writes `view` as the new snapshot (see the module docs for the crash argument).
pub fn write(dir: &Path, view: &View, cipher: Option<&Cipher>) -> io::Result<()> {
    let tmp = dir.join(TMP);
    let result = (|| {
        let mut out = BufWriter::with_capacity(256 * 1024, files::create(&tmp)?);
        let header = Header {
            snapshot: 1,
            rv: view.rv,
            count: view.namespaces.len() + view.secrets.len(),
            k: cipher.map(|c| Cow::Borrowed(c.id())),
        };
        serde_json::to_writer(&mut out, &header)?;
        out.write_all(b"\n")?;
        let records = view
            .namespaces
            .values()
            .map(|ns| MutRec::namespace(ns))
            .chain(view.secrets.values().map(|s| MutRec::secret(s)));
        let mut plain = Vec::new();
        for (index, rec) in records.enumerate() {
            match cipher {
                None => serde_json::to_writer(&mut out, &rec)?,
                Some(c) => {
                    plain.clear();
                    serde_json::to_writer(&mut plain, &rec)?;
                    let sealed = Sealed {
                        e: Cow::Owned(c.seal(&plain, &aad(view.rv, index))),
                    };
                    serde_json::to_writer(&mut out, &sealed)?;
                }
            }
            out.write_all(b"\n")?;
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, dir.join(SNAPSHOT))?;
    files::sync_dir(dir)?;
    let legacy = dir.join(LEGACY);
    if legacy.exists() {
        fs::remove_file(&legacy)?;
        files::sync_dir(dir)?;
    }
    Ok(())
}

/// What loading found.
pub struct Loaded {
    pub plain_records: usize,
}

/// Loads the snapshot (or the legacy state file) into `view`.
pub fn load(dir: &Path, cipher: Option<&Cipher>, view: &mut View) -> io::Result<Loaded> {
    let _ = fs::remove_file(dir.join(TMP)); // an interrupted compaction; the log still has it all
    let path = dir.join(SNAPSHOT);
    if path.exists() {
        return load_snapshot(dir, &path, cipher, view);
    }
    let legacy = dir.join(LEGACY);
    if legacy.exists() {
        return load_legacy(dir, &legacy, view);
    }
    Ok(Loaded { plain_records: 0 })
}

fn load_snapshot(
    dir: &Path,
    path: &Path,
    cipher: Option<&Cipher>,
    view: &mut View,
) -> io::Result<Loaded> {
    let mut reader = BufReader::with_capacity(
        256 * 1024,
        File::open(path).map_err(|e| files::named(path, "opening", e))?,
    );
    let bad = |line: usize, why: &dyn std::fmt::Display| damaged(dir, path, line, why);
    // The next line into `line`; 0 at the end of the file.
    let read_line = |reader: &mut BufReader<File>, line: &mut Vec<u8>| {
        reader
            .read_until(b'\n', line)
            .map_err(|e| files::named(path, "reading", e))
    };
    let mut line = Vec::new();
    read_line(&mut reader, &mut line)?;
    let header: Header<'static> = serde_json::from_slice(&line)
        .map_err(|e| bad(1, &format!("unreadable snapshot header ({e})")))?;
    // The count is only trusted as far as lines back it up.
    let mut mutations = Vec::with_capacity(header.count.min(1 << 16));
    let mut plain_records = 0;
    for index in 0..header.count {
        let number = index + 2;
        line.clear();
        if read_line(&mut reader, &mut line)? == 0 {
            return Err(bad(
                number,
                &format!(
                    "the snapshot ends after {index} of {} objects",
                    header.count
                ),
            ));
        }
        let decoded: Result<MutRec<'static>, RecordError> = if header.k.is_some() {
            serde_json::from_slice::<Sealed<'static>>(&line)
                .map_err(|e| RecordError::Unreadable(e.to_string()))
                .and_then(|s| {
                    codec::unseal(cipher, header.k.as_deref(), &s.e, &aad(header.rv, index))
                })
                .and_then(|plain| {
                    serde_json::from_slice(&plain)
                        .map_err(|e| RecordError::Unreadable(e.to_string()))
                })
        } else {
            plain_records += 1;
            serde_json::from_slice(&line).map_err(|e| RecordError::Unreadable(e.to_string()))
        };
        let m = decoded
            .and_then(|rec| {
                rec.into_mutation()
                    .ok_or_else(|| RecordError::Unreadable("an object does not decode".into()))
            })
            .map_err(|e| unreadable(dir, path, number, &e))?;
        mutations.push(m);
    }
    // The snapshot is written with exactly `count` objects: anything after them means the count
    // was damaged, and loading only the counted ones would lose the rest without a word.
    line.clear();
    if read_line(&mut reader, &mut line)? != 0 {
        return Err(bad(
            header.count + 2,
            &format!(
                "the snapshot holds more than the {} objects its header counts",
                header.count
            ),
        ));
    }
    super::apply(view, header.rv, mutations);
    Ok(Loaded { plain_records })
}

/// `{"rv":N,"m":[{"put":…}|{"ns":…}…]}`, as earlier versions wrote it.
fn load_legacy(dir: &Path, path: &Path, view: &mut View) -> io::Result<Loaded> {
    let bad = |why: String| damaged(dir, path, 1, &why);
    let state: Value = serde_json::from_slice(&fs::read(path)?)
        .map_err(|e| bad(format!("unreadable state file ({e})")))?;
    let rv = state["rv"]
        .as_u64()
        .ok_or_else(|| bad("the state file has no rv".into()))?;
    let mut mutations: Vec<Mutation> = Vec::new();
    let Some(Value::Array(items)) = state.get("m") else {
        return Err(bad("the state file has no objects array".into()));
    };
    for item in items {
        let rec: MutRec<'static> = serde_json::from_value(item.clone())
            .map_err(|e| bad(format!("an object does not parse ({e})")))?;
        mutations.push(
            rec.into_mutation()
                .ok_or_else(|| bad("an object does not decode".into()))?,
        );
    }
    let plain_records = mutations.len();
    super::apply(view, rv, mutations);
    Ok(Loaded { plain_records })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubeapi::object::Secret;

    /// A snapshot whose header counts fewer objects than it holds (a damaged digit) is refused,
    /// naming the file and the line, instead of opening without the objects past the count.
    #[test]
    fn objects_past_the_headers_count_are_damage_not_dropped() {
        let dir = super::super::tests::temp_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let mut view = View::empty();
        for name in ["a", "b", "c"] {
            let mut s = Secret::default();
            s.meta.namespace = "ns".into();
            s.meta.name = name.into();
            view.secrets
                .insert(super::super::key("ns", name), std::sync::Arc::new(s));
        }
        write(&dir, &view, None).unwrap();
        let mut loaded = View::empty();
        load(&dir, None, &mut loaded).unwrap();
        assert_eq!(loaded.secrets.len(), 3);

        let path = dir.join(SNAPSHOT);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(r#""count":3"#), "{text}");
        std::fs::write(&path, text.replacen(r#""count":3"#, r#""count":2"#, 1)).unwrap();
        let Err(err) = load(&dir, None, &mut View::empty()) else {
            panic!("a snapshot with objects past its count loaded");
        };
        let err = err.to_string();
        assert!(
            err.contains(&path.display().to_string())
                && err.contains("holds more than the 2 objects its header counts"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
