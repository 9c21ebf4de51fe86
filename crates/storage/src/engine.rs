use std::sync::Arc;

use crate::{Result, ScanIter, WriteBatch};

/// A column family. Each is its own ordered keyspace inside one engine; one
/// `WriteBatch` may touch several atomically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cf {
    /// Per-replica Raft state: log entries, hard state, apply state,
    /// descriptors. Local to the node, never replicated as data.
    Raft,
    /// Replicated data: user and system keys (Percolator's data column).
    Default,
    /// Percolator locks: key -> lock.
    Lock,
    /// Percolator commit records: key + commit timestamp -> start timestamp.
    Write,
}

impl Cf {
    /// Every column family, in a fixed order.
    pub const ALL: [Cf; 4] = [Cf::Raft, Cf::Default, Cf::Lock, Cf::Write];

    /// The column family's name on disk.
    pub fn name(self) -> &'static str {
        match self {
            Cf::Raft => "raft",
            Cf::Default => "default",
            Cf::Lock => "lock",
            Cf::Write => "write",
        }
    }

    /// The column family's position in `Cf::ALL`.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// An ordered key-value store with column families, atomic batches and
/// snapshots. Implementations must pass `conformance::run_all`.
pub trait Engine: Send + Sync {
    /// Reads the latest value of a key.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Applies a batch atomically: after a crash either all of it or none of
    /// it is visible. With `sync`, it is on disk when this returns.
    fn write(&self, batch: &WriteBatch, sync: bool) -> Result<()>;

    /// A consistent point-in-time view of every column family.
    fn snapshot(&self) -> Arc<dyn Snapshot>;

    /// Scans `[start, end)` of `cf` in key order at a fresh snapshot; an empty
    /// `end` is unbounded.
    fn scan(&self, cf: Cf, start: &[u8], end: &[u8]) -> ScanIter {
        ScanIter::new(self.snapshot(), cf, start, end)
    }
}

/// A consistent, immutable view of an engine.
pub trait Snapshot: Send + Sync {
    /// Reads a key as of the snapshot.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Returns up to `limit` entries of `[start, end)` in key order (an empty
    /// `end` is unbounded). Fewer than `limit` entries means the span is done.
    fn scan_chunk(
        &self,
        cf: Cf,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
}
