//! One replica of a range: its `RawNode`, the proposals and reads waiting on
//! it, and the deterministic application of its committed commands.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLockWriteGuard;
use prost::Message as _;
use raft::prelude::{ConfChange, ConfChangeSingle, ConfChangeType, ConfChangeV2, Entry, EntryType};
use raft::{RawNode, StateRole};
use tessera_proto::meta::{
    mutation, raft_command, AbortSplit, EvaluatedTxn, EvaluatedWrite, MetaUpdate, PrepareSplit,
    RaftCommand, RangeDescriptor, ReplicaDescriptor, ReplicaRole, TxnFamily,
};
use tessera_proto::txn::{LockInfo, TxnError, TxnResult};
use tessera_storage::mvcc::{Lock, LockKind, MvccError, MvccReader};
use tessera_storage::{BatchOp, Cf, Engine, Overlay, WriteBatch};
use tessera_types::{keys::span_contains, NodeId, RangeId, ReplicaId, Timestamp};
use tokio::sync::oneshot;

use crate::log::ReplicaStorage;
use crate::read_gate::{GateState, Permit, ReadGate};
use crate::{Error, Result};

/// A read waiting for its ReadIndex to be confirmed and applied.
pub(crate) struct PendingRead {
    pub op: ReadOp,
    pub callback: oneshot::Sender<Result<ReadResult>>,
    /// The read is served only once this index is applied (besides its
    /// ReadIndex): the one-phase commits it must see.
    pub min_applied: u64,
}

/// A ReadIndex round in flight: a read waiting on it, or a renewal of the
/// lease alone.
struct ReadRound {
    /// When the round began: the followers that acknowledge it heard from
    /// this leader after this instant.
    started: Instant,
    /// The term and lease epoch the round began in: a round from another
    /// term, or from before a leadership transfer or membership change,
    /// renews nothing.
    term: u64,
    epoch: u64,
    /// Whether a leadership transfer was under way when it began: its
    /// target may be elected without waiting out the followers' election
    /// timeout, so such a round renews nothing even if the transfer is
    /// then abandoned.
    transferring: bool,
    read: Option<PendingRead>,
}

/// A leader lease: reads are served from the leader's own state, without a
/// ReadIndex round, until `until`.
///
/// Every ReadIndex round that a quorum acknowledges extends the lease to the
/// round's start plus [`crate::RaftConfig::lease_duration`]. Followers refuse
/// to vote (raft-rs's check-quorum lease) for an election timeout after they
/// last heard from their leader, and a restarted node refuses votes for as
/// long after it starts (`StoreLoop::refuses_votes`), so no other leader can
/// be elected, and nothing committed without this leader, before the lease
/// ends. A leadership transfer bypasses that rule: the lease stops at once
/// when one begins (`epoch`), as it does when the membership changes (the
/// quorum that granted it may no longer be one).
#[derive(Default)]
struct Lease {
    term: u64,
    until: Option<Instant>,
    epoch: u64,
    /// When the last renewal-only round began.
    renewal_started: Option<Instant>,
}

/// What a read does once it may be served.
pub(crate) enum ReadOp {
    Get {
        key: Vec<u8>,
    },
    Scan {
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
    },
    /// A key's value at a timestamp (`latest`: see `MvccReader::latest`).
    MvccGet {
        key: Vec<u8>,
        ts: Timestamp,
        latest: bool,
    },
    /// The keys of a span at a timestamp (`latest`: as for `MvccGet`).
    MvccScan {
        start: Vec<u8>,
        end: Vec<u8>,
        ts: Timestamp,
        limit: usize,
        latest: bool,
    },
    /// The locks of a span from transactions that started at or below
    /// `max_ts`.
    ScanLocks {
        start: Vec<u8>,
        end: Vec<u8>,
        max_ts: Timestamp,
        limit: usize,
    },
}

impl ReadOp {
    /// The timestamp of an MVCC read.
    fn ts(&self) -> Option<Timestamp> {
        match self {
            ReadOp::MvccGet { ts, .. } | ReadOp::MvccScan { ts, .. } => Some(*ts),
            ReadOp::Get { .. } | ReadOp::Scan { .. } | ReadOp::ScanLocks { .. } => None,
        }
    }
}

/// The answer to a read.
#[derive(Debug)]
pub enum ReadResult {
    /// The value of a key, if present.
    Get(Option<Vec<u8>>),
    /// Keys of a scan, and where the next range starts if the scan's end lies
    /// beyond this range.
    Scan {
        /// The entries found, in key order.
        kvs: Vec<(Vec<u8>, Vec<u8>)>,
        /// The key to continue from, if the scan is not complete.
        resume_key: Option<Vec<u8>>,
    },
    /// A key's value at a timestamp, or the lock that hides it.
    MvccGet(std::result::Result<Option<Vec<u8>>, TxnError>),
    /// Keys of an MVCC scan, as for `Scan`, or the lock that hides them.
    MvccScan(std::result::Result<ScanChunk, TxnError>),
    /// Locks of a span, and the key to resume from.
    Locks(Vec<LockInfo>, Option<Vec<u8>>),
}

/// An MVCC reader over `snapshot`, a latest one if `latest`.
pub(crate) fn mvcc_reader(
    snapshot: &dyn tessera_storage::Snapshot,
    latest: bool,
) -> MvccReader<'_> {
    if latest {
        MvccReader::latest(snapshot)
    } else {
        MvccReader::new(snapshot)
    }
}

/// Entries of a scan, and the key to resume from if it is not complete.
pub type ScanChunk = (Vec<(Vec<u8>, Vec<u8>)>, Option<Vec<u8>>);

/// What an applied proposal answers: nothing for raw writes and membership
/// changes, the outcome of a transactional command.
pub type Applied = Option<TxnResult>;

/// Where a proposal's answer goes.
pub(crate) type ProposalCallback = oneshot::Sender<Result<Applied>>;

/// Clips a scan of `[start, end)` to the range of `descriptor`: the end to
/// scan to, and where the caller resumes (the range's end) if the scan goes
/// past it. Fails if `start` is not in the range.
fn clip_to_range(
    descriptor: &RangeDescriptor,
    start: &[u8],
    end: Vec<u8>,
) -> Result<(Vec<u8>, Option<Vec<u8>>)> {
    if !span_contains(&descriptor.start_key, &descriptor.end_key, start) {
        return Err(Error::RangeNotFound {
            key: start.to_vec(),
        });
    }
    let range_end = &descriptor.end_key;
    Ok(
        if !range_end.is_empty() && (end.is_empty() || end > *range_end) {
            (range_end.clone(), Some(range_end.clone()))
        } else {
            (end, None)
        },
    )
}

/// One step of a change to a range's membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaChange {
    /// Adds a non-voting replica on a node; it catches up by snapshot.
    AddLearner(NodeId),
    /// Makes a node's learner a voter.
    Promote(NodeId),
    /// Removes a node's replica (a learner, or a voter in one step).
    Remove(NodeId),
    /// Replaces a voter by a caught-up learner: promotes the learner on `add`
    /// and demotes the voter on `remove` in one joint configuration, where
    /// every decision needs a quorum of the old voters and one of the new.
    /// Refused while the learner is behind the leader's commit index
    /// (`Error::NotCaughtUp`), and for the leader's own replica.
    EnterJoint {
        /// The node whose learner becomes a voter.
        add: NodeId,
        /// The node whose voter leaves.
        remove: NodeId,
    },
    /// Leaves the joint configuration: the outgoing voters are removed.
    LeaveJoint,
}

/// A one-phase commit writes committed versions directly, with no lock
/// before it: it must commit above every MVCC read this range has served,
/// or a read could see the key change below its timestamp. The commit
/// timestamp is raised above the reads (it stays below the oracle's next
/// timestamp, as every read's timestamp came from it). Returns the commit
/// timestamp of a one-phase commit, with the gate's records held until the
/// proposal is recorded among them: no read passes the gate in between.
fn prepare_one_phase_commit<'g>(
    gate: &'g ReadGate,
    range_id: RangeId,
    term: u64,
    command: &mut RaftCommand,
) -> Result<Option<(Timestamp, RwLockWriteGuard<'g, GateState>)>> {
    use tessera_proto::txn::txn_command::Kind;
    let Some(raft_command::Kind::Txn(txn)) = &mut command.kind else {
        return Ok(None);
    };
    let Some(Kind::Prewrite(prewrite)) = &mut txn.kind else {
        return Ok(None);
    };
    if prewrite.commit_ts == 0 {
        return Ok(None);
    }
    let (commit_ts, records) = above_reads(gate, range_id, term, Timestamp(prewrite.commit_ts))?;
    prewrite.commit_ts = commit_ts.0;
    Ok(Some((commit_ts, records)))
}

/// `floor`, raised above every MVCC read this range has served in `term`,
/// with the gate's records held (see [`prepare_one_phase_commit`]); a
/// leader new to its term that has no timestamp from the oracle yet does
/// not know the reads of earlier terms, and fails with `NeedTimestamp`.
fn above_reads(
    gate: &ReadGate,
    range_id: RangeId,
    term: u64,
    floor: Timestamp,
) -> Result<(Timestamp, RwLockWriteGuard<'_, GateState>)> {
    let records = gate.records(term);
    if !records.reads.covers_earlier_terms {
        return Err(Error::NeedTimestamp { range_id, term });
    }
    let ts = floor.max(records.reads.max_ts().next());
    Ok((ts, records))
}

/// A prewrite of an asynchronous commit (see `Lock::min_commit_ts`) is
/// decided once it and its transaction's other prewrites are in place, at
/// the highest of their minimum commit timestamps: each must be above every
/// MVCC read its range has served, as a one-phase commit's timestamp is
/// (see [`prepare_one_phase_commit`]). Raises the prewrite's minimum above
/// them, and returns it with the gate's records held, for the caller to
/// record the proposal among the pending commits before any read passes: a
/// read at or above the minimum waits for the lock to apply, and then
/// meets it. (Applying the prewrite raises each lock's minimum above the
/// transaction's start and for-update timestamps too, which only makes a
/// read below it wait that needed not.)
pub(crate) fn prepare_async_commit<'g>(
    gate: &'g ReadGate,
    range_id: RangeId,
    term: u64,
    command: &mut tessera_proto::txn::TxnCommand,
) -> Result<Option<(Timestamp, RwLockWriteGuard<'g, GateState>)>> {
    use tessera_proto::txn::txn_command::Kind;
    let Some(Kind::Prewrite(prewrite)) = &mut command.kind else {
        return Ok(None);
    };
    if prewrite.min_commit_ts == 0 || prewrite.commit_ts != 0 {
        return Ok(None);
    }
    let floor = Timestamp(prewrite.min_commit_ts);
    let (min_commit_ts, records) = above_reads(gate, range_id, term, floor)?;
    prewrite.min_commit_ts = min_commit_ts.0;
    Ok(Some((min_commit_ts, records)))
}

/// The evaluated form of a transactional command with keys `keys` and
/// effects `effects` (see [`Replica::precheck`]); None if they hold
/// anything but puts and deletes in the transactional families.
fn evaluated_txn(keys: &[Vec<u8>], effects: WriteBatch) -> Option<raft_command::Kind> {
    let family = |cf: Cf| match cf {
        Cf::Lock => Some(TxnFamily::Lock),
        Cf::Write => Some(TxnFamily::Write),
        Cf::Default => Some(TxnFamily::Default),
        Cf::Raft | Cf::Raw => None,
    };
    let writes = effects
        .into_ops()
        .into_iter()
        .map(|op| match op {
            BatchOp::Put { cf, key, value } => Some(EvaluatedWrite {
                family: family(cf)? as i32,
                key,
                value,
                delete: false,
            }),
            BatchOp::Delete { cf, key } => Some(EvaluatedWrite {
                family: family(cf)? as i32,
                key,
                value: Vec::new(),
                delete: true,
            }),
            BatchOp::DeleteRange { .. } => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(raft_command::Kind::EvaluatedTxn(EvaluatedTxn {
        keys: keys.to_vec(),
        writes,
    }))
}

/// The locks a request for pessimistic locks evaluated to, if its effects
/// are nothing but lock records.
fn held_locks(effects: &WriteBatch) -> Option<Vec<(Vec<u8>, Lock)>> {
    effects
        .ops()
        .iter()
        .map(|op| match op {
            BatchOp::Put {
                cf: Cf::Lock,
                key,
                value,
            } => Lock::decode(value).ok().map(|lock| (key.clone(), lock)),
            _ => None,
        })
        .collect()
}

/// The keys whose lock records `effects` write or delete.
fn locks_written(effects: &WriteBatch) -> Vec<Vec<u8>> {
    effects
        .ops()
        .iter()
        .filter_map(|op| match op {
            BatchOp::Put {
                cf: Cf::Lock, key, ..
            }
            | BatchOp::Delete { cf: Cf::Lock, key } => Some(key.clone()),
            _ => None,
        })
        .collect()
}

/// The batch an `EvaluatedTxn`'s writes stand for.
fn evaluated_effects(writes: Vec<EvaluatedWrite>) -> std::result::Result<WriteBatch, String> {
    let mut effects = WriteBatch::new();
    for write in writes {
        let cf = match TxnFamily::try_from(write.family) {
            Ok(TxnFamily::Lock) => Cf::Lock,
            Ok(TxnFamily::Write) => Cf::Write,
            Ok(TxnFamily::Default) => Cf::Default,
            _ => return Err(format!("an evaluated write to family {}", write.family)),
        };
        if write.delete {
            effects.delete(cf, write.key);
        } else {
            effects.put(cf, write.key, write.value);
        }
    }
    Ok(effects)
}

struct Proposal {
    term: u64,
    /// Whom to answer; None for a request for pessimistic locks answered
    /// before it applied (pipelined), whose failure is only logged.
    callback: Option<ProposalCallback>,
    /// The outcome of a command the leader evaluated before proposing its
    /// effects: the answer once they apply.
    evaluated: Option<TxnResult>,
}

impl Proposal {
    fn answer(self, reply: Result<Applied>) {
        if let Some(callback) = self.callback {
            let _ = callback.send(reply);
        }
    }
}

/// An answer to deliver once the apply batch holding its effects is written.
pub(crate) type Reply = Box<dyn FnOnce() + Send>;

pub(crate) struct Replica {
    pub range_id: RangeId,
    pub replica_id: ReplicaId,
    pub raw: RawNode<ReplicaStorage>,
    /// The node of each peer replica: from the descriptor, and learned from
    /// incoming messages (a replica added after the descriptor was written).
    pub peers: HashMap<ReplicaId, NodeId>,
    proposals: BTreeMap<u64, Proposal>,
    /// ReadIndex rounds waiting for a quorum, by request context.
    reads_waiting: HashMap<u64, ReadRound>,
    /// Reads whose ReadIndex is known, waiting for apply to reach it.
    reads_ready: Vec<(u64, PendingRead)>,
    /// What reads under the lease check without the store loop, and the
    /// records of MVCC reads served and one-phase commits pending.
    pub gate: Arc<ReadGate>,
    /// This replica's lease while it leads (0 duration: no leases).
    lease: Lease,
    lease_duration: Duration,
    /// Ranges split off by entries applied since the store last looked: the
    /// new range's descriptor, whose state is staged in the apply batch. The
    /// store creates their replicas once the batch is written.
    pub splits: Vec<RangeDescriptor>,
    /// Ranges merged into this one by entries applied since the store last
    /// looked: the store drops its replicas of them (their state is
    /// removed in the apply batch).
    pub merged: Vec<RangeId>,
    /// The log index of the last `PrepareSplit` this replica proposed as
    /// leader (0: none).
    split_proposed_at: u64,
    /// The term in which this replica, as leader, last proposed a
    /// `PrepareSplit` (0: never, since it started).
    split_proposed_term: u64,
    /// The range's size as last measured (by the node's upkeep).
    pub size: Option<crate::store::RangeSize>,
    /// The bytes of the data writes this replica applied since it started
    /// (the size of their keys and values): a range grew by no more than
    /// this since it was last measured, which the upkeep uses to measure it
    /// again only when that may matter.
    pub written_bytes: u64,
    /// The keys of the transactional commands this leader proposed and has
    /// not applied, with the last such command's index (see
    /// [`Replica::precheck`]).
    in_flight: HashMap<Vec<u8>, InFlight>,
    /// The same keys by the index of the command that put them there.
    in_flight_by_index: BTreeMap<u64, Vec<Vec<u8>>>,
    /// The log index of the last command other than a transactional one
    /// (a split, a merge's step, a membership change, a GC batch...) this
    /// replica proposed as leader: until it applies, the range's span or
    /// state may change under a request, and no command is evaluated
    /// before it is proposed (see [`Replica::precheck`]).
    last_other_proposal: u64,
    /// Whether the leader tells the followers of each new commit index at
    /// once (see [`Replica::other_proposed`]) rather than with its next
    /// append or heartbeat.
    broadcasting_commits: bool,
}

/// A transactional command in flight on a key.
struct InFlight {
    /// Its log index.
    index: u64,
    /// The lock it takes, if it is a request for pessimistic locks that
    /// was answered before it applied: other transactions' requests for
    /// the key are refused as if the lock were on it.
    lock: Option<Lock>,
}

/// What a leader does with a transactional command before proposing it
/// (see [`Replica::precheck`]).
pub(crate) enum Precheck {
    /// Its answer, without a Raft round.
    Answered(TxnResult),
    /// A request for pessimistic locks that succeeds: hold these locks in
    /// the leader's memory and answer at once with this result (the
    /// values it read, if it asked), with no log entry (see
    /// [`Replica::hold`]).
    Hold(TxnResult, Vec<(Vec<u8>, Lock)>),
    /// A request for pessimistic locks that may succeed: propose its
    /// effects, evaluated here, and answer at once with this result.
    Pipeline(TxnResult, WriteBatch),
    /// Propose its effects, evaluated here, and answer with this result
    /// once they have applied.
    Evaluated(TxnResult, WriteBatch),
    /// Propose it and answer once it has applied.
    Propose,
}

impl Drop for Replica {
    fn drop(&mut self) {
        // A replica removed from its store serves no more reads.
        self.gate.close();
    }
}

impl Replica {
    pub fn new(
        replica_id: ReplicaId,
        raw: RawNode<ReplicaStorage>,
        lease_duration: Duration,
    ) -> Self {
        let mut replica = Self {
            range_id: raw.store().range_id(),
            replica_id,
            raw,
            peers: HashMap::new(),
            proposals: BTreeMap::new(),
            reads_waiting: HashMap::new(),
            reads_ready: Vec::new(),
            gate: Arc::new(ReadGate::new(Instant::now())),
            lease: Lease::default(),
            lease_duration,
            splits: Vec::new(),
            merged: Vec::new(),
            split_proposed_at: 0,
            split_proposed_term: 0,
            size: None,
            written_bytes: 0,
            in_flight: HashMap::new(),
            in_flight_by_index: BTreeMap::new(),
            last_other_proposal: 0,
            broadcasting_commits: false,
        };
        replica.refresh_peers();
        replica
    }

    pub fn descriptor(&self) -> Option<&RangeDescriptor> {
        self.raw.store().descriptor.as_ref()
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.descriptor()
            .is_some_and(|d| span_contains(&d.start_key, &d.end_key, key))
    }

    pub fn refresh_peers(&mut self) {
        if let Some(descriptor) = self.raw.store().descriptor.clone() {
            for replica in &descriptor.replicas {
                self.peers.insert(replica.replica_id, replica.node_id);
            }
        }
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The node of the leader this replica knows of.
    pub fn leader_node(&self) -> Option<NodeId> {
        match self.raw.raft.leader_id {
            0 => None,
            id => self.peers.get(&id).copied(),
        }
    }

    pub fn not_leader(&self) -> Error {
        Error::NotLeader {
            range_id: self.range_id,
            leader: self.leader_node(),
        }
    }

    /// Proposes a command; `callback` is answered when it applies.
    pub fn propose(&mut self, command: RaftCommand, callback: ProposalCallback) {
        match self.append(command) {
            Ok(index) => self.track_proposal(index, callback),
            Err(err) => {
                let _ = callback.send(Err(err));
            }
        }
    }

    /// Appends a command to the leader's log; returns its index.
    fn append(&mut self, mut command: RaftCommand) -> Result<u64> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        let releases = matches!(
            command.kind,
            Some(raft_command::Kind::Unfreeze(_) | raft_command::Kind::Freeze(_))
        );
        if self.raw.store().apply.frozen && !releases {
            return Err(Error::Frozen {
                range_id: self.range_id,
            });
        }
        // A GC batch names no keys, yet changes versions and the GC
        // threshold: it counts as another kind of command.
        let transactional = match &command.kind {
            Some(raft_command::Kind::Txn(txn)) => {
                !matches!(txn.kind, Some(tessera_proto::txn::txn_command::Kind::Gc(_)))
            }
            Some(raft_command::Kind::EvaluatedTxn(_)) => true,
            _ => false,
        };
        // A split or a merge's step may move or change the range under the
        // locks held in memory: they go first. (A GC batch leaves locks
        // alone; a membership change, proposed apart, leaves the leader.)
        let gc = matches!(
            &command.kind,
            Some(raft_command::Kind::Txn(txn))
                if matches!(txn.kind, Some(tessera_proto::txn::txn_command::Kind::Gc(_)))
        );
        if !transactional && !gc {
            self.log_held_locks(None);
        }
        let gate = self.gate.clone();
        let commit_ts =
            prepare_one_phase_commit(&gate, self.range_id, self.raw.raft.term, &mut command)?;
        self.raw
            .propose(Vec::new(), command.encode_to_vec())
            .map_err(|err| self.refusal(err))?;
        let index = self.raw.raft.raft_log.last_index();
        if !transactional {
            self.other_proposed(index);
        }
        if let Some((commit_ts, mut records)) = commit_ts {
            records.pending_commits.insert(index, commit_ts);
        }
        Ok(index)
    }

    /// Proposes a transactional command, recording its keys as in flight
    /// until it applies. A request for pessimistic locks that
    /// [`Self::check_lock_request`] found may be pipelined is answered as soon as
    /// it is in the log; anything else once it applies. `check` is what
    /// [`Self::precheck`] made of it: the effects it evaluated, if any, are
    /// proposed in place of the command. Returns the proposal's log index,
    /// if it was proposed.
    pub fn propose_txn(
        &mut self,
        command: tessera_proto::txn::TxnCommand,
        proposal_id: u64,
        check: Precheck,
        callback: ProposalCallback,
    ) -> Option<u64> {
        use tessera_proto::txn::txn_command::Kind;
        if let Precheck::Hold(result, locks) = check {
            self.hold(locks);
            let _ = callback.send(Ok(Some(result)));
            return None;
        }
        let pipelined = matches!(check, Precheck::Pipeline(..));
        let lock = match &command.kind {
            Some(Kind::AcquirePessimisticLocks(request)) if pipelined => Some(Lock {
                kind: LockKind::Pessimistic,
                primary: request.primary.clone(),
                start_ts: Timestamp(request.start_ts),
                ttl_ms: request.ttl_ms,
                for_update_ts: Timestamp(request.for_update_ts),
                short_value: None,
                min_commit_ts: Timestamp::ZERO,
                secondaries: Vec::new(),
            }),
            _ => None,
        };
        // (A GC pass names no keys: it changes no lock and no version a
        // check looks at.)
        let keys: Vec<Vec<u8>> = crate::txn::command_keys(&command)
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        // The keys whose lock records evaluated effects write: they replace
        // the locks the transaction holds in memory on them.
        let mut replaced = Vec::new();
        let (kind, evaluated) = match check {
            Precheck::Pipeline(result, effects) => {
                replaced = locks_written(&effects);
                (evaluated_txn(&keys, effects), Some(result))
            }
            Precheck::Evaluated(result, effects) => {
                replaced = locks_written(&effects);
                (evaluated_txn(&keys, effects), Some(result))
            }
            Precheck::Answered(_) | Precheck::Hold(..) | Precheck::Propose => (None, None),
        };
        let owner = match (&kind, &command.kind) {
            (None, _) => None,
            (Some(_), Some(Kind::Prewrite(p))) => Some(Timestamp(p.start_ts)),
            (Some(_), Some(Kind::Commit(c))) => Some(Timestamp(c.start_ts)),
            (Some(_), Some(Kind::AcquirePessimisticLocks(l))) => Some(Timestamp(l.start_ts)),
            (Some(_), _) => None,
        };
        let replaced = self.settle_held(&keys, owner.map(|owner| (owner, replaced.as_slice())));
        // Effects that cannot travel as evaluated writes go as the command.
        let (kind, evaluated) = match kind {
            Some(kind) => (kind, evaluated),
            None => (raft_command::Kind::Txn(command), None),
        };
        let index = match self.append(RaftCommand {
            proposal_id,
            kind: Some(kind),
        }) {
            Ok(index) => {
                let mut held = self.gate.held_locks.lock();
                for key in &replaced {
                    held.remove(key);
                }
                index
            }
            Err(err) => {
                let _ = callback.send(Err(err));
                return None;
            }
        };
        self.mark_in_flight(index, keys.into_iter().map(|key| (key, lock.clone())));
        if lock.is_some() {
            // The apply's outcome goes nowhere: a failure shows at prewrite.
            self.track(index, None, None);
            let _ = callback.send(Ok(Some(evaluated.unwrap_or_default())));
        } else {
            self.track(index, Some(callback), evaluated);
        }
        Some(index)
    }

    /// Checks a transactional command on this leader before it is
    /// proposed, to spare it the Raft round where the applied state already
    /// gives the answer: a request for pessimistic locks (see
    /// [`Self::check_lock_request`]), or a status check or lock resolution
    /// that would change nothing (see [`Self::check_no_op`]); and, for a
    /// lock request, a prewrite or a commit, to propose the writes it
    /// evaluated here rather than the command (see [`Self::evaluate`]).
    /// Everything else is proposed as the command.
    pub fn precheck(&self, command: &tessera_proto::txn::TxnCommand) -> Precheck {
        use tessera_proto::txn::txn_command::Kind;
        let Some(descriptor) = self.descriptor() else {
            return Precheck::Propose;
        };
        if !self.is_leader() || self.raw.store().apply.frozen {
            return Precheck::Propose;
        }
        match &command.kind {
            Some(Kind::AcquirePessimisticLocks(request)) => {
                self.check_lock_request(command, request, descriptor)
            }
            // (A prewrite with a commit timestamp is a one-phase commit,
            // whose timestamp the proposal itself may raise.)
            Some(Kind::Prewrite(prewrite)) if prewrite.commit_ts == 0 => {
                self.evaluate(command, descriptor)
            }
            Some(Kind::Commit(_)) => self.evaluate(command, descriptor),
            Some(
                Kind::CheckTxnStatus(_) | Kind::ResolveLocks(_) | Kind::CheckSecondaryLocks(_),
            ) => self.check_no_op(command, descriptor),
            // A batch of a garbage collection pass whose safe point the
            // range's threshold has reached (the pass's first batch raised
            // it) and that finds nothing to remove is answered here: without
            // this every pass sent every write record of every range through
            // the log, to be scanned again by each replica.
            Some(Kind::Gc(gc)) if self.raw.store().apply.gc_threshold >= gc.safe_point => {
                self.check_no_op(command, descriptor)
            }
            _ => Precheck::Propose,
        }
    }

    /// A request for pessimistic locks that would fail on the applied
    /// state, or on a key another transaction's lock is in flight for, is
    /// answered at once without a Raft round: another transaction's lock on
    /// a key (the caller waits and asks again), or a write committed after
    /// the request's snapshot (the statement runs again on a newer one).
    /// Either held at a moment while the request was under way, which is
    /// all a failure reports. Under contention on a row this saves the
    /// round of every attempt that waits.
    ///
    /// A request that passes is proposed and, once this leader has applied
    /// every entry of earlier terms, answered at once (TiKV's pipelined
    /// pessimistic locks), unless a command of another kind this leader
    /// proposed (a split, say, which may move the key out of the range)
    /// has yet to apply: its apply checks again. A pipelined request is
    /// proposed as the lock records this check wrote. If the lock does not land
    /// all the same (the entry is lost with the leadership), the
    /// transaction's prewrite of the key finds it missing, and locks the
    /// key itself only if nothing was committed there since the transaction
    /// started. A transaction that wrote nothing commits without its locks,
    /// having read what it read at its snapshot.
    fn check_lock_request(
        &self,
        command: &tessera_proto::txn::TxnCommand,
        request: &tessera_proto::txn::AcquirePessimisticLocks,
        descriptor: &RangeDescriptor,
    ) -> Precheck {
        let start_ts = Timestamp(request.start_ts);
        let mut writes_in_flight = false;
        for key in &request.keys {
            // Another transaction's lock, held in memory or in flight.
            let held = self.gate.held_locks.lock().get(key).cloned();
            let in_flight = self.in_flight.get(key);
            writes_in_flight |= in_flight.is_some_and(|f| f.lock.is_none());
            let other = held
                .or_else(|| in_flight.and_then(|f| f.lock.clone()))
                .filter(|lock| lock.start_ts != start_ts);
            if let Some(lock) = other {
                return Precheck::Answered(TxnResult {
                    error: Some(crate::txn::txn_error(MvccError::KeyIsLocked {
                        key: key.clone(),
                        lock: Box::new(lock),
                    })),
                    ..TxnResult::default()
                });
            }
        }
        let Some((result, effects)) = self.execute_on_applied(command, descriptor) else {
            return Precheck::Propose;
        };
        if result.error.is_some() {
            return Precheck::Answered(result);
        }
        // Only the apply can tell how a command in flight on a key (or an
        // entry of an earlier leader, or a split in flight) leaves it.
        if writes_in_flight || !self.applied_state_is_final() {
            return Precheck::Propose;
        }
        // (A leadership transfer under way logged the held locks when it
        // began, and the new leader must see these too.)
        let in_flight = request
            .keys
            .iter()
            .any(|key| self.in_flight.contains_key(key))
            || self.raw.raft.lead_transferee.is_some();
        if effects.is_empty() {
            // Every key is locked already, or (a read) holds no value.
            return Precheck::Answered(result);
        }
        match held_locks(&effects) {
            Some(locks) if !in_flight => Precheck::Hold(result, locks),
            _ => Precheck::Pipeline(result, effects),
        }
    }

    /// Keeps pessimistic locks in this leader's memory instead of its log
    /// (TiKV's in-memory pessimistic locks): a lock that a transaction takes
    /// at statement time and that its prewrite replaces costs no log entry,
    /// written and synced on every replica. Every check this leader makes
    /// sees them (other transactions' lock requests and prewrites, status
    /// checks, lock waiters), and before anything else could miss them they
    /// go into the log (see [`Self::settle_held`] and
    /// [`Self::log_held_locks`]). Lost with the leadership, a lock shows as
    /// missing at its transaction's prewrite, as a pipelined lock whose
    /// entry was lost does.
    fn hold(&mut self, locks: Vec<(Vec<u8>, Lock)>) {
        self.gate.held_locks.lock().extend(locks);
    }

    /// Before a command naming `keys` is proposed: the locks held in memory
    /// on them that its effects replace (`replacing`: the transaction whose
    /// command was evaluated over them, and the keys whose lock records
    /// the effects write) are returned, for the caller to drop once the
    /// command is in the log; the others are logged ahead of it, where the
    /// replicas' apply of the command will see them.
    fn settle_held(
        &mut self,
        keys: &[Vec<u8>],
        replacing: Option<(Timestamp, &[Vec<u8>])>,
    ) -> Vec<Vec<u8>> {
        let (replaced, to_log) = {
            let held = self.gate.held_locks.lock();
            if held.is_empty() {
                return Vec::new();
            }
            let (mut replaced, mut to_log) = (Vec::new(), Vec::new());
            for key in keys {
                match held.get(key) {
                    Some(lock)
                        if replacing.is_some_and(|(owner, written)| {
                            lock.start_ts == owner && written.contains(key)
                        }) =>
                    {
                        replaced.push(key.clone());
                    }
                    Some(_) => to_log.push(key.clone()),
                    None => {}
                }
            }
            (replaced, to_log)
        };
        if !to_log.is_empty() {
            self.log_held_locks(Some(&to_log));
        }
        replaced
    }

    /// Proposes the locks held in memory on `keys` (None: all of them) as
    /// lock records, tracked in flight as a pipelined request's are.
    fn log_held_locks(&mut self, keys: Option<&[Vec<u8>]>) {
        let locks: Vec<(Vec<u8>, Lock)> = {
            let mut held = self.gate.held_locks.lock();
            match keys {
                None => held.drain().collect(),
                Some(keys) => keys
                    .iter()
                    .filter_map(|key| held.remove_entry(key))
                    .collect(),
            }
        };
        if locks.is_empty() {
            return;
        }
        let mut effects = WriteBatch::new();
        for (key, lock) in &locks {
            effects.put(Cf::Lock, key.clone(), lock.encode());
        }
        let keys: Vec<Vec<u8>> = locks.iter().map(|(key, _)| key.clone()).collect();
        let Some(kind) = evaluated_txn(&keys, effects) else {
            return;
        };
        let index = match self.append(RaftCommand {
            proposal_id: 0,
            kind: Some(kind),
        }) {
            Ok(index) => index,
            Err(err) => {
                // (A leadership transfer under way drops proposals: if it
                // fails, this leader holds them still.)
                tracing::debug!(
                    range_id = self.range_id,
                    %err,
                    locks = locks.len(),
                    "locks held in memory were not logged"
                );
                self.gate.held_locks.lock().extend(locks);
                return;
            }
        };
        self.mark_in_flight(
            index,
            locks.into_iter().map(|(key, lock)| (key, Some(lock))),
        );
        self.track(index, None, None);
    }

    /// Records the keys of the transactional command at `index` as in
    /// flight until it applies, each with the lock it takes, if it was
    /// answered as taken before it applied.
    fn mark_in_flight(&mut self, index: u64, keys: impl Iterator<Item = (Vec<u8>, Option<Lock>)>) {
        let mut indexed = Vec::new();
        for (key, lock) in keys {
            indexed.push(key.clone());
            self.in_flight.insert(key, InFlight { index, lock });
        }
        if !indexed.is_empty() {
            self.in_flight_by_index.insert(index, indexed);
        }
    }

    /// Records a command other than a transactional one proposed at
    /// `index`. Until it applies here, the followers hear of each new
    /// commit index at once: the steps of a split, a merge or a membership
    /// change wait on the followers' applying them (a new range's replicas,
    /// a joint configuration), which the next heartbeat would hold up.
    fn other_proposed(&mut self, index: u64) {
        self.last_other_proposal = index;
        if !self.broadcasting_commits {
            self.raw.skip_bcast_commit(false);
            self.broadcasting_commits = true;
        }
    }

    /// Goes back to telling the followers of new commit indexes with the
    /// next append or heartbeat, once the commands other than
    /// transactional ones this leader proposed have applied (see
    /// [`Self::other_proposed`]).
    pub fn settle_commit_broadcast(&mut self) {
        if self.broadcasting_commits
            && self.raw.store().apply.applied_index >= self.last_other_proposal
        {
            self.raw.skip_bcast_commit(true);
            self.broadcasting_commits = false;
        }
    }

    /// Whether every entry this leader's log holds beyond its applied
    /// index is a transactional command it proposed itself (and tracks in
    /// `in_flight`): it has applied every entry of earlier terms, and no
    /// split, merge step, membership change or GC batch of its own is
    /// waiting to apply. Then a key that nothing in flight names is, when a
    /// command proposed now applies, as the applied state has it now, and
    /// so is the range's span and GC threshold.
    fn applied_state_is_final(&self) -> bool {
        let apply = &self.raw.store().apply;
        apply.applied_term == self.raw.raft.term && apply.applied_index >= self.last_other_proposal
    }

    /// A prewrite or commit whose keys nothing in flight names, on a
    /// leader whose applied state is final for them (see
    /// [`Self::applied_state_is_final`]), is evaluated here, once: its
    /// effects are what it would write on applying, and they are what is
    /// proposed, for every replica to write as they are (as TiKV and
    /// CockroachDB replicate evaluated writes). The followers no longer
    /// walk the keys' versions and locks again. One that fails here, or
    /// that something in flight may change, is proposed as a command, as
    /// before.
    fn evaluate(
        &self,
        command: &tessera_proto::txn::TxnCommand,
        descriptor: &RangeDescriptor,
    ) -> Precheck {
        if !self.applied_state_is_final() || self.names_a_key_in_flight(command) {
            return Precheck::Propose;
        }
        match self.execute_on_applied(command, descriptor) {
            Some((result, effects)) if result.error.is_none() => {
                Precheck::Evaluated(result, effects)
            }
            _ => Precheck::Propose,
        }
    }

    /// Whether a transactional command this leader proposed and has not
    /// applied names one of `command`'s keys.
    fn names_a_key_in_flight(&self, command: &tessera_proto::txn::TxnCommand) -> bool {
        crate::txn::command_keys(command)
            .iter()
            .any(|key| self.in_flight.contains_key(*key))
    }

    /// A transaction status check, lock resolution or garbage collection
    /// batch whose outcome on the applied state writes nothing (the
    /// transaction is still alive, or over and its lock already resolved;
    /// no version to remove) is answered from that state, if
    /// nothing in flight on this leader may change its keys and it has
    /// applied every entry of earlier terms. The answer is what the
    /// command would have found on applying at that moment; a waiter asks
    /// again later. Each lock wait used to cost a Raft write for this.
    fn check_no_op(
        &self,
        command: &tessera_proto::txn::TxnCommand,
        descriptor: &RangeDescriptor,
    ) -> Precheck {
        if self.raw.store().apply.applied_term != self.raw.raft.term
            || self.names_a_key_in_flight(command)
        {
            return Precheck::Propose;
        }
        match self.execute_on_applied(command, descriptor) {
            Some((result, effects)) if effects.is_empty() => Precheck::Answered(result),
            _ => Precheck::Propose,
        }
    }

    /// Runs `command` against the applied state, as its apply would;
    /// `None` if the engine failed (the apply will report it).
    fn execute_on_applied(
        &self,
        command: &tessera_proto::txn::TxnCommand,
        descriptor: &RangeDescriptor,
    ) -> Option<(TxnResult, WriteBatch)> {
        let snapshot = self.raw.store().engine().snapshot();
        let gc_threshold = Timestamp(self.raw.store().apply.gc_threshold);
        let span = (
            descriptor.start_key.as_slice(),
            descriptor.end_key.as_slice(),
        );
        // The locks held in memory on its keys, as if they were records.
        let mut held = WriteBatch::new();
        {
            let locks = self.gate.held_locks.lock();
            if !locks.is_empty() {
                for key in crate::txn::command_keys(command) {
                    if let Some(lock) = locks.get(key) {
                        held.put(Cf::Lock, key.to_vec(), lock.encode());
                    }
                }
            }
        }
        if held.is_empty() {
            return crate::txn::execute(command.clone(), snapshot.as_ref(), span, gc_threshold)
                .ok();
        }
        let mut view = Overlay::new(snapshot);
        view.apply(&held);
        crate::txn::execute(command.clone(), &view, span, gc_threshold).ok()
    }

    /// Records a timestamp taken from the oracle after this leader answered
    /// `NeedTimestamp` in `term`: it is above every read served before the
    /// term began (each read's timestamp came from the oracle before its
    /// leader confirmed its leadership, which was before this term). Ignored
    /// if the term has changed since.
    pub fn observe_timestamp(&mut self, ts: Timestamp, term: u64) {
        let mut records = self.gate.records(self.raw.raft.term);
        if records.reads.term == term {
            records.reads.raise(ts);
            records.reads.covers_earlier_terms = true;
        }
    }

    /// The error for a proposal raft-rs refused: not leader, a leadership
    /// transfer under way, or a conf change already pending.
    fn refusal(&self, err: raft::Error) -> Error {
        match err {
            raft::Error::ProposalDropped if !self.is_leader() => self.not_leader(),
            raft::Error::ProposalDropped => Error::ProposalDropped,
            other => Error::Raft(other),
        }
    }

    /// Logs a pipelined lock request (at `index`) that did not take its
    /// locks: its transaction learns of it only at its prewrite.
    fn report_lost_lock(&self, index: u64, reply: &Result<Option<TxnResult>>) {
        let why = match reply {
            Ok(Some(TxnResult { error: None, .. })) | Ok(None) => return,
            Ok(Some(TxnResult {
                error: Some(err), ..
            })) => format!("{:?}", err.kind),
            Err(err) => err.to_string(),
        };
        tracing::warn!(
            range_id = self.range_id,
            index,
            why,
            "a pipelined lock request did not take its locks"
        );
    }

    /// Records a proposal raft-rs accepted at `index`, to answer when its
    /// entry applies.
    fn track_proposal(&mut self, index: u64, callback: ProposalCallback) {
        self.track(index, Some(callback), None);
    }

    /// Records a proposal at `index`, with no one to answer if it was a
    /// lock request answered already, and the answer to give if its
    /// effects were evaluated before it was proposed.
    fn track(
        &mut self,
        index: u64,
        callback: Option<ProposalCallback>,
        evaluated: Option<TxnResult>,
    ) {
        let term = self.raw.raft.term;
        let proposal = Proposal {
            term,
            callback,
            evaluated,
        };
        if let Some(old) = self.proposals.insert(index, proposal) {
            old.answer(Err(Error::ProposalDropped));
        }
    }

    /// Answers every waiting proposal and read with `err()`: the replica is
    /// going away.
    pub fn fail_pending(&mut self, err: impl Fn() -> Error) {
        for (_, proposal) in std::mem::take(&mut self.proposals) {
            proposal.answer(Err(err()));
        }
        for (_, round) in std::mem::take(&mut self.reads_waiting) {
            if let Some(read) = round.read {
                let _ = read.callback.send(Err(err()));
            }
        }
        for (_, read) in std::mem::take(&mut self.reads_ready) {
            let _ = read.callback.send(Err(err()));
        }
    }

    /// Starts a linearizable read: served at once under a valid lease (or
    /// once the leader has applied its commit index), else after a ReadIndex
    /// round. `read_id` names the round (a lease renewal, if the lease
    /// serves the read).
    pub fn read(
        &mut self,
        read_id: u64,
        mut read: PendingRead,
        now: Instant,
        engine: &Arc<dyn Engine>,
    ) {
        if !self.is_leader() {
            let _ = read.callback.send(Err(self.not_leader()));
            return;
        }
        if let Some(ts) = read.op.ts() {
            // One-phase commits proposed from now on commit above `ts`;
            // those already proposed at or below it must apply first.
            let records = self.gate.records(self.raw.raft.term);
            records.reads.raise(ts);
            read.min_applied = records
                .pending_commits
                .iter()
                .filter(|(_, commit_ts)| **commit_ts <= ts)
                .map(|(index, _)| *index)
                .max()
                .unwrap_or(0);
        }
        if !self.holds_lease(now) {
            self.start_read_round(read_id, Some(read), now);
            return;
        }
        if self.lease_wants_renewal(now) {
            self.start_read_round(read_id, None, now);
        }
        // No other leader can have committed anything: this leader's commit
        // index covers every write acknowledged so far.
        let index = self.raw.raft.raft_log.committed.max(read.min_applied);
        if index <= self.raw.store().apply.applied_index {
            let result = self.execute_read(engine, read.op);
            let _ = read.callback.send(result);
        } else {
            self.reads_ready.push((index, read));
        }
    }

    /// Whether this leader may serve reads from its own state now.
    fn holds_lease(&self, now: Instant) -> bool {
        self.is_leader()
            && self.lease.term == self.raw.raft.term
            && self.lease.until.is_some_and(|until| now < until)
            && self.raw.raft.lead_transferee.is_none()
            && self.raw.raft.commit_to_current_term()
    }

    /// Whether a held lease has run half its length, with no renewal begun
    /// in the last quarter of it: a busy range renews ahead of expiry.
    fn lease_wants_renewal(&self, now: Instant) -> bool {
        let Some(until) = self.lease.until else {
            return false;
        };
        let half_left = until.saturating_duration_since(now) < self.lease_duration / 2;
        half_left && !self.renewal_under_way(now)
    }

    /// Whether a renewal-only round began in the last quarter of a lease.
    fn renewal_under_way(&self, now: Instant) -> bool {
        self.lease
            .renewal_started
            .is_some_and(|started| now.saturating_duration_since(started) < self.lease_duration / 4)
    }

    fn start_read_round(&mut self, read_id: u64, read: Option<PendingRead>, now: Instant) {
        if read.is_none() {
            self.lease.renewal_started = Some(now);
        }
        self.raw.read_index(read_id.to_be_bytes().to_vec());
        self.reads_waiting.insert(
            read_id,
            ReadRound {
                started: now,
                term: self.raw.raft.term,
                epoch: self.lease.epoch,
                transferring: self.raw.raft.lead_transferee.is_some(),
                read,
            },
        );
    }

    /// Ends the lease at once: a leadership transfer began (the target may
    /// be elected without waiting out the followers' election timeout), or
    /// the membership changed. Rounds begun before renew nothing.
    fn end_lease(&mut self) {
        self.lease.epoch += 1;
        self.lease.until = None;
        self.gate.close();
    }

    /// Records confirmed ReadIndexes from a `Ready`: each extends the lease
    /// from the start of its round.
    pub fn on_read_states(&mut self, states: Vec<raft::ReadState>) {
        for state in states {
            let Ok(id) = <[u8; 8]>::try_from(state.request_ctx.as_slice()) else {
                continue;
            };
            let Some(round) = self.reads_waiting.remove(&u64::from_be_bytes(id)) else {
                continue;
            };
            let term = self.raw.raft.term;
            if self.lease_duration > Duration::ZERO
                && round.term == term
                && round.epoch == self.lease.epoch
                && !round.transferring
                && self.is_leader()
            {
                let until = round.started + self.lease_duration;
                if self.lease.term != term {
                    self.lease.term = term;
                    self.lease.until = None;
                }
                self.lease.until = Some(self.lease.until.map_or(until, |u| u.max(until)));
            }
            if let Some(read) = round.read {
                let index = state.index.max(read.min_applied);
                self.reads_ready.push((index, read));
            }
        }
    }

    /// Fails every read still waiting: this replica is no longer leader, and
    /// raft-rs drops the ReadIndex requests of a deposed leader.
    pub fn on_lost_leadership(&mut self) {
        let err_leader = self.leader_node();
        self.lease.until = None;
        self.gate.close();
        self.in_flight.clear();
        self.in_flight_by_index.clear();
        let lost = std::mem::take(&mut *self.gate.held_locks.lock());
        if !lost.is_empty() {
            tracing::info!(
                range_id = self.range_id,
                locks = lost.len(),
                "locks held in memory are lost with the leadership"
            );
        }
        for (_, round) in self.reads_waiting.drain() {
            if let Some(read) = round.read {
                let _ = read.callback.send(Err(Error::NotLeader {
                    range_id: self.range_id,
                    leader: err_leader,
                }));
            }
        }
    }

    /// Serves the reads whose ReadIndex has been applied.
    pub fn serve_reads(&mut self, engine: &Arc<dyn Engine>) {
        let applied = self.raw.store().apply.applied_index;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reads_ready)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.reads_ready = waiting;
        for (_, read) in ready {
            let result = self.execute_read(engine, read.op);
            let _ = read.callback.send(result);
        }
    }

    fn execute_read(&self, engine: &Arc<dyn Engine>, op: ReadOp) -> Result<ReadResult> {
        let Some(descriptor) = self.descriptor() else {
            return Err(self.not_leader());
        };
        if self.raw.store().apply.frozen {
            // Writes to this span may be committing in the merged range.
            return Err(Error::Frozen {
                range_id: self.range_id,
            });
        }
        let gc_threshold = Timestamp(self.raw.store().apply.gc_threshold);
        match op {
            ReadOp::Get { key } => {
                if !span_contains(&descriptor.start_key, &descriptor.end_key, &key) {
                    return Err(Error::RangeNotFound { key });
                }
                Ok(ReadResult::Get(engine.get(Cf::Raw, &key)?))
            }
            ReadOp::Scan { start, end, limit } => {
                let (scan_end, resume_key) = clip_to_range(descriptor, &start, end)?;
                let mut kvs = Vec::new();
                let mut resume_key = resume_key;
                for item in engine.scan(Cf::Raw, &start, &scan_end) {
                    let (key, value) = item?;
                    if kvs.len() == limit {
                        resume_key = Some(key);
                        break;
                    }
                    kvs.push((key, value));
                }
                Ok(ReadResult::Scan { kvs, resume_key })
            }
            ReadOp::MvccGet { key, ts, latest } => {
                if !span_contains(&descriptor.start_key, &descriptor.end_key, &key) {
                    return Err(Error::RangeNotFound { key });
                }
                if ts < gc_threshold {
                    return Ok(ReadResult::MvccGet(Err(crate::txn::too_old(
                        ts,
                        gc_threshold,
                    ))));
                }
                let snapshot = engine.snapshot();
                match mvcc_reader(snapshot.as_ref(), latest).get(&key, ts) {
                    Ok(value) => Ok(ReadResult::MvccGet(Ok(value))),
                    Err(MvccError::Storage(err)) => Err(err.into()),
                    Err(err) => Ok(ReadResult::MvccGet(Err(crate::txn::txn_error(err)))),
                }
            }
            ReadOp::ScanLocks {
                start,
                end,
                max_ts,
                limit,
            } => {
                let (scan_end, past_range) = clip_to_range(descriptor, &start, end)?;
                let snapshot = engine.snapshot();
                let reader = MvccReader::new(snapshot.as_ref());
                // One more than asked, to know whether the span has more.
                let mut locks = reader.locks(&start, &scan_end, max_ts, limit.saturating_add(1))?;
                let resume_key = if locks.len() > limit {
                    locks.pop().map(|(key, _)| key)
                } else {
                    past_range
                };
                let locks = locks
                    .into_iter()
                    .map(|(key, lock)| crate::txn::lock_info(key, &lock))
                    .collect();
                Ok(ReadResult::Locks(locks, resume_key))
            }
            ReadOp::MvccScan {
                start,
                end,
                ts,
                limit,
                latest,
            } => {
                let (scan_end, past_range) = clip_to_range(descriptor, &start, end)?;
                if ts < gc_threshold {
                    return Ok(ReadResult::MvccScan(Err(crate::txn::too_old(
                        ts,
                        gc_threshold,
                    ))));
                }
                let snapshot = engine.snapshot();
                match mvcc_reader(snapshot.as_ref(), latest).scan(&start, &scan_end, ts, limit) {
                    Ok((kvs, more)) => {
                        let resume_key = if more {
                            kvs.last().map(|(key, _)| {
                                let mut next = key.clone();
                                next.push(0);
                                next
                            })
                        } else {
                            past_range
                        };
                        Ok(ReadResult::MvccScan(Ok((kvs, resume_key))))
                    }
                    Err(MvccError::Storage(err)) => Err(err.into()),
                    Err(err) => Ok(ReadResult::MvccScan(Err(crate::txn::txn_error(err)))),
                }
            }
        }
    }

    /// Stages the effects of committed entries into `batch` (with the apply
    /// state), and returns the answers to give once `batch` is written.
    pub fn stage_apply(
        &mut self,
        entries: Vec<Entry>,
        batch: &mut WriteBatch,
    ) -> Result<Vec<Reply>> {
        let mut replies: Vec<Reply> = Vec::new();
        if entries.is_empty() {
            return Ok(replies);
        }
        // Transactional commands read the data: through this overlay they
        // see the effects of the entries staged before them.
        let mut view: Option<Overlay> = None;
        for entry in entries {
            let applied = self.raw.store().apply.applied_index;
            if entry.index <= applied {
                continue;
            }
            assert_eq!(
                entry.index,
                applied + 1,
                "range {}: applying entry {} after {applied}",
                self.range_id,
                entry.index
            );
            let result = match entry.get_entry_type() {
                EntryType::EntryNormal => self.apply_normal(&entry, batch, &mut view)?,
                EntryType::EntryConfChange => {
                    let cc: ConfChange = protobuf::Message::parse_from_bytes(&entry.data)
                        .map_err(|e| Error::InvalidInput(format!("conf change: {e}")))?;
                    self.apply_conf_change(cc, batch)
                        .map(|()| None)
                        .map_err(Error::InvalidInput)
                }
                EntryType::EntryConfChangeV2 => {
                    let cc: ConfChangeV2 = protobuf::Message::parse_from_bytes(&entry.data)
                        .map_err(|e| Error::InvalidInput(format!("conf change: {e}")))?;
                    let result = self.apply_conf_change(cc, batch);
                    if result.is_ok() && !entry.context.is_empty() {
                        self.apply_descriptor(&entry.context, batch)?;
                    }
                    result.map(|()| None).map_err(Error::InvalidInput)
                }
            };
            let storage = self.raw.mut_store();
            storage.apply.applied_index = entry.index;
            storage.apply.applied_term = entry.term;
            // Answer every proposal up to this index: earlier ones were
            // overwritten by another leader's log.
            let mut result = Some(result);
            while let Some(entry_proposal) = self.proposals.first_entry() {
                if *entry_proposal.key() > entry.index {
                    break;
                }
                let (index, mut proposal) = entry_proposal.remove_entry();
                let reply = if index == entry.index && proposal.term == entry.term {
                    let applied = result
                        .take()
                        .unwrap_or(Err(Error::InvalidInput(String::from("answered twice"))));
                    match (applied, proposal.evaluated.take()) {
                        // Evaluated writes applied: the evaluation's outcome.
                        (Ok(None), Some(outcome)) => Ok(Some(outcome)),
                        (applied, _) => applied,
                    }
                } else {
                    Err(Error::ProposalDropped)
                };
                if proposal.callback.is_none() {
                    self.report_lost_lock(index, &reply);
                }
                replies.push(Box::new(move || proposal.answer(reply)));
            }
        }
        self.raw.store().stage_apply_state(batch);
        // The batch is written before the next request is checked.
        let applied = self.raw.store().apply.applied_index;
        while let Some(entry) = self.in_flight_by_index.first_entry() {
            if *entry.key() > applied {
                break;
            }
            let (index, keys) = entry.remove_entry();
            for key in keys {
                // A later command on the key keeps it in flight.
                if self.in_flight.get(&key).is_some_and(|f| f.index == index) {
                    self.in_flight.remove(&key);
                }
            }
        }
        // Before the batch is written: a freeze, a new span or a raised GC
        // threshold must stop the reads that would miss it.
        self.publish_gate(false);
        Ok(replies)
    }

    /// Tells the read gate what reads under the lease may do now. With
    /// `may_open` false (before an apply batch is written) it only narrows
    /// them; with it true (once the turn's batches are written) it also
    /// opens the gate and forgets the one-phase commits that have applied.
    /// Returns whether the range's span changed.
    pub fn publish_gate(&self, may_open: bool) -> bool {
        let Some(descriptor) = self.descriptor() else {
            self.gate.close();
            return false;
        };
        let now = Instant::now();
        let apply = &self.raw.store().apply;
        // A leader that has applied an entry of its own term has applied
        // everything earlier leaders may have acknowledged.
        let open_until =
            (self.holds_lease(now) && apply.applied_term == self.raw.raft.term && !apply.frozen)
                .then_some(self.lease.until)
                .flatten()
                .map(|until| {
                    // Leave the second half of the lease to reads through the
                    // store loop, which renew it, unless a renewal is under way.
                    if self.renewal_under_way(now) {
                        until
                    } else {
                        until.checked_sub(self.lease_duration / 2).unwrap_or(now)
                    }
                });
        self.gate.publish(
            Permit {
                open_until,
                term: self.raw.raft.term,
                start_key: &descriptor.start_key,
                end_key: &descriptor.end_key,
                gc_threshold: Timestamp(apply.gc_threshold),
                applied_written: may_open.then_some(apply.applied_index),
            },
            may_open,
        )
    }

    /// Applies a normal entry. A command that cannot be decoded is rejected
    /// the same way on every replica, so the replicas stay identical. The
    /// outer `Err` is a storage failure; the inner one a rejected command.
    fn apply_normal(
        &mut self,
        entry: &Entry,
        batch: &mut WriteBatch,
        view: &mut Option<Overlay>,
    ) -> Result<std::result::Result<Applied, Error>> {
        let invalid = |msg: String| Ok(Err(Error::InvalidInput(msg)));
        if entry.data.is_empty() {
            // The empty entry a new leader appends to commit its term.
            return Ok(Ok(None));
        }
        let command = match RaftCommand::decode(&entry.data[..]) {
            Ok(command) => command,
            Err(e) => return invalid(format!("undecodable command: {e}")),
        };
        let frozen = self.raw.store().apply.frozen;
        let refused = match &command.kind {
            Some(raft_command::Kind::Unfreeze(_) | raft_command::Kind::Freeze(_)) | None => false,
            Some(_) => frozen,
        };
        if refused {
            // Proposed before the range froze: the merged range serves it.
            return Ok(Err(Error::Frozen {
                range_id: self.range_id,
            }));
        }
        match command.kind {
            Some(raft_command::Kind::Freeze(freeze)) => Ok(self
                .apply_freeze(freeze.generation, true, batch)
                .map(|()| None)),
            Some(raft_command::Kind::Unfreeze(unfreeze)) => Ok(self
                .apply_freeze(unfreeze.generation, false, batch)
                .map(|()| None)),
            Some(raft_command::Kind::Merge(merge)) => {
                Ok(self.apply_merge(merge, batch).map(|()| None))
            }
            Some(raft_command::Kind::Write(write)) => {
                // Validate the whole command before staging any of it.
                let mut effects = WriteBatch::new();
                for m in write.mutations {
                    match m.op {
                        Some(mutation::Op::Put(put)) => effects.put(Cf::Raw, put.key, put.value),
                        Some(mutation::Op::Delete(delete)) => effects.delete(Cf::Raw, delete.key),
                        None => return invalid("mutation without an operation".into()),
                    }
                }
                if let Some(view) = view.as_mut() {
                    view.apply(&effects);
                }
                self.stage_data(batch, effects);
                Ok(Ok(None))
            }
            Some(raft_command::Kind::EvaluatedTxn(evaluated)) => {
                let Some(descriptor) = self.descriptor() else {
                    return invalid("transactional command on an uninitialized replica".into());
                };
                // The proposer made sure no split could apply in between;
                // a replica checks all the same.
                if let Some(key) = evaluated
                    .keys
                    .iter()
                    .find(|key| !span_contains(&descriptor.start_key, &descriptor.end_key, key))
                {
                    return Ok(Err(Error::RangeNotFound { key: key.clone() }));
                }
                let effects = match evaluated_effects(evaluated.writes) {
                    Ok(effects) => effects,
                    Err(msg) => return invalid(msg),
                };
                if let Some(view) = view.as_mut() {
                    view.apply(&effects);
                }
                self.stage_data(batch, effects);
                Ok(Ok(None))
            }
            Some(raft_command::Kind::Txn(txn)) => {
                let Some(descriptor) = self.descriptor().cloned() else {
                    return invalid("transactional command on an uninitialized replica".into());
                };
                // A command proposed before a split, for keys the split gave
                // to the new range: refused, and retried there.
                if let Some(key) = crate::txn::command_keys(&txn)
                    .into_iter()
                    .find(|key| !span_contains(&descriptor.start_key, &descriptor.end_key, key))
                {
                    return Ok(Err(Error::RangeNotFound { key: key.to_vec() }));
                }
                let view = view.get_or_insert_with(|| {
                    let mut overlay = Overlay::new(self.raw.store().engine().snapshot());
                    overlay.apply(batch);
                    overlay
                });
                let gc_safe_point = match &txn.kind {
                    Some(tessera_proto::txn::txn_command::Kind::Gc(gc)) => Some(gc.safe_point),
                    _ => None,
                };
                let gc_threshold = Timestamp(self.raw.store().apply.gc_threshold);
                let (result, effects) = crate::txn::execute(
                    txn,
                    view,
                    (&descriptor.start_key, &descriptor.end_key),
                    gc_threshold,
                )?;
                view.apply(&effects);
                self.stage_data(batch, effects);
                if let (Some(safe_point), None) = (gc_safe_point, &result.error) {
                    // From now on nothing may read below the safe point.
                    let apply = &mut self.raw.mut_store().apply;
                    apply.gc_threshold = apply.gc_threshold.max(safe_point);
                }
                Ok(Ok(Some(result)))
            }
            Some(raft_command::Kind::Split(split)) => {
                Ok(self.apply_split(split, batch).map(|()| None))
            }
            Some(raft_command::Kind::PrepareSplit(prepare)) => {
                Ok(self.apply_prepare_split(prepare).map(|()| None))
            }
            Some(raft_command::Kind::AbortSplit(abort)) => {
                Ok(self.apply_abort_split(abort, batch).map(|()| None))
            }
            Some(raft_command::Kind::MetaUpdate(update)) => {
                let view = view.get_or_insert_with(|| {
                    let mut overlay = Overlay::new(self.raw.store().engine().snapshot());
                    overlay.apply(batch);
                    overlay
                });
                let effects = match self.meta_update(update, view)? {
                    Ok(effects) => effects,
                    Err(refused) => return Ok(Err(refused)),
                };
                view.apply(&effects);
                batch.extend(effects);
                Ok(Ok(None))
            }
            None => invalid("command without a kind".into()),
        }
    }

    /// Stages a command's effects on the range's data, counted in
    /// `written_bytes`.
    fn stage_data(&mut self, batch: &mut WriteBatch, effects: WriteBatch) {
        self.written_bytes += effects.size() as u64;
        batch.extend(effects);
    }

    /// The split this range holds pending (see `PrepareSplit` in
    /// meta.proto), if any.
    pub fn pending_split(&self) -> Option<&PrepareSplit> {
        self.raw.store().apply.pending_split.as_ref()
    }

    /// Refuses a change to the range's span while a split is pending.
    pub(crate) fn check_no_pending_split(&self) -> std::result::Result<(), Error> {
        match self.pending_split() {
            Some(pending) => Err(Error::Changed(format!(
                "range {} has a split pending at {:02x?}",
                self.range_id, pending.split_key
            ))),
            None => Ok(()),
        }
    }

    /// Holds a split pending (see `PrepareSplit` in meta.proto); the apply
    /// state, which carries it, is staged with the entry.
    fn apply_prepare_split(&mut self, prepare: PrepareSplit) -> std::result::Result<(), Error> {
        let Some(descriptor) = self.descriptor() else {
            return Err(Error::InvalidInput(
                "split of an uninitialized replica".into(),
            ));
        };
        if prepare.generation != descriptor.generation {
            return Err(Error::Changed(format!(
                "range {} is at generation {}, not {}: its span changed",
                self.range_id, descriptor.generation, prepare.generation
            )));
        }
        if prepare.split_key <= descriptor.start_key
            || !span_contains(
                &descriptor.start_key,
                &descriptor.end_key,
                &prepare.split_key,
            )
        {
            return Err(Error::InvalidInput(format!(
                "split key {:02x?} is not inside range {}",
                prepare.split_key, self.range_id
            )));
        }
        self.check_no_pending_split()?;
        self.raw.mut_store().apply.pending_split = Some(prepare);
        Ok(())
    }

    /// Drops the pending split (see `AbortSplit` in meta.proto). A split
    /// no longer pending (aborted before) is not an error.
    fn apply_abort_split(
        &mut self,
        abort: AbortSplit,
        batch: &mut WriteBatch,
    ) -> std::result::Result<(), Error> {
        if self
            .pending_split()
            .is_none_or(|p| p.new_range_id != abort.new_range_id)
        {
            return Ok(());
        }
        let Some(mut descriptor) = self.descriptor().cloned() else {
            return Err(Error::InvalidInput(
                "abort of a split of an uninitialized replica".into(),
            ));
        };
        descriptor.generation += 1;
        self.set_descriptor(descriptor, batch);
        self.raw.mut_store().apply.pending_split = None;
        Ok(())
    }

    /// The effects of a `MetaUpdate` (see meta.proto) on the meta range's
    /// records as `view` holds them, or why it is refused.
    fn meta_update(
        &self,
        update: MetaUpdate,
        view: &Overlay,
    ) -> Result<std::result::Result<WriteBatch, Error>> {
        use tessera_storage::Snapshot as _;
        if self.range_id != tessera_types::keys::META_RANGE_ID {
            return Ok(Err(Error::InvalidInput(
                "meta records are written in the meta range only".into(),
            )));
        }
        let recorded = |end_key: &[u8]| -> Result<Option<RangeDescriptor>> {
            let key = tessera_types::keys::meta_key(end_key);
            match view.get(Cf::Raw, &key)? {
                None => Ok(None),
                Some(bytes) => RangeDescriptor::decode(&bytes[..]).map(Some).map_err(|e| {
                    Error::InvalidInput(format!("corrupt meta record at {key:02x?}: {e}"))
                }),
            }
        };
        let mut effects = WriteBatch::new();
        for end_key in &update.deleted_end_keys {
            if let Some(old) = recorded(end_key)? {
                if old.generation >= update.generation {
                    return Ok(Err(Error::Changed(format!(
                        "the meta range records range {} at generation {}, not older than {}",
                        old.range_id, old.generation, update.generation
                    ))));
                }
                effects.delete(Cf::Raw, tessera_types::keys::meta_key(end_key));
            }
        }
        for descriptor in update.descriptors {
            if let Some(old) = recorded(&descriptor.end_key)? {
                if old.generation > descriptor.generation
                    || (old.generation == descriptor.generation && old != descriptor)
                {
                    return Ok(Err(Error::Changed(format!(
                        "the meta range records range {} at generation {}: range {} at \
                         generation {} cannot replace it",
                        old.range_id, old.generation, descriptor.range_id, descriptor.generation
                    ))));
                }
            }
            effects.put(
                Cf::Raw,
                tessera_types::keys::meta_key(&descriptor.end_key),
                descriptor.encode_to_vec(),
            );
        }
        Ok(Ok(effects))
    }

    /// Splits the range (see `Split` in meta.proto): this replica keeps the
    /// left side, and the right side's initial state is staged for the
    /// store to start (`splits`).
    fn apply_split(
        &mut self,
        split: tessera_proto::meta::Split,
        batch: &mut WriteBatch,
    ) -> std::result::Result<(), Error> {
        let Some(left) = self.descriptor().cloned() else {
            return Err(Error::InvalidInput(
                "split of an uninitialized replica".into(),
            ));
        };
        if self
            .pending_split()
            .is_none_or(|p| p.split_key != split.split_key || p.new_range_id != split.new_range_id)
        {
            return Err(Error::Changed(format!(
                "range {} has no split pending at {:02x?}",
                self.range_id, split.split_key
            )));
        }
        self.raw.mut_store().apply.pending_split = None;
        let mut left = left;
        let right = RangeDescriptor {
            range_id: split.new_range_id,
            start_key: split.split_key.clone(),
            end_key: std::mem::replace(&mut left.end_key, split.split_key),
            generation: left.generation + 1,
            replicas: left.replicas.clone(),
        };
        left.generation += 1;
        self.set_descriptor(left, batch);
        let gc_threshold = self.raw.store().apply.gc_threshold;
        ReplicaStorage::stage_new_range(&right, gc_threshold, batch);
        batch.put(
            Cf::Raft,
            crate::keys::replica_index(right.range_id),
            self.replica_id.to_be_bytes().to_vec(),
        );
        self.splits.push(right);
        self.size = None;
        Ok(())
    }

    /// Freezes or releases the range (see `Freeze` in meta.proto) and
    /// raises its generation; the apply state, which carries the flag, is
    /// staged with the entry.
    fn apply_freeze(
        &mut self,
        generation: u64,
        frozen: bool,
        batch: &mut WriteBatch,
    ) -> std::result::Result<(), Error> {
        let Some(mut descriptor) = self.descriptor().cloned() else {
            return Err(Error::InvalidInput(
                "freeze of an uninitialized replica".into(),
            ));
        };
        if generation != descriptor.generation {
            return Err(Error::Changed(format!(
                "range {} is at generation {}, not {generation}: its span or replicas changed",
                self.range_id, descriptor.generation
            )));
        }
        self.check_no_pending_split()?;
        descriptor.generation += 1;
        self.set_descriptor(descriptor, batch);
        self.raw.mut_store().apply.frozen = frozen;
        Ok(())
    }

    /// Installs `descriptor` as this range's, staged with the entry.
    fn set_descriptor(&mut self, descriptor: RangeDescriptor, batch: &mut WriteBatch) {
        batch.put(
            Cf::Raft,
            crate::keys::descriptor(self.range_id),
            descriptor.encode_to_vec(),
        );
        self.raw.mut_store().descriptor = Some(descriptor);
    }

    /// Absorbs the frozen range to the right (see `Merge` in meta.proto).
    /// This node's replica of it, which has applied its freeze, is removed
    /// in the same batch (its data stays: it is now this range's); the
    /// store drops it once the batch is written (`merged`).
    fn apply_merge(
        &mut self,
        merge: tessera_proto::meta::Merge,
        batch: &mut WriteBatch,
    ) -> std::result::Result<(), Error> {
        let Some(mut left) = self.descriptor().cloned() else {
            return Err(Error::InvalidInput(
                "merge into an uninitialized replica".into(),
            ));
        };
        let Some(right) = merge.right else {
            return Err(Error::InvalidInput(
                "a merge without its right range".into(),
            ));
        };
        if span_contains(&left.start_key, &left.end_key, &right.start_key) {
            // Applied before (a retried request, or a fence after it).
            return Ok(());
        }
        self.check_no_pending_split()?;
        if merge.fence {
            if right.start_key != left.end_key {
                return Err(Error::InvalidInput(format!(
                    "range {} does not end where range {} starts",
                    self.range_id, right.range_id
                )));
            }
            left.generation += 1;
            self.set_descriptor(left, batch);
            return Ok(());
        }
        if merge.generation != left.generation {
            return Err(Error::Changed(format!(
                "range {} is at generation {}, not {}: its span or replicas changed",
                self.range_id, left.generation, merge.generation
            )));
        }
        if left.end_key.is_empty() || right.start_key != left.end_key {
            return Err(Error::InvalidInput(format!(
                "ranges {} and {} are not adjacent",
                self.range_id, right.range_id
            )));
        }
        let nodes = |d: &RangeDescriptor| {
            let mut nodes: Vec<(NodeId, i32)> =
                d.replicas.iter().map(|r| (r.node_id, r.role)).collect();
            nodes.sort_unstable();
            nodes
        };
        if nodes(&left) != nodes(&right) {
            return Err(Error::InvalidInput(format!(
                "ranges {} and {} have replicas on different nodes",
                self.range_id, right.range_id
            )));
        }
        left.end_key = right.end_key.clone();
        left.generation = left.generation.max(right.generation) + 1;
        self.set_descriptor(left, batch);
        let store = self.raw.mut_store();
        store.apply.gc_threshold = store.apply.gc_threshold.max(merge.right_gc_threshold);
        // Reads the right range served are unknown here: a one-phase commit
        // must wait for a timestamp from the oracle, as after an election.
        self.gate
            .records(self.raw.raft.term)
            .reads
            .covers_earlier_terms = false;
        ReplicaStorage::stage_destroy(right.range_id, ReplicaId::MAX, batch);
        self.merged.push(right.range_id);
        self.size = None;
        Ok(())
    }

    /// Installs the range descriptor carried by a membership change.
    fn apply_descriptor(&mut self, bytes: &[u8], batch: &mut WriteBatch) -> Result<()> {
        let descriptor = RangeDescriptor::decode(bytes)
            .map_err(|e| Error::InvalidInput(format!("descriptor of a conf change: {e}")))?;
        self.set_descriptor(descriptor, batch);
        self.refresh_peers();
        Ok(())
    }

    /// Hands leadership to the voting replica on node `to` (raft-rs sends it
    /// a TimeoutNow once its log has caught up). Nothing to do if this
    /// replica is that one.
    pub fn transfer_leader(&mut self, to: NodeId) -> Result<()> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        let target = self
            .descriptor()
            .and_then(|d| d.replicas.iter().find(|r| r.node_id == to))
            .filter(|r| r.role == ReplicaRole::Voter as i32)
            .map(|r| r.replica_id)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "node {to} holds no voting replica of range {}",
                    self.range_id
                ))
            })?;
        if target != self.raw.raft.id {
            // The new leader learns of the locks held here from the log.
            self.log_held_locks(None);
            self.end_lease();
            self.raw.transfer_leader(target);
        }
        Ok(())
    }

    /// Notes that this leader just proposed a `PrepareSplit`: no membership
    /// change is proposed until it has applied (and while the split is
    /// pending).
    pub(crate) fn note_split_proposed(&mut self) {
        self.split_proposed_at = self.raw.raft.raft_log.last_index();
        self.split_proposed_term = self.raw.raft.term;
    }

    /// Whether this leader holds a split pending that it did not prepare in
    /// its current term: an earlier leader (or this one, before it lost the
    /// lease) prepared it, and the request that did fails at its last step
    /// on a replica that no longer leads. Nothing will finish the split but
    /// the leader's upkeep, which need not wait to settle it.
    pub fn inherited_pending_split(&self) -> bool {
        self.pending_split().is_some()
            && self.is_leader()
            && self.split_proposed_term != self.raw.raft.term
    }

    /// Proposes a membership change. The new descriptor rides in the
    /// entry's context and is installed when the change applies.
    pub fn propose_change(&mut self, change: ReplicaChange, callback: ProposalCallback) {
        if !self.is_leader() {
            let _ = callback.send(Err(self.not_leader()));
            return;
        }
        if let Err(err) = self.check_no_pending_split() {
            let _ = callback.send(Err(err));
            return;
        }
        if self.raw.store().apply.applied_index < self.split_proposed_at {
            let _ = callback.send(Err(Error::Changed(format!(
                "range {} is preparing a split",
                self.range_id
            ))));
            return;
        }
        if self.raw.raft.has_pending_conf() {
            // raft-rs would turn this proposal into an empty entry.
            let _ = callback.send(Err(Error::Changed(format!(
                "a membership change of range {} is still being applied",
                self.range_id
            ))));
            return;
        }
        let (descriptor, cc) = match self.plan_change(change) {
            Ok(plan) => plan,
            Err(err) => {
                let _ = callback.send(Err(err));
                return;
            }
        };
        match self.raw.propose_conf_change(descriptor.encode_to_vec(), cc) {
            Ok(()) => {
                let index = self.raw.raft.raft_log.last_index();
                self.other_proposed(index);
                self.track_proposal(index, callback);
            }
            Err(err) => {
                let _ = callback.send(Err(self.refusal(err)));
            }
        }
    }

    /// The descriptor after `change` (at the next generation), and the Raft
    /// conf change that makes it.
    fn plan_change(&self, change: ReplicaChange) -> Result<(RangeDescriptor, ConfChangeV2)> {
        let mut descriptor = self
            .descriptor()
            .cloned()
            .ok_or_else(|| self.not_leader())?;
        if self.raw.store().apply.frozen {
            return Err(Error::Frozen {
                range_id: self.range_id,
            });
        }
        let joint = descriptor
            .replicas
            .iter()
            .any(|r| r.role == ReplicaRole::VoterOutgoing as i32);
        let position = |node: NodeId| descriptor.replicas.iter().position(|r| r.node_id == node);
        let missing = |node: NodeId| {
            Error::InvalidInput(format!(
                "range {} has no replica on node {node}",
                self.range_id
            ))
        };
        let single = |kind: ConfChangeType, replica_id: ReplicaId| {
            let mut single = ConfChangeSingle::default();
            single.set_change_type(kind);
            single.node_id = replica_id;
            single
        };
        let mut cc = ConfChangeV2::default();
        match change {
            ReplicaChange::LeaveJoint => {
                if !joint {
                    return Err(Error::InvalidInput(format!(
                        "range {} is not in a joint configuration",
                        self.range_id
                    )));
                }
                descriptor
                    .replicas
                    .retain(|r| r.role != ReplicaRole::VoterOutgoing as i32);
            }
            _ if joint => {
                return Err(Error::InvalidInput(format!(
                    "range {} is in a joint configuration: leave it first",
                    self.range_id
                )));
            }
            ReplicaChange::AddLearner(node) => {
                if position(node).is_some() {
                    return Err(Error::InvalidInput(format!(
                        "range {} already has a replica on node {node}",
                        self.range_id
                    )));
                }
                let replica_id = descriptor
                    .replicas
                    .iter()
                    .map(|r| r.replica_id)
                    .max()
                    .unwrap_or(0)
                    .max(
                        self.raw
                            .raft
                            .prs()
                            .iter()
                            .map(|(id, _)| *id)
                            .max()
                            .unwrap_or(0),
                    )
                    + 1;
                descriptor.replicas.push(ReplicaDescriptor {
                    node_id: node,
                    replica_id,
                    role: ReplicaRole::Learner as i32,
                });
                cc.set_changes(vec![single(ConfChangeType::AddLearnerNode, replica_id)].into());
            }
            ReplicaChange::Promote(node) => {
                let i = position(node).ok_or_else(|| missing(node))?;
                descriptor.replicas[i].role = ReplicaRole::Voter as i32;
                let id = descriptor.replicas[i].replica_id;
                cc.set_changes(vec![single(ConfChangeType::AddNode, id)].into());
            }
            ReplicaChange::Remove(node) => {
                let i = position(node).ok_or_else(|| missing(node))?;
                let removed = descriptor.replicas.remove(i);
                if removed.replica_id == self.replica_id {
                    return Err(self.leader_cannot_leave());
                }
                cc.set_changes(vec![single(ConfChangeType::RemoveNode, removed.replica_id)].into());
            }
            ReplicaChange::EnterJoint { add, remove } => {
                let a = position(add).ok_or_else(|| missing(add))?;
                let r = position(remove).ok_or_else(|| missing(remove))?;
                let learner = &descriptor.replicas[a];
                if learner.role != ReplicaRole::Learner as i32 {
                    return Err(Error::InvalidInput(format!(
                        "the replica of range {} on node {add} is not a learner",
                        self.range_id
                    )));
                }
                let outgoing = &descriptor.replicas[r];
                if outgoing.role != ReplicaRole::Voter as i32 {
                    return Err(Error::InvalidInput(format!(
                        "the replica of range {} on node {remove} is not a voter",
                        self.range_id
                    )));
                }
                if outgoing.replica_id == self.replica_id {
                    return Err(self.leader_cannot_leave());
                }
                let matched = self
                    .raw
                    .raft
                    .prs()
                    .get(learner.replica_id)
                    .map_or(0, |p| p.matched);
                let committed = self.raw.raft.raft_log.committed;
                if matched < committed {
                    return Err(Error::NotCaughtUp {
                        range_id: self.range_id,
                        matched,
                        committed,
                    });
                }
                cc.set_changes(
                    vec![
                        single(ConfChangeType::AddNode, learner.replica_id),
                        single(ConfChangeType::RemoveNode, outgoing.replica_id),
                    ]
                    .into(),
                );
                cc.set_transition(raft::prelude::ConfChangeTransition::Explicit);
                descriptor.replicas[a].role = ReplicaRole::Voter as i32;
                descriptor.replicas[r].role = ReplicaRole::VoterOutgoing as i32;
            }
        }
        descriptor.generation += 1;
        Ok((descriptor, cc))
    }

    fn leader_cannot_leave(&self) -> Error {
        Error::InvalidInput(format!(
            "the replica of range {} on node {} leads it: move the lease first",
            self.range_id,
            self.peers
                .get(&self.replica_id)
                .copied()
                .unwrap_or_default()
        ))
    }

    fn apply_conf_change(
        &mut self,
        cc: impl raft_proto::ConfChangeI,
        batch: &mut WriteBatch,
    ) -> std::result::Result<(), String> {
        self.end_lease();
        match self.raw.apply_conf_change(&cc) {
            Ok(conf_state) => {
                self.raw.mut_store().stage_conf_state(conf_state, batch);
                Ok(())
            }
            Err(err) => Err(format!("conf change rejected: {err}")),
        }
    }
}
