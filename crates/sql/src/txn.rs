//! The session's transaction: a KV transaction and a write buffer over it.
//!
//! The KV transaction starts at the first read. Under REPEATABLE READ it
//! reads one snapshot; under READ COMMITTED each statement of a block moves
//! it to a fresh one. Writes are buffered until the statement (implicit
//! transaction) or the transaction block ends, then committed atomically
//! with it; reads see the buffer over the snapshot (read-your-own-writes).
//! An undo log of the buffer lets a statement or a savepoint be rolled back
//! on its own.

use std::cell::{OnceCell, RefCell};
use std::collections::BTreeMap;
use std::ops::Bound;

use crate::error::SqlResult;
use crate::kv::{Kv, KvTxn, KvWrite, LockedRead};
use crate::session::TxnStatus;

/// A buffered write: None deletes.
pub type BufferedWrite = Option<Vec<u8>>;

/// Rows a statement read with FOR UPDATE / FOR SHARE, to lock when it ends.
#[derive(Default, Debug)]
pub struct RowLocks {
    /// Their keys.
    pub keys: Vec<Vec<u8>>,
    /// NOWAIT: fail at once if one is locked.
    pub nowait: bool,
    /// A row the statement read and locked at once
    /// ([`KvTxn::get_for_update`]) had changed after its snapshot: the
    /// statement stopped there, and ends as if its locks had found the
    /// change.
    pub changed: Option<crate::error::SqlError>,
}

/// Transaction state of a session.
#[derive(Default)]
pub struct TxnState {
    /// Inside BEGIN ... COMMIT.
    pub in_block: bool,
    /// A statement of the block failed; only ROLLBACK is accepted.
    pub failed: bool,
    /// Buffered writes: None deletes.
    pub buffer: BTreeMap<Vec<u8>, BufferedWrite>,
    /// For each write staged, in order: its key and what the buffer held
    /// for it before (None: nothing).
    undo: Vec<(Vec<u8>, Option<BufferedWrite>)>,
    /// Savepoints of the block: name and undo log length.
    pub savepoints: Vec<(String, usize)>,
    /// Rows the running statement read FOR UPDATE.
    pub row_locks: RefCell<RowLocks>,
    /// Keys the running statement wrote that no other transaction can
    /// write: rows under a row id it made (`unique_rowid`), and their
    /// non-unique index entries. They need no lock.
    pub fresh_keys: RefCell<std::collections::HashSet<Vec<u8>>>,
    /// Parent keys the running statement removed, to look for children of
    /// once its rows are locked (see `fk`).
    pub removed_keys: RefCell<Vec<crate::fk::RemovedKey>>,
    /// Running the statements of one simple-query message outside a block:
    /// they share one implicit transaction, committed when the message ends.
    pub batch: bool,
    /// The running statement only reads, on its own: its KV transaction
    /// may start at a recent snapshot ([`Kv::begin_recent`]).
    pub recent_snapshot: bool,
    /// The KV transaction, started by the first read.
    kv_txn: OnceCell<Box<dyn KvTxn>>,
}

impl TxnState {
    /// ReadyForQuery status.
    pub fn status(&self) -> TxnStatus {
        match (self.in_block, self.failed) {
            (false, _) => TxnStatus::Idle,
            (true, false) => TxnStatus::InBlock,
            (true, true) => TxnStatus::Failed,
        }
    }

    /// Stages a statement's writes in the buffer.
    pub fn stage(&mut self, writes: impl IntoIterator<Item = (Vec<u8>, BufferedWrite)>) {
        for (key, value) in writes {
            let before = self.buffer.insert(key.clone(), value);
            self.undo.push((key, before));
        }
    }

    /// A mark to undo staged writes back to.
    pub fn mark(&self) -> usize {
        self.undo.len()
    }

    /// The keys staged since `mark`.
    pub fn staged_since(&self, mark: usize) -> Vec<Vec<u8>> {
        self.undo
            .get(mark..)
            .unwrap_or_default()
            .iter()
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Undoes the writes staged since `mark`.
    pub fn undo_to(&mut self, mark: usize) {
        while self.undo.len() > mark {
            let Some((key, before)) = self.undo.pop() else {
                break;
            };
            match before {
                Some(value) => {
                    self.buffer.insert(key, value);
                }
                None => {
                    self.buffer.remove(&key);
                }
            }
        }
    }

    /// Whether the KV transaction has started.
    pub fn started(&self) -> bool {
        self.kv_txn.get().is_some()
    }

    /// The started KV transaction, to refresh or lock with.
    pub fn kv_txn_mut(&mut self) -> Option<&mut Box<dyn KvTxn>> {
        self.kv_txn.get_mut()
    }

    /// Abandons the KV transaction (releasing its locks) but keeps the
    /// block's state: a failed block without savepoints holds nothing.
    pub fn release(&mut self) {
        self.kv_txn.take();
    }

    /// The KV transaction, started now if it has not been.
    pub fn kv_txn(&self, kv: &dyn Kv) -> SqlResult<&dyn KvTxn> {
        if self.kv_txn.get().is_none() {
            let txn = if self.recent_snapshot {
                kv.begin_recent()?
            } else {
                kv.begin()?
            };
            let _ = self.kv_txn.set(txn);
        }
        Ok(self
            .kv_txn
            .get()
            .map(|txn| txn.as_ref())
            .expect("set just above"))
    }

    /// Commits the buffer with the KV transaction (or, if nothing was read,
    /// as a transaction of its own), and starts afresh.
    pub fn flush(&mut self, kv: &dyn Kv) -> SqlResult<()> {
        self.undo.clear();
        self.savepoints.clear();
        let writes: Vec<KvWrite> = std::mem::take(&mut self.buffer)
            .into_iter()
            .map(|(k, v)| match v {
                Some(v) => KvWrite::Put(k, v),
                None => KvWrite::Delete(k),
            })
            .collect();
        match self.kv_txn.take() {
            Some(txn) => txn.commit(writes),
            None if writes.is_empty() => Ok(()),
            None => kv.write(writes),
        }
    }

    /// Drops the buffer and abandons the KV transaction.
    pub fn abort(&mut self) {
        self.buffer.clear();
        self.undo.clear();
        self.savepoints.clear();
        self.row_locks.take();
        self.removed_keys.take();
        self.kv_txn.take();
    }
}

/// Entries of a scan, and the key to resume from if there may be more.
pub type Chunk = (Vec<(Vec<u8>, Vec<u8>)>, Option<Vec<u8>>);

/// Reads through a write buffer.
pub struct Reader<'a> {
    pub kv: &'a dyn KvTxn,
    pub buffer: &'a BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Reader<'_> {
    /// One key.
    pub fn get(&self, key: &[u8]) -> SqlResult<Option<Vec<u8>>> {
        if let Some(v) = self.buffer.get(key) {
            return Ok(v.clone());
        }
        self.kv.get(key)
    }

    /// One key, read and locked at once ([`KvTxn::get_for_update`]),
    /// unless the transaction wrote it: it holds the lock of a key it
    /// wrote (or will take it with the statement's writes).
    pub fn get_for_update(
        &self,
        key: &[u8],
        wait: Option<std::time::Duration>,
    ) -> SqlResult<LockedRead> {
        if let Some(v) = self.buffer.get(key) {
            return Ok(LockedRead::Row(v.clone()));
        }
        self.kv.get_for_update(key, wait)
    }

    /// Many keys, in the order given.
    pub fn get_many(&self, keys: &[Vec<u8>]) -> SqlResult<Vec<Option<Vec<u8>>>> {
        let stored: Vec<Vec<u8>> = keys
            .iter()
            .filter(|k| !self.buffer.contains_key(*k))
            .cloned()
            .collect();
        let mut stored = self.kv.get_many(&stored)?.into_iter();
        keys.iter()
            .map(|k| match self.buffer.get(k) {
                Some(v) => Ok(v.clone()),
                None => Ok(stored.next().flatten()),
            })
            .collect()
    }

    /// Up to `limit` entries of `[start, end)`, and where to resume if there
    /// may be more.
    pub fn scan_chunk(&self, start: &[u8], end: &[u8], limit: usize) -> SqlResult<Chunk> {
        let stored = self.kv.scan(start, end, limit)?;
        let full = limit > 0 && stored.len() >= limit;
        // The buffer applies up to the last stored key when the chunk is
        // full, else up to `end`.
        let last = if full {
            stored.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        let upper: Bound<&[u8]> = match &last {
            Some(k) => Bound::Included(k.as_slice()),
            None if end.is_empty() => Bound::Unbounded,
            None => Bound::Excluded(end),
        };
        let resume = if full {
            stored.last().map(|(k, _)| {
                let mut next = k.clone();
                next.push(0);
                next
            })
        } else {
            None
        };
        if self.buffer.is_empty() {
            return Ok((stored, resume));
        }
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = stored.into_iter().collect();
        for (k, v) in self
            .buffer
            .range::<[u8], _>((Bound::Included(start), upper))
        {
            match v {
                Some(v) => {
                    merged.insert(k.clone(), v.clone());
                }
                None => {
                    merged.remove(k);
                }
            }
        }
        Ok((merged.into_iter().collect(), resume))
    }
}
