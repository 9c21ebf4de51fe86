//! Differential tests: every statement of `tests/differential/*.sql` runs on
//! PostgreSQL and on Tessera, each in a fresh database, and the two must
//! agree: the same rows (compared as text, in order when the statement has a
//! top-level ORDER BY, else as sorted multisets) and the same row counts, or
//! errors with the same SQLSTATE.
//!
//! ```sh
//! cargo test --workspace -- differential::          # every file
//! cargo test --workspace -- differential::joins     # one file
//! ```
//!
//! File format: SQL statements, each ending with `;` at the end of a line;
//! lines that start with `--` are comments. Statements should be
//! deterministic (no `now()`, `random()`, unordered `LIMIT`).
//!
//! PostgreSQL is `TESSERA_PG_URL` when set, else a throwaway server from
//! the local installation (see `tessera_e2e::pg`); without one the tests
//! print "skipped: ..." and pass. Tessera is a 3-node cluster of real
//! processes, each file through the next node in turn. Every mismatch of a
//! file is reported; the file fails at the end if there was any.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::Target;
use tokio_postgres::{Client, Config, SimpleQueryMessage};

/// How long one statement may take.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Rows printed per side in a mismatch report.
const SHOWN_ROWS: usize = 8;

fn main() {
    let dir = support::manifest_dir().join("differential");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    if files.is_empty() {
        println!("notice: no differential files in {}", dir.display());
    }
    let mut trials = vec![support::trial("differential_self_check", self_check)];
    trials.extend(files.into_iter().enumerate().map(|(i, path)| {
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        support::trial(&format!("differential::{stem}"), move || run_file(&path, i))
    }));
    support::run_trials(trials)
}

/// One statement of a file.
#[derive(Debug, PartialEq)]
struct Statement {
    /// 1-based line where it starts.
    line: usize,
    sql: String,
}

/// Splits a file into statements: each ends with `;` at the end of a line,
/// `--` comment lines are dropped.
/// The statements of a file, with each `\ir FILE` line (psql's include,
/// relative to the file) replaced by the statements of FILE. Line numbers
/// are those of the file each statement stands in.
fn load_statements(path: &Path) -> Result<Vec<Statement>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut statements = Vec::new();
    let mut chunk = String::new();
    let mut chunk_start = 0;
    let flush = |chunk: &mut String, chunk_start: usize, out: &mut Vec<Statement>| {
        out.extend(split_statements(chunk).into_iter().map(|s| Statement {
            line: s.line + chunk_start,
            sql: s.sql,
        }));
        chunk.clear();
    };
    for (i, line) in text.lines().enumerate() {
        if let Some(included) = line.trim().strip_prefix("\\ir ") {
            flush(&mut chunk, chunk_start, &mut statements);
            chunk_start = i + 1;
            let dir = path.parent().unwrap_or(Path::new("."));
            statements.extend(load_statements(&dir.join(included.trim()))?);
        } else {
            chunk.push_str(line);
            chunk.push('\n');
        }
    }
    flush(&mut chunk, chunk_start, &mut statements);
    Ok(statements)
}

fn split_statements(text: &str) -> Vec<Statement> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if current.is_empty() {
            start = i + 1;
        }
        current.push_str(line);
        current.push('\n');
        if trimmed.ends_with(';') {
            let sql = current.trim().trim_end_matches(';').trim().to_string();
            if !sql.is_empty() {
                statements.push(Statement { line: start, sql });
            }
            current.clear();
        }
    }
    let rest = current.trim();
    if !rest.is_empty() {
        statements.push(Statement {
            line: start,
            sql: rest.to_string(),
        });
    }
    statements
}

/// Does the statement have an ORDER BY outside parentheses and quotes (so
/// that it orders the result rather than a subquery or an aggregate)?
fn has_top_level_order_by(sql: &str) -> bool {
    let mut depth = 0i32;
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut chars = sql.chars().peekable();
    fn flush(word: &mut String, depth: i32, words: &mut Vec<String>) {
        if !word.is_empty() {
            if depth == 0 {
                words.push(word.to_ascii_uppercase());
            }
            word.clear();
        }
    }
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                flush(&mut word, depth, &mut words);
                // Skip the quoted text; a doubled quote stays inside.
                while let Some(d) = chars.next() {
                    if d == c {
                        if chars.peek() == Some(&c) {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                words.push(String::new());
            }
            '-' if chars.peek() == Some(&'-') => {
                flush(&mut word, depth, &mut words);
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '(' => {
                flush(&mut word, depth, &mut words);
                depth += 1;
            }
            ')' => {
                flush(&mut word, depth, &mut words);
                depth -= 1;
            }
            c if c.is_alphanumeric() || c == '_' => word.push(c),
            _ => flush(&mut word, depth, &mut words),
        }
    }
    flush(&mut word, depth, &mut words);
    words.windows(2).any(|w| w[0] == "ORDER" && w[1] == "BY")
}

/// What a statement did on one server.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// The statement's results: one per statement in the string (normally
    /// one).
    Ok(Vec<ResultSet>),
    /// A server error.
    Error { sqlstate: String, message: String },
    /// No answer, or a broken connection.
    Failure(String),
}

#[derive(Debug, Clone, PartialEq)]
enum ResultSet {
    Rows(Vec<Vec<Option<String>>>),
    Count(u64),
}

async fn execute(client: &Client, sql: &str) -> Outcome {
    let messages = match tokio::time::timeout(STATEMENT_TIMEOUT, client.simple_query(sql)).await {
        Err(_) => return Outcome::Failure(format!("no answer within {STATEMENT_TIMEOUT:?}")),
        Ok(Err(err)) => {
            return match err.as_db_error() {
                Some(db) => Outcome::Error {
                    sqlstate: db.code().code().to_string(),
                    message: db.message().to_string(),
                },
                None => Outcome::Failure(support::error_text(&err)),
            }
        }
        Ok(Ok(messages)) => messages,
    };
    let mut results = Vec::new();
    let mut rows: Option<Vec<Vec<Option<String>>>> = None;
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(_) => rows = Some(Vec::new()),
            SimpleQueryMessage::Row(row) => rows.get_or_insert_with(Vec::new).push(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            SimpleQueryMessage::CommandComplete(n) => match rows.take() {
                Some(rows) => results.push(ResultSet::Rows(rows)),
                None => results.push(ResultSet::Count(n)),
            },
            _ => {}
        }
    }
    Outcome::Ok(results)
}

/// Do the two outcomes agree? Rows are compared sorted unless `ordered`.
fn agree(postgres: &Outcome, tessera: &Outcome, ordered: bool) -> bool {
    match (postgres, tessera) {
        (Outcome::Ok(a), Outcome::Ok(b)) => {
            a.len() == b.len()
                && a.iter().zip(b).all(|pair| match pair {
                    (ResultSet::Rows(x), ResultSet::Rows(y)) => {
                        if ordered {
                            x == y
                        } else {
                            sorted(x) == sorted(y)
                        }
                    }
                    (ResultSet::Count(x), ResultSet::Count(y)) => x == y,
                    _ => false,
                })
        }
        (Outcome::Error { sqlstate: a, .. }, Outcome::Error { sqlstate: b, .. }) => a == b,
        _ => false,
    }
}

fn sorted(rows: &[Vec<Option<String>>]) -> Vec<Vec<Option<String>>> {
    let mut rows = rows.to_vec();
    rows.sort();
    rows
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Error { sqlstate, message } => format!("error {sqlstate}: {message}"),
        Outcome::Failure(text) => format!("FAILURE: {text}"),
        Outcome::Ok(results) => results
            .iter()
            .map(|r| match r {
                ResultSet::Count(n) => format!("ok, {n} rows affected"),
                ResultSet::Rows(rows) => {
                    let mut text = format!("{} rows", rows.len());
                    for row in rows.iter().take(SHOWN_ROWS) {
                        let values: Vec<String> = row
                            .iter()
                            .map(|v| match v {
                                None => "NULL".to_string(),
                                Some(v) => format!("{v:?}"),
                            })
                            .collect();
                        text.push_str(&format!("\n      ({})", values.join(", ")));
                    }
                    if rows.len() > SHOWN_ROWS {
                        text.push_str("\n      ...");
                    }
                    text
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// Both servers, or why PostgreSQL is missing.
fn targets() -> Result<Option<(&'static Target, &'static Target)>, String> {
    let postgres = match support::postgres() {
        Ok(postgres) => postgres,
        Err(reason) => {
            println!("skipped: differential tests need PostgreSQL: {reason}");
            return Ok(None);
        }
    };
    Ok(Some((postgres, support::tessera()?)))
}

fn run_file(path: &Path, index: usize) -> Result<(), String> {
    let Some((postgres, tessera)) = targets()? else {
        return Ok(());
    };
    let statements = load_statements(path)?;
    let stem = path.file_stem().unwrap().to_string_lossy().to_string();
    let database = support::unique_database(&format!("diff_{stem}"));
    let name = format!(
        "differential/{}",
        path.file_name().unwrap().to_string_lossy()
    );
    support::runtime().block_on(async {
        let pg_config = postgres.fresh_database(&database, 0).await?;
        let tessera_config = tessera.fresh_database(&database, index).await?;
        let mut sessions = [
            Session::open(pg_config).await?,
            Session::open(tessera_config).await?,
        ];
        let mut mismatches = Vec::new();
        for statement in &statements {
            let pg = sessions[0].execute(&statement.sql).await;
            let ts = sessions[1].execute(&statement.sql).await;
            let ordered = has_top_level_order_by(&statement.sql);
            if !agree(&pg, &ts, ordered) {
                mismatches.push(format!(
                    "{name}:{}: {}\n    postgres: {}\n    tessera:  {}",
                    statement.line,
                    statement.sql.replace('\n', "\n      "),
                    describe(&pg),
                    describe(&ts),
                ));
            }
        }
        drop(sessions);
        postgres.drop_database(&database).await;
        tessera.drop_database(&database).await;
        println!(
            "{name}: {} of {} statements agree",
            statements.len() - mismatches.len(),
            statements.len()
        );
        if mismatches.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} of {} statements disagree:\n{}",
                mismatches.len(),
                statements.len(),
                mismatches.join("\n")
            ))
        }
    })
}

/// A connection that reopens itself after it breaks, so that one crash or
/// protocol error does not turn every later statement into a mismatch.
struct Session {
    config: Config,
    client: Option<Client>,
}

impl Session {
    async fn open(config: Config) -> Result<Self, String> {
        let client = support::connect(&config).await?;
        Ok(Self {
            config,
            client: Some(client),
        })
    }

    async fn execute(&mut self, sql: &str) -> Outcome {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            match support::connect(&self.config).await {
                Ok(client) => self.client = Some(client),
                Err(err) => return Outcome::Failure(format!("reconnect: {err}")),
            }
        }
        let outcome = execute(self.client.as_ref().unwrap(), sql).await;
        if matches!(outcome, Outcome::Failure(_)) {
            // A timed-out statement may still hold the session.
            self.client = None;
        }
        outcome
    }
}

/// Checks of the file parsing and comparison rules, without a server.
fn self_check() -> Result<(), String> {
    let text = "-- a comment\nCREATE TABLE t (a INT);\n\nSELECT a\n  FROM t -- why\n ORDER BY a;\nSELECT ';' ;\n";
    let got = split_statements(text);
    let want = vec![
        Statement {
            line: 2,
            sql: "CREATE TABLE t (a INT)".into(),
        },
        Statement {
            line: 4,
            sql: "SELECT a\n  FROM t -- why\n ORDER BY a".into(),
        },
        Statement {
            line: 7,
            sql: "SELECT ';'".into(),
        },
    ];
    if got != want {
        return Err(format!("split_statements: {got:?}"));
    }
    let order_by = [
        ("SELECT a FROM t ORDER BY a", true),
        ("select a from t order  by a desc limit 3", true),
        ("SELECT a FROM (SELECT a FROM t ORDER BY a) s", false),
        ("SELECT string_agg(b, ',' ORDER BY b) FROM t", false),
        ("SELECT row_number() OVER (ORDER BY a) FROM t", false),
        ("SELECT 'order by' FROM t", false),
        ("SELECT a FROM t UNION SELECT b FROM u ORDER BY 1", true),
    ];
    for (sql, want) in order_by {
        if has_top_level_order_by(sql) != want {
            return Err(format!("has_top_level_order_by({sql:?}) != {want}"));
        }
    }
    let rows = |v: &[&str]| {
        Outcome::Ok(vec![ResultSet::Rows(
            v.iter().map(|s| vec![Some(s.to_string())]).collect(),
        )])
    };
    let error = |s: &str| Outcome::Error {
        sqlstate: s.into(),
        message: String::new(),
    };
    let checks = [
        (rows(&["1", "2"]), rows(&["2", "1"]), false, true),
        (rows(&["1", "2"]), rows(&["2", "1"]), true, false),
        (rows(&["1"]), rows(&["1", "1"]), false, false),
        (error("42P01"), error("42P01"), false, true),
        (error("42P01"), error("42703"), false, false),
        (rows(&[]), error("42P01"), false, false),
    ];
    for (a, b, ordered, want) in checks {
        if agree(&a, &b, ordered) != want {
            return Err(format!("agree({a:?}, {b:?}, {ordered}) != {want}"));
        }
    }
    Ok(())
}
