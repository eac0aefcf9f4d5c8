//! The on-disk forms of stored objects and log records: typed serde records (no
//! `serde_json::Value` trees on the write or replay path), optionally sealed with the data key.
//!
//! A log record is one line: `{"rv":N,"m":[…]}` in the clear, or `{"rv":N,"k":ID,"e":SEALED}`
//! where `SEALED` is the mutation array sealed with the key whose id is `ID` (AAD `wal:N`).
//! Mutations are `{"s":secret}`, `{"n":namespace}` or `{"del":"ns/name"}`; the forms written
//! before this format (`{"put":<Secret JSON>}`, `{"ns":<Namespace JSON>}`) are still read.

use super::super::object::{Namespace, ObjectMeta, Phase, Secret, decode_namespace, decode_secret};
use super::Mutation;
use super::crypto::Cipher;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;

// serde's `skip_serializing_if` hands these a reference to the field's own type.
#[allow(clippy::ptr_arg)]
fn is_empty_str(s: &Cow<'_, str>) -> bool {
    s.is_empty()
}
#[allow(clippy::ptr_arg)]
fn is_empty_map<K, V: Clone>(m: &Cow<'_, BTreeMap<K, V>>) -> bool
where
    K: Ord + Clone,
{
    m.is_empty()
}
#[allow(clippy::ptr_arg)]
fn is_empty_slice<T: Clone>(v: &Cow<'_, [T]>) -> bool {
    v.is_empty()
}

#[derive(Serialize, Deserialize)]
struct MetaRec<'a> {
    #[serde(default, skip_serializing_if = "is_empty_str")]
    n: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "is_empty_str")]
    gn: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "is_empty_str")]
    ns: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "is_empty_str")]
    uid: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "is_empty_str")]
    rv: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    g: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ct: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dt: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dg: Option<i64>,
    #[serde(default, skip_serializing_if = "is_empty_map")]
    l: Cow<'a, BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "is_empty_map")]
    a: Cow<'a, BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "is_empty_slice")]
    or: Cow<'a, [Value]>,
    #[serde(default, skip_serializing_if = "is_empty_slice")]
    f: Cow<'a, [String]>,
    /// Server-side apply's `managedFields` entries.
    #[serde(default, skip_serializing_if = "is_empty_slice")]
    mf: Cow<'a, [Value]>,
}

impl<'a> MetaRec<'a> {
    fn of(m: &'a ObjectMeta) -> Self {
        MetaRec {
            n: Cow::Borrowed(&m.name),
            gn: Cow::Borrowed(&m.generate_name),
            ns: Cow::Borrowed(&m.namespace),
            uid: Cow::Borrowed(&m.uid),
            rv: Cow::Borrowed(&m.resource_version),
            g: m.generation,
            ct: m.creation_timestamp,
            dt: m.deletion_timestamp,
            dg: m.deletion_grace_period_seconds,
            l: Cow::Borrowed(&m.labels),
            a: Cow::Borrowed(&m.annotations),
            or: Cow::Borrowed(&m.owner_references),
            f: Cow::Borrowed(&m.finalizers),
            mf: Cow::Borrowed(&m.managed_fields),
        }
    }

    fn into_meta(self) -> ObjectMeta {
        ObjectMeta {
            name: self.n.into_owned(),
            generate_name: self.gn.into_owned(),
            namespace: self.ns.into_owned(),
            uid: self.uid.into_owned(),
            resource_version: self.rv.into_owned(),
            generation: self.g,
            creation_timestamp: self.ct,
            deletion_timestamp: self.dt,
            deletion_grace_period_seconds: self.dg,
            labels: self.l.into_owned(),
            annotations: self.a.into_owned(),
            owner_references: self.or.into_owned(),
            finalizers: self.f.into_owned(),
            managed_fields: self.mf.into_owned(),
        }
    }
}

/// Secret data: key → base64 of the bytes.
struct Data<'a>(Cow<'a, BTreeMap<String, Vec<u8>>>);

impl Serialize for Data<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, STANDARD.encode(v))))
    }
}

impl<'de, 'a> Deserialize<'de> for Data<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let encoded = BTreeMap::<String, String>::deserialize(d)?;
        let mut out = BTreeMap::new();
        for (k, v) in encoded {
            let bytes = STANDARD
                .decode(v)
                .map_err(|_| serde::de::Error::custom("data value is not base64"))?;
            out.insert(k, bytes);
        }
        Ok(Data(Cow::Owned(out)))
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct SecretRec<'a> {
    m: MetaRec<'a>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    im: Option<bool>,
    #[serde(default = "no_data", skip_serializing_if = "Data::is_empty")]
    d: Data<'a>,
    #[serde(default, skip_serializing_if = "is_empty_str")]
    t: Cow<'a, str>,
}

fn no_data<'a>() -> Data<'a> {
    Data(Cow::Owned(BTreeMap::new()))
}

impl Data<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct NsRec<'a> {
    m: MetaRec<'a>,
    /// The lifecycle phase; absent means Active (records written before namespaces had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<Cow<'a, str>>,
}

/// One mutation as stored.
#[derive(Serialize, Deserialize)]
pub(super) enum MutRec<'a> {
    #[serde(rename = "s")]
    Secret(SecretRec<'a>),
    #[serde(rename = "del")]
    Delete(Cow<'a, str>),
    #[serde(rename = "n")]
    Namespace(NsRec<'a>),
    /// Written by earlier versions: the Secret's Kubernetes JSON.
    #[serde(rename = "put")]
    LegacySecret(Value),
    /// Written by earlier versions: the Namespace's Kubernetes JSON.
    #[serde(rename = "ns")]
    LegacyNamespace(Value),
}

impl<'a> MutRec<'a> {
    pub(super) fn of(m: &'a Mutation) -> Self {
        match m {
            Mutation::PutSecret(s) => MutRec::secret(s),
            Mutation::DeleteSecret(k) => MutRec::Delete(Cow::Borrowed(k)),
            Mutation::PutNamespace(ns) => MutRec::namespace(ns),
        }
    }

    pub(super) fn secret(s: &'a Secret) -> Self {
        MutRec::Secret(SecretRec {
            m: MetaRec::of(&s.meta),
            im: s.immutable,
            d: Data(Cow::Borrowed(&s.data)),
            t: Cow::Borrowed(&s.type_),
        })
    }

    pub(super) fn namespace(ns: &'a Namespace) -> Self {
        MutRec::Namespace(NsRec {
            m: MetaRec::of(&ns.meta),
            p: (ns.phase != Phase::Active).then(|| Cow::Borrowed(ns.phase.as_str())),
        })
    }

    /// The mutation; `None` for a legacy record the object decoder refuses.
    pub(super) fn into_mutation(self) -> Option<Mutation> {
        Some(match self {
            MutRec::Secret(s) => Mutation::PutSecret(Secret {
                meta: s.m.into_meta(),
                immutable: s.im,
                data: s.d.0.into_owned(),
                type_: s.t.into_owned(),
            }),
            MutRec::Delete(k) => Mutation::DeleteSecret(k.into_owned()),
            MutRec::Namespace(ns) => Mutation::PutNamespace(Namespace {
                meta: ns.m.into_meta(),
                phase: match ns.p.as_deref() {
                    None | Some("Active") => Phase::Active,
                    Some("Terminating") => Phase::Terminating,
                    Some("Gone") => Phase::Gone,
                    Some(_) => return None,
                },
            }),
            MutRec::LegacySecret(mut v) => {
                let owners = legacy_owner_references(&mut v);
                let bytes = serde_json::to_vec(&v).ok()?;
                let mut secret = decode_secret(&bytes).ok()?.0;
                secret.meta.owner_references = owners;
                Mutation::PutSecret(secret)
            }
            MutRec::LegacyNamespace(mut v) => {
                let owners = legacy_owner_references(&mut v);
                let bytes = serde_json::to_vec(&v).ok()?;
                let mut namespace = decode_namespace(&bytes).ok()?;
                namespace.meta.owner_references = owners;
                Mutation::PutNamespace(namespace)
            }
        })
    }
}

/// Takes a legacy record's owner references out of it, read as they were when it was written
/// (an array kept as it is, anything else dropped): the object decoder now refuses malformed
/// ones on the way in, and a store written before that must still open.
fn legacy_owner_references(object: &mut Value) -> Vec<Value> {
    let taken = object
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove("ownerReferences"));
    match taken {
        Some(Value::Array(owners)) => owners,
        _ => Vec::new(),
    }
}

#[derive(Serialize, Deserialize)]
struct LogLine<'a> {
    rv: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    m: Option<Vec<MutRec<'a>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<Cow<'a, str>>,
}

fn log_aad(rv: u64) -> Vec<u8> {
    format!("wal:{rv}").into_bytes()
}

/// Why a stored record could not be read. Texts never contain record bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    Unreadable(String),
    /// Sealed, but no key is configured.
    NeedKey,
    /// Sealed with another key than the configured one.
    WrongKey {
        stored: String,
        configured: String,
    },
    /// Sealed with this key but does not open: altered or damaged.
    Tampered,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Unreadable(why) => write!(f, "unreadable record ({why})"),
            RecordError::NeedKey => f.write_str(
                "the record is encrypted but no key is configured (set secret.embedded.encryption.keyFile)",
            ),
            RecordError::WrongKey { stored, configured } => write!(
                f,
                "the record is encrypted with key id {stored} but the configured key has id {configured}: wrong encryption key"
            ),
            RecordError::Tampered => {
                f.write_str("the encrypted record does not authenticate (damaged or altered)")
            }
        }
    }
}

impl RecordError {
    /// Errors about the key are configuration errors, not damage a repair should cut away.
    pub fn is_key_problem(&self) -> bool {
        matches!(self, RecordError::NeedKey | RecordError::WrongKey { .. })
    }
}

/// Opens a sealed payload with the configured key.
pub(super) fn unseal(
    cipher: Option<&Cipher>,
    key_id: Option<&str>,
    sealed: &str,
    aad: &[u8],
) -> Result<Vec<u8>, RecordError> {
    let cipher = cipher.ok_or(RecordError::NeedKey)?;
    if let Some(id) = key_id
        && id != cipher.id()
    {
        return Err(RecordError::WrongKey {
            stored: id.to_owned(),
            configured: cipher.id().to_owned(),
        });
    }
    cipher.open(sealed, aad).ok_or(RecordError::Tampered)
}

/// One log line, newline included.
pub fn encode_record(rv: u64, mutations: &[Mutation], cipher: Option<&Cipher>) -> Vec<u8> {
    let recs: Vec<MutRec<'_>> = mutations.iter().map(MutRec::of).collect();
    let line = match cipher {
        None => LogLine {
            rv,
            m: Some(recs),
            k: None,
            e: None,
        },
        Some(c) => {
            let plain = serde_json::to_vec(&recs).expect("records serialize");
            LogLine {
                rv,
                m: None,
                k: Some(Cow::Borrowed(c.id())),
                e: Some(Cow::Owned(c.seal(&plain, &log_aad(rv)))),
            }
        }
    };
    let mut out = serde_json::to_vec(&line).expect("records serialize");
    out.push(b'\n');
    out
}

/// A decoded log record: its resourceVersion, its mutations, and whether it was sealed.
pub struct Record {
    pub rv: u64,
    pub mutations: Vec<Mutation>,
    pub sealed: bool,
}

/// Decodes one log line (without its newline).
pub fn decode_record(line: &[u8], cipher: Option<&Cipher>) -> Result<Record, RecordError> {
    let parsed: LogLine<'static> = serde_json::from_slice(line)
        .map_err(|e| RecordError::Unreadable(format!("not a log record: {e}")))?;
    let (recs, sealed) = match (parsed.m, parsed.e) {
        (Some(m), None) => (m, false),
        (None, Some(e)) => {
            let plain = unseal(cipher, parsed.k.as_deref(), &e, &log_aad(parsed.rv))?;
            let recs: Vec<MutRec<'static>> = serde_json::from_slice(&plain).map_err(|e| {
                RecordError::Unreadable(format!("sealed mutations do not parse: {e}"))
            })?;
            (recs, true)
        }
        _ => {
            return Err(RecordError::Unreadable(
                "neither mutations nor a sealed payload".into(),
            ));
        }
    };
    let mutations = recs
        .into_iter()
        .map(MutRec::into_mutation)
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| RecordError::Unreadable("an object in it does not decode".into()))?;
    Ok(Record {
        rv: parsed.rv,
        mutations,
        sealed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret {
            meta: ObjectMeta {
                name: "a".into(),
                namespace: "ns".into(),
                uid: "u".into(),
                resource_version: "12".into(),
                creation_timestamp: Some(1_700_000_000),
                labels: [("l".to_owned(), "v".to_owned())].into(),
                ..Default::default()
            },
            immutable: Some(true),
            data: [("k".to_owned(), b"hunter2".to_vec())].into(),
            type_: "Opaque".into(),
        }
    }

    fn round_trip(cipher: Option<&Cipher>) -> (Vec<u8>, Record) {
        let ms = vec![
            Mutation::PutSecret(secret()),
            Mutation::DeleteSecret("ns/b".into()),
            Mutation::PutNamespace(Namespace {
                phase: Phase::Terminating,
                meta: ObjectMeta {
                    name: "ns".into(),
                    ..Default::default()
                },
            }),
        ];
        let line = encode_record(17, &ms, cipher);
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        let rec = decode_record(&line[..line.len() - 1], cipher).unwrap();
        assert_eq!(rec.rv, 17);
        assert_eq!(format!("{:?}", rec.mutations), format!("{ms:?}"));
        match &rec.mutations[0] {
            Mutation::PutSecret(s) => assert!(*s == secret()),
            other => panic!("{other:?}"),
        }
        (line, rec)
    }

    #[test]
    fn records_round_trip_plain_and_sealed() {
        let (line, rec) = round_trip(None);
        assert!(!rec.sealed);
        assert!(String::from_utf8_lossy(&line).contains("aHVudGVyMg=="));
        let c = Cipher::new(&[3; 32]);
        let (line, rec) = round_trip(Some(&c));
        assert!(rec.sealed);
        let text = String::from_utf8_lossy(&line);
        assert!(
            !text.contains("hunter2") && !text.contains("aHVudGVyMg"),
            "{text}"
        );
    }

    proptest::proptest! {
        /// The log relies on this: a NUL byte at a line's start marks the end of a segment's
        /// records (the zero-filled tail of a preallocated segment), so no record may contain
        /// one, plain or sealed, whatever the object's strings and bytes hold (NULs included).
        #[test]
        fn no_record_contains_a_nul_byte(
            text in proptest::collection::vec(".*|\\x00*", 6),
            value in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let meta = ObjectMeta {
                name: text[0].clone(),
                namespace: text[1].clone(),
                labels: [(text[2].clone(), text[3].clone())].into(),
                annotations: [(text[3].clone(), "\0".to_owned())].into(),
                finalizers: vec![text[4].clone()],
                ..Default::default()
            };
            let ms = vec![
                Mutation::PutSecret(Secret {
                    meta: meta.clone(),
                    immutable: None,
                    data: [(text[5].clone(), value)].into(),
                    type_: text[4].clone(),
                }),
                Mutation::DeleteSecret(text[0].clone()),
                Mutation::PutNamespace(Namespace {
                    phase: Phase::Active,
                    meta,
                }),
            ];
            let c = Cipher::new(&[3; 32]);
            for cipher in [None, Some(&c)] {
                let line = encode_record(1, &ms, cipher);
                proptest::prop_assert!(!line.contains(&0), "{:?}", String::from_utf8_lossy(&line));
            }
        }
    }

    #[test]
    fn sealed_records_need_the_right_key() {
        let c = Cipher::new(&[3; 32]);
        let line = encode_record(5, &[Mutation::PutSecret(secret())], Some(&c));
        let body = &line[..line.len() - 1];
        assert_eq!(decode_record(body, None).err(), Some(RecordError::NeedKey));
        assert!(matches!(
            decode_record(body, Some(&Cipher::new(&[4; 32]))).err(),
            Some(RecordError::WrongKey { .. })
        ));
        // Moving a sealed payload to another resourceVersion breaks its authentication.
        let moved = String::from_utf8_lossy(body).replacen("\"rv\":5", "\"rv\":6", 1);
        assert_eq!(
            decode_record(moved.as_bytes(), Some(&c)).err(),
            Some(RecordError::Tampered)
        );
    }

    #[test]
    fn legacy_records_still_decode() {
        let line = br#"{"rv":1003,"m":[{"put":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s","namespace":"ns","resourceVersion":"1003"},"data":{"k":"dg=="},"type":"Opaque"}},{"ns":{"metadata":{"name":"ns"}}},{"del":"ns/x"}]}"#;
        let rec = decode_record(line, None).unwrap();
        assert_eq!(rec.rv, 1003);
        match &rec.mutations[0] {
            Mutation::PutSecret(s) => assert_eq!(s.data["k"], b"v"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(rec.mutations[1], Mutation::PutNamespace(_)));
        assert!(matches!(rec.mutations[2], Mutation::DeleteSecret(_)));
    }

    /// A legacy record whose owner references the object decoder now refuses still loads, as
    /// it did when it was written: the store opens.
    #[test]
    fn legacy_records_keep_the_owner_references_they_were_written_with() {
        let line = br#"{"rv":7,"m":[{"put":{"metadata":{"name":"s","namespace":"ns","ownerReferences":[1]},"data":{"k":"dg=="}}},{"ns":{"metadata":{"name":"ns","ownerReferences":"x"}}}]}"#;
        let rec = decode_record(line, None).unwrap();
        match &rec.mutations[0] {
            Mutation::PutSecret(s) => assert_eq!(s.meta.owner_references, [serde_json::json!(1)]),
            other => panic!("{other:?}"),
        }
        match &rec.mutations[1] {
            Mutation::PutNamespace(n) => assert!(n.meta.owner_references.is_empty()),
            other => panic!("{other:?}"),
        }
    }

    proptest::proptest! {
        /// Replay reads whatever is on disk: no input makes the record decoder panic.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let c = Cipher::new(&[3; 32]);
            let _ = decode_record(&bytes, None);
            let _ = decode_record(&bytes, Some(&c));
        }

        /// Nor do damaged versions of real records; a sealed one that still opens holds
        /// exactly what was sealed (the ciphertext, its key id and its place are authenticated).
        #[test]
        fn damaged_records_never_panic(at in 0usize..10_000, byte in proptest::num::u8::ANY, sealed in proptest::bool::ANY) {
            let c = Cipher::new(&[3; 32]);
            let cipher = sealed.then_some(&c);
            let original = [Mutation::PutSecret(secret())];
            let mut line = encode_record(9, &original, cipher);
            line.pop();
            let i = at % line.len();
            line[i] = byte;
            if let Ok(rec) = decode_record(&line, cipher)
                && sealed
            {
                proptest::prop_assert_eq!(rec.rv, 9);
                proptest::prop_assert_eq!(format!("{:?}", rec.mutations), format!("{original:?}"));
                match &rec.mutations[0] {
                    Mutation::PutSecret(s) => proptest::prop_assert!(*s == secret()),
                    _ => proptest::prop_assert!(false),
                }
            }
        }
    }
}
