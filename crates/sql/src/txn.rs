//! The session's transaction: a KV transaction and a write buffer over it.
//!
//! The KV transaction starts at the first read and reads one snapshot
//! (every isolation level currently runs as snapshot isolation). Writes are
//! buffered until the statement (implicit transaction) or the transaction
//! block ends, then committed atomically with it; reads see the buffer over
//! the snapshot (read-your-own-writes).

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::ops::Bound;

use crate::error::SqlResult;
use crate::kv::{Kv, KvTxn, KvWrite};
use crate::session::TxnStatus;

/// Transaction state of a session.
#[derive(Default)]
pub struct TxnState {
    /// Inside BEGIN ... COMMIT.
    pub in_block: bool,
    /// A statement of the block failed; only ROLLBACK is accepted.
    pub failed: bool,
    /// Buffered writes: None deletes.
    pub buffer: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Running the statements of one simple-query message outside a block:
    /// they share one implicit transaction, committed when the message ends.
    pub batch: bool,
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

    /// The KV transaction, started now if it has not been.
    pub fn kv_txn(&self, kv: &dyn Kv) -> SqlResult<&dyn KvTxn> {
        if self.kv_txn.get().is_none() {
            let _ = self.kv_txn.set(kv.begin()?);
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
