//! Plans are data: a tree of plan nodes over bound expressions, printed as a
//! tree by EXPLAIN and rewritten by the optimizer's rules.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::catalog::TableDesc;
use crate::error::{code, SqlError, SqlResult};
use crate::expr::Expr;
use crate::types::DataType;

/// A column a plan node produces.
#[derive(Debug, Clone)]
pub struct OutCol {
    pub name: String,
    pub ty: DataType,
    /// The table name or alias that qualifies it.
    pub qualifier: Option<String>,
    pub table_oid: u32,
    pub column_id: i16,
    /// Not expanded by `*` (the hidden rowid, the right side of USING).
    pub hidden: bool,
}

impl OutCol {
    /// A computed column.
    pub fn new(name: impl Into<String>, ty: DataType) -> Self {
        Self {
            name: name.into(),
            ty,
            qualifier: None,
            table_oid: 0,
            column_id: 0,
            hidden: false,
        }
    }
}

/// Which keys a table scan reads.
#[derive(Debug, Clone)]
pub enum ScanSpan {
    /// Every row.
    Full,
    /// Primary key columns equal to these values: one point read.
    Point(Vec<Expr>),
    /// A prefix of the primary key equal to `eq`, then optional bounds on the
    /// next key column: (value, inclusive).
    Range {
        eq: Vec<Expr>,
        lower: Option<(Expr, bool)>,
        upper: Option<(Expr, bool)>,
    },
    /// A secondary index (position in `TableDesc::indexes`) with a prefix of
    /// its columns equal to `eq`.
    Index { index: usize, eq: Vec<Expr> },
}

/// Join kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
}

/// Set operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOpKind {
    Union,
    Intersect,
    Except,
}

/// Aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AggFunc {
    CountStar,
    Count,
    Sum,
    Avg,
    Min,
    Max,
    BoolAnd,
    BoolOr,
    StringAgg,
    ArrayAgg,
}

/// One aggregate of an Aggregate node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AggCall {
    pub func: AggFunc,
    pub arg: Option<Expr>,
    pub arg_ty: DataType,
    /// string_agg's separator.
    pub extra: Option<Expr>,
    pub distinct: bool,
    pub filter: Option<Expr>,
    pub ty: DataType,
}

/// How a scan's rows are locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowLock {
    /// NOWAIT: fail at once (55P03) instead of waiting for another
    /// transaction's lock.
    pub nowait: bool,
}

/// A sort key.
#[derive(Debug, Clone)]
pub struct SortKey {
    pub expr: Expr,
    pub desc: bool,
    pub nulls_first: bool,
}

/// A plan node.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Rows of a table, read by span, with a filter applied as they stream.
    Scan {
        table: Arc<TableDesc>,
        span: ScanSpan,
        filter: Option<Expr>,
        cols: Vec<OutCol>,
        /// SELECT ... FOR UPDATE / FOR SHARE: the rows returned are locked
        /// until the transaction ends.
        locking: Option<RowLock>,
    },
    /// A pg_catalog or information_schema table, computed from the catalog.
    Virtual {
        name: String,
        cols: Vec<OutCol>,
    },
    /// VALUES lists (and SELECT without FROM: one empty row).
    Values {
        rows: Vec<Vec<Expr>>,
        cols: Vec<OutCol>,
    },
    /// generate_series(start, stop[, step]).
    Series {
        start: Expr,
        stop: Expr,
        step: Option<Expr>,
        cols: Vec<OutCol>,
    },
    Filter {
        input: Box<Plan>,
        predicate: Expr,
    },
    Project {
        input: Box<Plan>,
        exprs: Vec<Expr>,
        cols: Vec<OutCol>,
    },
    Aggregate {
        input: Box<Plan>,
        groups: Vec<Expr>,
        aggs: Vec<AggCall>,
        cols: Vec<OutCol>,
    },
    /// A hash join on `equi` pairs when it has them, else a nested loop; `on`
    /// is the residual condition over the joined row.
    Join {
        left: Box<Plan>,
        right: Box<Plan>,
        kind: JoinKind,
        equi: Vec<(Expr, Expr)>,
        on: Option<Expr>,
        cols: Vec<OutCol>,
    },
    Sort {
        input: Box<Plan>,
        keys: Vec<SortKey>,
    },
    Limit {
        input: Box<Plan>,
        limit: Option<Expr>,
        offset: Option<Expr>,
    },
    Distinct {
        input: Box<Plan>,
    },
    SetOp {
        op: SetOpKind,
        all: bool,
        left: Box<Plan>,
        right: Box<Plan>,
        cols: Vec<OutCol>,
    },
}

impl Plan {
    /// Marks the table scans under this query node for row locking
    /// (`clause` is "FOR UPDATE" or "FOR SHARE", for errors): every scan, or
    /// with `of` the scans of those tables (by name or alias). As in
    /// PostgreSQL, a lock clause cannot apply to grouped, distinct or
    /// combined rows, which have no single row to lock.
    pub fn lock_rows(&mut self, clause: &str, of: &[String], lock: RowLock) -> SqlResult<()> {
        let refuse = |what: &str| {
            Err(SqlError::new(
                code::FEATURE_NOT_SUPPORTED,
                format!("{clause} is not allowed with {what}"),
            ))
        };
        match self {
            Plan::Scan {
                table,
                cols,
                locking,
                ..
            } => {
                let alias = cols.first().and_then(|c| c.qualifier.clone());
                if of.is_empty()
                    || of.contains(&table.name)
                    || alias.is_some_and(|a| of.contains(&a))
                {
                    *locking = Some(lock);
                }
                Ok(())
            }
            Plan::Filter { input, .. }
            | Plan::Project { input, .. }
            | Plan::Sort { input, .. }
            | Plan::Limit { input, .. } => input.lock_rows(clause, of, lock),
            Plan::Join { left, right, .. } => {
                left.lock_rows(clause, of, lock)?;
                right.lock_rows(clause, of, lock)
            }
            Plan::Aggregate { .. } => refuse("aggregate functions or GROUP BY"),
            Plan::Distinct { .. } => refuse("DISTINCT clause"),
            Plan::SetOp { .. } => refuse("UNION/INTERSECT/EXCEPT"),
            Plan::Virtual { .. } | Plan::Values { .. } | Plan::Series { .. } => Ok(()),
        }
    }

    /// The columns the node produces.
    pub fn cols(&self) -> &[OutCol] {
        match self {
            Plan::Scan { cols, .. }
            | Plan::Virtual { cols, .. }
            | Plan::Values { cols, .. }
            | Plan::Series { cols, .. }
            | Plan::Project { cols, .. }
            | Plan::Aggregate { cols, .. }
            | Plan::Join { cols, .. }
            | Plan::SetOp { cols, .. } => cols,
            Plan::Filter { input, .. }
            | Plan::Sort { input, .. }
            | Plan::Limit { input, .. }
            | Plan::Distinct { input } => input.cols(),
        }
    }

    /// `in_flow`: the node is part of its parent's flow (see `flow`).
    fn fmt_tree(&self, f: &mut fmt::Formatter<'_>, depth: usize, in_flow: bool) -> fmt::Result {
        let pad = "  ".repeat(depth);
        let flow = if in_flow {
            None
        } else {
            crate::flow::explain(self)
        };
        // The children of a node whose flow includes them.
        let child_in_flow = flow.is_some() && !matches!(self, Plan::Scan { .. });
        let distributed = |f: &mut fmt::Formatter<'_>| match flow {
            Some(what) => writeln!(f, "{pad}      Distributed: {what} at each range's leader"),
            None => Ok(()),
        };
        let arrow = if depth == 0 { "" } else { "-> " };
        let list = |exprs: &[Expr]| {
            exprs
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Plan::Scan {
                table,
                span,
                filter,
                locking,
                ..
            } => {
                let how = match span {
                    ScanSpan::Full => "Seq Scan".to_string(),
                    ScanSpan::Point(k) => format!("Point Get on {}_pkey ({})", table.name, list(k)),
                    ScanSpan::Range { eq, lower, upper } => {
                        let mut s = format!("Range Scan on {}_pkey", table.name);
                        if !eq.is_empty() {
                            s += &format!(" prefix ({})", list(eq));
                        }
                        if let Some((e, inc)) = lower {
                            s += &format!(" from {}{e}", if *inc { ">=" } else { ">" });
                        }
                        if let Some((e, inc)) = upper {
                            s += &format!(" to {}{e}", if *inc { "<=" } else { "<" });
                        }
                        s
                    }
                    ScanSpan::Index { index, eq } => {
                        format!(
                            "Index Scan using {} ({})",
                            table.indexes[*index].name,
                            list(eq)
                        )
                    }
                };
                writeln!(f, "{pad}{arrow}{how} on {}", table.name)?;
                if locking.is_some() {
                    writeln!(f, "{pad}      Lock Rows")?;
                }
                if let Some(p) = filter {
                    writeln!(f, "{pad}      Filter: {p}")?;
                }
                distributed(f)
            }
            Plan::Virtual { name, .. } => writeln!(f, "{pad}{arrow}Virtual Scan on {name}"),
            Plan::Values { rows, .. } => writeln!(f, "{pad}{arrow}Values ({} rows)", rows.len()),
            Plan::Series { start, stop, .. } => writeln!(
                f,
                "{pad}{arrow}Function Scan on generate_series({start}, {stop})"
            ),
            Plan::Filter { input, predicate } => {
                writeln!(f, "{pad}{arrow}Filter: {predicate}")?;
                input.fmt_tree(f, depth + 1, child_in_flow)
            }
            Plan::Project { input, exprs, .. } => {
                writeln!(f, "{pad}{arrow}Project: {}", list(exprs))?;
                distributed(f)?;
                input.fmt_tree(f, depth + 1, child_in_flow)
            }
            Plan::Aggregate {
                input,
                groups,
                aggs,
                ..
            } => {
                let a: Vec<String> = aggs
                    .iter()
                    .map(|a| format!("{:?}", a.func).to_lowercase())
                    .collect();
                if groups.is_empty() {
                    writeln!(f, "{pad}{arrow}Aggregate: {}", a.join(", "))?;
                } else {
                    writeln!(
                        f,
                        "{pad}{arrow}Hash Aggregate: group by {}; {}",
                        list(groups),
                        a.join(", ")
                    )?;
                }
                distributed(f)?;
                input.fmt_tree(f, depth + 1, child_in_flow)
            }
            Plan::Join {
                left,
                right,
                kind,
                equi,
                on,
                ..
            } => {
                let method = if equi.is_empty() {
                    "Nested Loop"
                } else {
                    "Hash Join"
                };
                write!(f, "{pad}{arrow}{method} ({kind:?})")?;
                if !equi.is_empty() {
                    let conds: Vec<String> =
                        equi.iter().map(|(l, r)| format!("{l} = {r}")).collect();
                    write!(f, " on {}", conds.join(" AND "))?;
                }
                if let Some(on) = on {
                    write!(f, " filter {on}")?;
                }
                writeln!(f)?;
                left.fmt_tree(f, depth + 1, false)?;
                right.fmt_tree(f, depth + 1, false)
            }
            Plan::Sort { input, keys } => {
                let k: Vec<String> = keys
                    .iter()
                    .map(|k| format!("{}{}", k.expr, if k.desc { " DESC" } else { "" }))
                    .collect();
                writeln!(f, "{pad}{arrow}Sort: {}", k.join(", "))?;
                input.fmt_tree(f, depth + 1, child_in_flow)
            }
            Plan::Limit {
                input,
                limit,
                offset,
            } => {
                write!(f, "{pad}{arrow}Limit")?;
                if let Some(l) = limit {
                    write!(f, " {l}")?;
                }
                if let Some(o) = offset {
                    write!(f, " offset {o}")?;
                }
                writeln!(f)?;
                input.fmt_tree(f, depth + 1, child_in_flow)
            }
            Plan::Distinct { input } => {
                writeln!(f, "{pad}{arrow}Distinct")?;
                input.fmt_tree(f, depth + 1, child_in_flow)
            }
            Plan::SetOp {
                op,
                all,
                left,
                right,
                ..
            } => {
                writeln!(f, "{pad}{arrow}{op:?}{}", if *all { " All" } else { "" })?;
                left.fmt_tree(f, depth + 1, false)?;
                right.fmt_tree(f, depth + 1, false)
            }
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_tree(f, 0, false)
    }
}

/// A statement's last plan, for its next run: valid while the schema
/// version, the database and the parameters' types are the same (binding
/// depends on nothing else; parameter values are read when the plan runs).
/// Clones share it, so every execution of a prepared statement binds it
/// once per schema version instead of at every run.
#[derive(Clone, Default)]
pub struct PlanCache(Arc<std::sync::Mutex<Option<CachedPlan>>>);

struct CachedPlan {
    version: u64,
    database: String,
    params: Vec<DataType>,
    plan: Arc<Plan>,
}

impl PlanCache {
    /// The plan kept for `version`, `database` and `params`, or the one
    /// `bind` makes (kept in its place if it binds).
    pub fn get_or_bind(
        &self,
        version: u64,
        database: &str,
        params: Vec<DataType>,
        bind: impl FnOnce(Vec<DataType>) -> SqlResult<Plan>,
    ) -> SqlResult<Arc<Plan>> {
        let kept = self.0.lock().ok().and_then(|kept| {
            kept.as_ref()
                .filter(|k| k.version == version && k.database == database && k.params == params)
                .map(|k| k.plan.clone())
        });
        if let Some(plan) = kept {
            return Ok(plan);
        }
        let plan = Arc::new(bind(params.clone())?);
        if let Ok(mut kept) = self.0.lock() {
            *kept = Some(CachedPlan {
                version,
                database: database.to_string(),
                params,
                plan: plan.clone(),
            });
        }
        Ok(plan)
    }
}

impl fmt::Debug for PlanCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kept = self.0.lock().map(|k| k.is_some()).unwrap_or(false);
        f.debug_struct("PlanCache").field("kept", &kept).finish()
    }
}
