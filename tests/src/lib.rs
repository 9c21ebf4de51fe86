//! Helpers for end-to-end tests: real `tessera` processes on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tessera_proto::node::node_client::NodeClient;

/// The `tessera` binary built by this workspace's `cargo test`.
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

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `tessera start` process.
pub struct NodeProcess {
    /// Node id.
    pub id: u64,
    /// gRPC address.
    pub address: String,
    /// Arguments it was started with.
    pub args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl NodeProcess {
    /// Starts `tessera start` for node `id`.
    pub fn start(id: u64, address: &str, data_dir: &Path, join: &[String], log_dir: &Path) -> Self {
        let args = vec![
            "start".to_string(),
            "--node-id".into(),
            id.to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--listen-addr".into(),
            address.into(),
            "--join".into(),
            join.join(","),
        ];
        let mut node = Self {
            id,
            address: address.to_string(),
            args,
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
            .env("RUST_LOG", "info,raft=warn")
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

    /// Starts the process again with the same arguments.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
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
