//! [`ClusterKv`]: the SQL layer's storage interface over the replicated
//! cluster, through the transaction coordinator ([`TxnClient`]); and
//! [`SqlFlows`], which runs the SQL layer's flows at a range's leader.

use std::cell::RefCell;
use std::time::Duration;

use tessera_kv::flow::{FlowEvaluator, FlowRun};
use tessera_sql::flow::RangeFlow;

use tessera_sql::kv::{
    conflict_error, deadlock_error, lock_timeout_error, FlowPart, Kv, KvTxn, KvWrite, Locked,
    LockedRead, NodeInfo, RangeInfo,
};
use tessera_sql::{code, SqlError, SqlResult};
use tessera_txn::{Transaction, TxnClient, TxnError};
use tokio::runtime::Handle;

/// How often a blind write is retried after losing a conflict.
const BLIND_WRITE_ATTEMPTS: usize = 100;

/// [`Kv`] over the cluster. The SQL layer is synchronous, so each call
/// blocks on the runtime; it must run outside the runtime's workers: on a
/// blocking thread (`spawn_blocking`) or a thread of its own, as the pgwire
/// frontend's sessions do.
pub struct ClusterKv {
    client: TxnClient,
    runtime: Handle,
}

impl ClusterKv {
    /// A store that runs transactions with `client` on `runtime`.
    pub fn new(client: TxnClient, runtime: Handle) -> Self {
        Self { client, runtime }
    }

    /// `txn` as the SQL layer's transaction.
    fn sql_txn(&self, txn: Transaction) -> Box<dyn KvTxn> {
        Box::new(ClusterTxn {
            txn: RefCell::new(txn),
            runtime: self.runtime.clone(),
        })
    }

    fn begin_txn(&self) -> SqlResult<Transaction> {
        self.runtime
            .block_on(self.client.begin())
            .map_err(sql_error)
    }
}

/// Buffers the SQL layer's writes in a coordinator transaction.
fn buffer(txn: &mut Transaction, writes: impl IntoIterator<Item = KvWrite>) {
    for write in writes {
        match write {
            KvWrite::Put(key, value) => txn.put(key, value),
            KvWrite::Delete(key) => txn.delete(key),
        }
    }
}

/// Maps a transaction error to the SQLSTATE the SQL client sees.
fn sql_error(err: TxnError) -> SqlError {
    match err {
        TxnError::WriteConflict {
            key,
            start_ts,
            conflict_start_ts,
            conflict_commit_ts,
        } => conflict_error(
            &key,
            format!(
                "transaction {start_ts} lost to transaction {conflict_start_ts}, \
                 committed at {conflict_commit_ts}"
            ),
        ),
        TxnError::Aborted { key, start_ts } => conflict_error(
            &key,
            format!("transaction {start_ts} was rolled back by a concurrent transaction"),
        ),
        TxnError::LockTimeout { key, holder } => lock_timeout_error(&key, &holder.to_string()),
        TxnError::Deadlock {
            key,
            waiter,
            holder,
            cycle,
        } => deadlock_error(
            &key,
            &waiter.to_string(),
            &holder.to_string(),
            cycle.len().saturating_sub(1),
        ),
        TxnError::SnapshotTooOld { ts, threshold } => {
            SqlError::new(code::SNAPSHOT_TOO_OLD, "snapshot too old").with_detail(format!(
                "the snapshot at {ts} is below the garbage collection threshold {threshold}"
            ))
        }
        TxnError::RangeChanged { key } => conflict_error(
            &key,
            "the ranges changed under the transaction too often; retry it",
        ),
        TxnError::Changed(msg) => SqlError::new(
            code::SERIALIZATION_FAILURE,
            "the range changed while it was being resharded; retry",
        )
        .with_detail(msg),
        TxnError::Unavailable(msg) => {
            SqlError::new(code::CONNECTION_FAILURE, "the cluster is unavailable").with_detail(msg)
        }
        TxnError::Ambiguous(msg) => SqlError::new(
            code::STATEMENT_COMPLETION_UNKNOWN,
            "the transaction may or may not have committed: its commit's answer was lost",
        )
        .with_detail(msg),
        TxnError::NewerWrite { key } => SqlError::not_latest(&key),
        TxnError::InvalidRequest(msg) => SqlError::new(code::INVALID_PARAMETER_VALUE, msg),
        TxnError::Internal(msg) => SqlError::internal(format!("storage error: {msg}")),
    }
}

impl Kv for ClusterKv {
    fn get(&self, key: &[u8]) -> SqlResult<Option<Vec<u8>>> {
        let txn = self.begin_txn()?;
        self.runtime.block_on(txn.get(key)).map_err(sql_error)
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> SqlResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let txn = self.begin_txn()?;
        self.runtime
            .block_on(txn.scan(start, end, limit))
            .map_err(sql_error)
    }

    /// A blind write read nothing, so a conflict cannot have invalidated
    /// it: it is retried at a new timestamp (the last writer wins, as for
    /// concurrent schema changes on the schema version key).
    fn write(&self, writes: Vec<KvWrite>) -> SqlResult<()> {
        let mut attempts = 0;
        loop {
            let mut txn = self.begin_txn()?;
            buffer(&mut txn, writes.iter().cloned());
            match self.runtime.block_on(txn.commit()) {
                Ok(_) => return Ok(()),
                Err(err) if err.is_retryable() && attempts < BLIND_WRITE_ATTEMPTS => {
                    attempts += 1;
                }
                Err(err) => return Err(sql_error(err)),
            }
        }
    }

    fn split(&self, key: &[u8]) -> SqlResult<bool> {
        self.runtime
            .block_on(self.client.split(key))
            .map_err(sql_error)
    }

    fn ranges(&self, start: &[u8], end: &[u8]) -> SqlResult<Vec<RangeInfo>> {
        let ranges: Vec<_> = self
            .runtime
            .block_on(self.client.ranges())
            .map_err(sql_error)?
            .into_iter()
            .filter(|r| {
                (r.end_key.is_empty() || r.end_key.as_slice() > start)
                    && (end.is_empty() || r.start_key.as_slice() < end)
            })
            .collect();
        let starts: Vec<Vec<u8>> = ranges.iter().map(|r| r.start_key.clone()).collect();
        let statuses = self.runtime.block_on(self.client.range_statuses(&starts));
        Ok(ranges
            .into_iter()
            .zip(statuses)
            .map(|(r, status)| RangeInfo {
                range_id: r.range_id,
                start: r.start_key,
                end: r.end_key,
                replicas: r.replicas.iter().map(|replica| replica.node_id).collect(),
                lease_holder: status.as_ref().map(|s| s.node_id),
                size: status
                    .as_ref()
                    .filter(|s| s.measured)
                    .map(|s| (s.size_bytes, s.keys)),
                qps: status.as_ref().map(|s| s.qps),
            })
            .collect())
    }

    fn nodes(&self) -> SqlResult<Vec<NodeInfo>> {
        let nodes = self
            .runtime
            .block_on(self.client.nodes())
            .map_err(sql_error)?;
        Ok(nodes
            .into_iter()
            .map(|n| NodeInfo {
                node_id: n.node_id,
                address: n.address,
                live: n.live,
                decommissioned: n.decommissioned,
                replicas: n.replicas.map(|r| r as u64),
                leases: n.leases.map(|l| l as u64),
            })
            .collect())
    }

    fn merge_at(&self, key: &[u8]) -> SqlResult<u64> {
        self.runtime
            .block_on(self.client.merge_at(key))
            .map(|merged| merged.range_id)
            .map_err(sql_error)
    }

    fn relocate_voter(&self, range_id: u64, from: u64, to: u64) -> SqlResult<Vec<u64>> {
        self.runtime
            .block_on(self.client.relocate_voter(range_id, from, to))
            .map(|d| d.replicas.iter().map(|r| r.node_id).collect())
            .map_err(sql_error)
    }

    fn transfer_lease(&self, range_id: u64, node: u64) -> SqlResult<()> {
        self.runtime
            .block_on(self.client.transfer_lease(range_id, node))
            .map_err(sql_error)
    }

    fn begin(&self) -> SqlResult<Box<dyn KvTxn>> {
        Ok(self.sql_txn(self.begin_txn()?))
    }

    fn begin_recent(&self) -> SqlResult<Box<dyn KvTxn>> {
        let txn = self.runtime.block_on(self.client.begin_recent());
        Ok(self.sql_txn(txn.map_err(sql_error)?))
    }
}

/// One SQL transaction's KV transaction.
struct ClusterTxn {
    /// The transaction; borrowed mutably by a locking read, which the SQL
    /// layer makes through a shared reference as it makes any read.
    txn: RefCell<Transaction>,
    runtime: Handle,
}

impl KvTxn for ClusterTxn {
    fn get(&self, key: &[u8]) -> SqlResult<Option<Vec<u8>>> {
        self.runtime
            .block_on(self.txn.borrow().get(key))
            .map_err(sql_error)
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> SqlResult<Vec<Option<Vec<u8>>>> {
        self.runtime
            .block_on(self.txn.borrow().get_many(keys))
            .map_err(sql_error)
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> SqlResult<Vec<(Vec<u8>, Vec<u8>)>> {
        self.runtime
            .block_on(self.txn.borrow().scan(start, end, limit))
            .map_err(sql_error)
    }

    fn refresh_snapshot(&mut self) -> SqlResult<()> {
        self.runtime
            .block_on(self.txn.get_mut().refresh_read_ts())
            .map_err(sql_error)
    }

    fn lock(&mut self, keys: Vec<Vec<u8>>, wait: Option<Duration>) -> SqlResult<Locked> {
        match self
            .runtime
            .block_on(self.txn.get_mut().lock_keys(keys, wait))
        {
            Ok(()) => Ok(Locked::All),
            Err(err @ TxnError::WriteConflict { .. }) => Ok(Locked::Changed(sql_error(err))),
            Err(err) => Err(sql_error(err)),
        }
    }

    fn get_for_update(&self, key: &[u8], wait: Option<Duration>) -> SqlResult<LockedRead> {
        let mut txn = self.txn.borrow_mut();
        match self.runtime.block_on(txn.get_for_update(key, wait)) {
            Ok(value) => Ok(LockedRead::Row(value)),
            Err(err @ TxnError::WriteConflict { .. }) => Ok(LockedRead::Changed(sql_error(err))),
            Err(err) => Err(sql_error(err)),
        }
    }

    fn runs_flows(&self) -> bool {
        true
    }

    fn flow(&self, spec: &[u8], spans: Vec<(Vec<u8>, Vec<u8>)>) -> SqlResult<Vec<Vec<FlowPart>>> {
        let answers = self
            .runtime
            .block_on(self.txn.borrow().flow(spec, spans))
            .map_err(sql_error)?;
        Ok(answers
            .into_iter()
            .map(|parts| {
                parts
                    .into_iter()
                    .map(|part| FlowPart {
                        output: part.output,
                        resume: part.resume,
                    })
                    .collect()
            })
            .collect())
    }

    fn commit(self: Box<Self>, writes: Vec<KvWrite>) -> SqlResult<()> {
        let ClusterTxn { txn, runtime } = *self;
        let mut txn = txn.into_inner();
        buffer(&mut txn, writes);
        runtime
            .block_on(txn.commit())
            .map(|_| ())
            .map_err(sql_error)
    }
}

/// Runs the SQL layer's flows over a range's rows at its leader.
pub struct SqlFlows;

impl FlowEvaluator for SqlFlows {
    fn start(&self, spec: &[u8]) -> Box<dyn FlowRun> {
        Box::new(SqlFlow(RangeFlow::new(spec)))
    }
}

struct SqlFlow(RangeFlow);

impl FlowRun for SqlFlow {
    fn push(&mut self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> bool {
        self.0.push(entries)
    }

    fn finish(self: Box<Self>) -> Vec<u8> {
        self.0.finish()
    }
}
