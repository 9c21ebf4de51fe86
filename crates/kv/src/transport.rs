use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tessera_proto::raft::raft_transport_client::RaftTransportClient;
use tessera_proto::raft::{RaftBatch, RaftEnvelope};
use tessera_types::NodeId;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

use crate::AddressBook;

/// Batches queued for one destination before new ones are dropped (Raft
/// retransmits what is lost).
const QUEUE_BATCHES: usize = 1024;

/// The most envelopes merged into one `RaftBatch`.
const MAX_ENVELOPES_PER_BATCH: usize = 4096;

/// The Raft transport over gRPC: one client stream per destination node,
/// (re)connected in the background; sending never blocks.
pub struct GrpcTransport {
    node_id: NodeId,
    cluster_id: Arc<dyn Fn() -> u64 + Send + Sync>,
    addresses: AddressBook,
    runtime: tokio::runtime::Handle,
    peers: Mutex<HashMap<NodeId, mpsc::Sender<Vec<RaftEnvelope>>>>,
}

impl GrpcTransport {
    /// A transport for `node_id`, spawning its senders on `runtime`.
    /// `cluster_id` is read for every batch (it is 0 until bootstrap).
    pub fn new(
        node_id: NodeId,
        cluster_id: Arc<dyn Fn() -> u64 + Send + Sync>,
        addresses: AddressBook,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            node_id,
            cluster_id,
            addresses,
            runtime,
            peers: Mutex::new(HashMap::new()),
        }
    }

    fn spawn_peer(&self, to: NodeId) -> mpsc::Sender<Vec<RaftEnvelope>> {
        let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
        let sender = PeerSender {
            from: self.node_id,
            to,
            cluster_id: self.cluster_id.clone(),
            addresses: self.addresses.clone(),
        };
        self.runtime.spawn(sender.run(rx));
        tx
    }
}

impl tessera_raft::Transport for GrpcTransport {
    fn send(&self, to: NodeId, envelopes: Vec<RaftEnvelope>) {
        let mut peers = self.peers.lock();
        let tx = peers.entry(to).or_insert_with(|| self.spawn_peer(to));
        match tx.try_send(envelopes) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!(
                    from = self.node_id,
                    to,
                    "raft queue full; dropping messages"
                );
            }
            Err(mpsc::error::TrySendError::Closed(envelopes)) => {
                let tx = self.spawn_peer(to);
                let _ = tx.try_send(envelopes);
                peers.insert(to, tx);
            }
        }
    }
}

struct PeerSender {
    from: NodeId,
    to: NodeId,
    cluster_id: Arc<dyn Fn() -> u64 + Send + Sync>,
    addresses: AddressBook,
}

impl PeerSender {
    async fn run(self, mut rx: mpsc::Receiver<Vec<RaftEnvelope>>) {
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.stream(&mut rx).await {
                Ok(()) => return, // the transport was dropped
                Err(err) => {
                    tracing::debug!(from = self.from, to = self.to, %err, "raft stream down");
                }
            }
            // Messages queued while disconnected are stale by the time we
            // reconnect; Raft will resend what still matters.
            while rx.try_recv().is_ok() {}
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// Runs one stream until it fails. Returns Ok when the queue is closed.
    async fn stream(&self, rx: &mut mpsc::Receiver<Vec<RaftEnvelope>>) -> Result<(), String> {
        let address = self
            .addresses
            .get(self.to)
            .ok_or_else(|| format!("no address for node {}", self.to))?;
        let channel = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .initial_stream_window_size(crate::STREAM_WINDOW_BYTES)
            .initial_connection_window_size(crate::CONNECTION_WINDOW_BYTES)
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(3))
            .connect()
            .await
            .map_err(|e| format!("connect {address}: {e}"))?;
        let mut client = RaftTransportClient::new(channel)
            .max_encoding_message_size(crate::MAX_MESSAGE_BYTES)
            .max_decoding_message_size(crate::MAX_MESSAGE_BYTES);
        let (tx, stream_rx) = mpsc::channel::<RaftBatch>(64);
        let call = tokio::spawn(async move { client.stream(ReceiverStream::new(stream_rx)).await });
        loop {
            let Some(mut envelopes) = rx.recv().await else {
                return Ok(());
            };
            while envelopes.len() < MAX_ENVELOPES_PER_BATCH {
                match rx.try_recv() {
                    Ok(more) => envelopes.extend(more),
                    Err(_) => break,
                }
            }
            let batch = RaftBatch {
                cluster_id: (self.cluster_id)(),
                from_node: self.from,
                envelopes,
            };
            if tx.send(batch).await.is_err() {
                break;
            }
        }
        match call.await {
            Ok(Ok(_)) => Err("stream closed by peer".into()),
            Ok(Err(status)) => {
                if status.code() == tonic::Code::FailedPrecondition {
                    tracing::warn!(
                        from = self.from,
                        to = self.to,
                        "node {} refused our raft messages: {}",
                        self.to,
                        status.message()
                    );
                }
                Err(status.to_string())
            }
            Err(err) => Err(err.to_string()),
        }
    }
}
