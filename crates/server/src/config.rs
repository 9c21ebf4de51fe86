//! Node configuration: a TOML file (serde) whose values command-line flags
//! override.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The default gRPC port.
pub const DEFAULT_GRPC_PORT: u16 = 7433;

/// The default SQL (PostgreSQL wire protocol) port: beside, not on, a local
/// PostgreSQL's 5432.
pub const DEFAULT_SQL_PORT: u16 = 5433;

/// The database every cluster has, which `psql` connection strings name.
pub const DEFAULT_DATABASE: &str = "tessera";

/// One node's configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// This node's id, unique in the cluster, at least 1.
    pub node_id: u64,
    /// Where the node keeps its RocksDB database.
    pub data_dir: PathBuf,
    /// The address the gRPC server listens on.
    pub listen_addr: String,
    /// The address other nodes use to reach this one (defaults to
    /// `listen_addr`).
    pub advertise_addr: Option<String>,
    /// gRPC addresses of the cluster's nodes (this one may be included).
    pub join: Vec<String>,
    /// Replicas per range at bootstrap.
    pub replication_factor: usize,
    /// How long a KV request may wait for its range, in milliseconds.
    pub request_timeout_ms: u64,
    /// The address the SQL (PostgreSQL wire protocol) server listens on.
    pub sql_addr: String,
    /// How SQL clients authenticate: `trust` (no password), `password`
    /// (cleartext), `md5` or `scram-sha-256`.
    pub sql_auth: String,
    /// SQL user name -> password, for the password methods.
    pub sql_users: BTreeMap<String, String>,
    /// Raft tuning.
    pub raft: RaftSection,
    /// Garbage collection of old MVCC versions.
    pub gc: GcSection,
    /// Automatic splits of ranges by size.
    pub split: SplitSection,
    /// Lease rebalancing among the live nodes.
    pub rebalance: RebalanceSection,
    /// How the node's SQL gateway commits transactions.
    pub txn: TxnSection,
    /// Threads of the runtime that serves the node's network (gRPC, its
    /// pipelines and the Raft transport) and its reads from the leader's
    /// snapshot; 0: half the cores, at least one ([`io_threads`]).
    pub io_threads: usize,
}

/// The runtime's threads for a configured `io_threads`: that many, or for 0
/// half the cores, at least one. The store loops (one thread each) and the
/// SQL sessions (one thread per connection) run on threads of their own and
/// take the other half; with as many runtime threads as cores, an idle
/// runtime thread is woken to look for work each time another schedules a
/// task, and on two cores those wake-ups cost a select-only transaction
/// about an eighth of its CPU (benches/README.md).
pub fn io_threads(configured: usize) -> usize {
    match configured {
        0 => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cores / 2).max(1)
        }
        n => n,
    }
}

/// The `[rebalance]` table.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RebalanceSection {
    /// Seconds between the node's looks at how many leases it holds beside
    /// its fellow nodes (it hands one over when it holds two more than one
    /// of them); 0 turns lease rebalancing off.
    pub interval_secs: u64,
    /// Whether, on the same beat, the node takes the leases of ranges whose
    /// requests come mostly from its own SQL gateway (and keeps them out of
    /// the count balancing while its gateway keeps them busy).
    pub follow_workload: bool,
}

impl Default for RebalanceSection {
    fn default() -> Self {
        Self {
            interval_secs: 10,
            follow_workload: true,
        }
    }
}

/// The `[txn]` table.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TxnSection {
    /// Whether a transaction that writes to several ranges commits
    /// asynchronously: decided once its prewrites are in place, and
    /// answered then, instead of by a commit of its primary key after them
    /// (at a timestamp from the oracle).
    pub async_commit: bool,
}

impl Default for TxnSection {
    fn default() -> Self {
        Self { async_commit: true }
    }
}

/// The `[split]` table.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SplitSection {
    /// A range whose data passes this many bytes splits in two, at the key
    /// in its middle; 0 turns automatic splits off.
    pub max_range_bytes: u64,
    /// A range whose leader serves more than this many requests per second
    /// (over the last 5 s) splits in two, where its load divides; 0 turns
    /// splits by load off.
    pub max_range_qps: u64,
    /// Seconds between the checks of the ranges this node leads (their size
    /// and load, their records in the meta range, removed replicas); 0
    /// turns them off.
    pub check_interval_secs: u64,
    /// Seconds a range may stay frozen for a merge, or hold a split
    /// pending, before its leader settles the change (the node that ran it
    /// lost an answer). A split an earlier leader left pending is settled
    /// at the next check.
    pub settle_after_secs: u64,
}

impl Default for SplitSection {
    fn default() -> Self {
        Self {
            max_range_bytes: 64 << 20,
            max_range_qps: 2500,
            check_interval_secs: 5,
            settle_after_secs: 60,
        }
    }
}

/// The `[gc]` table.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcSection {
    /// Versions stay readable this many seconds after they are overwritten
    /// or deleted; transactions older than that cannot read or write.
    pub ttl_secs: u64,
    /// Seconds between collection passes (run by the node that leads the
    /// meta range); 0 turns collection off.
    pub interval_secs: u64,
}

impl Default for GcSection {
    fn default() -> Self {
        Self {
            ttl_secs: 600,
            interval_secs: 60,
        }
    }
}

/// The `[raft]` table.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSection {
    /// Length of a Raft tick in milliseconds.
    pub tick_interval_ms: u64,
    /// Ticks before a follower without a leader campaigns.
    pub election_ticks: usize,
    /// Ticks between heartbeats.
    pub heartbeat_ticks: usize,
    /// Applied log entries kept before the log is compacted.
    pub log_compact_threshold: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            node_id: 1,
            data_dir: PathBuf::from("tessera-data"),
            listen_addr: format!("127.0.0.1:{DEFAULT_GRPC_PORT}"),
            advertise_addr: None,
            join: Vec::new(),
            replication_factor: 3,
            request_timeout_ms: 5_000,
            sql_addr: format!("127.0.0.1:{DEFAULT_SQL_PORT}"),
            sql_auth: "trust".to_string(),
            sql_users: BTreeMap::new(),
            raft: RaftSection::default(),
            gc: GcSection::default(),
            split: SplitSection::default(),
            rebalance: RebalanceSection::default(),
            txn: TxnSection::default(),
            io_threads: 0,
        }
    }
}

impl Default for RaftSection {
    fn default() -> Self {
        let defaults = tessera_raft::RaftConfig::default();
        Self {
            tick_interval_ms: defaults.tick_interval.as_millis() as u64,
            election_ticks: defaults.election_ticks,
            heartbeat_ticks: defaults.heartbeat_ticks,
            log_compact_threshold: defaults.log_compact_threshold,
        }
    }
}

impl NodeConfig {
    /// Reads a TOML config file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("invalid config {}: {e}", path.display()))
    }

    /// The runtime's threads: `io_threads`, or the default for 0.
    pub fn io_threads(&self) -> usize {
        io_threads(self.io_threads)
    }

    /// The address other nodes reach this one at.
    pub fn advertise(&self) -> String {
        self.advertise_addr
            .clone()
            .unwrap_or_else(|| self.listen_addr.clone())
    }

    /// Checks values that would otherwise fail later and less clearly.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.node_id >= 1, "node_id must be at least 1");
        anyhow::ensure!(
            self.node_id < 1 << tessera_sql::session::ROWID_NODE_BITS,
            "node_id must be below {} (row ids hold it in {} bits)",
            1u64 << tessera_sql::session::ROWID_NODE_BITS,
            tessera_sql::session::ROWID_NODE_BITS
        );
        anyhow::ensure!(
            self.replication_factor >= 1,
            "replication_factor must be at least 1"
        );
        anyhow::ensure!(
            self.raft.tick_interval_ms >= 1,
            "raft.tick_interval_ms must be at least 1"
        );
        anyhow::ensure!(
            self.raft.election_ticks > self.raft.heartbeat_ticks && self.raft.heartbeat_ticks >= 1,
            "raft.election_ticks must exceed raft.heartbeat_ticks, which must be at least 1"
        );
        anyhow::ensure!(
            self.raft.log_compact_threshold >= 2,
            "raft.log_compact_threshold must be at least 2"
        );
        let auth = self.sql_auth_config()?;
        anyhow::ensure!(
            auth.method == tessera_pgwire::AuthMethod::Trust || !auth.users.is_empty(),
            "sql_auth = \"{}\" needs at least one user in sql_users",
            auth.method
        );
        Ok(())
    }

    /// The SQL server's authentication settings.
    pub fn sql_auth_config(&self) -> anyhow::Result<tessera_pgwire::AuthConfig> {
        let method = self
            .sql_auth
            .parse::<tessera_pgwire::AuthMethod>()
            .map_err(|e| anyhow::anyhow!("sql_auth: {e}"))?;
        Ok(tessera_pgwire::AuthConfig {
            method,
            users: self.sql_users.clone(),
        })
    }

    /// The store's Raft configuration.
    pub fn raft_config(&self) -> tessera_raft::RaftConfig {
        tessera_raft::RaftConfig {
            tick_interval: Duration::from_millis(self.raft.tick_interval_ms),
            election_ticks: self.raft.election_ticks,
            heartbeat_ticks: self.raft.heartbeat_ticks,
            log_compact_threshold: self.raft.log_compact_threshold,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_config_file_and_rejects_unknown_keys() {
        let config: NodeConfig = toml::from_str(
            r#"
            node_id = 2
            data_dir = "/tmp/n2"
            listen_addr = "127.0.0.1:7434"
            join = ["127.0.0.1:7433", "127.0.0.1:7434"]
            [raft]
            election_ticks = 20
            [gc]
            ttl_secs = 60
            "#,
        )
        .unwrap();
        assert_eq!(config.node_id, 2);
        assert_eq!((config.gc.ttl_secs, config.gc.interval_secs), (60, 60));
        assert_eq!(config.raft.election_ticks, 20);
        assert_eq!(config.raft.heartbeat_ticks, 2);
        assert_eq!(config.advertise(), "127.0.0.1:7434");
        assert_eq!(config.sql_addr, "127.0.0.1:5433");
        config.validate().unwrap();
        assert!(toml::from_str::<NodeConfig>("nodeid = 2").is_err());
    }

    #[test]
    fn sql_settings() {
        let config: NodeConfig = toml::from_str(
            r#"
            sql_addr = "0.0.0.0:26257"
            sql_auth = "scram-sha-256"
            [sql_users]
            alice = "secret"
            "#,
        )
        .unwrap();
        config.validate().unwrap();
        let auth = config.sql_auth_config().unwrap();
        assert_eq!(auth.method, tessera_pgwire::AuthMethod::ScramSha256);
        assert_eq!(auth.users["alice"], "secret");
        let no_users: NodeConfig = toml::from_str("sql_auth = \"md5\"").unwrap();
        assert!(no_users.validate().is_err());
        let unknown: NodeConfig = toml::from_str("sql_auth = \"ldap\"").unwrap();
        assert!(unknown.validate().is_err());
    }

    #[test]
    fn io_threads_default_to_half_the_cores() {
        let cores = std::thread::available_parallelism().unwrap().get();
        let unset = NodeConfig::default();
        assert_eq!(unset.io_threads, 0);
        assert_eq!(unset.io_threads(), (cores / 2).max(1));
        let set: NodeConfig = toml::from_str("io_threads = 3").unwrap();
        assert_eq!(set.io_threads(), 3);
    }
}
