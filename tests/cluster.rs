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
