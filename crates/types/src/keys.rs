//! The layout of the global keyspace.
//!
//! There is one ordered byte keyspace shared by all ranges. User keys are not
//! prefixed by range, so splitting a range is a metadata change that moves no
//! data.
//!
//! | prefix         | contents                                              |
//! |----------------|-------------------------------------------------------|
//! | `0x01 "meta"`  | range descriptors, indexed by the range's end key     |
//! | `0x01 "node"`  | node records (node id -> address)                     |
//! | `0x01 "range-id"` | the last range id handed out                       |
//! | `0x01 "sql/"`  | SQL schema: databases, table descriptors, sequences   |
//! | `0x01 "tso"`   | the timestamp oracle's high-water mark                |
//! | `0x02` ..      | user keys (SQL tables live at `/table/<id>/...`)      |
//!
//! The meta range covers `[MIN, USER_MIN)`; user ranges cover `[USER_MIN, MAX)`.
//! An empty end key means "the end of the keyspace".

use crate::{NodeId, RangeId};

/// The first byte of every system key.
pub const SYSTEM_PREFIX: u8 = 0x01;

/// The smallest user key; everything below it is reserved for the system.
pub const USER_MIN: &[u8] = &[0x02];

/// Prefix of range descriptor records in the meta range.
pub const META_PREFIX: &[u8] = b"\x01meta/";

/// Prefix of node records in the meta range.
pub const NODE_PREFIX: &[u8] = b"\x01node/";

/// Prefix of the SQL layer's system state (schema descriptors, sequences).
/// SQL gateways write it through the KV API like user keys.
pub const SQL_PREFIX: &[u8] = b"\x01sql/";

/// The timestamp oracle's high-water mark (8 bytes, big-endian): no
/// timestamp above it has been handed out.
pub const TSO_MARK_KEY: &[u8] = b"\x01tso";

/// The last range id handed out (8 bytes, big-endian), kept by the meta
/// range's leader; absent until the first split.
pub const RANGE_ID_KEY: &[u8] = b"\x01range-id";

/// The range id of the meta range, created by bootstrap.
pub const META_RANGE_ID: RangeId = 1;

/// The range id of the first user range, created by bootstrap.
pub const FIRST_USER_RANGE_ID: RangeId = 2;

/// The key of a range descriptor record: the meta prefix and the range's end
/// key, so that a forward seek from `meta_key(k)` finds the range holding `k`.
/// An empty end key (end of keyspace) is encoded as `0xFF..` so it sorts last.
pub fn meta_key(end_key: &[u8]) -> Vec<u8> {
    let mut key = META_PREFIX.to_vec();
    if end_key.is_empty() {
        key.extend_from_slice(&[0xff; 8]);
    } else {
        key.extend_from_slice(end_key);
    }
    key
}

/// The key of a node record.
pub fn node_key(node_id: NodeId) -> Vec<u8> {
    let mut key = NODE_PREFIX.to_vec();
    key.extend_from_slice(&node_id.to_be_bytes());
    key
}

/// Whether `key` is in the system keyspace (below the user keys).
pub fn is_system_key(key: &[u8]) -> bool {
    key < USER_MIN
}

/// Whether `key` is reserved for the system: clients of the KV API may not
/// write it. That is every system key except the SQL schema's.
pub fn is_reserved_key(key: &[u8]) -> bool {
    is_system_key(key) && !key.starts_with(SQL_PREFIX)
}

/// Whether `key` lies in `[start, end)`, where an empty `end` is unbounded.
pub fn span_contains(start: &[u8], end: &[u8], key: &[u8]) -> bool {
    key >= start && (end.is_empty() || key < end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_keys_sort_by_end_key_with_unbounded_last() {
        assert!(meta_key(b"a") < meta_key(b"b"));
        assert!(meta_key(b"\xfe\xff") < meta_key(b""));
    }

    #[test]
    fn spans() {
        assert!(span_contains(b"", USER_MIN, b"\x01meta/"));
        assert!(!span_contains(b"", USER_MIN, b"a"));
        assert!(span_contains(USER_MIN, b"", b"zzz"));
        assert!(is_system_key(&node_key(3)));
        assert!(!is_system_key(b"a"));
        assert!(is_reserved_key(&meta_key(b"a")) && is_reserved_key(&node_key(1)));
        assert!(!is_reserved_key(b"\x01sql/tbl/1") && !is_reserved_key(b"a"));
        assert!(is_system_key(b"\x01sql/tbl/1"));
    }
}
