//! The pgwire frontend in process: `serve` over an in-memory SQL engine,
//! driven by tokio-postgres and by a raw-socket client for what drivers do
//! not expose (ReadyForQuery status, ParameterStatus, malformed input).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::SinkExt;
use tessera_pgwire::{serve, AuthConfig, AuthMethod};
use tessera_sql::kv::MemoryKv;
use tessera_sql::SqlEngine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// Starts a server on a free port; it stops with the test's runtime.
async fn start(auth: AuthConfig) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let engine = SqlEngine::new(Arc::new(MemoryKv::new()));
    tokio::spawn(serve(listener, engine, auth));
    addr
}

async fn try_connect(
    addr: SocketAddr,
    user: &str,
    password: Option<&str>,
    db: &str,
) -> Result<Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(addr.ip().to_string())
        .port(addr.port())
        .user(user)
        .dbname(db);
    if let Some(password) = password {
        config.password(password);
    }
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn connect(addr: SocketAddr) -> Client {
    try_connect(addr, "root", None, "tessera").await.unwrap()
}

fn rows(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

fn completions(messages: &[SimpleQueryMessage]) -> Vec<u64> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn simple_query_runs_every_statement_and_stops_at_the_first_error() {
    let addr = start(AuthConfig::trust()).await;
    let client = connect(addr).await;
    client
        .batch_execute("CREATE TABLE t (a INT PRIMARY KEY, b TEXT); INSERT INTO t VALUES (1, 'one'), (2, NULL)")
        .await
        .unwrap();
    let messages = client
        .simple_query("SELECT a, b FROM t ORDER BY a; SELECT 'x' AS y")
        .await
        .unwrap();
    assert_eq!(
        rows(&messages),
        vec![
            vec![Some("1".into()), Some("one".into())],
            vec![Some("2".into()), None],
            vec![Some("x".into())],
        ]
    );
    assert_eq!(completions(&messages), vec![2, 1]);

    let err = client
        .simple_query("INSERT INTO t VALUES (3, 'three'); SELECT * FROM missing; INSERT INTO t VALUES (4, 'four')")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
    // The statement after the error did not run.
    let messages = client
        .simple_query("SELECT a FROM t WHERE a = 4")
        .await
        .unwrap();
    assert!(rows(&messages).is_empty());

    // An empty query string.
    let messages = client.simple_query("").await.unwrap();
    assert!(rows(&messages).is_empty());
}

#[tokio::test]
async fn prepared_statements_with_binary_parameters_and_results() {
    let addr = start(AuthConfig::trust()).await;
    let client = connect(addr).await;
    client
        .batch_execute(
            "CREATE TABLE v (id INT PRIMARY KEY, b BOOL, i2 SMALLINT, i8 BIGINT, f4 REAL, f8 DOUBLE PRECISION, \
             n NUMERIC(10,2), s VARCHAR(20), by BYTEA, d DATE, ts TIMESTAMP, tz TIMESTAMPTZ, u UUID)",
        )
        .await
        .unwrap();

    // Describe infers the parameter types without executing.
    let insert = client
        .prepare("INSERT INTO v VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)")
        .await
        .unwrap();
    assert_eq!(
        insert.params(),
        &[
            Type::INT4,
            Type::BOOL,
            Type::INT2,
            Type::INT8,
            Type::FLOAT4,
            Type::FLOAT8,
            Type::NUMERIC,
            Type::VARCHAR,
            Type::BYTEA,
            Type::DATE,
            Type::TIMESTAMP,
            Type::TIMESTAMPTZ,
            Type::UUID
        ]
    );
    assert!(insert.columns().is_empty());
    let count = client
        .query_one("SELECT count(*) FROM v", &[])
        .await
        .unwrap();
    assert_eq!(count.get::<_, i64>(0), 0, "prepare must not execute");

    let ts = chrono::NaiveDate::from_ymd_opt(2024, 2, 29)
        .unwrap()
        .and_hms_micro_opt(13, 14, 15, 123_456)
        .unwrap();
    let tz = ts.and_utc();
    let n: rust_decimal::Decimal = "1234.50".parse().unwrap();
    let u = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    let inserted = client
        .execute(
            &insert,
            &[
                &1i32,
                &true,
                &-7i16,
                &(1i64 << 40),
                &1.5f32,
                &-2.25f64,
                &n,
                &"héllo",
                &vec![0u8, 1, 255],
                &ts.date(),
                &ts,
                &tz,
                &u,
            ],
        )
        .await
        .unwrap();
    assert_eq!(inserted, 1);
    client
        .execute(
            &insert,
            &[
                &2i32,
                &None::<bool>,
                &None::<i16>,
                &None::<i64>,
                &None::<f32>,
                &None::<f64>,
                &None::<rust_decimal::Decimal>,
                &None::<&str>,
                &None::<Vec<u8>>,
                &None::<chrono::NaiveDate>,
                &None::<chrono::NaiveDateTime>,
                &None::<chrono::DateTime<chrono::Utc>>,
                &None::<uuid::Uuid>,
            ],
        )
        .await
        .unwrap();

    // tokio-postgres reads results in binary.
    let select = client
        .prepare("SELECT * FROM v WHERE id = $1")
        .await
        .unwrap();
    assert_eq!(select.params(), &[Type::INT4]);
    assert_eq!(select.columns().len(), 13);
    assert_eq!(select.columns()[12].type_(), &Type::UUID);
    let row = client.query_one(&select, &[&1i32]).await.unwrap();
    assert!(row.get::<_, bool>(1));
    assert_eq!(row.get::<_, i16>(2), -7);
    assert_eq!(row.get::<_, i64>(3), 1 << 40);
    assert_eq!(row.get::<_, f32>(4), 1.5);
    assert_eq!(row.get::<_, f64>(5), -2.25);
    assert_eq!(row.get::<_, rust_decimal::Decimal>(6), n);
    assert_eq!(row.get::<_, &str>(7), "héllo");
    assert_eq!(row.get::<_, Vec<u8>>(8), vec![0u8, 1, 255]);
    assert_eq!(row.get::<_, chrono::NaiveDate>(9), ts.date());
    assert_eq!(row.get::<_, chrono::NaiveDateTime>(10), ts);
    assert_eq!(row.get::<_, chrono::DateTime<chrono::Utc>>(11), tz);
    assert_eq!(row.get::<_, uuid::Uuid>(12), u);
    let row = client.query_one(&select, &[&2i32]).await.unwrap();
    assert_eq!(row.get::<_, Option<bool>>(1), None);
    assert_eq!(row.get::<_, Option<i64>>(3), None);
    assert_eq!(row.get::<_, Option<rust_decimal::Decimal>>(6), None);
    assert_eq!(row.get::<_, Option<&str>>(7), None);
    assert_eq!(row.get::<_, Option<chrono::NaiveDateTime>>(10), None);
    assert_eq!(row.get::<_, Option<uuid::Uuid>>(12), None);

    // The same values in text format.
    let messages = client
        .simple_query("SELECT b, i2, i8, f4, f8, n, s, by, d, ts, tz, u FROM v WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(
        rows(&messages)[0],
        [
            "t",
            "-7",
            "1099511627776",
            "1.5",
            "-2.25",
            "1234.50",
            "héllo",
            "\\x0001ff",
            "2024-02-29",
            "2024-02-29 13:14:15.123456",
            "2024-02-29 13:14:15.123456+00",
            "01234567-89ab-cdef-0123-456789abcdef"
        ]
        .map(|s| Some(s.to_string()))
    );

    // Named statements live on; a second prepare of the same text works.
    let again = client.prepare("SELECT $1::BIGINT + 1").await.unwrap();
    assert_eq!(again.params(), &[Type::INT8]);
    let row = client.query_one(&again, &[&41i64]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 42);
}

#[tokio::test]
async fn errors_carry_sqlstate_and_keep_the_connection_usable() {
    let addr = start(AuthConfig::trust()).await;
    let client = connect(addr).await;

    let err = client
        .query("SELECT * FROM missing", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
    let err = client.prepare("SELEC 1").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::SYNTAX_ERROR));
    let err = client.simple_query("SELECT 1/0").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO));
    let err = client.prepare("SELECT 1; SELECT 2").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::SYNTAX_ERROR));

    client
        .batch_execute("CREATE TABLE k (a INT PRIMARY KEY)")
        .await
        .unwrap();
    client
        .execute("INSERT INTO k VALUES (1)", &[])
        .await
        .unwrap();
    let err = client
        .execute("INSERT INTO k VALUES (1)", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
    let db_error = err.as_db_error().unwrap();
    assert!(db_error.detail().is_some(), "{db_error:?}");

    let row = client.query_one("SELECT 1 + 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 2);
}

#[tokio::test]
async fn portals_return_rows_in_batches() {
    let addr = start(AuthConfig::trust()).await;
    let mut client = connect(addr).await;
    let transaction = client.transaction().await.unwrap();
    let stmt = transaction
        .prepare("SELECT * FROM generate_series(1, 5) AS g(x)")
        .await
        .unwrap();
    let portal = transaction.bind(&stmt, &[]).await.unwrap();
    let mut seen = Vec::new();
    for expected in [2, 2, 1, 0] {
        let batch = transaction.query_portal(&portal, 2).await.unwrap();
        assert_eq!(batch.len(), expected);
        seen.extend(batch.iter().map(|r| r.get::<_, i32>(0)));
    }
    assert_eq!(seen, vec![1, 2, 3, 4, 5]);
    transaction.commit().await.unwrap();
}

#[tokio::test]
async fn copy_from_stdin_in_text_and_csv() {
    let addr = start(AuthConfig::trust()).await;
    let client = connect(addr).await;
    client
        .batch_execute("CREATE TABLE c (a INT PRIMARY KEY, b TEXT)")
        .await
        .unwrap();

    let sink = client.copy_in("COPY c (a, b) FROM STDIN").await.unwrap();
    let mut sink = Box::pin(sink);
    sink.send(Bytes::from_static(b"1\tone\n2\t\\N\n"))
        .await
        .unwrap();
    sink.send(Bytes::from_static(b"3\tthree\n")).await.unwrap();
    assert_eq!(sink.as_mut().finish().await.unwrap(), 3);

    let sink = client
        .copy_in("COPY c FROM STDIN WITH (FORMAT csv)")
        .await
        .unwrap();
    let mut sink = Box::pin(sink);
    sink.send(Bytes::from_static(b"4,\"four, quoted\"\n5,\n"))
        .await
        .unwrap();
    assert_eq!(sink.as_mut().finish().await.unwrap(), 2);

    let messages = client
        .simple_query("SELECT a, b FROM c ORDER BY a")
        .await
        .unwrap();
    assert_eq!(
        rows(&messages),
        vec![
            vec![Some("1".into()), Some("one".into())],
            vec![Some("2".into()), None],
            vec![Some("3".into()), Some("three".into())],
            vec![Some("4".into()), Some("four, quoted".into())],
            vec![Some("5".into()), None],
        ]
    );

    // PostgreSQL's boolean spellings in the options, as pgbench writes
    // them; a key already there (or twice in the data) fails the COPY with
    // 23505 and writes none of it.
    let sink = client
        .copy_in("copy c from stdin with (freeze on, header off)")
        .await
        .unwrap();
    let mut sink = Box::pin(sink);
    sink.send(Bytes::from_static(
        b"6	six
",
    ))
    .await
    .unwrap();
    assert_eq!(sink.as_mut().finish().await.unwrap(), 1);
    for data in [
        &b"7	seven
1	again
"[..],
        b"8	eight
8	twice
",
    ] {
        let sink = client.copy_in("COPY c FROM STDIN").await.unwrap();
        let mut sink = Box::pin(sink);
        sink.send(Bytes::copy_from_slice(data)).await.unwrap();
        let err = sink.as_mut().finish().await.unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
    }
    let err = client
        .simple_query("COPY c FROM STDIN WITH (FREEZE maybe)")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::SYNTAX_ERROR));

    // Bad data fails the COPY and leaves the connection usable.
    let sink = client.copy_in("COPY c FROM STDIN").await.unwrap();
    let mut sink = Box::pin(sink);
    sink.send(Bytes::from_static(b"x\ty\n")).await.unwrap();
    let err = sink.as_mut().finish().await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INVALID_TEXT_REPRESENTATION));
    let row = client
        .query_one("SELECT count(*) FROM c", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 6);
}

#[tokio::test]
async fn cancel_request_stops_a_running_statement() {
    let addr = start(AuthConfig::trust()).await;
    let client = Arc::new(connect(addr).await);
    let token = client.cancel_token();
    let running = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .simple_query("SELECT count(*) FROM generate_series(1, 100000000000)")
                .await
        })
    };
    // The flag is reset when a statement starts, so repeat until it lands.
    let result = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            token.cancel_query(NoTls).await.unwrap();
            if running.is_finished() {
                return running.await.unwrap();
            }
        }
    })
    .await
    .expect("the statement was not canceled");
    assert_eq!(result.unwrap_err().code(), Some(&SqlState::QUERY_CANCELED));
    let row = client.query_one("SELECT 7", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 7);
}

#[tokio::test]
async fn startup_errors_and_password_methods() {
    let addr = start(AuthConfig::trust()).await;
    let err = try_connect(addr, "root", None, "nope").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INVALID_CATALOG_NAME), "{err}");
    // The postgres database exists too.
    try_connect(addr, "someone", None, "postgres")
        .await
        .unwrap();

    for method in [
        AuthMethod::Password,
        AuthMethod::Md5,
        AuthMethod::ScramSha256,
    ] {
        let addr = start(AuthConfig::with_users(method, [("alice", "s3cret")])).await;
        let client = try_connect(addr, "alice", Some("s3cret"), "tessera")
            .await
            .unwrap();
        client.simple_query("SELECT 1").await.unwrap();
        for (user, password) in [
            ("alice", Some("wrong")),
            ("bob", Some("s3cret")),
            ("alice", None),
        ] {
            let err = try_connect(addr, user, password, "tessera")
                .await
                .unwrap_err();
            assert!(
                err.code() == Some(&SqlState::INVALID_PASSWORD) || password.is_none(),
                "{method}: {user}/{password:?}: {err}"
            );
        }
    }
}

/// A minimal client speaking the protocol byte by byte.
struct Raw {
    stream: TcpStream,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        let mut raw = Raw {
            stream: TcpStream::connect(addr).await.unwrap(),
        };
        let mut body = 196_608u32.to_be_bytes().to_vec();
        body.extend_from_slice(b"user\0root\0database\0tessera\0application_name\0raw\0\0");
        let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        packet.extend_from_slice(&body);
        raw.stream.write_all(&packet).await.unwrap();
        let (messages, status) = raw.until_ready().await;
        assert_eq!(status, b'I');
        assert!(
            messages.iter().any(|(k, _)| *k == b'K'),
            "no BackendKeyData"
        );
        let params: Vec<String> = messages
            .iter()
            .filter(|(k, _)| *k == b'S')
            .map(|(_, body)| String::from_utf8_lossy(body).into_owned())
            .collect();
        assert!(
            params.iter().any(|p| p.starts_with("server_version\0")),
            "{params:?}"
        );
        raw
    }

    async fn send(&mut self, kind: u8, body: &[u8]) {
        let mut message = vec![kind];
        message.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        message.extend_from_slice(body);
        self.stream.write_all(&message).await.unwrap();
    }

    /// The next message, or None if the server closed the connection.
    async fn recv(&mut self) -> Option<(u8, Vec<u8>)> {
        let kind = self.stream.read_u8().await.ok()?;
        let len = self.stream.read_u32().await.ok()? as usize;
        let mut body = vec![0; len - 4];
        self.stream.read_exact(&mut body).await.ok()?;
        Some((kind, body))
    }

    /// Messages up to ReadyForQuery, and its status byte.
    async fn until_ready(&mut self) -> (Vec<(u8, Vec<u8>)>, u8) {
        let mut messages = Vec::new();
        loop {
            let (kind, body) = tokio::time::timeout(Duration::from_secs(30), self.recv())
                .await
                .expect("timed out")
                .expect("connection closed");
            if kind == b'Z' {
                return (messages, body[0]);
            }
            messages.push((kind, body));
        }
    }

    async fn query(&mut self, sql: &str) -> (Vec<(u8, Vec<u8>)>, u8) {
        self.send(b'Q', format!("{sql}\0").as_bytes()).await;
        self.until_ready().await
    }

    /// True once the server has closed the connection (after any final
    /// messages).
    async fn closed(&mut self) -> bool {
        tokio::time::timeout(Duration::from_secs(10), async {
            while self.recv().await.is_some() {}
        })
        .await
        .is_ok()
    }
}

fn kinds(messages: &[(u8, Vec<u8>)]) -> String {
    messages.iter().map(|(k, _)| *k as char).collect()
}

fn sqlstate(body: &[u8]) -> String {
    let mut fields = body.split(|b| *b == 0);
    fields
        .find(|f| f.first() == Some(&b'C'))
        .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn ready_for_query_reports_the_transaction_status() {
    let addr = start(AuthConfig::trust()).await;
    let mut raw = Raw::connect(addr).await;
    assert_eq!(raw.query("BEGIN").await.1, b'T');
    let (messages, status) = raw.query("SELECT * FROM missing").await;
    assert_eq!(kinds(&messages), "E");
    assert_eq!(sqlstate(&messages[0].1), "42P01");
    assert_eq!(status, b'E');
    let (messages, status) = raw.query("SELECT 1").await;
    assert_eq!(sqlstate(&messages[0].1), "25P02");
    assert_eq!(status, b'E');
    assert_eq!(raw.query("ROLLBACK").await.1, b'I');

    // SET of a reported variable sends ParameterStatus before ReadyForQuery.
    let (messages, status) = raw.query("SET application_name = 'changed'").await;
    assert_eq!(status, b'I');
    assert_eq!(kinds(&messages), "CS");
    assert_eq!(messages[1].1, b"application_name\0changed\0");
}

#[tokio::test]
async fn extended_protocol_errors_skip_to_sync() {
    let addr = start(AuthConfig::trust()).await;
    let mut raw = Raw::connect(addr).await;
    raw.send(b'P', b"\0SELEC 1\0\0\0").await;
    raw.send(b'B', b"\0\0\0\0\0\0\0\0").await;
    raw.send(b'E', b"\0\0\0\0\0").await;
    raw.send(b'S', b"").await;
    let (messages, status) = raw.until_ready().await;
    assert_eq!(kinds(&messages), "E");
    assert_eq!(sqlstate(&messages[0].1), "42601");
    assert_eq!(status, b'I');

    // Parse, Describe, Bind, Execute with a row limit, unnamed everything.
    raw.send(b'P', b"\0SELECT * FROM generate_series(1, 3) AS g(x)\0\0\0")
        .await;
    raw.send(b'D', b"S\0").await;
    raw.send(b'B', b"\0\0\0\0\0\0\0\0").await;
    raw.send(b'E', b"\0\0\0\0\x02").await;
    raw.send(b'E', b"\0\0\0\0\x02").await;
    raw.send(b'S', b"").await;
    let (messages, status) = raw.until_ready().await;
    // ParseComplete, ParameterDescription, RowDescription, BindComplete,
    // two rows, PortalSuspended, one row, CommandComplete.
    assert_eq!(kinds(&messages), "1tT2DDsDC");
    assert_eq!(messages.last().unwrap().1, b"SELECT 1\0");
    assert_eq!(status, b'I');

    // Describe of a missing statement.
    raw.send(b'D', b"Snope\0").await;
    raw.send(b'S', b"").await;
    let (messages, _) = raw.until_ready().await;
    assert_eq!(sqlstate(&messages[0].1), "26000");

    // A named statement with a declared int4 parameter, bound with a
    // three-byte binary value, then with a good one.
    raw.send(b'P', b"s1\0SELECT $1 + 1\0\0\x01\0\0\0\x17").await;
    raw.send(b'B', b"\0s1\0\0\x01\0\x01\0\x01\0\0\0\x03abc\0\0")
        .await;
    raw.send(b'E', b"\0\0\0\0\0").await;
    raw.send(b'S', b"").await;
    let (messages, _) = raw.until_ready().await;
    assert_eq!(kinds(&messages), "1E");
    assert_eq!(sqlstate(&messages[1].1), "22P03");
    raw.send(
        b'B',
        b"\0s1\0\0\x01\0\x01\0\x01\0\0\0\x04\0\0\0\x29\0\x01\0\0",
    )
    .await;
    raw.send(b'E', b"\0\0\0\0\0").await;
    raw.send(b'S', b"").await;
    let (messages, _) = raw.until_ready().await;
    assert_eq!(kinds(&messages), "2DC");
    assert_eq!(messages[1].1, b"\0\x01\0\0\0\x0242");
}

#[tokio::test]
async fn garbage_closes_only_its_own_connection() {
    let addr = start(AuthConfig::trust()).await;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut random = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };

    // Random bytes instead of a startup packet.
    for _ in 0..20 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let junk: Vec<u8> = (0..(random() % 2000)).map(|_| random() as u8).collect();
        let _ = stream.write_all(&junk).await;
        let _ = stream.shutdown().await;
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut sink)).await;
    }

    // Random messages after startup: unknown types, bad lengths, truncated
    // bodies. Each connection may answer an error; then it is closed.
    for i in 0..40 {
        let mut raw = Raw::connect(addr).await;
        match i % 4 {
            0 => raw.send(b'P', b"").await,
            1 => raw.send(b'!', b"xyz").await,
            2 => raw.stream.write_all(b"Q\xff\xff\xff\xff").await.unwrap(),
            _ => {
                let junk: Vec<u8> = (0..(random() % 500)).map(|_| random() as u8).collect();
                let _ = raw.stream.write_all(&junk).await;
                let _ = raw.stream.shutdown().await;
            }
        }
        assert!(raw.closed().await, "case {i}: connection left open");
    }

    // A FATAL protocol error names 08P01.
    let mut raw = Raw::connect(addr).await;
    raw.send(b'P', b"\0SELECT 1\0").await;
    let (kind, body) = raw.recv().await.unwrap();
    assert_eq!(kind, b'E');
    assert_eq!(sqlstate(&body), "08P01");
    assert!(raw.closed().await);

    // The server still serves everyone else.
    let client = connect(addr).await;
    let row = client.query_one("SELECT 'still here'", &[]).await.unwrap();
    assert_eq!(row.get::<_, &str>(0), "still here");
}

#[tokio::test]
async fn ssl_is_refused_and_the_connection_goes_on() {
    let addr = start(AuthConfig::trust()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(&[0, 0, 0, 8, 4, 210, 22, 47])
        .await
        .unwrap();
    assert_eq!(stream.read_u8().await.unwrap(), b'N');
    let mut raw = Raw { stream };
    let mut body = 196_608u32.to_be_bytes().to_vec();
    body.extend_from_slice(b"user\0root\0\0");
    let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    raw.stream.write_all(&packet).await.unwrap();
    // database defaults to the user name, which does not exist.
    let (kind, body) = raw.recv().await.unwrap();
    assert_eq!(kind, b'E');
    assert_eq!(sqlstate(&body), "3D000");
    assert!(raw.closed().await);
}

/// Stopping the server (dropping its future) closes the connections it
/// serves, even one idle on its own thread, waiting for the client's next
/// message.
#[tokio::test]
async fn stopping_the_server_closes_its_connections() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let engine = SqlEngine::new(Arc::new(MemoryKv::new()));
    let server = tokio::spawn(serve(listener, engine, AuthConfig::trust()));
    let mut idle = Raw::connect(addr).await;
    let (_, status) = idle.query("SELECT 1").await;
    assert_eq!(status, b'I');
    server.abort();
    assert!(idle.closed().await, "the connection outlived the server");
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}
