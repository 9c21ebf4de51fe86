/// A storage error. Every one of them is an I/O or corruption failure that the
/// caller cannot retry around: a node that hits one stops serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// RocksDB reported an error.
    #[error("rocksdb: {0}")]
    RocksDb(#[from] rocksdb::Error),
    /// Stored data could not be decoded.
    #[error("corrupt data: {0}")]
    Corruption(String),
    /// The data directory could not be used.
    #[error("data directory {path}: {reason}")]
    DataDir {
        /// The directory.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A storage result.
pub type Result<T> = std::result::Result<T, Error>;
