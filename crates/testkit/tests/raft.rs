//! Multi-Raft acceptance tests on in-process clusters with fault injection.

use std::collections::BTreeSet;
use std::time::Duration;

use tessera_testkit::{Cluster, ClusterOptions, EngineKind, USER_RANGE};
use tessera_types::keys::META_RANGE_ID;

fn key(i: usize) -> Vec<u8> {
    format!("key/{i:06}").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elects_one_leader_per_range() {
    let cluster = Cluster::start(3, ClusterOptions::default()).await;
    for range in [META_RANGE_ID, USER_RANGE] {
        let leader = cluster.leader(range).await;
        // Every replica agrees on the leader once it has heard from it.
        let mut seen = BTreeSet::new();
        for _ in 0..200 {
            seen.clear();
            for id in cluster.node_ids() {
                seen.insert(cluster.replica(id, range).await.unwrap().leader_node);
            }
            if seen.len() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(seen, BTreeSet::from([Some(leader)]), "range {range}");
        let leaders = futures_count_leaders(&cluster, range).await;
        assert_eq!(leaders, 1, "range {range} has {leaders} leaders");
    }
}

async fn futures_count_leaders(cluster: &Cluster, range: u64) -> usize {
    let mut leaders = 0;
    for id in cluster.node_ids() {
        if cluster.replica(id, range).await.unwrap().is_leader {
            leaders += 1;
        }
    }
    leaders
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_replicated_writes() {
    let cluster = std::sync::Arc::new(Cluster::start(3, ClusterOptions::default()).await);
    cluster.leader(USER_RANGE).await;
    let writers = 50;
    let per_writer = 200;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let cluster = cluster.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let n = w * per_writer + i;
                cluster
                    .put(&key(n), format!("value-{n}").as_bytes())
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for n in (0..writers * per_writer).step_by(97) {
        assert_eq!(
            cluster.get(&key(n)).await.unwrap(),
            Some(format!("value-{n}").into_bytes())
        );
    }
    cluster
        .wait_applied(USER_RANGE, Duration::from_secs(10))
        .await;
    let expected: Vec<_> = (0..writers * per_writer)
        .map(|n| (key(n), format!("value-{n}").into_bytes()))
        .collect();
    for id in cluster.node_ids() {
        assert_eq!(cluster.local_user_data(id), expected, "node {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_leader_is_replaced_and_its_uncommitted_writes_vanish() {
    let cluster = Cluster::start(3, ClusterOptions::default()).await;
    for n in 0..100 {
        cluster.put(&key(n), b"before").await.unwrap();
    }
    let old = cluster.leader(USER_RANGE).await;
    cluster.isolate(old);

    // A write proposed to the isolated leader cannot commit.
    let old_store = cluster.store(old);
    let stranded = async move {
        old_store
            .write(vec![tessera_proto::meta::Mutation {
                op: Some(tessera_proto::meta::mutation::Op::Put(
                    tessera_proto::meta::Put {
                        key: b"stranded".to_vec(),
                        value: b"never".to_vec(),
                    },
                )),
            }])
            .await
    };
    let stranded = tokio::spawn(stranded);

    let others: Vec<u64> = cluster
        .node_ids()
        .into_iter()
        .filter(|id| *id != old)
        .collect();
    let new = cluster
        .wait_leader_among(USER_RANGE, &others, Duration::from_secs(10))
        .await;
    assert_ne!(new, old);
    for n in 100..300 {
        cluster.put_among(&key(n), b"after", &others).await.unwrap();
    }

    cluster.heal();
    // The stranded proposal is answered with an error (its entry was
    // overwritten), never success.
    let outcome = tokio::time::timeout(Duration::from_secs(10), stranded).await;
    if let Ok(Ok(result)) = outcome {
        assert!(
            result.is_err(),
            "a write proposed to a minority leader was acknowledged"
        );
    }
    cluster
        .wait_applied(USER_RANGE, Duration::from_secs(10))
        .await;
    let reference = cluster.local_user_data(new);
    assert_eq!(reference.len(), 300);
    for id in cluster.node_ids() {
        let data = cluster.local_user_data(id);
        assert!(
            !data.iter().any(|(k, _)| k == b"stranded"),
            "node {id} applied an uncommitted write"
        );
        assert_eq!(data, reference, "node {id} did not catch up");
    }
}

/// A leader serves reads under its lease without a ReadIndex round; once it
/// is cut off, a new leader may be elected only after that lease has run
/// out. No read served by the old leader may start after a write that the
/// new leader acknowledged and miss it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_leader_serves_no_stale_read() {
    let cluster = Cluster::start(3, ClusterOptions::default()).await;
    cluster.put(b"key", b"old").await.unwrap();
    let old = cluster.leader(USER_RANGE).await;
    let old_store = cluster.store(old);
    // Reads at the leader, which take and then use its lease.
    for _ in 0..20 {
        assert_eq!(
            old_store.get(b"key".to_vec()).await.unwrap(),
            Some(b"old".to_vec())
        );
    }
    cluster.isolate(old);
    let written_at = std::sync::Arc::new(std::sync::Mutex::new(None::<std::time::Instant>));
    let reader = {
        let written_at = written_at.clone();
        tokio::spawn(async move {
            let mut stale = Vec::new();
            let stop = std::time::Instant::now() + Duration::from_secs(3);
            while std::time::Instant::now() < stop {
                let began = std::time::Instant::now();
                let read =
                    tokio::time::timeout(Duration::from_millis(50), old_store.get(b"key".to_vec()))
                        .await;
                if let Ok(Ok(value)) = read {
                    let written = *written_at.lock().unwrap();
                    if written.is_some_and(|at| began > at) {
                        stale.push(value);
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            stale
        })
    };
    let others: Vec<u64> = cluster
        .node_ids()
        .into_iter()
        .filter(|id| *id != old)
        .collect();
    cluster
        .wait_leader_among(USER_RANGE, &others, Duration::from_secs(10))
        .await;
    cluster.put_among(b"key", b"new", &others).await.unwrap();
    *written_at.lock().unwrap() = Some(std::time::Instant::now());
    let stale = reader.await.unwrap();
    assert!(
        stale.is_empty(),
        "the cut-off leader served {} reads after the new leader's write: {stale:?}",
        stale.len()
    );
    cluster.heal();
    assert_eq!(cluster.get(b"key").await.unwrap(), Some(b"new".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_nodes_recover_every_acknowledged_write() {
    let options = ClusterOptions {
        engine: EngineKind::Rocks,
        ..Default::default()
    };
    let mut cluster = Cluster::start(3, options).await;
    for n in 0..500 {
        cluster.put(&key(n), b"v1").await.unwrap();
    }
    // One node down while writes continue, then back.
    let follower = cluster.node_ids().into_iter().find(|id| *id != 1).unwrap();
    cluster.stop_node(follower);
    for n in 500..1000 {
        cluster.put(&key(n), b"v1").await.unwrap();
    }
    cluster.restart_node(follower);
    // Then the whole cluster restarts at once.
    for id in cluster.node_ids() {
        cluster.restart_node(id);
    }
    for n in (0..1000).step_by(7) {
        assert_eq!(
            cluster.get(&key(n)).await.unwrap(),
            Some(b"v1".to_vec()),
            "key {n}"
        );
    }
    cluster.put(b"after-restart", b"ok").await.unwrap();
    cluster
        .wait_applied(USER_RANGE, Duration::from_secs(10))
        .await;
    for id in cluster.node_ids() {
        assert_eq!(cluster.local_user_data(id).len(), 1001, "node {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_replica_catches_up_by_snapshot() {
    let mut options = ClusterOptions {
        engine: EngineKind::Rocks,
        ..Default::default()
    };
    options.raft.log_compact_threshold = 50;
    let cluster = Cluster::start(3, options).await;
    cluster.put(&key(0), b"v").await.unwrap();
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
    let others: Vec<u64> = cluster
        .node_ids()
        .into_iter()
        .filter(|id| *id != lagging)
        .collect();
    for n in 1..400 {
        cluster.put_among(&key(n), b"v", &others).await.unwrap();
    }
    // The entries the lagging replica is missing are gone from the leader's
    // log: only a snapshot can bring it up to date.
    let leader = cluster
        .wait_leader_among(USER_RANGE, &others, Duration::from_secs(5))
        .await;
    let leader_info = cluster.replica(leader, USER_RANGE).await.unwrap();
    let lagging_info = cluster.replica(lagging, USER_RANGE).await.unwrap();
    assert!(
        leader_info.first_index > lagging_info.applied_index + 1,
        "leader log starts at {}, lagging replica applied {}",
        leader_info.first_index,
        lagging_info.applied_index
    );
    cluster.heal();
    cluster
        .wait_applied(USER_RANGE, Duration::from_secs(20))
        .await;
    let expected = cluster.local_user_data(leader);
    assert_eq!(expected.len(), 400);
    assert_eq!(cluster.local_user_data(lagging), expected);
    let caught_up = cluster.replica(lagging, USER_RANGE).await.unwrap();
    assert!(
        caught_up.first_index > lagging_info.applied_index + 1,
        "the lagging replica was not sent a snapshot"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_message_loss_and_delay() {
    let cluster = Cluster::start(
        3,
        ClusterOptions {
            seed: 7,
            ..Default::default()
        },
    )
    .await;
    cluster.leader(USER_RANGE).await;
    cluster.router.set_drop_rate(0.2);
    cluster.router.set_delay(Duration::from_millis(3));
    for n in 0..200 {
        cluster.put(&key(n), b"lossy").await.unwrap();
    }
    cluster.heal();
    cluster
        .wait_applied(USER_RANGE, Duration::from_secs(10))
        .await;
    for id in cluster.node_ids() {
        assert_eq!(cluster.local_user_data(id).len(), 200, "node {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replica_catches_up_by_snapshot_and_then_votes() {
    use tessera_raft::ReplicaChange;
    let mut options = ClusterOptions {
        replication_factor: Some(3),
        ..Default::default()
    };
    options.raft.log_compact_threshold = 20;
    let cluster = Cluster::start(4, options).await;
    for n in 0..100 {
        cluster.put(&key(n), b"v").await.unwrap();
    }
    assert!(
        cluster.replica(4, USER_RANGE).await.is_none(),
        "node 4 holds no replica yet"
    );
    let leader = cluster.leader(USER_RANGE).await;
    cluster
        .store(leader)
        .change_replicas(USER_RANGE, ReplicaChange::AddLearner(4))
        .await
        .unwrap();
    // The leader's log was compacted long ago, so the learner can only be
    // initialized by a snapshot.
    cluster
        .wait_applied(USER_RANGE, Duration::from_secs(10))
        .await;
    assert_eq!(cluster.local_user_data(4), cluster.local_user_data(leader));
    cluster
        .store(leader)
        .change_replicas(USER_RANGE, ReplicaChange::Promote(4))
        .await
        .unwrap();
    // Adding node 4 again is refused.
    let again = cluster
        .store(leader)
        .change_replicas(USER_RANGE, ReplicaChange::AddLearner(4))
        .await;
    assert!(
        matches!(again, Err(tessera_raft::Error::InvalidInput(_))),
        "{again:?}"
    );

    // With four voters a quorum is three: cut one original follower off, and
    // writes can only commit with node 4's vote.
    let follower = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();
    cluster.isolate(follower);
    let rest: Vec<u64> = cluster
        .node_ids()
        .into_iter()
        .filter(|id| *id != follower)
        .collect();
    for n in 100..150 {
        cluster.put_among(&key(n), b"v", &rest).await.unwrap();
    }
    let descriptor = cluster
        .replica(4, USER_RANGE)
        .await
        .unwrap()
        .descriptor
        .unwrap();
    assert_eq!(descriptor.replicas.len(), 4);
    assert!(descriptor
        .replicas
        .iter()
        .all(|r| r.role == tessera_proto::meta::ReplicaRole::Voter as i32));
    cluster.heal();
    cluster
        .wait_applied(USER_RANGE, Duration::from_secs(10))
        .await;
    assert_eq!(cluster.local_user_data(4).len(), 150);
}
