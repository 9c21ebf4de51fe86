//! Storage engines: the `Engine` trait, with a RocksDB implementation for
//! nodes and an in-memory one for tests, both passing one conformance suite
//! (`conformance`).
//!
//! An engine is an ordered byte key-value store split into column families
//! (`Cf`). Writes go through atomic `WriteBatch`es, optionally synced to disk;
//! reads see either the latest state or a consistent `Snapshot`. Scans are
//! paged (`ScanIter`) so that no scan holds an engine iterator across calls or
//! buffers a whole range.
//!
//! `mvcc` keeps multiple versions of every key in the Percolator layout and
//! implements the transaction protocol's steps as pure functions over a
//! snapshot.
#![deny(missing_docs)]

mod batch;
pub mod conformance;
mod engine;
mod error;
mod memory;
pub mod mvcc;
mod overlay;
mod rocks;
mod scan;

pub use batch::{BatchOp, WriteBatch};
pub use engine::{Cf, Engine, Snapshot};
pub use error::{Error, Result};
pub use memory::MemoryEngine;
pub use overlay::Overlay;
pub use rocks::RocksEngine;
pub use scan::ScanIter;
