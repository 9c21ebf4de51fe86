//! Load generators with hdrhistogram latency reports.
#![deny(missing_docs)]

pub mod kv;
pub mod report;
pub mod sql;
