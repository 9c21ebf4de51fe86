//! SQL errors carry a PostgreSQL SQLSTATE, so that every driver sees the code
//! it would see from PostgreSQL.

use std::fmt;

/// SQLSTATE codes Tessera raises (PostgreSQL's Appendix A).
pub mod code {
    pub const SYNTAX_ERROR: &str = "42601";
    pub const UNDEFINED_TABLE: &str = "42P01";
    pub const UNDEFINED_COLUMN: &str = "42703";
    pub const UNDEFINED_FUNCTION: &str = "42883";
    pub const UNDEFINED_OBJECT: &str = "42704";
    pub const DUPLICATE_TABLE: &str = "42P07";
    pub const DUPLICATE_COLUMN: &str = "42701";
    pub const DUPLICATE_DATABASE: &str = "42P04";
    pub const DUPLICATE_OBJECT: &str = "42710";
    pub const INVALID_DATABASE: &str = "3D000";
    pub const AMBIGUOUS_COLUMN: &str = "42702";
    pub const DATATYPE_MISMATCH: &str = "42804";
    pub const GROUPING_ERROR: &str = "42803";
    pub const INVALID_COLUMN_REFERENCE: &str = "42P10";
    pub const UNDEFINED_PARAMETER: &str = "42P02";
    pub const CANNOT_COERCE: &str = "42846";
    pub const INVALID_TABLE_DEFINITION: &str = "42P16";
    pub const WRONG_OBJECT_TYPE: &str = "42809";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
    pub const DIVISION_BY_ZERO: &str = "22012";
    pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
    pub const INVALID_DATETIME_FORMAT: &str = "22007";
    pub const DATETIME_FIELD_OVERFLOW: &str = "22008";
    pub const STRING_DATA_RIGHT_TRUNCATION: &str = "22001";
    pub const INVALID_PARAMETER_VALUE: &str = "22023";
    pub const INVALID_ESCAPE_SEQUENCE: &str = "22025";
    pub const INVALID_REGULAR_EXPRESSION: &str = "2201B";
    pub const CARDINALITY_VIOLATION: &str = "21000";
    pub const INVALID_ROW_COUNT_IN_LIMIT: &str = "2201W";
    pub const INVALID_ROW_COUNT_IN_OFFSET: &str = "2201X";
    pub const NOT_NULL_VIOLATION: &str = "23502";
    pub const UNIQUE_VIOLATION: &str = "23505";
    pub const CHECK_VIOLATION: &str = "23514";
    pub const UNDEFINED_SEQUENCE_VALUE: &str = "55000";
    pub const SEQUENCE_LIMIT: &str = "2200H";
    pub const INVALID_TRANSACTION_STATE: &str = "25000";
    pub const IN_FAILED_TRANSACTION: &str = "25P02";
    pub const NO_ACTIVE_TRANSACTION: &str = "25P01";
    pub const ACTIVE_TRANSACTION: &str = "25001";
    pub const QUERY_CANCELED: &str = "57014";
    pub const INVALID_PARAMETER_NAME: &str = "42602";
    pub const UNRECOGNIZED_PARAMETER: &str = "42704";
    pub const INVALID_CURSOR_NAME: &str = "34000";
    pub const INVALID_SQL_STATEMENT_NAME: &str = "26000";
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const SERIALIZATION_FAILURE: &str = "40001";
    pub const LOCK_NOT_AVAILABLE: &str = "55P03";
    pub const DEADLOCK_DETECTED: &str = "40P01";
    pub const STATEMENT_COMPLETION_UNKNOWN: &str = "40003";
    pub const INVALID_SAVEPOINT_SPECIFICATION: &str = "3B001";
    pub const SNAPSHOT_TOO_OLD: &str = "72000";
    pub const INTERNAL_ERROR: &str = "XX000";
    pub const IO_ERROR: &str = "58030";
    pub const CONNECTION_FAILURE: &str = "08006";
    pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
}

/// An error answered to the client: SQLSTATE, message and an optional detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    /// Five-character SQLSTATE.
    pub code: &'static str,
    /// Primary message, lower case as in PostgreSQL.
    pub message: String,
    /// DETAIL line, if any.
    pub detail: Option<String>,
    /// The storage key a conflict (40001) was about, for the session to
    /// describe as a table and key values.
    pub key: Option<Vec<u8>>,
    /// A statement read at a recent snapshot ([`crate::kv::Kv::begin_recent`])
    /// that turned out not to be the latest: it runs again on a fresh one,
    /// and the client never sees this error.
    pub retry_afresh: bool,
}

impl SqlError {
    /// An error with `code` and `message`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: None,
            key: None,
            retry_afresh: false,
        }
    }

    /// 40001, [`retry_afresh`](Self::retry_afresh): a read at a recent
    /// snapshot met `key` changed above it (or possibly changed).
    pub fn not_latest(key: &[u8]) -> Self {
        let mut err = Self::new(
            code::SERIALIZATION_FAILURE,
            "the statement's snapshot was not the latest",
        )
        .with_detail(format!(
            "key {} changed after it, or may have",
            crate::kv::conflict_key_text(key)
        ));
        err.retry_afresh = true;
        err
    }

    /// Adds a DETAIL line.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// 42601.
    pub fn syntax(message: impl Into<String>) -> Self {
        Self::new(code::SYNTAX_ERROR, message)
    }

    /// 0A000.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(code::FEATURE_NOT_SUPPORTED, message)
    }

    /// XX000: a storage or cluster failure, or a bug.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(code::INTERNAL_ERROR, message)
    }

    /// 42804.
    pub fn mismatch(message: impl Into<String>) -> Self {
        Self::new(code::DATATYPE_MISMATCH, message)
    }

    /// 22003.
    pub fn out_of_range(message: impl Into<String>) -> Self {
        Self::new(code::NUMERIC_VALUE_OUT_OF_RANGE, message)
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (SQLSTATE {})", self.message, self.code)
    }
}

impl std::error::Error for SqlError {}

/// Result of SQL operations.
pub type SqlResult<T> = Result<T, SqlError>;
