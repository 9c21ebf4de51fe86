//! The initial layout of a new cluster: the meta range and one user range.

use prost::Message as _;
use tessera_proto::meta::{NodeRecord, RangeDescriptor, ReplicaDescriptor, ReplicaRole};
use tessera_types::keys::{self, FIRST_USER_RANGE_ID, META_RANGE_ID, USER_MIN};
use tessera_types::NodeId;

/// The ranges of a new cluster of `nodes` (sorted by id): the meta range
/// `[MIN, USER_MIN)` and one user range `[USER_MIN, MAX)`, each replicated on
/// the first `replication_factor` nodes (all of them if there are fewer).
/// Replica ids start equal to node ids.
pub fn bootstrap_layout(
    nodes: &[(NodeId, String)],
    replication_factor: usize,
) -> Vec<RangeDescriptor> {
    let replicas: Vec<ReplicaDescriptor> = nodes
        .iter()
        .take(replication_factor.max(1))
        .map(|(node_id, _)| ReplicaDescriptor {
            node_id: *node_id,
            replica_id: *node_id,
            role: ReplicaRole::Voter as i32,
        })
        .collect();
    vec![
        RangeDescriptor {
            range_id: META_RANGE_ID,
            start_key: Vec::new(),
            end_key: USER_MIN.to_vec(),
            generation: 1,
            replicas: replicas.clone(),
        },
        RangeDescriptor {
            range_id: FIRST_USER_RANGE_ID,
            start_key: USER_MIN.to_vec(),
            end_key: Vec::new(),
            generation: 1,
            replicas,
        },
    ]
}

/// The meta range's initial contents: a descriptor record per range and a
/// record per node. Every initial member writes exactly these bytes.
pub fn initial_meta_data(
    ranges: &[RangeDescriptor],
    nodes: &[NodeRecord],
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut data = Vec::new();
    for range in ranges {
        data.push((keys::meta_key(&range.end_key), range.encode_to_vec()));
    }
    for node in nodes {
        data.push((keys::node_key(node.node_id), node.encode_to_vec()));
    }
    data
}
