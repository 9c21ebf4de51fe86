//! In-process clusters for tests: several stores in one process, connected
//! by a `Router` that can drop, delay and partition messages.
//!
//! ```
//! use tessera_testkit::{Cluster, ClusterOptions, USER_RANGE};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let cluster = Cluster::start(3, ClusterOptions::default()).await;
//! cluster.put(b"k", b"v").await.unwrap();
//! let leader = cluster.leader(USER_RANGE).await;
//! cluster.isolate(leader); // the others elect a new leader
//! # });
//! ```

mod cluster;
mod router;

pub use cluster::{Cluster, ClusterOptions, EngineKind, USER_RANGE};
pub use router::Router;
