use std::sync::Arc;

use crate::{Result, ScanIter, WriteBatch};

/// A column family. Each is its own ordered keyspace inside one engine; one
/// `WriteBatch` may touch several atomically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cf {
    /// Per-replica Raft state: log entries, hard state, apply state,
    /// descriptors. Local to the node, never replicated as data.
    Raft,
    /// Replicated key-values outside transactions: bootstrap records, the
    /// timestamp oracle's mark, the debug `kv` API. Raw keys.
    Raw,
    /// Percolator values too long to inline in their lock or write record:
    /// encoded key + start timestamp -> value.
    Default,
    /// Percolator locks: raw key -> lock.
    Lock,
    /// Percolator commit records: encoded key + commit timestamp -> start
    /// timestamp, kind and short value.
    Write,
}

impl Cf {
    /// Every column family, in a fixed order.
    pub const ALL: [Cf; 5] = [Cf::Raft, Cf::Raw, Cf::Default, Cf::Lock, Cf::Write];

    /// The families replicated through Raft: a range's data.
    pub const REPLICATED: [Cf; 4] = [Cf::Raw, Cf::Default, Cf::Lock, Cf::Write];

    /// The column family's name on disk.
    pub fn name(self) -> &'static str {
        match self {
            Cf::Raft => "raft",
            Cf::Raw => "raw",
            Cf::Default => "default",
            Cf::Lock => "lock",
            Cf::Write => "write",
        }
    }

    /// The column family's position in `Cf::ALL`.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The bounds, in this family, of the entries for the user keys in
    /// `[start, end)` (an empty `end` is unbounded): the keys themselves in
    /// the raw-keyed families, their encodings in the versioned ones.
    pub fn span_bounds(self, start: &[u8], end: &[u8]) -> (Vec<u8>, Vec<u8>) {
        match self {
            Cf::Raft | Cf::Raw | Cf::Lock => (start.to_vec(), end.to_vec()),
            Cf::Default | Cf::Write => crate::mvcc::span_bounds(start, end),
        }
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

/// What [`Snapshot::visit`] shows each entry to (key, value): true to go
/// on to the next.
pub type Visitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool> + 'a;

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

    /// Shows `visit` the entries of `[start, end)` in key order (an empty
    /// `end` is unbounded), until it returns false or fails. Reads no entry
    /// past the one where it stops: a point lookup that stops at its first
    /// entry costs one seek. The default reads pages of `scan_chunk`.
    fn visit(&self, cf: Cf, start: &[u8], end: &[u8], visit: &mut Visitor<'_>) -> Result<()> {
        const PAGE: usize = 256;
        let mut cursor = start.to_vec();
        loop {
            let page = self.scan_chunk(cf, &cursor, end, PAGE)?;
            let full = page.len() == PAGE;
            for (key, value) in &page {
                if !visit(key, value)? {
                    return Ok(());
                }
            }
            match page.into_iter().last() {
                Some((last, _)) if full => {
                    cursor = last;
                    cursor.push(0);
                }
                _ => return Ok(()),
            }
        }
    }
}
