//! gRPC servers: the Raft transport, the KV service and the node service.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use crate::ClientError;
use tessera_proto::kv::{self as pb, kv_server::Kv, route_error, RouteError};
use tessera_proto::meta::{
    mutation, Delete, Mutation, NodeRecord, PrepareSplit, Put, RangeDescriptor, StoreIdent,
};
use tessera_proto::node::{self as node_pb, node_client::NodeClient, node_server::Node};
use tessera_proto::raft::{raft_transport_server::RaftTransport, RaftBatch, RaftStreamDone};
use tessera_proto::txn::{txn_command, TxnCommand, TxnResult};
use tessera_raft::bootstrap_layout;
use tessera_raft::{Error, StoreHandle};
use tessera_types::keys;
use tessera_types::{NodeId, Timestamp};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::deadlock::DeadlockDetector;
use crate::range_ids::RangeIdAllocator;
use crate::tso::TsoService;
use crate::AddressBook;

/// How long a split waits before trying again to prepare in a range that
/// another split or a membership change holds.
const SPLIT_RETRY_PAUSE: Duration = Duration::from_millis(20);

/// What the services of one node share.
#[derive(Clone)]
pub struct NodeContext {
    /// This node's store.
    pub store: StoreHandle,
    /// Where other nodes are.
    pub addresses: AddressBook,
    /// The address other nodes reach this node's gRPC server at.
    pub advertise_address: String,
    /// The gRPC addresses of the nodes to bootstrap or join with.
    pub join: Vec<String>,
    /// How long a KV request may wait for its range (an election, a quorum).
    pub request_timeout: Duration,
    /// Replicas per range at bootstrap (fewer if there are fewer nodes).
    pub replication_factor: usize,
    /// Runs the SQL layer's flows (None: the node runs no SQL).
    pub flows: Option<Arc<dyn crate::flow::FlowEvaluator>>,
    /// Turns true when the node begins to stop (see [`closed`]).
    pub closing: tokio::sync::watch::Receiver<bool>,
}

/// Resolves once the node begins to stop (or its stopper is gone). The
/// streams other nodes keep open to it (Raft messages, pipelined calls) end
/// then, once what they carried is answered: the gRPC server's graceful
/// stop waits for every open stream, and these would never end on their
/// own.
pub async fn closed(mut closing: tokio::sync::watch::Receiver<bool>) {
    let _ = closing.wait_for(|closing| *closing).await;
}

/// Receives Raft message streams from other nodes.
pub struct RaftTransportService {
    ctx: NodeContext,
}

impl RaftTransportService {
    /// The service for one node.
    pub fn new(ctx: NodeContext) -> Self {
        Self { ctx }
    }
}

#[tonic::async_trait]
impl RaftTransport for RaftTransportService {
    async fn stream(
        &self,
        request: Request<Streaming<RaftBatch>>,
    ) -> Result<Response<RaftStreamDone>, Status> {
        let mut stream = request.into_inner();
        let closed = closed(self.ctx.closing.clone());
        tokio::pin!(closed);
        loop {
            let batch = tokio::select! {
                batch = stream.next() => match batch {
                    Some(batch) => batch?,
                    None => break,
                },
                _ = &mut closed => break,
            };
            let ours = self.ctx.store.cluster_id();
            if ours == 0 || batch.cluster_id != ours {
                tracing::warn!(
                    from = batch.from_node,
                    "refusing raft messages from node {} of cluster {:016x} (this node: cluster {:016x})",
                    batch.from_node,
                    batch.cluster_id,
                    ours
                );
                return Err(Status::failed_precondition(format!(
                    "node {} belongs to cluster {ours:016x}, not {:016x}",
                    self.ctx.store.node_id(),
                    batch.cluster_id
                )));
            }
            if self.ctx.store.deliver(batch.envelopes).is_err() {
                return Err(Status::unavailable("store stopped"));
            }
        }
        Ok(Response::new(RaftStreamDone {}))
    }
}

/// Entries a flow reads from the store at a time (each read is confirmed
/// with the range's quorum first), and hands to the flow at a time.
const FLOW_READ_CHUNK: usize = 8192;
const FLOW_PUSH_CHUNK: usize = 1024;

/// How long a lease transfer may take before the leader gives up on it.
const TRANSFER_WAIT: Duration = Duration::from_secs(5);

/// How often a leader that still leads begins the transfer again: raft-rs
/// abandons one the transferee did not take within an election timeout
/// (it was catching up, or its TimeoutNow was lost), and ignores a repeat
/// of one under way.
const TRANSFER_RETRY: Duration = Duration::from_millis(500);

/// How long a learner may take to catch up before it is promoted.
const CATCH_UP_WAIT: Duration = Duration::from_secs(60);

/// Whether a flow stopped taking rows.
enum Stopped {
    No,
    /// After the last row read.
    AtEnd,
    /// Before this key, which the next request resumes from.
    Before(Vec<u8>),
}

/// Hands the rows read to the flow, a chunk at a time, until it stops.
fn push_rows(flow: &mut dyn crate::flow::FlowRun, mut kvs: Vec<(Vec<u8>, Vec<u8>)>) -> Stopped {
    while !kvs.is_empty() {
        let rest = kvs.split_off(kvs.len().min(FLOW_PUSH_CHUNK));
        let after_last = kvs.last().map(|(key, _)| [key.as_slice(), &[0]].concat());
        if !flow.push(kvs) {
            return match after_last {
                Some(next) if !rest.is_empty() => Stopped::Before(next),
                _ => Stopped::AtEnd,
            };
        }
        kvs = rest;
    }
    Stopped::No
}

/// The KV service.
#[derive(Clone)]
pub struct KvService {
    ctx: NodeContext,
    /// This node's timestamp oracle, which serves while the node leads the
    /// meta range.
    tso: Arc<TsoService>,
    /// The cluster's wait-for graph, kept while this node leads the meta
    /// range.
    deadlocks: DeadlockDetector,
    /// Range ids for splits, handed out while this node leads the meta
    /// range.
    range_ids: Arc<RangeIdAllocator>,
    /// A client of the whole cluster, for requests this node makes to
    /// others (the oracle, the meta range); made on first use.
    cluster: Arc<parking_lot::Mutex<Option<crate::KvClient>>>,
}

impl KvService {
    /// The service for one node.
    pub fn new(ctx: NodeContext) -> Self {
        let tso = Arc::new(TsoService::new(ctx.store.clone()));
        Self {
            range_ids: Arc::new(RangeIdAllocator::new(ctx.store.clone())),
            ctx,
            tso,
            deadlocks: DeadlockDetector::new(),
            cluster: Arc::new(parking_lot::Mutex::new(None)),
        }
    }

    /// Turns true when the node begins to stop.
    pub(crate) fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.ctx.closing.clone()
    }

    /// A timestamp from the oracle, wherever it is served.
    async fn fresh_timestamp(&self) -> Result<Timestamp, Status> {
        match self.tso.timestamps(1).await {
            Ok((ts, _)) => return Ok(ts),
            Err(tessera_raft::Error::NotLeader { .. }) => {}
            Err(err) => return Err(Status::unavailable(format!("timestamp oracle: {err}"))),
        }
        self.cluster_client()
            .timestamp()
            .await
            .map_err(|err| Status::unavailable(format!("timestamp oracle: {err}")))
    }

    /// The client this node reaches other nodes' services with.
    fn cluster_client(&self) -> crate::KvClient {
        let mut cached = self.cluster.lock();
        if let Some(client) = cached.as_ref() {
            return client.clone();
        }
        let mut nodes: Vec<String> = self
            .ctx
            .addresses
            .all()
            .into_iter()
            .map(|(_, address)| address)
            .collect();
        if !nodes.contains(&self.ctx.advertise_address) {
            nodes.push(self.ctx.advertise_address.clone());
        }
        let client = crate::KvClient::new(nodes, crate::KvClientConfig::default());
        // Keep it once it knows more than this node.
        if client.node_count() > 1 {
            *cached = Some(client.clone());
        }
        client
    }

    /// Proposes a transactional command. A one-phase commit that reaches a
    /// leader new to its term gets it a timestamp from the oracle first.
    async fn txn(&self, command: TxnCommand) -> Result<Result<TxnResult, RouteError>, Status> {
        let store = &self.ctx.store;
        let mut need = None;
        let outcome = self
            .run(async {
                match store.txn(command.clone()).await {
                    Err(tessera_raft::Error::NeedTimestamp { term, .. }) => {
                        need = Some(term);
                        Ok(TxnResult::default())
                    }
                    other => other,
                }
            })
            .await?;
        let Some(term) = need else {
            return Ok(outcome);
        };
        let ts = self.fresh_timestamp().await?;
        let key = tessera_raft::txn_command_keys(&command)
            .first()
            .map(|key| key.to_vec())
            .unwrap_or_default();
        self.run(async {
            store.observe_timestamp(key, ts, term).await?;
            store.txn(command).await
        })
        .await
    }

    /// Runs a store request under the request timeout, turning routing
    /// errors into a `RouteError` for the client to follow.
    async fn run<T>(
        &self,
        request: impl std::future::Future<Output = tessera_raft::Result<T>>,
    ) -> Result<Result<T, RouteError>, Status> {
        let result = match tokio::time::timeout(self.ctx.request_timeout, request).await {
            Ok(result) => result,
            Err(_) => {
                return Ok(Err(route(route_error::Kind::Unavailable(
                    pb::Unavailable {
                        reason: format!(
                            "no answer within {:?} (no leader or no quorum)",
                            self.ctx.request_timeout
                        ),
                    },
                ))))
            }
        };
        use tessera_raft::Error;
        match result {
            Ok(value) => Ok(Ok(value)),
            Err(Error::NotLeader { range_id, leader }) => {
                let leader_node_id = leader.unwrap_or(0);
                let leader_address = leader
                    .and_then(|n| self.ctx.addresses.get(n))
                    .unwrap_or_default();
                Ok(Err(route(route_error::Kind::NotLeader(pb::NotLeader {
                    range_id,
                    leader_node_id,
                    leader_address,
                }))))
            }
            Err(Error::RangeNotFound { key }) => Ok(Err(route(route_error::Kind::RangeNotFound(
                pb::RangeNotFound {
                    key,
                    nodes: self
                        .ctx
                        .addresses
                        .all()
                        .into_iter()
                        .map(|(_, a)| a)
                        .collect(),
                },
            )))),
            Err(Error::CrossRange { key }) => {
                Ok(Err(route(route_error::Kind::CrossRange(pb::CrossRange {
                    key,
                }))))
            }
            Err(Error::ProposalDropped) => Ok(Err(route(route_error::Kind::Unavailable(
                pb::Unavailable {
                    reason: "proposal dropped by a leadership change".into(),
                },
            )))),
            Err(Error::NeedTimestamp { .. }) => Ok(Err(route(route_error::Kind::Unavailable(
                pb::Unavailable {
                    reason: "a new leader is learning the time; retry".into(),
                },
            )))),
            Err(Error::Frozen { range_id }) => Ok(Err(route(route_error::Kind::Unavailable(
                pb::Unavailable {
                    reason: format!("range {range_id} is being merged; retry"),
                },
            )))),
            Err(Error::InvalidInput(msg)) => Err(Status::invalid_argument(msg)),
            Err(Error::Changed(msg)) => Err(Status::aborted(msg)),
            Err(Error::Stopped) => Err(Status::unavailable("store stopped")),
            Err(err) => Err(Status::internal(err.to_string())),
        }
    }

    async fn write(&self, mutations: Vec<Mutation>) -> Result<Option<RouteError>, Status> {
        for m in &mutations {
            let key = match &m.op {
                Some(mutation::Op::Put(put)) => &put.key,
                Some(mutation::Op::Delete(delete)) => &delete.key,
                None => return Err(Status::invalid_argument("mutation without an operation")),
            };
            if keys::is_reserved_key(key) {
                return Err(Status::invalid_argument(format!(
                    "key {key:?} is reserved for the system (user keys start at 0x02)"
                )));
            }
        }
        if mutations.is_empty() {
            return Err(Status::invalid_argument(
                "a batch needs at least one mutation",
            ));
        }
        Ok(self.run(self.ctx.store.write(mutations)).await?.err())
    }
}

impl KvService {
    /// Answers one call of a pipeline as its unary call would.
    pub(crate) async fn answer(&self, call: crate::pipeline::Call) -> crate::pipeline::Reply {
        use crate::pipeline::{failed, Call, Reply};
        let reply = match call {
            Call::MvccGet(request) => Kv::mvcc_get(self, Request::new(request))
                .await
                .map(|r| Reply::MvccGet(r.into_inner())),
            Call::Timestamps(request) => Kv::timestamps(self, Request::new(request))
                .await
                .map(|r| Reply::Timestamps(r.into_inner())),
            Call::Txn(request) => Kv::txn(self, Request::new(request))
                .await
                .map(|r| Reply::Txn(r.into_inner())),
        };
        reply.unwrap_or_else(|status| failed(&status))
    }
}

fn route(kind: route_error::Kind) -> RouteError {
    RouteError { kind: Some(kind) }
}

#[tonic::async_trait]
impl Kv for KvService {
    type PipelineStream = crate::pipeline::Replies;

    async fn pipeline(
        &self,
        request: Request<Streaming<pb::PipelineRequest>>,
    ) -> Result<Response<Self::PipelineStream>, Status> {
        Ok(Response::new(crate::pipeline::serve(
            Arc::new(self.clone()),
            request.into_inner(),
        )))
    }

    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        let key = request.into_inner().key;
        let response = match self.run(self.ctx.store.get(key)).await? {
            Ok(Some(value)) => pb::GetResponse {
                error: None,
                found: true,
                value,
            },
            Ok(None) => pb::GetResponse::default(),
            Err(error) => pb::GetResponse {
                error: Some(error),
                ..Default::default()
            },
        };
        Ok(Response::new(response))
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let pb::PutRequest { key, value } = request.into_inner();
        let mutation = Mutation {
            op: Some(mutation::Op::Put(Put { key, value })),
        };
        let error = self.write(vec![mutation]).await?;
        Ok(Response::new(pb::PutResponse { error }))
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let key = request.into_inner().key;
        let mutation = Mutation {
            op: Some(mutation::Op::Delete(Delete { key })),
        };
        let error = self.write(vec![mutation]).await?;
        Ok(Response::new(pb::DeleteResponse { error }))
    }

    async fn batch(
        &self,
        request: Request<pb::BatchRequest>,
    ) -> Result<Response<pb::BatchResponse>, Status> {
        let error = self.write(request.into_inner().mutations).await?;
        Ok(Response::new(pb::BatchResponse { error }))
    }

    async fn scan(
        &self,
        request: Request<pb::ScanRequest>,
    ) -> Result<Response<pb::ScanResponse>, Status> {
        let pb::ScanRequest { start, end, limit } = request.into_inner();
        let limit = match limit {
            0 => 1000,
            n => n.min(100_000) as usize,
        };
        let response = match self.run(self.ctx.store.scan(start, end, limit)).await? {
            Ok((kvs, resume_key)) => pb::ScanResponse {
                error: None,
                kvs: kvs
                    .into_iter()
                    .map(|(key, value)| tessera_proto::meta::KeyValue { key, value })
                    .collect(),
                resume_key: resume_key.unwrap_or_default(),
            },
            Err(error) => pb::ScanResponse {
                error: Some(error),
                ..Default::default()
            },
        };
        Ok(Response::new(response))
    }

    async fn txn(
        &self,
        request: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        let command = request
            .into_inner()
            .command
            .ok_or_else(|| Status::invalid_argument("a transactional request needs a command"))?;
        check_txn_command(&command)?;
        let response = match KvService::txn(self, command).await? {
            Ok(result) => pb::TxnResponse {
                error: None,
                result: Some(result),
            },
            Err(error) => pb::TxnResponse {
                error: Some(error),
                result: None,
            },
        };
        Ok(Response::new(response))
    }

    async fn mvcc_get(
        &self,
        request: Request<pb::MvccGetRequest>,
    ) -> Result<Response<pb::MvccGetResponse>, Status> {
        let pb::MvccGetRequest { key, ts, latest } = request.into_inner();
        let read = self.ctx.store.mvcc_get(key, Timestamp(ts), latest);
        let response = match self.run(read).await? {
            Ok(Ok(value)) => pb::MvccGetResponse {
                found: value.is_some(),
                value: value.unwrap_or_default(),
                ..Default::default()
            },
            Ok(Err(txn_error)) => pb::MvccGetResponse {
                txn_error: Some(txn_error),
                ..Default::default()
            },
            Err(error) => pb::MvccGetResponse {
                error: Some(error),
                ..Default::default()
            },
        };
        Ok(Response::new(response))
    }

    async fn mvcc_scan(
        &self,
        request: Request<pb::MvccScanRequest>,
    ) -> Result<Response<pb::MvccScanResponse>, Status> {
        let pb::MvccScanRequest {
            start,
            end,
            ts,
            limit,
            latest,
        } = request.into_inner();
        let limit = match limit {
            0 => 1000,
            n => n.min(100_000) as usize,
        };
        let read = self
            .ctx
            .store
            .mvcc_scan(start, end, Timestamp(ts), limit, latest);
        let response = match self.run(read).await? {
            Ok(Ok((kvs, resume_key))) => pb::MvccScanResponse {
                kvs: kvs
                    .into_iter()
                    .map(|(key, value)| tessera_proto::meta::KeyValue { key, value })
                    .collect(),
                resume_key: resume_key.unwrap_or_default(),
                ..Default::default()
            },
            Ok(Err(txn_error)) => pb::MvccScanResponse {
                txn_error: Some(txn_error),
                ..Default::default()
            },
            Err(error) => pb::MvccScanResponse {
                error: Some(error),
                ..Default::default()
            },
        };
        Ok(Response::new(response))
    }

    async fn scan_locks(
        &self,
        request: Request<pb::ScanLocksRequest>,
    ) -> Result<Response<pb::ScanLocksResponse>, Status> {
        let pb::ScanLocksRequest {
            start,
            end,
            max_ts,
            limit,
        } = request.into_inner();
        let limit = match limit {
            0 => 1000,
            n => n.min(100_000) as usize,
        };
        let scan = self
            .ctx
            .store
            .scan_locks(start, end, Timestamp(max_ts), limit);
        let response = match self.run(scan).await? {
            Ok((locks, resume_key)) => pb::ScanLocksResponse {
                error: None,
                locks,
                resume_key: resume_key.unwrap_or_default(),
            },
            Err(error) => pb::ScanLocksResponse {
                error: Some(error),
                ..Default::default()
            },
        };
        Ok(Response::new(response))
    }

    async fn wait_for(
        &self,
        request: Request<pb::WaitForRequest>,
    ) -> Result<Response<pb::WaitForResponse>, Status> {
        let request = request.into_inner();
        // Only the meta range's leader keeps the graph: a read of the
        // oracle's mark confirms the leadership (or names the leader).
        let confirm = self.ctx.store.get(keys::TSO_MARK_KEY.to_vec());
        if let Err(error) = self.run(confirm).await? {
            return Ok(Response::new(pb::WaitForResponse {
                error: Some(error),
                ..Default::default()
            }));
        }
        if request.clean_up {
            self.deadlocks.clean_up(request.waiter);
            return Ok(Response::new(pb::WaitForResponse::default()));
        }
        let response = match self
            .deadlocks
            .wait(request.waiter, request.holder, &request.key)
        {
            Ok(()) => pb::WaitForResponse::default(),
            Err(cycle) => {
                let (cycle_txns, cycle_keys) = cycle.waits.into_iter().unzip();
                pb::WaitForResponse {
                    error: None,
                    deadlock: true,
                    cycle_txns,
                    cycle_keys,
                }
            }
        };
        Ok(Response::new(response))
    }

    async fn split(
        &self,
        request: Request<pb::SplitRequest>,
    ) -> Result<Response<pb::SplitResponse>, Status> {
        let key = request.into_inner().key;
        if keys::is_system_key(&key) || key.as_slice() == keys::USER_MIN {
            return Err(Status::invalid_argument(format!(
                "cannot split at {key:02x?}: ranges split only inside the user keyspace (above 0x02)"
            )));
        }
        let failed = |error| {
            Ok(Response::new(pb::SplitResponse {
                error: Some(error),
                ..Default::default()
            }))
        };
        // Only the range's leader splits it: ask the local replica first, so
        // a follower answers with the leader instead of wasting an id.
        let probe = self.ctx.store.split_check(key.clone());
        if let Err(error) = self.run(probe).await? {
            return failed(error);
        }
        let cluster = self.cluster_client();
        let new_range_id = cluster
            .allocate_range_id()
            .await
            .map_err(|err| Status::unavailable(format!("allocating a range id: {err}")))?;
        let store = &self.ctx.store;
        // Another split of the range (or a membership change) in progress
        // refuses this one (`Changed`) for the few milliseconds it takes:
        // wait for it, within the request's time.
        let prepare = async {
            loop {
                match store.prepare_split(key.clone(), new_range_id).await {
                    Ok(range) => return Ok(Some(range)),
                    Err(Error::AlreadySplit { .. }) => return Ok(None),
                    Err(Error::Changed(_)) => tokio::time::sleep(SPLIT_RETRY_PAUSE).await,
                    Err(err) => return Err(err),
                }
            }
        };
        let prepared = match self.run(prepare).await? {
            Ok(prepared) => prepared,
            Err(error) => {
                tracing::debug!(?key, new_range_id, ?error, "split: the prepare failed");
                return failed(error);
            }
        };
        tracing::debug!(
            ?key,
            new_range_id,
            range = ?prepared.as_ref().map(|r| r.range_id),
            "split: prepared (no range: the key starts one already)"
        );
        if let Some(range) = &prepared {
            tessera_types::failpoint::crash_if_armed(tessera_types::failpoint::SPLIT_BEFORE_META);
            // The commit point: the meta range records both sides.
            let (left, right) = crate::splits::split_descriptors(range, &key, new_range_id);
            match cluster.record_ranges(vec![left, right]).await {
                Ok(()) => {}
                Err(ClientError::Changed(why)) => {
                    // A newer record stands in the way: the split is aborted.
                    let pending = PrepareSplit {
                        split_key: key.clone(),
                        new_range_id,
                        generation: range.generation,
                    };
                    let settled =
                        crate::splits::settle_split(&cluster, store, range, &pending).await;
                    return Err(Status::aborted(format!(
                        "the meta range did not record the split of range {} ({why}); \
                         the split is {settled:?}",
                        range.range_id
                    )));
                }
                // The outcome is unknown: the range's leader settles the
                // pending split later (see the server's upkeep).
                Err(err) => {
                    tracing::debug!(?key, new_range_id, %err, "split: recording it failed");
                    return Err(Status::unavailable(format!("recording the split: {err}")));
                }
            }
            tessera_types::failpoint::crash_if_armed(tessera_types::failpoint::SPLIT_AFTER_META);
        }
        // A leadership transfer under way has raft-rs drop proposals until
        // it ends (the new leader then settles the split it inherits): try
        // the last step again meanwhile, within the request's time.
        let finish = async {
            loop {
                match store.finish_split(key.clone(), new_range_id).await {
                    Err(Error::ProposalDropped) => tokio::time::sleep(SPLIT_RETRY_PAUSE).await,
                    other => return other,
                }
            }
        };
        let outcome = match self.run(finish).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(error)) => {
                tracing::debug!(?key, new_range_id, ?error, "split: the last step failed");
                return failed(error);
            }
            Err(status) => {
                tracing::debug!(?key, new_range_id, ?status, "split: the last step failed");
                return Err(status);
            }
        };
        tracing::debug!(
            ?key,
            new_range_id,
            left = outcome.left.range_id,
            right = outcome.right.range_id,
            created = outcome.created,
            "split: done"
        );
        if prepared.is_none() {
            // The key started a range already: record the two ranges again,
            // a repair if the meta range did not record them as they are.
            cluster
                .update_meta(vec![outcome.left.clone(), outcome.right.clone()])
                .await
                .map_err(|err| Status::unavailable(format!("recording the split: {err}")))?;
        }
        Ok(Response::new(pb::SplitResponse {
            error: None,
            left: Some(outcome.left),
            right: Some(outcome.right),
            created: outcome.created,
        }))
    }

    async fn wait_lock_release(
        &self,
        request: Request<pb::WaitLockReleaseRequest>,
    ) -> Result<Response<pb::WaitLockReleaseResponse>, Status> {
        let request = request.into_inner();
        let timeout = Duration::from_millis(u64::from(request.timeout_ms.min(10_000)));
        let wait =
            self.ctx
                .store
                .wait_lock_released(&request.key, Timestamp(request.holder), timeout);
        let response = match self.run(wait).await? {
            Ok(released) => pb::WaitLockReleaseResponse {
                error: None,
                released,
            },
            Err(error) => pb::WaitLockReleaseResponse {
                error: Some(error),
                released: false,
            },
        };
        Ok(Response::new(response))
    }

    async fn allocate_range_id(
        &self,
        _request: Request<pb::AllocateRangeIdRequest>,
    ) -> Result<Response<pb::AllocateRangeIdResponse>, Status> {
        let response = match self.run(self.range_ids.allocate()).await? {
            Ok(range_id) => pb::AllocateRangeIdResponse {
                error: None,
                range_id,
            },
            Err(error) => pb::AllocateRangeIdResponse {
                error: Some(error),
                range_id: 0,
            },
        };
        Ok(Response::new(response))
    }

    async fn update_meta(
        &self,
        request: Request<pb::UpdateMetaRequest>,
    ) -> Result<Response<pb::UpdateMetaResponse>, Status> {
        let pb::UpdateMetaRequest {
            descriptors,
            deleted_end_keys,
            nodes,
        } = request.into_inner();
        if descriptors.is_empty() && nodes.is_empty() {
            return Err(Status::invalid_argument("nothing to record"));
        }
        if descriptors.is_empty() && !deleted_end_keys.is_empty() {
            return Err(Status::invalid_argument(
                "meta records are deleted only by the descriptors that replace them",
            ));
        }
        if !descriptors.is_empty() {
            // Deleted records must be older than every descriptor recorded.
            let generation = descriptors.iter().map(|d| d.generation).min().unwrap_or(0);
            let update = tessera_proto::meta::MetaUpdate {
                descriptors,
                deleted_end_keys,
                generation,
            };
            if let Err(error) = self.run(self.ctx.store.update_meta(update)).await? {
                return Ok(Response::new(pb::UpdateMetaResponse { error: Some(error) }));
            }
        }
        let mutations: Vec<Mutation> = nodes
            .iter()
            .map(|n| {
                self.ctx.addresses.insert(n.node_id, n.address.clone());
                Mutation {
                    op: Some(mutation::Op::Put(Put {
                        key: keys::node_key(n.node_id),
                        value: prost::Message::encode_to_vec(n),
                    })),
                }
            })
            .collect();
        let error = if mutations.is_empty() {
            None
        } else {
            self.run(self.ctx.store.write(mutations)).await?.err()
        };
        Ok(Response::new(pb::UpdateMetaResponse { error }))
    }

    async fn flow(
        &self,
        request: Request<pb::FlowRequest>,
    ) -> Result<Response<pb::FlowResponse>, Status> {
        let pb::FlowRequest {
            start,
            end,
            ts,
            spec,
        } = request.into_inner();
        let Some(evaluator) = &self.ctx.flows else {
            return Err(Status::unimplemented("this node runs no SQL flows"));
        };
        let mut flow = evaluator.start(&spec);
        let mut cursor = start;
        let mut read_any = false;
        let (resume_key, txn_error) = loop {
            let read = self.ctx.store.mvcc_scan(
                cursor.clone(),
                end.clone(),
                Timestamp(ts),
                FLOW_READ_CHUNK,
                false,
            );
            match self.run(read).await? {
                Ok(Ok((kvs, resume))) => {
                    read_any = true;
                    // Evaluating the rows is CPU work: off the async threads.
                    let (stopped, running) = tokio::task::spawn_blocking(move || {
                        let stopped = push_rows(flow.as_mut(), kvs);
                        (stopped, flow)
                    })
                    .await
                    .map_err(|e| Status::internal(format!("flow task failed: {e}")))?;
                    flow = running;
                    match (stopped, resume) {
                        (Stopped::Before(next), _) => break (next, None),
                        (_, None) => break (Vec::new(), None),
                        (Stopped::No, Some(next)) => cursor = next,
                        (Stopped::AtEnd, Some(next)) => break (next, None),
                    }
                }
                Ok(Err(txn_error)) => break (cursor, Some(txn_error)),
                Err(error) if !read_any => {
                    return Ok(Response::new(pb::FlowResponse {
                        error: Some(error),
                        ..Default::default()
                    }))
                }
                // The range ended at the cursor (or its leadership moved):
                // the gateway goes on from there.
                Err(_) => break (cursor, None),
            }
        };
        Ok(Response::new(pb::FlowResponse {
            error: None,
            txn_error,
            output: flow.finish(),
            resume_key,
        }))
    }

    async fn lease_holder(
        &self,
        request: Request<pb::LeaseHolderRequest>,
    ) -> Result<Response<pb::LeaseHolderResponse>, Status> {
        let key = request.into_inner().key;
        // Answers only if this node leads the range (else: where it is).
        let response = match self.run(self.ctx.store.range_status(key)).await? {
            Ok(status) => pb::LeaseHolderResponse {
                error: None,
                node_id: self.ctx.store.node_id(),
                measured: status.size.is_some(),
                size_bytes: status.size.map_or(0, |s| s.bytes),
                keys: status.size.map_or(0, |s| s.keys),
                qps: status.qps,
                descriptor: status.descriptor,
            },
            Err(error) => pb::LeaseHolderResponse {
                error: Some(error),
                ..Default::default()
            },
        };
        Ok(Response::new(response))
    }

    async fn transfer_leader(
        &self,
        request: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        let pb::TransferLeaderRequest {
            range_id, node_id, ..
        } = request.into_inner();
        let failed = |error| {
            Ok(Response::new(pb::TransferLeaderResponse {
                error: Some(error),
                ..Default::default()
            }))
        };
        let begin = self.ctx.store.transfer_leader(range_id, node_id);
        if let Err(error) = self.run(begin).await? {
            return failed(error);
        }
        // Answer once this replica sees the new leader (it learns of it from
        // the new leader's first message).
        let deadline = tokio::time::Instant::now() + TRANSFER_WAIT;
        let mut begun = tokio::time::Instant::now();
        loop {
            let leader = self
                .ctx
                .store
                .replicas()
                .await
                .map_err(|err| Status::unavailable(err.to_string()))?
                .into_iter()
                .find(|r| r.range_id == range_id)
                .and_then(|r| r.leader_node);
            if leader == Some(node_id) {
                return Ok(Response::new(pb::TransferLeaderResponse {
                    error: None,
                    leader_node_id: node_id,
                }));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                // Not retried: the node is down or cannot catch up.
                return Err(Status::failed_precondition(format!(
                    "node {node_id} did not take the lease of range {range_id} within \
                     {TRANSFER_WAIT:?}: is it down?"
                )));
            }
            if leader == Some(self.ctx.store.node_id()) && now >= begun + TRANSFER_RETRY {
                begun = now;
                let again = self.ctx.store.transfer_leader(range_id, node_id);
                if let Err(error) = self.run(again).await? {
                    return failed(error);
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn change_replicas(
        &self,
        request: Request<pb::ChangeReplicasRequest>,
    ) -> Result<Response<pb::ChangeReplicasResponse>, Status> {
        use pb::change_replicas_request::Kind;
        use tessera_raft::ReplicaChange;
        let request = request.into_inner();
        if !request.address.is_empty() {
            self.ctx
                .addresses
                .insert(request.node_id, request.address.clone());
        }
        let change = match request.kind() {
            Kind::AddLearner => ReplicaChange::AddLearner(request.node_id),
            Kind::RemoveLearner => ReplicaChange::Remove(request.node_id),
            Kind::LeaveJoint => ReplicaChange::LeaveJoint,
            Kind::EnterJoint => ReplicaChange::EnterJoint {
                add: request.node_id,
                remove: request.remove_node_id,
            },
        };
        let range_id = request.range_id;
        let failed = |error| {
            Ok(Response::new(pb::ChangeReplicasResponse {
                error: Some(error),
                descriptor: None,
            }))
        };
        let local = self.ctx.store.replica(range_id).await;
        let generation = local.map_err(|e| Status::unavailable(e.to_string()))?;
        if let Some(found) = generation.and_then(|r| r.descriptor).map(|d| d.generation) {
            if request.generation != 0 && found != request.generation {
                return Err(Status::aborted(format!(
                    "range {range_id} is at generation {found}, not {}: it changed meanwhile",
                    request.generation
                )));
            }
        }
        // A learner is promoted once it has caught up: its snapshot may take
        // a while to arrive and apply.
        let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
        loop {
            let result = self.ctx.store.change_replicas(range_id, change).await;
            match result {
                Err(tessera_raft::Error::NotCaughtUp {
                    matched, committed, ..
                }) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(Status::failed_precondition(format!(
                            "the learner of range {range_id} on node {} did not catch up \
                             within {CATCH_UP_WAIT:?} ({matched} of {committed} entries): is it down?",
                            request.node_id
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => {
                    if let Err(error) = self.run(std::future::ready(other)).await? {
                        return failed(error);
                    }
                    break;
                }
            }
        }
        let descriptor = self
            .ctx
            .store
            .replica(range_id)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?
            .and_then(|r| r.descriptor);
        Ok(Response::new(pb::ChangeReplicasResponse {
            error: None,
            descriptor,
        }))
    }

    async fn freeze_range(
        &self,
        request: Request<pb::FreezeRangeRequest>,
    ) -> Result<Response<pb::FreezeRangeResponse>, Status> {
        let request = request.into_inner();
        let freeze = self
            .ctx
            .store
            .freeze(request.range_id, request.generation, !request.unfreeze);
        Ok(Response::new(match self.run(freeze).await? {
            Ok(info) => pb::FreezeRangeResponse {
                error: None,
                descriptor: info.descriptor,
                applied_index: info.applied_index,
                gc_threshold: info.gc_threshold,
            },
            Err(error) => pb::FreezeRangeResponse {
                error: Some(error),
                ..Default::default()
            },
        }))
    }

    async fn merge_ranges(
        &self,
        request: Request<pb::MergeRangesRequest>,
    ) -> Result<Response<pb::MergeRangesResponse>, Status> {
        let request = request.into_inner();
        let merge = tessera_proto::meta::Merge {
            right: request.right,
            generation: request.generation,
            right_gc_threshold: request.right_gc_threshold,
            fence: request.fence,
        };
        let merged = self.ctx.store.merge(request.range_id, merge);
        Ok(Response::new(match self.run(merged).await? {
            Ok(merged) => pb::MergeRangesResponse {
                error: None,
                merged: Some(merged),
            },
            Err(error) => pb::MergeRangesResponse {
                error: Some(error),
                merged: None,
            },
        }))
    }

    async fn timestamps(
        &self,
        request: Request<pb::TimestampsRequest>,
    ) -> Result<Response<pb::TimestampsResponse>, Status> {
        let request = request.into_inner();
        let response = match self
            .run(
                self.tso
                    .timestamps_reading(request.count, &request.read_key),
            )
            .await?
        {
            Ok((first, count, read)) => pb::TimestampsResponse {
                error: None,
                first: first.0,
                count,
                read: read.map(|value| pb::ReadValue {
                    found: value.is_some(),
                    value: value.unwrap_or_default(),
                }),
            },
            Err(error) => pb::TimestampsResponse {
                error: Some(error),
                ..Default::default()
            },
        };
        Ok(Response::new(response))
    }
}

/// Refuses transactional writes to the system's reserved keys.
fn check_txn_command(command: &TxnCommand) -> Result<(), Status> {
    let writes: Vec<&[u8]> = match &command.kind {
        Some(txn_command::Kind::Prewrite(p)) => {
            p.mutations.iter().map(|m| m.key.as_slice()).collect()
        }
        Some(txn_command::Kind::AcquirePessimisticLocks(l)) => {
            l.keys.iter().map(Vec::as_slice).collect()
        }
        None => {
            return Err(Status::invalid_argument(
                "transactional command without a kind",
            ))
        }
        _ => Vec::new(),
    };
    match writes.into_iter().find(|key| keys::is_reserved_key(key)) {
        Some(key) => Err(Status::invalid_argument(format!(
            "key {key:?} is reserved for the system (user keys start at 0x02)"
        ))),
        None => Ok(()),
    }
}

/// The node service: hello, bootstrap, status.
pub struct NodeService {
    ctx: NodeContext,
}

impl NodeService {
    /// The service for one node.
    pub fn new(ctx: NodeContext) -> Self {
        Self { ctx }
    }
}

/// Says hello to the node at `address`, introducing `me` (node id 0 for a
/// client), and returns its answer.
pub async fn hello(
    address: &str,
    me: NodeId,
    my_address: &str,
) -> Result<node_pb::HelloResponse, Status> {
    let mut client = node_client(address).await?;
    let request = node_pb::HelloRequest {
        node_id: me,
        address: my_address.to_string(),
    };
    match tokio::time::timeout(Duration::from_secs(5), client.hello(request)).await {
        Ok(response) => Ok(response?.into_inner()),
        Err(_) => Err(Status::unavailable(format!(
            "{address} did not answer hello"
        ))),
    }
}

/// Joins a running cluster through the member at `address`, if that node
/// belongs to one: it records this node (`me` at `my_address`) in the meta
/// range, and the store takes the cluster's id. Returns the cluster id, or
/// None if the member has no cluster yet (it waits for `tessera init`).
pub async fn join(
    store: &StoreHandle,
    address: &str,
    my_address: &str,
) -> Result<Option<u64>, Status> {
    let me = store.node_id();
    let peer = hello(address, me, my_address).await?;
    if peer.cluster_id == 0 {
        return Ok(None);
    }
    let request = node_pb::JoinRequest {
        node_id: me,
        address: my_address.to_string(),
    };
    let cluster_id = node_client(address)
        .await?
        .join(request)
        .await?
        .into_inner()
        .cluster_id;
    let ident = StoreIdent {
        cluster_id,
        node_id: me,
    };
    store
        .bootstrap(ident, Vec::new(), Vec::new())
        .await
        .map_err(|e| Status::failed_precondition(e.to_string()))?;
    Ok(Some(cluster_id))
}

/// Connects to the node service at `address` (host:port).
pub async fn node_client(address: &str) -> Result<NodeClient<tonic::transport::Channel>, Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| Status::invalid_argument(format!("bad address {address}: {e}")))?
        .connect_timeout(Duration::from_secs(3))
        .connect()
        .await
        .map_err(|e| Status::unavailable(format!("cannot reach {address}: {e}")))?;
    Ok(NodeClient::new(channel))
}

fn random_cluster_id() -> u64 {
    loop {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        hasher.write_u32(std::process::id());
        let id = hasher.finish();
        if id != 0 {
            return id;
        }
    }
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn hello(
        &self,
        request: Request<node_pb::HelloRequest>,
    ) -> Result<Response<node_pb::HelloResponse>, Status> {
        let caller = request.into_inner();
        if caller.node_id != 0 && !caller.address.is_empty() {
            self.ctx.addresses.insert(caller.node_id, caller.address);
        }
        Ok(Response::new(node_pb::HelloResponse {
            node_id: self.ctx.store.node_id(),
            cluster_id: self.ctx.store.cluster_id(),
            address: self.ctx.advertise_address.clone(),
        }))
    }

    async fn bootstrap(
        &self,
        _request: Request<node_pb::BootstrapRequest>,
    ) -> Result<Response<node_pb::BootstrapResponse>, Status> {
        if self.ctx.store.cluster_id() != 0 {
            return Err(Status::already_exists(format!(
                "node {} is already part of cluster {:016x}; init runs once",
                self.ctx.store.node_id(),
                self.ctx.store.cluster_id()
            )));
        }
        let me = self.ctx.store.node_id();
        let mut nodes = vec![(me, self.ctx.advertise_address.clone())];
        for address in &self.ctx.join {
            if *address == self.ctx.advertise_address {
                continue;
            }
            let peer = hello(address, me, &self.ctx.advertise_address)
                .await
                .map_err(|e| {
                    Status::unavailable(format!(
                        "node at {address} (from the join list): {}",
                        e.message()
                    ))
                })?;
            if peer.cluster_id != 0 {
                return Err(Status::failed_precondition(format!(
                    "node {} at {address} already belongs to cluster {:016x}",
                    peer.node_id, peer.cluster_id
                )));
            }
            if nodes.iter().any(|(id, _)| *id == peer.node_id) {
                return Err(Status::failed_precondition(format!(
                    "two nodes have id {} (one at {address}); node ids must be unique",
                    peer.node_id
                )));
            }
            nodes.push((peer.node_id, peer.address));
        }
        nodes.sort();
        let cluster_id = random_cluster_id();
        let ranges = bootstrap_layout(&nodes, self.ctx.replication_factor);
        for (node_id, address) in &nodes {
            self.ctx.addresses.insert(*node_id, address.clone());
        }
        let records: Vec<NodeRecord> = nodes
            .iter()
            .map(|(node_id, address)| NodeRecord {
                node_id: *node_id,
                address: address.clone(),
                decommissioned: false,
            })
            .collect();
        // Peers first: once this node has bootstrapped, init cannot be rerun.
        for (node_id, address) in nodes.iter().filter(|(id, _)| *id != me) {
            node_client(address)
                .await
                .map_err(|e| Status::unavailable(format!("node {node_id}: {}", e.message())))?
                .install_bootstrap(node_pb::InstallBootstrapRequest {
                    cluster_id,
                    node_id: *node_id,
                    ranges: ranges.clone(),
                    nodes: records.clone(),
                })
                .await?;
        }
        install(&self.ctx, cluster_id, ranges.clone(), records.clone()).await?;
        Ok(Response::new(node_pb::BootstrapResponse {
            cluster_id,
            ranges,
            nodes: records,
        }))
    }

    async fn install_bootstrap(
        &self,
        request: Request<node_pb::InstallBootstrapRequest>,
    ) -> Result<Response<node_pb::InstallBootstrapResponse>, Status> {
        let request = request.into_inner();
        if request.node_id != self.ctx.store.node_id() {
            return Err(Status::invalid_argument(format!(
                "bootstrap for node {} reached node {}",
                request.node_id,
                self.ctx.store.node_id()
            )));
        }
        install(&self.ctx, request.cluster_id, request.ranges, request.nodes).await?;
        Ok(Response::new(node_pb::InstallBootstrapResponse {}))
    }

    async fn join(
        &self,
        request: Request<node_pb::JoinRequest>,
    ) -> Result<Response<node_pb::JoinResponse>, Status> {
        let node_pb::JoinRequest { node_id, address } = request.into_inner();
        let cluster_id = self.ctx.store.cluster_id();
        if cluster_id == 0 {
            return Err(Status::failed_precondition(format!(
                "node {} has not joined a cluster itself",
                self.ctx.store.node_id()
            )));
        }
        if node_id == 0 || address.is_empty() {
            return Err(Status::invalid_argument(
                "a joining node needs an id and an address",
            ));
        }
        let mut nodes: Vec<String> = self
            .ctx
            .addresses
            .all()
            .into_iter()
            .map(|(_, a)| a)
            .collect();
        nodes.push(self.ctx.advertise_address.clone());
        let client = crate::KvClient::new(nodes, crate::KvClientConfig::default());
        let unavailable = |e: crate::ClientError| Status::unavailable(e.to_string());
        let mut decommissioned = false;
        if let Some(value) = client
            .get(&keys::node_key(node_id))
            .await
            .map_err(unavailable)?
        {
            let record = <NodeRecord as prost::Message>::decode(&value[..])
                .map_err(|e| Status::internal(format!("corrupt node record: {e}")))?;
            if record.address != address {
                return Err(Status::already_exists(format!(
                    "node id {node_id} belongs to the node at {}; pick another id",
                    record.address
                )));
            }
            decommissioned = record.decommissioned;
        }
        let record = NodeRecord {
            node_id,
            address: address.clone(),
            decommissioned,
        };
        client
            .record_nodes(vec![record])
            .await
            .map_err(unavailable)?;
        self.ctx.addresses.insert(node_id, address);
        Ok(Response::new(node_pb::JoinResponse { cluster_id }))
    }

    async fn ranges(
        &self,
        _request: Request<node_pb::RangesRequest>,
    ) -> Result<Response<node_pb::RangesResponse>, Status> {
        let infos = self
            .ctx
            .store
            .replicas()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let replicas = infos
            .into_iter()
            .map(|info| node_pb::ReplicaStatus {
                descriptor: info.descriptor,
                replica_id: info.replica_id,
                leader_node_id: info.leader_node.unwrap_or(0),
                term: info.term,
                commit_index: info.commit_index,
                applied_index: info.applied_index,
                is_leader: info.is_leader,
                qps: if info.is_leader { info.qps } else { 0.0 },
            })
            .collect();
        Ok(Response::new(node_pb::RangesResponse {
            node_id: self.ctx.store.node_id(),
            replicas,
        }))
    }
}

async fn install(
    ctx: &NodeContext,
    cluster_id: u64,
    ranges: Vec<RangeDescriptor>,
    nodes: Vec<NodeRecord>,
) -> Result<(), Status> {
    for node in &nodes {
        ctx.addresses.insert(node.node_id, node.address.clone());
    }
    let data = tessera_raft::initial_meta_data(&ranges, &nodes);
    let ident = StoreIdent {
        cluster_id,
        node_id: ctx.store.node_id(),
    };
    ctx.store
        .bootstrap(ident, ranges, data)
        .await
        .map_err(|e| Status::failed_precondition(e.to_string()))
}
