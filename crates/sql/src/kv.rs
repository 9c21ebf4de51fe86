//! The storage interface the SQL layer runs on.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{code, SqlError, SqlResult};

/// One write of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvWrite {
    /// Sets `key` to `value`.
    Put(Vec<u8>, Vec<u8>),
    /// Removes `key`.
    Delete(Vec<u8>),
}

impl KvWrite {
    /// The key written.
    pub fn key(&self) -> &[u8] {
        match self {
            KvWrite::Put(k, _) | KvWrite::Delete(k) => k,
        }
    }
}

/// Ordered, transactional key-value storage.
///
/// `get`, `scan` and `write` are each a transaction of their own (reads of
/// the latest committed state; an atomic batch). [`Kv::begin`] starts a
/// transaction that reads one snapshot (until it is refreshed), may lock
/// keys, and commits its writes atomically, failing with 40001 if another
/// transaction committed a write to one of its unlocked keys after its
/// snapshot (first committer wins).
///
/// Implementations: [`MemoryKv`] here; the replicated cluster in
/// `tessera-server`.
pub trait Kv: Send + Sync {
    /// Reads one key.
    fn get(&self, key: &[u8]) -> SqlResult<Option<Vec<u8>>>;
    /// Reads `[start, end)` in key order, at most `limit` entries (0: all).
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> SqlResult<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Applies the writes atomically.
    fn write(&self, writes: Vec<KvWrite>) -> SqlResult<()>;
    /// Starts a transaction.
    fn begin(&self) -> SqlResult<Box<dyn KvTxn>>;
    /// Starts a transaction for one statement that only reads, maybe at a
    /// recent snapshot rather than a fresh one (which saves the cluster's
    /// timestamp round trip). Its reads see what a fresh snapshot's would,
    /// or fail with [`SqlError::not_latest`]; so do its locks and writes:
    /// the statement then runs again in a transaction from [`Kv::begin`].
    fn begin_recent(&self) -> SqlResult<Box<dyn KvTxn>> {
        self.begin()
    }
    /// Makes a range start at `key`; returns false if one started there
    /// already. Stores that are not partitioned refuse (0A000).
    fn split(&self, key: &[u8]) -> SqlResult<bool>;
    /// The ranges that overlap `[start, end)`, in key order.
    fn ranges(&self, start: &[u8], end: &[u8]) -> SqlResult<Vec<RangeInfo>>;
    /// Moves range `range_id`'s lease to its voting replica on `node`
    /// (22023 if the range does not exist, the node holds no voter of it
    /// or does not take the lease). Stores without replicas refuse (0A000).
    fn transfer_lease(&self, range_id: u64, node: u64) -> SqlResult<()>;
    /// The cluster's nodes. Stores without nodes refuse (0A000).
    fn nodes(&self) -> SqlResult<Vec<NodeInfo>>;
    /// Merges the range starting at `key` into the range before it; 22023
    /// if no range starts there. Returns the merged range's id.
    fn merge_at(&self, key: &[u8]) -> SqlResult<u64>;
    /// Moves range `range_id`'s voting replica on node `from` to node `to`
    /// (22023 for a range or node that does not exist, a node that is not
    /// live, or one that holds no voter of it). Stores without replicas
    /// refuse (0A000). Returns the nodes of the range's replicas after.
    fn relocate_voter(&self, range_id: u64, from: u64, to: u64) -> SqlResult<Vec<u64>>;
}

/// A node of the cluster, as `SHOW NODES` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Its id.
    pub node_id: u64,
    /// Its gRPC address.
    pub address: String,
    /// Whether it answered just now.
    pub live: bool,
    /// Whether it is decommissioned (gets no new replicas).
    pub decommissioned: bool,
    /// The replicas it holds and how many lead their ranges, if it answered.
    pub replicas: Option<u64>,
    pub leases: Option<u64>,
}

/// A range of the store, as `SHOW RANGES` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeInfo {
    /// The range id.
    pub range_id: u64,
    /// Its first key.
    pub start: Vec<u8>,
    /// The key after its last (empty: the end of the keyspace).
    pub end: Vec<u8>,
    /// The nodes holding its replicas.
    pub replicas: Vec<u64>,
    /// The node holding its lease (its Raft leader), if known.
    pub lease_holder: Option<u64>,
    /// Its size in bytes and its user keys, as its leader last measured
    /// them, if known.
    pub size: Option<(u64, u64)>,
    /// Requests per second its leader served recently, if known.
    pub qps: Option<f64>,
}

/// What [`KvTxn::lock`] did.
#[derive(Debug)]
pub enum Locked {
    /// Every key is locked by the transaction.
    All,
    /// A key changed after the snapshot (the error, 40001, names it). Under
    /// READ COMMITTED the statement runs again on a fresh snapshot; under
    /// REPEATABLE READ this is the transaction's serialization failure.
    /// Keys locked before the change was found stay locked.
    Changed(SqlError),
}

/// What [`KvTxn::get_for_update`] found.
#[derive(Debug)]
pub enum LockedRead {
    /// The row's value, now locked by the transaction; or None: there is
    /// no row, and nothing was locked.
    Row(Option<Vec<u8>>),
    /// The row changed after the snapshot (the error, 40001, names it), as
    /// [`Locked::Changed`].
    Changed(SqlError),
}

/// A transaction: reads at a snapshot, row locks, then one atomic commit.
/// Dropping it without committing abandons it and releases its locks.
pub trait KvTxn: Send {
    /// Reads one key as of the snapshot.
    fn get(&self, key: &[u8]) -> SqlResult<Option<Vec<u8>>>;
    /// Reads many keys as of the snapshot, in the order given. Stores that
    /// can read them in parallel do.
    fn get_many(&self, keys: &[Vec<u8>]) -> SqlResult<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|key| self.get(key)).collect()
    }
    /// Reads `[start, end)` as of the snapshot, at most `limit` entries (0:
    /// all).
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> SqlResult<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Moves the snapshot to now: later reads see every transaction
    /// committed before (a READ COMMITTED statement).
    fn refresh_snapshot(&mut self) -> SqlResult<()>;
    /// Locks `keys` until the transaction ends, as of the snapshot: waits
    /// for other transactions' locks up to `wait` (None: the store's
    /// default), failing with 55P03 when the wait runs out and 40P01 when
    /// waiting would deadlock.
    fn lock(&mut self, keys: Vec<Vec<u8>>, wait: Option<Duration>) -> SqlResult<Locked>;
    /// Reads one key and locks it until the transaction ends, as `lock`
    /// does (waiting as it does), in one request where the store can: the
    /// read of a row that a statement changes or locks, found by its key.
    /// A key without a value is not locked.
    fn get_for_update(&self, key: &[u8], wait: Option<Duration>) -> SqlResult<LockedRead>;
    /// Commits `writes` atomically, or fails with 40001 on a conflict.
    fn commit(self: Box<Self>, writes: Vec<KvWrite>) -> SqlResult<()>;

    /// Whether the store runs flows ([`crate::flow`]) where the data is.
    fn runs_flows(&self) -> bool {
        false
    }

    /// Runs the encoded flow `spec` over each of `spans` as of the
    /// snapshot: over each range a span touches, at the range's leader, all
    /// in parallel. Answers, per span in order, the parts it was divided
    /// into, in key order. Stores that do not run flows refuse (0A000).
    fn flow(&self, spec: &[u8], spans: Vec<(Vec<u8>, Vec<u8>)>) -> SqlResult<Vec<Vec<FlowPart>>> {
        let _ = (spec, spans);
        Err(SqlError::new(
            code::FEATURE_NOT_SUPPORTED,
            "this store does not run flows",
        ))
    }
}

/// One range's answer to a flow: the encoded output, and the rest of its
/// span (`[resume, end)`) if the leader stopped before the end.
#[derive(Debug, Clone)]
pub struct FlowPart {
    pub output: Vec<u8>,
    pub resume: Option<(Vec<u8>, Vec<u8>)>,
}

/// The error of a transaction that lost a write-write conflict on `key`.
/// The detail starts with the raw key, which the session replaces with the
/// table and key values (`conflict_key_text`).
pub fn conflict_error(key: &[u8], detail: impl Into<String>) -> SqlError {
    let mut err = SqlError::new(
        code::SERIALIZATION_FAILURE,
        "could not serialize access due to concurrent update",
    )
    .with_detail(format!("{}: {}", conflict_key_text(key), detail.into()));
    err.key = Some(key.to_vec());
    err
}

/// The error of a transaction chosen as the victim of a deadlock while it
/// waited for `holder`'s lock on `key`.
pub fn deadlock_error(key: &[u8], waiter: &str, holder: &str, others: usize) -> SqlError {
    let through = match others {
        0 => String::new(),
        1 => " through 1 other transaction".to_string(),
        n => format!(" through {n} other transactions"),
    };
    let mut err = SqlError::new(code::DEADLOCK_DETECTED, "deadlock detected").with_detail(format!(
        "{}: transaction {waiter} waits for transaction {holder}, which waits{through} for \
         transaction {waiter}.",
        conflict_key_text(key)
    ));
    err.key = Some(key.to_vec());
    err
}

/// The error of a lock wait that ran out.
pub fn lock_timeout_error(key: &[u8], holder: &str) -> SqlError {
    let mut err = SqlError::new(
        code::LOCK_NOT_AVAILABLE,
        "canceling statement due to lock timeout",
    )
    .with_detail(format!(
        "{}: locked by transaction {holder}",
        conflict_key_text(key)
    ));
    err.key = Some(key.to_vec());
    err
}

/// How a conflict's detail names a key it cannot describe.
pub fn conflict_key_text(key: &[u8]) -> String {
    format!("key {key:02x?}")
}

/// Versions of a key, oldest first: (commit timestamp, value or deletion).
type Versions = Vec<(u64, Option<Vec<u8>>)>;

#[derive(Default)]
struct MemoryState {
    /// The last commit timestamp.
    clock: u64,
    versions: BTreeMap<Vec<u8>, Versions>,
    /// The last transaction id handed out.
    last_txn: u64,
    /// Row locks: key -> transaction.
    locks: HashMap<Vec<u8>, u64>,
    /// Waiting transactions -> the transaction they wait for.
    waits: HashMap<u64, u64>,
    /// Where ranges begin, after the first: start key -> range id.
    splits: BTreeMap<Vec<u8>, u64>,
}

impl MemoryState {
    fn get(&self, key: &[u8], ts: u64) -> Option<Vec<u8>> {
        self.versions
            .get(key)?
            .iter()
            .rev()
            .find(|(commit, _)| *commit <= ts)
            .and_then(|(_, value)| value.clone())
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize, ts: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
        let upper = if end.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(end)
        };
        let iter = self
            .versions
            .range::<[u8], _>((Bound::Included(start), upper))
            .filter_map(|(key, versions)| {
                versions
                    .iter()
                    .rev()
                    .find(|(commit, _)| *commit <= ts)
                    .and_then(|(_, value)| value.clone())
                    .map(|value| (key.clone(), value))
            });
        if limit == 0 {
            iter.collect()
        } else {
            iter.take(limit).collect()
        }
    }

    /// The newest commit of `key` after `snapshot`, if any.
    fn changed_after(&self, key: &[u8], snapshot: u64) -> Option<u64> {
        let newest = self.versions.get(key).and_then(|v| v.last());
        newest
            .map(|(commit, _)| *commit)
            .filter(|commit| *commit > snapshot)
    }

    /// Whether `from` waits, directly or through others, for `to`.
    fn waits_for(&self, from: u64, to: u64) -> bool {
        let mut current = from;
        for _ in 0..=self.waits.len() {
            if current == to {
                return true;
            }
            match self.waits.get(&current) {
                Some(next) => current = *next,
                None => return false,
            }
        }
        false
    }

    /// Commits `writes` at a new timestamp.
    fn apply(&mut self, writes: Vec<KvWrite>) {
        if writes.is_empty() {
            return;
        }
        self.clock += 1;
        let ts = self.clock;
        for w in writes {
            let (key, value) = match w {
                KvWrite::Put(k, v) => (k, Some(v)),
                KvWrite::Delete(k) => (k, None),
            };
            self.versions.entry(key).or_default().push((ts, value));
        }
    }

    fn release(&mut self, txn: u64) {
        self.locks.retain(|_, holder| *holder != txn);
        self.waits.remove(&txn);
    }
}

/// The store behind a [`MemoryKv`]: its state, and the condition lock
/// waiters sleep on.
#[derive(Default)]
struct Shared {
    state: Mutex<MemoryState>,
    released: Condvar,
}

/// An in-memory [`Kv`] with snapshot isolation, row locks with waits and
/// deadlock detection, for tests and embedded use. Old versions are kept
/// for the life of the store.
///
/// Its ranges are only boundaries (all data is in one map), but flows run
/// over them as the cluster runs them: one range at a time, each answering
/// after a few dozen rows with the key to resume from, so that the engine's
/// tests cover the gateway's merging of flows.
#[derive(Default, Clone)]
pub struct MemoryKv {
    shared: Arc<Shared>,
}

impl MemoryKv {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a lock wait lasts unless the caller says otherwise.
    pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(10);
}

impl Kv for MemoryKv {
    fn get(&self, key: &[u8]) -> SqlResult<Option<Vec<u8>>> {
        let state = self.shared.state.lock();
        Ok(state.get(key, state.clock))
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> SqlResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let state = self.shared.state.lock();
        Ok(state.scan(start, end, limit, state.clock))
    }

    /// A blind write: waits for the keys' locks, then wins regardless of
    /// what was committed before.
    fn write(&self, writes: Vec<KvWrite>) -> SqlResult<()> {
        let txn = self.begin_txn();
        txn.lock_all(writes.iter().map(|w| w.key().to_vec()).collect(), None)?;
        let mut state = self.shared.state.lock();
        state.apply(writes);
        Ok(())
    }

    fn begin(&self) -> SqlResult<Box<dyn KvTxn>> {
        Ok(Box::new(self.begin_txn()))
    }

    fn split(&self, key: &[u8]) -> SqlResult<bool> {
        let mut state = self.shared.state.lock();
        if key.is_empty() || state.splits.contains_key(key) {
            return Ok(false);
        }
        let id = state.splits.values().max().copied().unwrap_or(1) + 1;
        state.splits.insert(key.to_vec(), id);
        Ok(true)
    }

    fn merge_at(&self, key: &[u8]) -> SqlResult<u64> {
        let mut state = self.shared.state.lock();
        if state.splits.remove(key).is_none() {
            return Err(SqlError::new(
                crate::error::code::INVALID_PARAMETER_VALUE,
                "no range starts there: nothing to merge",
            ));
        }
        Ok(state
            .splits
            .range(..key.to_vec())
            .next_back()
            .map_or(1, |(_, id)| *id))
    }

    fn relocate_voter(&self, _range_id: u64, _from: u64, _to: u64) -> SqlResult<Vec<u64>> {
        Err(SqlError::unsupported(
            "the in-memory store has no replicas to move",
        ))
    }

    fn ranges(&self, start: &[u8], end: &[u8]) -> SqlResult<Vec<RangeInfo>> {
        let state = self.shared.state.lock();
        let starts = std::iter::once((Vec::new(), 1)).chain(state.splits.clone());
        let ends = state
            .splits
            .keys()
            .cloned()
            .chain(std::iter::once(Vec::new()));
        Ok(starts
            .zip(ends)
            .filter(|((first, _), after)| {
                (after.is_empty() || after.as_slice() > start)
                    && (end.is_empty() || first.as_slice() < end)
            })
            .map(|((first, range_id), after)| RangeInfo {
                range_id,
                start: first,
                end: after,
                replicas: Vec::new(),
                lease_holder: None,
                size: None,
                qps: None,
            })
            .collect())
    }

    fn transfer_lease(&self, _range_id: u64, _node: u64) -> SqlResult<()> {
        Err(SqlError::unsupported(
            "the in-memory store has no replicas to move a lease between",
        ))
    }

    fn nodes(&self) -> SqlResult<Vec<NodeInfo>> {
        Err(SqlError::unsupported("the in-memory store has no nodes"))
    }
}

impl MemoryKv {
    fn begin_txn(&self) -> MemoryTxn {
        let mut state = self.shared.state.lock();
        state.last_txn += 1;
        MemoryTxn {
            shared: self.shared.clone(),
            id: state.last_txn,
            snapshot: state.clock,
        }
    }
}

struct MemoryTxn {
    shared: Arc<Shared>,
    id: u64,
    snapshot: u64,
}

impl MemoryTxn {
    /// The conflict of a key written at `commit`, after the snapshot.
    fn changed_error(&self, key: &[u8], commit: u64) -> SqlError {
        let snapshot = self.snapshot;
        conflict_error(
            key,
            format!("written at {commit}, after this transaction's snapshot at {snapshot}"),
        )
    }

    /// Locks every key, waiting for other transactions' locks; does not
    /// look at what changed.
    fn lock_all(&self, keys: Vec<Vec<u8>>, wait: Option<Duration>) -> SqlResult<()> {
        let deadline = Instant::now() + wait.unwrap_or(MemoryKv::DEFAULT_LOCK_WAIT);
        let mut state = self.shared.state.lock();
        for key in keys {
            loop {
                let holder = match state.locks.get(&key) {
                    Some(holder) if *holder != self.id => *holder,
                    _ => break,
                };
                if state.waits_for(holder, self.id) {
                    state.waits.remove(&self.id);
                    return Err(deadlock_error(
                        &key,
                        &self.id.to_string(),
                        &holder.to_string(),
                        0,
                    ));
                }
                state.waits.insert(self.id, holder);
                if self
                    .shared
                    .released
                    .wait_until(&mut state, deadline)
                    .timed_out()
                    && state.locks.get(&key).is_some_and(|h| *h != self.id)
                {
                    state.waits.remove(&self.id);
                    return Err(lock_timeout_error(&key, &holder.to_string()));
                }
            }
            state.waits.remove(&self.id);
            state.locks.insert(key, self.id);
        }
        Ok(())
    }
}

impl KvTxn for MemoryTxn {
    fn get(&self, key: &[u8]) -> SqlResult<Option<Vec<u8>>> {
        Ok(self.shared.state.lock().get(key, self.snapshot))
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> SqlResult<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(self
            .shared
            .state
            .lock()
            .scan(start, end, limit, self.snapshot))
    }

    fn refresh_snapshot(&mut self) -> SqlResult<()> {
        self.snapshot = self.shared.state.lock().clock;
        Ok(())
    }

    fn runs_flows(&self) -> bool {
        true
    }

    fn flow(&self, spec: &[u8], spans: Vec<(Vec<u8>, Vec<u8>)>) -> SqlResult<Vec<Vec<FlowPart>>> {
        /// Entries read at a time, and reads per answer.
        const CHUNK: usize = 16;
        const READS: usize = 4;
        let state = self.shared.state.lock();
        let mut answers = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            // Cut the span where ranges begin.
            let mut cuts: Vec<Vec<u8>> = state
                .splits
                .keys()
                .filter(|k| {
                    k.as_slice() > start.as_slice()
                        && (end.is_empty() || k.as_slice() < end.as_slice())
                })
                .cloned()
                .collect();
            cuts.push(end.clone());
            let mut parts = Vec::with_capacity(cuts.len());
            let mut from = start;
            for to in cuts {
                let mut flow = crate::flow::RangeFlow::new(spec);
                let mut cursor = Some(from.clone());
                for _ in 0..READS {
                    let Some(at) = cursor.take() else { break };
                    let entries = state.scan(&at, &to, CHUNK, self.snapshot);
                    if entries.len() == CHUNK {
                        cursor = entries.last().map(|(k, _)| [k.as_slice(), &[0]].concat());
                    }
                    if !flow.push(entries) {
                        break;
                    }
                }
                parts.push(FlowPart {
                    output: flow.finish(),
                    resume: cursor.map(|at| (at, to.clone())),
                });
                from = to;
            }
            answers.push(parts);
        }
        Ok(answers)
    }

    fn lock(&mut self, keys: Vec<Vec<u8>>, wait: Option<Duration>) -> SqlResult<Locked> {
        for key in keys {
            self.lock_all(vec![key.clone()], wait)?;
            if let Some(commit) = self.shared.state.lock().changed_after(&key, self.snapshot) {
                return Ok(Locked::Changed(self.changed_error(&key, commit)));
            }
        }
        Ok(Locked::All)
    }

    fn get_for_update(&self, key: &[u8], wait: Option<Duration>) -> SqlResult<LockedRead> {
        let held = self.shared.state.lock().locks.get(key) == Some(&self.id);
        self.lock_all(vec![key.to_vec()], wait)?;
        let mut state = self.shared.state.lock();
        if let Some(commit) = state.changed_after(key, self.snapshot) {
            return Ok(LockedRead::Changed(self.changed_error(key, commit)));
        }
        let value = state.get(key, self.snapshot);
        if value.is_none() && !held {
            state.locks.remove(key);
            drop(state);
            self.shared.released.notify_all();
        }
        Ok(LockedRead::Row(value))
    }

    /// Keys the transaction did not lock are locked now (waiting for
    /// other holders), and fail if they changed after the snapshot.
    fn commit(self: Box<Self>, writes: Vec<KvWrite>) -> SqlResult<()> {
        let unlocked: Vec<Vec<u8>> = {
            let state = self.shared.state.lock();
            writes
                .iter()
                .map(|w| w.key().to_vec())
                .filter(|k| state.locks.get(k) != Some(&self.id))
                .collect()
        };
        self.lock_all(unlocked.clone(), None)?;
        let mut state = self.shared.state.lock();
        for key in &unlocked {
            if let Some(commit) = state.changed_after(key, self.snapshot) {
                return Err(self.changed_error(key, commit));
            }
        }
        state.apply(writes);
        Ok(())
    }
}

impl Drop for MemoryTxn {
    fn drop(&mut self) {
        self.shared.state.lock().release(self.id);
        self.shared.released.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_and_first_committer_wins() {
        let kv = MemoryKv::new();
        kv.write(vec![KvWrite::Put(b"x".to_vec(), b"1".to_vec())])
            .unwrap();
        let a = kv.begin().unwrap();
        let b = kv.begin().unwrap();
        kv.write(vec![KvWrite::Put(b"y".to_vec(), b"2".to_vec())])
            .unwrap();
        assert_eq!(a.get(b"y").unwrap(), None);
        assert_eq!(kv.get(b"y").unwrap(), Some(b"2".to_vec()));
        a.commit(vec![KvWrite::Put(b"x".to_vec(), b"a".to_vec())])
            .unwrap();
        let err = b
            .commit(vec![KvWrite::Put(b"x".to_vec(), b"b".to_vec())])
            .unwrap_err();
        assert_eq!(err.code, code::SERIALIZATION_FAILURE);
        assert_eq!(kv.get(b"x").unwrap(), Some(b"a".to_vec()));
        assert_eq!(kv.scan(b"", b"", 0).unwrap().len(), 2);
    }

    #[test]
    fn locks_wait_conflict_and_detect_deadlocks() {
        let kv = MemoryKv::new();
        kv.write(vec![KvWrite::Put(b"x".to_vec(), b"0".to_vec())])
            .unwrap();
        let mut a = kv.begin().unwrap();
        let mut b = kv.begin().unwrap();
        assert!(matches!(
            a.lock(vec![b"x".to_vec()], None).unwrap(),
            Locked::All
        ));
        // b waits for a's lock; a short wait runs out.
        let err = b
            .lock(vec![b"x".to_vec()], Some(Duration::from_millis(20)))
            .unwrap_err();
        assert_eq!(err.code, code::LOCK_NOT_AVAILABLE);
        // a commits while b waits: b then finds x changed after its
        // snapshot, and after a refresh locks it.
        let waiter = std::thread::spawn(move || {
            let first = b.lock(vec![b"x".to_vec()], None).unwrap();
            assert!(matches!(first, Locked::Changed(_)));
            b.refresh_snapshot().unwrap();
            assert!(matches!(
                b.lock(vec![b"x".to_vec()], None).unwrap(),
                Locked::All
            ));
            assert_eq!(b.get(b"x").unwrap(), Some(b"1".to_vec()));
            b.commit(vec![KvWrite::Put(b"x".to_vec(), b"2".to_vec())])
                .unwrap();
        });
        std::thread::sleep(Duration::from_millis(20));
        a.commit(vec![KvWrite::Put(b"x".to_vec(), b"1".to_vec())])
            .unwrap();
        waiter.join().unwrap();
        assert_eq!(kv.get(b"x").unwrap(), Some(b"2".to_vec()));

        // Deadlock: c holds p and waits for q; d holds q and asks for p.
        let mut c = kv.begin().unwrap();
        let mut d = kv.begin().unwrap();
        c.lock(vec![b"p".to_vec()], None).unwrap();
        d.lock(vec![b"q".to_vec()], None).unwrap();
        let c_waits = std::thread::spawn(move || {
            let r = c.lock(vec![b"q".to_vec()], None).map(|_| ());
            (c, r)
        });
        std::thread::sleep(Duration::from_millis(20));
        let err = d.lock(vec![b"p".to_vec()], None).unwrap_err();
        assert_eq!(err.code, code::DEADLOCK_DETECTED);
        drop(d);
        let (_c, r) = c_waits.join().unwrap();
        r.unwrap();
    }
}
