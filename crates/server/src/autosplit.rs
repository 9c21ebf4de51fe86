//! The leaders' upkeep of their ranges, every few seconds:
//!
//! - Meta records: each node makes sure the meta range records the ranges
//!   it leads as they are (a leader's descriptor is current), and holds no
//!   older record inside their spans. A split or merge whose meta update
//!   was lost, because the process died between the change and the update,
//!   is repaired here.
//! - Replica GC: a replica that the meta range shows gone from this node
//!   (moved away, or its range merged into another) is removed, with the
//!   data of its span that no other local replica holds.
//! - Unfinished changes: a range this node leads that has held a split
//!   pending longer than `split.settle_after_secs`, or holds one an earlier
//!   leader prepared (the request that did fails on a replica that no
//!   longer leads, while the meta range may already name the new range),
//!   applies it or drops it, as the meta range decides
//!   (`tessera_kv::splits::settle_split`); one
//!   that has stayed frozen for a merge that long is released, once the
//!   range to its left has fenced off the merge (see `release_abandoned`).
//! - Addresses: the node learns every node's address from the meta range's
//!   node records (a node that joined later).
//! - Automatic splits by size: each node measures the user ranges it leads
//!   (the bytes of their MVCC commit records and of the values stored apart
//!   from them, read from a snapshot of its own engine, off the store loop)
//!   and splits each one above the threshold at the user key in its middle,
//!   through the same path as `ALTER TABLE ... SPLIT AT`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_kv::{AddressBook, ClientResult, KvClient};
use tessera_proto::kv::{FreezeRangeRequest, MergeRangesRequest};
use tessera_proto::meta::RangeDescriptor;
use tessera_raft::{RangeSize, ReplicaInfo, StoreHandle};
use tessera_storage::{mvcc, Cf, Engine};
use tessera_types::keys::{self, META_RANGE_ID};
use tessera_types::RangeId;

/// When a range splits on its own (0: never), or is released from an
/// abandoned merge.
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    /// Its size in bytes.
    pub max_range_bytes: u64,
    /// The requests per second its leader serves.
    pub max_range_qps: u64,
    /// How long it may stay frozen for a merge, or hold a split pending.
    pub settle_after: Duration,
}

/// A range is measured again no sooner than this many times the length of
/// its last measurement: a range of a million rows takes the best part of a
/// second to scan, so measuring any one range takes about a two-hundredth
/// of a thread at most, even while writes keep it due (see
/// `Measured::stands`). Under pgbench's TPC-B-like load, whose small hot
/// ranges are due every second or two, a ratio of 50 cost 3% of the
/// samples.
const MEASURE_COST_RATIO: u32 = 200;

/// A range measured again because of its writes since: once they pass
/// this fraction of the size then found (or `REMEASURE_MIN_BYTES`), so that
/// the size shown stays about that close, while a range under steady
/// updates is not scanned over and over.
const REMEASURE_FRACTION: u64 = 8;
const REMEASURE_MIN_BYTES: u64 = 64 << 10;

/// A led range's last measurement that found it small enough, and the
/// range's state then.
#[derive(Clone, Copy, Debug)]
struct Measured {
    /// The range's generation (a split or merge changes its span).
    generation: u64,
    /// Its replica's `written_bytes` when it was measured.
    written_bytes: u64,
    /// The size found.
    bytes: u64,
}

impl Measured {
    /// Whether the measurement still stands for the range at `generation`
    /// whose replica has applied `written_bytes`: the same span, and too
    /// little written since to take it past `max_range_bytes` (0: no limit)
    /// or to move its size by more than a fraction.
    fn stands(&self, generation: u64, written_bytes: u64, max_range_bytes: u64) -> bool {
        // A count below the one recorded is a new replica's, started again.
        if generation != self.generation || written_bytes < self.written_bytes {
            return false;
        }
        let written = written_bytes - self.written_bytes;
        let may_split = max_range_bytes > 0 && self.bytes + written > max_range_bytes;
        !may_split && written < (self.bytes / REMEASURE_FRACTION).max(REMEASURE_MIN_BYTES)
    }
}

/// Runs until the task is aborted.
pub async fn run(
    store: StoreHandle,
    engine: Arc<dyn Engine>,
    client: KvClient,
    addresses: AddressBook,
    thresholds: Thresholds,
    interval: Duration,
) {
    let max_range_bytes = thresholds.max_range_bytes;
    // Each led range as last measured and found small enough: it is read
    // again only once what was written to it since may have changed what
    // was found (see `Measured::stands`).
    let mut measured: HashMap<RangeId, Measured> = HashMap::new();
    // When each led range was last measured, and how long that took: a
    // range is measured again only after MEASURE_COST_RATIO times as long,
    // so that measuring (a scan of the range) takes a bounded share of
    // the node's time however large the ranges being written are.
    let mut last_measure: HashMap<RangeId, (Instant, Duration)> = HashMap::new();
    // Since when each led range has held its unfinished change.
    let mut unfinished: HashMap<RangeId, (Unfinished, Instant)> = HashMap::new();
    loop {
        tokio::time::sleep(interval).await;
        let Ok(replicas) = store.replicas().await else {
            continue;
        };
        measured.retain(|range, _| replicas.iter().any(|r| r.is_leader && r.range_id == *range));
        last_measure
            .retain(|range, _| replicas.iter().any(|r| r.is_leader && r.range_id == *range));
        unfinished.retain(|range, (change, _)| {
            replicas
                .iter()
                .any(|r| r.is_leader && r.range_id == *range && Unfinished::of(r) == Some(*change))
        });
        let meta = match client.meta_records().await {
            Ok(meta) => meta,
            Err(err) => {
                tracing::warn!(%err, "cannot read the meta range");
                continue;
            }
        };
        match client.node_records().await {
            Ok(nodes) => {
                for node in nodes {
                    addresses.insert(node.node_id, node.address);
                }
            }
            Err(err) => tracing::warn!(%err, "cannot read the node records"),
        }
        for replica in replicas.iter().filter(|r| !r.is_leader) {
            collect_replica(&store, &meta, replica).await;
        }
        for replica in replicas.into_iter().filter(|r| r.is_leader) {
            let change = Unfinished::of(&replica);
            let Some(descriptor) = replica.descriptor else {
                continue;
            };
            let overdue = change.is_some_and(|change| {
                let (_, since) = unfinished
                    .entry(descriptor.range_id)
                    .or_insert((change, Instant::now()));
                since.elapsed() >= thresholds.settle_after
            });
            if let Some(split) = &replica.pending_split {
                // A split an earlier leader left pending has no request
                // left to finish it, while the meta range may already name
                // its new range: settle it now.
                if overdue || replica.inherited_pending_split {
                    match tessera_kv::splits::settle_split(&client, &store, &descriptor, split)
                        .await
                    {
                        Ok(settled) => tracing::info!(
                            range = descriptor.range_id,
                            new_range = split.new_range_id,
                            ?settled,
                            "settled a split left pending"
                        ),
                        Err(err) => tracing::warn!(
                            range = descriptor.range_id,
                            %err,
                            "cannot settle a pending split; tried again later"
                        ),
                    }
                }
                continue;
            }
            if replica.frozen {
                if overdue {
                    if let Err(err) = release_abandoned(&client, &meta, &descriptor).await {
                        tracing::warn!(
                            range = descriptor.range_id,
                            %err,
                            "cannot release a range frozen for a merge; tried again later"
                        );
                    }
                }
                continue;
            }
            match repair_meta(&client, &meta, &descriptor).await {
                Ok(false) => {}
                Ok(true) => tracing::info!(
                    range = descriptor.range_id,
                    "recorded the range in the meta range (its record was missing or stale)"
                ),
                Err(err) => {
                    tracing::warn!(range = descriptor.range_id, %err, "cannot check the meta record")
                }
            }
            if descriptor.range_id == META_RANGE_ID {
                continue;
            }
            let (generation, written_bytes) = (descriptor.generation, replica.written_bytes);
            let unchanged = replica.size.is_some()
                && measured
                    .get(&descriptor.range_id)
                    .is_some_and(|m| m.stands(generation, written_bytes, max_range_bytes));
            let recently = last_measure
                .get(&descriptor.range_id)
                .is_some_and(|(at, took)| at.elapsed() < *took * MEASURE_COST_RATIO);
            let middle = if unchanged || (replica.size.is_some() && recently) {
                None
            } else {
                let engine = engine.clone();
                let (start, end) = (descriptor.start_key.clone(), descriptor.end_key.clone());
                let began = Instant::now();
                let found = tokio::task::spawn_blocking(move || {
                    measure(engine.as_ref(), &start, &end, max_range_bytes)
                })
                .await;
                last_measure.insert(descriptor.range_id, (began, began.elapsed()));
                match found {
                    Ok(Ok((size, middle))) => {
                        store.record_size(descriptor.range_id, size);
                        if middle.is_none() {
                            let bytes = size.bytes;
                            let found = Measured {
                                generation,
                                written_bytes,
                                bytes,
                            };
                            measured.insert(descriptor.range_id, found);
                        }
                        middle
                    }
                    Ok(Err(err)) => {
                        tracing::warn!(range = descriptor.range_id, %err, "cannot measure a range");
                        continue;
                    }
                    Err(err) => {
                        tracing::warn!(%err, "range measuring task failed");
                        continue;
                    }
                }
            };
            let busy =
                thresholds.max_range_qps > 0 && replica.qps > thresholds.max_range_qps as f64;
            let by_load = replica
                .load_split_key
                .filter(|key| busy && inside(&descriptor, key));
            let (key, why) = match (middle, by_load) {
                (Some(key), _) => (key, "above the size threshold"),
                (None, Some(key)) => (key, "above the load threshold"),
                (None, None) => continue,
            };
            match client.split(&key).await {
                Ok((left, right, _)) => tracing::info!(
                    range = left.range_id,
                    new_range = right.range_id,
                    key = ?key,
                    qps = replica.qps,
                    "split a range {why}"
                ),
                Err(err) => tracing::warn!(
                    range = descriptor.range_id,
                    %err,
                    "automatic split failed; tried again later"
                ),
            }
        }
    }
}

/// A change a range holds unfinished: a pending split (by the range it
/// would create), or a freeze for a merge (by the generation it gave the
/// range: each freeze raises it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unfinished {
    Split(RangeId),
    Frozen(u64),
}

impl Unfinished {
    fn of(replica: &ReplicaInfo) -> Option<Self> {
        if let Some(split) = &replica.pending_split {
            return Some(Self::Split(split.new_range_id));
        }
        let generation = replica.descriptor.as_ref().map(|d| d.generation)?;
        replica.frozen.then_some(Self::Frozen(generation))
    }
}

/// Ends a merge that froze `right` (a range this node leads) and was
/// abandoned: the range to its left fences off every merge with it planned
/// so far (a Raft command that raises its generation, which those merges
/// carry), unless it has absorbed `right` already; then `right` is released
/// at the generation this node saw it frozen at, so that a merge that froze
/// it again since keeps it frozen.
async fn release_abandoned(
    client: &KvClient,
    meta: &[RangeDescriptor],
    right: &RangeDescriptor,
) -> ClientResult<()> {
    let Some(left) = meta.iter().find(|r| r.end_key == right.start_key) else {
        return Err(tessera_kv::ClientError::Server(format!(
            "no range ends where range {} starts",
            right.range_id
        )));
    };
    let fenced = client
        .merge_ranges(MergeRangesRequest {
            key: left.start_key.clone(),
            range_id: left.range_id,
            right: Some(right.clone()),
            fence: true,
            ..Default::default()
        })
        .await?;
    if keys::span_contains(&fenced.start_key, &fenced.end_key, &right.start_key) {
        tracing::info!(
            range = right.range_id,
            into = fenced.range_id,
            "a merge left unfinished had applied: this replica goes with it"
        );
        return Ok(());
    }
    let released = client
        .freeze_range(FreezeRangeRequest {
            key: right.start_key.clone(),
            range_id: right.range_id,
            generation: right.generation,
            unfreeze: true,
        })
        .await?;
    client
        .update_meta(released.descriptor.into_iter().collect())
        .await?;
    tracing::info!(
        range = right.range_id,
        left = left.range_id,
        "released a range frozen by an abandoned merge"
    );
    Ok(())
}

/// Makes the meta range record `descriptor`, the current descriptor of a
/// range this node leads, unless it records a newer one, and removes the
/// older records that end inside its span (the left side of a merge).
/// True if it had to.
async fn repair_meta(
    client: &KvClient,
    meta: &[RangeDescriptor],
    descriptor: &RangeDescriptor,
) -> ClientResult<bool> {
    let recorded = meta.iter().find(|r| r.end_key == descriptor.end_key);
    let stale = match recorded {
        None => true,
        Some(r) => r != descriptor && r.generation <= descriptor.generation,
    };
    let inside: Vec<Vec<u8>> = meta
        .iter()
        .filter(|r| {
            r.generation < descriptor.generation
                && r.end_key != descriptor.end_key
                && keys::span_contains(&descriptor.start_key, &descriptor.end_key, &r.end_key)
                && r.end_key > descriptor.start_key
        })
        .map(|r| r.end_key.clone())
        .collect();
    if !stale && inside.is_empty() {
        return Ok(false);
    }
    client
        .record_range(vec![descriptor.clone()], inside)
        .await?;
    Ok(true)
}

/// Whether this node's replica is gone from its range: its own descriptor
/// has no replica here (it applied its removal), or the meta range's
/// record holding the replica's start key is newer than the replica and
/// either is the same range without a replica on this node, or another
/// range, with no record of this range left (it merged away).
fn replica_is_gone(meta: &[RangeDescriptor], node: u64, local: &RangeDescriptor) -> bool {
    if !local.replicas.iter().any(|r| r.node_id == node) {
        return true;
    }
    let Some(current) = meta
        .iter()
        .find(|m| keys::span_contains(&m.start_key, &m.end_key, &local.start_key))
    else {
        return false;
    };
    if current.generation <= local.generation {
        return false;
    }
    if current.range_id == local.range_id {
        !current.replicas.iter().any(|r| r.node_id == node)
    } else {
        !meta.iter().any(|m| m.range_id == local.range_id)
    }
}

/// Removes this node's replica if the meta range shows it gone.
async fn collect_replica(store: &StoreHandle, meta: &[RangeDescriptor], replica: &ReplicaInfo) {
    let Some(local) = &replica.descriptor else {
        return;
    };
    if !replica_is_gone(meta, store.node_id(), local) {
        return;
    }
    match store
        .destroy_replica(replica.range_id, replica.replica_id)
        .await
    {
        Ok(()) => tracing::info!(
            range = replica.range_id,
            "removed a replica the range no longer has"
        ),
        Err(err) => tracing::warn!(range = replica.range_id, %err, "cannot remove a replica"),
    }
}

/// The bytes of `cf`'s entries for the user keys in `[start, end)`.
fn cf_bytes(engine: &dyn Engine, cf: Cf, start: &[u8], end: &[u8]) -> tessera_storage::Result<u64> {
    let (from, to) = cf.span_bounds(start, end);
    let mut total = 0u64;
    for entry in engine.scan(cf, &from, &to) {
        let (key, value) = entry?;
        total += (key.len() + value.len()) as u64;
    }
    Ok(total)
}

/// Whether a split at `key` leaves both sides of the range non-empty, in
/// the user keyspace.
fn inside(d: &RangeDescriptor, key: &[u8]) -> bool {
    key > d.start_key.as_slice()
        && key >= keys::USER_MIN
        && keys::span_contains(&d.start_key, &d.end_key, key)
}

/// Measures `[start, end)`: its size (its commit records, which hold short
/// values, and the values stored apart from them) and its user keys; and
/// if it holds more than `max_bytes` (0: no limit), the user key where its
/// commit records pass half their bytes (the first version of a key is
/// where it starts, so a key's versions stay together). No key if the range
/// is small enough, or has no user key to split at (above its start, in the
/// user keyspace).
fn measure(
    engine: &dyn Engine,
    start: &[u8],
    end: &[u8],
    max_bytes: u64,
) -> tessera_storage::Result<(RangeSize, Option<Vec<u8>>)> {
    let (from, to) = Cf::Write.span_bounds(start, end);
    let (mut records, mut keys) = (0u64, 0u64);
    let mut last: Option<Vec<u8>> = None;
    for entry in engine.scan(Cf::Write, &from, &to) {
        let (key, value) = entry?;
        records += (key.len() + value.len()) as u64;
        let (user_key, _) = mvcc::split_version_key(&key)?;
        if last.as_ref() != Some(&user_key) {
            keys += 1;
            last = Some(user_key);
        }
    }
    let size = RangeSize {
        bytes: records + cf_bytes(engine, Cf::Default, start, end)?,
        keys,
    };
    if max_bytes == 0 || size.bytes <= max_bytes {
        return Ok((size, None));
    }
    Ok((size, middle_key(engine, start, end, records)?))
}

/// The user key where the commit records of `[start, end)` (`records`
/// bytes of them) pass half their bytes, if it is inside the range.
fn middle_key(
    engine: &dyn Engine,
    start: &[u8],
    end: &[u8],
    records: u64,
) -> tessera_storage::Result<Option<Vec<u8>>> {
    let (from, to) = Cf::Write.span_bounds(start, end);
    // The first record at or past the half: the rest moves to the new range.
    let mut before = 0u64;
    for entry in engine.scan(Cf::Write, &from, &to) {
        let (key, value) = entry?;
        if before * 2 >= records {
            let (user_key, _) = mvcc::split_version_key(&key)?;
            if user_key.as_slice() > start && user_key.as_slice() >= keys::USER_MIN {
                return Ok(Some(user_key));
            }
        }
        before += (key.len() + value.len()) as u64;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_storage::{MemoryEngine, WriteBatch};
    use tessera_types::Timestamp;

    fn engine_with(keys: usize, versions: u64) -> MemoryEngine {
        let engine = MemoryEngine::new();
        let mut batch = WriteBatch::default();
        for k in 0..keys {
            let user_key = [keys::USER_MIN, format!("k{k:04}").as_bytes()].concat();
            for v in 1..=versions {
                batch.put(
                    Cf::Write,
                    mvcc::version_key(&user_key, Timestamp(v)),
                    vec![0; 20],
                );
            }
        }
        engine.write(&batch, false).expect("write");
        engine
    }

    fn descriptor(
        range_id: u64,
        start: &[u8],
        end: &[u8],
        generation: u64,
        nodes: &[u64],
    ) -> RangeDescriptor {
        RangeDescriptor {
            range_id,
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            generation,
            replicas: nodes
                .iter()
                .map(|&node_id| tessera_proto::meta::ReplicaDescriptor {
                    node_id,
                    replica_id: node_id,
                    role: tessera_proto::meta::ReplicaRole::Voter as i32,
                })
                .collect(),
        }
    }

    #[test]
    fn a_measurement_stands_until_the_writes_since_may_matter() {
        let found = Measured {
            generation: 3,
            written_bytes: 1_000,
            bytes: 8 << 20,
        };
        let limit = 64 << 20;
        // Nothing or a little written (under an eighth of its size).
        assert!(found.stands(3, 1_000, limit));
        assert!(found.stands(3, 1_000 + (1 << 20) - 1, limit));
        // An eighth of its size written since.
        assert!(!found.stands(3, 1_000 + (1 << 20), limit));
        // A split or merge since, or a new replica counting from zero.
        assert!(!found.stands(4, 1_000, limit));
        assert!(!found.stands(3, 10, limit));
        // Writes that could have taken it past the split threshold.
        let near = Measured {
            bytes: limit - 100,
            ..found
        };
        assert!(near.stands(3, 1_100, limit));
        assert!(!near.stands(3, 1_101, limit));
        assert!(near.stands(3, 1_101, 0));
        // A small range: measured again after REMEASURE_MIN_BYTES.
        let small = Measured { bytes: 10, ..found };
        assert!(small.stands(3, 1_000 + REMEASURE_MIN_BYTES - 1, limit));
        assert!(!small.stands(3, 1_000 + REMEASURE_MIN_BYTES, limit));
    }

    #[test]
    fn replicas_gone_from_their_range_are_found() {
        let meta = vec![
            descriptor(2, b"\x02", b"\x02m", 5, &[2, 3, 4]),
            descriptor(3, b"\x02m", b"", 7, &[1, 2, 3]),
        ];
        // Moved off node 1: the record is newer and names no replica there.
        assert!(replica_is_gone(
            &meta,
            1,
            &descriptor(2, b"\x02", b"\x02m", 4, &[1, 2, 3])
        ));
        // Its own descriptor already says so.
        assert!(replica_is_gone(
            &meta,
            1,
            &descriptor(2, b"\x02", b"\x02m", 5, &[2, 3, 4])
        ));
        // A member that lags behind the record stays.
        assert!(!replica_is_gone(
            &meta,
            2,
            &descriptor(2, b"\x02", b"\x02m", 4, &[1, 2, 3])
        ));
        // A record older than the replica proves nothing (it was just added).
        assert!(!replica_is_gone(
            &meta,
            1,
            &descriptor(2, b"\x02", b"\x02m", 6, &[1, 2, 3])
        ));
        // Range 4 merged into range 3: no record of it is left.
        assert!(replica_is_gone(
            &meta,
            1,
            &descriptor(4, b"\x02x", b"", 6, &[1, 2, 3])
        ));
        // A range split off that the meta range does not record yet, under
        // its parent's stale record: not gone.
        let stale = vec![descriptor(3, b"\x02m", b"", 7, &[1, 2, 3])];
        assert!(!replica_is_gone(
            &stale,
            1,
            &descriptor(4, b"\x02x", b"", 8, &[1, 2, 3])
        ));
    }

    #[test]
    fn a_range_splits_in_its_middle_only_above_the_threshold() {
        let engine = engine_with(100, 3);
        let (size, key) = measure(&engine, keys::USER_MIN, b"", 0).expect("measure");
        assert_eq!(key, None, "0 turns automatic splits off");
        assert_eq!(size.keys, 100);
        assert!(size.bytes > 0);
        let (_, key) = measure(&engine, keys::USER_MIN, b"", size.bytes).expect("measure");
        assert_eq!(key, None);
        let (_, key) = measure(&engine, keys::USER_MIN, b"", size.bytes - 1).expect("measure");
        assert_eq!(key, Some([keys::USER_MIN, b"k0050"].concat()));
    }

    #[test]
    fn a_range_of_one_key_does_not_split() {
        let engine = engine_with(1, 50);
        let start = [keys::USER_MIN, b"k0000"].concat();
        let (size, key) = measure(&engine, &start, b"", 1).expect("measure");
        assert_eq!((size.keys, key), (1, None));
    }
}
