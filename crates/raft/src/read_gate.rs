//! Point reads under a leader lease, served on the caller's thread.
//!
//! A read that the leader may serve from its own state (it holds its lease
//! and has applied what it must) needs nothing from the store loop but
//! permission. Each replica shares a [`ReadGate`] with the [`StoreHandle`]
//! (`crate::StoreHandle`): the store loop writes into it what a read must
//! check, and a caller that finds the gate open reads the engine itself,
//! without waking the store loop's thread and waiting for its answer.
//!
//! The store loop opens the gate only at the end of a turn, once the batch
//! it applied is written, and for no longer than the lease runs (less half
//! its length, so that a read reaching the store loop renews it in time).
//! Whatever narrows what may be read closes or updates the gate at once:
//! the lease ending (a leadership transfer, a membership change, the loss
//! of leadership), and, before the apply batch that holds it is written, a
//! freeze for a merge, a new span (a split or a merge) or a raised GC
//! threshold. Those updates take the gate's write lock, and a read takes its
//! engine snapshot under the read lock: a read that passed the gate read a
//! snapshot from before the change.
//!
//! One-phase commits (see `Replica::propose`) must land above every MVCC
//! read served in the term, and an MVCC read must wait for the one-phase
//! commits already proposed at or below its timestamp. Both records live
//! here, under the same lock: a proposal takes the write lock to raise its
//! commit timestamp above `max_ts` and record itself, and a read raises
//! `max_ts` and looks for such commits under the read lock, so one of the
//! two always sees the other. A read that finds one goes to the store loop,
//! which waits for it to apply.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock, RwLockWriteGuard};
use tessera_proto::txn::TxnError;
use tessera_storage::mvcc::{Lock, MvccError};
use tessera_storage::{Cf, Engine};
use tessera_types::{keys::span_contains, Timestamp};

use crate::load::LoadMeter;
use crate::Result;

/// What a replica shares with the callers of its store: the lease-checked
/// permission to read, and the records that reads and one-phase commits
/// keep of each other.
pub(crate) struct ReadGate {
    state: RwLock<GateState>,
    /// The requests this replica served as leader, recently: those the
    /// store loop handles and the reads served through the gate.
    pub load: Mutex<LoadMeter>,
    /// The pessimistic locks this replica holds in memory as leader, by
    /// key (see `Replica::hold`): written by the store loop, read by lock
    /// waiters too (`StoreHandle::wait_lock_released`).
    pub held_locks: Mutex<HashMap<Vec<u8>, Lock>>,
}

/// The gate's state, written by the store loop.
pub(crate) struct GateState {
    /// Reads may pass until this instant; None: closed.
    open_until: Option<Instant>,
    /// The leader's term the gate was opened in.
    term: u64,
    /// The range's span.
    start_key: Vec<u8>,
    end_key: Vec<u8>,
    /// MVCC reads below this are refused (by the store loop's answer).
    gc_threshold: Timestamp,
    /// The MVCC reads served in the leader's current term.
    pub reads: ReadsServed,
    /// One-phase commits proposed and not yet applied: log index -> commit
    /// timestamp. An MVCC read at or above such a timestamp waits for it.
    pub pending_commits: BTreeMap<u64, Timestamp>,
}

/// What a leader knows of the MVCC reads served in its range, for one term.
#[derive(Default)]
pub(crate) struct ReadsServed {
    /// The term this record belongs to.
    pub term: u64,
    /// The highest timestamp of the MVCC reads served in the term; a
    /// one-phase commit must commit above it. Raised by reads under the
    /// gate's read lock.
    max_ts: AtomicU64,
    /// Whether `max_ts` also covers the reads of earlier terms (and leaders):
    /// set by a timestamp from the oracle taken in this term. One-phase
    /// commits wait for it.
    pub covers_earlier_terms: bool,
}

impl ReadsServed {
    /// A record for `term`, with no reads yet.
    pub fn new(term: u64) -> Self {
        Self {
            term,
            ..Self::default()
        }
    }

    pub fn max_ts(&self) -> Timestamp {
        Timestamp(self.max_ts.load(Ordering::Acquire))
    }

    /// Records a read (or an oracle timestamp) at `ts`.
    pub fn raise(&self, ts: Timestamp) {
        self.max_ts.fetch_max(ts.0, Ordering::AcqRel);
    }
}

/// What the store loop publishes into a gate.
pub(crate) struct Permit<'a> {
    /// Until when reads may pass (None: closed).
    pub open_until: Option<Instant>,
    pub term: u64,
    pub start_key: &'a [u8],
    pub end_key: &'a [u8],
    pub gc_threshold: Timestamp,
    /// The leader's applied index, once the batches holding it are
    /// written: the one-phase commits up to it are forgotten.
    pub applied_written: Option<u64>,
}

/// A point read the gate can serve.
#[derive(Clone, Copy)]
pub(crate) enum GateRead<'a> {
    /// A key's latest value in the raw family (linearizable).
    Get(&'a [u8]),
    /// A key's value at a timestamp, or the lock that hides it; a latest
    /// read if true (see `MvccReader::latest`).
    MvccGet(&'a [u8], Timestamp, bool),
}

impl<'a> GateRead<'a> {
    /// The key read.
    pub fn key(&self) -> &'a [u8] {
        match *self {
            GateRead::Get(key) | GateRead::MvccGet(key, ..) => key,
        }
    }
}

/// A read the gate served.
pub(crate) enum GateAnswer {
    Get(Option<Vec<u8>>),
    MvccGet(std::result::Result<Option<Vec<u8>>, TxnError>),
}

impl ReadGate {
    /// A closed gate.
    pub fn new(now: Instant) -> Self {
        Self {
            state: RwLock::new(GateState {
                open_until: None,
                term: 0,
                start_key: Vec::new(),
                end_key: Vec::new(),
                gc_threshold: Timestamp(0),
                reads: ReadsServed::default(),
                pending_commits: BTreeMap::new(),
            }),
            load: Mutex::new(LoadMeter::new(now)),
            held_locks: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes the store loop's view. With `may_open` false the gate
    /// only narrows: it stays closed if it was, and otherwise keeps its
    /// deadline unless `permit` closes it. The records start afresh if the
    /// term is new (see `records`). Returns whether the span changed.
    pub fn publish(&self, permit: Permit<'_>, may_open: bool) -> bool {
        let mut state = self.records(permit.term);
        if let Some(applied) = permit.applied_written {
            state.pending_commits.retain(|index, _| *index > applied);
        }
        state.open_until = match (may_open, permit.open_until, state.open_until) {
            (_, None, _) => None,
            (true, until, _) => until,
            (false, Some(until), Some(current)) => Some(until.min(current)),
            (false, Some(_), None) => None,
        };
        state.term = permit.term;
        state.gc_threshold = permit.gc_threshold;
        let moved = state.start_key != permit.start_key || state.end_key != permit.end_key;
        if moved {
            state.start_key = permit.start_key.to_vec();
            state.end_key = permit.end_key.to_vec();
        }
        moved
    }

    /// Closes the gate at once.
    pub fn close(&self) {
        self.state.write().open_until = None;
    }

    /// The store loop's access to the records of reads and one-phase
    /// commits, for the leader's current `term` (a record of another term
    /// is started afresh: the reads of earlier terms are unknown).
    pub fn records(&self, term: u64) -> RwLockWriteGuard<'_, GateState> {
        let mut state = self.state.write();
        if state.reads.term != term {
            state.reads = ReadsServed::new(term);
        }
        state
    }

    /// Serves `read` if the gate is open for its key at `now`; None sends
    /// it to the store loop.
    pub fn try_read(
        &self,
        engine: &Arc<dyn Engine>,
        read: GateRead<'_>,
        now: Instant,
    ) -> Option<Result<GateAnswer>> {
        let key = read.key();
        let (ts, latest) = match read {
            GateRead::Get(_) => (None, false),
            GateRead::MvccGet(_, ts, latest) => (Some(ts), latest),
        };
        let (snapshot, ts) = {
            let state = self.state.read();
            if state.open_until.is_none_or(|until| now >= until)
                || state.reads.term != state.term
                || !span_contains(&state.start_key, &state.end_key, key)
            {
                return None;
            }
            let Some(ts) = ts else {
                let value = engine.get(Cf::Raw, key);
                drop(state);
                self.load.lock().record(key);
                return Some(value.map(GateAnswer::Get).map_err(Into::into));
            };
            if ts < state.gc_threshold {
                return None;
            }
            state.reads.raise(ts);
            if state.pending_commits.values().any(|commit| *commit <= ts) {
                return None;
            }
            (engine.snapshot(), ts)
        };
        self.load.lock().record(key);
        Some(
            match crate::replica::mvcc_reader(snapshot.as_ref(), latest).get(key, ts) {
                Ok(value) => Ok(GateAnswer::MvccGet(Ok(value))),
                Err(MvccError::Storage(err)) => Err(err.into()),
                Err(err) => Ok(GateAnswer::MvccGet(Err(crate::txn::txn_error(err)))),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tessera_storage::{MemoryEngine, WriteBatch};

    use super::*;

    fn engine() -> Arc<dyn Engine> {
        let engine = MemoryEngine::new();
        let mut batch = WriteBatch::new();
        batch.put(Cf::Raw, b"b".to_vec(), b"raw".to_vec());
        engine.write(&batch, false).unwrap();
        Arc::new(engine)
    }

    fn permit(open_until: Option<Instant>) -> Permit<'static> {
        Permit {
            open_until,
            term: 3,
            start_key: b"a",
            end_key: b"m",
            gc_threshold: Timestamp(10),
            applied_written: None,
        }
    }

    /// Publishes `permit` as the store loop's end-of-turn publish does.
    fn open_gate(now: Instant) -> ReadGate {
        let gate = ReadGate::new(now);
        gate.publish(permit(Some(now + Duration::from_millis(400))), true);
        gate
    }

    fn get(gate: &ReadGate, engine: &Arc<dyn Engine>, key: &[u8], now: Instant) -> Option<Vec<u8>> {
        match gate.try_read(engine, GateRead::Get(key), now)? {
            Ok(GateAnswer::Get(value)) => value,
            _ => panic!("a get answered otherwise"),
        }
    }

    #[test]
    fn an_open_gate_serves_keys_of_its_span_until_its_deadline() {
        let (engine, now) = (engine(), Instant::now());
        let gate = ReadGate::new(now);
        assert!(gate.try_read(&engine, GateRead::Get(b"b"), now).is_none());
        let gate = open_gate(now);
        assert_eq!(get(&gate, &engine, b"b", now), Some(b"raw".to_vec()));
        assert!(gate.try_read(&engine, GateRead::Get(b"n"), now).is_none());
        let late = now + Duration::from_millis(400);
        assert!(gate.try_read(&engine, GateRead::Get(b"b"), late).is_none());
        gate.close();
        assert!(gate.try_read(&engine, GateRead::Get(b"b"), now).is_none());
    }

    #[test]
    fn a_narrowing_publish_never_opens_and_never_extends() {
        let (engine, now) = (engine(), Instant::now());
        let gate = ReadGate::new(now);
        gate.publish(permit(Some(now + Duration::from_secs(1))), false);
        assert!(gate.try_read(&engine, GateRead::Get(b"b"), now).is_none());
        let gate = open_gate(now);
        gate.publish(permit(Some(now + Duration::from_secs(5))), false);
        let late = now + Duration::from_millis(450);
        assert!(gate.try_read(&engine, GateRead::Get(b"b"), late).is_none());
        // A new span applies at once: the key moved to another range.
        let moved = gate.publish(
            Permit {
                end_key: b"c",
                ..permit(Some(now + Duration::from_secs(1)))
            },
            false,
        );
        assert!(moved);
        assert!(gate.try_read(&engine, GateRead::Get(b"d"), now).is_none());
        assert!(get(&gate, &engine, b"b", now).is_some());
        gate.publish(permit(None), false);
        assert!(gate.try_read(&engine, GateRead::Get(b"b"), now).is_none());
    }

    #[test]
    fn mvcc_reads_raise_the_reads_record_and_wait_for_one_phase_commits_below_them() {
        let (engine, now) = (engine(), Instant::now());
        let gate = open_gate(now);
        let read = |ts| gate.try_read(&engine, GateRead::MvccGet(b"b", Timestamp(ts), false), now);
        assert!(matches!(read(50), Some(Ok(GateAnswer::MvccGet(Ok(None))))));
        assert_eq!(gate.records(3).reads.max_ts(), Timestamp(50));
        // Below the GC threshold: the store loop answers (TooOld).
        assert!(read(5).is_none());
        gate.records(3).pending_commits.insert(7, Timestamp(60));
        assert!(read(55).is_some());
        assert!(read(60).is_none());
        assert_eq!(gate.records(3).reads.max_ts(), Timestamp(60));
        // A new term starts a new record: the reads wait for it.
        drop(gate.records(4));
        assert!(read(55).is_none());
    }
}
