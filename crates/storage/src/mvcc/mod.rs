//! Multi-version concurrency control in the Percolator layout.
//!
//! Three column families hold a key's versions:
//!
//! | family    | key                  | value                                     |
//! |-----------|----------------------|-------------------------------------------|
//! | `lock`    | key                  | [`Lock`]: primary, start ts, TTL, kind     |
//! | `write`   | key + commit ts      | [`Write`]: start ts, kind, short value     |
//! | `default` | key + start ts       | a value too long to inline                 |
//!
//! Keys of `write` and `default` are the user key in a prefix-free encoding
//! followed by the inverted timestamp (`key` module), so a key's versions
//! are adjacent and newest first.
//!
//! A transaction reads at its start timestamp ([`MvccReader`]) and commits
//! in two phases ([`commands`]): `prewrite` locks every key it writes and
//! checks for conflicts; committing the primary key's lock is the commit
//! point; the other locks are committed afterwards, or rolled forward by
//! readers that meet them. A reader that meets a lock from a transaction that
//! started at or below its timestamp must not guess: it gets
//! [`MvccError::KeyIsLocked`] and resolves the lock through its primary
//! ([`commands::check_txn_status`], [`commands::resolve_locks`]).
//!
//! Everything here is pure: functions of a consistent view that return the
//! writes to make. The Raft apply path runs them and writes their effects
//! with the replica's applied index.

pub mod commands;
mod key;
mod reader;
mod record;

pub use commands::{GcOutcome, Mutation, Op, Prewrite, TxnStatus};
pub use key::{
    decode_user_key, encoded_user_key, is_one_key_versions, span_bounds, split_version_key,
    version_bounds, version_key, version_prefix,
};
pub use reader::{KeyHistory, MvccReader, TxnRecord};
pub use record::{Lock, LockKind, Write, WriteKind, SHORT_VALUE_MAX};

use tessera_types::Timestamp;

/// Why an MVCC command or read did not happen. Everything but `Storage` is a
/// deterministic outcome of the data: every replica reaches the same one.
#[derive(Debug, thiserror::Error)]
pub enum MvccError {
    /// Another transaction holds a lock on the key: resolve it through its
    /// primary, or wait, then retry.
    #[error("key {key:02x?} is locked by transaction {}", lock.start_ts)]
    KeyIsLocked {
        /// The locked key.
        key: Vec<u8>,
        /// The lock (boxed: it is the largest of the outcomes).
        lock: Box<Lock>,
    },
    /// A transaction that committed after this one's snapshot changed the
    /// key: this one must abort (or, for a pessimistic lock, retry at a newer
    /// timestamp).
    #[error(
        "write conflict on key {key:02x?}: transaction {start_ts} lost to transaction \
         {conflict_start_ts}, committed at {conflict_commit_ts}"
    )]
    WriteConflict {
        /// The key.
        key: Vec<u8>,
        /// The transaction that lost.
        start_ts: Timestamp,
        /// The transaction that won.
        conflict_start_ts: Timestamp,
        /// When the winner committed.
        conflict_commit_ts: Timestamp,
    },
    /// The transaction was rolled back on the key (by itself, or by a
    /// reader that found it expired).
    #[error("transaction {start_ts} was rolled back (key {key:02x?})")]
    TxnAborted {
        /// The key.
        key: Vec<u8>,
        /// The transaction.
        start_ts: Timestamp,
    },
    /// A rollback of a transaction that committed.
    #[error("transaction {start_ts} committed at {commit_ts} (key {key:02x?})")]
    AlreadyCommitted {
        /// The key.
        key: Vec<u8>,
        /// The transaction.
        start_ts: Timestamp,
        /// Its commit timestamp.
        commit_ts: Timestamp,
    },
    /// A pessimistic lock the transaction took is gone: a reader found the
    /// transaction expired and rolled it back.
    #[error("the pessimistic lock of transaction {start_ts} on key {key:02x?} is gone")]
    PessimisticLockNotFound {
        /// The key.
        key: Vec<u8>,
        /// The transaction.
        start_ts: Timestamp,
    },
    /// The transaction has no lock on its primary key any more.
    #[error("transaction {start_ts} holds no lock on {key:02x?}")]
    TxnNotFound {
        /// The key.
        key: Vec<u8>,
        /// The transaction.
        start_ts: Timestamp,
    },
    /// A read that had to see the latest state (`MvccReader::latest`) met a
    /// write newer than its timestamp on the key, or a lock that may be
    /// one: it must be made again at a fresh timestamp.
    #[error("key {key:02x?} changed after the read's timestamp, or may have")]
    NewerWrite {
        /// The key.
        key: Vec<u8>,
    },
    /// The request itself is wrong (a coordinator bug, not a conflict).
    #[error("invalid MVCC request: {0}")]
    InvalidRequest(String),
    /// The engine failed or holds corrupt data.
    #[error(transparent)]
    Storage(#[from] crate::Error),
}
