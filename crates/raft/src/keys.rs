//! Keys of node-local state in the `Raft` column family. None of this is
//! replicated as data: each replica keeps its own log and progress.
//!
//! | key                              | value                    |
//! |----------------------------------|--------------------------|
//! | `0x00 "ident"`                   | `StoreIdent`             |
//! | `0x00 "replica/" <range id>`     | this node's replica id   |
//! | `0x00 "tombstone/" <range id>`   | highest removed replica id |
//! | `0x01 <range id> 'h'`            | raft `HardState`         |
//! | `0x01 <range id> 'c'`            | raft `ConfState`         |
//! | `0x01 <range id> 'a'`            | `ApplyState`             |
//! | `0x01 <range id> 'd'`            | `RangeDescriptor`        |
//! | `0x01 <range id> 'l' <index>`    | raft `Entry`             |
//!
//! Range ids and indexes are big-endian so that they sort numerically.

use tessera_types::RangeId;

/// The key of the node's `StoreIdent`.
pub const IDENT: &[u8] = b"\x00ident";

/// The first key of any replica's state.
pub const REPLICA_MIN: &[u8] = b"\x01";

/// The first key after every replica's state.
pub const REPLICA_MAX: &[u8] = b"\x02";

fn replica_key(range_id: RangeId, suffix: u8) -> Vec<u8> {
    let mut key = Vec::with_capacity(18);
    key.push(0x01);
    key.extend_from_slice(&range_id.to_be_bytes());
    key.push(suffix);
    key
}

/// The key of a replica's raft hard state.
pub fn hard_state(range_id: RangeId) -> Vec<u8> {
    replica_key(range_id, b'h')
}

/// The key of a replica's raft conf state.
pub fn conf_state(range_id: RangeId) -> Vec<u8> {
    replica_key(range_id, b'c')
}

/// The key of a replica's apply state.
pub fn apply_state(range_id: RangeId) -> Vec<u8> {
    replica_key(range_id, b'a')
}

/// The key of a replica's range descriptor.
pub fn descriptor(range_id: RangeId) -> Vec<u8> {
    replica_key(range_id, b'd')
}

/// The prefix of the index of initialized replicas held by this node.
pub const REPLICA_INDEX_PREFIX: &[u8] = b"\x00replica/";

/// The key of this node's replica id in a range; the set of these keys is
/// the list of replicas to recover at startup.
pub fn replica_index(range_id: RangeId) -> Vec<u8> {
    let mut key = REPLICA_INDEX_PREFIX.to_vec();
    key.extend_from_slice(&range_id.to_be_bytes());
    key
}

/// The prefix of the tombstones of replicas this node removed.
pub const TOMBSTONE_PREFIX: &[u8] = b"\x00tombstone/";

/// The key of a removed replica's tombstone: the highest replica id of the
/// range that may not come back here (messages to it are dropped).
pub fn tombstone(range_id: RangeId) -> Vec<u8> {
    let mut key = TOMBSTONE_PREFIX.to_vec();
    key.extend_from_slice(&range_id.to_be_bytes());
    key
}

/// The first and the last-plus-one key of a replica's state (hard state,
/// conf state, apply state, descriptor and log).
pub fn replica_state_span(range_id: RangeId) -> (Vec<u8>, Vec<u8>) {
    (replica_key(range_id, 0), replica_key(range_id, u8::MAX))
}

/// The key of a log entry.
pub fn log_entry(range_id: RangeId, index: u64) -> Vec<u8> {
    let mut key = replica_key(range_id, b'l');
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// Decodes the range id and suffix of a replica state key.
pub fn decode_replica_key(key: &[u8]) -> Option<(RangeId, u8)> {
    if key.len() < 10 || key[0] != 0x01 {
        return None;
    }
    let range_id = RangeId::from_be_bytes(key[1..9].try_into().ok()?);
    Some((range_id, key[9]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_by_range_then_index() {
        assert!(log_entry(1, 255) < log_entry(1, 256));
        assert!(log_entry(1, u64::MAX) < log_entry(2, 0));
        assert!(log_entry(1, 0) > descriptor(1));
        assert_eq!(decode_replica_key(&log_entry(7, 3)), Some((7, b'l')));
        assert_eq!(decode_replica_key(&descriptor(9)), Some((9, b'd')));
        assert!(REPLICA_MIN <= hard_state(0).as_slice());
        assert!(hard_state(u64::MAX).as_slice() < REPLICA_MAX);
    }
}
