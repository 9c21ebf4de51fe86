//! The store: every replica on a node, driven by one store loop thread.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use prost::Message as _;
use raft::prelude::{Message, MessageType};
use raft::{RawNode, ReadOnlyOption, SnapshotStatus, StateRole};
use tessera_proto::meta::{mutation, Mutation, RaftCommand, RangeDescriptor, StoreIdent};
use tessera_proto::raft::RaftEnvelope;
use tessera_proto::txn::{TxnCommand, TxnError, TxnResult};
use tessera_storage::{Cf, Engine, WriteBatch};
use tessera_types::{failpoint, ClusterId, NodeId, RangeId, ReplicaId, Timestamp};
use tokio::sync::oneshot;

use crate::keys;
use crate::log::{encode_pb, ReplicaStorage};
use crate::logger::replica_logger;
use crate::read_gate::{GateAnswer, GateRead, ReadGate};
use crate::replica::{
    Applied, PendingRead, Precheck, ProposalCallback, ReadOp, Replica, ReplicaChange, Reply,
    ScanChunk,
};
use crate::transport::Transport;
use crate::{Error, Result};

pub use crate::replica::ReadResult;

/// Raft tuning for every replica of a store.
#[derive(Clone, Debug)]
pub struct RaftConfig {
    /// The length of one logical clock tick.
    pub tick_interval: Duration,
    /// Ticks without a leader's heartbeat before a follower campaigns.
    pub election_ticks: usize,
    /// Ticks between a leader's heartbeats.
    pub heartbeat_ticks: usize,
    /// Applied entries kept in a replica's log before it is compacted; half
    /// of them are kept after compaction for followers that lag a little.
    pub log_compact_threshold: u64,
    /// The largest append message, in bytes.
    pub max_size_per_msg: u64,
    /// Append messages in flight to one follower.
    pub max_inflight_msgs: usize,
}

impl RaftConfig {
    /// How long a leader serves reads after a quorum acknowledged it (see
    /// `Lease` in the replica module): two ticks short of the election
    /// timeout. A follower votes no sooner than `election_ticks - 1` tick
    /// intervals after it last heard from its leader, since its first tick
    /// may come at once; the other tick is margin for clock rate and
    /// scheduling. Zero (no leases) with fewer than three election ticks.
    pub fn lease_duration(&self) -> Duration {
        self.tick_interval * self.election_ticks.saturating_sub(2) as u32
    }
}

impl Default for RaftConfig {
    fn default() -> Self {
        Self {
            tick_interval: Duration::from_millis(100),
            election_ticks: 10,
            heartbeat_ticks: 2,
            log_compact_threshold: 10_000,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
        }
    }
}

/// The state of one replica, for status pages and tests.
#[derive(Clone, Debug, Default)]
pub struct ReplicaInfo {
    /// The range, if the replica is initialized.
    pub descriptor: Option<RangeDescriptor>,
    /// The range id.
    pub range_id: RangeId,
    /// This replica's peer id.
    pub replica_id: ReplicaId,
    /// The node of the leader this replica knows of.
    pub leader_node: Option<NodeId>,
    /// Whether this replica is the leader.
    pub is_leader: bool,
    /// The current term.
    pub term: u64,
    /// The commit index.
    pub commit_index: u64,
    /// The applied index.
    pub applied_index: u64,
    /// The first index still in the log.
    pub first_index: u64,
    /// The range's GC threshold.
    pub gc_threshold: u64,
    /// Whether the range is frozen for a merge.
    pub frozen: bool,
    /// The split the range holds pending, if any.
    pub pending_split: Option<tessera_proto::meta::PrepareSplit>,
    /// Whether this replica leads the range and holds its pending split
    /// from an earlier leader (see `Replica::inherited_pending_split`).
    pub inherited_pending_split: bool,
    /// Requests per second this replica served as leader, over the last
    /// few seconds.
    pub qps: f64,
    /// Where the recent load divides in two: the median key of a sample
    /// of the requests' keys.
    pub load_split_key: Option<Vec<u8>>,
    /// The range's size, as last measured here.
    pub size: Option<RangeSize>,
    /// The bytes of data writes this replica applied since it started (see
    /// `Replica::written_bytes`).
    pub written_bytes: u64,
}

/// A range's size: its MVCC data (commit records and the values stored
/// apart from them), and its user keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RangeSize {
    /// Bytes of keys and values.
    pub bytes: u64,
    /// Distinct user keys (with any version).
    pub keys: u64,
}

enum StoreMsg {
    Raft(Vec<RaftEnvelope>),
    Write {
        mutations: Vec<Mutation>,
        callback: ProposalCallback,
    },
    Txn {
        command: TxnCommand,
        callback: ProposalCallback,
    },
    ObserveTimestamp {
        key: Vec<u8>,
        ts: Timestamp,
        term: u64,
        callback: oneshot::Sender<Result<()>>,
    },
    Read {
        key: Vec<u8>,
        op: ReadOp,
        callback: oneshot::Sender<Result<ReadResult>>,
    },
    Bootstrap {
        ident: StoreIdent,
        ranges: Vec<RangeDescriptor>,
        data: Vec<(Vec<u8>, Vec<u8>)>,
        callback: oneshot::Sender<Result<()>>,
    },
    Replicas {
        callback: oneshot::Sender<Result<Vec<ReplicaInfo>>>,
    },
    ChangeReplicas {
        range_id: RangeId,
        change: ReplicaChange,
        callback: ProposalCallback,
    },
    MetaUpdate {
        update: tessera_proto::meta::MetaUpdate,
        callback: ProposalCallback,
    },
    PrepareSplit {
        key: Vec<u8>,
        new_range_id: RangeId,
        callback: ProposalCallback,
    },
    Split {
        key: Vec<u8>,
        new_range_id: RangeId,
        callback: ProposalCallback,
    },
    AbortSplit {
        range_id: RangeId,
        new_range_id: RangeId,
        callback: ProposalCallback,
    },
    SplitCheck {
        key: Vec<u8>,
        callback: ProposalCallback,
    },
    TransferLeader {
        range_id: RangeId,
        to: NodeId,
        callback: oneshot::Sender<Result<()>>,
    },
    Freeze {
        range_id: RangeId,
        generation: u64,
        frozen: bool,
        callback: ProposalCallback,
    },
    Merge {
        range_id: RangeId,
        merge: tessera_proto::meta::Merge,
        callback: ProposalCallback,
    },
    DestroyReplica {
        range_id: RangeId,
        replica_id: ReplicaId,
        callback: oneshot::Sender<Result<()>>,
    },
    RangeStatus {
        key: Vec<u8>,
        callback: oneshot::Sender<Result<ReplicaInfo>>,
    },
    RecordSize {
        range_id: RangeId,
        size: RangeSize,
    },
    Stop,
}

/// What a split did: the two ranges on either side of the key.
#[derive(Clone, Debug)]
pub struct SplitOutcome {
    /// The range that ends at the key.
    pub left: RangeDescriptor,
    /// The range that starts at it.
    pub right: RangeDescriptor,
    /// False if the key already started a range.
    pub created: bool,
}

/// A running store. Dropping it stops the store loop.
pub struct Store {
    handle: StoreHandle,
    thread: Option<JoinHandle<()>>,
}

/// A cheap, cloneable handle to a running store.
#[derive(Clone)]
pub struct StoreHandle {
    node_id: NodeId,
    tx: Sender<StoreMsg>,
    cluster_id: Arc<AtomicU64>,
    running: Arc<AtomicBool>,
    engine: Arc<dyn Engine>,
    /// Bumped after every turn that applied entries: lock waiters look
    /// again.
    applied: Arc<tokio::sync::watch::Sender<u64>>,
    /// The replicas' read gates by the start of their spans: point reads
    /// under a lease are served on the caller's thread (see `read_gate`).
    gates: Arc<parking_lot::RwLock<BTreeMap<Vec<u8>, Arc<ReadGate>>>>,
}

impl Store {
    /// Opens the store on `engine`: checks that the data dir belongs to
    /// `node_id`, recovers its replicas and starts the store loop.
    pub fn start(
        node_id: NodeId,
        engine: Arc<dyn Engine>,
        transport: Arc<dyn Transport>,
        config: RaftConfig,
    ) -> Result<Store> {
        if node_id == 0 {
            return Err(Error::InvalidInput("node id must be at least 1".into()));
        }
        let ident = load_ident(engine.as_ref())?;
        if let Some(ident) = &ident {
            if ident.node_id != node_id {
                return Err(Error::InvalidInput(format!(
                    "the data dir belongs to node {} of cluster {:016x}, not node {node_id}",
                    ident.node_id, ident.cluster_id
                )));
            }
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let handle = StoreHandle {
            node_id,
            tx,
            cluster_id: Arc::new(AtomicU64::new(ident.map_or(0, |i| i.cluster_id))),
            running: Arc::new(AtomicBool::new(true)),
            engine: engine.clone(),
            applied: Arc::new(tokio::sync::watch::channel(0).0),
            gates: Arc::default(),
        };
        let mut store_loop = StoreLoop {
            node_id,
            engine,
            transport,
            config,
            replicas: BTreeMap::new(),
            tombstones: HashMap::new(),
            early_votes: HashMap::new(),
            rx,
            handle: handle.clone(),
            next_id: 1,
            started: Instant::now(),
            gates_moved: true,
        };
        store_loop.recover()?;
        let thread = std::thread::Builder::new()
            .name(format!("store-{node_id}"))
            .spawn(move || store_loop.run())
            .map_err(|e| Error::InvalidInput(format!("spawning the store loop: {e}")))?;
        Ok(Store {
            handle,
            thread: Some(thread),
        })
    }

    /// A handle for sending requests to the store.
    pub fn handle(&self) -> StoreHandle {
        self.handle.clone()
    }

    /// Stops the store loop and waits for it to finish its current turn.
    pub fn stop(&mut self) {
        let _ = self.handle.tx.send(StoreMsg::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.stop();
    }
}

fn load_ident(engine: &dyn Engine) -> Result<Option<StoreIdent>> {
    match engine.get(Cf::Raft, keys::IDENT)? {
        Some(bytes) => Ok(Some(StoreIdent::decode(&bytes[..]).map_err(|e| {
            tessera_storage::Error::Corruption(format!("store ident: {e}"))
        })?)),
        None => Ok(None),
    }
}

fn mutation_key(m: &Mutation) -> Option<&[u8]> {
    match &m.op {
        Some(mutation::Op::Put(put)) => Some(&put.key),
        Some(mutation::Op::Delete(delete)) => Some(&delete.key),
        None => None,
    }
}

impl StoreHandle {
    /// This store's node id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The cluster this store belongs to; 0 until it is bootstrapped.
    pub fn cluster_id(&self) -> ClusterId {
        self.cluster_id.load(Ordering::Acquire)
    }

    /// Whether the store loop is still running (it stops on a storage
    /// failure or when asked to).
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    async fn request<T>(
        &self,
        build: impl FnOnce(oneshot::Sender<Result<T>>) -> StoreMsg,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(build(tx)).map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Serves a point read on this thread if its range's leader is here and
    /// its gate is open (see `read_gate`); None if the store loop must.
    fn read_through_gate(&self, read: GateRead<'_>) -> Option<Result<GateAnswer>> {
        if !self.is_running() {
            return None;
        }
        let gate = self.gate_for(read.key())?;
        gate.try_read(&self.engine, read, Instant::now())
    }

    /// The gate of the replica whose span starts nearest below `key` (the
    /// gate checks whether its span holds the key).
    fn gate_for(&self, key: &[u8]) -> Option<Arc<ReadGate>> {
        self.gates
            .read()
            .range::<[u8], _>((std::ops::Bound::Unbounded, std::ops::Bound::Included(key)))
            .next_back()
            .map(|(_, gate)| gate.clone())
    }

    /// Delivers Raft messages received from other nodes.
    pub fn deliver(&self, envelopes: Vec<RaftEnvelope>) -> Result<()> {
        self.tx
            .send(StoreMsg::Raft(envelopes))
            .map_err(|_| Error::Stopped)
    }

    /// Replicates mutations, which must all fall in one range, and applies
    /// them atomically. Returns once they are committed on a quorum and
    /// applied here.
    pub async fn write(&self, mutations: Vec<Mutation>) -> Result<()> {
        self.request(|callback| StoreMsg::Write {
            mutations,
            callback,
        })
        .await
        .map(|_| ())
    }

    /// Records range descriptors in the meta range, which this node must
    /// lead (see `MetaUpdate` in meta.proto: `Changed` if newer records
    /// stand in the way).
    pub async fn update_meta(&self, update: tessera_proto::meta::MetaUpdate) -> Result<()> {
        self.request(|callback| StoreMsg::MetaUpdate { update, callback })
            .await
            .map(|_| ())
    }

    /// Replicates a transactional command, whose keys must all fall in one
    /// range, and returns its outcome once it is applied here. Conflicts are
    /// outcomes (`TxnResult::error`), not errors.
    pub async fn txn(&self, command: TxnCommand) -> Result<TxnResult> {
        let applied: Applied = self
            .request(|callback| StoreMsg::Txn { command, callback })
            .await?;
        applied
            .ok_or_else(|| Error::InvalidInput("a transactional command without an outcome".into()))
    }

    /// Hands the leader of the range holding `key` a timestamp taken from
    /// the oracle after it answered `Error::NeedTimestamp` in `term`.
    pub async fn observe_timestamp(&self, key: Vec<u8>, ts: Timestamp, term: u64) -> Result<()> {
        self.request(|callback| StoreMsg::ObserveTimestamp {
            key,
            ts,
            term,
            callback,
        })
        .await
    }

    /// Reads a key's value at `ts` (at the range's leader, after
    /// ReadIndex). A lock that hides the value is returned as the inner
    /// error, to be resolved by the caller; so is a newer write if `latest`
    /// (see `MvccReader::latest`).
    pub async fn mvcc_get(
        &self,
        key: Vec<u8>,
        ts: Timestamp,
        latest: bool,
    ) -> Result<std::result::Result<Option<Vec<u8>>, TxnError>> {
        match self.read_through_gate(GateRead::MvccGet(&key, ts, latest)) {
            Some(Ok(GateAnswer::MvccGet(result))) => return Ok(result),
            Some(Err(err)) => return Err(err),
            Some(Ok(GateAnswer::Get(_))) | None => {}
        }
        let op = ReadOp::MvccGet {
            key: key.clone(),
            ts,
            latest,
        };
        match self
            .request(|callback| StoreMsg::Read { key, op, callback })
            .await?
        {
            ReadResult::MvccGet(result) => Ok(result),
            other => unreachable!("an MVCC get answered with {other:?}"),
        }
    }

    /// Scans `[start, end)` at `ts` within the range holding `start`: at
    /// most `limit` entries (0: no limit), and the key to resume from. A
    /// lock that hides a key is returned as the inner error (and, if
    /// `latest`, a newer write, as for `mvcc_get`).
    pub async fn mvcc_scan(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        ts: Timestamp,
        limit: usize,
        latest: bool,
    ) -> Result<std::result::Result<ScanChunk, TxnError>> {
        let op = ReadOp::MvccScan {
            start: start.clone(),
            end,
            ts,
            limit,
            latest,
        };
        match self
            .request(|callback| StoreMsg::Read {
                key: start,
                op,
                callback,
            })
            .await?
        {
            ReadResult::MvccScan(result) => Ok(result),
            other => unreachable!("an MVCC scan answered with {other:?}"),
        }
    }

    /// Reads a key linearizably (at the range's leader, after ReadIndex).
    pub async fn get(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>> {
        match self.read_through_gate(GateRead::Get(&key)) {
            Some(Ok(GateAnswer::Get(value))) => return Ok(value),
            Some(Err(err)) => return Err(err),
            Some(Ok(GateAnswer::MvccGet(_))) | None => {}
        }
        let op = ReadOp::Get { key: key.clone() };
        match self
            .request(|callback| StoreMsg::Read { key, op, callback })
            .await?
        {
            ReadResult::Get(value) => Ok(value),
            other => unreachable!("a get answered with {other:?}"),
        }
    }

    /// Scans `[start, end)` linearizably, within the range holding `start`:
    /// at most `limit` entries, and the key to resume from if there is more.
    pub async fn scan(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
    ) -> Result<(Vec<(Vec<u8>, Vec<u8>)>, Option<Vec<u8>>)> {
        let op = ReadOp::Scan {
            start: start.clone(),
            end,
            limit,
        };
        match self
            .request(|callback| StoreMsg::Read {
                key: start,
                op,
                callback,
            })
            .await?
        {
            ReadResult::Scan { kvs, resume_key } => Ok((kvs, resume_key)),
            other => unreachable!("a scan answered with {other:?}"),
        }
    }

    /// The locks in `[start, end)` within the range holding `start` of
    /// transactions that started at or below `max_ts`: at most `limit`, and
    /// the key to resume from.
    pub async fn scan_locks(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        max_ts: Timestamp,
        limit: usize,
    ) -> Result<(Vec<tessera_proto::txn::LockInfo>, Option<Vec<u8>>)> {
        let op = ReadOp::ScanLocks {
            start: start.clone(),
            end,
            max_ts,
            limit: limit.max(1),
        };
        match self
            .request(|callback| StoreMsg::Read {
                key: start,
                op,
                callback,
            })
            .await?
        {
            ReadResult::Locks(locks, resume_key) => Ok((locks, resume_key)),
            other => unreachable!("a lock scan answered with {other:?}"),
        }
    }

    /// Writes the bootstrap state: the node joins cluster `ident.cluster_id`
    /// and starts the replicas it holds among `ranges`, with `data` as their
    /// initial contents. Idempotent for the same cluster.
    pub async fn bootstrap(
        &self,
        ident: StoreIdent,
        ranges: Vec<RangeDescriptor>,
        data: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<()> {
        self.request(|callback| StoreMsg::Bootstrap {
            ident,
            ranges,
            data,
            callback,
        })
        .await
    }

    /// The state of every replica on this node.
    pub async fn replicas(&self) -> Result<Vec<ReplicaInfo>> {
        self.request(|callback| StoreMsg::Replicas { callback })
            .await
    }

    /// Splits the range holding `key` at `key`, giving `[key, end)` to a new
    /// range `new_range_id` (a cluster-unique id): `prepare_split`, then
    /// `finish_split`, recording it nowhere in between (the server records
    /// it in the meta range there). Must be sent to the leader. A key that
    /// already starts a range is not an error: the outcome says so.
    pub async fn split(&self, key: Vec<u8>, new_range_id: RangeId) -> Result<SplitOutcome> {
        match self.prepare_split(key.clone(), new_range_id).await {
            Ok(_) | Err(Error::AlreadySplit { .. }) => {}
            Err(err) => return Err(err),
        }
        self.finish_split(key, new_range_id).await
    }

    /// The first step of a split at `key` (see `PrepareSplit` in
    /// meta.proto): the range holding `key`, which this node must lead,
    /// holds the split pending. Returns the range's descriptor, unchanged
    /// by the step. `AlreadySplit` if `key` starts a range.
    pub async fn prepare_split(
        &self,
        key: Vec<u8>,
        new_range_id: RangeId,
    ) -> Result<RangeDescriptor> {
        self.request(|callback| StoreMsg::PrepareSplit {
            key: key.clone(),
            new_range_id,
            callback,
        })
        .await?;
        self.replicas()
            .await?
            .into_iter()
            .filter_map(|info| info.descriptor)
            .find(|d| tessera_types::keys::span_contains(&d.start_key, &d.end_key, &key))
            .ok_or(Error::RangeNotFound { key })
    }

    /// Drops the split pending in range `range_id` that would create
    /// `new_range_id` (see `AbortSplit` in meta.proto); must be sent to the
    /// leader.
    pub async fn abort_split(&self, range_id: RangeId, new_range_id: RangeId) -> Result<()> {
        self.request(|callback| StoreMsg::AbortSplit {
            range_id,
            new_range_id,
            callback,
        })
        .await
        .map(|_| ())
    }

    /// Applies the split pending at `key`: returns once it is applied here
    /// and the new range's replica runs, with both sides. A key that
    /// already starts a range (the split applied before) is not an error:
    /// the outcome says so.
    pub async fn finish_split(&self, key: Vec<u8>, new_range_id: RangeId) -> Result<SplitOutcome> {
        let created = match self
            .request(|callback| StoreMsg::Split {
                key: key.clone(),
                new_range_id,
                callback,
            })
            .await
        {
            Ok(_) => true,
            Err(Error::AlreadySplit { .. }) => false,
            Err(err) => return Err(err),
        };
        let descriptors: Vec<RangeDescriptor> = self
            .replicas()
            .await?
            .into_iter()
            .filter_map(|info| info.descriptor)
            .collect();
        let left = descriptors.iter().find(|d| d.end_key == key).cloned();
        let right = descriptors.iter().find(|d| d.start_key == key).cloned();
        match (left, right) {
            (Some(left), Some(right)) => Ok(SplitOutcome {
                left,
                right,
                created,
            }),
            // Another split or a change raced with this one.
            _ => Err(Error::RangeNotFound { key }),
        }
    }

    /// Waits until the lock of transaction `holder` on `key` is gone from
    /// this node's replica (committed, rolled back or resolved), at most
    /// `timeout`. Returns whether it is gone. A hint for lock waiters, who
    /// retry their command afterwards: it reads local state, with no Raft
    /// round, and wakes on every applied batch.
    pub async fn wait_lock_released(
        &self,
        key: &[u8],
        holder: Timestamp,
        timeout: Duration,
    ) -> Result<bool> {
        let mut applied = self.applied.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // A lock held in the leader's memory, as well as one applied.
            // (Between the proposal that logs or replaces a held lock and
            // its apply, neither shows: the waiter's next request meets it
            // in flight.)
            let in_memory = self.gate_for(key).is_some_and(|gate| {
                gate.held_locks
                    .lock()
                    .get(key)
                    .is_some_and(|lock| lock.start_ts == holder)
            });
            let snapshot = self.engine.snapshot();
            let held = in_memory
                || tessera_storage::mvcc::MvccReader::new(snapshot.as_ref())
                    .lock(key)
                    .map_err(|e| Error::InvalidInput(format!("reading a lock: {e}")))?
                    .is_some_and(|lock| lock.start_ts == holder);
            if !held {
                return Ok(true);
            }
            match tokio::time::timeout_at(deadline, applied.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Error::Stopped),
                Err(_) => return Ok(false),
            }
        }
    }

    /// Checks that this node leads the range holding `key` (NotLeader
    /// names the leader otherwise), before a split there.
    pub async fn split_check(&self, key: Vec<u8>) -> Result<()> {
        self.request(|callback| StoreMsg::SplitCheck { key, callback })
            .await
            .map(|_| ())
    }

    /// Asks this node's replica of the range, which must lead it, to hand
    /// leadership to the voting replica on node `to`. Returns once the
    /// transfer has begun: the transferee takes over when it has caught up
    /// (at once if it has), and the old leader stops serving then.
    pub async fn transfer_leader(&self, range_id: RangeId, to: NodeId) -> Result<()> {
        self.request(|callback| StoreMsg::TransferLeader {
            range_id,
            to,
            callback,
        })
        .await
    }

    /// Changes a range's membership by one step; must be sent to the leader.
    /// Returns once the change is committed and applied here.
    pub async fn change_replicas(&self, range_id: RangeId, change: ReplicaChange) -> Result<()> {
        self.request(|callback| StoreMsg::ChangeReplicas {
            range_id,
            change,
            callback,
        })
        .await
        .map(|_| ())
    }

    /// The state of this node's replica of the range holding `key`, which
    /// must lead it (NotLeader names the leader otherwise).
    pub async fn range_status(&self, key: Vec<u8>) -> Result<ReplicaInfo> {
        self.request(|callback| StoreMsg::RangeStatus { key, callback })
            .await
    }

    /// Records a range's measured size, shown with its status.
    pub fn record_size(&self, range_id: RangeId, size: RangeSize) {
        let _ = self.tx.send(StoreMsg::RecordSize { range_id, size });
    }

    /// This node's replica of a range, if it holds one.
    pub async fn replica(&self, range_id: RangeId) -> Result<Option<ReplicaInfo>> {
        Ok(self
            .replicas()
            .await?
            .into_iter()
            .find(|r| r.range_id == range_id))
    }

    /// Freezes (or releases, `frozen` false) a range for a merge; must be
    /// sent to its leader. Returns the replica's state once applied here:
    /// its applied index is the one every replica must reach before the
    /// merge.
    pub async fn freeze(
        &self,
        range_id: RangeId,
        generation: u64,
        frozen: bool,
    ) -> Result<ReplicaInfo> {
        self.request(|callback| StoreMsg::Freeze {
            range_id,
            generation,
            frozen,
            callback,
        })
        .await?;
        self.replica(range_id).await?.ok_or(Error::NotLeader {
            range_id,
            leader: None,
        })
    }

    /// Merges the frozen range `merge.right` into range `range_id`; must be
    /// sent to its leader. Returns the merged range's descriptor.
    pub async fn merge(
        &self,
        range_id: RangeId,
        merge: tessera_proto::meta::Merge,
    ) -> Result<RangeDescriptor> {
        self.request(|callback| StoreMsg::Merge {
            range_id,
            merge,
            callback,
        })
        .await?;
        self.replica(range_id)
            .await?
            .and_then(|r| r.descriptor)
            .ok_or(Error::NotLeader {
                range_id,
                leader: None,
            })
    }

    /// Removes this node's replica `replica_id` of a range that no longer
    /// has it (the caller checked the meta range), with the data of its
    /// span that no other local replica holds. Refused for a leader.
    pub async fn destroy_replica(&self, range_id: RangeId, replica_id: ReplicaId) -> Result<()> {
        self.request(|callback| StoreMsg::DestroyReplica {
            range_id,
            replica_id,
            callback,
        })
        .await
    }
}

/// How many queued messages one turn of the loop takes before it processes
/// Ready; bounds the latency of a turn under heavy load.
const MAX_MESSAGES_PER_TURN: usize = 4096;

struct StoreLoop {
    node_id: NodeId,
    engine: Arc<dyn Engine>,
    transport: Arc<dyn Transport>,
    config: RaftConfig,
    replicas: BTreeMap<RangeId, Replica>,
    /// Ranges whose replicas this node removed: messages to a replica id
    /// up to the one recorded are dropped rather than recreate it.
    tombstones: HashMap<RangeId, ReplicaId>,
    /// Votes for ranges this node does not hold (yet), by range.
    early_votes: HashMap<RangeId, Vec<RaftEnvelope>>,
    rx: Receiver<StoreMsg>,
    handle: StoreHandle,
    next_id: u64,
    /// When this store loop began: see [`StoreLoop::refuses_votes`].
    started: Instant,
    /// Whether a replica came or went, or a span changed, since the
    /// handle's index of read gates was last built.
    gates_moved: bool,
}

impl StoreLoop {
    fn recover(&mut self) -> Result<()> {
        let end = tessera_types::encoding::prefix_end(keys::TOMBSTONE_PREFIX).unwrap_or_default();
        for item in self.engine.scan(Cf::Raft, keys::TOMBSTONE_PREFIX, &end) {
            let (key, value) = item?;
            let suffix = &key[keys::TOMBSTONE_PREFIX.len()..];
            if let (Ok(range), Ok(replica)) = (
                <[u8; 8]>::try_from(suffix),
                <[u8; 8]>::try_from(value.as_slice()),
            ) {
                self.tombstones.insert(
                    RangeId::from_be_bytes(range),
                    ReplicaId::from_be_bytes(replica),
                );
            }
        }
        let end =
            tessera_types::encoding::prefix_end(keys::REPLICA_INDEX_PREFIX).unwrap_or_default();
        let entries: Vec<_> = self
            .engine
            .scan(Cf::Raft, keys::REPLICA_INDEX_PREFIX, &end)
            .collect::<std::result::Result<_, _>>()?;
        for (key, value) in entries {
            let suffix = &key[keys::REPLICA_INDEX_PREFIX.len()..];
            let (Ok(range), Ok(replica)) = (
                <[u8; 8]>::try_from(suffix),
                <[u8; 8]>::try_from(value.as_slice()),
            ) else {
                return Err(tessera_storage::Error::Corruption(format!(
                    "replica index entry {key:?}"
                ))
                .into());
            };
            let range_id = RangeId::from_be_bytes(range);
            let storage = ReplicaStorage::load(self.engine.clone(), range_id)?;
            let replica = self.new_replica(ReplicaId::from_be_bytes(replica), storage)?;
            tracing::info!(
                node = self.node_id,
                range_id,
                applied = replica.raw.store().apply.applied_index,
                last = replica.raw.store().last_index(),
                "recovered replica"
            );
            self.replicas.insert(range_id, replica);
            self.gates_moved = true;
        }
        Ok(())
    }

    fn new_replica(&self, replica_id: ReplicaId, storage: ReplicaStorage) -> Result<Replica> {
        let config = raft::Config {
            id: replica_id,
            election_tick: self.config.election_ticks,
            heartbeat_tick: self.config.heartbeat_ticks,
            applied: storage.apply.applied_index,
            max_size_per_msg: self.config.max_size_per_msg,
            max_inflight_msgs: self.config.max_inflight_msgs,
            check_quorum: true,
            pre_vote: true,
            read_only_option: ReadOnlyOption::Safe,
            // A leader whose commit index moves tells the followers with
            // its next append or heartbeat, not with an empty append of its
            // own (as TiKV's do): a round of writes costs each follower one
            // message each way instead of two. Only the followers' applies
            // wait; nothing is answered from a follower's applied state.
            // (While a split, merge or membership change is on its way,
            // the leader broadcasts again: see `Replica::other_proposed`.)
            skip_bcast_commit: true,
            ..Default::default()
        };
        config.validate()?;
        let logger = replica_logger(self.node_id, storage.range_id());
        let raw = RawNode::new(&config, storage, &logger)?;
        Ok(Replica::new(replica_id, raw, self.config.lease_duration()))
    }

    fn run(mut self) {
        tracing::debug!(node = self.node_id, "store loop started");
        let mut next_tick = Instant::now() + self.config.tick_interval;
        let mut stop = false;
        while !stop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(msg) => stop |= self.handle_msg(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            for _ in 0..MAX_MESSAGES_PER_TURN {
                match self.rx.try_recv() {
                    Ok(msg) => stop |= self.handle_msg(msg),
                    Err(_) => break,
                }
            }
            let now = Instant::now();
            if now >= next_tick {
                for replica in self.replicas.values_mut() {
                    replica.raw.tick();
                    replica.gate.load.lock().tick(now);
                }
                next_tick = now + self.config.tick_interval;
            }
            if let Err(err) = self.process_ready() {
                // The node's disk state can no longer be trusted to match
                // what Raft believes: stop rather than risk divergence.
                tracing::error!(node = self.node_id, %err, "store loop failed; stopping");
                break;
            }
            if std::mem::take(&mut self.gates_moved) {
                self.index_gates();
            }
        }
        self.handle.running.store(false, Ordering::Release);
        tracing::debug!(node = self.node_id, "store loop stopped");
    }

    /// Rebuilds the handle's index of read gates by span.
    fn index_gates(&self) {
        let index = self
            .replicas
            .values()
            .filter_map(|replica| {
                let descriptor = replica.descriptor()?;
                Some((descriptor.start_key.clone(), replica.gate.clone()))
            })
            .collect();
        *self.handle.gates.write() = index;
    }

    /// Handles one message; returns true when the loop must stop.
    fn handle_msg(&mut self, msg: StoreMsg) -> bool {
        match msg {
            StoreMsg::Raft(envelopes) => self.on_raft_messages(envelopes),
            StoreMsg::Write {
                mutations,
                callback,
            } => self.on_write(mutations, callback),
            StoreMsg::Txn { command, callback } => self.on_txn(command, callback),
            StoreMsg::MetaUpdate { update, callback } => self.propose_to(
                tessera_types::keys::META_RANGE_ID,
                tessera_proto::meta::raft_command::Kind::MetaUpdate(update),
                callback,
            ),
            StoreMsg::ObserveTimestamp {
                key,
                ts,
                term,
                callback,
            } => {
                let result = match self.replica_for_key(&key) {
                    Some(range_id) => {
                        let replica = self.replicas.get_mut(&range_id).expect("found above");
                        if replica.is_leader() {
                            replica.observe_timestamp(ts, term);
                            Ok(())
                        } else {
                            Err(replica.not_leader())
                        }
                    }
                    None => Err(Error::RangeNotFound { key }),
                };
                let _ = callback.send(result);
            }
            StoreMsg::Read { key, op, callback } => match self.replica_for_key(&key) {
                Some(range_id) => {
                    let read_id = self.next_id();
                    let replica = self.replicas.get_mut(&range_id).expect("found above");
                    replica.gate.load.lock().record(&key);
                    replica.read(
                        read_id,
                        PendingRead {
                            op,
                            callback,
                            min_applied: 0,
                        },
                        Instant::now(),
                        &self.engine,
                    );
                }
                None => {
                    let _ = callback.send(Err(Error::RangeNotFound { key }));
                }
            },
            StoreMsg::Bootstrap {
                ident,
                ranges,
                data,
                callback,
            } => {
                let _ = callback.send(self.on_bootstrap(ident, ranges, data));
            }
            StoreMsg::Replicas { callback } => {
                let _ = callback.send(Ok(self.replica_infos()));
            }
            StoreMsg::ChangeReplicas {
                range_id,
                change,
                callback,
            } => match self.replicas.get_mut(&range_id) {
                Some(replica) => replica.propose_change(change, callback),
                None => {
                    let _ = callback.send(Err(Error::RangeNotFound { key: Vec::new() }));
                }
            },
            StoreMsg::PrepareSplit {
                key,
                new_range_id,
                callback,
            } => self.on_split(key, new_range_id, true, callback),
            StoreMsg::Split {
                key,
                new_range_id,
                callback,
            } => self.on_split(key, new_range_id, false, callback),
            StoreMsg::AbortSplit {
                range_id,
                new_range_id,
                callback,
            } => self.propose_to(
                range_id,
                tessera_proto::meta::raft_command::Kind::AbortSplit(
                    tessera_proto::meta::AbortSplit { new_range_id },
                ),
                callback,
            ),
            StoreMsg::TransferLeader {
                range_id,
                to,
                callback,
            } => {
                let result = match self.replicas.get_mut(&range_id) {
                    Some(replica) => replica.transfer_leader(to),
                    None => Err(Error::NotLeader {
                        range_id,
                        leader: None,
                    }),
                };
                let _ = callback.send(result);
            }
            StoreMsg::Freeze {
                range_id,
                generation,
                frozen,
                callback,
            } => self.on_freeze(range_id, generation, frozen, callback),
            StoreMsg::Merge {
                range_id,
                merge,
                callback,
            } => self.propose_to(
                range_id,
                tessera_proto::meta::raft_command::Kind::Merge(merge),
                callback,
            ),
            StoreMsg::DestroyReplica {
                range_id,
                replica_id,
                callback,
            } => {
                let _ = callback.send(self.destroy_removed_replica(range_id, replica_id));
            }
            StoreMsg::RangeStatus { key, callback } => {
                let result = match self.replica_for_key(&key) {
                    None => Err(Error::RangeNotFound { key }),
                    Some(range_id) => {
                        let replica = &self.replicas[&range_id];
                        if replica.is_leader() {
                            Ok(self.replica_info(replica))
                        } else {
                            Err(replica.not_leader())
                        }
                    }
                };
                let _ = callback.send(result);
            }
            StoreMsg::RecordSize { range_id, size } => {
                if let Some(replica) = self.replicas.get_mut(&range_id) {
                    replica.size = Some(size);
                }
            }
            StoreMsg::SplitCheck { key, callback } => {
                let result = match self.replica_for_key(&key) {
                    None => Err(Error::RangeNotFound { key }),
                    Some(range_id) => {
                        let replica = &self.replicas[&range_id];
                        if replica.is_leader() {
                            Ok(None)
                        } else {
                            Err(replica.not_leader())
                        }
                    }
                };
                let _ = callback.send(result);
            }
            StoreMsg::Stop => return true,
        }
        false
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Proposes a command to this node's replica of `range_id`, which must
    /// lead it.
    fn propose_to(
        &mut self,
        range_id: RangeId,
        kind: tessera_proto::meta::raft_command::Kind,
        callback: ProposalCallback,
    ) {
        let proposal_id = self.next_id();
        match self.replicas.get_mut(&range_id) {
            Some(replica) => replica.propose(
                RaftCommand {
                    proposal_id,
                    kind: Some(kind),
                },
                callback,
            ),
            None => {
                let _ = callback.send(Err(Error::RangeNotFound { key: Vec::new() }));
            }
        }
    }

    fn replica_for_key(&self, key: &[u8]) -> Option<RangeId> {
        // A node holds few ranges so far; a span index replaces this scan
        // once ranges split.
        self.replicas
            .values()
            .find(|replica| replica.contains(key))
            .map(|replica| replica.range_id)
    }

    fn on_txn(&mut self, command: TxnCommand, callback: ProposalCallback) {
        let keys = crate::txn::command_keys(&command);
        let route_key = match (&command.kind, keys.first()) {
            (Some(tessera_proto::txn::txn_command::Kind::Gc(gc)), _) => gc.start.clone(),
            (_, Some(key)) => key.to_vec(),
            (_, None) => {
                let _ = callback.send(Err(Error::InvalidInput(
                    "a transactional command needs at least one key".into(),
                )));
                return;
            }
        };
        let Some(range_id) = self.replica_for_key(&route_key) else {
            let _ = callback.send(Err(Error::RangeNotFound { key: route_key }));
            return;
        };
        let replica = self.replicas.get_mut(&range_id).expect("found above");
        replica.gate.load.lock().record(&route_key);
        if let Some(key) = keys.iter().find(|key| !replica.contains(key)) {
            let _ = callback.send(Err(Error::CrossRange { key: key.to_vec() }));
            return;
        }
        let mut command = command;
        let gate = replica.gate.clone();
        let async_commit = if replica.is_leader() {
            let term = replica.raw.raft.term;
            match crate::replica::prepare_async_commit(&gate, range_id, term, &mut command) {
                Ok(prepared) => prepared,
                Err(err) => {
                    let _ = callback.send(Err(err));
                    return;
                }
            }
        } else {
            None
        };
        let check = replica.precheck(&command);
        if let Precheck::Answered(answer) = check {
            let _ = callback.send(Ok(Some(answer)));
            return;
        }
        self.next_id += 1;
        let index = replica.propose_txn(command, self.next_id, check, callback);
        if let Some((min_commit_ts, mut records)) = async_commit {
            if let Some(index) = index {
                records.pending_commits.insert(index, min_commit_ts);
            }
        }
    }

    /// Proposes the first step of a split at `key` (`prepare`) or its last.
    fn on_split(
        &mut self,
        key: Vec<u8>,
        new_range_id: RangeId,
        prepare: bool,
        callback: ProposalCallback,
    ) {
        let Some(range_id) = self.replica_for_key(&key) else {
            let _ = callback.send(Err(Error::RangeNotFound { key }));
            return;
        };
        if self.replicas.contains_key(&new_range_id) {
            let _ = callback.send(Err(Error::InvalidInput(format!(
                "range id {new_range_id} is in use"
            ))));
            return;
        }
        let replica = self.replicas.get_mut(&range_id).expect("found above");
        let Some(descriptor) = replica.descriptor().cloned() else {
            let _ = callback.send(Err(replica.not_leader()));
            return;
        };
        if descriptor.start_key == key {
            let _ = callback.send(Err(Error::AlreadySplit { key }));
            return;
        }
        use tessera_proto::meta::raft_command::Kind;
        let kind = if prepare {
            if replica.raw.raft.has_pending_conf() {
                // Replicas must not change between the split's steps.
                let _ = callback.send(Err(Error::Changed(format!(
                    "a membership change of range {range_id} is still being applied"
                ))));
                return;
            }
            if let Err(err) = replica.check_no_pending_split() {
                // Its apply would refuse it: refuse it here, without
                // noting a split proposed in this term, so that a split an
                // earlier leader left pending still counts as inherited
                // (the upkeep settles those without waiting).
                let _ = callback.send(Err(err));
                return;
            }
            Kind::PrepareSplit(tessera_proto::meta::PrepareSplit {
                split_key: key,
                new_range_id,
                generation: descriptor.generation,
            })
        } else {
            Kind::Split(tessera_proto::meta::Split {
                split_key: key,
                new_range_id,
            })
        };
        self.next_id += 1;
        let command = RaftCommand {
            proposal_id: self.next_id,
            kind: Some(kind),
        };
        replica.propose(command, callback);
        if prepare {
            replica.note_split_proposed();
        }
    }

    /// Starts the replicas of the ranges that splits applied in this turn
    /// created (their state is written). The replica on the node that led
    /// the split campaigns at once, and votes that arrived for the new range
    /// before it existed here are delivered now.
    fn start_split_ranges(&mut self) -> Result<()> {
        let mut created = Vec::new();
        for replica in self.replicas.values_mut() {
            let leader = replica.is_leader();
            for descriptor in replica.splits.drain(..) {
                created.push((descriptor, replica.replica_id, leader));
            }
        }
        for (descriptor, replica_id, leader) in created {
            let range_id = descriptor.range_id;
            let mut storage = ReplicaStorage::load(self.engine.clone(), range_id)?;
            // A message from the new range's leader may have created an
            // uninitialized replica here first, which may have voted: keep
            // its term and vote. Its own hard state (commit 0) may also have
            // been written over the split's after the split applied, in the
            // same turn: the new range's commit index is at least where its
            // log starts.
            let early = self
                .replicas
                .remove(&range_id)
                .map(|early| early.raw.raft.hard_state());
            let mut kept = storage.hard_state().clone();
            if let Some(hard_state) = early.filter(|h| h.term > kept.term) {
                kept.term = hard_state.term;
                kept.vote = hard_state.vote;
            }
            kept.commit = kept.commit.max(storage.truncated_index());
            if &kept != storage.hard_state() {
                let mut batch = WriteBatch::new();
                storage.stage_hard_state(&kept, &mut batch);
                self.engine.write(&batch, true)?;
            }
            let mut replica = self.new_replica(replica_id, storage)?;
            if leader {
                replica.raw.campaign()?;
            }
            tracing::info!(
                node = self.node_id,
                range_id,
                start = ?descriptor.start_key,
                "started a range split off"
            );
            self.replicas.insert(range_id, replica);
            self.gates_moved = true;
            if let Some(messages) = self.early_votes.remove(&range_id) {
                self.on_raft_messages(messages);
            }
        }
        Ok(())
    }

    fn on_freeze(
        &mut self,
        range_id: RangeId,
        generation: u64,
        frozen: bool,
        callback: ProposalCallback,
    ) {
        let Some(replica) = self.replicas.get_mut(&range_id) else {
            let _ = callback.send(Err(Error::RangeNotFound { key: Vec::new() }));
            return;
        };
        if frozen && replica.raw.raft.has_pending_conf() {
            // The merge checks the replicas' nodes after the freeze: no
            // membership change may still be on its way.
            let _ = callback.send(Err(Error::ProposalDropped));
            return;
        }
        self.next_id += 1;
        let kind = if frozen {
            tessera_proto::meta::raft_command::Kind::Freeze(tessera_proto::meta::Freeze {
                generation,
            })
        } else {
            tessera_proto::meta::raft_command::Kind::Unfreeze(tessera_proto::meta::Unfreeze {
                generation,
            })
        };
        let command = RaftCommand {
            proposal_id: self.next_id,
            kind: Some(kind),
        };
        replica.propose(command, callback);
    }

    /// Drops the replicas of ranges that merges applied in this turn
    /// absorbed (their state was removed in the apply batch).
    fn drop_merged_ranges(&mut self) {
        let merged: Vec<RangeId> = self
            .replicas
            .values_mut()
            .flat_map(|replica| replica.merged.drain(..))
            .collect();
        for range_id in merged {
            self.tombstones.insert(range_id, ReplicaId::MAX);
            if let Some(mut replica) = self.replicas.remove(&range_id) {
                self.gates_moved = true;
                replica.fail_pending(|| Error::Frozen { range_id });
                tracing::info!(node = self.node_id, range_id, "merged away a range");
            }
        }
    }

    /// Removes the replica of a range that no longer has one on this node
    /// (the meta range says so: see the server's replica GC), with its
    /// span's data except where another local replica holds it.
    fn destroy_removed_replica(&mut self, range_id: RangeId, replica_id: ReplicaId) -> Result<()> {
        let Some(replica) = self.replicas.get(&range_id) else {
            return Ok(());
        };
        if replica.replica_id != replica_id {
            return Err(Error::InvalidInput(format!(
                "range {range_id} has replica {} here, not {replica_id}",
                replica.replica_id
            )));
        }
        if replica.is_leader() {
            return Err(Error::InvalidInput(format!(
                "the replica of range {range_id} here leads it"
            )));
        }
        let mut batch = WriteBatch::new();
        if let Some(descriptor) = replica.descriptor() {
            let others: Vec<(Vec<u8>, Vec<u8>)> = self
                .replicas
                .values()
                .filter(|r| r.range_id != range_id)
                .filter_map(|r| r.descriptor())
                .map(|d| (d.start_key.clone(), d.end_key.clone()))
                .collect();
            for (start, end) in uncovered(&descriptor.start_key, &descriptor.end_key, others) {
                for cf in Cf::REPLICATED {
                    let (from, to) = cf.span_bounds(&start, &end);
                    batch.delete_range(cf, from, to);
                }
            }
        }
        ReplicaStorage::stage_destroy(range_id, replica_id, &mut batch);
        self.engine.write(&batch, true)?;
        self.tombstones.insert(range_id, replica_id);
        if let Some(mut replica) = self.replicas.remove(&range_id) {
            self.gates_moved = true;
            replica.fail_pending(|| Error::RangeNotFound { key: Vec::new() });
        }
        tracing::info!(
            node = self.node_id,
            range_id,
            "removed a replica that left its range"
        );
        Ok(())
    }

    fn on_write(&mut self, mutations: Vec<Mutation>, callback: ProposalCallback) {
        let Some(first) = mutations.first().and_then(mutation_key) else {
            let _ = callback.send(Err(Error::InvalidInput(
                "a write needs at least one mutation".into(),
            )));
            return;
        };
        let Some(range_id) = self.replica_for_key(first) else {
            let _ = callback.send(Err(Error::RangeNotFound {
                key: first.to_vec(),
            }));
            return;
        };
        let replica = self.replicas.get_mut(&range_id).expect("found above");
        replica.gate.load.lock().record(first);
        for m in &mutations {
            match mutation_key(m) {
                None => {
                    let _ = callback.send(Err(Error::InvalidInput(
                        "mutation without an operation".into(),
                    )));
                    return;
                }
                Some(key) if !replica.contains(key) => {
                    let _ = callback.send(Err(Error::CrossRange { key: key.to_vec() }));
                    return;
                }
                Some(_) => {}
            }
        }
        self.next_id += 1;
        let command = RaftCommand {
            proposal_id: self.next_id,
            kind: Some(tessera_proto::meta::raft_command::Kind::Write(
                tessera_proto::meta::WriteBatch { mutations },
            )),
        };
        replica.propose(command, callback);
    }

    fn on_raft_messages(&mut self, envelopes: Vec<RaftEnvelope>) {
        for envelope in envelopes {
            if envelope.to_node != self.node_id {
                tracing::warn!(
                    node = self.node_id,
                    to = envelope.to_node,
                    "dropping a raft message for another node"
                );
                continue;
            }
            let msg: Message = match protobuf::Message::parse_from_bytes(&envelope.message) {
                Ok(msg) => msg,
                Err(err) => {
                    tracing::warn!(node = self.node_id, from = envelope.from_node, %err, "dropping an undecodable raft message");
                    continue;
                }
            };
            if msg.to != envelope.to_replica || msg.from != envelope.from_replica {
                tracing::warn!(
                    node = self.node_id,
                    from = envelope.from_node,
                    "dropping a raft message whose envelope does not match it"
                );
                continue;
            }
            if self
                .tombstones
                .get(&envelope.range_id)
                .is_some_and(|&dead| envelope.to_replica <= dead)
            {
                continue;
            }
            if self.refuses_votes(&msg) {
                continue;
            }
            if !self.replicas.contains_key(&envelope.range_id) {
                if is_vote(&msg) {
                    // Perhaps a range split off by an entry this node has
                    // not applied yet: keep a few votes for when it has.
                    let ranges = self.early_votes.len();
                    let votes = self.early_votes.entry(envelope.range_id).or_default();
                    if votes.len() < MAX_EARLY_VOTES && ranges <= MAX_EARLY_VOTES {
                        votes.push(envelope);
                    }
                    continue;
                }
                if !self.may_create_replica(&msg) {
                    continue;
                }
                let storage = ReplicaStorage::uninitialized(self.engine.clone(), envelope.range_id);
                match self.new_replica(envelope.to_replica, storage) {
                    Ok(replica) => {
                        tracing::info!(
                            node = self.node_id,
                            range_id = envelope.range_id,
                            "created an uninitialized replica for a new member"
                        );
                        self.replicas.insert(envelope.range_id, replica);
                        self.gates_moved = true;
                    }
                    Err(err) => {
                        tracing::warn!(node = self.node_id, %err, "cannot create replica");
                        continue;
                    }
                }
            }
            let replica = self
                .replicas
                .get_mut(&envelope.range_id)
                .expect("inserted above");
            if replica.replica_id != envelope.to_replica {
                tracing::debug!(
                    node = self.node_id,
                    range_id = envelope.range_id,
                    "dropping a message for a stale replica id"
                );
                continue;
            }
            if msg.get_msg_type() == MessageType::MsgSnapshot {
                if let Err(err) = self.drop_merged_into(envelope.range_id, &msg) {
                    tracing::warn!(node = self.node_id, %err, "cannot remove merged replicas");
                    continue;
                }
                if let Some(other) = self.overlapping_replica(envelope.range_id, &msg) {
                    // This node still holds the span in another range, whose
                    // split has not applied here yet: applying the snapshot
                    // would let that range's older entries overwrite newer
                    // data. The leader sends another later.
                    tracing::debug!(
                        node = self.node_id,
                        range_id = envelope.range_id,
                        other,
                        "dropping a snapshot that overlaps another range"
                    );
                    continue;
                }
            }
            let replica = self
                .replicas
                .get_mut(&envelope.range_id)
                .expect("inserted above");
            replica
                .peers
                .insert(envelope.from_replica, envelope.from_node);
            if let Err(err) = replica.raw.step(msg) {
                tracing::debug!(node = self.node_id, range_id = envelope.range_id, %err, "raft step");
            }
        }
    }

    /// A snapshot of a range that has absorbed ranges this node still holds
    /// (this node missed the merge): those replicas, wholly inside the
    /// snapshot's span and older than it, are removed first. Their data goes
    /// with the snapshot's, which replaces the whole span.
    fn drop_merged_into(&mut self, range_id: RangeId, msg: &Message) -> Result<()> {
        use prost::Message as _;
        let data = msg.get_snapshot().get_data();
        let Some(incoming) = tessera_proto::meta::RangeSnapshot::decode(data)
            .ok()
            .and_then(|s| s.descriptor)
        else {
            return Ok(());
        };
        let absorbed: Vec<(RangeId, ReplicaId)> = self
            .replicas
            .values()
            .filter(|r| r.range_id != range_id)
            .filter(|r| {
                r.descriptor().is_some_and(|d| {
                    d.generation < incoming.generation
                        && d.start_key >= incoming.start_key
                        && (incoming.end_key.is_empty()
                            || (!d.end_key.is_empty() && d.end_key <= incoming.end_key))
                })
            })
            .map(|r| (r.range_id, r.replica_id))
            .collect();
        if absorbed.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::new();
        for (absorbed, replica_id) in &absorbed {
            ReplicaStorage::stage_destroy(*absorbed, *replica_id, &mut batch);
        }
        self.engine.write(&batch, true)?;
        for (absorbed, replica_id) in absorbed {
            self.tombstones.insert(absorbed, replica_id);
            if let Some(mut replica) = self.replicas.remove(&absorbed) {
                self.gates_moved = true;
                replica.fail_pending(|| Error::Frozen { range_id: absorbed });
            }
            tracing::info!(
                node = self.node_id,
                range_id = absorbed,
                into = range_id,
                "removed a replica merged away (by snapshot)"
            );
        }
        Ok(())
    }

    /// The initialized replica of another range whose span overlaps the
    /// span of the snapshot in `msg`, if any.
    fn overlapping_replica(&self, range_id: RangeId, msg: &Message) -> Option<RangeId> {
        use prost::Message as _;
        let data = msg.get_snapshot().get_data();
        let snapshot = tessera_proto::meta::RangeSnapshot::decode(data).ok()?;
        let incoming = snapshot.descriptor?;
        let overlaps = |d: &RangeDescriptor| {
            (incoming.end_key.is_empty() || d.start_key < incoming.end_key)
                && (d.end_key.is_empty() || incoming.start_key < d.end_key)
        };
        self.replicas
            .values()
            .filter(|r| r.range_id != range_id)
            .find(|r| r.descriptor().is_some_and(overlaps))
            .map(|r| r.range_id)
    }

    /// A message from a leader for a range this node does not hold means this
    /// node was added to the range: create the replica and let the leader
    /// send it a snapshot.
    fn may_create_replica(&self, msg: &Message) -> bool {
        self.handle.cluster_id() != 0
            && matches!(
                msg.get_msg_type(),
                MessageType::MsgAppend | MessageType::MsgHeartbeat | MessageType::MsgSnapshot
            )
    }

    fn on_bootstrap(
        &mut self,
        ident: StoreIdent,
        ranges: Vec<RangeDescriptor>,
        data: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<()> {
        if ident.node_id != self.node_id {
            return Err(Error::InvalidInput(format!(
                "bootstrap for node {} sent to node {}",
                ident.node_id, self.node_id
            )));
        }
        if let Some(existing) = load_ident(self.engine.as_ref())? {
            if existing.cluster_id == ident.cluster_id {
                return Ok(());
            }
            return Err(Error::InvalidInput(format!(
                "node {} already belongs to cluster {:016x}",
                self.node_id, existing.cluster_id
            )));
        }
        let mut batch = WriteBatch::new();
        batch.put(Cf::Raft, keys::IDENT, ident.encode_to_vec());
        let mut mine = Vec::new();
        for descriptor in &ranges {
            let Some(me) = descriptor
                .replicas
                .iter()
                .find(|r| r.node_id == self.node_id)
            else {
                continue;
            };
            ReplicaStorage::stage_bootstrap(descriptor.range_id, descriptor, &mut batch);
            batch.put(
                Cf::Raft,
                keys::replica_index(descriptor.range_id),
                me.replica_id.to_be_bytes().to_vec(),
            );
            for (key, value) in &data {
                if tessera_types::keys::span_contains(
                    &descriptor.start_key,
                    &descriptor.end_key,
                    key,
                ) {
                    batch.put(Cf::Raw, key.clone(), value.clone());
                }
            }
            mine.push((descriptor.clone(), me.replica_id));
        }
        self.engine.write(&batch, true)?;
        for (descriptor, replica_id) in mine {
            let storage = ReplicaStorage::load(self.engine.clone(), descriptor.range_id)?;
            let mut replica = self.new_replica(replica_id, storage)?;
            // The lowest replica campaigns at once so the cluster does not
            // wait a whole election timeout for its first leaders.
            if descriptor.replicas.iter().map(|r| r.replica_id).min() == Some(replica_id) {
                replica.raw.campaign()?;
            }
            self.replicas.insert(descriptor.range_id, replica);
            self.gates_moved = true;
        }
        self.handle
            .cluster_id
            .store(ident.cluster_id, Ordering::Release);
        tracing::info!(
            node = self.node_id,
            cluster = format!("{:016x}", ident.cluster_id),
            "bootstrapped"
        );
        Ok(())
    }

    fn replica_infos(&self) -> Vec<ReplicaInfo> {
        self.replicas
            .values()
            .map(|replica| self.replica_info(replica))
            .collect()
    }

    fn replica_info(&self, replica: &Replica) -> ReplicaInfo {
        let store = replica.raw.store();
        let load = replica.gate.load.lock();
        ReplicaInfo {
            descriptor: store.descriptor.clone(),
            range_id: replica.range_id,
            replica_id: replica.replica_id,
            leader_node: if replica.is_leader() {
                Some(self.node_id)
            } else {
                replica.leader_node()
            },
            is_leader: replica.is_leader(),
            term: replica.raw.raft.term,
            commit_index: replica.raw.raft.raft_log.committed,
            applied_index: store.apply.applied_index,
            first_index: store.apply.truncated_index + 1,
            gc_threshold: store.apply.gc_threshold,
            frozen: store.apply.frozen,
            pending_split: store.apply.pending_split.clone(),
            inherited_pending_split: replica.inherited_pending_split(),
            qps: load.rate(),
            load_split_key: load.median_key().map(<[u8]>::to_vec),
            size: replica.size,
            written_bytes: replica.written_bytes,
        }
    }

    /// One round of Ready handling for every replica: persist (one batch, one
    /// sync), send, apply (one batch), answer, advance.
    fn process_ready(&mut self) -> Result<()> {
        let mut persist = WriteBatch::new();
        // Sync only when Raft needs it: new entries, a snapshot, or a new
        // term or vote. A hard state whose commit index alone moved can be
        // lost in a crash; Raft learns the commit index again.
        let mut must_sync = false;
        let mut outbox: BTreeMap<NodeId, Vec<RaftEnvelope>> = BTreeMap::new();
        let mut readies = Vec::new();
        let mut early_apply = WriteBatch::new();
        let mut early_replies: Vec<Reply> = Vec::new();
        let mut commits_unwritten = false;
        for (range_id, replica) in self.replicas.iter_mut() {
            if !replica.raw.has_ready() {
                continue;
            }
            let mut ready = replica.raw.ready();
            must_sync |= ready.must_sync() || !ready.snapshot().is_empty();
            if let Some(soft) = ready.ss() {
                if soft.raft_state != StateRole::Leader {
                    replica.on_lost_leadership();
                }
            }
            route(self.node_id, replica, ready.take_messages(), &mut outbox);
            if !ready.snapshot().is_empty() {
                replica
                    .raw
                    .mut_store()
                    .stage_snapshot(ready.snapshot(), &mut persist)?;
                persist.put(
                    Cf::Raft,
                    keys::replica_index(*range_id),
                    replica.replica_id.to_be_bytes().to_vec(),
                );
                replica.refresh_peers();
                tracing::info!(
                    node = self.node_id,
                    range_id,
                    index = ready.snapshot().get_metadata().index,
                    "applying snapshot"
                );
            }
            let durable = replica.raw.store().hard_state().clone();
            commits_unwritten |= ready
                .hs()
                .is_some_and(|hs| hs.commit > replica.raw.store().last_index());
            replica
                .raw
                .mut_store()
                .stage_append(ready.entries(), &mut persist);
            if let Some(hard_state) = ready.hs() {
                replica
                    .raw
                    .mut_store()
                    .stage_hard_state(hard_state, &mut persist);
            }
            replica.on_read_states(ready.take_read_states());
            // Entries committed by earlier turns are durable already: apply
            // them before this turn's sync so that their answers do not wait
            // on it. (After a snapshot, everything waits for the snapshot.)
            if ready.snapshot().is_empty() {
                let committed = ready.take_committed_entries();
                if let Some(last) = committed.last().map(|entry| entry.index) {
                    early_replies.extend(replica.stage_apply(committed, &mut early_apply)?);
                    replica
                        .raw
                        .store()
                        .stage_early_commit(&durable, last, &mut early_apply);
                }
            }
            readies.push((*range_id, ready));
        }
        if readies.is_empty() {
            return Ok(());
        }
        let applied_any = !early_apply.is_empty();
        if applied_any {
            self.engine.write(&early_apply, false)?;
            if commits_unwritten {
                failpoint::crash_if_armed(failpoint::RAFT_AFTER_EARLY_APPLY);
            }
        }
        for reply in early_replies {
            reply();
        }
        // A leader's appends may leave before its own write: the followers'
        // syncs then overlap the leader's instead of following it.
        for (node, envelopes) in std::mem::take(&mut outbox) {
            self.transport.send(node, envelopes);
        }
        if !persist.is_empty() {
            self.engine.write(&persist, must_sync)?;
        }

        let mut apply = WriteBatch::new();
        let mut replies: Vec<Reply> = Vec::new();
        let mut advanced = Vec::with_capacity(readies.len());
        for (range_id, mut ready) in readies {
            let replica = self
                .replicas
                .get_mut(&range_id)
                .expect("replica of a ready");
            route(
                self.node_id,
                replica,
                ready.take_persisted_messages(),
                &mut outbox,
            );
            let committed = ready.take_committed_entries();
            let mut light = replica.raw.advance(ready);
            if let Some(commit) = light.commit_index() {
                replica.raw.mut_store().stage_commit(commit, &mut apply);
            }
            route(self.node_id, replica, light.take_messages(), &mut outbox);
            replies.extend(replica.stage_apply(committed, &mut apply)?);
            replies.extend(replica.stage_apply(light.take_committed_entries(), &mut apply)?);
            replica.settle_commit_broadcast();
            let storage = replica.raw.store();
            if storage.apply.applied_index - storage.apply.truncated_index
                > self.config.log_compact_threshold
            {
                let keep = self.config.log_compact_threshold / 2;
                let compact_to = storage.apply.applied_index - keep;
                replica
                    .raw
                    .mut_store()
                    .stage_compact(compact_to, &mut apply)?;
            }
            advanced.push(range_id);
        }
        if !apply.is_empty() {
            self.engine.write(&apply, false)?;
        }
        if applied_any || !apply.is_empty() {
            self.handle.applied.send_modify(|turns| *turns += 1);
        }
        for reply in replies {
            reply();
        }
        for range_id in advanced {
            let replica = self
                .replicas
                .get_mut(&range_id)
                .expect("replica of a ready");
            replica.raw.advance_apply();
            replica.serve_reads(&self.engine);
            self.gates_moved |= replica.publish_gate(true);
        }
        for (node, envelopes) in outbox {
            self.transport.send(node, envelopes);
        }
        self.drop_merged_ranges();
        self.start_split_ranges()
    }
}

/// The parts of `[start, end)` that no span in `others` covers.
fn uncovered(start: &[u8], end: &[u8], others: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut others: Vec<_> = others
        .into_iter()
        .filter(|(s, e)| {
            (end.is_empty() || s.as_slice() < end) && (e.is_empty() || e.as_slice() > start)
        })
        .collect();
    others.sort();
    let mut parts = Vec::new();
    let mut cursor = start.to_vec();
    for (s, e) in others {
        if s > cursor {
            parts.push((cursor.clone(), s.clone()));
        }
        if e.is_empty() {
            return parts;
        }
        cursor = cursor.max(e);
    }
    if end.is_empty() || cursor.as_slice() < end {
        parts.push((cursor, end.to_vec()));
    }
    parts
}

/// How many vote messages for unknown ranges a node keeps (per range, and
/// ranges), for ranges that a split it has not applied yet will create.
const MAX_EARLY_VOTES: usize = 16;

impl StoreLoop {
    /// Whether to drop `msg`, a request for this node's vote, because the
    /// node started less than an election timeout ago. Before it stopped,
    /// its replicas may have acknowledged leaders whose leases still run,
    /// and a restarted replica no longer knows to refuse their rivals
    /// (raft-rs forgets when it last heard from its leader). A leadership
    /// transfer's election is not held back: the old leader gave up its
    /// lease before asking for it.
    fn refuses_votes(&self, msg: &Message) -> bool {
        is_vote(msg)
            && msg.get_context() != raft::CAMPAIGN_TRANSFER
            && self.config.lease_duration() > Duration::ZERO
            && self.started.elapsed()
                < self.config.tick_interval * self.config.election_ticks as u32
    }
}

fn is_vote(msg: &Message) -> bool {
    matches!(
        msg.get_msg_type(),
        MessageType::MsgRequestVote | MessageType::MsgRequestPreVote
    )
}

/// Wraps a replica's outgoing messages in envelopes, grouped by node.
fn route(
    node_id: NodeId,
    replica: &mut Replica,
    messages: Vec<Message>,
    outbox: &mut BTreeMap<NodeId, Vec<RaftEnvelope>>,
) {
    for msg in messages {
        let Some(&to_node) = replica.peers.get(&msg.to) else {
            tracing::debug!(
                node = node_id,
                range_id = replica.range_id,
                to = msg.to,
                "no node known for replica"
            );
            continue;
        };
        let to_replica = msg.to;
        let is_snapshot = msg.get_msg_type() == MessageType::MsgSnapshot;
        outbox.entry(to_node).or_default().push(RaftEnvelope {
            range_id: replica.range_id,
            from_node: node_id,
            from_replica: replica.replica_id,
            to_node,
            to_replica,
            message: encode_pb(&msg),
        });
        if is_snapshot {
            // The transport gives no delivery receipts. Reporting the snapshot
            // as sent lets the leader probe the follower; if it was lost, the
            // probe fails against the compacted log and a new one is sent.
            replica
                .raw
                .report_snapshot(to_replica, SnapshotStatus::Finish);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::uncovered;

    fn span(start: &str, end: &str) -> (Vec<u8>, Vec<u8>) {
        (start.as_bytes().to_vec(), end.as_bytes().to_vec())
    }

    #[test]
    fn uncovered_parts_of_a_span() {
        // Nothing else: the whole span.
        assert_eq!(uncovered(b"b", b"m", vec![]), vec![span("b", "m")]);
        // Holes around and between other spans; spans outside are ignored.
        assert_eq!(
            uncovered(
                b"b",
                b"m",
                vec![
                    span("d", "f"),
                    span("h", "j"),
                    span("m", "z"),
                    span("a", "b")
                ]
            ),
            vec![span("b", "d"), span("f", "h"), span("j", "m")]
        );
        // Covered at both ends, and wholly.
        assert_eq!(
            uncovered(b"b", b"m", vec![span("a", "c"), span("k", "")]),
            vec![span("c", "k")]
        );
        assert!(uncovered(b"b", b"m", vec![span("a", "")]).is_empty());
        // An open end.
        assert_eq!(
            uncovered(b"b", b"", vec![span("c", "d")]),
            vec![span("b", "c"), span("d", "")]
        );
    }
}
