use tessera_proto::raft::RaftEnvelope;
use tessera_types::NodeId;

/// Delivers Raft messages to other nodes. Sending never blocks the store loop
/// and may lose messages (Raft retransmits); implementations batch what they
/// are given per destination.
pub trait Transport: Send + Sync {
    /// Queues messages for `to`. All envelopes are addressed to that node.
    fn send(&self, to: NodeId, envelopes: Vec<RaftEnvelope>);
}
