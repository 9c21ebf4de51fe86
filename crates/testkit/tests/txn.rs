//! Transactional commands through Raft on in-process clusters: outcomes
//! reach the proposer, every replica applies the same effects, snapshots
//! carry the MVCC families, and one-phase commits respect the reads served.

use std::time::Duration;

use tessera_proto::txn::{
    self as pb, mutation::Op, txn_command::Kind, txn_error, TxnCommand, TxnResult,
};
use tessera_storage::Cf;
use tessera_testkit::{Cluster, ClusterOptions, EngineKind, USER_RANGE};
use tessera_types::Timestamp;

fn key(i: usize) -> Vec<u8> {
    format!("\x02key/{i:06}").into_bytes()
}

fn prewrite(start_ts: u64, commit_ts: u64, puts: &[(Vec<u8>, &str)]) -> TxnCommand {
    TxnCommand {
        kind: Some(Kind::Prewrite(pb::Prewrite {
            start_ts,
            primary: puts[0].0.clone(),
            ttl_ms: 3000,
            for_update_ts: 0,
            mutations: puts
                .iter()
                .map(|(key, value)| pb::Mutation {
                    key: key.clone(),
                    op: Some(Op::Put(value.as_bytes().to_vec())),
                    pessimistic: false,
                })
                .collect(),
            commit_ts,
            min_commit_ts: 0,
            secondaries: Vec::new(),
        })),
    }
}

fn commit(start_ts: u64, commit_ts: u64, keys: Vec<Vec<u8>>) -> TxnCommand {
    TxnCommand {
        kind: Some(Kind::Commit(pb::Commit {
            start_ts,
            commit_ts,
            keys,
        })),
    }
}

/// Runs a command at the user range's leader, retrying routing errors.
async fn run(cluster: &Cluster, command: TxnCommand) -> TxnResult {
    for _ in 0..100 {
        let leader = cluster.leader(USER_RANGE).await;
        match cluster.store(leader).txn(command.clone()).await {
            Ok(result) => return result,
            Err(err) if err.is_retryable() => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(err) => panic!("{err}"),
        }
    }
    panic!("no leader took the command");
}

/// Every entry of one MVCC family on a node, read directly.
fn family(cluster: &Cluster, node: u64, cf: Cf) -> Vec<(Vec<u8>, Vec<u8>)> {
    cluster
        .engine(node)
        .scan(cf, b"", b"")
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phase_commit_replicates_and_reports_conflicts() {
    let cluster = Cluster::start(3, ClusterOptions::default()).await;
    let keys = vec![key(1), key(2)];
    let result = run(&cluster, prewrite(10, 0, &[(key(1), "a"), (key(2), "b")])).await;
    assert_eq!(result.error, None);

    // A second transaction meets the locks; the outcome names the holder.
    let result = run(&cluster, prewrite(11, 0, &[(key(2), "c")])).await;
    match result.error.and_then(|e| e.kind) {
        Some(txn_error::Kind::Locked(lock)) => {
            assert_eq!(
                (lock.key, lock.primary, lock.start_ts),
                (key(2), key(1), 10)
            );
        }
        other => panic!("expected a lock, got {other:?}"),
    }

    // A reader above the start must resolve; below it sees nothing.
    let leader = cluster.leader(USER_RANGE).await;
    let store = cluster.store(leader);
    assert!(store
        .mvcc_get(key(1), Timestamp(20), false)
        .await
        .unwrap()
        .is_err());
    assert_eq!(
        store
            .mvcc_get(key(1), Timestamp(5), false)
            .await
            .unwrap()
            .unwrap(),
        None
    );

    assert_eq!(
        run(&cluster, commit(10, 12, keys.clone())).await.error,
        None
    );
    assert_eq!(
        store
            .mvcc_get(key(2), Timestamp(20), false)
            .await
            .unwrap()
            .unwrap(),
        Some(b"b".to_vec())
    );
    let (kvs, resume) = store
        .mvcc_scan(key(0), key(9), Timestamp(12), 10, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kvs, vec![(key(1), b"a".to_vec()), (key(2), b"b".to_vec())]);
    assert_eq!(resume, None);

    // Transaction 11 started before 10 committed: first committer wins.
    let result = run(&cluster, prewrite(11, 0, &[(key(2), "c")])).await;
    match result.error.and_then(|e| e.kind) {
        Some(txn_error::Kind::Conflict(conflict)) => {
            assert_eq!(
                (conflict.conflict_start_ts, conflict.conflict_commit_ts),
                (10, 12)
            );
        }
        other => panic!("expected a write conflict, got {other:?}"),
    }

    // Every replica holds the same MVCC data.
    cluster
        .wait_applied(USER_RANGE, Duration::from_secs(10))
        .await;
    for cf in [Cf::Lock, Cf::Write, Cf::Default] {
        let leader_data = family(&cluster, leader, cf);
        for id in cluster.node_ids() {
            assert_eq!(family(&cluster, id, cf), leader_data, "node {id}, {cf:?}");
        }
    }
    assert!(family(&cluster, leader, Cf::Lock).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_phase_commit_waits_for_a_timestamp_and_commits_above_reads() {
    let cluster = Cluster::start(3, ClusterOptions::default()).await;
    let leader = cluster.leader(USER_RANGE).await;
    let store = cluster.store(leader);
    // A new leader does not know what earlier leaders served.
    let err = store
        .txn(prewrite(100, 101, &[(key(1), "x")]))
        .await
        .unwrap_err();
    // A read at 500 was served: a one-phase commit at 101 must land above.
    observe_then_read(&store, err, 500).await;
    let result = store
        .txn(prewrite(100, 101, &[(key(1), "x")]))
        .await
        .unwrap();
    assert_eq!(result.error, None);
    assert!(result.commit_ts > 500, "committed at {}", result.commit_ts);
    assert_eq!(
        store
            .mvcc_get(key(1), Timestamp(500), false)
            .await
            .unwrap()
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .mvcc_get(key(1), Timestamp(result.commit_ts), false)
            .await
            .unwrap()
            .unwrap(),
        Some(b"x".to_vec())
    );
}

/// Gives a leader new to its term the oracle's timestamp (100) that its
/// first commit above the reads asked for (`refused`: its answer, which
/// must be `NeedTimestamp`), then has it serve a read of key 1 at `read_at`.
async fn observe_then_read(
    store: &tessera_raft::StoreHandle,
    refused: tessera_raft::Error,
    read_at: u64,
) {
    let tessera_raft::Error::NeedTimestamp { term, .. } = refused else {
        panic!("expected NeedTimestamp, got {refused}");
    };
    store
        .observe_timestamp(key(1), Timestamp(100), term)
        .await
        .unwrap();
    store
        .mvcc_get(key(1), Timestamp(read_at), false)
        .await
        .unwrap()
        .unwrap();
}

/// An asynchronous commit's prewrite is decided by its locks' minimum
/// commit timestamps, so each leader raises its own above every read it
/// has served (after a timestamp from the oracle, when it is new to its
/// term): the transaction then commits above them. A read below the
/// minimum passes the lock, as the commit cannot land below it; a read at
/// or above meets it. Every replica writes the same lock, and the primary's
/// lists the transaction's other keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_commit_prewrites_land_above_reads() {
    let cluster = Cluster::start(3, ClusterOptions::default()).await;
    let leader = cluster.leader(USER_RANGE).await;
    let store = cluster.store(leader);
    let mut command = prewrite(100, 0, &[(key(1), "x")]);
    if let Some(Kind::Prewrite(p)) = &mut command.kind {
        p.min_commit_ts = 101;
        p.secondaries = vec![key(7), key(8)];
    }
    let err = store.txn(command.clone()).await.unwrap_err();
    observe_then_read(&store, err, 500).await;
    let result = store.txn(command.clone()).await.unwrap();
    assert_eq!(result.error, None);
    assert!(
        result.min_commit_ts > 500,
        "minimum commit timestamp {}",
        result.min_commit_ts
    );
    // Below the minimum, the read passes; at it, the lock stops it.
    let below = store.mvcc_get(key(1), Timestamp(500), false).await.unwrap();
    assert_eq!(below.unwrap(), None);
    let at = store
        .mvcc_get(key(1), Timestamp(result.min_commit_ts), false)
        .await
        .unwrap();
    assert!(
        matches!(at, Err(ref e) if matches!(e.kind, Some(txn_error::Kind::Locked(_)))),
        "{at:?}"
    );
    // A retry answers with the lock's minimum, unchanged.
    store
        .mvcc_get(key(1), Timestamp(900), false)
        .await
        .unwrap()
        .ok();
    let again = store.txn(command).await.unwrap();
    assert_eq!(again.min_commit_ts, result.min_commit_ts);
    cluster
        .wait_applied(USER_RANGE, Duration::from_secs(10))
        .await;
    for node in cluster.node_ids() {
        let locks = family(&cluster, node, Cf::Lock);
        assert_eq!(locks.len(), 1, "node {node}");
        let lock = tessera_storage::mvcc::Lock::decode(&locks[0].1).unwrap();
        assert_eq!(
            lock.min_commit_ts,
            Timestamp(result.min_commit_ts),
            "node {node}"
        );
        assert_eq!(lock.secondaries, vec![key(7), key(8)], "node {node}");
    }
}

/// Runs a one-phase commit at the user range's leader, giving a new leader
/// the timestamp it asks for first.
async fn one_phase(cluster: &Cluster, command: TxnCommand, start_ts: u64) -> TxnResult {
    for _ in 0..100 {
        let store = cluster.store(cluster.leader(USER_RANGE).await);
        match store.txn(command.clone()).await {
            Ok(result) => return result,
            Err(tessera_raft::Error::NeedTimestamp { term, .. }) => {
                let observed = store
                    .observe_timestamp(key(1), Timestamp(start_ts), term)
                    .await;
                if let Err(err) = observed {
                    assert!(err.is_retryable(), "{err}");
                }
            }
            Err(err) if err.is_retryable() => {}
            Err(err) => panic!("{err}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no leader took the one-phase commit");
}

/// A coordinator whose one-phase commit applied, but whose answer was lost
/// with the leader, sends it again to the next leader: the retry changes
/// nothing and answers as the first would have, at the timestamp it
/// committed at, although reads since would push a new commit above them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_one_phase_commit_answers_as_the_first_did() {
    let mut cluster = Cluster::start(3, ClusterOptions::default()).await;
    let command = prewrite(100, 101, &[(key(1), "x"), (key(2), "y")]);
    let first = one_phase(&cluster, command.clone(), 100).await;
    assert_eq!(first.error, None);
    let committed_at = first.commit_ts;
    cluster
        .wait_applied(USER_RANGE, Duration::from_secs(10))
        .await;
    let old_leader = cluster.leader(USER_RANGE).await;
    cluster.stop_node(old_leader);
    let store = cluster.store(cluster.leader(USER_RANGE).await);
    // Another transaction writes a key since, and a read is served far
    // above: neither may change the retry's answer.
    let later = one_phase(&cluster, prewrite(200, 201, &[(key(2), "z")]), 200).await;
    assert_eq!(later.error, None);
    store
        .mvcc_get(key(1), Timestamp(5000), false)
        .await
        .unwrap()
        .unwrap();
    let retry = one_phase(&cluster, command, 100).await;
    assert_eq!(retry.error, None);
    assert_eq!(retry.commit_ts, committed_at);
    let versions: Vec<Vec<u8>> = family(&cluster, cluster.leader(USER_RANGE).await, Cf::Write)
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(versions.len(), 3, "one version of key 1, two of key 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_carry_locks_versions_and_values() {
    let mut options = ClusterOptions {
        engine: EngineKind::Rocks,
        ..Default::default()
    };
    options.raft.log_compact_threshold = 50;
    let cluster = Cluster::start(3, options).await;
    let leader = cluster.leader(USER_RANGE).await;
    let lagging = cluster
        .node_ids()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    cluster
        .wait_applied(USER_RANGE, Duration::from_secs(10))
        .await;
    cluster.isolate(lagging);
    let long = "v".repeat(1000);
    for n in 0..150u64 {
        let ts = 10 + 3 * n;
        let k = key(n as usize % 20);
        let result = run(&cluster, prewrite(ts, 0, &[(k.clone(), &long)])).await;
        assert_eq!(result.error, None);
        if n < 149 {
            assert_eq!(run(&cluster, commit(ts, ts + 1, vec![k])).await.error, None);
        }
    }
    cluster.heal();
    cluster
        .wait_applied(USER_RANGE, Duration::from_secs(20))
        .await;
    let leader = cluster.leader(USER_RANGE).await;
    for cf in [Cf::Lock, Cf::Write, Cf::Default] {
        let expected = family(&cluster, leader, cf);
        assert!(!expected.is_empty(), "{cf:?}");
        assert_eq!(family(&cluster, lagging, cf), expected, "{cf:?}");
    }
    let info = cluster.replica(lagging, USER_RANGE).await.unwrap();
    assert!(
        info.first_index > 2,
        "the lagging replica was not sent a snapshot"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oracle_never_goes_backwards_across_leaders() {
    use tessera_kv::tso::TsoService;
    use tessera_types::keys::META_RANGE_ID;

    let cluster = Cluster::start(3, ClusterOptions::default()).await;
    let mut last = Timestamp::ZERO;
    for round in 0..3 {
        let mut leader = cluster.leader(META_RANGE_ID).await;
        let mut tso = TsoService::new(cluster.store(leader));
        for _ in 0..20 {
            let mut attempts = 0;
            let (first, count) = loop {
                // A read on a deposed leader fails once it steps down; the
                // timeout keeps a stuck request from hanging the test.
                let batch = tokio::time::timeout(Duration::from_secs(5), tso.timestamps(7)).await;
                let Ok(batch) = batch else {
                    panic!("round {round}: the oracle on node {leader} did not answer")
                };
                match batch {
                    Ok(batch) => break batch,
                    Err(err) if err.is_retryable() && attempts < 500 => {
                        // The leadership moved: ask the new leader's oracle.
                        attempts += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        leader = cluster.leader(META_RANGE_ID).await;
                        tso = TsoService::new(cluster.store(leader));
                    }
                    Err(err) => panic!("round {round}: {err}"),
                }
            };
            assert_eq!(count, 7);
            assert!(first > last, "round {round}: {first} after {last}");
            last = Timestamp(first.0 + u64::from(count) - 1);
        }
        // A follower's oracle refuses: only the leader hands out time.
        let follower = cluster
            .node_ids()
            .into_iter()
            .find(|id| *id != leader)
            .unwrap();
        let refused = tokio::time::timeout(
            Duration::from_secs(5),
            TsoService::new(cluster.store(follower)).timestamps(1),
        )
        .await;
        assert!(matches!(refused, Ok(Err(_))), "round {round}: {refused:?}");
        // Move the leadership: cut the leader off until the others elect a
        // new one, then let it back.
        cluster.isolate(leader);
        let others: Vec<u64> = cluster
            .node_ids()
            .into_iter()
            .filter(|id| *id != leader)
            .collect();
        cluster
            .wait_leader_among(META_RANGE_ID, &others, Duration::from_secs(10))
            .await;
        cluster.heal();
    }
}

fn lock(start_ts: u64, for_update_ts: u64, keys: Vec<Vec<u8>>) -> TxnCommand {
    TxnCommand {
        kind: Some(Kind::AcquirePessimisticLocks(pb::AcquirePessimisticLocks {
            start_ts,
            for_update_ts,
            primary: keys[0].clone(),
            ttl_ms: 3000,
            keys,
            read: false,
        })),
    }
}

/// A request for pessimistic locks that reads the keys' values too.
fn lock_read(start_ts: u64, for_update_ts: u64, keys: Vec<Vec<u8>>) -> TxnCommand {
    let mut command = lock(start_ts, for_update_ts, keys);
    if let Some(Kind::AcquirePessimisticLocks(request)) = &mut command.kind {
        request.read = true;
    }
    command
}

/// The values a locking read answered (None: absent).
fn values_read(result: &TxnResult) -> Vec<Option<&str>> {
    result
        .values
        .iter()
        .map(|v| v.found.then(|| std::str::from_utf8(&v.value).unwrap()))
        .collect()
}

/// The holder named by a `Locked` outcome, or a panic.
fn holder(result: TxnResult) -> u64 {
    match result.error.and_then(|e| e.kind) {
        Some(txn_error::Kind::Locked(lock)) => lock.start_ts,
        other => panic!("expected a lock, got {other:?}"),
    }
}

/// `start_ts`'s pessimistic prewrite of `value` at `key`, which it locked
/// at `for_update_ts`.
fn pessimistic_prewrite(
    start_ts: u64,
    for_update_ts: u64,
    key: Vec<u8>,
    value: &str,
) -> TxnCommand {
    let mut command = prewrite(start_ts, 0, &[(key, value)]);
    if let Some(Kind::Prewrite(p)) = &mut command.kind {
        p.for_update_ts = for_update_ts;
        p.mutations[0].pessimistic = true;
    }
    command
}

/// The transaction holding `key`'s lock record on `node`, if any.
fn lock_holder(cluster: &Cluster, node: u64, key: &[u8]) -> Option<u64> {
    let engine = cluster.engine(node);
    let snapshot = engine.snapshot();
    tessera_storage::mvcc::MvccReader::new(snapshot.as_ref())
        .lock(key)
        .unwrap()
        .map(|lock| lock.start_ts.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_hold_pessimistic_locks_in_memory() {
    let (cluster, leader) = applied_on_three_nodes(prewrite(5, 0, &[(key(0), "a")])).await;
    let store = cluster.store(leader);
    let before = leader_commit_index(&store).await;

    // Taken without a log entry; another transaction's request for the key
    // meets it, and a status check through it finds its transaction alive.
    assert_eq!(
        store.txn(lock(10, 10, vec![key(1)])).await.unwrap().error,
        None
    );
    assert_eq!(
        holder(store.txn(lock(20, 20, vec![key(1)])).await.unwrap()),
        10
    );
    let alive = store
        .txn(check_status(key(1), 10, Timestamp::new(1_000, 0)))
        .await
        .unwrap();
    assert_eq!(alive.state, pb::TxnState::Locked as i32);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        leader_commit_index(&store).await,
        before,
        "a lock was logged"
    );
    for node in 1..=3 {
        assert_eq!(lock_holder(&cluster, node, &key(1)), None);
    }

    // Its transaction's prewrite, evaluated over it, replaces it.
    assert_eq!(
        store
            .txn(pessimistic_prewrite(10, 10, key(1), "b"))
            .await
            .unwrap()
            .error,
        None
    );
    assert_eq!(
        logged_once_applied(&cluster, leader, before).await,
        ["evaluated"]
    );

    // Another transaction's prewrite meets a held lock: the lock goes into
    // the log first, where the prewrite, proposed as the command, finds it
    // on every replica.
    let before = leader_commit_index(&store).await;
    assert_eq!(
        store.txn(lock(40, 40, vec![key(2)])).await.unwrap().error,
        None
    );
    let prewritten = store.txn(prewrite(50, 0, &[(key(2), "c")])).await.unwrap();
    assert_eq!(holder(prewritten), 40);
    assert_eq!(
        logged_once_applied(&cluster, leader, before).await,
        ["evaluated", "command"]
    );
    for node in 1..=3 {
        assert_eq!(
            lock_holder(&cluster, node, &key(1)),
            Some(10),
            "node {node}"
        );
        assert_eq!(
            lock_holder(&cluster, node, &key(2)),
            Some(40),
            "node {node}"
        );
    }

    // A request for a key that a prewrite in flight is about to lock is
    // answered once that applies, with its lock (every Raft message held
    // up 20 ms, so the prewrite stays in flight a while).
    cluster.router.set_delay(Duration::from_millis(20));
    let (prewritten, locked) = tokio::join!(store.txn(prewrite(60, 0, &[(key(3), "d")])), async {
        tokio::time::sleep(Duration::from_millis(2)).await;
        store.txn(lock(70, 70, vec![key(3)])).await
    });
    cluster.router.set_delay(Duration::ZERO);
    assert_eq!(prewritten.unwrap().error, None);
    assert_eq!(holder(locked.unwrap()), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_locks_go_into_the_log_before_the_leadership_moves() {
    let (cluster, leader) = applied_on_three_nodes(prewrite(5, 0, &[(key(0), "a")])).await;
    let store = cluster.store(leader);
    assert_eq!(
        store.txn(lock(10, 10, vec![key(1)])).await.unwrap().error,
        None
    );

    // Handing the leadership over logs the held lock, so the new leader
    // refuses it to others and the holder's prewrite finds it.
    let to = cluster
        .node_ids()
        .into_iter()
        .find(|&n| n != leader)
        .unwrap();
    store.transfer_leader(USER_RANGE, to).await.unwrap();
    let others: Vec<u64> = vec![to];
    cluster
        .wait_leader_among(USER_RANGE, &others, Duration::from_secs(10))
        .await;
    assert_eq!(holder(run(&cluster, lock(20, 20, vec![key(1)])).await), 10);
    assert_eq!(
        run(&cluster, pessimistic_prewrite(10, 10, key(1), "b"))
            .await
            .error,
        None
    );
    cluster
        .wait_applied(USER_RANGE, Duration::from_secs(10))
        .await;
    for node in 1..=3 {
        assert_eq!(
            lock_holder(&cluster, node, &key(1)),
            Some(10),
            "node {node}"
        );
    }
}

/// A three-node cluster that ran `first` and applied it on every
/// replica, with the user range's leader.
async fn applied_on_three_nodes(first: TxnCommand) -> (Cluster, u64) {
    let cluster = Cluster::start(3, ClusterOptions::default()).await;
    assert_eq!(run(&cluster, first).await.error, None);
    cluster
        .wait_applied(USER_RANGE, Duration::from_secs(10))
        .await;
    let leader = cluster.leader(USER_RANGE).await;
    (cluster, leader)
}

/// The user range's commit index on `store`, which must still lead it.
async fn leader_commit_index(store: &tessera_raft::StoreHandle) -> u64 {
    let replicas = store.replicas().await.unwrap();
    let info = replicas.iter().find(|r| r.range_id == USER_RANGE).unwrap();
    assert!(info.is_leader, "the leader moved");
    info.commit_index
}

/// As `logged_kinds`, once every replica of the user range has applied
/// what its leader has.
async fn logged_once_applied(cluster: &Cluster, node: u64, after: u64) -> Vec<&'static str> {
    cluster
        .wait_applied(USER_RANGE, Duration::from_secs(10))
        .await;
    logged_kinds(cluster, node, after)
}

/// What the user range's log holds after `after` on `node`: for each
/// entry, the kind of command it carries.
fn logged_kinds(cluster: &Cluster, node: u64, after: u64) -> Vec<&'static str> {
    use prost::Message as _;
    use tessera_proto::meta::{raft_command, RaftCommand};
    let engine = cluster.engine(node);
    let mut kinds = Vec::new();
    for index in after + 1.. {
        let key = tessera_raft::keys::log_entry(USER_RANGE, index);
        let Some(bytes) = engine.get(Cf::Raft, &key).unwrap() else {
            break;
        };
        let entry: raft::prelude::Entry = protobuf::Message::parse_from_bytes(&bytes).unwrap();
        let command = RaftCommand::decode(entry.get_data()).unwrap();
        kinds.push(match command.kind {
            Some(raft_command::Kind::EvaluatedTxn(_)) => "evaluated",
            Some(raft_command::Kind::Txn(_)) => "command",
            _ => "other",
        });
    }
    kinds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_propose_the_writes_they_evaluated() {
    let (cluster, leader) = applied_on_three_nodes(lock(5, 5, vec![key(0)])).await;
    let store = cluster.store(leader);
    let last_index = || leader_commit_index(&store);

    // Nothing in flight on their keys: a prewrite and its commit go into
    // the log as the writes the leader evaluated. (A lock request goes
    // nowhere near the log: see leaders_hold_pessimistic_locks_in_memory.)
    let before = last_index().await;
    let puts = [(key(1), "a"), (key(2), "b")];
    assert_eq!(run(&cluster, prewrite(10, 0, &puts)).await.error, None);
    assert_eq!(
        run(&cluster, commit(10, 11, vec![key(1), key(2)]))
            .await
            .error,
        None
    );
    assert_eq!(
        logged_once_applied(&cluster, leader, before).await,
        ["evaluated", "evaluated"]
    );

    // A prewrite of a key that another prewrite in flight is about to
    // lock: evaluated on the applied state it would pass, so it goes as
    // the command, and its apply finds the lock.
    cluster.router.set_delay(Duration::from_millis(20));
    let before = last_index().await;
    let (first, second) = tokio::join!(store.txn(prewrite(30, 0, &[(key(4), "c")])), async {
        tokio::time::sleep(Duration::from_millis(2)).await;
        store.txn(prewrite(40, 0, &[(key(4), "d")])).await
    });
    cluster.router.set_delay(Duration::ZERO);
    assert_eq!(first.unwrap().error, None);
    assert_eq!(holder(second.unwrap()), 30);
    assert_eq!(
        logged_once_applied(&cluster, leader, before).await,
        ["evaluated", "command"]
    );

    // Every replica wrote the same.
    for cf in [Cf::Lock, Cf::Write, Cf::Default] {
        let expected = family(&cluster, leader, cf);
        for node in 1..=3 {
            assert_eq!(
                family(&cluster, node, cf),
                expected,
                "{cf:?} on node {node}"
            );
        }
    }
    assert_eq!(family(&cluster, leader, Cf::Write).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_request_is_not_pipelined_while_a_split_is_in_flight() {
    const RIGHT: u64 = 50;
    let cluster = Cluster::start(3, ClusterOptions::default()).await;
    assert_eq!(run(&cluster, lock(5, 5, vec![key(0)])).await.error, None);
    let leader = cluster.leader(USER_RANGE).await;
    let store = cluster.store(leader);
    store.prepare_split(key(50), RIGHT).await.unwrap();

    // The split's last step in flight (every Raft message held up 20 ms),
    // a request for a key it moves to the new range: answered before the
    // split applied, it would be a lock that never lands, since its entry
    // applies after the split, in a range that no longer holds the key.
    cluster.router.set_delay(Duration::from_millis(20));
    let (split, locked) = tokio::join!(store.finish_split(key(50), RIGHT), async {
        tokio::time::sleep(Duration::from_millis(2)).await;
        store.txn(lock(10, 10, vec![key(60)])).await
    });
    cluster.router.set_delay(Duration::ZERO);
    split.unwrap();
    match locked {
        // Answered once it applied: the key was no longer in the range.
        Err(err) => assert!(err.is_retryable(), "{err}"),
        Ok(result) => {
            assert_eq!(result.error, None);
            let locks = family(&cluster, leader, Cf::Lock);
            assert!(
                locks.iter().any(|(k, _)| k.starts_with(&key(60))),
                "a lock request answered as taken left no lock"
            );
        }
    }
}

/// A status check of `start_ts`'s transaction through `primary`, at `now`.
fn check_status(primary: Vec<u8>, start_ts: u64, now: Timestamp) -> TxnCommand {
    TxnCommand {
        kind: Some(Kind::CheckTxnStatus(pb::CheckTxnStatus {
            primary,
            start_ts,
            now: now.0,
            rollback_if_missing: false,
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_checks_that_change_nothing_take_no_raft_round() {
    // Transaction 10 (at the epoch's first millisecond) locks key 1.
    let (cluster, leader) = applied_on_three_nodes(lock(10, 10, vec![key(1)])).await;
    let store = cluster.store(leader);
    let last_index = || leader_commit_index(&store);
    let before = last_index().await;

    // Alive within its TTL: answered from the leader's applied state.
    let alive = store
        .txn(check_status(key(1), 10, Timestamp::new(1_000, 0)))
        .await
        .unwrap();
    assert_eq!(alive.error, None);
    assert_eq!(alive.state, pb::TxnState::Locked as i32);
    assert_eq!(alive.ttl_ms, 3000);
    // A resolution with no lock of its transaction left to resolve.
    let resolve = TxnCommand {
        kind: Some(Kind::ResolveLocks(pb::ResolveLocks {
            start_ts: 99,
            commit_ts: 0,
            keys: vec![key(1)],
        })),
    };
    assert_eq!(store.txn(resolve).await.unwrap().error, None);
    assert_eq!(last_index().await, before, "no entry for either");

    // Expired: the check rolls the transaction back, through Raft, on
    // every replica.
    let expired = store
        .txn(check_status(key(1), 10, Timestamp::new(10_000, 0)))
        .await
        .unwrap();
    assert_eq!(expired.state, pb::TxnState::RolledBack as i32);
    assert!(last_index().await > before);
    cluster
        .wait_applied(USER_RANGE, Duration::from_secs(10))
        .await;
    for node in 1..=3 {
        assert!(family(&cluster, node, Cf::Lock).is_empty(), "node {node}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locking_reads_answer_the_values_of_the_keys_they_lock() {
    let (cluster, leader) = applied_on_three_nodes(prewrite(5, 0, &[(key(1), "a")])).await;
    assert_eq!(run(&cluster, commit(5, 6, vec![key(1)])).await.error, None);
    cluster
        .wait_applied(USER_RANGE, Duration::from_secs(10))
        .await;
    let store = cluster.store(leader);
    let before = leader_commit_index(&store).await;

    // Held in memory: the value of the key that has one, which is locked;
    // the key without one stays unlocked. No log entry.
    let read = store
        .txn(lock_read(10, 10, vec![key(1), key(2)]))
        .await
        .unwrap();
    assert_eq!(read.error, None);
    assert_eq!(values_read(&read), [Some("a"), None]);
    assert_eq!(
        holder(store.txn(lock(20, 20, vec![key(1)])).await.unwrap()),
        10
    );
    assert_eq!(
        store.txn(lock(20, 20, vec![key(2)])).await.unwrap().error,
        None
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        leader_commit_index(&store).await,
        before,
        "a lock was logged"
    );

    // Its transaction writes the key over the lock and commits; a later
    // locking read answers the new value.
    assert_eq!(
        store
            .txn(pessimistic_prewrite(10, 10, key(1), "b"))
            .await
            .unwrap()
            .error,
        None
    );
    assert_eq!(
        store.txn(commit(10, 11, vec![key(1)])).await.unwrap().error,
        None
    );
    // A read lock below a newer commit conflicts, as a lock does.
    let stale = store.txn(lock_read(8, 8, vec![key(1)])).await.unwrap();
    assert!(
        matches!(
            stale.error.and_then(|e| e.kind),
            Some(txn_error::Kind::Conflict(_))
        ),
        "a locking read below a newer commit did not conflict"
    );
    let read = store.txn(lock_read(30, 30, vec![key(1)])).await.unwrap();
    assert_eq!(read.error, None);
    assert_eq!(values_read(&read), [Some("b")]);
}
