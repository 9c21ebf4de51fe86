//! Transactions over the cluster, Percolator style.
//!
//! - [`TsoClient`]: timestamps from the oracle, with concurrent requests
//!   coalesced into one batch per round trip.
//! - [`RangeCache`]: the range descriptors of the meta range, to group a
//!   transaction's writes by range.
//! - [`TxnClient`] and [`Transaction`]: a transaction reads at its start
//!   timestamp (resolving the locks it meets through their primaries),
//!   buffers its writes, and commits them with two-phase commit: prewrite
//!   every range's writes in parallel, take a commit timestamp, commit the
//!   primary key (the commit point), answer, and commit the other keys in
//!   the background. Writes that fall in one range commit in one step.
//! - [`TxnClient::collect_garbage`]: removes the versions that no read
//!   above a safe point needs, in every range, after resolving the locks of
//!   the transactions that started below it.
//! - [`failpoint`]: places where a test can make the process die.
#![deny(missing_docs)]

mod error;
pub use tessera_types::failpoint;
mod admin;
mod gc;
mod ranges;
mod transaction;
mod tso;

pub use error::{TxnError, TxnResult};
pub use gc::GcReport;
pub use ranges::RangeCache;
pub use transaction::{
    FlowPart, NodeStatus, Transaction, TxnClient, TxnOptions, RECENT_TS_MAX_AGE,
};
pub use tso::TsoClient;
