//! Range splits on in-process clusters: the split applies on every replica,
//! the new range elects a leader and serves its half, nothing is lost, and a
//! restarted node comes back with both ranges.

use std::time::{Duration, Instant};

use tessera_raft::Error;
use tessera_testkit::{Cluster, ClusterOptions, EngineKind, USER_RANGE};

fn key(i: usize) -> Vec<u8> {
    format!("\x02split/{i:04}").into_bytes()
}

/// Splits at `at` through the user range's leader, retrying leader changes.
async fn split(cluster: &Cluster, at: &[u8], new_range: u64) -> tessera_raft::SplitOutcome {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let leader = cluster.leader(USER_RANGE).await;
        match cluster.store(leader).split(at.to_vec(), new_range).await {
            Ok(outcome) => return outcome,
            Err(err) if err.is_retryable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => panic!("split: {err}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_divides_the_range_on_every_replica_and_loses_nothing() {
    let options = ClusterOptions {
        engine: EngineKind::Rocks,
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(3, options).await;
    for i in 0..100 {
        cluster
            .put(&key(i), format!("v{i}").as_bytes())
            .await
            .unwrap();
    }
    let started = Instant::now();
    let outcome = split(&cluster, &key(50), 3).await;
    assert!(outcome.created);
    assert_eq!(outcome.left.range_id, USER_RANGE);
    assert_eq!(outcome.left.end_key, key(50));
    assert_eq!(outcome.right.range_id, 3);
    assert_eq!(outcome.right.start_key, key(50));
    assert!(outcome.right.end_key.is_empty());
    assert_eq!(outcome.left.generation, outcome.right.generation);
    // The new range elects a leader without waiting out an election
    // timeout.
    cluster.leader(3).await;
    let elected = started.elapsed();
    assert!(elected < Duration::from_secs(5), "took {elected:?}");
    for node in cluster.node_ids() {
        cluster
            .wait_applied(USER_RANGE, Duration::from_secs(10))
            .await;
        let left = cluster.replica(node, USER_RANGE).await.unwrap();
        let right = cluster
            .replica(node, 3)
            .await
            .expect("new range on every node");
        assert_eq!(left.descriptor.unwrap().end_key, key(50));
        assert_eq!(right.descriptor.unwrap().start_key, key(50));
    }
    // Both halves serve reads and writes, each through its own range.
    for i in 0..100 {
        assert_eq!(
            cluster.get(&key(i)).await.unwrap(),
            Some(format!("v{i}").into_bytes()),
            "key {i}"
        );
    }
    cluster.put(&key(10), b"left").await.unwrap();
    cluster.put(&key(90), b"right").await.unwrap();
    let leader = cluster.leader(USER_RANGE).await;
    let err = cluster
        .store(leader)
        .write(vec![
            tessera_proto::meta::Mutation {
                op: Some(tessera_proto::meta::mutation::Op::Put(
                    tessera_proto::meta::Put {
                        key: key(1),
                        value: b"x".to_vec(),
                    },
                )),
            },
            tessera_proto::meta::Mutation {
                op: Some(tessera_proto::meta::mutation::Op::Put(
                    tessera_proto::meta::Put {
                        key: key(99),
                        value: b"x".to_vec(),
                    },
                )),
            },
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CrossRange { .. }), "{err}");

    // Splitting at the boundary again changes nothing; outside the range's
    // span is refused.
    let again = split(&cluster, &key(50), 4).await;
    assert!(!again.created);
    assert_eq!(again.right.range_id, 3);

    // A restarted node recovers both ranges with their spans.
    let follower = cluster
        .node_ids()
        .into_iter()
        .find(|n| *n != leader)
        .unwrap();
    cluster.restart_node(follower);
    cluster.wait_applied(3, Duration::from_secs(10)).await;
    let right = cluster.replica(follower, 3).await.unwrap();
    assert_eq!(right.descriptor.unwrap().start_key, key(50));
    assert_eq!(
        cluster.get(&key(90)).await.unwrap(),
        Some(b"right".to_vec())
    );
    assert_eq!(cluster.get(&key(10)).await.unwrap(), Some(b"left".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_during_splits_all_land() {
    let cluster = std::sync::Arc::new(Cluster::start(3, ClusterOptions::default()).await);
    let writer = {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            for i in 0..400 {
                cluster
                    .put(&key(i), format!("w{i}").as_bytes())
                    .await
                    .unwrap();
            }
        })
    };
    // Split the user range four times while the writes run.
    for (next, at) in (3..).zip([100, 200, 300, 350]) {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // The key's range: the newest one to its left.
            let mut done = false;
            for node in cluster.node_ids() {
                match cluster.store(node).split(key(at), next).await {
                    Ok(_) => {
                        done = true;
                        break;
                    }
                    Err(err) if err.is_retryable() => {}
                    Err(err) => panic!("split at {at}: {err}"),
                }
            }
            if done {
                break;
            }
            assert!(Instant::now() < deadline, "split at {at} never happened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    writer.await.unwrap();
    for i in 0..400 {
        assert_eq!(
            cluster.get(&key(i)).await.unwrap(),
            Some(format!("w{i}").into_bytes()),
            "key {i}"
        );
    }
}
