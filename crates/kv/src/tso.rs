//! The timestamp oracle: strictly increasing timestamps, served by the meta
//! range's leader.
//!
//! The oracle hands out timestamps in batches. Before it hands out any
//! timestamp above the high-water mark stored in the meta range, it raises
//! the mark through Raft (a window ahead), so a new leader, which starts
//! above the stored mark, never goes backwards. Every batch begins with a
//! linearizable read of the mark: that confirms this node still leads the
//! meta range (a deposed leader's read fails) and shows whether another
//! oracle raised the mark since this one last did.
//!
//! [`TimestampOracle`] is the pure allocation logic; [`TsoService`] drives
//! it with the store.

use std::time::{SystemTime, UNIX_EPOCH};

use tessera_proto::meta::{mutation, Mutation, Put};
use tessera_raft::StoreHandle;
use tessera_types::{keys, Timestamp};

/// How far ahead of the timestamps handed out the high-water mark is
/// raised, in milliseconds: one Raft write per window under steady load.
pub const WINDOW_MS: u64 = 3000;

/// The most timestamps one request may take.
pub const MAX_BATCH: u32 = 1 << 16;

/// What the oracle needs before it can grant a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocation {
    /// `count` timestamps starting at `first`, all new.
    Granted {
        /// The first timestamp of the batch.
        first: Timestamp,
        /// How many.
        count: u32,
    },
    /// The high-water mark must first be raised to this (through Raft);
    /// then allocate again.
    RaiseMark(Timestamp),
}

/// The allocation state of one node's oracle.
#[derive(Debug, Default)]
pub struct TimestampOracle {
    /// The mark this oracle last stored or saw stored.
    known_mark: Option<Timestamp>,
    /// The last timestamp handed out.
    last: Timestamp,
}

impl TimestampOracle {
    /// Plans a batch of `count` timestamps (at least 1), given the stored
    /// high-water mark `stored` (read linearizably just now) and the wall
    /// clock `now_ms`.
    pub fn allocate(&mut self, stored: Timestamp, now_ms: u64, count: u32) -> Allocation {
        let count = count.clamp(1, MAX_BATCH);
        if self.known_mark != Some(stored) {
            // Another oracle raised the mark since this one last did (or this
            // is the first batch): it may have handed out anything up to it.
            self.last = self.last.max(stored);
            self.known_mark = Some(stored);
        }
        let first = self.last.next().max(Timestamp::new(now_ms, 0));
        let end = Timestamp(first.0 + u64::from(count) - 1);
        if end > stored {
            return Allocation::RaiseMark(Timestamp::new(end.physical_ms() + WINDOW_MS, 0));
        }
        self.last = end;
        Allocation::Granted { first, count }
    }

    /// Records that the mark was raised to `mark`.
    pub fn mark_raised(&mut self, mark: Timestamp) {
        self.known_mark = Some(mark);
    }
}

/// The wall clock in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Serves timestamp batches from this node's replica of the meta range.
pub struct TsoService {
    store: StoreHandle,
    oracle: tokio::sync::Mutex<TimestampOracle>,
}

impl TsoService {
    /// The oracle of the node whose store is `store`.
    pub fn new(store: StoreHandle) -> Self {
        TsoService {
            store,
            oracle: tokio::sync::Mutex::new(TimestampOracle::default()),
        }
    }

    /// Hands out `count` new timestamps, as [`TsoService::timestamps`] does,
    /// and reads `key` (if not empty) as of the last of them: its value
    /// (None: absent), or None if a lock hid it or this node could not
    /// read it. The read comes after the batch is allocated, so it sees
    /// every commit below the batch, or the lock of one under way; and as
    /// an MVCC read at the last timestamp, it pushes any one-phase commit of
    /// the key proposed after it above the batch.
    pub async fn timestamps_reading(
        &self,
        count: u32,
        key: &[u8],
    ) -> tessera_raft::Result<(Timestamp, u32, Option<Option<Vec<u8>>>)> {
        let (first, count) = self.timestamps(count).await?;
        if key.is_empty() {
            return Ok((first, count, None));
        }
        let last = Timestamp(first.0 + u64::from(count) - 1);
        let read = match self.store.mvcc_get(key.to_vec(), last, false).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(_)) | Err(_) => None,
        };
        Ok((first, count, read))
    }

    /// Hands out `count` new timestamps: the first, and how many. Fails with
    /// the store's error (not leader of the meta range, unavailable) when
    /// this node cannot serve them.
    pub async fn timestamps(&self, count: u32) -> tessera_raft::Result<(Timestamp, u32)> {
        // One batch at a time: batches are cheap, and concurrent callers are
        // expected to coalesce their requests before they get here.
        let mut oracle = self.oracle.lock().await;
        loop {
            let stored = match self.store.get(keys::TSO_MARK_KEY.to_vec()).await? {
                Some(bytes) => decode_mark(&bytes)?,
                None => Timestamp::ZERO,
            };
            match oracle.allocate(stored, now_ms(), count) {
                Allocation::Granted { first, count } => return Ok((first, count)),
                Allocation::RaiseMark(mark) => {
                    self.store
                        .write(vec![Mutation {
                            op: Some(mutation::Op::Put(Put {
                                key: keys::TSO_MARK_KEY.to_vec(),
                                value: mark.0.to_be_bytes().to_vec(),
                            })),
                        }])
                        .await?;
                    oracle.mark_raised(mark);
                }
            }
        }
    }
}

fn decode_mark(bytes: &[u8]) -> tessera_raft::Result<Timestamp> {
    let bytes: [u8; 8] = bytes.try_into().map_err(|_| {
        tessera_raft::Error::InvalidInput(format!(
            "the timestamp oracle's mark is {} bytes, not 8",
            bytes.len()
        ))
    })?;
    Ok(Timestamp(u64::from_be_bytes(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raises_the_mark_before_handing_out_above_it() {
        let mut tso = TimestampOracle::default();
        let now = 1_000_000;
        assert_eq!(
            tso.allocate(Timestamp::ZERO, now, 10),
            Allocation::RaiseMark(Timestamp::new(now + WINDOW_MS, 0))
        );
        let mark = Timestamp::new(now + WINDOW_MS, 0);
        tso.mark_raised(mark);
        assert_eq!(
            tso.allocate(mark, now, 10),
            Allocation::Granted {
                first: Timestamp::new(now, 0),
                count: 10
            }
        );
        // Strictly increasing within a millisecond, and across the clock.
        assert_eq!(
            tso.allocate(mark, now, 1),
            Allocation::Granted {
                first: Timestamp::new(now, 10),
                count: 1
            }
        );
        assert_eq!(
            tso.allocate(mark, now + 5, 1),
            Allocation::Granted {
                first: Timestamp::new(now + 5, 0),
                count: 1
            }
        );
        // A clock that went backwards does not move timestamps back.
        assert_eq!(
            tso.allocate(mark, now - 100, 1),
            Allocation::Granted {
                first: Timestamp::new(now + 5, 1),
                count: 1
            }
        );
    }

    #[test]
    fn a_new_leader_starts_above_the_stored_mark() {
        let now = 1_000_000;
        let mut old = TimestampOracle::default();
        let mark = Timestamp::new(now + WINDOW_MS, 0);
        old.mark_raised(mark);
        let Allocation::Granted { first: old_ts, .. } = old.allocate(mark, now, 1) else {
            panic!("the old leader had a mark");
        };
        // The new leader's clock is behind; it must still start above the
        // mark, raising it first.
        let mut new = TimestampOracle::default();
        let Allocation::RaiseMark(new_mark) = new.allocate(mark, now - 1000, 1) else {
            panic!("must raise the mark");
        };
        new.mark_raised(new_mark);
        let Allocation::Granted { first, .. } = new.allocate(new_mark, now - 1000, 1) else {
            panic!("granted after raising");
        };
        assert!(first > mark && first > old_ts);
        // The old leader, back in charge, sees the raised mark: it starts
        // above it, raising it again first.
        let Allocation::RaiseMark(third_mark) = old.allocate(new_mark, now, 1) else {
            panic!("must raise the mark");
        };
        old.mark_raised(third_mark);
        let Allocation::Granted { first: again, .. } = old.allocate(third_mark, now, 1) else {
            panic!("granted after raising");
        };
        assert!(again > new_mark);
    }
}
