//! The gateway's cache of range descriptors.

use std::collections::BTreeMap;

use parking_lot::RwLock;
use prost::Message as _;
use tessera_kv::KvClient;
use tessera_proto::meta::RangeDescriptor;
use tessera_types::encoding::prefix_end;
use tessera_types::keys::{self, span_contains};

use crate::{TxnError, TxnResult};

/// The range descriptors read from the meta range, by end key.
pub struct RangeCache {
    kv: KvClient,
    /// End key (the meta record's key) -> descriptor.
    ranges: RwLock<BTreeMap<Vec<u8>, RangeDescriptor>>,
}

impl RangeCache {
    /// An empty cache that loads from the meta range through `kv`.
    pub fn new(kv: KvClient) -> Self {
        RangeCache {
            kv,
            ranges: RwLock::new(BTreeMap::new()),
        }
    }

    /// Reloads every descriptor from the meta range.
    pub async fn refresh(&self) -> TxnResult<()> {
        let end = prefix_end(keys::META_PREFIX).unwrap_or_default();
        let records = self.kv.scan(keys::META_PREFIX, &end, 0).await?;
        let mut ranges = BTreeMap::new();
        for (key, value) in records {
            let descriptor = RangeDescriptor::decode(&value[..])
                .map_err(|e| TxnError::Internal(format!("corrupt range descriptor: {e}")))?;
            ranges.insert(key, descriptor);
        }
        let descriptors: Vec<RangeDescriptor> = ranges.values().cloned().collect();
        self.kv.learn_ranges(&descriptors);
        *self.ranges.write() = ranges;
        Ok(())
    }

    /// Every cached descriptor, in key order.
    pub fn all(&self) -> Vec<RangeDescriptor> {
        self.ranges.read().values().cloned().collect()
    }

    /// The cached descriptor of the range holding `key`.
    pub fn lookup(&self, key: &[u8]) -> Option<RangeDescriptor> {
        let ranges = self.ranges.read();
        ranges
            .range(keys::meta_key(key)..)
            .map(|(_, d)| d)
            .find(|d| span_contains(&d.start_key, &d.end_key, key))
            .cloned()
    }

    /// Cuts `[start, end)` (an empty end: unbounded) where the cached
    /// ranges begin and end, loading the descriptors first if none are
    /// cached. A part of the span no cached range covers stays whole.
    pub async fn split_span(&self, start: &[u8], end: &[u8]) -> TxnResult<Vec<(Vec<u8>, Vec<u8>)>> {
        if self.ranges.read().is_empty() {
            self.refresh().await?;
        }
        let mut parts = Vec::new();
        let mut cursor = start.to_vec();
        loop {
            let range_end = self.lookup(&cursor).map(|d| d.end_key);
            let cut = match range_end {
                Some(range_end)
                    if !range_end.is_empty() && (end.is_empty() || range_end.as_slice() < end) =>
                {
                    range_end
                }
                _ => end.to_vec(),
            };
            let last = cut.as_slice() == end;
            parts.push((std::mem::replace(&mut cursor, cut.clone()), cut));
            if last {
                return Ok(parts);
            }
        }
    }

    /// Splits `items` (sorted by key) into runs that fall in one range each,
    /// loading the descriptors first if none are cached.
    pub async fn group<T>(
        &self,
        items: Vec<T>,
        key: impl Fn(&T) -> &[u8],
    ) -> TxnResult<Vec<Vec<T>>> {
        if self.ranges.read().is_empty() {
            self.refresh().await?;
        }
        let mut groups: Vec<(Option<u64>, Vec<T>)> = Vec::new();
        for item in items {
            let range = self.lookup(key(&item)).map(|d| d.range_id);
            match groups.last_mut() {
                Some((last, group)) if *last == range && range.is_some() => group.push(item),
                _ => groups.push((range, vec![item])),
            }
        }
        Ok(groups.into_iter().map(|(_, group)| group).collect())
    }
}
