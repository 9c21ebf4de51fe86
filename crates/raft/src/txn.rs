//! Applying transactional commands: the bridge between the replicated
//! `TxnCommand` messages and the pure MVCC steps of `tessera_storage::mvcc`.
//!
//! A command's outcome, conflicts included, is a deterministic function of
//! the command and the replica's data, so every replica reaches the same one;
//! only the leader's is reported to the proposer.

use tessera_proto::txn::{
    self as pb, mutation::Op as PbOp, txn_command::Kind, txn_error, LockedValue, TxnCommand,
    TxnError, TxnResult, TxnState,
};
use tessera_storage::mvcc::{
    commands, Lock, LockKind, Mutation, MvccError, MvccReader, Op, Prewrite, TxnStatus,
};
use tessera_storage::{Snapshot, WriteBatch};
use tessera_types::Timestamp;

/// Every key a command touches (they must lie in one range).
pub fn command_keys(command: &TxnCommand) -> Vec<&[u8]> {
    fn keys(keys: &[Vec<u8>]) -> Vec<&[u8]> {
        keys.iter().map(Vec::as_slice).collect()
    }
    match &command.kind {
        Some(Kind::Prewrite(p)) => p.mutations.iter().map(|m| m.key.as_slice()).collect(),
        Some(Kind::Commit(c)) => keys(&c.keys),
        Some(Kind::Rollback(r)) => keys(&r.keys),
        Some(Kind::AcquirePessimisticLocks(l)) => keys(&l.keys),
        Some(Kind::ReleasePessimisticLocks(l)) => keys(&l.keys),
        Some(Kind::CheckTxnStatus(c)) => vec![c.primary.as_slice()],
        Some(Kind::Heartbeat(h)) => vec![h.primary.as_slice()],
        Some(Kind::ResolveLocks(r)) => keys(&r.keys),
        Some(Kind::CheckSecondaryLocks(c)) => keys(&c.keys),
        // A GC pass is clipped to the range when applied.
        Some(Kind::Gc(_)) | None => Vec::new(),
    }
}

/// The protobuf form of an MVCC conflict. Storage failures are not
/// conflicts: the caller handles them before this.
pub fn txn_error(err: MvccError) -> TxnError {
    let key_error = |key: Vec<u8>, start_ts: Timestamp, commit_ts: Timestamp| pb::KeyError {
        key,
        start_ts: start_ts.0,
        commit_ts: commit_ts.0,
    };
    let kind = match err {
        MvccError::KeyIsLocked { key, lock } => txn_error::Kind::Locked(lock_info(key, &lock)),
        MvccError::WriteConflict {
            key,
            start_ts,
            conflict_start_ts,
            conflict_commit_ts,
        } => txn_error::Kind::Conflict(pb::WriteConflict {
            key,
            start_ts: start_ts.0,
            conflict_start_ts: conflict_start_ts.0,
            conflict_commit_ts: conflict_commit_ts.0,
        }),
        MvccError::TxnAborted { key, start_ts } => {
            txn_error::Kind::Aborted(key_error(key, start_ts, Timestamp::ZERO))
        }
        MvccError::AlreadyCommitted {
            key,
            start_ts,
            commit_ts,
        } => txn_error::Kind::AlreadyCommitted(key_error(key, start_ts, commit_ts)),
        MvccError::PessimisticLockNotFound { key, start_ts } => {
            txn_error::Kind::PessimisticLockNotFound(key_error(key, start_ts, Timestamp::ZERO))
        }
        MvccError::TxnNotFound { key, start_ts } => {
            txn_error::Kind::TxnNotFound(key_error(key, start_ts, Timestamp::ZERO))
        }
        MvccError::NewerWrite { key } => {
            txn_error::Kind::NewerWrite(key_error(key, Timestamp::ZERO, Timestamp::ZERO))
        }
        other => txn_error::Kind::Invalid(other.to_string()),
    };
    TxnError { kind: Some(kind) }
}

/// The error of a read or transaction at `ts`, below the range's GC
/// threshold.
pub fn too_old(ts: Timestamp, threshold: Timestamp) -> TxnError {
    TxnError {
        kind: Some(txn_error::Kind::TooOld(pb::SnapshotTooOld {
            ts: ts.0,
            threshold: threshold.0,
        })),
    }
}

/// The protobuf form of a lock met at `key`.
pub fn lock_info(key: Vec<u8>, lock: &Lock) -> pb::LockInfo {
    let kind = match lock.kind {
        LockKind::Put => pb::LockKind::Put,
        LockKind::Delete => pb::LockKind::Delete,
        LockKind::Lock => pb::LockKind::Lock,
        LockKind::Pessimistic => pb::LockKind::Pessimistic,
    };
    pb::LockInfo {
        key,
        primary: lock.primary.clone(),
        start_ts: lock.start_ts.0,
        ttl_ms: lock.ttl_ms,
        kind: kind as i32,
        for_update_ts: lock.for_update_ts.0,
    }
}

fn mutation(m: pb::Mutation) -> Result<Mutation, MvccError> {
    let op = match m.op {
        Some(PbOp::Put(value)) => Op::Put(value),
        Some(PbOp::Delete(_)) => Op::Delete,
        Some(PbOp::Lock(_)) => Op::Lock,
        None => {
            return Err(MvccError::InvalidRequest(
                "mutation without an operation".into(),
            ))
        }
    };
    Ok(Mutation {
        key: m.key,
        op,
        pessimistic: m.pessimistic,
    })
}

/// Puts a transaction's status into a command's result.
fn record_status(result: &mut TxnResult, status: TxnStatus) {
    let state = match status {
        TxnStatus::Committed(ts) => {
            result.commit_ts = ts.0;
            TxnState::Committed
        }
        TxnStatus::RolledBack => TxnState::RolledBack,
        TxnStatus::Locked {
            ttl_ms,
            min_commit_ts,
            secondaries,
        } => {
            result.ttl_ms = ttl_ms;
            result.min_commit_ts = min_commit_ts.0;
            result.secondaries = secondaries;
            TxnState::Locked
        }
        TxnStatus::Missing => TxnState::Missing,
    };
    result.state = state as i32;
}

/// Runs `command` on the range `[start, end)` against `view`. Returns the
/// outcome and the writes that carry it out (empty on a conflict).
/// `Err` is a storage failure, which the replica cannot survive.
pub(crate) fn execute(
    command: TxnCommand,
    view: &dyn Snapshot,
    span: (&[u8], &[u8]),
    gc_threshold: Timestamp,
) -> tessera_storage::Result<(TxnResult, WriteBatch)> {
    let reader = MvccReader::new(view);
    let mut result = TxnResult::default();
    // A transaction that started below the GC threshold may have read
    // versions that are gone: it must not write.
    let new_writes_at = match &command.kind {
        Some(Kind::Prewrite(p)) => Some(p.start_ts),
        Some(Kind::AcquirePessimisticLocks(l)) => Some(l.start_ts),
        _ => None,
    };
    if let Some(start_ts) = new_writes_at.filter(|ts| Timestamp(*ts) < gc_threshold) {
        result.error = Some(too_old(Timestamp(start_ts), gc_threshold));
        return Ok((result, WriteBatch::new()));
    }
    let outcome: Result<WriteBatch, MvccError> = match command.kind {
        Some(Kind::Prewrite(p)) => {
            match p
                .mutations
                .into_iter()
                .map(mutation)
                .collect::<Result<Vec<_>, _>>()
            {
                Err(err) => Err(err),
                Ok(mutations) => {
                    let prewrite = Prewrite {
                        start_ts: Timestamp(p.start_ts),
                        primary: &p.primary,
                        ttl_ms: p.ttl_ms,
                        for_update_ts: Timestamp(p.for_update_ts),
                        mutations: &mutations,
                        min_commit_ts: Timestamp(p.min_commit_ts),
                        secondaries: &p.secondaries,
                    };
                    if p.commit_ts == 0 {
                        commands::prewrite(&reader, &prewrite).map(|(min_commit_ts, effects)| {
                            result.min_commit_ts = min_commit_ts.0;
                            effects
                        })
                    } else {
                        commands::one_phase_commit(&reader, &prewrite, Timestamp(p.commit_ts)).map(
                            |(commit_ts, effects)| {
                                result.commit_ts = commit_ts.0;
                                effects
                            },
                        )
                    }
                }
            }
        }
        Some(Kind::Commit(c)) => commands::commit(
            &reader,
            Timestamp(c.start_ts),
            Timestamp(c.commit_ts),
            &c.keys,
        ),
        Some(Kind::Rollback(r)) => commands::rollback(&reader, Timestamp(r.start_ts), &r.keys),
        Some(Kind::AcquirePessimisticLocks(l)) => commands::acquire_pessimistic_locks(
            &reader,
            Timestamp(l.start_ts),
            Timestamp(l.for_update_ts),
            &l.primary,
            l.ttl_ms,
            &l.keys,
            l.read,
        )
        .map(|(effects, values)| {
            result.values = values
                .into_iter()
                .map(|value| LockedValue {
                    found: value.is_some(),
                    value: value.unwrap_or_default(),
                })
                .collect();
            effects
        }),
        Some(Kind::ReleasePessimisticLocks(l)) => {
            commands::release_pessimistic_locks(&reader, Timestamp(l.start_ts), &l.keys)
        }
        Some(Kind::CheckTxnStatus(c)) => commands::check_txn_status(
            &reader,
            &c.primary,
            Timestamp(c.start_ts),
            Timestamp(c.now),
            c.rollback_if_missing,
        )
        .map(|(status, effects)| {
            record_status(&mut result, status);
            effects
        }),
        Some(Kind::CheckSecondaryLocks(c)) => {
            commands::check_secondary_locks(&reader, Timestamp(c.start_ts), &c.keys).map(
                |(status, effects)| {
                    record_status(&mut result, status);
                    effects
                },
            )
        }
        Some(Kind::Heartbeat(h)) => {
            commands::heartbeat(&reader, &h.primary, Timestamp(h.start_ts), h.ttl_ms).map(
                |(ttl_ms, effects)| {
                    result.ttl_ms = ttl_ms;
                    effects
                },
            )
        }
        Some(Kind::ResolveLocks(r)) => {
            let commit_ts = (r.commit_ts != 0).then_some(Timestamp(r.commit_ts));
            commands::resolve_locks(&reader, Timestamp(r.start_ts), commit_ts, &r.keys)
        }
        Some(Kind::Gc(g)) => {
            // Clip the pass to the range.
            let start = g.start.as_slice().max(span.0).to_vec();
            let end = match (g.end.is_empty(), span.1.is_empty()) {
                (true, _) => span.1.to_vec(),
                (false, true) => g.end.clone(),
                (false, false) => g.end.as_slice().min(span.1).to_vec(),
            };
            let limit = if g.limit == 0 {
                usize::MAX
            } else {
                g.limit as usize
            };
            commands::gc(view, Timestamp(g.safe_point), &start, &end, limit).map(
                |(outcome, effects)| {
                    result.gc_examined = outcome.examined as u64;
                    result.gc_removed = outcome.removed as u64;
                    result.gc_resume_key = outcome.resume_key.unwrap_or_default();
                    effects
                },
            )
        }
        None => Err(MvccError::InvalidRequest(
            "transaction command without a kind".into(),
        )),
    };
    match outcome {
        Ok(effects) => Ok((result, effects)),
        Err(MvccError::Storage(err)) => Err(err),
        Err(err) => {
            result.error = Some(txn_error(err));
            Ok((result, WriteBatch::new()))
        }
    }
}
