//! Generated prost messages and tonic services for Tessera's `.proto` files.
//!
//! This is the only crate that builds `proto/`; every other crate uses the
//! types from here.
#![allow(missing_docs, clippy::all)]

/// Range descriptors, node records and replicated commands.
pub mod meta {
    tonic::include_proto!("tessera.meta");
}

/// Transactional commands, MVCC reads and their outcomes.
pub mod txn {
    tonic::include_proto!("tessera.txn");
}

/// Node-to-node Raft message transport.
pub mod raft {
    tonic::include_proto!("tessera.raft");
}

/// The KV service.
pub mod kv {
    tonic::include_proto!("tessera.kv");
}

/// Node identity, bootstrap and status.
pub mod node {
    tonic::include_proto!("tessera.node");
}
