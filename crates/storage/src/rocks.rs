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
            ColumnFamilyDescriptor::new(cf.name(), cf_opts)
        });
        let db = DB::open_cf_descriptors(&opts, path, families)?;
        Ok(Self { db: Arc::new(db) })
    }

    fn cf(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        handle(&self.db, cf)
    }
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
                        let mut tail = self.db.raw_iterator_cf(self.cf(*cf));
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
        let mut opts = ReadOptions::default();
        if !end.is_empty() {
            opts.set_iterate_upper_bound(end.to_vec());
        }
        let mut iter = self
            .snapshot
            .raw_iterator_cf_opt(handle(&self.db, cf), opts);
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
