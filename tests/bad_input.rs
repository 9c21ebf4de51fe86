//! Bad input over the wire against a 3-node Tessera cluster of real
//! processes: a thousand malformed or ill-typed statements, each of which
//! must fail with a 5-character SQLSTATE while the session stays usable, and
//! garbage bytes on raw connections, after which the server still serves.
//!
//! ```sh
//! cargo test --workspace -- bad_input::
//! TESSERA_SQL_TARGET=postgres cargo test --workspace -- bad_input::   # check the statements fail on PostgreSQL too
//! ```
//!
//! Everything is generated from fixed seeds, so a failure names a statement
//! that fails the same way on the next run.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use support::Target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::{Client, Config};

/// How many bad statements to send.
const STATEMENTS: usize = 1000;

/// Raw connections that send garbage.
const GARBAGE_ROUNDS: usize = 200;

/// How long one answer may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

fn main() {
    support::run_trials(vec![
        support::trial("bad_input::malformed_statements", malformed_statements),
        support::trial("bad_input::garbage_bytes", garbage_bytes),
    ])
}

fn target() -> Result<&'static Target, String> {
    support::target_from_env("TESSERA_SQL_TARGET")
}

/// The table the statements refer to: three rows, ids 1 to 3.
const SETUP: &str = "CREATE TABLE bad_t (a INT PRIMARY KEY, b TEXT, c FLOAT8); \
                     INSERT INTO bad_t VALUES (1, 'x', 1.5), (2, 'y', 2.5), (3, 'z', NULL)";

/// Valid statements over `bad_t`, tokens separated by single spaces, that
/// the generator truncates and garbles.
const VALID: &[&str] = &[
    "SELECT a , b FROM bad_t WHERE a = 1 AND b = 'x' ORDER BY a",
    "INSERT INTO bad_t ( a , b ) VALUES ( 7 , 'q' ) , ( 8 , 'r' )",
    "UPDATE bad_t SET b = 'z' , c = 2.5 WHERE a > 1 OR b IS NULL",
    "DELETE FROM bad_t WHERE a IN ( 1 , 2 , 3 )",
    "SELECT count ( * ) FROM bad_t GROUP BY b HAVING count ( * ) > 1",
    "CREATE TABLE bad_new ( x INT PRIMARY KEY , y TEXT NOT NULL )",
    "SELECT t . a FROM bad_t AS t JOIN bad_t AS u ON t . a = u . a",
    "SELECT CASE WHEN a > 1 THEN 'big' ELSE 'small' END FROM bad_t",
    "SELECT a FROM bad_t WHERE b LIKE 'x%' AND c BETWEEN 1 AND 2",
];

/// A statement cut right after one of these tokens is incomplete.
const NEEDS_MORE: &[&str] = &[
    "WHERE", "AND", "OR", "=", ">", "IN", "(", ",", "FROM", "SET", "VALUES", "BY", "JOIN", "ON",
    "INTO", "HAVING", "AS", "UPDATE", "DELETE", "INSERT", "GROUP", "ORDER", "CASE", "WHEN", "THEN",
    "ELSE", "LIKE", "BETWEEN", "IS", "NOT", ".", "TABLE", "CREATE", "PRIMARY",
];

/// Statements that parse but fail: types, values, names, constraints.
/// `{n}` is replaced by a number from the generator (1 to 999).
const ILL_TYPED: &[&str] = &[
    "SELECT {n} + 'abc{n}'",
    "SELECT 'x{n}'::INT4",
    "SELECT '{n}.5x'::FLOAT8",
    "SELECT TRUE + {n}",
    "SELECT {n} / 0",
    "SELECT {n} % 0",
    "SELECT {n}.5 / 0.0",
    "SELECT {n}::FLOAT8 / 0",
    "SELECT 2147483647 + {n}",
    "SELECT 9223372036854775807 + {n}",
    "SELECT ({n} + 32767)::INT2",
    "SELECT 2147483647 * ({n} + 1)",
    "SELECT 99999999999{n}::INT4",
    "SELECT -9223372036854775807 - 1 - {n}",
    "SELECT 1e400::FLOAT8 + {n}",
    "SELECT '2024-13-{n}'::DATE",
    "SELECT '2023-02-29 10:00:{n}'::TIMESTAMP",
    "SELECT 'x{n}'::DATE",
    "SELECT 'maybe{n}'::BOOL",
    "SELECT 'zz{n}'::UUID",
    "SELECT 'abc{n}'::NUMERIC",
    "SELECT '\\xZZ{n}'::BYTEA",
    "SELECT nosuch_function_{n}(1)",
    "SELECT length(1, 2, {n})",
    "SELECT sum(b) + {n} FROM bad_t",
    "SELECT a FROM bad_t WHERE a = 'abc{n}'",
    "SELECT a FROM bad_t WHERE b > {n}",
    "SELECT * FROM bad_t WHERE a + {n}",
    "SELECT CASE WHEN {n} THEN 2 END",
    "SELECT {n} UNION SELECT 'a'",
    "SELECT {n}, 2 UNION SELECT 1",
    "SELECT * FROM missing_{n}",
    "SELECT nope_{n} FROM bad_t",
    "SELECT bad_t.nope_{n} FROM bad_t",
    "SELECT x{n}.a FROM bad_t",
    "INSERT INTO missing_{n} VALUES (1)",
    "UPDATE bad_t SET nope_{n} = 1",
    "UPDATE missing_{n} SET a = 1",
    "DELETE FROM missing_{n}",
    "DROP TABLE missing_{n}",
    "CREATE INDEX bad_idx_{n} ON missing_{n} (a)",
    "ALTER TABLE missing_{n} ADD COLUMN z INT",
    "CREATE TABLE bad_t (a INT, n{n} INT)",
    "INSERT INTO bad_t VALUES (1, 'dup{n}', 1.0)",
    "INSERT INTO bad_t (b) VALUES ('x{n}')",
    "INSERT INTO bad_t (a, b) VALUES ({n})",
    "INSERT INTO bad_t VALUES ({n}, 'x', 1.0, 4)",
    "INSERT INTO bad_t (a, a) VALUES ({n}, 2)",
    "INSERT INTO bad_t (a) VALUES ('abc{n}')",
    "UPDATE bad_t SET a = 'abc{n}'",
    "UPDATE bad_t SET a = 1 WHERE a > {n} - 1000",
    "SELECT a FROM bad_t GROUP BY b HAVING {n} > 0",
    "SELECT a, count(*) + {n} FROM bad_t",
    "SELECT * FROM bad_t ORDER BY 1{n}",
    "SELECT a + {n} FROM bad_t, bad_t",
    "SELECT a + {n} FROM bad_t AS x JOIN bad_t AS y ON true",
    "SELECT (SELECT a FROM bad_t) + {n}",
    "SELECT a FROM bad_t LIMIT -{n}",
    "SELECT a FROM bad_t LIMIT 'abc{n}'",
    "SHOW nosuch_setting_{n}",
    "EXECUTE nosuch_statement_{n}",
    "DEALLOCATE nosuch_statement_{n}",
];

/// Words of the token soups.
const VOCABULARY: &[&str] = &[
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "NULL", "IS", "IN", "BETWEEN", "LIKE", "GROUP",
    "BY", "ORDER", "HAVING", "LIMIT", "OFFSET", "JOIN", "LEFT", "ON", "AS", "CASE", "WHEN", "THEN",
    "ELSE", "END", "INSERT", "INTO", "UPDATE", "SET", "DELETE", "CREATE", "DROP", "INDEX",
    "PRIMARY", "KEY", "DISTINCT", "UNION", "ALL", "EXISTS", "a", "b", "c", "bad_t", "x", "count",
    "sum", "'str'", "'it''s'", "''", "42", "-7", "3.14", "1e5", "TRUE", "FALSE", "+", "-", "*",
    "/", "%", "=", "<>", "<", ">", "<=", ">=", "||", "::", "INT", "TEXT", "FLOAT8", "(", ")", ",",
    ".", "[", "]", "$", "@", "#", "~", "!", "?", "&", "|", "^", "\"q\"", "é", "✓",
];

/// First words that no statement starts with.
const BAD_STARTS: &[&str] = &[
    ")", ",", "FROM", "WHERE", "42", "'soup'", "*", "=", "AND", "ON", "THEN", "::", "+", "]",
];

/// The bad statements, deterministically.
fn bad_statements() -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(0x7e55_e7a0);
    let mut out = Vec::with_capacity(STATEMENTS);
    // A few large ones: deep nesting and long unterminated input.
    out.push(format!("SELECT {}1", "(".repeat(20_000)));
    out.push(format!(
        "SELECT {}",
        "(".repeat(200) + "1" + &")".repeat(199)
    ));
    out.push(format!("SELECT '{}", "unterminated ".repeat(20_000)));
    out.push(format!("SELECT {}", "1 + ".repeat(10_000)));
    while out.len() < STATEMENTS {
        let n = rng.gen_range(1..1000);
        let statement = match out.len() % 5 {
            // Truncated after a token that needs a continuation.
            0 => {
                let tokens: Vec<&str> = VALID.choose(&mut rng).unwrap().split(' ').collect();
                let cuts: Vec<usize> = (1..tokens.len())
                    .filter(|&i| NEEDS_MORE.contains(&tokens[i - 1]))
                    .collect();
                let cut = *cuts.choose(&mut rng).unwrap();
                tokens[..cut].join(" ")
            }
            // Cut inside a string literal.
            1 if rng.gen_bool(0.3) => {
                let valid = VALID.choose(&mut rng).unwrap();
                match valid.find('\'') {
                    Some(quote) => valid[..quote + 2].to_string(),
                    None => format!("SELECT 'abc{n}"),
                }
            }
            // A misspelled or doubled keyword.
            1 => {
                let mut tokens: Vec<String> = VALID
                    .choose(&mut rng)
                    .unwrap()
                    .split(' ')
                    .map(str::to_string)
                    .collect();
                if rng.gen_bool(0.5) {
                    tokens[0] = garble(&tokens[0], &mut rng);
                } else {
                    let first = tokens[0].clone();
                    tokens.insert(0, first);
                }
                tokens.join(" ")
            }
            2 => ILL_TYPED
                .choose(&mut rng)
                .unwrap()
                .replace("{n}", &n.to_string()),
            // Token soup behind a first word that starts no statement.
            3 => {
                let mut words = vec![*BAD_STARTS.choose(&mut rng).unwrap()];
                words.extend(soup(&mut rng));
                words.join(" ")
            }
            // Token soup after SELECT with a parenthesis left open.
            _ => {
                let mut words = vec!["SELECT"];
                words.extend(soup(&mut rng));
                words.push("(");
                words.join(" ")
            }
        };
        out.push(statement);
    }
    out
}

/// The misspelling of a keyword: a letter dropped, or two swapped.
fn garble(word: &str, rng: &mut StdRng) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    let i = rng.gen_range(0..chars.len() - 1);
    if rng.gen_bool(0.5) {
        chars.remove(i);
    } else {
        chars.swap(i, i + 1);
        if chars.iter().collect::<String>() == word {
            chars.remove(i);
        }
    }
    chars.into_iter().collect()
}

fn soup(rng: &mut StdRng) -> Vec<&'static str> {
    let len = rng.gen_range(2..30);
    (0..len).map(|_| *VOCABULARY.choose(rng).unwrap()).collect()
}

/// Is this a SQLSTATE: five digits or upper-case letters?
fn is_sqlstate(code: &str) -> bool {
    code.len() == 5
        && code
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

fn malformed_statements() -> Result<(), String> {
    let target = target()?;
    let statements = bad_statements();
    let database = support::unique_database("bad_statements");
    support::runtime().block_on(async {
        let config = target.fresh_database(&database, 0).await?;
        let client = support::connect(&config).await?;
        client
            .batch_execute(SETUP)
            .await
            .map_err(|e| format!("setup: {}", support::error_text(&e)))?;
        let mut problems = Vec::new();
        let mut codes: BTreeMap<String, usize> = BTreeMap::new();
        for (i, sql) in statements.iter().enumerate() {
            // Every third statement through the extended protocol (Parse,
            // Bind, Execute), the rest as simple queries.
            let extended = i % 3 == 2;
            let answer = if extended {
                tokio::time::timeout(ANSWER_TIMEOUT, client.query(sql.as_str(), &[]))
                    .await
                    .map(|r| r.map(|rows| format!("{} rows", rows.len())))
            } else {
                tokio::time::timeout(ANSWER_TIMEOUT, client.simple_query(sql))
                    .await
                    .map(|r| r.map(|m| format!("{} messages", m.len())))
            };
            let shown = shorten(sql);
            match answer {
                Err(_) => {
                    return Err(format!(
                        "statement {i} got no answer within {ANSWER_TIMEOUT:?}: {shown}"
                    ))
                }
                Ok(Ok(what)) => problems.push(format!("statement {i} succeeded ({what}): {shown}")),
                Ok(Err(err)) => match err.as_db_error() {
                    Some(db) if is_sqlstate(db.code().code()) => {
                        *codes.entry(db.code().code().to_string()).or_default() += 1;
                    }
                    Some(db) => problems.push(format!(
                        "statement {i}: bad SQLSTATE {:?}: {shown}",
                        db.code().code()
                    )),
                    None => {
                        return Err(format!(
                            "statement {i} broke the session: {}: {shown}",
                            support::error_text(&err)
                        ))
                    }
                },
            }
            if i % 25 == 24 || i + 1 == statements.len() {
                still_usable(&client)
                    .await
                    .map_err(|e| format!("after statement {i} ({shown}): {e}"))?;
            }
        }
        // Nothing the statements did changed the table.
        let rows = client
            .simple_query("SELECT a FROM bad_t")
            .await
            .map_err(|e| support::error_text(&e))?;
        let count = rows
            .iter()
            .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
            .count();
        drop(client);
        target.drop_database(&database).await;
        let summary: Vec<String> = codes.iter().map(|(c, n)| format!("{c} x{n}")).collect();
        println!(
            "bad_input::malformed_statements: {} statements, {} errors by SQLSTATE: {}",
            statements.len(),
            statements.len() - problems.len(),
            summary.join(", ")
        );
        if count != 3 {
            problems.push(format!("bad_t has {count} rows, want 3"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} problems:\n{}",
                problems.len(),
                problems.join("\n")
            ))
        }
    })
}

fn shorten(sql: &str) -> String {
    if sql.len() <= 200 {
        return sql.to_string();
    }
    let mut end = 200;
    while !sql.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &sql[..end], sql.len())
}

async fn still_usable(client: &Client) -> Result<(), String> {
    let answer = tokio::time::timeout(ANSWER_TIMEOUT, async {
        let simple = client.simple_query("SELECT 1").await?;
        let extended = client.query_one("SELECT $1::INT4 + 1", &[&1i32]).await?;
        Ok::<_, tokio_postgres::Error>((simple.len(), extended.get::<_, i32>(0)))
    })
    .await
    .map_err(|_| format!("SELECT 1 got no answer within {ANSWER_TIMEOUT:?}"))?;
    match answer {
        // RowDescription, DataRow, CommandComplete.
        Ok((3, 2)) => Ok(()),
        Ok(other) => Err(format!("SELECT 1 answered {other:?}")),
        Err(e) => Err(format!("SELECT 1 failed: {}", support::error_text(&e))),
    }
}

/// One backend message: type byte and body.
struct Message {
    kind: u8,
    body: Vec<u8>,
}

async fn read_message(stream: &mut TcpStream) -> Result<Message, String> {
    let mut header = [0u8; 5];
    stream
        .read_exact(&mut header)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let len = i32::from_be_bytes(header[1..5].try_into().unwrap());
    if !(4..=1 << 24).contains(&len) {
        return Err(format!("message {:?} of length {len}", header[0] as char));
    }
    let mut body = vec![0u8; len as usize - 4];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|e| format!("read: {e}"))?;
    Ok(Message {
        kind: header[0],
        body,
    })
}

/// Reads messages until ReadyForQuery; returns their type bytes.
async fn read_until_ready(stream: &mut TcpStream) -> Result<Vec<u8>, String> {
    tokio::time::timeout(ANSWER_TIMEOUT, async {
        let mut kinds = Vec::new();
        loop {
            let message = read_message(stream).await?;
            kinds.push(message.kind);
            match message.kind {
                b'Z' => return Ok(kinds),
                b'R' if message.body.get(..4) != Some(&[0, 0, 0, 0][..]) => {
                    return Err("the server asks for a password".to_string())
                }
                _ => {}
            }
        }
    })
    .await
    .map_err(|_| format!("no ReadyForQuery within {ANSWER_TIMEOUT:?}"))?
}

fn startup_message(user: &str, database: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608i32.to_be_bytes()); // protocol 3.0
    for (key, value) in [("user", user), ("database", database)] {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut message = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    message.extend(body);
    message
}

fn frontend_message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut message = vec![kind];
    message.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    message.extend_from_slice(body);
    message
}

/// Garbage for round `round`.
fn garbage(round: usize, rng: &mut StdRng) -> Vec<u8> {
    fn random(rng: &mut StdRng, len: usize) -> Vec<u8> {
        (0..len).map(|_| rng.gen()).collect()
    }
    match round % 4 {
        // Random bytes.
        0 => {
            let len = rng.gen_range(1..2048);
            random(rng, len)
        }
        // A frontend message type with a random length field and body.
        1 => {
            const KINDS: &[u8] = b"QPBEDSHCFfdcpX";
            let kind = KINDS[rng.gen_range(0..KINDS.len())];
            let len: i32 = match rng.gen_range(0..4) {
                0 => rng.gen(),
                1 => rng.gen_range(-8..8),
                2 => i32::MAX,
                _ => rng.gen_range(4..64),
            };
            let body_len = rng.gen_range(0..128);
            let mut message = vec![kind];
            message.extend_from_slice(&len.to_be_bytes());
            message.extend(random(rng, body_len));
            message
        }
        // Well-framed messages of every type with random bodies.
        2 => {
            let mut out = Vec::new();
            for _ in 0..rng.gen_range(1..6) {
                let kind = b"PBEDSHCFfdc"[rng.gen_range(0..11)];
                let body_len = rng.gen_range(0..64);
                out.extend(frontend_message(kind, &random(rng, body_len)));
            }
            out
        }
        // A message cut short.
        _ => {
            let mut message = frontend_message(b'Q', b"SELECT 1 + 1\0");
            let cut = rng.gen_range(1..message.len());
            message.truncate(cut);
            message
        }
    }
}

fn host_port(config: &Config) -> Result<(String, u16), String> {
    match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => Ok((host.clone(), config.get_ports()[0])),
        tokio_postgres::config::Host::Unix(dir) => Err(format!(
            "raw TCP test needs a TCP host, not {}",
            dir.display()
        )),
    }
}

async fn garbage_round(config: &Config, round: usize, rng: &mut StdRng) -> Result<(), String> {
    let (host, port) = host_port(config)?;
    let user = config.get_user().unwrap_or("tessera");
    let database = config.get_dbname().unwrap_or(support::TESSERA_DATABASE);
    let mut stream = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .write_all(&startup_message(user, database))
        .await
        .map_err(|e| format!("startup: {e}"))?;
    read_until_ready(&mut stream)
        .await
        .map_err(|e| format!("startup: {e}"))?;
    if round % 10 == 9 {
        // A query that is not UTF-8 gets an error, and the session goes on.
        let mut query = vec![0xff, 0xfe];
        query.extend((0..rng.gen_range(1..64)).map(|_| rng.gen_range(1..=255u8)));
        query.push(0);
        let _ = stream.write_all(&frontend_message(b'Q', &query)).await;
        let kinds = read_until_ready(&mut stream)
            .await
            .map_err(|e| format!("query that is not UTF-8: {e}"))?;
        if !kinds.contains(&b'E') {
            return Err(format!(
                "query that is not UTF-8: no ErrorResponse, got {:?}",
                String::from_utf8_lossy(&kinds)
            ));
        }
        stream
            .write_all(&frontend_message(b'Q', b"SELECT 1\0"))
            .await
            .map_err(|e| format!("write: {e}"))?;
        let kinds = read_until_ready(&mut stream)
            .await
            .map_err(|e| format!("SELECT 1 after an invalid query: {e}"))?;
        if kinds != b"TDCZ" {
            return Err(format!(
                "SELECT 1 after an invalid query answered {:?}",
                String::from_utf8_lossy(&kinds)
            ));
        }
        return Ok(());
    }
    // The server may close the connection at any point: writes and reads
    // may fail; it must only not take the node down.
    let _ = stream.write_all(&garbage(round, rng)).await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(20), stream.read(&mut sink)).await;
    Ok(())
}

fn garbage_bytes() -> Result<(), String> {
    let target = target()?;
    let mut rng = StdRng::seed_from_u64(0x6a7b_a9e5);
    support::runtime().block_on(async {
        let database = support::unique_database("bad_garbage");
        let config = target.fresh_database(&database, 0).await?;
        let entry_points = target.entry_points.len();
        for round in 0..GARBAGE_ROUNDS {
            let mut node = target.entry_point(round % entry_points);
            node.dbname(&database);
            garbage_round(&node, round, &mut rng)
                .await
                .map_err(|e| format!("round {round} on {:?}: {e}", node.get_ports()))?;
        }
        // Every node still answers a fresh connection.
        for i in 0..entry_points {
            let mut node = target.entry_point(i);
            node.dbname(&database);
            let client = support::connect(&node).await?;
            still_usable(&client)
                .await
                .map_err(|e| format!("entry point {i} after the garbage: {e}"))?;
        }
        drop(config);
        target.drop_database(&database).await;
        println!(
            "bad_input::garbage_bytes: {GARBAGE_ROUNDS} raw connections with garbage, \
             then every entry point answered"
        );
        Ok(())
    })
}
