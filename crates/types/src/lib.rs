//! Types shared by every Tessera crate: identifiers, the layout of the global
//! keyspace, and the order-preserving key encoding.
//!
//! This crate sits at the bottom of the dependency graph and has no I/O.
#![deny(missing_docs)]

pub mod encoding;
pub mod failpoint;
pub mod keys;
pub mod time;

pub use time::Timestamp;

/// Identifies a node (one `tessera start` process with its own data dir).
pub type NodeId = u64;

/// Identifies a range: a `[start_key, end_key)` slice of the keyspace with its
/// own Raft group.
pub type RangeId = u64;

/// Identifies one replica of a range; this is the peer id inside the range's
/// Raft group. Distinct from the node id so that a range can leave a node and
/// come back as a fresh replica.
pub type ReplicaId = u64;

/// Identifies a cluster; stamped on every node's data dir and on every Raft
/// message so that nodes of different clusters never talk to each other.
pub type ClusterId = u64;
