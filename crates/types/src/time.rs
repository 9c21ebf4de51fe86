//! Transaction timestamps.
//!
//! Every timestamp comes from the timestamp oracle (TSO), which hands them
//! out strictly increasing. A timestamp is a hybrid of wall-clock time and a
//! counter: milliseconds since the Unix epoch in the high 46 bits and a
//! logical counter in the low 18, so that the oracle can hand out 262,144
//! timestamps per millisecond and a lock's age can be read off its start
//! timestamp.

use std::fmt;

/// A point in the cluster's transaction time.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Bits of the logical counter.
    pub const LOGICAL_BITS: u32 = 18;
    /// The zero timestamp, below every timestamp the oracle hands out.
    pub const ZERO: Timestamp = Timestamp(0);
    /// The largest timestamp: a read at it sees every committed version.
    pub const MAX: Timestamp = Timestamp(u64::MAX);

    /// The timestamp `logical` steps after the start of millisecond
    /// `physical_ms`.
    pub const fn new(physical_ms: u64, logical: u64) -> Self {
        Timestamp((physical_ms << Self::LOGICAL_BITS) | (logical & Self::LOGICAL_MASK))
    }

    const LOGICAL_MASK: u64 = (1 << Self::LOGICAL_BITS) - 1;

    /// Milliseconds since the Unix epoch.
    pub const fn physical_ms(self) -> u64 {
        self.0 >> Self::LOGICAL_BITS
    }

    /// The logical counter within the millisecond.
    pub const fn logical(self) -> u64 {
        self.0 & Self::LOGICAL_MASK
    }

    /// The next timestamp.
    pub const fn next(self) -> Self {
        Timestamp(self.0.saturating_add(1))
    }

    /// The previous timestamp.
    pub const fn prev(self) -> Self {
        Timestamp(self.0.saturating_sub(1))
    }

    /// This timestamp moved `ms` milliseconds later.
    pub const fn add_ms(self, ms: u64) -> Self {
        Timestamp(self.0.saturating_add(ms << Self::LOGICAL_BITS))
    }

    /// Whether this is the zero timestamp.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.physical_ms(), self.logical())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl From<u64> for Timestamp {
    fn from(v: u64) -> Self {
        Timestamp(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_round_trip_and_order() {
        let ts = Timestamp::new(1_700_000_000_000, 5);
        assert_eq!(ts.physical_ms(), 1_700_000_000_000);
        assert_eq!(ts.logical(), 5);
        assert!(ts < ts.next());
        assert!(Timestamp::new(1, (1 << 18) - 1) < Timestamp::new(2, 0));
        assert_eq!(ts.add_ms(10).physical_ms(), 1_700_000_000_010);
        assert_eq!(ts.to_string(), "1700000000000.5");
    }
}
