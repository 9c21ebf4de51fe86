//! Online resharding on three real `tessera start` processes: ranges that
//! split on their own when they grow past the size threshold, leases that
//! spread evenly over the nodes, and leases that follow the gateway that
//! keeps their ranges busy.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_e2e::Cluster;

/// The tests of this file run one at a time: each starts a cluster, kills
/// and restarts nodes, and measures how leases spread, which a second
/// cluster on the same two cores (or a port picked twice) would disturb.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// With a 1 MiB threshold, loading 200,000 rows makes the table split into
/// ranges on its own while it is read and written; nothing is lost. Then
/// the rebalancer leaves the nodes' lease counts within one of each other,
/// and once a fourth node joins, their replica and lease counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_split_on_their_own_when_they_grow() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::start_with(
        3,
        &[
            "--split-max-range-bytes",
            "1048576",
            "--rebalance-interval-secs",
            "1",
        ],
    )
    .await
    .expect("cluster");
    let client = tessera_e2e::sql_client(&cluster.sql_addresses()[1]).await;
    client
        .batch_execute("CREATE TABLE big (id INT PRIMARY KEY, g INT NOT NULL, pad TEXT)")
        .await
        .expect("create");
    for chunk in 0..20 {
        let from = chunk * 10_000 + 1;
        client
            .batch_execute(&format!(
                "INSERT INTO big SELECT i, i % 10, repeat('x', 20) FROM generate_series({from}, {}) i",
                from + 9_999
            ))
            .await
            .expect("load");
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    let ranges = loop {
        let ranges = client
            .query("SHOW RANGES FROM TABLE big", &[])
            .await
            .expect("SHOW RANGES");
        if ranges.len() >= 4 || Instant::now() > deadline {
            break ranges;
        }
        // Writes go on while the ranges split.
        client
            .batch_execute("UPDATE big SET g = g + 1 WHERE id % 1000 = 0")
            .await
            .expect("update");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        ranges.len() >= 4,
        "the table is in {} ranges after the load",
        ranges.len()
    );
    println!("200,000 rows in {} ranges", ranges.len());
    let (rows, ids, g): (i64, i64, i64) = {
        let row = client
            .query_one("SELECT count(*), sum(id)::INT8, sum(g)::INT8 FROM big", &[])
            .await
            .expect("count");
        (row.get(0), row.get(1), row.get(2))
    };
    assert_eq!(rows, 200_000);
    assert_eq!(ids, 200_000 * 200_001 / 2);
    // The updates added their count to the twenty rows they touch.
    let updated: i64 = client
        .query_one(
            "SELECT sum(g - id % 10)::INT8 FROM big WHERE id % 1000 = 0",
            &[],
        )
        .await
        .expect("updated")
        .get(0);
    assert_eq!(g, (0..200_000).map(|i| (i + 1) % 10).sum::<i64>() + updated);

    // Leases even out: within one of each other over the three nodes, once
    // the splits are over.
    leases_even_out(&client, &cluster, 3).await;
    // A fourth node joins and receives replicas until the nodes hold within
    // one of each other; leases follow.
    let mut cluster = cluster;
    cluster
        .add_node(&[
            "--split-max-range-bytes",
            "1048576",
            "--rebalance-interval-secs",
            "1",
        ])
        .await
        .expect("node 4");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let nodes = table(&client, "SHOW NODES").await;
        let replicas: Vec<i64> = nodes.iter().map(|n| n[4].parse().unwrap_or(-1)).collect();
        let (most, fewest) = (replicas.iter().max(), replicas.iter().min());
        if nodes.len() == 4
            && fewest >= Some(&0)
            && most.zip(fewest).is_some_and(|(m, f)| m - f <= 1)
        {
            println!("replicas per node: {replicas:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replicas per node still {replicas:?}\n{}",
            cluster.log_tails(10)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    leases_even_out(&client, &cluster, 4).await;
    let rows: i64 = client
        .query_one("SELECT count(*) FROM big", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(rows, 200_000);
}

/// Waits until the lease holders of `big`'s ranges are within one of each
/// other over `n` nodes.
async fn leases_even_out(client: &tokio_postgres::Client, cluster: &Cluster, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut leases = vec![0usize; n];
        for range in client
            .query("SHOW RANGES FROM TABLE big", &[])
            .await
            .expect("SHOW RANGES")
        {
            if let Some(node) = range.get::<_, Option<i64>>("lease_holder") {
                leases[(node - 1) as usize] += 1;
            }
        }
        let spread = leases.iter().max().unwrap_or(&0) - leases.iter().min().unwrap_or(&0);
        if spread <= 1 {
            println!("leases per node: {leases:?}");
            break;
        }
        if Instant::now() > deadline {
            let nodes: Vec<String> = client
                .simple_query("SHOW NODES")
                .await
                .expect("SHOW NODES")
                .iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        Some((0..r.len()).map(|i| r.get(i).unwrap_or("NULL")).collect())
                    }
                    _ => None,
                })
                .collect::<Vec<Vec<&str>>>()
                .iter()
                .map(|r| r.join(" "))
                .collect();
            for (i, node) in cluster.nodes.iter().enumerate() {
                let log = node.log();
                let moves = log.matches("moved a lease").count();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                println!("node {}: {moves} lease moves; last lines: {tail:#?}", i + 1);
            }
            panic!("leases per node still {leases:?}; nodes: {nodes:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Leases follow the workload: while node 3's gateway alone reads a table
/// of four ranges, node 3 takes their leases (so that the reads are
/// answered without a hop between nodes), and once the reads stop, the
/// count balancing spreads the nodes' leases again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_follow_the_gateway_that_sends_their_requests() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (cluster, admin) = rebalancing_cluster_with("f", 400).await;
    admin
        .batch_execute("ALTER TABLE f SPLIT AT VALUES (100), (200), (300)")
        .await
        .expect("split");
    // Node 1 leads them all to begin with.
    for range in table(&admin, "SHOW RANGES FROM TABLE f").await {
        admin
            .batch_execute(&format!("ALTER RANGE {} RELOCATE LEASE TO 1", range[0]))
            .await
            .expect("relocate");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..4 {
        readers.push(reader(&cluster.sql_addresses()[2], "f", 400, stop.clone()).await);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let holders: Vec<Option<i64>> = admin
            .query("SHOW RANGES FROM TABLE f", &[])
            .await
            .expect("SHOW RANGES")
            .iter()
            .map(|r| r.get("lease_holder"))
            .collect();
        if holders.iter().all(|h| *h == Some(3)) {
            println!("node 3 leads f's {} ranges", holders.len());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "f's lease holders still {holders:?}\n{}",
            cluster.log_tails(10)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut reads = 0;
    for reader in readers {
        reads += reader.await.expect("reader");
    }
    println!("{reads} reads through node 3");
    // The reads are over: the user ranges' leases even out again.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut leases = [0i64; 3];
        for range in table(&admin, "SHOW RANGES").await {
            if let (Ok(id), Ok(node)) = (range[0].parse::<u64>(), range[4].parse::<usize>()) {
                if id != 1 && (1..=3).contains(&node) {
                    leases[node - 1] += 1;
                }
            }
        }
        let spread = leases.iter().max().unwrap_or(&0) - leases.iter().min().unwrap_or(&0);
        if spread <= 1 {
            println!("user leases per node once the reads stopped: {leases:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "user leases per node still {leases:?}\n{}",
            cluster.log_tails(10)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Where the three gateways share a range's reads evenly, as behind a load
/// balancer, none of them takes its lease: no node's share reaches 60%.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_stay_put_when_gateways_share_their_requests() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (cluster, _admin) = rebalancing_cluster_with("e", 100).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for address in cluster.sql_addresses() {
        readers.push(reader(&address, "e", 100, stop.clone()).await);
    }
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, Ordering::Relaxed);
    let mut reads = Vec::new();
    for reader in readers {
        reads.push(reader.await.expect("reader"));
    }
    let follows: usize = cluster
        .nodes
        .iter()
        .map(|n| {
            n.log()
                .matches("moved a lease to the node whose gateway")
                .count()
        })
        .sum();
    println!("reads per gateway: {reads:?}; leases that followed a gateway: {follows}");
    assert!(
        reads.iter().all(|r| *r > 100),
        "reads per gateway: {reads:?}"
    );
    assert_eq!(follows, 0, "\n{}", cluster.log_tails(10));
}

/// Three nodes that rebalance every second, with a table `name` of `rows`
/// rows (`id` 1.. and `v` = `id`); a client of node 1.
async fn rebalancing_cluster_with(name: &str, rows: i32) -> (Cluster, tokio_postgres::Client) {
    let cluster = Cluster::start_with(3, &["--rebalance-interval-secs", "1"])
        .await
        .expect("cluster");
    let admin = tessera_e2e::sql_client(&cluster.sql_addresses()[0]).await;
    admin
        .batch_execute(&format!(
            "CREATE TABLE {name} (id INT PRIMARY KEY, v INT NOT NULL);
             INSERT INTO {name} SELECT i, i FROM generate_series(1, {rows}) i"
        ))
        .await
        .expect("setup");
    (cluster, admin)
}

/// A task that reads table `name`'s rows one by one by id (of `rows`),
/// through the SQL gateway at `address`, until `stop`; it answers how many
/// it read.
async fn reader(
    address: &str,
    name: &str,
    rows: i32,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<i32> {
    let client = tessera_e2e::sql_client(address).await;
    let read = client
        .prepare(&format!("SELECT v FROM {name} WHERE id = $1"))
        .await
        .expect("prepare");
    tokio::spawn(async move {
        let mut reads = 0;
        while !stop.load(Ordering::Relaxed) {
            let id = reads % rows + 1;
            let row = client.query_one(&read, &[&id]).await.expect("read");
            assert_eq!(row.get::<_, i32>(0), id);
            reads += 1;
        }
        reads
    })
}

/// Starts three nodes that check their ranges every second and settle
/// unfinished splits and merges after `settle_after_secs`.
async fn settling_cluster(settle_after_secs: u64) -> (Cluster, tempfile::NamedTempFile) {
    let config = tempfile::NamedTempFile::new().expect("config file");
    std::fs::write(
        config.path(),
        format!("[split]\ncheck_interval_secs = 1\nsettle_after_secs = {settle_after_secs}\n"),
    )
    .expect("write the config");
    let path = config.path().to_str().expect("utf-8 path");
    let cluster = Cluster::start_with(3, &["--config", path])
        .await
        .expect("cluster");
    (cluster, config)
}

/// Creates table t with rows 1 to 100 (v = id, summing to 5050), then
/// runs `then` (if not empty).
async fn create_t(client: &tokio_postgres::Client, then: &str) {
    client
        .batch_execute(&format!(
            "CREATE TABLE t (id INT PRIMARY KEY, v INT);
             INSERT INTO t SELECT i, i FROM generate_series(1, 100) i;
             {then}"
        ))
        .await
        .expect("setup");
}

/// Node 3 leads table t's range and splits it at 50 with `failpoint`
/// armed, which aborts the process; then it restarts without it. Returns
/// a client of node 1.
async fn split_dies_at(cluster: &mut Cluster, failpoint: &str) -> tokio_postgres::Client {
    let client = tessera_e2e::sql_client(&cluster.sql_addresses()[0]).await;
    create_t(&client, "").await;
    let range: i64 = client
        .query_one("SHOW RANGES FROM TABLE t", &[])
        .await
        .expect("SHOW RANGES")
        .get("range_id");
    cluster.nodes[2].env = vec![("TESSERA_FAILPOINTS".into(), failpoint.into())];
    cluster.nodes[2].restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    let relocate = format!("ALTER RANGE {range} RELOCATE LEASE TO 3");
    while let Err(err) = client.simple_query(&relocate).await {
        assert!(Instant::now() < deadline, "{relocate}: {err:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    node_3_dies_running(cluster, failpoint, "ALTER TABLE t SPLIT AT VALUES (50)").await;
    client
}

/// Node 3, started with `failpoint` armed, runs `statement`, which aborts
/// the process at the failpoint; then node 3 restarts without it.
async fn node_3_dies_running(cluster: &mut Cluster, failpoint: &str, statement: &str) {
    let address = &cluster.sql_addresses()[2];
    tessera_e2e::wait_for_port(address, Duration::from_secs(30))
        .await
        .expect("node 3 restarts");
    let gateway = tessera_e2e::sql_client(address).await;
    let died = gateway.simple_query(statement).await;
    assert!(died.is_err(), "{statement} answered: {died:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cluster.nodes[2].exited() {
        assert!(Instant::now() < deadline, "node 3 still runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(cluster.nodes[2]
        .log()
        .contains(&format!("failpoint {failpoint} reached")));
    cluster.nodes[2].env.clear();
    cluster.nodes[2].restart();
}

/// Waits until table t's ranges start at `expected` and no range holds a
/// split pending any longer; then checks that both halves serve reads and
/// writes, and that nothing was lost.
async fn settles_into(
    cluster: &Cluster,
    client: &tokio_postgres::Client,
    expected: &[Option<&str>],
) {
    let expected: Vec<Option<String>> = expected.iter().map(|s| s.map(str::to_string)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let starts: Vec<Option<String>> = client
            .query("SHOW RANGES FROM TABLE t", &[])
            .await
            .expect("SHOW RANGES")
            .iter()
            .map(|r| r.get("start_key"))
            .collect();
        let settled = cluster
            .nodes
            .iter()
            .any(|n| n.log().contains("settled a split left pending"));
        if starts == expected && settled {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the meta range records {starts:?}; settled: {settled}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    client
        .batch_execute("UPDATE t SET v = v + 1 WHERE id IN (10, 90)")
        .await
        .expect("update");
    let sum: i64 = client
        .query_one("SELECT sum(v)::INT8 FROM t", &[])
        .await
        .expect("sum")
        .get(0);
    assert_eq!(sum, 5050 + 2);
}

/// The node running a split dies after the range prepared it and before
/// the meta range recorded it (the commit point): the range's new leader
/// aborts the split at its next check, without waiting out
/// `settle_after_secs` (600 here), and the table can be split again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_that_died_before_its_commit_point_is_aborted() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (mut cluster, _config) = settling_cluster(600).await;
    let client = split_dies_at(&mut cluster, tessera_txn::failpoint::SPLIT_BEFORE_META).await;
    settles_into(&cluster, &client, &[None]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(err) = client
        .batch_execute("ALTER TABLE t SPLIT AT VALUES (50)")
        .await
    {
        assert!(Instant::now() < deadline, "split again: {err:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ranges = client
        .query("SHOW RANGES FROM TABLE t", &[])
        .await
        .expect("SHOW RANGES");
    assert_eq!(ranges.len(), 2);
}

/// The node running a split dies after the meta range recorded it and
/// before the range applied it: the range's new leader applies it at its
/// next check, without waiting out `settle_after_secs` (600 here; the new
/// range is named by the meta range and unavailable until then), and the
/// meta range and the ranges agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_that_died_after_its_commit_point_is_applied() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (mut cluster, _config) = settling_cluster(600).await;
    let client = split_dies_at(&mut cluster, tessera_txn::failpoint::SPLIT_AFTER_META).await;
    settles_into(&cluster, &client, &[None, Some("(50)")]).await;
}

/// A gateway dies in the middle of a merge, after the right range froze
/// and before the left range absorbed it (a failpoint aborts the process).
/// Writes to the frozen range wait; its leader then fences the merge off
/// and releases the range, the writes go through, and the merge, run
/// again, completes. Nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_frozen_by_an_abandoned_merge_is_released() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (mut cluster, _config) = settling_cluster(3).await;
    let client = tessera_e2e::sql_client(&cluster.sql_addresses()[0]).await;
    create_t(&client, "ALTER TABLE t SPLIT AT VALUES (50)").await;
    let failpoint = tessera_txn::failpoint::MERGE_AFTER_FREEZE;
    cluster.nodes[2].env = vec![("TESSERA_FAILPOINTS".into(), failpoint.into())];
    cluster.nodes[2].restart();
    node_3_dies_running(
        &mut cluster,
        failpoint,
        "ALTER TABLE t UNSPLIT AT VALUES (50)",
    )
    .await;

    // A write to the frozen range goes through once it is released.
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(err) = client
        .batch_execute("UPDATE t SET v = v + 1 WHERE id = 90")
        .await
    {
        assert!(Instant::now() < deadline, "the range stays frozen: {err:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        cluster.nodes.iter().any(|n| n
            .log()
            .contains("released a range frozen by an abandoned merge")),
        "no leader released the range"
    );
    client
        .batch_execute("ALTER TABLE t UNSPLIT AT VALUES (50)")
        .await
        .expect("the merge, run again");
    let ranges = client
        .query("SHOW RANGES FROM TABLE t", &[])
        .await
        .expect("SHOW RANGES");
    assert_eq!(ranges.len(), 1);
    let sum: i64 = client
        .query_one("SELECT sum(v)::INT8 FROM t", &[])
        .await
        .expect("sum")
        .get(0);
    assert_eq!(sum, 5050 + 1);
}

/// Nodes started with these flags move no replicas or leases on their own:
/// the test's moves are the only ones.
const NO_REBALANCING: [&str; 2] = ["--rebalance-interval-secs", "0"];

/// A fourth node joins the cluster (started with `extra` flags); returns
/// once the cluster shows it live.
async fn add_node_4(cluster: &mut Cluster, client: &tokio_postgres::Client, extra: &[&str]) {
    cluster.add_node(extra).await.expect("node 4");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !table(client, "SHOW NODES")
        .await
        .iter()
        .any(|n| n[0] == "4" && n[2] == "t")
    {
        assert!(Instant::now() < deadline, "node 4 did not join");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A relocation's last step applies but its answer is lost (a failpoint on
/// the gateway, node 3): the relocation plans again from the range as its
/// leader knows it, finds the move made, and records it in the meta range.
/// The statement succeeds and the rows stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relocation_whose_last_answer_is_lost_is_recorded() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut cluster = Cluster::start_with(3, &NO_REBALANCING)
        .await
        .expect("cluster");
    let failpoint = tessera_txn::failpoint::RELOCATE_ANSWER_LOST;
    cluster.nodes[2].env = vec![("TESSERA_FAILPOINTS".into(), failpoint.into())];
    cluster.nodes[2].restart();
    let address = &cluster.sql_addresses()[2];
    tessera_e2e::wait_for_port(address, Duration::from_secs(30))
        .await
        .expect("node 3 restarts");
    let gateway = tessera_e2e::sql_client(address).await;
    create_t(&gateway, "").await;
    add_node_4(&mut cluster, &gateway, &NO_REBALANCING).await;
    let range = &table(&gateway, "SHOW RANGES FROM TABLE t").await[0][0];
    gateway
        .batch_execute(&format!("ALTER RANGE {range} RELOCATE VOTERS FROM 1 TO 4"))
        .await
        .expect("the relocation");
    assert!(
        cluster.nodes[2].log().contains("planning the step again"),
        "the failpoint did not lose the answer"
    );
    // The meta range records the move: a fresh client's SHOW RANGES shows it.
    let other = tessera_e2e::sql_client(&cluster.sql_addresses()[1]).await;
    let ranges = print_table(&other, "SHOW RANGES FROM TABLE t").await;
    assert_eq!(nodes_of(&ranges[0][3]), vec![2, 3, 4]);
    let sum: i64 = other
        .query_one("SELECT sum(v)::INT8 FROM t", &[])
        .await
        .expect("sum")
        .get(0);
    assert_eq!(sum, 5050);
}

/// The rows of a statement as text, one line per row, for the test's log
/// (the closing note of the resharding issue shows them).
async fn table(client: &tokio_postgres::Client, sql: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for message in client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
            rows.push(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL").to_string())
                    .collect(),
            );
        }
    }
    rows
}

async fn print_table(client: &tokio_postgres::Client, sql: &str) -> Vec<Vec<String>> {
    let rows = table(client, sql).await;
    println!("{sql};");
    for row in &rows {
        println!("  {}", row.join(" | "));
    }
    rows
}

/// The nodes in a replica set shown as `{1,2,3}`.
fn nodes_of(set: &str) -> Vec<i64> {
    set.trim_matches(|c| c == '{' || c == '}')
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("node id"))
        .collect()
}

const ACCOUNTS: i64 = 1000;
const INITIAL: i64 = 1000;

/// While the bank workload runs (transfers in explicit transactions that
/// retry on 40001 and 40P01, and a reader that sums every balance), the
/// accounts table splits into 16 ranges, merges back into one, every
/// replica on node 1 moves to a fourth node that just joined, and leases
/// move around. The sum holds in every snapshot, no client sees another
/// error, and the table keeps its rows. The rebalancers are off: they
/// would fill the emptied node 1 again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_survives_splits_merges_and_relocations() {
    use rand::{Rng, SeedableRng};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    let _alone = ONE_AT_A_TIME.lock().await;
    let mut cluster = Cluster::start_with(3, &NO_REBALANCING)
        .await
        .expect("cluster");
    let sql_addresses = cluster.sql_addresses();
    let admin = tessera_e2e::sql_client(&sql_addresses[0]).await;
    admin
        .batch_execute(&format!(
            "CREATE TABLE acct (id INT PRIMARY KEY, bal INT NOT NULL);
             INSERT INTO acct SELECT g, {INITIAL} FROM generate_series(1, {ACCOUNTS}) g"
        ))
        .await
        .expect("setup");
    let expected = ACCOUNTS * INITIAL;
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let retried = Arc::new(AtomicU64::new(0));
    let reader = {
        let (client, stop) = (
            tessera_e2e::sql_client(&sql_addresses[1]).await,
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut sums = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let sum: i64 = client
                    .query_one("SELECT sum(bal)::INT8 FROM acct", &[])
                    .await
                    .map_err(|e| format!("sum: {e:?}"))?
                    .get(0);
                if sum != expected {
                    return Err(format!("read sum {sum}, expected {expected}"));
                }
                sums += 1;
            }
            Ok::<u64, String>(sums)
        })
    };
    let mut workers = Vec::new();
    for i in 0..6 {
        let client = tessera_e2e::sql_client(&sql_addresses[i % sql_addresses.len()]).await;
        let (stop, committed, retried) = (stop.clone(), committed.clone(), retried.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
            while !stop.load(Ordering::Relaxed) {
                let from: i32 = rng.gen_range(1..=ACCOUNTS as i32);
                let to: i32 = rng.gen_range(1..=ACCOUNTS as i32);
                let amount: i32 = rng.gen_range(1..=100);
                loop {
                    let attempt = async {
                        client.batch_execute("BEGIN").await?;
                        client
                            .execute(
                                "UPDATE acct SET bal = bal - $1 WHERE id = $2",
                                &[&amount, &from],
                            )
                            .await?;
                        client
                            .execute(
                                "UPDATE acct SET bal = bal + $1 WHERE id = $2",
                                &[&amount, &to],
                            )
                            .await?;
                        client.batch_execute("COMMIT").await
                    }
                    .await;
                    match attempt {
                        Ok(()) => {
                            committed.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        Err(e) if matches!(e.code().map(|c| c.code()), Some("40001" | "40P01")) => {
                            retried.fetch_add(1, Ordering::Relaxed);
                            let _ = client.batch_execute("ROLLBACK").await;
                        }
                        Err(e) => return Err(format!("transfer: {e:?}")),
                    }
                }
            }
            Ok::<(), String>(())
        }));
    }

    print_table(&admin, "SHOW RANGES FROM TABLE acct").await;
    // Split into 16 ranges.
    let points: Vec<String> = (1..16)
        .map(|i| format!("({})", i * ACCOUNTS / 16))
        .collect();
    admin
        .batch_execute(&format!(
            "ALTER TABLE acct SPLIT AT VALUES {}",
            points.join(", ")
        ))
        .await
        .expect("split");
    let ranges = print_table(&admin, "SHOW RANGES FROM TABLE acct").await;
    assert_eq!(ranges.len(), 16);
    // Merge them back into one.
    admin
        .batch_execute("ALTER TABLE acct UNSPLIT ALL")
        .await
        .expect("unsplit");
    let ranges = print_table(&admin, "SHOW RANGES FROM TABLE acct").await;
    assert_eq!(ranges.len(), 1);
    // A fourth node joins; every replica on node 1 moves to it.
    add_node_4(&mut cluster, &admin, &NO_REBALANCING).await;
    print_table(&admin, "SHOW NODES").await;
    print_table(&admin, "SHOW RANGES").await;
    for range in table(&admin, "SHOW RANGES").await {
        if nodes_of(&range[3]).contains(&1) {
            let relocate = format!("ALTER RANGE {} RELOCATE VOTERS FROM 1 TO 4", range[0]);
            admin
                .batch_execute(&relocate)
                .await
                .unwrap_or_else(|e| panic!("{relocate}: {e:?}"));
        }
    }
    let ranges = print_table(&admin, "SHOW RANGES").await;
    assert!(ranges.iter().all(|r| !nodes_of(&r[3]).contains(&1)));
    // Leases move around the acct range's voters.
    for range in table(&admin, "SHOW RANGES FROM TABLE acct").await {
        for node in nodes_of(&range[3]) {
            let relocate = format!("ALTER RANGE {} RELOCATE LEASE TO {node}", range[0]);
            admin
                .batch_execute(&relocate)
                .await
                .unwrap_or_else(|e| panic!("{relocate}: {e:?}"));
        }
    }
    print_table(&admin, "SHOW RANGES FROM TABLE acct").await;
    // Node 1 removes its replicas once the meta range shows them gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let nodes = table(&admin, "SHOW NODES").await;
        if nodes.iter().any(|n| n[0] == "1" && n[4] == "0") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 1 still holds replicas: {nodes:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    print_table(&admin, "SHOW NODES").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker
            .await
            .expect("worker")
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_tails(20)));
    }
    let sums = reader
        .await
        .expect("reader")
        .unwrap_or_else(|e| panic!("{e}"));
    let row = admin
        .query_one("SELECT count(*), sum(bal)::INT8 FROM acct", &[])
        .await
        .expect("final");
    let (rows, total): (i64, i64) = (row.get(0), row.get(1));
    println!(
        "bank: {} transfers committed, {} retried, {sums} consistent sums",
        committed.load(Ordering::Relaxed),
        retried.load(Ordering::Relaxed)
    );
    assert_eq!((rows, total), (ACCOUNTS, expected));
    assert!(committed.load(Ordering::Relaxed) > 0 && sums > 0);

    // Node 1, now empty, dies: nothing may move to it, and nothing changes.
    cluster.nodes[0].kill();
    let admin = tessera_e2e::sql_client(&sql_addresses[1]).await;
    let before = table(&admin, "SHOW RANGES").await;
    let relocate = format!("ALTER RANGE {} RELOCATE VOTERS FROM 2 TO 1", before[1][0]);
    let err = admin.simple_query(&relocate).await.expect_err(&relocate);
    assert_eq!(err.code().map(|c| c.code()), Some("22023"), "{err:?}");
    assert!(format!("{err:?}").contains("node 1"), "{err:?}");
    assert!(format!("{err:?}").contains("is not live"), "{err:?}");
    let after = table(&admin, "SHOW RANGES").await;
    let layout = |rows: &[Vec<String>]| -> Vec<(String, String)> {
        rows.iter().map(|r| (r[0].clone(), r[3].clone())).collect()
    };
    assert_eq!(layout(&before), layout(&after));

    // Back up, node 1 is decommissioned (it holds nothing, so nothing
    // moves); it gets no new replicas.
    cluster.nodes[0].restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !table(&admin, "SHOW NODES")
        .await
        .iter()
        .any(|n| n[0] == "1" && n[2] == "t")
    {
        assert!(Instant::now() < deadline, "node 1 did not come back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let decommission = std::process::Command::new(tessera_e2e::tessera_bin())
        .args([
            "admin",
            "--host",
            &cluster.nodes[1].address,
            "decommission",
            "--node",
            "1",
        ])
        .output()
        .expect("tessera admin decommission");
    let stdout = String::from_utf8_lossy(&decommission.stdout);
    assert!(
        decommission.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&decommission.stderr)
    );
    assert!(stdout.contains("node 1 holds no replicas"), "{stdout}");
    let nodes = print_table(&admin, "SHOW NODES").await;
    assert_eq!(
        nodes[0][3], "t",
        "node 1 is not marked decommissioned: {nodes:?}"
    );
    let err = admin.simple_query(&relocate).await.expect_err(&relocate);
    assert_eq!(err.code().map(|c| c.code()), Some("22023"), "{err:?}");
    assert!(format!("{err:?}").contains("decommissioned"), "{err:?}");
}
