//! Storage engines: the `Engine` trait, with a RocksDB implementation for
//! nodes and an in-memory one for tests, both passing one conformance suite
//! (`conformance`).
//!
//! An engine is an ordered byte key-value store split into column families
//! (`Cf`). Writes go through atomic `WriteBatch`es, optionally synced to disk;
//! reads see either the latest state or a consistent `Snapshot`. Scans are
//! paged (`ScanIter`) so that no scan holds an engine iterator across calls or
//! buffers a whole range.
#![deny(missing_docs)]

mod batch;
pub mod conformance;
mod engine;
mod error;
mod memory;
mod rocks;
mod scan;

pub use batch::{BatchOp, WriteBatch};
pub use engine::{Cf, Engine, Snapshot};
pub use error::{Error, Result};
pub use memory::MemoryEngine;
pub use rocks::RocksEngine;
pub use scan::ScanIter;
