//! Sessions: one per client connection. A session parses, describes and
//! executes statements, and keeps the session variables and the transaction.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{SqlError, SqlResult};
use crate::kv::Kv;
use crate::types::{DataType, Value};

/// A result column as RowDescription describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Column label.
    pub name: String,
    /// Its type.
    pub ty: DataType,
    /// OID of the table it comes from (0 if computed).
    pub table_oid: u32,
    /// Attribute number in that table (0 if computed).
    pub column_id: i16,
}

impl Column {
    /// A computed column.
    pub fn new(name: impl Into<String>, ty: DataType) -> Self {
        Self {
            name: name.into(),
            ty,
            table_oid: 0,
            column_id: 0,
        }
    }
}

/// The transaction state ReadyForQuery reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnStatus {
    /// 'I': not in a transaction block.
    Idle,
    /// 'T': in a transaction block.
    InBlock,
    /// 'E': in a failed transaction block; only ROLLBACK is accepted.
    Failed,
}

/// COPY data format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyFormat {
    /// CSV rather than text format.
    pub csv: bool,
    /// Field delimiter.
    pub delimiter: char,
    /// The string that means NULL.
    pub null: String,
    /// CSV: the first line is a header to skip.
    pub header: bool,
    /// CSV quote character.
    pub quote: char,
}

/// Where a `COPY ... FROM STDIN` goes; returned by [`Session::execute`] and
/// handed back with the data to [`Session::copy_in`].
#[derive(Debug, Clone)]
pub struct CopyTarget {
    /// Target table.
    pub table: String,
    /// Target columns, in data order.
    pub columns: Vec<Column>,
    /// Data format.
    pub format: CopyFormat,
}

/// What a statement produced.
#[derive(Debug, Clone)]
pub enum QueryResult {
    /// Rows, then a command tag such as `SELECT 3` or `INSERT 0 2`.
    Rows {
        /// Result columns.
        columns: Vec<Column>,
        /// The rows.
        rows: Vec<Vec<Value>>,
        /// Command tag.
        tag: String,
    },
    /// A command tag only, such as `CREATE TABLE`.
    Command {
        /// Command tag.
        tag: String,
    },
    /// The client must now send COPY data.
    CopyIn(CopyTarget),
    /// An empty query string.
    Empty,
}

/// What Describe reports for a prepared statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    /// Types of `$1`, `$2`, ...
    pub params: Vec<DataType>,
    /// Result columns; None if the statement returns no rows.
    pub columns: Option<Vec<Column>>,
}

/// A parsed statement.
#[derive(Debug, Clone)]
pub struct Statement {
    pub(crate) inner: crate::parser::Stmt,
    /// The statement's text.
    pub sql: String,
    /// A query's plan, kept for its next run (a prepared statement's
    /// executions); shared by the statement's clones.
    pub(crate) plan: crate::plan::PlanCache,
}

/// State shared by every session of a node: storage, schema cache, sequences.
pub struct SqlEngine {
    pub(crate) kv: Arc<dyn Kv>,
    pub(crate) catalog: crate::catalog::Catalog,
    /// The gateway's node id, the low bits of every row id it makes.
    node_id: u64,
    /// The time part of the last row id made (see [`SqlEngine::unique_rowid`]).
    rowid_last: AtomicU64,
}

/// Row ids count time in units of 10 µs since 2015-01-01 (as CockroachDB's
/// do), which leaves room for 89 years in the 48 bits above the node id.
const ROWID_EPOCH_MICROS: i64 = 1_420_070_400_000_000;

/// The bits of a row id that hold the node id: node ids up to 32767.
pub const ROWID_NODE_BITS: u32 = 15;

impl SqlEngine {
    /// An engine over `kv` that is not a cluster node's (its row ids carry
    /// node id 0).
    pub fn new(kv: Arc<dyn Kv>) -> Arc<Self> {
        Self::for_node(kv, 0)
    }

    /// The engine of node `node_id`'s gateway, over `kv`. Node ids must fit
    /// in [`ROWID_NODE_BITS`] bits for row ids to be unique in the cluster.
    pub fn for_node(kv: Arc<dyn Kv>, node_id: u64) -> Arc<Self> {
        Arc::new(Self {
            catalog: crate::catalog::Catalog::new(kv.clone()),
            kv,
            node_id: node_id & ((1 << ROWID_NODE_BITS) - 1),
            rowid_last: AtomicU64::new(0),
        })
    }

    /// A row id for tables without a primary key: the time in the high
    /// bits, the gateway's node id in the low 15. The time part never
    /// repeats on a gateway (it runs ahead of the clock if ids are made
    /// faster than one per 10 µs), so no two gateways, and no two calls,
    /// make the same id; an insert may rely on that and skip the check and
    /// the lock a user-supplied key needs (as long as a restarted node's
    /// clock has passed the ids it made before, as for CockroachDB's
    /// `unique_rowid`).
    pub(crate) fn unique_rowid(&self) -> i64 {
        let now = (chrono::Utc::now().timestamp_micros() - ROWID_EPOCH_MICROS).max(0) as u64 / 10;
        let mut last = self.rowid_last.load(Ordering::Relaxed);
        let time = loop {
            let next = now.max(last + 1);
            match self.rowid_last.compare_exchange_weak(
                last,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break next,
                Err(seen) => last = seen,
            }
        };
        (((time << ROWID_NODE_BITS) | self.node_id) & (i64::MAX as u64)) as i64
    }
}

/// Session state changed while a statement borrowed the session.
#[derive(Default)]
pub(crate) struct Pending {
    pub seq_values: Option<HashMap<u32, i64>>,
    pub sets: Vec<(String, String)>,
}

/// A cheap handle that cancels the statement a session is running.
#[derive(Clone, Default)]
pub struct CancelHandle(Arc<AtomicBool>);

impl CancelHandle {
    /// Asks the running statement to stop with 57014.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub(crate) fn take(&self) -> bool {
        self.0.swap(false, Ordering::SeqCst)
    }

    pub(crate) fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// One client session.
pub struct Session {
    pub(crate) engine: Arc<SqlEngine>,
    pub(crate) vars: crate::vars::Vars,
    pub(crate) txn: crate::txn::TxnState,
    pub(crate) cancel: CancelHandle,
    /// When the current transaction started (now()).
    pub(crate) txn_start: Option<chrono::DateTime<chrono::Utc>>,
    /// currval() values.
    pub(crate) seq_values: HashMap<u32, i64>,
    pub(crate) pending: RefCell<Pending>,
    /// Named prepared statements of the protocol level, which the frontend
    /// holds: PostgreSQL gives them one namespace with SQL `DEALLOCATE`.
    pub(crate) prepared: BTreeSet<String>,
    /// Statements `DEALLOCATE` removed, for the frontend to drop.
    pub(crate) deallocated: Vec<String>,
    /// Warnings of the last statement, for the frontend to send as
    /// NoticeResponse before its result.
    pub(crate) notices: Vec<SqlError>,
}

impl Session {
    /// The session a flow runs its expressions in at a range's leader
    /// (see [`crate::flow`]): the gateway's database, user and now(), and
    /// default settings.
    pub(crate) fn for_flow(
        engine: Arc<SqlEngine>,
        database: &str,
        user: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        Self {
            engine,
            vars: crate::vars::Vars::new(database, user),
            txn: crate::txn::TxnState::default(),
            cancel: CancelHandle::default(),
            txn_start: Some(now),
            seq_values: HashMap::new(),
            pending: RefCell::new(Pending::default()),
            prepared: BTreeSet::new(),
            deallocated: Vec::new(),
            notices: Vec::new(),
        }
    }

    /// Opens a session on `database` for `user`; `options` are the startup
    /// parameters (they set session variables). Fails with 3D000 if the
    /// database does not exist.
    pub fn new(
        engine: Arc<SqlEngine>,
        database: &str,
        user: &str,
        options: &[(String, String)],
    ) -> SqlResult<Self> {
        engine.catalog.ensure_database_exists(database)?;
        let mut vars = crate::vars::Vars::new(database, user);
        for (name, value) in options {
            // Unknown startup parameters are ignored, as PostgreSQL ignores
            // the ones it does not know in some client setups.
            let _ = vars.set(name, value);
        }
        Ok(Self {
            engine,
            vars,
            txn: crate::txn::TxnState::default(),
            cancel: CancelHandle::default(),
            txn_start: None,
            seq_values: HashMap::new(),
            pending: RefCell::new(Pending::default()),
            prepared: BTreeSet::new(),
            deallocated: Vec::new(),
            notices: Vec::new(),
        })
    }

    /// Records that the frontend holds the named prepared statement `name`.
    pub fn statement_prepared(&mut self, name: &str) {
        self.prepared.insert(name.to_string());
    }

    /// Records that the frontend closed the prepared statement `name`.
    pub fn statement_closed(&mut self, name: &str) {
        self.prepared.remove(name);
    }

    /// The prepared statements `DEALLOCATE` removed since the last call;
    /// the frontend drops them.
    pub fn take_deallocated(&mut self) -> Vec<String> {
        std::mem::take(&mut self.deallocated)
    }

    /// Records a warning for the client.
    pub(crate) fn warn(&mut self, warning: SqlError) {
        self.notices.push(warning);
    }

    /// The warnings since the last call (severity WARNING), to send before
    /// the statement's result.
    pub fn take_notices(&mut self) -> Vec<SqlError> {
        std::mem::take(&mut self.notices)
    }

    /// The handle a cancel request uses.
    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    /// The ParameterStatus values to report at startup.
    pub fn parameter_status(&self) -> Vec<(String, String)> {
        self.vars.reported()
    }

    /// How many times a setting changed since the session began: the
    /// ParameterStatus values stay the same while this does.
    pub fn parameter_changes(&self) -> u64 {
        self.vars.changes()
    }

    /// ReadyForQuery's transaction status.
    pub fn transaction_status(&self) -> TxnStatus {
        self.txn.status()
    }

    /// Splits and parses a query string into statements.
    pub fn parse(&self, sql: &str) -> SqlResult<Vec<Statement>> {
        crate::parser::parse(sql)
    }

    /// Infers parameter types and result columns without executing.
    /// `param_types` are the types the client fixed at Parse (None: infer).
    pub fn describe(
        &mut self,
        stmt: &Statement,
        param_types: &[Option<DataType>],
    ) -> SqlResult<Described> {
        crate::exec::describe(self, stmt, param_types)
    }

    /// The catalog for a statement that reads or writes table data. When
    /// the statement's transaction reads a fresh snapshot (an implicit
    /// single-statement transaction, or READ COMMITTED), the schema version
    /// is read in it; a block or batch on an older snapshot reads the
    /// latest version in a transaction of its own, as PostgreSQL reads its
    /// catalogs afresh whatever the transaction's snapshot.
    pub(crate) fn statement_catalog(&self) -> SqlResult<Arc<crate::catalog::Snapshot>> {
        let single = !self.txn.in_block && !self.txn.batch;
        if single || self.vars.read_committed() {
            let txn = self.txn.kv_txn(self.engine.kv.as_ref())?;
            self.engine.catalog.snapshot_in(txn)
        } else {
            self.engine.catalog.snapshot()
        }
    }

    /// Executes a statement with its parameter values.
    pub fn execute(&mut self, stmt: &Statement, params: &[Value]) -> SqlResult<QueryResult> {
        self.cancel.reset();
        crate::exec::execute(self, stmt, params).map_err(|e| self.explain(e))
    }

    /// Names the table and key values of a conflict (40001) in its detail,
    /// in place of the raw storage key.
    fn explain(&self, mut err: SqlError) -> SqlError {
        let Some(key) = err.key.take() else {
            return err;
        };
        let described = self
            .engine
            .catalog
            .snapshot()
            .ok()
            .and_then(|snap| crate::rowcodec::describe_key(&snap, &key));
        if let (Some(text), Some(detail)) = (described, err.detail.as_mut()) {
            *detail = detail.replacen(&crate::kv::conflict_key_text(&key), &text, 1);
        }
        err
    }

    /// Starts a simple-query message of several statements. Outside a
    /// transaction block they share one implicit transaction, as in
    /// PostgreSQL: an error rolls back the statements before it. (A BEGIN
    /// among them opens a block that takes in the earlier statements.)
    pub fn begin_batch(&mut self) {
        self.txn.batch = true;
    }

    /// Ends the message begun by [`Session::begin_batch`]: outside a block,
    /// commits its writes if every statement succeeded, else drops them.
    pub fn end_batch(&mut self, success: bool) -> SqlResult<()> {
        self.txn.batch = false;
        if self.txn.in_block {
            return Ok(());
        }
        self.txn_start = None;
        if !success {
            self.txn.abort();
            return Ok(());
        }
        let result = self.txn.flush(self.engine.kv.as_ref());
        self.txn.abort();
        result.map_err(|e| self.explain(e))
    }

    /// Loads the data of a `COPY ... FROM STDIN` and returns its `COPY n` tag.
    pub fn copy_in(&mut self, target: &CopyTarget, data: &[u8]) -> SqlResult<QueryResult> {
        crate::exec::copy_in(self, target, data).map_err(|e| self.explain(e))
    }

    /// The session's current database.
    pub fn database(&self) -> &str {
        self.vars.database()
    }

    /// Applies what a statement changed while it held the session.
    pub(crate) fn absorb_pending(&mut self) {
        let p = std::mem::take(&mut *self.pending.borrow_mut());
        if let Some(v) = p.seq_values {
            self.seq_values = v;
        }
        for (name, value) in p.sets {
            let _ = self.vars.set(&name, &value);
        }
    }

    pub(crate) fn check_cancel(&self) -> SqlResult<()> {
        if self.cancel.take() {
            return Err(SqlError::new(
                crate::error::code::QUERY_CANCELED,
                "canceling statement due to user request",
            ));
        }
        self.vars.check_timeout()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_ids_are_increasing_and_carry_the_node_id() {
        let kv: Arc<dyn Kv> = Arc::new(crate::kv::MemoryKv::new());
        let one = SqlEngine::for_node(kv.clone(), 1);
        let two = SqlEngine::for_node(kv, 2);
        let mask = (1i64 << ROWID_NODE_BITS) - 1;
        // Far more than one per 10 µs: the time part runs ahead of the
        // clock rather than repeat.
        let ids: Vec<i64> = (0..100_000).map(|_| one.unique_rowid()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "not increasing");
        assert!(ids.iter().all(|id| id & mask == 1 && *id > 0));
        let other = two.unique_rowid();
        assert_eq!(other & mask, 2);
        assert!(!ids.contains(&other));
        // The time part counts 10 µs units since 2015 (more than ten years
        // ago); 48 bits hold 89 years of them, so ids stay positive.
        let ten_years = 10 * 365 * 86_400 * 100_000i64;
        assert!(ids[0] >> ROWID_NODE_BITS > ten_years);
    }
}
