//! The Kubernetes API's protobuf form (`application/vnd.kubernetes.protobuf`,
//! docs/kubernetes-api.md §1.7): the `k8s\0` prefix and the `runtime.Unknown` envelope around
//! every message, the `meta.k8s.io/v1` messages read in it, and the writing primitives.
//!
//! Both sides of the one backend path use it: the embedded engine decodes protobuf request
//! bodies and writes metadata-only answers in it; the service's Kubernetes client reads those
//! answers, and error `Status`es, from whichever API server it talks to (client-go's metadata
//! client asks for protobuf first, as the service does: it is cheaper than JSON to write and to
//! read, on the embedded engine and on a real API server alike).
//!
//! Field numbers are those of kubernetes/apimachinery's `pkg/apis/meta/v1/generated.proto` and
//! `pkg/runtime/generated.proto`.

use prost::encoding::{WireType, encoded_len_varint};

/// The media type of protobuf bodies (requests and answers).
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The Accept of client-go's metadata client on a get, which the service's metadata reads send:
/// one object's `PartialObjectMetadata`, protobuf first, then JSON.
pub const PARTIAL_OBJECT_METADATA_ACCEPT: &str = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";

/// What precedes the envelope in every protobuf body.
pub const MAGIC: &[u8] = b"k8s\0";

/// `runtime.Unknown`: the envelope.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Unknown {
    #[prost(message, optional, tag = "1")]
    pub type_meta: Option<TypeMeta>,
    #[prost(bytes = "vec", tag = "2")]
    pub raw: Vec<u8>,
    #[prost(string, tag = "3")]
    pub content_encoding: String,
    #[prost(string, tag = "4")]
    pub content_type: String,
}

/// `runtime.TypeMeta`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeMeta {
    #[prost(string, tag = "1")]
    pub api_version: String,
    #[prost(string, tag = "2")]
    pub kind: String,
}

/// The envelope of a protobuf body; the error says what is wrong with it.
pub fn open(body: &[u8]) -> Result<Unknown, String> {
    prost::Message::decode(envelope_of(body)?).map_err(|e| e.to_string())
}

/// The envelope's bytes: the body after its prefix.
fn envelope_of(body: &[u8]) -> Result<&[u8], WireError> {
    body.strip_prefix(MAGIC).ok_or(WireError::MissingMagic)
}

/// What makes a body or message unreadable: small and `Copy`, so the field walk's results stay
/// two words and its happy path never builds a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    MissingMagic,
    FieldNumber,
    WireType(u8),
    Varint,
    PastEnd,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::MissingMagic => f.write_str("missing the protobuf magic prefix"),
            WireError::FieldNumber => f.write_str("invalid field number"),
            WireError::WireType(t) => write!(f, "unsupported wire type {t}"),
            WireError::Varint => f.write_str("invalid varint"),
            WireError::PastEnd => f.write_str("a field runs past the end of its message"),
        }
    }
}

impl std::error::Error for WireError {}

impl From<WireError> for String {
    fn from(e: WireError) -> String {
        e.to_string()
    }
}

/// `meta.k8s.io/v1` `Time`: seconds since the epoch (the API server keeps no fraction).
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Time {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// One field of an encoded message, read without copying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field<'a> {
    Varint(u64),
    /// A string, bytes, an embedded message or a packed repeated field.
    Bytes(&'a [u8]),
    /// A fixed 32- or 64-bit value (no field read here has one).
    Fixed,
}

/// The fields of an encoded message, in order, borrowed from it: `(number, field)`, then an
/// error (and the end) at the first malformed one.
pub fn fields(mut message: &[u8]) -> impl Iterator<Item = Result<(u32, Field<'_>), WireError>> {
    let mut failed = false;
    std::iter::from_fn(move || {
        if message.is_empty() || failed {
            return None;
        }
        let item = next_field(&mut message);
        failed = item.is_err();
        Some(item)
    })
}

#[inline(always)]
fn next_field<'a>(message: &mut &'a [u8]) -> Result<(u32, Field<'a>), WireError> {
    let key = decode_varint(message)?;
    let number = u32::try_from(key >> 3)
        .ok()
        .filter(|n| *n != 0)
        .ok_or(WireError::FieldNumber)?;
    let field = match key & 7 {
        0 => Field::Varint(decode_varint(message)?),
        1 => take(message, 8).map(|_| Field::Fixed)?,
        5 => take(message, 4).map(|_| Field::Fixed)?,
        2 => {
            let len = decode_varint(message)?;
            Field::Bytes(take(
                message,
                usize::try_from(len).map_err(|_| WireError::PastEnd)?,
            )?)
        }
        other => return Err(WireError::WireType(other as u8)),
    };
    Ok((number, field))
}

/// A varint; the one- and two-byte forms (every key and length in a Secret's metadata) without
/// the general loop.
#[inline(always)]
fn decode_varint(message: &mut &[u8]) -> Result<u64, WireError> {
    match *message {
        [low, rest @ ..] if *low < 0x80 => {
            *message = rest;
            Ok(u64::from(*low))
        }
        [low, high, rest @ ..] if *high < 0x80 => {
            *message = rest;
            Ok(u64::from(low & 0x7f) | u64::from(*high) << 7)
        }
        _ => prost::encoding::decode_varint(message).map_err(|_| WireError::Varint),
    }
}

#[inline]
fn take<'a>(message: &mut &'a [u8], n: usize) -> Result<&'a [u8], WireError> {
    if n > message.len() {
        return Err(WireError::PastEnd);
    }
    let (taken, rest) = message.split_at(n);
    *message = rest;
    Ok(taken)
}

/// The object's message inside a protobuf body (the envelope's `raw`), without copying it.
pub fn raw_of(body: &[u8]) -> Result<&[u8], WireError> {
    let mut raw: &[u8] = &[];
    for field in fields(envelope_of(body)?) {
        if let (2, Field::Bytes(bytes)) = field? {
            raw = bytes;
        }
    }
    Ok(raw)
}

/// A `Time` message: `None` when empty (Go's zero time, an unset timestamp), else its seconds
/// (its nanos are always zero from the API server and are dropped).
pub fn time_seconds(message: &[u8]) -> Result<Option<i64>, WireError> {
    if message.is_empty() {
        return Ok(None);
    }
    let mut seconds = 0;
    for field in fields(message) {
        if let (1, Field::Varint(v)) = field? {
            seconds = v as i64;
        }
    }
    Ok(Some(seconds))
}

/// A `map<string, string>` entry: its key and value, borrowed and not yet checked as UTF-8
/// (the reader checks what it keeps).
pub fn map_entry(entry: &[u8]) -> Result<(&[u8], &[u8]), WireError> {
    let (mut key, mut value): (&[u8], &[u8]) = (&[], &[]);
    for field in fields(entry) {
        match field? {
            (1, Field::Bytes(k)) => key = k,
            (2, Field::Bytes(v)) => value = v,
            _ => {}
        }
    }
    Ok((key, value))
}

/// `meta.k8s.io/v1` `Status`: an error answer (its list metadata is skipped).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(string, tag = "2")]
    pub status: String,
    #[prost(string, tag = "3")]
    pub message: String,
    #[prost(string, tag = "4")]
    pub reason: String,
    #[prost(message, optional, tag = "5")]
    pub details: Option<StatusDetails>,
    #[prost(int32, tag = "6")]
    pub code: i32,
}

/// `meta.k8s.io/v1` `StatusDetails`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusDetails {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub group: String,
    #[prost(string, tag = "3")]
    pub kind: String,
    #[prost(message, repeated, tag = "4")]
    pub causes: Vec<StatusCause>,
    #[prost(int32, tag = "5")]
    pub retry_after_seconds: i32,
    #[prost(string, tag = "6")]
    pub uid: String,
}

/// `meta.k8s.io/v1` `StatusCause`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusCause {
    #[prost(string, tag = "1")]
    pub reason: String,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(string, tag = "3")]
    pub field: String,
}

/// A field's key (number and wire type), as prost's `encode_key` writes it.
#[inline]
fn put_key(out: &mut Vec<u8>, tag: u32, wire_type: WireType) {
    put_varint_raw(out, u64::from((tag << 3) | wire_type as u32));
}

/// A bare varint: the one-byte form (every key and most lengths here) pushed directly, longer
/// ones by prost.
#[inline]
fn put_varint_raw(out: &mut Vec<u8>, value: u64) {
    if value < 0x80 {
        out.push(value as u8);
    } else {
        prost::encoding::encode_varint(value, out);
    }
}

/// Writes a length-delimited field (a string, bytes, or an already encoded message).
/// The API server writes its non-optional strings even when empty; so do the callers.
pub fn put_bytes(out: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    put_key(out, tag, WireType::LengthDelimited);
    put_varint_raw(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Writes a varint field (int64, int32, bool).
pub fn put_varint(out: &mut Vec<u8>, tag: u32, value: u64) {
    put_key(out, tag, WireType::Varint);
    put_varint_raw(out, value);
}

/// The size of a length-delimited field of `len` bytes under `tag`.
pub fn bytes_field_len(tag: u32, len: usize) -> usize {
    prost::encoding::key_len(tag) + encoded_len_varint(len as u64) + len
}

/// Writes a `Time` field as Go writes one: an unset (zero) time as an empty message, any other
/// as its seconds and a zero nanos.
pub fn put_time(out: &mut Vec<u8>, tag: u32, seconds: Option<i64>) {
    put_key(out, tag, WireType::LengthDelimited);
    match seconds {
        None => put_varint_raw(out, 0),
        Some(seconds) => {
            put_varint_raw(out, (3 + encoded_len_varint(seconds as u64)) as u64);
            put_varint(out, 1, seconds as u64);
            put_varint(out, 2, 0);
        }
    }
}

/// Writes one entry of a `map<string, string>` field (both parts, even when empty).
pub fn put_map_entry(out: &mut Vec<u8>, tag: u32, key: &str, value: &str) {
    put_key(out, tag, WireType::LengthDelimited);
    let len = bytes_field_len(1, key.len()) + bytes_field_len(2, value.len());
    put_varint_raw(out, len as u64);
    put_bytes(out, 1, key.as_bytes());
    put_bytes(out, 2, value.as_bytes());
}

/// Writes a whole protobuf body: the prefix, then the envelope of `api_version`/`kind` around
/// `raw`, the object's encoded message (the tests build bodies of other kinds, `Status`, with it).
#[cfg(test)]
pub fn put_envelope(out: &mut Vec<u8>, api_version: &str, kind: &str, raw: &[u8]) {
    put_envelope_around(out, api_version, kind, raw.len(), |out| {
        out.extend_from_slice(raw)
    });
}

/// [`put_envelope`] with `raw` (`raw_len` bytes) written in place by `write_raw`.
fn put_envelope_around(
    out: &mut Vec<u8>,
    api_version: &str,
    kind: &str,
    raw_len: usize,
    write_raw: impl FnOnce(&mut Vec<u8>),
) {
    let type_meta = bytes_field_len(1, api_version.len()) + bytes_field_len(2, kind.len());
    out.reserve(MAGIC.len() + bytes_field_len(1, type_meta) + bytes_field_len(2, raw_len) + 4);
    out.extend_from_slice(MAGIC);
    put_key(out, 1, WireType::LengthDelimited);
    put_varint_raw(out, type_meta as u64);
    put_bytes(out, 1, api_version.as_bytes());
    put_bytes(out, 2, kind.as_bytes());
    put_key(out, 2, WireType::LengthDelimited);
    put_varint_raw(out, raw_len as u64);
    let before = out.len();
    write_raw(out);
    debug_assert_eq!(out.len() - before, raw_len, "raw is the length announced");
    put_bytes(out, 3, b"");
    put_bytes(out, 4, b"");
}

/// Writes a whole `PartialObjectMetadata` body of `api_version` (`meta.k8s.io/v1` or
/// `v1beta1`) around `object_meta`, an encoded `ObjectMeta`, copying it once.
pub fn put_partial_object_metadata(out: &mut Vec<u8>, api_version: &str, object_meta: &[u8]) {
    let raw_len = bytes_field_len(1, object_meta.len());
    put_envelope_around(out, api_version, "PartialObjectMetadata", raw_len, |out| {
        put_bytes(out, 1, object_meta)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    /// The writing primitives give what prost's own encoder gives for the same messages (the
    /// empty strings the API server writes included), so the reading side decodes them.
    #[test]
    fn written_fields_decode_as_the_messages_they_stand_for() {
        let mut raw = Vec::new();
        put_time(&mut raw, 8, Some(1_767_322_245));
        put_map_entry(&mut raw, 11, "b", "2");
        put_map_entry(&mut raw, 11, "a", "");
        let mut meta = Vec::new();
        put_bytes(&mut meta, 1, &raw);
        let mut body = Vec::new();
        put_partial_object_metadata(&mut body, "meta.k8s.io/v1", &raw);

        let unknown = open(&body).unwrap();
        assert_eq!(
            unknown.type_meta,
            Some(TypeMeta {
                api_version: "meta.k8s.io/v1".into(),
                kind: "PartialObjectMetadata".into()
            })
        );
        // Written the way prost writes the same envelope, empty strings aside (proto3 omits
        // them; the API server writes them, and both decode alike).
        let mut expected = MAGIC.to_vec();
        expected.extend(unknown.encode_to_vec());
        expected.extend([0x1a, 0, 0x22, 0]);
        assert_eq!(body, expected);

        assert_eq!(raw_of(&body).unwrap(), &meta[..]);
        let read: Vec<_> = fields(&meta).collect::<Result<_, _>>().unwrap();
        assert_eq!(read, [(1, Field::Bytes(&raw[..]))]);
        let read: Vec<_> = fields(&raw).collect::<Result<_, _>>().unwrap();
        let [
            (8, Field::Bytes(time)),
            (11, Field::Bytes(b)),
            (11, Field::Bytes(a)),
        ] = read[..]
        else {
            panic!("{read:?}");
        };
        assert_eq!(time_seconds(time).unwrap(), Some(1_767_322_245));
        assert_eq!(
            time_seconds(&[0x08, 0]).unwrap(),
            Some(0),
            "the epoch is a time"
        );
        assert_eq!(time_seconds(&[]).unwrap(), None);
        assert_eq!(map_entry(b).unwrap(), (&b"b"[..], &b"2"[..]));
        assert_eq!(map_entry(a).unwrap(), (&b"a"[..], &b""[..]));
        let zero = {
            let mut b = Vec::new();
            put_time(&mut b, 8, None);
            b
        };
        assert_eq!(zero, [0x42, 0], "a zero time is an empty message");
    }

    #[test]
    fn a_body_without_the_prefix_or_with_a_broken_envelope_is_refused() {
        assert!(
            open(b"{\"kind\":\"Status\"}")
                .unwrap_err()
                .contains("magic")
        );
        assert!(open(b"k8s\0\x0a\xff").is_err());
        assert_eq!(
            raw_of(b"{\"kind\":\"Status\"}").unwrap_err(),
            WireError::MissingMagic
        );
        assert_eq!(raw_of(b"k8s\0\x12\x05abc").unwrap_err(), WireError::PastEnd);
    }

    /// The short forms read what prost's general decoder reads, and consume as much, for every
    /// one- and two-byte input (and a third byte after them, continued or not).
    #[test]
    fn varints_read_as_prost_reads_them() {
        for first in 0..=255u8 {
            for second in 0..=255u8 {
                for input in [vec![first], vec![first, second], vec![first, second, 0x81]] {
                    let (mut ours, mut theirs) = (&input[..], &input[..]);
                    let got = decode_varint(&mut ours).ok();
                    let want = prost::encoding::decode_varint(&mut theirs).ok();
                    assert_eq!(got, want, "{input:02x?}");
                    if want.is_some() {
                        assert_eq!(ours.len(), theirs.len(), "{input:02x?}");
                    }
                }
            }
        }
    }

    /// Fixed-size fields are skipped; a field number 0, an unknown wire type, a truncated
    /// varint or length end the walk with an error (and nothing after it is read).
    #[test]
    fn the_field_walk_reads_every_wire_type_and_stops_at_the_first_malformed_field() {
        let mut message = vec![0x09, 1, 2, 3, 4, 5, 6, 7, 8, 0x15, 1, 2, 3, 4];
        put_varint(&mut message, 3, 300);
        put_bytes(&mut message, 4, b"xy");
        let read: Vec<_> = fields(&message).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            read,
            [
                (1, Field::Fixed),
                (2, Field::Fixed),
                (3, Field::Varint(300)),
                (4, Field::Bytes(b"xy"))
            ]
        );
        for (broken, error, message) in [
            (
                &[0x00, 1][..],
                WireError::FieldNumber,
                "invalid field number",
            ),
            (&[0x0b], WireError::WireType(3), "unsupported wire type 3"),
            (&[0x08, 0x80], WireError::Varint, "invalid varint"),
            (&[0x12, 3, b'a'], WireError::PastEnd, "past the end"),
            (&[0x0d, 1], WireError::PastEnd, "past the end"),
        ] {
            let mut walk = fields(broken);
            assert_eq!(walk.next(), Some(Err(error)), "{broken:?}");
            assert!(walk.next().is_none(), "{broken:?}");
            assert!(String::from(error).contains(message), "{error}");
        }
        assert_eq!(map_entry(&[0x0a, 5, b'k']).unwrap_err(), WireError::PastEnd);
    }
}
