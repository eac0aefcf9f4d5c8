//! Generated protobuf types and gRPC stubs for `proto/`.

#![allow(clippy::all, missing_docs)]

pub mod flyteidl2 {
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
