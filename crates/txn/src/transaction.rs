//! The transaction coordinator.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use tessera_kv::KvClient;
use tessera_proto::txn::{
    self as pb, mutation::Op, txn_command::Kind, txn_error, LockInfo, TxnCommand, TxnState,
};
use tessera_types::{keys, Timestamp};

use crate::tso::Stamp;
use crate::{RangeCache, TsoClient, TxnError, TxnResult};

/// How long after asking the oracle for a timestamp it may still start a
/// transaction that reads at a recent timestamp ([`TxnClient::begin_recent`]).
/// A commit that writes the watched key waits twice this long before it
/// answers, so that no transaction begun after the answer reads the key
/// from before the commit.
pub const RECENT_TS_MAX_AGE: Duration = Duration::from_millis(20);

/// How a [`TxnClient`]'s transactions behave.
#[derive(Clone, Debug)]
pub struct TxnOptions {
    /// How long a lock survives its transaction's coordinator, measured from
    /// the moment of prewrite.
    pub lock_ttl: Duration,
    /// How long a read, a lock or a prewrite waits for a live
    /// transaction's lock, unless the caller says otherwise.
    pub lock_wait: Duration,
    /// Commit writes that fall in one range in one step. Off only to test
    /// two-phase commit on one range.
    pub one_phase_commit: bool,
    /// Commit writes over several ranges asynchronously: the transaction
    /// is committed once every prewrite is in place, at a timestamp they
    /// give, and its commit is answered then (see
    /// [`Transaction::commit`]). Off: its primary's commit decides it, at a
    /// timestamp from the oracle.
    pub async_commit: bool,
    /// A key of the meta range that the oracle reads with each batch of
    /// timestamps (see [`TsoClient`]): a transaction reads it from its
    /// timestamp's batch instead of from its range. Empty: none.
    pub watched_key: Vec<u8>,
}

impl Default for TxnOptions {
    fn default() -> Self {
        TxnOptions {
            lock_ttl: Duration::from_secs(3),
            lock_wait: Duration::from_secs(10),
            one_phase_commit: true,
            async_commit: true,
            watched_key: Vec::new(),
        }
    }
}

/// Starts transactions; one per gateway, shared by its sessions.
#[derive(Clone)]
pub struct TxnClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) kv: KvClient,
    tso: TsoClient,
    pub(crate) ranges: RangeCache,
    options: TxnOptions,
    /// The highest commit timestamp of this client's transactions: a
    /// recent timestamp below it would miss their writes.
    last_commit: AtomicU64,
    /// The runtime the client was made on, which releases the locks of a
    /// transaction dropped unfinished: the SQL layer drops an aborted
    /// transaction on a session's own thread, outside any runtime.
    runtime: tokio::runtime::Handle,
}

impl TxnClient {
    /// A client of the cluster reached through `kv`. Must be created inside
    /// a tokio runtime (the timestamp client spawns a task).
    pub fn new(kv: KvClient, options: TxnOptions) -> Self {
        TxnClient {
            inner: Arc::new(Inner {
                tso: TsoClient::new(kv.clone(), options.watched_key.clone()),
                ranges: RangeCache::new(kv.clone()),
                kv,
                options,
                last_commit: AtomicU64::new(0),
                runtime: tokio::runtime::Handle::current(),
            }),
        }
    }

    /// Splits the range holding `key` at `key` (a no-op if a range starts
    /// there), and refreshes the range cache. Returns whether a new range
    /// was made.
    pub async fn split(&self, key: &[u8]) -> TxnResult<bool> {
        let (_, _, created) = self.inner.kv.split(key).await?;
        self.inner.ranges.refresh().await?;
        Ok(created)
    }

    /// Moves the lease of range `range_id` (its Raft leadership: the lease
    /// holder serves its reads and writes) to its voting replica on `node`;
    /// returns once `node` leads it.
    pub async fn transfer_lease(&self, range_id: u64, node: u64) -> TxnResult<()> {
        self.inner.ranges.refresh().await?;
        let descriptor = self
            .inner
            .ranges
            .all()
            .into_iter()
            .find(|d| d.range_id == range_id)
            .ok_or_else(|| TxnError::InvalidRequest(format!("range {range_id} does not exist")))?;
        let voter = |r: &&tessera_proto::meta::ReplicaDescriptor| {
            r.role == tessera_proto::meta::ReplicaRole::Voter as i32
        };
        if !descriptor
            .replicas
            .iter()
            .filter(voter)
            .any(|r| r.node_id == node)
        {
            let nodes: Vec<String> = descriptor
                .replicas
                .iter()
                .filter(voter)
                .map(|r| r.node_id.to_string())
                .collect();
            return Err(TxnError::InvalidRequest(format!(
                "node {node} holds no voting replica of range {range_id} (its voters are on \
                 nodes {})",
                nodes.join(", ")
            )));
        }
        self.inner
            .kv
            .transfer_leader(&descriptor.start_key, range_id, node)
            .await?;
        Ok(())
    }

    /// The node holding each range's lease (leading it), asked of the ranges'
    /// leaders in parallel; None where no leader answered.
    pub async fn lease_holders(&self, starts: &[Vec<u8>]) -> Vec<Option<u64>> {
        self.range_statuses(starts)
            .await
            .into_iter()
            .map(|status| status.map(|s| s.node_id))
            .collect()
    }

    /// Each range's leader, size and load, asked of the ranges' leaders in
    /// parallel (within 2 s); None where no leader answered.
    pub async fn range_statuses(
        &self,
        starts: &[Vec<u8>],
    ) -> Vec<Option<tessera_proto::kv::LeaseHolderResponse>> {
        let kv = &self.inner.kv;
        futures::future::join_all(starts.iter().map(|start| async move {
            tokio::time::timeout(Duration::from_secs(2), kv.range_status(start))
                .await
                .ok()
                .and_then(Result::ok)
        }))
        .await
    }

    /// The cluster's nodes, as the meta range records them, each asked
    /// (within a second) what it holds; a node that does not answer is not
    /// live.
    pub async fn nodes(&self) -> TxnResult<Vec<NodeStatus>> {
        let kv = &self.inner.kv;
        let records = kv.node_records().await?;
        Ok(
            futures::future::join_all(records.into_iter().map(|record| async move {
                let status = kv
                    .node_replicas(&record.address, Duration::from_secs(1))
                    .await
                    .ok()
                    .map(|replicas| {
                        let leases = replicas.iter().filter(|r| r.is_leader).count();
                        (replicas.len(), leases)
                    });
                NodeStatus {
                    node_id: record.node_id,
                    address: record.address,
                    live: status.is_some(),
                    decommissioned: record.decommissioned,
                    replicas: status.map(|(replicas, _)| replicas),
                    leases: status.map(|(_, leases)| leases),
                }
            }))
            .await,
        )
    }

    /// The ranges, as the meta range records them (refreshed now).
    pub async fn ranges(&self) -> TxnResult<Vec<tessera_proto::meta::RangeDescriptor>> {
        self.inner.ranges.refresh().await?;
        Ok(self.inner.ranges.all())
    }

    /// A new timestamp from the oracle.
    pub async fn timestamp(&self) -> TxnResult<Timestamp> {
        self.inner.tso.timestamp().await
    }

    /// Starts a transaction at a fresh timestamp: it reads the state as of
    /// then, plus its own writes.
    pub async fn begin(&self) -> TxnResult<Transaction> {
        let stamp = self.inner.tso.stamp().await?;
        Ok(self.transaction(stamp, false))
    }

    /// Starts a transaction that only reads, at a recent timestamp if this
    /// client asked the oracle for one less than [`RECENT_TS_MAX_AGE`] ago
    /// (and none of its own commits is newer), else at a fresh one: a
    /// single read-only statement saves the oracle's round trip. Its reads
    /// see what reads at a fresh timestamp would, or fail with
    /// [`TxnError::NewerWrite`] (the caller runs them again in a
    /// transaction begun with [`TxnClient::begin`]): a key they read
    /// changed above the timestamp, or may have (see
    /// `MvccReader::latest`). Locks, flows and writes fail so too.
    pub async fn begin_recent(&self) -> TxnResult<Transaction> {
        let last_commit = self.inner.last_commit.load(Ordering::Relaxed);
        match self.inner.tso.recent_stamp(RECENT_TS_MAX_AGE) {
            Some(stamp) if stamp.ts.0 >= last_commit => Ok(self.transaction(stamp, true)),
            _ => self.begin().await,
        }
    }

    fn transaction(&self, stamp: Stamp, recent: bool) -> Transaction {
        Transaction {
            client: self.clone(),
            start_ts: stamp.ts,
            read_ts: stamp.ts,
            watched: stamp.read,
            recent,
            started: Instant::now(),
            writes: BTreeMap::new(),
            primary: None,
            locked: BTreeSet::new(),
            heartbeat: None,
            finished: false,
        }
    }
}

/// One transaction: snapshot reads, buffered writes, and optionally
/// pessimistic locks, committed atomically by [`Transaction::commit`].
///
/// Reads see the snapshot at the read timestamp: the start, unless
/// [`Transaction::refresh_read_ts`] moved it (a READ COMMITTED statement).
/// [`Transaction::lock_keys`] locks keys as of the read timestamp; locked
/// keys cannot change until the transaction ends, so their writes commit
/// without conflict. While the transaction holds locks, a background task
/// renews its primary lock's TTL (heartbeats), so that a long transaction is
/// not mistaken for a dead one. Dropping a transaction that holds locks
/// without committing rolls them back in the background.
pub struct Transaction {
    client: TxnClient,
    start_ts: Timestamp,
    read_ts: Timestamp,
    /// The watched key's value at the read timestamp (see
    /// [`TxnOptions::watched_key`]), if the oracle read it.
    watched: Option<Option<Vec<u8>>>,
    /// The read timestamp is a recent one, not a fresh one: reads must see
    /// the latest state (see [`TxnClient::begin_recent`]).
    recent: bool,
    started: Instant,
    /// Buffered writes: `None` deletes.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// The primary key, fixed by the first lock taken (or at commit).
    primary: Option<Vec<u8>>,
    /// The keys this transaction holds pessimistic locks on.
    locked: BTreeSet<Vec<u8>>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    /// Committed or rolled back: nothing to clean up on drop.
    finished: bool,
}

/// A node of the cluster, as [`TxnClient::nodes`] found it.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    /// Its id.
    pub node_id: u64,
    /// Its gRPC address.
    pub address: String,
    /// Whether it answered.
    pub live: bool,
    /// Whether it is decommissioned (gets no new replicas).
    pub decommissioned: bool,
    /// The replicas it holds, if it answered.
    pub replicas: Option<usize>,
    /// How many of them lead their ranges, if it answered.
    pub leases: Option<usize>,
}

/// One range's answer to a flow ([`Transaction::flow`]).
#[derive(Debug, Clone)]
pub struct FlowPart {
    /// The flow's encoded output.
    pub output: Vec<u8>,
    /// The rest of the part, `[resume, end)`, if the leader stopped early.
    pub resume: Option<(Vec<u8>, Vec<u8>)>,
}

/// How often a command is regrouped after the ranges changed under it.
const MAX_REGROUPS: usize = 10;

/// The most items (mutations, keys) in one command to a range.
const COMMAND_ITEMS: usize = 2048;

/// The most point reads of one `get_many` in flight at once.
const READS_IN_FLIGHT: usize = 64;

/// The most commands of one transaction step in flight at once.
const COMMANDS_IN_FLIGHT: usize = 16;

/// The most keys of a transaction that commits asynchronously: its primary
/// lock lists them all, and whoever finds it abandoned checks each one.
const ASYNC_COMMIT_MAX_KEYS: usize = 64;

/// `items` in runs of at most `size`, in order.
fn chunked<T>(mut items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut chunks = Vec::with_capacity(items.len().div_ceil(size));
    while items.len() > size {
        let rest = items.split_off(size);
        chunks.push(std::mem::replace(&mut items, rest));
    }
    chunks.push(items);
    chunks
}

/// The longest a lock waiter sleeps before it looks again (and renews its
/// wait with the deadlock detector).
const WAIT_SLICE: Duration = Duration::from_millis(500);

/// How a lock waiter waits: until the lock's release, within a deadline;
/// where no release can be watched, backing off 2 ms doubling to 50 ms.
struct Backoff {
    next: Duration,
    deadline: Instant,
    /// Registered a wait with the deadlock detector.
    registered: bool,
    /// The holder of the lock met last.
    last_holder: Option<Timestamp>,
}

impl Backoff {
    fn new(limit: Duration) -> Self {
        Backoff {
            next: Duration::from_millis(2),
            deadline: Instant::now() + limit,
            registered: false,
            last_holder: None,
        }
    }

    /// The time left to wait.
    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Records meeting `holder`'s lock; true if it was met last time too.
    fn met(&mut self, holder: Timestamp) -> bool {
        self.last_holder.replace(holder) == Some(holder)
    }

    /// Sleeps, or fails with the lock that outlasted the wait.
    async fn wait(&mut self, lock: &LockInfo) -> TxnResult<()> {
        if Instant::now() >= self.deadline {
            return Err(TxnError::LockTimeout {
                key: lock.key.clone(),
                holder: Timestamp(lock.start_ts),
            });
        }
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(Duration::from_millis(50));
        Ok(())
    }
}

fn command(kind: Kind) -> TxnCommand {
    TxnCommand { kind: Some(kind) }
}

impl Transaction {
    /// The transaction's start timestamp: its snapshot and its identity.
    pub fn start_ts(&self) -> Timestamp {
        self.start_ts
    }

    /// Buffers a write of `key`.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    /// Buffers a deletion of `key`.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// The snapshot reads see.
    pub fn read_ts(&self) -> Timestamp {
        self.read_ts
    }

    /// Moves the read timestamp to a fresh one from the oracle: later reads
    /// and locks see everything committed before now (a READ COMMITTED
    /// statement's snapshot).
    pub async fn refresh_read_ts(&mut self) -> TxnResult<()> {
        let stamp = self.client.inner.tso.stamp().await?;
        self.read_ts = stamp.ts;
        self.watched = stamp.read;
        self.recent = false;
        Ok(())
    }

    /// The value of `key`: the transaction's own write, else the committed
    /// value as of the read timestamp.
    pub async fn get(&self, key: &[u8]) -> TxnResult<Option<Vec<u8>>> {
        if let Some(value) = self.writes.get(key) {
            return Ok(value.clone());
        }
        let inner = &self.client.inner;
        if let (Some(value), true) = (&self.watched, key == inner.options.watched_key) {
            return Ok(value.clone());
        }
        let mut backoff = Backoff::new(inner.options.lock_wait);
        let result = loop {
            match inner.kv.mvcc_get(key, self.read_ts, self.recent).await {
                Ok(Ok(value)) => break Ok(value),
                Ok(Err(err)) => {
                    if let Err(err) = self.resolve_or_wait(err, &mut backoff).await {
                        break Err(err);
                    }
                }
                Err(err) => break Err(err.into()),
            }
        };
        self.client.done_waiting(self.start_ts, &backoff).await;
        result
    }

    /// Many keys, as `get` reads each, several at a time; in the order
    /// given.
    pub async fn get_many(&self, keys: &[Vec<u8>]) -> TxnResult<Vec<Option<Vec<u8>>>> {
        futures::stream::iter(keys.iter().map(|key| self.get(key)))
            .buffered(READS_IN_FLIGHT)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    /// Up to `limit` entries of `[start, end)` (0: no limit; an empty `end`
    /// is unbounded), in key order, as of the start with the transaction's
    /// own writes.
    pub async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> TxnResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let inner = &self.client.inner;
        let mut stored: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut cursor = start.to_vec();
        // Own deletions may hide stored keys: read that many more.
        let enough = (limit != 0).then(|| limit + self.writes.len());
        let mut backoff = Backoff::new(inner.options.lock_wait);
        let result = loop {
            let chunk = enough.map_or(10_000, |n| (n - stored.len()).min(10_000)) as u32;
            match inner
                .kv
                .mvcc_scan(&cursor, end, self.read_ts, chunk, self.recent)
                .await
            {
                Ok(Ok((kvs, resume))) => {
                    stored.extend(kvs);
                    match resume {
                        Some(next) if enough.is_none_or(|n| stored.len() < n) => cursor = next,
                        _ => break Ok(()),
                    }
                }
                Ok(Err(err)) => {
                    if let Err(err) = self.resolve_or_wait(err, &mut backoff).await {
                        break Err(err);
                    }
                }
                Err(err) => break Err(err.into()),
            }
        };
        self.client.done_waiting(self.start_ts, &backoff).await;
        result?;
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = stored.into_iter().collect();
        let upper = if end.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(end)
        };
        for (key, value) in self
            .writes
            .range::<[u8], _>((Bound::Included(start), upper))
        {
            match value {
                Some(value) => {
                    merged.insert(key.clone(), value.clone());
                }
                None => {
                    merged.remove(key);
                }
            }
        }
        let mut out: Vec<_> = merged.into_iter().collect();
        if limit != 0 {
            out.truncate(limit);
        }
        Ok(out)
    }

    /// Runs the encoded flow `spec` (the SQL layer's filter, projection or
    /// partial aggregates) over each of `spans` at the read timestamp: over
    /// each range a span touches, at the range's leader, all in parallel.
    /// Answers, per span in order, its parts in key order. A part's leader
    /// stops after a bounded amount of work, or at a lock (which is resolved
    /// or waited for here): the part says where the rest of it resumes.
    /// The transaction's own buffered writes are not seen: the caller runs
    /// flows only over spans it has not written.
    pub async fn flow(
        &self,
        spec: &[u8],
        spans: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> TxnResult<Vec<Vec<FlowPart>>> {
        self.not_recent(spans.first().map(|(start, _)| start.as_slice()))?;
        let mut cut = Vec::with_capacity(spans.len());
        for (start, end) in &spans {
            cut.push(self.client.inner.ranges.split_span(start, end).await?);
        }
        let answers = futures::future::join_all(cut.iter().map(|parts| {
            futures::future::join_all(
                parts
                    .iter()
                    .map(|(start, end)| self.flow_part(spec, start, end)),
            )
        }))
        .await;
        answers
            .into_iter()
            .map(|parts| parts.into_iter().collect())
            .collect()
    }

    async fn flow_part(&self, spec: &[u8], start: &[u8], end: &[u8]) -> TxnResult<FlowPart> {
        let inner = &self.client.inner;
        let (output, resume, lock) = inner.kv.flow(start, end, self.read_ts, spec).await?;
        if let Some(err) = lock {
            let mut backoff = Backoff::new(inner.options.lock_wait);
            let result = self.resolve_or_wait(err, &mut backoff).await;
            self.client.done_waiting(self.start_ts, &backoff).await;
            result?;
        }
        Ok(FlowPart {
            output,
            resume: resume.map(|key| (key, end.to_vec())),
        })
    }

    /// Handles a lock met by a read or a prewrite: resolves it through its
    /// primary if its transaction is over or dead, else waits a little.
    async fn resolve_or_wait(&self, err: pb::TxnError, backoff: &mut Backoff) -> TxnResult<()> {
        match err.kind {
            Some(txn_error::Kind::Locked(lock)) => {
                self.client
                    .wait_for_lock(self.start_ts, &lock, backoff)
                    .await
            }
            other => Err(unexpected(other, self.start_ts)),
        }
    }

    /// Locks `keys` for the transaction as of its read timestamp: waits
    /// (up to `wait`, else the client's `lock_wait`) for other live
    /// transactions' locks, and fails with `WriteConflict` if a key changed
    /// after the read timestamp (the caller re-reads at a newer one, or
    /// under snapshot isolation gives up), `Deadlock` if waiting would close
    /// a cycle, or `LockTimeout`. Keys locked before a failure stay locked.
    pub async fn lock_keys(
        &mut self,
        keys: impl IntoIterator<Item = Vec<u8>>,
        wait: Option<Duration>,
    ) -> TxnResult<()> {
        let keys: BTreeSet<Vec<u8>> = keys
            .into_iter()
            .filter(|key| !self.locked.contains(key))
            .collect();
        let mut keys: Vec<Vec<u8>> = keys.into_iter().collect();
        if keys.is_empty() {
            return Ok(());
        }
        self.not_recent(keys.first().map(Vec::as_slice))?;
        let wait = wait.unwrap_or(self.client.inner.options.lock_wait);
        if self.primary.is_none() {
            // The first key locked is the primary, locked alone and first:
            // every other lock names it, and readers judge the transaction
            // by it.
            let primary = keys.remove(0);
            self.primary = Some(primary.clone());
            if let Err(err) = self.lock_in_ranges(vec![primary], wait).await {
                self.primary = None;
                return Err(err);
            }
            self.start_heartbeat();
        }
        self.lock_in_ranges(keys, wait).await
    }

    /// Reads `key` as of the read timestamp and locks it, as
    /// [`Self::lock_keys`] does, in one request to its range's leader
    /// (TiKV's lock requests that return values; CockroachDB's UPDATE reads
    /// the rows it changes with a locking read): the latest committed
    /// value, since a key changed after the read timestamp fails with
    /// `WriteConflict`. A key without a value is not locked, as
    /// PostgreSQL's `UPDATE` locks only the rows it finds. A key the
    /// transaction wrote or locked already is read as [`Self::get`] reads
    /// it.
    pub async fn get_for_update(
        &mut self,
        key: &[u8],
        wait: Option<Duration>,
    ) -> TxnResult<Option<Vec<u8>>> {
        if self.writes.contains_key(key) || self.locked.contains(key) {
            return self.get(key).await;
        }
        self.not_recent(Some(key))?;
        let wait = wait.unwrap_or(self.client.inner.options.lock_wait);
        // Without a primary yet, the key is its own: the first key locked
        // is the transaction's primary.
        let primary = self.primary.clone().unwrap_or_else(|| key.to_vec());
        let request = |keys| self.lock_command(&primary, keys, true);
        let mut results = self
            .client
            .run_by_range(vec![key.to_vec()], |k| k, &request, self.start_ts, wait)
            .await;
        let result = match results.pop() {
            Some((_, result)) => result?,
            None => return Err(TxnError::Internal("a lock request went unanswered".into())),
        };
        // (A node of an older version locks the key and answers no value:
        // read it then.)
        let value = result.values.into_iter().next();
        if value.as_ref().is_some_and(|value| !value.found) {
            return Ok(None);
        }
        self.locked.insert(key.to_vec());
        if self.primary.is_none() {
            self.primary = Some(primary);
            self.start_heartbeat();
        }
        match value {
            Some(value) => Ok(Some(value.value)),
            None => self.get(key).await,
        }
    }

    /// Locks `keys` with one command per range, in parallel, and records
    /// the ones locked; returns the first failure.
    async fn lock_in_ranges(&mut self, keys: Vec<Vec<u8>>, wait: Duration) -> TxnResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let primary = self.primary.clone().unwrap_or_default();
        let request = |keys| self.lock_command(&primary, keys, false);
        let results = self
            .client
            .run_by_range(keys, |k| k, &request, self.start_ts, wait)
            .await;
        let mut first_error = None;
        for (group, result) in results {
            match result {
                Ok(_) => self.locked.extend(group),
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The command that locks `keys` for the transaction as of its read
    /// timestamp, naming `primary`; with `read`, it answers their values
    /// and locks only the keys that have one.
    fn lock_command(&self, primary: &[u8], keys: Vec<Vec<u8>>, read: bool) -> TxnCommand {
        command(Kind::AcquirePessimisticLocks(pb::AcquirePessimisticLocks {
            start_ts: self.start_ts.0,
            for_update_ts: self.read_ts.0,
            primary: primary.to_vec(),
            ttl_ms: self.ttl_ms(),
            keys,
            read,
        }))
    }

    /// The TTL of the locks taken now: the transaction's age plus the lock
    /// TTL (a lock's TTL counts from its transaction's start).
    fn ttl_ms(&self) -> u64 {
        (self.started.elapsed() + self.client.inner.options.lock_ttl).as_millis() as u64
    }

    /// Renews the primary lock's TTL in the background, every third of the
    /// lock TTL, until the transaction ends or its lock is gone.
    fn start_heartbeat(&mut self) {
        let Some(primary) = self.primary.clone() else {
            return;
        };
        if self.heartbeat.is_some() {
            return;
        }
        let client = self.client.clone();
        let start_ts = self.start_ts;
        let started = self.started;
        let ttl = client.inner.options.lock_ttl;
        self.heartbeat = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                let request = command(Kind::Heartbeat(pb::Heartbeat {
                    primary: primary.clone(),
                    start_ts: start_ts.0,
                    ttl_ms: (started.elapsed() + ttl).as_millis() as u64,
                }));
                match client.inner.kv.txn(request).await {
                    Ok(result) if result.error.is_none() => {}
                    // The lock is gone: committed, or rolled back by a
                    // reader (the commit will find out).
                    Ok(_) => return,
                    Err(err) => tracing::debug!(%err, %start_ts, "heartbeat"),
                }
            }
        }));
    }

    fn stop_heartbeat(&mut self) {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
    }

    /// Commits the buffered writes atomically; returns the commit timestamp
    /// (None if there was nothing to write). Locked keys that were not
    /// written are released. On an error nothing of the transaction is
    /// visible, except for `Unavailable`, after which it may or may not
    /// have committed.
    pub async fn commit(mut self) -> TxnResult<Option<Timestamp>> {
        let watched_key = &self.client.inner.options.watched_key;
        let writes_watched = !watched_key.is_empty() && self.writes.contains_key(watched_key);
        let result = self.commit_writes().await;
        self.stop_heartbeat();
        if result.is_err() {
            self.release_locks().await;
        }
        self.finished = true;
        if let Ok(Some(commit_ts)) = &result {
            let inner = &self.client.inner;
            inner.last_commit.fetch_max(commit_ts.0, Ordering::Relaxed);
        }
        if writes_watched {
            // Until then, a transaction begun at a recent timestamp may
            // read the watched key from before this commit (see
            // `begin_recent`); it may have applied even if it failed.
            tokio::time::sleep(2 * RECENT_TS_MAX_AGE).await;
        }
        result
    }

    /// Fails with `NewerWrite` (about `key`) if the transaction reads at a
    /// recent timestamp: it reads, and nothing more (see
    /// [`TxnClient::begin_recent`]).
    fn not_recent(&self, key: Option<&[u8]>) -> TxnResult<()> {
        if self.recent {
            return Err(TxnError::NewerWrite {
                key: key.unwrap_or_default().to_vec(),
            });
        }
        Ok(())
    }

    async fn commit_writes(&mut self) -> TxnResult<Option<Timestamp>> {
        if self.writes.is_empty() {
            self.release_locks().await;
            return Ok(None);
        }
        self.not_recent(self.writes.keys().next().map(Vec::as_slice))?;
        let inner = self.client.inner.clone();
        let start_ts = self.start_ts;
        let writes = std::mem::take(&mut self.writes);
        let primary = match &self.primary {
            Some(primary) => primary.clone(),
            None => writes.keys().next().cloned().unwrap_or_default(),
        };
        let ttl_ms = self.ttl_ms();
        let locked = &self.locked;
        // Locked keys that were not written keep their lock to the end as
        // a lock record, which tells later writers that the row was locked.
        let unwritten: Vec<pb::Mutation> = locked
            .iter()
            .filter(|key| !writes.contains_key(*key))
            .map(|key| pb::Mutation {
                key: key.clone(),
                op: Some(Op::Lock(true)),
                pessimistic: true,
            })
            .collect();
        let mutations: Vec<pb::Mutation> = writes
            .into_iter()
            .map(|(key, value)| pb::Mutation {
                pessimistic: locked.contains(&key),
                key,
                op: Some(match value {
                    Some(value) => Op::Put(value),
                    None => Op::Delete(true),
                }),
            })
            .chain(unwritten)
            .collect();
        let for_update_ts = if locked.is_empty() { 0 } else { self.read_ts.0 };
        let prewrite = |mutations: Vec<pb::Mutation>, commit_ts: Timestamp| pb::Prewrite {
            start_ts: start_ts.0,
            primary: primary.clone(),
            ttl_ms,
            for_update_ts,
            mutations,
            commit_ts: commit_ts.0,
            min_commit_ts: 0,
            secondaries: Vec::new(),
        };
        let wait = inner.options.lock_wait;
        let groups = inner.ranges.group(mutations, |m| &m.key).await?;
        let one_command = groups.len() == 1 && groups[0].len() <= COMMAND_ITEMS;
        let mutations: Vec<pb::Mutation> = if one_command && inner.options.one_phase_commit {
            let commit_ts = self.client.timestamp().await?;
            let group = groups.into_iter().next().unwrap_or_default();
            let one_phase = self.client.run_locked(
                command(Kind::Prewrite(prewrite(group.clone(), commit_ts))),
                start_ts,
                wait,
            );
            match commit_point(one_phase).await {
                Ok(result) => {
                    self.locked.clear();
                    return Ok(Some(Timestamp(result.commit_ts)));
                }
                // The range split since the writes were grouped: commit in
                // two phases over the ranges they fall in now.
                Err(TxnError::RangeChanged { .. }) => {
                    inner.ranges.refresh().await?;
                    group
                }
                // The answer was lost: the commit may have applied.
                Err(err @ (TxnError::Unavailable(_) | TxnError::Internal(_))) => {
                    let written = group.iter().find(|m| !matches!(m.op, Some(Op::Lock(_))));
                    let key = written.map(|m| m.key.clone()).unwrap_or_default();
                    let settled = self.client.settle(start_ts, key, err).await;
                    if !matches!(settled, Ok(Settled::RolledBack(_))) {
                        // Committed, or unknown: no lock of it may go.
                        self.locked.clear();
                    }
                    return match settled? {
                        Settled::Committed(commit_ts) => Ok(Some(commit_ts)),
                        Settled::RolledBack(err) => Err(err),
                    };
                }
                Err(err) => return Err(err),
            }
        } else {
            groups.into_iter().flatten().collect()
        };
        // An asynchronous commit: every key in the user keyspace (the
        // schema's keys go through the oracle, see `TsoClient`), and few
        // enough for its primary lock to list.
        let asynchronous = inner.options.async_commit
            && mutations.len() <= ASYNC_COMMIT_MAX_KEYS
            && mutations.iter().all(|m| !keys::is_system_key(&m.key));
        let secondaries: Vec<Vec<u8>> = if asynchronous {
            mutations
                .iter()
                .map(|m| m.key.clone())
                .filter(|key| *key != primary)
                .collect()
        } else {
            Vec::new()
        };
        // Phase one: prewrite every range's writes in parallel, with the
        // primary's TTL renewed while it takes.
        self.primary = Some(primary.clone());
        self.start_heartbeat();
        let request = |group: Vec<pb::Mutation>| {
            let mut request = prewrite(group, Timestamp::ZERO);
            if asynchronous {
                // (Each range's leader raises it above its reads.)
                request.min_commit_ts = start_ts.next().0;
                if request.mutations.iter().any(|m| m.key == primary) {
                    request.secondaries.clone_from(&secondaries);
                }
            }
            command(Kind::Prewrite(request))
        };
        // (A test may lose the request of an asynchronous commit's primary
        // prewrite, its commit point's part.)
        let mut lost = Vec::new();
        let mut mutations = mutations;
        if asynchronous && crate::failpoint::is_armed(crate::failpoint::COMMIT_REQUEST_LOST) {
            lost = mutations
                .iter()
                .filter(|m| m.key == primary)
                .cloned()
                .collect();
            mutations.retain(|m| m.key != primary);
        }
        let mut results = self
            .client
            .run_by_range(mutations, |m| &m.key, &request, start_ts, wait)
            .await;
        if !lost.is_empty() {
            let err = TxnError::Unavailable("the commit's request was lost (failpoint)".into());
            results.push((lost, Err(err)));
        }
        let keys: Vec<Vec<Vec<u8>>> = results
            .iter()
            .map(|(group, _)| group.iter().map(|m| m.key.clone()).collect())
            .collect();
        if asynchronous {
            return self.commit_async(keys, results).await;
        }
        if let Some(err) = results.into_iter().find_map(|(_, result)| result.err()) {
            self.client.roll_back(start_ts, keys).await;
            self.locked.clear();
            return Err(err);
        }
        crate::failpoint::crash_if_armed(crate::failpoint::AFTER_PREWRITE);
        // The commit point: the primary's commit.
        let commit_ts = match self.client.timestamp().await {
            Ok(ts) => ts,
            Err(err) => {
                self.client.roll_back(start_ts, keys).await;
                self.locked.clear();
                return Err(err);
            }
        };
        let commit_primary = command(Kind::Commit(pb::Commit {
            start_ts: start_ts.0,
            commit_ts: commit_ts.0,
            keys: vec![primary.clone()],
        }));
        // From here on the commit may apply, and then no lock of it may be
        // rolled back: not by `commit`'s clean-up, nor by `Drop` if this
        // future is dropped. A failure rolls back every key below.
        self.locked.clear();
        let kv = &self.client.inner.kv;
        let sent = async { Ok(kv.txn(commit_primary).await?) };
        let committed = match commit_point(sent).await {
            Ok(result) => match result.error {
                None => Ok(commit_ts),
                // Rolled back by a reader that found the transaction expired.
                Some(err) => Err(unexpected(err.kind, start_ts)),
            },
            // The answer was lost (with its node, say): the commit may have
            // applied. Until that is known, no lock of it may go.
            Err(err) => match self.client.settle(start_ts, primary.clone(), err).await {
                Ok(Settled::Committed(commit_ts)) => Ok(commit_ts),
                Ok(Settled::RolledBack(err)) => Err(err),
                Err(ambiguous) => return Err(ambiguous),
            },
        };
        let commit_ts = match committed {
            Ok(commit_ts) => commit_ts,
            Err(err) => {
                self.client.roll_back(start_ts, keys).await;
                return Err(err);
            }
        };
        crate::failpoint::crash_if_armed(crate::failpoint::AFTER_PRIMARY_COMMIT);
        // Phase two: the other keys, after answering. (The primary is
        // committed; sending it again would cost its range a request.)
        let keys: Vec<Vec<u8>> = keys
            .into_iter()
            .flatten()
            .filter(|key| *key != primary)
            .collect();
        self.client.commit_in_background(start_ts, commit_ts, keys);
        Ok(Some(commit_ts))
    }

    /// The rest of an asynchronous commit, once its prewrites (`results`,
    /// over the keys `keys`) are answered. If they all succeeded, the
    /// transaction is committed, at the highest minimum commit timestamp
    /// of its locks: it is answered at once and its locks are committed
    /// after. If one failed for certain, nothing committed, and its locks
    /// are rolled back. If the others succeeded and some answers were lost,
    /// the transaction's keys decide, as they do for anyone who finds it
    /// abandoned (`TxnClient::decide_async`).
    async fn commit_async(
        &mut self,
        keys: Vec<Vec<Vec<u8>>>,
        results: Vec<(Vec<pb::Mutation>, TxnResult<pb::TxnResult>)>,
    ) -> TxnResult<Option<Timestamp>> {
        let start_ts = self.start_ts;
        let mut commit_ts = Timestamp::ZERO;
        let (mut lost, mut failed) = (None, None);
        for (_, mut result) in results {
            if result.is_ok() && crate::failpoint::is_armed(crate::failpoint::COMMIT_ANSWER_LOST) {
                result = Err(TxnError::Unavailable(
                    "the commit's answer was lost (failpoint)".into(),
                ));
            }
            match result {
                Ok(result) => commit_ts = commit_ts.max(Timestamp(result.min_commit_ts)),
                Err(err @ (TxnError::Unavailable(_) | TxnError::Internal(_))) => {
                    lost.get_or_insert(err);
                }
                Err(err) => {
                    failed.get_or_insert(err);
                }
            }
        }
        // From here on the transaction may be committed: no lock of it may
        // be rolled back but through its keys' decision.
        self.locked.clear();
        let all: Vec<Vec<u8>> = keys.into_iter().flatten().collect();
        if let Some(err) = failed {
            self.client.roll_back(start_ts, vec![all]).await;
            return Err(err);
        }
        if let Some(err) = lost {
            commit_ts = match self.client.decide_async(start_ts, all.clone()).await {
                Ok(Some(commit_ts)) => commit_ts,
                Ok(None) => {
                    self.client.resolve_all(start_ts, None, all).await;
                    return Err(err);
                }
                Err(checking) => {
                    tracing::warn!(%start_ts, %err, %checking, "an asynchronous commit's outcome is unknown");
                    return Err(TxnError::Ambiguous(format!(
                        "transaction {start_ts}: {err}; checking its keys: {checking}"
                    )));
                }
            };
        }
        if commit_ts <= start_ts {
            return Err(TxnError::Internal(format!(
                "the prewrites of asynchronous commit {start_ts} gave no commit timestamp above it"
            )));
        }
        crate::failpoint::crash_if_armed(crate::failpoint::AFTER_PREWRITE);
        self.client.commit_in_background(start_ts, commit_ts, all);
        Ok(Some(commit_ts))
    }

    /// Drops the buffered writes and releases the transaction's locks.
    pub async fn rollback(mut self) {
        self.stop_heartbeat();
        self.release_locks().await;
        self.finished = true;
    }

    /// Rolls back the pessimistic locks still held; best effort, since
    /// readers clean up what is left once the locks expire.
    async fn release_locks(&mut self) {
        let locked: Vec<Vec<u8>> = std::mem::take(&mut self.locked).into_iter().collect();
        if locked.is_empty() {
            return;
        }
        self.client.roll_back(self.start_ts, vec![locked]).await;
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        self.stop_heartbeat();
        if self.finished || self.locked.is_empty() {
            return;
        }
        // Abandoned while holding locks: release them in the background.
        let client = self.client.clone();
        let start_ts = self.start_ts;
        let locked: Vec<Vec<u8>> = std::mem::take(&mut self.locked).into_iter().collect();
        self.client
            .inner
            .runtime
            .spawn(async move { client.roll_back(start_ts, vec![locked]).await });
    }
}

impl TxnClient {
    /// Runs a prewrite (or one-phase commit), resolving the locks it meets.
    /// Runs a prewrite, one-phase commit or lock acquisition, resolving the
    /// locks it meets and waiting up to `wait` for live ones.
    async fn run_locked(
        &self,
        request: TxnCommand,
        start_ts: Timestamp,
        wait: Duration,
    ) -> TxnResult<pb::TxnResult> {
        let mut backoff = Backoff::new(wait);
        let result = loop {
            let mut result = match self.inner.kv.txn(request.clone()).await {
                Ok(result) => result,
                Err(err) => break Err(err.into()),
            };
            match result.error.take().map(|e| e.kind) {
                None => break Ok(result),
                Some(Some(txn_error::Kind::Locked(lock))) => {
                    if let Err(err) = self.wait_for_lock(start_ts, &lock, &mut backoff).await {
                        break Err(err);
                    }
                }
                Some(other) => break Err(unexpected(other, start_ts)),
            }
        };
        self.done_waiting(start_ts, &backoff).await;
        result
    }

    /// Handles `lock`, met by transaction `waiter`: resolves it if its
    /// transaction is over; otherwise registers the wait with the deadlock
    /// detector (failing with `Deadlock` if it closes a cycle) and backs
    /// off (failing with `LockTimeout` past the deadline).
    async fn wait_for_lock(
        &self,
        waiter: Timestamp,
        lock: &LockInfo,
        backoff: &mut Backoff,
    ) -> TxnResult<()> {
        if self.resolve_lock(lock).await? {
            return Ok(());
        }
        let holder = Timestamp(lock.start_ts);
        backoff.registered = true;
        if let Some(cycle) = self.inner.kv.wait_for(waiter, holder, &lock.key).await? {
            return Err(TxnError::Deadlock {
                key: lock.key.clone(),
                waiter,
                holder,
                cycle: cycle.into_iter().skip(1).collect(),
            });
        }
        // Sleep until the holder's lock goes (or a slice of the wait
        // passes: the deadlock edge needs renewing), then try again.
        let slice = backoff.remaining().min(WAIT_SLICE);
        if slice.is_zero() {
            return backoff.wait(lock).await;
        }
        let started = Instant::now();
        match self
            .inner
            .kv
            .wait_lock_release(&lock.key, holder, slice)
            .await
        {
            // Gone at once, yet met again: the node that answered may hold
            // no replica of the key; fall back to backing off.
            Ok(true) if started.elapsed() < Duration::from_millis(1) && backoff.met(holder) => {
                backoff.wait(lock).await
            }
            Ok(_) => Ok(()),
            Err(err) => {
                tracing::debug!(%err, "waiting for a lock's release");
                backoff.wait(lock).await
            }
        }
    }

    /// Tells the deadlock detector that `waiter` waits no more, if it
    /// registered a wait; best effort (edges expire on their own).
    async fn done_waiting(&self, waiter: Timestamp, backoff: &Backoff) {
        if backoff.registered {
            if let Err(err) = self.inner.kv.done_waiting(waiter).await {
                tracing::debug!(%err, %waiter, "clearing waits");
            }
        }
    }

    /// Finds out whether a commit whose answer was lost (`lost` says how)
    /// applied, by rolling back `key`: the transaction's primary, or a key
    /// its one-phase commit writes. Ordered in the range's log after the
    /// commit, the rollback finds it; ordered before, it makes sure the
    /// commit never applies. `Ambiguous` if neither could be told.
    async fn settle(
        &self,
        start_ts: Timestamp,
        key: Vec<u8>,
        lost: TxnError,
    ) -> TxnResult<Settled> {
        let rollback = command(Kind::Rollback(pb::Rollback {
            start_ts: start_ts.0,
            keys: vec![key],
        }));
        let outcome = match self.inner.kv.txn(rollback).await {
            Ok(result) => match result.error.and_then(|e| e.kind) {
                None => return Ok(Settled::RolledBack(lost)),
                Some(txn_error::Kind::AlreadyCommitted(e)) => {
                    return Ok(Settled::Committed(Timestamp(e.commit_ts)))
                }
                Some(other) => format!("{other:?}"),
            },
            Err(err) => err.to_string(),
        };
        tracing::warn!(%start_ts, %lost, %outcome, "a commit's outcome is unknown");
        Err(TxnError::Ambiguous(format!(
            "transaction {start_ts}: {lost}; checking its commit: {outcome}"
        )))
    }

    /// Rolls back a failed transaction's prewrites; best effort, since
    /// readers clean up what is left once the locks expire.
    async fn roll_back(&self, start_ts: Timestamp, groups: Vec<Vec<Vec<u8>>>) {
        let keys: Vec<Vec<u8>> = groups.into_iter().flatten().collect();
        let request = |keys: Vec<Vec<u8>>| {
            command(Kind::Rollback(pb::Rollback {
                start_ts: start_ts.0,
                keys,
            }))
        };
        self.on_each_range(
            start_ts,
            keys,
            &request,
            "rolling back a failed transaction",
        )
        .await;
    }

    /// Sends `build`'s command for `keys` of the transaction `start_ts`,
    /// one per range (see `run_by_range`); best effort: a failure is only
    /// logged, as `what`, since whoever meets a lock left behind resolves
    /// it.
    async fn on_each_range(
        &self,
        start_ts: Timestamp,
        keys: Vec<Vec<u8>>,
        build: &(dyn Fn(Vec<Vec<u8>>) -> TxnCommand + Sync),
        what: &str,
    ) {
        let wait = self.inner.options.lock_wait;
        for (_, result) in self.run_by_range(keys, |k| k, build, start_ts, wait).await {
            if let Err(err) = result {
                tracing::warn!(%err, %start_ts, "{what}");
            }
        }
    }

    /// Runs one command per range for `items` (built by `build` from the
    /// items of one range), in parallel, each as `run_locked` does. A
    /// command that the cluster finds spanning ranges (one split after the
    /// cache was filled) is regrouped over fresh descriptors and retried.
    /// Returns the items of each command with its outcome.
    pub(crate) async fn run_by_range<T: Clone>(
        &self,
        items: Vec<T>,
        key: fn(&T) -> &[u8],
        build: &(dyn Fn(Vec<T>) -> TxnCommand + Sync),
        start_ts: Timestamp,
        wait: Duration,
    ) -> Vec<(Vec<T>, TxnResult<pb::TxnResult>)> {
        let mut done = Vec::new();
        let mut pending = items;
        for round in 0..MAX_REGROUPS {
            if round > 0 {
                if let Err(err) = self.inner.ranges.refresh().await {
                    done.push((pending, Err(err)));
                    return done;
                }
            }
            let groups = match self.inner.ranges.group(pending, key).await {
                Ok(groups) => groups,
                Err(err) => {
                    done.push((Vec::new(), Err(err)));
                    return done;
                }
            };
            // A range's items go in commands of at most COMMAND_ITEMS, a
            // few at a time: one Raft entry of a whole bulk load would hold
            // up the range (and its heartbeats) while it replicates.
            let chunks: Vec<Vec<T>> = groups
                .into_iter()
                .flat_map(|group| chunked(group, COMMAND_ITEMS))
                .collect();
            let results: Vec<(Vec<T>, TxnResult<pb::TxnResult>)> =
                futures::stream::iter(chunks.into_iter().map(|group| async move {
                    let result = self.run_locked(build(group.clone()), start_ts, wait).await;
                    (group, result)
                }))
                .buffer_unordered(COMMANDS_IN_FLIGHT)
                .collect()
                .await;
            pending = Vec::new();
            for (group, result) in results {
                match result {
                    Err(TxnError::RangeChanged { .. }) if round + 1 < MAX_REGROUPS => {
                        pending.extend(group)
                    }
                    other => done.push((group, other)),
                }
            }
            if pending.is_empty() {
                break;
            }
        }
        done
    }

    /// Commits a decided transaction's locks on `keys` at `commit_ts`, in
    /// the background: its answer does not wait for them. A failure is
    /// only logged: whoever meets a lock left behind rolls it forward.
    fn commit_in_background(&self, start_ts: Timestamp, commit_ts: Timestamp, keys: Vec<Vec<u8>>) {
        if keys.is_empty() {
            return;
        }
        let client = self.clone();
        tokio::spawn(async move {
            let request = |keys: Vec<Vec<u8>>| {
                command(Kind::Commit(pb::Commit {
                    start_ts: start_ts.0,
                    commit_ts: commit_ts.0,
                    keys,
                }))
            };
            client
                .on_each_range(start_ts, keys, &request, "committing a transaction's locks")
                .await;
        });
    }

    /// Decides an asynchronous commit from its keys (every one it locked):
    /// committed (at the timestamp) if each holds its lock or its commit
    /// record; rolled back (None) otherwise, and then the check has rolled
    /// back the keys it found without either, so that a prewrite still on
    /// its way fails. The decision is the one its coordinator takes when
    /// its prewrites succeed, at the same timestamp: the highest of its
    /// locks' minimum commit timestamps.
    async fn decide_async(
        &self,
        start_ts: Timestamp,
        keys: Vec<Vec<u8>>,
    ) -> TxnResult<Option<Timestamp>> {
        let request = |keys: Vec<Vec<u8>>| {
            command(Kind::CheckSecondaryLocks(pb::CheckSecondaryLocks {
                start_ts: start_ts.0,
                keys,
            }))
        };
        let wait = self.inner.options.lock_wait;
        let (mut commit_ts, mut rolled_back) = (Timestamp::ZERO, false);
        for (_, result) in self
            .run_by_range(keys, |k| k, &request, start_ts, wait)
            .await
        {
            let result = result?;
            match TxnState::try_from(result.state) {
                Ok(TxnState::Committed) => return Ok(Some(Timestamp(result.commit_ts))),
                Ok(TxnState::RolledBack) => rolled_back = true,
                Ok(TxnState::Locked) => commit_ts = commit_ts.max(Timestamp(result.min_commit_ts)),
                _ => {
                    return Err(TxnError::Internal(format!(
                        "checking the keys of transaction {start_ts}: state {}",
                        result.state
                    )))
                }
            }
        }
        Ok((!rolled_back).then_some(commit_ts))
    }

    /// Commits (at `commit_ts`) or rolls back (None) a decided
    /// transaction's locks on `keys`; best effort, as a lock left behind
    /// is resolved by whoever meets it.
    async fn resolve_all(
        &self,
        start_ts: Timestamp,
        commit_ts: Option<Timestamp>,
        keys: Vec<Vec<u8>>,
    ) {
        let request = |keys: Vec<Vec<u8>>| {
            command(Kind::ResolveLocks(pb::ResolveLocks {
                start_ts: start_ts.0,
                commit_ts: commit_ts.map_or(0, |ts| ts.0),
                keys,
            }))
        };
        self.on_each_range(start_ts, keys, &request, "resolving a transaction's locks")
            .await;
    }

    /// Resolves `lock` if its transaction is over (committed: roll the lock
    /// forward; rolled back or expired: remove it). Returns false if the
    /// transaction is alive and the caller should wait.
    ///
    /// An asynchronous commit (its primary lock says so) is decided by all
    /// its keys once its primary lock expires (see `decide_async`), and
    /// then every lock of it is resolved, not only `lock`.
    pub(crate) async fn resolve_lock(&self, lock: &LockInfo) -> TxnResult<bool> {
        let now = self.timestamp().await?;
        let lock_start = Timestamp(lock.start_ts);
        let expired = now.physical_ms() >= lock_start.physical_ms().saturating_add(lock.ttl_ms);
        let check = command(Kind::CheckTxnStatus(pb::CheckTxnStatus {
            primary: lock.primary.clone(),
            start_ts: lock.start_ts,
            now: now.0,
            rollback_if_missing: expired,
        }));
        let status = self.inner.kv.txn(check).await?;
        if let Some(err) = status.error {
            return Err(unexpected(err.kind, lock_start));
        }
        let commit_ts = match TxnState::try_from(status.state) {
            Ok(TxnState::Committed) => status.commit_ts,
            Ok(TxnState::RolledBack) => 0,
            Ok(TxnState::Locked) if status.min_commit_ts != 0 => {
                let lives_until = lock_start.physical_ms().saturating_add(status.ttl_ms);
                if now.physical_ms() < lives_until {
                    return Ok(false);
                }
                let mut keys = status.secondaries;
                keys.push(lock.primary.clone());
                let decided = self.decide_async(lock_start, keys.clone()).await?;
                self.resolve_all(lock_start, decided, keys).await;
                return Ok(true);
            }
            Ok(TxnState::Locked | TxnState::Missing) => return Ok(false),
            Err(_) => {
                return Err(TxnError::Internal(format!(
                    "unknown transaction state {}",
                    status.state
                )))
            }
        };
        let resolve = command(Kind::ResolveLocks(pb::ResolveLocks {
            start_ts: lock.start_ts,
            commit_ts,
            keys: vec![lock.key.clone()],
        }));
        let result = self.inner.kv.txn(resolve).await?;
        match result.error {
            None => Ok(true),
            Some(err) => Err(unexpected(err.kind, lock_start)),
        }
    }
}

/// Sends a transaction's commit point (its one-phase commit, or its
/// primary's commit) with `send`, losing the request or the answer where a
/// test armed a failpoint to.
async fn commit_point(
    send: impl std::future::Future<Output = TxnResult<pb::TxnResult>>,
) -> TxnResult<pb::TxnResult> {
    use crate::failpoint::{is_armed, COMMIT_ANSWER_LOST, COMMIT_REQUEST_LOST};
    let lost =
        |what: &str| TxnError::Unavailable(format!("the commit's {what} was lost (failpoint)"));
    if is_armed(COMMIT_REQUEST_LOST) {
        return Err(lost("request"));
    }
    let answer = send.await?;
    if is_armed(COMMIT_ANSWER_LOST) {
        return Err(lost("answer"));
    }
    Ok(answer)
}

/// What became of a commit whose answer was lost.
enum Settled {
    /// It applied, at this timestamp.
    Committed(Timestamp),
    /// It did not, and now never will; the error that lost the answer.
    RolledBack(TxnError),
}

/// The transaction error for an MVCC outcome.
pub(crate) fn unexpected(kind: Option<txn_error::Kind>, start_ts: Timestamp) -> TxnError {
    match kind {
        Some(txn_error::Kind::Conflict(c)) => TxnError::WriteConflict {
            key: c.key,
            start_ts: Timestamp(c.start_ts),
            conflict_start_ts: Timestamp(c.conflict_start_ts),
            conflict_commit_ts: Timestamp(c.conflict_commit_ts),
        },
        Some(txn_error::Kind::Aborted(e)) | Some(txn_error::Kind::PessimisticLockNotFound(e)) => {
            TxnError::Aborted {
                key: e.key,
                start_ts,
            }
        }
        Some(txn_error::Kind::TooOld(e)) => TxnError::SnapshotTooOld {
            ts: Timestamp(e.ts),
            threshold: Timestamp(e.threshold),
        },
        Some(txn_error::Kind::Locked(lock)) => TxnError::LockTimeout {
            key: lock.key,
            holder: Timestamp(lock.start_ts),
        },
        Some(txn_error::Kind::NewerWrite(e)) => TxnError::NewerWrite { key: e.key },
        other => TxnError::Internal(format!("unexpected outcome {other:?}")),
    }
}
