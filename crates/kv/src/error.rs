/// An error seen by a `KvClient`, named by what the caller can do.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No node could serve the request within the retry budget (no quorum,
    /// nodes down); the write may or may not have been applied.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The request was rejected as invalid; retrying will not help.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A batch's keys fall in more than one range.
    #[error("batch spans more than one range (key {0:?})")]
    CrossRange(Vec<u8>),
    /// The request was planned against an older state of its range (a
    /// concurrent split, merge or membership change): plan it again.
    #[error("the range changed: {0}")]
    Changed(String),
    /// The server failed.
    #[error("server error: {0}")]
    Server(String),
}

/// A client result.
pub type ClientResult<T> = Result<T, ClientError>;
