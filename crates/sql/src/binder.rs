//! The binder turns sqlparser's AST into plans: it resolves names against the
//! catalog and the scopes of the query, types every expression, inserts the
//! implicit casts PostgreSQL would, and infers parameter types.

use std::sync::Arc;

use sqlparser::ast;

use crate::catalog::{Snapshot, TableDesc};
use crate::error::{code, SqlError, SqlResult};
use crate::expr::{ArithOp, CmpOp, Expr, SubqueryKind};
use crate::functions::{self, Func};
use crate::plan::{AggCall, AggFunc, JoinKind, OutCol, Plan, ScanSpan, SetOpKind, SortKey};
use crate::types::{assignable, cast, DataType, Value};

/// The columns visible to an expression.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub cols: Vec<OutCol>,
}

impl Scope {
    fn of(cols: &[OutCol]) -> Scope {
        Scope {
            cols: cols.to_vec(),
        }
    }
}

/// Aggregation context of the SELECT being bound.
struct AggCtx {
    pre_scope: Scope,
    group_keys: Vec<String>,
    group_types: Vec<DataType>,
    aggs: Vec<AggCall>,
}

/// Binds statements against one catalog snapshot.
pub struct Binder<'a> {
    pub snap: &'a Snapshot,
    pub db: &'a str,
    /// Parameter types; Unknown until inferred.
    pub params: Vec<DataType>,
    next_subquery: usize,
    outer: Vec<Scope>,
    correlated: Vec<bool>,
    ctes: Vec<(String, ast::Query, Vec<String>)>,
    agg: Option<AggCtx>,
    agg_seen: bool,
    /// Where aggregates are not allowed, the clause name for the error.
    no_agg_clause: Option<&'static str>,
}

pub(crate) fn ident(i: &ast::Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

/// The parts of an object name, normalized.
pub(crate) fn object_name(n: &ast::ObjectName) -> Vec<String> {
    n.0.iter()
        .map(|p| match p.as_ident() {
            Some(i) => ident(i),
            None => p.to_string(),
        })
        .collect()
}

/// The unqualified name, checking that a qualifier, if any, is `public` or a
/// catalog schema.
pub(crate) fn relation_name(n: &ast::ObjectName) -> SqlResult<(Option<String>, String)> {
    let mut parts = object_name(n);
    let name = parts.pop().unwrap_or_default();
    let schema = parts.pop();
    Ok((schema, name))
}

const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "bool_and",
    "bool_or",
    "every",
    "string_agg",
    "array_agg",
];

/// PostgreSQL's reserved key words (those that cannot name a table);
/// sqlparser accepts several of them where PostgreSQL's grammar does not.
const RESERVED_KEYWORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "constraint",
    "create",
    "current_catalog",
    "current_date",
    "current_role",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "from",
    "grant",
    "group",
    "having",
    "in",
    "initially",
    "intersect",
    "into",
    "lateral",
    "leading",
    "limit",
    "localtime",
    "localtimestamp",
    "not",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "placing",
    "primary",
    "references",
    "returning",
    "select",
    "session_user",
    "some",
    "symmetric",
    "table",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "when",
    "where",
    "window",
    "with",
];

/// 42601 for a table named by an unquoted reserved key word
/// (`SELECT FROM WHERE`).
fn reject_reserved_table_name(name: &ast::ObjectName) -> SqlResult<()> {
    for part in &name.0 {
        if let ast::ObjectNamePart::Identifier(id) = part {
            let lower = id.value.to_ascii_lowercase();
            if id.quote_style.is_none() && RESERVED_KEYWORDS.contains(&lower.as_str()) {
                return Err(SqlError::syntax(format!(
                    "syntax error at or near \"{}\"",
                    id.value
                )));
            }
        }
    }
    Ok(())
}

pub(crate) fn undefined_table(name: &str) -> SqlError {
    SqlError::new(
        code::UNDEFINED_TABLE,
        format!("relation \"{name}\" does not exist"),
    )
}

/// Converts a SQL type name to a DataType.
pub fn data_type(t: &ast::DataType) -> SqlResult<DataType> {
    use ast::DataType as A;
    let len = |l: &Option<ast::CharacterLength>| -> Option<u32> {
        match l {
            Some(ast::CharacterLength::IntegerLength { length, .. }) => Some(*length as u32),
            _ => None,
        }
    };
    Ok(match t {
        A::Bool | A::Boolean => DataType::Bool,
        A::SmallInt(_) | A::Int2(_) => DataType::Int2,
        A::Int(_) | A::Integer(_) | A::Int4(_) => DataType::Int4,
        A::BigInt(_) | A::Int8(_) => DataType::Int8,
        A::Real | A::Float4 => DataType::Float4,
        A::DoublePrecision | A::Float8 | A::Double(_) => DataType::Float8,
        A::Float(info) => match info {
            ast::ExactNumberInfo::Precision(p) if *p <= 24 => DataType::Float4,
            _ => DataType::Float8,
        },
        A::Numeric(info) | A::Decimal(info) | A::Dec(info) => match info {
            ast::ExactNumberInfo::None => DataType::Numeric(None),
            ast::ExactNumberInfo::Precision(p) => numeric_type(*p, 0)?,
            ast::ExactNumberInfo::PrecisionAndScale(p, s) => {
                if *s < 0 || *s as u64 > *p {
                    return Err(SqlError::syntax(format!(
                        "NUMERIC scale {s} must be between 0 and precision {p}"
                    )));
                }
                numeric_type(*p, *s as u64)?
            }
        },
        A::Text | A::String(_) => DataType::Text,
        A::Varchar(l) | A::CharacterVarying(l) | A::CharVarying(l) | A::Nvarchar(l) => {
            DataType::Varchar(len(l))
        }
        A::Char(l) | A::Character(l) => DataType::Char(len(l).unwrap_or(1)),
        A::Bytea => DataType::Bytea,
        A::Date => DataType::Date,
        A::Timestamp(_, tz) => match tz {
            ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz => DataType::TimestampTz,
            _ => DataType::Timestamp,
        },
        A::Uuid => DataType::Uuid,
        A::Regclass => DataType::RegClass,
        A::Array(ast::ArrayElemTypeDef::SquareBracket(inner, _))
        | A::Array(ast::ArrayElemTypeDef::AngleBracket(inner)) => match data_type(inner)? {
            t if t.is_string() => DataType::TextArray,
            t if t.is_integer() => DataType::IntArray,
            t => {
                return Err(SqlError::unsupported(format!(
                    "arrays of {} are not supported",
                    t.sql_name()
                )))
            }
        },
        A::Custom(name, mods) => {
            let n = object_name(name);
            let last = n.last().map(String::as_str).unwrap_or("");
            match last {
                "serial" | "serial4" => DataType::Int4,
                "bigserial" | "serial8" => DataType::Int8,
                "smallserial" | "serial2" => DataType::Int2,
                "int2" => DataType::Int2,
                "int4" => DataType::Int4,
                "int8" => DataType::Int8,
                "float4" => DataType::Float4,
                "float8" => DataType::Float8,
                "bool" => DataType::Bool,
                "text" => DataType::Text,
                "name" => DataType::Name,
                "oid" | "regproc" | "regprocedure" | "regnamespace" | "regrole" | "xid" => {
                    DataType::Oid
                }
                "regtype" => DataType::RegType,
                "regclass" => DataType::RegClass,
                "bpchar" => DataType::Char(mods.first().and_then(|m| m.parse().ok()).unwrap_or(1)),
                "varchar" => DataType::Varchar(mods.first().and_then(|m| m.parse().ok())),
                "timestamptz" => DataType::TimestampTz,
                "numeric" | "decimal" => match (mods.first(), mods.get(1)) {
                    (Some(p), s) => numeric_type(
                        p.parse()
                            .map_err(|_| SqlError::syntax("bad numeric precision"))?,
                        s.and_then(|s| s.parse().ok()).unwrap_or(0),
                    )?,
                    _ => DataType::Numeric(None),
                },
                "char" => DataType::Char(1),
                _ => {
                    return Err(SqlError::new(
                        code::UNDEFINED_OBJECT,
                        format!("type \"{}\" does not exist", n.join(".")),
                    ))
                }
            }
        }
        other => {
            return Err(SqlError::unsupported(format!(
                "type {other} is not supported"
            )))
        }
    })
}

fn numeric_type(p: u64, s: u64) -> SqlResult<DataType> {
    if p == 0 || p > 1000 {
        return Err(SqlError::syntax(format!(
            "NUMERIC precision {p} must be between 1 and 1000"
        )));
    }
    if s > p {
        return Err(SqlError::syntax(format!(
            "NUMERIC scale {s} must be between 0 and precision {p}"
        )));
    }
    Ok(DataType::Numeric(Some((p as u32, s as u32))))
}

/// Is the type name a SERIAL pseudo-type? Returns the column type.
pub fn serial_type(t: &ast::DataType) -> Option<DataType> {
    if let ast::DataType::Custom(name, _) = t {
        return match object_name(name).last().map(String::as_str) {
            Some("serial" | "serial4") => Some(DataType::Int4),
            Some("bigserial" | "serial8") => Some(DataType::Int8),
            Some("smallserial" | "serial2") => Some(DataType::Int2),
            _ => None,
        };
    }
    None
}

fn expr_name(e: &ast::Expr) -> String {
    match e {
        ast::Expr::Identifier(i) => ident(i),
        ast::Expr::CompoundIdentifier(parts) => parts.last().map(ident).unwrap_or_default(),
        ast::Expr::Function(f) => object_name(&f.name).last().cloned().unwrap_or_default(),
        ast::Expr::Cast {
            expr, data_type, ..
        } => match expr.as_ref() {
            ast::Expr::Value(_) => data_type_name(data_type),
            inner => expr_name(inner),
        },
        ast::Expr::Nested(inner) => expr_name(inner),
        ast::Expr::Case { .. } => "case".into(),
        ast::Expr::Exists { .. } => "exists".into(),
        ast::Expr::Substring { .. } => "substring".into(),
        ast::Expr::Trim { .. } => "btrim".into(),
        ast::Expr::Position { .. } => "position".into(),
        ast::Expr::Extract { .. } => "extract".into(),
        ast::Expr::Ceil { .. } => "ceil".into(),
        ast::Expr::Floor { .. } => "floor".into(),
        ast::Expr::TypedString(ts) => data_type_name(&ts.data_type),
        _ => "?column?".into(),
    }
}

fn data_type_name(t: &ast::DataType) -> String {
    data_type(t)
        .map(|t| t.type_name().to_string())
        .unwrap_or_else(|_| "?column?".into())
}

fn is_default_keyword(e: &ast::Expr) -> bool {
    matches!(e, ast::Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"))
}

/// Function arguments as plain expressions.
fn function_args(f: &ast::Function) -> SqlResult<(Vec<ast::Expr>, bool, bool)> {
    match &f.args {
        ast::FunctionArguments::None => Ok((vec![], false, false)),
        ast::FunctionArguments::Subquery(_) => Err(SqlError::unsupported(
            "subquery function arguments are not supported",
        )),
        ast::FunctionArguments::List(list) => {
            let distinct = matches!(
                list.duplicate_treatment,
                Some(ast::DuplicateTreatment::Distinct)
            );
            let mut star = false;
            let mut out = Vec::new();
            for a in &list.args {
                match a {
                    ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => out.push(e.clone()),
                    ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard) => star = true,
                    _ => {
                        return Err(SqlError::unsupported(format!(
                            "argument {a} is not supported"
                        )))
                    }
                }
            }
            Ok((out, distinct, star))
        }
    }
}

impl<'a> Binder<'a> {
    /// A binder with parameter types fixed by the client (Unknown: infer).
    pub fn new(snap: &'a Snapshot, db: &'a str, params: Vec<DataType>) -> Self {
        Self {
            snap,
            db,
            params,
            next_subquery: 0,
            outer: Vec::new(),
            correlated: Vec::new(),
            ctes: Vec::new(),
            agg: None,
            agg_seen: false,
            no_agg_clause: None,
        }
    }

    /// Parameter types with the still-unknown ones defaulted to text.
    pub fn param_types(&self) -> Vec<DataType> {
        self.params
            .iter()
            .map(|t| {
                if *t == DataType::Unknown {
                    DataType::Text
                } else {
                    *t
                }
            })
            .collect()
    }

    // -----------------------------------------------------------------
    // Queries
    // -----------------------------------------------------------------

    /// Binds a query.
    pub fn query(&mut self, q: &ast::Query) -> SqlResult<Plan> {
        let pushed = if let Some(with) = &q.with {
            if with.recursive {
                return Err(SqlError::unsupported("WITH RECURSIVE is not supported"));
            }
            for cte in &with.cte_tables {
                let name = ident(&cte.alias.name);
                let cols = cte.alias.columns.iter().map(|c| ident(&c.name)).collect();
                self.ctes.push((name, (*cte.query).clone(), cols));
            }
            with.cte_tables.len()
        } else {
            0
        };
        let result = self.query_body(q);
        for _ in 0..pushed {
            self.ctes.pop();
        }
        result
    }

    fn query_body(&mut self, q: &ast::Query) -> SqlResult<Plan> {
        let row_lock = self.row_lock(&q.locks)?;
        let order: Vec<ast::OrderByExpr> = match &q.order_by {
            Some(ob) => match &ob.kind {
                ast::OrderByKind::Expressions(v) => v.clone(),
                ast::OrderByKind::All(_) => {
                    return Err(SqlError::unsupported("ORDER BY ALL is not supported"))
                }
            },
            None => vec![],
        };
        let mut plan = match q.body.as_ref() {
            ast::SetExpr::Select(s) => self.select(s, &order)?,
            other => {
                let plan = self.set_expr(other)?;
                if order.is_empty() {
                    plan
                } else {
                    self.order_by_output(plan, &order)?
                }
            }
        };
        let (limit, offset) = match &q.limit_clause {
            Some(ast::LimitClause::LimitOffset { limit, offset, .. }) => {
                (limit.clone(), offset.as_ref().map(|o| o.value.clone()))
            }
            Some(ast::LimitClause::OffsetCommaLimit { offset, limit }) => {
                (Some(limit.clone()), Some(offset.clone()))
            }
            None => (None, None),
        };
        let limit = match q.fetch.as_ref() {
            Some(f) => f
                .quantity
                .clone()
                .or(Some(ast::Expr::value(ast::Value::Number(
                    "1".into(),
                    false,
                )))),
            None => limit,
        };
        if limit.is_some() || offset.is_some() {
            let empty = Scope::default();
            let mut bind_count = |e: Option<ast::Expr>, what: &str| -> SqlResult<Option<Expr>> {
                match e {
                    None => Ok(None),
                    Some(ast::Expr::Value(v)) if matches!(v.value, ast::Value::Null) => Ok(None),
                    Some(e) => {
                        let (x, t) = self.expr(&e, &empty)?;
                        if !(t.is_integer() || t == DataType::Unknown || t.is_numeric()) {
                            return Err(SqlError::mismatch(format!(
                                "argument of {what} must be type bigint, not type {}",
                                t.sql_name()
                            )));
                        }
                        Ok(Some(self.coerce(x, t, DataType::Int8)?))
                    }
                }
            };
            let limit = bind_count(limit, "LIMIT")?;
            let offset = bind_count(offset, "OFFSET")?;
            plan = Plan::Limit {
                input: Box::new(plan),
                limit,
                offset,
            };
        }
        if let Some((clause, of, lock)) = row_lock {
            plan.lock_rows(clause, &of, lock)?;
        }
        Ok(plan)
    }

    /// The row lock that FOR UPDATE / FOR SHARE clauses ask for: the
    /// clause (for errors), the tables named by OF (empty: all), NOWAIT.
    /// FOR SHARE takes the same exclusive lock as FOR UPDATE.
    fn row_lock(
        &self,
        locks: &[ast::LockClause],
    ) -> SqlResult<Option<(&'static str, Vec<String>, crate::plan::RowLock)>> {
        let Some(first) = locks.first() else {
            return Ok(None);
        };
        let clause = match first.lock_type {
            ast::LockType::Share => "FOR SHARE",
            ast::LockType::Update => "FOR UPDATE",
        };
        let mut of = Vec::new();
        let mut all = false;
        let mut nowait = false;
        for lock in locks {
            match lock.nonblock {
                Some(ast::NonBlock::SkipLocked) => {
                    return Err(SqlError::unsupported("SKIP LOCKED is not supported"))
                }
                Some(ast::NonBlock::Nowait) => nowait = true,
                None => {}
            }
            match &lock.of {
                Some(name) => of.extend(object_name(name).pop()),
                None => all = true,
            }
        }
        if all {
            of.clear();
        }
        Ok(Some((clause, of, crate::plan::RowLock { nowait })))
    }

    fn set_expr(&mut self, e: &ast::SetExpr) -> SqlResult<Plan> {
        match e {
            ast::SetExpr::Select(s) => self.select(s, &[]),
            ast::SetExpr::Query(q) => self.query(q),
            ast::SetExpr::Values(v) => self.values(v),
            ast::SetExpr::SetOperation {
                left,
                op,
                set_quantifier,
                right,
            } => {
                let l = self.set_expr(left)?;
                let r = self.set_expr(right)?;
                let kind = match op {
                    ast::SetOperator::Union => SetOpKind::Union,
                    ast::SetOperator::Intersect => SetOpKind::Intersect,
                    ast::SetOperator::Except | ast::SetOperator::Minus => SetOpKind::Except,
                };
                let all = matches!(set_quantifier, ast::SetQuantifier::All);
                let name = format!("{kind:?}").to_uppercase();
                if l.cols().len() != r.cols().len() {
                    return Err(SqlError::syntax(format!(
                        "each {name} query must have the same number of columns"
                    )));
                }
                let mut types = Vec::new();
                for (a, b) in l.cols().iter().zip(r.cols()) {
                    let t = DataType::common(a.ty, b.ty).ok_or_else(|| {
                        SqlError::mismatch(format!(
                            "{name} types {} and {} cannot be matched",
                            a.ty.sql_name(),
                            b.ty.sql_name()
                        ))
                    })?;
                    types.push(if t == DataType::Unknown {
                        DataType::Text
                    } else {
                        t
                    });
                }
                let l = self.cast_plan(l, &types)?;
                let r = self.cast_plan(r, &types)?;
                let cols = l
                    .cols()
                    .iter()
                    .zip(&types)
                    .map(|(c, t)| OutCol::new(c.name.clone(), *t))
                    .collect();
                Ok(Plan::SetOp {
                    op: kind,
                    all,
                    left: Box::new(l),
                    right: Box::new(r),
                    cols,
                })
            }
            ast::SetExpr::Table(t) => {
                let name = t.table_name.clone().unwrap_or_default();
                let name = ast::ObjectName::from(vec![ast::Ident::new(name)]);
                let (plan, _) = self.named_table(None, &name, None)?;
                Ok(plan)
            }
            _ => Err(SqlError::unsupported(format!("{e} is not supported"))),
        }
    }

    /// Projects `plan` so that its columns have `types`.
    fn cast_plan(&mut self, plan: Plan, types: &[DataType]) -> SqlResult<Plan> {
        if plan.cols().iter().zip(types).all(|(c, t)| c.ty == *t) {
            return Ok(plan);
        }
        let mut exprs = Vec::new();
        let mut cols = Vec::new();
        for (i, (c, t)) in plan.cols().iter().zip(types).enumerate() {
            exprs.push(self.coerce(Expr::Column(i), c.ty, *t)?);
            cols.push(OutCol::new(c.name.clone(), *t));
        }
        Ok(Plan::Project {
            input: Box::new(plan),
            exprs,
            cols,
        })
    }

    fn values(&mut self, v: &ast::Values) -> SqlResult<Plan> {
        let empty = Scope::default();
        let mut rows: Vec<Vec<(Expr, DataType)>> = Vec::new();
        for row in &v.rows {
            let mut out = Vec::new();
            for e in &row.content {
                out.push(self.expr(e, &empty)?);
            }
            if let Some(first) = rows.first() {
                if first.len() != out.len() {
                    return Err(SqlError::syntax("VALUES lists must all be the same length"));
                }
            }
            rows.push(out);
        }
        let width = rows.first().map(Vec::len).unwrap_or(0);
        let mut types = vec![DataType::Unknown; width];
        for row in &rows {
            for (i, (_, t)) in row.iter().enumerate() {
                types[i] = DataType::common(types[i], *t).ok_or_else(|| {
                    SqlError::mismatch(format!(
                        "VALUES types {} and {} cannot be matched",
                        types[i].sql_name(),
                        t.sql_name()
                    ))
                })?;
            }
        }
        for t in types.iter_mut() {
            if *t == DataType::Unknown {
                *t = DataType::Text;
            }
        }
        let mut bound = Vec::new();
        for row in rows {
            let mut r = Vec::new();
            for (i, (e, t)) in row.into_iter().enumerate() {
                r.push(self.coerce(e, t, types[i])?);
            }
            bound.push(r);
        }
        let cols = types
            .iter()
            .enumerate()
            .map(|(i, t)| OutCol::new(format!("column{}", i + 1), *t))
            .collect();
        Ok(Plan::Values { rows: bound, cols })
    }

    /// ORDER BY over the output columns only (set operations, VALUES).
    fn order_by_output(&mut self, plan: Plan, order: &[ast::OrderByExpr]) -> SqlResult<Plan> {
        let scope = Scope::of(plan.cols());
        let mut keys = Vec::new();
        for o in order {
            let expr = match &o.expr {
                ast::Expr::Value(v) if matches!(v.value, ast::Value::Number(_, _)) => {
                    let n = self.ordinal(&o.expr, plan.cols().len(), "ORDER BY")?;
                    Expr::Column(n)
                }
                e @ (ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_)) => {
                    self.expr(e, &scope)?.0
                }
                _ => {
                    return Err(SqlError::unsupported(
                        "invalid UNION/INTERSECT/EXCEPT ORDER BY clause",
                    )
                    .with_detail(
                        "Only result column names can be used, not expressions or functions.",
                    ))
                }
            };
            keys.push(sort_key(expr, &o.options));
        }
        Ok(Plan::Sort {
            input: Box::new(plan),
            keys,
        })
    }

    fn ordinal(&self, e: &ast::Expr, len: usize, clause: &str) -> SqlResult<usize> {
        if let ast::Expr::Value(v) = e {
            if let ast::Value::Number(n, _) = &v.value {
                let k: i64 = n
                    .parse()
                    .map_err(|_| SqlError::syntax("non-integer constant in ORDER BY"))?;
                if k < 1 || k as usize > len {
                    return Err(SqlError::new(
                        code::INVALID_COLUMN_REFERENCE,
                        format!("{clause} position {k} is not in select list"),
                    ));
                }
                return Ok(k as usize - 1);
            }
        }
        Err(SqlError::syntax("expected a position"))
    }

    fn contains_aggregate(
        &mut self,
        f: impl FnOnce(&mut Self) -> SqlResult<()>,
    ) -> SqlResult<bool> {
        let saved = self.agg_seen;
        self.agg_seen = false;
        let r = f(self);
        let seen = self.agg_seen;
        self.agg_seen = saved;
        r?;
        Ok(seen)
    }

    fn select(&mut self, s: &ast::Select, order: &[ast::OrderByExpr]) -> SqlResult<Plan> {
        if let Some(ast::Distinct::On(_)) = &s.distinct {
            return Err(SqlError::unsupported("SELECT DISTINCT ON is not supported"));
        }
        let distinct = matches!(s.distinct, Some(ast::Distinct::Distinct));
        // FROM
        let (mut plan, scope) = if s.from.is_empty() {
            (
                Plan::Values {
                    rows: vec![vec![]],
                    cols: vec![],
                },
                Scope::default(),
            )
        } else {
            self.from(&s.from)?
        };
        // WHERE
        if let Some(w) = &s.selection {
            let saved = self.no_agg_clause.replace("WHERE");
            let r = self.expr(w, &scope);
            self.no_agg_clause = saved;
            let (e, t) = r?;
            let e = self.boolean(e, t, "WHERE")?;
            plan = Plan::Filter {
                input: Box::new(plan),
                predicate: e,
            };
        }
        // GROUP BY: positions and output names refer to select items.
        let group_asts: Vec<ast::Expr> = match &s.group_by {
            ast::GroupByExpr::Expressions(exprs, _) => exprs
                .iter()
                .map(|g| self.group_item(g, s, &scope))
                .collect::<SqlResult<_>>()?,
            ast::GroupByExpr::All(_) => {
                return Err(SqlError::unsupported("GROUP BY ALL is not supported"))
            }
        };
        let aggregated = !group_asts.is_empty()
            || s.having.is_some()
            || self.contains_aggregate(|b| {
                for item in &s.projection {
                    if let ast::SelectItem::UnnamedExpr(e)
                    | ast::SelectItem::ExprWithAlias { expr: e, .. } = item
                    {
                        b.expr(e, &scope)?;
                    }
                }
                for o in order {
                    if !matches!(&o.expr, ast::Expr::Value(_)) {
                        // Output aliases are not in scope here; ignore errors.
                        let _ = b.expr(&o.expr, &scope);
                    }
                }
                Ok(())
            })?;

        let (input_scope, mut agg_groups) = if aggregated {
            let mut groups = Vec::new();
            let mut keys = Vec::new();
            let mut types = Vec::new();
            let mut post = Scope::default();
            for g in &group_asts {
                let saved = self.no_agg_clause.replace("GROUP BY");
                let r = self.expr(g, &scope);
                self.no_agg_clause = saved;
                let (e, t) = r?;
                let mut col = OutCol::new(expr_name(g), t);
                if let Expr::Column(i) = &e {
                    col = scope.cols[*i].clone();
                } else {
                    col.name = String::new();
                }
                post.cols.push(col);
                keys.push(g.to_string());
                types.push(t);
                groups.push(e);
            }
            self.agg = Some(AggCtx {
                pre_scope: scope.clone(),
                group_keys: keys,
                group_types: types,
                aggs: Vec::new(),
            });
            (post, Some(groups))
        } else {
            (scope.clone(), None)
        };

        let result = self.select_rest(s, order, distinct, &input_scope, &scope);
        let agg = self.agg.take();
        let (items, names, extras, having, order_keys) = result?;
        if let Some(groups) = agg_groups.take() {
            let agg = agg.expect("aggregate context");
            let mut cols: Vec<OutCol> = input_scope.cols.clone();
            for (i, a) in agg.aggs.iter().enumerate() {
                cols.push(OutCol::new(format!("agg{i}"), a.ty));
            }
            plan = Plan::Aggregate {
                input: Box::new(plan),
                groups,
                aggs: agg.aggs,
                cols,
            };
            if let Some(h) = having {
                plan = Plan::Filter {
                    input: Box::new(plan),
                    predicate: h,
                };
            }
        }
        let visible = items.len();
        let mut exprs: Vec<Expr> = items.iter().map(|(e, _)| e.clone()).collect();
        let mut cols: Vec<OutCol> = names;
        for (e, t) in &extras {
            exprs.push(e.clone());
            cols.push(OutCol::new("?order?", *t));
        }
        plan = Plan::Project {
            input: Box::new(plan),
            exprs,
            cols,
        };
        if distinct {
            plan = Plan::Distinct {
                input: Box::new(plan),
            };
        }
        if !order_keys.is_empty() {
            plan = Plan::Sort {
                input: Box::new(plan),
                keys: order_keys,
            };
        }
        if !extras.is_empty() {
            let cols = plan.cols()[..visible].to_vec();
            plan = Plan::Project {
                input: Box::new(plan),
                exprs: (0..visible).map(Expr::Column).collect(),
                cols,
            };
        }
        Ok(plan)
    }

    #[allow(clippy::type_complexity)]
    fn select_rest(
        &mut self,
        s: &ast::Select,
        order: &[ast::OrderByExpr],
        distinct: bool,
        scope: &Scope,
        from_scope: &Scope,
    ) -> SqlResult<(
        Vec<(Expr, DataType)>,
        Vec<OutCol>,
        Vec<(Expr, DataType)>,
        Option<Expr>,
        Vec<SortKey>,
    )> {
        // Select list.
        let mut items: Vec<(Expr, DataType)> = Vec::new();
        let mut names: Vec<OutCol> = Vec::new();
        let mut item_asts: Vec<Option<String>> = Vec::new();
        for item in &s.projection {
            match item {
                ast::SelectItem::Wildcard(_) => {
                    if from_scope.cols.is_empty() && s.from.is_empty() {
                        return Err(SqlError::syntax(
                            "SELECT * with no tables specified is not valid",
                        ));
                    }
                    for (i, c) in from_scope.cols.iter().enumerate() {
                        if !c.hidden {
                            items.push(self.star_column(i, c, scope)?);
                            names.push(c.clone());
                            item_asts.push(None);
                        }
                    }
                }
                ast::SelectItem::QualifiedWildcard(kind, _) => {
                    let q = match kind {
                        ast::SelectItemQualifiedWildcardKind::ObjectName(n) => {
                            object_name(n).pop().unwrap_or_default()
                        }
                        ast::SelectItemQualifiedWildcardKind::Expr(e) => e.to_string(),
                    };
                    let mut found = false;
                    for (i, c) in from_scope.cols.iter().enumerate() {
                        if c.qualifier.as_deref() == Some(q.as_str()) {
                            found = true;
                            if !c.hidden || c.name != "rowid" {
                                items.push(self.star_column(i, c, scope)?);
                                names.push(c.clone());
                                item_asts.push(None);
                            }
                        }
                    }
                    if !found {
                        return Err(SqlError::new(
                            code::UNDEFINED_TABLE,
                            format!("missing FROM-clause entry for table \"{q}\""),
                        ));
                    }
                }
                ast::SelectItem::UnnamedExpr(e) => {
                    let (x, t) = self.expr(e, scope)?;
                    let mut col = match &x {
                        Expr::Column(i) if self.agg.is_none() => scope.cols[*i].clone(),
                        _ => OutCol::new(expr_name(e), t),
                    };
                    col.name = expr_name(e);
                    col.hidden = false;
                    col.ty = t;
                    names.push(col);
                    items.push((x, t));
                    item_asts.push(Some(e.to_string()));
                }
                ast::SelectItem::ExprWithAlias { expr, alias } => {
                    let (x, t) = self.expr(expr, scope)?;
                    let mut col = match &x {
                        Expr::Column(i) if self.agg.is_none() => scope.cols[*i].clone(),
                        _ => OutCol::new("", t),
                    };
                    col.name = ident(alias);
                    col.hidden = false;
                    col.ty = t;
                    names.push(col);
                    items.push((x, t));
                    item_asts.push(Some(expr.to_string()));
                }
                ast::SelectItem::ExprWithAliases { .. } => {
                    return Err(SqlError::unsupported("multiple aliases are not supported"))
                }
            }
        }
        // Unknown-typed outputs (string literals) are text.
        for (i, (e, t)) in items.iter_mut().enumerate() {
            if *t == DataType::Unknown {
                *e = self.coerce(e.clone(), DataType::Unknown, DataType::Text)?;
                *t = DataType::Text;
                names[i].ty = DataType::Text;
            }
        }
        let having = match &s.having {
            Some(h) => {
                let (e, t) = self.expr(h, scope)?;
                Some(self.boolean(e, t, "HAVING")?)
            }
            None => None,
        };
        // ORDER BY: output positions, output names, select-list expressions,
        // then any expression over the input (as a hidden column).
        let mut extras: Vec<(Expr, DataType)> = Vec::new();
        let mut keys = Vec::new();
        for o in order {
            let target = match &o.expr {
                ast::Expr::Value(v) if matches!(v.value, ast::Value::Number(_, _)) => {
                    self.ordinal(&o.expr, items.len(), "ORDER BY")?
                }
                e => {
                    let text = e.to_string();
                    let by_name = match e {
                        ast::Expr::Identifier(id) => {
                            let n = ident(id);
                            let hits: Vec<usize> = names
                                .iter()
                                .enumerate()
                                .filter(|(_, c)| c.name == n)
                                .map(|(i, _)| i)
                                .collect();
                            match hits.len() {
                                0 => None,
                                1 => Some(hits[0]),
                                _ => {
                                    // Several outputs share the name: fine if they are the same expression.
                                    let first = &item_asts[hits[0]];
                                    if hits.iter().all(|h| &item_asts[*h] == first) {
                                        Some(hits[0])
                                    } else {
                                        return Err(SqlError::new(
                                            code::AMBIGUOUS_COLUMN,
                                            format!("ORDER BY \"{n}\" is ambiguous"),
                                        ));
                                    }
                                }
                            }
                        }
                        _ => None,
                    };
                    match by_name.or_else(|| {
                        item_asts
                            .iter()
                            .position(|a| a.as_deref() == Some(text.as_str()))
                    }) {
                        Some(i) => i,
                        None => {
                            let (x, t) = self.expr(e, scope)?;
                            if let Some(i) = items.iter().position(|(ie, _)| same_expr(ie, &x)) {
                                i
                            } else {
                                if distinct {
                                    return Err(SqlError::new(
                                        code::INVALID_COLUMN_REFERENCE,
                                        "for SELECT DISTINCT, ORDER BY expressions must appear in select list",
                                    ));
                                }
                                extras.push((x, t));
                                items.len() + extras.len() - 1
                            }
                        }
                    }
                }
            };
            keys.push(sort_key(Expr::Column(target), &o.options));
        }
        Ok((items, names, extras, having, keys))
    }

    fn star_column(&mut self, i: usize, c: &OutCol, scope: &Scope) -> SqlResult<(Expr, DataType)> {
        if let Some(agg) = &self.agg {
            // In an aggregate query, * means the grouped columns.
            let key = match &c.qualifier {
                Some(q) => format!("{q}.{}", c.name),
                None => c.name.clone(),
            };
            for (j, k) in agg.group_keys.iter().enumerate() {
                if *k == key || *k == c.name {
                    return Ok((Expr::Column(j), agg.group_types[j]));
                }
            }
            let _ = scope;
            return Err(ungrouped(c));
        }
        Ok((Expr::Column(i), c.ty))
    }

    fn group_item(
        &mut self,
        g: &ast::Expr,
        s: &ast::Select,
        scope: &Scope,
    ) -> SqlResult<ast::Expr> {
        let item_expr = |k: usize| -> Option<ast::Expr> {
            match s.projection.get(k)? {
                ast::SelectItem::UnnamedExpr(e)
                | ast::SelectItem::ExprWithAlias { expr: e, .. } => Some(e.clone()),
                _ => None,
            }
        };
        match g {
            ast::Expr::Value(v) if matches!(v.value, ast::Value::Number(_, _)) => {
                let k = self.ordinal(g, s.projection.len(), "GROUP BY")?;
                item_expr(k).ok_or_else(|| SqlError::unsupported("GROUP BY position of *"))
            }
            ast::Expr::Identifier(id) => {
                let n = ident(id);
                if scope.cols.iter().any(|c| c.name == n) {
                    return Ok(g.clone());
                }
                for (k, item) in s.projection.iter().enumerate() {
                    if let ast::SelectItem::ExprWithAlias { alias, .. } = item {
                        if ident(alias) == n {
                            return Ok(item_expr(k).expect("aliased item"));
                        }
                    }
                }
                Ok(g.clone())
            }
            _ => Ok(g.clone()),
        }
    }

    // -----------------------------------------------------------------
    // FROM
    // -----------------------------------------------------------------

    fn from(&mut self, from: &[ast::TableWithJoins]) -> SqlResult<(Plan, Scope)> {
        let mut acc: Option<(Plan, Scope)> = None;
        for twj in from {
            let (p, s) = self.table_with_joins(twj)?;
            acc = Some(match acc {
                None => (p, s),
                Some((lp, ls)) => self.join(lp, ls, p, s, JoinKind::Inner, None)?,
            });
        }
        Ok(acc.expect("FROM has at least one item"))
    }

    fn table_with_joins(&mut self, twj: &ast::TableWithJoins) -> SqlResult<(Plan, Scope)> {
        let (mut plan, mut scope) = self.table_factor(&twj.relation)?;
        for j in &twj.joins {
            let (rp, rs) = self.table_factor(&j.relation)?;
            use ast::JoinOperator as J;
            let (kind, constraint) = match &j.join_operator {
                J::Join(c) | J::Inner(c) => (JoinKind::Inner, Some(c)),
                J::Left(c) | J::LeftOuter(c) => (JoinKind::Left, Some(c)),
                J::Right(c) | J::RightOuter(c) => (JoinKind::Right, Some(c)),
                J::FullOuter(c) => (JoinKind::Full, Some(c)),
                J::CrossJoin(_) => (JoinKind::Inner, None),
                other => {
                    return Err(SqlError::unsupported(format!(
                        "join {other:?} is not supported"
                    )))
                }
            };
            (plan, scope) = self.join(plan, scope, rp, rs, kind, constraint)?;
        }
        Ok((plan, scope))
    }

    fn join(
        &mut self,
        lp: Plan,
        ls: Scope,
        rp: Plan,
        rs: Scope,
        kind: JoinKind,
        constraint: Option<&ast::JoinConstraint>,
    ) -> SqlResult<(Plan, Scope)> {
        let nl = ls.cols.len();
        let mut cols = ls.cols.clone();
        cols.extend(rs.cols.iter().cloned());
        let mut scope = Scope { cols };
        let mut conds: Vec<Expr> = Vec::new();
        let using: Vec<String> = match constraint {
            Some(ast::JoinConstraint::Using(names)) => names
                .iter()
                .map(|n| object_name(n).pop().unwrap_or_default())
                .collect(),
            Some(ast::JoinConstraint::Natural) => ls
                .cols
                .iter()
                .filter(|c| !c.hidden && rs.cols.iter().any(|r| !r.hidden && r.name == c.name))
                .map(|c| c.name.clone())
                .collect(),
            _ => vec![],
        };
        for name in &using {
            let li = ls.cols.iter().position(|c| &c.name == name && !c.hidden);
            let ri = rs.cols.iter().position(|c| &c.name == name && !c.hidden);
            let (Some(li), Some(ri)) = (li, ri) else {
                return Err(SqlError::new(
                    code::UNDEFINED_COLUMN,
                    format!(
                        "column \"{name}\" specified in USING clause does not exist in {} table",
                        if li.is_none() { "left" } else { "right" }
                    ),
                ));
            };
            let (lt, rt) = (ls.cols[li].ty, rs.cols[ri].ty);
            let e = self.comparison(CmpOp::Eq, Expr::Column(li), lt, Expr::Column(nl + ri), rt)?;
            conds.push(e);
            // The merged column shows once, unqualified lookups find the left.
            scope.cols[nl + ri].hidden = true;
        }
        if let Some(ast::JoinConstraint::On(on)) = constraint {
            let saved = self.no_agg_clause.replace("JOIN conditions");
            let r = self.expr(on, &scope);
            self.no_agg_clause = saved;
            let (e, t) = r?;
            conds.push(self.boolean(e, t, "JOIN/ON")?);
        }
        // Equality conjuncts across the two sides become hash keys.
        let mut equi = Vec::new();
        let mut rest = Vec::new();
        for c in conds.into_iter().flat_map(Expr::conjuncts) {
            if let Expr::Cmp(CmpOp::Eq, a, b) = &c {
                let side = |e: &Expr| -> Option<bool> {
                    let used = e.columns_used();
                    let mut has_sub = false;
                    e.walk(&mut |x| {
                        has_sub |= matches!(x, Expr::Subquery { .. } | Expr::Outer { .. })
                    });
                    if used.is_empty() || has_sub {
                        return None;
                    }
                    if used.iter().all(|i| *i < nl) {
                        Some(true)
                    } else if used.iter().all(|i| *i >= nl) {
                        Some(false)
                    } else {
                        None
                    }
                };
                match (side(a), side(b)) {
                    (Some(true), Some(false)) => {
                        equi.push(((**a).clone(), b.map_columns(&|i| Expr::Column(i - nl))));
                        continue;
                    }
                    (Some(false), Some(true)) => {
                        equi.push(((**b).clone(), a.map_columns(&|i| Expr::Column(i - nl))));
                        continue;
                    }
                    _ => {}
                }
            }
            rest.push(c);
        }
        if kind == JoinKind::Full && !rest.is_empty() && equi.is_empty() {
            // A full join needs a hashable condition to find unmatched rows;
            // the nested loop handles it too, so nothing to refuse.
        }
        let out_cols = scope.cols.clone();
        let plan = Plan::Join {
            left: Box::new(lp),
            right: Box::new(rp),
            kind,
            equi,
            on: Expr::conjoin(rest),
            cols: out_cols.clone(),
        };
        if using.is_empty() {
            return Ok((plan, scope));
        }
        // USING/NATURAL: the merged columns come first, then the others of
        // each side; the right side's merged columns stay reachable by their
        // qualified names.
        let mut exprs = Vec::new();
        let mut cols = Vec::new();
        let mut merged_left = Vec::new();
        let mut merged_right = Vec::new();
        for name in &using {
            let li = ls
                .cols
                .iter()
                .position(|c| &c.name == name && !c.hidden)
                .expect("checked");
            let ri = rs
                .cols
                .iter()
                .position(|c| &c.name == name && !c.hidden)
                .expect("checked");
            merged_left.push(li);
            merged_right.push(nl + ri);
            let mut col = out_cols[li].clone();
            let e = match kind {
                JoinKind::Inner | JoinKind::Left => Expr::Column(li),
                JoinKind::Right => Expr::Column(nl + ri),
                JoinKind::Full => {
                    col.table_oid = 0;
                    Expr::Func {
                        func: Func::Coalesce,
                        args: vec![Expr::Column(li), Expr::Column(nl + ri)],
                        ty: col.ty,
                    }
                }
            };
            exprs.push(e);
            cols.push(col);
        }
        for (i, c) in out_cols.iter().enumerate() {
            if merged_left.contains(&i) || merged_right.contains(&i) {
                continue;
            }
            exprs.push(Expr::Column(i));
            cols.push(c.clone());
        }
        for i in merged_left.iter().chain(&merged_right) {
            let mut c = out_cols[*i].clone();
            c.hidden = true;
            exprs.push(Expr::Column(*i));
            cols.push(c);
        }
        let plan = Plan::Project {
            input: Box::new(plan),
            exprs,
            cols: cols.clone(),
        };
        Ok((plan, Scope { cols }))
    }

    fn table_factor(&mut self, tf: &ast::TableFactor) -> SqlResult<(Plan, Scope)> {
        match tf {
            ast::TableFactor::Table {
                name,
                alias,
                args,
                with_ordinality,
                ..
            } => {
                reject_reserved_table_name(name)?;
                if let Some(args) = args {
                    let fname = object_name(name).pop().unwrap_or_default();
                    let exprs: Vec<ast::Expr> = args
                        .args
                        .iter()
                        .map(|a| match a {
                            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => {
                                Ok(e.clone())
                            }
                            _ => Err(SqlError::unsupported("named table function arguments")),
                        })
                        .collect::<SqlResult<_>>()?;
                    return self.table_function(&fname, &exprs, alias.as_ref(), *with_ordinality);
                }
                self.named_table(None, name, alias.as_ref())
            }
            ast::TableFactor::Function {
                name,
                args,
                alias,
                with_ordinality,
                ..
            } => {
                let fname = object_name(name).pop().unwrap_or_default();
                let exprs: Vec<ast::Expr> = args
                    .iter()
                    .map(|a| match a {
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Ok(e.clone()),
                        _ => Err(SqlError::unsupported("named table function arguments")),
                    })
                    .collect::<SqlResult<_>>()?;
                self.table_function(&fname, &exprs, alias.as_ref(), *with_ordinality)
            }
            ast::TableFactor::Derived {
                lateral,
                subquery,
                alias,
                ..
            } => {
                if alias.is_none() {
                    return Err(SqlError::syntax("subquery in FROM must have an alias"));
                }
                if *lateral {
                    return Err(SqlError::unsupported("LATERAL is not supported"));
                }
                // A derived table cannot see the columns of its siblings.
                let saved_agg = self.agg.take();
                let saved_seen = self.agg_seen;
                let plan = self.query(subquery);
                self.agg = saved_agg;
                self.agg_seen = saved_seen;
                let plan = plan?;
                let alias_name = alias.as_ref().map(|a| ident(&a.name));
                let cols = rename_cols(plan.cols(), alias_name, alias)?;
                Ok((plan, Scope { cols }))
            }
            ast::TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                let (plan, scope) = self.table_with_joins(table_with_joins)?;
                if let Some(a) = alias {
                    let cols = rename_cols(&scope.cols, Some(ident(&a.name)), &Some(a.clone()))?;
                    return Ok((plan, Scope { cols }));
                }
                Ok((plan, scope))
            }
            other => Err(SqlError::unsupported(format!(
                "{other} is not supported in FROM"
            ))),
        }
    }

    fn table_function(
        &mut self,
        name: &str,
        args: &[ast::Expr],
        alias: Option<&ast::TableAlias>,
        with_ordinality: bool,
    ) -> SqlResult<(Plan, Scope)> {
        if with_ordinality && name != "pg_partition_ancestors" {
            return Err(SqlError::unsupported(format!(
                "WITH ORDINALITY is not supported for {name}"
            )));
        }
        match name {
            "generate_series" => {
                if args.len() < 2 || args.len() > 3 {
                    return Err(SqlError::new(
                        code::UNDEFINED_FUNCTION,
                        "function generate_series must have 2 or 3 arguments",
                    ));
                }
                let empty = Scope::default();
                let mut bound = Vec::new();
                let mut ty = DataType::Int4;
                for a in args {
                    let (e, t) = self.expr(a, &empty)?;
                    if !(t.is_numeric() || t == DataType::Unknown) {
                        return Err(SqlError::new(
                            code::UNDEFINED_FUNCTION,
                            format!("function generate_series({}) does not exist", t.sql_name()),
                        ));
                    }
                    if t.is_numeric() {
                        ty = DataType::promote(ty, t);
                    }
                    bound.push((e, t));
                }
                if !ty.is_integer() {
                    ty = DataType::Numeric(None);
                }
                let mut exprs = Vec::new();
                for (e, t) in bound {
                    exprs.push(self.coerce(e, t, ty)?);
                }
                let alias_name = alias
                    .map(|a| ident(&a.name))
                    .unwrap_or_else(|| "generate_series".into());
                let col_name = alias
                    .and_then(|a| a.columns.first().map(|c| ident(&c.name)))
                    .unwrap_or_else(|| {
                        alias
                            .map(|a| ident(&a.name))
                            .unwrap_or_else(|| "generate_series".into())
                    });
                let mut col = OutCol::new(col_name, ty);
                col.qualifier = Some(alias_name);
                let mut it = exprs.into_iter();
                let plan = Plan::Series {
                    start: it.next().expect("start"),
                    stop: it.next().expect("stop"),
                    step: it.next(),
                    cols: vec![col.clone()],
                };
                Ok((plan, Scope { cols: vec![col] }))
            }
            "pg_partition_ancestors" => {
                // Tessera has no partitioned tables (it splits every table
                // into ranges itself): a relation's only ancestor is itself.
                let [arg] = args else {
                    return Err(SqlError::new(
                        code::UNDEFINED_FUNCTION,
                        "function pg_partition_ancestors must have 1 argument",
                    ));
                };
                let (e, t) = self.expr(arg, &Scope::default())?;
                let e = self.coerce(e, t, DataType::RegClass)?;
                let alias_name = alias
                    .map(|a| ident(&a.name))
                    .unwrap_or_else(|| "pg_partition_ancestors".into());
                let col_name = alias
                    .and_then(|a| a.columns.first().map(|c| ident(&c.name)))
                    .unwrap_or_else(|| "relid".into());
                let mut col = OutCol::new(col_name, DataType::RegClass);
                col.qualifier = Some(alias_name.clone());
                let mut row = vec![e];
                let mut cols = vec![col];
                if with_ordinality {
                    let name = alias
                        .and_then(|a| a.columns.get(1).map(|c| ident(&c.name)))
                        .unwrap_or_else(|| "ordinality".into());
                    let mut col = OutCol::new(name, DataType::Int8);
                    col.qualifier = Some(alias_name);
                    row.push(Expr::Const(Value::Int(1)));
                    cols.push(col);
                }
                let plan = Plan::Values {
                    rows: vec![row],
                    cols: cols.clone(),
                };
                Ok((plan, Scope { cols }))
            }
            _ => Err(SqlError::new(
                code::UNDEFINED_FUNCTION,
                format!("function {name} does not exist"),
            )),
        }
    }

    /// A table, CTE or catalog relation by name.
    pub fn named_table(
        &mut self,
        _schema: Option<&str>,
        name: &ast::ObjectName,
        alias: Option<&ast::TableAlias>,
    ) -> SqlResult<(Plan, Scope)> {
        let (schema, rel) = relation_name(name)?;
        let alias_name = alias.map(|a| ident(&a.name)).unwrap_or_else(|| rel.clone());
        if schema.is_none() {
            if let Some(pos) = self.ctes.iter().rposition(|(n, _, _)| *n == rel) {
                let (_, q, col_names) = self.ctes[pos].clone();
                // A CTE sees only the CTEs defined before it.
                let hidden: Vec<_> = self.ctes.drain(pos..).collect();
                let saved_agg = self.agg.take();
                let plan = self.query(&q);
                self.agg = saved_agg;
                self.ctes.extend(hidden);
                let plan = plan?;
                let mut cols = plan.cols().to_vec();
                for (c, n) in cols.iter_mut().zip(col_names) {
                    c.name = n;
                }
                let cols = rename_cols(&cols, Some(alias_name), &alias.cloned())?;
                return Ok((plan, Scope { cols }));
            }
        }
        let catalog_schema = matches!(schema.as_deref(), Some("pg_catalog" | "information_schema"));
        if !catalog_schema {
            if let Some(s) = schema.as_deref() {
                if s != "public" && s != self.db {
                    return Err(SqlError::new(
                        code::UNDEFINED_TABLE,
                        format!("relation \"{s}.{rel}\" does not exist"),
                    ));
                }
            }
            if let Some(t) = self.snap.table(self.db, &rel) {
                return self.scan(t, alias_name, alias);
            }
        }
        let qualified = match &schema {
            Some(s) => format!("{s}.{rel}"),
            None => rel.clone(),
        };
        if let Some(cols) = crate::pg_catalog::columns(schema.as_deref(), &rel) {
            let mut out: Vec<OutCol> = cols
                .into_iter()
                .map(|(n, t)| {
                    let mut c = OutCol::new(n, t);
                    c.qualifier = Some(alias_name.clone());
                    c
                })
                .collect();
            out = rename_cols(&out, Some(alias_name), &alias.cloned())?;
            let plan = Plan::Virtual {
                name: crate::pg_catalog::canonical(schema.as_deref(), &rel),
                cols: out.clone(),
            };
            return Ok((plan, Scope { cols: out }));
        }
        Err(undefined_table(&qualified))
    }

    fn scan(
        &mut self,
        t: Arc<TableDesc>,
        alias_name: String,
        alias: Option<&ast::TableAlias>,
    ) -> SqlResult<(Plan, Scope)> {
        let cols: Vec<OutCol> = t
            .columns
            .iter()
            .map(|c| OutCol {
                name: c.name.clone(),
                ty: c.ty,
                qualifier: Some(alias_name.clone()),
                table_oid: t.oid,
                column_id: c.id as i16,
                hidden: c.hidden,
            })
            .collect();
        let cols = rename_cols(&cols, Some(alias_name), &alias.cloned())?;
        let plan = Plan::Scan {
            table: t,
            span: ScanSpan::Full,
            filter: None,
            cols: cols.clone(),
            locking: None,
        };
        Ok((plan, Scope { cols }))
    }

    // -----------------------------------------------------------------
    // Expressions
    // -----------------------------------------------------------------

    /// Requires a boolean (unknown literals are parsed as boolean).
    pub fn boolean(&mut self, e: Expr, t: DataType, clause: &str) -> SqlResult<Expr> {
        match t {
            DataType::Bool => Ok(e),
            DataType::Unknown => self.coerce(e, t, DataType::Bool),
            other => Err(SqlError::mismatch(format!(
                "argument of {clause} must be type boolean, not type {}",
                other.sql_name()
            ))),
        }
    }

    /// Converts `e` from type `from` to `to`, folding constants and fixing the
    /// type of an untyped parameter.
    pub fn coerce(&mut self, e: Expr, from: DataType, to: DataType) -> SqlResult<Expr> {
        if from == to {
            return Ok(e);
        }
        if let Expr::Param(i) = &e {
            if self.params.get(*i) == Some(&DataType::Unknown) {
                self.params[*i] = to;
                return Ok(e);
            }
        }
        if let Expr::Const(v) = &e {
            if from == DataType::Unknown || !matches!(to, DataType::RegClass) {
                return Ok(Expr::Const(cast(v.clone(), from, to, true)?));
            }
        }
        if from.base() == to.base()
            && !matches!(
                to,
                DataType::Numeric(Some(_)) | DataType::Varchar(Some(_)) | DataType::Char(_)
            )
        {
            return Ok(e);
        }
        Ok(Expr::Cast {
            expr: Box::new(e),
            from,
            to,
        })
    }

    /// Checks that a value of `from` can be stored in a column of `to`.
    pub fn assign(
        &mut self,
        e: Expr,
        from: DataType,
        to: DataType,
        column: &str,
    ) -> SqlResult<Expr> {
        if let Expr::Param(i) = &e {
            if self.params.get(*i) == Some(&DataType::Unknown) {
                self.params[*i] = to;
                return Ok(e);
            }
        }
        if !assignable(from, to) {
            return Err(SqlError::mismatch(format!(
                "column \"{column}\" is of type {} but expression is of type {}",
                to.sql_name(),
                from.sql_name()
            ))
            .with_detail("You will need to rewrite or cast the expression."));
        }
        Ok(e)
    }

    fn comparison(
        &mut self,
        op: CmpOp,
        l: Expr,
        lt: DataType,
        r: Expr,
        rt: DataType,
    ) -> SqlResult<Expr> {
        let common = match (lt, rt) {
            (DataType::Unknown, DataType::Unknown) => Some(DataType::Text),
            _ => DataType::common(lt, rt),
        };
        let Some(t) = common else {
            let sym = match op {
                CmpOp::Eq => "=",
                CmpOp::NotEq => "<>",
                CmpOp::Lt => "<",
                CmpOp::LtEq => "<=",
                CmpOp::Gt => ">",
                CmpOp::GtEq => ">=",
            };
            return Err(SqlError::new(
                code::UNDEFINED_FUNCTION,
                format!("operator does not exist: {} {sym} {}", lt.sql_name(), rt.sql_name()),
            )
            .with_detail("No operator matches the given name and argument types. You might need to add explicit type casts."));
        };
        // Compare integers with numerics without converting the column side.
        let t = if t.is_string() { DataType::Text } else { t };
        let l = if lt.is_numeric() && t.is_numeric() && lt != DataType::Unknown {
            l
        } else {
            self.coerce(l, lt, t)?
        };
        let r = if rt.is_numeric() && t.is_numeric() && rt != DataType::Unknown {
            r
        } else {
            self.coerce(r, rt, t)?
        };
        Ok(Expr::Cmp(op, Box::new(l), Box::new(r)))
    }

    fn subquery(&mut self, q: &ast::Query, scope: &Scope) -> SqlResult<(Plan, bool, usize)> {
        self.outer.push(scope.clone());
        self.correlated.push(false);
        let saved_agg = self.agg.take();
        let saved_seen = self.agg_seen;
        let saved_clause = self.no_agg_clause.take();
        let plan = self.query(q);
        self.agg = saved_agg;
        self.agg_seen = saved_seen;
        self.no_agg_clause = saved_clause;
        self.outer.pop();
        let correlated = self.correlated.pop().unwrap_or(false);
        let id = self.next_subquery;
        self.next_subquery += 1;
        Ok((plan?, correlated, id))
    }

    fn column_ref(
        &mut self,
        qualifier: Option<&str>,
        name: &str,
        scope: &Scope,
    ) -> SqlResult<(Expr, DataType)> {
        let find = |s: &Scope| -> SqlResult<Option<(usize, DataType)>> {
            let hits: Vec<usize> = s
                .cols
                .iter()
                .enumerate()
                .filter(|(_, c)| {
                    c.name == name && qualifier.is_none_or(|q| c.qualifier.as_deref() == Some(q))
                })
                .map(|(i, _)| i)
                .collect();
            let visible: Vec<usize> = hits
                .iter()
                .copied()
                .filter(|i| !s.cols[*i].hidden || s.cols[*i].name == "rowid")
                .collect();
            let pick = if visible.is_empty() { hits } else { visible };
            match pick.len() {
                0 => Ok(None),
                1 => Ok(Some((pick[0], s.cols[pick[0]].ty))),
                _ => Err(SqlError::new(
                    code::AMBIGUOUS_COLUMN,
                    format!("column reference \"{name}\" is ambiguous"),
                )),
            }
        };
        if let Some((i, t)) = find(scope)? {
            return Ok((Expr::Column(i), t));
        }
        if let Some(agg) = &self.agg {
            if find(&agg.pre_scope)?.is_some() {
                let c = OutCol {
                    qualifier: qualifier.map(str::to_string),
                    ..OutCol::new(name, DataType::Unknown)
                };
                return Err(ungrouped(&c));
            }
        }
        for depth in 1..=self.outer.len() {
            let s = &self.outer[self.outer.len() - depth];
            if let Some((i, t)) = find(s)? {
                let n = self.correlated.len();
                for flag in &mut self.correlated[n - depth..] {
                    *flag = true;
                }
                return Ok((Expr::Outer { depth, index: i }, t));
            }
        }
        match qualifier {
            Some(q) => {
                let known = scope.cols.iter().any(|c| c.qualifier.as_deref() == Some(q))
                    || self
                        .outer
                        .iter()
                        .any(|s| s.cols.iter().any(|c| c.qualifier.as_deref() == Some(q)));
                if known {
                    Err(SqlError::new(
                        code::UNDEFINED_COLUMN,
                        format!("column {q}.{name} does not exist"),
                    ))
                } else {
                    Err(SqlError::new(
                        code::UNDEFINED_TABLE,
                        format!("missing FROM-clause entry for table \"{q}\""),
                    ))
                }
            }
            None => Err(SqlError::new(
                code::UNDEFINED_COLUMN,
                format!("column \"{name}\" does not exist"),
            )),
        }
    }

    /// Binds an expression; returns it with its type.
    pub fn expr(&mut self, e: &ast::Expr, scope: &Scope) -> SqlResult<(Expr, DataType)> {
        if let Some(agg) = &self.agg {
            let text = e.to_string();
            if let Some(j) = agg.group_keys.iter().position(|k| *k == text) {
                if !matches!(e, ast::Expr::Value(_)) {
                    return Ok((Expr::Column(j), agg.group_types[j]));
                }
            }
        }
        use ast::Expr as A;
        match e {
            A::Identifier(id) => {
                let name = ident(id);
                match self.column_ref(None, &name, scope) {
                    Err(err) if err.code == code::UNDEFINED_COLUMN && id.quote_style.is_none() => {
                        // Niladic functions written without parentheses.
                        match name.as_str() {
                            "current_timestamp" | "current_date" | "current_user"
                            | "session_user" | "current_catalog" | "current_schema"
                            | "localtimestamp" | "user" => self.call(&name, vec![]),
                            _ => Err(err),
                        }
                    }
                    r => r,
                }
            }
            A::CompoundIdentifier(parts) => {
                let names: Vec<String> = parts.iter().map(ident).collect();
                let (q, n) = match names.len() {
                    2 => (names[0].clone(), names[1].clone()),
                    3 => (names[1].clone(), names[2].clone()),
                    _ => return Err(SqlError::unsupported(format!("name {e} is not supported"))),
                };
                self.column_ref(Some(&q), &n, scope)
            }
            A::Value(v) => self.literal(&v.value),
            A::Nested(inner) => self.expr(inner, scope),
            A::UnaryOp { op, expr } => {
                let (x, t) = self.expr(expr, scope)?;
                match op {
                    ast::UnaryOperator::Not => Ok((
                        Expr::Not(Box::new(self.boolean(x, t, "NOT")?)),
                        DataType::Bool,
                    )),
                    ast::UnaryOperator::Minus => {
                        if let Expr::Const(Value::Int(i)) = &x {
                            // Fold so that -2147483648 is an integer literal.
                            if let ast::Expr::Value(_) = expr.as_ref() {
                                let v = -(*i as i128);
                                return Ok(if v >= i32::MIN as i128 && v <= i32::MAX as i128 {
                                    (Expr::Const(Value::Int(v as i64)), DataType::Int4)
                                } else if v >= i64::MIN as i128 && v <= i64::MAX as i128 {
                                    (Expr::Const(Value::Int(v as i64)), DataType::Int8)
                                } else {
                                    (
                                        Expr::Const(Value::Numeric(
                                            rust_decimal::Decimal::from_i128_with_scale(v, 0),
                                        )),
                                        DataType::Numeric(None),
                                    )
                                });
                            }
                        }
                        if let Expr::Const(Value::Numeric(d)) = &x {
                            if let ast::Expr::Value(_) = expr.as_ref() {
                                let v = -*d;
                                if v.scale() == 0 {
                                    if let Ok(i) = i64::try_from(v) {
                                        let t = if i >= i32::MIN as i64 && i <= i32::MAX as i64 {
                                            DataType::Int4
                                        } else {
                                            DataType::Int8
                                        };
                                        return Ok((Expr::Const(Value::Int(i)), t));
                                    }
                                }
                                return Ok((Expr::Const(Value::Numeric(v)), t));
                            }
                        }
                        let t = if t == DataType::Unknown {
                            DataType::Float8
                        } else {
                            t
                        };
                        if !t.is_numeric() {
                            return Err(SqlError::new(
                                code::UNDEFINED_FUNCTION,
                                format!("operator does not exist: - {}", t.sql_name()),
                            ));
                        }
                        let x = self.coerce(x, DataType::Unknown.max_if(t), t)?;
                        Ok((Expr::Neg(Box::new(x), t), t))
                    }
                    ast::UnaryOperator::Plus => {
                        if !(t.is_numeric() || t == DataType::Unknown) {
                            return Err(SqlError::new(
                                code::UNDEFINED_FUNCTION,
                                format!("operator does not exist: + {}", t.sql_name()),
                            ));
                        }
                        Ok((x, t))
                    }
                    ast::UnaryOperator::PGAbs => self.call_bound("abs", vec![(x, t)]),
                    ast::UnaryOperator::PGSquareRoot => self.call_bound("sqrt", vec![(x, t)]),
                    other => Err(SqlError::unsupported(format!(
                        "operator {other} is not supported"
                    ))),
                }
            }
            A::BinaryOp { left, op, right } => self.binary(left, op, right, scope),
            A::IsNull(x) | A::IsNotNull(x) => {
                let (b, _) = self.expr(x, scope)?;
                Ok((
                    Expr::IsNull(Box::new(b), matches!(e, A::IsNotNull(_))),
                    DataType::Bool,
                ))
            }
            A::IsTrue(x) | A::IsNotTrue(x) | A::IsFalse(x) | A::IsNotFalse(x) => {
                let (b, t) = self.expr(x, scope)?;
                let b = self.boolean(b, t, "IS TRUE")?;
                let value = matches!(e, A::IsTrue(_) | A::IsNotTrue(_));
                let negated = matches!(e, A::IsNotTrue(_) | A::IsNotFalse(_));
                Ok((Expr::IsBool(Box::new(b), value, negated), DataType::Bool))
            }
            A::IsUnknown(x) | A::IsNotUnknown(x) => {
                let (b, t) = self.expr(x, scope)?;
                let b = self.boolean(b, t, "IS UNKNOWN")?;
                Ok((
                    Expr::IsNull(Box::new(b), matches!(e, A::IsNotUnknown(_))),
                    DataType::Bool,
                ))
            }
            A::IsDistinctFrom(a, b) | A::IsNotDistinctFrom(a, b) => {
                let (x, xt) = self.expr(a, scope)?;
                let (y, yt) = self.expr(b, scope)?;
                let Expr::Cmp(_, x, y) = self.comparison(CmpOp::Eq, x, xt, y, yt)? else {
                    unreachable!("comparison returns Cmp")
                };
                Ok((
                    Expr::IsDistinct(x, y, matches!(e, A::IsNotDistinctFrom(..))),
                    DataType::Bool,
                ))
            }
            A::InList {
                expr,
                list,
                negated,
            } => {
                let (x, xt) = self.expr(expr, scope)?;
                let mut items = Vec::new();
                let mut t = xt;
                for i in list {
                    let (b, bt) = self.expr(i, scope)?;
                    t = DataType::common(t, bt).ok_or_else(|| {
                        SqlError::new(
                            code::UNDEFINED_FUNCTION,
                            format!(
                                "operator does not exist: {} = {}",
                                xt.sql_name(),
                                bt.sql_name()
                            ),
                        )
                    })?;
                    items.push((b, bt));
                }
                let t = if t == DataType::Unknown || t.is_string() {
                    DataType::Text
                } else {
                    t
                };
                let x = if xt.is_numeric() && t.is_numeric() {
                    x
                } else {
                    self.coerce(x, xt, t)?
                };
                let mut out = Vec::new();
                for (b, bt) in items {
                    out.push(if bt.is_numeric() && t.is_numeric() {
                        b
                    } else {
                        self.coerce(b, bt, t)?
                    });
                }
                Ok((
                    Expr::InList {
                        expr: Box::new(x),
                        list: out,
                        negated: *negated,
                    },
                    DataType::Bool,
                ))
            }
            A::InSubquery {
                expr,
                subquery,
                negated,
            } => {
                let (x, xt) = self.expr(expr, scope)?;
                let (plan, correlated, id) = self.subquery(subquery, scope)?;
                if plan.cols().len() != 1 {
                    return Err(SqlError::syntax("subquery has too many columns"));
                }
                let st = plan.cols()[0].ty;
                let t = DataType::common(xt, st).ok_or_else(|| {
                    SqlError::new(
                        code::UNDEFINED_FUNCTION,
                        format!(
                            "operator does not exist: {} = {}",
                            xt.sql_name(),
                            st.sql_name()
                        ),
                    )
                })?;
                let x = if xt.is_numeric() && t.is_numeric() {
                    x
                } else {
                    self.coerce(x, xt, t)?
                };
                let kind = if *negated {
                    SubqueryKind::All(Box::new(x), CmpOp::NotEq)
                } else {
                    SubqueryKind::Any(Box::new(x), CmpOp::Eq)
                };
                Ok((
                    Expr::Subquery {
                        id,
                        plan: Box::new(plan),
                        kind,
                        correlated,
                    },
                    DataType::Bool,
                ))
            }
            A::AnyOp {
                left,
                compare_op,
                right,
                ..
            }
            | A::AllOp {
                left,
                compare_op,
                right,
            } => {
                let ast::Expr::Subquery(q) = right.as_ref() else {
                    let (x, _) = self.expr(left, scope)?;
                    let (arr, at) = self.expr(right, scope)?;
                    let arr = if at == DataType::Unknown {
                        self.coerce(arr, at, DataType::TextArray)?
                    } else {
                        arr
                    };
                    let op = cmp_op(compare_op).ok_or_else(|| {
                        SqlError::unsupported(format!("operator {compare_op} ANY"))
                    })?;
                    return Ok((
                        Expr::ArrayCmp {
                            expr: Box::new(x),
                            op,
                            array: Box::new(arr),
                            all: matches!(e, A::AllOp { .. }),
                        },
                        DataType::Bool,
                    ));
                };
                let (x, xt) = self.expr(left, scope)?;
                let (plan, correlated, id) = self.subquery(q, scope)?;
                if plan.cols().len() != 1 {
                    return Err(SqlError::syntax("subquery has too many columns"));
                }
                let st = plan.cols()[0].ty;
                let t = DataType::common(xt, st).ok_or_else(|| {
                    SqlError::new(code::UNDEFINED_FUNCTION, "operator does not exist")
                })?;
                let x = if xt.is_numeric() && t.is_numeric() {
                    x
                } else {
                    self.coerce(x, xt, t)?
                };
                let op = cmp_op(compare_op)
                    .ok_or_else(|| SqlError::unsupported(format!("operator {compare_op} ANY")))?;
                let kind = if matches!(e, A::AnyOp { .. }) {
                    SubqueryKind::Any(Box::new(x), op)
                } else {
                    SubqueryKind::All(Box::new(x), op)
                };
                Ok((
                    Expr::Subquery {
                        id,
                        plan: Box::new(plan),
                        kind,
                        correlated,
                    },
                    DataType::Bool,
                ))
            }
            A::Exists { subquery, negated } => {
                let (plan, correlated, id) = self.subquery(subquery, scope)?;
                let sub = Expr::Subquery {
                    id,
                    plan: Box::new(plan),
                    kind: SubqueryKind::Exists,
                    correlated,
                };
                Ok((
                    if *negated {
                        Expr::Not(Box::new(sub))
                    } else {
                        sub
                    },
                    DataType::Bool,
                ))
            }
            A::Subquery(q) => {
                let (plan, correlated, id) = self.subquery(q, scope)?;
                if plan.cols().len() != 1 {
                    return Err(SqlError::syntax("subquery must return only one column"));
                }
                let t = plan.cols()[0].ty;
                Ok((
                    Expr::Subquery {
                        id,
                        plan: Box::new(plan),
                        kind: SubqueryKind::Scalar,
                        correlated,
                    },
                    t,
                ))
            }
            A::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let (x, xt) = self.expr(expr, scope)?;
                let (lo, lt) = self.expr(low, scope)?;
                let (hi, ht) = self.expr(high, scope)?;
                let a = self.comparison(CmpOp::GtEq, x.clone(), xt, lo, lt)?;
                let b = self.comparison(CmpOp::LtEq, x, xt, hi, ht)?;
                let both = Expr::And(Box::new(a), Box::new(b));
                Ok((
                    if *negated {
                        Expr::Not(Box::new(both))
                    } else {
                        both
                    },
                    DataType::Bool,
                ))
            }
            A::Like {
                negated,
                expr,
                pattern,
                escape_char,
                any,
                ..
            }
            | A::ILike {
                negated,
                expr,
                pattern,
                escape_char,
                any,
                ..
            } => {
                if *any {
                    return Err(SqlError::unsupported("LIKE ANY is not supported"));
                }
                let (x, xt) = self.expr(expr, scope)?;
                let (p, pt) = self.expr(pattern, scope)?;
                for t in [xt, pt] {
                    if !(t.is_string() || t == DataType::Unknown) {
                        return Err(SqlError::new(
                            code::UNDEFINED_FUNCTION,
                            format!("operator does not exist: {} ~~ unknown", t.sql_name()),
                        ));
                    }
                }
                let x = self.coerce(x, xt, DataType::Text)?;
                let p = self.coerce(p, pt, DataType::Text)?;
                let escape = match escape_char {
                    Some(ec) => {
                        let (ee, et) = self.expr(ec, scope)?;
                        Some(Box::new(self.coerce(ee, et, DataType::Text)?))
                    }
                    None => None,
                };
                Ok((
                    Expr::Like {
                        expr: Box::new(x),
                        pattern: Box::new(p),
                        escape,
                        case_insensitive: matches!(e, A::ILike { .. }),
                        negated: *negated,
                    },
                    DataType::Bool,
                ))
            }
            A::Cast {
                expr,
                data_type: dt,
                ..
            } => {
                let to = data_type(dt)?;
                let (x, t) = self.expr(expr, scope)?;
                if let Expr::Param(i) = &x {
                    if self.params.get(*i) == Some(&DataType::Unknown) {
                        self.params[*i] = to;
                        return Ok((x, to));
                    }
                }
                if t == DataType::Unknown || t == to {
                    if let Expr::Const(v) = &x {
                        if to == DataType::RegClass {
                            return Ok((
                                Expr::Cast {
                                    expr: Box::new(x.clone()),
                                    from: DataType::Text,
                                    to,
                                },
                                to,
                            ));
                        }
                        return Ok((
                            Expr::Const(cast(v.clone(), DataType::Unknown.max_if(t), to, true)?),
                            to,
                        ));
                    }
                }
                if !castable(t, to) {
                    return Err(SqlError::new(
                        code::CANNOT_COERCE,
                        format!("cannot cast type {} to {}", t.sql_name(), to.sql_name()),
                    ));
                }
                Ok((
                    Expr::Cast {
                        expr: Box::new(x),
                        from: t,
                        to,
                    },
                    to,
                ))
            }
            A::TypedString(ts) => {
                let to = data_type(&ts.data_type)?;
                let s = ts.value.clone().into_string().unwrap_or_default();
                Ok((
                    Expr::Const(cast(Value::Text(s), DataType::Unknown, to, true)?),
                    to,
                ))
            }
            A::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let op = match operand {
                    Some(o) => Some(self.expr(o, scope)?),
                    None => None,
                };
                let mut whens = Vec::new();
                let mut result_t = DataType::Unknown;
                let mut results = Vec::new();
                for cw in conditions {
                    let (c, ct) = self.expr(&cw.condition, scope)?;
                    let c = match &op {
                        Some((_, ot)) => {
                            let t = DataType::common(*ot, ct).ok_or_else(|| {
                                SqlError::new(code::UNDEFINED_FUNCTION, "operator does not exist")
                            })?;
                            let _ = t;
                            if ct == DataType::Unknown && *ot != DataType::Unknown {
                                self.coerce(c, ct, *ot)?
                            } else {
                                c
                            }
                        }
                        None => self.boolean(c, ct, "CASE/WHEN")?,
                    };
                    let (r, rt) = self.expr(&cw.result, scope)?;
                    result_t = DataType::common(result_t, rt).ok_or_else(|| {
                        SqlError::mismatch(format!(
                            "CASE types {} and {} cannot be matched",
                            result_t.sql_name(),
                            rt.sql_name()
                        ))
                    })?;
                    whens.push(c);
                    results.push((r, rt));
                }
                let otherwise = match else_result {
                    Some(x) => {
                        let (r, rt) = self.expr(x, scope)?;
                        result_t = DataType::common(result_t, rt).ok_or_else(|| {
                            SqlError::mismatch(format!(
                                "CASE types {} and {} cannot be matched",
                                result_t.sql_name(),
                                rt.sql_name()
                            ))
                        })?;
                        Some((r, rt))
                    }
                    None => None,
                };
                let result_t = if result_t == DataType::Unknown {
                    DataType::Text
                } else {
                    result_t
                };
                let mut pairs = Vec::new();
                for (w, (r, rt)) in whens.into_iter().zip(results) {
                    pairs.push((w, self.coerce(r, rt, result_t)?));
                }
                let otherwise = match otherwise {
                    Some((r, rt)) => Some(Box::new(self.coerce(r, rt, result_t)?)),
                    None => None,
                };
                let operand = match op {
                    Some((o, ot)) => Some(Box::new(if ot == DataType::Unknown {
                        self.coerce(o, ot, DataType::Text)?
                    } else {
                        o
                    })),
                    None => None,
                };
                Ok((
                    Expr::Case {
                        operand,
                        whens: pairs,
                        otherwise,
                    },
                    result_t,
                ))
            }
            A::Function(f) => self.function(f, scope),
            A::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let mut args = vec![self.expr(expr, scope)?];
                args.push(match substring_from {
                    Some(x) => self.expr(x, scope)?,
                    None => (Expr::Const(Value::Int(1)), DataType::Int4),
                });
                if let Some(x) = substring_for {
                    args.push(self.expr(x, scope)?);
                }
                self.call_bound("substring", args)
            }
            A::Trim {
                expr,
                trim_where,
                trim_what,
                trim_characters,
            } => {
                let name = match trim_where {
                    Some(ast::TrimWhereField::Leading) => "ltrim",
                    Some(ast::TrimWhereField::Trailing) => "rtrim",
                    _ => "btrim",
                };
                let mut args = vec![self.expr(expr, scope)?];
                if let Some(w) = trim_what {
                    args.push(self.expr(w, scope)?);
                } else if let Some(chars) = trim_characters {
                    if let Some(c) = chars.first() {
                        args.push(self.expr(c, scope)?);
                    }
                }
                self.call_bound(name, args)
            }
            A::Position { expr, r#in } => {
                let needle = self.expr(expr, scope)?;
                let hay = self.expr(r#in, scope)?;
                self.call_bound("strpos", vec![hay, needle])
            }
            A::Ceil { expr, .. } => {
                let a = self.expr(expr, scope)?;
                self.call_bound("ceil", vec![a])
            }
            A::Floor { expr, .. } => {
                let a = self.expr(expr, scope)?;
                self.call_bound("floor", vec![a])
            }
            A::Extract { field, expr, .. } => {
                let f = (
                    Expr::Const(Value::Text(field.to_string().to_lowercase())),
                    DataType::Text,
                );
                let a = self.expr(expr, scope)?;
                let (e, _) = self.call_bound("date_part", vec![f, a])?;
                Ok((
                    Expr::Cast {
                        expr: Box::new(e),
                        from: DataType::Float8,
                        to: DataType::Numeric(None),
                    },
                    DataType::Numeric(None),
                ))
            }
            A::Collate { expr, .. } => self.expr(expr, scope),
            A::Array(arr) => {
                let mut items = Vec::new();
                let mut t = DataType::Unknown;
                for x in &arr.elem {
                    let (b, bt) = self.expr(x, scope)?;
                    t = DataType::common(t, bt)
                        .ok_or_else(|| SqlError::mismatch("ARRAY types cannot be matched"))?;
                    items.push(b);
                }
                let at = if t.is_integer() {
                    DataType::IntArray
                } else {
                    DataType::TextArray
                };
                let list: Vec<String> = items.iter().map(|i| i.to_string()).collect();
                let _ = list;
                // Arrays are built from constants only.
                let mut vals = Vec::new();
                for i in items {
                    match i {
                        Expr::Const(v) => vals.push(v),
                        _ => {
                            return Err(SqlError::unsupported(
                                "ARRAY of non-constant expressions is not supported",
                            ))
                        }
                    }
                }
                Ok((Expr::Const(Value::Array(vals)), at))
            }
            A::CompoundFieldAccess { root, access_chain } => match access_chain.as_slice() {
                [ast::AccessExpr::Subscript(ast::Subscript::Index { index })] => {
                    let arr = self.expr(root, scope)?;
                    let idx = self.expr(index, scope)?;
                    self.call_bound("array_element", vec![arr, idx])
                }
                _ => Err(SqlError::unsupported(format!(
                    "expression {e} is not supported"
                ))),
            },
            A::Tuple(_) => Err(SqlError::unsupported("row values are not supported")),
            A::Interval(_) => Err(SqlError::unsupported("type interval is not supported")),
            A::AtTimeZone { .. } => Err(SqlError::unsupported("AT TIME ZONE is not supported")),
            other => Err(SqlError::unsupported(format!(
                "expression {other} is not supported"
            ))),
        }
    }

    fn literal(&mut self, v: &ast::Value) -> SqlResult<(Expr, DataType)> {
        Ok(match v {
            ast::Value::Number(n, _) => {
                if !n.contains(['.', 'e', 'E']) {
                    if let Ok(i) = n.parse::<i64>() {
                        let t = if i >= i32::MIN as i64 && i <= i32::MAX as i64 {
                            DataType::Int4
                        } else {
                            DataType::Int8
                        };
                        return Ok((Expr::Const(Value::Int(i)), t));
                    }
                }
                match crate::types::parse_decimal(n) {
                    Ok(d) => (Expr::Const(Value::Numeric(d)), DataType::Numeric(None)),
                    // Beyond numeric's 28 digits: keep the value as a float.
                    Err(_) => match n.parse::<f64>() {
                        Ok(f) if f.is_finite() => (Expr::Const(Value::Float(f)), DataType::Float8),
                        _ => {
                            return Err(SqlError::out_of_range(format!(
                                "value \"{n}\" is out of range"
                            )))
                        }
                    },
                }
            }
            ast::Value::SingleQuotedString(s)
            | ast::Value::EscapedStringLiteral(s)
            | ast::Value::DollarQuotedString(ast::DollarQuotedString { value: s, .. }) => {
                (Expr::Const(Value::Text(s.clone())), DataType::Unknown)
            }
            ast::Value::HexStringLiteral(s) => {
                (Expr::Const(Value::Text(s.clone())), DataType::Unknown)
            }
            ast::Value::Boolean(b) => (Expr::Const(Value::Bool(*b)), DataType::Bool),
            ast::Value::Null => (Expr::Const(Value::Null), DataType::Unknown),
            ast::Value::Placeholder(p) => {
                let n: usize = p
                    .trim_start_matches('$')
                    .parse()
                    .map_err(|_| SqlError::syntax(format!("syntax error at or near \"{p}\"")))?;
                if n == 0 {
                    return Err(SqlError::new(
                        code::UNDEFINED_PARAMETER,
                        format!("there is no parameter ${n}"),
                    ));
                }
                if self.params.len() < n {
                    self.params.resize(n, DataType::Unknown);
                }
                (Expr::Param(n - 1), self.params[n - 1])
            }
            other => {
                return Err(SqlError::unsupported(format!(
                    "literal {other} is not supported"
                )))
            }
        })
    }

    fn binary(
        &mut self,
        left: &ast::Expr,
        op: &ast::BinaryOperator,
        right: &ast::Expr,
        scope: &Scope,
    ) -> SqlResult<(Expr, DataType)> {
        use ast::BinaryOperator as B;
        let (l, lt) = self.expr(left, scope)?;
        let (r, rt) = self.expr(right, scope)?;
        if let Some(c) = cmp_op(op) {
            return Ok((self.comparison(c, l, lt, r, rt)?, DataType::Bool));
        }
        let op = match op {
            B::PGCustomBinaryOperator(parts) => {
                let last = parts.last().map(String::as_str).unwrap_or("");
                match last {
                    "~" => B::PGRegexMatch,
                    "~*" => B::PGRegexIMatch,
                    "!~" => B::PGRegexNotMatch,
                    "!~*" => B::PGRegexNotIMatch,
                    "=" => return Ok((self.comparison(CmpOp::Eq, l, lt, r, rt)?, DataType::Bool)),
                    "~~" => B::PGLikeMatch,
                    _ => {
                        return Err(SqlError::new(
                            code::UNDEFINED_FUNCTION,
                            format!("operator does not exist: {last}"),
                        ))
                    }
                }
            }
            o => o.clone(),
        };
        match op {
            B::And | B::Or => {
                let clause = if op == B::And { "AND" } else { "OR" };
                let l = self.boolean(l, lt, clause)?;
                let r = self.boolean(r, rt, clause)?;
                Ok((
                    if op == B::And {
                        Expr::And(Box::new(l), Box::new(r))
                    } else {
                        Expr::Or(Box::new(l), Box::new(r))
                    },
                    DataType::Bool,
                ))
            }
            B::StringConcat => {
                let ok = |t: DataType| t.is_string() || t == DataType::Unknown;
                if !ok(lt) && !ok(rt) {
                    return Err(SqlError::new(
                        code::UNDEFINED_FUNCTION,
                        format!(
                            "operator does not exist: {} || {}",
                            lt.sql_name(),
                            rt.sql_name()
                        ),
                    ));
                }
                // Untyped literals become text; char(n) drops its padding.
                let to_text =
                    |t: DataType| t == DataType::Unknown || matches!(t, DataType::Char(_));
                let l = if to_text(lt) {
                    self.coerce(l, lt, DataType::Text)?
                } else {
                    l
                };
                let r = if to_text(rt) {
                    self.coerce(r, rt, DataType::Text)?
                } else {
                    r
                };
                Ok((Expr::Concat(Box::new(l), Box::new(r)), DataType::Text))
            }
            B::PGRegexMatch
            | B::PGRegexIMatch
            | B::PGRegexNotMatch
            | B::PGRegexNotIMatch
            | B::PGLikeMatch
            | B::PGILikeMatch
            | B::PGNotLikeMatch
            | B::PGNotILikeMatch => {
                let l = self.coerce(l, lt, DataType::Text)?;
                let r = self.coerce(r, rt, DataType::Text)?;
                let e = match op {
                    B::PGRegexMatch
                    | B::PGRegexIMatch
                    | B::PGRegexNotMatch
                    | B::PGRegexNotIMatch => Expr::Regex {
                        expr: Box::new(l),
                        pattern: Box::new(r),
                        case_insensitive: matches!(op, B::PGRegexIMatch | B::PGRegexNotIMatch),
                        negated: matches!(op, B::PGRegexNotMatch | B::PGRegexNotIMatch),
                    },
                    _ => Expr::Like {
                        expr: Box::new(l),
                        pattern: Box::new(r),
                        escape: None,
                        case_insensitive: matches!(op, B::PGILikeMatch | B::PGNotILikeMatch),
                        negated: matches!(op, B::PGNotLikeMatch | B::PGNotILikeMatch),
                    },
                };
                Ok((e, DataType::Bool))
            }
            B::Plus | B::Minus | B::Multiply | B::Divide | B::Modulo | B::PGExp => {
                let aop = match op {
                    B::Plus => ArithOp::Add,
                    B::Minus => ArithOp::Sub,
                    B::Multiply => ArithOp::Mul,
                    B::Divide => ArithOp::Div,
                    B::Modulo => ArithOp::Mod,
                    _ => ArithOp::Pow,
                };
                self.arith(aop, l, lt, r, rt)
            }
            other => Err(SqlError::unsupported(format!(
                "operator {other} is not supported"
            ))),
        }
    }

    fn arith(
        &mut self,
        op: ArithOp,
        l: Expr,
        lt: DataType,
        r: Expr,
        rt: DataType,
    ) -> SqlResult<(Expr, DataType)> {
        // Date arithmetic with integers (days) and between dates.
        match (lt, rt, op) {
            (DataType::Date, t, ArithOp::Add | ArithOp::Sub)
                if t.is_integer() || t == DataType::Unknown =>
            {
                let r = self.coerce(r, rt, DataType::Int4)?;
                let r = if op == ArithOp::Sub {
                    Expr::Neg(Box::new(r), DataType::Int4)
                } else {
                    r
                };
                return Ok((
                    Expr::Func {
                        func: Func::DateAddDays,
                        args: vec![l, r],
                        ty: DataType::Date,
                    },
                    DataType::Date,
                ));
            }
            (DataType::Date, DataType::Date, ArithOp::Sub) => {
                return Ok((
                    Expr::Func {
                        func: Func::DateDiff,
                        args: vec![l, r],
                        ty: DataType::Int4,
                    },
                    DataType::Int4,
                ));
            }
            _ => {}
        }
        let lt2 = if lt == DataType::Unknown {
            if rt.is_numeric() {
                rt
            } else {
                DataType::Numeric(None)
            }
        } else {
            lt
        };
        let rt2 = if rt == DataType::Unknown {
            if lt.is_numeric() {
                lt
            } else {
                DataType::Numeric(None)
            }
        } else {
            rt
        };
        if !lt2.is_numeric() || !rt2.is_numeric() {
            let sym = match op {
                ArithOp::Add => "+",
                ArithOp::Sub => "-",
                ArithOp::Mul => "*",
                ArithOp::Div => "/",
                ArithOp::Mod => "%",
                ArithOp::Pow => "^",
            };
            return Err(SqlError::new(
                code::UNDEFINED_FUNCTION,
                format!("operator does not exist: {} {sym} {}", lt.sql_name(), rt.sql_name()),
            )
            .with_detail("No operator matches the given name and argument types. You might need to add explicit type casts."));
        }
        let mut t = DataType::promote(lt2, rt2);
        if op == ArithOp::Pow && t != DataType::Numeric(None) {
            t = DataType::Float8;
        }
        if matches!(t, DataType::Oid | DataType::RegClass | DataType::RegType) {
            t = DataType::Int8;
        }
        let l = self.coerce(l, lt, t)?;
        let r = self.coerce(r, rt, t)?;
        Ok((Expr::Arith(op, Box::new(l), Box::new(r), t), t))
    }

    fn function(&mut self, f: &ast::Function, scope: &Scope) -> SqlResult<(Expr, DataType)> {
        let parts = object_name(&f.name);
        let name = parts.last().cloned().unwrap_or_default();
        if f.over.is_some() {
            return Err(SqlError::unsupported("window functions are not supported"));
        }
        if let (ast::FunctionArguments::Subquery(q), "array") = (&f.args, name.as_str()) {
            let (plan, correlated, id) = self.subquery(q, scope)?;
            if plan.cols().len() != 1 {
                return Err(SqlError::syntax("subquery must return only one column"));
            }
            let t = if plan.cols()[0].ty.is_integer() {
                DataType::IntArray
            } else {
                DataType::TextArray
            };
            return Ok((
                Expr::Subquery {
                    id,
                    plan: Box::new(plan),
                    kind: SubqueryKind::Array,
                    correlated,
                },
                t,
            ));
        }
        let (args, distinct, star) = function_args(f)?;
        if AGGREGATES.contains(&name.as_str()) {
            return self.aggregate(&name, &args, distinct, star, f.filter.as_deref(), scope);
        }
        if distinct || star {
            return Err(SqlError::syntax(format!(
                "DISTINCT or * specified, but {name} is not an aggregate function"
            )));
        }
        let mut bound = Vec::new();
        for a in &args {
            bound.push(self.expr(a, scope)?);
        }
        self.call_bound(&name, bound)
    }

    fn call(&mut self, name: &str, args: Vec<(Expr, DataType)>) -> SqlResult<(Expr, DataType)> {
        self.call_bound(name, args)
    }

    fn call_bound(
        &mut self,
        name: &str,
        args: Vec<(Expr, DataType)>,
    ) -> SqlResult<(Expr, DataType)> {
        if name == "pg_typeof" && args.len() == 1 {
            return Ok((
                Expr::Const(Value::Text(args[0].1.sql_name())),
                DataType::RegType,
            ));
        }
        let types: Vec<DataType> = args.iter().map(|(_, t)| *t).collect();
        let (func, ret, targets) = functions::resolve(name, &types)?;
        let mut out = Vec::new();
        for ((e, t), to) in args.into_iter().zip(targets) {
            out.push(
                if t == to || (t.is_numeric() && to.is_numeric() && t.base() == to.base()) {
                    e
                } else {
                    self.coerce(e, t, to)?
                },
            );
        }
        Ok((
            Expr::Func {
                func,
                args: out,
                ty: ret,
            },
            ret,
        ))
    }

    fn aggregate(
        &mut self,
        name: &str,
        args: &[ast::Expr],
        distinct: bool,
        star: bool,
        filter: Option<&ast::Expr>,
        scope: &Scope,
    ) -> SqlResult<(Expr, DataType)> {
        if let Some(clause) = self.no_agg_clause {
            return Err(SqlError::new(
                code::GROUPING_ERROR,
                format!("aggregate functions are not allowed in {clause}"),
            ));
        }
        let Some(agg) = self.agg.take() else {
            // Not yet known to be an aggregate query: note it and bind the
            // arguments for their side effects (parameter types).
            self.agg_seen = true;
            for a in args {
                let _ = self.expr(a, scope);
            }
            return Ok((
                Expr::Const(Value::Null),
                agg_result_type(name, None).unwrap_or(DataType::Int8),
            ));
        };
        let pre = agg.pre_scope.clone();
        let result = {
            let saved = self.no_agg_clause.replace("aggregate function calls");
            let r = (|| -> SqlResult<AggCall> {
                let (func, arg, arg_ty, extra) = if star || (name == "count" && args.is_empty()) {
                    (AggFunc::CountStar, None, DataType::Int8, None)
                } else {
                    let want = if name == "string_agg" { 2 } else { 1 };
                    if args.len() != want {
                        return Err(SqlError::new(
                            code::UNDEFINED_FUNCTION,
                            format!(
                                "function {name} with {} arguments does not exist",
                                args.len()
                            ),
                        ));
                    }
                    let (a, t) = self.expr(&args[0], &pre)?;
                    let (a, t) = if t == DataType::Unknown {
                        (self.coerce(a, t, DataType::Text)?, DataType::Text)
                    } else {
                        (a, t)
                    };
                    let func = match name {
                        "count" => AggFunc::Count,
                        "sum" => AggFunc::Sum,
                        "avg" => AggFunc::Avg,
                        "min" => AggFunc::Min,
                        "max" => AggFunc::Max,
                        "bool_and" | "every" => AggFunc::BoolAnd,
                        "bool_or" => AggFunc::BoolOr,
                        "string_agg" => AggFunc::StringAgg,
                        _ => AggFunc::ArrayAgg,
                    };
                    let extra = if name == "string_agg" {
                        let (s, st) = self.expr(&args[1], &pre)?;
                        Some(self.coerce(s, st, DataType::Text)?)
                    } else {
                        None
                    };
                    (func, Some(a), t, extra)
                };
                let ty = agg_result_type(name, Some(arg_ty)).ok_or_else(|| {
                    SqlError::new(
                        code::UNDEFINED_FUNCTION,
                        format!("function {name}({}) does not exist", arg_ty.sql_name()),
                    )
                })?;
                let ty = if func == AggFunc::CountStar {
                    DataType::Int8
                } else {
                    ty
                };
                let filter = match filter {
                    Some(fx) => {
                        let (fe, ft) = self.expr(fx, &pre)?;
                        Some(self.boolean(fe, ft, "FILTER")?)
                    }
                    None => None,
                };
                Ok(AggCall {
                    func,
                    arg,
                    arg_ty,
                    extra,
                    distinct,
                    filter,
                    ty,
                })
            })();
            self.no_agg_clause = saved;
            r
        };
        let mut agg = agg;
        let call = match result {
            Ok(c) => c,
            Err(e) => {
                let nested = e.message.contains("aggregate function calls");
                self.agg = Some(agg);
                if nested {
                    return Err(SqlError::new(
                        code::GROUPING_ERROR,
                        "aggregate function calls cannot be nested",
                    ));
                }
                return Err(e);
            }
        };
        let ty = call.ty;
        let index = agg.group_keys.len() + agg.aggs.len();
        agg.aggs.push(call);
        self.agg = Some(agg);
        Ok((Expr::Column(index), ty))
    }
}

fn agg_result_type(name: &str, arg: Option<DataType>) -> Option<DataType> {
    let t = arg.unwrap_or(DataType::Int8);
    Some(match name {
        "count" => DataType::Int8,
        "sum" => match t {
            DataType::Int2 | DataType::Int4 => DataType::Int8,
            DataType::Int8 | DataType::Numeric(_) => DataType::Numeric(None),
            DataType::Float4 => DataType::Float4,
            DataType::Float8 => DataType::Float8,
            _ => return None,
        },
        "avg" => match t {
            t if t.is_integer() || matches!(t, DataType::Numeric(_)) => DataType::Numeric(None),
            DataType::Float4 | DataType::Float8 => DataType::Float8,
            _ => return None,
        },
        "min" | "max" => {
            if matches!(t, DataType::Bool | DataType::TextArray | DataType::IntArray) {
                return None;
            }
            t.base()
        }
        "bool_and" | "bool_or" | "every" => {
            if t != DataType::Bool {
                return None;
            }
            DataType::Bool
        }
        "string_agg" => DataType::Text,
        _ => {
            if t.is_integer() {
                DataType::IntArray
            } else {
                DataType::TextArray
            }
        }
    })
}

fn ungrouped(c: &OutCol) -> SqlError {
    let name = match &c.qualifier {
        Some(q) => format!("{q}.{}", c.name),
        None => c.name.clone(),
    };
    SqlError::new(
        code::GROUPING_ERROR,
        format!("column \"{name}\" must appear in the GROUP BY clause or be used in an aggregate function"),
    )
}

fn cmp_op(op: &ast::BinaryOperator) -> Option<CmpOp> {
    use ast::BinaryOperator as B;
    Some(match op {
        B::Eq => CmpOp::Eq,
        B::NotEq => CmpOp::NotEq,
        B::Lt => CmpOp::Lt,
        B::LtEq => CmpOp::LtEq,
        B::Gt => CmpOp::Gt,
        B::GtEq => CmpOp::GtEq,
        _ => return None,
    })
}

fn castable(from: DataType, to: DataType) -> bool {
    if from == DataType::Unknown || from.base() == to.base() || to.is_string() || from.is_string() {
        return true;
    }
    matches!((from.category(), to.category()), ('N', 'N') | ('D', 'D'))
        || matches!(
            (from, to),
            (DataType::Int4, DataType::Bool) | (DataType::Bool, DataType::Int4)
        )
}

fn sort_key(expr: Expr, o: &ast::OrderByOptions) -> SortKey {
    let desc = matches!(o.sort, Some(ast::OrderBySort::Desc));
    // PostgreSQL: NULLs are larger than everything, so last ascending.
    let nulls_first = o.nulls_first.unwrap_or(desc);
    SortKey {
        expr,
        desc,
        nulls_first,
    }
}

fn same_expr(a: &Expr, b: &Expr) -> bool {
    a.to_string() == b.to_string() && !matches!(a, Expr::Subquery { .. })
}

fn rename_cols(
    cols: &[OutCol],
    qualifier: Option<String>,
    alias: &Option<ast::TableAlias>,
) -> SqlResult<Vec<OutCol>> {
    let mut out: Vec<OutCol> = cols.to_vec();
    if let Some(q) = qualifier {
        for c in out.iter_mut() {
            c.qualifier = Some(q.clone());
        }
    }
    if let Some(a) = alias {
        let visible: Vec<usize> = out
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.hidden)
            .map(|(i, _)| i)
            .collect();
        if a.columns.len() > visible.len() {
            return Err(SqlError::syntax(format!(
                "table \"{}\" has {} columns available but {} columns specified",
                ident(&a.name),
                visible.len(),
                a.columns.len()
            )));
        }
        for (c, i) in a.columns.iter().zip(visible) {
            out[i].name = ident(&c.name);
        }
    }
    Ok(out)
}

trait MaxIf {
    fn max_if(self, t: DataType) -> DataType;
}

impl MaxIf for DataType {
    /// `t`, unless `t` is unknown (then self).
    fn max_if(self, t: DataType) -> DataType {
        if t == DataType::Unknown {
            self
        } else {
            t
        }
    }
}

/// The default expression of a column as a bound expression.
pub fn bind_default(binder: &mut Binder, sql: &str) -> SqlResult<(Expr, DataType)> {
    let dialect = sqlparser::dialect::PostgreSqlDialect {};
    let e = sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| SqlError::syntax(e.to_string()))?;
    binder.expr(&e, &Scope::default())
}

/// Binds an expression given as SQL text against `scope`.
pub fn bind_text(binder: &mut Binder, sql: &str, scope: &Scope) -> SqlResult<(Expr, DataType)> {
    let dialect = sqlparser::dialect::PostgreSqlDialect {};
    let e = sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| SqlError::syntax(e.to_string()))?;
    binder.expr(&e, scope)
}

/// Is this VALUES item the DEFAULT keyword?
pub fn is_default(e: &ast::Expr) -> bool {
    is_default_keyword(e)
}

/// A table's columns as a scope (for CHECK, RETURNING, UPDATE).
pub fn table_scope(t: &TableDesc, qualifier: &str) -> Scope {
    Scope {
        cols: t
            .columns
            .iter()
            .map(|c| OutCol {
                name: c.name.clone(),
                ty: c.ty,
                qualifier: Some(qualifier.to_string()),
                table_oid: t.oid,
                column_id: c.id as i16,
                hidden: c.hidden,
            })
            .collect(),
    }
}

/// Column name for an expression in a select list.
pub fn output_name(e: &ast::Expr) -> String {
    expr_name(e)
}
