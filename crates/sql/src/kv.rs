//! The storage interface the SQL layer runs on.

use std::collections::BTreeMap;
use std::ops::Bound;

use parking_lot::RwLock;

use crate::error::SqlResult;

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

/// Ordered key-value storage with linearizable reads and atomic batches.
///
/// Implementations: [`MemoryKv`] here; the replicated cluster client in
/// `tessera-server`.
pub trait Kv: Send + Sync {
    /// Reads one key.
    fn get(&self, key: &[u8]) -> SqlResult<Option<Vec<u8>>>;
    /// Reads `[start, end)` in key order, at most `limit` entries (0: all).
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> SqlResult<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Applies the writes atomically.
    fn write(&self, writes: Vec<KvWrite>) -> SqlResult<()>;
}

/// An in-memory [`Kv`] for tests and embedded use.
#[derive(Default)]
pub struct MemoryKv {
    map: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemoryKv {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Kv for MemoryKv {
    fn get(&self, key: &[u8]) -> SqlResult<Option<Vec<u8>>> {
        Ok(self.map.read().get(key).cloned())
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> SqlResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let map = self.map.read();
        let upper = if end.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(end)
        };
        let iter = map
            .range::<[u8], _>((Bound::Included(start), upper))
            .map(|(k, v)| (k.clone(), v.clone()));
        Ok(if limit == 0 {
            iter.collect()
        } else {
            iter.take(limit).collect()
        })
    }

    fn write(&self, writes: Vec<KvWrite>) -> SqlResult<()> {
        let mut map = self.map.write();
        for w in writes {
            match w {
                KvWrite::Put(k, v) => {
                    map.insert(k, v);
                }
                KvWrite::Delete(k) => {
                    map.remove(&k);
                }
            }
        }
        Ok(())
    }
}
