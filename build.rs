//! Compiles `proto/` with protox (no system protoc): prost messages, tonic services, and pbjson
//! serde impls (canonical proto3 JSON for the Connect and REST protocols). The encoded descriptor
//! set is kept for gRPC reflection and the wire-compatibility test.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(
        [
            "proto/flyteidl2/secret/secret.proto",
            "proto/flyteidl2/cluster/service.proto",
        ],
        ["proto"],
    )?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let bytes = prost::Message::encode_to_vec(&descriptors);
    std::fs::write(out.join("descriptors.bin"), &bytes)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_well_known_types(true)
        .extern_path(".google.protobuf.Timestamp", "crate::proto::Timestamp")
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(descriptors)?;
    pbjson_build::Builder::new()
        .register_descriptors(&bytes)?
        .extern_path(".google.protobuf.Timestamp", "crate::proto::Timestamp")
        .ignore_unknown_fields()
        .build(&[".flyteidl2"])?;
    Ok(())
}
