use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use parking_lot::Mutex;
use tessera_proto::kv::{self as pb, kv_client::KvClient as PbKvClient, route_error, RouteError};
use tessera_proto::meta::{Mutation, RangeDescriptor};
use tessera_proto::txn::{TxnCommand, TxnError, TxnResult};
use tessera_types::{keys, RangeId, Timestamp};
use tonic::transport::{Channel, Endpoint};

use crate::pipeline::{Call, Pipeline, Reply};

use crate::{ClientError, ClientResult};

/// How a `KvClient` retries.
#[derive(Clone, Debug)]
pub struct KvClientConfig {
    /// Attempts per request before giving up.
    pub max_attempts: usize,
    /// The first backoff between attempts; it doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
    /// The deadline of one RPC.
    pub rpc_timeout: Duration,
}

impl Default for KvClientConfig {
    fn default() -> Self {
        Self {
            max_attempts: 60,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(500),
            rpc_timeout: Duration::from_secs(10),
        }
    }
}

/// A KV client: sends each request to the node it believes leads the range,
/// follows not-leader hints, and moves on to other nodes when one is down.
#[derive(Clone)]
pub struct KvClient {
    nodes: Vec<String>,
    config: KvClientConfig,
    /// The node this client runs on, if it is one: its address and its
    /// KV service, which pipelined calls to that address reach directly.
    local: Option<(String, std::sync::Arc<crate::services::KvService>)>,
    /// Whether it counts the requests it has answered, by range
    /// (`counting_requests`; `ClientState::requests`).
    counting: bool,
    /// Whether a reload of the ranges' spans is under way.
    reloading_spans: std::sync::Arc<std::sync::atomic::AtomicBool>,
    state: std::sync::Arc<Mutex<ClientState>>,
}

#[derive(Default)]
struct ClientState {
    channels: HashMap<String, Channel>,
    /// A pipeline per node address, for the calls made most.
    pipelines: HashMap<String, Pipeline>,
    /// The address that answered last; tried first for a range whose
    /// leader is not known.
    preferred: Option<String>,
    /// Range spans from the meta range (`learn_ranges`): the meta key of
    /// the range's end -> (its start, its id).
    spans: BTreeMap<Vec<u8>, (Vec<u8>, RangeId)>,
    /// Where each range's leader answered last (or a not-leader hint
    /// pointed).
    leaders: HashMap<RangeId, String>,
    /// Nodes learned from the nodes it was given (a node without the range
    /// names the nodes it knows): tried after them.
    learned: Vec<String>,
    /// The requests answered by range since `take_requests`, if the client
    /// counts them.
    requests: HashMap<RangeId, u64>,
}

/// Where a request goes.
#[derive(Clone, Copy)]
enum Route<'a> {
    /// The leader of the range holding the key.
    Key(&'a [u8]),
    /// The leader of the meta range (the oracle, the deadlock detector,
    /// range ids, meta records).
    Meta,
}

trait Routed {
    fn route_error(&self) -> Option<&RouteError>;
}

macro_rules! routed {
    ($($t:ty),*) => {$(
        impl Routed for $t {
            fn route_error(&self) -> Option<&RouteError> {
                self.error.as_ref()
            }
        }
    )*};
}
routed!(
    pb::GetResponse,
    pb::PutResponse,
    pb::DeleteResponse,
    pb::BatchResponse,
    pb::ScanResponse,
    pb::TxnResponse,
    pb::MvccGetResponse,
    pb::MvccScanResponse,
    pb::TimestampsResponse,
    pb::ScanLocksResponse,
    pb::WaitForResponse,
    pb::SplitResponse,
    pb::WaitLockReleaseResponse,
    pb::AllocateRangeIdResponse,
    pb::UpdateMetaResponse,
    pb::FlowResponse,
    pb::TransferLeaderResponse,
    pb::ChangeReplicasResponse,
    pb::FreezeRangeResponse,
    pb::MergeRangesResponse,
    pb::LeaseHolderResponse
);

impl KvClient {
    /// A client of the cluster reachable at any of `nodes` (gRPC addresses).
    pub fn new(nodes: Vec<String>, config: KvClientConfig) -> Self {
        Self {
            nodes,
            config,
            local: None,
            counting: false,
            reloading_spans: Default::default(),
            state: Default::default(),
        }
    }

    /// This client, running on the node at `address` whose KV service is
    /// `service`: its pipelined calls to that address (rows, timestamps,
    /// transactional commands) call the service in-process instead of
    /// going through the network.
    pub fn on_node(mut self, address: String, service: crate::services::KvService) -> Self {
        self.local = Some((address, std::sync::Arc::new(service)));
        self
    }

    /// This client, counting the requests it has answered by range (see
    /// `take_requests`): a node's SQL gateway, whose requests the leases
    /// follow.
    pub fn counting_requests(mut self) -> Self {
        self.counting = true;
        self
    }

    /// The requests answered by range since the last call (none unless
    /// `counting_requests`). A request counts for the range the client's
    /// spans put its key in, or the range a not-leader hint named.
    pub fn take_requests(&self) -> HashMap<RangeId, u64> {
        std::mem::take(&mut self.state.lock().requests)
    }

    fn channel(&self, address: &str) -> ClientResult<Channel> {
        let mut state = self.state.lock();
        if let Some(channel) = state.channels.get(address) {
            return Ok(channel.clone());
        }
        let channel = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| ClientError::InvalidRequest(format!("bad address {address}: {e}")))?
            .connect_timeout(Duration::from_secs(1))
            .timeout(self.config.rpc_timeout)
            .tcp_nodelay(true)
            .initial_stream_window_size(crate::STREAM_WINDOW_BYTES)
            .initial_connection_window_size(crate::CONNECTION_WINDOW_BYTES)
            .connect_lazy();
        state.channels.insert(address.to_string(), channel.clone());
        Ok(channel)
    }

    /// The pipeline to `address` (opened on first use).
    fn pipeline(&self, address: &str) -> ClientResult<Pipeline> {
        if let Some((_, service)) = self.local.as_ref().filter(|(local, _)| local == address) {
            return Ok(Pipeline::Local(service.clone()));
        }
        if let Some(pipeline) = self.state.lock().pipelines.get(address) {
            return Ok(pipeline.clone());
        }
        let pipeline = Pipeline::open(self.channel(address)?);
        self.state
            .lock()
            .pipelines
            .insert(address.to_string(), pipeline.clone());
        Ok(pipeline)
    }

    /// Teaches the client the ranges' spans (the meta range's
    /// descriptors), so that each request goes straight to the leader of
    /// its range once that is known.
    pub fn learn_ranges(&self, descriptors: &[RangeDescriptor]) {
        let spans = descriptors
            .iter()
            .map(|d| {
                (
                    keys::meta_key(&d.end_key),
                    (d.start_key.clone(), d.range_id),
                )
            })
            .collect();
        self.state.lock().spans = spans;
    }

    /// Reloads the ranges' spans from the meta range (as when a reply
    /// showed them out of date: a range split or merged since they were
    /// learned), unless a reload is already under way. Boxed: it sends
    /// requests itself.
    pub fn reload_spans(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            use std::sync::atomic::Ordering;
            if self.reloading_spans.swap(true, Ordering::AcqRel) {
                return;
            }
            match self.meta_records().await {
                Ok(descriptors) => self.learn_ranges(&descriptors),
                Err(err) => tracing::debug!(%err, "cannot reload the ranges' spans"),
            }
            self.reloading_spans.store(false, Ordering::Release);
        })
    }

    /// The range a request goes to, if the client knows it.
    fn range_of(state: &ClientState, route: Route<'_>) -> Option<RangeId> {
        match route {
            Route::Meta => Some(keys::META_RANGE_ID),
            Route::Key(key) => state
                .spans
                .range(keys::meta_key(key)..)
                .next()
                .filter(|(_, (start, _))| key >= start.as_slice())
                .map(|(_, (_, range))| *range),
        }
    }

    /// Sends a unary call, made by `f` on the client of a node, as
    /// `call_with` does.
    async fn call<R, F, Fut>(&self, route: Route<'_>, f: F) -> ClientResult<R>
    where
        R: Routed,
        F: Fn(PbKvClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        self.call_with(route, |address| {
            let client = self.channel(address).map(|channel| {
                PbKvClient::new(channel)
                    .max_decoding_message_size(crate::MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(crate::MAX_MESSAGE_BYTES)
            });
            let f = &f;
            async move {
                match client {
                    Ok(client) => f(client).await.map(tonic::Response::into_inner),
                    Err(err) => Err(tonic::Status::invalid_argument(err.to_string())),
                }
            }
        })
        .await
    }

    /// As `call`, for a call the pipeline carries: `call` makes it,
    /// `unpack` takes the answer out of its reply.
    async fn call_pipelined<R: Routed>(
        &self,
        route: Route<'_>,
        call: impl Fn() -> Call,
        unpack: fn(Reply) -> Option<R>,
    ) -> ClientResult<R> {
        self.call_with(route, |address| {
            let pipeline = self.pipeline(address);
            let call = call();
            let timeout = self.config.rpc_timeout;
            async move {
                let pipeline =
                    pipeline.map_err(|err| tonic::Status::invalid_argument(err.to_string()))?;
                let reply = pipeline.call(call, timeout).await?;
                unpack(reply).ok_or_else(|| tonic::Status::internal("a reply to another call"))
            }
        })
        .await
    }

    /// Sends a request with `send` to the leader of its range (as far as
    /// the client knows it), following hints, until it is answered or the
    /// retry budget runs out.
    async fn call_with<R, F, Fut>(&self, route: Route<'_>, send: F) -> ClientResult<R>
    where
        R: Routed,
        F: Fn(&str) -> Fut,
        Fut: std::future::Future<Output = Result<R, tonic::Status>>,
    {
        if self.nodes.is_empty() {
            return Err(ClientError::InvalidRequest(
                "no node addresses given".into(),
            ));
        }
        let mut next_node = 0;
        let (mut range, mut address) = {
            let state = self.state.lock();
            let range = Self::range_of(&state, route);
            let address = range
                .and_then(|r| state.leaders.get(&r))
                .or(state.preferred.as_ref())
                .cloned()
                .unwrap_or_else(|| self.nodes[0].clone());
            (range, address)
        };
        let mut backoff = self.config.initial_backoff;
        let mut last_error = String::new();
        for _ in 0..self.config.max_attempts {
            let mut redirected = false;
            match send(&address).await {
                Ok(response) => match response.route_error().and_then(|e| e.kind.clone()) {
                    None => {
                        let stale = {
                            let mut state = self.state.lock();
                            if let Some(range) = range {
                                state.leaders.insert(range, address.clone());
                                if self.counting {
                                    *state.requests.entry(range).or_default() += 1;
                                }
                            }
                            state.preferred = Some(address);
                            // A hint named another range than the spans
                            // say holds the key.
                            range.is_some() && range != Self::range_of(&state, route)
                        };
                        if stale {
                            // In the background: the answer is in hand, and
                            // a reload that cannot reach the meta range
                            // would hold it up through every retry.
                            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                                let client = self.clone();
                                runtime.spawn(async move { client.reload_spans().await });
                            }
                        }
                        return Ok(response);
                    }
                    Some(route_error::Kind::NotLeader(hint))
                        if !hint.leader_address.is_empty() && hint.leader_address != address =>
                    {
                        last_error = format!("range {}: not leader at {address}", hint.range_id);
                        self.state
                            .lock()
                            .leaders
                            .insert(hint.range_id, hint.leader_address.clone());
                        // The range that holds the key, which the spans may
                        // not know yet.
                        range = Some(hint.range_id);
                        address = hint.leader_address;
                        redirected = true;
                    }
                    Some(route_error::Kind::CrossRange(e)) => {
                        return Err(ClientError::CrossRange(e.key))
                    }
                    Some(route_error::Kind::RangeNotFound(e)) => {
                        last_error = format!("no replica of the range at {address}");
                        let mut state = self.state.lock();
                        for node in e.nodes {
                            if !self.nodes.contains(&node) && !state.learned.contains(&node) {
                                state.learned.push(node);
                            }
                        }
                    }
                    Some(other) => last_error = format!("{other:?} at {address}"),
                },
                Err(status) => match status.code() {
                    tonic::Code::InvalidArgument
                    | tonic::Code::OutOfRange
                    | tonic::Code::FailedPrecondition => {
                        return Err(ClientError::InvalidRequest(status.message().to_string()))
                    }
                    tonic::Code::Aborted => {
                        return Err(ClientError::Changed(status.message().to_string()))
                    }
                    tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Cancelled
                    | tonic::Code::Unknown => {
                        last_error = format!("{address}: {}", status.message());
                    }
                    _ => {
                        return Err(ClientError::Server(format!(
                            "{address}: {}",
                            status.message()
                        )))
                    }
                },
            }
            if !redirected {
                // Try the next node after a pause: an election may be under
                // way, or this node may be down.
                address = {
                    let state = self.state.lock();
                    let known = self.nodes.len() + state.learned.len();
                    let i = next_node % known;
                    self.nodes
                        .get(i)
                        .unwrap_or_else(|| &state.learned[i - self.nodes.len()])
                        .clone()
                };
                next_node += 1;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(self.config.max_backoff);
            }
        }
        Err(ClientError::Unavailable(format!(
            "gave up after {} attempts; last error: {last_error}",
            self.config.max_attempts
        )))
    }

    /// Reads a key.
    pub async fn get(&self, key: &[u8]) -> ClientResult<Option<Vec<u8>>> {
        let response = self
            .call(Route::Key(key), |mut c| {
                let key = key.to_vec();
                async move { c.get(pb::GetRequest { key }).await }
            })
            .await?;
        Ok(response.found.then_some(response.value))
    }

    /// Writes a key.
    pub async fn put(&self, key: &[u8], value: &[u8]) -> ClientResult<()> {
        self.call(Route::Key(key), |mut c| {
            let (key, value) = (key.to_vec(), value.to_vec());
            async move { c.put(pb::PutRequest { key, value }).await }
        })
        .await?;
        Ok(())
    }

    /// Deletes a key.
    pub async fn delete(&self, key: &[u8]) -> ClientResult<()> {
        self.call(Route::Key(key), |mut c| {
            let key = key.to_vec();
            async move { c.delete(pb::DeleteRequest { key }).await }
        })
        .await?;
        Ok(())
    }

    /// Applies mutations atomically; they must fall in one range.
    pub async fn batch(&self, mutations: Vec<Mutation>) -> ClientResult<()> {
        self.call(
            Route::Key(mutations.first().and_then(mutation_key).unwrap_or_default()),
            |mut c| {
                let mutations = mutations.clone();
                async move { c.batch(pb::BatchRequest { mutations }).await }
            },
        )
        .await?;
        Ok(())
    }

    /// Runs a transactional command on the range holding its keys.
    /// Conflicts are part of the result (`TxnResult::error`).
    pub async fn txn(&self, command: TxnCommand) -> ClientResult<TxnResult> {
        let route_key = txn_route_key(&command);
        let response = self
            .call_pipelined(
                Route::Key(&route_key),
                || {
                    Call::Txn(pb::TxnRequest {
                        command: Some(command.clone()),
                    })
                },
                |reply| match reply {
                    Reply::Txn(response) => Some(response),
                    _ => None,
                },
            )
            .await?;
        response
            .result
            .ok_or_else(|| ClientError::Server("a transactional response without a result".into()))
    }

    /// Runs the encoded flow `spec` over `[start, end)` at `ts`, at the
    /// leader of the range holding `start` (see `flow`): its answer, and
    /// where the rest of the span resumes, if anywhere. A lock met is the
    /// inner error, after the output of the keys before it.
    pub async fn flow(
        &self,
        start: &[u8],
        end: &[u8],
        ts: Timestamp,
        spec: &[u8],
    ) -> ClientResult<(Vec<u8>, Option<Vec<u8>>, Option<TxnError>)> {
        let response = self
            .call(Route::Key(start), |mut c| {
                let request = pb::FlowRequest {
                    start: start.to_vec(),
                    end: end.to_vec(),
                    ts: ts.0,
                    spec: spec.to_vec(),
                };
                async move { c.flow(request).await }
            })
            .await?;
        let resume = (!response.resume_key.is_empty()).then_some(response.resume_key);
        Ok((response.output, resume, response.txn_error))
    }

    /// The replicas the node at `address` holds, asked of it
    /// (`Node.Ranges`) within `timeout`.
    pub async fn node_replicas(
        &self,
        address: &str,
        timeout: Duration,
    ) -> ClientResult<Vec<tessera_proto::node::ReplicaStatus>> {
        let mut client = tessera_proto::node::node_client::NodeClient::new(self.channel(address)?);
        let answer = tokio::time::timeout(
            timeout,
            client.ranges(tessera_proto::node::RangesRequest {}),
        )
        .await
        .map_err(|_| ClientError::Unavailable(format!("{address}: no answer within {timeout:?}")))?
        .map_err(|s| ClientError::Unavailable(format!("{address}: {}", s.message())))?
        .into_inner();
        Ok(answer.replicas)
    }

    /// The node that leads (holds the lease of) the range holding `key`.
    pub async fn lease_holder(&self, key: &[u8]) -> ClientResult<u64> {
        Ok(self.range_status(key).await?.node_id)
    }

    /// The leader of the range holding `key`, with the range's size and
    /// load, from the leader.
    pub async fn range_status(&self, key: &[u8]) -> ClientResult<pb::LeaseHolderResponse> {
        self.call(Route::Key(key), |mut c| {
            let key = key.to_vec();
            async move { c.lease_holder(pb::LeaseHolderRequest { key }).await }
        })
        .await
    }

    /// Moves the leadership of range `range_id`, which starts at `start`,
    /// to its voting replica on `node`; returns once that node leads it.
    pub async fn transfer_leader(
        &self,
        start: &[u8],
        range_id: RangeId,
        node: u64,
    ) -> ClientResult<()> {
        self.call(Route::Key(start), |mut c| {
            let key = start.to_vec();
            async move {
                c.transfer_leader(pb::TransferLeaderRequest {
                    key,
                    range_id,
                    node_id: node,
                })
                .await
            }
        })
        .await?;
        // The next request finds the new leader through a not-leader hint.
        self.state.lock().leaders.remove(&range_id);
        Ok(())
    }

    /// Reads a key at `ts`; a lock that hides it is the inner error (and,
    /// for a `latest` read, a newer write: see `MvccReader::latest`).
    pub async fn mvcc_get(
        &self,
        key: &[u8],
        ts: Timestamp,
        latest: bool,
    ) -> ClientResult<Result<Option<Vec<u8>>, TxnError>> {
        let response = self
            .call_pipelined(
                Route::Key(key),
                || {
                    Call::MvccGet(pb::MvccGetRequest {
                        key: key.to_vec(),
                        ts: ts.0,
                        latest,
                    })
                },
                |reply| match reply {
                    Reply::MvccGet(response) => Some(response),
                    _ => None,
                },
            )
            .await?;
        Ok(match response.txn_error {
            Some(err) => Err(err),
            None => Ok(response.found.then_some(response.value)),
        })
    }

    /// Scans `[start, end)` at `ts` within the range holding `start`: at
    /// most `limit` entries, and the key to resume from (the next range's
    /// start, or past the last entry). A lock that hides a key is the inner
    /// error (and, for a `latest` scan, a newer write).
    #[allow(clippy::type_complexity)]
    pub async fn mvcc_scan(
        &self,
        start: &[u8],
        end: &[u8],
        ts: Timestamp,
        limit: u32,
        latest: bool,
    ) -> ClientResult<Result<(Vec<(Vec<u8>, Vec<u8>)>, Option<Vec<u8>>), TxnError>> {
        let response = self
            .call(Route::Key(start), |mut c| {
                let (start, end) = (start.to_vec(), end.to_vec());
                async move {
                    c.mvcc_scan(pb::MvccScanRequest {
                        start,
                        end,
                        ts: ts.0,
                        limit,
                        latest,
                    })
                    .await
                }
            })
            .await?;
        if let Some(err) = response.txn_error {
            return Ok(Err(err));
        }
        let kvs = response
            .kvs
            .into_iter()
            .map(|kv| (kv.key, kv.value))
            .collect();
        let resume = (!response.resume_key.is_empty()).then_some(response.resume_key);
        Ok(Ok((kvs, resume)))
    }

    /// Locks in `[start, end)` within the range holding `start`, of
    /// transactions that started at or below `max_ts`: at most `limit`, and
    /// the key to resume from.
    pub async fn scan_locks(
        &self,
        start: &[u8],
        end: &[u8],
        max_ts: Timestamp,
        limit: u32,
    ) -> ClientResult<(Vec<tessera_proto::txn::LockInfo>, Option<Vec<u8>>)> {
        let response = self
            .call(Route::Key(start), |mut c| {
                let (start, end) = (start.to_vec(), end.to_vec());
                async move {
                    c.scan_locks(pb::ScanLocksRequest {
                        start,
                        end,
                        max_ts: max_ts.0,
                        limit,
                    })
                    .await
                }
            })
            .await?;
        let resume = (!response.resume_key.is_empty()).then_some(response.resume_key);
        Ok((response.locks, resume))
    }

    /// How many node addresses the client starts from.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Splits the range holding `key` at `key` and records both sides in the
    /// meta range: (left, right, whether a new range was made).
    pub async fn split(
        &self,
        key: &[u8],
    ) -> ClientResult<(RangeDescriptor, RangeDescriptor, bool)> {
        let request = pb::SplitRequest { key: key.to_vec() };
        let response = self
            .call(Route::Key(key), |mut c| {
                let request = request.clone();
                async move { c.split(request).await }
            })
            .await?;
        match (response.left, response.right) {
            (Some(left), Some(right)) => Ok((left, right, response.created)),
            _ => Err(ClientError::Server(
                "a split answered without its ranges".into(),
            )),
        }
    }

    /// Waits up to `timeout` until `holder`'s lock on `key` is released;
    /// returns whether it was.
    pub async fn wait_lock_release(
        &self,
        key: &[u8],
        holder: Timestamp,
        timeout: Duration,
    ) -> ClientResult<bool> {
        let request = pb::WaitLockReleaseRequest {
            key: key.to_vec(),
            holder: holder.0,
            timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
        };
        let response = self
            .call(Route::Key(key), |mut c| {
                let request = request.clone();
                async move { c.wait_lock_release(request).await }
            })
            .await?;
        Ok(response.released)
    }

    /// A new cluster-unique range id.
    pub async fn allocate_range_id(&self) -> ClientResult<u64> {
        let response = self
            .call(Route::Meta, |mut c| async move {
                c.allocate_range_id(pb::AllocateRangeIdRequest {}).await
            })
            .await?;
        Ok(response.range_id)
    }

    /// Every range record of the meta range, in key order.
    pub async fn meta_records(&self) -> ClientResult<Vec<RangeDescriptor>> {
        self.records(keys::META_PREFIX, "range descriptor").await
    }

    /// Every node record of the meta range, by node id.
    pub async fn node_records(&self) -> ClientResult<Vec<tessera_proto::meta::NodeRecord>> {
        self.records(keys::NODE_PREFIX, "node record").await
    }

    async fn records<M: prost::Message + Default>(
        &self,
        prefix: &[u8],
        what: &str,
    ) -> ClientResult<Vec<M>> {
        let end = tessera_types::encoding::prefix_end(prefix).unwrap_or_default();
        self.scan(prefix, &end, 0)
            .await?
            .into_iter()
            .map(|(_, value)| {
                M::decode(&value[..])
                    .map_err(|e| ClientError::Server(format!("corrupt {what}: {e}")))
            })
            .collect()
    }

    /// Records range descriptors in the meta range, all or none: `Changed`
    /// (nothing written) if a newer record stands in the way of one of
    /// them (see `MetaUpdate` in meta.proto).
    pub async fn record_ranges(&self, descriptors: Vec<RangeDescriptor>) -> ClientResult<()> {
        self.send_meta(pb::UpdateMetaRequest {
            descriptors,
            ..Default::default()
        })
        .await
    }

    /// Records range descriptors in the meta range, unless newer records
    /// are there already (then the newer ones stay, and that is not an
    /// error: records only move forward).
    pub async fn update_meta(&self, descriptors: Vec<RangeDescriptor>) -> ClientResult<()> {
        self.record_range(descriptors, Vec::new()).await
    }

    /// Records ranges and removes the records at `deleted_end_keys` (of
    /// ranges they absorbed, which must be older), in one write; as
    /// `update_meta`, not an error if newer records are there already.
    pub async fn record_range(
        &self,
        descriptors: Vec<RangeDescriptor>,
        deleted_end_keys: Vec<Vec<u8>>,
    ) -> ClientResult<()> {
        let recorded = self
            .send_meta(pb::UpdateMetaRequest {
                descriptors,
                deleted_end_keys,
                nodes: Vec::new(),
            })
            .await;
        match recorded {
            Err(ClientError::Changed(_)) => Ok(()),
            other => other,
        }
    }

    /// Records nodes (id and address) in the meta range.
    pub async fn record_nodes(
        &self,
        nodes: Vec<tessera_proto::meta::NodeRecord>,
    ) -> ClientResult<()> {
        self.send_meta(pb::UpdateMetaRequest {
            nodes,
            ..Default::default()
        })
        .await
    }

    async fn send_meta(&self, request: pb::UpdateMetaRequest) -> ClientResult<()> {
        self.call(Route::Meta, |mut c| {
            let request = request.clone();
            async move { c.update_meta(request).await }
        })
        .await?;
        Ok(())
    }

    fn range_route(range_id: RangeId, start: &[u8]) -> Route<'_> {
        if range_id == keys::META_RANGE_ID {
            Route::Meta
        } else {
            Route::Key(start)
        }
    }

    /// One step of a membership change of a range (which starts at
    /// `request.key`), at its leader: the range's new descriptor.
    pub async fn change_replicas(
        &self,
        request: pb::ChangeReplicasRequest,
    ) -> ClientResult<RangeDescriptor> {
        let response = self
            .call(
                Self::range_route(request.range_id, &request.key),
                |mut c| {
                    let request = request.clone();
                    async move { c.change_replicas(request).await }
                },
            )
            .await?;
        response.descriptor.ok_or_else(|| {
            ClientError::Server("a membership change answered without its range".into())
        })
    }

    /// Freezes (or releases) a range for a merge, at its leader.
    pub async fn freeze_range(
        &self,
        request: pb::FreezeRangeRequest,
    ) -> ClientResult<pb::FreezeRangeResponse> {
        self.call(
            Self::range_route(request.range_id, &request.key),
            |mut c| {
                let request = request.clone();
                async move { c.freeze_range(request).await }
            },
        )
        .await
    }

    /// Merges a frozen range into the range to its left, at the left's
    /// leader: the merged range's descriptor.
    pub async fn merge_ranges(
        &self,
        request: pb::MergeRangesRequest,
    ) -> ClientResult<RangeDescriptor> {
        let response = self
            .call(Route::Key(&request.key), |mut c| {
                let request = request.clone();
                async move { c.merge_ranges(request).await }
            })
            .await?;
        response
            .merged
            .ok_or_else(|| ClientError::Server("a merge answered without its range".into()))
    }

    /// Registers with the cluster's deadlock detector that transaction
    /// `waiter` waits for `holder`'s lock on `key`. Returns the cycle, as
    /// `(transaction, key it waits for)`, if the wait would close one.
    pub async fn wait_for(
        &self,
        waiter: Timestamp,
        holder: Timestamp,
        key: &[u8],
    ) -> ClientResult<Option<Vec<(Timestamp, Vec<u8>)>>> {
        let request = pb::WaitForRequest {
            waiter: waiter.0,
            holder: holder.0,
            key: key.to_vec(),
            clean_up: false,
        };
        let response = self
            .call(Route::Meta, |mut c| {
                let request = request.clone();
                async move { c.wait_for(request).await }
            })
            .await?;
        Ok(response.deadlock.then(|| {
            response
                .cycle_txns
                .into_iter()
                .map(Timestamp)
                .zip(response.cycle_keys)
                .collect()
        }))
    }

    /// Tells the deadlock detector that `waiter` waits no more.
    pub async fn done_waiting(&self, waiter: Timestamp) -> ClientResult<()> {
        let request = pb::WaitForRequest {
            waiter: waiter.0,
            clean_up: true,
            ..Default::default()
        };
        self.call(Route::Meta, |mut c| {
            let request = request.clone();
            async move { c.wait_for(request).await }
        })
        .await?;
        Ok(())
    }

    /// `count` new timestamps from the oracle: the first of them and how
    /// many there are.
    pub async fn timestamps(&self, count: u32) -> ClientResult<(Timestamp, u32)> {
        let (first, count, _) = self.timestamps_reading(count, &[]).await?;
        Ok((first, count))
    }

    /// `count` new timestamps from the oracle, and the value of the meta
    /// range's key `key` as of the last of them if the oracle could read it
    /// (see `TimestampsRequest`): None if it could not, `Some(None)` if the
    /// key is absent.
    pub async fn timestamps_reading(
        &self,
        count: u32,
        key: &[u8],
    ) -> ClientResult<(Timestamp, u32, Option<Option<Vec<u8>>>)> {
        let response = self
            .call_pipelined(
                Route::Meta,
                || {
                    Call::Timestamps(pb::TimestampsRequest {
                        count,
                        read_key: key.to_vec(),
                    })
                },
                |reply| match reply {
                    Reply::Timestamps(response) => Some(response),
                    _ => None,
                },
            )
            .await?;
        let read = response.read.map(|read| read.found.then_some(read.value));
        Ok((Timestamp(response.first), response.count, read))
    }

    /// One new timestamp from the oracle.
    pub async fn timestamp(&self) -> ClientResult<Timestamp> {
        Ok(self.timestamps(1).await?.0)
    }

    /// Scans `[start, end)` (an empty end is unbounded) across ranges,
    /// returning at most `limit` entries (0: no limit).
    pub async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> ClientResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut cursor = start.to_vec();
        loop {
            let want = if limit == 0 {
                10_000
            } else {
                (limit - out.len()).min(10_000)
            };
            let want = want as u32;
            let response = self
                .call(Route::Key(&cursor), |mut c| {
                    let (start, end) = (cursor.clone(), end.to_vec());
                    async move {
                        c.scan(pb::ScanRequest {
                            start,
                            end,
                            limit: want,
                        })
                        .await
                    }
                })
                .await?;
            out.extend(response.kvs.into_iter().map(|kv| (kv.key, kv.value)));
            if response.resume_key.is_empty() || (limit != 0 && out.len() >= limit) {
                return Ok(out);
            }
            cursor = response.resume_key;
        }
    }
}

/// The key a mutation writes.
fn mutation_key(m: &Mutation) -> Option<&[u8]> {
    match &m.op {
        Some(tessera_proto::meta::mutation::Op::Put(put)) => Some(&put.key),
        Some(tessera_proto::meta::mutation::Op::Delete(delete)) => Some(&delete.key),
        None => None,
    }
}

/// The key whose range runs a transactional command.
fn txn_route_key(command: &TxnCommand) -> Vec<u8> {
    match &command.kind {
        Some(tessera_proto::txn::txn_command::Kind::Gc(gc)) => gc.start.clone(),
        _ => tessera_raft::txn_command_keys(command)
            .first()
            .map(|key| key.to_vec())
            .unwrap_or_default(),
    }
}
