//! Range merges on in-process clusters, driven at the store level as the
//! gateway drives them: the right range freezes (and refuses writes), every
//! replica applies the freeze, the left range absorbs it. A replica that was
//! cut off during the merge catches up, by log or by snapshot, and drops its
//! replica of the absorbed range; nothing is lost, and a restarted node
//! comes back with the merged range only.

use std::time::{Duration, Instant};

use tessera_proto::meta::Merge;
use tessera_raft::Error;
use tessera_testkit::{Cluster, ClusterOptions, EngineKind, USER_RANGE};

const RIGHT: u64 = 3;

fn key(i: usize) -> Vec<u8> {
    format!("\x02merge/{i:04}").into_bytes()
}

/// Retries a step at the range's leader until it is not a leadership
/// change.
async fn at_leader<T, F, Fut>(cluster: &Cluster, range: u64, step: F) -> tessera_raft::Result<T>
where
    F: Fn(tessera_raft::StoreHandle) -> Fut,
    Fut: std::future::Future<Output = tessera_raft::Result<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let leader = cluster.leader(range).await;
        match step(cluster.store(leader)).await {
            Err(err) if err.is_retryable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

/// Three nodes holding 100 keys, the user range split at key 50 (the
/// right side is range `RIGHT`, which has a leader).
async fn split_cluster(options: ClusterOptions) -> Cluster {
    let cluster = Cluster::start(3, options).await;
    for i in 0..100 {
        cluster.put(&key(i), b"before").await.unwrap();
    }
    at_leader(&cluster, USER_RANGE, |store| async move {
        store.split(key(50), RIGHT).await
    })
    .await
    .unwrap();
    cluster.leader(RIGHT).await;
    cluster
}

async fn merge_with_a_replica_cut_off(compact: bool) {
    let mut options = ClusterOptions {
        engine: EngineKind::Rocks,
        ..ClusterOptions::default()
    };
    if compact {
        options.raft.log_compact_threshold = 50;
    }
    let mut cluster = split_cluster(options).await;
    cluster.put(&key(60), b"right").await.unwrap();

    // Freeze the right range: it refuses writes from then on.
    let generation_right = generation(&cluster, RIGHT).await;
    let frozen = at_leader(&cluster, RIGHT, |store| async move {
        store.freeze(RIGHT, generation_right, true).await
    })
    .await
    .unwrap();
    let right = frozen.descriptor.clone().unwrap();
    let refused = cluster
        .store(cluster.leader(RIGHT).await)
        .write(vec![tessera_proto::meta::Mutation {
            op: Some(tessera_proto::meta::mutation::Op::Put(
                tessera_proto::meta::Put {
                    key: key(70),
                    value: b"lost".to_vec(),
                },
            )),
        }])
        .await;
    assert!(matches!(refused, Err(Error::Frozen { .. })), "{refused:?}");
    cluster.wait_applied(RIGHT, Duration::from_secs(10)).await;
    for node in cluster.node_ids() {
        let info = cluster.replica(node, RIGHT).await.unwrap();
        assert!(info.frozen && info.applied_index >= frozen.applied_index);
    }

    // One follower of the left range misses the merge.
    let leader = cluster.leader(USER_RANGE).await;
    let cut = cluster
        .node_ids()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    let before = cluster.replica(cut, USER_RANGE).await.unwrap();
    cluster.isolate(cut);
    let others: Vec<u64> = cluster
        .node_ids()
        .into_iter()
        .filter(|id| *id != cut)
        .collect();
    let generation = generation(&cluster, USER_RANGE).await;
    let merged = merge_at_leader(&cluster, &right, frozen.gc_threshold, generation, false)
        .await
        .unwrap();
    assert!(merged.end_key.is_empty(), "{merged:?}");
    assert!(merged.generation > right.generation);
    // The other connected node drops its replica once it applies the merge.
    let deadline = Instant::now() + Duration::from_secs(10);
    for node in &others {
        while cluster.replica(*node, RIGHT).await.is_some() {
            assert!(
                Instant::now() < deadline,
                "node {node} kept the merged-away range"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // Writes to the right range's keys go to the merged range.
    for i in 100..400 {
        cluster.put_among(&key(i), b"after", &others).await.unwrap();
    }
    cluster
        .put_among(&key(70), b"merged", &others)
        .await
        .unwrap();
    if compact {
        let leader = cluster
            .wait_leader_among(USER_RANGE, &others, Duration::from_secs(5))
            .await;
        let log = cluster.replica(leader, USER_RANGE).await.unwrap();
        assert!(
            log.first_index > before.applied_index + 1,
            "the log still holds what the cut-off replica misses"
        );
    }

    cluster.heal();
    cluster
        .wait_applied(USER_RANGE, Duration::from_secs(20))
        .await;
    let expected = cluster.local_user_data(leader);
    assert_eq!(expected.len(), 400);
    for node in cluster.node_ids() {
        assert!(cluster.replica(node, RIGHT).await.is_none(), "node {node}");
        let info = cluster.replica(node, USER_RANGE).await.unwrap();
        assert!(info.descriptor.unwrap().end_key.is_empty(), "node {node}");
        assert_eq!(cluster.local_user_data(node), expected, "node {node}");
    }
    if compact {
        let caught_up = cluster.replica(cut, USER_RANGE).await.unwrap();
        assert!(
            caught_up.first_index > before.applied_index + 1,
            "the cut-off replica was not sent a snapshot"
        );
    }
    assert_eq!(
        cluster.get(&key(70)).await.unwrap(),
        Some(b"merged".to_vec())
    );
    assert_eq!(
        cluster.get(&key(60)).await.unwrap(),
        Some(b"right".to_vec())
    );

    // A restarted node recovers the merged range only.
    cluster.restart_node(cut);
    cluster
        .wait_applied(USER_RANGE, Duration::from_secs(20))
        .await;
    assert!(cluster.replica(cut, RIGHT).await.is_none());
    assert_eq!(cluster.local_user_data(cut), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_missed_a_merge_applies_it_from_the_log() {
    merge_with_a_replica_cut_off(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_missed_a_merge_gets_the_merged_range_by_snapshot() {
    merge_with_a_replica_cut_off(true).await;
}

/// The generation of `range` at its leader.
async fn generation(cluster: &Cluster, range: u64) -> u64 {
    let leader = cluster.leader(range).await;
    cluster
        .replica(leader, range)
        .await
        .and_then(|r| r.descriptor)
        .map_or(0, |d| d.generation)
}

/// Proposes `Merge` (or its fence) of `right` into the user range at its
/// leader.
async fn merge_at_leader(
    cluster: &Cluster,
    right: &tessera_proto::meta::RangeDescriptor,
    right_gc_threshold: u64,
    generation: u64,
    fence: bool,
) -> tessera_raft::Result<tessera_proto::meta::RangeDescriptor> {
    at_leader(cluster, USER_RANGE, |store| {
        let merge = Merge {
            right: Some(right.clone()),
            generation,
            right_gc_threshold,
            fence,
        };
        async move { store.merge(USER_RANGE, merge).await }
    })
    .await
}

/// A merge whose gateway went away after the freeze is ended by fencing:
/// the left range raises its generation, so that the merge planned before
/// is refused, and the right range is released at the generation it was
/// frozen at. A freeze made since keeps the range frozen; once a merge has
/// applied, the fence and a repeated merge find the right range absorbed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_merge_is_refused_and_its_range_released() {
    let cluster = split_cluster(ClusterOptions::default()).await;
    let planned = generation(&cluster, USER_RANGE).await;
    let freeze = |generation: u64, frozen: bool| {
        at_leader(&cluster, RIGHT, move |store| async move {
            store.freeze(RIGHT, generation, frozen).await
        })
    };
    let frozen = freeze(generation(&cluster, RIGHT).await, true)
        .await
        .unwrap();
    let right = frozen.descriptor.clone().unwrap();
    let merge = |generation: u64, fence: bool| {
        merge_at_leader(&cluster, &right, frozen.gc_threshold, generation, fence)
    };

    // The fence raises the left range's generation, without merging.
    let fenced = merge(0, true).await.unwrap();
    assert_eq!(fenced.end_key, key(50));
    assert_eq!(fenced.generation, planned + 1);
    let refused = merge(planned, false).await;
    assert!(matches!(refused, Err(Error::Changed(_))), "{refused:?}");

    // A freeze made after the fence is not undone by a release planned
    // against the earlier one.
    let again = freeze(right.generation, true).await.unwrap();
    let stale = freeze(right.generation, false).await;
    assert!(matches!(stale, Err(Error::Changed(_))), "{stale:?}");
    let released = freeze(again.descriptor.unwrap().generation, false)
        .await
        .unwrap();
    assert!(released.descriptor.unwrap().generation > right.generation);
    cluster.put(&key(70), b"released").await.unwrap();

    // Frozen and merged: a fence and a repeated merge are no-ops.
    let frozen = freeze(generation(&cluster, RIGHT).await, true)
        .await
        .unwrap();
    cluster.wait_applied(RIGHT, Duration::from_secs(10)).await;
    let right = frozen.descriptor.unwrap();
    let merge = |generation: u64, fence: bool| {
        merge_at_leader(&cluster, &right, frozen.gc_threshold, generation, fence)
    };
    let merged = merge(generation(&cluster, USER_RANGE).await, false)
        .await
        .unwrap();
    assert!(merged.end_key.is_empty(), "{merged:?}");
    assert_eq!(merge(0, true).await.unwrap(), merged);
    assert_eq!(merge(planned, false).await.unwrap(), merged);
    assert_eq!(
        cluster.get(&key(70)).await.unwrap(),
        Some(b"released".to_vec())
    );
}
