//! Resharding, run from a gateway: moving a range's replicas between nodes
//! and merging adjacent ranges. Each step is a command at a range's leader
//! (`KV.ChangeReplicas`, `KV.FreezeRange`, `KV.MergeRanges`); this module
//! orders the steps, checks the input first, and records the outcome in the
//! meta range. Every step can be run again after a failure: a relocation
//! resumes from the learner it added or the joint configuration it entered,
//! and a merge re-freezes a range it left frozen.

use std::time::Duration;

use tessera_proto::kv::{
    change_replicas_request::Kind, ChangeReplicasRequest, FreezeRangeRequest, MergeRangesRequest,
};
use tessera_proto::meta::{NodeRecord, RangeDescriptor, ReplicaRole};
use tessera_types::keys;

use crate::{TxnClient, TxnError, TxnResult};

/// How long every replica of a frozen range has to apply its freeze.
const FREEZE_APPLY_WAIT: Duration = Duration::from_secs(30);

/// How long a node has to answer before it counts as not live.
const LIVENESS_WAIT: Duration = Duration::from_secs(1);

fn invalid(msg: String) -> TxnError {
    TxnError::InvalidRequest(msg)
}

fn has_role(d: &RangeDescriptor, node: u64, role: ReplicaRole) -> bool {
    d.replicas
        .iter()
        .any(|r| r.node_id == node && r.role == role as i32)
}

/// The nodes of a range's voters, sorted.
pub fn voter_nodes(d: &RangeDescriptor) -> Vec<u64> {
    let mut nodes: Vec<u64> = d
        .replicas
        .iter()
        .filter(|r| r.role == ReplicaRole::Voter as i32)
        .map(|r| r.node_id)
        .collect();
    nodes.sort_unstable();
    nodes
}

impl TxnClient {
    /// The meta range's node records.
    pub async fn node_records(&self) -> TxnResult<Vec<NodeRecord>> {
        Ok(self.inner.kv.node_records().await?)
    }

    /// Range `range_id` as the meta range records it now.
    pub async fn range(&self, range_id: u64) -> TxnResult<RangeDescriptor> {
        self.inner.ranges.refresh().await?;
        self.inner
            .ranges
            .all()
            .into_iter()
            .find(|d| d.range_id == range_id)
            .ok_or_else(|| invalid(format!("range {range_id} does not exist")))
    }

    /// The address of node `node`, which must be recorded, answer within a
    /// second, and (if it is to take a replica) not be decommissioned.
    async fn live_node(
        &self,
        records: &[NodeRecord],
        node: u64,
        takes_replicas: bool,
    ) -> TxnResult<String> {
        let record = records
            .iter()
            .find(|r| r.node_id == node)
            .ok_or_else(|| invalid(format!("node {node} does not exist")))?;
        if takes_replicas && record.decommissioned {
            return Err(invalid(format!(
                "node {node} is decommissioned: it takes no new replicas"
            )));
        }
        self.inner
            .kv
            .node_replicas(&record.address, LIVENESS_WAIT)
            .await
            .map_err(|_| {
                invalid(format!(
                    "node {node} ({}) is not live: it did not answer within {LIVENESS_WAIT:?}",
                    record.address
                ))
            })?;
        Ok(record.address.clone())
    }

    async fn change(
        &self,
        d: &RangeDescriptor,
        request: ChangeReplicasRequest,
    ) -> TxnResult<RangeDescriptor> {
        let request = ChangeReplicasRequest {
            key: d.start_key.clone(),
            range_id: d.range_id,
            generation: d.generation,
            ..request
        };
        Ok(self.inner.kv.change_replicas(request).await?)
    }

    /// Moves range `range_id`'s voter on node `from` to node `to` (a live
    /// node without a replica of it): adds a learner on `to`, which gets a
    /// snapshot; moves the lease off `from` if it is there; promotes the
    /// learner and demotes `from` in one joint configuration once the
    /// learner has caught up; leaves the joint configuration; and records
    /// the range in the meta range. `from`'s node removes its replica on its
    /// own once the meta range shows it gone. Returns the new descriptor.
    /// A step that meets a concurrent change of the range (another
    /// relocation, a split, a merge) is planned again, a few times, from
    /// the range as its leader knows it; a plan that finds the move made
    /// (its own step took effect but its answer was lost) records it.
    pub async fn relocate_voter(
        &self,
        range_id: u64,
        from: u64,
        to: u64,
    ) -> TxnResult<RangeDescriptor> {
        let planned = std::sync::atomic::AtomicBool::new(false);
        retry_changed(|| {
            let again = planned.swap(true, std::sync::atomic::Ordering::Relaxed);
            self.relocate_voter_once(range_id, from, to, again)
        })
        .await
    }

    /// The range as its leader knows it: the meta range's record lags a
    /// step whose answer was lost, until the relocation records it.
    async fn range_at_leader(&self, range_id: u64) -> TxnResult<RangeDescriptor> {
        let recorded = self.range(range_id).await?;
        let status = self.inner.kv.range_status(&recorded.start_key).await?;
        Ok(status
            .descriptor
            .filter(|d| d.range_id == range_id && d.generation >= recorded.generation)
            .unwrap_or(recorded))
    }

    async fn relocate_voter_once(
        &self,
        range_id: u64,
        from: u64,
        to: u64,
        again: bool,
    ) -> TxnResult<RangeDescriptor> {
        if from == to {
            return Err(invalid(format!(
                "range {range_id}: node {from} is both source and target"
            )));
        }
        let mut d = self.range_at_leader(range_id).await?;
        let mut resumed = again;
        if d.replicas
            .iter()
            .any(|r| r.role == ReplicaRole::VoterOutgoing as i32)
        {
            // A relocation stopped half-way: finish its configuration change.
            d = self.change(&d, leave_joint()).await?;
            resumed = true;
        }
        if resumed
            && has_role(&d, to, ReplicaRole::Voter)
            && !has_role(&d, from, ReplicaRole::Voter)
        {
            // The move is made: record it.
            self.inner.kv.update_meta(vec![d.clone()]).await?;
            self.inner.ranges.refresh().await?;
            return Ok(d);
        }
        if !has_role(&d, from, ReplicaRole::Voter) {
            return Err(invalid(format!(
                "node {from} holds no voting replica of range {range_id} (its voters are on nodes {:?})",
                voter_nodes(&d)
            )));
        }
        if has_role(&d, to, ReplicaRole::Voter) {
            return Err(invalid(format!(
                "node {to} already holds a voting replica of range {range_id}"
            )));
        }
        let address = self
            .live_node(&self.node_records().await?, to, true)
            .await?;
        if !has_role(&d, to, ReplicaRole::Learner) {
            d = self
                .change(
                    &d,
                    ChangeReplicasRequest {
                        kind: Kind::AddLearner as i32,
                        node_id: to,
                        address: address.clone(),
                        ..Default::default()
                    },
                )
                .await?;
        }
        // The leader cannot demote itself: move the lease first (it may come
        // back during an election, hence the retries).
        let mut attempts = 0;
        loop {
            attempts += 1;
            if self.inner.kv.lease_holder(&d.start_key).await? == from {
                let other = voter_nodes(&d)
                    .into_iter()
                    .find(|n| *n != from)
                    .ok_or_else(|| {
                        invalid(format!("range {range_id} has no other voter to lead it"))
                    })?;
                self.inner
                    .kv
                    .transfer_leader(&d.start_key, range_id, other)
                    .await?;
            }
            let enter = ChangeReplicasRequest {
                kind: Kind::EnterJoint as i32,
                node_id: to,
                remove_node_id: from,
                address: address.clone(),
                ..Default::default()
            };
            match self.change(&d, enter).await {
                Ok(joint) => {
                    d = joint;
                    break;
                }
                Err(TxnError::InvalidRequest(msg))
                    if msg.contains("move the lease") && attempts < 5 => {}
                Err(err) => return Err(err),
            }
        }
        d = self.change(&d, leave_joint()).await?;
        if !again && crate::failpoint::is_armed(crate::failpoint::RELOCATE_ANSWER_LOST) {
            return Err(TxnError::Changed(format!(
                "range {range_id}: the answer to leaving the joint configuration was lost \
                 (failpoint {})",
                crate::failpoint::RELOCATE_ANSWER_LOST
            )));
        }
        self.inner.kv.update_meta(vec![d.clone()]).await?;
        self.inner.ranges.refresh().await?;
        Ok(d)
    }

    /// Merges the range that starts at `key` into the range that ends
    /// there. First the right range's voters move onto the left's nodes;
    /// then the right range freezes; once each of its replicas has applied
    /// the freeze, the left range absorbs it; the meta range records the
    /// merged range. Returns the merged descriptor. A merge that meets a
    /// concurrent change of either range is planned again, a few times.
    pub async fn merge_at(&self, key: &[u8]) -> TxnResult<RangeDescriptor> {
        retry_changed(|| self.merge_at_once(key)).await
    }

    async fn merge_at_once(&self, key: &[u8]) -> TxnResult<RangeDescriptor> {
        let (left, mut right) = self.adjacent(key).await?;
        if left.range_id == keys::META_RANGE_ID {
            return Err(invalid("the meta range does not merge".into()));
        }
        // Co-locate: move the right range's voters onto the left's nodes.
        loop {
            let (l, r) = (voter_nodes(&left), voter_nodes(&right));
            if l.len() != r.len()
                || left.replicas.len() != l.len()
                || right.replicas.len() != r.len()
            {
                return Err(invalid(format!(
                    "ranges {} and {} have different replica counts ({} and {}) or learners",
                    left.range_id,
                    right.range_id,
                    left.replicas.len(),
                    right.replicas.len()
                )));
            }
            let from = r.iter().find(|n| !l.contains(n));
            let to = l.iter().find(|n| !r.contains(n));
            match (from, to) {
                (Some(&from), Some(&to)) => {
                    right = self.relocate_voter(right.range_id, from, to).await?;
                }
                _ => break,
            }
        }
        let (left, right) = self.adjacent(key).await?;
        // Every replica must apply the freeze: each node must be up.
        let records = self.node_records().await?;
        for node in voter_nodes(&right) {
            self.live_node(&records, node, false).await?;
        }
        let frozen = self
            .inner
            .kv
            .freeze_range(FreezeRangeRequest {
                key: right.start_key.clone(),
                range_id: right.range_id,
                generation: right.generation,
                unfreeze: false,
            })
            .await?;
        let frozen_right = frozen.descriptor.clone().unwrap_or(right.clone());
        // Releasing raises the range's generation again: the meta range
        // records it, for the next plan.
        let unfreeze = || async {
            let released = self
                .inner
                .kv
                .freeze_range(FreezeRangeRequest {
                    key: right.start_key.clone(),
                    range_id: right.range_id,
                    generation: frozen_right.generation,
                    unfreeze: true,
                })
                .await?;
            self.inner
                .kv
                .update_meta(released.descriptor.into_iter().collect())
                .await
        };
        // No merge was proposed yet: if a replica does not apply the freeze
        // in time, releasing the range is safe.
        if let Err(err) = self.wait_applied(&frozen_right, frozen.applied_index).await {
            unfreeze().await?;
            return Err(err);
        }
        crate::failpoint::crash_if_armed(crate::failpoint::MERGE_AFTER_FREEZE);
        let request = MergeRangesRequest {
            key: left.start_key.clone(),
            range_id: left.range_id,
            generation: left.generation,
            right: Some(frozen_right.clone()),
            right_gc_threshold: frozen.gc_threshold,
            fence: false,
        };
        let merged = match self.inner.kv.merge_ranges(request).await {
            Ok(merged) => merged,
            Err(err) => {
                let err = TxnError::from(err);
                if matches!(err, TxnError::InvalidRequest(_) | TxnError::Changed(_)) {
                    // Refused by every replica alike: release the right range.
                    unfreeze().await?;
                }
                // Otherwise the merge may still apply: the range stays frozen
                // until the merge is run again.
                return Err(err);
            }
        };
        self.inner
            .kv
            .record_range(vec![merged.clone()], vec![left.end_key.clone()])
            .await?;
        self.inner.ranges.refresh().await?;
        Ok(merged)
    }

    /// Merges range `left` with the range after it, which must be `right`
    /// if given (22023 if they are not adjacent).
    pub async fn merge_ranges(&self, left: u64, right: Option<u64>) -> TxnResult<RangeDescriptor> {
        let l = self.range(left).await?;
        if l.end_key.is_empty() {
            return Err(invalid(format!(
                "range {left} is the last range: nothing follows it"
            )));
        }
        if let Some(right) = right {
            let r = self.range(right).await?;
            if r.start_key != l.end_key {
                return Err(invalid(format!(
                    "ranges {left} and {right} are not adjacent: range {right} does not start \
                     where range {left} ends"
                )));
            }
        }
        self.merge_at(&l.end_key).await
    }

    /// The moves that empty node `node`: each of its replicas goes to the
    /// live node without a replica of that range that holds the fewest
    /// replicas (counting the moves before it).
    pub async fn drain_plan(&self, node: u64) -> TxnResult<Vec<(RangeDescriptor, u64)>> {
        let nodes = self.nodes().await?;
        if !nodes.iter().any(|n| n.node_id == node) {
            return Err(invalid(format!("node {node} does not exist")));
        }
        let mut load: Vec<(u64, usize)> = nodes
            .iter()
            .filter(|n| n.live && !n.decommissioned && n.node_id != node)
            .map(|n| (n.node_id, n.replicas.unwrap_or(0)))
            .collect();
        let mut plan = Vec::new();
        for range in self.ranges().await? {
            if !range.replicas.iter().any(|r| r.node_id == node) {
                continue;
            }
            let target = load
                .iter_mut()
                .filter(|(n, _)| !range.replicas.iter().any(|r| r.node_id == *n))
                .min_by_key(|(n, count)| (*count, *n))
                .ok_or_else(|| {
                    invalid(format!(
                        "no live node can take range {}'s replica from node {node}: \
                         every live node holds one (add a node first)",
                        range.range_id
                    ))
                })?;
            target.1 += 1;
            plan.push((range, target.0));
        }
        Ok(plan)
    }

    /// Marks node `node` decommissioned: from now on it gets no new
    /// replicas (relocations to it are refused, the rebalancer skips it).
    /// Its replicas are then moved off with [`Self::drain_plan`].
    pub async fn decommission(&self, node: u64) -> TxnResult<()> {
        let mut record = self
            .node_records()
            .await?
            .into_iter()
            .find(|r| r.node_id == node)
            .ok_or_else(|| invalid(format!("node {node} does not exist")))?;
        if !record.decommissioned {
            record.decommissioned = true;
            self.inner.kv.record_nodes(vec![record]).await?;
        }
        Ok(())
    }

    /// The ranges on either side of `key`, which must be a boundary.
    async fn adjacent(&self, key: &[u8]) -> TxnResult<(RangeDescriptor, RangeDescriptor)> {
        self.inner.ranges.refresh().await?;
        let all = self.inner.ranges.all();
        let left = all.iter().find(|d| d.end_key == key && !key.is_empty());
        let right = all.iter().find(|d| d.start_key == key);
        match (left, right) {
            (Some(left), Some(right)) => Ok((left.clone(), right.clone())),
            _ => Err(invalid(format!(
                "no range boundary at key {key:02x?}: nothing to merge"
            ))),
        }
    }

    /// Waits until every replica of `d` has applied `index`.
    async fn wait_applied(&self, d: &RangeDescriptor, index: u64) -> TxnResult<()> {
        let records = self.node_records().await?;
        let deadline = tokio::time::Instant::now() + FREEZE_APPLY_WAIT;
        for replica in &d.replicas {
            let address = records
                .iter()
                .find(|r| r.node_id == replica.node_id)
                .map(|r| r.address.clone())
                .ok_or_else(|| {
                    TxnError::Internal(format!("node {} has no record", replica.node_id))
                })?;
            loop {
                let applied = self
                    .inner
                    .kv
                    .node_replicas(&address, LIVENESS_WAIT)
                    .await
                    .ok()
                    .and_then(|replicas| {
                        replicas
                            .into_iter()
                            .find(|r| {
                                r.descriptor
                                    .as_ref()
                                    .is_some_and(|x| x.range_id == d.range_id)
                            })
                            .map(|r| r.applied_index)
                    });
                if applied.is_some_and(|a| a >= index) {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(TxnError::Unavailable(format!(
                        "the replica of range {} on node {} did not apply its freeze within \
                         {FREEZE_APPLY_WAIT:?}; run the merge again",
                        d.range_id, replica.node_id
                    )));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }
}

/// How many times a resharding step is planned again after meeting a
/// concurrent change of its range.
const CHANGED_RETRIES: u32 = 5;

/// Runs `step` until it does not fail with `Changed`, at most
/// `CHANGED_RETRIES` more times, pausing a little longer each time.
async fn retry_changed<T, F, Fut>(step: F) -> TxnResult<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = TxnResult<T>>,
{
    let mut attempt = 0;
    loop {
        match step().await {
            Err(TxnError::Changed(msg)) if attempt < CHANGED_RETRIES => {
                attempt += 1;
                tracing::debug!(%msg, attempt, "the range changed; planning the step again");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
            other => return other,
        }
    }
}

fn leave_joint() -> ChangeReplicasRequest {
    ChangeReplicasRequest {
        kind: Kind::LeaveJoint as i32,
        ..Default::default()
    }
}
