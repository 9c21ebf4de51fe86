//! The multi-Raft store: every range has its own Raft group, and each node
//! runs one `RawNode` (raft-rs) per replica it holds, all driven by one store
//! loop per node.
//!
//! The store loop (`store::StoreLoop`) is the only place that does I/O for
//! Raft. Each turn it:
//!
//! 1. gathers ticks, incoming messages, proposals and read requests;
//! 2. for every replica with a `Ready`, stages its log entries, hard state and
//!    snapshot into ONE `WriteBatch`, written with one sync (group commit);
//! 3. hands outgoing messages to the `Transport`, batched per destination node
//!    (a leader's appends go out before its own write, so the syncs overlap);
//! 4. applies committed commands deterministically, writing each replica's
//!    applied index in the same batch as the effects, then answers proposers
//!    and serves reads whose ReadIndex has been applied;
//! 5. advances the `RawNode`s.
//!
//! A write is acknowledged only once its entry is committed — durably synced
//! on a quorum — and applied. Reads are linearizable: the leader serves them
//! under a time lease that ReadIndex rounds renew, or after such a round.
//! Point reads under the lease skip the store loop: the caller reads the
//! engine itself once the replica's read gate (`read_gate`) lets it.
#![deny(missing_docs)]

mod bootstrap;
mod error;
pub mod keys;
mod load;
mod log;
mod logger;
mod read_gate;
mod replica;
mod store;
mod transport;
mod txn;

pub use bootstrap::{bootstrap_layout, initial_meta_data};
pub use error::{Error, Result};
pub use log::{INIT_INDEX, INIT_TERM};
pub use replica::ReplicaChange;
pub use replica::ScanChunk;
pub use store::{RaftConfig, RangeSize, ReadResult, ReplicaInfo, SplitOutcome, Store, StoreHandle};
pub use transport::Transport;
pub use txn::{command_keys as txn_command_keys, lock_info, txn_error};
