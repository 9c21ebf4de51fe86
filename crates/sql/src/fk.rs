//! FOREIGN KEY constraints: defining them, and keeping them true.
//!
//! A foreign key lives in the referencing ("child") table's descriptor and
//! names the referenced ("parent") table's primary key or unique index
//! columns. Both sides are checked, as PostgreSQL's referential triggers
//! do, with MATCH SIMPLE (a key with a NULL references nothing) unless
//! MATCH FULL:
//!
//! - A row written to a child (INSERT, COPY, or an UPDATE that changes the
//!   key) must find its parent when the statement ends, its own writes
//!   included; the parent row is then locked with the statement's other
//!   row locks. If it changed after the statement's snapshot, the statement
//!   runs again on a newer one (READ COMMITTED) or the transaction fails
//!   with 40001 (REPEATABLE READ): a child never commits against a parent
//!   that a concurrent transaction deleted.
//! - A parent row deleted, or whose key changes, must have no children.
//!   Its row is locked first, then the children are looked for in the
//!   latest committed data (overlaid with the transaction's own writes),
//!   so a child committed by a transaction that held the parent's lock is
//!   seen even though it is newer than the statement's snapshot. The look
//!   up uses an index of the child whose leading columns are the key, if
//!   there is one, and scans the child otherwise (as PostgreSQL does
//!   without such an index).
//!
//! ON DELETE / ON UPDATE NO ACTION (the default) and RESTRICT refuse with
//! 23503; CASCADE, SET NULL and SET DEFAULT are not supported (0A000).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use sqlparser::ast;
use tessera_types::encoding::KeyWriter;

use crate::binder;
use crate::catalog::{FkAction, ForeignKeyDesc, IndexDesc, Snapshot, TableDesc};
use crate::error::{code, SqlError, SqlResult};
use crate::exec::{Env, Row};
use crate::rowcodec;
use crate::session::Session;
use crate::types::{cast, DataType, Value};

/// 23503.
pub const FOREIGN_KEY_VIOLATION: &str = "23503";
/// 42830.
const INVALID_FOREIGN_KEY: &str = "42830";
/// 2BP01.
pub const DEPENDENT_OBJECTS_STILL_EXIST: &str = "2BP01";

/// Whether a column of type `a` may reference one of type `b`: their
/// values compare (and encode in keys) alike.
fn compatible(a: DataType, b: DataType) -> bool {
    use DataType::*;
    let family = |t: DataType| match t {
        Int2 | Int4 | Int8 => 1,
        Text | Varchar(_) | Char(_) | Name => 2,
        Float4 | Float8 => 3,
        Numeric(_) => 4,
        _ => 0,
    };
    a == b || (family(a) != 0 && family(a) == family(b))
}

fn column_name(table: &TableDesc, id: u32) -> String {
    table
        .columns
        .iter()
        .find(|c| c.id == id)
        .map(|c| c.name.clone())
        .unwrap_or_default()
}

fn column_type(table: &TableDesc, id: u32) -> DataType {
    table
        .columns
        .iter()
        .find(|c| c.id == id)
        .map(|c| c.ty)
        .unwrap_or(DataType::Unknown)
}

fn names(table: &TableDesc, ids: &[u32]) -> String {
    ids.iter()
        .map(|id| column_name(table, *id))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `(a, b)=(1, x)`-style DETAIL text of key `values` of `table`'s `ids`.
fn key_text(table: &TableDesc, ids: &[u32], values: &[Value]) -> String {
    let shown: Vec<String> = values
        .iter()
        .zip(ids)
        .map(|(v, id)| {
            v.to_pg_text(column_type(table, *id))
                .unwrap_or_else(|| "null".into())
        })
        .collect();
    format!("({})=({})", names(table, ids), shown.join(", "))
}

/// For each of `index`'s first `columns.len()` columns, its place in
/// `columns`, if those columns are exactly `columns` (in any order).
fn leading_order(index: &IndexDesc, columns: &[u32]) -> Option<Vec<usize>> {
    let leading = index.columns.get(..columns.len())?;
    let order: Vec<usize> = leading
        .iter()
        .map(|(id, _)| columns.iter().position(|c| c == id))
        .collect::<Option<_>>()?;
    let distinct: HashSet<&usize> = order.iter().collect();
    (distinct.len() == order.len()).then_some(order)
}

/// The parent's index whose columns are exactly `referenced` (in any
/// order): its primary key first, then unique indexes. With, for each of
/// the index's columns, its place in `referenced`.
fn target_index(parent: &TableDesc, referenced: &[u32]) -> Option<(IndexDesc, Vec<usize>)> {
    parent
        .indexes
        .iter()
        .filter(|ix| ix.unique && ix.columns.len() == referenced.len())
        .filter(|ix| !(ix.primary && parent.has_hidden_rowid()))
        .find_map(|ix| leading_order(ix, referenced).map(|order| (ix.clone(), order)))
}

/// An index of the child whose leading columns are the foreign key's
/// columns (in any order), to find referencing rows without a scan: with,
/// for each of those leading columns, its place in `columns`.
fn child_index(child: &TableDesc, columns: &[u32]) -> Option<(IndexDesc, Vec<usize>)> {
    child
        .indexes
        .iter()
        .find_map(|ix| leading_order(ix, columns).map(|order| (ix.clone(), order)))
}

fn action(a: &Option<ast::ReferentialAction>, on: &str) -> SqlResult<FkAction> {
    match a {
        None | Some(ast::ReferentialAction::NoAction) => Ok(FkAction::NoAction),
        Some(ast::ReferentialAction::Restrict) => Ok(FkAction::Restrict),
        Some(other) => Err(SqlError::unsupported(format!(
            "ON {on} {other} is not supported (NO ACTION and RESTRICT are)"
        ))),
    }
}

/// Defines the foreign key `def` of `child`, whose referencing columns are
/// `columns` (`def.columns`, or the column a REFERENCES clause follows).
/// `child` may be a table being created; a foreign key naming it
/// references itself. `taken` holds the constraint names in use on it.
pub fn define(
    snap: &Snapshot,
    child: &TableDesc,
    def: &ast::ForeignKeyConstraint,
    columns: &[String],
    oid: u32,
    taken: &[String],
) -> SqlResult<ForeignKeyDesc> {
    if let Some(c) = &def.characteristics {
        if c.deferrable == Some(true)
            || matches!(c.initially, Some(ast::DeferrableInitial::Deferred))
        {
            return Err(SqlError::unsupported(
                "DEFERRABLE foreign keys are not supported",
            ));
        }
        if c.enforced == Some(false) {
            return Err(SqlError::unsupported(
                "NOT ENFORCED foreign keys are not supported",
            ));
        }
    }
    let match_full = match def.match_kind {
        None | Some(ast::ConstraintReferenceMatchKind::Simple) => false,
        Some(ast::ConstraintReferenceMatchKind::Full) => true,
        Some(ast::ConstraintReferenceMatchKind::Partial) => {
            return Err(SqlError::unsupported("MATCH PARTIAL not yet implemented"))
        }
    };
    let on_delete = action(&def.on_delete, "DELETE")?;
    let on_update = action(&def.on_update, "UPDATE")?;
    let (_, parent_name) = binder::relation_name(&def.foreign_table)?;
    let owned;
    let parent: &TableDesc = if parent_name == child.name {
        child
    } else {
        owned = snap
            .table(&child.database, &parent_name)
            .ok_or_else(|| binder::undefined_table(&parent_name))?;
        &owned
    };
    let ids = |table: &TableDesc, cols: &[String]| -> SqlResult<Vec<u32>> {
        cols.iter()
            .map(|n| {
                table.column(n).map(|c| c.id).ok_or_else(|| {
                    SqlError::new(
                        code::UNDEFINED_COLUMN,
                        format!(
                            "column \"{n}\" referenced in foreign key constraint does not exist"
                        ),
                    )
                })
            })
            .collect()
    };
    let child_ids = ids(child, columns)?;
    let referenced_ids = if def.referred_columns.is_empty() {
        if parent.has_hidden_rowid() {
            return Err(SqlError::new(
                INVALID_FOREIGN_KEY,
                format!("there is no primary key for referenced table \"{parent_name}\""),
            ));
        }
        parent.primary().columns.iter().map(|(id, _)| *id).collect()
    } else {
        let cols: Vec<String> = def.referred_columns.iter().map(binder::ident).collect();
        ids(parent, &cols)?
    };
    if child_ids.len() != referenced_ids.len() {
        return Err(SqlError::new(
            INVALID_FOREIGN_KEY,
            "number of referencing and referenced columns for foreign key disagree",
        ));
    }
    let name = match &def.name {
        Some(n) => binder::ident(n),
        None => {
            let base = format!("{}_{}_fkey", child.name, columns.join("_"));
            let mut candidate = base.clone();
            let mut k = 1;
            while taken.contains(&candidate) {
                candidate = format!("{base}{k}");
                k += 1;
            }
            candidate
        }
    };
    if taken.contains(&name) {
        return Err(SqlError::new(
            code::DUPLICATE_OBJECT,
            format!(
                "constraint \"{name}\" for relation \"{}\" already exists",
                child.name
            ),
        ));
    }
    if target_index(parent, &referenced_ids).is_none() {
        return Err(SqlError::new(
            INVALID_FOREIGN_KEY,
            format!("there is no unique constraint matching given keys for referenced table \"{parent_name}\""),
        ));
    }
    for (c, p) in child_ids.iter().zip(&referenced_ids) {
        let (ct, pt) = (column_type(child, *c), column_type(parent, *p));
        if !compatible(ct, pt) {
            return Err(SqlError::mismatch(format!(
                "foreign key constraint \"{name}\" cannot be implemented"
            ))
            .with_detail(format!(
                "Key columns \"{}\" and \"{}\" are of incompatible types: {} and {}.",
                column_name(child, *c),
                column_name(parent, *p),
                ct.sql_name(),
                pt.sql_name()
            )));
        }
    }
    Ok(ForeignKeyDesc {
        oid,
        name,
        columns: child_ids,
        referenced_table: parent.oid,
        referenced_columns: referenced_ids,
        on_delete,
        on_update,
        match_full,
    })
}

/// The names of `table`'s constraints (indexes' and checks' included).
pub fn constraint_names(table: &TableDesc) -> Vec<String> {
    table
        .indexes
        .iter()
        .filter(|ix| ix.constraint)
        .map(|ix| ix.name.clone())
        .chain(table.checks.iter().map(|c| c.name.clone()))
        .chain(table.foreign_keys.iter().map(|fk| fk.name.clone()))
        .collect()
}

/// The foreign key's values in `row` (ordered as its columns), or None
/// when the row references nothing (a NULL under MATCH SIMPLE, all NULL
/// under MATCH FULL).
fn key_values(
    fk: &ForeignKeyDesc,
    child: &TableDesc,
    positions: &[usize],
    row: &[Value],
) -> SqlResult<Option<Vec<Value>>> {
    let values: Vec<Value> = positions.iter().map(|&p| row[p].clone()).collect();
    let nulls = values.iter().filter(|v| v.is_null()).count();
    if nulls == 0 {
        return Ok(Some(values));
    }
    if fk.match_full && nulls < values.len() {
        return Err(SqlError::new(
            FOREIGN_KEY_VIOLATION,
            format!(
                "insert or update on table \"{}\" violates foreign key constraint \"{}\"",
                child.name, fk.name
            ),
        )
        .with_detail("MATCH FULL does not allow mixing of null and nonnull key values."));
    }
    Ok(None)
}

/// Key bytes that compare `values` as index keys do.
fn comparable(values: &[Value]) -> Vec<u8> {
    let mut w = KeyWriter::from_vec(Vec::new());
    for v in values {
        rowcodec::encode_key_value(&mut w, v, false);
    }
    w.into_bytes()
}

/// What a statement sees: its own writes over its snapshot.
pub trait StatementView {
    /// Many keys, in the order given.
    fn get_many(&self, keys: &[Vec<u8>]) -> SqlResult<Vec<Option<Vec<u8>>>>;
    /// The entries of `[start, end)`, in key order.
    fn scan(&self, start: &[u8], end: &[u8]) -> SqlResult<Vec<(Vec<u8>, Vec<u8>)>>;
}

/// The key of the parent's `index` entry (its row's key, for the primary
/// index) that the child's key `values` name, `order` giving each index
/// column's place among them.
fn parent_key(
    child: &TableDesc,
    fk: &ForeignKeyDesc,
    parent: &TableDesc,
    index: &IndexDesc,
    order: &[usize],
    values: &[Value],
) -> SqlResult<Vec<u8>> {
    let mut in_index = Vec::with_capacity(order.len());
    for (&j, (id, _)) in order.iter().zip(&index.columns) {
        let from = column_type(child, fk.columns[j]);
        let to = column_type(parent, *id);
        in_index.push(cast(values[j].clone(), from, to, false)?);
    }
    Ok(rowcodec::index_key_prefix(parent, index, &in_index))
}

/// A foreign key of the statement's table, which references another.
struct Outbound {
    fk: ForeignKeyDesc,
    /// The key columns' places in the table's rows.
    positions: Vec<usize>,
    parent: Arc<TableDesc>,
    /// The parent's index the key names, and for each of its columns the
    /// key column it takes.
    index: IndexDesc,
    order: Vec<usize>,
}

/// A foreign key of another table (or this one) that references the
/// statement's table.
struct Inbound {
    fk: ForeignKeyDesc,
    child: Arc<TableDesc>,
    /// The referenced columns' places in this table's rows.
    positions: Vec<usize>,
    /// This table's index over them, to see whether a statement left a row
    /// with a key it removed, and for each of its columns the key column.
    index: IndexDesc,
    order: Vec<usize>,
}

/// The foreign keys a statement on one table keeps, bound once.
#[derive(Default)]
pub struct ForeignKeys {
    outbound: Vec<Outbound>,
    inbound: Vec<Inbound>,
}

/// A parent key a statement removed, to look for children of once its
/// rows are locked.
pub struct RemovedKey {
    child: Arc<TableDesc>,
    fk: ForeignKeyDesc,
    parent_name: String,
    parent_detail: String,
    /// The key's values, in the child's types, ordered as its columns.
    values: Vec<Value>,
}

impl ForeignKeys {
    /// The foreign keys of and on `table` in `snap`.
    pub fn bind(snap: &Snapshot, table: &TableDesc) -> SqlResult<Self> {
        let missing = |what: &str| {
            SqlError::internal(format!(
                "foreign key of table \"{}\": {what} is missing",
                table.name
            ))
        };
        let places = |ids: &[u32]| -> SqlResult<Vec<usize>> {
            ids.iter()
                .map(|id| table.position(*id).ok_or_else(|| missing("a column")))
                .collect()
        };
        let mut bound = Self::default();
        for fk in &table.foreign_keys {
            let parent = if fk.referenced_table == table.oid {
                Arc::new(table.clone())
            } else {
                snap.tables
                    .get(&fk.referenced_table)
                    .cloned()
                    .ok_or_else(|| missing("the referenced table"))?
            };
            let (index, order) = target_index(&parent, &fk.referenced_columns)
                .ok_or_else(|| missing("the referenced unique index"))?;
            bound.outbound.push(Outbound {
                positions: places(&fk.columns)?,
                fk: fk.clone(),
                parent,
                index,
                order,
            });
        }
        for (child, fk) in snap.referencing(table.oid) {
            let (index, order) = target_index(table, &fk.referenced_columns)
                .ok_or_else(|| missing("the referenced unique index"))?;
            bound.inbound.push(Inbound {
                positions: places(&fk.referenced_columns)?,
                fk,
                child,
                index,
                order,
            });
        }
        Ok(bound)
    }

    /// Whether there is nothing to check.
    pub fn is_empty(&self) -> bool {
        self.outbound.is_empty() && self.inbound.is_empty()
    }

    /// Whether the table references others (its writes are checked).
    pub fn references(&self) -> bool {
        !self.outbound.is_empty()
    }

    /// Whether other tables reference this one (its removals are checked).
    pub fn is_referenced(&self) -> bool {
        !self.inbound.is_empty()
    }

    /// Checks that every row written (`new`, replacing `old` for an
    /// update) finds the parent each of its foreign keys names, in `view`,
    /// and queues the parents' keys to be locked with the statement's
    /// rows.
    pub fn check_parents(
        &self,
        env: &Env,
        table: &TableDesc,
        rows: &[(Option<&Row>, &Row)],
        view: &dyn StatementView,
    ) -> SqlResult<()> {
        for ob in &self.outbound {
            // Each distinct parent key once: its key bytes, and the values
            // of the first row that named it (for the message).
            let mut wanted: BTreeMap<Vec<u8>, Vec<Value>> = BTreeMap::new();
            for (old, new) in rows {
                let Some(values) = key_values(&ob.fk, table, &ob.positions, new)? else {
                    continue;
                };
                if let Some(old) = old {
                    let before: Vec<Value> = ob.positions.iter().map(|&p| old[p].clone()).collect();
                    if comparable(&values) == comparable(&before) {
                        continue;
                    }
                }
                let key = parent_key(table, &ob.fk, &ob.parent, &ob.index, &ob.order, &values)?;
                wanted.entry(key).or_insert(values);
            }
            if wanted.is_empty() {
                continue;
            }
            let violation =
                |values: &[Value]| missing_parent(table, &ob.fk, &ob.parent.name, values);
            let mut locks = Vec::with_capacity(wanted.len());
            if ob.index.primary {
                let keys: Vec<Vec<u8>> = wanted.keys().cloned().collect();
                let found = view.get_many(&keys)?;
                for ((key, values), found) in wanted.into_iter().zip(found) {
                    if found.is_none() {
                        return Err(violation(&values));
                    }
                    locks.push(key);
                }
            } else {
                for (prefix, values) in wanted {
                    let end = rowcodec::prefix_end(&prefix);
                    let entries = view.scan(&prefix, &end)?;
                    // A unique index's entry for non-NULL values is keyed
                    // by them alone and holds the row's primary key.
                    let Some((_, pk)) = entries.into_iter().find(|(k, _)| *k == prefix) else {
                        return Err(violation(&values));
                    };
                    locks.push(pk);
                }
            }
            env.ctx
                .session
                .txn
                .row_locks
                .borrow_mut()
                .keys
                .extend(locks);
        }
        Ok(())
    }

    /// Notes the parent keys a statement removes: rows deleted (`new`
    /// None) or whose referenced columns changed. Returns them, for
    /// [`ForeignKeys::queue_removed`] once the statement's writes are known.
    pub fn removed_keys(&self, old: &Row, new: Option<&Row>, out: &mut Vec<(usize, Vec<Value>)>) {
        for (i, ib) in self.inbound.iter().enumerate() {
            let before: Vec<Value> = ib.positions.iter().map(|&p| old[p].clone()).collect();
            if before.iter().any(Value::is_null) {
                continue;
            }
            if let Some(new) = new {
                let after: Vec<Value> = ib.positions.iter().map(|&p| new[p].clone()).collect();
                if comparable(&before) == comparable(&after) {
                    continue;
                }
            }
            out.push((i, before));
        }
    }

    /// Queues the children look-ups of `removed` parent keys of `table`
    /// for when the statement's row locks are taken, with the keys of the
    /// rows that held them (`locks`), which are locked first. A NO ACTION
    /// key that the statement left on another row (in `view`) is not
    /// checked.
    pub fn queue_removed(
        &self,
        env: &Env,
        table: &TableDesc,
        removed: Vec<(usize, Vec<Value>)>,
        locks: Vec<Vec<u8>>,
        delete: bool,
        view: &dyn StatementView,
    ) -> SqlResult<()> {
        if removed.is_empty() {
            return Ok(());
        }
        let mut queued = Vec::new();
        let mut seen = HashSet::new();
        for (i, values) in removed {
            let ib = &self.inbound[i];
            if !seen.insert((i, comparable(&values))) {
                continue;
            }
            let action = if delete {
                ib.fk.on_delete
            } else {
                ib.fk.on_update
            };
            if action == FkAction::NoAction {
                let in_index: Vec<Value> = ib.order.iter().map(|&j| values[j].clone()).collect();
                let prefix = rowcodec::index_key_prefix(table, &ib.index, &in_index);
                let end = rowcodec::prefix_end(&prefix);
                if view.scan(&prefix, &end)?.iter().any(|(k, _)| *k == prefix) {
                    continue;
                }
            }
            let mut child_values = Vec::with_capacity(values.len());
            for (j, v) in values.iter().enumerate() {
                let from = column_type(table, ib.fk.referenced_columns[j]);
                let to = column_type(&ib.child, ib.fk.columns[j]);
                child_values.push(cast(v.clone(), from, to, false)?);
            }
            queued.push(RemovedKey {
                child: ib.child.clone(),
                fk: ib.fk.clone(),
                parent_name: table.name.clone(),
                parent_detail: key_text(table, &ib.fk.referenced_columns, &values),
                values: child_values,
            });
        }
        if queued.is_empty() {
            return Ok(());
        }
        let session = env.ctx.session;
        session.txn.row_locks.borrow_mut().keys.extend(locks);
        session.txn.removed_keys.borrow_mut().extend(queued);
        Ok(())
    }
}

/// Whether any entry under `prefix`, as committed now overlaid with
/// `buffer` (the transaction's own writes), is a `hit` (given its value).
/// Stops at the first.
fn any_latest(
    session: &Session,
    buffer: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    prefix: &[u8],
    mut hit: impl FnMut(&[u8]) -> SqlResult<bool>,
) -> SqlResult<bool> {
    let kv = session.engine.kv.clone();
    let end = rowcodec::prefix_end(prefix);
    let mut cursor = prefix.to_vec();
    loop {
        session.check_cancel()?;
        let page = kv.scan(&cursor, &end, 1000)?;
        for (k, v) in &page {
            if !buffer.contains_key(k) && hit(v)? {
                return Ok(true);
            }
        }
        match page.last() {
            Some((last, _)) if page.len() >= 1000 => cursor = [last.as_slice(), &[0]].concat(),
            _ => break,
        }
    }
    for v in buffer
        .range::<[u8], _>((Bound::Included(prefix), Bound::Excluded(end.as_slice())))
        .filter_map(|(_, v)| v.as_ref())
    {
        if hit(v)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The error of a child row whose key `values` name no parent.
fn missing_parent(
    child: &TableDesc,
    fk: &ForeignKeyDesc,
    parent: &str,
    values: &[Value],
) -> SqlError {
    SqlError::new(
        FOREIGN_KEY_VIOLATION,
        format!(
            "insert or update on table \"{}\" violates foreign key constraint \"{}\"",
            child.name, fk.name
        ),
    )
    .with_detail(format!(
        "Key {} is not present in table \"{parent}\".",
        key_text(child, &fk.columns, values)
    ))
}

/// Looks for children of the parent keys the statement removed (queued by
/// [`ForeignKeys::queue_removed`]), after its row locks are taken: in the
/// latest committed data under the transaction's writes. Fails with 23503
/// naming the first key still referenced.
pub fn check_removed_keys(session: &Session) -> SqlResult<()> {
    let removed = session.txn.removed_keys.take();
    let buffer = &session.txn.buffer;
    for r in removed {
        let referenced = match child_index(&r.child, &r.fk.columns) {
            Some((index, order)) => {
                let in_index: Vec<Value> = order.iter().map(|&j| r.values[j].clone()).collect();
                let prefix = rowcodec::index_key_prefix(&r.child, &index, &in_index);
                any_latest(session, buffer, &prefix, |_| Ok(true))?
            }
            None => {
                let positions: Vec<usize> =
                    r.fk.columns
                        .iter()
                        .filter_map(|id| r.child.position(*id))
                        .collect();
                let wanted = comparable(&r.values);
                let prefix = rowcodec::index_prefix(r.child.oid, r.child.primary().id);
                any_latest(session, buffer, &prefix, |v| {
                    let row = rowcodec::decode_row(&r.child, v)?;
                    let values: Vec<Value> = positions.iter().map(|&p| row[p].clone()).collect();
                    Ok(comparable(&values) == wanted)
                })?
            }
        };
        if referenced {
            return Err(SqlError::new(
                FOREIGN_KEY_VIOLATION,
                format!(
                    "update or delete on table \"{}\" violates foreign key constraint \"{}\" on table \"{}\"",
                    r.parent_name, r.fk.name, r.child.name
                ),
            )
            .with_detail(format!(
                "Key {} is still referenced from table \"{}\".",
                r.parent_detail, r.child.name
            )));
        }
    }
    Ok(())
}

/// Checks that every row of `child` finds its parent under the new foreign
/// key `fk` (ALTER TABLE ADD FOREIGN KEY), reading the latest committed
/// data; 23503 naming the first row that does not.
pub fn validate(
    session: &Session,
    child: &TableDesc,
    fk: &ForeignKeyDesc,
    parent: &TableDesc,
) -> SqlResult<()> {
    let kv = session.engine.kv.clone();
    let (index, order) = target_index(parent, &fk.referenced_columns)
        .ok_or_else(|| SqlError::internal("the referenced unique index is missing"))?;
    let positions: Vec<usize> = fk
        .columns
        .iter()
        .map(|id| {
            child
                .position(*id)
                .ok_or_else(|| SqlError::internal("a foreign key column is missing"))
        })
        .collect::<SqlResult<_>>()?;
    let mut known: HashMap<Vec<u8>, bool> = HashMap::new();
    let prefix = rowcodec::index_prefix(child.oid, child.primary().id);
    let mut failure = None;
    any_latest(session, &BTreeMap::new(), &prefix, |v| {
        let row = rowcodec::decode_row(child, v)?;
        let Some(values) = key_values(fk, child, &positions, &row)? else {
            return Ok(false);
        };
        let key = parent_key(child, fk, parent, &index, &order, &values)?;
        let present = match known.get(&key) {
            Some(present) => *present,
            None => {
                let present = kv.get(&key)?.is_some();
                known.insert(key, present);
                present
            }
        };
        if !present {
            failure = Some(values);
        }
        Ok(!present)
    })?;
    match failure {
        None => Ok(()),
        Some(values) => Err(missing_parent(child, fk, &parent.name, &values)),
    }
}

/// pg_get_constraintdef's text of `fk`, held by `child`.
pub fn definition(snap: &Snapshot, child: &TableDesc, fk: &ForeignKeyDesc) -> String {
    let (parent_name, parent_columns) = match snap.tables.get(&fk.referenced_table) {
        Some(parent) => (parent.name.clone(), names(parent, &fk.referenced_columns)),
        None => (String::new(), String::new()),
    };
    let mut def = format!(
        "FOREIGN KEY ({}) REFERENCES {parent_name}({parent_columns})",
        names(child, &fk.columns)
    );
    if fk.match_full {
        def.push_str(" MATCH FULL");
    }
    if fk.on_update == FkAction::Restrict {
        def.push_str(" ON UPDATE RESTRICT");
    }
    if fk.on_delete == FkAction::Restrict {
        def.push_str(" ON DELETE RESTRICT");
    }
    def
}

/// The OID of the index a foreign key's referenced columns name.
pub fn referenced_index_oid(snap: &Snapshot, fk: &ForeignKeyDesc) -> u32 {
    snap.tables
        .get(&fk.referenced_table)
        .and_then(|parent| target_index(parent, &fk.referenced_columns))
        .map(|(ix, _)| ix.oid)
        .unwrap_or(0)
}

/// Whether dropping `index` of `table` would leave a foreign key that
/// references its columns without a unique index to name.
pub fn index_needed(snap: &Snapshot, table: &TableDesc, index: &IndexDesc) -> Option<String> {
    for (child, fk) in snap.referencing(table.oid) {
        let Some((target, _)) = target_index(table, &fk.referenced_columns) else {
            continue;
        };
        if target.id != index.id {
            continue;
        }
        let mut without = table.clone();
        without.indexes.retain(|ix| ix.id != index.id);
        if target_index(&without, &fk.referenced_columns).is_none() {
            return Some(format!(
                "constraint {} on table {} depends on index {}",
                fk.name, child.name, index.name
            ));
        }
    }
    None
}
