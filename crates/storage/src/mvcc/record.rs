//! The records of the `lock` and `write` column families and their binary
//! encodings. Each encoding starts with a version byte so that the layout can
//! change without rewriting data.

use tessera_types::Timestamp;

use crate::{Error, Result};

/// Values up to this many bytes are stored inline in the lock and then in the
/// write record, so that reading them takes one lookup; longer values go to
/// the `default` family at `(key, start_ts)`.
pub const SHORT_VALUE_MAX: usize = 255;

const LOCK_V1: u8 = 1;
/// A lock of a transaction that commits asynchronously: version 1's
/// fields, then its minimum commit timestamp and its secondary keys.
const LOCK_V2: u8 = 2;
const WRITE_V1: u8 = 1;

/// What a lock stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    /// A prewritten new value.
    Put,
    /// A prewritten deletion.
    Delete,
    /// A prewritten row lock without a change (SELECT ... FOR UPDATE); it
    /// commits as a `Lock` write record, invisible to readers.
    Lock,
    /// A pessimistic lock taken by a statement before the transaction
    /// commits. Readers ignore it; writers wait for it. It must be prewritten
    /// (turned into one of the kinds above) before the transaction commits.
    Pessimistic,
}

impl LockKind {
    fn code(self) -> u8 {
        match self {
            LockKind::Put => 1,
            LockKind::Delete => 2,
            LockKind::Lock => 3,
            LockKind::Pessimistic => 4,
        }
    }

    fn from_code(code: u8) -> Result<Self> {
        Ok(match code {
            1 => LockKind::Put,
            2 => LockKind::Delete,
            3 => LockKind::Lock,
            4 => LockKind::Pessimistic,
            other => return Err(Error::Corruption(format!("unknown lock kind {other}"))),
        })
    }

    /// Whether a reader at a timestamp past the lock's start must wait for
    /// (or resolve) the lock: only a lock that will change the key's value.
    pub fn blocks_readers(self) -> bool {
        matches!(self, LockKind::Put | LockKind::Delete)
    }
}

/// A lock in the `lock` family: a transaction is writing the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lock {
    /// What the lock stands for.
    pub kind: LockKind,
    /// The transaction's primary key, whose lock or commit record decides the
    /// fate of every lock of the transaction.
    pub primary: Vec<u8>,
    /// The transaction's start timestamp: its identity.
    pub start_ts: Timestamp,
    /// Milliseconds after `start_ts`'s physical time before the lock may be
    /// cleaned up by others if its transaction has not finished. The
    /// coordinator extends it on the primary lock while it is alive.
    pub ttl_ms: u64,
    /// For a pessimistic transaction, the timestamp the lock's conflict check
    /// was made at; zero for an optimistic one.
    pub for_update_ts: Timestamp,
    /// A `Put`'s value if it is short; longer values are in `default`.
    pub short_value: Option<Vec<u8>>,
    /// For a transaction that commits asynchronously (its commit is decided
    /// once every prewrite is in place), a lower bound of its commit
    /// timestamp: above every read its range had served when the lock was
    /// proposed. The transaction commits at the highest of its locks'. Zero
    /// for a transaction whose primary's commit decides it.
    pub min_commit_ts: Timestamp,
    /// On the primary lock of a transaction that commits asynchronously,
    /// every other key it locked: whoever finds it abandoned checks them all
    /// to learn its fate. Empty otherwise.
    pub secondaries: Vec<Vec<u8>>,
}

impl Lock {
    /// Whether the lock's transaction commits asynchronously.
    pub fn is_async(&self) -> bool {
        self.min_commit_ts > Timestamp::ZERO
    }

    /// Whether the lock's transaction is sure to commit above `ts`, if it
    /// commits: an asynchronous commit's minimum is above it, and a read at
    /// `ts` may pass the lock.
    pub fn commits_above(&self, ts: Timestamp) -> bool {
        self.is_async() && self.min_commit_ts > ts
    }

    /// Whether the lock has outlived its TTL at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        now.physical_ms() >= self.start_ts.physical_ms().saturating_add(self.ttl_ms)
    }

    /// The record's encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(
            34 + self.primary.len() + self.short_value.as_ref().map_or(0, Vec::len),
        );
        let v2 = self.is_async() || !self.secondaries.is_empty();
        buf.push(if v2 { LOCK_V2 } else { LOCK_V1 });
        buf.push(self.kind.code());
        buf.extend_from_slice(&self.start_ts.0.to_be_bytes());
        buf.extend_from_slice(&self.ttl_ms.to_be_bytes());
        buf.extend_from_slice(&self.for_update_ts.0.to_be_bytes());
        put_bytes(&mut buf, &self.primary);
        put_optional(&mut buf, self.short_value.as_deref());
        if v2 {
            buf.extend_from_slice(&self.min_commit_ts.0.to_be_bytes());
            buf.extend_from_slice(&(self.secondaries.len() as u32).to_be_bytes());
            for key in &self.secondaries {
                put_bytes(&mut buf, key);
            }
        }
        buf
    }

    /// Decodes a record.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "lock");
        let version = r.u8()?;
        if version != LOCK_V1 && version != LOCK_V2 {
            return Err(Error::Corruption(format!("lock record version {version}")));
        }
        let mut lock = Lock {
            kind: LockKind::from_code(r.u8()?)?,
            start_ts: Timestamp(r.u64()?),
            ttl_ms: r.u64()?,
            for_update_ts: Timestamp(r.u64()?),
            primary: r.bytes()?,
            short_value: r.optional()?,
            min_commit_ts: Timestamp::ZERO,
            secondaries: Vec::new(),
        };
        if version == LOCK_V2 {
            lock.min_commit_ts = Timestamp(r.u64()?);
            let count = r.u32()?;
            for _ in 0..count {
                lock.secondaries.push(r.bytes()?);
            }
        }
        r.finish()?;
        Ok(lock)
    }
}

/// What a write record stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    /// A committed value.
    Put,
    /// A committed deletion.
    Delete,
    /// A committed row lock; the value is that of the next older version.
    Lock,
    /// The transaction that started at the record's timestamp was rolled
    /// back: a prewrite arriving late for it must fail.
    Rollback,
}

impl WriteKind {
    fn code(self) -> u8 {
        match self {
            WriteKind::Put => 1,
            WriteKind::Delete => 2,
            WriteKind::Lock => 3,
            WriteKind::Rollback => 4,
        }
    }

    fn from_code(code: u8) -> Result<Self> {
        Ok(match code {
            1 => WriteKind::Put,
            2 => WriteKind::Delete,
            3 => WriteKind::Lock,
            4 => WriteKind::Rollback,
            other => return Err(Error::Corruption(format!("unknown write kind {other}"))),
        })
    }

    /// The kind a committed lock of `kind` leaves behind.
    pub fn of_lock(kind: LockKind) -> Option<Self> {
        match kind {
            LockKind::Put => Some(WriteKind::Put),
            LockKind::Delete => Some(WriteKind::Delete),
            LockKind::Lock => Some(WriteKind::Lock),
            LockKind::Pessimistic => None,
        }
    }

    /// Whether the record gives the key a value (or removes it): the kinds a
    /// reader stops at.
    pub fn is_data(self) -> bool {
        matches!(self, WriteKind::Put | WriteKind::Delete)
    }
}

/// A record in the `write` family at `(key, commit_ts)` (or `(key,
/// start_ts)` for a rollback).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// What the record stands for.
    pub kind: WriteKind,
    /// The start timestamp of the transaction that wrote it.
    pub start_ts: Timestamp,
    /// A `Put`'s value if it is short; longer values are in `default` at
    /// `(key, start_ts)`.
    pub short_value: Option<Vec<u8>>,
    /// A rollback of the transaction that started at this record's
    /// timestamp shares its key with this commit record (a commit timestamp
    /// can equal another transaction's start timestamp), so the rollback is
    /// recorded here instead of overwriting the commit.
    pub overlapped_rollback: bool,
}

impl Write {
    /// A record without an inline value or overlapped rollback.
    pub fn new(kind: WriteKind, start_ts: Timestamp) -> Self {
        Write {
            kind,
            start_ts,
            short_value: None,
            overlapped_rollback: false,
        }
    }

    /// The record's encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(16 + self.short_value.as_ref().map_or(0, Vec::len));
        buf.push(WRITE_V1);
        buf.push(self.kind.code());
        buf.extend_from_slice(&self.start_ts.0.to_be_bytes());
        buf.push(u8::from(self.overlapped_rollback));
        put_optional(&mut buf, self.short_value.as_deref());
        buf
    }

    /// Decodes a record.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "write");
        let version = r.u8()?;
        if version != WRITE_V1 {
            return Err(Error::Corruption(format!("write record version {version}")));
        }
        let write = Write {
            kind: WriteKind::from_code(r.u8()?)?,
            start_ts: Timestamp(r.u64()?),
            overlapped_rollback: r.flag()?,
            short_value: r.optional()?,
        };
        r.finish()?;
        Ok(write)
    }
}

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    buf.extend_from_slice(bytes);
}

fn put_optional(buf: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            buf.push(1);
            put_bytes(buf, bytes);
        }
        None => buf.push(0),
    }
}

/// A bounds-checked cursor over a record.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Reader { bytes, at: 0, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return Err(Error::Corruption(format!("truncated {} record", self.what)));
        };
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn flag(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(Error::Corruption(format!(
                "{} record: flag byte {other}",
                self.what
            ))),
        }
    }

    fn u64(&mut self) -> Result<u64> {
        let bytes: [u8; 8] = self.take(8)?.try_into().expect("took 8 bytes");
        Ok(u64::from_be_bytes(bytes))
    }

    fn u32(&mut self) -> Result<u32> {
        let bytes: [u8; 4] = self.take(4)?.try_into().expect("took 4 bytes");
        Ok(u32::from_be_bytes(bytes))
    }

    fn bytes(&mut self) -> Result<Vec<u8>> {
        let len = self.u32()?;
        Ok(self.take(len as usize)?.to_vec())
    }

    fn optional(&mut self) -> Result<Option<Vec<u8>>> {
        Ok(if self.flag()? {
            Some(self.bytes()?)
        } else {
            None
        })
    }

    fn finish(&self) -> Result<()> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(Error::Corruption(format!(
                "{} trailing bytes after a {} record",
                self.bytes.len() - self.at,
                self.what
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn locks_round_trip() {
        for kind in [
            LockKind::Put,
            LockKind::Delete,
            LockKind::Lock,
            LockKind::Pessimistic,
        ] {
            let lock = Lock {
                kind,
                primary: b"primary".to_vec(),
                start_ts: Timestamp(42),
                ttl_ms: 3000,
                for_update_ts: Timestamp(43),
                short_value: (kind == LockKind::Put).then(|| b"v".to_vec()),
                min_commit_ts: Timestamp::ZERO,
                secondaries: Vec::new(),
            };
            assert_eq!(lock.encode()[0], LOCK_V1);
            assert_eq!(Lock::decode(&lock.encode()).unwrap(), lock);
            let asynchronous = Lock {
                min_commit_ts: Timestamp(44),
                secondaries: vec![b"a".to_vec(), Vec::new(), b"ccc".to_vec()],
                ..lock
            };
            assert_eq!(asynchronous.encode()[0], LOCK_V2);
            assert_eq!(Lock::decode(&asynchronous.encode()).unwrap(), asynchronous);
        }
    }

    #[test]
    fn writes_round_trip() {
        for kind in [
            WriteKind::Put,
            WriteKind::Delete,
            WriteKind::Lock,
            WriteKind::Rollback,
        ] {
            let mut write = Write::new(kind, Timestamp(7));
            write.short_value = (kind == WriteKind::Put).then(|| vec![0; 3]);
            write.overlapped_rollback = kind == WriteKind::Lock;
            assert_eq!(Write::decode(&write.encode()).unwrap(), write);
        }
    }

    #[test]
    fn expiry_is_measured_from_the_start_timestamp() {
        let lock = Lock {
            kind: LockKind::Put,
            primary: vec![],
            start_ts: Timestamp::new(1000, 0),
            ttl_ms: 100,
            for_update_ts: Timestamp::ZERO,
            short_value: None,
            min_commit_ts: Timestamp::ZERO,
            secondaries: Vec::new(),
        };
        assert!(!lock.is_expired(Timestamp::new(1099, 5)));
        assert!(lock.is_expired(Timestamp::new(1100, 0)));
    }

    proptest! {
        #[test]
        fn decoding_garbage_does_not_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Lock::decode(&bytes);
            let _ = Write::decode(&bytes);
        }
    }
}
