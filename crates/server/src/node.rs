//! Node assembly: storage, the store loop, the gRPC server and the SQL
//! (PostgreSQL wire protocol) server.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use prost::Message as _;
use tessera_kv::services::{KvService, NodeContext, NodeService, RaftTransportService};
use tessera_kv::{AddressBook, GrpcTransport, KvClient, KvClientConfig};
use tessera_proto::kv::kv_server::KvServer;
use tessera_proto::meta::NodeRecord;
use tessera_proto::node::node_server::NodeServer;
use tessera_proto::raft::raft_transport_server::RaftTransportServer;
use tessera_raft::{Store, StoreHandle};
use tessera_storage::{Cf, Engine, RocksEngine};
use tessera_txn::{TxnClient, TxnOptions};
use tessera_types::keys::META_RANGE_ID;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;

use crate::cluster_kv::{ClusterKv, SqlFlows};
use crate::config::NodeConfig;

/// How long a stopping node waits for its gRPC server to answer what it
/// was asked and close its connections.
const SERVER_STOP_WAIT: Duration = Duration::from_secs(5);

/// A running node.
pub struct Node {
    store: Store,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    shutdown: oneshot::Sender<()>,
    /// Ends the streams other nodes hold open to this one (see
    /// `tessera_kv::services::closed`).
    closing: tokio::sync::watch::Sender<bool>,
    address: String,
    sql: JoinHandle<()>,
    sql_address: SocketAddr,
    /// The garbage collection loop, if collection is on.
    gc: Option<JoinHandle<()>>,
    /// The automatic split loop, if automatic splits are on.
    autosplit: Option<JoinHandle<()>>,
    /// The lease rebalancing loop, if rebalancing is on.
    rebalance: Option<JoinHandle<()>>,
}

/// Runs a garbage collection pass every `interval` while this node leads
/// the meta range (one collector per cluster; passes are idempotent, so a
/// brief overlap after a leadership change does no harm).
async fn collect_garbage(store: StoreHandle, client: TxnClient, ttl: Duration, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let leads_meta = store
            .replicas()
            .await
            .map(|replicas| {
                replicas
                    .iter()
                    .any(|r| r.range_id == META_RANGE_ID && r.is_leader)
            })
            .unwrap_or(false);
        if !leads_meta {
            continue;
        }
        match client.collect_garbage(ttl).await {
            Ok(report) => tracing::info!(
                safe_point = %report.safe_point,
                ranges = report.ranges,
                locks_resolved = report.locks_resolved,
                examined = report.examined,
                removed = report.removed,
                "garbage collection pass"
            ),
            Err(err) => tracing::warn!(%err, "garbage collection pass failed"),
        }
    }
}

/// A node started on an empty data dir joins the cluster its join list
/// belongs to, once one of those nodes says it has one (until then, the
/// cluster may be waiting for `tessera init`, which bootstraps this node
/// too).
async fn join_cluster(store: StoreHandle, join: Vec<String>, advertise: String) {
    let peers: Vec<&String> = join.iter().filter(|a| **a != advertise).collect();
    let mut attempt = 0u64;
    while store.cluster_id() == 0 {
        for peer in &peers {
            match tessera_kv::services::join(&store, peer, &advertise).await {
                Ok(Some(cluster_id)) => {
                    tracing::info!(
                        node = store.node_id(),
                        via = %peer,
                        cluster = format!("{cluster_id:016x}"),
                        "joined the cluster"
                    );
                    return;
                }
                Ok(None) => {}
                Err(status) if status.code() == tonic::Code::AlreadyExists => {
                    tracing::error!(node = store.node_id(), "cannot join: {}", status.message());
                }
                Err(status) => {
                    if attempt % 10 == 9 {
                        tracing::warn!(node = store.node_id(), via = %peer, "cannot join yet: {}", status.message());
                    }
                }
            }
            if store.cluster_id() != 0 {
                return;
            }
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Binds the node's gRPC listener, with a clear error when the port is
/// taken.
pub async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} (is another tessera or program using that port?)")
    })
}

fn load_node_records(engine: &dyn Engine, addresses: &AddressBook) -> anyhow::Result<()> {
    let prefix = tessera_types::keys::NODE_PREFIX;
    let end = tessera_types::encoding::prefix_end(prefix).unwrap_or_default();
    for item in engine.scan(Cf::Raw, prefix, &end) {
        let (_, value) = item?;
        let record = NodeRecord::decode(&value[..]).context("corrupt node record")?;
        addresses.insert(record.node_id, record.address);
    }
    Ok(())
}

impl Node {
    /// Starts a node on an already bound gRPC listener; binds the SQL
    /// listener at `config.sql_addr` itself.
    pub async fn start(config: &NodeConfig, listener: TcpListener) -> anyhow::Result<Node> {
        config.validate()?;
        let sql_auth = config.sql_auth_config()?;
        // Bound first: a taken SQL port fails before storage is opened.
        let sql_listener = bind(&config.sql_addr)
            .await
            .context("cannot start the SQL server (set another sql_addr)")?;
        let sql_address = sql_listener.local_addr()?;
        let data_dir = &config.data_dir;
        let engine = RocksEngine::open(data_dir).with_context(|| {
            format!(
                "cannot open the data dir {} (is another tessera process using it?)",
                data_dir.display()
            )
        })?;
        let engine: Arc<dyn Engine> = Arc::new(engine);
        let measured = engine.clone();
        let addresses = AddressBook::new();
        load_node_records(engine.as_ref(), &addresses)?;
        let advertise = config.advertise();
        addresses.insert(config.node_id, advertise.clone());

        let handle_slot: Arc<OnceLock<StoreHandle>> = Arc::new(OnceLock::new());
        let slot = handle_slot.clone();
        let transport = GrpcTransport::new(
            config.node_id,
            Arc::new(move || slot.get().map_or(0, |h| h.cluster_id())),
            addresses.clone(),
            tokio::runtime::Handle::current(),
        );
        let store = Store::start(
            config.node_id,
            engine,
            Arc::new(transport),
            config.raft_config(),
        )
        .with_context(|| {
            format!(
                "cannot start node {} on {}",
                config.node_id,
                data_dir.display()
            )
        })?;
        let _ = handle_slot.set(store.handle());

        let (closing, closing_rx) = tokio::sync::watch::channel(false);
        let ctx = NodeContext {
            closing: closing_rx,
            store: store.handle(),
            addresses: addresses.clone(),
            advertise_address: advertise.clone(),
            join: config.join.clone(),
            request_timeout: Duration::from_millis(config.request_timeout_ms),
            replication_factor: config.replication_factor,
            flows: Some(Arc::new(SqlFlows)),
        };
        let max = tessera_kv::MAX_MESSAGE_BYTES;
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        // `Server::tcp_nodelay` applies only to sockets tonic accepts itself;
        // ours come from a listener bound earlier (to report a taken port
        // clearly), so disable Nagle here: small responses otherwise wait for
        // the client's delayed ACK, 40 ms.
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|stream| {
            let stream = stream?;
            if let Err(err) = stream.set_nodelay(true) {
                tracing::debug!(%err, "cannot set TCP_NODELAY");
            }
            Ok::<_, std::io::Error>(stream)
        });
        // The SQL gateway below calls this node's KV service in-process.
        let kv_service = KvService::new(ctx.clone());
        let server = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .initial_stream_window_size(tessera_kv::STREAM_WINDOW_BYTES)
            .initial_connection_window_size(tessera_kv::CONNECTION_WINDOW_BYTES)
            .add_service(
                RaftTransportServer::new(RaftTransportService::new(ctx.clone()))
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
            )
            .add_service(
                KvServer::new(kv_service.clone())
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
            )
            .add_service(NodeServer::new(NodeService::new(ctx.clone())))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = shutdown_rx.await;
            });
        let server = tokio::spawn(server);

        // Introduce ourselves to the join list, so peers that restarted or
        // never met us learn our address; retry in the background.
        for peer in config.join.iter().filter(|a| **a != advertise) {
            let peer = peer.clone();
            let (me, my_address, book) = (config.node_id, advertise.clone(), addresses.clone());
            tokio::spawn(async move {
                for attempt in 0..60u32 {
                    match tessera_kv::services::hello(&peer, me, &my_address).await {
                        Ok(answer) => {
                            book.insert(answer.node_id, answer.address);
                            return;
                        }
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(
                                200 * u64::from(attempt.min(10) + 1),
                            ))
                            .await
                        }
                    }
                }
            });
        }
        if store.handle().cluster_id() == 0 {
            tokio::spawn(join_cluster(
                store.handle(),
                config.join.clone(),
                advertise.clone(),
            ));
        }
        // SQL: one engine per node over the cluster, this node's address
        // first so that its own ranges answer without a hop.
        let mut kv_nodes = vec![advertise.clone()];
        kv_nodes.extend(config.join.iter().filter(|a| **a != advertise).cloned());
        let gc = (config.gc.interval_secs > 0).then(|| {
            let client = TxnClient::new(
                KvClient::new(kv_nodes.clone(), KvClientConfig::default()),
                TxnOptions::default(),
            );
            tokio::spawn(collect_garbage(
                store.handle(),
                client,
                Duration::from_secs(config.gc.ttl_secs),
                Duration::from_secs(config.gc.interval_secs),
            ))
        });
        let split = &config.split;
        let autosplit = (split.check_interval_secs > 0).then(|| {
            tokio::spawn(crate::autosplit::run(
                store.handle(),
                measured,
                KvClient::new(kv_nodes.clone(), KvClientConfig::default()),
                addresses.clone(),
                crate::autosplit::Thresholds {
                    max_range_bytes: split.max_range_bytes,
                    max_range_qps: split.max_range_qps,
                    settle_after: Duration::from_secs(split.settle_after_secs),
                },
                Duration::from_secs(split.check_interval_secs),
            ))
        });
        // The SQL gateway's client, this node's address first so that its
        // own ranges answer without a hop; it counts what it asks of each
        // range for the leases that follow the workload.
        let mut gateway_kv = KvClient::new(kv_nodes.clone(), KvClientConfig::default())
            .on_node(advertise.clone(), kv_service);
        if config.rebalance.follow_workload {
            gateway_kv = gateway_kv.counting_requests();
        }
        let rebalance = (config.rebalance.interval_secs > 0).then(|| {
            tokio::spawn(crate::rebalance::run(
                store.handle(),
                addresses.clone(),
                KvClient::new(kv_nodes.clone(), KvClientConfig::default()),
                TxnClient::new(
                    KvClient::new(kv_nodes.clone(), KvClientConfig::default()),
                    TxnOptions::default(),
                ),
                config.rebalance.follow_workload.then(|| gateway_kv.clone()),
                Duration::from_secs(config.rebalance.interval_secs),
            ))
        });
        let kv = ClusterKv::new(
            TxnClient::new(
                gateway_kv,
                TxnOptions {
                    // Every statement reads the schema version: the oracle
                    // reads it with each batch of timestamps.
                    watched_key: tessera_sql::catalog::VERSION_KEY.to_vec(),
                    async_commit: config.txn.async_commit,
                    ..TxnOptions::default()
                },
            ),
            tokio::runtime::Handle::current(),
        );
        let engine = tessera_sql::SqlEngine::for_node(Arc::new(kv), config.node_id);
        let sql = tokio::spawn(tessera_pgwire::serve(sql_listener, engine, sql_auth));

        tracing::info!(node = config.node_id, address = %advertise, sql = %sql_address, data_dir = %data_dir.display(), "node started");
        Ok(Node {
            store,
            server,
            shutdown,
            closing,
            address: advertise,
            sql,
            sql_address,
            gc,
            autosplit,
            rebalance,
        })
    }

    /// The address the SQL server listens on (with the actual port if
    /// `sql_addr` asked for port 0).
    pub fn sql_address(&self) -> SocketAddr {
        self.sql_address
    }

    /// The node's gRPC address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// This node's store.
    pub fn store(&self) -> StoreHandle {
        self.store.handle()
    }

    /// Stops serving, finishes the store loop's turn and closes storage.
    pub async fn shutdown(mut self) {
        if let Some(gc) = self.gc.take() {
            gc.abort();
        }
        for task in [self.autosplit.take(), self.rebalance.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
        // Dropping the SQL server closes its connections.
        self.sql.abort();
        let _ = (&mut self.sql).await;
        let _ = self.closing.send(true);
        let _ = self.shutdown.send(());
        if tokio::time::timeout(SERVER_STOP_WAIT, &mut self.server)
            .await
            .is_err()
        {
            tracing::warn!(
                "the gRPC server did not stop within {SERVER_STOP_WAIT:?}: stopping without it"
            );
        }
        let mut store = self.store;
        tokio::task::spawn_blocking(move || store.stop()).await.ok();
    }
}
