//! The executor: pull-based operators over plans, and statement dispatch.
//!
//! Scans, filters, projections and limits stream rows one at a time (a scan
//! reads the store in chunks); joins, aggregation, sorting and set operations
//! gather their inputs first.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlparser::ast;

use crate::binder::Binder;
use crate::catalog::{SequenceDesc, Snapshot, TableDesc};
use crate::error::{code, SqlError, SqlResult};
use crate::expr::{CmpOp, Expr, SubqueryKind};
use crate::flow;
use crate::kv::LockedRead;
use crate::plan::{AggCall, AggFunc, JoinKind, Plan, ScanSpan, SetOpKind};
use crate::rowcodec;
use crate::session::{Column, Described, QueryResult, Session, SqlEngine, Statement};
use crate::txn::Reader;
use crate::types::{compare, DataType, Value};

/// A row.
pub type Row = Vec<Value>;
/// A stream of rows.
pub type RowIter<'a> = Box<dyn Iterator<Item = SqlResult<Row>> + 'a>;

/// Rows read per round trip by a scan.
const SCAN_CHUNK: usize = 1024;

/// What one statement's execution needs.
pub struct Ctx<'a> {
    pub engine: &'a SqlEngine,
    pub snap: Arc<Snapshot>,
    pub reader: Reader<'a>,
    pub params: &'a [Value],
    pub database: &'a str,
    pub user: String,
    pub now: DateTime<Utc>,
    pub session: &'a Session,
    subquery_cache: RefCell<HashMap<usize, Arc<Vec<Row>>>>,
    regex_cache: RefCell<HashMap<(String, bool), regex::Regex>>,
    deferred_sets: RefCell<Vec<(String, String)>>,
    seq_values: RefCell<HashMap<u32, i64>>,
    rng: RefCell<u64>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(
        session: &'a Session,
        snap: Arc<Snapshot>,
        reader: Reader<'a>,
        params: &'a [Value],
    ) -> Self {
        Ctx {
            engine: &session.engine,
            snap,
            reader,
            params,
            database: session.vars.database(),
            user: session.vars.user(),
            now: session.txn_start.unwrap_or_else(Utc::now),
            session,
            subquery_cache: RefCell::new(HashMap::new()),
            regex_cache: RefCell::new(HashMap::new()),
            deferred_sets: RefCell::new(Vec::new()),
            seq_values: RefCell::new(session.seq_values.clone()),
            rng: RefCell::new(Utc::now().timestamp_nanos_opt().unwrap_or(1) as u64 | 1),
        }
    }

    /// A compiled regular expression (cached per statement).
    pub fn regex(&self, pattern: &str, case_insensitive: bool) -> SqlResult<regex::Regex> {
        let key = (pattern.to_string(), case_insensitive);
        if let Some(r) = self.regex_cache.borrow().get(&key) {
            return Ok(r.clone());
        }
        let r = regex::RegexBuilder::new(pattern)
            .case_insensitive(case_insensitive)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| {
                SqlError::new(
                    code::INVALID_REGULAR_EXPRESSION,
                    format!("invalid regular expression: {e}"),
                )
            })?;
        self.regex_cache.borrow_mut().insert(key, r.clone());
        Ok(r)
    }

    /// A pseudo-random float in [0, 1).
    pub fn random(&self) -> f64 {
        let mut s = self.rng.borrow_mut();
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        (*s >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A session variable.
    pub fn setting(&self, name: &str) -> Option<String> {
        if let Some((_, v)) = self
            .deferred_sets
            .borrow()
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            return Some(v.clone());
        }
        self.session.vars.get(name)
    }

    /// set_config(): applied to the session when the statement ends.
    pub fn defer_set(&self, name: String, value: String) {
        self.deferred_sets.borrow_mut().push((name, value));
    }

    /// A sequence by (possibly qualified) name.
    pub fn sequence(&self, name: &str) -> SqlResult<Arc<SequenceDesc>> {
        let bare = name.rsplit('.').next().unwrap_or(name).trim_matches('"');
        if let Ok(oid) = bare.parse::<u32>() {
            if let Some(s) = self.snap.sequences.get(&oid) {
                return Ok(s.clone());
            }
        }
        self.snap.sequence(self.database, bare).ok_or_else(|| {
            SqlError::new(
                code::UNDEFINED_TABLE,
                format!("relation \"{name}\" does not exist"),
            )
        })
    }

    /// Remembers a sequence value for currval.
    pub fn note_sequence_value(&self, oid: u32, v: i64) {
        self.seq_values.borrow_mut().insert(oid, v);
    }

    /// currval.
    pub fn current_sequence_value(&self, seq: &SequenceDesc) -> SqlResult<i64> {
        self.seq_values
            .borrow()
            .get(&seq.oid)
            .copied()
            .ok_or_else(|| {
                SqlError::new(
                    code::UNDEFINED_SEQUENCE_VALUE,
                    format!(
                        "currval of sequence \"{}\" is not yet defined in this session",
                        seq.name
                    ),
                )
            })
    }
}

/// A row of an enclosing query, for correlated subqueries.
pub struct Outer<'a> {
    pub row: &'a [Value],
    pub parent: Option<&'a Outer<'a>>,
}

/// The evaluation environment of an expression.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    pub ctx: &'a Ctx<'a>,
    pub outer: Option<&'a Outer<'a>>,
}

impl Env<'_> {
    /// The value of an outer column.
    pub fn outer_value(&self, depth: usize, index: usize) -> SqlResult<Value> {
        let mut o = self.outer;
        for _ in 1..depth {
            o = o.and_then(|x| x.parent);
        }
        o.and_then(|x| x.row.get(index))
            .cloned()
            .ok_or_else(|| SqlError::internal("outer column out of range"))
    }
}

fn truthy(v: Value) -> SqlResult<bool> {
    Ok(v.as_bool()? == Some(true))
}

/// Runs a plan.
pub fn run<'a>(plan: &'a Plan, env: Env<'a>) -> SqlResult<RowIter<'a>> {
    env.ctx.session.check_cancel()?;
    Ok(match plan {
        // A row found by its whole key: read and locked at once.
        Plan::Scan {
            table,
            span: ScanSpan::Point(exprs),
            filter,
            locking: Some(lock),
            ..
        } => {
            let row = point_row_for_update(table, exprs, filter.as_ref(), lock.nowait, env)?;
            Box::new(row.map(Ok).into_iter())
        }
        Plan::Scan {
            table,
            span,
            filter,
            locking,
            ..
        } => {
            let rows = scan(table, span, filter.as_ref(), env)?;
            match locking {
                None => rows,
                Some(lock) => {
                    // The statement locks these rows when it ends.
                    let session = env.ctx.session;
                    session.txn.row_locks.borrow_mut().nowait |= lock.nowait;
                    Box::new(rows.inspect(move |row| {
                        if let Ok(row) = row {
                            let key = rowcodec::primary_key(table, row);
                            session.txn.row_locks.borrow_mut().keys.push(key);
                        }
                    }))
                }
            }
        }
        Plan::Virtual { name, .. } => {
            let rows = crate::pg_catalog::rows(name, env.ctx)?;
            Box::new(rows.into_iter().map(Ok))
        }
        Plan::Values { rows, .. } => {
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(
                    r.iter()
                        .map(|e| e.eval(&[], &env))
                        .collect::<SqlResult<Row>>()?,
                );
            }
            Box::new(out.into_iter().map(Ok))
        }
        Plan::Series {
            start, stop, step, ..
        } => series(start, stop, step.as_ref(), env)?,
        Plan::Filter { input, predicate } => {
            let it = run(input, env)?;
            Box::new(it.filter_map(move |r| match r {
                Err(e) => Some(Err(e)),
                Ok(row) => match predicate.eval(&row, &env).and_then(truthy) {
                    Ok(true) => Some(Ok(row)),
                    Ok(false) => None,
                    Err(e) => Some(Err(e)),
                },
            }))
        }
        // A projection of a scan without row locks runs with the scan, at
        // the ranges' leaders if it can (see `flow`).
        Plan::Project { input, exprs, .. } => {
            match flow::span_scan(input).filter(|s| !s.locks_rows) {
                Some(scan) => match key_span(scan.table, scan.span, &env)? {
                    Some((start, end)) => {
                        span_rows(scan.table, start, end, scan.filter, Some(exprs), env)?
                    }
                    None => Box::new(std::iter::empty()),
                },
                None => {
                    let it = run(input, env)?;
                    Box::new(it.map(move |r| {
                        let row = r?;
                        exprs.iter().map(|e| e.eval(&row, &env)).collect()
                    }))
                }
            }
        }
        Plan::Limit {
            input,
            limit,
            offset,
        } => {
            let count =
                |e: &Option<Expr>, code: &'static str, what: &str| -> SqlResult<Option<usize>> {
                    match e {
                        None => Ok(None),
                        Some(e) => match e.eval(&[], &env)? {
                            Value::Null => Ok(None),
                            v => {
                                let n = v.as_i64()?;
                                if n < 0 {
                                    return Err(SqlError::new(
                                        code,
                                        format!("{what} must not be negative"),
                                    ));
                                }
                                Ok(Some(n as usize))
                            }
                        },
                    }
                };
            let limit = count(limit, code::INVALID_ROW_COUNT_IN_LIMIT, "LIMIT")?;
            let offset = count(offset, code::INVALID_ROW_COUNT_IN_OFFSET, "OFFSET")?.unwrap_or(0);
            if limit == Some(0) {
                return Ok(Box::new(std::iter::empty()));
            }
            let it = run(input, env)?.skip(offset);
            match limit {
                Some(n) => Box::new(it.take(n)),
                None => Box::new(it),
            }
        }
        Plan::Distinct { input } => {
            let it = run(input, env)?;
            let mut seen: HashSet<Row> = HashSet::new();
            Box::new(it.filter_map(move |r| match r {
                Err(e) => Some(Err(e)),
                Ok(row) => {
                    if seen.insert(row.clone()) {
                        Some(Ok(row))
                    } else {
                        None
                    }
                }
            }))
        }
        Plan::Sort { input, keys } => {
            let mut keyed: Vec<(Vec<Value>, Row)> = Vec::new();
            for r in run(input, env)? {
                let row = r?;
                let k = keys
                    .iter()
                    .map(|k| k.expr.eval(&row, &env))
                    .collect::<SqlResult<Vec<_>>>()?;
                keyed.push((k, row));
                if keyed.len().is_multiple_of(4096) {
                    env.ctx.session.check_cancel()?;
                }
            }
            keyed.sort_by(|(a, _), (b, _)| {
                for ((x, y), key) in a.iter().zip(b).zip(keys) {
                    let o = match (x.is_null(), y.is_null()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => {
                            if key.nulls_first {
                                std::cmp::Ordering::Less
                            } else {
                                std::cmp::Ordering::Greater
                            }
                        }
                        (false, true) => {
                            if key.nulls_first {
                                std::cmp::Ordering::Greater
                            } else {
                                std::cmp::Ordering::Less
                            }
                        }
                        _ => {
                            let o = compare(x, y);
                            if key.desc {
                                o.reverse()
                            } else {
                                o
                            }
                        }
                    };
                    if o != std::cmp::Ordering::Equal {
                        return o;
                    }
                }
                std::cmp::Ordering::Equal
            });
            Box::new(keyed.into_iter().map(|(_, r)| Ok(r)))
        }
        Plan::Aggregate {
            input,
            groups,
            aggs,
            ..
        } => Box::new(aggregate(input, groups, aggs, env)?.into_iter().map(Ok)),
        Plan::Join {
            left,
            right,
            kind,
            equi,
            on,
            cols,
        } => {
            let rows = join(left, right, *kind, equi, on.as_ref(), cols.len(), env)?;
            Box::new(rows.into_iter().map(Ok))
        }
        Plan::SetOp {
            op,
            all,
            left,
            right,
            ..
        } => {
            let l: Vec<Row> = run(left, env)?.collect::<SqlResult<_>>()?;
            let r: Vec<Row> = run(right, env)?.collect::<SqlResult<_>>()?;
            Box::new(set_op(*op, *all, l, r).into_iter().map(Ok))
        }
    })
}

fn series<'a>(
    start: &Expr,
    stop: &Expr,
    step: Option<&Expr>,
    env: Env<'a>,
) -> SqlResult<RowIter<'a>> {
    let (a, b) = (start.eval(&[], &env)?, stop.eval(&[], &env)?);
    let s = match step {
        Some(e) => e.eval(&[], &env)?,
        None => Value::Int(1),
    };
    if a.is_null() || b.is_null() || s.is_null() {
        return Ok(Box::new(std::iter::empty()));
    }
    if let (Value::Int(a), Value::Int(b), Value::Int(s)) = (&a, &b, &s) {
        let (a, b, s) = (*a, *b, *s);
        if s == 0 {
            return Err(SqlError::new(
                code::INVALID_PARAMETER_VALUE,
                "step size cannot equal zero",
            ));
        }
        let mut cur = Some(a);
        return Ok(Box::new(std::iter::from_fn(move || {
            let v = cur?;
            if (s > 0 && v > b) || (s < 0 && v < b) {
                return None;
            }
            cur = v.checked_add(s);
            Some(Ok(vec![Value::Int(v)]))
        })));
    }
    let (a, b, s) = (a.as_decimal()?, b.as_decimal()?, s.as_decimal()?);
    if s.is_zero() {
        return Err(SqlError::new(
            code::INVALID_PARAMETER_VALUE,
            "step size cannot equal zero",
        ));
    }
    let mut cur = a;
    Ok(Box::new(std::iter::from_fn(move || {
        if (s.is_sign_positive() && cur > b) || (s.is_sign_negative() && cur < b) {
            return None;
        }
        let v = cur;
        cur += s;
        Some(Ok(vec![Value::Numeric(v)]))
    })))
}

/// Evaluates span expressions to key values of the key columns' types.
fn key_values(exprs: &[Expr], env: &Env) -> SqlResult<Option<Vec<Value>>> {
    let mut out = Vec::with_capacity(exprs.len());
    for e in exprs {
        let v = e.eval(&[], env)?;
        if v.is_null() {
            return Ok(None);
        }
        out.push(v);
    }
    Ok(Some(out))
}

struct ChunkScan<'a> {
    table: &'a TableDesc,
    env: Env<'a>,
    next: Option<Vec<u8>>,
    end: Vec<u8>,
    buf: std::vec::IntoIter<(Vec<u8>, Vec<u8>)>,
    filter: Option<&'a Expr>,
}

impl Iterator for ChunkScan<'_> {
    type Item = SqlResult<Row>;

    fn next(&mut self) -> Option<SqlResult<Row>> {
        loop {
            if let Some((_, v)) = self.buf.next() {
                let row = match rowcodec::decode_row(self.table, &v) {
                    Ok(r) => r,
                    Err(e) => return Some(Err(e)),
                };
                if let Some(f) = self.filter {
                    match f.eval(&row, &self.env).and_then(truthy) {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(e) => return Some(Err(e)),
                    }
                }
                return Some(Ok(row));
            }
            let start = self.next.take()?;
            if let Err(e) = self.env.ctx.session.check_cancel() {
                return Some(Err(e));
            }
            match self
                .env
                .ctx
                .reader
                .scan_chunk(&start, &self.end, SCAN_CHUNK)
            {
                Ok((rows, resume)) => {
                    self.next = resume;
                    self.buf = rows.into_iter();
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

fn range_scan<'a>(
    table: &'a TableDesc,
    start: Vec<u8>,
    end: Vec<u8>,
    filter: Option<&'a Expr>,
    env: Env<'a>,
) -> RowIter<'a> {
    Box::new(ChunkScan {
        table,
        env,
        next: Some(start),
        end,
        buf: Vec::new().into_iter(),
        filter,
    })
}

/// The primary-key span `[start, end)` a full or range scan reads; None if
/// it reads nothing (a NULL bound).
fn key_span(
    table: &TableDesc,
    span: &ScanSpan,
    env: &Env,
) -> SqlResult<Option<(Vec<u8>, Vec<u8>)>> {
    let pk = table.primary();
    let prefix = rowcodec::index_prefix(table.oid, pk.id);
    let (eq, lower, upper) = match span {
        ScanSpan::Range { eq, lower, upper } => (eq.as_slice(), lower, upper),
        _ => {
            let end = rowcodec::prefix_end(&prefix);
            return Ok(Some((prefix, end)));
        }
    };
    let Some(vals) = key_values(eq, env)? else {
        return Ok(None);
    };
    let mut w = tessera_types::encoding::KeyWriter::from_vec(prefix);
    for (v, (_, desc)) in vals.iter().zip(&pk.columns) {
        rowcodec::encode_key_value(&mut w, v, *desc);
    }
    let eq_prefix = w.into_bytes();
    // Outer None: a NULL bound, nothing matches; inner None: unbounded.
    type Bound = Option<Option<(Vec<u8>, bool)>>;
    let bound = |b: &Option<(Expr, bool)>| -> SqlResult<Bound> {
        match b {
            None => Ok(Some(None)),
            Some((e, inclusive)) => {
                let v = e.eval(&[], env)?;
                if v.is_null() {
                    return Ok(None);
                }
                let mut w = tessera_types::encoding::KeyWriter::from_vec(eq_prefix.clone());
                rowcodec::encode_key_value(&mut w, &v, false);
                Ok(Some(Some((w.into_bytes(), *inclusive))))
            }
        }
    };
    let (Some(lo), Some(hi)) = (bound(lower)?, bound(upper)?) else {
        return Ok(None);
    };
    let start = match lo {
        None => eq_prefix.clone(),
        Some((k, true)) => k,
        Some((k, false)) => rowcodec::prefix_end(&k),
    };
    let end = match hi {
        None => rowcodec::prefix_end(&eq_prefix),
        Some((k, true)) => rowcodec::prefix_end(&k),
        Some((k, false)) => k,
    };
    if !end.is_empty() && start >= end {
        return Ok(None);
    }
    Ok(Some((start, end)))
}

/// The rows of `[start, end)` that pass `filter`, projected by `project`:
/// read and evaluated at the ranges' leaders, in parallel, when the flow
/// can run there, else read in chunks through the gateway.
fn span_rows<'a>(
    table: &'a Arc<TableDesc>,
    start: Vec<u8>,
    end: Vec<u8>,
    filter: Option<&'a Expr>,
    project: Option<&'a [Expr]>,
    env: Env<'a>,
) -> SqlResult<RowIter<'a>> {
    let stage = flow::Stage::Rows(project.map(<[Expr]>::to_vec));
    if let Some(gateway) = flow::Gateway::new(table, (&start, &end), filter, stage, &env)? {
        return Ok(gateway.rows(start, end, env));
    }
    let rows = range_scan(table, start, end, filter, env);
    Ok(match project {
        None => rows,
        Some(exprs) => Box::new(rows.map(move |r| {
            let row = r?;
            exprs.iter().map(|e| e.eval(&row, &env)).collect()
        })),
    })
}

/// The key of `table`'s row whose primary key columns hold `vals`.
fn point_key(table: &TableDesc, vals: &[Value]) -> Vec<u8> {
    let pk = table.primary();
    let prefix = rowcodec::index_prefix(table.oid, pk.id);
    let mut w = tessera_types::encoding::KeyWriter::from_vec(prefix);
    for (v, (_, desc)) in vals.iter().zip(&pk.columns) {
        rowcodec::encode_key_value(&mut w, v, *desc);
    }
    w.as_bytes().to_vec()
}

/// The row of `table` whose primary key `exprs` give, read and locked in
/// one request ([`crate::kv::KvTxn::get_for_update`]), if it passes
/// `filter`; None if there is no such row (nothing is locked then) or it
/// fails the filter (it stays locked: the lock is taken before the row is
/// seen, as CockroachDB's locking reads lock what they find). A row
/// changed after the snapshot stops the statement, which ends as if its
/// locks had found the change (see [`run_data_statement`]).
fn point_row_for_update(
    table: &TableDesc,
    exprs: &[Expr],
    filter: Option<&Expr>,
    nowait: bool,
    env: Env<'_>,
) -> SqlResult<Option<Row>> {
    let Some(vals) = key_values(exprs, &env)? else {
        return Ok(None);
    };
    let session = env.ctx.session;
    let wait = if nowait {
        Some(std::time::Duration::ZERO)
    } else {
        session.vars.lock_timeout()
    };
    let key = point_key(table, &vals);
    let row = match env.ctx.reader.get_for_update(&key, wait)? {
        LockedRead::Row(None) => return Ok(None),
        LockedRead::Row(Some(bytes)) => rowcodec::decode_row(table, &bytes)?,
        LockedRead::Changed(conflict) => {
            session.txn.row_locks.borrow_mut().changed = Some(conflict.clone());
            return Err(conflict);
        }
    };
    match filter {
        Some(f) if !truthy(f.eval(&row, &env)?)? => Ok(None),
        _ => Ok(Some(row)),
    }
}

/// The rows an UPDATE or DELETE changes, from the scan of its target. In a
/// transaction that locks the rows its statements change (a block or a
/// batch; see [`run_data_statement`]), a row found by its whole primary
/// key is read and locked in one request, which spares the lock's own
/// round trip when the statement ends (CockroachDB reads the rows an
/// UPDATE changes with a locking read too).
pub fn target_rows(scan: &Plan, env: Env<'_>) -> SqlResult<Vec<Row>> {
    let txn = &env.ctx.session.txn;
    match scan {
        Plan::Scan {
            table,
            span: ScanSpan::Point(exprs),
            filter,
            locking: None,
            ..
        } if txn.in_block || txn.batch => {
            let row = point_row_for_update(table, exprs, filter.as_ref(), false, env)?;
            Ok(row.into_iter().collect())
        }
        _ => run(scan, env)?.collect(),
    }
}

fn scan<'a>(
    table: &'a Arc<TableDesc>,
    span: &'a ScanSpan,
    filter: Option<&'a Expr>,
    env: Env<'a>,
) -> SqlResult<RowIter<'a>> {
    match span {
        ScanSpan::Full | ScanSpan::Range { .. } => match key_span(table, span, &env)? {
            Some((start, end)) => span_rows(table, start, end, filter, None, env),
            None => Ok(Box::new(std::iter::empty())),
        },
        ScanSpan::Point(exprs) => {
            let Some(vals) = key_values(exprs, &env)? else {
                return Ok(Box::new(std::iter::empty()));
            };
            let Some(bytes) = env.ctx.reader.get(&point_key(table, &vals))? else {
                return Ok(Box::new(std::iter::empty()));
            };
            let row = rowcodec::decode_row(table, &bytes)?;
            if let Some(f) = filter {
                if !truthy(f.eval(&row, &env)?)? {
                    return Ok(Box::new(std::iter::empty()));
                }
            }
            Ok(Box::new(std::iter::once(Ok(row))))
        }
        ScanSpan::Index { index, eq } => {
            let ix = &table.indexes[*index];
            let Some(vals) = key_values(eq, &env)? else {
                return Ok(Box::new(std::iter::empty()));
            };
            let start = rowcodec::index_key_prefix(table, ix, &vals);
            let end = rowcodec::prefix_end(&start);
            let entries = env.ctx.reader.scan_chunk(&start, &end, 0)?.0;
            let mut rows = Vec::new();
            for (_, pk_key) in entries {
                if let Some(bytes) = env.ctx.reader.get(&pk_key)? {
                    let row = rowcodec::decode_row(table, &bytes)?;
                    if let Some(f) = filter {
                        if !truthy(f.eval(&row, &env)?)? {
                            continue;
                        }
                    }
                    rows.push(Ok(row));
                }
            }
            Ok(Box::new(rows.into_iter()))
        }
    }
}

/// The running state of one aggregate over one group.
#[derive(Default)]
pub(crate) struct AggState {
    pub(crate) count: i64,
    pub(crate) sum: Option<Value>,
    pub(crate) best: Option<Value>,
    pub(crate) bool_acc: Option<bool>,
    pub(crate) text: Option<String>,
    pub(crate) items: Vec<Value>,
    pub(crate) seen: HashSet<Value>,
}

impl AggState {
    /// Adds the partial state of other rows of the group (count, sum, min,
    /// max, avg, bool_and and bool_or without DISTINCT: see `flow`).
    pub(crate) fn merge(&mut self, call: &AggCall, other: AggState) -> SqlResult<()> {
        self.count += other.count;
        match call.func {
            AggFunc::Count | AggFunc::CountStar => {}
            AggFunc::Sum | AggFunc::Avg => {
                if let Some(v) = other.sum {
                    self.add_to_sum(call, v)?;
                }
            }
            AggFunc::Min | AggFunc::Max => {
                if let Some(v) = other.best {
                    self.keep_best(call, v);
                }
            }
            AggFunc::BoolAnd | AggFunc::BoolOr => {
                if let Some(b) = other.bool_acc {
                    self.combine_bool(call, b);
                }
            }
            AggFunc::StringAgg | AggFunc::ArrayAgg => {
                return Err(SqlError::internal(format!(
                    "{:?} has no partial states",
                    call.func
                )))
            }
        }
        Ok(())
    }

    fn add_to_sum(&mut self, call: &AggCall, v: Value) -> SqlResult<()> {
        let acc_ty = match call.arg_ty {
            t if t.is_integer() => DataType::Numeric(None),
            DataType::Float4 | DataType::Float8 => DataType::Float8,
            _ => DataType::Numeric(None),
        };
        self.sum = Some(match self.sum.take() {
            None => match acc_ty {
                DataType::Float8 => Value::Float(v.as_f64()?),
                _ => Value::Numeric(v.as_decimal()?),
            },
            Some(acc) => crate::expr::arith(crate::expr::ArithOp::Add, acc, v, acc_ty)?,
        });
        Ok(())
    }

    fn keep_best(&mut self, call: &AggCall, v: Value) {
        let better = match &self.best {
            None => true,
            Some(b) => {
                let o = compare(&v, b);
                if call.func == AggFunc::Min {
                    o == std::cmp::Ordering::Less
                } else {
                    o == std::cmp::Ordering::Greater
                }
            }
        };
        if better {
            self.best = Some(v);
        }
    }

    fn combine_bool(&mut self, call: &AggCall, b: bool) {
        self.bool_acc = Some(match self.bool_acc {
            None => b,
            Some(acc) if call.func == AggFunc::BoolAnd => acc && b,
            Some(acc) => acc || b,
        });
    }
}

fn agg_update(call: &AggCall, st: &mut AggState, row: &[Value], env: &Env) -> SqlResult<()> {
    if let Some(f) = &call.filter {
        if !truthy(f.eval(row, env)?)? {
            return Ok(());
        }
    }
    if call.func == AggFunc::CountStar {
        st.count += 1;
        return Ok(());
    }
    let v = call
        .arg
        .as_ref()
        .expect("aggregate argument")
        .eval(row, env)?;
    if v.is_null() && call.func != AggFunc::ArrayAgg {
        return Ok(());
    }
    if call.distinct && !st.seen.insert(v.clone()) {
        return Ok(());
    }
    st.count += 1;
    match call.func {
        AggFunc::Count | AggFunc::CountStar => {}
        AggFunc::Sum | AggFunc::Avg => st.add_to_sum(call, v)?,
        AggFunc::Min | AggFunc::Max => st.keep_best(call, v),
        AggFunc::BoolAnd | AggFunc::BoolOr => {
            let b = v.as_bool()?.unwrap_or(false);
            st.combine_bool(call, b);
        }
        AggFunc::StringAgg => {
            let sep = match &call.extra {
                Some(e) => e
                    .eval(row, env)?
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_default(),
                None => String::new(),
            };
            let s = v.to_pg_text(call.arg_ty).unwrap_or_default();
            st.text = Some(match st.text.take() {
                None => s,
                Some(t) => t + &sep + &s,
            });
        }
        AggFunc::ArrayAgg => st.items.push(v),
    }
    Ok(())
}

fn agg_final(call: &AggCall, st: AggState) -> SqlResult<Value> {
    Ok(match call.func {
        AggFunc::Count | AggFunc::CountStar => Value::Int(st.count),
        AggFunc::Sum => match st.sum {
            None => Value::Null,
            Some(v) => crate::types::cast(v.clone(), value_type(&v), call.ty, false)?,
        },
        AggFunc::Avg => match st.sum {
            None => Value::Null,
            Some(Value::Float(f)) => Value::Float(f / st.count as f64),
            Some(v) => Value::Numeric(crate::expr::numeric_div(
                v.as_decimal()?,
                rust_decimal::Decimal::from(st.count),
            )?),
        },
        AggFunc::Min | AggFunc::Max => st.best.unwrap_or(Value::Null),
        AggFunc::BoolAnd | AggFunc::BoolOr => st.bool_acc.map(Value::Bool).unwrap_or(Value::Null),
        AggFunc::StringAgg => st.text.map(Value::Text).unwrap_or(Value::Null),
        AggFunc::ArrayAgg => {
            if st.items.is_empty() {
                Value::Null
            } else {
                Value::Array(st.items)
            }
        }
    })
}

fn value_type(v: &Value) -> DataType {
    match v {
        Value::Float(_) => DataType::Float8,
        Value::Int(_) => DataType::Int8,
        _ => DataType::Numeric(None),
    }
}

fn aggregate(input: &Plan, groups: &[Expr], aggs: &[AggCall], env: Env) -> SqlResult<Vec<Row>> {
    // Over a scan without row locks, the ranges' leaders compute partial
    // aggregates if they can (see `flow`).
    if let Some(scan) = flow::span_scan(input).filter(|s| !s.locks_rows) {
        if let Some((start, end)) = key_span(scan.table, scan.span, &env)? {
            let stage = flow::Stage::Partial {
                groups: groups.to_vec(),
                aggs: aggs.to_vec(),
            };
            let span = (start.as_slice(), end.as_slice());
            if let Some(gateway) = flow::Gateway::new(scan.table, span, scan.filter, stage, &env)? {
                let merged = gateway.aggregate(start, end, aggs, &env)?;
                return finish_aggregates(merged, groups, aggs);
            }
        }
    }
    let mut states = Groups::default();
    let mut n = 0usize;
    for r in run(input, env)? {
        states.update(groups, aggs, &r?, &env)?;
        n += 1;
        if n.is_multiple_of(4096) {
            env.ctx.session.check_cancel()?;
        }
    }
    finish_aggregates(states, groups, aggs)
}

/// Aggregate states per group, in the order the groups were first seen.
#[derive(Default)]
pub(crate) struct Groups {
    index: HashMap<Vec<Value>, usize>,
    pub(crate) states: Vec<(Vec<Value>, Vec<AggState>)>,
}

impl Groups {
    /// The states of `key`'s group (new ones for a group not seen yet).
    pub(crate) fn states_of(&mut self, key: Vec<Value>, aggs: usize) -> &mut [AggState] {
        let slot = match self.index.get(&key) {
            Some(i) => *i,
            None => {
                let fresh = (0..aggs).map(|_| AggState::default()).collect();
                self.states.push((key.clone(), fresh));
                self.index.insert(key, self.states.len() - 1);
                self.states.len() - 1
            }
        };
        &mut self.states[slot].1
    }

    /// Adds a row to its group.
    pub(crate) fn update(
        &mut self,
        groups: &[Expr],
        aggs: &[AggCall],
        row: &[Value],
        env: &Env,
    ) -> SqlResult<()> {
        let key = groups
            .iter()
            .map(|g| g.eval(row, env))
            .collect::<SqlResult<Vec<_>>>()?;
        for (call, st) in aggs.iter().zip(self.states_of(key, aggs.len())) {
            agg_update(call, st, row, env)?;
        }
        Ok(())
    }
}

/// The aggregates' results per group (one row for an empty input without
/// GROUP BY).
fn finish_aggregates(
    groups_seen: Groups,
    groups: &[Expr],
    aggs: &[AggCall],
) -> SqlResult<Vec<Row>> {
    let mut states = groups_seen.states;
    if states.is_empty() && groups.is_empty() {
        states.push((vec![], aggs.iter().map(|_| AggState::default()).collect()));
    }
    let mut out = Vec::with_capacity(states.len());
    for (key, sts) in states {
        let mut row = key;
        for (call, st) in aggs.iter().zip(sts) {
            row.push(agg_final(call, st)?);
        }
        out.push(row);
    }
    Ok(out)
}

fn join(
    left: &Plan,
    right: &Plan,
    kind: JoinKind,
    equi: &[(Expr, Expr)],
    on: Option<&Expr>,
    width: usize,
    env: Env,
) -> SqlResult<Vec<Row>> {
    let right_rows: Vec<Row> = run(right, env)?.collect::<SqlResult<_>>()?;
    let rw = right.cols().len();
    let lw = width - rw;
    let mut matched = vec![false; right_rows.len()];
    let mut out = Vec::new();
    let table: Option<HashMap<Vec<Value>, Vec<usize>>> = if equi.is_empty() {
        None
    } else {
        let mut m: HashMap<Vec<Value>, Vec<usize>> = HashMap::new();
        for (i, r) in right_rows.iter().enumerate() {
            let k = equi
                .iter()
                .map(|(_, re)| re.eval(r, &env))
                .collect::<SqlResult<Vec<_>>>()?;
            if k.iter().any(Value::is_null) {
                continue;
            }
            m.entry(k).or_default().push(i);
        }
        Some(m)
    };
    let all: Vec<usize> = (0..right_rows.len()).collect();
    let mut n = 0usize;
    for l in run(left, env)? {
        let l = l?;
        let candidates: &[usize] = match &table {
            None => &all,
            Some(m) => {
                let k = equi
                    .iter()
                    .map(|(le, _)| le.eval(&l, &env))
                    .collect::<SqlResult<Vec<_>>>()?;
                if k.iter().any(Value::is_null) {
                    &[]
                } else {
                    m.get(&k).map(Vec::as_slice).unwrap_or(&[])
                }
            }
        };
        let mut any = false;
        for &i in candidates {
            let mut row = l.clone();
            row.extend(right_rows[i].iter().cloned());
            if let Some(on) = on {
                if !truthy(on.eval(&row, &env)?)? {
                    continue;
                }
            }
            any = true;
            matched[i] = true;
            out.push(row);
            n += 1;
            if n.is_multiple_of(4096) {
                env.ctx.session.check_cancel()?;
            }
        }
        if !any && matches!(kind, JoinKind::Left | JoinKind::Full) {
            let mut row = l;
            row.extend(std::iter::repeat_n(Value::Null, rw));
            out.push(row);
        }
    }
    if matches!(kind, JoinKind::Right | JoinKind::Full) {
        for (i, r) in right_rows.into_iter().enumerate() {
            if !matched[i] {
                let mut row = vec![Value::Null; lw];
                row.extend(r);
                out.push(row);
            }
        }
    }
    Ok(out)
}

fn set_op(op: SetOpKind, all: bool, left: Vec<Row>, right: Vec<Row>) -> Vec<Row> {
    match (op, all) {
        (SetOpKind::Union, true) => left.into_iter().chain(right).collect(),
        (SetOpKind::Union, false) => {
            let mut seen = HashSet::new();
            left.into_iter()
                .chain(right)
                .filter(|r| seen.insert(r.clone()))
                .collect()
        }
        (SetOpKind::Intersect | SetOpKind::Except, _) => {
            let mut counts: HashMap<Row, usize> = HashMap::new();
            for r in right {
                *counts.entry(r).or_default() += 1;
            }
            let mut out = Vec::new();
            let mut emitted = HashSet::new();
            for r in left {
                let c = counts.get_mut(&r);
                let in_right = c.as_ref().is_some_and(|c| **c > 0);
                match (op, all) {
                    (SetOpKind::Intersect, true) => {
                        if in_right {
                            *c.expect("present") -= 1;
                            out.push(r);
                        }
                    }
                    (SetOpKind::Intersect, false) => {
                        if in_right && emitted.insert(r.clone()) {
                            out.push(r);
                        }
                    }
                    (SetOpKind::Except, true) => {
                        if in_right {
                            *c.expect("present") -= 1;
                        } else {
                            out.push(r);
                        }
                    }
                    _ => {
                        if !in_right && emitted.insert(r.clone()) {
                            out.push(r);
                        }
                    }
                }
            }
            out
        }
    }
}

/// Evaluates a subquery expression.
pub fn eval_subquery(
    id: usize,
    plan: &Plan,
    kind: &SubqueryKind,
    correlated: bool,
    row: &[Value],
    env: &Env,
) -> SqlResult<Value> {
    let rows: Arc<Vec<Row>> = if !correlated {
        let cached = env.ctx.subquery_cache.borrow().get(&id).cloned();
        if let Some(r) = cached {
            r
        } else {
            let need = matches!(kind, SubqueryKind::Exists).then_some(1);
            let r = Arc::new(collect_subquery(plan, kind, need, row, env)?);
            env.ctx.subquery_cache.borrow_mut().insert(id, r.clone());
            r
        }
    } else {
        let need = match kind {
            SubqueryKind::Exists => Some(1),
            SubqueryKind::Scalar => Some(2),
            _ => None,
        };
        Arc::new(collect_subquery(plan, kind, need, row, env)?)
    };
    match kind {
        SubqueryKind::Exists => Ok(Value::Bool(!rows.is_empty())),
        SubqueryKind::Array => Ok(Value::Array(rows.iter().map(|r| r[0].clone()).collect())),
        SubqueryKind::Scalar => match rows.len() {
            0 => Ok(Value::Null),
            1 => Ok(rows[0][0].clone()),
            _ => Err(SqlError::new(
                code::CARDINALITY_VIOLATION,
                "more than one row returned by a subquery used as an expression",
            )),
        },
        SubqueryKind::Any(x, op) | SubqueryKind::All(x, op) => {
            let any = matches!(kind, SubqueryKind::Any(..));
            let v = x.eval(row, env)?;
            if rows.is_empty() {
                return Ok(Value::Bool(!any));
            }
            if v.is_null() {
                return Ok(Value::Null);
            }
            let mut saw_null = false;
            for r in rows.iter() {
                let w = &r[0];
                if w.is_null() {
                    saw_null = true;
                    continue;
                }
                let hit = cmp_holds(*op, &v, w);
                if any && hit {
                    return Ok(Value::Bool(true));
                }
                if !any && !hit {
                    return Ok(Value::Bool(false));
                }
            }
            Ok(if saw_null {
                Value::Null
            } else {
                Value::Bool(!any)
            })
        }
    }
}

fn cmp_holds(op: CmpOp, a: &Value, b: &Value) -> bool {
    let o = compare(a, b);
    match op {
        CmpOp::Eq => o.is_eq(),
        CmpOp::NotEq => !o.is_eq(),
        CmpOp::Lt => o.is_lt(),
        CmpOp::LtEq => o.is_le(),
        CmpOp::Gt => o.is_gt(),
        CmpOp::GtEq => o.is_ge(),
    }
}

fn collect_subquery(
    plan: &Plan,
    _kind: &SubqueryKind,
    need: Option<usize>,
    row: &[Value],
    env: &Env,
) -> SqlResult<Vec<Row>> {
    let outer = Outer {
        row,
        parent: env.outer,
    };
    let sub_env = Env {
        ctx: env.ctx,
        outer: Some(&outer),
    };
    let it = run(plan, sub_env)?;
    match need {
        Some(n) => it.take(n).collect(),
        None => it.collect(),
    }
}

// ---------------------------------------------------------------------------
// Statements
// ---------------------------------------------------------------------------

/// Columns of a plan as the client sees them.
pub fn plan_columns(plan: &Plan) -> Vec<Column> {
    plan.cols()
        .iter()
        .map(|c| Column {
            name: c.name.clone(),
            ty: c.ty,
            table_oid: c.table_oid,
            column_id: c.column_id,
        })
        .collect()
}

/// Runs a query plan to completion.
pub fn query_rows(
    session: &Session,
    snap: Arc<Snapshot>,
    plan: &Plan,
    params: &[Value],
) -> SqlResult<Vec<Row>> {
    let reader = Reader {
        kv: session.txn.kv_txn(session.engine.kv.as_ref())?,
        buffer: &session.txn.buffer,
    };
    let ctx = Ctx::new(session, snap, reader, params);
    let env = Env {
        ctx: &ctx,
        outer: None,
    };
    let rows = run(plan, env)?.collect::<SqlResult<Vec<_>>>()?;
    let seq = ctx.seq_values.into_inner();
    let sets = ctx.deferred_sets.into_inner();
    // The context borrowed the session immutably; hand back what changed.
    session.pending.borrow_mut().seq_values = Some(seq);
    session.pending.borrow_mut().sets.extend(sets);
    Ok(rows)
}

/// Evaluates expressions against rows in a statement context (DML).
pub fn with_ctx<T>(
    session: &Session,
    snap: Arc<Snapshot>,
    params: &[Value],
    f: impl FnOnce(&Env) -> SqlResult<T>,
) -> SqlResult<T> {
    let reader = Reader {
        kv: session.txn.kv_txn(session.engine.kv.as_ref())?,
        buffer: &session.txn.buffer,
    };
    let ctx = Ctx::new(session, snap, reader, params);
    let env = Env {
        ctx: &ctx,
        outer: None,
    };
    let r = f(&env)?;
    let seq = ctx.seq_values.into_inner();
    session.pending.borrow_mut().seq_values = Some(seq);
    Ok(r)
}

/// Describe: parameter types and result columns without executing.
pub fn describe(
    session: &mut Session,
    stmt: &Statement,
    param_types: &[Option<DataType>],
) -> SqlResult<Described> {
    let snap = session.engine.catalog.snapshot()?;
    let db = session.vars.database().to_string();
    let params: Vec<DataType> = param_types
        .iter()
        .map(|t| t.unwrap_or(DataType::Unknown))
        .collect();
    let mut binder = Binder::new(&snap, &db, params);
    let columns = crate::statements::describe_statement(session, &mut binder, &stmt.inner)?;
    let mut params = binder.param_types();
    // Make sure every $n the client declared is reported.
    if params.len() < param_types.len() {
        params.extend(
            param_types[params.len()..]
                .iter()
                .map(|t| t.unwrap_or(DataType::Text)),
        );
    }
    Ok(Described { params, columns })
}

/// Executes a statement.
pub fn execute(
    session: &mut Session,
    stmt: &Statement,
    params: &[Value],
) -> SqlResult<QueryResult> {
    session.vars.start_statement();
    if session.txn.failed && !crate::statements::ends_transaction(&stmt.inner) {
        return Err(SqlError::new(
            code::IN_FAILED_TRANSACTION,
            "current transaction is aborted, commands ignored until end of transaction block",
        ));
    }
    let implicit = !session.txn.in_block;
    if implicit && (!session.txn.batch || session.txn_start.is_none()) {
        session.txn_start = Some(Utc::now());
    }
    let result = if touches_data(&stmt.inner) {
        run_data_statement(session, stmt, params)
    } else {
        let result = crate::statements::execute_statement(session, &stmt.inner, &stmt.plan, params);
        session.absorb_pending();
        result
    };
    match result {
        Ok(r) => {
            if implicit && !session.txn.in_block && !session.txn.batch {
                if let Err(e) = session.txn.flush(session.engine.kv.as_ref()) {
                    session.txn.abort();
                    return Err(e);
                }
                session.txn_start = None;
            }
            Ok(r)
        }
        Err(e) => {
            fail_statement(session);
            Err(e)
        }
    }
}

/// After a failed statement: a block is marked failed (only ROLLBACK, or
/// ROLLBACK TO a savepoint, is accepted) and, without savepoints to return
/// to, gives up its writes and locks at once, as PostgreSQL releases an
/// aborted transaction's locks; an implicit transaction is rolled back.
fn fail_statement(session: &mut Session) {
    if session.txn.in_block {
        session.txn.failed = true;
        if session.txn.savepoints.is_empty() {
            session.txn.abort();
        }
    } else {
        session.txn.abort();
        session.txn_start = None;
    }
}

/// Whether a statement reads or writes table data: it runs on the
/// statement's snapshot, locks the rows it writes, and may run again.
fn touches_data(stmt: &crate::parser::Stmt) -> bool {
    matches!(
        stmt,
        crate::parser::Stmt::Sql(s) if matches!(
            **s,
            ast::Statement::Query(_)
                | ast::Statement::Insert(_)
                | ast::Statement::Update(_)
                | ast::Statement::Delete(_)
        )
    )
}

/// Whether a statement is a query that locks no rows (SELECT without FOR
/// UPDATE / FOR SHARE): on its own, it may read at a recent snapshot.
fn only_reads(stmt: &crate::parser::Stmt) -> bool {
    matches!(
        stmt,
        crate::parser::Stmt::Sql(s) if matches!(&**s, ast::Statement::Query(q) if q.locks.is_empty())
    )
}

/// How often a statement runs again after losing a conflict it can recover
/// from (see [`run_data_statement`]).
const STATEMENT_ATTEMPTS: u32 = 1000;

/// Runs a statement that touches data.
///
/// In a transaction block (or a multi-statement message), the rows it
/// writes or reads FOR UPDATE are locked when it ends, as of its snapshot.
/// Under READ COMMITTED each run reads a fresh snapshot, and if a row it
/// locks changed after that snapshot, its writes are undone and it runs
/// again on a newer one: it acts on the latest committed version of every
/// row it changes, so concurrent increments neither fail nor get lost.
/// Under REPEATABLE READ such a change is the transaction's serialization
/// failure (40001).
///
/// A single statement outside a block commits optimistically and, if it
/// loses a conflict, runs again from scratch: nothing of it was seen yet.
/// A single SELECT that locks no rows first reads at a recent snapshot
/// ([`crate::kv::Kv::begin_recent`]), and runs again on a fresh one if that
/// was not the latest.
fn run_data_statement(
    session: &mut Session,
    stmt: &Statement,
    params: &[Value],
) -> SqlResult<QueryResult> {
    let single = !session.txn.in_block && !session.txn.batch;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mark = session.txn.mark();
        let read_committed = session.vars.read_committed();
        if !single && read_committed {
            if let Some(txn) = session.txn.kv_txn_mut() {
                txn.refresh_snapshot()?;
            }
        }
        session.txn.recent_snapshot = single && attempt == 1 && only_reads(&stmt.inner);
        let result = crate::statements::execute_statement(session, &stmt.inner, &stmt.plan, params);
        session.txn.recent_snapshot = false;
        session.absorb_pending();
        let row_locks = session.txn.row_locks.take();
        let fresh = session.txn.fresh_keys.take();
        // Ok(Err(change)): a row it locks changed after its snapshot.
        let result = match row_locks.changed {
            Some(changed) => Ok(Err(changed)),
            None => result.and_then(|r| {
                let mut keys = row_locks.keys;
                if !single {
                    keys.extend(
                        session
                            .txn
                            .staged_since(mark)
                            .into_iter()
                            .filter(|key| !fresh.contains(key)),
                    );
                }
                let changed = lock_rows(session, keys, row_locks.nowait)?;
                if changed.is_none() {
                    // Parent keys it removed, now that their rows are locked.
                    crate::fk::check_removed_keys(session)?;
                }
                Ok(changed.map_or(Ok(r), Err))
            }),
        };
        session.txn.removed_keys.take();
        let (outcome, recoverable) = match result {
            Ok(Ok(r)) if single => match session.txn.flush(session.engine.kv.as_ref()) {
                Ok(()) => (Ok(r), false),
                Err(e) => {
                    let lost = e.code == code::SERIALIZATION_FAILURE;
                    (Err(e), lost)
                }
            },
            Ok(Ok(r)) => (Ok(r), false),
            Ok(Err(changed)) => (Err(changed), single || read_committed),
            Err(e) if e.retry_afresh && single => {
                // Nothing of it was seen or written: run it again at once,
                // on a fresh snapshot.
                session.txn.abort();
                continue;
            }
            Err(e) => (Err(e), false),
        };
        match outcome {
            Err(_) if recoverable && attempt < STATEMENT_ATTEMPTS => {
                if single {
                    session.txn.abort();
                    // Spread the retries of clients that collided.
                    let jitter = u64::from(Utc::now().timestamp_subsec_nanos() % 1000)
                        * u64::from(attempt.min(10));
                    std::thread::sleep(std::time::Duration::from_micros(jitter));
                } else {
                    session.txn.undo_to(mark);
                }
                // A cancel or statement_timeout ends the retries.
                session.check_cancel()?;
            }
            other => return other,
        }
    }
}

/// Locks `keys` in the session's transaction; returns the conflict if one
/// changed after the snapshot.
fn lock_rows(
    session: &mut Session,
    keys: Vec<Vec<u8>>,
    nowait: bool,
) -> SqlResult<Option<SqlError>> {
    if keys.is_empty() {
        return Ok(None);
    }
    let wait = if nowait {
        Some(std::time::Duration::ZERO)
    } else {
        session.vars.lock_timeout()
    };
    let kv = session.engine.kv.clone();
    session.txn.kv_txn(kv.as_ref())?;
    let txn = session
        .txn
        .kv_txn_mut()
        .ok_or_else(|| SqlError::internal("the transaction did not start"))?;
    Ok(match txn.lock(keys, wait)? {
        crate::kv::Locked::All => None,
        crate::kv::Locked::Changed(conflict) => Some(conflict),
    })
}

/// COPY FROM STDIN data.
pub fn copy_in(
    session: &mut Session,
    target: &crate::session::CopyTarget,
    data: &[u8],
) -> SqlResult<QueryResult> {
    let implicit = !session.txn.in_block;
    if session.txn.failed {
        return Err(SqlError::new(
            code::IN_FAILED_TRANSACTION,
            "current transaction is aborted, commands ignored until end of transaction block",
        ));
    }
    let mark = session.txn.mark();
    let r = crate::dml::copy_rows(session, target, data);
    session.absorb_pending();
    // The parents of the new rows (foreign keys) are locked, and in a
    // block the new rows too, like any statement's writes (a change found
    // now is a conflict: COPY's input cannot be read again).
    let parents = session.txn.row_locks.take().keys;
    let r = r.and_then(|n| {
        let mut keys = parents;
        if !implicit || session.txn.batch {
            keys.extend(session.txn.staged_since(mark));
        }
        match lock_rows(session, keys, false)? {
            None => Ok(n),
            Some(conflict) => Err(conflict),
        }
    });
    match r {
        Ok(n) => {
            if implicit && !session.txn.batch {
                if let Err(e) = session.txn.flush(session.engine.kv.as_ref()) {
                    session.txn.abort();
                    return Err(e);
                }
            }
            Ok(QueryResult::Command {
                tag: format!("COPY {n}"),
            })
        }
        Err(e) => {
            fail_statement(session);
            Err(e)
        }
    }
}

/// Rows for a SHOW-like result.
pub fn text_rows(columns: &[&str], rows: Vec<Vec<String>>, tag: &str) -> QueryResult {
    QueryResult::Rows {
        columns: columns
            .iter()
            .map(|c| Column::new(*c, DataType::Text))
            .collect(),
        rows: rows
            .into_iter()
            .map(|r| r.into_iter().map(Value::Text).collect())
            .collect(),
        tag: tag.to_string(),
    }
}

/// The statement name for the tag of a plain query.
pub fn select_tag(n: usize) -> String {
    format!("SELECT {n}")
}

/// Checks a parsed statement is one we accept without running it (for parse).
pub fn is_query(stmt: &ast::Statement) -> bool {
    matches!(stmt, ast::Statement::Query(_))
}
