//! SQL transactions over the wire on a 3-node cluster of real processes:
//! the bank workload across ranges, lost updates under READ COMMITTED,
//! deadlocks, row locks, foreign keys under concurrent writers, schema
//! changes seen at once by every gateway, tables without a primary key, and
//! aggregates over many ranges.
//!
//! ```sh
//! cargo test --workspace -- sql_transactions::
//! TESSERA_SQL_TARGET=postgres cargo test --workspace -- sql_transactions::   # the same on PostgreSQL
//! TESSERA_BANK_SECS=120 cargo test --workspace -- sql_transactions::bank      # the long form
//! ```
//!
//! On PostgreSQL the range splits are skipped; everything else must hold
//! there too.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use support::Target;
use tokio_postgres::Client;

fn main() {
    support::run_trials(vec![
        support::trial("sql_transactions::bank", bank),
        support::trial(
            "sql_transactions::bank_lease_transfers",
            bank_lease_transfers,
        ),
        support::trial(
            "sql_transactions::range_admin_bad_input",
            range_admin_bad_input,
        ),
        support::trial("sql_transactions::lost_update", lost_update),
        support::trial(
            "sql_transactions::reads_see_what_was_acknowledged_before",
            reads_see_what_was_acknowledged_before,
        ),
        support::trial("sql_transactions::deadlock", deadlock),
        support::trial("sql_transactions::row_locks", row_locks),
        support::trial(
            "sql_transactions::an_abandoned_transaction_releases_its_locks",
            an_abandoned_transaction_releases_its_locks,
        ),
        support::trial("sql_transactions::foreign_keys", foreign_keys),
        support::trial(
            "sql_transactions::schema_changes_and_tables_without_a_key",
            tables_without_a_key,
        ),
        support::trial("sql_transactions::aggregates_over_ten_ranges", aggregates),
    ])
}

fn target() -> Result<&'static Target, String> {
    support::target_from_env("TESSERA_SQL_TARGET")
}

/// The `v` column of table `t`, in `id` order.
async fn values_of_t(client: &tokio_postgres::Client) -> Result<Vec<i32>, String> {
    let rows = client
        .query("SELECT v FROM t ORDER BY id", &[])
        .await
        .map_err(err("read"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

fn err(what: &str) -> impl Fn(tokio_postgres::Error) -> String + '_ {
    move |e| format!("{what}: {}", support::error_text(&e))
}

/// Connects `n` clients to a fresh database, spread over the entry points.
async fn clients(target: &Target, database: &str, n: usize) -> Result<Vec<Client>, String> {
    let mut out = Vec::new();
    for i in 0..n {
        let mut config = target.entry_point(i);
        config.dbname(database);
        out.push(support::connect(&config).await?);
    }
    Ok(out)
}

/// Runs a test on a fresh database.
fn with_database<F, Fut>(name: &str, test: F) -> Result<(), String>
where
    F: FnOnce(&'static Target, String) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let target = target()?;
    let database = support::unique_database(name);
    support::runtime().block_on(async {
        target.fresh_database(&database, 0).await?;
        let result = test(target, database.clone()).await;
        target.drop_database(&database).await;
        result
    })
}

/// Splits `table` at each value of its integer primary key (Tessera only).
async fn split(client: &Client, target: &Target, table: &str, at: &[i64]) -> Result<(), String> {
    if !target.is_tessera() || at.is_empty() {
        return Ok(());
    }
    let values: Vec<String> = at.iter().map(|v| format!("({v})")).collect();
    let sql = format!("ALTER TABLE {table} SPLIT AT VALUES {}", values.join(", "));
    client.simple_query(&sql).await.map_err(err(&sql))?;
    let ranges = client
        .query(&format!("SHOW RANGES FROM TABLE {table}"), &[])
        .await
        .map_err(err("SHOW RANGES"))?;
    if ranges.len() < at.len() + 1 {
        return Err(format!(
            "{table} is in {} ranges after {} splits",
            ranges.len(),
            at.len()
        ));
    }
    Ok(())
}

/// The locks left in the user keyspace (Tessera only), waiting up to 10 s
/// for the background commits of secondaries.
async fn locks_left(target: &Target) -> Result<usize, String> {
    if target.grpc.is_empty() {
        return Ok(0);
    }
    tessera_e2e::locks_left(&target.grpc, Duration::from_secs(10))
        .await
        .map_err(|e| format!("scanning locks: {e:#}"))
}

/// Whether an error is one a client retries the transaction after.
fn retryable(e: &tokio_postgres::Error) -> bool {
    matches!(support::sqlstate(e).as_deref(), Some("40001" | "40P01"))
}

const ACCOUNTS: i64 = 1000;
const INITIAL: i64 = 1000;

/// 16 clients move money between random accounts of a table in four
/// ranges, in explicit transactions that retry on 40001 and 40P01, while a
/// reader sums every balance again and again: the sum never changes, and no
/// lock is left at the end.
fn bank() -> Result<(), String> {
    with_database("bank", move |target, database| async move {
        run_bank(target, &database, |_, _| async { Ok(0) }).await
    })
}

/// The bank workload while the leases of the table's ranges move from node
/// to node, each range's in turn (Tessera only): the same guarantees, and
/// `SHOW RANGES` names the new lease holder after each move.
fn bank_lease_transfers() -> Result<(), String> {
    with_database("bank_leases", move |target, database| async move {
        if !target.is_tessera() {
            println!("skipped: PostgreSQL has no ranges");
            return Ok(());
        }
        run_bank(target, &database, |admin, stop| async move {
            let mut moves = 0u64;
            let mut round = 0usize;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                for range in admin
                    .query("SHOW RANGES FROM TABLE acct", &[])
                    .await
                    .map_err(err("SHOW RANGES"))?
                {
                    let id: i64 = range.get("range_id");
                    let replicas: String = range.get("replicas");
                    let nodes: Vec<i64> = replicas
                        .trim_matches(|c| c == '{' || c == '}')
                        .split(',')
                        .filter_map(|n| n.parse().ok())
                        .collect();
                    let Some(to) = nodes.get((round + id as usize) % nodes.len().max(1)) else {
                        return Err(format!("range {id} has no replicas: {replicas}"));
                    };
                    let sql = format!("ALTER RANGE {id} RELOCATE LEASE TO {to}");
                    let moved = admin
                        .query_one(sql.as_str(), &[])
                        .await
                        .map_err(err(&sql))?;
                    let holder: i64 = moved.get("lease_holder");
                    if holder != *to {
                        return Err(format!("{sql} answered lease holder {holder}"));
                    }
                    moves += 1;
                }
                let after = admin
                    .query("SHOW RANGES FROM TABLE acct", &[])
                    .await
                    .map_err(err("SHOW RANGES"))?;
                if after
                    .iter()
                    .any(|r| r.get::<_, Option<i64>>("lease_holder").is_none())
                {
                    return Err("a range without a lease holder after the moves".into());
                }
            }
            Ok(moves)
        })
        .await
    })
}

/// Runs the bank workload for TESSERA_BANK_SECS (default 8) seconds on a
/// table in four ranges, with `admin` running beside it on a client of its
/// own until told to stop; checks the workload's guarantees.
async fn run_bank<F, Fut>(target: &'static Target, database: &str, admin: F) -> Result<(), String>
where
    F: FnOnce(Client, Arc<AtomicBool>) -> Fut,
    Fut: std::future::Future<Output = Result<u64, String>> + Send + 'static,
{
    let secs: u64 = std::env::var("TESSERA_BANK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    {
        let mut all = clients(target, database, 19).await?;
        let admin_client = all.pop().unwrap_or_else(|| unreachable!());
        let setup = all.pop().unwrap_or_else(|| unreachable!());
        setup
            .batch_execute(&format!(
                "CREATE TABLE acct (id INT PRIMARY KEY, bal INT NOT NULL);
                 INSERT INTO acct SELECT g, {INITIAL} FROM generate_series(1, {ACCOUNTS}) g"
            ))
            .await
            .map_err(err("setup"))?;
        split(&setup, target, "acct", &[250, 500, 750]).await?;
        let expected = ACCOUNTS * INITIAL;

        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicU64::new(0));
        let retried = Arc::new(AtomicU64::new(0));
        let reader = all.pop().unwrap_or_else(|| unreachable!());
        let reads = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut sums = 0u64;
                let mut repeatable = false;
                while !stop.load(Ordering::Relaxed) {
                    repeatable = !repeatable;
                    let begin = if repeatable {
                        "BEGIN ISOLATION LEVEL REPEATABLE READ"
                    } else {
                        "BEGIN"
                    };
                    reader.batch_execute(begin).await.map_err(err(begin))?;
                    let sum: i64 = reader
                        .query_one("SELECT sum(bal)::INT8 FROM acct", &[])
                        .await
                        .map_err(err("sum"))?
                        .get(0);
                    reader
                        .batch_execute("COMMIT")
                        .await
                        .map_err(err("COMMIT"))?;
                    if sum != expected {
                        return Err(format!("read sum {sum}, expected {expected}"));
                    }
                    sums += 1;
                }
                Ok::<u64, String>(sums)
            })
        };
        let mut workers = Vec::new();
        for (i, client) in all.into_iter().enumerate() {
            let (stop, committed, retried) = (stop.clone(), committed.clone(), retried.clone());
            workers.push(tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
                let debit = client
                    .prepare("UPDATE acct SET bal = bal - $1 WHERE id = $2")
                    .await
                    .map_err(err("prepare"))?;
                let credit = client
                    .prepare("UPDATE acct SET bal = bal + $1 WHERE id = $2")
                    .await
                    .map_err(err("prepare"))?;
                while !stop.load(Ordering::Relaxed) {
                    let from: i32 = rng.gen_range(1..=ACCOUNTS as i32);
                    let to: i32 = rng.gen_range(1..=ACCOUNTS as i32);
                    let amount: i32 = rng.gen_range(1..=100);
                    loop {
                        let attempt = async {
                            client.batch_execute("BEGIN").await?;
                            client.execute(&debit, &[&amount, &from]).await?;
                            client.execute(&credit, &[&amount, &to]).await?;
                            client.batch_execute("COMMIT").await
                        }
                        .await;
                        match attempt {
                            Ok(()) => {
                                committed.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            Err(e) if retryable(&e) => {
                                retried.fetch_add(1, Ordering::Relaxed);
                                client
                                    .batch_execute("ROLLBACK")
                                    .await
                                    .map_err(err("ROLLBACK"))?;
                            }
                            Err(e) => return Err(err("transfer")(e)),
                        }
                    }
                }
                Ok::<(), String>(())
            }));
        }
        let admin = tokio::spawn(admin(admin_client, stop.clone()));
        tokio::time::sleep(Duration::from_secs(secs)).await;
        stop.store(true, Ordering::Relaxed);
        for worker in workers {
            worker.await.map_err(|e| e.to_string())??;
        }
        let admin_steps = admin.await.map_err(|e| e.to_string())??;
        let sums = reads.await.map_err(|e| e.to_string())??;
        let total: i64 = setup
            .query_one("SELECT sum(bal)::INT8 FROM acct", &[])
            .await
            .map_err(err("final sum"))?
            .get(0);
        let rows: i64 = setup
            .query_one("SELECT count(*) FROM acct", &[])
            .await
            .map_err(err("count"))?
            .get(0);
        let left = locks_left(target).await?;
        println!(
            "bank: {} transfers committed, {} retried, {sums} consistent sums, {admin_steps} \
             admin steps in {secs} s",
            committed.load(Ordering::Relaxed),
            retried.load(Ordering::Relaxed)
        );
        if total != expected || rows != ACCOUNTS {
            return Err(format!("ended with {rows} accounts holding {total}"));
        }
        if committed.load(Ordering::Relaxed) == 0 || sums == 0 {
            return Err("no transfer or no sum completed".into());
        }
        if left != 0 {
            return Err(format!("{left} locks left after the workload"));
        }
        Ok(())
    }
}

/// Range administration refuses what it cannot do, with a clear error and
/// no change (Tessera only).
fn range_admin_bad_input() -> Result<(), String> {
    with_database("range_admin", |target, database| async move {
        if !target.is_tessera() {
            println!("skipped: PostgreSQL has no ranges");
            return Ok(());
        }
        let all = clients(target, &database, 1).await?;
        let client = &all[0];
        client
            .batch_execute("CREATE TABLE r (id INT PRIMARY KEY)")
            .await
            .map_err(err("setup"))?;
        split(client, target, "r", &[10]).await?;
        let ranges = client
            .query("SHOW RANGES FROM TABLE r", &[])
            .await
            .map_err(err("SHOW RANGES"))?;
        let id: i64 = ranges[1].get("range_id");
        // The ranges' ids and bounds (lease holders may move: the nodes
        // rebalance them).
        let layout = |rows: &[tokio_postgres::Row]| -> Vec<(i64, Option<String>)> {
            rows.iter()
                .map(|r| (r.get("range_id"), r.get("start_key")))
                .collect()
        };
        let cases = [
            (
                "ALTER RANGE 999999 RELOCATE LEASE TO 1".to_string(),
                "22023",
                "range 999999 does not exist",
            ),
            (
                format!("ALTER RANGE {id} RELOCATE LEASE TO 42"),
                "22023",
                "node 42 holds no voting replica",
            ),
            (
                format!("ALTER RANGE {id} RELOCATE VOTERS FROM 1 TO 42"),
                "22023",
                "node 42 does not exist",
            ),
            (
                "ALTER RANGE 999999 RELOCATE VOTERS FROM 1 TO 2".to_string(),
                "22023",
                "range 999999 does not exist",
            ),
            (
                format!("ALTER RANGE {id} RELOCATE VOTERS FROM 1 TO 2"),
                "22023",
                "node 2 already holds a voting replica",
            ),
            (
                format!("ALTER RANGE {id} RELOCATE VOTERS FROM 9 TO 2"),
                "22023",
                "node 9 holds no voting replica",
            ),
            (
                "ALTER TABLE r UNSPLIT AT VALUES (5)".to_string(),
                "22023",
                "no range starts at (5)",
            ),
            (
                "ALTER TABLE r UNSPLIT AT VALUES (10), (5)".to_string(),
                "22023",
                "no range starts at (5)",
            ),
            (
                "ALTER TABLE r SPLIT AT VALUES (20), (10)".to_string(),
                "22023",
                "a range already starts at (10)",
            ),
            (
                "ALTER TABLE r UNSPLIT AT VALUES ('x')".to_string(),
                "22P02",
                "",
            ),
            (
                format!("ALTER RANGE {id} RELOCATE LEASE"),
                "42601",
                "syntax error",
            ),
            (
                "ALTER RANGE x RELOCATE LEASE TO 1".to_string(),
                "42601",
                "syntax error",
            ),
            (
                "ALTER TABLE r SPLIT AT VALUES (10)".to_string(),
                "22023",
                "a range already starts at (10)",
            ),
        ];
        for (sql, code, message) in cases {
            match client.simple_query(&sql).await {
                Err(e) if support::sqlstate(&e).as_deref() == Some(code) => {
                    let text = support::error_text(&e);
                    if !text.contains(message) {
                        return Err(format!("{sql}: {text}, expected it to say \"{message}\""));
                    }
                }
                Err(e) => {
                    return Err(format!(
                        "{sql}: {}, expected {code}",
                        support::error_text(&e)
                    ))
                }
                Ok(_) if code.is_empty() => {}
                Ok(_) => return Err(format!("{sql} succeeded, expected {code}")),
            }
        }
        let after = client
            .query("SHOW RANGES FROM TABLE r", &[])
            .await
            .map_err(err("SHOW RANGES"))?;
        if layout(&after) != layout(&ranges) {
            return Err("the refused statements changed the ranges".into());
        }
        // The range holding a row.
        for (row, expected) in [(5, &ranges[0]), (10, &ranges[1]), (15, &ranges[1])] {
            let sql = format!("SHOW RANGE FROM TABLE r FOR ROW ({row})");
            let found = client.query(sql.as_str(), &[]).await.map_err(err(&sql))?;
            let ids: Vec<i64> = found.iter().map(|r| r.get("range_id")).collect();
            if ids != [expected.get::<_, i64>("range_id")] {
                return Err(format!("{sql}: ranges {ids:?}"));
            }
        }
        for (sql, code) in [
            ("SHOW RANGE FROM TABLE r FOR ROW (1, 2)", "42601"),
            ("SHOW RANGE FROM TABLE r FOR ROW ('x')", "22P02"),
            ("SHOW RANGE FROM TABLE nosuch FOR ROW (1)", "42P01"),
        ] {
            match client.simple_query(sql).await {
                Err(e) if support::sqlstate(&e).as_deref() == Some(code) => {}
                other => return Err(format!("{sql}: {other:?}, expected {code}")),
            }
        }
        // An index splits at its own keys.
        client
            .batch_execute("ALTER TABLE r ADD COLUMN g INT; CREATE INDEX r_g ON r (g)")
            .await
            .map_err(err("index"))?;
        let split = client
            .query_one("ALTER INDEX r@r_g SPLIT AT VALUES (7)", &[])
            .await
            .map_err(err("ALTER INDEX ... SPLIT AT"))?;
        if split.get::<_, String>("split_key") != "r_g (7)" || !split.get::<_, bool>("created") {
            return Err(format!("ALTER INDEX ... SPLIT AT answered {split:?}"));
        }
        let starts: Vec<Option<String>> = client
            .query("SHOW RANGES FROM INDEX r@r_g", &[])
            .await
            .map_err(err("SHOW RANGES FROM INDEX"))?
            .iter()
            .map(|r| r.get("start_key"))
            .collect();
        if starts != [None, Some("r_g (7)".to_string())] {
            return Err(format!("SHOW RANGES FROM INDEX r@r_g: starts {starts:?}"));
        }
        for sql in [
            "ALTER INDEX r@nosuch SPLIT AT VALUES (1)",
            "SHOW RANGES FROM INDEX r@nosuch",
        ] {
            match client.simple_query(sql).await {
                Err(e) if support::sqlstate(&e).as_deref() == Some("42704") => {}
                other => return Err(format!("{sql}: {other:?}, expected 42704")),
            }
        }
        // Every node is live and holds replicas; the leases add up to at
        // least the user ranges.
        let nodes = client
            .query("SHOW NODES", &[])
            .await
            .map_err(err("SHOW NODES"))?;
        let live = nodes.iter().filter(|n| n.get::<_, bool>("is_live")).count();
        let leases: i64 = nodes
            .iter()
            .filter_map(|n| n.get::<_, Option<i64>>("leases"))
            .sum();
        let ids: Vec<i64> = nodes.iter().map(|n| n.get("node_id")).collect();
        if ids != [1, 2, 3] || live != 3 || leases < after.len() as i64 {
            return Err(format!(
                "SHOW NODES: nodes {ids:?}, {live} live, {leases} leases for {} ranges of r",
                after.len()
            ));
        }
        Ok(())
    })
}

/// 8 clients each run `UPDATE counter SET v = v + 1` 500 times under READ
/// COMMITTED (half of them in explicit blocks): the counter ends at 4,000
/// and no statement fails.
fn lost_update() -> Result<(), String> {
    with_database("lost_update", |target, database| async move {
        let all = clients(target, &database, 9).await?;
        all[8]
            .batch_execute(
                "CREATE TABLE counter (id INT PRIMARY KEY, v INT NOT NULL);
                 INSERT INTO counter VALUES (1, 0)",
            )
            .await
            .map_err(err("setup"))?;
        let mut tasks = Vec::new();
        for (i, client) in all.into_iter().take(8).enumerate() {
            tasks.push(tokio::spawn(async move {
                for n in 0..500 {
                    let sql = if i % 2 == 1 && n % 10 == 0 {
                        "BEGIN; UPDATE counter SET v = v + 1 WHERE id = 1; COMMIT"
                    } else {
                        "UPDATE counter SET v = v + 1 WHERE id = 1"
                    };
                    client.batch_execute(sql).await.map_err(err(sql))?;
                }
                Ok::<Client, String>(client)
            }));
        }
        let mut last = None;
        for task in tasks {
            last = Some(task.await.map_err(|e| e.to_string())??);
        }
        let client = last.ok_or("no client")?;
        let v: i32 = client
            .query_one("SELECT v FROM counter", &[])
            .await
            .map_err(err("read"))?
            .get(0);
        if v != 4000 {
            return Err(format!("counter is {v}, not 4000"));
        }
        Ok(())
    })
}

/// A write acknowledged through one gateway is seen by every read that
/// starts after it through another: an update, a new row and a new column,
/// read by point reads and scans. The reading gateway is kept busy by
/// other readers, so its single SELECTs read at recent timestamps
/// (`begin_recent`): without their check for newer writes, or without a
/// schema change's wait, they would read from before the write. The reads
/// are prepared once (or sent as simple queries): describing a statement
/// takes a fresh timestamp, which would hide the difference.
fn reads_see_what_was_acknowledged_before() -> Result<(), String> {
    with_database("acknowledged", |target, database| async move {
        // Entry point 1 writes; 0 reads, kept busy by 3 (the same gateway
        // on a three-node cluster) and 2.
        let mut all = clients(target, &database, 4).await?;
        let writer = all.remove(1);
        writer
            .batch_execute(
                "CREATE TABLE kv (id INT PRIMARY KEY, v INT NOT NULL);
                 INSERT INTO kv VALUES (1, 0)",
            )
            .await
            .map_err(err("setup"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut busy = Vec::new();
        for client in all.drain(1..) {
            let stop = stop.clone();
            busy.push(tokio::spawn(async move {
                let sql = "SELECT v FROM kv WHERE id = 1";
                let read = client.prepare(sql).await.map_err(err(sql))?;
                while !stop.load(Ordering::Relaxed) {
                    client.query(&read, &[]).await.map_err(err(sql))?;
                }
                Ok::<(), String>(())
            }));
        }
        let reader = all.remove(0);
        let result = async {
            let point = reader
                .prepare("SELECT v FROM kv WHERE id = 1")
                .await
                .map_err(err("prepare"))?;
            let scan = reader
                .prepare("SELECT id FROM kv WHERE id > 1000 ORDER BY id")
                .await
                .map_err(err("prepare"))?;
            for n in 1..=300i32 {
                writer
                    .execute("UPDATE kv SET v = $1 WHERE id = 1", &[&n])
                    .await
                    .map_err(err("UPDATE"))?;
                let v: i32 = reader
                    .query_one(&point, &[])
                    .await
                    .map_err(err("point read"))?
                    .get(0);
                if v != n {
                    return Err(format!("a point read after update {n} saw {v}"));
                }
                writer
                    .execute("INSERT INTO kv VALUES ($1, $1)", &[&(1000 + n)])
                    .await
                    .map_err(err("INSERT"))?;
                let rows = reader.query(&scan, &[]).await.map_err(err("scan"))?;
                if rows.len() != n as usize {
                    return Err(format!(
                        "a scan after insert {n} saw {} new rows",
                        rows.len()
                    ));
                }
                if n % 60 == 0 {
                    let column = format!("c{n}");
                    let sql = format!("ALTER TABLE kv ADD COLUMN {column} INT DEFAULT {n}");
                    writer.batch_execute(&sql).await.map_err(err(&sql))?;
                    let sql = format!("SELECT {column} FROM kv WHERE id = 1");
                    let rows = reader
                        .simple_query(&sql)
                        .await
                        .map_err(err("a read of a column added just before"))?;
                    let c = rows.iter().find_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(row) => {
                            row.get(0).map(str::to_string)
                        }
                        _ => None,
                    });
                    if c != Some(n.to_string()) {
                        return Err(format!("{sql} gave {c:?}"));
                    }
                }
            }
            Ok(())
        }
        .await;
        stop.store(true, Ordering::Relaxed);
        for task in busy {
            task.await.map_err(|e| e.to_string())??;
        }
        result
    })
}

/// Two transactions lock two rows in opposite orders: one of them gets
/// 40P01, its locks go with it, and the other commits.
fn deadlock() -> Result<(), String> {
    with_database("deadlock", |target, database| async move {
        let mut all = clients(target, &database, 2).await?;
        let b = all.pop().ok_or("client")?;
        let a = all.pop().ok_or("client")?;
        a.batch_execute(
            "CREATE TABLE t (id INT PRIMARY KEY, v INT);
             INSERT INTO t VALUES (1, 0), (2, 0)",
        )
        .await
        .map_err(err("setup"))?;
        split(&a, target, "t", &[2]).await?;
        // The winner goes on as soon as the loser's transaction fails,
        // before its ROLLBACK: well within 2 s (PostgreSQL detects the
        // cycle after deadlock_timeout, 1 s); a loser's locks left to
        // expire (their TTL is 3 s) would fail the winner with 55P03.
        for client in [&a, &b] {
            client
                .batch_execute("SET lock_timeout = '2s'")
                .await
                .map_err(err("SET lock_timeout"))?;
        }
        a.batch_execute("BEGIN; UPDATE t SET v = 1 WHERE id = 1")
            .await
            .map_err(err("a locks 1"))?;
        b.batch_execute("BEGIN; UPDATE t SET v = 2 WHERE id = 2")
            .await
            .map_err(err("b locks 2"))?;
        let a = Arc::new(a);
        let first = {
            let a = a.clone();
            tokio::spawn(async move { a.batch_execute("UPDATE t SET v = 1 WHERE id = 2").await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let second = b.batch_execute("UPDATE t SET v = 2 WHERE id = 1").await;
        let first = first.await.map_err(|e| e.to_string())?;
        let codes = (
            first.as_ref().err().and_then(support::sqlstate),
            second.as_ref().err().and_then(support::sqlstate),
        );
        let (winner, loser) = match codes {
            (None, Some(code)) if code == "40P01" => (&*a, &b),
            (Some(code), None) if code == "40P01" => (&b, &*a),
            other => return Err(format!("expected one 40P01, got {other:?}")),
        };
        loser
            .batch_execute("ROLLBACK")
            .await
            .map_err(err("ROLLBACK"))?;
        winner
            .batch_execute("COMMIT")
            .await
            .map_err(err("COMMIT"))?;
        let values = values_of_t(winner).await?;
        if values != [1, 1] && values != [2, 2] {
            return Err(format!(
                "values {values:?}: the winner's two writes, all or nothing"
            ));
        }
        Ok(())
    })
}

/// SELECT ... FOR UPDATE makes a writer wait until the lock holder
/// commits; the writer then changes the committed value. NOWAIT fails at
/// once with 55P03.
fn row_locks() -> Result<(), String> {
    with_database("row_locks", |target, database| async move {
        let mut all = clients(target, &database, 3).await?;
        let c = all.pop().ok_or("client")?;
        let b = all.pop().ok_or("client")?;
        let a = all.pop().ok_or("client")?;
        a.batch_execute(
            "CREATE TABLE t (id INT PRIMARY KEY, v INT);
             INSERT INTO t VALUES (1, 10)",
        )
        .await
        .map_err(err("setup"))?;
        a.batch_execute("BEGIN").await.map_err(err("BEGIN"))?;
        let v: i32 = a
            .query_one("SELECT v FROM t WHERE id = 1 FOR UPDATE", &[])
            .await
            .map_err(err("FOR UPDATE"))?
            .get(0);
        if v != 10 {
            return Err(format!("read {v}"));
        }
        c.batch_execute("BEGIN").await.map_err(err("BEGIN"))?;
        let nowait = c
            .batch_execute("SELECT v FROM t WHERE id = 1 FOR UPDATE NOWAIT")
            .await;
        match nowait.as_ref().err().and_then(support::sqlstate).as_deref() {
            Some("55P03") => {}
            other => return Err(format!("NOWAIT gave {other:?}")),
        }
        c.batch_execute("ROLLBACK").await.map_err(err("ROLLBACK"))?;
        let started = Instant::now();
        let writer =
            tokio::spawn(
                async move { b.execute("UPDATE t SET v = v + 1 WHERE id = 1", &[]).await },
            );
        tokio::time::sleep(Duration::from_millis(300)).await;
        if writer.is_finished() {
            return Err("the writer did not wait for the row lock".into());
        }
        a.batch_execute("UPDATE t SET v = 100 WHERE id = 1; COMMIT")
            .await
            .map_err(err("commit"))?;
        writer
            .await
            .map_err(|e| e.to_string())?
            .map_err(err("writer"))?;
        let v: i32 = a
            .query_one("SELECT v FROM t WHERE id = 1", &[])
            .await
            .map_err(err("read"))?
            .get(0);
        if v != 101 {
            return Err(format!(
                "v = {v} after {:?}: the writer must apply +1 to 100",
                started.elapsed()
            ));
        }
        // An UPDATE in a block reads and locks a row it finds by its key in
        // one request; a row it does not find stays unlocked, as in
        // PostgreSQL: another writer inserts it without waiting (it would
        // fail on its lock_timeout otherwise), and the block's next
        // statement (READ COMMITTED) finds it and locks it.
        a.batch_execute("BEGIN; UPDATE t SET v = 5 WHERE id = 2")
            .await
            .map_err(err("UPDATE of a missing row"))?;
        c.batch_execute("SET lock_timeout = '1s'; INSERT INTO t VALUES (2, 20)")
            .await
            .map_err(err("inserting the row an UPDATE did not find"))?;
        let updated = a
            .execute("UPDATE t SET v = v + 1 WHERE id = 2", &[])
            .await
            .map_err(err("UPDATE of the inserted row"))?;
        if updated != 1 {
            return Err(format!("the block's UPDATE changed {updated} rows, not 1"));
        }
        let waited = c
            .batch_execute("UPDATE t SET v = 0 WHERE id = 2")
            .await
            .err()
            .as_ref()
            .and_then(support::sqlstate);
        if waited.as_deref() != Some("55P03") {
            return Err(format!(
                "a writer of the row the block updated gave {waited:?}, not 55P03"
            ));
        }
        a.batch_execute("COMMIT").await.map_err(err("COMMIT"))?;
        let values = values_of_t(&a).await?;
        if values != [101, 21] {
            return Err(format!("values {values:?}, expected [101, 21]"));
        }
        Ok(())
    })
}

/// A transaction rolled back, failed by an error, or whose connection
/// closes gives up its row locks at once: another writer of the rows does
/// not wait for them to expire (it would fail here, on its 1 s
/// lock_timeout, where the locks lasted until their TTL).
fn an_abandoned_transaction_releases_its_locks() -> Result<(), String> {
    with_database("abandoned_locks", |target, database| async move {
        let mut all = clients(target, &database, 4).await?;
        let writer = all.pop().ok_or("client")?;
        let failing = all.pop().ok_or("client")?;
        let closing = all.pop().ok_or("client")?;
        let rolling_back = all.pop().ok_or("client")?;
        rolling_back
            .batch_execute(
                "CREATE TABLE t (id INT PRIMARY KEY, v INT);
                 INSERT INTO t VALUES (1, 0), (2, 0), (3, 0)",
            )
            .await
            .map_err(err("setup"))?;
        writer
            .batch_execute("SET lock_timeout = '1s'")
            .await
            .map_err(err("SET lock_timeout"))?;
        rolling_back
            .batch_execute("BEGIN; UPDATE t SET v = 1 WHERE id = 1; ROLLBACK")
            .await
            .map_err(err("a transaction rolled back"))?;
        writer
            .batch_execute("UPDATE t SET v = 2 WHERE id = 1")
            .await
            .map_err(err("writing the row a rolled back transaction locked"))?;
        closing
            .batch_execute("BEGIN; UPDATE t SET v = 1 WHERE id = 2")
            .await
            .map_err(err("a transaction left open"))?;
        drop(closing);
        writer
            .batch_execute("UPDATE t SET v = 2 WHERE id = 2")
            .await
            .map_err(err(
                "writing the row a transaction whose connection closed locked",
            ))?;
        // A statement's error aborts the transaction: its locks go then,
        // before the ROLLBACK that ends the block (as a deadlock's loser's
        // do, which the winner waits on).
        failing
            .batch_execute("BEGIN; UPDATE t SET v = 1 WHERE id = 3")
            .await
            .map_err(err("a transaction locking a row"))?;
        if failing.batch_execute("SELECT 1 / 0").await.is_ok() {
            return Err("1 / 0 did not fail".into());
        }
        writer
            .batch_execute("UPDATE t SET v = 2 WHERE id = 3")
            .await
            .map_err(err("writing the row a failed transaction locked"))?;
        failing
            .batch_execute("ROLLBACK")
            .await
            .map_err(err("ROLLBACK"))?;
        let values = values_of_t(&writer).await?;
        if values != [2, 2, 2] {
            return Err(format!("values {values:?}, expected [2, 2, 2]"));
        }
        Ok(())
    })
}

/// Runs `sql` on `client` while another transaction holds what it needs:
/// it must still be waiting after 300 ms, then `release` (run on
/// `holder`) lets it finish. Returns its SQLSTATE, if it failed.
async fn waits_then(
    client: Arc<Client>,
    sql: &'static str,
    holder: &Client,
    release: &str,
) -> Result<Option<String>, String> {
    let waiter = tokio::spawn(async move { client.batch_execute(sql).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    if waiter.is_finished() {
        return Err(format!("{sql} did not wait for the other transaction"));
    }
    holder.batch_execute(release).await.map_err(err(release))?;
    let outcome = waiter.await.map_err(|e| e.to_string())?;
    Ok(outcome.err().as_ref().and_then(support::sqlstate))
}

/// A schema change made through one gateway is seen by the next statement
/// through any other (each statement reads the schema version as of its
/// snapshot). Then tables without a primary key: concurrent transaction
/// blocks insert rows under row ids their gateways make (no lock, no
/// existence check: every row must survive), while a UNIQUE column of such
/// a table still makes a second inserter of a value wait for the first
/// and fail with 23505 once it commits.
fn tables_without_a_key() -> Result<(), String> {
    with_database("no_key", |target, database| async move {
        let mut all = clients(target, &database, 3).await?;
        let c = all.pop().ok_or("client")?;
        let b = all.pop().ok_or("client")?;
        let a = all.pop().ok_or("client")?;
        for round in 0..5 {
            let table = format!("s{round}");
            a.batch_execute(&format!("CREATE TABLE {table} (k INT PRIMARY KEY)"))
                .await
                .map_err(err("CREATE TABLE"))?;
            b.batch_execute(&format!("INSERT INTO {table} VALUES (1)"))
                .await
                .map_err(err(
                    "INSERT right after CREATE TABLE, through another gateway",
                ))?;
            c.batch_execute(&format!("ALTER TABLE {table} ADD COLUMN v INT DEFAULT 7"))
                .await
                .map_err(err("ALTER TABLE"))?;
            let v: i32 = a
                .query_one(&format!("SELECT v FROM {table} WHERE k = 1"), &[])
                .await
                .map_err(err(
                    "SELECT right after ALTER TABLE, through another gateway",
                ))?
                .get(0);
            if v != 7 {
                return Err(format!("the added column read {v}, not its default 7"));
            }
            b.batch_execute(&format!("DROP TABLE {table}"))
                .await
                .map_err(err("DROP TABLE"))?;
            match c.batch_execute(&format!("SELECT * FROM {table}")).await {
                Err(e) if support::sqlstate(&e).as_deref() == Some("42P01") => {}
                other => return Err(format!("a dropped table read gave {other:?}")),
            }
        }

        a.batch_execute("CREATE TABLE h (v INT, u INT UNIQUE); CREATE INDEX h_v ON h (v)")
            .await
            .map_err(err("setup"))?;
        let mut tasks = Vec::new();
        for (i, client) in [a, b, c].into_iter().enumerate() {
            tasks.push(tokio::spawn(async move {
                for n in 0..20 {
                    let rows: Vec<String> = (0..10)
                        .map(|j| format!("({}, {})", n % 3, i * 1000 + n * 10 + j))
                        .collect();
                    let sql = format!(
                        "BEGIN; INSERT INTO h VALUES {}; INSERT INTO h (v) VALUES ({n}); COMMIT",
                        rows.join(", ")
                    );
                    client.batch_execute(&sql).await.map_err(err("insert"))?;
                }
                Ok::<Client, String>(client)
            }));
        }
        let mut clients = Vec::new();
        for task in tasks {
            clients.push(task.await.map_err(|e| e.to_string())??);
        }
        let b = Arc::new(clients.remove(1));
        let a = &clients[0];
        let row = a
            .query_one(
                "SELECT count(*), count(u), count(DISTINCT u), count(*) FILTER (WHERE v = 1) FROM h",
                &[],
            )
            .await
            .map_err(err("count"))?;
        let counts: Vec<i64> = (0..4).map(|i| row.get(i)).collect();
        // 3 clients x 20 blocks of 11 rows, 10 of them with a distinct u;
        // v = 1 in 71 rows per client (the 7 blocks with n % 3 = 1, and the
        // row with v = n = 1).
        if counts != [660, 600, 600, 213] {
            return Err(format!("after the concurrent inserts: {counts:?}"));
        }

        a.batch_execute("BEGIN; INSERT INTO h VALUES (1, 100000)")
            .await
            .map_err(err("first insert of 100000"))?;
        let second = waits_then(b.clone(), "INSERT INTO h VALUES (2, 100000)", a, "COMMIT").await?;
        if second.as_deref() != Some("23505") {
            return Err(format!(
                "the second insert of 100000 gave {second:?}, not 23505"
            ));
        }
        Ok(())
    })
}

/// A child row and the deletion of its parent, in two transactions that
/// overlap, never both commit: whichever locks the parent first wins and
/// the other fails with 23503 once it may go on. Then four clients insert
/// children and delete and re-insert parents at random, in two ranges,
/// and no child is left without its parent.
fn foreign_keys() -> Result<(), String> {
    with_database("foreign_keys", |target, database| async move {
        let mut all = clients(target, &database, 4).await?;
        let a = all.pop().ok_or("client")?;
        let b = Arc::new(all.pop().ok_or("client")?);
        a.batch_execute(
            "CREATE TABLE parent (id INT PRIMARY KEY);
             CREATE TABLE child (id INT PRIMARY KEY, pid INT REFERENCES parent);
             INSERT INTO parent SELECT g FROM generate_series(1, 20) g",
        )
        .await
        .map_err(err("setup"))?;
        split(&a, target, "parent", &[10]).await?;

        // The child first: the deletion waits for it, then sees it.
        a.batch_execute("BEGIN; INSERT INTO child VALUES (1, 1)")
            .await
            .map_err(err("child"))?;
        let code = waits_then(b.clone(), "DELETE FROM parent WHERE id = 1", &a, "COMMIT").await?;
        if code.as_deref() != Some("23503") {
            return Err(format!(
                "deleting a parent whose child committed meanwhile: {code:?}"
            ));
        }
        // The deletion first: the child waits for it, then finds no parent.
        a.batch_execute("BEGIN; DELETE FROM parent WHERE id = 2")
            .await
            .map_err(err("delete"))?;
        let code = waits_then(b.clone(), "INSERT INTO child VALUES (2, 2)", &a, "COMMIT").await?;
        if code.as_deref() != Some("23503") {
            return Err(format!("a child of a parent deleted meanwhile: {code:?}"));
        }

        let mut workers = Vec::new();
        all.push(a);
        let b = Arc::try_unwrap(b).map_err(|_| "client still shared")?;
        all.push(b);
        let next_child = Arc::new(AtomicU64::new(100));
        let deadline = Instant::now() + Duration::from_secs(4);
        for (w, client) in all.into_iter().enumerate() {
            let next_child = next_child.clone();
            workers.push(tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(w as u64);
                let mut counts = [0u64; 3];
                while Instant::now() < deadline {
                    let parent = rng.gen_range(1..=20);
                    let (kind, sql) = match rng.gen_range(0..4) {
                        0 => (1, format!("DELETE FROM parent WHERE id = {parent}")),
                        1 => (2, format!("INSERT INTO parent VALUES ({parent})")),
                        _ => {
                            let id = next_child.fetch_add(1, Ordering::Relaxed);
                            (
                                0,
                                format!("BEGIN; INSERT INTO child VALUES ({id}, {parent}); COMMIT"),
                            )
                        }
                    };
                    match client.batch_execute(&sql).await {
                        Ok(()) => counts[kind] += 1,
                        Err(e) if retryable(&e) => {
                            let _ = client.batch_execute("ROLLBACK").await;
                        }
                        Err(e) => match support::sqlstate(&e).as_deref() {
                            Some("23503" | "23505") => {
                                let _ = client.batch_execute("ROLLBACK").await;
                            }
                            _ => return Err(format!("{sql}: {}", support::error_text(&e))),
                        },
                    }
                }
                Ok::<_, String>((client, counts))
            }));
        }
        let mut totals = [0u64; 3];
        let mut client = None;
        for worker in workers {
            let (c, counts) = worker.await.map_err(|e| e.to_string())??;
            for (total, n) in totals.iter_mut().zip(counts) {
                *total += n;
            }
            client = Some(c);
        }
        let client = client.ok_or("no client")?;
        let orphans: i64 = client
            .query_one(
                "SELECT count(*) FROM child c WHERE NOT EXISTS (SELECT 1 FROM parent p WHERE p.id = c.pid)",
                &[],
            )
            .await
            .map_err(err("orphans"))?
            .get(0);
        println!(
            "foreign keys: {} children inserted, {} parents deleted, {} re-inserted, {orphans} orphans",
            totals[0], totals[1], totals[2]
        );
        if orphans != 0 || totals[0] == 0 || totals[1] == 0 {
            return Err(format!(
                "{orphans} children without a parent, counts {totals:?}"
            ));
        }
        Ok(())
    })
}

/// count(*), sum and GROUP BY over a table in ten ranges give what they
/// gave over the same rows in one range.
fn aggregates() -> Result<(), String> {
    with_database("aggregates", |target, database| async move {
        let all = clients(target, &database, 1).await?;
        let client = &all[0];
        client
            .batch_execute(
                "CREATE TABLE m (id INT PRIMARY KEY, g INT NOT NULL, x INT);
                 INSERT INTO m SELECT i, i % 7, CASE WHEN i % 11 = 0 THEN NULL ELSE i * 3 END
                 FROM generate_series(1, 2000) i",
            )
            .await
            .map_err(err("setup"))?;
        let queries = [
            "SELECT count(*)::TEXT, count(x)::TEXT, sum(x)::TEXT, min(x)::TEXT, max(x)::TEXT FROM m",
            "SELECT id::TEXT, (x * 2)::TEXT FROM m WHERE g = 3 AND x > 5000",
            "SELECT g::TEXT, count(*)::TEXT, sum(x)::TEXT, avg(x)::TEXT FROM m GROUP BY g ORDER BY g",
            "SELECT count(*)::TEXT FROM m WHERE id BETWEEN 150 AND 1850 AND x > 100",
        ];
        let one_range = results(client, &queries).await?;
        let points: Vec<i64> = (1..10).map(|i| i * 200).collect();
        split(client, target, "m", &points).await?;
        let ten_ranges = results(client, &queries).await?;
        if one_range != ten_ranges {
            return Err(format!(
                "one range: {one_range:?}\nten ranges: {ten_ranges:?}"
            ));
        }
        // Parameters travel with the flows to the leaders.
        let bound = "SELECT g::TEXT, count(*)::TEXT, sum(x)::TEXT FROM m \
                     WHERE id > $1 AND x < $2 GROUP BY g ORDER BY g";
        let with_params = rows_text(
            client
                .query(bound, &[&150i32, &3000i32])
                .await
                .map_err(err(bound))?,
        );
        if target.is_tessera() {
            // The same answers with every row read through the gateway.
            client
                .simple_query("SET distsql = off")
                .await
                .map_err(err("SET distsql"))?;
            let gateway = results(client, &queries).await?;
            if gateway != ten_ranges {
                return Err(format!(
                    "at the gateway: {gateway:?}\nat the leaders: {ten_ranges:?}"
                ));
            }
            let gateway_params = rows_text(
                client
                    .query(bound, &[&150i32, &3000i32])
                    .await
                    .map_err(err(bound))?,
            );
            if gateway_params != with_params {
                return Err(format!(
                    "with parameters at the gateway: {gateway_params:?}\nat the leaders: \
                     {with_params:?}"
                ));
            }
        }
        Ok(())
    })
}

/// The rows of each query, as text.
async fn results(client: &Client, queries: &[&str]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for q in queries {
        out.extend(rows_text(client.query(*q, &[]).await.map_err(err(q))?));
    }
    Ok(out)
}

/// Rows of text columns, one string each.
fn rows_text(rows: Vec<tokio_postgres::Row>) -> Vec<String> {
    rows.iter()
        .map(|row| {
            let cells: Vec<Option<String>> = (0..row.len()).map(|i| row.get(i)).collect();
            format!("{cells:?}")
        })
        .collect()
}
