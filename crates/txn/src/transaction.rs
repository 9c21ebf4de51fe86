//! The transaction coordinator.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_kv::KvClient;
use tessera_proto::txn::{
    self as pb, mutation::Op, txn_command::Kind, txn_error, LockInfo, TxnCommand, TxnState,
};
use tessera_types::Timestamp;

use crate::{RangeCache, TsoClient, TxnError, TxnResult};

/// How a [`TxnClient`]'s transactions behave.
#[derive(Clone, Debug)]
pub struct TxnOptions {
    /// How long a lock survives its transaction's coordinator, measured from
    /// the moment of prewrite.
    pub lock_ttl: Duration,
    /// How long a read or prewrite waits for a live transaction's lock.
    pub lock_wait: Duration,
    /// Commit writes that fall in one range in one step. Off only to test
    /// two-phase commit on one range.
    pub one_phase_commit: bool,
}

impl Default for TxnOptions {
    fn default() -> Self {
        TxnOptions {
            lock_ttl: Duration::from_secs(3),
            lock_wait: Duration::from_secs(10),
            one_phase_commit: true,
        }
    }
}

/// Starts transactions; one per gateway, shared by its sessions.
#[derive(Clone)]
pub struct TxnClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) kv: KvClient,
    tso: TsoClient,
    pub(crate) ranges: RangeCache,
    options: TxnOptions,
}

impl TxnClient {
    /// A client of the cluster reached through `kv`. Must be created inside
    /// a tokio runtime (the timestamp client spawns a task).
    pub fn new(kv: KvClient, options: TxnOptions) -> Self {
        TxnClient {
            inner: Arc::new(Inner {
                tso: TsoClient::new(kv.clone()),
                ranges: RangeCache::new(kv.clone()),
                kv,
                options,
            }),
        }
    }

    /// A new timestamp from the oracle.
    pub async fn timestamp(&self) -> TxnResult<Timestamp> {
        self.inner.tso.timestamp().await
    }

    /// Starts a transaction at a fresh timestamp: it reads the state as of
    /// then, plus its own writes.
    pub async fn begin(&self) -> TxnResult<Transaction> {
        let start_ts = self.timestamp().await?;
        Ok(Transaction {
            client: self.clone(),
            start_ts,
            started: Instant::now(),
            writes: BTreeMap::new(),
        })
    }
}

/// One transaction: snapshot reads at its start timestamp and buffered
/// writes, committed atomically by [`Transaction::commit`].
pub struct Transaction {
    client: TxnClient,
    start_ts: Timestamp,
    started: Instant,
    /// Buffered writes: `None` deletes.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

/// Backs off between attempts on a lock: 5 ms doubling to 200 ms.
struct Backoff {
    next: Duration,
    deadline: Instant,
}

impl Backoff {
    fn new(limit: Duration) -> Self {
        Backoff {
            next: Duration::from_millis(5),
            deadline: Instant::now() + limit,
        }
    }

    /// Sleeps, or fails with the lock that outlasted the wait.
    async fn wait(&mut self, lock: &LockInfo) -> TxnResult<()> {
        if Instant::now() >= self.deadline {
            return Err(TxnError::LockTimeout {
                key: lock.key.clone(),
                holder: Timestamp(lock.start_ts),
            });
        }
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(Duration::from_millis(200));
        Ok(())
    }
}

fn command(kind: Kind) -> TxnCommand {
    TxnCommand { kind: Some(kind) }
}

impl Transaction {
    /// The transaction's start timestamp: its snapshot and its identity.
    pub fn start_ts(&self) -> Timestamp {
        self.start_ts
    }

    /// Buffers a write of `key`.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    /// Buffers a deletion of `key`.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// The value of `key`: the transaction's own write, else the committed
    /// value as of its start.
    pub async fn get(&self, key: &[u8]) -> TxnResult<Option<Vec<u8>>> {
        if let Some(value) = self.writes.get(key) {
            return Ok(value.clone());
        }
        let inner = &self.client.inner;
        let mut backoff = Backoff::new(inner.options.lock_wait);
        loop {
            match inner.kv.mvcc_get(key, self.start_ts).await? {
                Ok(value) => return Ok(value),
                Err(err) => self.resolve_or_wait(err, &mut backoff).await?,
            }
        }
    }

    /// Up to `limit` entries of `[start, end)` (0: no limit; an empty `end`
    /// is unbounded), in key order, as of the start with the transaction's
    /// own writes.
    pub async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> TxnResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let inner = &self.client.inner;
        let mut stored: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut cursor = start.to_vec();
        // Own deletions may hide stored keys: read that many more.
        let enough = (limit != 0).then(|| limit + self.writes.len());
        let mut backoff = Backoff::new(inner.options.lock_wait);
        loop {
            let chunk = enough.map_or(10_000, |n| (n - stored.len()).min(10_000)) as u32;
            match inner
                .kv
                .mvcc_scan(&cursor, end, self.start_ts, chunk)
                .await?
            {
                Ok((kvs, resume)) => {
                    stored.extend(kvs);
                    match resume {
                        Some(next) if enough.is_none_or(|n| stored.len() < n) => cursor = next,
                        _ => break,
                    }
                }
                Err(err) => self.resolve_or_wait(err, &mut backoff).await?,
            }
        }
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = stored.into_iter().collect();
        let upper = if end.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(end)
        };
        for (key, value) in self
            .writes
            .range::<[u8], _>((Bound::Included(start), upper))
        {
            match value {
                Some(value) => {
                    merged.insert(key.clone(), value.clone());
                }
                None => {
                    merged.remove(key);
                }
            }
        }
        let mut out: Vec<_> = merged.into_iter().collect();
        if limit != 0 {
            out.truncate(limit);
        }
        Ok(out)
    }

    /// Handles a lock met by a read or a prewrite: resolves it through its
    /// primary if its transaction is over or dead, else waits a little.
    async fn resolve_or_wait(&self, err: pb::TxnError, backoff: &mut Backoff) -> TxnResult<()> {
        match err.kind {
            Some(txn_error::Kind::Locked(lock)) => {
                if !self.client.resolve_lock(&lock).await? {
                    backoff.wait(&lock).await?;
                }
                Ok(())
            }
            other => Err(unexpected(other, self.start_ts)),
        }
    }

    /// Commits the buffered writes atomically; returns the commit timestamp
    /// (None if there was nothing to write). On an error nothing of the
    /// transaction is visible, except for `Unavailable`, after which it may
    /// or may not have committed.
    pub async fn commit(self) -> TxnResult<Option<Timestamp>> {
        if self.writes.is_empty() {
            return Ok(None);
        }
        let inner = self.client.inner.clone();
        let start_ts = self.start_ts;
        let primary = self.writes.keys().next().cloned().unwrap_or_default();
        // Locks expire a TTL after the transaction's start: count the time
        // it has run.
        let ttl_ms = (self.started.elapsed() + inner.options.lock_ttl).as_millis() as u64;
        let mutations: Vec<pb::Mutation> = self
            .writes
            .into_iter()
            .map(|(key, value)| pb::Mutation {
                key,
                op: Some(match value {
                    Some(value) => Op::Put(value),
                    None => Op::Delete(true),
                }),
                pessimistic: false,
            })
            .collect();
        let groups = inner.ranges.group(mutations, |m| &m.key).await?;
        let prewrite = |mutations: Vec<pb::Mutation>, commit_ts: Timestamp| {
            command(Kind::Prewrite(pb::Prewrite {
                start_ts: start_ts.0,
                primary: primary.clone(),
                ttl_ms,
                for_update_ts: 0,
                mutations,
                commit_ts: commit_ts.0,
            }))
        };
        if groups.len() == 1 && inner.options.one_phase_commit {
            let commit_ts = self.client.timestamp().await?;
            let group = groups.into_iter().next().unwrap_or_default();
            let result = self
                .client
                .run_locked(prewrite(group, commit_ts), start_ts)
                .await?;
            return Ok(Some(Timestamp(result.commit_ts)));
        }
        // Phase one: prewrite every range's writes in parallel.
        let keys: Vec<Vec<Vec<u8>>> = groups
            .iter()
            .map(|group| group.iter().map(|m| m.key.clone()).collect())
            .collect();
        let prewrites = groups.into_iter().map(|group| {
            let client = &self.client;
            let request = prewrite(group, Timestamp::ZERO);
            async move { client.run_locked(request, start_ts).await }
        });
        let results = futures::future::join_all(prewrites).await;
        if let Some(err) = results.into_iter().find_map(Result::err) {
            self.client.roll_back(start_ts, keys).await;
            return Err(err);
        }
        // The commit point: the primary's commit.
        let commit_ts = match self.client.timestamp().await {
            Ok(ts) => ts,
            Err(err) => {
                self.client.roll_back(start_ts, keys).await;
                return Err(err);
            }
        };
        let commit_primary = command(Kind::Commit(pb::Commit {
            start_ts: start_ts.0,
            commit_ts: commit_ts.0,
            keys: vec![primary.clone()],
        }));
        let result = self.client.inner.kv.txn(commit_primary).await?;
        if let Some(err) = result.error {
            // Rolled back by a reader that found the transaction expired.
            self.client.roll_back(start_ts, keys).await;
            return Err(unexpected(err.kind, start_ts));
        }
        // Phase two: the other keys, after answering.
        let client = self.client.clone();
        tokio::spawn(async move {
            for group in keys {
                let request = command(Kind::Commit(pb::Commit {
                    start_ts: start_ts.0,
                    commit_ts: commit_ts.0,
                    keys: group,
                }));
                if let Err(err) = client.inner.kv.txn(request).await {
                    // Readers roll the locks forward through the primary.
                    tracing::warn!(%err, %start_ts, "committing secondary keys");
                }
            }
        });
        Ok(Some(commit_ts))
    }

    /// Drops the buffered writes. Nothing was written to the cluster, so
    /// there is nothing to undo.
    pub fn rollback(self) {}
}

impl TxnClient {
    /// Runs a prewrite (or one-phase commit), resolving the locks it meets.
    async fn run_locked(
        &self,
        request: TxnCommand,
        start_ts: Timestamp,
    ) -> TxnResult<pb::TxnResult> {
        let mut backoff = Backoff::new(self.inner.options.lock_wait);
        loop {
            let mut result = self.inner.kv.txn(request.clone()).await?;
            match result.error.take().map(|e| e.kind) {
                None => return Ok(result),
                Some(Some(txn_error::Kind::Locked(lock))) => {
                    if !self.resolve_lock(&lock).await? {
                        backoff.wait(&lock).await?;
                    }
                }
                Some(other) => return Err(unexpected(other, start_ts)),
            }
        }
    }

    /// Rolls back a failed transaction's prewrites; best effort, since
    /// readers clean up what is left once the locks expire.
    async fn roll_back(&self, start_ts: Timestamp, groups: Vec<Vec<Vec<u8>>>) {
        for keys in groups {
            let request = command(Kind::Rollback(pb::Rollback {
                start_ts: start_ts.0,
                keys,
            }));
            if let Err(err) = self.inner.kv.txn(request).await {
                tracing::warn!(%err, %start_ts, "rolling back a failed transaction");
            }
        }
    }

    /// Resolves `lock` if its transaction is over (committed: roll the lock
    /// forward; rolled back or expired: remove it). Returns false if the
    /// transaction is alive and the caller should wait.
    pub(crate) async fn resolve_lock(&self, lock: &LockInfo) -> TxnResult<bool> {
        let now = self.timestamp().await?;
        let lock_start = Timestamp(lock.start_ts);
        let expired = now.physical_ms() >= lock_start.physical_ms().saturating_add(lock.ttl_ms);
        let check = command(Kind::CheckTxnStatus(pb::CheckTxnStatus {
            primary: lock.primary.clone(),
            start_ts: lock.start_ts,
            now: now.0,
            rollback_if_missing: expired,
        }));
        let status = self.inner.kv.txn(check).await?;
        if let Some(err) = status.error {
            return Err(unexpected(err.kind, lock_start));
        }
        let commit_ts = match TxnState::try_from(status.state) {
            Ok(TxnState::Committed) => status.commit_ts,
            Ok(TxnState::RolledBack) => 0,
            Ok(TxnState::Locked | TxnState::Missing) => return Ok(false),
            Err(_) => {
                return Err(TxnError::Internal(format!(
                    "unknown transaction state {}",
                    status.state
                )))
            }
        };
        let resolve = command(Kind::ResolveLocks(pb::ResolveLocks {
            start_ts: lock.start_ts,
            commit_ts,
            keys: vec![lock.key.clone()],
        }));
        let result = self.inner.kv.txn(resolve).await?;
        match result.error {
            None => Ok(true),
            Some(err) => Err(unexpected(err.kind, lock_start)),
        }
    }
}

/// The transaction error for an MVCC outcome.
pub(crate) fn unexpected(kind: Option<txn_error::Kind>, start_ts: Timestamp) -> TxnError {
    match kind {
        Some(txn_error::Kind::Conflict(c)) => TxnError::WriteConflict {
            key: c.key,
            start_ts: Timestamp(c.start_ts),
            conflict_start_ts: Timestamp(c.conflict_start_ts),
            conflict_commit_ts: Timestamp(c.conflict_commit_ts),
        },
        Some(txn_error::Kind::Aborted(e)) | Some(txn_error::Kind::PessimisticLockNotFound(e)) => {
            TxnError::Aborted {
                key: e.key,
                start_ts,
            }
        }
        Some(txn_error::Kind::TooOld(e)) => TxnError::SnapshotTooOld {
            ts: Timestamp(e.ts),
            threshold: Timestamp(e.threshold),
        },
        Some(txn_error::Kind::Locked(lock)) => TxnError::LockTimeout {
            key: lock.key,
            holder: Timestamp(lock.start_ts),
        },
        other => TxnError::Internal(format!("unexpected outcome {other:?}")),
    }
}
