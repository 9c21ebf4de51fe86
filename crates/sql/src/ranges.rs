//! Range administration: `ALTER TABLE t SPLIT AT VALUES (...)`,
//! `ALTER TABLE t UNSPLIT AT VALUES (...)` and `UNSPLIT ALL`,
//! `SHOW RANGES FROM TABLE t`, `SHOW RANGE FROM TABLE t FOR ROW (...)`,
//! `ALTER RANGE id RELOCATE LEASE TO node`,
//! `ALTER RANGE id RELOCATE VOTERS FROM node TO node` and `SHOW NODES`.

use sqlparser::ast;

use crate::binder::{Binder, Scope};
use crate::catalog::{IndexDesc, TableDesc};
use crate::error::{code, SqlError, SqlResult};
use crate::expr::Expr;
use crate::parser::TesseraStmt;
use crate::rowcodec;
use crate::session::{Column, QueryResult, Session};
use crate::types::{DataType, Value};

fn table(session: &Session, name: &ast::ObjectName) -> SqlResult<std::sync::Arc<TableDesc>> {
    let snap = session.engine.catalog.snapshot()?;
    crate::dml::table_for(&snap, session.vars.database(), name)
}

/// The table's primary index, or its index named `name`.
fn index_of<'a>(table: &'a TableDesc, name: Option<&str>) -> SqlResult<&'a IndexDesc> {
    match name {
        None => Ok(table.primary()),
        Some(name) => table
            .indexes
            .iter()
            .find(|i| i.name == name)
            .ok_or_else(|| {
                SqlError::new(
                    code::UNDEFINED_OBJECT,
                    format!(
                        "index \"{name}\" of table \"{}\" does not exist",
                        table.name
                    ),
                )
            }),
    }
}

/// A key's primary key values as `(v1, v2)`, an index entry's as
/// `index (v1, v2)`, or its bytes if it is not a key of a known table.
fn key_text(snap: &crate::catalog::Snapshot, key: &[u8]) -> String {
    match rowcodec::key_columns(snap, key) {
        Some(k) => match k.index {
            None => format!("({})", k.values.join(", ")),
            Some(index) => format!("{index} ({})", k.values.join(", ")),
        },
        None => format!("{key:02x?}"),
    }
}

/// The key of a SPLIT AT (or FOR ROW) row in `index`: constants for a
/// prefix of the index's columns, converted to their types.
///
/// `clause` names the statement's clause in errors (`SPLIT AT`, `FOR ROW`).
fn split_key(
    session: &Session,
    table: &TableDesc,
    index: &IndexDesc,
    row: &[ast::Expr],
    clause: &str,
) -> SqlResult<Vec<u8>> {
    if row.is_empty() || row.len() > index.columns.len() {
        let key = if index.primary {
            "primary key"
        } else {
            "index"
        };
        return Err(SqlError::new(
            code::SYNTAX_ERROR,
            format!(
                "{clause} data column count ({}) must be between 1 and the {key}'s ({})",
                row.len(),
                index.columns.len()
            ),
        ));
    }
    let snap = session.engine.catalog.snapshot()?;
    let mut binder = Binder::new(&snap, session.vars.database(), Vec::new());
    let mut key =
        tessera_types::encoding::KeyWriter::from_vec(rowcodec::index_prefix(table.oid, index.id));
    for (e, (column_id, desc)) in row.iter().zip(&index.columns) {
        let column = table
            .columns
            .iter()
            .find(|c| c.id == *column_id)
            .ok_or_else(|| SqlError::internal("index column not found"))?;
        let (bound, ty) = binder.expr(e, &Scope::default())?;
        // Type-check as an assignment, then convert the constant itself.
        binder.assign(bound.clone(), ty, column.ty, &column.name)?;
        let Expr::Const(value) = bound else {
            return Err(SqlError::new(
                code::FEATURE_NOT_SUPPORTED,
                format!("{clause} values must be constants"),
            ));
        };
        let value = crate::types::cast(value, ty, column.ty, false)?;
        if value.is_null() {
            return Err(SqlError::new(
                code::NOT_NULL_VIOLATION,
                format!("{clause} value of column \"{}\" is NULL", column.name),
            ));
        }
        rowcodec::encode_key_value(&mut key, &value, *desc);
    }
    Ok(key.into_bytes())
}

/// The result columns of a range statement.
pub fn columns(stmt: &TesseraStmt) -> Vec<Column> {
    match stmt {
        TesseraStmt::SplitAt { .. } => vec![
            Column::new("split_key", DataType::Text),
            Column::new("created", DataType::Bool),
        ],
        TesseraStmt::ShowNodes => vec![
            Column::new("node_id", DataType::Int8),
            Column::new("address", DataType::Text),
            Column::new("is_live", DataType::Bool),
            Column::new("is_decommissioned", DataType::Bool),
            Column::new("replicas", DataType::Int8),
            Column::new("leases", DataType::Int8),
        ],
        TesseraStmt::ShowRanges { .. }
        | TesseraStmt::ShowRangeForRow { .. }
        | TesseraStmt::ShowAllRanges => vec![
            Column::new("range_id", DataType::Int8),
            Column::new("start_key", DataType::Text),
            Column::new("end_key", DataType::Text),
            Column::new("replicas", DataType::Text),
            Column::new("lease_holder", DataType::Int8),
            Column::new("range_size", DataType::Int8),
            Column::new("keys", DataType::Int8),
            Column::new("qps", DataType::Float8),
        ],
        TesseraStmt::UnsplitAt { .. } => vec![
            Column::new("unsplit_key", DataType::Text),
            Column::new("range_id", DataType::Int8),
        ],
        TesseraStmt::RelocateLease { .. } => vec![
            Column::new("range_id", DataType::Int8),
            Column::new("lease_holder", DataType::Int8),
        ],
        TesseraStmt::RelocateVoters { .. } => vec![
            Column::new("range_id", DataType::Int8),
            Column::new("replicas", DataType::Text),
        ],
    }
}

/// Runs a range statement.
pub fn execute(session: &mut Session, stmt: &TesseraStmt) -> SqlResult<QueryResult> {
    let rows = match stmt {
        TesseraStmt::SplitAt { table, index, rows } => {
            split_at(session, table, index.as_deref(), rows)?
        }
        TesseraStmt::ShowRanges { table, index } => {
            show_ranges(session, table, index.as_deref(), None)?
        }
        TesseraStmt::ShowRangeForRow { table, row } => {
            show_ranges(session, table, None, Some(row.as_slice()))?
        }
        TesseraStmt::ShowAllRanges => {
            let snap = session.engine.catalog.snapshot()?;
            let bound = |key: &[u8]| {
                if key.is_empty() {
                    Value::Null
                } else {
                    Value::Text(key_text(&snap, key))
                }
            };
            range_rows(session.engine.kv.ranges(&[], &[])?, bound)
        }
        TesseraStmt::ShowNodes => session
            .engine
            .kv
            .nodes()?
            .into_iter()
            .map(|n| {
                let count = |c: Option<u64>| c.map_or(Value::Null, |c| Value::Int(c as i64));
                vec![
                    Value::Int(n.node_id as i64),
                    Value::Text(n.address),
                    Value::Bool(n.live),
                    Value::Bool(n.decommissioned),
                    count(n.replicas),
                    count(n.leases),
                ]
            })
            .collect(),
        TesseraStmt::RelocateLease { range_id, node } => {
            session.engine.kv.transfer_lease(*range_id, *node)?;
            vec![vec![Value::Int(*range_id as i64), Value::Int(*node as i64)]]
        }
        TesseraStmt::RelocateVoters { range_id, from, to } => {
            let nodes = session.engine.kv.relocate_voter(*range_id, *from, *to)?;
            vec![vec![Value::Int(*range_id as i64), node_set(&nodes)]]
        }
        TesseraStmt::UnsplitAt { table, index, rows } => {
            unsplit_at(session, table, index.as_deref(), rows.as_deref())?
        }
    };
    Ok(QueryResult::Rows {
        columns: columns(stmt),
        tag: crate::exec::select_tag(rows.len()),
        rows,
    })
}

/// `ALTER TABLE t SPLIT AT VALUES (...)`: one row per split point, with
/// the key (as SQL values) and whether a new range starts there.
fn split_at(
    session: &mut Session,
    name: &ast::ObjectName,
    index: Option<&str>,
    rows: &[Vec<ast::Expr>],
) -> SqlResult<Vec<Vec<Value>>> {
    let table = table(session, name)?;
    let index = index_of(&table, index)?;
    let mut keys = Vec::new();
    for row in rows {
        keys.push(split_key(session, &table, index, row, "SPLIT AT")?);
    }
    let snap = session.engine.catalog.snapshot()?;
    // Checked before any split: a refused statement changes nothing.
    check_boundaries(
        session,
        &snap,
        &keys,
        false,
        "a range already starts at",
        "nothing to split",
    )?;
    let mut out = Vec::new();
    for key in keys {
        let created = session.engine.kv.split(&key)?;
        out.push(vec![
            Value::Text(key_text(&snap, &key)),
            Value::Bool(created),
        ]);
    }
    Ok(out)
}

/// Nodes as a set literal: `{1,2,3}`.
fn node_set(nodes: &[u64]) -> Value {
    let nodes: Vec<String> = nodes.iter().map(u64::to_string).collect();
    Value::Text(format!("{{{}}}", nodes.join(",")))
}

/// `ALTER TABLE t UNSPLIT AT VALUES (...)`: the range starting at each
/// row's key merges into the one before it (22023 where no range starts);
/// `UNSPLIT ALL` (rows None): every range boundary inside the table (or
/// index) goes. One row per merge: the key and the merged range.
fn unsplit_at(
    session: &mut Session,
    name: &ast::ObjectName,
    index: Option<&str>,
    rows: Option<&[Vec<ast::Expr>]>,
) -> SqlResult<Vec<Vec<Value>>> {
    let table = table(session, name)?;
    let index = index_of(&table, index)?;
    let keys = match rows {
        Some(rows) => {
            let mut keys = Vec::new();
            for row in rows {
                keys.push(split_key(session, &table, index, row, "UNSPLIT AT")?);
            }
            keys
        }
        None => {
            let start = rowcodec::index_prefix(table.oid, index.id);
            let end = rowcodec::prefix_end(&start);
            session
                .engine
                .kv
                .ranges(&start, &end)?
                .into_iter()
                .map(|r| r.start)
                .filter(|s| s.as_slice() > start.as_slice() && s.as_slice() < end.as_slice())
                .collect()
        }
    };
    let snap = session.engine.catalog.snapshot()?;
    // Checked before any merge: a refused statement changes nothing.
    check_boundaries(
        session,
        &snap,
        &keys,
        true,
        "no range starts at",
        "nothing to merge there",
    )?;
    let mut out = Vec::new();
    for key in keys {
        let merged = session.engine.kv.merge_at(&key)?;
        out.push(vec![
            Value::Text(key_text(&snap, &key)),
            Value::Int(merged as i64),
        ]);
    }
    Ok(out)
}

/// Refuses (22023) unless each key starts a range (`starting`) or none
/// does, and each appears once: "{what} (key): {why}".
fn check_boundaries(
    session: &Session,
    snap: &crate::catalog::Snapshot,
    keys: &[Vec<u8>],
    starting: bool,
    what: &str,
    why: &str,
) -> SqlResult<()> {
    for (i, key) in keys.iter().enumerate() {
        let starts_range = session
            .engine
            .kv
            .ranges(key, &[key.as_slice(), &[0]].concat())?
            .iter()
            .any(|r| &r.start == key);
        if starts_range != starting || keys[..i].contains(key) {
            return Err(SqlError::new(
                code::INVALID_PARAMETER_VALUE,
                format!("{what} {}: {why}", key_text(snap, key)),
            ));
        }
    }
    Ok(())
}

/// `SHOW RANGES FROM TABLE t`: each range holding the table's rows, with
/// its bounds as key values (NULL: before or after the table), its
/// replicas' nodes and the node holding its lease; with `index`, the ranges
/// holding that index's entries.
///
/// With `row`, only the range holding the row with that primary key (or
/// the first row with that prefix of it).
fn show_ranges(
    session: &mut Session,
    name: &ast::ObjectName,
    index: Option<&str>,
    row: Option<&[ast::Expr]>,
) -> SqlResult<Vec<Vec<Value>>> {
    let table = table(session, name)?;
    let start = match index {
        None => rowcodec::table_prefix(table.oid),
        Some(_) => rowcodec::index_prefix(table.oid, index_of(&table, index)?.id),
    };
    let end = rowcodec::prefix_end(&start);
    let (from, to) = match row {
        None => (start.clone(), end.clone()),
        Some(row) => {
            let key = split_key(session, &table, table.primary(), row, "FOR ROW")?;
            let next = [key.as_slice(), &[0]].concat();
            (key, next)
        }
    };
    let snap = session.engine.catalog.snapshot()?;
    let bound = |key: &[u8]| -> Value {
        if key.is_empty() || key <= start.as_slice() || key >= end.as_slice() {
            return Value::Null;
        }
        Value::Text(key_text(&snap, key))
    };
    Ok(range_rows(session.engine.kv.ranges(&from, &to)?, bound))
}

/// The rows of SHOW RANGES, with each bound shown by `bound`.
fn range_rows(
    ranges: Vec<crate::kv::RangeInfo>,
    bound: impl Fn(&[u8]) -> Value,
) -> Vec<Vec<Value>> {
    ranges
        .into_iter()
        .map(|range| {
            vec![
                Value::Int(range.range_id as i64),
                bound(&range.start),
                bound(&range.end),
                node_set(&range.replicas),
                range
                    .lease_holder
                    .map_or(Value::Null, |node| Value::Int(node as i64)),
                range
                    .size
                    .map_or(Value::Null, |(bytes, _)| Value::Int(bytes as i64)),
                range
                    .size
                    .map_or(Value::Null, |(_, keys)| Value::Int(keys as i64)),
                range
                    .qps
                    .map_or(Value::Null, |qps| Value::Float((qps * 10.0).round() / 10.0)),
            ]
        })
        .collect()
}
