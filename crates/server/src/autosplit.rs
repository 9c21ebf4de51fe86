//! The leaders' upkeep of their ranges, every few seconds:
//!
//! - Meta records: each node makes sure the meta range records the ranges
//!   it leads as they are (a leader's descriptor is current). A split whose
//!   meta update was lost, because the process died between the split and
//!   the update, is repaired here.
//! - Automatic splits by size: each node measures the user ranges it leads
//!   (the bytes of their MVCC commit records and of the values stored apart
//!   from them, read from a snapshot of its own engine, off the store loop)
//!   and splits each one above the threshold at the user key in its middle,
//!   through the same path as `ALTER TABLE ... SPLIT AT`.

use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use tessera_kv::{ClientResult, KvClient};
use tessera_proto::meta::RangeDescriptor;
use tessera_raft::StoreHandle;
use tessera_storage::{mvcc, Cf, Engine};
use tessera_types::keys::{self, META_RANGE_ID};

/// Runs until the task is aborted; `max_range_bytes` 0 splits nothing.
pub async fn run(
    store: StoreHandle,
    engine: Arc<dyn Engine>,
    client: KvClient,
    max_range_bytes: u64,
    interval: Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        let Ok(replicas) = store.replicas().await else {
            continue;
        };
        for replica in replicas.into_iter().filter(|r| r.is_leader) {
            let Some(descriptor) = replica.descriptor else {
                continue;
            };
            match repair_meta(&client, &descriptor).await {
                Ok(false) => {}
                Ok(true) => tracing::info!(
                    range = descriptor.range_id,
                    "recorded the range in the meta range (its record was missing or stale)"
                ),
                Err(err) => {
                    tracing::warn!(range = descriptor.range_id, %err, "cannot check the meta record")
                }
            }
            if descriptor.range_id == META_RANGE_ID || max_range_bytes == 0 {
                continue;
            }
            let engine = engine.clone();
            let (start, end) = (descriptor.start_key.clone(), descriptor.end_key.clone());
            let found = tokio::task::spawn_blocking(move || {
                middle_key(engine.as_ref(), &start, &end, max_range_bytes)
            })
            .await;
            let key = match found {
                Ok(Ok(Some(key))) => key,
                Ok(Ok(None)) => continue,
                Ok(Err(err)) => {
                    tracing::warn!(range = descriptor.range_id, %err, "cannot measure a range");
                    continue;
                }
                Err(err) => {
                    tracing::warn!(%err, "range measuring task failed");
                    continue;
                }
            };
            match client.split(&key).await {
                Ok((left, right, _)) => tracing::info!(
                    range = left.range_id,
                    new_range = right.range_id,
                    key = ?key,
                    max_range_bytes,
                    "split a range above the size threshold"
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

/// Makes the meta range record `descriptor`, the current descriptor of a
/// range this node leads, unless it records a newer one. True if it had to.
async fn repair_meta(client: &KvClient, descriptor: &RangeDescriptor) -> ClientResult<bool> {
    let key = keys::meta_key(&descriptor.end_key);
    let recorded = client
        .get(&key)
        .await?
        .and_then(|value| RangeDescriptor::decode(&value[..]).ok());
    let stale = match &recorded {
        None => true,
        Some(r) => r != descriptor && r.generation <= descriptor.generation,
    };
    if stale {
        client.update_meta(vec![descriptor.clone()]).await?;
    }
    Ok(stale)
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

/// If `[start, end)` holds more than `max_bytes`, the user key where its
/// commit records pass half their bytes (the first version of a key is
/// where it starts, so a key's versions stay together). None if the range
/// is small enough, or has no user key to split at (above its start, in the
/// user keyspace).
fn middle_key(
    engine: &dyn Engine,
    start: &[u8],
    end: &[u8],
    max_bytes: u64,
) -> tessera_storage::Result<Option<Vec<u8>>> {
    if max_bytes == 0 {
        return Ok(None);
    }
    // The range's size: its commit records (which hold short values) and
    // the values stored apart from them.
    let records = cf_bytes(engine, Cf::Write, start, end)?;
    if records + cf_bytes(engine, Cf::Default, start, end)? <= max_bytes {
        return Ok(None);
    }
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

    #[test]
    fn a_range_splits_in_its_middle_only_above_the_threshold() {
        let engine = engine_with(100, 3);
        let bytes = cf_bytes(&engine, Cf::Write, keys::USER_MIN, b"").expect("measure");
        assert!(bytes > 0);
        assert_eq!(
            middle_key(&engine, keys::USER_MIN, b"", bytes).expect("measure"),
            None
        );
        assert_eq!(
            middle_key(&engine, keys::USER_MIN, b"", 0).expect("measure"),
            None,
            "0 turns automatic splits off"
        );
        let key = middle_key(&engine, keys::USER_MIN, b"", bytes - 1)
            .expect("measure")
            .expect("a split key");
        assert_eq!(key, [keys::USER_MIN, b"k0050"].concat());
    }

    #[test]
    fn a_range_of_one_key_does_not_split() {
        let engine = engine_with(1, 50);
        let start = [keys::USER_MIN, b"k0000"].concat();
        assert_eq!(middle_key(&engine, &start, b"", 1).expect("measure"), None);
    }
}
