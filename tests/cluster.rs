//! End-to-end: three real `tessera start` processes on 127.0.0.1.

use std::process::Command;
use std::time::Duration;

use tessera_e2e::{free_port, leader_of, node_client, tessera_bin, NodeProcess};
use tessera_kv::{KvClient, KvClientConfig};
use tessera_proto::raft::raft_transport_client::RaftTransportClient;
use tessera_proto::raft::{RaftBatch, RaftEnvelope};

const USER_RANGE: u64 = 2;

fn key(i: usize) -> Vec<u8> {
    format!("e2e/{i:05}").into_bytes()
}

struct TestCluster {
    nodes: Vec<NodeProcess>,
    addresses: Vec<String>,
    dir: tempfile::TempDir,
}

async fn start_cluster() -> TestCluster {
    let dir = tempfile::tempdir().unwrap();
    let addresses: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let nodes: Vec<NodeProcess> = addresses
        .iter()
        .enumerate()
        .map(|(i, address)| {
            let id = i as u64 + 1;
            NodeProcess::start(
                id,
                address,
                &dir.path().join(format!("n{id}")),
                &addresses,
                dir.path(),
            )
        })
        .collect();
    for address in &addresses {
        node_client(address, Duration::from_secs(20)).await.unwrap();
    }
    let init = Command::new(tessera_bin())
        .args(["init", "--host", &addresses[0]])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    TestCluster {
        nodes,
        addresses,
        dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_the_leader_and_lose_nothing() {
    let mut cluster = start_cluster().await;
    let client = KvClient::new(cluster.addresses.clone(), KvClientConfig::default());
    for i in 0..1000 {
        client
            .put(&key(i), format!("v{i}").as_bytes())
            .await
            .unwrap();
    }
    let leader = leader_of(&cluster.addresses, USER_RANGE, Duration::from_secs(10))
        .await
        .unwrap();
    cluster.nodes[leader].kill();
    for i in 1000..2000 {
        client
            .put(&key(i), format!("v{i}").as_bytes())
            .await
            .unwrap();
    }
    cluster.nodes[leader].restart();
    node_client(&cluster.addresses[leader], Duration::from_secs(20))
        .await
        .unwrap();
    // Read everything back with each node as the entry point.
    for address in &cluster.addresses {
        let via = KvClient::new(vec![address.clone()], KvClientConfig::default());
        let all = via.scan(b"e2e/", b"e2e0", 0).await.unwrap();
        assert_eq!(all.len(), 2000, "scan through {address}");
        for (i, (k, v)) in all.iter().enumerate() {
            assert_eq!((k, v), (&key(i), &format!("v{i}").into_bytes()));
        }
        for i in (0..2000).step_by(37) {
            assert_eq!(
                via.get(&key(i)).await.unwrap(),
                Some(format!("v{i}").into_bytes())
            );
        }
    }
    // The restarted node has caught up on its own replica.
    let mut restarted = node_client(&cluster.addresses[leader], Duration::from_secs(5))
        .await
        .unwrap();
    let mut caught_up = false;
    for _ in 0..100 {
        let ranges = restarted
            .ranges(tessera_proto::node::RangesRequest {})
            .await
            .unwrap()
            .into_inner();
        let user = ranges
            .replicas
            .iter()
            .find(|r| {
                r.descriptor
                    .as_ref()
                    .is_some_and(|d| d.range_id == USER_RANGE)
            })
            .unwrap();
        // 2000 writes after the bootstrap index.
        if user.applied_index >= 2000 {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        caught_up,
        "restarted node did not catch up:\n{}",
        cluster.nodes[leader].log()
    );
    drop(cluster.dir);
}

/// A node stopped with SIGTERM, while the others hold Raft and pipelined
/// call streams open to it, ends those streams and exits cleanly without
/// waiting out its gRPC server; the cluster writes on without it, and it
/// restarts and serves everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_by_sigterm_ends_its_streams_and_restarts() {
    let mut cluster = start_cluster().await;
    let client = KvClient::new(cluster.addresses.clone(), KvClientConfig::default());
    for i in 0..200 {
        client.put(&key(i), b"before").await.unwrap();
    }
    // Calls through node 3 open pipelines from it to the leaders' nodes.
    let via_3 = KvClient::new(
        vec![cluster.addresses[2].clone()],
        KvClientConfig::default(),
    );
    assert_eq!(via_3.get(&key(7)).await.unwrap(), Some(b"before".to_vec()));
    let status = cluster.nodes[2].terminate(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "node 3 did not exit cleanly on SIGTERM ({status:?}):\n{}",
        cluster.nodes[2].log()
    );
    assert!(
        !cluster.nodes[2].log().contains("did not stop within"),
        "node 3 waited out its gRPC server:\n{}",
        cluster.nodes[2].log()
    );
    for i in 200..400 {
        client.put(&key(i), b"after").await.unwrap();
    }
    cluster.nodes[2].restart();
    node_client(&cluster.addresses[2], Duration::from_secs(20))
        .await
        .unwrap();
    let all = via_3.scan(b"e2e/", b"e2e0", 0).await.unwrap();
    assert_eq!(all.len(), 400);
    drop(cluster.dir);
}

/// The applied index of `range` on the node at `address`, if it holds it.
async fn applied_index(address: &str, range: u64) -> Option<u64> {
    let mut node = node_client(address, Duration::from_secs(5)).await.ok()?;
    let ranges = node
        .ranges(tessera_proto::node::RangesRequest {})
        .await
        .ok()?
        .into_inner();
    ranges
        .replicas
        .iter()
        .find(|r| r.descriptor.as_ref().is_some_and(|d| d.range_id == range))
        .map(|r| r.applied_index)
}

/// A follower dies (a failpoint aborts it) just after it wrote the entries
/// it applied early in a Raft turn, before it wrote the turn's new entries
/// and hard state, when that hard state commits entries still unwritten: it
/// restarts, catches up, and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_between_its_apply_and_log_writes_restarts() {
    let mut cluster = start_cluster().await;
    let client = KvClient::new(cluster.addresses.clone(), KvClientConfig::default());
    client.put(&key(0), b"v0").await.unwrap();
    let leader = leader_of(&cluster.addresses, USER_RANGE, Duration::from_secs(10))
        .await
        .unwrap();
    let follower = (leader + 1) % 3;
    let failpoint = tessera_types::failpoint::RAFT_AFTER_EARLY_APPLY;
    cluster.nodes[follower].env = vec![("TESSERA_FAILPOINTS".into(), failpoint.into())];
    cluster.nodes[follower].restart();
    node_client(&cluster.addresses[follower], Duration::from_secs(20))
        .await
        .unwrap();
    let mut written = 1;
    while !cluster.nodes[follower].exited() {
        assert!(written < 20_000, "the failpoint was never reached");
        let value = format!("v{written}");
        client.put(&key(written), value.as_bytes()).await.unwrap();
        written += 1;
    }
    assert!(
        cluster.nodes[follower]
            .log()
            .contains(&format!("failpoint {failpoint} reached")),
        "the follower died elsewhere:\n{}",
        cluster.nodes[follower].log()
    );
    cluster.nodes[follower].env.clear();
    cluster.nodes[follower].restart();
    let target = applied_index(&cluster.addresses[leader], USER_RANGE)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let applied = applied_index(&cluster.addresses[follower], USER_RANGE).await;
        if applied.is_some_and(|applied| applied >= target) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline && !cluster.nodes[follower].exited(),
            "the follower did not come back (applied {applied:?} of {target}):\n{}",
            cluster.nodes[follower].log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let via = KvClient::new(
        vec![cluster.addresses[follower].clone()],
        KvClientConfig::default(),
    );
    let all = via.scan(b"e2e/", b"e2e0", 0).await.unwrap();
    assert_eq!(all.len(), written);
    drop(cluster.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors() {
    let mut cluster = start_cluster().await;
    let client = KvClient::new(cluster.addresses.clone(), KvClientConfig::default());
    client.put(b"alive", b"yes").await.unwrap();

    // A Raft message from another cluster is refused.
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.addresses[0]))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let foreign = RaftBatch {
        cluster_id: 0xdead_beef,
        from_node: 9,
        envelopes: vec![],
    };
    let refused = RaftTransportClient::new(channel.clone())
        .stream(tokio_stream_once(foreign))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );

    // Corrupt and unknown Raft messages (with the right cluster id) are
    // dropped; the node keeps serving.
    let mut hello = node_client(&cluster.addresses[0], Duration::from_secs(2))
        .await
        .unwrap();
    let cluster_id = hello
        .hello(tessera_proto::node::HelloRequest::default())
        .await
        .unwrap()
        .into_inner()
        .cluster_id;
    let garbage = RaftBatch {
        cluster_id,
        from_node: 2,
        envelopes: vec![
            RaftEnvelope {
                range_id: 2,
                from_node: 2,
                from_replica: 2,
                to_node: 1,
                to_replica: 1,
                message: vec![0xff; 64],
            },
            RaftEnvelope {
                range_id: 999,
                from_node: 2,
                from_replica: 2,
                to_node: 1,
                to_replica: 1,
                message: vec![1, 2, 3],
            },
            RaftEnvelope {
                range_id: 2,
                from_node: 2,
                from_replica: 2,
                to_node: 7,
                to_replica: 7,
                message: vec![],
            },
        ],
    };
    RaftTransportClient::new(channel)
        .stream(tokio_stream_once(garbage))
        .await
        .unwrap();
    client.put(b"alive", b"still").await.unwrap();
    assert_eq!(client.get(b"alive").await.unwrap(), Some(b"still".to_vec()));

    // System keys are not writable through the KV API.
    let err = client.put(b"\x01meta/x", b"no").await.unwrap_err();
    assert!(err.to_string().contains("reserved"), "{err}");

    // init runs once.
    let again = Command::new(tessera_bin())
        .args(["init", "--host", &cluster.addresses[1]])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // A port already in use.
    let taken = Command::new(tessera_bin())
        .args(["start", "--node-id", "4", "--data-dir"])
        .arg(cluster.dir.path().join("n4"))
        .args(["--listen-addr", &cluster.addresses[0]])
        .output()
        .unwrap();
    assert!(!taken.status.success());
    let stderr = String::from_utf8_lossy(&taken.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");

    // A data dir that belongs to another node.
    cluster.nodes[1].kill();
    let wrong = Command::new(tessera_bin())
        .args(["start", "--node-id", "5", "--data-dir"])
        .arg(cluster.dir.path().join("n2"))
        .args(["--listen-addr", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("belongs to node 2"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn tokio_stream_once(
    batch: RaftBatch,
) -> impl tokio_stream::Stream<Item = RaftBatch> + Send + 'static {
    tokio_stream::iter(vec![batch])
}

/// A thread count no machine wants is refused before the node starts, from
/// the flag and from the config file alike (every other test here starts
/// its nodes with the default).
#[test]
fn the_runtime_threads_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(&config, "io_threads = 5000\n").unwrap();
    let data_dir = dir.path().join("n1").display().to_string();
    for extra in [
        vec!["--io-threads", "5000"],
        vec!["--config", config.to_str().unwrap()],
    ] {
        let mut node = Command::new(tessera_bin())
            .args(["start", "--node-id", "1", "--data-dir", &data_dir])
            .args(["--listen-addr", &format!("127.0.0.1:{}", free_port())])
            .args(["--sql-addr", &format!("127.0.0.1:{}", free_port())])
            .args(&extra)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while node.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                node.kill().unwrap();
                panic!("{extra:?}: the node started");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = node.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra:?} started a node: {stderr}");
        assert!(
            stderr.contains("io_threads must be at most 1024, not 5000"),
            "{extra:?}: {stderr}"
        );
    }
}
