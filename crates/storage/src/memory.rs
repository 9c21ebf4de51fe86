use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::{BatchOp, Cf, Engine, Result, Snapshot, WriteBatch};

type Families = [BTreeMap<Vec<u8>, Vec<u8>>; Cf::ALL.len()];

/// An in-memory engine for tests. Snapshots share the maps copy-on-write: a
/// write clones the maps only while a snapshot of them is still alive.
#[derive(Default)]
pub struct MemoryEngine {
    families: RwLock<Arc<Families>>,
}

impl MemoryEngine {
    /// An empty engine.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Engine for MemoryEngine {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.families.read()[cf.index()].get(key).cloned())
    }

    fn write(&self, batch: &WriteBatch, _sync: bool) -> Result<()> {
        let mut guard = self.families.write();
        let families = Arc::make_mut(&mut guard);
        for op in batch.ops() {
            match op {
                BatchOp::Put { cf, key, value } => {
                    families[cf.index()].insert(key.clone(), value.clone());
                }
                BatchOp::Delete { cf, key } => {
                    families[cf.index()].remove(key);
                }
                BatchOp::DeleteRange { cf, start, end } => {
                    let map = &mut families[cf.index()];
                    let mut tail = map.split_off(start.as_slice());
                    if !end.is_empty() {
                        let mut kept = tail.split_off(end.as_slice());
                        map.append(&mut kept);
                    }
                    tail.clear();
                }
            }
        }
        Ok(())
    }

    fn snapshot(&self) -> Arc<dyn Snapshot> {
        Arc::new(MemorySnapshot(self.families.read().clone()))
    }
}

struct MemorySnapshot(Arc<Families>);

impl Snapshot for MemorySnapshot {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.0[cf.index()].get(key).cloned())
    }

    fn scan_chunk(
        &self,
        cf: Cf,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let upper = if end.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(end)
        };
        if !end.is_empty() && start >= end {
            return Ok(Vec::new());
        }
        Ok(self.0[cf.index()]
            .range::<[u8], _>((Bound::Included(start), upper))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}
