//! End-to-end transactions through the coordinator (`tessera-txn`) on three
//! real `tessera start` processes. The meta range and the user range are
//! two Raft groups, so a transaction writing keys under `0x01 "sql/"` (meta
//! range) and ordinary user keys commits with two-phase commit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tessera_e2e::Cluster;
use tessera_kv::{KvClient, KvClientConfig};
use tessera_proto::txn::{self as pb, mutation::Op, txn_command::Kind, TxnCommand};
use tessera_txn::{TxnClient, TxnError, TxnOptions};
use tessera_types::Timestamp;

const ACCOUNTS: usize = 20;
const INITIAL: i64 = 100;

/// Half the accounts in the meta range, half in the user range.
fn account(i: usize) -> Vec<u8> {
    if i.is_multiple_of(2) {
        format!("\x01sql/test-bank/{i:03}").into_bytes()
    } else {
        format!("bank/{i:03}").into_bytes()
    }
}

fn balance(value: Option<Vec<u8>>) -> i64 {
    let bytes = value.expect("every account exists");
    String::from_utf8(bytes).unwrap().parse().unwrap()
}

async fn start() -> (Cluster, KvClient) {
    let cluster = Cluster::start(3).await.expect("cluster");
    let kv = KvClient::new(cluster.addresses(), KvClientConfig::default());
    (cluster, kv)
}

/// Sums every account in one transaction.
async fn total(client: &TxnClient) -> Result<i64, TxnError> {
    let txn = client.begin().await?;
    let mut sum = 0;
    for i in 0..ACCOUNTS {
        sum += balance(txn.get(&account(i)).await?);
    }
    Ok(sum)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transfers_keep_the_total() {
    let (cluster, kv) = start().await;
    let client = TxnClient::new(kv.clone(), TxnOptions::default());
    let mut setup = client.begin().await.unwrap();
    for i in 0..ACCOUNTS {
        setup.put(account(i), INITIAL.to_string().into_bytes());
    }
    setup.commit().await.unwrap();
    assert_eq!(total(&client).await.unwrap(), INITIAL * ACCOUNTS as i64);

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (client, done) = (client.clone(), done.clone());
        tokio::spawn(async move {
            let mut sums = 0;
            while !done.load(Ordering::Relaxed) {
                assert_eq!(total(&client).await.unwrap(), INITIAL * ACCOUNTS as i64);
                sums += 1;
            }
            sums
        })
    };
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let client = client.clone();
        writers.push(tokio::spawn(async move {
            let (mut committed, mut retried) = (0, 0);
            let mut state = w * 7919 + 1;
            while committed < 25 {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let from = (state >> 33) as usize % ACCOUNTS;
                let to = (from + 1 + (state >> 45) as usize % (ACCOUNTS - 1)) % ACCOUNTS;
                let amount = (state >> 20) as i64 % 30;
                let attempt = async {
                    let mut txn = client.begin().await?;
                    let a = balance(txn.get(&account(from)).await?);
                    let b = balance(txn.get(&account(to)).await?);
                    txn.put(account(from), (a - amount).to_string().into_bytes());
                    txn.put(account(to), (b + amount).to_string().into_bytes());
                    txn.commit().await
                };
                match attempt.await {
                    Ok(_) => committed += 1,
                    Err(err) if err.is_retryable() => retried += 1,
                    Err(err) => panic!("transfer failed: {err}"),
                }
            }
            (committed, retried)
        }));
    }
    let mut conflicts = 0;
    for writer in writers {
        conflicts += writer.await.unwrap().1;
    }
    done.store(true, Ordering::Relaxed);
    let sums = reader.await.unwrap();
    assert!(sums > 0);
    assert_eq!(total(&client).await.unwrap(), INITIAL * ACCOUNTS as i64);
    println!("100 transfers, {conflicts} retried on conflicts, {sums} consistent sums");

    // Every lock is gone once the background commits finish: a scan at a
    // fresh timestamp meets none.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let now = client.timestamp().await.unwrap();
    for (start, end) in [
        (&b"\x01sql/test-bank/"[..], &b"\x01sql/test-bank0"[..]),
        (b"bank/", b"bank0"),
    ] {
        let scan = kv.mvcc_scan(start, end, now, 1000, false).await.unwrap();
        let (kvs, _) = scan.expect("no locks left");
        assert_eq!(kvs.len(), ACCOUNTS / 2);
    }
    drop(cluster);
}

fn prewrite(
    start_ts: Timestamp,
    primary: &[u8],
    key: &[u8],
    value: &str,
    ttl_ms: u64,
) -> TxnCommand {
    TxnCommand {
        kind: Some(Kind::Prewrite(pb::Prewrite {
            start_ts: start_ts.0,
            primary: primary.to_vec(),
            ttl_ms,
            for_update_ts: 0,
            mutations: vec![pb::Mutation {
                key: key.to_vec(),
                op: Some(Op::Put(value.as_bytes().to_vec())),
                pessimistic: false,
            }],
            commit_ts: 0,
            min_commit_ts: 0,
            secondaries: Vec::new(),
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_clean_up_after_a_dead_coordinator() {
    let (cluster, kv) = start().await;
    let client = TxnClient::new(kv.clone(), TxnOptions::default());
    let (primary, secondary) = (b"\x01sql/test-dead/p".to_vec(), b"dead/s".to_vec());
    let mut setup = client.begin().await.unwrap();
    setup.put(primary.clone(), b"old".to_vec());
    setup.put(secondary.clone(), b"old".to_vec());
    setup.commit().await.unwrap();

    // A coordinator prewrites both keys, then dies before the commit point:
    // once its locks expire, a reader rolls them back.
    let start_ts = client.timestamp().await.unwrap();
    for key in [&primary, &secondary] {
        let result = kv
            .txn(prewrite(start_ts, &primary, key, "new", 300))
            .await
            .unwrap();
        assert_eq!(result.error, None);
    }
    let txn = client.begin().await.unwrap();
    assert_eq!(txn.get(&secondary).await.unwrap(), Some(b"old".to_vec()));
    assert_eq!(txn.get(&primary).await.unwrap(), Some(b"old".to_vec()));

    // Another dies just after its commit point: a reader rolls the
    // secondary forward at the primary's commit timestamp.
    let start_ts = client.timestamp().await.unwrap();
    for key in [&primary, &secondary] {
        let result = kv
            .txn(prewrite(start_ts, &primary, key, "newer", 60_000))
            .await
            .unwrap();
        assert_eq!(result.error, None);
    }
    let commit_ts = client.timestamp().await.unwrap();
    let commit = TxnCommand {
        kind: Some(Kind::Commit(pb::Commit {
            start_ts: start_ts.0,
            commit_ts: commit_ts.0,
            keys: vec![primary.clone()],
        })),
    };
    assert_eq!(kv.txn(commit).await.unwrap().error, None);
    let txn = client.begin().await.unwrap();
    assert_eq!(txn.get(&secondary).await.unwrap(), Some(b"newer".to_vec()));
    assert_eq!(txn.get(&primary).await.unwrap(), Some(b"newer".to_vec()));
    let now = client.timestamp().await.unwrap();
    assert!(
        kv.mvcc_get(&secondary, now, false).await.unwrap().is_ok(),
        "the lock is gone"
    );
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_conflicts_name_the_winner_and_two_phase_commit_on_one_range() {
    let (cluster, kv) = start().await;
    let options = TxnOptions {
        one_phase_commit: false,
        ..TxnOptions::default()
    };
    let client = TxnClient::new(kv, options);
    let mut first = client.begin().await.unwrap();
    let mut second = client.begin().await.unwrap();
    first.put(b"conflict/k".to_vec(), b"1".to_vec());
    second.put(b"conflict/k".to_vec(), b"2".to_vec());
    let first_start = first.start_ts();
    let committed = first.commit().await.unwrap().unwrap();
    match second.commit().await {
        Err(TxnError::WriteConflict {
            conflict_start_ts,
            conflict_commit_ts,
            ..
        }) => assert_eq!(
            (conflict_start_ts, conflict_commit_ts),
            (first_start, committed)
        ),
        other => panic!("expected a write conflict, got {other:?}"),
    }
    let txn = client.begin().await.unwrap();
    assert_eq!(txn.get(b"conflict/k").await.unwrap(), Some(b"1".to_vec()));
    let rows = txn.scan(b"conflict/", b"conflict0", 0).await.unwrap();
    assert_eq!(rows, vec![(b"conflict/k".to_vec(), b"1".to_vec())]);
    drop(cluster);
}

/// Every lock in the keyspace, range after range.
async fn all_locks(kv: &KvClient) -> Vec<pb::LockInfo> {
    let (mut locks, mut cursor) = (Vec::new(), Vec::new());
    loop {
        let (page, resume) = kv
            .scan_locks(&cursor, b"", Timestamp::MAX, 1000)
            .await
            .unwrap();
        locks.extend(page);
        match resume {
            Some(next) => cursor = next,
            None => return locks,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_phase_commit_commits_its_secondaries_after_answering() {
    let (cluster, kv) = start().await;
    let client = TxnClient::new(kv.clone(), TxnOptions::default());
    // Two ranges: the primary (the first key) and two secondaries in the
    // meta range, two secondaries in the user range. No reader visits them
    // afterwards, so only phase two can commit the secondaries.
    let mut txn = client.begin().await.unwrap();
    for i in 0..5 {
        txn.put(account(i), b"7".to_vec());
    }
    txn.commit().await.unwrap().expect("a commit timestamp");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let locks = all_locks(&kv).await;
        if locks.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "locks left after the commit: {locks:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collection_stops_at_live_transactions_and_refuses_old_snapshots() {
    let (cluster, kv) = start().await;
    let client = TxnClient::new(kv.clone(), TxnOptions::default());
    let key = b"gc/hot".to_vec();
    let mut before_last = Timestamp::ZERO;
    for i in 0..5 {
        before_last = client.timestamp().await.unwrap();
        let mut txn = client.begin().await.unwrap();
        txn.put(key.clone(), format!("v{i}").into_bytes());
        txn.commit().await.unwrap();
    }
    // A live transaction (long TTL) holds a lock: the pass must stop below
    // its start.
    let live = client.timestamp().await.unwrap();
    let result = kv
        .txn(prewrite(live, b"gc/live", b"gc/live", "x", 600_000))
        .await
        .unwrap();
    assert_eq!(result.error, None);
    // The pass's safe point is a whole millisecond: make it pass `live`'s.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let report = client.collect_garbage(Duration::ZERO).await.unwrap();
    assert_eq!(report.safe_point, live);
    assert!(report.removed >= 4, "{report:?}");

    // Reads at or above the safe point see the newest version; below it,
    // the snapshot is refused rather than answered from collected history.
    let txn = client.begin().await.unwrap();
    assert_eq!(txn.get(&key).await.unwrap(), Some(b"v4".to_vec()));
    match kv.mvcc_get(&key, before_last, false).await.unwrap() {
        Err(pb::TxnError {
            kind: Some(pb::txn_error::Kind::TooOld(too_old)),
        }) => assert_eq!(too_old.threshold, live.0),
        other => panic!("expected a too-old snapshot, got {other:?}"),
    }
    drop(cluster);
}

/// A garbage collection pass that finds nothing to remove costs a range
/// one log entry (the one that raises its threshold), not one per batch of
/// write records: the leader answers the other batches from its applied
/// state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_with_nothing_to_collect_leaves_the_log_alone() {
    let (cluster, kv) = start().await;
    let client = TxnClient::new(kv.clone(), TxnOptions::default());
    let mut txn = client.begin().await.unwrap();
    for i in 0..2500 {
        txn.put(format!("gc2/{i:05}").into_bytes(), b"v".to_vec());
    }
    txn.commit().await.unwrap();
    let first = client.collect_garbage(Duration::ZERO).await.unwrap();
    assert!(first.examined >= 2500, "{first:?}");
    let applied = |kv: KvClient, addresses: Vec<String>| async move {
        let mut applied = std::collections::BTreeMap::new();
        for address in &addresses {
            for replica in kv
                .node_replicas(address, Duration::from_secs(5))
                .await
                .unwrap()
            {
                let range = replica.descriptor.map_or(0, |d| d.range_id);
                let index = applied.entry(range).or_insert(0);
                *index = replica.applied_index.max(*index);
            }
        }
        applied
    };
    let before = applied(kv.clone(), cluster.addresses()).await;
    let second = client.collect_garbage(Duration::ZERO).await.unwrap();
    assert!(second.examined >= 2500 && second.removed == 0, "{second:?}");
    let after = applied(kv.clone(), cluster.addresses()).await;
    // Range 2 holds every user key: three batches of 1,000 records.
    let grown = after[&2] - before[&2];
    assert!(
        grown <= 1,
        "the pass appended {grown} entries to range 2's log ({second:?})"
    );
    drop(cluster);
}

/// The balances of the four accounts, read in one statement.
async fn balances(client: &tokio_postgres::Client) -> Vec<i32> {
    client
        .query("SELECT bal FROM acct ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// A transfer of 10 from account 1 to account 4, in two ranges.
const TRANSFER: &str = "BEGIN;
    UPDATE acct SET bal = bal - 10 WHERE id = 1;
    UPDATE acct SET bal = bal + 10 WHERE id = 4;
    COMMIT";

/// A cluster with table acct: accounts 1 to 4 holding 100 each, split
/// before account 3; and a client of node 1.
async fn four_accounts_in_two_ranges() -> (Cluster, tokio_postgres::Client) {
    four_accounts_in_two_ranges_with(&[]).await
}

/// `four_accounts_in_two_ranges` on nodes started with `extra` flags.
async fn four_accounts_in_two_ranges_with(extra: &[&str]) -> (Cluster, tokio_postgres::Client) {
    let cluster = Cluster::start_with(3, extra).await.expect("cluster");
    let reader = tessera_e2e::sql_client(&cluster.sql_addresses()[0]).await;
    reader
        .batch_execute(
            "CREATE TABLE acct (id INT PRIMARY KEY, bal INT NOT NULL);
             INSERT INTO acct VALUES (1, 100), (2, 100), (3, 100), (4, 100);
             ALTER TABLE acct SPLIT AT VALUES (3)",
        )
        .await
        .unwrap();
    (cluster, reader)
}

/// Kills the gateway coordinating a two-range SQL transaction (with a
/// failpoint that aborts the process, as kill -9 would) between its
/// prewrites and its commit point, then again just after the commit
/// point, with asynchronous commits off (the primary's commit is the
/// commit point). Readers on another node see each transaction all or
/// nothing (nothing, then everything), the locks it left are resolved, and
/// the restarted gateway sees the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_mid_commit_leaves_all_or_nothing() {
    let config = tempfile::NamedTempFile::new().expect("config file");
    std::fs::write(config.path(), "[txn]\nasync_commit = false\n").expect("write the config");
    let path = config.path().to_str().expect("utf-8 path");
    let expected = [
        (
            tessera_txn::failpoint::AFTER_PREWRITE,
            vec![100, 100, 100, 100],
        ),
        (
            tessera_txn::failpoint::AFTER_PRIMARY_COMMIT,
            vec![90, 100, 100, 110],
        ),
    ];
    kill_gateway_mid_commit(&["--config", path], &expected).await;
}

/// An asynchronous commit (the default) is committed once its prewrites
/// are all in place: a gateway killed right after them, before it answers
/// or commits a single lock, leaves a transaction that readers see whole,
/// once the locks expire and their keys are checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_after_async_prewrites_leaves_it_committed() {
    let expected = [(
        tessera_txn::failpoint::AFTER_PREWRITE,
        vec![90, 100, 100, 110],
    )];
    kill_gateway_mid_commit(&[], &expected).await;
}

/// Runs a transfer through node 3 once per failpoint of `expected`, each
/// killing node 3 there; checks the balances readers see after each, that
/// no lock is left, and that node 3, restarted, agrees and commits again.
async fn kill_gateway_mid_commit(extra: &[&str], expected: &[(&str, Vec<i32>)]) {
    let (mut cluster, reader) = four_accounts_in_two_ranges_with(extra).await;
    let sql_addresses = cluster.sql_addresses();
    for &(failpoint, ref after) in expected {
        let gateway = &mut cluster.nodes[2];
        gateway.env = vec![("TESSERA_FAILPOINTS".into(), failpoint.into())];
        gateway.restart();
        let client = tessera_e2e::sql_client(&sql_addresses[2]).await;
        let err = client.batch_execute(TRANSFER).await.unwrap_err();
        assert!(
            err.is_closed() || err.code().is_none(),
            "{failpoint}: {err}"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !cluster.nodes[2].exited() {
            assert!(
                std::time::Instant::now() < deadline,
                "{failpoint}: still running"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // All or nothing, once the dead coordinator's locks are resolved
        // (rolled back past their TTL, or rolled forward from the primary).
        assert_eq!(&balances(&reader).await, after, "{failpoint}");
        assert!(
            cluster.nodes[2]
                .log()
                .contains(&format!("failpoint {failpoint} reached")),
            "{failpoint}: the gateway died elsewhere"
        );
        let addresses = cluster.addresses();
        let left = tessera_e2e::locks_left(&addresses, Duration::from_secs(10));
        assert_eq!(left.await.unwrap(), 0, "{failpoint}: locks left");
    }
    // The gateway comes back without failpoints and agrees.
    let gateway = &mut cluster.nodes[2];
    gateway.env.clear();
    gateway.restart();
    let client = tessera_e2e::sql_client(&sql_addresses[2]).await;
    assert_eq!(balances(&client).await, vec![90, 100, 100, 110]);
    client.batch_execute(TRANSFER).await.unwrap();
    assert_eq!(balances(&reader).await, vec![80, 100, 100, 120]);
}

/// The answer to a transaction's commit point is lost after the commit
/// applied (a failpoint on the gateway, as if the node that applied it died
/// before answering): the gateway finds out that it applied and answers the
/// client as committed, for a one-phase commit and a two-phase one. When
/// the commit's request is lost instead, the gateway makes sure it never
/// applies, releases the transaction's locks, and says that the cluster did
/// not answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_answer_is_lost_is_settled() {
    let (mut cluster, reader) = four_accounts_in_two_ranges().await;
    let one_range = "UPDATE acct SET bal = bal + 1 WHERE id = 1";
    let client = gateway_with(&mut cluster, tessera_txn::failpoint::COMMIT_ANSWER_LOST).await;
    client.batch_execute(one_range).await.unwrap();
    client.batch_execute(TRANSFER).await.unwrap();
    assert_eq!(balances(&reader).await, vec![91, 100, 100, 110]);

    let client = gateway_with(&mut cluster, tessera_txn::failpoint::COMMIT_REQUEST_LOST).await;
    for statement in [one_range, TRANSFER] {
        let err = client.batch_execute(statement).await.unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some("08006"), "{err:?}");
    }
    assert_eq!(balances(&reader).await, vec![91, 100, 100, 110]);
    // Nothing of them is left locked: a writer elsewhere goes at once.
    let addresses = cluster.addresses();
    let left = tessera_e2e::locks_left(&addresses, Duration::from_secs(1));
    assert_eq!(left.await.unwrap(), 0, "locks left");
    reader.batch_execute(TRANSFER).await.unwrap();
    assert_eq!(balances(&reader).await, vec![81, 100, 100, 120]);
}

/// Restarts node 3 with `failpoint` armed; a client of it.
async fn gateway_with(cluster: &mut Cluster, failpoint: &str) -> tokio_postgres::Client {
    let gateway = &mut cluster.nodes[2];
    gateway.env = vec![("TESSERA_FAILPOINTS".into(), failpoint.into())];
    gateway.restart();
    tessera_e2e::sql_client(&cluster.sql_addresses()[2]).await
}

/// SQL transfers through nodes 2 and 3 keep running while node 1 (which
/// leads every range after bootstrap, the meta range's oracle and deadlock
/// detector among them) is killed and restarted: no transfer fails with
/// anything but a retryable error, and the total holds. Moving a lease to
/// the dead node fails clearly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_transfers_survive_a_node_kill() {
    let (mut cluster, _) = start().await;
    let sql_addresses = cluster.sql_addresses();
    let setup = tessera_e2e::sql_client(&sql_addresses[1]).await;
    setup
        .batch_execute(
            "CREATE TABLE acct (id INT PRIMARY KEY, bal INT NOT NULL);
             INSERT INTO acct SELECT g, 100 FROM generate_series(1, 40) g;
             ALTER TABLE acct SPLIT AT VALUES (21)",
        )
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..4 {
        let client = tessera_e2e::sql_client(&sql_addresses[1 + w % 2]).await;
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut done = 0;
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                i += 7;
                let (from, to) = (1 + i % 40, 1 + (i * 13 + 5) % 40);
                let transfer = format!(
                    "BEGIN; UPDATE acct SET bal = bal - 1 WHERE id = {from};
                     UPDATE acct SET bal = bal + 1 WHERE id = {to}; COMMIT"
                );
                match client.batch_execute(&transfer).await {
                    Ok(()) => done += 1,
                    Err(err) => {
                        let code = err.code().map(|c| c.code().to_string());
                        assert!(
                            matches!(code.as_deref(), Some("40001" | "40P01")),
                            "transfer failed: {err:?}"
                        );
                        client.batch_execute("ROLLBACK").await.unwrap();
                    }
                }
            }
            done
        }));
    }
    let range: i64 = setup
        .query("SHOW RANGES FROM TABLE acct", &[])
        .await
        .unwrap()[1]
        .get("range_id");
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.nodes[0].kill();
    // The lease cannot move to the dead node: a clear error, after the
    // range's new leader has tried for a while.
    let sql = format!("ALTER RANGE {range} RELOCATE LEASE TO 1");
    let err = setup.simple_query(&sql).await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("22023"), "{err:?}");
    assert!(
        format!("{err:?}").contains("did not take the lease"),
        "{err:?}"
    );
    // SHOW NODES says which node is down.
    let live: Vec<(i64, bool)> = setup
        .query("SHOW NODES", &[])
        .await
        .unwrap()
        .iter()
        .map(|n| (n.get("node_id"), n.get("is_live")))
        .collect();
    assert_eq!(live, [(1, false), (2, true), (3, true)]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.nodes[0].restart();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let mut done = 0;
    for worker in workers {
        done += worker.await.unwrap();
    }
    assert!(done > 0);
    let total: i64 = setup
        .query_one("SELECT sum(bal)::INT8 FROM acct", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, 4000, "after {done} transfers");
}

/// Many callers of one client ask for timestamps at once, some of them
/// giving up (dropped) while they wait or while they ask for the others:
/// every timestamp handed out is distinct, each caller's grow, and the
/// callers left are all served (the asking passes on past those dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_get_distinct_timestamps() {
    let (cluster, kv) = start().await;
    let client = TxnClient::new(kv, TxnOptions::default());
    let mut callers = Vec::new();
    for _ in 0..32 {
        let client = client.clone();
        callers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..25 {
                mine.push(client.timestamp().await.unwrap());
            }
            mine
        }));
    }
    for _ in 0..50 {
        let client = client.clone();
        let quitter = tokio::spawn(async move { client.timestamp().await });
        tokio::task::yield_now().await;
        quitter.abort();
    }
    let mut all = Vec::new();
    for caller in callers {
        let mine = tokio::time::timeout(Duration::from_secs(30), caller)
            .await
            .expect("every caller is served")
            .unwrap();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
        all.extend(mine);
    }
    let handed_out = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), handed_out, "a timestamp was handed out twice");
    let later = tokio::time::timeout(Duration::from_secs(10), client.timestamp())
        .await
        .expect("the client still answers")
        .unwrap();
    assert!(later > *all.last().unwrap());
    drop(cluster);
}
