//! The steps of the Percolator protocol as pure functions: each reads a
//! consistent view through an [`MvccReader`] and returns the writes that
//! carry it out, or the conflict that prevents it. Nothing is written here;
//! a Raft replica applies the returned batch in the same write as its
//! applied index, so every replica takes the same decision.
//!
//! A command over several keys is all or nothing: if one key fails, the
//! whole command fails and writes nothing.

use std::collections::BTreeSet;

use tessera_types::Timestamp;

use super::key::{span_bounds, split_version_key, version_key};
use super::reader::{MvccReader, TxnRecord};
use super::record::{Lock, LockKind, Write, WriteKind, SHORT_VALUE_MAX};
use super::MvccError;
use crate::{Cf, WriteBatch};

type Result<T> = std::result::Result<T, MvccError>;

/// What a mutation does to its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Sets the key's value.
    Put(Vec<u8>),
    /// Removes the key.
    Delete,
    /// Locks the key without changing it (SELECT ... FOR UPDATE).
    Lock,
}

/// One key a transaction writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mutation {
    /// The key.
    pub key: Vec<u8>,
    /// What happens to it.
    pub op: Op,
    /// The transaction holds a pessimistic lock on the key, taken when the
    /// statement that wrote it ran; the conflict check was made then.
    pub pessimistic: bool,
}

/// A transaction's request to lock and stage its mutations.
#[derive(Clone, Debug)]
pub struct Prewrite<'a> {
    /// The transaction's start timestamp.
    pub start_ts: Timestamp,
    /// Its primary key.
    pub primary: &'a [u8],
    /// The TTL of its locks, in milliseconds after `start_ts`.
    pub ttl_ms: u64,
    /// For a pessimistic transaction, its latest statement timestamp; zero
    /// otherwise.
    pub for_update_ts: Timestamp,
    /// The mutations (distinct keys).
    pub mutations: &'a [Mutation],
    /// Non-zero for a transaction that commits asynchronously: the lowest
    /// commit timestamp of its locks here, which its range's leader raised
    /// above the reads it had served (see `Lock::min_commit_ts`).
    pub min_commit_ts: Timestamp,
    /// An asynchronous commit's keys other than its primary, for the
    /// primary's lock (empty unless the primary is among the mutations).
    pub secondaries: &'a [Vec<u8>],
}

/// The state of a transaction, read off its primary key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnStatus {
    /// Committed at the timestamp: its locks are to be rolled forward.
    Committed(Timestamp),
    /// Rolled back (now or before): its locks are to be removed.
    RolledBack,
    /// Still running: its primary lock is alive for `ttl_ms` after its
    /// start. Or, for a transaction that commits asynchronously, not
    /// decided by its primary alone: it is committed (at the highest
    /// minimum commit timestamp of its locks) if every one of its keys is
    /// locked or committed, and once its lock expires whoever finds it
    /// checks them (see [`check_secondary_locks`]).
    Locked {
        /// The primary lock's TTL.
        ttl_ms: u64,
        /// An asynchronous commit's minimum commit timestamp (zero for
        /// another transaction): the primary's, or from
        /// [`check_secondary_locks`] the highest of the keys'.
        min_commit_ts: Timestamp,
        /// An asynchronous commit's other keys, from its primary lock.
        secondaries: Vec<Vec<u8>>,
    },
    /// The primary has neither a lock nor a record of the transaction (its
    /// prewrite may still be on the way) and the caller did not ask to roll
    /// it back.
    Missing,
}

/// What a garbage collection pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcOutcome {
    /// The write records examined.
    pub examined: usize,
    /// The write records removed (with their values).
    pub removed: usize,
    /// Where the next pass starts, if the span is not finished.
    pub resume_key: Option<Vec<u8>>,
}

/// Stages the writes of an MVCC command.
#[derive(Default)]
struct Effects {
    batch: WriteBatch,
}

impl Effects {
    fn put_lock(&mut self, key: &[u8], lock: &Lock) {
        self.batch.put(Cf::Lock, key.to_vec(), lock.encode());
    }

    fn delete_lock(&mut self, key: &[u8]) {
        self.batch.delete(Cf::Lock, key.to_vec());
    }

    fn put_write(&mut self, key: &[u8], ts: Timestamp, write: &Write) {
        self.batch
            .put(Cf::Write, version_key(key, ts), write.encode());
    }

    fn delete_write(&mut self, key: &[u8], ts: Timestamp) {
        self.batch.delete(Cf::Write, version_key(key, ts));
    }

    fn put_value(&mut self, key: &[u8], start_ts: Timestamp, value: &[u8]) {
        self.batch
            .put(Cf::Default, version_key(key, start_ts), value.to_vec());
    }

    fn delete_value(&mut self, key: &[u8], start_ts: Timestamp) {
        self.batch.delete(Cf::Default, version_key(key, start_ts));
    }
}

fn distinct_keys<'a>(keys: impl Iterator<Item = &'a [u8]>) -> Result<()> {
    let mut seen = BTreeSet::new();
    for key in keys {
        if !seen.insert(key) {
            return Err(MvccError::InvalidRequest(format!(
                "key {key:02x?} appears twice in one command"
            )));
        }
    }
    Ok(())
}

/// The lock a mutation leaves, with its value split off if it is long.
fn lock_for(prewrite: &Prewrite<'_>, key: &[u8], op: &Op, ttl_ms: u64) -> (Lock, Option<Vec<u8>>) {
    let (kind, short_value, long_value) = match op {
        Op::Put(value) if value.len() <= SHORT_VALUE_MAX => {
            (LockKind::Put, Some(value.clone()), None)
        }
        Op::Put(value) => (LockKind::Put, None, Some(value.clone())),
        Op::Delete => (LockKind::Delete, None, None),
        Op::Lock => (LockKind::Lock, None, None),
    };
    let asynchronous = prewrite.min_commit_ts > Timestamp::ZERO;
    let lock = Lock {
        kind,
        primary: prewrite.primary.to_vec(),
        start_ts: prewrite.start_ts,
        ttl_ms,
        for_update_ts: prewrite.for_update_ts,
        short_value,
        min_commit_ts: prewrite.min_commit_ts,
        secondaries: if asynchronous && key == prewrite.primary {
            prewrite.secondaries.to_vec()
        } else {
            Vec::new()
        },
    };
    (lock, long_value)
}

/// What the checks of a prewrite found for one key.
enum Checked {
    /// The key may be locked; the transaction's pessimistic lock on it, if
    /// any, is passed on.
    Proceed(Option<Lock>),
    /// The transaction prewrote (or committed) the key already: a retry.
    /// The lock's minimum commit timestamp, or the commit's timestamp.
    Done(Timestamp),
}

/// The checks a prewrite or one-phase commit makes on one key.
fn check_prewrite(
    reader: &MvccReader<'_>,
    prewrite: &Prewrite<'_>,
    m: &Mutation,
) -> Result<Checked> {
    let start_ts = prewrite.start_ts;
    match reader.lock(&m.key)? {
        Some(lock) if lock.start_ts == start_ts => {
            return Ok(if lock.kind == LockKind::Pessimistic {
                Checked::Proceed(Some(lock))
            } else {
                Checked::Done(lock.min_commit_ts)
            });
        }
        Some(lock) => {
            return Err(MvccError::KeyIsLocked {
                key: m.key.clone(),
                lock: Box::new(lock),
            })
        }
        None => {}
    }
    let (record, newer) = reader.txn_record_and_data_after(&m.key, start_ts, start_ts)?;
    match record {
        TxnRecord::RolledBack => {
            return Err(MvccError::TxnAborted {
                key: m.key.clone(),
                start_ts,
            })
        }
        TxnRecord::Committed(commit_ts, _) => return Ok(Checked::Done(commit_ts)),
        TxnRecord::None => {}
    }
    if m.pessimistic {
        // The lock the transaction took is not here, and no resolver rolled
        // it back on this key: its entry was lost (a pipelined lock that
        // failed at apply, or one proposed by a deposed leader). If nothing
        // was committed on the key since the transaction started, nothing
        // happened that the lock would have kept out: the prewrite's lock
        // takes its place.
        if reader.committed_by_others_since(&m.key, start_ts)? {
            return Err(MvccError::PessimisticLockNotFound {
                key: m.key.clone(),
                start_ts,
            });
        }
        return Ok(Checked::Proceed(None));
    }
    if let Some((commit_ts, write)) = newer {
        return Err(MvccError::WriteConflict {
            key: m.key.clone(),
            start_ts,
            conflict_start_ts: write.start_ts,
            conflict_commit_ts: commit_ts,
        });
    }
    Ok(Checked::Proceed(None))
}

/// Prewrite: locks every mutation's key for the transaction, staging its new
/// value. Fails if another transaction holds a lock on a key
/// (`KeyIsLocked`: resolve it and retry), if a key was changed by a
/// transaction that committed after this one started (`WriteConflict`, for
/// keys without a pessimistic lock), or if this transaction was rolled back
/// by someone else. Retrying a prewrite that succeeded changes nothing.
///
/// For an asynchronous commit (`min_commit_ts` set), each lock's minimum
/// commit timestamp is also above the transaction's start and for-update
/// timestamps; returned with the writes is the highest of the locks' (or
/// the commit's timestamp, for a key the transaction committed already).
/// Zero otherwise.
pub fn prewrite(
    reader: &MvccReader<'_>,
    prewrite: &Prewrite<'_>,
) -> Result<(Timestamp, WriteBatch)> {
    distinct_keys(prewrite.mutations.iter().map(|m| m.key.as_slice()))?;
    let mut effects = Effects::default();
    let mut min_commit_ts = Timestamp::ZERO;
    for m in prewrite.mutations {
        let pessimistic = match check_prewrite(reader, prewrite, m)? {
            Checked::Done(ts) => {
                min_commit_ts = min_commit_ts.max(ts);
                continue;
            }
            Checked::Proceed(pessimistic) => pessimistic,
        };
        let ttl_ms = pessimistic
            .as_ref()
            .map_or(prewrite.ttl_ms, |lock| lock.ttl_ms.max(prewrite.ttl_ms));
        let (mut lock, long_value) = lock_for(prewrite, &m.key, &m.op, ttl_ms);
        if let Some(pessimistic) = pessimistic {
            lock.for_update_ts = lock.for_update_ts.max(pessimistic.for_update_ts);
        }
        if lock.is_async() {
            lock.min_commit_ts = lock
                .min_commit_ts
                .max(lock.start_ts.next())
                .max(lock.for_update_ts.next());
            min_commit_ts = min_commit_ts.max(lock.min_commit_ts);
        }
        if let Some(value) = long_value {
            effects.put_value(&m.key, prewrite.start_ts, &value);
        }
        effects.put_lock(&m.key, &lock);
    }
    if prewrite.min_commit_ts == Timestamp::ZERO {
        min_commit_ts = Timestamp::ZERO;
    }
    Ok((min_commit_ts, effects.batch))
}

/// Writes a commit record at `(key, commit_ts)`, keeping a rollback that
/// already shares the timestamp.
fn put_commit(
    reader: &MvccReader<'_>,
    effects: &mut Effects,
    key: &[u8],
    commit_ts: Timestamp,
    mut write: Write,
) -> Result<()> {
    if let Some(existing) = reader.write_at(key, commit_ts)? {
        write.overlapped_rollback =
            existing.kind == WriteKind::Rollback || existing.overlapped_rollback;
    }
    effects.put_write(key, commit_ts, &write);
    Ok(())
}

/// One-phase commit: the checks of a prewrite, then every mutation committed
/// at `commit_ts` at once, without locks. For a transaction whose keys all
/// lie in one range. Returns the commit timestamp with the writes: a retry
/// of a one-phase commit that already applied (its answer was lost with its
/// leader) changes nothing and answers with the timestamp it committed at.
pub fn one_phase_commit(
    reader: &MvccReader<'_>,
    prewrite: &Prewrite<'_>,
    commit_ts: Timestamp,
) -> Result<(Timestamp, WriteBatch)> {
    distinct_keys(prewrite.mutations.iter().map(|m| m.key.as_slice()))?;
    if commit_ts <= prewrite.start_ts || commit_ts <= prewrite.for_update_ts {
        return Err(MvccError::InvalidRequest(format!(
            "commit timestamp {commit_ts} is not after the transaction's start {}",
            prewrite.start_ts
        )));
    }
    let mut effects = Effects::default();
    for m in prewrite.mutations {
        let pessimistic = match check_prewrite(reader, prewrite, m) {
            Ok(Checked::Proceed(pessimistic)) => pessimistic,
            Err(err @ MvccError::Storage(_)) => return Err(err),
            refused => {
                if let Some(committed_at) = committed_at(reader, prewrite)? {
                    return Ok((committed_at, WriteBatch::new()));
                }
                return Err(refused.err().unwrap_or_else(|| {
                    MvccError::InvalidRequest(format!(
                        "one-phase commit of key {:02x?}, already prewritten",
                        m.key
                    ))
                }));
            }
        };
        if pessimistic.is_some() {
            effects.delete_lock(&m.key);
        }
        let write = match &m.op {
            Op::Put(value) if value.len() <= SHORT_VALUE_MAX => Write {
                short_value: Some(value.clone()),
                ..Write::new(WriteKind::Put, prewrite.start_ts)
            },
            Op::Put(value) => {
                effects.put_value(&m.key, prewrite.start_ts, value);
                Write::new(WriteKind::Put, prewrite.start_ts)
            }
            Op::Delete => Write::new(WriteKind::Delete, prewrite.start_ts),
            // A row lock only matters while the transaction runs.
            Op::Lock => continue,
        };
        put_commit(reader, &mut effects, &m.key, commit_ts, write)?;
    }
    Ok((commit_ts, effects.batch))
}

/// When the transaction of `prewrite` committed, if a one-phase commit of
/// it already applied: every key it writes then has its commit record, all
/// at one timestamp, so the first tells.
fn committed_at(reader: &MvccReader<'_>, prewrite: &Prewrite<'_>) -> Result<Option<Timestamp>> {
    let Some(written) = prewrite.mutations.iter().find(|m| m.op != Op::Lock) else {
        return Ok(None);
    };
    Ok(match reader.txn_record(&written.key, prewrite.start_ts)? {
        TxnRecord::Committed(commit_ts, _) => Some(commit_ts),
        TxnRecord::RolledBack | TxnRecord::None => None,
    })
}

/// Commits the transaction's locks on `keys` at `commit_ts`. Committing the
/// primary is the transaction's commit point. A key whose lock is gone
/// because the transaction already committed it is skipped; one whose lock
/// is gone otherwise fails with `TxnAborted`.
pub fn commit(
    reader: &MvccReader<'_>,
    start_ts: Timestamp,
    commit_ts: Timestamp,
    keys: &[Vec<u8>],
) -> Result<WriteBatch> {
    if commit_ts <= start_ts {
        return Err(MvccError::InvalidRequest(format!(
            "commit timestamp {commit_ts} is not after the transaction's start {start_ts}"
        )));
    }
    let keys: BTreeSet<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let mut effects = Effects::default();
    for key in keys {
        match reader.lock(key)? {
            Some(lock) if lock.start_ts == start_ts => {
                commit_lock(reader, &mut effects, key, lock, commit_ts)?;
            }
            _ => match reader.txn_record(key, start_ts)? {
                TxnRecord::Committed(..) => {}
                TxnRecord::RolledBack | TxnRecord::None => {
                    return Err(MvccError::TxnAborted {
                        key: key.to_vec(),
                        start_ts,
                    })
                }
            },
        }
    }
    Ok(effects.batch)
}

fn commit_lock(
    reader: &MvccReader<'_>,
    effects: &mut Effects,
    key: &[u8],
    lock: Lock,
    commit_ts: Timestamp,
) -> Result<()> {
    if commit_ts < lock.for_update_ts {
        return Err(MvccError::InvalidRequest(format!(
            "commit timestamp {commit_ts} is below the lock's for-update timestamp {}",
            lock.for_update_ts
        )));
    }
    let Some(kind) = WriteKind::of_lock(lock.kind) else {
        return Err(MvccError::InvalidRequest(format!(
            "commit of key {key:02x?}, which holds a pessimistic lock that was never prewritten"
        )));
    };
    effects.delete_lock(key);
    let write = Write {
        short_value: lock.short_value,
        ..Write::new(kind, lock.start_ts)
    };
    put_commit(reader, effects, key, commit_ts, write)
}

/// Rolls the transaction back on `key`: removes its lock and staged value
/// and leaves a rollback record so that a prewrite arriving late fails.
fn rollback_key(
    reader: &MvccReader<'_>,
    effects: &mut Effects,
    key: &[u8],
    start_ts: Timestamp,
    lock: Option<&Lock>,
) -> Result<()> {
    if let Some(lock) = lock {
        effects.delete_lock(key);
        if lock.kind == LockKind::Put && lock.short_value.is_none() {
            effects.delete_value(key, start_ts);
        }
    }
    match reader.write_at(key, start_ts)? {
        // Already rolled back.
        Some(write) if write.kind == WriteKind::Rollback || write.overlapped_rollback => {}
        // Another transaction committed at our start timestamp.
        Some(mut write) if write.start_ts != start_ts => {
            write.overlapped_rollback = true;
            effects.put_write(key, start_ts, &write);
        }
        Some(_) => {
            return Err(MvccError::InvalidRequest(format!(
                "key {key:02x?} has a commit record of transaction {start_ts} at its own start"
            )))
        }
        None => effects.put_write(key, start_ts, &Write::new(WriteKind::Rollback, start_ts)),
    }
    Ok(())
}

/// Rolls the transaction back on `keys`. Fails with `AlreadyCommitted` if
/// it committed one of them.
pub fn rollback(
    reader: &MvccReader<'_>,
    start_ts: Timestamp,
    keys: &[Vec<u8>],
) -> Result<WriteBatch> {
    let keys: BTreeSet<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let mut effects = Effects::default();
    for key in keys {
        let lock = reader.lock(key)?.filter(|lock| lock.start_ts == start_ts);
        if lock.is_none() {
            match reader.txn_record(key, start_ts)? {
                TxnRecord::Committed(commit_ts, _) => {
                    return Err(MvccError::AlreadyCommitted {
                        key: key.to_vec(),
                        start_ts,
                        commit_ts,
                    })
                }
                TxnRecord::RolledBack => continue,
                TxnRecord::None => {}
            }
        }
        rollback_key(reader, &mut effects, key, start_ts, lock.as_ref())?;
    }
    Ok(effects.batch)
}

/// Finds the fate of the transaction that started at `start_ts` from its
/// primary key, at time `now`. An expired primary lock is rolled back. A
/// primary with no lock and no record is marked rolled back when
/// `rollback_if_missing` (the caller's own lock of the transaction has
/// expired, so its prewrite is not merely in flight); otherwise the status is
/// `Missing`.
pub fn check_txn_status(
    reader: &MvccReader<'_>,
    primary: &[u8],
    start_ts: Timestamp,
    now: Timestamp,
    rollback_if_missing: bool,
) -> Result<(TxnStatus, WriteBatch)> {
    let mut effects = Effects::default();
    let status = match reader.lock(primary)? {
        // Not the primary's alone to decide: the caller checks every key
        // once the lock expires.
        Some(lock) if lock.start_ts == start_ts && lock.is_async() => TxnStatus::Locked {
            ttl_ms: lock.ttl_ms,
            min_commit_ts: lock.min_commit_ts,
            secondaries: lock.secondaries,
        },
        Some(lock) if lock.start_ts == start_ts => {
            if lock.is_expired(now) {
                rollback_key(reader, &mut effects, primary, start_ts, Some(&lock))?;
                TxnStatus::RolledBack
            } else {
                TxnStatus::Locked {
                    ttl_ms: lock.ttl_ms,
                    min_commit_ts: Timestamp::ZERO,
                    secondaries: Vec::new(),
                }
            }
        }
        _ => match reader.txn_record(primary, start_ts)? {
            TxnRecord::Committed(commit_ts, _) => TxnStatus::Committed(commit_ts),
            TxnRecord::RolledBack => TxnStatus::RolledBack,
            TxnRecord::None if rollback_if_missing => {
                rollback_key(reader, &mut effects, primary, start_ts, None)?;
                TxnStatus::RolledBack
            }
            TxnRecord::None => TxnStatus::Missing,
        },
    };
    Ok((status, effects.batch))
}

/// Decides, from its keys in this range, the fate of a transaction that
/// commits asynchronously and whose primary lock has expired (see
/// [`check_txn_status`]): it committed if every one of its keys holds its
/// prewritten lock or its commit record. A key it committed gives
/// `Committed` with the timestamp; a key without its lock or record (its
/// prewrite never came, or comes late) is rolled back, so that the prewrite
/// fails if it comes, and gives `RolledBack`, as does a key it rolled back
/// or holds only a pessimistic lock on (never prewritten). Otherwise
/// `Locked`, with the highest minimum commit timestamp of the locks.
pub fn check_secondary_locks(
    reader: &MvccReader<'_>,
    start_ts: Timestamp,
    keys: &[Vec<u8>],
) -> Result<(TxnStatus, WriteBatch)> {
    let keys: BTreeSet<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let mut min_commit_ts = Timestamp::ZERO;
    let mut missing = Vec::new();
    for key in keys {
        match reader.lock(key)?.filter(|lock| lock.start_ts == start_ts) {
            Some(lock) if lock.kind != LockKind::Pessimistic => {
                min_commit_ts = min_commit_ts.max(lock.min_commit_ts);
            }
            lock => match reader.txn_record(key, start_ts)? {
                TxnRecord::Committed(commit_ts, _) => {
                    return Ok((TxnStatus::Committed(commit_ts), WriteBatch::new()))
                }
                TxnRecord::RolledBack if lock.is_none() => {
                    return Ok((TxnStatus::RolledBack, WriteBatch::new()))
                }
                _ => missing.push((key, lock)),
            },
        }
    }
    if missing.is_empty() {
        let status = TxnStatus::Locked {
            ttl_ms: 0,
            min_commit_ts,
            secondaries: Vec::new(),
        };
        return Ok((status, WriteBatch::new()));
    }
    let mut effects = Effects::default();
    for (key, lock) in missing {
        rollback_key(reader, &mut effects, key, start_ts, lock.as_ref())?;
    }
    Ok((TxnStatus::RolledBack, effects.batch))
}

/// Extends the TTL of the transaction's primary lock to at least `ttl_ms`;
/// returns the lock's TTL. Fails with `TxnNotFound` if the lock is gone.
pub fn heartbeat(
    reader: &MvccReader<'_>,
    primary: &[u8],
    start_ts: Timestamp,
    ttl_ms: u64,
) -> Result<(u64, WriteBatch)> {
    let mut effects = Effects::default();
    match reader.lock(primary)? {
        Some(mut lock) if lock.start_ts == start_ts => {
            if ttl_ms > lock.ttl_ms {
                lock.ttl_ms = ttl_ms;
                effects.put_lock(primary, &lock);
            }
            Ok((lock.ttl_ms, effects.batch))
        }
        _ => Err(MvccError::TxnNotFound {
            key: primary.to_vec(),
            start_ts,
        }),
    }
}

/// Resolves the transaction's remaining locks on `keys` once its fate is
/// known: commits them at `commit_ts`, or rolls them back if it is `None`.
/// Keys without a lock of the transaction are skipped.
pub fn resolve_locks(
    reader: &MvccReader<'_>,
    start_ts: Timestamp,
    commit_ts: Option<Timestamp>,
    keys: &[Vec<u8>],
) -> Result<WriteBatch> {
    let keys: BTreeSet<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let mut effects = Effects::default();
    for key in keys {
        let Some(lock) = reader.lock(key)?.filter(|lock| lock.start_ts == start_ts) else {
            continue;
        };
        match commit_ts {
            // A pessimistic lock of a committed transaction was on a key
            // it did not write in the end.
            Some(_) if lock.kind == LockKind::Pessimistic => effects.delete_lock(key),
            Some(commit_ts) => commit_lock(reader, &mut effects, key, lock, commit_ts)?,
            None => rollback_key(reader, &mut effects, key, start_ts, Some(&lock))?,
        }
    }
    Ok(effects.batch)
}

/// Takes pessimistic locks on `keys` for a statement of the transaction
/// running at `for_update_ts`. Fails with `KeyIsLocked` if another
/// transaction holds a lock (the caller waits and retries) and with
/// `WriteConflict` if a key was changed by a transaction that committed after
/// `for_update_ts` (the caller retries with a newer one, or under snapshot
/// isolation, where `for_update_ts` is the start, gives up).
///
/// With `read`, also answers each key's value as of `for_update_ts` (the
/// latest committed one, since a newer commit fails the request) and locks
/// only the keys that have one: a statement that changes a row it finds by
/// its key reads and locks it in one request, and a row it does not find
/// stays unlocked, as PostgreSQL's `UPDATE` locks only the rows it finds.
/// Without it, the values are empty.
pub fn acquire_pessimistic_locks(
    reader: &MvccReader<'_>,
    start_ts: Timestamp,
    for_update_ts: Timestamp,
    primary: &[u8],
    ttl_ms: u64,
    keys: &[Vec<u8>],
    read: bool,
) -> Result<(WriteBatch, Vec<Option<Vec<u8>>>)> {
    distinct_keys(keys.iter().map(Vec::as_slice))?;
    let mut effects = Effects::default();
    let mut values = Vec::with_capacity(if read { keys.len() } else { 0 });
    for key in keys {
        let mine = match reader.lock(key)? {
            Some(lock) if lock.start_ts == start_ts => Some(lock),
            Some(lock) => {
                return Err(MvccError::KeyIsLocked {
                    key: key.clone(),
                    lock: Box::new(lock),
                })
            }
            None => None,
        };
        // The newest value at or below for_update_ts, from the walk that
        // checks the key when this transaction holds no lock on it yet.
        let mut data = None;
        if mine.is_none() {
            let history = reader.history(key, start_ts, for_update_ts, read)?;
            match history.record {
                TxnRecord::RolledBack => {
                    return Err(MvccError::TxnAborted {
                        key: key.clone(),
                        start_ts,
                    })
                }
                TxnRecord::Committed(commit_ts, _) => {
                    return Err(MvccError::AlreadyCommitted {
                        key: key.clone(),
                        start_ts,
                        commit_ts,
                    })
                }
                TxnRecord::None => {}
            }
            if let Some((commit_ts, write)) = history.newer {
                return Err(MvccError::WriteConflict {
                    key: key.clone(),
                    start_ts,
                    conflict_start_ts: write.start_ts,
                    conflict_commit_ts: commit_ts,
                });
            }
            data = history.data;
        }
        let value = match (read, mine.is_some(), data) {
            (false, _, _) => None,
            (true, true, _) => reader.get_committed(key, for_update_ts)?,
            (true, false, Some((_, write))) if write.kind == WriteKind::Put => {
                Some(reader.value_of(key, &write)?)
            }
            (true, false, _) => None,
        };
        let wanted = !read || value.is_some();
        if read {
            values.push(value);
        }
        match mine {
            // Its own lock: a pessimistic one moves up to the newer
            // for-update timestamp.
            Some(mut lock)
                if lock.kind == LockKind::Pessimistic && lock.for_update_ts < for_update_ts =>
            {
                lock.for_update_ts = for_update_ts;
                lock.ttl_ms = lock.ttl_ms.max(ttl_ms);
                effects.put_lock(key, &lock);
            }
            Some(_) => {}
            None if wanted => {
                let lock = Lock {
                    kind: LockKind::Pessimistic,
                    primary: primary.to_vec(),
                    start_ts,
                    ttl_ms,
                    for_update_ts,
                    short_value: None,
                    min_commit_ts: Timestamp::ZERO,
                    secondaries: Vec::new(),
                };
                effects.put_lock(key, &lock);
            }
            None => {}
        }
    }
    Ok((effects.batch, values))
}

/// Releases the transaction's pessimistic locks on `keys` (a statement that
/// failed, or a transaction that ends without writing them). Prewritten
/// locks are left alone.
pub fn release_pessimistic_locks(
    reader: &MvccReader<'_>,
    start_ts: Timestamp,
    keys: &[Vec<u8>],
) -> Result<WriteBatch> {
    let mut effects = Effects::default();
    for key in keys {
        if reader
            .lock(key)?
            .is_some_and(|lock| lock.start_ts == start_ts && lock.kind == LockKind::Pessimistic)
        {
            effects.delete_lock(key);
        }
    }
    Ok(effects.batch)
}

/// Removes the versions in `[start, end)` that no read at or above
/// `safe_point` can see: for each key, everything older than its newest
/// version at or below the safe point, that version too if it is a deletion,
/// and rollback and lock records at or below the safe point. Examines about
/// `limit` write records, stopping at a key boundary.
pub fn gc(
    snapshot: &dyn crate::Snapshot,
    safe_point: Timestamp,
    start: &[u8],
    end: &[u8],
    limit: usize,
) -> Result<(GcOutcome, WriteBatch)> {
    let (mut cursor, encoded_end) = span_bounds(start, end);
    let mut effects = Effects::default();
    let mut outcome = GcOutcome::default();
    // The key being collected, and whether its newest version at or below
    // the safe point has been seen.
    let mut current: Option<Vec<u8>> = None;
    let mut below_found = false;
    const PAGE: usize = 256;
    loop {
        let page = snapshot.scan_chunk(Cf::Write, &cursor, &encoded_end, PAGE)?;
        let full = page.len() == PAGE;
        for (versioned, value) in page {
            cursor.clone_from(&versioned);
            let (key, commit_ts) = split_version_key(&versioned)?;
            if current.as_deref() != Some(key.as_slice()) {
                if outcome.examined >= limit {
                    outcome.resume_key = Some(key);
                    return Ok((outcome, effects.batch));
                }
                current = Some(key.clone());
                below_found = false;
            }
            outcome.examined += 1;
            if commit_ts > safe_point {
                continue;
            }
            let write = Write::decode(&value)?;
            let remove = if below_found {
                true
            } else {
                match write.kind {
                    WriteKind::Put => {
                        below_found = true;
                        false
                    }
                    WriteKind::Delete => {
                        below_found = true;
                        true
                    }
                    WriteKind::Lock | WriteKind::Rollback => true,
                }
            };
            if remove {
                effects.delete_write(&key, commit_ts);
                if write.kind == WriteKind::Put && write.short_value.is_none() {
                    effects.delete_value(&key, write.start_ts);
                }
                outcome.removed += 1;
            }
        }
        if !full {
            return Ok((outcome, effects.batch));
        }
        cursor.push(0);
    }
}
