//! The storage interface the SQL layer runs on.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::Mutex;

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
/// transaction that reads one snapshot and commits its writes atomically,
/// failing with 40001 if another transaction committed a write to one of
/// its keys after its snapshot (first committer wins).
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
}

/// A transaction: reads at one snapshot, then one atomic commit. Dropping
/// it without committing abandons it.
pub trait KvTxn: Send {
    /// Reads one key as of the snapshot.
    fn get(&self, key: &[u8]) -> SqlResult<Option<Vec<u8>>>;
    /// Reads `[start, end)` as of the snapshot, at most `limit` entries (0:
    /// all).
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> SqlResult<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Commits `writes` atomically, or fails with 40001 on a conflict.
    fn commit(self: Box<Self>, writes: Vec<KvWrite>) -> SqlResult<()>;
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

    /// Commits `writes` at a new timestamp, unless a key was written after
    /// `snapshot` (None: a blind write that wins regardless).
    fn commit(&mut self, writes: Vec<KvWrite>, snapshot: Option<u64>) -> SqlResult<()> {
        if let Some(snapshot) = snapshot {
            for w in &writes {
                let newest = self.versions.get(w.key()).and_then(|v| v.last());
                if let Some((commit, _)) = newest.filter(|(commit, _)| *commit > snapshot) {
                    return Err(conflict_error(
                        w.key(),
                        format!(
                            "written at {commit}, after this transaction's snapshot at {snapshot}"
                        ),
                    ));
                }
            }
        }
        if writes.is_empty() {
            return Ok(());
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
        Ok(())
    }
}

/// An in-memory [`Kv`] with snapshot isolation, for tests and embedded
/// use. Old versions are kept for the life of the store.
#[derive(Default, Clone)]
pub struct MemoryKv {
    state: Arc<Mutex<MemoryState>>,
}

impl MemoryKv {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Kv for MemoryKv {
    fn get(&self, key: &[u8]) -> SqlResult<Option<Vec<u8>>> {
        let state = self.state.lock();
        Ok(state.get(key, state.clock))
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> SqlResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let state = self.state.lock();
        Ok(state.scan(start, end, limit, state.clock))
    }

    fn write(&self, writes: Vec<KvWrite>) -> SqlResult<()> {
        self.state.lock().commit(writes, None)
    }

    fn begin(&self) -> SqlResult<Box<dyn KvTxn>> {
        let snapshot = self.state.lock().clock;
        Ok(Box::new(MemoryTxn {
            state: self.state.clone(),
            snapshot,
        }))
    }
}

struct MemoryTxn {
    state: Arc<Mutex<MemoryState>>,
    snapshot: u64,
}

impl KvTxn for MemoryTxn {
    fn get(&self, key: &[u8]) -> SqlResult<Option<Vec<u8>>> {
        Ok(self.state.lock().get(key, self.snapshot))
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> SqlResult<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(self.state.lock().scan(start, end, limit, self.snapshot))
    }

    fn commit(self: Box<Self>, writes: Vec<KvWrite>) -> SqlResult<()> {
        self.state.lock().commit(writes, Some(self.snapshot))
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
}
