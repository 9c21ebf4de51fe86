//! The session's transaction: a write buffer over the KV store.
//!
//! Writes are buffered until the statement (implicit transaction) or the
//! transaction block ends, then applied as one batch; reads see the buffer
//! over the store (read-your-own-writes).

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::error::SqlResult;
use crate::kv::{Kv, KvWrite};
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

    /// Writes the buffer to the store and empties it.
    pub fn flush(&mut self, kv: &dyn Kv) -> SqlResult<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let writes = std::mem::take(&mut self.buffer)
            .into_iter()
            .map(|(k, v)| match v {
                Some(v) => KvWrite::Put(k, v),
                None => KvWrite::Delete(k),
            })
            .collect();
        kv.write(writes)
    }
}

/// Entries of a scan, and the key to resume from if there may be more.
pub type Chunk = (Vec<(Vec<u8>, Vec<u8>)>, Option<Vec<u8>>);

/// Reads through a write buffer.
pub struct Reader<'a> {
    pub kv: &'a dyn Kv,
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
