use crate::Cf;

/// One operation of a `WriteBatch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOp {
    /// Sets a key.
    Put {
        /// Column family.
        cf: Cf,
        /// Key.
        key: Vec<u8>,
        /// Value.
        value: Vec<u8>,
    },
    /// Removes a key.
    Delete {
        /// Column family.
        cf: Cf,
        /// Key.
        key: Vec<u8>,
    },
    /// Removes every key in `[start, end)`; an empty `end` is unbounded.
    DeleteRange {
        /// Column family.
        cf: Cf,
        /// First key removed.
        start: Vec<u8>,
        /// First key kept.
        end: Vec<u8>,
    },
}

/// Writes applied atomically, in order, by `Engine::write`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<BatchOp>,
    size: usize,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value` in `cf`.
    pub fn put(&mut self, cf: Cf, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        let (key, value) = (key.into(), value.into());
        self.size += key.len() + value.len();
        self.ops.push(BatchOp::Put { cf, key, value });
    }

    /// Removes `key` from `cf`.
    pub fn delete(&mut self, cf: Cf, key: impl Into<Vec<u8>>) {
        let key = key.into();
        self.size += key.len();
        self.ops.push(BatchOp::Delete { cf, key });
    }

    /// Removes `[start, end)` from `cf`; an empty `end` is unbounded.
    pub fn delete_range(&mut self, cf: Cf, start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) {
        let (start, end) = (start.into(), end.into());
        self.size += start.len() + end.len();
        self.ops.push(BatchOp::DeleteRange { cf, start, end });
    }

    /// Appends every operation of `other`.
    pub fn extend(&mut self, other: WriteBatch) {
        self.size += other.size;
        self.ops.extend(other.ops);
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    /// The operations, in order, taken out of the batch.
    pub fn into_ops(self) -> Vec<BatchOp> {
        self.ops
    }

    /// Whether the batch has no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// The bytes of keys and values in the batch.
    pub fn size(&self) -> usize {
        self.size
    }
}
