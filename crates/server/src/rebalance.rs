//! Lease rebalancing: every few seconds, each node compares the number of
//! user ranges it leads with the numbers its fellow replicas' nodes lead
//! (asked over `Node.Ranges`; a node that does not answer is not live and
//! gets nothing) and, when it leads at least two more than one of them,
//! hands one lease to the live voter that leads the fewest. Repeated on
//! every node, this leaves the lease counts of the live nodes within one of
//! each other. The meta range's lease (the oracle, the deadlock detector)
//! stays where it is.
//!
//! Leases follow the workload: on the same beat, a node asks for the lease
//! of each range it holds a voter of whose requests come mostly from its
//! own SQL gateway (at least `FOLLOW_SHARE` of what the range's leader
//! served, and `FOLLOW_MIN_QPS` a second), so that they are answered
//! without a hop between nodes; and it keeps out of the count balancing the
//! leases it holds that its gateway keeps busy (`KEEP_SHARE`). Where the
//! gateways share a range's requests evenly, as behind a load balancer,
//! none of them takes the lease and the counts decide.
//!
//! Replica rebalancing: on the same beat, the node that leads the meta
//! range compares the live nodes' replica counts and, when one holds at
//! least two more than another, moves one replica from the fullest to the
//! emptiest (a relocation, as `ALTER RANGE ... RELOCATE VOTERS`). A node
//! that joins fills up this way, one replica per pass, until the counts are
//! within one of each other.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use tessera_kv::{AddressBook, KvClient};
use tessera_proto::meta::{RangeDescriptor, ReplicaRole};
use tessera_raft::{ReplicaInfo, StoreHandle};
use tessera_txn::TxnClient;
use tessera_types::keys::META_RANGE_ID;
use tessera_types::{NodeId, RangeId};

/// How long a node may take to report its leases before it counts as not
/// live for this pass.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// The rate (requests a second) below which a gateway's requests to a
/// range do not take its lease; half of it keeps the lease, so that a rate
/// near the line does not move the lease back and forth.
const FOLLOW_MIN_QPS: f64 = 10.0;
/// The share of a range's requests a node's gateway must send for the node
/// to take the range's lease.
const FOLLOW_SHARE: f64 = 0.6;
/// The share of a range's requests the leader's own gateway must send to
/// keep the lease out of the count balancing. Below `FOLLOW_SHARE`, so
/// that a share near the line does not move the lease back and forth.
const KEEP_SHARE: f64 = 0.5;
/// The most leases a node asks for in one pass.
const FOLLOWS_PER_PASS: usize = 16;

/// Runs until the task is aborted. `gateway` is the client of this node's
/// SQL gateway, counting what it asks of each range
/// (`KvClient::counting_requests`); without it, leases do not follow the
/// workload.
pub async fn run(
    store: StoreHandle,
    addresses: AddressBook,
    client: KvClient,
    txn: TxnClient,
    gateway: Option<KvClient>,
    interval: Duration,
) {
    // Each range's generation when the gateway's spans were last
    // reloaded: at the last pass, or here for the first one.
    let mut generations: HashMap<RangeId, u64> = HashMap::new();
    if let Some(gateway) = &gateway {
        gateway.reload_spans().await;
        if let Ok(replicas) = store.replicas().await {
            generations = generations_of(&replicas);
        }
    }
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(interval).await;
        let sent = match &gateway {
            Some(gateway) => {
                let sent = per_second(gateway.take_requests(), since.elapsed());
                // The counts go by the gateway's spans: keep them at most
                // one pass old.
                gateway.reload_spans().await;
                sent
            }
            None => HashMap::new(),
        };
        since = Instant::now();
        match store.replicas().await {
            Ok(replicas) => {
                let settled = settled_counts(&sent, &generations, &replicas);
                generations = generations_of(&replicas);
                if !settled.is_empty() {
                    follow_workload(&store, &replicas, &addresses, &client, &settled).await;
                }
                // As the replicas were before the moves above: a lease just
                // taken neither counts nor goes in this pass.
                if let Err(err) = pass(&store, &replicas, &addresses, &client, &sent).await {
                    tracing::debug!(%err, "lease rebalancing pass skipped");
                }
            }
            Err(err) => tracing::debug!(%err, "lease passes skipped"),
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

fn per_second(counts: HashMap<RangeId, u64>, over: Duration) -> HashMap<RangeId, f64> {
    let secs = over.as_secs_f64().max(1e-3);
    counts
        .into_iter()
        .map(|(range, n)| (range, n as f64 / secs))
        .collect()
}

fn generations_of(replicas: &[ReplicaInfo]) -> HashMap<RangeId, u64> {
    replicas
        .iter()
        .filter_map(|r| r.descriptor.as_ref())
        .map(|d| (d.range_id, d.generation))
        .collect()
}

/// The gateway's rates of the ranges that neither split nor merged (nor
/// changed members) since the last pass. The gateway counted by spans
/// reloaded then: a request for a key that a split since moved to a new
/// range went to the old range's count, which says too much of the old
/// range and nothing of the new one.
fn settled_counts(
    sent: &HashMap<RangeId, f64>,
    generations: &HashMap<RangeId, u64>,
    replicas: &[ReplicaInfo],
) -> HashMap<RangeId, f64> {
    replicas
        .iter()
        .filter_map(|r| r.descriptor.as_ref())
        .filter(|d| generations.get(&d.range_id) == Some(&d.generation))
        .filter_map(|d| Some((d.range_id, *sent.get(&d.range_id)?)))
        .collect()
}

/// Asks for the leases of the ranges whose requests come mostly from this
/// node's gateway (`sent`: its requests a second, by range).
async fn follow_workload(
    store: &StoreHandle,
    replicas: &[ReplicaInfo],
    addresses: &AddressBook,
    client: &KvClient,
    sent: &HashMap<RangeId, f64>,
) {
    let me = store.node_id();
    let candidates = follow_candidates(me, replicas, sent);
    if candidates.is_empty() {
        return;
    }
    // A decommissioned node takes no leases: its replicas are on their way
    // out.
    match client.node_records().await {
        Ok(records) if records.iter().any(|r| r.node_id == me && r.decommissioned) => return,
        Ok(_) => {}
        Err(err) => {
            tracing::debug!(%err, "lease following skipped: no node records");
            return;
        }
    }
    // What each range's leader served, from the leaders' nodes.
    let mut served: HashMap<RangeId, f64> = HashMap::new();
    let leaders: BTreeSet<NodeId> = candidates.iter().map(|(_, leader)| *leader).collect();
    for leader in leaders {
        let Some(address) = addresses.get(leader) else {
            continue;
        };
        let Ok(replicas) = client.node_replicas(&address, ASK_TIMEOUT).await else {
            continue;
        };
        served.extend(
            replicas
                .iter()
                .filter(|r| r.is_leader)
                .filter_map(|r| Some((r.descriptor.as_ref()?.range_id, r.qps))),
        );
    }
    let mut moved = 0;
    for (range, _) in candidates {
        let (Some(&ours), Some(&total)) = (sent.get(&range.range_id), served.get(&range.range_id))
        else {
            continue;
        };
        if !takes_lease(ours, total) {
            continue;
        }
        match client
            .transfer_leader(&range.start_key, range.range_id, me)
            .await
        {
            Ok(()) => {
                tracing::info!(
                    range = range.range_id,
                    to = me,
                    gateway_qps = ours.round(),
                    range_qps = total.round(),
                    "moved a lease to the node whose gateway sends most of its requests"
                );
                moved += 1;
                if moved == FOLLOWS_PER_PASS {
                    break;
                }
            }
            Err(err) => tracing::debug!(range = range.range_id, %err, "lease not moved"),
        }
    }
}

/// The user ranges, and their leaders' nodes, whose leases this node may
/// ask for: it holds a voter, another node leads, and its gateway sent at
/// least `FOLLOW_MIN_QPS`; busiest first.
fn follow_candidates<'a>(
    me: NodeId,
    replicas: &'a [ReplicaInfo],
    sent: &HashMap<RangeId, f64>,
) -> Vec<(&'a RangeDescriptor, NodeId)> {
    let mut candidates: Vec<(&RangeDescriptor, NodeId, f64)> = replicas
        .iter()
        .filter(|r| !r.is_leader)
        .filter_map(|r| Some((r.descriptor.as_ref()?, r.leader_node?)))
        .filter(|(d, leader)| *leader != me && d.range_id != META_RANGE_ID)
        .filter(|(d, _)| voters(d).any(|n| n == me))
        .filter_map(|(d, leader)| {
            let rate = *sent.get(&d.range_id)?;
            (rate >= FOLLOW_MIN_QPS).then_some((d, leader, rate))
        })
        .collect();
    candidates.sort_by(|a, b| b.2.total_cmp(&a.2));
    candidates
        .into_iter()
        .map(|(d, leader, _)| (d, leader))
        .collect()
}

/// Whether a gateway that sends `ours` of the `served` requests a second
/// a range's leader served takes the range's lease. A leader without a
/// measure yet (a new range, or a lease that just moved: its first window
/// is not over) keeps it: the other gateways' share is not known.
fn takes_lease(ours: f64, served: f64) -> bool {
    ours >= FOLLOW_MIN_QPS && served > 0.0 && ours >= FOLLOW_SHARE * served
}

/// Whether the leader's own gateway, sending `ours` of the `served`
/// requests a second, keeps the lease out of the count balancing.
fn keeps_lease(ours: f64, served: f64) -> bool {
    ours >= FOLLOW_MIN_QPS / 2.0 && ours >= KEEP_SHARE * served
}

/// The ranges this node leads whose requests come mostly from its own
/// gateway: their leases stay out of the count balancing.
fn kept_leases(replicas: &[ReplicaInfo], sent: &HashMap<RangeId, f64>) -> HashSet<RangeId> {
    replicas
        .iter()
        .filter(|r| r.is_leader)
        .filter(|r| {
            sent.get(&r.range_id)
                .is_some_and(|&ours| keeps_lease(ours, r.qps))
        })
        .map(|r| r.range_id)
        .collect()
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
    replicas: &[ReplicaInfo],
    addresses: &AddressBook,
    client: &KvClient,
    sent: &HashMap<RangeId, f64>,
) -> anyhow::Result<()> {
    let me = store.node_id();
    let kept = kept_leases(replicas, sent);
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
    // fewest, if it leads at least two fewer than this node. A lease this
    // node's gateway keeps busy stays.
    let choice = mine
        .iter()
        .filter(|d| !kept.contains(&d.range_id))
        .find_map(|d| {
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

#[cfg(test)]
mod tests {
    use tessera_proto::meta::ReplicaDescriptor;

    use super::*;

    /// Node `node`'s replica of range `range`, whose voters are on nodes 1
    /// to 3 and whose learner is on node 4, led by node `leader`.
    fn replica(node: NodeId, range: RangeId, leader: NodeId, qps: f64) -> ReplicaInfo {
        let member = |node_id: NodeId, role: ReplicaRole| ReplicaDescriptor {
            node_id,
            replica_id: node_id,
            role: role as i32,
        };
        ReplicaInfo {
            descriptor: Some(RangeDescriptor {
                range_id: range,
                start_key: vec![2, range as u8],
                end_key: vec![2, range as u8 + 1],
                replicas: vec![
                    member(1, ReplicaRole::Voter),
                    member(2, ReplicaRole::Voter),
                    member(3, ReplicaRole::Voter),
                    member(4, ReplicaRole::Learner),
                ],
                ..Default::default()
            }),
            range_id: range,
            leader_node: Some(leader),
            is_leader: node == leader,
            qps: if node == leader { qps } else { 0.0 },
            ..Default::default()
        }
    }

    #[test]
    fn a_node_asks_for_the_leases_its_gateway_keeps_busy_where_it_votes() {
        let sent = HashMap::from([
            (5, 40.0),
            (6, 400.0),
            (7, 9.0),
            (8, 50.0),
            (META_RANGE_ID, 900.0),
        ]);
        let replicas = [
            replica(1, 5, 2, 0.0),
            replica(1, 6, 3, 0.0),
            // Too few requests to matter.
            replica(1, 7, 2, 0.0),
            // Led here already.
            replica(1, 8, 1, 60.0),
            // The oracle stays where it is.
            replica(1, META_RANGE_ID, 2, 0.0),
        ];
        let ranges: Vec<(RangeId, NodeId)> = follow_candidates(1, &replicas, &sent)
            .iter()
            .map(|(d, leader)| (d.range_id, *leader))
            .collect();
        assert_eq!(ranges, [(6, 3), (5, 2)], "busiest first");
        // A learner's node does not ask.
        let learner = [replica(4, 5, 2, 0.0)];
        assert!(follow_candidates(4, &learner, &sent).is_empty());
    }

    #[test]
    fn counts_of_ranges_that_split_since_the_last_pass_are_left_out() {
        let sent = HashMap::from([(5, 40.0), (6, 50.0), (7, 60.0)]);
        let mut replicas = [
            replica(1, 5, 2, 0.0),
            replica(1, 6, 2, 0.0),
            replica(1, 7, 2, 0.0),
        ];
        for r in &mut replicas {
            r.descriptor.as_mut().unwrap().generation = 3;
        }
        // Range 6 split since (its generation moved); range 7 is new.
        let generations = HashMap::from([(5, 3), (6, 2)]);
        let settled = settled_counts(&sent, &generations, &replicas);
        assert_eq!(settled, HashMap::from([(5, 40.0)]));
    }

    #[test]
    fn a_lease_moves_for_a_clear_majority_and_stays_for_a_half() {
        // 60% of the range's requests take the lease; 55% do not.
        assert!(takes_lease(60.0, 100.0));
        assert!(!takes_lease(55.0, 100.0));
        assert!(!takes_lease(9.0, 10.0), "too few requests to matter");
        // A leader without a measure yet (a new range, a lease that just
        // moved) keeps the lease: gateways that share a new range evenly
        // would otherwise take it in turn.
        assert!(!takes_lease(20.0, 0.0));
        // Once there, 55% keeps it out of the count balancing, and so does
        // a rate a little under the one that took it: a share or a rate
        // near the line does not move the lease back and forth.
        assert!(keeps_lease(55.0, 100.0));
        assert!(!keeps_lease(45.0, 100.0));
        assert!(keeps_lease(8.0, 10.0));
        assert!(!keeps_lease(4.0, 5.0));
        // Its own measure not in yet: its gateway's rate decides.
        assert!(keeps_lease(8.0, 0.0));
        let sent = HashMap::from([(5, 55.0), (6, 45.0), (7, 4.0), (9, 8.0)]);
        let replicas = [
            replica(1, 5, 1, 100.0),
            replica(1, 6, 1, 100.0),
            replica(1, 7, 1, 5.0),
            replica(1, 8, 2, 0.0),
            replica(1, 9, 1, 0.0),
        ];
        let kept = kept_leases(&replicas, &sent);
        assert_eq!(kept, HashSet::from([5, 9]));
    }
}
