use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    ColumnFamilyDescriptor, Options, ReadOptions, SnapshotWithThreadMode, WriteOptions, DB,
};

use crate::{BatchOp, Cf, Engine, Error, Result, Snapshot, WriteBatch};

/// The block cache of one engine, shared by its column families: RocksDB's
/// default (32 MiB) holds a sliver of a scale-10 pgbench table, and reads
/// missing it decompress their blocks again each time.
const BLOCK_CACHE_BYTES: usize = 256 << 20;
/// The write-ahead log's size past which RocksDB flushes the families that
/// keep its oldest file (see `RocksEngine::open`).
const MAX_TOTAL_WAL_BYTES: u64 = 256 << 20;
/// The share of a memtable's size given to its bloom filter: 2% of 32 MiB
/// is about 5 Mbit, some 16 bits a key for a full memtable of 100-byte
/// entries (about 330 thousand).
const MEMTABLE_BLOOM_RATIO: f64 = 0.02;

/// The RocksDB engine: one database per node, one RocksDB column family per
/// `Cf`.
pub struct RocksEngine {
    db: Arc<DB>,
}

impl RocksEngine {
    /// Opens (creating if needed) the database in `path`.
    pub fn open(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path).map_err(|err| Error::DataDir {
            path: path.display().to_string(),
            reason: err.to_string(),
        })?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        // Small machines: keep memtables modest, one per family.
        opts.set_write_buffer_size(32 << 20);
        // A family written little (values stored apart, raw keys) would
        // otherwise keep every log file since its first write until its
        // memtable fills: past this total, RocksDB flushes the families
        // that hold the oldest log. It bounds the disk the logs take and
        // what a restart replays.
        opts.set_max_total_wal_size(MAX_TOTAL_WAL_BYTES);
        // One block cache for every family. Bloom filters let a point read
        // (a key's lock, a value stored apart) skip the files that cannot
        // hold its key; index and filter blocks live in the cache too.
        let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let families = Cf::ALL.map(|cf| {
            let mut table = rocksdb::BlockBasedOptions::default();
            table.set_block_cache(&cache);
            table.set_bloom_filter(10.0, false);
            table.set_cache_index_and_filter_blocks(true);
            table.set_pin_l0_filter_and_index_blocks_in_cache(true);
            let mut cf_opts = Options::default();
            cf_opts.set_write_buffer_size(32 << 20);
            cf_opts.set_block_based_table_factory(&table);
            // Most point reads look for keys the memtable does not hold (a
            // lock on a key read, a value or a version written long ago):
            // a bloom filter over the memtable's keys answers them without
            // walking its skip list, which after a while of writes costs
            // more than the rest of the read.
            cf_opts.set_memtable_prefix_bloom_ratio(MEMTABLE_BLOOM_RATIO);
            cf_opts.set_memtable_whole_key_filtering(true);
            if cf == Cf::Write {
                // A point read of the `Write` family seeks the newest
                // version of its key at or below a timestamp, which a
                // whole-key filter cannot answer. With the encoded user key
                // as prefix, the memtable's and the files' filters hold the
                // keys too, and a walk over one key's versions skips what
                // holds none (see `read_options`).
                cf_opts.set_prefix_extractor(rocksdb::SliceTransform::create(
                    "tessera.mvcc_user_key",
                    |key| crate::mvcc::version_prefix(key).unwrap_or(key),
                    Some(|key| crate::mvcc::version_prefix(key).is_some()),
                ));
                // The last level holds a version of nearly every key read,
                // so its filters would pass nearly every seek, and a filter
                // of a whole large file outgrows its share of the block
                // cache: each seek read it from the file again. Without
                // them, the last level's seeks go straight to the data, as
                // before the prefix filters.
                cf_opts.set_optimize_filters_for_hits(true);
            }
            ColumnFamilyDescriptor::new(cf.name(), cf_opts)
        });
        let db = DB::open_cf_descriptors(&opts, path, families)?;
        Ok(Self { db: Arc::new(db) })
    }

    fn cf(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        handle(&self.db, cf)
    }
}

/// The options of a walk over `[start, end)` of `cf` (an empty `end` is
/// unbounded). In the `Write` family, which has a prefix extractor, a walk
/// over one key's versions is a prefix seek (its filters may skip files
/// and the memtable); any other walk must ask for the total order, which
/// RocksDB otherwise gives up where a prefix extractor is set.
fn read_options(cf: Cf, start: &[u8], end: &[u8]) -> ReadOptions {
    let mut opts = ReadOptions::default();
    if !end.is_empty() {
        opts.set_iterate_upper_bound(end.to_vec());
    }
    if cf == Cf::Write {
        if crate::mvcc::is_one_key_versions(start, end) {
            opts.set_prefix_same_as_start(true);
        } else {
            opts.set_total_order_seek(true);
        }
    }
    opts
}

fn handle(db: &DB, cf: Cf) -> &rocksdb::ColumnFamily {
    // Every family is created by `open`, so a missing handle is a bug.
    db.cf_handle(cf.name())
        .expect("column family created at open")
}

impl Engine for RocksEngine {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(cf), key)?)
    }

    fn write(&self, batch: &WriteBatch, sync: bool) -> Result<()> {
        let mut wb = rocksdb::WriteBatch::default();
        for op in batch.ops() {
            match op {
                BatchOp::Put { cf, key, value } => wb.put_cf(self.cf(*cf), key, value),
                BatchOp::Delete { cf, key } => wb.delete_cf(self.cf(*cf), key),
                BatchOp::DeleteRange { cf, start, end } => {
                    if end.is_empty() {
                        // RocksDB needs a bound: delete up to a key above every
                        // key we write, then the keys (if any) past it.
                        wb.delete_range_cf(self.cf(*cf), start.as_slice(), &[0xff; 16][..]);
                        let mut tail = self
                            .db
                            .raw_iterator_cf_opt(self.cf(*cf), read_options(*cf, start, &[]));
                        tail.seek(&[0xff; 16][..]);
                        while let Some(key) = tail.key() {
                            wb.delete_cf(self.cf(*cf), key);
                            tail.next();
                        }
                        tail.status()?;
                    } else {
                        wb.delete_range_cf(self.cf(*cf), start, end);
                    }
                }
            }
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(wb, &opts)?;
        Ok(())
    }

    fn snapshot(&self) -> Arc<dyn Snapshot> {
        let snapshot = self.db.snapshot();
        // SAFETY: the snapshot borrows the database, which `RocksSnapshot`
        // keeps alive through its own `Arc<DB>`; the snapshot field is declared
        // first, so it is dropped (released) before that Arc.
        let snapshot: SnapshotWithThreadMode<'static, DB> =
            unsafe { std::mem::transmute(snapshot) };
        Arc::new(RocksSnapshot {
            snapshot,
            db: self.db.clone(),
        })
    }
}

struct RocksSnapshot {
    snapshot: SnapshotWithThreadMode<'static, DB>,
    db: Arc<DB>,
}

impl Snapshot for RocksSnapshot {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.snapshot.get_cf(handle(&self.db, cf), key)?)
    }

    fn scan_chunk(
        &self,
        cf: Cf,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        if limit > 0 {
            self.visit(cf, start, end, &mut |key, value| {
                out.push((key.to_vec(), value.to_vec()));
                Ok(out.len() < limit)
            })?;
        }
        Ok(out)
    }

    fn visit(
        &self,
        cf: Cf,
        start: &[u8],
        end: &[u8],
        visit: &mut crate::engine::Visitor<'_>,
    ) -> Result<()> {
        if !end.is_empty() && start >= end {
            return Ok(());
        }
        let mut iter = self
            .snapshot
            .raw_iterator_cf_opt(handle(&self.db, cf), read_options(cf, start, end));
        iter.seek(start);
        while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
            if !visit(key, value)? {
                return Ok(());
            }
            iter.next();
        }
        iter.status()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tessera_types::Timestamp;

    use super::*;
    use crate::mvcc::{version_bounds, version_key};
    use crate::MemoryEngine;

    fn walk(snapshot: &dyn Snapshot, start: &[u8], end: &[u8]) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        snapshot
            .visit(Cf::Write, start, end, &mut |key, _| {
                keys.push(key.to_vec());
                Ok(true)
            })
            .unwrap();
        keys
    }

    /// One key's versions walked with the prefix filters, and spans walked
    /// in total order, find what an engine without filters finds, with the
    /// versions spread over flushed files and the memtable and neighbouring
    /// keys (prefixes of each other) beside them.
    #[test]
    fn walks_find_every_version_across_files_and_the_memtable() {
        let dir = tempfile::tempdir().unwrap();
        let rocks = RocksEngine::open(dir.path()).unwrap();
        let memory = MemoryEngine::new();
        let keys: [&[u8]; 6] = [b"", b"a", b"ab", b"abcdefgh", b"abcdefghi", b"b"];
        for round in 0..4u64 {
            let mut batch = WriteBatch::new();
            for (i, key) in keys.iter().enumerate() {
                // Not every key gets a version in every file.
                if !(round + i as u64).is_multiple_of(3) {
                    let ts = Timestamp(10 * round + i as u64 + 1);
                    batch.put(Cf::Write, version_key(key, ts), round.to_be_bytes());
                }
            }
            rocks.write(&batch, false).unwrap();
            memory.write(&batch, false).unwrap();
            if round < 3 {
                rocks.db.flush_cf(rocks.cf(Cf::Write)).unwrap();
            }
        }
        let (rocks, memory) = (rocks.snapshot(), memory.snapshot());
        let probes: [&[u8]; 3] = [b"abc", b"abcdefg", b"c"];
        for key in keys.iter().chain(probes.iter()) {
            for ts in [0, 5, 12, 25, 40, u64::MAX] {
                let (start, end) = version_bounds(key, Timestamp(ts));
                assert_eq!(
                    walk(rocks.as_ref(), &start, &end),
                    walk(memory.as_ref(), &start, &end),
                    "the versions of {key:?} at or below {ts}"
                );
            }
        }
        // A scan resumes from the last version it read: a version key, in
        // the prefix extractor's domain, must not end the walk at its key.
        let (start, end) = crate::mvcc::span_bounds(b"a", b"abcdefgh\0");
        let resumed = version_key(b"ab", Timestamp(12));
        let spans = [
            (start, end.clone()),
            (resumed.clone(), end),
            (resumed, Vec::new()),
            (Vec::new(), Vec::new()),
        ];
        for (start, end) in spans {
            assert_eq!(
                walk(rocks.as_ref(), &start, &end),
                walk(memory.as_ref(), &start, &end)
            );
        }
    }
}
