//! Flows: the part of a query that runs where its data is.
//!
//! A scan of a span of one table's primary index, with the scan's filter and
//! then a projection or a partial aggregation, makes a [`FlowSpec`]. The
//! gateway sends it, encoded, to the leader of every range the span touches,
//! in parallel ([`KvTxn::flow`]). Each leader reads its part of the span at
//! the transaction's snapshot and runs the flow over the rows ([`RangeFlow`]):
//! it answers with the rows that pass the filter, projected, or with one
//! partial aggregate state per group. The gateway takes the rows in key order,
//! or merges the partial states per group and finishes the aggregates. Only
//! what the flow keeps crosses the network.
//!
//! A leader answers after a bounded amount of work, with the key to resume
//! from; the gateway then asks every unfinished range again, in parallel.
//!
//! A scan runs at the gateway instead, reading the rows in chunks, when
//! `distsql` is off, when the transaction has buffered writes in the span
//! (the leaders cannot see them), and when an expression cannot leave the
//! gateway: a subquery, an outer column, a volatile function or one that
//! reads the session's settings. DISTINCT, string_agg and array_agg have no
//! partial states: the leaders then filter the rows and the gateway
//! aggregates them. A scan that locks its rows (FOR UPDATE) is sent whole
//! rows, whose keys the gateway locks.

use std::collections::{HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::{Snapshot, TableDesc};
use crate::error::{SqlError, SqlResult};
use crate::exec::{AggState, Ctx, Env, Groups, Row, RowIter};
use crate::expr::Expr;
use crate::kv::{FlowPart, KvTxn, Locked};
use crate::plan::{AggCall, AggFunc, Plan, ScanSpan};
use crate::rowcodec;
use crate::session::{Session, SqlEngine};
use crate::txn::Reader;
use crate::types::Value;

/// Rows (or groups) a leader answers with at most, per request.
const MAX_OUTPUTS: usize = 1024;
/// Entries a leader reads at most per request.
const MAX_SCANNED: usize = 64 * 1024;

/// What a flow computes over the rows of its span.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Stage {
    /// The rows that pass the filter, projected by the expressions (every
    /// column when None).
    Rows(Option<Vec<Expr>>),
    /// Partial aggregates of the rows that pass the filter, per group.
    Partial {
        groups: Vec<Expr>,
        aggs: Vec<AggCall>,
    },
}

/// A flow: everything a leader needs to run it, the table's descriptor
/// included, so that it does not depend on the leader's catalog cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowSpec {
    pub table: Arc<TableDesc>,
    pub filter: Option<Expr>,
    pub stage: Stage,
    /// The statement's parameters ($1, ...).
    pub params: Vec<Value>,
    /// The statement's now().
    pub now: DateTime<Utc>,
    pub user: String,
    pub database: String,
}

/// A partial aggregate state, as it crosses the network.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Partial {
    count: i64,
    sum: Option<Value>,
    best: Option<Value>,
    bool_acc: Option<bool>,
}

impl From<AggState> for Partial {
    fn from(s: AggState) -> Self {
        Partial {
            count: s.count,
            sum: s.sum,
            best: s.best,
            bool_acc: s.bool_acc,
        }
    }
}

impl From<Partial> for AggState {
    fn from(p: Partial) -> Self {
        AggState {
            count: p.count,
            sum: p.sum,
            best: p.best,
            bool_acc: p.bool_acc,
            ..AggState::default()
        }
    }
}

/// An error raised by a flow, with its SQLSTATE.
#[derive(Debug, Serialize, Deserialize)]
struct FlowError {
    code: String,
    message: String,
    detail: Option<String>,
}

/// A leader's answer.
#[derive(Debug, Serialize, Deserialize)]
enum Output {
    Rows(Vec<Row>),
    Groups(Vec<(Vec<Value>, Vec<Partial>)>),
    Error(FlowError),
}

/// Whether an expression can be evaluated away from the gateway.
fn portable(e: &Expr) -> bool {
    let mut ok = true;
    e.walk(&mut |e| match e {
        Expr::Subquery { .. } | Expr::Outer { .. } => ok = false,
        Expr::Func { func, .. } if func.is_volatile() || func.reads_session() => ok = false,
        _ => {}
    });
    ok
}

fn all_portable<'a>(mut exprs: impl Iterator<Item = &'a Expr>) -> bool {
    exprs.all(portable)
}

/// Whether an aggregate's partial states can be computed apart and merged.
fn splittable(call: &AggCall) -> bool {
    matches!(
        call.func,
        AggFunc::CountStar
            | AggFunc::Count
            | AggFunc::Sum
            | AggFunc::Avg
            | AggFunc::Min
            | AggFunc::Max
            | AggFunc::BoolAnd
            | AggFunc::BoolOr
    ) && !call.distinct
        && all_portable(call.arg.iter().chain(&call.filter))
}

/// Whether `stage` over a scan with `filter` can run at the leaders.
pub fn distributable(filter: Option<&Expr>, stage: &Stage) -> bool {
    all_portable(filter.into_iter())
        && match stage {
            Stage::Rows(None) => true,
            Stage::Rows(Some(exprs)) => all_portable(exprs.iter()),
            Stage::Partial { groups, aggs } => {
                all_portable(groups.iter()) && aggs.iter().all(splittable)
            }
        }
}

/// A scan a flow can read: a full or range scan of a primary index.
pub(crate) struct SpanScan<'a> {
    pub table: &'a Arc<TableDesc>,
    pub span: &'a ScanSpan,
    pub filter: Option<&'a Expr>,
    /// FOR UPDATE / FOR SHARE: the gateway needs whole rows to lock.
    pub locks_rows: bool,
}

/// `plan` as a scan a flow can read, if it is one.
pub(crate) fn span_scan(plan: &Plan) -> Option<SpanScan<'_>> {
    match plan {
        Plan::Scan {
            table,
            span: span @ (ScanSpan::Full | ScanSpan::Range { .. }),
            filter,
            locking,
            ..
        } => Some(SpanScan {
            table,
            span,
            filter: filter.as_ref(),
            locks_rows: locking.is_some(),
        }),
        _ => None,
    }
}

/// What of `plan` runs at the ranges' leaders, if it roots a flow, for
/// EXPLAIN. Whether it does at run time also depends on the store, on
/// `distsql` and on the transaction's buffered writes.
pub fn explain(plan: &Plan) -> Option<&'static str> {
    let (scan, stage) = match plan {
        Plan::Aggregate {
            input,
            groups,
            aggs,
            ..
        } => (
            input.as_ref(),
            Stage::Partial {
                groups: groups.clone(),
                aggs: aggs.clone(),
            },
        ),
        Plan::Project { input, exprs, .. } => (input.as_ref(), Stage::Rows(Some(exprs.clone()))),
        scan => (scan, Stage::Rows(None)),
    };
    let SpanScan {
        filter, locks_rows, ..
    } = span_scan(scan)?;
    if !distributable(filter, &stage) || (locks_rows && !matches!(stage, Stage::Rows(None))) {
        return None;
    }
    Some(match (filter.is_some(), &stage) {
        (true, Stage::Partial { .. }) => "filter and partial aggregates",
        (false, Stage::Partial { .. }) => "partial aggregates",
        (true, Stage::Rows(Some(_))) => "filter and projection",
        (false, Stage::Rows(Some(_))) => "projection",
        (true, Stage::Rows(None)) => "filter",
        (false, Stage::Rows(None)) => "scan",
    })
}

/// The SQLSTATE for a code that came over the wire, as the `&'static str`
/// errors carry: each distinct code is leaked once.
fn static_code(code: &str) -> &'static str {
    static CODES: OnceLock<Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    if code.len() != 5 || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return crate::error::code::INTERNAL_ERROR;
    }
    let mut codes = CODES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    codes
        .entry(code.to_string())
        .or_insert_with(|| Box::leak(code.to_string().into_boxed_str()))
}

fn decode_output(bytes: &[u8]) -> SqlResult<Output> {
    match postcard::from_bytes(bytes) {
        Ok(Output::Error(e)) => {
            let mut err = SqlError::new(static_code(&e.code), e.message);
            err.detail = e.detail;
            Err(err)
        }
        Ok(output) => Ok(output),
        Err(e) => Err(SqlError::internal(format!("corrupt flow answer: {e}"))),
    }
}

/// The gateway's side: runs `stage` over `[start, end)` of `table`'s
/// primary index at the leaders. None: it must run here (see the module
/// documentation).
pub(crate) struct Gateway<'a> {
    kv: &'a dyn KvTxn,
    spec: Vec<u8>,
}

impl<'a> Gateway<'a> {
    pub(crate) fn new(
        table: &Arc<TableDesc>,
        span: (&[u8], &[u8]),
        filter: Option<&Expr>,
        stage: Stage,
        env: &Env<'a>,
    ) -> SqlResult<Option<Self>> {
        let reader = &env.ctx.reader;
        if !env.ctx.session.vars.distsql()
            || !reader.kv.runs_flows()
            || !distributable(filter, &stage)
        {
            return Ok(None);
        }
        let (start, end) = span;
        let upper = if end.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(end)
        };
        if reader
            .buffer
            .range::<[u8], _>((Bound::Included(start), upper))
            .next()
            .is_some()
        {
            return Ok(None);
        }
        let spec = FlowSpec {
            table: table.clone(),
            filter: filter.cloned(),
            stage,
            params: env.ctx.params.to_vec(),
            now: env.ctx.now,
            user: env.ctx.user.clone(),
            database: env.ctx.database.to_string(),
        };
        let spec = postcard::to_stdvec(&spec)
            .map_err(|e| SqlError::internal(format!("cannot encode a flow: {e}")))?;
        Ok(Some(Gateway {
            kv: reader.kv,
            spec,
        }))
    }

    /// The rows, in key order.
    pub(crate) fn rows(self, start: Vec<u8>, end: Vec<u8>, env: Env<'a>) -> RowIter<'a> {
        Box::new(FlowRows {
            gateway: self,
            env,
            pieces: VecDeque::from([Piece {
                rows: VecDeque::new(),
                resume: Some((start, end)),
            }]),
        })
    }

    /// The groups' aggregate states, merged from every range's partial
    /// states.
    pub(crate) fn aggregate(
        self,
        start: Vec<u8>,
        end: Vec<u8>,
        aggs: &[AggCall],
        env: &Env,
    ) -> SqlResult<Groups> {
        let mut merged = Groups::default();
        let mut spans = vec![(start, end)];
        while !spans.is_empty() {
            env.ctx.session.check_cancel()?;
            let answers = self.kv.flow(&self.spec, std::mem::take(&mut spans))?;
            for part in answers.into_iter().flatten() {
                let Output::Groups(groups) = decode_output(&part.output)? else {
                    return Err(SqlError::internal("a flow answered rows for groups"));
                };
                for (key, partials) in groups {
                    let states = merged.states_of(key, aggs.len());
                    for ((call, state), partial) in aggs.iter().zip(states).zip(partials) {
                        state.merge(call, partial.into())?;
                    }
                }
                spans.extend(part.resume);
            }
        }
        Ok(merged)
    }
}

/// The rows of one range's part of the span, and what is left of it.
struct Piece {
    rows: VecDeque<Row>,
    resume: Option<(Vec<u8>, Vec<u8>)>,
}

struct FlowRows<'a> {
    gateway: Gateway<'a>,
    env: Env<'a>,
    /// In key order.
    pieces: VecDeque<Piece>,
}

impl FlowRows<'_> {
    /// Asks every unfinished piece for more, in parallel; a piece whose
    /// range split meanwhile comes back as several.
    fn refill(&mut self) -> SqlResult<()> {
        self.env.ctx.session.check_cancel()?;
        let asked: Vec<bool> = self.pieces.iter().map(|p| p.resume.is_some()).collect();
        let spans: Vec<(Vec<u8>, Vec<u8>)> = self
            .pieces
            .iter_mut()
            .filter_map(|p| p.resume.take())
            .collect();
        // One answer per span, in the order the spans were given.
        let mut answers = self.gateway.kv.flow(&self.gateway.spec, spans)?.into_iter();
        let mut pieces = VecDeque::with_capacity(self.pieces.len());
        for (mut piece, asked) in std::mem::take(&mut self.pieces).into_iter().zip(asked) {
            if !asked {
                pieces.push_back(piece);
                continue;
            }
            let parts = answers
                .next()
                .ok_or_else(|| SqlError::internal("a flow left a span unanswered"))?;
            let mut parts = parts.into_iter();
            if let Some(first) = parts.next() {
                piece.rows.extend(rows_of(&first)?);
                piece.resume = first.resume;
            }
            pieces.push_back(piece);
            for part in parts {
                pieces.push_back(Piece {
                    rows: rows_of(&part)?.into(),
                    resume: part.resume,
                });
            }
        }
        self.pieces = pieces;
        Ok(())
    }
}

fn rows_of(part: &FlowPart) -> SqlResult<Vec<Row>> {
    match decode_output(&part.output)? {
        Output::Rows(rows) => Ok(rows),
        _ => Err(SqlError::internal("a flow answered groups for rows")),
    }
}

impl Iterator for FlowRows<'_> {
    type Item = SqlResult<Row>;

    fn next(&mut self) -> Option<SqlResult<Row>> {
        loop {
            let front = self.pieces.front_mut()?;
            if let Some(row) = front.rows.pop_front() {
                return Some(Ok(row));
            }
            if front.resume.is_none() {
                self.pieces.pop_front();
                continue;
            }
            if let Err(e) = self.refill() {
                self.pieces.clear();
                return Some(Err(e));
            }
        }
    }
}

/// A leader's side: runs a flow over the entries of its range, chunk by
/// chunk, as the node reads them.
pub struct RangeFlow {
    state: Result<Running, SqlError>,
}

struct Running {
    spec: FlowSpec,
    session: Session,
    snapshot: Arc<Snapshot>,
    scanned: usize,
    rows: Vec<Row>,
    groups: Groups,
}

/// The engine flows' sessions belong to: over an empty store of its own, as
/// a flow's expressions read and write nothing (a subquery, a sequence never
/// leave the gateway).
fn flow_engine() -> Arc<SqlEngine> {
    static ENGINE: OnceLock<Arc<SqlEngine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| SqlEngine::new(Arc::new(crate::kv::MemoryKv::new())))
        .clone()
}

/// A transaction that reads nothing, for the same reason.
struct NoReads;

impl KvTxn for NoReads {
    fn get(&self, _: &[u8]) -> SqlResult<Option<Vec<u8>>> {
        Err(SqlError::internal("a flow cannot read the store"))
    }
    fn scan(&self, _: &[u8], _: &[u8], _: usize) -> SqlResult<Vec<(Vec<u8>, Vec<u8>)>> {
        Err(SqlError::internal("a flow cannot read the store"))
    }
    fn refresh_snapshot(&mut self) -> SqlResult<()> {
        Ok(())
    }
    fn lock(&mut self, _: Vec<Vec<u8>>, _: Option<std::time::Duration>) -> SqlResult<Locked> {
        Err(SqlError::internal("a flow cannot lock"))
    }
    fn get_for_update(
        &self,
        _: &[u8],
        _: Option<std::time::Duration>,
    ) -> SqlResult<crate::kv::LockedRead> {
        Err(SqlError::internal("a flow cannot lock"))
    }
    fn commit(self: Box<Self>, _: Vec<crate::kv::KvWrite>) -> SqlResult<()> {
        Err(SqlError::internal("a flow cannot write"))
    }
}

impl RangeFlow {
    /// Starts the flow encoded in `spec`.
    pub fn new(spec: &[u8]) -> Self {
        let state = postcard::from_bytes::<FlowSpec>(spec)
            .map_err(|e| SqlError::internal(format!("corrupt flow: {e}")))
            .map(|spec| Running {
                session: Session::for_flow(flow_engine(), &spec.database, &spec.user, spec.now),
                spec,
                snapshot: Arc::new(Snapshot::default()),
                scanned: 0,
                rows: Vec::new(),
                groups: Groups::default(),
            });
        RangeFlow { state }
    }

    /// Runs the flow over entries of the table's primary index, in key
    /// order. False once the flow has done a request's worth of work (or
    /// failed): the node answers, and the gateway asks again from the next
    /// key.
    pub fn push(&mut self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> bool {
        let Ok(running) = &mut self.state else {
            return false;
        };
        if let Err(e) = running.push(entries) {
            self.state = Err(e);
            return false;
        }
        running.scanned < MAX_SCANNED && running.outputs() < MAX_OUTPUTS
    }

    /// The answer, encoded for the gateway.
    pub fn finish(self) -> Vec<u8> {
        let output = match self.state {
            Err(e) => Output::Error(FlowError {
                code: e.code.to_string(),
                message: e.message,
                detail: e.detail,
            }),
            Ok(running) => match running.spec.stage {
                Stage::Rows(_) => Output::Rows(running.rows),
                Stage::Partial { .. } => Output::Groups(
                    running
                        .groups
                        .states
                        .into_iter()
                        .map(|(key, states)| (key, states.into_iter().map(Partial::from).collect()))
                        .collect(),
                ),
            },
        };
        postcard::to_stdvec(&output).unwrap_or_else(|e| {
            let error = Output::Error(FlowError {
                code: crate::error::code::INTERNAL_ERROR.to_string(),
                message: format!("cannot encode a flow's answer: {e}"),
                detail: None,
            });
            postcard::to_stdvec(&error).unwrap_or_default()
        })
    }
}

impl Running {
    fn outputs(&self) -> usize {
        self.rows.len() + self.groups.states.len()
    }

    fn push(&mut self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> SqlResult<()> {
        let buffer = Default::default();
        let reader = Reader {
            kv: &NoReads,
            buffer: &buffer,
        };
        let ctx = Ctx::new(
            &self.session,
            self.snapshot.clone(),
            reader,
            &self.spec.params,
        );
        let env = Env {
            ctx: &ctx,
            outer: None,
        };
        self.scanned += entries.len();
        for (_, value) in entries {
            let row = rowcodec::decode_row(&self.spec.table, &value)?;
            if let Some(filter) = &self.spec.filter {
                if filter.eval(&row, &env)?.as_bool()? != Some(true) {
                    continue;
                }
            }
            match &self.spec.stage {
                Stage::Rows(None) => self.rows.push(row),
                Stage::Rows(Some(exprs)) => self.rows.push(
                    exprs
                        .iter()
                        .map(|e| e.eval(&row, &env))
                        .collect::<SqlResult<Row>>()?,
                ),
                Stage::Partial { groups, aggs } => self.groups.update(groups, aggs, &row, &env)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::Func;
    use crate::types::DataType;

    fn call(func: AggFunc, distinct: bool) -> AggCall {
        AggCall {
            func,
            arg: Some(Expr::Column(0)),
            arg_ty: DataType::Int8,
            extra: None,
            distinct,
            filter: None,
            ty: DataType::Int8,
        }
    }

    #[test]
    fn values_cross_the_wire_unchanged() {
        let values = vec![
            Value::Null,
            Value::Bool(true),
            Value::Int(i64::MIN),
            Value::Float(-0.5),
            Value::Numeric("12.3400".parse().unwrap()),
            Value::Text("héllo".into()),
            Value::Bytea(vec![0, 255]),
            Value::Date(chrono::NaiveDate::from_ymd_opt(2026, 2, 28).unwrap()),
            Value::Timestamp(
                chrono::NaiveDate::from_ymd_opt(1999, 12, 31)
                    .unwrap()
                    .and_hms_micro_opt(23, 59, 59, 123_456)
                    .unwrap(),
            ),
            Value::TimestampTz(DateTime::from_timestamp(1_700_000_000, 7_000).unwrap()),
            Value::Uuid(uuid::Uuid::from_u128(42)),
            Value::Array(vec![Value::Int(1), Value::Null]),
        ];
        let bytes = postcard::to_stdvec(&Output::Rows(vec![values.clone()])).unwrap();
        let Output::Rows(rows) = decode_output(&bytes).unwrap() else {
            panic!("rows expected");
        };
        assert_eq!(rows, vec![values.clone()]);
        // Numeric keeps its scale; the text form shows it.
        assert_eq!(
            rows[0][4].to_pg_text(DataType::Numeric(None)).as_deref(),
            Some("12.3400")
        );
    }

    #[test]
    fn errors_keep_their_sqlstate() {
        let bytes = postcard::to_stdvec(&Output::Error(FlowError {
            code: "22012".into(),
            message: "division by zero".into(),
            detail: None,
        }))
        .unwrap();
        let err = decode_output(&bytes).unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            ("22012", "division by zero")
        );
        assert_eq!(static_code("22012"), "22012");
        assert_eq!(
            static_code("not a code"),
            crate::error::code::INTERNAL_ERROR
        );
        assert_eq!(
            decode_output(b"\xff\xff").unwrap_err().code,
            crate::error::code::INTERNAL_ERROR
        );
        // A corrupt spec fails the flow, not the node.
        let flow = RangeFlow::new(b"garbage");
        let err = decode_output(&flow.finish()).unwrap_err();
        assert_eq!(err.code, crate::error::code::INTERNAL_ERROR);
    }

    #[test]
    fn only_portable_work_leaves_the_gateway() {
        let col = Expr::Column(0);
        let random = Expr::Func {
            func: Func::Random,
            args: vec![],
            ty: DataType::Float8,
        };
        let setting = Expr::Func {
            func: Func::CurrentSetting,
            args: vec![Expr::Const(Value::Text("distsql".into()))],
            ty: DataType::Text,
        };
        let outer = Expr::Outer { depth: 1, index: 0 };
        assert!(distributable(Some(&col), &Stage::Rows(None)));
        assert!(distributable(None, &Stage::Rows(Some(vec![col.clone()]))));
        for bad in [random, setting, outer] {
            assert!(!distributable(Some(&bad), &Stage::Rows(None)));
            assert!(!distributable(None, &Stage::Rows(Some(vec![bad.clone()]))));
            let groups = vec![bad];
            let aggs = vec![call(AggFunc::Count, false)];
            assert!(!distributable(None, &Stage::Partial { groups, aggs }));
        }
        let partial = |aggs: Vec<AggCall>| Stage::Partial {
            groups: vec![col.clone()],
            aggs,
        };
        assert!(distributable(
            None,
            &partial(vec![call(AggFunc::Sum, false), call(AggFunc::Avg, false)])
        ));
        // No partial states for these.
        assert!(!distributable(
            None,
            &partial(vec![call(AggFunc::Count, true)])
        ));
        assert!(!distributable(
            None,
            &partial(vec![call(AggFunc::StringAgg, false)])
        ));
        assert!(!distributable(
            None,
            &partial(vec![call(AggFunc::ArrayAgg, false)])
        ));
    }
}
