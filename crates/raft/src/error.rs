use tessera_types::{NodeId, RangeId};

/// A store error, named by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// This replica is not the range's leader; retry at the leader if known.
    #[error("range {range_id}: not leader (leader: {leader:?})")]
    NotLeader {
        /// The range.
        range_id: RangeId,
        /// The node believed to hold the leader, if any.
        leader: Option<NodeId>,
    },
    /// This node holds no replica of the range containing the key.
    #[error("no replica for key {key:?} on this node")]
    RangeNotFound {
        /// The key.
        key: Vec<u8>,
    },
    /// A batch's keys fall in more than one range.
    #[error("batch spans more than one range (key {key:?})")]
    CrossRange {
        /// The first key outside the batch's range.
        key: Vec<u8>,
    },
    /// The proposal was overtaken by a new leader's log before it committed;
    /// it was not applied. Retry.
    #[error("proposal dropped by a leadership change")]
    ProposalDropped,
    /// A one-phase commit reached a leader that has not yet learned a
    /// timestamp from the oracle since it took over: take one now, hand it
    /// to the leader with the term (`StoreHandle::observe_timestamp`), and
    /// retry.
    #[error("range {range_id}: the new leader needs a timestamp before a one-phase commit")]
    NeedTimestamp {
        /// The range.
        range_id: RangeId,
        /// The leader's term.
        term: u64,
    },
    /// A split at a key that already starts a range.
    #[error("key {key:?} already starts a range")]
    AlreadySplit {
        /// The key.
        key: Vec<u8>,
    },
    /// The range is frozen for a merge: retry, the merged range serves it
    /// soon (or the range again, if the merge is abandoned).
    #[error("range {range_id} is being merged")]
    Frozen {
        /// The range.
        range_id: RangeId,
    },
    /// A learner cannot be promoted yet: it has not caught up with the
    /// leader's log.
    #[error("range {range_id}: the learner has {matched} of {committed} entries")]
    NotCaughtUp {
        /// The range.
        range_id: RangeId,
        /// The learner's last entry the leader knows it holds.
        matched: u64,
        /// The leader's commit index.
        committed: u64,
    },
    /// A command planned against an older descriptor of the range (a
    /// split, merge or membership change went first): plan it again.
    #[error("{0}")]
    Changed(String),
    /// The store has stopped.
    #[error("store stopped")]
    Stopped,
    /// Invalid input (a malformed message or request).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The store's persistent state is inconsistent or cannot be read.
    #[error("storage: {0}")]
    Storage(#[from] tessera_storage::Error),
    /// raft-rs reported an error.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
}

impl Error {
    /// Whether retrying the same request (possibly at another node) may
    /// succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::NotLeader { .. }
                | Error::ProposalDropped
                | Error::RangeNotFound { .. }
                | Error::Frozen { .. }
        )
    }
}

/// A store result.
pub type Result<T> = std::result::Result<T, Error>;
