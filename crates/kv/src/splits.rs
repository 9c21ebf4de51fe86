//! The steps of a split that involve the meta range (see `PrepareSplit` in
//! meta.proto): the range prepares the split; the meta range records both
//! sides, which is the split's commit point; the range applies it. A
//! prepared split whose outcome is unknown (the node that ran it died, or
//! lost the meta range's answer) is settled by `settle_split`.

use tessera_proto::meta::{PrepareSplit, RangeDescriptor};
use tessera_raft::StoreHandle;
use tessera_types::keys;

use crate::{ClientError, ClientResult, KvClient};

/// The two sides of `range` split at `key`, the right one `new_range_id`,
/// as the meta range records them: both at the next generation, with the
/// same replicas.
pub fn split_descriptors(
    range: &RangeDescriptor,
    key: &[u8],
    new_range_id: u64,
) -> (RangeDescriptor, RangeDescriptor) {
    let generation = range.generation + 1;
    let left = RangeDescriptor {
        end_key: key.to_vec(),
        generation,
        ..range.clone()
    };
    let right = RangeDescriptor {
        range_id: new_range_id,
        start_key: key.to_vec(),
        generation,
        ..range.clone()
    };
    (left, right)
}

/// How a pending split was settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// The meta range had recorded it: the range applied it.
    Split,
    /// The meta range had not: the range dropped it.
    Aborted,
}

/// Settles the split that `range` (led by this node's `store`) holds
/// pending. The meta record under the range's end key decides: the new
/// range's record means the split committed, and the range applies it; a
/// record of this range newer than the prepared generation means it was
/// aborted. Otherwise this aborts it: the meta range records the unsplit
/// range at the next generation, which the split's record can no longer
/// replace (a refusal means the split's record came first: look again).
pub async fn settle_split(
    client: &KvClient,
    store: &StoreHandle,
    range: &RangeDescriptor,
    pending: &PrepareSplit,
) -> ClientResult<Settled> {
    let failed = |step: &str, err: tessera_raft::Error| {
        ClientError::Unavailable(format!("{step} of range {}: {err}", range.range_id))
    };
    for _ in 0..2 {
        let recorded = client
            .meta_records()
            .await?
            .into_iter()
            .find(|d| d.end_key == range.end_key);
        match recorded {
            Some(d) if d.range_id == pending.new_range_id => {
                store
                    .finish_split(pending.split_key.clone(), pending.new_range_id)
                    .await
                    .map_err(|e| failed("finishing the split", e))?;
                return Ok(Settled::Split);
            }
            Some(d) if d.range_id == range.range_id && d.generation > pending.generation => {
                store
                    .abort_split(range.range_id, pending.new_range_id)
                    .await
                    .map_err(|e| failed("aborting the split", e))?;
                return Ok(Settled::Aborted);
            }
            _ => {}
        }
        let unsplit = RangeDescriptor {
            generation: pending.generation + 1,
            ..range.clone()
        };
        match client.record_ranges(vec![unsplit]).await {
            Ok(()) => {
                store
                    .abort_split(range.range_id, pending.new_range_id)
                    .await
                    .map_err(|e| failed("aborting the split", e))?;
                return Ok(Settled::Aborted);
            }
            Err(ClientError::Changed(_)) => continue,
            Err(err) => return Err(err),
        }
    }
    Err(ClientError::Changed(format!(
        "the meta range's record of range {} ending at {:02x?} keeps changing",
        range.range_id,
        keys::meta_key(&range.end_key)
    )))
}
