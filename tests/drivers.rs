//! Client drivers against a 3-node Tessera cluster of real processes:
//! tokio-postgres (extended protocol, parameters and results in binary
//! format; simple protocol) and, when installed, psycopg.
//!
//! ```sh
//! cargo test --workspace -- drivers::
//! TESSERA_SQL_TARGET=postgres cargo test --workspace -- drivers::   # check the tests on PostgreSQL
//! ```
//!
//! `TESSERA_SQL_TARGET` is `tessera` (the default), `postgres` (a throwaway
//! PostgreSQL, or `TESSERA_PG_URL`) or a `postgres://` URL. The psycopg test
//! runs `tests/python/smoke.py` with `TESSERA_PYTHON` (default `python3`)
//! and prints a "skipped" notice when neither psycopg 3 nor psycopg2 is
//! installed for it.

mod support;

use std::future::Future;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use support::Target;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, SimpleQueryMessage};
use uuid::Uuid;

fn main() {
    support::run_trials(vec![
        support::trial("drivers::binary_parameters_round_trip", || {
            with_database("round_trip", binary_parameters_round_trip)
        }),
        support::trial("drivers::parameters_in_expressions", || {
            with_database("expressions", parameters_in_expressions)
        }),
        support::trial("drivers::text_results", || {
            with_database("text_results", text_results)
        }),
        support::trial("drivers::simple_query_several_statements", || {
            with_database("simple_multi", simple_query_several_statements)
        }),
        support::trial("drivers::errors_keep_the_connection_usable", || {
            with_database("errors", errors_keep_the_connection_usable)
        }),
        support::trial("drivers::psycopg_smoke", psycopg_smoke),
    ])
}

fn target() -> Result<&'static Target, String> {
    support::target_from_env("TESSERA_SQL_TARGET")
}

/// Runs `test` with a client on a fresh database.
fn with_database<F, Fut>(name: &str, test: F) -> Result<(), String>
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let target = target()?;
    let database = support::unique_database(&format!("drv_{name}"));
    support::runtime().block_on(async {
        let config = target.fresh_database(&database, 0).await?;
        let client = support::connect(&config).await?;
        let result = test(client).await;
        target.drop_database(&database).await;
        result
    })
}

/// `?` for tokio-postgres results, with the statement and SQLSTATE.
trait Context<T> {
    fn context(self, what: &str) -> Result<T, String>;
}

impl<T> Context<T> for Result<T, tokio_postgres::Error> {
    fn context(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {}", support::error_text(&e)))
    }
}

fn ensure_eq<T: std::fmt::Debug + PartialEq>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}

/// A row of `drv_types`: one column of every supported type.
#[derive(Debug, Clone)]
struct TypedRow {
    id: i32,
    c_bool: Option<bool>,
    c_int2: Option<i16>,
    c_int4: Option<i32>,
    c_int8: Option<i64>,
    c_float4: Option<f32>,
    c_float8: Option<f64>,
    c_numeric: Option<Decimal>,
    c_text: Option<String>,
    c_varchar: Option<String>,
    /// As inserted; read back blank-padded to the column's length.
    c_bpchar: Option<String>,
    c_bytea: Option<Vec<u8>>,
    c_date: Option<NaiveDate>,
    c_timestamp: Option<NaiveDateTime>,
    c_timestamptz: Option<DateTime<Utc>>,
    c_uuid: Option<Uuid>,
}

const BPCHAR_LEN: usize = 8;

/// The columns of `drv_types` after `id`, with their types, in order.
const TYPED_COLUMNS: &[(&str, &str, Type)] = &[
    ("c_bool", "BOOL", Type::BOOL),
    ("c_int2", "INT2", Type::INT2),
    ("c_int4", "INT4", Type::INT4),
    ("c_int8", "INT8", Type::INT8),
    ("c_float4", "FLOAT4", Type::FLOAT4),
    ("c_float8", "FLOAT8", Type::FLOAT8),
    ("c_numeric", "NUMERIC", Type::NUMERIC),
    ("c_text", "TEXT", Type::TEXT),
    ("c_varchar", "VARCHAR(20)", Type::VARCHAR),
    ("c_bpchar", "CHAR(8)", Type::BPCHAR),
    ("c_bytea", "BYTEA", Type::BYTEA),
    ("c_date", "DATE", Type::DATE),
    ("c_timestamp", "TIMESTAMP", Type::TIMESTAMP),
    ("c_timestamptz", "TIMESTAMPTZ", Type::TIMESTAMPTZ),
    ("c_uuid", "UUID", Type::UUID),
];

impl TypedRow {
    /// The values after `id`, in [`TYPED_COLUMNS`] order.
    fn params(&self) -> Vec<Box<dyn ToSql + Sync + Send>> {
        vec![
            Box::new(self.c_bool),
            Box::new(self.c_int2),
            Box::new(self.c_int4),
            Box::new(self.c_int8),
            Box::new(self.c_float4),
            Box::new(self.c_float8),
            Box::new(self.c_numeric),
            Box::new(self.c_text.clone()),
            Box::new(self.c_varchar.clone()),
            Box::new(self.c_bpchar.clone()),
            Box::new(self.c_bytea.clone()),
            Box::new(self.c_date),
            Box::new(self.c_timestamp),
            Box::new(self.c_timestamptz),
            Box::new(self.c_uuid),
        ]
    }

    /// Each value after `id` as text that compares as the server should:
    /// numerics with their scale, floats exactly, bpchar padded.
    fn keys(&self) -> Vec<String> {
        let padded = self
            .c_bpchar
            .as_ref()
            .map(|s| format!("{s:<width$}", width = BPCHAR_LEN));
        vec![
            format!("{:?}", self.c_bool),
            format!("{:?}", self.c_int2),
            format!("{:?}", self.c_int4),
            format!("{:?}", self.c_int8),
            format!("{:?}", self.c_float4.map(f32::to_bits)),
            format!("{:?}", self.c_float8.map(f64::to_bits)),
            format!("{:?}", self.c_numeric.map(|d| d.to_string())),
            format!("{:?}", self.c_text),
            format!("{:?}", self.c_varchar),
            format!("{padded:?}"),
            format!("{:?}", self.c_bytea),
            format!("{:?}", self.c_date),
            format!("{:?}", self.c_timestamp),
            format!("{:?}", self.c_timestamptz),
            format!("{:?}", self.c_uuid),
        ]
    }

    fn from_row(row: &tokio_postgres::Row) -> Result<Self, String> {
        fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
            row: &'a tokio_postgres::Row,
            i: usize,
        ) -> Result<T, String> {
            row.try_get(i)
                .map_err(|e| format!("column {i}: {}", support::error_text(&e)))
        }
        Ok(Self {
            id: get(row, 0)?,
            c_bool: get(row, 1)?,
            c_int2: get(row, 2)?,
            c_int4: get(row, 3)?,
            c_int8: get(row, 4)?,
            c_float4: get(row, 5)?,
            c_float8: get(row, 6)?,
            c_numeric: get(row, 7)?,
            c_text: get(row, 8)?,
            c_varchar: get(row, 9)?,
            c_bpchar: get(row, 10)?,
            c_bytea: get(row, 11)?,
            c_date: get(row, 12)?,
            c_timestamp: get(row, 13)?,
            c_timestamptz: get(row, 14)?,
            c_uuid: get(row, 15)?,
        })
    }
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn timestamp(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, micros: u32) -> NaiveDateTime {
    date(y, mo, d).and_hms_micro_opt(h, mi, s, micros).unwrap()
}

fn decimal(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn uuid(s: &str) -> Uuid {
    s.parse().unwrap()
}

/// Edge values of every type, and a row of NULLs.
fn typed_rows() -> Vec<TypedRow> {
    vec![
        TypedRow {
            id: 1,
            c_bool: Some(true),
            c_int2: Some(i16::MIN),
            c_int4: Some(i32::MIN),
            c_int8: Some(i64::MIN),
            c_float4: Some(-1.5),
            c_float8: Some(-2.5e300),
            c_numeric: Some(decimal("-12345678901234567890.123456789")),
            c_text: Some("héllo, 'world' \"quoted\" \\ ✓".into()),
            c_varchar: Some("varchar ✓".into()),
            c_bpchar: Some("ab".into()),
            c_bytea: Some((0..=255).collect()),
            c_date: Some(date(1900, 1, 1)),
            c_timestamp: Some(timestamp(1969, 12, 31, 23, 59, 59, 500_000)),
            c_timestamptz: Some(timestamp(1999, 12, 31, 23, 59, 59, 999_999).and_utc()),
            c_uuid: Some(uuid("123e4567-e89b-12d3-a456-426614174000")),
        },
        TypedRow {
            id: 2,
            c_bool: Some(false),
            c_int2: Some(i16::MAX),
            c_int4: Some(i32::MAX),
            c_int8: Some(i64::MAX),
            c_float4: Some(f32::MAX),
            c_float8: Some(1e-300),
            c_numeric: Some(decimal("0.000001")),
            c_text: Some(String::new()),
            c_varchar: Some(String::new()),
            c_bpchar: Some("abcdefgh".into()),
            c_bytea: Some(Vec::new()),
            c_date: Some(date(2000, 2, 29)),
            c_timestamp: Some(timestamp(2024, 6, 30, 23, 59, 59, 999_999)),
            c_timestamptz: Some(timestamp(2038, 1, 19, 3, 14, 8, 0).and_utc()),
            c_uuid: Some(uuid("ffffffff-ffff-ffff-ffff-ffffffffffff")),
        },
        TypedRow {
            id: 3,
            c_bool: Some(true),
            c_int2: Some(0),
            c_int4: Some(0),
            c_int8: Some(0),
            c_float4: Some(0.1),
            c_float8: Some(0.1),
            c_numeric: Some(decimal("1.50")),
            c_text: Some("line\nbreak\ttab".into()),
            c_varchar: Some("x".into()),
            c_bpchar: Some("z".into()),
            c_bytea: Some(vec![0, 0]),
            c_date: Some(date(1970, 1, 1)),
            c_timestamp: Some(timestamp(2000, 1, 1, 0, 0, 0, 0)),
            c_timestamptz: Some(timestamp(1970, 1, 1, 0, 0, 0, 0).and_utc()),
            c_uuid: Some(uuid("00000000-0000-0000-0000-000000000000")),
        },
        TypedRow {
            id: 4,
            c_bool: None,
            c_int2: None,
            c_int4: None,
            c_int8: None,
            c_float4: None,
            c_float8: None,
            c_numeric: None,
            c_text: None,
            c_varchar: None,
            c_bpchar: None,
            c_bytea: None,
            c_date: None,
            c_timestamp: None,
            c_timestamptz: None,
            c_uuid: None,
        },
    ]
}

fn column_list() -> String {
    let names: Vec<&str> = TYPED_COLUMNS.iter().map(|(name, _, _)| *name).collect();
    format!("id, {}", names.join(", "))
}

async fn create_typed_table(client: &Client) -> Result<Vec<TypedRow>, String> {
    let columns: Vec<String> = TYPED_COLUMNS
        .iter()
        .map(|(name, ty, _)| format!("{name} {ty}"))
        .collect();
    client
        .batch_execute(&format!(
            "CREATE TABLE drv_types (id INT4 PRIMARY KEY, {})",
            columns.join(", ")
        ))
        .await
        .context("CREATE TABLE drv_types")?;
    let placeholders: Vec<String> = (1..=TYPED_COLUMNS.len() + 1)
        .map(|i| format!("${i}"))
        .collect();
    let insert_sql = format!(
        "INSERT INTO drv_types ({}) VALUES ({})",
        column_list(),
        placeholders.join(", ")
    );
    let insert = client.prepare(&insert_sql).await.context(&insert_sql)?;
    let mut want_types = vec![Type::INT4];
    want_types.extend(TYPED_COLUMNS.iter().map(|(_, _, ty)| ty.clone()));
    ensure_eq(
        "parameter types of the INSERT",
        insert.params().to_vec(),
        want_types,
    )?;
    let rows = typed_rows();
    // One prepared statement, executed once per row.
    for row in &rows {
        let values = row.params();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&row.id];
        params.extend(values.iter().map(|v| v.as_ref() as &(dyn ToSql + Sync)));
        let inserted = client
            .execute(&insert, &params)
            .await
            .context(&format!("insert row {}", row.id))?;
        ensure_eq("rows inserted", inserted, 1)?;
    }
    Ok(rows)
}

/// Every type in binary format: insert with parameters, read back by id,
/// then find each row by each of its values in a WHERE clause.
async fn binary_parameters_round_trip(client: Client) -> Result<(), String> {
    let rows = create_typed_table(&client).await?;

    let select_sql = format!("SELECT {} FROM drv_types WHERE id = $1", column_list());
    let select = client.prepare(&select_sql).await.context(&select_sql)?;
    ensure_eq(
        "parameter types of the SELECT",
        select.params().to_vec(),
        vec![Type::INT4],
    )?;
    let mut want_types = vec![Type::INT4];
    want_types.extend(TYPED_COLUMNS.iter().map(|(_, _, ty)| ty.clone()));
    let got_types: Vec<Type> = select.columns().iter().map(|c| c.type_().clone()).collect();
    ensure_eq("result column types", got_types, want_types)?;
    for row in &rows {
        let found = client
            .query(&select, &[&row.id])
            .await
            .context(&format!("select row {}", row.id))?;
        ensure_eq(&format!("rows with id {}", row.id), found.len(), 1)?;
        let got = TypedRow::from_row(&found[0])?;
        ensure_eq(&format!("id of row {}", row.id), got.id, row.id)?;
        for (i, (name, _, _)) in TYPED_COLUMNS.iter().enumerate() {
            let (got, want) = (&got.keys()[i], &row.keys()[i]);
            if got != want {
                return Err(format!(
                    "row {} column {name}: read back {got}, inserted {want}",
                    row.id
                ));
            }
        }
    }

    // Each value as a parameter in a WHERE clause finds the rows that hold it.
    for row in &rows {
        let values = row.params();
        for (i, (name, _, _)) in TYPED_COLUMNS.iter().enumerate() {
            if row.keys()[i] == "None" {
                continue;
            }
            let sql = format!("SELECT id FROM drv_types WHERE {name} = $1 ORDER BY id");
            let found = client
                .query(&sql, &[values[i].as_ref() as &(dyn ToSql + Sync)])
                .await
                .context(&format!("{sql} with the value of row {}", row.id))?;
            let got: Vec<i32> = found.iter().map(|r| r.get(0)).collect();
            let want: Vec<i32> = rows
                .iter()
                .filter(|other| other.keys()[i] == row.keys()[i])
                .map(|other| other.id)
                .collect();
            ensure_eq(
                &format!("{sql} with the value of row {}", row.id),
                got,
                want,
            )?;
        }
    }

    // NULL parameters: nothing equals NULL; IS NULL finds the NULL row.
    let none: Option<i64> = None;
    let found = client
        .query("SELECT id FROM drv_types WHERE c_int8 = $1", &[&none])
        .await
        .context("WHERE c_int8 = NULL parameter")?;
    ensure_eq("rows equal to a NULL parameter", found.len(), 0)?;
    let nulls: i64 = client
        .query_one(
            "SELECT count(*) FROM drv_types WHERE c_text IS NULL AND c_uuid IS NULL",
            &[],
        )
        .await
        .context("count of NULL rows")?
        .get(0);
    ensure_eq("rows of NULLs", nulls, 1)?;
    Ok(())
}

/// Parameters of every type in expressions, echoed back: `SELECT $1::type`.
async fn parameters_in_expressions(client: Client) -> Result<(), String> {
    let row = &typed_rows()[0];
    let values = row.params();
    for (i, (name, ty, _)) in TYPED_COLUMNS.iter().enumerate() {
        let sql = format!("SELECT $1::{ty}");
        let found = client
            .query_one(&sql, &[values[i].as_ref() as &(dyn ToSql + Sync)])
            .await
            .context(&format!("{sql} ({name})"))?;
        // Read back into the same kind of row to compare like the table test.
        let mut echoed = typed_rows()[3].clone();
        match i {
            0 => echoed.c_bool = found.get(0),
            1 => echoed.c_int2 = found.get(0),
            2 => echoed.c_int4 = found.get(0),
            3 => echoed.c_int8 = found.get(0),
            4 => echoed.c_float4 = found.get(0),
            5 => echoed.c_float8 = found.get(0),
            6 => echoed.c_numeric = found.get(0),
            7 => echoed.c_text = found.get(0),
            8 => echoed.c_varchar = found.get(0),
            9 => echoed.c_bpchar = found.get(0),
            10 => echoed.c_bytea = found.get(0),
            11 => echoed.c_date = found.get(0),
            12 => echoed.c_timestamp = found.get(0),
            13 => echoed.c_timestamptz = found.get(0),
            14 => echoed.c_uuid = found.get(0),
            _ => unreachable!(),
        }
        ensure_eq(&sql, &echoed.keys()[i], &row.keys()[i])?;
    }

    let sum: i64 = client
        .query_one("SELECT $1::INT8 + $2::INT8", &[&40i64, &2i64])
        .await
        .context("SELECT $1 + $2")?
        .get(0);
    ensure_eq("$1 + $2", sum, 42)?;
    let concat: String = client
        .query_one("SELECT $1::TEXT || $2::TEXT", &[&"tes", &"sera"])
        .await
        .context("SELECT $1 || $2")?
        .get(0);
    ensure_eq("$1 || $2", concat.as_str(), "tessera")?;
    let null: Option<i32> = client
        .query_one("SELECT $1::INT4", &[&None::<i32>])
        .await
        .context("SELECT NULL parameter")?
        .get(0);
    ensure_eq("NULL parameter", null, None)?;
    // A statement prepared once, executed many times.
    let statement = client
        .prepare("SELECT $1::INT4 * 2")
        .await
        .context("prepare")?;
    for i in 0..100i32 {
        let doubled: i32 = client
            .query_one(&statement, &[&i])
            .await
            .context("execute prepared")?
            .get(0);
        ensure_eq("prepared $1 * 2", doubled, i * 2)?;
    }
    Ok(())
}

/// The text format of the same values, through the simple query protocol.
async fn text_results(client: Client) -> Result<(), String> {
    create_typed_table(&client).await?;
    let sql = "SELECT id, c_bool, c_int2, c_int4, c_int8, c_float4, c_float8, c_numeric, \
               c_text, c_varchar, c_bpchar, c_bytea, c_date, c_timestamp, c_uuid \
               FROM drv_types ORDER BY id";
    let got = simple_rows(&client, sql).await?;
    let want: Vec<Vec<Option<&str>>> = vec![
        vec![
            Some("1"),
            Some("t"),
            Some("-32768"),
            Some("-2147483648"),
            Some("-9223372036854775808"),
            Some("-1.5"),
            Some("-2.5e+300"),
            Some("-12345678901234567890.123456789"),
            Some("héllo, 'world' \"quoted\" \\ ✓"),
            Some("varchar ✓"),
            Some("ab      "),
            None, // 256 bytes: checked below
            Some("1900-01-01"),
            Some("1969-12-31 23:59:59.5"),
            Some("123e4567-e89b-12d3-a456-426614174000"),
        ],
        vec![
            Some("2"),
            Some("f"),
            Some("32767"),
            Some("2147483647"),
            Some("9223372036854775807"),
            Some("3.4028235e+38"),
            Some("1e-300"),
            Some("0.000001"),
            Some(""),
            Some(""),
            Some("abcdefgh"),
            Some("\\x"),
            Some("2000-02-29"),
            Some("2024-06-30 23:59:59.999999"),
            Some("ffffffff-ffff-ffff-ffff-ffffffffffff"),
        ],
        vec![
            Some("3"),
            Some("t"),
            Some("0"),
            Some("0"),
            Some("0"),
            Some("0.1"),
            Some("0.1"),
            Some("1.50"),
            Some("line\nbreak\ttab"),
            Some("x"),
            Some("z       "),
            Some("\\x0000"),
            Some("1970-01-01"),
            Some("2000-01-01 00:00:00"),
            Some("00000000-0000-0000-0000-000000000000"),
        ],
        {
            let mut nulls = vec![None; 15];
            nulls[0] = Some("4");
            nulls
        },
    ];
    ensure_eq("rows", got.len(), want.len())?;
    for (got_row, want_row) in got.iter().zip(&want) {
        for (i, (g, w)) in got_row.iter().zip(want_row).enumerate() {
            if got_row[0].as_deref() == Some("1") && i == 11 {
                let hex: String = (0..=255u8).map(|b| format!("{b:02x}")).collect();
                ensure_eq("bytea of row 1", g.clone(), Some(format!("\\x{hex}")))?;
                continue;
            }
            ensure_eq(
                &format!("row {:?} column {i}", want_row[0]),
                g.as_deref(),
                *w,
            )?;
        }
        ensure_eq("columns", got_row.len(), want_row.len())?;
    }
    Ok(())
}

/// The rows of the last result of a simple query, as text.
async fn simple_rows(client: &Client, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    let messages = client.simple_query(sql).await.context(sql)?;
    Ok(messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}

/// What a simple query answered, message by message.
#[derive(Debug, PartialEq)]
enum Message {
    Columns(Vec<String>),
    Row(Vec<Option<String>>),
    Done(u64),
}

fn messages(answer: Vec<SimpleQueryMessage>) -> Vec<Message> {
    answer
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::RowDescription(columns) => Some(Message::Columns(
                columns.iter().map(|c| c.name().to_string()).collect(),
            )),
            SimpleQueryMessage::Row(row) => Some(Message::Row(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            )),
            SimpleQueryMessage::CommandComplete(n) => Some(Message::Done(n)),
            _ => None,
        })
        .collect()
}

fn row(values: &[Option<&str>]) -> Message {
    Message::Row(values.iter().map(|v| v.map(str::to_string)).collect())
}

/// Several statements in one simple query: each answers in turn, and an
/// error rolls back the implicit transaction they share.
async fn simple_query_several_statements(client: Client) -> Result<(), String> {
    let sql = "CREATE TABLE drv_multi (k INT PRIMARY KEY, v TEXT); \
               INSERT INTO drv_multi VALUES (1, 'a'), (2, 'b'); \
               UPDATE drv_multi SET v = 'c' WHERE k = 2; \
               SELECT k, v FROM drv_multi ORDER BY k; \
               SELECT count(*) AS n FROM drv_multi WHERE v IS NULL; \
               DELETE FROM drv_multi WHERE k = 1";
    let answer = client.simple_query(sql).await.context(sql)?;
    let want = vec![
        Message::Done(0),
        Message::Done(2),
        Message::Done(1),
        Message::Columns(vec!["k".into(), "v".into()]),
        row(&[Some("1"), Some("a")]),
        row(&[Some("2"), Some("c")]),
        Message::Done(2),
        Message::Columns(vec!["n".into()]),
        row(&[Some("0")]),
        Message::Done(1),
        Message::Done(1),
    ];
    ensure_eq("answers", messages(answer), want)?;

    // An error in the middle: the statements before it roll back (they share
    // one implicit transaction), the ones after it do not run.
    let failing = "INSERT INTO drv_multi VALUES (3, 'x'); SELECT 1 / 0; \
                   INSERT INTO drv_multi VALUES (4, 'y')";
    let err = match client.simple_query(failing).await {
        Ok(answer) => return Err(format!("{failing}: succeeded: {:?}", messages(answer))),
        Err(err) => err,
    };
    ensure_eq(
        "SQLSTATE of 1 / 0",
        support::sqlstate(&err).as_deref(),
        Some("22012"),
    )?;
    let rows = simple_rows(&client, "SELECT k, v FROM drv_multi ORDER BY k").await?;
    ensure_eq(
        "rows after the failed batch",
        rows,
        vec![vec![Some("2".to_string()), Some("c".to_string())]],
    )?;

    // Explicit transactions across statements of one query.
    let sql = "BEGIN; INSERT INTO drv_multi VALUES (5, 'e'); ROLLBACK; \
               BEGIN; INSERT INTO drv_multi VALUES (6, 'f'); COMMIT";
    client.simple_query(sql).await.context(sql)?;
    let rows = simple_rows(&client, "SELECT k FROM drv_multi ORDER BY k").await?;
    ensure_eq(
        "rows after ROLLBACK and COMMIT",
        rows,
        vec![vec![Some("2".to_string())], vec![Some("6".to_string())]],
    )?;
    // An empty query and a lone semicolon answer without error.
    client.simple_query("").await.context("empty query")?;
    client.simple_query(";").await.context("lone semicolon")?;
    Ok(())
}

/// Expects `result` to fail with SQLSTATE `code`.
fn expect_sqlstate<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, tokio_postgres::Error>,
    code: &str,
) -> Result<(), String> {
    match result {
        Ok(value) => Err(format!("{what}: succeeded ({value:?}), want error {code}")),
        Err(err) => ensure_eq(
            &format!("{what}: {}", support::error_text(&err)),
            support::sqlstate(&err).as_deref(),
            Some(code),
        ),
    }
}

async fn still_usable(client: &Client, after: &str) -> Result<(), String> {
    let one: i32 = client
        .query_one("SELECT $1::INT4 + 1", &[&0i32])
        .await
        .context(&format!("extended query after {after}"))?
        .get(0);
    ensure_eq("SELECT $1 + 1", one, 1)?;
    let rows = simple_rows(client, "SELECT 1").await?;
    ensure_eq(
        &format!("simple query after {after}"),
        rows,
        vec![vec![Some("1".to_string())]],
    )
}

/// Errors of every stage come back with their SQLSTATE, and the session
/// answers the next statement.
async fn errors_keep_the_connection_usable(client: Client) -> Result<(), String> {
    client
        .batch_execute("CREATE TABLE drv_errors (k INT PRIMARY KEY, v TEXT NOT NULL)")
        .await
        .context("CREATE TABLE")?;
    client
        .execute("INSERT INTO drv_errors VALUES ($1, $2)", &[&1i32, &"one"])
        .await
        .context("INSERT")?;

    expect_sqlstate(
        "syntax error (simple)",
        client.simple_query("SELEC 1").await,
        "42601",
    )?;
    still_usable(&client, "a syntax error").await?;
    expect_sqlstate(
        "syntax error (prepare)",
        client.prepare("SELECT FROM WHERE").await,
        "42601",
    )?;
    still_usable(&client, "a failed Parse").await?;
    expect_sqlstate(
        "unknown table (prepare)",
        client.prepare("SELECT * FROM drv_missing").await,
        "42P01",
    )?;
    expect_sqlstate(
        "unknown column",
        client.query("SELECT nope FROM drv_errors", &[]).await,
        "42703",
    )?;
    expect_sqlstate(
        "division by zero (execute)",
        client.query("SELECT 1 / $1::INT4", &[&0i32]).await,
        "22012",
    )?;
    still_usable(&client, "an execution error").await?;
    expect_sqlstate(
        "unique violation",
        client
            .execute("INSERT INTO drv_errors VALUES ($1, $2)", &[&1i32, &"again"])
            .await,
        "23505",
    )?;
    expect_sqlstate(
        "not null violation",
        client
            .execute("INSERT INTO drv_errors (k) VALUES ($1)", &[&2i32])
            .await,
        "23502",
    )?;
    expect_sqlstate(
        "bad integer text",
        client.simple_query("SELECT 'abc'::INT4").await,
        "22P02",
    )?;
    still_usable(&client, "constraint violations").await?;

    // In a transaction: the error aborts it until ROLLBACK.
    client.batch_execute("BEGIN").await.context("BEGIN")?;
    client
        .execute("INSERT INTO drv_errors VALUES ($1, $2)", &[&10i32, &"ten"])
        .await
        .context("INSERT in the transaction")?;
    expect_sqlstate(
        "error in a transaction",
        client.simple_query("SELECT 1 / 0").await,
        "22012",
    )?;
    expect_sqlstate(
        "statement in an aborted transaction",
        client.simple_query("SELECT 1").await,
        "25P02",
    )?;
    client.batch_execute("ROLLBACK").await.context("ROLLBACK")?;
    still_usable(&client, "ROLLBACK of an aborted transaction").await?;
    let rows = simple_rows(&client, "SELECT k FROM drv_errors ORDER BY k").await?;
    ensure_eq(
        "rows after the rollback",
        rows,
        vec![vec![Some("1".to_string())]],
    )?;
    Ok(())
}

/// psycopg, if installed: tests/python/smoke.py on a fresh database.
fn psycopg_smoke() -> Result<(), String> {
    let python = std::env::var("TESSERA_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let has = |module: &str| {
        Command::new(&python)
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has("psycopg") && !has("psycopg2") {
        println!(
            "skipped: drivers::psycopg_smoke: neither psycopg (3) nor psycopg2 is installed \
             for {python} (pip install 'psycopg[binary]', or set TESSERA_PYTHON)"
        );
        return Ok(());
    }
    let target = target()?;
    let database = support::unique_database("drv_psycopg");
    let config = support::runtime().block_on(target.fresh_database(&database, 1))?;
    let script = support::manifest_dir().join("python/smoke.py");
    let result = run_with_timeout(
        Command::new(&python).arg(&script).arg(libpq_dsn(&config)),
        Duration::from_secs(60),
    );
    support::runtime().block_on(target.drop_database(&database));
    let output = result?;
    print!("{output}");
    Ok(())
}

/// A libpq connection string for `config`.
fn libpq_dsn(config: &Config) -> String {
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        tokio_postgres::config::Host::Unix(dir) => dir.display().to_string(),
    };
    format!(
        "host={host} port={} user={} dbname={} connect_timeout=10",
        config.get_ports()[0],
        config.get_user().unwrap_or("tessera"),
        config.get_dbname().unwrap_or("tessera"),
    )
}

/// Runs `command`, killing it after `timeout`; its stdout on success.
fn run_with_timeout(command: &mut Command, timeout: Duration) -> Result<String, String> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {command:?}: {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{command:?} did not finish within {timeout:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("wait for {command:?}: {e}")),
        }
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("{command:?}: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{command:?} failed ({}):\n{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
