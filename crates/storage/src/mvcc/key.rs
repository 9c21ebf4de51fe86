//! Keys of the `write` and `default` column families: the user key in a
//! prefix-free, order-preserving encoding, followed by a timestamp in
//! descending order, so that the versions of a key are adjacent, newest
//! first, and a seek to `(key, ts)` lands on the newest version at or below
//! `ts`.
//!
//! The user key is encoded in groups of 8 bytes, each followed by a marker:
//! `0xFF` when more groups follow, else `0xFF - padding` for the last group,
//! which is padded with zeros to 8 bytes (so the marker of a last group is
//! `0xF7..=0xFE`). Comparing encodings compares the keys, and no encoding is
//! a prefix of another's.

use tessera_types::Timestamp;

use crate::{Error, Result};

const GROUP: usize = 8;
/// The bytes of a version key's timestamp.
const TS_LEN: usize = 8;
const MORE: u8 = 0xFF;

/// Appends the encoding of `key` to `buf`.
pub fn encode_user_key(buf: &mut Vec<u8>, key: &[u8]) {
    buf.reserve((key.len() / GROUP + 1) * (GROUP + 1));
    let mut chunks = key.chunks_exact(GROUP);
    for chunk in chunks.by_ref() {
        buf.extend_from_slice(chunk);
        buf.push(MORE);
    }
    let rest = chunks.remainder();
    let padding = GROUP - rest.len();
    buf.extend_from_slice(rest);
    buf.extend(std::iter::repeat_n(0, padding));
    buf.push(MORE - padding as u8);
}

/// The encoding of `key`.
pub fn encoded_user_key(key: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_user_key(&mut buf, key);
    buf
}

/// Decodes a user key from the front of `bytes`; returns it and the number of
/// bytes it took.
pub fn decode_user_key(bytes: &[u8]) -> Result<(Vec<u8>, usize)> {
    let mut key = Vec::with_capacity(bytes.len());
    let mut at = 0;
    loop {
        let Some(group) = bytes.get(at..at + GROUP + 1) else {
            return Err(Error::Corruption(format!(
                "truncated MVCC key {bytes:02x?}"
            )));
        };
        at += GROUP + 1;
        let marker = group[GROUP];
        if marker == MORE {
            key.extend_from_slice(&group[..GROUP]);
            continue;
        }
        let padding = usize::from(MORE - marker);
        if padding == 0 || padding > GROUP || group[GROUP - padding..GROUP].iter().any(|&b| b != 0)
        {
            return Err(Error::Corruption(format!(
                "bad group marker in MVCC key {bytes:02x?}"
            )));
        }
        key.extend_from_slice(&group[..GROUP - padding]);
        return Ok((key, at));
    }
}

/// The key of version `ts` of `key`.
pub fn version_key(key: &[u8], ts: Timestamp) -> Vec<u8> {
    let mut buf = encoded_user_key(key);
    buf.extend_from_slice(&(!ts.0).to_be_bytes());
    buf
}

/// Splits a version key into the user key and the timestamp.
pub fn split_version_key(bytes: &[u8]) -> Result<(Vec<u8>, Timestamp)> {
    let (key, used) = decode_user_key(bytes)?;
    let ts: [u8; 8] = bytes[used..].try_into().map_err(|_| {
        Error::Corruption(format!(
            "MVCC version key without a timestamp: {bytes:02x?}"
        ))
    })?;
    Ok((key, Timestamp(!u64::from_be_bytes(ts))))
}

/// The first version key of `key` at or below `ts`, and the end of `key`'s
/// versions: the bounds of a scan over its versions from `ts` down.
pub fn version_bounds(key: &[u8], ts: Timestamp) -> (Vec<u8>, Vec<u8>) {
    let prefix = encoded_user_key(key);
    let mut start = prefix.clone();
    start.extend_from_slice(&(!ts.0).to_be_bytes());
    let mut end = prefix;
    // The encoding is prefix-free and ends with a marker below 0xFF, so
    // bumping the marker gives the first key past every version.
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    (start, end)
}

/// The encoded user key at the front of a version key: every version of a
/// key shares it, and no other key starts with it. None for a key that is
/// not a version key's length (whole groups and a timestamp): an encoded
/// user key alone, as span bounds are. The `Write` family's prefix
/// extractor (see `RocksEngine::open`).
pub fn version_prefix(key: &[u8]) -> Option<&[u8]> {
    let prefix = key.len().checked_sub(TS_LEN)?;
    (prefix > 0 && prefix.is_multiple_of(GROUP + 1)).then(|| &key[..prefix])
}

/// Whether `[start, end)` holds versions of one key only, as
/// [`version_bounds`] gives them: `start` is a version key and `end` the
/// first key past its user key's versions. A walk over such bounds may
/// skip whatever holds no version of that key (a prefix bloom filter).
pub fn is_one_key_versions(start: &[u8], end: &[u8]) -> bool {
    let Some(prefix) = version_prefix(start) else {
        return false;
    };
    match (prefix.split_last(), end.split_last()) {
        (Some((last, head)), Some((end_last, end_head))) => {
            head == end_head && last.checked_add(1) == Some(*end_last)
        }
        _ => false,
    }
}

/// The encoded bounds of the user-key span `[start, end)` (an empty `end` is
/// unbounded) in the versioned families.
pub fn span_bounds(start: &[u8], end: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let encoded_end = if end.is_empty() {
        Vec::new()
    } else {
        encoded_user_key(end)
    };
    (encoded_user_key(start), encoded_end)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_versions_walk_of_one_key_is_told_from_a_span() {
        for key in [
            &b""[..],
            b"abc",
            b"12345678",
            b"a longer key of several groups",
        ] {
            let (start, end) = version_bounds(key, Timestamp(42));
            assert_eq!(version_prefix(&start), Some(&encoded_user_key(key)[..]));
            assert!(is_one_key_versions(&start, &end), "{key:?}");
            let (span_start, span_end) = span_bounds(key, b"zz");
            assert_eq!(version_prefix(&span_start), None);
            assert!(!is_one_key_versions(&span_start, &span_end));
            assert!(!is_one_key_versions(&start, b""));
        }
        // The bounds of two neighbouring keys' versions are not one key's.
        let (start, _) = version_bounds(b"abc", Timestamp(1));
        let (_, end) = version_bounds(b"abd", Timestamp(1));
        assert!(!is_one_key_versions(&start, &end));
        assert_eq!(version_prefix(&[0; TS_LEN]), None);
    }

    proptest! {
        /// Every version key of a key has its encoding as prefix, and a key
        /// in the bounds of one key's versions has that prefix.
        #[test]
        fn prefixes_group_the_versions_of_a_key(
            key in proptest::collection::vec(any::<u8>(), 0..40),
            cut in 0usize..40,
            suffix in proptest::collection::vec(any::<u8>(), 0..3),
            ts in any::<u64>(),
            other_ts in any::<u64>(),
        ) {
            // A neighbour: the key itself, a prefix of it, or either
            // extended by a few bytes.
            let mut other = key[..cut.min(key.len())].to_vec();
            other.extend_from_slice(&suffix);
            let (start, end) = version_bounds(&key, Timestamp(ts));
            let candidate = version_key(&other, Timestamp(other_ts));
            prop_assert_eq!(version_prefix(&candidate), Some(&encoded_user_key(&other)[..]));
            if start <= candidate && candidate < end {
                prop_assert_eq!(version_prefix(&candidate), version_prefix(&start));
            }
        }
    }

    #[test]
    fn examples() {
        assert_eq!(encoded_user_key(b""), vec![0, 0, 0, 0, 0, 0, 0, 0, 0xF7]);
        assert_eq!(
            encoded_user_key(b"abc"),
            vec![b'a', b'b', b'c', 0, 0, 0, 0, 0, 0xFA]
        );
        assert_eq!(encoded_user_key(b"12345678").len(), 18);
    }

    #[test]
    fn versions_are_newest_first_and_stay_within_the_key() {
        let (start, end) = version_bounds(b"k", Timestamp(10));
        let newer = version_key(b"k", Timestamp(11));
        let older = version_key(b"k", Timestamp(9));
        assert!(newer < start && start <= version_key(b"k", Timestamp(10)));
        assert!(older > start && older < end);
        assert!(version_key(b"k\0", Timestamp(0)) >= end);
        assert!(version_key(b"k", Timestamp::MAX) > encoded_user_key(b"j"));
    }

    proptest! {
        #[test]
        fn order_is_preserved(a in proptest::collection::vec(any::<u8>(), 0..40),
                              b in proptest::collection::vec(any::<u8>(), 0..40),
                              ta in any::<u64>(), tb in any::<u64>()) {
            let (ea, eb) = (encoded_user_key(&a), encoded_user_key(&b));
            prop_assert_eq!(a.cmp(&b), ea.cmp(&eb));
            if a != b {
                // Versions never interleave with another key's.
                let (va, vb) = (version_key(&a, Timestamp(ta)), version_key(&b, Timestamp(tb)));
                prop_assert_eq!(a.cmp(&b), va.cmp(&vb));
            }
            let (decoded, used) = decode_user_key(&ea).unwrap();
            prop_assert_eq!(&decoded, &a);
            prop_assert_eq!(used, ea.len());
            let (k, ts) = split_version_key(&version_key(&a, Timestamp(ta))).unwrap();
            prop_assert_eq!((k, ts), (a, Timestamp(ta)));
        }

        #[test]
        fn decoding_garbage_does_not_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = decode_user_key(&bytes);
            let _ = split_version_key(&bytes);
        }
    }
}
