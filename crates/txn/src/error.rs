use tessera_kv::ClientError;
use tessera_types::Timestamp;

/// Why a transaction failed, named by what its caller does about it.
#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    /// Another transaction committed a change to a key this one writes after
    /// this one's snapshot: retry the whole transaction (SQLSTATE 40001).
    #[error(
        "write conflict on key {key:02x?}: transaction {start_ts} lost to transaction \
         {conflict_start_ts}, committed at {conflict_commit_ts}"
    )]
    WriteConflict {
        /// The key.
        key: Vec<u8>,
        /// This transaction.
        start_ts: Timestamp,
        /// The transaction it lost to.
        conflict_start_ts: Timestamp,
        /// When that one committed.
        conflict_commit_ts: Timestamp,
    },
    /// The transaction was rolled back by another that found it expired:
    /// retry it (SQLSTATE 40001).
    #[error("transaction {start_ts} was rolled back by a concurrent transaction (key {key:02x?})")]
    Aborted {
        /// The key.
        key: Vec<u8>,
        /// This transaction.
        start_ts: Timestamp,
    },
    /// A lock held by a live transaction did not go away in time.
    #[error("key {key:02x?} stayed locked by transaction {holder}")]
    LockTimeout {
        /// The key.
        key: Vec<u8>,
        /// The transaction holding the lock.
        holder: Timestamp,
    },
    /// Waiting for `holder`'s lock on `key` would close a cycle of waits:
    /// this transaction is the victim (SQLSTATE 40P01). Roll it back.
    #[error("deadlock: transaction {waiter} waits for {holder}'s lock on key {key:02x?}, which waits for it")]
    Deadlock {
        /// The key this transaction waited for.
        key: Vec<u8>,
        /// This transaction.
        waiter: Timestamp,
        /// The transaction holding that key's lock.
        holder: Timestamp,
        /// The other waits of the cycle: each transaction and the key it
        /// waits for, from the holder round to this transaction.
        cycle: Vec<(Timestamp, Vec<u8>)>,
    },
    /// The transaction's snapshot is older than a range's GC threshold: the
    /// versions it needs may be gone. Retry with a new transaction.
    #[error("snapshot at {ts} is too old: versions below {threshold} have been garbage-collected")]
    SnapshotTooOld {
        /// The snapshot.
        ts: Timestamp,
        /// The range's GC threshold.
        threshold: Timestamp,
    },
    /// A transaction begun at a recent timestamp
    /// ([`TxnClient::begin_recent`](crate::TxnClient::begin_recent)) read
    /// a key that changed above it, or may have, or was asked to do more
    /// than read: run it again in a transaction begun afresh.
    #[error("key {key:02x?} changed after the transaction's recent timestamp, or may have")]
    NewerWrite {
        /// The key.
        key: Vec<u8>,
    },
    /// A command's keys span more than one range: a range split after the
    /// coordinator grouped them. It regroups and retries; callers see this
    /// only if the ranges keep changing.
    #[error("keys span more than one range (key {key:02x?}): the ranges changed")]
    RangeChanged {
        /// The first key outside the command's range.
        key: Vec<u8>,
    },
    /// A resharding step met a range that changed since it was planned (a
    /// concurrent split, merge or membership change), more often than it
    /// retries: run it again (SQLSTATE 40001).
    #[error("the range changed while it was being resharded: {0}")]
    Changed(String),
    /// The cluster could not be reached or did not answer. A commit that
    /// fails so did not happen (see `Ambiguous`).
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
    /// The commit's answer was lost, and so was the attempt to find out
    /// whether it applied: it may or may not have (SQLSTATE 40003).
    #[error("the transaction's outcome is unknown: {0}")]
    Ambiguous(String),
    /// The request cannot be carried out as asked (a range that does not
    /// exist, a node that holds no replica of it or does not answer).
    #[error("{0}")]
    InvalidRequest(String),
    /// A bug or corrupt state.
    #[error("internal error: {0}")]
    Internal(String),
}

impl TxnError {
    /// Whether retrying the transaction from the start may succeed (a
    /// deadlock's victim too: the other transaction goes on without it).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            TxnError::WriteConflict { .. }
                | TxnError::Aborted { .. }
                | TxnError::Deadlock { .. }
                | TxnError::RangeChanged { .. }
                | TxnError::Changed(_)
        )
    }
}

impl From<ClientError> for TxnError {
    fn from(err: ClientError) -> Self {
        match err {
            ClientError::Unavailable(msg) => TxnError::Unavailable(msg),
            ClientError::CrossRange(key) => TxnError::RangeChanged { key },
            ClientError::InvalidRequest(msg) => TxnError::InvalidRequest(msg),
            ClientError::Changed(msg) => TxnError::Changed(msg),
            other => TxnError::Internal(other.to_string()),
        }
    }
}

/// A transaction result.
pub type TxnResult<T> = Result<T, TxnError>;
