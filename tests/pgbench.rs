//! PostgreSQL's own pgbench against a 3-node cluster of real processes,
//! unmodified: `pgbench -i` (tables, COPY or server-side generation,
//! VACUUM, primary and foreign keys added to populated tables), then the
//! default TPC-B-like script with prepared
//! statements from several clients. No transaction fails, and the money
//! adds up: every account, teller and branch balance sums to the deltas in
//! the history. A pgbench feature Tessera does not support yet fails with
//! an error naming it. Skips, with a notice, where pgbench is not
//! installed. `tessera bench`, Tessera's own pgbench-like load generator,
//! runs the same workloads on tables it loads itself.

use std::path::PathBuf;
use std::process::Command;

use tessera_e2e::Cluster;

/// pgbench on PATH or in PostgreSQL's usual Debian place.
fn pgbench() -> Option<PathBuf> {
    let on_path = Command::new("pgbench").arg("--version").output();
    if on_path.is_ok_and(|o| o.status.success()) {
        return Some(PathBuf::from("pgbench"));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|dir| dir.ok())
        .map(|dir| dir.path().join("bin/pgbench"))
        .filter(|path| path.exists())
        .collect();
    found.sort();
    found.pop()
}

/// Runs pgbench with `args` against the node at `address`.
fn run(pgbench: &PathBuf, address: &str, args: &[&str]) -> (bool, String) {
    let (host, port) = address.rsplit_once(':').expect("host:port");
    let output = Command::new(pgbench)
        .args(["-h", host, "-p", port, "-U", "tessera"])
        .args(args)
        .arg("tessera")
        .output()
        .expect("run pgbench");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The history holds `transactions` rows, and every account, teller and
/// branch balance sums to its deltas: no transaction was lost or applied
/// in part.
async fn assert_money_adds_up(client: &tokio_postgres::Client, transactions: i64) {
    let sums = client
        .query_one(
            "SELECT (SELECT count(*) FROM pgbench_history),
                    (SELECT sum(delta) FROM pgbench_history)::INT8,
                    (SELECT sum(abalance) FROM pgbench_accounts)::INT8,
                    (SELECT sum(tbalance) FROM pgbench_tellers)::INT8,
                    (SELECT sum(bbalance) FROM pgbench_branches)::INT8",
            &[],
        )
        .await
        .expect("sums");
    assert_eq!(sums.get::<_, i64>(0), transactions);
    let delta: i64 = sums.get(1);
    for (i, what) in [(2, "accounts"), (3, "tellers"), (4, "branches")] {
        let sum: i64 = sums.get(i);
        assert_eq!(sum, delta, "the {what}' balances and the history disagree");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_initializes_and_runs_unmodified() {
    let Some(pgbench) = pgbench() else {
        println!("skipped: pgbench_initializes_and_runs_unmodified: pgbench is not installed");
        return;
    };
    let cluster = Cluster::start(3).await.expect("cluster");
    let address = cluster.sql_addresses()[0].clone();

    // Server-side generation (INSERT ... SELECT generate_series), then the
    // default steps (COPY) with foreign keys, which drop the tables (their
    // foreign keys with them) and load them again.
    let (ok, out) = run(&pgbench, &address, &["-i", "-s", "1", "-I", "dtGvpf"]);
    assert!(
        ok && out.contains("server-side generate") && out.contains("foreign keys"),
        "pgbench -i -I dtGvpf:\n{out}"
    );
    let (ok, out) = run(&pgbench, &address, &["-i", "-s", "1", "--foreign-keys"]);
    assert!(
        ok && out.contains("done in"),
        "pgbench -i --foreign-keys:\n{out}"
    );

    let (ok, out) = run(
        &pgbench,
        &address,
        &[
            "-c",
            "4",
            "-j",
            "2",
            "-t",
            "50",
            "-M",
            "prepared",
            "--verbose-errors",
        ],
    );
    assert!(ok, "pgbench run:\n{out}");
    assert!(
        out.contains("number of transactions actually processed: 200/200"),
        "{out}"
    );
    assert!(out.contains("number of failed transactions: 0 "), "{out}");

    let client = tessera_e2e::sql_client(&address).await;
    assert_money_adds_up(&client, 200).await;
    let accounts = client
        .query_one("SELECT count(*) FROM pgbench_accounts", &[])
        .await
        .expect("count");
    assert_eq!(accounts.get::<_, i64>(0), 100_000);
    let fks = client
        .query_one(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f'",
            &[],
        )
        .await
        .expect("foreign keys");
    assert_eq!(fks.get::<_, i64>(0), 5, "pgbench's five foreign keys");

    // A history row must name an existing account.
    let orphan = client
        .execute(
            "INSERT INTO pgbench_history (tid, bid, aid, delta) VALUES (1, 1, 100001, 0)",
            &[],
        )
        .await
        .expect_err("a history row for a missing account");
    assert_eq!(orphan.code().map(|c| c.code()), Some("23503"), "{orphan}");

    // Partitioned tables (pgbench -i --partitions) are not supported: the
    // step fails with an error that names them, and nothing hangs.
    let (ok, out) = run(&pgbench, &address, &["-i", "--partitions=2"]);
    assert!(!ok, "pgbench -i --partitions:\n{out}");
    assert!(out.contains("PARTITION BY"), "{out}");
}

/// Runs `tessera bench <args>` against the node at `address`.
fn tessera_bench(address: &str, args: &[&str]) -> (bool, String, String) {
    let url = format!("postgresql://tessera@{address}/tessera");
    let output = Command::new(tessera_e2e::tessera_bin())
        .arg("bench")
        .args(args)
        .args(["--url", &url])
        .output()
        .expect("run tessera bench");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The value of a numeric field of `tessera bench --json`'s one object.
fn json_number(report: &str, field: &str) -> f64 {
    let value: serde_json::Value = serde_json::from_str(report.trim()).expect("one JSON object");
    value[field]
        .as_f64()
        .unwrap_or_else(|| panic!("no {field} in {report}"))
}

/// `tessera bench` loads the pgbench tables itself, runs the TPC-B-like and
/// select-only scripts with their percentiles, keeps the money adding up,
/// and stops on a script's failing statement with an error naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tessera_bench_loads_and_runs_the_pgbench_workloads() {
    let cluster = Cluster::start(3).await.expect("cluster");
    let address = cluster.sql_addresses()[0].clone();

    let (ok, out, err) = tessera_bench(
        &address,
        &["tpcb", "--init", "-s", "1", "-c", "3", "-t", "20", "--json"],
    );
    assert!(ok, "tessera bench tpcb:\n{out}\n{err}");
    assert_eq!(json_number(&out, "transactions"), 60.0, "{out}");
    assert_eq!(json_number(&out, "failed"), 0.0, "{out}");
    assert!(json_number(&out, "p99_ms") >= json_number(&out, "p50_ms"));
    assert!(err.contains("adding primary keys"), "{err}");

    let (ok, out, err) = tessera_bench(&address, &["select", "-c", "2", "-t", "25"]);
    assert!(ok, "tessera bench select:\n{out}\n{err}");
    assert!(out.contains("transactions: 50 in"), "{out}");
    assert!(out.contains("p99.9"), "{out}");

    let client = tessera_e2e::sql_client(&address).await;
    assert_money_adds_up(&client, 60).await;

    let script = std::env::temp_dir().join(format!("tessera-bench-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        "\\set aid random(1, 100000 * :scale)\nSELECT abalance FROM pgbench_acounts WHERE aid = :aid;\n",
    )
    .expect("write script");
    let (ok, out, err) = tessera_bench(
        &address,
        &["custom", "-f", script.to_str().expect("utf-8"), "-t", "5"],
    );
    let _ = std::fs::remove_file(&script);
    assert!(!ok, "a script with a missing table ran:\n{out}\n{err}");
    assert!(
        err.contains("SELECT abalance FROM pgbench_acounts") && err.contains("42P01"),
        "{err}"
    );
}
