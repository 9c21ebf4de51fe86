//! A test cluster of stores in one process.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_proto::meta::{mutation, Mutation, NodeRecord, Put, StoreIdent};
use tessera_raft::{
    bootstrap_layout, initial_meta_data, RaftConfig, ReplicaInfo, Store, StoreHandle,
};
use tessera_storage::{Engine, MemoryEngine, RocksEngine};
use tessera_types::{NodeId, RangeId};

use crate::Router;

/// The range id of the first user range.
pub const USER_RANGE: RangeId = tessera_types::keys::FIRST_USER_RANGE_ID;

/// Which engine the nodes use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    /// `MemoryEngine`: fast; lost when a node stops.
    Memory,
    /// `RocksEngine` in a temporary directory: survives restarts.
    Rocks,
}

/// How to build a test cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// The engine of every node.
    pub engine: EngineKind,
    /// Raft tuning; tests use short ticks.
    pub raft: RaftConfig,
    /// Seed of the router's random message loss.
    pub seed: u64,
    /// Replicas per range at bootstrap, on the lowest node ids; every node
    /// when None.
    pub replication_factor: Option<usize>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            engine: EngineKind::Memory,
            raft: RaftConfig {
                tick_interval: Duration::from_millis(10),
                election_ticks: 10,
                heartbeat_ticks: 2,
                ..Default::default()
            },
            seed: 42,
            replication_factor: None,
        }
    }
}

struct TestNode {
    engine: Arc<dyn Engine>,
    store: Option<Store>,
}

/// A cluster of stores connected by a `Router`.
pub struct Cluster {
    nodes: BTreeMap<NodeId, TestNode>,
    /// The router: isolate, cut, drop and delay messages through it.
    pub router: Arc<Router>,
    options: ClusterOptions,
    dir: tempfile::TempDir,
}

fn put(key: &[u8], value: &[u8]) -> Mutation {
    Mutation {
        op: Some(mutation::Op::Put(Put {
            key: key.to_vec(),
            value: value.to_vec(),
        })),
    }
}

impl Cluster {
    /// Starts and bootstraps a cluster of `n` nodes (ids 1..=n), every range
    /// replicated on every node.
    pub async fn start(n: u64, options: ClusterOptions) -> Cluster {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            router: Router::new(options.seed),
            options,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        let ids: Vec<(NodeId, String)> = (1..=n).map(|id| (id, format!("node-{id}"))).collect();
        let ranges = bootstrap_layout(
            &ids,
            cluster.options.replication_factor.unwrap_or(n as usize),
        );
        let records: Vec<NodeRecord> = ids
            .iter()
            .map(|(node_id, address)| NodeRecord {
                node_id: *node_id,
                address: address.clone(),
                decommissioned: false,
            })
            .collect();
        let data = initial_meta_data(&ranges, &records);
        for (id, _) in &ids {
            let engine = cluster.open_engine(*id);
            cluster.nodes.insert(
                *id,
                TestNode {
                    engine,
                    store: None,
                },
            );
            cluster.start_node(*id);
            cluster
                .store(*id)
                .bootstrap(
                    StoreIdent {
                        cluster_id: 7,
                        node_id: *id,
                    },
                    ranges.clone(),
                    data.clone(),
                )
                .await
                .expect("bootstrap");
        }
        cluster
    }

    fn open_engine(&self, id: NodeId) -> Arc<dyn Engine> {
        match self.options.engine {
            EngineKind::Memory => Arc::new(MemoryEngine::new()),
            EngineKind::Rocks => Arc::new(
                RocksEngine::open(&self.dir.path().join(format!("node{id}")))
                    .expect("open rocksdb"),
            ),
        }
    }

    fn start_node(&mut self, id: NodeId) {
        let transport = self.router.transport(id);
        let node = self.nodes.get_mut(&id).expect("known node");
        let store = Store::start(
            id,
            node.engine.clone(),
            transport,
            self.options.raft.clone(),
        )
        .expect("start store");
        self.router.register(id, store.handle());
        node.store = Some(store);
    }

    /// The ids of every node.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// A node's store. Panics if it is stopped.
    pub fn store(&self, id: NodeId) -> StoreHandle {
        self.nodes[&id]
            .store
            .as_ref()
            .expect("node is running")
            .handle()
    }

    /// A node's engine.
    pub fn engine(&self, id: NodeId) -> Arc<dyn Engine> {
        self.nodes[&id].engine.clone()
    }

    /// Stops a node's store loop (its engine stays open, as after a clean
    /// process exit its files would stay on disk).
    pub fn stop_node(&mut self, id: NodeId) {
        self.router.unregister(id);
        if let Some(mut store) = self.nodes.get_mut(&id).and_then(|n| n.store.take()) {
            store.stop();
        }
    }

    /// Restarts a stopped node, reopening its engine from disk (RocksDB) so
    /// that it recovers only what it persisted.
    pub fn restart_node(&mut self, id: NodeId) {
        assert_eq!(
            self.options.engine,
            EngineKind::Rocks,
            "restart needs a durable engine"
        );
        self.stop_node(id);
        // Close the old RocksDB handle before reopening the directory.
        let old = std::mem::replace(
            &mut self.nodes.get_mut(&id).unwrap().engine,
            Arc::new(MemoryEngine::new()),
        );
        drop(old);
        let engine = self.open_engine(id);
        self.nodes.get_mut(&id).unwrap().engine = engine;
        self.start_node(id);
    }

    /// Loses every message to and from `id`.
    pub fn isolate(&self, id: NodeId) {
        self.router.isolate(id, &self.node_ids());
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.router.heal();
    }

    /// The replica of `range` on node `id`.
    pub async fn replica(&self, id: NodeId, range: RangeId) -> Option<ReplicaInfo> {
        let infos = self.store(id).replicas().await.ok()?;
        infos.into_iter().find(|r| r.range_id == range)
    }

    /// Waits for a leader of `range` among the running nodes in `among` that
    /// all of `among` agree on, and returns its node.
    pub async fn wait_leader_among(
        &self,
        range: RangeId,
        among: &[NodeId],
        timeout: Duration,
    ) -> NodeId {
        let deadline = Instant::now() + timeout;
        loop {
            let mut leaders = Vec::new();
            for id in among {
                if let Some(info) = self.replica(*id, range).await {
                    if info.is_leader {
                        leaders.push((info.term, *id));
                    }
                }
            }
            leaders.sort();
            if let Some((_, leader)) = leaders.last() {
                return *leader;
            }
            assert!(
                Instant::now() < deadline,
                "no leader of range {range} among {among:?} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for a leader of `range` among all running nodes.
    pub async fn leader(&self, range: RangeId) -> NodeId {
        let running: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.store.is_some())
            .map(|(id, _)| *id)
            .collect();
        self.wait_leader_among(range, &running, Duration::from_secs(10))
            .await
    }

    /// Writes a key through whichever node leads its range, retrying
    /// routing errors for up to 10 seconds.
    pub async fn put(&self, key: &[u8], value: &[u8]) -> tessera_raft::Result<()> {
        self.put_among(key, value, &self.node_ids()).await
    }

    /// Like `put`, trying only the nodes in `among`.
    pub async fn put_among(
        &self,
        key: &[u8],
        value: &[u8],
        among: &[NodeId],
    ) -> tessera_raft::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut attempt = 0;
        loop {
            let id = among[attempt % among.len()];
            attempt += 1;
            let Some(node) = self.nodes.get(&id).and_then(|n| n.store.as_ref()) else {
                continue;
            };
            let handle = node.handle();
            match tokio::time::timeout(Duration::from_secs(1), handle.write(vec![put(key, value)]))
                .await
            {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(err)) if !err.is_retryable() => return Err(err),
                _ if Instant::now() > deadline => return Err(tessera_raft::Error::ProposalDropped),
                _ => {
                    if attempt % among.len() == 0 {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }
    }

    /// Every user key (raw family) on a node's engine, read directly, not
    /// through Raft.
    pub fn local_user_data(&self, id: NodeId) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.engine(id)
            .scan(tessera_storage::Cf::Raw, tessera_types::keys::USER_MIN, b"")
            .collect::<Result<_, _>>()
            .unwrap_or_else(|err| panic!("reading node {id}'s engine: {err}"))
    }

    /// Reads a key linearizably through the leader.
    pub async fn get(&self, key: &[u8]) -> tessera_raft::Result<Option<Vec<u8>>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let ids = self.node_ids();
        let mut attempt = 0;
        loop {
            let id = ids[attempt % ids.len()];
            attempt += 1;
            let Some(node) = self.nodes.get(&id).and_then(|n| n.store.as_ref()) else {
                continue;
            };
            let handle = node.handle();
            match tokio::time::timeout(Duration::from_secs(1), handle.get(key.to_vec())).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(err)) if !err.is_retryable() => return Err(err),
                _ if Instant::now() > deadline => return Err(tessera_raft::Error::ProposalDropped),
                _ => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    /// Waits until every running replica of `range` has applied as far as
    /// the leader has committed.
    pub async fn wait_applied(&self, range: RangeId, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let mut applied = Vec::new();
            let mut commit = 0;
            for (id, node) in &self.nodes {
                if node.store.is_none() {
                    continue;
                }
                if let Some(info) = self.replica(*id, range).await {
                    applied.push(info.applied_index);
                    if info.is_leader {
                        commit = info.commit_index;
                    }
                }
            }
            if commit > 0 && applied.iter().all(|a| *a >= commit) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replicas of range {range} did not catch up: applied {applied:?}, commit {commit}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in self.node_ids() {
            self.stop_node(id);
        }
    }
}
