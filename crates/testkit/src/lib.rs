//! In-process clusters for tests: several stores in one process, connected
//! by a `Router` that can drop, delay and partition messages.
//!
//! ```ignore
//! let cluster = Cluster::start(3, ClusterOptions::default()).await;
//! cluster.put(b"k", b"v").await.unwrap();
//! cluster.isolate(cluster.leader(USER_RANGE).await);
//! ```

mod cluster;
mod router;

pub use cluster::{Cluster, ClusterOptions, EngineKind, USER_RANGE};
pub use router::Router;
