//! Node assembly for the `tessera` binary: configuration and the wiring of
//! storage, the store loop, the gRPC services and the SQL server.
#![deny(missing_docs)]

pub mod autosplit;
pub mod cluster_kv;
pub mod config;
pub mod node;
pub mod rebalance;
