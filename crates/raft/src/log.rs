//! A replica's Raft log and persistent Raft state, behind raft-rs's `Storage`
//! trait.
//!
//! Reads come from an in-memory tail cache where possible and from the
//! engine otherwise. Writes are never done here directly: the store loop
//! *stages* them into the shared `WriteBatch` of its turn (`stage_*`), and
//! the in-memory view is updated at the same time, before the batch is
//! written; raft-rs does not read storage between the two.

use std::collections::VecDeque;
use std::sync::Arc;

use prost::Message as _;
use raft::prelude::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};
use tessera_proto::meta::{
    ApplyState, KeyValue, RangeDescriptor, RangeSnapshot, ReplicaDescriptor, ReplicaRole,
};
use tessera_storage::{Cf, Engine, ScanIter, WriteBatch};
use tessera_types::{RangeId, ReplicaId};

use crate::keys;
use crate::{Error, Result};

/// The log index of the initial state written at bootstrap, as in TiKV: every
/// initial replica starts from an identical, already-applied "snapshot" at
/// this index and term, so the first real entry is `INIT_INDEX + 1`.
pub const INIT_INDEX: u64 = 5;

/// The term of the bootstrap state.
pub const INIT_TERM: u64 = 5;

/// How many recent entries are kept in memory.
const CACHE_ENTRIES: usize = 4096;

/// A replica's Raft storage.
pub struct ReplicaStorage {
    engine: Arc<dyn Engine>,
    range_id: RangeId,
    pub(crate) hard_state: HardState,
    pub(crate) conf_state: ConfState,
    pub(crate) apply: ApplyState,
    /// None until the replica is initialized by bootstrap or a snapshot.
    pub(crate) descriptor: Option<RangeDescriptor>,
    last_index: u64,
    last_term: u64,
    /// The newest entries, contiguous, ending at `last_index`.
    cache: VecDeque<Entry>,
}

pub(crate) fn encode_pb<M: protobuf::Message>(msg: &M) -> Vec<u8> {
    // Writing a well-formed message to a Vec cannot fail.
    msg.write_to_bytes().expect("protobuf encoding into memory")
}

fn decode_pb<M: protobuf::Message>(bytes: &[u8], what: &str) -> Result<M> {
    protobuf::Message::parse_from_bytes(bytes)
        .map_err(|err| tessera_storage::Error::Corruption(format!("{what}: {err}")).into())
}

fn decode_prost<M: prost::Message + Default>(bytes: &[u8], what: &str) -> Result<M> {
    M::decode(bytes)
        .map_err(|err| tessera_storage::Error::Corruption(format!("{what}: {err}")).into())
}

fn storage_error(err: Error) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(err)))
}

impl ReplicaStorage {
    /// The engine the replica's state and data live in.
    pub(crate) fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    /// An uninitialized replica: no descriptor, empty log, waiting for a
    /// snapshot from its leader.
    pub fn uninitialized(engine: Arc<dyn Engine>, range_id: RangeId) -> Self {
        Self {
            engine,
            range_id,
            hard_state: HardState::default(),
            conf_state: ConfState::default(),
            apply: ApplyState::default(),
            descriptor: None,
            last_index: 0,
            last_term: 0,
            cache: VecDeque::new(),
        }
    }

    /// Stages the bootstrap state of a new range: the replica starts at
    /// `INIT_INDEX` with `descriptor`'s voters, nothing to replay.
    pub fn stage_bootstrap(
        range_id: RangeId,
        descriptor: &RangeDescriptor,
        batch: &mut WriteBatch,
    ) {
        debug_assert_eq!(range_id, descriptor.range_id);
        Self::stage_new_range(descriptor, 0, batch);
    }

    /// Stages the initial state of a range created by bootstrap or by a
    /// split: at `INIT_INDEX`, with the descriptor's voters and learners and
    /// the GC threshold it inherits. Its data is already in the engine.
    pub fn stage_new_range(
        descriptor: &RangeDescriptor,
        gc_threshold: u64,
        batch: &mut WriteBatch,
    ) {
        let range_id = descriptor.range_id;
        let (learners, voters): (Vec<&ReplicaDescriptor>, Vec<&ReplicaDescriptor>) = descriptor
            .replicas
            .iter()
            .partition(|r| r.role == ReplicaRole::Learner as i32);
        let conf_state = ConfState {
            voters: voters.iter().map(|r| r.replica_id).collect(),
            learners: learners.iter().map(|r| r.replica_id).collect(),
            ..Default::default()
        };
        let hard_state = HardState {
            term: INIT_TERM,
            commit: INIT_INDEX,
            ..Default::default()
        };
        let apply = ApplyState {
            applied_index: INIT_INDEX,
            applied_term: INIT_TERM,
            truncated_index: INIT_INDEX,
            truncated_term: INIT_TERM,
            gc_threshold,
            frozen: false,
            pending_split: None,
        };
        batch.put(Cf::Raft, keys::hard_state(range_id), encode_pb(&hard_state));
        batch.put(Cf::Raft, keys::conf_state(range_id), encode_pb(&conf_state));
        batch.put(Cf::Raft, keys::apply_state(range_id), apply.encode_to_vec());
        batch.put(
            Cf::Raft,
            keys::descriptor(range_id),
            descriptor.encode_to_vec(),
        );
    }

    /// Loads a replica's state from the engine.
    pub fn load(engine: Arc<dyn Engine>, range_id: RangeId) -> Result<Self> {
        let get = |key: Vec<u8>| engine.get(Cf::Raft, &key);
        let hard_state = match get(keys::hard_state(range_id))? {
            Some(bytes) => decode_pb(&bytes, "hard state")?,
            None => HardState::default(),
        };
        let conf_state = match get(keys::conf_state(range_id))? {
            Some(bytes) => decode_pb(&bytes, "conf state")?,
            None => ConfState::default(),
        };
        let apply: ApplyState = match get(keys::apply_state(range_id))? {
            Some(bytes) => decode_prost(&bytes, "apply state")?,
            None => ApplyState::default(),
        };
        let descriptor = match get(keys::descriptor(range_id))? {
            Some(bytes) => Some(decode_prost(&bytes, "range descriptor")?),
            None => None,
        };
        let mut storage = Self {
            engine,
            range_id,
            hard_state,
            conf_state,
            apply,
            descriptor,
            last_index: 0,
            last_term: 0,
            cache: VecDeque::new(),
        };
        storage.last_index = storage.apply.truncated_index;
        storage.last_term = storage.apply.truncated_term;
        // Walk the log to find its end, keeping the newest entries cached.
        let start = keys::log_entry(range_id, storage.apply.truncated_index + 1);
        let end = keys::log_entry(range_id, u64::MAX);
        for item in storage.engine.scan(Cf::Raft, &start, &end) {
            let (_, value) = item?;
            let entry: Entry = decode_pb(&value, "log entry")?;
            if entry.index != storage.last_index + 1 {
                return Err(tessera_storage::Error::Corruption(format!(
                    "range {range_id}: log gap: entry {} after {}",
                    entry.index, storage.last_index
                ))
                .into());
            }
            storage.last_index = entry.index;
            storage.last_term = entry.term;
            storage.cache.push_back(entry);
            if storage.cache.len() > CACHE_ENTRIES {
                storage.cache.pop_front();
            }
        }
        Ok(storage)
    }

    /// The index of the last entry dropped from the log (or that the log
    /// of a new range starts after).
    pub fn truncated_index(&self) -> u64 {
        self.apply.truncated_index
    }

    /// The persisted hard state.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The range id.
    pub fn range_id(&self) -> RangeId {
        self.range_id
    }

    /// The index of the newest log entry.
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// Stages new entries from a `Ready`, replacing any conflicting tail.
    pub fn stage_append(&mut self, entries: &[Entry], batch: &mut WriteBatch) {
        let Some(first) = entries.first() else {
            return;
        };
        // Entries past the new tail are from an overwritten leader's log.
        let new_last = entries[entries.len() - 1].index;
        if new_last < self.last_index {
            batch.delete_range(
                Cf::Raft,
                keys::log_entry(self.range_id, new_last + 1),
                keys::log_entry(self.range_id, self.last_index + 1),
            );
        }
        while self.cache.back().is_some_and(|e| e.index >= first.index) {
            self.cache.pop_back();
        }
        if self
            .cache
            .back()
            .is_some_and(|e| e.index + 1 != first.index)
        {
            self.cache.clear();
        }
        for entry in entries {
            batch.put(
                Cf::Raft,
                keys::log_entry(self.range_id, entry.index),
                encode_pb(entry),
            );
            self.cache.push_back(entry.clone());
        }
        while self.cache.len() > CACHE_ENTRIES {
            self.cache.pop_front();
        }
        self.last_index = new_last;
        self.last_term = entries[entries.len() - 1].term;
    }

    /// Stages a new hard state.
    pub fn stage_hard_state(&mut self, hard_state: &HardState, batch: &mut WriteBatch) {
        self.hard_state = hard_state.clone();
        batch.put(
            Cf::Raft,
            keys::hard_state(self.range_id),
            encode_pb(hard_state),
        );
    }

    /// Stages, for a write that lands before the one of the turn's new
    /// entries and hard state (entries applied early), the hard state
    /// `durable` (the one on disk before the turn) with its commit index
    /// raised to `applied`. Not the turn's new hard state: its commit index
    /// may name entries still to be written, and a crash between the two
    /// writes would leave a log raft-rs refuses to load. Nor a commit index
    /// below the applied one, which raft-rs refuses as well.
    pub fn stage_early_commit(&self, durable: &HardState, applied: u64, batch: &mut WriteBatch) {
        let hard_state = HardState {
            commit: durable.commit.max(applied),
            ..durable.clone()
        };
        batch.put(
            Cf::Raft,
            keys::hard_state(self.range_id),
            encode_pb(&hard_state),
        );
    }

    /// Stages the commit index from a `LightReady`.
    pub fn stage_commit(&mut self, commit: u64, batch: &mut WriteBatch) {
        self.hard_state.commit = commit;
        let hard_state = self.hard_state.clone();
        self.stage_hard_state(&hard_state, batch);
    }

    /// Stages the apply state (written with the effects it covers).
    pub fn stage_apply_state(&self, batch: &mut WriteBatch) {
        batch.put(
            Cf::Raft,
            keys::apply_state(self.range_id),
            self.apply.encode_to_vec(),
        );
    }

    /// Stages a new conf state (after a membership change applies).
    pub fn stage_conf_state(&mut self, conf_state: ConfState, batch: &mut WriteBatch) {
        batch.put(
            Cf::Raft,
            keys::conf_state(self.range_id),
            encode_pb(&conf_state),
        );
        self.conf_state = conf_state;
    }

    /// Stages a snapshot received from the leader: the range's data is
    /// replaced, the log is discarded, and the replica resumes from the
    /// snapshot's index.
    pub fn stage_snapshot(&mut self, snapshot: &Snapshot, batch: &mut WriteBatch) -> Result<()> {
        let meta = snapshot.get_metadata();
        let data: RangeSnapshot = decode_prost(&snapshot.data, "range snapshot")?;
        let descriptor = data
            .descriptor
            .ok_or_else(|| Error::InvalidInput("snapshot without a range descriptor".into()))?;
        // Clear what this replica knew of its span (before and after), then load.
        for cf in Cf::REPLICATED {
            if let Some(old) = &self.descriptor {
                let (start, end) = cf.span_bounds(&old.start_key, &old.end_key);
                batch.delete_range(cf, start, end);
            }
            let (start, end) = cf.span_bounds(&descriptor.start_key, &descriptor.end_key);
            batch.delete_range(cf, start, end);
        }
        for (cf, entries) in [
            (Cf::Raw, data.data),
            (Cf::Lock, data.locks),
            (Cf::Write, data.writes),
            (Cf::Default, data.values),
        ] {
            for KeyValue { key, value } in entries {
                batch.put(cf, key, value);
            }
        }
        batch.delete_range(
            Cf::Raft,
            keys::log_entry(self.range_id, 0),
            keys::log_entry(self.range_id, u64::MAX),
        );
        self.apply = ApplyState {
            applied_index: meta.index,
            applied_term: meta.term,
            truncated_index: meta.index,
            truncated_term: meta.term,
            gc_threshold: data.gc_threshold,
            frozen: data.frozen,
            pending_split: data.pending_split,
        };
        self.stage_apply_state(batch);
        self.stage_conf_state(meta.get_conf_state().clone(), batch);
        batch.put(
            Cf::Raft,
            keys::descriptor(self.range_id),
            descriptor.encode_to_vec(),
        );
        self.descriptor = Some(descriptor);
        if self.hard_state.commit < meta.index {
            self.hard_state.commit = meta.index;
        }
        if self.hard_state.term < meta.term {
            self.hard_state.term = meta.term;
        }
        let hard_state = self.hard_state.clone();
        self.stage_hard_state(&hard_state, batch);
        self.cache.clear();
        self.last_index = meta.index;
        self.last_term = meta.term;
        Ok(())
    }

    /// Stages the removal of a replica's state (not its span's data) and a
    /// tombstone: messages to replica ids up to `tombstone` are dropped.
    pub fn stage_destroy(range_id: RangeId, tombstone: ReplicaId, batch: &mut WriteBatch) {
        let (start, end) = keys::replica_state_span(range_id);
        batch.delete_range(Cf::Raft, start, end);
        batch.delete(Cf::Raft, keys::replica_index(range_id));
        batch.put(
            Cf::Raft,
            keys::tombstone(range_id),
            tombstone.to_be_bytes().to_vec(),
        );
    }

    /// Stages the removal of log entries up to and including `index`, which
    /// must be applied.
    pub fn stage_compact(&mut self, index: u64, batch: &mut WriteBatch) -> Result<()> {
        if index <= self.apply.truncated_index || index > self.apply.applied_index {
            return Ok(());
        }
        let term = raft::Storage::term(self, index)?;
        batch.delete_range(
            Cf::Raft,
            keys::log_entry(self.range_id, 0),
            keys::log_entry(self.range_id, index + 1),
        );
        self.apply.truncated_index = index;
        self.apply.truncated_term = term;
        self.stage_apply_state(batch);
        while self.cache.front().is_some_and(|e| e.index <= index) {
            self.cache.pop_front();
        }
        Ok(())
    }

    fn read_entries(&self, low: u64, high: u64) -> Result<Vec<Entry>> {
        if let Some(front) = self.cache.front() {
            if low >= front.index {
                let offset = (low - front.index) as usize;
                let count = (high - low) as usize;
                return Ok(self
                    .cache
                    .iter()
                    .skip(offset)
                    .take(count)
                    .cloned()
                    .collect());
            }
        }
        let start = keys::log_entry(self.range_id, low);
        let end = keys::log_entry(self.range_id, high);
        let mut entries = Vec::with_capacity((high - low) as usize);
        for item in self.engine.scan(Cf::Raft, &start, &end) {
            let (_, value) = item?;
            let entry: Entry = decode_pb(&value, "log entry")?;
            if entry.index != low + entries.len() as u64 {
                return Err(tessera_storage::Error::Corruption(format!(
                    "range {}: expected entry {}, found {}",
                    self.range_id,
                    low + entries.len() as u64,
                    entry.index
                ))
                .into());
            }
            entries.push(entry);
        }
        if entries.len() as u64 != high - low {
            return Err(tessera_storage::Error::Corruption(format!(
                "range {}: entries {low}..{high} missing",
                self.range_id
            ))
            .into());
        }
        Ok(entries)
    }

    /// Builds a snapshot of the applied state: the descriptor and every key
    /// of the span, at the applied index.
    fn build_snapshot(&self) -> Result<Snapshot> {
        let descriptor = self
            .descriptor
            .clone()
            .ok_or_else(|| Error::InvalidInput("snapshot of an uninitialized replica".into()))?;
        // One engine snapshot for every family, so they agree.
        let view = self.engine.snapshot();
        let entries = |cf: Cf| -> Result<Vec<KeyValue>> {
            let (start, end) = cf.span_bounds(&descriptor.start_key, &descriptor.end_key);
            ScanIter::new(view.clone(), cf, &start, &end)
                .map(|item| item.map(|(key, value)| KeyValue { key, value }))
                .collect::<std::result::Result<_, _>>()
                .map_err(Into::into)
        };
        let body = RangeSnapshot {
            data: entries(Cf::Raw)?,
            locks: entries(Cf::Lock)?,
            writes: entries(Cf::Write)?,
            values: entries(Cf::Default)?,
            descriptor: Some(descriptor),
            gc_threshold: self.apply.gc_threshold,
            frozen: self.apply.frozen,
            pending_split: self.apply.pending_split.clone(),
        };
        let mut snapshot = Snapshot {
            data: body.encode_to_vec().into(),
            ..Default::default()
        };
        let meta = snapshot.mut_metadata();
        meta.index = self.apply.applied_index;
        meta.term = self.apply.applied_term;
        meta.set_conf_state(self.conf_state.clone());
        Ok(snapshot)
    }
}

impl raft::Storage for ReplicaStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.apply.truncated_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last_index + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let mut entries = self.read_entries(low, high).map_err(storage_error)?;
        raft::util::limit_size(&mut entries, max_size.into());
        Ok(entries)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.apply.truncated_index {
            return Ok(self.apply.truncated_term);
        }
        if idx < self.apply.truncated_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last_index {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        if idx == self.last_index {
            return Ok(self.last_term);
        }
        let entries = self.read_entries(idx, idx + 1).map_err(storage_error)?;
        Ok(entries[0].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.apply.truncated_index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index)
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.apply.applied_index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        self.build_snapshot().map_err(storage_error)
    }
}
