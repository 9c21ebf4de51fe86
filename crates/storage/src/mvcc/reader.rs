//! Reading the MVCC families at a timestamp.

use tessera_types::Timestamp;

use super::key::{span_bounds, split_version_key, version_bounds, version_key};
use super::record::{Lock, Write, WriteKind};
use super::MvccError;
use crate::{Cf, Error, Result, Snapshot};

/// How many write records a scan reads from the engine at a time.
const WRITE_PAGE: usize = 256;

/// The fate of a transaction on one key, from its write records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnRecord {
    /// Committed at the timestamp, leaving a record of the kind.
    Committed(Timestamp, WriteKind),
    /// Rolled back.
    RolledBack,
    /// Neither: the transaction never wrote here, or its lock is still on
    /// the key.
    None,
}

impl TxnRecord {
    /// What the write record committed at `commit_ts` tells of the
    /// transaction that started at `start_ts`, to a walk of a key's versions
    /// from the newest down: `None` while the walk must go on.
    fn decided_by(commit_ts: Timestamp, write: &Write, start_ts: Timestamp) -> Option<TxnRecord> {
        if commit_ts < start_ts {
            Some(TxnRecord::None)
        } else if write.start_ts == start_ts {
            Some(match write.kind {
                WriteKind::Rollback => TxnRecord::RolledBack,
                kind => TxnRecord::Committed(commit_ts, kind),
            })
        } else if commit_ts == start_ts && write.overlapped_rollback {
            Some(TxnRecord::RolledBack)
        } else {
            None
        }
    }
}

/// What one walk of a key's versions found for a transaction that locks or
/// writes it (see [`MvccReader::history`]).
#[derive(Debug)]
pub struct KeyHistory {
    /// What became of the transaction.
    pub record: TxnRecord,
    /// The newest `Put` or `Delete`, if committed after the walk's `after`.
    pub newer: Option<(Timestamp, Write)>,
    /// If asked for and `newer` is None: the newest `Put` or `Delete`
    /// committed at or below `after`.
    pub data: Option<(Timestamp, Write)>,
}

/// Reads MVCC data from a consistent view of the engine.
pub struct MvccReader<'a> {
    snapshot: &'a dyn Snapshot,
    /// Reads must see the latest state (see [`MvccReader::latest`]).
    latest: bool,
}

impl<'a> MvccReader<'a> {
    /// A reader over `snapshot`.
    pub fn new(snapshot: &'a dyn Snapshot) -> Self {
        MvccReader {
            snapshot,
            latest: false,
        }
    }

    /// A reader whose [`get`](Self::get) and [`scan`](Self::scan) at a
    /// timestamp also fail, with [`MvccError::NewerWrite`], unless what they
    /// read is the latest state of their keys: a put or delete committed
    /// above the timestamp, or a put or delete lock of any transaction
    /// (which may have committed already), may have changed it. A read at a
    /// recent timestamp that passes sees what a read at a fresh one would,
    /// without asking the oracle for it.
    pub fn latest(snapshot: &'a dyn Snapshot) -> Self {
        MvccReader {
            snapshot,
            latest: true,
        }
    }

    /// The lock on `key`, if any.
    pub fn lock(&self, key: &[u8]) -> Result<Option<Lock>> {
        self.snapshot
            .get(Cf::Lock, key)?
            .map(|bytes| Lock::decode(&bytes))
            .transpose()
    }

    /// Up to `limit` locks in `[start, end)` (an empty `end` is unbounded)
    /// whose start timestamp is at most `max_start_ts` (a `limit` of 0 is
    /// unlimited).
    pub fn locks(
        &self,
        start: &[u8],
        end: &[u8],
        max_start_ts: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Lock)>> {
        let limit = if limit == 0 { usize::MAX } else { limit };
        let mut found = Vec::new();
        let mut cursor = start.to_vec();
        loop {
            let page = self
                .snapshot
                .scan_chunk(Cf::Lock, &cursor, end, WRITE_PAGE)?;
            let full = page.len() == WRITE_PAGE;
            if let Some((last, _)) = page.last() {
                cursor.clone_from(last);
                cursor.push(0);
            }
            for (key, value) in page {
                let lock = Lock::decode(&value)?;
                if lock.start_ts <= max_start_ts {
                    if found.len() == limit {
                        return Ok(found);
                    }
                    found.push((key, lock));
                }
            }
            if !full {
                return Ok(found);
            }
        }
    }

    /// Visits the write records of `key` from the newest at or below `ts`
    /// down, until `visit` returns false.
    fn versions(
        &self,
        key: &[u8],
        ts: Timestamp,
        mut visit: impl FnMut(Timestamp, Write) -> bool,
    ) -> Result<()> {
        let (start, end) = version_bounds(key, ts);
        self.snapshot
            .visit(Cf::Write, &start, &end, &mut |versioned, value| {
                let (_, commit_ts) = split_version_key(versioned)?;
                Ok(visit(commit_ts, Write::decode(value)?))
            })
    }

    /// The newest record of `key` that gives it a value (a `Put` or a
    /// `Delete`) committed at or below `ts`.
    pub fn data_write(&self, key: &[u8], ts: Timestamp) -> Result<Option<(Timestamp, Write)>> {
        let mut found = None;
        self.versions(key, ts, |commit_ts, write| {
            if write.kind.is_data() {
                found = Some((commit_ts, write));
                false
            } else {
                true
            }
        })?;
        Ok(found)
    }

    /// Whether another transaction committed anything on `key` (a write, a
    /// delete or a lock record) after the one that started at `start_ts`
    /// started.
    pub fn committed_by_others_since(&self, key: &[u8], start_ts: Timestamp) -> Result<bool> {
        let mut found = false;
        self.versions(key, Timestamp::MAX, |commit_ts, write| {
            if commit_ts <= start_ts {
                return false;
            }
            found = write.start_ts != start_ts && write.kind != WriteKind::Rollback;
            !found
        })?;
        Ok(found)
    }

    /// What became of the transaction that started at `start_ts` on `key`.
    pub fn txn_record(&self, key: &[u8], start_ts: Timestamp) -> Result<TxnRecord> {
        let mut record = TxnRecord::None;
        self.versions(
            key,
            Timestamp::MAX,
            |commit_ts, write| match TxnRecord::decided_by(commit_ts, &write, start_ts) {
                Some(decided) => {
                    record = decided;
                    false
                }
                None => true,
            },
        )?;
        Ok(record)
    }

    /// In one walk of `key`'s versions: what became of the transaction
    /// that started at `start_ts` (as [`txn_record`](Self::txn_record)),
    /// and the newest `Put` or `Delete` if it was committed after `after`.
    /// A lock or prewrite checks both for each key.
    #[allow(clippy::type_complexity)]
    pub fn txn_record_and_data_after(
        &self,
        key: &[u8],
        start_ts: Timestamp,
        after: Timestamp,
    ) -> Result<(TxnRecord, Option<(Timestamp, Write)>)> {
        let history = self.history(key, start_ts, after, false)?;
        Ok((history.record, history.newer))
    }

    /// As [`txn_record_and_data_after`](Self::txn_record_and_data_after),
    /// and, unless a newer one was found, the newest `Put` or `Delete`
    /// committed at or below `after` (what [`data_write`](Self::data_write)
    /// finds there), all in the same walk: a lock that reads the row it
    /// locks.
    pub fn history(
        &self,
        key: &[u8],
        start_ts: Timestamp,
        after: Timestamp,
        with_data: bool,
    ) -> Result<KeyHistory> {
        let mut record = None;
        let mut newer = None;
        let mut data = None;
        // Whether the walk has passed the newest data record, or `after`.
        let mut data_seen = false;
        self.versions(key, Timestamp::MAX, |commit_ts, write| {
            if record.is_none() {
                record = TxnRecord::decided_by(commit_ts, &write, start_ts);
            }
            if commit_ts > after {
                if !data_seen && write.kind.is_data() {
                    data_seen = true;
                    newer = Some((commit_ts, write));
                }
            } else {
                data_seen = true;
                if with_data && newer.is_none() && data.is_none() && write.kind.is_data() {
                    data = Some((commit_ts, write));
                }
            }
            let data_done = !with_data || newer.is_some() || data.is_some();
            !(record.is_some() && data_seen && data_done)
        })?;
        Ok(KeyHistory {
            record: record.unwrap_or(TxnRecord::None),
            newer,
            data,
        })
    }

    /// The record at exactly `(key, ts)`, if any.
    pub fn write_at(&self, key: &[u8], ts: Timestamp) -> Result<Option<Write>> {
        self.snapshot
            .get(Cf::Write, &version_key(key, ts))?
            .map(|bytes| Write::decode(&bytes))
            .transpose()
    }

    /// The value a `Put` record stands for.
    pub fn value_of(&self, key: &[u8], write: &Write) -> Result<Vec<u8>> {
        if let Some(value) = &write.short_value {
            return Ok(value.clone());
        }
        self.snapshot
            .get(Cf::Default, &version_key(key, write.start_ts))?
            .ok_or_else(|| {
                Error::Corruption(format!(
                    "no value for {key:02x?} written by transaction {}",
                    write.start_ts
                ))
            })
    }

    /// Fails if a lock on `key` hides what a read at `ts` must see.
    fn check_lock(&self, key: &[u8], ts: Timestamp) -> std::result::Result<(), MvccError> {
        match self.lock(key)? {
            Some(lock) if self.latest && lock.kind.blocks_readers() => {
                Err(MvccError::NewerWrite { key: key.to_vec() })
            }
            Some(lock)
                if lock.start_ts <= ts && lock.kind.blocks_readers() && !lock.commits_above(ts) =>
            {
                Err(MvccError::KeyIsLocked {
                    key: key.to_vec(),
                    lock: Box::new(lock),
                })
            }
            _ => Ok(()),
        }
    }

    /// The value of `key` at `ts`: the newest version committed at or below
    /// `ts`. Fails with `KeyIsLocked` if a transaction that started at or
    /// below `ts` holds a lock that will change the key: it may commit below
    /// `ts`, and the caller must resolve the lock first.
    pub fn get(
        &self,
        key: &[u8],
        ts: Timestamp,
    ) -> std::result::Result<Option<Vec<u8>>, MvccError> {
        self.check_lock(key, ts)?;
        if !self.latest {
            return Ok(self.get_committed(key, ts)?);
        }
        match self.data_write(key, Timestamp::MAX)? {
            Some((commit_ts, _)) if commit_ts > ts => {
                Err(MvccError::NewerWrite { key: key.to_vec() })
            }
            Some((_, write)) if write.kind == WriteKind::Put => {
                Ok(Some(self.value_of(key, &write)?))
            }
            _ => Ok(None),
        }
    }

    /// The value of `key` committed at or below `ts`, ignoring locks.
    pub fn get_committed(&self, key: &[u8], ts: Timestamp) -> Result<Option<Vec<u8>>> {
        match self.data_write(key, ts)? {
            Some((_, write)) if write.kind == WriteKind::Put => {
                Ok(Some(self.value_of(key, &write)?))
            }
            _ => Ok(None),
        }
    }

    /// Up to `limit` keys of `[start, end)` (an empty `end` is unbounded)
    /// with their values at `ts`, in key order, and whether the span may
    /// hold more (a `limit` of 0 is unlimited). Fails with `KeyIsLocked` on the first lock that hides a
    /// key the scan returns or skips (and, for a [`latest`](Self::latest)
    /// reader, with `NewerWrite` on a newer put or delete of such a key, or
    /// a put or delete lock on one).
    #[allow(clippy::type_complexity)]
    pub fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        ts: Timestamp,
        limit: usize,
    ) -> std::result::Result<(Vec<(Vec<u8>, Vec<u8>)>, bool), MvccError> {
        let limit = if limit == 0 { usize::MAX } else { limit };
        let (mut cursor, encoded_end) = span_bounds(start, end);
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        // The key whose visible version was found (or that has none): its
        // older versions are skipped.
        let mut decided: Option<Vec<u8>> = None;
        let mut more = false;
        'pages: loop {
            let page = self
                .snapshot
                .scan_chunk(Cf::Write, &cursor, &encoded_end, WRITE_PAGE)?;
            let full = page.len() == WRITE_PAGE;
            for (versioned, value) in page {
                cursor.clone_from(&versioned);
                let (key, commit_ts) = split_version_key(&versioned)?;
                if decided.as_deref() == Some(key.as_slice()) {
                    continue;
                }
                if commit_ts > ts && !self.latest {
                    continue;
                }
                let write = Write::decode(&value)?;
                if !write.kind.is_data() {
                    continue;
                }
                if commit_ts > ts {
                    return Err(MvccError::NewerWrite { key });
                }
                if write.kind == WriteKind::Put {
                    if out.len() == limit {
                        more = true;
                        break 'pages;
                    }
                    let value = self.value_of(&key, &write)?;
                    out.push((key.clone(), value));
                }
                decided = Some(key);
            }
            if !full {
                break;
            }
            cursor.push(0);
        }
        // Locks matter up to where the scan stopped.
        let lock_end = if more {
            out.last().map(|(key, _)| {
                let mut next = key.clone();
                next.push(0);
                next
            })
        } else {
            None
        };
        let lock_end = lock_end.as_deref().unwrap_or(end);
        let lock_ts = if self.latest { Timestamp::MAX } else { ts };
        if let Some((key, lock)) = self
            .locks(start, lock_end, lock_ts, usize::MAX)?
            .into_iter()
            .find(|(_, lock)| {
                lock.kind.blocks_readers() && (self.latest || !lock.commits_above(ts))
            })
        {
            if self.latest {
                return Err(MvccError::NewerWrite { key });
            }
            return Err(MvccError::KeyIsLocked {
                key,
                lock: Box::new(lock),
            });
        }
        Ok((out, more))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Engine, MemoryEngine, WriteBatch};

    /// The one-walk check answers as the two walks it replaces, over
    /// random histories of every record kind (commit and start timestamps
    /// drawn from a small range, so that they collide).
    #[test]
    fn one_walk_answers_as_two() {
        let kinds = [
            WriteKind::Put,
            WriteKind::Delete,
            WriteKind::Lock,
            WriteKind::Rollback,
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..300 {
            let engine = MemoryEngine::new();
            let mut batch = WriteBatch::new();
            for _ in 0..next(8) {
                let commit_ts = Timestamp(1 + next(30));
                let mut write = Write::new(kinds[next(4) as usize], Timestamp(1 + next(30)));
                write.overlapped_rollback = next(5) == 0;
                batch.put(Cf::Write, version_key(b"k", commit_ts), write.encode());
            }
            engine.write(&batch, false).unwrap();
            let snapshot = engine.snapshot();
            let reader = MvccReader::new(snapshot.as_ref());
            for start in 0..32 {
                for after in 0..32 {
                    let (start, after) = (Timestamp(start), Timestamp(after));
                    let (record, newer) = reader
                        .txn_record_and_data_after(b"k", start, after)
                        .unwrap();
                    assert_eq!(record, reader.txn_record(b"k", start).unwrap());
                    let newest = reader
                        .data_write(b"k", Timestamp::MAX)
                        .unwrap()
                        .filter(|(ts, _)| *ts > after)
                        .map(|(ts, w)| (ts, w.start_ts));
                    assert_eq!(newer.map(|(ts, w)| (ts, w.start_ts)), newest);
                    let history = reader.history(b"k", start, after, true).unwrap();
                    assert_eq!(history.record, record);
                    assert_eq!(history.newer.map(|(ts, w)| (ts, w.start_ts)), newest);
                    let at = reader
                        .data_write(b"k", after)
                        .unwrap()
                        .filter(|_| newest.is_none())
                        .map(|(ts, w)| (ts, w.start_ts));
                    assert_eq!(history.data.map(|(ts, w)| (ts, w.start_ts)), at);
                }
            }
        }
    }
}
