//! Helpers for end-to-end tests: real `tessera` processes on 127.0.0.1.
//!
//! [`NodeProcess`] runs one `tessera start`, [`Cluster`] a bootstrapped
//! cluster of them, and [`pg::Postgres`] a throwaway PostgreSQL server that
//! the SQL suites compare Tessera with.

pub mod pg;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tessera_proto::node::node_client::NodeClient;

/// The `tessera` binary built by this workspace's `cargo test`.
/// The nodes' log filter (`RUST_LOG`) unless TESSERA_TEST_LOG gives one:
/// each step of a split, and each resharding step planned again, at debug
/// level, for the post-mortem of a failed test (see `Cluster::keep_for_post_mortem`).
const TEST_LOG: &str = "info,raft=warn,tessera_kv::services=debug,tessera_txn::admin=debug";

pub fn tessera_bin() -> PathBuf {
    if let Ok(path) = std::env::var("TESSERA_BIN") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<test binary> -> target/<profile>/tessera
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("tessera");
    assert!(
        bin.exists(),
        "{} not found: build it with `cargo build -p tessera-server` (or set TESSERA_BIN)",
        bin.display()
    );
    bin
}

/// A SQL connection to the node at `address` (host:port) as the `tessera`
/// user, retried for up to 30 s while the node is starting. Panics after.
pub async fn sql_client(address: &str) -> tokio_postgres::Client {
    let (host, port) = address.rsplit_once(':').expect("host:port");
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(port.parse().expect("port"))
        .user("tessera")
        .dbname("tessera")
        .connect_timeout(Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match config.connect(tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                return client;
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!("connect to {address}: {err}"),
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
///
/// The port is free when chosen and never handed out twice by this process:
/// the kernel may offer a port again once its probe socket closes, before
/// the node it was meant for binds it.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

/// One `tessera start` process.
pub struct NodeProcess {
    /// Node id.
    pub id: u64,
    /// gRPC address.
    pub address: String,
    /// PostgreSQL wire protocol address (`--sql-addr`).
    pub sql_address: String,
    /// Arguments it was started with.
    pub args: Vec<String>,
    /// Extra environment variables it runs with (e.g. failpoints).
    pub env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl NodeProcess {
    /// Starts `tessera start` for node `id`, serving SQL on a free port.
    pub fn start(id: u64, address: &str, data_dir: &Path, join: &[String], log_dir: &Path) -> Self {
        Self::start_with(id, address, data_dir, join, log_dir, &[])
    }

    /// `start` with more flags for `tessera start`.
    pub fn start_with(
        id: u64,
        address: &str,
        data_dir: &Path,
        join: &[String],
        log_dir: &Path,
        extra: &[&str],
    ) -> Self {
        let sql_address = format!("127.0.0.1:{}", free_port());
        let mut args = vec![
            "start".to_string(),
            "--node-id".into(),
            id.to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--listen-addr".into(),
            address.into(),
            "--join".into(),
            join.join(","),
            "--sql-addr".into(),
            sql_address.clone(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut node = Self {
            id,
            address: address.to_string(),
            sql_address,
            args,
            env: Vec::new(),
            log: log_dir.join(format!("node{id}.log")),
            child: None,
        };
        node.spawn();
        node
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(tessera_bin())
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("TESSERA_TEST_LOG").unwrap_or_else(|_| TEST_LOG.into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn tessera");
        self.child = Some(child);
    }

    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends the process SIGTERM and waits up to `wait` for it to exit:
    /// its exit status, or None if it did not exit (it is killed then).
    pub fn terminate(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Starts the process again with the same arguments.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Whether the process has exited (crashed, aborted) on its own.
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(Some(_))),
            None => true,
        }
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Connects to a node's gRPC port, waiting up to `timeout` for it to listen.
pub async fn node_client(
    address: &str,
    timeout: Duration,
) -> anyhow::Result<NodeClient<tonic::transport::Channel>> {
    let deadline = Instant::now() + timeout;
    loop {
        match tonic::transport::Endpoint::from_shared(format!("http://{address}"))?
            .connect()
            .await
        {
            Ok(channel) => return Ok(NodeClient::new(channel)),
            Err(err) if Instant::now() > deadline => anyhow::bail!("{address} not up: {err}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The node currently leading `range`, asking every node.
pub async fn leader_of(
    addresses: &[String],
    range: u64,
    timeout: Duration,
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        for (i, address) in addresses.iter().enumerate() {
            if let Ok(mut client) = node_client(address, Duration::from_millis(200)).await {
                if let Ok(response) = client.ranges(tessera_proto::node::RangesRequest {}).await {
                    let leads = response.into_inner().replicas.iter().any(|r| {
                        r.is_leader && r.descriptor.as_ref().is_some_and(|d| d.range_id == range)
                    });
                    if leads {
                        return Ok(i);
                    }
                }
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "no leader for range {range}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A bootstrapped cluster of `tessera start` processes on 127.0.0.1, each
/// serving SQL. Dropping it kills the processes, then removes the data
/// (kept when the test is failing).
pub struct Cluster {
    /// The nodes, node id `i + 1` at index `i`.
    pub nodes: Vec<NodeProcess>,
    // Declared after `nodes`, so that it is removed after they are killed.
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` nodes that join each other, runs `tessera init` and waits
    /// until every node accepts connections on its SQL port.
    pub async fn start(n: usize) -> anyhow::Result<Self> {
        Self::start_with(n, &[]).await
    }

    /// `start`, with more flags for every node's `tessera start`.
    pub async fn start_with(n: usize, extra: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("tessera-e2e").tempdir()?;
        let addresses: Vec<String> = (0..n)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let nodes = addresses
            .iter()
            .enumerate()
            .map(|(i, address)| {
                let id = i as u64 + 1;
                let data = dir.path().join(format!("n{id}"));
                NodeProcess::start_with(id, address, &data, &addresses, dir.path(), extra)
            })
            .collect();
        let cluster = Self { nodes, dir };
        for address in &addresses {
            if let Err(err) = node_client(address, Duration::from_secs(30)).await {
                anyhow::bail!("{err}\n{}", cluster.log_tails(30));
            }
        }
        let init = Command::new(tessera_bin())
            .args(["init", "--host", &addresses[0]])
            .output()?;
        anyhow::ensure!(
            init.status.success(),
            "tessera init failed: {}\n{}",
            String::from_utf8_lossy(&init.stderr),
            cluster.log_tails(30)
        );
        for node in &cluster.nodes {
            if let Err(err) = wait_for_port(&node.sql_address, Duration::from_secs(30)).await {
                anyhow::bail!("{err}\n{}", cluster.log_tails(30));
            }
        }
        Ok(cluster)
    }

    /// Starts one more node (id `n + 1`, with `extra` flags), with the
    /// running nodes as its join list: it joins the cluster. Returns once it
    /// accepts SQL connections.
    pub async fn add_node(&mut self, extra: &[&str]) -> anyhow::Result<&NodeProcess> {
        let id = self.nodes.len() as u64 + 1;
        let address = format!("127.0.0.1:{}", free_port());
        let data = self.dir.path().join(format!("n{id}"));
        let join = self.addresses();
        let node = NodeProcess::start_with(id, &address, &data, &join, self.dir.path(), extra);
        self.nodes.push(node);
        if let Err(err) = wait_for_port(
            &self.nodes[id as usize - 1].sql_address,
            Duration::from_secs(30),
        )
        .await
        {
            anyhow::bail!("{err}\n{}", self.log_tails(30));
        }
        Ok(&self.nodes[id as usize - 1])
    }

    /// The nodes' gRPC addresses.
    pub fn addresses(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.address.clone()).collect()
    }

    /// The nodes' SQL (pgwire) addresses.
    pub fn sql_addresses(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.sql_address.clone()).collect()
    }

    /// The directory that holds the nodes' data dirs and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Keeps the cluster's data and logs after it stops, for a post-mortem
    /// of a failed test, and returns each node's last `lines` warnings and
    /// errors with the directory they are in.
    pub fn keep_for_post_mortem(&mut self, lines: usize) -> String {
        self.dir.disable_cleanup(true);
        let mut out = format!(
            "the cluster's data and logs are kept in {}\n",
            self.dir.path().display()
        );
        for node in &self.nodes {
            let log = node.log();
            let noted: Vec<&str> = log
                .lines()
                .filter(|line| line.contains("WARN") || line.contains("ERROR"))
                .collect();
            let tail = &noted[noted.len().saturating_sub(lines)..];
            if tail.is_empty() {
                out.push_str(&format!("--- node {}: no warnings or errors\n", node.id));
                continue;
            }
            out.push_str(&format!(
                "--- node {}: its last {} warnings and errors (of {}) ---\n{}\n",
                node.id,
                tail.len(),
                noted.len(),
                tail.join("\n")
            ));
        }
        out
    }

    /// The last `lines` lines of every node's log, for failure messages.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            let log = node.log();
            let all: Vec<&str> = log.lines().collect();
            let tail = &all[all.len().saturating_sub(lines)..];
            out.push_str(&format!(
                "--- node {} log (last {} lines) ---\n{}\n",
                node.id,
                tail.len(),
                tail.join("\n")
            ));
        }
        out
    }
}

impl Drop for Cluster {
    /// A failing test keeps the cluster's data and logs for a post-mortem
    /// and says where they are.
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "test failed: the cluster's data and logs are kept in {}",
                self.dir.path().display()
            );
        }
    }
}

/// Waits until something accepts TCP connections on `address`.
pub async fn wait_for_port(address: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match tokio::net::TcpStream::connect(address).await {
            Ok(_) => return Ok(()),
            Err(err) if Instant::now() > deadline => {
                anyhow::bail!("nothing listens on {address}: {err}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// How many locks are left in the user keyspace of the cluster at
/// `addresses` (gRPC), polled until none is left or `patience` passes (the
/// secondaries of two-phase commits are committed in the background).
pub async fn locks_left(addresses: &[String], patience: Duration) -> anyhow::Result<usize> {
    let kv = tessera_kv::KvClient::new(addresses.to_vec(), Default::default());
    let deadline = Instant::now() + patience;
    loop {
        let mut count = 0;
        let mut cursor = vec![0x02];
        loop {
            let (locks, resume) = kv
                .scan_locks(&cursor, b"", tessera_types::Timestamp(u64::MAX), 10_000)
                .await?;
            count += locks.len();
            match resume {
                Some(next) => cursor = next,
                None => break,
            }
        }
        if count == 0 || Instant::now() > deadline {
            return Ok(count);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
