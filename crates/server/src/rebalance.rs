//! Lease rebalancing: every few seconds, each node compares the number of
//! user ranges it leads with the numbers its fellow replicas' nodes lead
//! (asked over `Node.Ranges`; a node that does not answer is not live and
//! gets nothing) and, when it leads at least two more than one of them,
//! hands one lease to the live voter that leads the fewest. Repeated on
//! every node, this leaves the lease counts of the live nodes within one of
//! each other. The meta range's lease (the oracle, the deadlock detector)
//! stays where it is.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tessera_kv::{AddressBook, KvClient};
use tessera_proto::meta::{RangeDescriptor, ReplicaRole};
use tessera_raft::StoreHandle;
use tessera_types::keys::META_RANGE_ID;
use tessera_types::NodeId;

/// How long a node may take to report its leases before it counts as not
/// live for this pass.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs until the task is aborted.
pub async fn run(store: StoreHandle, addresses: AddressBook, client: KvClient, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        if let Err(err) = pass(&store, &addresses, &client).await {
            tracing::debug!(%err, "lease rebalancing pass skipped");
        }
    }
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
