//! Compiles ../../proto with the protoc shipped by `protoc-bin-vendored`.
//!
//! The protoc path is passed to prost-build directly rather than through the
//! PROTOC environment variable: exporting PROTOC would also reach raft-proto's
//! build script, which rejects newer protoc versions.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let protos = [
        "txn.proto",
        "meta.proto",
        "raft_transport.proto",
        "kv.proto",
        "node.proto",
    ];
    let dir = "../../proto";
    for proto in &protos {
        println!("cargo:rerun-if-changed={dir}/{proto}");
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure().compile_with_config(
        config,
        &protos.map(|p| format!("{dir}/{p}")),
        &[dir.to_string()],
    )?;
    Ok(())
}
