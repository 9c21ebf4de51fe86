//! Node assembly for the `tessera` binary: configuration and the wiring of
//! storage, the store loop and the gRPC services.
#![deny(missing_docs)]

pub mod config;
pub mod node;
