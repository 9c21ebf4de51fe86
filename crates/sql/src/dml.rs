//! INSERT, UPDATE, DELETE and COPY: rows become key-value writes in the
//! transaction's buffer, with constraints (NOT NULL, CHECK, PRIMARY KEY,
//! UNIQUE, FOREIGN KEY) checked and secondary indexes kept consistent.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use sqlparser::ast;

use crate::binder::{self, Binder, Scope};
use crate::catalog::{IndexDesc, Snapshot, TableDesc};
use crate::error::{code, SqlError, SqlResult};
use crate::exec::{self, Env, Row};
use crate::expr::Expr;
use crate::fk::ForeignKeys;
use crate::plan::{OutCol, Plan};
use crate::rowcodec;
use crate::session::{Column, CopyTarget, QueryResult, Session};
use crate::types::{cast, DataType, Value};

/// Writes of one statement, applied to the transaction when it succeeds.
#[derive(Default)]
struct Writer {
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Keys read ahead of the statement's writes (`read_ahead`), as of its
    /// snapshot.
    read: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Writer {
    fn get(&self, env: &Env, key: &[u8]) -> SqlResult<Option<Vec<u8>>> {
        if let Some(v) = self.pending.get(key) {
            return Ok(v.clone());
        }
        if let Some(v) = self.read.get(key) {
            return Ok(v.clone());
        }
        env.ctx.reader.get(key)
    }

    /// Reads `keys` at once, so that the checks of many rows (their
    /// primary keys' existence) do not each wait for a read.
    fn read_ahead(&mut self, env: &Env, keys: Vec<Vec<u8>>) -> SqlResult<()> {
        let values = env.ctx.reader.get_many(&keys)?;
        self.read.extend(keys.into_iter().zip(values));
        Ok(())
    }

    /// Many keys, in the order given; the ones neither written nor read
    /// ahead are read at once.
    fn get_many(&self, env: &Env, keys: &[Vec<u8>]) -> SqlResult<Vec<Option<Vec<u8>>>> {
        let mut out = vec![None; keys.len()];
        let mut unknown = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            match self.pending.get(key).or_else(|| self.read.get(key)) {
                Some(v) => out[i] = v.clone(),
                None => unknown.push(i),
            }
        }
        if !unknown.is_empty() {
            let wanted: Vec<Vec<u8>> = unknown.iter().map(|&i| keys[i].clone()).collect();
            for (i, v) in unknown.into_iter().zip(env.ctx.reader.get_many(&wanted)?) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn scan(&self, env: &Env, start: &[u8], end: &[u8]) -> SqlResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = env
            .ctx
            .reader
            .scan_chunk(start, end, 0)?
            .0
            .into_iter()
            .collect();
        for (k, v) in self
            .pending
            .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
        {
            match v {
                Some(v) => {
                    merged.insert(k.clone(), v.clone());
                }
                None => {
                    merged.remove(k);
                }
            }
        }
        Ok(merged.into_iter().collect())
    }

    fn put(&mut self, k: Vec<u8>, v: Vec<u8>) {
        self.pending.insert(k, Some(v));
    }

    fn delete(&mut self, k: Vec<u8>) {
        self.pending.insert(k, None);
    }
}

fn key_detail(table: &TableDesc, index: &IndexDesc, row: &[Value]) -> String {
    let names: Vec<String> = index
        .columns
        .iter()
        .map(|(id, _)| {
            table.columns[table.position(*id).expect("column")]
                .name
                .clone()
        })
        .collect();
    let vals: Vec<String> = rowcodec::index_values(table, index, row)
        .iter()
        .zip(&index.columns)
        .map(|(v, (id, _))| {
            let ty = table.columns[table.position(*id).expect("column")].ty;
            v.to_pg_text(ty).unwrap_or_else(|| "null".into())
        })
        .collect();
    format!(
        "Key ({})=({}) already exists.",
        names.join(", "),
        vals.join(", ")
    )
}

fn unique_violation(table: &TableDesc, index: &IndexDesc, row: &[Value]) -> SqlError {
    SqlError::new(
        code::UNIQUE_VIOLATION,
        format!(
            "duplicate key value violates unique constraint \"{}\"",
            index.name
        ),
    )
    .with_detail(key_detail(table, index, row))
}

/// The row that conflicts with `row` on a unique index, if any: (index, row).
fn find_conflict(
    w: &Writer,
    env: &Env,
    table: &TableDesc,
    row: &[Value],
    skip_pk: Option<&[u8]>,
) -> SqlResult<Option<(usize, Row)>> {
    let pk_key = rowcodec::primary_key(table, row);
    if skip_pk != Some(pk_key.as_slice()) {
        if let Some(bytes) = w.get(env, &pk_key)? {
            return Ok(Some((0, rowcodec::decode_row(table, &bytes)?)));
        }
    }
    for (k, ix) in table.indexes.iter().enumerate().skip(1) {
        if !ix.unique {
            continue;
        }
        let vals = rowcodec::index_values(table, ix, row);
        if vals.iter().any(Value::is_null) {
            continue;
        }
        let start = rowcodec::index_key_prefix(table, ix, &vals);
        let end = rowcodec::prefix_end(&start);
        for (_, other_pk) in w.scan(env, &start, &end)? {
            if other_pk != pk_key && skip_pk != Some(other_pk.as_slice()) {
                if let Some(bytes) = w.get(env, &other_pk)? {
                    return Ok(Some((k, rowcodec::decode_row(table, &bytes)?)));
                }
            }
        }
    }
    Ok(None)
}

fn write_row(w: &mut Writer, table: &TableDesc, row: &[Value]) {
    w.put(
        rowcodec::primary_key(table, row),
        rowcodec::encode_row(table, row),
    );
    for ix in table.indexes.iter().skip(1) {
        let (k, v) = rowcodec::index_entry(table, ix, row);
        w.put(k, v);
    }
}

/// Whether rows written to `targets` of `table` are keyed by row ids the
/// statement makes: the table's primary key is its hidden row id, and the
/// statement does not supply it (its default is `unique_rowid()`).
fn makes_row_ids(table: &TableDesc, targets: &[usize]) -> bool {
    let hidden = |pos: usize| table.columns[pos].hidden;
    matches!(
        table.primary().columns.as_slice(),
        [(id, _)] if table.position(*id).is_some_and(hidden)
    ) && !targets.iter().any(|pos| hidden(*pos))
}

/// The keys `write_row` writes for a row under the new row id `key` that
/// no other row can share: the row's and its non-unique index entries
/// (which end with the row id).
fn unshared_keys(table: &TableDesc, row: &[Value], key: Vec<u8>) -> Vec<Vec<u8>> {
    let mut keys = vec![key];
    for ix in table.indexes.iter().skip(1).filter(|ix| !ix.unique) {
        keys.push(rowcodec::index_entry(table, ix, row).0);
    }
    keys
}

fn delete_row(w: &mut Writer, table: &TableDesc, row: &[Value]) {
    w.delete(rowcodec::primary_key(table, row));
    for ix in table.indexes.iter().skip(1) {
        w.delete(rowcodec::index_entry(table, ix, row).0);
    }
}

/// Constraints bound once per statement.
struct Constraints {
    checks: Vec<(String, Expr)>,
    fks: ForeignKeys,
}

fn bind_constraints(binder: &mut Binder, table: &TableDesc) -> SqlResult<Constraints> {
    let scope = binder::table_scope(table, &table.name);
    let mut checks = Vec::new();
    for c in &table.checks {
        let (e, _) = binder::bind_text(binder, &c.expr, &scope)?;
        checks.push((c.name.clone(), e));
    }
    let fks = ForeignKeys::bind(binder.snap, table)?;
    Ok(Constraints { checks, fks })
}

/// What a statement did to rows that foreign keys look at: the rows it
/// wrote to a referencing table (with the ones they replaced), and the
/// keys it removed from a referenced one, with the keys of the rows that
/// held them.
#[derive(Default)]
struct FkWork {
    written: Vec<(Option<Row>, Row)>,
    removed: Vec<(usize, Vec<Value>)>,
    holders: Vec<Vec<u8>>,
}

impl FkWork {
    /// Notes that `new` replaced `old` (an update), or was inserted
    /// (`old` None), or that `old` was deleted (`new` None).
    fn note(&mut self, fks: &ForeignKeys, table: &TableDesc, old: Option<&Row>, new: Option<&Row>) {
        if let (true, Some(new)) = (fks.references(), new) {
            self.written.push((old.cloned(), new.clone()));
        }
        if let (true, Some(old)) = (fks.is_referenced(), old) {
            let before = self.removed.len();
            fks.removed_keys(old, new, &mut self.removed);
            if self.removed.len() > before {
                self.holders.push(rowcodec::primary_key(table, old));
            }
        }
    }

    /// At the end of the statement: checks the written rows' parents and
    /// queues the look-up of the removed keys' children (see `fk`).
    fn finish(
        self,
        fks: &ForeignKeys,
        w: &Writer,
        env: &Env,
        table: &TableDesc,
        delete: bool,
    ) -> SqlResult<()> {
        if fks.is_empty() {
            return Ok(());
        }
        let rows: Vec<(Option<&Row>, &Row)> = self
            .written
            .iter()
            .map(|(old, new)| (old.as_ref(), new))
            .collect();
        let view = View { w, env };
        fks.check_parents(env, table, &rows, &view)?;
        fks.queue_removed(env, table, self.removed, self.holders, delete, &view)
    }
}

/// The statement's writes over its snapshot, for foreign key checks.
struct View<'a> {
    w: &'a Writer,
    env: &'a Env<'a>,
}

impl crate::fk::StatementView for View<'_> {
    fn get_many(&self, keys: &[Vec<u8>]) -> SqlResult<Vec<Option<Vec<u8>>>> {
        self.w.get_many(self.env, keys)
    }

    fn scan(&self, start: &[u8], end: &[u8]) -> SqlResult<Vec<(Vec<u8>, Vec<u8>)>> {
        self.w.scan(self.env, start, end)
    }
}

/// Casts values to the column types and checks NOT NULL and CHECK.
fn finish_row(
    table: &TableDesc,
    mut row: Row,
    types: &[DataType],
    cons: &Constraints,
    env: &Env,
) -> SqlResult<Row> {
    for (i, col) in table.columns.iter().enumerate() {
        let v = std::mem::replace(&mut row[i], Value::Null);
        row[i] = cast(v, types[i], col.ty, false)?;
        if row[i].is_null() && !col.nullable {
            return Err(SqlError::new(
                code::NOT_NULL_VIOLATION,
                format!(
                    "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                    col.name, table.name
                ),
            ));
        }
    }
    for (name, e) in &cons.checks {
        if e.eval(&row, env)?.as_bool()? == Some(false) {
            return Err(SqlError::new(
                code::CHECK_VIOLATION,
                format!(
                    "new row for relation \"{}\" violates check constraint \"{name}\"",
                    table.name
                ),
            ));
        }
    }
    Ok(row)
}

fn returning(
    binder: &mut Binder,
    table: &TableDesc,
    items: &Option<Vec<ast::SelectItem>>,
) -> SqlResult<Option<(Vec<Expr>, Vec<Column>)>> {
    let Some(items) = items else {
        return Ok(None);
    };
    let scope = binder::table_scope(table, &table.name);
    let mut exprs = Vec::new();
    let mut cols = Vec::new();
    for item in items {
        match item {
            ast::SelectItem::Wildcard(_) | ast::SelectItem::QualifiedWildcard(..) => {
                for (i, c) in table.columns.iter().enumerate() {
                    if !c.hidden {
                        exprs.push(Expr::Column(i));
                        cols.push(Column {
                            name: c.name.clone(),
                            ty: c.ty,
                            table_oid: table.oid,
                            column_id: c.id as i16,
                        });
                    }
                }
            }
            ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                let (x, t) = binder.expr(e, &scope)?;
                let name = match item {
                    ast::SelectItem::ExprWithAlias { alias, .. } => binder::ident(alias),
                    _ => binder::output_name(e),
                };
                let t = if t == DataType::Unknown {
                    DataType::Text
                } else {
                    t
                };
                exprs.push(x);
                cols.push(Column::new(name, t));
            }
            _ => return Err(SqlError::unsupported("RETURNING item")),
        }
    }
    Ok(Some((exprs, cols)))
}

fn result(tag: String, ret: Option<(Vec<Expr>, Vec<Column>)>, rows: Vec<Row>) -> QueryResult {
    match ret {
        Some((_, columns)) => QueryResult::Rows { columns, rows, tag },
        None => QueryResult::Command { tag },
    }
}

/// The user table `name` names (42501 for system catalogs, 42P01 if none).
pub(crate) fn table_for(
    snap: &Snapshot,
    db: &str,
    name: &ast::ObjectName,
) -> SqlResult<Arc<TableDesc>> {
    let (schema, rel) = binder::relation_name(name)?;
    if let Some(s) = &schema {
        if s == "pg_catalog" || s == "information_schema" {
            return Err(SqlError::new(
                "42501",
                format!("permission denied: \"{rel}\" is a system catalog"),
            ));
        }
    }
    snap.table(db, &rel)
        .ok_or_else(|| binder::undefined_table(&rel))
}

/// Default expressions of every column, bound.
fn bind_defaults(binder: &mut Binder, table: &TableDesc) -> SqlResult<Vec<(Expr, DataType)>> {
    table
        .columns
        .iter()
        .map(|c| match &c.default {
            Some(sql) => binder::bind_default(binder, sql),
            None => Ok((Expr::Const(Value::Null), c.ty)),
        })
        .collect()
}

/// Prepared INSERT.
pub struct InsertPlan {
    table: Arc<TableDesc>,
    /// Positions in table.columns of the supplied values.
    targets: Vec<usize>,
    /// VALUES rows (None: DEFAULT) or a query.
    source: InsertSource,
    defaults: Vec<(Expr, DataType)>,
    cons: Constraints,
    conflict: Option<ConflictPlan>,
    ret: Option<(Vec<Expr>, Vec<Column>)>,
}

enum InsertSource {
    Values(Vec<Vec<Option<(Expr, DataType)>>>),
    Query(Plan),
}

struct ConflictPlan {
    /// The index whose conflict is handled (None: any).
    arbiter: Option<usize>,
    /// DO UPDATE assignments over (existing row ++ excluded row).
    sets: Option<Vec<(usize, Expr, DataType)>>,
    filter: Option<Expr>,
}

/// Binds an INSERT.
pub fn bind_insert(binder: &mut Binder, ins: &ast::Insert) -> SqlResult<InsertPlan> {
    let name = match &ins.table {
        ast::TableObject::TableName(n) => n.clone(),
        _ => return Err(SqlError::unsupported("INSERT into a table function")),
    };
    let table = table_for(binder.snap, binder.db, &name)?;
    let mut targets: Vec<usize> = if ins.columns.is_empty() {
        table
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.hidden)
            .map(|(i, _)| i)
            .collect()
    } else {
        let mut v = Vec::new();
        for c in &ins.columns {
            let n = binder::object_name(c).pop().unwrap_or_default();
            let pos = table
                .columns
                .iter()
                .position(|x| x.name == n && !x.hidden)
                .ok_or_else(|| {
                    SqlError::new(
                        code::UNDEFINED_COLUMN,
                        format!(
                            "column \"{n}\" of relation \"{}\" does not exist",
                            table.name
                        ),
                    )
                })?;
            if v.contains(&pos) {
                return Err(SqlError::new(
                    code::DUPLICATE_COLUMN,
                    format!("column \"{n}\" specified more than once"),
                ));
            }
            v.push(pos);
        }
        v
    };
    let source = match ins.source.as_deref() {
        None => InsertSource::Values(vec![vec![None; targets.len()]]),
        Some(q) => match q.body.as_ref() {
            ast::SetExpr::Values(values) if q.order_by.is_none() && q.limit_clause.is_none() => {
                let empty = Scope::default();
                let mut rows = Vec::new();
                if let Some(first) = values.rows.first() {
                    if values
                        .rows
                        .iter()
                        .any(|r| r.content.len() != first.content.len())
                    {
                        return Err(SqlError::syntax("VALUES lists must all be the same length"));
                    }
                    // Without a column list, N values go to the first N
                    // columns (the rest take their defaults).
                    if ins.columns.is_empty() {
                        targets.truncate(first.content.len());
                    }
                }
                for row in &values.rows {
                    if row.content.len() > targets.len() {
                        return Err(SqlError::syntax(
                            "INSERT has more expressions than target columns",
                        ));
                    }
                    if row.content.len() < targets.len() {
                        return Err(SqlError::syntax(
                            "INSERT has more target columns than expressions",
                        ));
                    }
                    let mut out = Vec::new();
                    for (e, pos) in row.content.iter().zip(&targets) {
                        if binder::is_default(e) {
                            out.push(None);
                            continue;
                        }
                        let (x, t) = binder.expr(e, &empty)?;
                        let col = &table.columns[*pos];
                        let x = binder.assign(x, t, col.ty, &col.name)?;
                        let t = if let Expr::Param(i) = &x {
                            binder.params[*i]
                        } else {
                            t
                        };
                        out.push(Some((x, t)));
                    }
                    rows.push(out);
                }
                InsertSource::Values(rows)
            }
            _ => {
                let plan = crate::optimizer::optimize(binder.query(q)?);
                let n = plan.cols().len();
                if ins.columns.is_empty() {
                    targets.truncate(n);
                }
                if n > targets.len() {
                    return Err(SqlError::syntax(
                        "INSERT has more expressions than target columns",
                    ));
                }
                if n < targets.len() {
                    return Err(SqlError::syntax(
                        "INSERT has more target columns than expressions",
                    ));
                }
                for (c, pos) in plan.cols().iter().zip(&targets) {
                    let col = &table.columns[*pos];
                    binder.assign(Expr::Const(Value::Null), c.ty, col.ty, &col.name)?;
                }
                InsertSource::Query(plan)
            }
        },
    };
    let defaults = bind_defaults(binder, &table)?;
    let cons = bind_constraints(binder, &table)?;
    let conflict = match &ins.on {
        None => None,
        Some(ast::OnInsert::OnConflict(oc)) => {
            let arbiter = match &oc.conflict_target {
                None => None,
                Some(ast::ConflictTarget::Columns(cols)) => {
                    let ids: Vec<u32> = cols
                        .iter()
                        .map(|c| {
                            let n = binder::ident(c);
                            table.column(&n).map(|x| x.id).ok_or_else(|| {
                                SqlError::new(
                                    code::UNDEFINED_COLUMN,
                                    format!("column \"{n}\" does not exist"),
                                )
                            })
                        })
                        .collect::<SqlResult<_>>()?;
                    let found = table.indexes.iter().position(|ix| {
                        ix.unique
                            && ix.columns.len() == ids.len()
                            && ix.columns.iter().all(|(id, _)| ids.contains(id))
                    });
                    Some(found.ok_or_else(|| {
                        SqlError::new(
                            code::INVALID_COLUMN_REFERENCE,
                            "there is no unique or exclusion constraint matching the ON CONFLICT specification",
                        )
                    })?)
                }
                Some(ast::ConflictTarget::OnConstraint(n)) => {
                    let n = binder::object_name(n).pop().unwrap_or_default();
                    Some(
                        table
                            .indexes
                            .iter()
                            .position(|ix| ix.name == n)
                            .ok_or_else(|| {
                                SqlError::new(
                                    code::UNDEFINED_OBJECT,
                                    format!(
                                        "constraint \"{n}\" for table \"{}\" does not exist",
                                        table.name
                                    ),
                                )
                            })?,
                    )
                }
            };
            match &oc.action {
                ast::OnConflictAction::DoNothing => Some(ConflictPlan {
                    arbiter,
                    sets: None,
                    filter: None,
                }),
                ast::OnConflictAction::DoUpdate(du) => {
                    if arbiter.is_none() {
                        return Err(SqlError::syntax("ON CONFLICT DO UPDATE requires inference specification or constraint name"));
                    }
                    let mut scope = binder::table_scope(&table, &table.name);
                    scope
                        .cols
                        .extend(binder::table_scope(&table, "excluded").cols);
                    let sets = bind_assignments(binder, &table, &du.assignments, &scope)?;
                    let filter = match &du.selection {
                        Some(s) => {
                            let (e, t) = binder.expr(s, &scope)?;
                            Some(binder.boolean(e, t, "WHERE")?)
                        }
                        None => None,
                    };
                    Some(ConflictPlan {
                        arbiter,
                        sets: Some(sets),
                        filter,
                    })
                }
            }
        }
        Some(_) => {
            return Err(SqlError::unsupported(
                "ON DUPLICATE KEY UPDATE is not PostgreSQL syntax",
            ))
        }
    };
    let ret = returning(binder, &table, &ins.returning)?;
    Ok(InsertPlan {
        table,
        targets,
        source,
        defaults,
        cons,
        conflict,
        ret,
    })
}

fn bind_assignments(
    binder: &mut Binder,
    table: &TableDesc,
    assignments: &[ast::Assignment],
    scope: &Scope,
) -> SqlResult<Vec<(usize, Expr, DataType)>> {
    let mut out = Vec::new();
    for a in assignments {
        let name = match &a.target {
            ast::AssignmentTarget::ColumnName(n) => {
                binder::object_name(n).pop().unwrap_or_default()
            }
            ast::AssignmentTarget::Tuple(_) => {
                return Err(SqlError::unsupported("multiple-column assignment"))
            }
        };
        let pos = table
            .columns
            .iter()
            .position(|c| c.name == name && !c.hidden)
            .ok_or_else(|| {
                SqlError::new(
                    code::UNDEFINED_COLUMN,
                    format!(
                        "column \"{name}\" of relation \"{}\" does not exist",
                        table.name
                    ),
                )
            })?;
        let col = &table.columns[pos];
        let (x, t) = if binder::is_default(&a.value) {
            match &col.default {
                Some(sql) => binder::bind_default(binder, sql)?,
                None => (Expr::Const(Value::Null), col.ty),
            }
        } else {
            binder.expr(&a.value, scope)?
        };
        let x = binder.assign(x, t, col.ty, &col.name)?;
        let (x, t) = match x {
            Expr::Param(i) => (x, binder.params[i]),
            // A constant is converted now, as PostgreSQL folds it while
            // planning: a bad literal fails even when no row matches.
            Expr::Const(v) => (Expr::Const(cast(v, t, col.ty, false)?), col.ty),
            x => (x, t),
        };
        out.push((pos, x, t));
    }
    Ok(out)
}

/// Runs a bound INSERT.
pub fn run_insert(
    session: &mut Session,
    snap: Arc<Snapshot>,
    plan: InsertPlan,
    params: &[Value],
) -> SqlResult<QueryResult> {
    let table = plan.table.clone();
    let mut w = Writer::default();
    let generated_key = makes_row_ids(&table, &plan.targets);
    let mut fresh = Vec::new();
    let (count, out) = exec::with_ctx(session, snap, params, |env| {
        // Source rows first, so INSERT ... SELECT from the same table sees
        // none of its own rows.
        let source: Vec<Vec<Option<(Value, DataType)>>> = match &plan.source {
            InsertSource::Values(rows) => rows
                .iter()
                .map(|r| {
                    r.iter()
                        .map(|c| match c {
                            Some((e, t)) => Ok(Some((e.eval(&[], env)?, *t))),
                            None => Ok(None),
                        })
                        .collect::<SqlResult<Vec<_>>>()
                })
                .collect::<SqlResult<_>>()?,
            InsertSource::Query(p) => {
                let types: Vec<DataType> = p.cols().iter().map(|c| c.ty).collect();
                exec::run(p, *env)?
                    .map(|r| {
                        r.map(|row| {
                            row.into_iter()
                                .zip(&types)
                                .map(|(v, t)| Some((v, *t)))
                                .collect()
                        })
                    })
                    .collect::<SqlResult<_>>()?
            }
        };
        let mut rows = Vec::with_capacity(source.len());
        for values in source {
            env.ctx.session.check_cancel()?;
            let mut row = vec![Value::Null; table.columns.len()];
            let mut types: Vec<DataType> = table.columns.iter().map(|c| c.ty).collect();
            let mut supplied = vec![false; table.columns.len()];
            for (v, pos) in values.into_iter().zip(&plan.targets) {
                if let Some((v, t)) = v {
                    row[*pos] = v;
                    types[*pos] = t;
                    supplied[*pos] = true;
                }
            }
            for (i, (e, t)) in plan.defaults.iter().enumerate() {
                if !supplied[i] {
                    row[i] = e.eval(&[], env)?;
                    types[i] = *t;
                }
            }
            rows.push(finish_row(&table, row, &types, &plan.cons, env)?);
        }
        if rows.len() > 1 && !generated_key {
            let keys = rows
                .iter()
                .map(|row| rowcodec::primary_key(&table, row))
                .collect();
            w.read_ahead(env, keys)?;
        }
        let mut count = 0u64;
        let mut out = Vec::new();
        let mut touched: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
        let mut fk_work = FkWork::default();
        for row in rows {
            // A row id the statement made is new: no row holds it yet.
            let made_key = generated_key.then(|| rowcodec::primary_key(&table, &row));
            match find_conflict(&w, env, &table, &row, made_key.as_deref())? {
                None => {
                    write_row(&mut w, &table, &row);
                    if let Some(key) = made_key {
                        fresh.extend(unshared_keys(&table, &row, key));
                    }
                    fk_work.note(&plan.cons.fks, &table, None, Some(&row));
                    touched.insert(rowcodec::primary_key(&table, &row));
                    count += 1;
                    if let Some((exprs, _)) = &plan.ret {
                        out.push(
                            exprs
                                .iter()
                                .map(|e| e.eval(&row, env))
                                .collect::<SqlResult<Row>>()?,
                        );
                    }
                }
                Some((index, existing)) => {
                    let Some(cp) = &plan.conflict else {
                        return Err(unique_violation(&table, &table.indexes[index], &row));
                    };
                    if cp.arbiter.is_some_and(|a| a != index) {
                        return Err(unique_violation(&table, &table.indexes[index], &row));
                    }
                    let Some(sets) = &cp.sets else {
                        continue;
                    };
                    if !touched.insert(rowcodec::primary_key(&table, &existing)) {
                        return Err(SqlError::new(
                            code::CARDINALITY_VIOLATION,
                            "ON CONFLICT DO UPDATE command cannot affect row a second time",
                        )
                        .with_detail("Ensure that no rows proposed for insertion within the same command have duplicate constrained values."));
                    }
                    let mut both = existing.clone();
                    both.extend(row.iter().cloned());
                    if let Some(f) = &cp.filter {
                        if f.eval(&both, env)?.as_bool()? != Some(true) {
                            continue;
                        }
                    }
                    let mut new = existing.clone();
                    let mut types: Vec<DataType> = table.columns.iter().map(|c| c.ty).collect();
                    for (pos, e, t) in sets {
                        new[*pos] = e.eval(&both, env)?;
                        types[*pos] = *t;
                    }
                    let new = finish_row(&table, new, &types, &plan.cons, env)?;
                    update_one(&mut w, env, &table, &existing, &new)?;
                    fk_work.note(&plan.cons.fks, &table, Some(&existing), Some(&new));
                    count += 1;
                    if let Some((exprs, _)) = &plan.ret {
                        out.push(
                            exprs
                                .iter()
                                .map(|e| e.eval(&new, env))
                                .collect::<SqlResult<Row>>()?,
                        );
                    }
                }
            }
        }
        fk_work.finish(&plan.cons.fks, &w, env, &table, false)?;
        Ok((count, out))
    })?;
    session.txn.stage(w.pending);
    session.txn.fresh_keys.borrow_mut().extend(fresh);
    Ok(result(format!("INSERT 0 {count}"), plan.ret, out))
}

fn update_one(
    w: &mut Writer,
    env: &Env,
    table: &TableDesc,
    old: &[Value],
    new: &[Value],
) -> SqlResult<()> {
    let old_pk = rowcodec::primary_key(table, old);
    let new_pk = rowcodec::primary_key(table, new);
    if let Some((index, _)) = find_conflict(w, env, table, new, Some(&old_pk))? {
        if index != 0 || old_pk != new_pk {
            return Err(unique_violation(table, &table.indexes[index], new));
        }
    }
    delete_row(w, table, old);
    write_row(w, table, new);
    Ok(())
}

/// Prepared UPDATE or DELETE.
pub struct ModifyPlan {
    table: Arc<TableDesc>,
    scan: Plan,
    sets: Vec<(usize, Expr, DataType)>,
    cons: Constraints,
    ret: Option<(Vec<Expr>, Vec<Column>)>,
}

fn bind_target_scan(
    binder: &mut Binder,
    twj: &ast::TableWithJoins,
    selection: Option<&ast::Expr>,
) -> SqlResult<(Arc<TableDesc>, Plan, Scope)> {
    if !twj.joins.is_empty() {
        return Err(SqlError::unsupported(
            "joins in UPDATE/DELETE targets are not supported",
        ));
    }
    let (name, alias) = match &twj.relation {
        ast::TableFactor::Table { name, alias, .. } => (name, alias),
        _ => {
            return Err(SqlError::unsupported(
                "UPDATE/DELETE target must be a table",
            ))
        }
    };
    let table = table_for(binder.snap, binder.db, name)?;
    let qualifier = alias
        .as_ref()
        .map(|a| binder::ident(&a.name))
        .unwrap_or_else(|| table.name.clone());
    let scope = binder::table_scope(&table, &qualifier);
    let cols: Vec<OutCol> = scope.cols.clone();
    let mut plan = Plan::Scan {
        table: table.clone(),
        span: crate::plan::ScanSpan::Full,
        filter: None,
        cols,
        locking: None,
    };
    if let Some(s) = selection {
        let (e, t) = binder.expr(s, &scope)?;
        let e = binder.boolean(e, t, "WHERE")?;
        plan = Plan::Filter {
            input: Box::new(plan),
            predicate: e,
        };
    }
    Ok((table, crate::optimizer::optimize(plan), scope))
}

/// Binds an UPDATE.
pub fn bind_update(binder: &mut Binder, up: &ast::Update) -> SqlResult<ModifyPlan> {
    if up.from.is_some() {
        return Err(SqlError::unsupported("UPDATE ... FROM is not supported"));
    }
    let (table, scan, scope) = bind_target_scan(binder, &up.table, up.selection.as_ref())?;
    let sets = bind_assignments(binder, &table, &up.assignments, &scope)?;
    let cons = bind_constraints(binder, &table)?;
    let ret = returning(binder, &table, &up.returning)?;
    Ok(ModifyPlan {
        table,
        scan,
        sets,
        cons,
        ret,
    })
}

/// Binds a DELETE.
pub fn bind_delete(binder: &mut Binder, del: &ast::Delete) -> SqlResult<ModifyPlan> {
    if del.using.is_some() {
        return Err(SqlError::unsupported("DELETE ... USING is not supported"));
    }
    let from = match &del.from {
        ast::FromTable::WithFromKeyword(v) | ast::FromTable::WithoutKeyword(v) => v,
    };
    // sqlparser also accepts other dialects' forms (`DELETE t FROM ...`,
    // several tables, ORDER BY, LIMIT); PostgreSQL has none of them.
    if !del.tables.is_empty() || from.len() > 1 {
        return Err(SqlError::syntax(
            "syntax error: DELETE takes one table (DELETE FROM table [WHERE ...])",
        ));
    }
    if !del.order_by.is_empty() || del.limit.is_some() || del.output.is_some() {
        return Err(SqlError::syntax(
            "syntax error: DELETE does not take ORDER BY, LIMIT or OUTPUT",
        ));
    }
    let twj = from
        .first()
        .ok_or_else(|| SqlError::syntax("DELETE needs a table"))?;
    let (table, scan, _) = bind_target_scan(binder, twj, del.selection.as_ref())?;
    let ret = returning(binder, &table, &del.returning)?;
    let cons = Constraints {
        checks: vec![],
        fks: ForeignKeys::bind(binder.snap, &table)?,
    };
    Ok(ModifyPlan {
        table,
        scan,
        sets: vec![],
        cons,
        ret,
    })
}

/// Runs a bound UPDATE (`delete` false) or DELETE.
pub fn run_modify(
    session: &mut Session,
    snap: Arc<Snapshot>,
    plan: ModifyPlan,
    params: &[Value],
    delete: bool,
) -> SqlResult<QueryResult> {
    let table = plan.table.clone();
    let mut w = Writer::default();
    let (count, out) = exec::with_ctx(session, snap, params, |env| {
        let rows = exec::target_rows(&plan.scan, *env)?;
        let mut out = Vec::new();
        let mut count = 0u64;
        let mut fk_work = FkWork::default();
        for old in rows {
            env.ctx.session.check_cancel()?;
            if delete {
                delete_row(&mut w, &table, &old);
                fk_work.note(&plan.cons.fks, &table, Some(&old), None);
                if let Some((exprs, _)) = &plan.ret {
                    out.push(
                        exprs
                            .iter()
                            .map(|e| e.eval(&old, env))
                            .collect::<SqlResult<Row>>()?,
                    );
                }
            } else {
                let mut new = old.clone();
                let mut types: Vec<DataType> = table.columns.iter().map(|c| c.ty).collect();
                for (pos, e, t) in &plan.sets {
                    new[*pos] = e.eval(&old, env)?;
                    types[*pos] = *t;
                }
                let new = finish_row(&table, new, &types, &plan.cons, env)?;
                update_one(&mut w, env, &table, &old, &new)?;
                fk_work.note(&plan.cons.fks, &table, Some(&old), Some(&new));
                if let Some((exprs, _)) = &plan.ret {
                    out.push(
                        exprs
                            .iter()
                            .map(|e| e.eval(&new, env))
                            .collect::<SqlResult<Row>>()?,
                    );
                }
            }
            count += 1;
        }
        fk_work.finish(&plan.cons.fks, &w, env, &table, delete)?;
        Ok((count, out))
    })?;
    session.txn.stage(w.pending);
    let tag = if delete {
        format!("DELETE {count}")
    } else {
        format!("UPDATE {count}")
    };
    Ok(result(tag, plan.ret, out))
}

/// Result columns of a bound DML statement with RETURNING.
pub fn returning_columns(ret: &Option<(Vec<Expr>, Vec<Column>)>) -> Option<Vec<Column>> {
    ret.as_ref().map(|(_, c)| c.clone())
}

impl InsertPlan {
    /// RETURNING columns.
    pub fn columns(&self) -> Option<Vec<Column>> {
        returning_columns(&self.ret)
    }
}

impl ModifyPlan {
    /// RETURNING columns.
    pub fn columns(&self) -> Option<Vec<Column>> {
        returning_columns(&self.ret)
    }
}

/// Splits COPY text or CSV data into rows of optional strings.
fn parse_copy(
    format: &crate::session::CopyFormat,
    data: &[u8],
) -> SqlResult<Vec<Vec<Option<String>>>> {
    let text = std::str::from_utf8(data)
        .map_err(|_| SqlError::new("22021", "invalid byte sequence for encoding \"UTF8\""))?;
    let mut rows = Vec::new();
    if format.csv {
        let mut field = String::new();
        let mut row: Vec<Option<String>> = Vec::new();
        let mut quoted = false;
        let mut was_quoted = false;
        let mut chars = text.chars().peekable();
        let mut first_line = true;
        let push_field =
            |field: &mut String, was_quoted: &mut bool, row: &mut Vec<Option<String>>| {
                if !*was_quoted && *field == format.null {
                    row.push(None);
                } else {
                    row.push(Some(std::mem::take(field)));
                }
                field.clear();
                *was_quoted = false;
            };
        while let Some(c) = chars.next() {
            if quoted {
                if c == format.quote {
                    if chars.peek() == Some(&format.quote) {
                        field.push(c);
                        chars.next();
                    } else {
                        quoted = false;
                    }
                } else {
                    field.push(c);
                }
            } else if c == format.quote {
                quoted = true;
                was_quoted = true;
            } else if c == format.delimiter {
                push_field(&mut field, &mut was_quoted, &mut row);
            } else if c == '\n' || c == '\r' {
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                if field == "\\." && row.is_empty() {
                    break;
                }
                push_field(&mut field, &mut was_quoted, &mut row);
                if !(format.header && first_line) {
                    rows.push(std::mem::take(&mut row));
                }
                row.clear();
                first_line = false;
            } else {
                field.push(c);
            }
        }
        if quoted {
            return Err(SqlError::new("22P04", "unterminated CSV quoted field"));
        }
        if (!field.is_empty() || !row.is_empty()) && field != "\\." {
            push_field(&mut field, &mut was_quoted, &mut row);
            if !(format.header && first_line) {
                rows.push(row);
            }
        }
    } else {
        for (n, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line == "\\." {
                break;
            }
            if line.is_empty() && n > 0 && text[text.len().saturating_sub(1)..] == *"\n" {
                continue;
            }
            if line.is_empty() {
                continue;
            }
            let mut row = Vec::new();
            for raw in line.split(format.delimiter) {
                if raw == format.null {
                    row.push(None);
                    continue;
                }
                let mut s = String::with_capacity(raw.len());
                let mut it = raw.chars();
                while let Some(c) = it.next() {
                    if c == '\\' {
                        match it.next() {
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some('r') => s.push('\r'),
                            Some('b') => s.push('\u{8}'),
                            Some('f') => s.push('\u{c}'),
                            Some('v') => s.push('\u{b}'),
                            Some(o) => s.push(o),
                            None => {}
                        }
                    } else {
                        s.push(c);
                    }
                }
                row.push(Some(s));
            }
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Inserts COPY data; returns the row count.
pub fn copy_rows(session: &mut Session, target: &CopyTarget, data: &[u8]) -> SqlResult<u64> {
    let snap = session.engine.catalog.snapshot()?;
    let db = session.vars.database().to_string();
    let table = snap
        .table(&db, &target.table)
        .ok_or_else(|| binder::undefined_table(&target.table))?;
    let rows = parse_copy(&target.format, data)?;
    let targets: Vec<usize> = target
        .columns
        .iter()
        .map(|c| {
            table
                .columns
                .iter()
                .position(|x| x.name == c.name)
                .ok_or_else(|| {
                    SqlError::new(
                        code::UNDEFINED_COLUMN,
                        format!("column \"{}\" does not exist", c.name),
                    )
                })
        })
        .collect::<SqlResult<_>>()?;
    let mut binder = Binder::new(&snap, &db, vec![]);
    let defaults = bind_defaults(&mut binder, &table)?;
    let cons = bind_constraints(&mut binder, &table)?;
    let mut w = Writer::default();
    let count = exec::with_ctx(session, snap.clone(), &[], |env| {
        let mut checked = Vec::with_capacity(rows.len());
        for (line, fields) in rows.into_iter().enumerate() {
            if fields.len() != targets.len() {
                return Err(SqlError::new(
                    "22P04",
                    format!(
                        "{} data for column{}",
                        if fields.len() < targets.len() {
                            "missing"
                        } else {
                            "extra"
                        },
                        if fields.len() < targets.len() {
                            format!(" \"{}\"", table.columns[targets[fields.len()]].name)
                        } else {
                            String::new()
                        }
                    ),
                )
                .with_detail(format!("COPY {}, line {}", table.name, line + 1)));
            }
            let mut row = vec![Value::Null; table.columns.len()];
            let mut supplied = vec![false; table.columns.len()];
            let types: Vec<DataType> = table.columns.iter().map(|c| c.ty).collect();
            for (f, pos) in fields.into_iter().zip(&targets) {
                supplied[*pos] = true;
                if let Some(s) = f {
                    row[*pos] = crate::types::parse_text(&s, table.columns[*pos].ty)?;
                }
            }
            for (i, (e, t)) in defaults.iter().enumerate() {
                if !supplied[i] {
                    row[i] = cast(e.eval(&[], env)?, *t, table.columns[i].ty, false)?;
                }
            }
            checked.push(finish_row(&table, row, &types, &cons, env)?);
        }
        let generated_key = makes_row_ids(&table, &targets);
        if !generated_key {
            let keys = checked
                .iter()
                .map(|row| rowcodec::primary_key(&table, row))
                .collect();
            w.read_ahead(env, keys)?;
        }
        for row in &checked {
            // A row id the statement made is new: no row holds it yet.
            let made_key = generated_key.then(|| rowcodec::primary_key(&table, row));
            if let Some((index, _)) = find_conflict(&w, env, &table, row, made_key.as_deref())? {
                return Err(unique_violation(&table, &table.indexes[index], row));
            }
            write_row(&mut w, &table, row);
        }
        let count = checked.len() as u64;
        if cons.fks.references() {
            let fk_work = FkWork {
                written: checked.into_iter().map(|row| (None, row)).collect(),
                ..FkWork::default()
            };
            fk_work.finish(&cons.fks, &w, env, &table, false)?;
        }
        Ok(count)
    })?;
    session.txn.stage(w.pending);
    Ok(count)
}
