//! Online resharding on three real `tessera start` processes: ranges that
//! split on their own when they grow past the size threshold, and leases
//! that spread evenly over the nodes.

use std::time::{Duration, Instant};

use tessera_e2e::Cluster;

/// The tests of this file run one at a time: each starts a cluster, kills
/// and restarts nodes, and measures how leases spread, which a second
/// cluster on the same two cores (or a port picked twice) would disturb.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Connects to a node's SQL port.
async fn sql(address: &str) -> tokio_postgres::Client {
    let (host, port) = address.rsplit_once(':').expect("host:port");
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(port.parse().expect("port"))
        .user("tessera")
        .dbname("tessera")
        .connect_timeout(Duration::from_secs(10));
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|err| panic!("connect to {address}: {err}"));
    tokio::spawn(connection);
    client
}

/// With a 256 KiB threshold, loading 20,000 rows makes the table split into
/// ranges on its own while it is read and written; nothing is lost. Then
/// the rebalancer leaves the nodes' lease counts within one of each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_split_on_their_own_when_they_grow() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::start_with(
        3,
        &[
            "--split-max-range-bytes",
            "262144",
            "--rebalance-interval-secs",
            "1",
        ],
    )
    .await
    .expect("cluster");
    let client = sql(&cluster.sql_addresses()[1]).await;
    client
        .batch_execute("CREATE TABLE big (id INT PRIMARY KEY, g INT NOT NULL, pad TEXT)")
        .await
        .expect("create");
    for chunk in 0..4 {
        let from = chunk * 5000 + 1;
        client
            .batch_execute(&format!(
                "INSERT INTO big SELECT i, i % 10, repeat('x', 20) FROM generate_series({from}, {}) i",
                from + 4999
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
    println!("20,000 rows in {} ranges", ranges.len());
    let (rows, ids, g): (i64, i64, i64) = {
        let row = client
            .query_one("SELECT count(*), sum(id)::INT8, sum(g)::INT8 FROM big", &[])
            .await
            .expect("count");
        (row.get(0), row.get(1), row.get(2))
    };
    assert_eq!(rows, 20_000);
    assert_eq!(ids, 20_000 * 20_001 / 2);
    // The updates added their count to the twenty rows they touch.
    let updated: i64 = client
        .query_one(
            "SELECT sum(g - id % 10)::INT8 FROM big WHERE id % 1000 = 0",
            &[],
        )
        .await
        .expect("updated")
        .get(0);
    assert_eq!(g, (0..20_000).map(|i| (i + 1) % 10).sum::<i64>() + updated);

    // Leases even out: within one of each other over the three nodes, once
    // the splits are over.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut leases = [0usize; 3];
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

/// A gateway that leads the range it splits dies after the split and before
/// the meta range records it (a failpoint aborts the process, as kill -9
/// would). Nothing retries the split, yet the meta range comes to record
/// both ranges: the leaders check their ranges' meta records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_whose_meta_update_was_lost_is_repaired() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut cluster = Cluster::start(3).await.expect("cluster");
    let client = sql(&cluster.sql_addresses()[0]).await;
    client
        .batch_execute(
            "CREATE TABLE t (id INT PRIMARY KEY, v INT);
             INSERT INTO t SELECT i, i FROM generate_series(1, 100) i",
        )
        .await
        .expect("setup");
    let range: i64 = client
        .query_one("SHOW RANGES FROM TABLE t", &[])
        .await
        .expect("SHOW RANGES")
        .get("range_id");
    // Node 3 leads the table's range, with the failpoint armed.
    cluster.nodes[2].env = vec![(
        "TESSERA_FAILPOINTS".into(),
        tessera_txn::failpoint::SPLIT_BEFORE_META.into(),
    )];
    cluster.nodes[2].restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    let relocate = format!("ALTER RANGE {range} RELOCATE LEASE TO 3");
    while let Err(err) = client.simple_query(&relocate).await {
        assert!(Instant::now() < deadline, "{relocate}: {err:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let gateway = sql(&cluster.sql_addresses()[2]).await;
    let died = gateway
        .simple_query("ALTER TABLE t SPLIT AT VALUES (50)")
        .await;
    assert!(died.is_err(), "the split answered: {died:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cluster.nodes[2].exited() {
        assert!(Instant::now() < deadline, "node 3 still runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(cluster.nodes[2]
        .log()
        .contains("failpoint split-before-meta reached"));
    cluster.nodes[2].env.clear();
    cluster.nodes[2].restart();
    // The meta range records the split within a few checks.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let starts: Vec<Option<String>> = client
            .query("SHOW RANGES FROM TABLE t", &[])
            .await
            .expect("SHOW RANGES")
            .iter()
            .map(|r| r.get("start_key"))
            .collect();
        if starts == [None, Some("(50)".to_string())] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the meta range still records {starts:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        cluster
            .nodes
            .iter()
            .any(|n| n.log().contains("recorded the range in the meta range")),
        "no leader repaired the meta records"
    );
    // Both halves serve reads and writes.
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
