//! Lease rebalancing: every few seconds, each node compares the number of
//! user ranges it leads with the numbers its fellow replicas' nodes lead
//! (asked over `Node.Ranges`; a node that does not answer is not live and
//! gets nothing) and, when it leads at least two more than one of them,
//! hands one lease to the live voter that leads the fewest. Repeated on
//! every node, this leaves the lease counts of the live nodes within one of
//! each other. The meta range's lease (the oracle, the deadlock detector)
//! stays where it is.
//!
//! Replica rebalancing: on the same beat, the node that leads the meta
//! range compares the live nodes' replica counts and, when one holds at
//! least two more than another, moves one replica from the fullest to the
//! emptiest (a relocation, as `ALTER RANGE ... RELOCATE VOTERS`). A node
//! that joins fills up this way, one replica per pass, until the counts are
//! within one of each other.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tessera_kv::{AddressBook, KvClient};
use tessera_proto::meta::{RangeDescriptor, ReplicaRole};
use tessera_raft::StoreHandle;
use tessera_txn::TxnClient;
use tessera_types::keys::META_RANGE_ID;
use tessera_types::NodeId;

/// How long a node may take to report its leases before it counts as not
/// live for this pass.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs until the task is aborted.
pub async fn run(
    store: StoreHandle,
    addresses: AddressBook,
    client: KvClient,
    txn: TxnClient,
    interval: Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        if let Err(err) = pass(&store, &addresses, &client).await {
            tracing::debug!(%err, "lease rebalancing pass skipped");
        }
        let leads_meta = store
            .replica(META_RANGE_ID)
            .await
            .ok()
            .flatten()
            .is_some_and(|r| r.is_leader);
        if leads_meta {
            if let Err(err) = spread_replicas(&txn).await {
                tracing::warn!(%err, "replica rebalancing pass failed");
            }
        }
    }
}

/// Moves one replica from the live node holding the most to the live node
/// holding the fewest, if they differ by two or more; or off a live
/// decommissioned node that still holds some (a decommission that stopped
/// half-way).
async fn spread_replicas(txn: &TxnClient) -> anyhow::Result<()> {
    let nodes = txn.nodes().await?;
    let live: Vec<(usize, NodeId)> = nodes
        .iter()
        .filter(|n| n.live && !n.decommissioned)
        .map(|n| (n.replicas.unwrap_or(0), n.node_id))
        .collect();
    let draining = nodes
        .iter()
        .filter(|n| n.live && n.decommissioned && n.replicas.unwrap_or(0) > 0)
        .map(|n| (usize::MAX, n.node_id))
        .next();
    let (Some(&(most, full)), Some(&(fewest, empty))) =
        (draining.as_ref().or(live.iter().max()), live.iter().min())
    else {
        return Ok(());
    };
    if most < fewest.saturating_add(2) {
        return Ok(());
    }
    // A range with a voter on the full node and no replica on the empty
    // one; user ranges before the meta range.
    let ranges = txn.ranges().await?;
    let Some(range) = ranges
        .iter()
        .filter(|d| voters(d).any(|n| n == full))
        .filter(|d| !d.replicas.iter().any(|r| r.node_id == empty))
        .min_by_key(|d| (d.range_id == META_RANGE_ID, d.range_id))
    else {
        return Ok(());
    };
    txn.relocate_voter(range.range_id, full, empty).await?;
    tracing::info!(
        range = range.range_id,
        from = full,
        to = empty,
        replicas = ?live,
        "moved a replica to even out the nodes' replicas"
    );
    Ok(())
}

/// The user ranges a node's replicas lead.
fn user_leases<'a>(
    replicas: impl Iterator<Item = (bool, Option<&'a RangeDescriptor>)>,
) -> Vec<&'a RangeDescriptor> {
    replicas
        .filter(|(leader, _)| *leader)
        .filter_map(|(_, d)| d)
        .filter(|d| d.range_id != META_RANGE_ID)
        .collect()
}

fn voters(d: &RangeDescriptor) -> impl Iterator<Item = NodeId> + '_ {
    d.replicas
        .iter()
        .filter(|r| r.role == ReplicaRole::Voter as i32)
        .map(|r| r.node_id)
}

async fn pass(
    store: &StoreHandle,
    addresses: &AddressBook,
    client: &KvClient,
) -> anyhow::Result<()> {
    let me = store.node_id();
    let replicas = store.replicas().await?;
    let mine = user_leases(
        replicas
            .iter()
            .map(|r| (r.is_leader, r.descriptor.as_ref())),
    );
    if mine.is_empty() {
        return Ok(());
    }
    let peers: BTreeSet<NodeId> = mine
        .iter()
        .flat_map(|d| voters(d))
        .filter(|n| *n != me)
        .collect();
    let mut counts: BTreeMap<NodeId, usize> = BTreeMap::from([(me, mine.len())]);
    for peer in peers {
        let Some(address) = addresses.get(peer) else {
            continue;
        };
        let Ok(replicas) = client.node_replicas(&address, ASK_TIMEOUT).await else {
            continue;
        };
        let leads = user_leases(
            replicas
                .iter()
                .map(|r| (r.is_leader, r.descriptor.as_ref())),
        );
        counts.insert(peer, leads.len());
    }
    // The range whose lease goes, and where: the live voter leading the
    // fewest, if it leads at least two fewer than this node.
    let choice = mine.iter().find_map(|d| {
        voters(d)
            .filter(|n| *n != me)
            .filter_map(|n| counts.get(&n).map(|c| (*c, n)))
            .min()
            .filter(|(count, _)| count + 1 < mine.len())
            .map(|(_, to)| (d.range_id, to))
    });
    if let Some((range_id, to)) = choice {
        store.transfer_leader(range_id, to).await?;
        tracing::info!(
            range = range_id,
            from = me,
            to,
            leases = ?counts,
            "moved a lease to even out the nodes' leases"
        );
    }
    Ok(())
}
