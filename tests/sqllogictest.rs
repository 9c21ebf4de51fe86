//! The sqllogictest runner: every `.slt` file under `sqllogictest/` and the
//! SQLite corpus files `../shared/sqllogictest/sqlite/select{1,2}.test`, each
//! in a fresh database, over the PostgreSQL wire protocol (tokio-postgres,
//! simple query protocol, results in text format).
//!
//! ```sh
//! cargo test --workspace -- slt::            # only this runner's files
//! TESSERA_SLT_FILTER=select1 cargo test --workspace -- slt   # a subset
//! TESSERA_SLT_TARGET=postgres cargo test --workspace -- slt  # a throwaway PostgreSQL
//! TESSERA_SLT_TARGET=postgres://u@host:5432/db cargo test --workspace -- slt
//! ```
//!
//! By default the files run on a 3-node Tessera cluster of real processes,
//! each file through the next node in turn. `TESSERA_SLT_TARGET` names
//! another server: `postgres` starts a throwaway PostgreSQL (or uses
//! `TESSERA_PG_URL`), a URL uses that server; it is how a suite is checked
//! against PostgreSQL itself.
//!
//! How results are printed and compared:
//! - NULL is `NULL`, the empty string `(empty)`; a column of type `R` is
//!   printed with three decimals (`%.3f`), others as the server sent them.
//! - In the SQLite corpus (`.test` files) values follow classic sqllogictest:
//!   an `I` value that is not an integer is truncated to one, and in `T`
//!   values every byte outside printable ASCII becomes `@`.
//! - Expected results may list one row per line (values separated by
//!   spaces) or one value per line (the classic format); both are accepted.
//!   `N values hashing to <md5>` lines (after `hash-threshold`) hash each
//!   value followed by a newline, after rowsort/valuesort.
//! - Conditions: the engine name is `postgresql` on every server, and the
//!   label `tessera` is set on Tessera only: `skipif postgresql` skips,
//!   `onlyif postgresql` runs, `skipif tessera` skips a known gap on Tessera
//!   while PostgreSQL still checks it, `onlyif tessera` runs Tessera-only SQL.
//! - `statement error (23505)` expects a SQLSTATE; `statement error <regex>`
//!   matches `SQLSTATE: ERROR: message` (plus `DETAIL:`/`HINT:` lines).
//!
//! Every record of a file runs even after one fails; the file fails with its
//! first mismatch and a count of the others.

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqllogictest::{
    AsyncDB, DBOutput, DefaultColumnType, Normalizer, QueryExpect, Record, RecordOutput, Runner,
};
use support::Target;
use tokio_postgres::{Client, Config, SimpleQueryMessage};

/// How long one statement may take before the file fails.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// The SQLite corpus files run, from `../shared/sqllogictest/sqlite/`.
const SQLITE_CORPUS: &[&str] = &["select1.test", "select2.test"];

fn main() {
    let root = support::manifest_dir()
        .parent()
        .expect("repository root")
        .to_path_buf();
    let filter = std::env::var("TESSERA_SLT_FILTER").unwrap_or_default();

    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let suites = root.join("sqllogictest");
    let mut slt = Vec::new();
    collect_slt(&suites, &mut slt);
    slt.sort();
    for path in slt {
        let relative = path.strip_prefix(&suites).unwrap_or(&path).display();
        files.push((format!("slt::{relative}"), path));
    }
    let corpus = root.join("../shared/sqllogictest/sqlite");
    if corpus.is_dir() {
        for name in SQLITE_CORPUS {
            let path = corpus.join(name);
            if path.exists() {
                files.push((format!("slt::sqlite/{name}"), path));
            } else {
                println!("notice: {} not found, skipped", path.display());
            }
        }
    } else {
        println!(
            "notice: SQLite corpus skipped: {} not found",
            corpus.display()
        );
    }
    if !filter.is_empty() {
        let before = files.len();
        files.retain(|(name, _)| name.contains(&filter));
        println!(
            "TESSERA_SLT_FILTER={filter}: {} of {before} files",
            files.len()
        );
    }

    let mut trials = vec![support::trial("slt_runner_self_check", self_check)];
    trials.extend(files.into_iter().enumerate().map(|(i, (name, path))| {
        let trial_name = name.clone();
        support::trial(&trial_name, move || run_file(&name, &path, i))
    }));
    support::run_trials(trials)
}

fn collect_slt(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_slt(&path, out);
        } else if path.extension().is_some_and(|e| e == "slt") {
            out.push(path);
        }
    }
}

/// Runs one file in a fresh database through entry point `index`.
fn run_file(name: &str, path: &Path, index: usize) -> Result<(), String> {
    let target = support::target_from_env("TESSERA_SLT_TARGET")?;
    let classic = path.extension().is_some_and(|e| e == "test");
    let started = Instant::now();
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("file");
    let database = support::unique_database(&format!("slt_{stem}"));
    let outcome = support::runtime().block_on(async {
        let config = target.fresh_database(&database, index).await?;
        let outcome = run_records(target, config, path, classic).await;
        target.drop_database(&database).await;
        outcome
    })?;
    let elapsed = started.elapsed();
    println!(
        "{name}: {} of {} records passed, {} skipped ({elapsed:.1?})",
        outcome.passed,
        outcome.passed + outcome.failed,
        outcome.skipped,
    );
    match outcome.first_failure {
        None => Ok(()),
        Some(first) => Err(format!(
            "{name}: {} of {} records failed; the first:\n{first}",
            outcome.failed,
            outcome.passed + outcome.failed
        )),
    }
}

#[derive(Default)]
struct FileOutcome {
    passed: usize,
    failed: usize,
    skipped: usize,
    first_failure: Option<String>,
}

async fn run_records(
    target: &Target,
    config: Config,
    path: &Path,
    classic: bool,
) -> Result<FileOutcome, String> {
    let records = sqllogictest::parse_file::<DefaultColumnType>(path)
        .map_err(|e| format!("cannot parse {}: {e}", path.display()))?;
    // The column types the current query record expects: formatting values
    // (`R` as %.3f, classic `I`) depends on them, and the runner hashes the
    // values the connection returns.
    let expected_types: Arc<Mutex<Vec<DefaultColumnType>>> = Arc::default();
    let types = expected_types.clone();
    let mut runner = Runner::new(move || {
        let config = config.clone();
        let types = types.clone();
        async move { SltConnection::connect(&config, types, classic).await }
    });
    runner.add_label("postgresql");
    if target.is_tessera() {
        runner.add_label("tessera");
    }
    runner.with_validator(row_or_value_validator);
    if classic {
        // Classic sqllogictest hashes any result longer than 8 values
        // unless the file says otherwise (the SQLite files never do).
        runner.with_hash_threshold(8);
    }

    let mut outcome = FileOutcome::default();
    for record in records {
        let counts = matches!(record, Record::Statement { .. } | Record::Query { .. });
        match &record {
            Record::Halt { .. } => break,
            Record::Query {
                expected: QueryExpect::Results { types, .. },
                ..
            } => *expected_types.lock().unwrap() = types.clone(),
            _ => expected_types.lock().unwrap().clear(),
        }
        match runner.run_async(record).await {
            Ok(RecordOutput::Nothing) if counts => outcome.skipped += 1,
            Ok(_) if counts => outcome.passed += 1,
            Ok(_) => {}
            Err(err) => {
                outcome.failed += 1;
                if outcome.first_failure.is_none() {
                    outcome.first_failure = Some(err.display(false).to_string());
                }
            }
        }
    }
    runner.shutdown_async().await;
    Ok(outcome)
}

/// Accepts expected results written one row per line (values joined by
/// spaces, as `.slt` files do) or one value per line (classic
/// sqllogictest), after whitespace normalization.
fn row_or_value_validator(
    normalizer: Normalizer,
    actual: &[Vec<String>],
    expected: &[String],
) -> bool {
    let expected: Vec<String> = expected.iter().map(normalizer).collect();
    let rows: Vec<String> = actual
        .iter()
        .map(|row| row.iter().map(normalizer).collect::<Vec<_>>().join(" "))
        .collect();
    if rows == expected {
        return true;
    }
    let values: Vec<String> = actual.iter().flatten().map(normalizer).collect();
    values == expected
}

/// A server error, printed with its SQLSTATE so that `statement error
/// <regex>` can match the message.
#[derive(Debug)]
struct SqlError {
    text: String,
    sqlstate: Option<String>,
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for SqlError {}

impl From<tokio_postgres::Error> for SqlError {
    fn from(err: tokio_postgres::Error) -> Self {
        Self {
            text: support::error_text(&err),
            sqlstate: support::sqlstate(&err),
        }
    }
}

/// One session of a test file.
struct SltConnection {
    client: Client,
    expected_types: Arc<Mutex<Vec<DefaultColumnType>>>,
    classic: bool,
}

impl SltConnection {
    async fn connect(
        config: &Config,
        expected_types: Arc<Mutex<Vec<DefaultColumnType>>>,
        classic: bool,
    ) -> Result<Self, SqlError> {
        let client = support::connect(config).await.map_err(|text| SqlError {
            text,
            sqlstate: None,
        })?;
        Ok(Self {
            client,
            expected_types,
            classic,
        })
    }
}

#[async_trait]
impl AsyncDB for SltConnection {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlError> {
        let messages = tokio::time::timeout(STATEMENT_TIMEOUT, self.client.simple_query(sql))
            .await
            .map_err(|_| SqlError {
                text: format!("no answer within {STATEMENT_TIMEOUT:?}"),
                sqlstate: None,
            })??;
        let expected = self.expected_types.lock().unwrap().clone();
        let mut columns = None;
        let mut rows = Vec::new();
        let mut count = 0;
        for message in messages {
            match message {
                SimpleQueryMessage::RowDescription(description) => {
                    columns = Some(description.len());
                }
                SimpleQueryMessage::Row(row) => {
                    if columns.is_none() {
                        columns = Some(row.len());
                    }
                    let values = (0..row.len())
                        .map(|i| format_value(row.get(i), expected.get(i), self.classic))
                        .collect();
                    rows.push(values);
                }
                SimpleQueryMessage::CommandComplete(n) => count = n,
                _ => {}
            }
        }
        let Some(columns) = columns else {
            return Ok(DBOutput::StatementComplete(count));
        };
        let types = if expected.len() == columns {
            expected
        } else {
            vec![DefaultColumnType::Any; columns]
        };
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "postgresql"
    }

    async fn sleep(duration: Duration) {
        tokio::time::sleep(duration).await
    }

    fn error_sql_state(err: &SqlError) -> Option<String> {
        err.sqlstate.clone()
    }
}

/// One value as sqllogictest prints it; see the module doc.
fn format_value(value: Option<&str>, column: Option<&DefaultColumnType>, classic: bool) -> String {
    let Some(value) = value else {
        return "NULL".to_string();
    };
    if value.is_empty() {
        return "(empty)".to_string();
    }
    match column {
        Some(DefaultColumnType::FloatingPoint) => match value.trim().parse::<f64>() {
            Ok(v) => format!("{v:.3}"),
            Err(_) => value.to_string(),
        },
        Some(DefaultColumnType::Integer) if classic => {
            let trimmed = value.trim();
            if let Ok(v) = trimmed.parse::<i64>() {
                v.to_string()
            } else if let Ok(v) = trimmed.parse::<f64>() {
                // SQLite's sqlite3_column_int64: truncation toward zero.
                (v.trunc() as i64).to_string()
            } else {
                value.to_string()
            }
        }
        Some(DefaultColumnType::Text) if classic => value
            .bytes()
            .map(|b| {
                if (b' '..=b'~').contains(&b) {
                    b as char
                } else {
                    '@'
                }
            })
            .collect(),
        _ => value.to_string(),
    }
}

/// Checks of the formatting and comparison rules, without a server.
fn self_check() -> Result<(), String> {
    use DefaultColumnType::*;
    let cases: &[(Option<&str>, DefaultColumnType, bool, &str)] = &[
        (None, Integer, true, "NULL"),
        (Some(""), Text, false, "(empty)"),
        (Some("2.5"), FloatingPoint, false, "2.500"),
        (Some("-0.0004"), FloatingPoint, true, "-0.000"),
        (Some("2.75"), Integer, true, "2"),
        (Some("-2.75"), Integer, true, "-2"),
        (Some("2.75"), Integer, false, "2.75"),
        (Some("a\tb\u{e9}"), Text, true, "a@b@@"),
        (Some("a b"), Text, false, "a b"),
    ];
    for (value, column, classic, expected) in cases {
        let got = format_value(*value, Some(column), *classic);
        if got != *expected {
            return Err(format!(
                "format_value({value:?}, {column:?}, classic={classic}) = {got:?}, want {expected:?}"
            ));
        }
    }
    let normalizer: Normalizer = sqllogictest::default_normalizer;
    let actual = vec![
        vec!["1".to_string(), "a  b".to_string()],
        vec!["2".to_string(), "c".to_string()],
    ];
    let rows = ["1 a b".to_string(), "2 c".to_string()];
    let values = ["1", "a b", "2", "c"].map(String::from);
    if !row_or_value_validator(normalizer, &actual, &rows)
        || !row_or_value_validator(normalizer, &actual, &values)
        || row_or_value_validator(normalizer, &actual, &values[..3])
    {
        return Err("row_or_value_validator".to_string());
    }
    Ok(())
}
