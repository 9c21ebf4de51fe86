//! One replica of a range: its `RawNode`, the proposals and reads waiting on
//! it, and the deterministic application of its committed commands.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use prost::Message as _;
use raft::prelude::{ConfChange, ConfChangeSingle, ConfChangeType, ConfChangeV2, Entry, EntryType};
use raft::{RawNode, StateRole};
use tessera_proto::meta::{mutation, RaftCommand, RangeDescriptor, ReplicaDescriptor, ReplicaRole};
use tessera_storage::{Cf, Engine, WriteBatch};
use tessera_types::{keys::span_contains, NodeId, RangeId, ReplicaId};
use tokio::sync::oneshot;

use crate::log::ReplicaStorage;
use crate::{Error, Result};

/// A read waiting for its ReadIndex to be confirmed and applied.
pub(crate) struct PendingRead {
    pub op: ReadOp,
    pub callback: oneshot::Sender<Result<ReadResult>>,
}

/// What a read does once it may be served.
pub(crate) enum ReadOp {
    Get {
        key: Vec<u8>,
    },
    Scan {
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
    },
}

/// The answer to a read.
#[derive(Debug)]
pub enum ReadResult {
    /// The value of a key, if present.
    Get(Option<Vec<u8>>),
    /// Keys of a scan, and where the next range starts if the scan's end lies
    /// beyond this range.
    Scan {
        /// The entries found, in key order.
        kvs: Vec<(Vec<u8>, Vec<u8>)>,
        /// The key to continue from, if the scan is not complete.
        resume_key: Option<Vec<u8>>,
    },
}

/// A single-step change to a range's membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaChange {
    /// Adds a non-voting replica on a node; it catches up by snapshot.
    AddLearner(NodeId),
    /// Makes a node's learner a voter.
    Promote(NodeId),
    /// Removes a node's replica.
    Remove(NodeId),
}

struct Proposal {
    term: u64,
    callback: oneshot::Sender<Result<()>>,
}

/// An answer to deliver once the apply batch holding its effects is written.
pub(crate) type Reply = Box<dyn FnOnce() + Send>;

pub(crate) struct Replica {
    pub range_id: RangeId,
    pub replica_id: ReplicaId,
    pub raw: RawNode<ReplicaStorage>,
    /// The node of each peer replica: from the descriptor, and learned from
    /// incoming messages (a replica added after the descriptor was written).
    pub peers: HashMap<ReplicaId, NodeId>,
    proposals: BTreeMap<u64, Proposal>,
    /// Reads waiting for ReadIndex, by request context.
    reads_waiting: HashMap<u64, PendingRead>,
    /// Reads whose ReadIndex is known, waiting for apply to reach it.
    reads_ready: Vec<(u64, PendingRead)>,
}

impl Replica {
    pub fn new(replica_id: ReplicaId, raw: RawNode<ReplicaStorage>) -> Self {
        let mut replica = Self {
            range_id: raw.store().range_id(),
            replica_id,
            raw,
            peers: HashMap::new(),
            proposals: BTreeMap::new(),
            reads_waiting: HashMap::new(),
            reads_ready: Vec::new(),
        };
        replica.refresh_peers();
        replica
    }

    pub fn descriptor(&self) -> Option<&RangeDescriptor> {
        self.raw.store().descriptor.as_ref()
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.descriptor()
            .is_some_and(|d| span_contains(&d.start_key, &d.end_key, key))
    }

    pub fn refresh_peers(&mut self) {
        if let Some(descriptor) = self.raw.store().descriptor.clone() {
            for replica in &descriptor.replicas {
                self.peers.insert(replica.replica_id, replica.node_id);
            }
        }
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The node of the leader this replica knows of.
    pub fn leader_node(&self) -> Option<NodeId> {
        match self.raw.raft.leader_id {
            0 => None,
            id => self.peers.get(&id).copied(),
        }
    }

    pub fn not_leader(&self) -> Error {
        Error::NotLeader {
            range_id: self.range_id,
            leader: self.leader_node(),
        }
    }

    /// Proposes a command; `callback` is answered when it applies.
    pub fn propose(&mut self, command: RaftCommand, callback: oneshot::Sender<Result<()>>) {
        if !self.is_leader() {
            let _ = callback.send(Err(self.not_leader()));
            return;
        }
        let proposed = self.raw.propose(Vec::new(), command.encode_to_vec());
        self.track_proposal(proposed, callback);
    }

    /// Records a proposal raft-rs accepted at the end of the log, to answer
    /// when its entry applies; answers at once if raft-rs refused it (not
    /// leader, a leadership transfer, or a conf change already pending).
    fn track_proposal(
        &mut self,
        proposed: raft::Result<()>,
        callback: oneshot::Sender<Result<()>>,
    ) {
        if let Err(err) = proposed {
            let err = match err {
                raft::Error::ProposalDropped if !self.is_leader() => self.not_leader(),
                raft::Error::ProposalDropped => Error::ProposalDropped,
                other => Error::Raft(other),
            };
            let _ = callback.send(Err(err));
            return;
        }
        let index = self.raw.raft.raft_log.last_index();
        let term = self.raw.raft.term;
        if let Some(old) = self.proposals.insert(index, Proposal { term, callback }) {
            let _ = old.callback.send(Err(Error::ProposalDropped));
        }
    }

    /// Starts a linearizable read.
    pub fn read(&mut self, read_id: u64, read: PendingRead) {
        if !self.is_leader() {
            let _ = read.callback.send(Err(self.not_leader()));
            return;
        }
        self.raw.read_index(read_id.to_be_bytes().to_vec());
        self.reads_waiting.insert(read_id, read);
    }

    /// Records confirmed ReadIndexes from a `Ready`.
    pub fn on_read_states(&mut self, states: Vec<raft::ReadState>) {
        for state in states {
            let Ok(id) = <[u8; 8]>::try_from(state.request_ctx.as_slice()) else {
                continue;
            };
            if let Some(read) = self.reads_waiting.remove(&u64::from_be_bytes(id)) {
                self.reads_ready.push((state.index, read));
            }
        }
    }

    /// Fails every read still waiting: this replica is no longer leader, and
    /// raft-rs drops the ReadIndex requests of a deposed leader.
    pub fn on_lost_leadership(&mut self) {
        let err_leader = self.leader_node();
        for (_, read) in self.reads_waiting.drain() {
            let _ = read.callback.send(Err(Error::NotLeader {
                range_id: self.range_id,
                leader: err_leader,
            }));
        }
    }

    /// Serves the reads whose ReadIndex has been applied.
    pub fn serve_reads(&mut self, engine: &Arc<dyn Engine>) {
        let applied = self.raw.store().apply.applied_index;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reads_ready)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.reads_ready = waiting;
        for (_, read) in ready {
            let result = self.execute_read(engine, read.op);
            let _ = read.callback.send(result);
        }
    }

    fn execute_read(&self, engine: &Arc<dyn Engine>, op: ReadOp) -> Result<ReadResult> {
        let Some(descriptor) = self.descriptor() else {
            return Err(self.not_leader());
        };
        match op {
            ReadOp::Get { key } => {
                if !span_contains(&descriptor.start_key, &descriptor.end_key, &key) {
                    return Err(Error::RangeNotFound { key });
                }
                Ok(ReadResult::Get(engine.get(Cf::Default, &key)?))
            }
            ReadOp::Scan { start, end, limit } => {
                if !span_contains(&descriptor.start_key, &descriptor.end_key, &start) {
                    return Err(Error::RangeNotFound { key: start });
                }
                // Clip the scan to this range; the caller resumes at our end.
                let range_end = &descriptor.end_key;
                let (scan_end, resume_key) =
                    if !range_end.is_empty() && (end.is_empty() || end > *range_end) {
                        (range_end.clone(), Some(range_end.clone()))
                    } else {
                        (end, None)
                    };
                let mut kvs = Vec::new();
                let mut resume_key = resume_key;
                for item in engine.scan(Cf::Default, &start, &scan_end) {
                    let (key, value) = item?;
                    if kvs.len() == limit {
                        resume_key = Some(key);
                        break;
                    }
                    kvs.push((key, value));
                }
                Ok(ReadResult::Scan { kvs, resume_key })
            }
        }
    }

    /// Stages the effects of committed entries into `batch` (with the apply
    /// state), and returns the answers to give once `batch` is written.
    pub fn stage_apply(
        &mut self,
        entries: Vec<Entry>,
        batch: &mut WriteBatch,
    ) -> Result<Vec<Reply>> {
        let mut replies: Vec<Reply> = Vec::new();
        if entries.is_empty() {
            return Ok(replies);
        }
        for entry in entries {
            let applied = self.raw.store().apply.applied_index;
            if entry.index <= applied {
                continue;
            }
            assert_eq!(
                entry.index,
                applied + 1,
                "range {}: applying entry {} after {applied}",
                self.range_id,
                entry.index
            );
            let result = match entry.get_entry_type() {
                EntryType::EntryNormal => self.apply_normal(&entry, batch),
                EntryType::EntryConfChange => {
                    let cc: ConfChange = protobuf::Message::parse_from_bytes(&entry.data)
                        .map_err(|e| Error::InvalidInput(format!("conf change: {e}")))?;
                    self.apply_conf_change(cc, batch)
                }
                EntryType::EntryConfChangeV2 => {
                    let cc: ConfChangeV2 = protobuf::Message::parse_from_bytes(&entry.data)
                        .map_err(|e| Error::InvalidInput(format!("conf change: {e}")))?;
                    let result = self.apply_conf_change(cc, batch);
                    if result.is_ok() && !entry.context.is_empty() {
                        self.apply_descriptor(&entry.context, batch)?;
                    }
                    result
                }
            };
            let storage = self.raw.mut_store();
            storage.apply.applied_index = entry.index;
            storage.apply.applied_term = entry.term;
            // Answer every proposal up to this index: earlier ones were
            // overwritten by another leader's log.
            while let Some(entry_proposal) = self.proposals.first_entry() {
                if *entry_proposal.key() > entry.index {
                    break;
                }
                let (index, proposal) = entry_proposal.remove_entry();
                let reply = if index == entry.index && proposal.term == entry.term {
                    result
                        .as_ref()
                        .map(|_| ())
                        .map_err(|e| Error::InvalidInput(e.to_string()))
                } else {
                    Err(Error::ProposalDropped)
                };
                replies.push(Box::new(move || {
                    let _ = proposal.callback.send(reply);
                }));
            }
        }
        self.raw.store().stage_apply_state(batch);
        Ok(replies)
    }

    /// Applies a normal entry. A command that cannot be decoded is rejected
    /// the same way on every replica, so the replicas stay identical.
    fn apply_normal(
        &mut self,
        entry: &Entry,
        batch: &mut WriteBatch,
    ) -> std::result::Result<(), String> {
        if entry.data.is_empty() {
            // The empty entry a new leader appends to commit its term.
            return Ok(());
        }
        let command = RaftCommand::decode(&entry.data[..])
            .map_err(|e| format!("undecodable command: {e}"))?;
        match command.kind {
            Some(tessera_proto::meta::raft_command::Kind::Write(write)) => {
                // Validate the whole command before staging any of it.
                let mut effects = WriteBatch::new();
                for m in write.mutations {
                    match m.op {
                        Some(mutation::Op::Put(put)) => {
                            effects.put(Cf::Default, put.key, put.value)
                        }
                        Some(mutation::Op::Delete(delete)) => {
                            effects.delete(Cf::Default, delete.key)
                        }
                        None => return Err("mutation without an operation".into()),
                    }
                }
                batch.extend(effects);
                Ok(())
            }
            None => Err("command without a kind".into()),
        }
    }

    /// Installs the range descriptor carried by a membership change.
    fn apply_descriptor(&mut self, bytes: &[u8], batch: &mut WriteBatch) -> Result<()> {
        let descriptor = RangeDescriptor::decode(bytes)
            .map_err(|e| Error::InvalidInput(format!("descriptor of a conf change: {e}")))?;
        batch.put(
            Cf::Raft,
            crate::keys::descriptor(self.range_id),
            descriptor.encode_to_vec(),
        );
        self.raw.mut_store().descriptor = Some(descriptor);
        self.refresh_peers();
        Ok(())
    }

    /// Proposes a single-step membership change. The new descriptor rides in
    /// the entry's context and is installed when the change applies.
    pub fn propose_change(&mut self, change: ReplicaChange, callback: oneshot::Sender<Result<()>>) {
        if !self.is_leader() {
            let _ = callback.send(Err(self.not_leader()));
            return;
        }
        let (descriptor, single) = match self.plan_change(change) {
            Ok(plan) => plan,
            Err(err) => {
                let _ = callback.send(Err(err));
                return;
            }
        };
        let mut cc = ConfChangeV2::default();
        cc.set_changes(vec![single].into());
        let proposed = self.raw.propose_conf_change(descriptor.encode_to_vec(), cc);
        self.track_proposal(proposed, callback);
    }

    /// The descriptor after `change`, and the Raft conf change that makes it.
    fn plan_change(&self, change: ReplicaChange) -> Result<(RangeDescriptor, ConfChangeSingle)> {
        let mut descriptor = self
            .descriptor()
            .cloned()
            .ok_or_else(|| self.not_leader())?;
        let mut single = ConfChangeSingle::default();
        let node = match change {
            ReplicaChange::AddLearner(node)
            | ReplicaChange::Promote(node)
            | ReplicaChange::Remove(node) => node,
        };
        let position = descriptor.replicas.iter().position(|r| r.node_id == node);
        match (change, position) {
            (ReplicaChange::AddLearner(_), Some(_)) => {
                return Err(Error::InvalidInput(format!(
                    "range {} already has a replica on node {node}",
                    self.range_id
                )));
            }
            (ReplicaChange::AddLearner(_), None) => {
                let replica_id = descriptor
                    .replicas
                    .iter()
                    .map(|r| r.replica_id)
                    .max()
                    .unwrap_or(0)
                    + 1;
                descriptor.replicas.push(ReplicaDescriptor {
                    node_id: node,
                    replica_id,
                    role: ReplicaRole::Learner as i32,
                });
                single.set_change_type(ConfChangeType::AddLearnerNode);
                single.node_id = replica_id;
            }
            (_, None) => {
                return Err(Error::InvalidInput(format!(
                    "range {} has no replica on node {node}",
                    self.range_id
                )));
            }
            (ReplicaChange::Promote(_), Some(i)) => {
                descriptor.replicas[i].role = ReplicaRole::Voter as i32;
                single.set_change_type(ConfChangeType::AddNode);
                single.node_id = descriptor.replicas[i].replica_id;
            }
            (ReplicaChange::Remove(_), Some(i)) => {
                let removed = descriptor.replicas.remove(i);
                single.set_change_type(ConfChangeType::RemoveNode);
                single.node_id = removed.replica_id;
            }
        }
        Ok((descriptor, single))
    }

    fn apply_conf_change(
        &mut self,
        cc: impl raft_proto::ConfChangeI,
        batch: &mut WriteBatch,
    ) -> std::result::Result<(), String> {
        match self.raw.apply_conf_change(&cc) {
            Ok(conf_state) => {
                self.raw.mut_store().stage_conf_state(conf_state, batch);
                Ok(())
            }
            Err(err) => Err(format!("conf change rejected: {err}")),
        }
    }
}
