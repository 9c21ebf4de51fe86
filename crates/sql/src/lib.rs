//! Tessera's SQL layer: sqlparser (PostgreSQL dialect) -> binder/planner ->
//! optimizer rules -> a streaming executor over a transactional KV interface.
//!
//! The crate is synchronous and has no I/O of its own: it reaches storage only
//! through the [`kv::Kv`] trait, so it runs the same over the replicated store
//! and over the in-memory [`kv::MemoryKv`] in tests.

pub mod binder;
pub mod catalog;
pub mod ddl;
pub mod dml;
pub mod error;
pub mod exec;
pub mod expr;
pub mod fk;
pub mod flow;
pub mod functions;
pub mod kv;
pub mod optimizer;
pub mod parser;
pub mod pg_catalog;
pub mod plan;
pub mod ranges;
pub mod rowcodec;
pub mod session;
pub mod statements;
pub mod txn;
pub mod types;
pub mod vars;

pub use error::{code, SqlError, SqlResult};
pub use session::{
    CancelHandle, Column, CopyFormat, CopyTarget, Described, QueryResult, Session, SqlEngine,
    Statement, TxnStatus,
};
pub use types::{DataType, Value};
