//! Statement dispatch: what each kind of statement does and describes.

use sqlparser::ast;

use crate::binder::{self, Binder};
use crate::error::{code, SqlError, SqlResult};
use crate::exec::{self, text_rows};
use crate::parser::Stmt;
use crate::session::{Column, CopyFormat, CopyTarget, QueryResult, Session};
use crate::types::{DataType, Value};

/// May this statement run in a failed transaction block? (COMMIT, which
/// then rolls back, ROLLBACK and ROLLBACK TO SAVEPOINT.)
pub fn ends_transaction(stmt: &Stmt) -> bool {
    matches!(
        stmt,
        Stmt::Sql(s) if matches!(**s, ast::Statement::Rollback { .. } | ast::Statement::Commit { .. })
    )
}

/// The warning PostgreSQL gives for COMMIT or ROLLBACK outside a block.
fn no_transaction_warning() -> SqlError {
    SqlError::new(
        code::NO_ACTIVE_TRANSACTION,
        "there is no transaction in progress",
    )
}

/// SAVEPOINT name: remembers the buffer's state to return to.
fn savepoint(session: &mut Session, name: &ast::Ident) -> SqlResult<QueryResult> {
    if !session.txn.in_block {
        return Err(SqlError::new(
            code::NO_ACTIVE_TRANSACTION,
            "SAVEPOINT can only be used in transaction blocks",
        ));
    }
    let mark = session.txn.mark();
    session.txn.savepoints.push((name.value.clone(), mark));
    Ok(QueryResult::Command {
        tag: "SAVEPOINT".into(),
    })
}

/// The position of the newest savepoint called `name`.
fn find_savepoint(session: &Session, name: &ast::Ident, verb: &str) -> SqlResult<usize> {
    if !session.txn.in_block {
        return Err(SqlError::new(
            code::NO_ACTIVE_TRANSACTION,
            format!("{verb} can only be used in transaction blocks"),
        ));
    }
    session
        .txn
        .savepoints
        .iter()
        .rposition(|(n, _)| *n == name.value)
        .ok_or_else(|| {
            SqlError::new(
                code::INVALID_SAVEPOINT_SPECIFICATION,
                format!("savepoint \"{}\" does not exist", name.value),
            )
        })
}

/// ROLLBACK TO SAVEPOINT name: undoes the writes made since, keeps the
/// savepoint, and recovers a failed block. Row locks taken since are kept
/// until the transaction ends.
fn rollback_to(session: &mut Session, name: &ast::Ident) -> SqlResult<QueryResult> {
    let at = find_savepoint(session, name, "ROLLBACK TO SAVEPOINT")?;
    let mark = session.txn.savepoints[at].1;
    session.txn.savepoints.truncate(at + 1);
    session.txn.undo_to(mark);
    session.txn.failed = false;
    Ok(QueryResult::Command {
        tag: "ROLLBACK".into(),
    })
}

/// RELEASE SAVEPOINT name: forgets it and every later one; the writes stay.
fn release_savepoint(session: &mut Session, name: &ast::Ident) -> SqlResult<QueryResult> {
    let at = find_savepoint(session, name, "RELEASE SAVEPOINT")?;
    session.txn.savepoints.truncate(at);
    Ok(QueryResult::Command {
        tag: "RELEASE".into(),
    })
}

/// Result columns of a statement (None: no rows), binding to infer parameter
/// types.
pub fn describe_statement(
    session: &mut Session,
    binder: &mut Binder,
    stmt: &Stmt,
) -> SqlResult<Option<Vec<Column>>> {
    let s = match stmt {
        Stmt::Sql(s) => s,
        Stmt::Empty => return Ok(None),
        Stmt::Maintenance { .. } => return Ok(None),
        Stmt::Tessera(stmt) => return Ok(Some(crate::ranges::columns(stmt))),
    };
    Ok(match s.as_ref() {
        ast::Statement::Query(q) => Some(exec::plan_columns(&binder.query(q)?)),
        ast::Statement::Insert(ins) => crate::dml::bind_insert(binder, ins)?.columns(),
        ast::Statement::Update(up) => crate::dml::bind_update(binder, up)?.columns(),
        ast::Statement::Delete(del) => crate::dml::bind_delete(binder, del)?.columns(),
        ast::Statement::Explain { .. } => Some(vec![Column::new("QUERY PLAN", DataType::Text)]),
        ast::Statement::ShowVariable { variable } => {
            let name = variable
                .iter()
                .map(binder::ident)
                .collect::<Vec<_>>()
                .join("_");
            let _ = session;
            if name == "all" {
                Some(vec![
                    Column::new("name", DataType::Text),
                    Column::new("setting", DataType::Text),
                    Column::new("description", DataType::Text),
                ])
            } else {
                Some(vec![Column::new(show_name(&name), DataType::Text)])
            }
        }
        _ => None,
    })
}

fn show_name(name: &str) -> String {
    match name {
        "transaction_isolation_level" => "transaction_isolation".into(),
        n => n.to_string(),
    }
}

fn set_value(e: &ast::Expr) -> String {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => s.clone(),
            ast::Value::Number(n, _) => n.clone(),
            ast::Value::Boolean(b) => if *b { "on" } else { "off" }.into(),
            other => other.to_string(),
        },
        ast::Expr::Identifier(i) => i.value.clone(),
        ast::Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } => format!("-{}", set_value(expr)),
        other => other.to_string(),
    }
}

fn isolation_name(l: &ast::TransactionIsolationLevel) -> &'static str {
    match l {
        ast::TransactionIsolationLevel::ReadUncommitted => "read uncommitted",
        ast::TransactionIsolationLevel::ReadCommitted => "read committed",
        ast::TransactionIsolationLevel::RepeatableRead => "repeatable read",
        ast::TransactionIsolationLevel::Serializable => "serializable",
        _ => "read committed",
    }
}

fn begin(session: &mut Session, modes: &[ast::TransactionMode]) -> SqlResult<QueryResult> {
    if session.txn.in_block {
        // PostgreSQL warns and carries on.
        session.warn(SqlError::new(
            code::ACTIVE_TRANSACTION,
            "there is already a transaction in progress",
        ));
        return Ok(QueryResult::Command {
            tag: "BEGIN".into(),
        });
    }
    for m in modes {
        if let ast::TransactionMode::IsolationLevel(l) = m {
            session
                .vars
                .set("transaction_isolation", isolation_name(l))?;
        }
    }
    session.txn.in_block = true;
    session.txn.failed = false;
    session.txn_start = Some(chrono::Utc::now());
    Ok(QueryResult::Command {
        tag: "BEGIN".into(),
    })
}

fn end_block(session: &mut Session, commit: bool) -> SqlResult<QueryResult> {
    let was_failed = session.txn.failed;
    session.txn.in_block = false;
    session.txn.failed = false;
    session.txn_start = None;
    let default_iso = session
        .vars
        .get("default_transaction_isolation")
        .unwrap_or_default();
    let _ = session.vars.set("transaction_isolation", &default_iso);
    if commit && !was_failed {
        if let Err(e) = session.txn.flush(session.engine.kv.as_ref()) {
            session.txn.abort();
            return Err(e);
        }
        Ok(QueryResult::Command {
            tag: "COMMIT".into(),
        })
    } else {
        session.txn.abort();
        Ok(QueryResult::Command {
            tag: "ROLLBACK".into(),
        })
    }
}

fn in_failed_transaction() -> SqlError {
    SqlError::new(
        code::IN_FAILED_TRANSACTION,
        "current transaction is aborted, commands ignored until end of transaction block",
    )
}

/// Executes one statement.
pub fn execute_statement(
    session: &mut Session,
    stmt: &Stmt,
    plans: &crate::plan::PlanCache,
    params: &[Value],
) -> SqlResult<QueryResult> {
    let s = match stmt {
        Stmt::Sql(s) => s,
        Stmt::Empty => return Ok(QueryResult::Empty),
        Stmt::Maintenance { vacuum, tables, .. } => return maintain(session, *vacuum, tables),
        Stmt::Tessera(stmt) => return crate::ranges::execute(session, stmt),
    };
    let engine = session.engine.clone();
    match s.as_ref() {
        ast::Statement::Query(q) => {
            let snap = session.statement_catalog()?;
            let db = session.vars.database().to_string();
            let ptypes = param_types(params);
            let plan = plans.get_or_bind(snap.version, &db, ptypes, |ptypes| {
                let mut b = Binder::new(&snap, &db, ptypes);
                Ok(crate::optimizer::optimize(b.query(q)?))
            })?;
            let rows = exec::query_rows(session, snap, &plan, params)?;
            let n = rows.len();
            Ok(QueryResult::Rows {
                columns: exec::plan_columns(&plan),
                rows,
                tag: exec::select_tag(n),
            })
        }
        ast::Statement::Insert(ins) => {
            let snap = session.statement_catalog()?;
            let db = session.vars.database().to_string();
            let plan =
                crate::dml::bind_insert(&mut Binder::new(&snap, &db, param_types(params)), ins)?;
            crate::dml::run_insert(session, snap, plan, params)
        }
        ast::Statement::Update(up) => {
            let snap = session.statement_catalog()?;
            let db = session.vars.database().to_string();
            let plan =
                crate::dml::bind_update(&mut Binder::new(&snap, &db, param_types(params)), up)?;
            crate::dml::run_modify(session, snap, plan, params, false)
        }
        ast::Statement::Delete(del) => {
            let snap = session.statement_catalog()?;
            let db = session.vars.database().to_string();
            let plan =
                crate::dml::bind_delete(&mut Binder::new(&snap, &db, param_types(params)), del)?;
            crate::dml::run_modify(session, snap, plan, params, true)
        }
        ast::Statement::CreateTable(ct) => {
            no_ddl_in_block(session)?;
            crate::ddl::create_table(session, ct)
        }
        ast::Statement::CreateIndex(ci) => {
            no_ddl_in_block(session)?;
            crate::ddl::create_index(session, ci)
        }
        ast::Statement::Drop {
            object_type,
            if_exists,
            names,
            cascade,
            ..
        } => {
            no_ddl_in_block(session)?;
            crate::ddl::drop(session, object_type, *if_exists, names, *cascade)
        }
        ast::Statement::Truncate(t) => {
            no_ddl_in_block(session)?;
            crate::ddl::truncate(
                session,
                t.table_names.iter().map(|n| n.name.clone()).collect(),
                matches!(t.cascade, Some(ast::CascadeOption::Cascade)),
            )
        }
        ast::Statement::AlterTable(at) => {
            no_ddl_in_block(session)?;
            crate::ddl::alter_table(session, &at.name, at.if_exists, &at.operations)
        }
        ast::Statement::CreateSequence {
            if_not_exists,
            name,
            sequence_options,
            ..
        } => {
            no_ddl_in_block(session)?;
            crate::ddl::create_sequence(session, *if_not_exists, name, sequence_options)
        }
        ast::Statement::CreateDatabase {
            db_name,
            if_not_exists,
            ..
        } => {
            if session.txn.in_block {
                return Err(SqlError::new(
                    code::ACTIVE_TRANSACTION,
                    "CREATE DATABASE cannot run inside a transaction block",
                ));
            }
            crate::ddl::create_database(session, db_name, *if_not_exists)
        }
        ast::Statement::StartTransaction { modes, .. } => begin(session, modes),
        ast::Statement::Commit { .. } => {
            if !session.txn.in_block {
                session.warn(no_transaction_warning());
                return Ok(QueryResult::Command {
                    tag: "COMMIT".into(),
                });
            }
            end_block(session, true)
        }
        ast::Statement::Rollback {
            savepoint: None, ..
        } => {
            if !session.txn.in_block {
                session.warn(no_transaction_warning());
                return Ok(QueryResult::Command {
                    tag: "ROLLBACK".into(),
                });
            }
            end_block(session, false)
        }
        ast::Statement::Rollback {
            savepoint: Some(name),
            ..
        } => rollback_to(session, name),
        ast::Statement::Savepoint { name } => {
            if session.txn.failed {
                return Err(in_failed_transaction());
            }
            savepoint(session, name)
        }
        ast::Statement::ReleaseSavepoint { name } => {
            if session.txn.failed {
                return Err(in_failed_transaction());
            }
            release_savepoint(session, name)
        }
        ast::Statement::Set(set) => execute_set(session, set),
        ast::Statement::Reset(r) => {
            match &r.reset {
                ast::Reset::ALL => session.vars.reset_all(),
                ast::Reset::SessionAuthorization => {}
                ast::Reset::ConfigurationParameter(name) => {
                    let name = binder::object_name(name).join(".");
                    session.vars.reset(&name)?;
                    follow_default_isolation(session, &name)?;
                }
            }
            Ok(QueryResult::Command {
                tag: "RESET".into(),
            })
        }
        ast::Statement::ShowVariable { variable } => {
            let name = variable
                .iter()
                .map(binder::ident)
                .collect::<Vec<_>>()
                .join("_");
            if name == "all" {
                let rows = session
                    .vars
                    .all()
                    .into_iter()
                    .map(|(n, v)| vec![n, v, String::new()])
                    .collect();
                return Ok(text_rows(&["name", "setting", "description"], rows, "SHOW"));
            }
            let key = show_name(&name);
            let v = session.vars.get(&key).ok_or_else(|| {
                SqlError::new(
                    code::UNDEFINED_OBJECT,
                    format!("unrecognized configuration parameter \"{key}\""),
                )
            })?;
            Ok(text_rows(&[key.as_str()], vec![vec![v]], "SHOW"))
        }
        ast::Statement::Explain {
            statement, analyze, ..
        } => {
            if *analyze {
                return Err(SqlError::unsupported("EXPLAIN ANALYZE is not supported"));
            }
            let snap = engine.catalog.snapshot()?;
            let db = session.vars.database().to_string();
            let ast::Statement::Query(q) = statement.as_ref() else {
                return Err(SqlError::unsupported(
                    "EXPLAIN of statements other than queries",
                ));
            };
            let mut b = Binder::new(&snap, &db, param_types(params));
            let plan = crate::optimizer::optimize(b.query(q)?);
            let rows = plan
                .to_string()
                .lines()
                .map(|l| vec![l.to_string()])
                .collect();
            Ok(text_rows(&["QUERY PLAN"], rows, "EXPLAIN"))
        }
        ast::Statement::Copy {
            source,
            to,
            target,
            options,
            legacy_options,
            ..
        } => copy(session, source, *to, target, options, legacy_options),
        ast::Statement::Discard { .. } => {
            if session.txn.in_block {
                return Err(SqlError::new(
                    code::ACTIVE_TRANSACTION,
                    "DISCARD ALL cannot run inside a transaction block",
                ));
            }
            Ok(QueryResult::Command {
                tag: "DISCARD ALL".into(),
            })
        }
        ast::Statement::Deallocate { name, .. } => {
            if name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all") {
                let all = std::mem::take(&mut session.prepared);
                session.deallocated.extend(all);
                return Ok(QueryResult::Command {
                    tag: "DEALLOCATE ALL".into(),
                });
            }
            let name = crate::binder::ident(name);
            if !session.prepared.remove(&name) {
                return Err(SqlError::new(
                    code::INVALID_SQL_STATEMENT_NAME,
                    format!("prepared statement \"{name}\" does not exist"),
                ));
            }
            session.deallocated.push(name);
            Ok(QueryResult::Command {
                tag: "DEALLOCATE".into(),
            })
        }
        ast::Statement::Comment { .. } => Ok(QueryResult::Command {
            tag: "COMMENT".into(),
        }),
        other => Err(SqlError::unsupported(format!(
            "statement not supported: {}",
            first_words(&other.to_string())
        ))),
    }
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Schema changes are applied at once, outside the transaction: refused in
/// a transaction block that has written. In a message of several statements
/// (one implicit transaction) the writes before a schema change commit
/// first, so that they never land after it.
/// VACUUM and ANALYZE: each table must exist (none given: every table of
/// the database). There is nothing more to do: old row versions are
/// removed by the cluster's garbage collection on its own (`gc.ttl_secs`
/// after they were overwritten), and the planner keeps no statistics.
fn maintain(
    session: &mut Session,
    vacuum: bool,
    tables: &[ast::ObjectName],
) -> SqlResult<QueryResult> {
    if vacuum && session.txn.in_block {
        return Err(SqlError::new(
            code::ACTIVE_TRANSACTION,
            "VACUUM cannot run inside a transaction block",
        ));
    }
    let snap = session.engine.catalog.snapshot()?;
    let db = session.vars.database().to_string();
    for table in tables {
        let (_, name) = binder::relation_name(table)?;
        if snap.table(&db, &name).is_none() {
            return Err(binder::undefined_table(&name));
        }
    }
    Ok(QueryResult::Command {
        tag: if vacuum { "VACUUM" } else { "ANALYZE" }.into(),
    })
}

fn no_ddl_in_block(session: &mut Session) -> SqlResult<()> {
    if session.txn.in_block && !session.txn.buffer.is_empty() {
        return Err(SqlError::unsupported(
            "schema changes in a transaction that has written are not supported",
        ));
    }
    if session.txn.batch {
        session.txn.flush(session.engine.kv.as_ref())?;
    } else {
        // The change commits at once; the block's next statements read a
        // snapshot that includes it (its buffer is empty).
        session.txn.abort();
    }
    Ok(())
}

fn param_types(params: &[Value]) -> Vec<DataType> {
    params
        .iter()
        .map(|p| match p {
            Value::Null => DataType::Unknown,
            Value::Bool(_) => DataType::Bool,
            Value::Int(_) => DataType::Int8,
            Value::Float(_) => DataType::Float8,
            Value::Numeric(_) => DataType::Numeric(None),
            Value::Text(_) => DataType::Unknown,
            Value::Bytea(_) => DataType::Bytea,
            Value::Date(_) => DataType::Date,
            Value::Timestamp(_) => DataType::Timestamp,
            Value::TimestampTz(_) => DataType::TimestampTz,
            Value::Uuid(_) => DataType::Uuid,
            Value::Array(_) => DataType::TextArray,
        })
        .collect()
}

/// Outside a transaction block, the isolation level shown is the default.
fn follow_default_isolation(session: &mut Session, name: &str) -> SqlResult<()> {
    if name.eq_ignore_ascii_case("default_transaction_isolation") && !session.txn.in_block {
        let v = session
            .vars
            .get("default_transaction_isolation")
            .unwrap_or_default();
        session.vars.set("transaction_isolation", &v)?;
    }
    Ok(())
}

fn execute_set(session: &mut Session, set: &ast::Set) -> SqlResult<QueryResult> {
    let done = || Ok(QueryResult::Command { tag: "SET".into() });
    match set {
        ast::Set::SingleAssignment {
            variable, values, ..
        } => {
            let name = binder::object_name(variable).join(".");
            let value = values.iter().map(set_value).collect::<Vec<_>>().join(", ");
            if value.eq_ignore_ascii_case("default") {
                session.vars.reset(&name)?;
            } else {
                session.vars.set(&name, &value)?;
            }
            follow_default_isolation(session, &name)?;
            done()
        }
        ast::Set::SetTimeZone { value, .. } => {
            session.vars.set("TimeZone", &set_value(value))?;
            done()
        }
        ast::Set::SetNames { charset_name, .. } => {
            session
                .vars
                .set("client_encoding", &charset_name.to_string())?;
            done()
        }
        ast::Set::SetTransaction { modes, .. } => {
            for m in modes {
                if let ast::TransactionMode::IsolationLevel(l) = m {
                    session
                        .vars
                        .set("transaction_isolation", isolation_name(l))?;
                }
            }
            done()
        }
        other => Err(SqlError::unsupported(format!("{other} is not supported"))),
    }
}

fn copy(
    session: &mut Session,
    source: &ast::CopySource,
    to: bool,
    target: &ast::CopyTarget,
    options: &[ast::CopyOption],
    legacy: &[ast::CopyLegacyOption],
) -> SqlResult<QueryResult> {
    if to || !matches!(target, ast::CopyTarget::Stdin) {
        return Err(SqlError::unsupported(
            "only COPY ... FROM STDIN is supported",
        ));
    }
    let ast::CopySource::Table {
        table_name,
        columns,
    } = source
    else {
        return Err(SqlError::unsupported("COPY from a query"));
    };
    let snap = session.engine.catalog.snapshot()?;
    let db = session.vars.database().to_string();
    let (_, name) = binder::relation_name(table_name)?;
    let table = snap
        .table(&db, &name)
        .ok_or_else(|| binder::undefined_table(&name))?;
    let cols: Vec<Column> = if columns.is_empty() {
        table
            .visible_columns()
            .map(|c| Column::new(c.name.clone(), c.ty))
            .collect()
    } else {
        columns
            .iter()
            .map(|c| {
                let n = binder::ident(c);
                table
                    .column(&n)
                    .map(|x| Column::new(x.name.clone(), x.ty))
                    .ok_or_else(|| {
                        SqlError::new(
                            code::UNDEFINED_COLUMN,
                            format!("column \"{n}\" of relation \"{name}\" does not exist"),
                        )
                    })
            })
            .collect::<SqlResult<_>>()?
    };
    let mut format = CopyFormat {
        csv: false,
        delimiter: '\t',
        null: "\\N".into(),
        header: false,
        quote: '"',
    };
    let mut delimiter = None;
    let mut null = None;
    for o in options {
        match o {
            ast::CopyOption::Format(f) => match binder::ident(f).as_str() {
                "csv" => format.csv = true,
                "text" => {}
                other => {
                    return Err(SqlError::unsupported(format!(
                        "COPY format \"{other}\" is not supported"
                    )))
                }
            },
            ast::CopyOption::Delimiter(c) => delimiter = Some(*c),
            ast::CopyOption::Null(s) => null = Some(s.clone()),
            ast::CopyOption::Header(h) => format.header = *h,
            ast::CopyOption::Quote(q) => format.quote = *q,
            _ => {}
        }
    }
    for o in legacy {
        match o {
            ast::CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
            ast::CopyLegacyOption::Null(s) => null = Some(s.clone()),
            ast::CopyLegacyOption::Csv(_) => format.csv = true,
            _ => {}
        }
    }
    if format.csv {
        format.delimiter = delimiter.unwrap_or(',');
        format.null = null.unwrap_or_default();
    } else {
        format.delimiter = delimiter.unwrap_or('\t');
        format.null = null.unwrap_or_else(|| "\\N".into());
    }
    Ok(QueryResult::CopyIn(CopyTarget {
        table: name,
        columns: cols,
        format,
    }))
}
