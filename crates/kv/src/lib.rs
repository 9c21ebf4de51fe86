//! The node's gRPC surface and its clients.
//!
//! - `GrpcTransport`: the Raft transport between nodes, one long-lived
//!   client stream per destination node, messages batched per stream.
//! - `services`: the servers for the Raft transport, the KV service (served
//!   by each range's leader) and the node service (hello, bootstrap, status).
//! - `KvClient`: a client that follows not-leader hints and retries across
//!   nodes, a bounded number of times.
//! - `splits`: the meta range's part in a split (its commit point), and
//!   the settling of a split left pending.
//! - `tso`: the timestamp oracle, served by the meta range's leader.
//! - `deadlock`: the wait-for graph, kept by the meta range's leader.
//! - `flow`: the hook through which a range's leader runs the SQL layer's
//!   flows over its rows.
#![deny(missing_docs)]

mod address_book;
mod client;
pub mod deadlock;
mod error;
pub mod flow;
mod pipeline;
pub mod range_ids;
pub mod services;
pub mod splits;
mod transport;
pub mod tso;

pub use address_book::AddressBook;
pub use client::{KvClient, KvClientConfig};
pub use error::{ClientError, ClientResult};
pub use transport::GrpcTransport;

/// The largest gRPC message a node accepts or sends (snapshots travel as one
/// message).
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// HTTP/2 flow-control window of one stream. The Raft transport multiplexes
/// every range over one long-lived stream per peer; with HTTP/2's default
/// 64 KiB window it stalls waiting for window updates under load.
pub const STREAM_WINDOW_BYTES: u32 = 8 << 20;

/// HTTP/2 flow-control window of one connection.
pub const CONNECTION_WINDOW_BYTES: u32 = 32 << 20;
