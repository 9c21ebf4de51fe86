//! Garbage collection of old MVCC versions.
//!
//! A pass picks a safe point (the oracle's time minus the TTL), then:
//!
//! 1. Resolves every lock, in every range, of a transaction that started
//!    below the safe point. A transaction's commit record may be collected
//!    once it is below the safe point, and a lock left behind would then
//!    find its primary empty and be rolled back: the locks must go first.
//!    A lock whose transaction is still alive lowers the safe point to its
//!    start instead.
//! 2. Sends every range a `Gc` command at the safe point, in batches. The
//!    range raises its GC threshold with it: reads and new transactions
//!    below the threshold are refused from then on.

use std::time::Duration;

use tessera_proto::txn::{self as pb, txn_command::Kind, TxnCommand};
use tessera_types::Timestamp;

use crate::transaction::unexpected;
use crate::{TxnClient, TxnResult};

/// What a garbage collection pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// The safe point the ranges were collected at.
    pub safe_point: Timestamp,
    /// Locks of finished or dead transactions resolved first.
    pub locks_resolved: usize,
    /// Ranges collected.
    pub ranges: usize,
    /// Write records examined.
    pub examined: u64,
    /// Write records removed (with their values).
    pub removed: u64,
}

/// Write records one `Gc` command examines.
const GC_BATCH: u32 = 1000;

impl TxnClient {
    /// Collects, in every range, the versions that no read at or above
    /// `now - ttl` can see. See the module documentation for the protocol.
    pub async fn collect_garbage(&self, ttl: Duration) -> TxnResult<GcReport> {
        let now = self.timestamp().await?;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let mut report = GcReport {
            safe_point: Timestamp::new(now.physical_ms().saturating_sub(ttl_ms), 0),
            ..GcReport::default()
        };
        let kv = &self.inner.kv;
        // 1. Resolve old locks, range after range across the keyspace.
        let mut cursor = Vec::new();
        loop {
            let (locks, resume) = kv
                .scan_locks(&cursor, b"", report.safe_point.prev(), 1000)
                .await?;
            for lock in locks {
                if lock.start_ts >= report.safe_point.0 {
                    continue;
                }
                if self.resolve_lock(&lock).await? {
                    report.locks_resolved += 1;
                } else {
                    report.safe_point = Timestamp(lock.start_ts);
                }
            }
            match resume {
                Some(next) => cursor = next,
                None => break,
            }
        }
        if report.safe_point.is_zero() {
            return Ok(report);
        }
        // 2. Collect every range.
        self.inner.ranges.refresh().await?;
        for range in self.inner.ranges.all() {
            report.ranges += 1;
            let mut start = range.start_key.clone();
            loop {
                let request = TxnCommand {
                    kind: Some(Kind::Gc(pb::Gc {
                        safe_point: report.safe_point.0,
                        start: start.clone(),
                        end: range.end_key.clone(),
                        limit: GC_BATCH,
                    })),
                };
                let result = kv.txn(request).await?;
                if let Some(err) = result.error {
                    return Err(unexpected(err.kind, report.safe_point));
                }
                report.examined += result.gc_examined;
                report.removed += result.gc_removed;
                if result.gc_resume_key.is_empty() {
                    break;
                }
                start = result.gc_resume_key;
            }
        }
        Ok(report)
    }
}
