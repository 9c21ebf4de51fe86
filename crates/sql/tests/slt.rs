//! The sqllogictest suites run in process against the SQL engine over the
//! in-memory store: fast feedback on the engine alone. The same files run
//! over the wire against a real cluster in `tests/sqllogictest.rs`.
//!
//! `TESSERA_SLT_FILTER=substring` runs a subset.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sqllogictest::{DBOutput, DefaultColumnType, Normalizer, QueryExpect, Record, Runner};
use tessera_sql::kv::MemoryKv;
use tessera_sql::{QueryResult, Session, SqlEngine};

struct Db {
    session: Session,
    expected: Arc<Mutex<Vec<DefaultColumnType>>>,
    classic: bool,
}

#[derive(Debug)]
struct Error(tessera_sql::SqlError);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ERROR: {}", self.0.code, self.0.message)
    }
}

impl std::error::Error for Error {}

impl sqllogictest::DB for Db {
    type Error = Error;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Error> {
        let stmts = self.session.parse(sql).map_err(Error)?;
        let mut last = DBOutput::StatementComplete(0);
        for stmt in stmts {
            last = match self.session.execute(&stmt, &[]).map_err(Error)? {
                QueryResult::Rows { columns, rows, .. } => {
                    let expected = self.expected.lock().unwrap().clone();
                    let rows = rows
                        .iter()
                        .map(|r| {
                            r.iter()
                                .zip(&columns)
                                .enumerate()
                                .map(|(i, (v, c))| {
                                    format_value(
                                        v.to_pg_text(c.ty).as_deref(),
                                        expected.get(i),
                                        self.classic,
                                    )
                                })
                                .collect()
                        })
                        .collect();
                    let types = if expected.len() == columns.len() {
                        expected
                    } else {
                        vec![DefaultColumnType::Any; columns.len()]
                    };
                    DBOutput::Rows { types, rows }
                }
                QueryResult::Command { tag } => DBOutput::StatementComplete(
                    tag.rsplit(' ')
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0),
                ),
                _ => DBOutput::StatementComplete(0),
            };
        }
        Ok(last)
    }

    fn engine_name(&self) -> &str {
        "postgresql"
    }

    fn error_sql_state(err: &Error) -> Option<String> {
        Some(err.0.code.to_string())
    }
}

/// One value as sqllogictest prints it (see tests/sqllogictest.rs).
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
        Some(DefaultColumnType::Integer) if classic => match value.trim().parse::<i64>() {
            Ok(v) => v.to_string(),
            Err(_) => value
                .trim()
                .parse::<f64>()
                .map(|v| (v.trunc() as i64).to_string())
                .unwrap_or_else(|_| value.to_string()),
        },
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

fn validator(normalizer: Normalizer, actual: &[Vec<String>], expected: &[String]) -> bool {
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

fn run_file(path: &Path, classic: bool) -> (usize, usize, Option<String>) {
    let expected = Arc::new(Mutex::new(Vec::new()));
    let e2 = expected.clone();
    let mut runner = Runner::new(move || {
        let expected = e2.clone();
        async move {
            let engine = SqlEngine::new(Arc::new(MemoryKv::new()));
            Ok(Db {
                session: Session::new(engine, "tessera", "tester", &[]).expect("session"),
                expected,
                classic,
            })
        }
    });
    runner.add_label("tessera");
    runner.with_validator(validator);
    if classic {
        // SQLite's sqllogictest hashes results of more than 8 values unless
        // a file says otherwise.
        runner.with_hash_threshold(8);
    }
    let records = sqllogictest::parse_file::<DefaultColumnType>(path).expect("parse");
    let (mut passed, mut failed, mut first) = (0, 0, None);
    for record in records {
        let counts = matches!(record, Record::Statement { .. } | Record::Query { .. });
        match &record {
            Record::Query {
                expected: QueryExpect::Results { types, .. },
                ..
            } => *expected.lock().unwrap() = types.clone(),
            _ => expected.lock().unwrap().clear(),
        }
        match runner.run(record) {
            Ok(_) if counts => passed += 1,
            Ok(_) => {}
            Err(e) => {
                failed += 1;
                if std::env::var("TESSERA_SLT_VERBOSE").is_ok() {
                    println!("{}\n", e.display(false));
                }
                if first.is_none() {
                    first = Some(e.display(false).to_string());
                }
            }
        }
    }
    (passed, failed, first)
}

#[test]
fn slt_suites_in_process() {
    // The package's directory as cargo gives it at run time: the path compiled in is that of the
    // checkout that built the binary, which a shared build directory may
    // make another one.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    let root = manifest.join("../..");
    let filter = std::env::var("TESSERA_SLT_FILTER").unwrap_or_default();
    let mut files: Vec<(PathBuf, bool)> = std::fs::read_dir(root.join("sqllogictest"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .map(|p| (p, false))
        .collect();
    let corpus = root.join("../shared/sqllogictest/sqlite");
    for f in ["select1.test", "select2.test"] {
        if corpus.join(f).exists() {
            files.push((corpus.join(f), true));
        } else {
            println!("skipped {f}: {} is absent", corpus.display());
        }
    }
    files.sort();
    let mut failures = Vec::new();
    for (path, classic) in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.contains(&filter) {
            continue;
        }
        let (passed, failed, first) = run_file(&path, classic);
        println!("{name}: {passed} passed, {failed} failed");
        if let Some(f) = first {
            failures.push(format!("{name} ({failed} failed); first:\n{f}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
