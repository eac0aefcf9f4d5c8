//! Generated protobuf types and gRPC stubs for `proto/`.

#![allow(clippy::all, missing_docs)]

pub mod flyteidl2 {
    pub mod cluster {
        tonic::include_proto!("flyteidl2.cluster");
        include!(concat!(env!("OUT_DIR"), "/flyteidl2.cluster.serde.rs"));
    }
    pub mod common {
        tonic::include_proto!("flyteidl2.common");
        include!(concat!(env!("OUT_DIR"), "/flyteidl2.common.serde.rs"));
    }
    pub mod secret {
        tonic::include_proto!("flyteidl2.secret");
        include!(concat!(env!("OUT_DIR"), "/flyteidl2.secret.serde.rs"));
    }
}

pub mod google {
    pub mod api {
        tonic::include_proto!("google.api");
    }
}

/// The encoded `FileDescriptorSet` of every proto file (for reflection and descriptor tests).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

/// `google.protobuf.Timestamp` with canonical proto3 JSON: RFC 3339 in UTC with a `Z` suffix and
/// 0, 3, 6 or 9 fractional digits; any RFC 3339 offset is accepted on input.
#[derive(Clone, Copy, PartialEq, Eq, Hash, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = time::OffsetDateTime::from_unix_timestamp(self.seconds)
            .map_err(serde::ser::Error::custom)?;
        let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
        let mut out = t.format(&f).map_err(serde::ser::Error::custom)?;
        let nanos = self.nanos.clamp(0, 999_999_999);
        if nanos != 0 {
            if nanos % 1_000_000 == 0 {
                out.push_str(&format!(".{:03}", nanos / 1_000_000));
            } else if nanos % 1_000 == 0 {
                out.push_str(&format!(".{:06}", nanos / 1_000));
            } else {
                out.push_str(&format!(".{nanos:09}"));
            }
        }
        out.push('Z');
        s.serialize_str(&out)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let t = time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
            .map_err(|e| serde::de::Error::custom(format!("invalid timestamp {text:?}: {e}")))?;
        Ok(Timestamp {
            seconds: t.unix_timestamp(),
            nanos: t.nanosecond() as i32,
        })
    }
}
