//! Schema changes: tables, indexes, sequences and databases.
//!
//! Descriptor changes are applied atomically with a schema version bump (see
//! `catalog`); data changes that come with them (index backfill, dropping a
//! table's rows, filling a new column's default) are applied in batches.

use std::sync::Arc;

use sqlparser::ast;

use crate::binder::{self, Binder};
use crate::catalog::{
    Change, CheckDesc, ColumnDesc, DatabaseDesc, IndexDesc, SequenceDesc, TableDesc,
};
use crate::error::{code, SqlError, SqlResult};
use crate::exec;
use crate::kv::KvWrite;
use crate::rowcodec;
use crate::session::{QueryResult, Session};
use crate::types::{cast, DataType, Value};

fn tag(t: &str) -> QueryResult {
    QueryResult::Command { tag: t.to_string() }
}

fn duplicate_relation(name: &str) -> SqlError {
    SqlError::new(
        code::DUPLICATE_TABLE,
        format!("relation \"{name}\" already exists"),
    )
}

fn check_name(name: &str) -> SqlResult<()> {
    if name.len() > 63 {
        return Err(SqlError::new(
            "42622",
            format!("identifier \"{name}\" is too long"),
        ));
    }
    Ok(())
}

/// CREATE TABLE.
pub fn create_table(session: &mut Session, ct: &ast::CreateTable) -> SqlResult<QueryResult> {
    if ct.query.is_some() {
        return Err(SqlError::unsupported("CREATE TABLE AS is not supported"));
    }
    if ct.partition_by.is_some() || ct.partition_of.is_some() || ct.for_values.is_some() {
        return Err(SqlError::unsupported(
            "declarative partitioning (PARTITION BY, PARTITION OF) is not supported: \
             Tessera splits every table into ranges of its primary key by itself",
        ));
    }
    if ct.inherits.is_some() {
        return Err(SqlError::unsupported(
            "table inheritance (INHERITS) is not supported",
        ));
    }
    if ct.like.is_some() || ct.clone.is_some() {
        return Err(SqlError::unsupported(
            "CREATE TABLE ... LIKE is not supported",
        ));
    }
    let engine = session.engine.clone();
    let snap = engine.catalog.snapshot()?;
    let db = session.vars.database().to_string();
    let (_, name) = binder::relation_name(&ct.name)?;
    check_name(&name)?;
    if snap.relation_exists(&db, &name) {
        if ct.if_not_exists {
            return Ok(tag("CREATE TABLE"));
        }
        return Err(duplicate_relation(&name));
    }
    let oid = engine.catalog.allocate_oids(64)?;
    let mut columns: Vec<ColumnDesc> = Vec::new();
    let mut pk: Option<Vec<String>> = None;
    let mut uniques: Vec<(Option<String>, Vec<String>)> = Vec::new();
    let mut checks: Vec<(Option<String>, String, Option<String>)> = Vec::new();
    let mut sequences: Vec<SequenceDesc> = Vec::new();
    // FOREIGN KEY clauses, with their referencing columns.
    let mut references: Vec<(&ast::ForeignKeyConstraint, Vec<String>)> = Vec::new();
    for (i, cd) in ct.columns.iter().enumerate() {
        let cname = binder::ident(&cd.name);
        check_name(&cname)?;
        if columns.iter().any(|c| c.name == cname) {
            return Err(SqlError::new(
                code::DUPLICATE_COLUMN,
                format!("column \"{cname}\" specified more than once"),
            ));
        }
        let serial = binder::serial_type(&cd.data_type);
        let ty = binder::data_type(&cd.data_type)?;
        let mut col = ColumnDesc {
            id: i as u32 + 1,
            name: cname.clone(),
            ty,
            nullable: true,
            default: None,
            hidden: false,
        };
        if serial.is_some() {
            let seq_name = format!("{name}_{cname}_seq");
            let max = match ty {
                DataType::Int2 => i16::MAX as i64,
                DataType::Int4 => i32::MAX as i64,
                _ => i64::MAX,
            };
            sequences.push(SequenceDesc {
                oid: oid + 32 + sequences.len() as u32,
                database: db.clone(),
                schema: "public".into(),
                name: seq_name.clone(),
                start: 1,
                increment: 1,
                min: 1,
                max,
                cycle: false,
                owned_by: Some((oid, col.id)),
            });
            col.default = Some(format!("nextval('{seq_name}'::regclass)"));
            col.nullable = false;
        }
        for opt in &cd.options {
            match &opt.option {
                ast::ColumnOption::Null => col.nullable = true,
                ast::ColumnOption::NotNull => col.nullable = false,
                ast::ColumnOption::Default(e) => col.default = Some(e.to_string()),
                ast::ColumnOption::PrimaryKey(_) => {
                    if pk.is_some() {
                        return Err(SqlError::new(
                            code::INVALID_TABLE_DEFINITION,
                            format!("multiple primary keys for table \"{name}\" are not allowed"),
                        ));
                    }
                    pk = Some(vec![cname.clone()]);
                    col.nullable = false;
                }
                ast::ColumnOption::Unique(_) => {
                    uniques.push((opt.name.as_ref().map(binder::ident), vec![cname.clone()]))
                }
                ast::ColumnOption::Check(c) => checks.push((
                    opt.name
                        .as_ref()
                        .map(binder::ident)
                        .or(c.name.as_ref().map(binder::ident)),
                    c.expr.to_string(),
                    Some(cname.clone()),
                )),
                ast::ColumnOption::ForeignKey(fk) => references.push((fk, vec![cname.clone()])),
                ast::ColumnOption::Collation(_) | ast::ColumnOption::Comment(_) => {}
                other => {
                    return Err(SqlError::unsupported(format!(
                        "column option {other} is not supported"
                    )))
                }
            }
        }
        columns.push(col);
    }
    let index_columns = |cols: &[ast::IndexColumn]| -> SqlResult<Vec<String>> {
        cols.iter()
            .map(|c| match &c.column.expr {
                ast::Expr::Identifier(i) => Ok(binder::ident(i)),
                other => Err(SqlError::unsupported(format!(
                    "index on expression {other} is not supported"
                ))),
            })
            .collect()
    };
    for c in &ct.constraints {
        match c {
            ast::TableConstraint::PrimaryKey(p) => {
                if pk.is_some() {
                    return Err(SqlError::new(
                        code::INVALID_TABLE_DEFINITION,
                        format!("multiple primary keys for table \"{name}\" are not allowed"),
                    ));
                }
                pk = Some(index_columns(&p.columns)?);
            }
            ast::TableConstraint::Unique(u) => uniques.push((
                u.name.as_ref().map(binder::ident),
                index_columns(&u.columns)?,
            )),
            ast::TableConstraint::Check(ch) => checks.push((
                ch.name.as_ref().map(binder::ident),
                ch.expr.to_string(),
                None,
            )),
            ast::TableConstraint::ForeignKey(fk) => {
                references.push((fk, fk.columns.iter().map(binder::ident).collect()))
            }
            other => {
                return Err(SqlError::unsupported(format!(
                    "constraint {other} is not supported"
                )))
            }
        }
    }
    let col_id = |n: &str, columns: &[ColumnDesc]| -> SqlResult<u32> {
        columns
            .iter()
            .find(|c| c.name == n)
            .map(|c| c.id)
            .ok_or_else(|| {
                SqlError::new(
                    code::UNDEFINED_COLUMN,
                    format!("column \"{n}\" named in key does not exist"),
                )
            })
    };
    let next_column_id = columns.len() as u32 + 1;
    let primary = match &pk {
        Some(names) => {
            let mut cols = Vec::new();
            for n in names {
                let id = col_id(n, &columns)?;
                columns
                    .iter_mut()
                    .find(|c| c.id == id)
                    .expect("column")
                    .nullable = false;
                cols.push((id, false));
            }
            IndexDesc {
                id: 1,
                oid: oid + 1,
                name: format!("{name}_pkey"),
                columns: cols,
                unique: true,
                primary: true,
                constraint: true,
            }
        }
        None => {
            // Id 0 keeps the visible columns' attribute numbers 1..n.
            columns.push(ColumnDesc {
                id: 0,
                name: "rowid".into(),
                ty: DataType::Int8,
                nullable: false,
                default: Some("unique_rowid()".into()),
                hidden: true,
            });
            IndexDesc {
                id: 1,
                oid: oid + 1,
                name: format!("{name}_pkey"),
                columns: vec![(0, false)],
                unique: true,
                primary: true,
                constraint: false,
            }
        }
    };
    let mut indexes = vec![primary];
    for (cname, names) in uniques {
        let cols: Vec<(u32, bool)> = names
            .iter()
            .map(|n| col_id(n, &columns).map(|id| (id, false)))
            .collect::<SqlResult<_>>()?;
        let iname = cname.unwrap_or_else(|| format!("{name}_{}_key", names.join("_")));
        if indexes.iter().any(|i| i.name == iname) || snap.relation_exists(&db, &iname) {
            return Err(duplicate_relation(&iname));
        }
        indexes.push(IndexDesc {
            id: indexes.len() as u32 + 1,
            oid: oid + 1 + indexes.len() as u32,
            name: iname,
            columns: cols,
            unique: true,
            primary: false,
            constraint: true,
        });
    }
    let mut check_descs = Vec::new();
    for (i, (cname, expr, col)) in checks.into_iter().enumerate() {
        let n = cname.unwrap_or_else(|| match &col {
            Some(c) => format!("{name}_{c}_check"),
            None if i == 0 => format!("{name}_check"),
            None => format!("{name}_check{i}"),
        });
        check_descs.push(CheckDesc { name: n, expr });
    }
    let options = match &ct.table_options {
        ast::CreateTableOptions::With(opts) => opts
            .iter()
            .map(|o| (o.to_string(), String::new()))
            .collect(),
        _ => vec![],
    };
    let mut table = TableDesc {
        oid,
        database: db.clone(),
        schema: "public".into(),
        name: name.clone(),
        columns,
        next_index_id: indexes.len() as u32 + 1,
        indexes,
        checks: check_descs,
        next_column_id,
        options,
        foreign_keys: Vec::new(),
    };
    for (k, (def, columns)) in references.into_iter().enumerate() {
        let taken = crate::fk::constraint_names(&table);
        // The table's OID block has room for 8 (see `allocate_oids`).
        let fk_oid = match k {
            0..8 => oid + 40 + k as u32,
            _ => engine.catalog.allocate_oids(1)?,
        };
        let fk = crate::fk::define(&snap, &table, def, &columns, fk_oid, &taken)?;
        table.foreign_keys.push(fk);
    }
    // Bind defaults and checks now, so that mistakes fail the CREATE.
    {
        let mut b = Binder::new(&snap, &db, vec![]);
        let scope = binder::table_scope(&table, &table.name);
        for c in &table.columns {
            if let Some(d) = &c.default {
                if c.default.as_deref() != Some("unique_rowid()") && !d.starts_with("nextval(") {
                    let (_, t) = binder::bind_default(&mut b, d)?;
                    if !crate::types::assignable(t, c.ty) {
                        return Err(SqlError::mismatch(format!(
                            "column \"{}\" is of type {} but default expression is of type {}",
                            c.name,
                            c.ty.sql_name(),
                            t.sql_name()
                        )));
                    }
                }
            }
        }
        for ch in &table.checks {
            let (e, t) = binder::bind_text(&mut b, &ch.expr, &scope)?;
            b.boolean(e, t, "CHECK")?;
        }
    }
    let mut changes: Vec<Change> = sequences.into_iter().map(Change::PutSequence).collect();
    changes.push(Change::PutTable(table));
    engine.catalog.apply(changes)?;
    Ok(tag("CREATE TABLE"))
}

/// Deletes every key with `prefix`, in batches.
fn delete_prefix(session: &Session, prefix: &[u8]) -> SqlResult<()> {
    let kv = session.engine.kv.clone();
    let end = rowcodec::prefix_end(prefix);
    // Each pass resumes after the keys it deleted: reading from the prefix
    // again would pass over all their deletion records.
    let mut cursor = prefix.to_vec();
    loop {
        let batch = kv.scan(&cursor, &end, 1000)?;
        let Some((last, _)) = batch.last() else {
            return Ok(());
        };
        cursor = [last.as_slice(), &[0]].concat();
        kv.write(batch.into_iter().map(|(k, _)| KvWrite::Delete(k)).collect())?;
    }
}

/// CREATE [UNIQUE] INDEX.
pub fn create_index(session: &mut Session, ci: &ast::CreateIndex) -> SqlResult<QueryResult> {
    let engine = session.engine.clone();
    let snap = engine.catalog.snapshot()?;
    let db = session.vars.database().to_string();
    let (_, tname) = binder::relation_name(&ci.table_name)?;
    let table = snap
        .table(&db, &tname)
        .ok_or_else(|| binder::undefined_table(&tname))?;
    let mut cols = Vec::new();
    let mut names = Vec::new();
    for c in &ci.columns {
        let n = match &c.column.expr {
            ast::Expr::Identifier(i) => binder::ident(i),
            other => {
                return Err(SqlError::unsupported(format!(
                    "index on expression {other} is not supported"
                )))
            }
        };
        let col = table.column(&n).ok_or_else(|| {
            SqlError::new(
                code::UNDEFINED_COLUMN,
                format!("column \"{n}\" does not exist"),
            )
        })?;
        let desc = matches!(c.column.options.sort, Some(ast::OrderBySort::Desc));
        cols.push((col.id, desc));
        names.push(n);
    }
    if ci.predicate.is_some() {
        return Err(SqlError::unsupported("partial indexes are not supported"));
    }
    let iname = match &ci.name {
        Some(n) => binder::object_name(n).pop().unwrap_or_default(),
        None => {
            let base = format!(
                "{tname}_{}_{}",
                names.join("_"),
                if ci.unique { "key" } else { "idx" }
            );
            let mut candidate = base.clone();
            let mut k = 1;
            while snap.relation_exists(&db, &candidate) {
                candidate = format!("{base}{k}");
                k += 1;
            }
            candidate
        }
    };
    check_name(&iname)?;
    if snap.relation_exists(&db, &iname) {
        if ci.if_not_exists {
            return Ok(tag("CREATE INDEX"));
        }
        return Err(duplicate_relation(&iname));
    }
    let oid = engine.catalog.allocate_oids(1)?;
    let mut t = (*table).clone();
    let index = IndexDesc {
        id: t.next_index_id,
        oid,
        name: iname,
        columns: cols,
        unique: ci.unique,
        primary: false,
        constraint: false,
    };
    t.next_index_id += 1;
    // Backfill: one entry per existing row, checking uniqueness.
    let prefix = rowcodec::index_prefix(t.oid, t.primary().id);
    let end = rowcodec::prefix_end(&prefix);
    let mut writes = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (_, v) in engine.kv.scan(&prefix, &end, 0)? {
        let row = rowcodec::decode_row(&t, &v)?;
        if index.unique {
            let vals = rowcodec::index_values(&t, &index, &row);
            if !vals.iter().any(Value::is_null) && !seen.insert(vals.clone()) {
                return Err(duplicated(&index.name, &names, &vals));
            }
        }
        let (k, pk) = rowcodec::index_entry(&t, &index, &row);
        writes.push(KvWrite::Put(k, pk));
        if writes.len() >= 1000 {
            engine.kv.write(std::mem::take(&mut writes))?;
        }
    }
    if !writes.is_empty() {
        engine.kv.write(writes)?;
    }
    t.indexes.push(index);
    engine.catalog.apply(vec![Change::PutTable(t)])?;
    Ok(tag("CREATE INDEX"))
}

/// DROP TABLE / INDEX / SEQUENCE / DATABASE.
pub fn drop(
    session: &mut Session,
    object_type: &ast::ObjectType,
    if_exists: bool,
    names: &[ast::ObjectName],
    cascade: bool,
) -> SqlResult<QueryResult> {
    let engine = session.engine.clone();
    let db = session.vars.database().to_string();
    if *object_type == ast::ObjectType::Table {
        dropped_tables_free(&*engine.catalog.snapshot()?, &db, names, cascade)?;
    }
    for n in names {
        let snap = engine.catalog.snapshot()?;
        let (_, name) = binder::relation_name(n)?;
        match object_type {
            ast::ObjectType::Table => match snap.table(&db, &name) {
                Some(t) => {
                    let mut changes = vec![Change::DeleteTable(t.oid)];
                    // With CASCADE, other tables' foreign keys to it go.
                    let mut children: Vec<TableDesc> = Vec::new();
                    for (child, _) in snap.referencing(t.oid) {
                        if child.oid != t.oid && !children.iter().any(|c| c.oid == child.oid) {
                            let mut c = (*child).clone();
                            c.foreign_keys.retain(|fk| fk.referenced_table != t.oid);
                            children.push(c);
                        }
                    }
                    changes.extend(children.into_iter().map(Change::PutTable));
                    for s in snap
                        .sequences
                        .values()
                        .filter(|s| s.owned_by.is_some_and(|(o, _)| o == t.oid))
                    {
                        changes.push(Change::DeleteSequence(s.oid));
                    }
                    engine.catalog.apply(changes)?;
                    delete_prefix(session, &rowcodec::table_prefix(t.oid))?;
                }
                None if if_exists => {}
                None => return Err(binder::undefined_table(&name)),
            },
            ast::ObjectType::Index => match snap.index(&db, &name) {
                Some((t, ix)) => {
                    if let Some(detail) = crate::fk::index_needed(&snap, &t, &ix) {
                        return Err(SqlError::new(
                            crate::fk::DEPENDENT_OBJECTS_STILL_EXIST,
                            format!("cannot drop index {name} because other objects depend on it"),
                        )
                        .with_detail(detail));
                    }
                    if ix.constraint {
                        return Err(SqlError::new(
                            "2BP01",
                            format!("cannot drop index {name} because constraint {name} on table {} requires it", t.name),
                        ));
                    }
                    let mut nt = (*t).clone();
                    nt.indexes.retain(|i| i.id != ix.id);
                    engine.catalog.apply(vec![Change::PutTable(nt)])?;
                    delete_prefix(session, &rowcodec::index_prefix(t.oid, ix.id))?;
                }
                None if if_exists => {}
                None => {
                    return Err(SqlError::new(
                        code::UNDEFINED_OBJECT,
                        format!("index \"{name}\" does not exist"),
                    ))
                }
            },
            ast::ObjectType::Sequence => match snap.sequence(&db, &name) {
                Some(s) => engine.catalog.apply(vec![Change::DeleteSequence(s.oid)])?,
                None if if_exists => {}
                None => {
                    return Err(SqlError::new(
                        code::UNDEFINED_TABLE,
                        format!("sequence \"{name}\" does not exist"),
                    ))
                }
            },
            ast::ObjectType::Database => {
                if name == db {
                    return Err(SqlError::new(
                        "55006",
                        "cannot drop the currently open database",
                    ));
                }
                if !snap.databases.contains_key(&name) {
                    if if_exists {
                        continue;
                    }
                    return Err(SqlError::new(
                        code::INVALID_DATABASE,
                        format!("database \"{name}\" does not exist"),
                    ));
                }
                let tables = snap.tables_of(&name);
                let mut changes: Vec<Change> =
                    tables.iter().map(|t| Change::DeleteTable(t.oid)).collect();
                changes.extend(
                    snap.sequences
                        .values()
                        .filter(|s| s.database == name)
                        .map(|s| Change::DeleteSequence(s.oid)),
                );
                changes.push(Change::DeleteDatabase(name.clone()));
                engine.catalog.apply(changes)?;
                for t in tables {
                    delete_prefix(session, &rowcodec::table_prefix(t.oid))?;
                }
            }
            other => {
                return Err(SqlError::unsupported(format!(
                    "DROP {other} is not supported"
                )))
            }
        }
    }
    Ok(tag(match object_type {
        ast::ObjectType::Table => "DROP TABLE",
        ast::ObjectType::Index => "DROP INDEX",
        ast::ObjectType::Sequence => "DROP SEQUENCE",
        _ => "DROP DATABASE",
    }))
}

/// Without CASCADE, a table dropped must not be referenced by a foreign
/// key of a table that stays (2BP01).
fn dropped_tables_free(
    snap: &crate::catalog::Snapshot,
    db: &str,
    names: &[ast::ObjectName],
    cascade: bool,
) -> SqlResult<()> {
    if cascade {
        return Ok(());
    }
    let mut dropped = Vec::new();
    for n in names {
        let (_, name) = binder::relation_name(n)?;
        if let Some(t) = snap.table(db, &name) {
            dropped.push(t);
        }
    }
    for t in &dropped {
        for (child, fk) in snap.referencing(t.oid) {
            if !dropped.iter().any(|d| d.oid == child.oid) {
                return Err(SqlError::new(
                    crate::fk::DEPENDENT_OBJECTS_STILL_EXIST,
                    format!(
                        "cannot drop table {} because other objects depend on it",
                        t.name
                    ),
                )
                .with_detail(format!(
                    "constraint {} on table {} depends on table {}",
                    fk.name, child.name, t.name
                )));
            }
        }
    }
    Ok(())
}

/// TRUNCATE. A table referenced by a foreign key is truncated only with
/// the tables that reference it: named too, or added by CASCADE.
pub fn truncate(
    session: &mut Session,
    names: Vec<ast::ObjectName>,
    cascade: bool,
) -> SqlResult<QueryResult> {
    let engine = session.engine.clone();
    let snap = engine.catalog.snapshot()?;
    let db = session.vars.database().to_string();
    let mut tables: Vec<Arc<TableDesc>> = Vec::new();
    for n in &names {
        let (_, name) = binder::relation_name(n)?;
        tables.push(
            snap.table(&db, &name)
                .ok_or_else(|| binder::undefined_table(&name))?,
        );
    }
    let mut k = 0;
    while k < tables.len() {
        let t = tables[k].clone();
        for (child, _) in snap.referencing(t.oid) {
            if tables.iter().any(|x| x.oid == child.oid) {
                continue;
            }
            if !cascade {
                return Err(SqlError::unsupported(
                    "cannot truncate a table referenced in a foreign key constraint",
                )
                .with_detail(format!(
                    "Table \"{}\" references \"{}\".",
                    child.name, t.name
                )));
            }
            tables.push(child);
        }
        k += 1;
    }
    for t in tables {
        delete_prefix(session, &rowcodec::table_prefix(t.oid))?;
    }
    Ok(tag("TRUNCATE TABLE"))
}

/// ALTER TABLE ADD/DROP COLUMN.
pub fn alter_table(
    session: &mut Session,
    name: &ast::ObjectName,
    if_exists: bool,
    ops: &[ast::AlterTableOperation],
) -> SqlResult<QueryResult> {
    let engine = session.engine.clone();
    let snap = engine.catalog.snapshot()?;
    let db = session.vars.database().to_string();
    let (_, tname) = binder::relation_name(name)?;
    let Some(table) = snap.table(&db, &tname) else {
        if if_exists {
            return Ok(tag("ALTER TABLE"));
        }
        return Err(binder::undefined_table(&tname));
    };
    let fk_defs: Vec<&ast::ForeignKeyConstraint> = ops
        .iter()
        .filter_map(|op| match op {
            ast::AlterTableOperation::AddConstraint {
                constraint: ast::TableConstraint::ForeignKey(fk),
                ..
            } => Some(fk),
            _ => None,
        })
        .collect();
    if !fk_defs.is_empty() {
        if fk_defs.len() < ops.len() {
            return Err(SqlError::unsupported(
                "ALTER TABLE ADD FOREIGN KEY with other changes in one statement",
            ));
        }
        for def in fk_defs {
            add_foreign_key(session, table.oid, def)?;
        }
        return Ok(tag("ALTER TABLE"));
    }
    if let Some(pk) = ops.iter().find_map(|op| match op {
        ast::AlterTableOperation::AddConstraint {
            constraint: ast::TableConstraint::PrimaryKey(pk),
            ..
        } => Some(pk),
        _ => None,
    }) {
        if ops.len() > 1 {
            return Err(SqlError::unsupported(
                "ALTER TABLE ADD PRIMARY KEY with other changes in one statement",
            ));
        }
        let name = pk.name.as_ref().map(binder::ident);
        let columns = pk
            .columns
            .iter()
            .map(|c| match &c.column.expr {
                ast::Expr::Identifier(i) => Ok(binder::ident(i)),
                other => Err(SqlError::unsupported(format!(
                    "primary key on expression {other}"
                ))),
            })
            .collect::<SqlResult<Vec<_>>>()?;
        add_primary_key(session, &snap, &table, name, &columns)?;
        return Ok(tag("ALTER TABLE"));
    }
    let mut t = (*table).clone();
    let mut backfill: Vec<(u32, String)> = Vec::new();
    // Other tables changed with this one (foreign keys dropped by CASCADE).
    let mut others: Vec<TableDesc> = Vec::new();
    for op in ops {
        match op {
            ast::AlterTableOperation::DropConstraint {
                if_exists, name, ..
            } => {
                let cname = binder::ident(name);
                if let Some(k) = t.foreign_keys.iter().position(|fk| fk.name == cname) {
                    t.foreign_keys.remove(k);
                } else if let Some(k) = t.checks.iter().position(|c| c.name == cname) {
                    t.checks.remove(k);
                } else if t.indexes.iter().any(|ix| ix.constraint && ix.name == cname) {
                    return Err(SqlError::unsupported(
                        "dropping a PRIMARY KEY or UNIQUE constraint is not supported",
                    ));
                } else if !*if_exists {
                    return Err(SqlError::new(
                        code::UNDEFINED_OBJECT,
                        format!("constraint \"{cname}\" of relation \"{tname}\" does not exist"),
                    ));
                }
            }
            ast::AlterTableOperation::AddColumn {
                if_not_exists,
                column_def,
                ..
            } => {
                let cname = binder::ident(&column_def.name);
                if t.column(&cname).is_some() {
                    if *if_not_exists {
                        continue;
                    }
                    return Err(SqlError::new(
                        code::DUPLICATE_COLUMN,
                        format!("column \"{cname}\" of relation \"{tname}\" already exists"),
                    ));
                }
                let ty = binder::data_type(&column_def.data_type)?;
                let mut col = ColumnDesc {
                    id: t.next_column_id,
                    name: cname.clone(),
                    ty,
                    nullable: true,
                    default: None,
                    hidden: false,
                };
                t.next_column_id += 1;
                for opt in &column_def.options {
                    match &opt.option {
                        ast::ColumnOption::Null => col.nullable = true,
                        ast::ColumnOption::NotNull => col.nullable = false,
                        ast::ColumnOption::Default(e) => col.default = Some(e.to_string()),
                        ast::ColumnOption::Check(c) => t.checks.push(CheckDesc {
                            name: format!("{tname}_{cname}_check"),
                            expr: c.expr.to_string(),
                        }),
                        other => {
                            return Err(SqlError::unsupported(format!(
                                "ALTER TABLE ADD COLUMN with {other} is not supported"
                            )))
                        }
                    }
                }
                if let Some(d) = &col.default {
                    backfill.push((col.id, d.clone()));
                } else if !col.nullable {
                    let prefix = rowcodec::table_prefix(t.oid);
                    if !engine
                        .kv
                        .scan(&prefix, &rowcodec::prefix_end(&prefix), 1)?
                        .is_empty()
                    {
                        return Err(SqlError::new(
                            code::NOT_NULL_VIOLATION,
                            format!(
                                "column \"{cname}\" of relation \"{tname}\" contains null values"
                            ),
                        ));
                    }
                }
                t.columns.push(col);
            }
            ast::AlterTableOperation::DropColumn {
                column_names,
                if_exists,
                drop_behavior,
                ..
            } => {
                for c in column_names {
                    let cname = binder::ident(c);
                    let Some(col) = t.column(&cname).cloned() else {
                        if *if_exists {
                            continue;
                        }
                        return Err(SqlError::new(
                            code::UNDEFINED_COLUMN,
                            format!("column \"{cname}\" of relation \"{tname}\" does not exist"),
                        ));
                    };
                    if t.primary().columns.iter().any(|(id, _)| *id == col.id) {
                        return Err(SqlError::unsupported(format!(
                            "cannot drop column \"{cname}\": it is part of the primary key"
                        )));
                    }
                    // Foreign keys of other tables that reference it go
                    // only with CASCADE; this table's own that use it go.
                    let cascade = matches!(drop_behavior, Some(ast::DropBehavior::Cascade));
                    for (child, fk) in snap.referencing(t.oid) {
                        if child.oid == t.oid || !fk.referenced_columns.contains(&col.id) {
                            continue;
                        }
                        if !cascade {
                            return Err(SqlError::new(
                                crate::fk::DEPENDENT_OBJECTS_STILL_EXIST,
                                format!("cannot drop column {cname} of table {tname} because other objects depend on it"),
                            )
                            .with_detail(format!(
                                "constraint {} on table {} depends on column {cname} of table {tname}",
                                fk.name, child.name
                            )));
                        }
                        let k = match others.iter().position(|o| o.oid == child.oid) {
                            Some(k) => k,
                            None => {
                                others.push((*child).clone());
                                others.len() - 1
                            }
                        };
                        others[k].foreign_keys.retain(|f| f.oid != fk.oid);
                    }
                    t.foreign_keys.retain(|fk| {
                        !fk.columns.contains(&col.id) && !fk.referenced_columns.contains(&col.id)
                    });
                    let dropped: Vec<IndexDesc> = t
                        .indexes
                        .iter()
                        .filter(|ix| ix.columns.iter().any(|(id, _)| *id == col.id))
                        .cloned()
                        .collect();
                    t.indexes
                        .retain(|ix| !ix.columns.iter().any(|(id, _)| *id == col.id));
                    for ix in dropped {
                        delete_prefix(session, &rowcodec::index_prefix(t.oid, ix.id))?;
                    }
                    t.checks.retain(|ch| !ch.expr.contains(&cname));
                    t.columns.retain(|x| x.id != col.id);
                }
            }
            ast::AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name,
            } => {
                let (old, new) = (
                    binder::ident(old_column_name),
                    binder::ident(new_column_name),
                );
                if t.column(&new).is_some() {
                    return Err(SqlError::new(
                        code::DUPLICATE_COLUMN,
                        format!("column \"{new}\" of relation \"{tname}\" already exists"),
                    ));
                }
                let col = t
                    .columns
                    .iter_mut()
                    .find(|c| c.name == old && !c.hidden)
                    .ok_or_else(|| {
                        SqlError::new(
                            code::UNDEFINED_COLUMN,
                            format!("column \"{old}\" does not exist"),
                        )
                    })?;
                col.name = new;
            }
            other => {
                return Err(SqlError::unsupported(format!(
                    "ALTER TABLE {other} is not supported"
                )))
            }
        }
    }
    // Fill new columns' defaults into existing rows before publishing.
    if !backfill.is_empty() {
        let mut b = Binder::new(&snap, &db, vec![]);
        let mut exprs = Vec::new();
        for (id, sql) in &backfill {
            let (e, ty) = binder::bind_default(&mut b, sql)?;
            exprs.push((*id, e, ty));
        }
        let prefix = rowcodec::index_prefix(t.oid, t.primary().id);
        let rows = engine.kv.scan(&prefix, &rowcodec::prefix_end(&prefix), 0)?;
        let t_ref = Arc::new(t.clone());
        let writes = exec::with_ctx(session, snap.clone(), &[], |env| {
            let mut writes = Vec::new();
            for (k, v) in rows {
                let mut row = rowcodec::decode_row(&t_ref, &v)?;
                for (id, e, ty) in &exprs {
                    let pos = t_ref.position(*id).expect("new column");
                    row[pos] = cast(e.eval(&[], env)?, *ty, t_ref.columns[pos].ty, false)?;
                    if row[pos].is_null() && !t_ref.columns[pos].nullable {
                        return Err(SqlError::new(
                            code::NOT_NULL_VIOLATION,
                            format!(
                                "column \"{}\" of relation \"{tname}\" contains null values",
                                t_ref.columns[pos].name
                            ),
                        ));
                    }
                }
                writes.push(KvWrite::Put(k, rowcodec::encode_row(&t_ref, &row)));
            }
            Ok(writes)
        })?;
        for chunk in writes.chunks(1000) {
            engine.kv.write(chunk.to_vec())?;
        }
    }
    let mut changes = vec![Change::PutTable(t)];
    changes.extend(others.into_iter().map(Change::PutTable));
    engine.catalog.apply(changes)?;
    Ok(tag("ALTER TABLE"))
}

/// ALTER TABLE ADD FOREIGN KEY on table `oid`: the constraint is published
/// first, so that rows written from then on are checked, then the rows
/// already there are (23503, and the constraint is taken back, if one
/// references nothing).
fn add_foreign_key(
    session: &mut Session,
    oid: u32,
    def: &ast::ForeignKeyConstraint,
) -> SqlResult<()> {
    let engine = session.engine.clone();
    let snap = engine.catalog.snapshot()?;
    let table = snap
        .tables
        .get(&oid)
        .cloned()
        .ok_or_else(|| SqlError::internal("the table was dropped"))?;
    let columns: Vec<String> = def.columns.iter().map(binder::ident).collect();
    let fk_oid = engine.catalog.allocate_oids(1)?;
    let taken = crate::fk::constraint_names(&table);
    let fk = crate::fk::define(&snap, &table, def, &columns, fk_oid, &taken)?;
    let mut with = (*table).clone();
    with.foreign_keys.push(fk.clone());
    let parent = match snap.tables.get(&fk.referenced_table) {
        Some(parent) if parent.oid != oid => (**parent).clone(),
        _ => with.clone(),
    };
    engine.catalog.apply(vec![Change::PutTable(with.clone())])?;
    if let Err(err) = crate::fk::validate(session, &with, &fk, &parent) {
        let snap = engine.catalog.snapshot()?;
        if let Some(now) = snap.tables.get(&oid) {
            let mut without = (**now).clone();
            without.foreign_keys.retain(|f| f.oid != fk.oid);
            engine.catalog.apply(vec![Change::PutTable(without)])?;
        }
        return Err(err);
    }
    Ok(())
}

/// The message of a unique index that cannot be built over the rows.
fn duplicated(index: &str, names: &[String], values: &[Value]) -> SqlError {
    SqlError::new(
        code::UNIQUE_VIOLATION,
        format!("could not create unique index \"{index}\""),
    )
    .with_detail(format!(
        "Key ({})=({}) is duplicated.",
        names.join(", "),
        values
            .iter()
            .map(|v| v.to_pg_text(DataType::Float8).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// ALTER TABLE t ADD [CONSTRAINT name] PRIMARY KEY (columns), on a table
/// created without one (its rows are keyed by the hidden `rowid`). The
/// rows are copied under the new key (and the secondary indexes rebuilt
/// under new index ids, as their entries end with the primary key), while
/// the old ones keep serving; the columns must hold no NULLs and no
/// duplicates (23502, 23505: then the copy is removed and nothing
/// changed). Then the descriptor switches to the new layout, without the
/// `rowid` column, and the old keys are removed. As a backfill of CREATE
/// INDEX, the copy reads the rows as they are when it passes them: writes
/// that other sessions make to the table while it runs may be missed.
fn add_primary_key(
    session: &mut Session,
    snap: &crate::catalog::Snapshot,
    table: &TableDesc,
    name: Option<String>,
    columns: &[String],
) -> SqlResult<()> {
    let engine = session.engine.clone();
    let tname = table.name.clone();
    if !table.has_hidden_rowid() {
        return Err(SqlError::new(
            code::INVALID_TABLE_DEFINITION,
            format!("multiple primary keys for table \"{tname}\" are not allowed"),
        ));
    }
    let mut new = table.clone();
    new.columns.retain(|c| !c.hidden);
    let mut key = Vec::new();
    for cname in columns {
        let Some(col) = new.columns.iter_mut().find(|c| &c.name == cname) else {
            return Err(SqlError::new(
                code::UNDEFINED_COLUMN,
                format!("column \"{cname}\" of relation \"{tname}\" does not exist"),
            ));
        };
        if key.iter().any(|(id, _)| *id == col.id) {
            return Err(SqlError::new(
                code::DUPLICATE_COLUMN,
                format!("column \"{cname}\" appears twice in primary key constraint"),
            ));
        }
        col.nullable = false;
        key.push((col.id, false));
    }
    let pk_name = name.unwrap_or_else(|| format!("{tname}_pkey"));
    check_name(&pk_name)?;
    if pk_name != table.primary().name && snap.relation_exists(&table.database, &pk_name) {
        return Err(duplicate_relation(&pk_name));
    }
    let old_ids: Vec<u32> = table.indexes.iter().map(|ix| ix.id).collect();
    for ix in new.indexes.iter_mut() {
        ix.id = new.next_index_id;
        new.next_index_id += 1;
    }
    new.indexes[0] = IndexDesc {
        columns: key,
        name: pk_name.clone(),
        unique: true,
        primary: true,
        constraint: true,
        ..new.indexes[0].clone()
    };
    let new_prefixes: Vec<Vec<u8>> = new
        .indexes
        .iter()
        .map(|ix| rowcodec::index_prefix(new.oid, ix.id))
        .collect();
    if let Err(err) = copy_rows_to(session, table, &new, &pk_name, columns) {
        for prefix in &new_prefixes {
            delete_prefix(session, prefix)?;
        }
        return Err(err);
    }
    engine.catalog.apply(vec![Change::PutTable(new)])?;
    for id in old_ids {
        delete_prefix(session, &rowcodec::index_prefix(table.oid, id))?;
    }
    Ok(())
}

/// Writes every row of `old` in the layout of `new` (its primary key and
/// secondary indexes), checking that the new primary key's columns are
/// non-NULL and unique.
fn copy_rows_to(
    session: &Session,
    old: &TableDesc,
    new: &TableDesc,
    pk_name: &str,
    pk_columns: &[String],
) -> SqlResult<()> {
    let kv = session.engine.kv.clone();
    // Each new column's place in the old row.
    let from: Vec<usize> = new
        .columns
        .iter()
        .map(|c| {
            old.position(c.id).ok_or_else(|| {
                SqlError::internal(format!("column {} is not in the old layout", c.name))
            })
        })
        .collect::<SqlResult<_>>()?;
    let prefix = rowcodec::index_prefix(old.oid, old.primary().id);
    let end = rowcodec::prefix_end(&prefix);
    let mut cursor = prefix;
    let mut keys = std::collections::HashSet::new();
    loop {
        let page = kv.scan(&cursor, &end, 1000)?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        cursor = [last.as_slice(), &[0]].concat();
        let mut writes = Vec::with_capacity(page.len() * new.indexes.len());
        for (_, value) in page {
            let old_row = rowcodec::decode_row(old, &value)?;
            let row: Vec<Value> = from.iter().map(|&i| old_row[i].clone()).collect();
            let key_values = rowcodec::index_values(new, new.primary(), &row);
            if let Some(i) = key_values.iter().position(Value::is_null) {
                return Err(SqlError::new(
                    code::NOT_NULL_VIOLATION,
                    format!(
                        "column \"{}\" of relation \"{}\" contains null values",
                        pk_columns[i], new.name
                    ),
                ));
            }
            let key = rowcodec::primary_key(new, &row);
            if !keys.insert(key.clone()) {
                return Err(duplicated(pk_name, pk_columns, &key_values));
            }
            writes.push(KvWrite::Put(key, rowcodec::encode_row(new, &row)));
            for index in &new.indexes[1..] {
                let (k, v) = rowcodec::index_entry(new, index, &row);
                writes.push(KvWrite::Put(k, v));
            }
        }
        kv.write(writes)?;
    }
}

/// CREATE SEQUENCE.
pub fn create_sequence(
    session: &mut Session,
    if_not_exists: bool,
    name: &ast::ObjectName,
    options: &[ast::SequenceOptions],
) -> SqlResult<QueryResult> {
    let engine = session.engine.clone();
    let snap = engine.catalog.snapshot()?;
    let db = session.vars.database().to_string();
    let (_, sname) = binder::relation_name(name)?;
    if snap.relation_exists(&db, &sname) {
        if if_not_exists {
            return Ok(tag("CREATE SEQUENCE"));
        }
        return Err(duplicate_relation(&sname));
    }
    let num = |e: &ast::Expr| -> SqlResult<i64> {
        let s = e.to_string();
        s.replace(' ', "")
            .parse()
            .map_err(|_| SqlError::syntax(format!("invalid sequence option value {s}")))
    };
    let (mut start, mut increment, mut min, mut max, mut cycle) = (None, 1i64, None, None, false);
    for o in options {
        match o {
            ast::SequenceOptions::IncrementBy(e, _) => increment = num(e)?,
            ast::SequenceOptions::StartWith(e, _) => start = Some(num(e)?),
            ast::SequenceOptions::MinValue(Some(e)) => min = Some(num(e)?),
            ast::SequenceOptions::MaxValue(Some(e)) => max = Some(num(e)?),
            ast::SequenceOptions::Cycle(c) => cycle = !*c,
            _ => {}
        }
    }
    if increment == 0 {
        return Err(SqlError::new(
            code::INVALID_PARAMETER_VALUE,
            "INCREMENT must not be zero",
        ));
    }
    let min = min.unwrap_or(if increment > 0 { 1 } else { i64::MIN });
    let max = max.unwrap_or(if increment > 0 { i64::MAX } else { -1 });
    let start = start.unwrap_or(if increment > 0 { min } else { max });
    if start < min || start > max {
        return Err(SqlError::new(
            code::INVALID_PARAMETER_VALUE,
            format!("START value ({start}) cannot be less than MINVALUE ({min})"),
        ));
    }
    let oid = engine.catalog.allocate_oids(1)?;
    engine
        .catalog
        .apply(vec![Change::PutSequence(SequenceDesc {
            oid,
            database: db,
            schema: "public".into(),
            name: sname,
            start,
            increment,
            min,
            max,
            cycle,
            owned_by: None,
        })])?;
    Ok(tag("CREATE SEQUENCE"))
}

/// CREATE DATABASE.
pub fn create_database(
    session: &mut Session,
    name: &ast::ObjectName,
    if_not_exists: bool,
) -> SqlResult<QueryResult> {
    let engine = session.engine.clone();
    let snap = engine.catalog.snapshot()?;
    let dname = binder::object_name(name).pop().unwrap_or_default();
    check_name(&dname)?;
    if snap.databases.contains_key(&dname) {
        if if_not_exists {
            return Ok(tag("CREATE DATABASE"));
        }
        return Err(SqlError::new(
            code::DUPLICATE_DATABASE,
            format!("database \"{dname}\" already exists"),
        ));
    }
    let oid = engine.catalog.allocate_oids(1)?;
    engine
        .catalog
        .apply(vec![Change::PutDatabase(DatabaseDesc { oid, name: dname })])?;
    Ok(tag("CREATE DATABASE"))
}
