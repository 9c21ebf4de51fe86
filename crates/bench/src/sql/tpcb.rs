//! pgbench's tables and built-in scripts, for `tessera bench tpcb` and
//! `tessera bench select`.
//!
//! `init` lays the tables out as `pgbench -i` does: it drops and creates
//! them, loads them with COPY, then adds their primary keys (to populated
//! tables, which is what pgbench makes a server do). A scale unit is one
//! branch, 10 tellers and 100,000 accounts; the history starts empty.

use std::fmt::Write;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use futures::SinkExt;
use tokio_postgres::{Client, Config, SimpleQueryMessage};

use super::run::{connect, statement_failed};

/// pgbench's built-in TPC-B-like script ("tpcb-like").
pub(super) const TPCB_LIKE: &str = "\
\\set aid random(1, 100000 * :scale)
\\set bid random(1, 1 * :scale)
\\set tid random(1, 10 * :scale)
\\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
END;
";

/// pgbench's built-in select-only script.
pub(super) const SELECT_ONLY: &str = "\
\\set aid random(1, 100000 * :scale)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
";

/// Accounts per scale unit; also the rows of one COPY, so that no
/// transaction of the load grows with the scale.
const ACCOUNTS: u64 = 100_000;
/// Tellers per scale unit.
const TELLERS: u64 = 10;

/// From this scale on, account ids pass 2^31 and pgbench makes them bigint.
const BIGINT_SCALE: u32 = 20_000;

/// Drops, creates and loads the pgbench tables; progress goes to stderr
/// unless `quiet`.
pub(super) async fn init(config: &Config, scale: u32, quiet: bool) -> Result<()> {
    ensure!(scale >= 1, "--scale must be at least 1");
    let client = connect(config).await?;
    let started = Instant::now();
    let say = |message: &str| {
        if !quiet {
            eprintln!("{message}");
        }
    };
    let aid = if scale >= BIGINT_SCALE {
        "bigint"
    } else {
        "int"
    };
    say("dropping and creating tables...");
    for sql in [
        "DROP TABLE IF EXISTS pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers",
        &format!("CREATE TABLE pgbench_history (tid int, bid int, aid {aid}, delta int, mtime timestamp, filler char(22))"),
        "CREATE TABLE pgbench_tellers (tid int NOT NULL, bid int, tbalance int, filler char(84))",
        &format!("CREATE TABLE pgbench_accounts (aid {aid} NOT NULL, bid int, abalance int, filler char(84))"),
        "CREATE TABLE pgbench_branches (bid int NOT NULL, bbalance int, filler char(88))",
    ] {
        execute(&client, sql).await?;
    }

    say("loading data...");
    let scale = u64::from(scale);
    // As pgbench's rows: zero balances, and an empty filler.
    copy(
        &client,
        "pgbench_branches (bid, bbalance, filler)",
        1..=scale,
        |row, bid| writeln!(row, "{bid}\t0\t"),
    )
    .await?;
    copy(
        &client,
        "pgbench_tellers (tid, bid, tbalance, filler)",
        1..=scale * TELLERS,
        |row, tid| writeln!(row, "{tid}\t{}\t0\t", (tid - 1) / TELLERS + 1),
    )
    .await?;
    for unit in 0..scale {
        let aids = unit * ACCOUNTS + 1..=(unit + 1) * ACCOUNTS;
        copy(
            &client,
            "pgbench_accounts (aid, bid, abalance, filler)",
            aids,
            |row, aid| writeln!(row, "{aid}\t{}\t0\t", unit + 1),
        )
        .await?;
        say(&format!(
            "{} of {} accounts loaded (elapsed {:.1} s)",
            (unit + 1) * ACCOUNTS,
            scale * ACCOUNTS,
            started.elapsed().as_secs_f64()
        ));
    }

    say("adding primary keys...");
    for sql in [
        "ALTER TABLE pgbench_branches ADD PRIMARY KEY (bid)",
        "ALTER TABLE pgbench_tellers ADD PRIMARY KEY (tid)",
        "ALTER TABLE pgbench_accounts ADD PRIMARY KEY (aid)",
    ] {
        execute(&client, sql).await?;
    }
    say(&format!("done in {:.1} s", started.elapsed().as_secs_f64()));
    Ok(())
}

/// Loads rows into `target` (a table and its columns) with COPY FROM STDIN
/// in text format; `write_row` writes the line of the row of each id.
async fn copy(
    client: &Client,
    target: &str,
    ids: std::ops::RangeInclusive<u64>,
    write_row: impl Fn(&mut String, u64) -> std::fmt::Result,
) -> Result<()> {
    /// Bytes per CopyData message.
    const CHUNK: usize = 64 * 1024;
    let sql = format!("COPY {target} FROM STDIN");
    let failed = |err: tokio_postgres::Error| statement_failed(&sql, &err);
    let sink = client
        .copy_in::<_, Bytes>(sql.as_str())
        .await
        .map_err(failed)?;
    futures::pin_mut!(sink);
    let mut chunk = String::with_capacity(CHUNK + 128);
    for id in ids {
        write_row(&mut chunk, id).context("formatting a COPY row")?;
        if chunk.len() >= CHUNK {
            let full = std::mem::replace(&mut chunk, String::with_capacity(CHUNK + 128));
            sink.send(Bytes::from(full)).await.map_err(failed)?;
        }
    }
    if !chunk.is_empty() {
        sink.send(Bytes::from(chunk)).await.map_err(failed)?;
    }
    sink.finish().await.map_err(failed)?;
    Ok(())
}

async fn execute(client: &Client, sql: &str) -> Result<()> {
    client
        .batch_execute(sql)
        .await
        .map_err(|err| statement_failed(sql, &err))
}

/// The scale of the loaded tables: their number of branches, as pgbench
/// reads it. A `--scale` given as well is ignored, with a warning.
pub(super) async fn loaded_scale(config: &Config, given: Option<u32>) -> Result<u32> {
    let client = connect(config).await?;
    let sql = "SELECT count(*) FROM pgbench_branches";
    // The simple protocol returns text, whatever integer type the count is.
    let messages = client.simple_query(sql).await.map_err(|err| {
        statement_failed(sql, &err).context("reading the scale (is --init needed?)")
    })?;
    let count = messages.iter().find_map(|message| match message {
        SimpleQueryMessage::Row(row) => row.get(0),
        _ => None,
    });
    let scale: u32 = count
        .and_then(|count| count.parse().ok())
        .with_context(|| format!("{sql} returned {count:?}, not a count"))?;
    ensure!(scale >= 1, "pgbench_branches is empty: load it with --init");
    if let Some(given) = given.filter(|given| *given != scale) {
        eprintln!("warning: --scale {given} ignored: pgbench_branches holds scale {scale}");
    }
    Ok(scale)
}

#[cfg(test)]
mod tests {
    use super::super::script::Script;
    use super::*;

    #[test]
    fn the_built_in_scripts_parse() {
        let tpcb = Script::parse("tpcb", TPCB_LIKE).unwrap();
        let prepared: Vec<String> = tpcb.statements().map(|s| s.with_parameters()).collect();
        assert_eq!(
            prepared,
            [
                "BEGIN",
                "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2",
                "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
                "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2",
                "UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2",
                "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)",
                "END",
            ]
        );
        let select = Script::parse("select", SELECT_ONLY).unwrap();
        assert_eq!(select.statements().count(), 1);
    }
}
