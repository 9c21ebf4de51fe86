//! `tessera`: the node binary and its command-line tools.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use tessera_kv::{KvClient, KvClientConfig};
use tessera_proto::node::node_client::NodeClient;
use tessera_server::config::{
    io_threads, NodeConfig, DEFAULT_DATABASE, DEFAULT_GRPC_PORT, DEFAULT_SQL_PORT,
};
use tessera_server::node::{bind, Node};
use tessera_txn::{TxnClient, TxnOptions};

/// The allocator: the store loop and gRPC allocate and free many small
/// buffers per request, where glibc's malloc showed as 12% of a write-heavy
/// profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "Tessera: a sharded, replicated SQL database"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start one node.
    Start(Box<StartArgs>),
    /// Bootstrap a new cluster, once, through one of its nodes.
    Init {
        /// gRPC address of a node started with the cluster's join list.
        #[arg(long, default_value_t = format!("127.0.0.1:{DEFAULT_GRPC_PORT}"))]
        host: String,
    },
    /// Run an N-node cluster inside this process (Ctrl-C stops it).
    Demo {
        /// Number of nodes.
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        /// Keep data here instead of a throwaway directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// gRPC port of node 1; node i listens on base + i - 1.
        #[arg(long, default_value_t = DEFAULT_GRPC_PORT)]
        base_port: u16,
        /// SQL port of node 1; node i listens on base + i - 1.
        #[arg(long, default_value_t = DEFAULT_SQL_PORT)]
        sql_base_port: u16,
        /// A range larger than this many bytes splits in two (0: never).
        #[arg(long)]
        split_max_range_bytes: Option<u64>,
        /// A range serving more requests per second than this splits in two
        /// where its load divides (0: never).
        #[arg(long)]
        split_max_range_qps: Option<u64>,
        /// Seconds between lease and replica rebalancing looks (0: never).
        #[arg(long)]
        rebalance_interval_secs: Option<u64>,
        /// Threads of the runtime the nodes share for their network and
        /// reads [default: half the cores, at least one].
        #[arg(long)]
        io_threads: Option<usize>,
    },
    /// Debug KV client.
    Kv {
        /// gRPC address(es) of any node(s), comma-separated.
        #[arg(long, default_value = "127.0.0.1:7433", value_delimiter = ',')]
        host: Vec<String>,
        #[command(subcommand)]
        op: KvOp,
    },
    /// Cluster administration.
    Admin {
        /// gRPC address of a node.
        #[arg(long, default_value_t = format!("127.0.0.1:{DEFAULT_GRPC_PORT}"))]
        host: String,
        #[command(subcommand)]
        op: AdminOp,
    },
    /// Load generators.
    Bench {
        #[command(subcommand)]
        workload: BenchWorkload,
    },
}

#[derive(Args)]
struct StartArgs {
    /// TOML config file; flags override its values.
    #[arg(long)]
    config: Option<PathBuf>,
    /// This node's id (at least 1, unique in the cluster).
    #[arg(long)]
    node_id: Option<u64>,
    /// Data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// gRPC listen address.
    #[arg(long)]
    listen_addr: Option<String>,
    /// Address other nodes reach this one at.
    #[arg(long)]
    advertise_addr: Option<String>,
    /// gRPC addresses of the cluster's nodes, comma-separated.
    #[arg(long, value_delimiter = ',')]
    join: Option<Vec<String>>,
    /// Raft tick length in milliseconds.
    #[arg(long)]
    raft_tick_ms: Option<u64>,
    /// Applied log entries kept before compaction.
    #[arg(long)]
    raft_log_compact_threshold: Option<u64>,
    /// A range larger than this many bytes splits in two (0: never).
    #[arg(long)]
    split_max_range_bytes: Option<u64>,
    /// A range serving more requests per second than this splits in two
    /// where its load divides (0: never).
    #[arg(long)]
    split_max_range_qps: Option<u64>,
    /// Seconds between lease rebalancing looks (0: never).
    #[arg(long)]
    rebalance_interval_secs: Option<u64>,
    /// SQL (PostgreSQL wire protocol) listen address [default: 127.0.0.1:5433].
    #[arg(long)]
    sql_addr: Option<String>,
    /// SQL client authentication: trust, password, md5 or scram-sha-256.
    #[arg(long)]
    sql_auth: Option<String>,
    /// A SQL user and password, NAME=PASSWORD (repeatable; adds to the
    /// config file's sql_users).
    #[arg(long, value_name = "NAME=PASSWORD")]
    sql_user: Vec<String>,
    /// Threads of the runtime serving the node's network and reads
    /// [default: half the cores, at least one].
    #[arg(long)]
    io_threads: Option<usize>,
}

#[derive(Subcommand)]
enum KvOp {
    /// Read a key.
    Get { key: String },
    /// Write a key.
    Put { key: String, value: String },
    /// Delete a key.
    Delete { key: String },
    /// List keys in [start, end).
    Scan {
        #[arg(default_value = "")]
        start: String,
        #[arg(default_value = "")]
        end: String,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum AdminOp {
    /// The replicas on the node: range, span, leader, term, indexes.
    Ranges,
    /// The cluster's nodes: address, live or not, replicas and leases.
    Nodes,
    /// Moves a range's lease (its Raft leadership) to its replica on a node.
    TransferLease {
        /// The range id (`SHOW RANGES` lists them).
        #[arg(long)]
        range: u64,
        /// The node to hold the lease; it must hold a voting replica.
        #[arg(long)]
        to: u64,
        /// Print what would move, and do nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Splits the range holding a key so that a range starts at it.
    Split {
        /// The key, in hex (as `tessera admin ranges` shows range bounds).
        #[arg(long)]
        key: String,
        /// Print what would split, and do nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Merges a range with the range after it (their replicas are first
    /// moved onto the same nodes).
    Merge {
        /// The range id (`SHOW RANGES` lists them).
        #[arg(long)]
        range: u64,
        /// The range after it; refused unless the two are adjacent.
        #[arg(long)]
        with: Option<u64>,
        /// Print what would merge, and do nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Moves a range's voting replica from one node to another.
    Relocate {
        /// The range id.
        #[arg(long)]
        range: u64,
        /// The node whose replica moves.
        #[arg(long)]
        from: u64,
        /// The node it moves to: live, without a replica of the range.
        #[arg(long)]
        to: u64,
        /// Print what would move, and do nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Moves every replica off a node, so that it may leave the cluster.
    Decommission {
        /// The node to empty.
        #[arg(long)]
        node: u64,
        /// Print what would move where, and do nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum BenchWorkload {
    /// Replicated single-key puts.
    Kv(tessera_bench::kv::KvBenchArgs),
    /// pgbench's TPC-B-like transactions over SQL, optionally loading the
    /// pgbench tables first (--init).
    Tpcb(tessera_bench::sql::PgbenchArgs),
    /// pgbench's select-only transactions over SQL.
    Select(tessera_bench::sql::PgbenchArgs),
    /// Transactions from a pgbench-style script file over SQL.
    Custom(tessera_bench::sql::CustomArgs),
}

fn main() {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,raft=warn,h2=warn,tower=warn")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if let Err(err) = run(cli.command) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

/// More runtime threads than this is a typo, not a tuning.
const MAX_IO_THREADS: usize = 1024;

/// A runtime with `threads` worker threads (tokio's default, one per core,
/// for `None`).
fn runtime(threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = threads {
        anyhow::ensure!(
            threads <= MAX_IO_THREADS,
            "io_threads must be at most {MAX_IO_THREADS}, not {threads}"
        );
        builder.worker_threads(threads);
    }
    builder
        .enable_all()
        .build()
        .context("cannot start the runtime")
}

/// Runs a command on a runtime sized for it: a node's (or a demo's nodes')
/// runtime has its configured I/O threads; the client tools keep tokio's
/// default.
fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Start(args) => {
            let config = node_config(*args)?;
            runtime(Some(config.io_threads()))?.block_on(start(config))
        }
        Command::Demo {
            nodes,
            data_dir,
            base_port,
            sql_base_port,
            split_max_range_bytes,
            split_max_range_qps,
            rebalance_interval_secs,
            io_threads: configured_io_threads,
        } => {
            let tune = move |config: &mut NodeConfig| {
                if let Some(bytes) = split_max_range_bytes {
                    config.split.max_range_bytes = bytes;
                }
                if let Some(qps) = split_max_range_qps {
                    config.split.max_range_qps = qps;
                }
                if let Some(secs) = rebalance_interval_secs {
                    config.rebalance.interval_secs = secs;
                }
            };
            runtime(Some(io_threads(configured_io_threads.unwrap_or(0))))?.block_on(demo(
                nodes,
                data_dir,
                base_port,
                sql_base_port,
                tune,
            ))
        }
        Command::Init { host } => tool(init(&host)),
        Command::Kv { host, op } => tool(kv(host, op)),
        Command::Admin { host, op } => tool(admin(&host, op)),
        Command::Bench { workload } => match workload {
            BenchWorkload::Kv(args) => tool(tessera_bench::kv::run(args)),
            BenchWorkload::Tpcb(args) => tool(tessera_bench::sql::tpcb(args)),
            BenchWorkload::Select(args) => tool(tessera_bench::sql::select(args)),
            BenchWorkload::Custom(args) => tool(tessera_bench::sql::custom(args)),
        },
    }
}

/// Runs a client tool's command on a runtime of tokio's default size.
fn tool(command: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    runtime(None)?.block_on(command)
}

/// Waits for SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// The node's config: the file's, overridden by the flags.
fn node_config(args: StartArgs) -> anyhow::Result<NodeConfig> {
    let mut config = match &args.config {
        Some(path) => NodeConfig::load(path)?,
        None => NodeConfig::default(),
    };
    if let Some(v) = args.node_id {
        config.node_id = v;
    }
    if let Some(v) = args.data_dir {
        config.data_dir = v;
    }
    if let Some(v) = args.listen_addr {
        config.listen_addr = v;
    }
    if let Some(v) = args.advertise_addr {
        config.advertise_addr = Some(v);
    }
    if let Some(v) = args.join {
        config.join = v;
    }
    if let Some(v) = args.raft_tick_ms {
        config.raft.tick_interval_ms = v;
    }
    if let Some(v) = args.raft_log_compact_threshold {
        config.raft.log_compact_threshold = v;
    }
    if let Some(v) = args.split_max_range_qps {
        config.split.max_range_qps = v;
    }
    if let Some(v) = args.split_max_range_bytes {
        config.split.max_range_bytes = v;
    }
    if let Some(v) = args.rebalance_interval_secs {
        config.rebalance.interval_secs = v;
    }
    if let Some(v) = args.sql_addr {
        config.sql_addr = v;
    }
    if let Some(v) = args.sql_auth {
        config.sql_auth = v;
    }
    for user in args.sql_user {
        let Some((name, password)) = user.split_once('=') else {
            bail!("--sql-user takes NAME=PASSWORD, not {user:?}");
        };
        config
            .sql_users
            .insert(name.to_string(), password.to_string());
    }
    if let Some(v) = args.io_threads {
        config.io_threads = v;
    }
    Ok(config)
}

async fn start(config: NodeConfig) -> anyhow::Result<()> {
    let listener = bind(&config.listen_addr).await?;
    let node = Node::start(&config, listener).await?;
    tracing::info!(
        "SQL: psql \"postgresql://root@{}/{DEFAULT_DATABASE}\"",
        node.sql_address()
    );
    if node.store().cluster_id() == 0 {
        tracing::info!("waiting for `tessera init --host {}`", node.address());
    }
    let store = [node.store()];
    tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            node.shutdown().await;
            Ok(())
        }
        _ = store_stopped(&store) => {
            node.shutdown().await;
            bail!("{STORE_STOPPED}")
        }
    }
}

/// Why a node exits on its own: it fails stop rather than serve on.
const STORE_STOPPED: &str = "the store stopped on a storage failure (the log above says which); \
     the node exits rather than keep serving without it";

/// Returns once one of `stores` has stopped, which a running node's store
/// only does when its storage fails (a full disk, say): its replicas can
/// no longer write, so the node should exit where an operator or a
/// supervisor sees it, not linger answering every request with an error.
async fn store_stopped(stores: &[tessera_raft::StoreHandle]) {
    while stores.iter().all(|store| store.is_running()) {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Connects to a node's gRPC port.
async fn connect_node(host: &str) -> anyhow::Result<NodeClient<tonic::transport::Channel>> {
    tessera_kv::services::node_client(host)
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))
}

async fn init(host: &str) -> anyhow::Result<()> {
    let response = connect_node(host)
        .await?
        .bootstrap(tessera_proto::node::BootstrapRequest {})
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner();
    println!("cluster {:016x} bootstrapped", response.cluster_id);
    for node in &response.nodes {
        println!("  node {} at {}", node.node_id, node.address);
    }
    for range in &response.ranges {
        let nodes: Vec<String> = range
            .replicas
            .iter()
            .map(|r| r.node_id.to_string())
            .collect();
        println!("  range {} on nodes {}", range.range_id, nodes.join(","));
    }
    Ok(())
}

async fn demo(
    nodes: u64,
    data_dir: Option<PathBuf>,
    base_port: u16,
    sql_base_port: u16,
    tune: impl Fn(&mut NodeConfig),
) -> anyhow::Result<()> {
    if nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let (_temp, root) = match data_dir {
        Some(dir) => (None, dir),
        None => {
            let temp = tempfile::Builder::new().prefix("tessera-demo-").tempdir()?;
            let root = temp.path().to_path_buf();
            (Some(temp), root)
        }
    };
    let addresses: Vec<String> = (0..nodes)
        .map(|i| format!("127.0.0.1:{}", u64::from(base_port) + i))
        .collect();
    let mut running = Vec::new();
    for (i, address) in addresses.iter().enumerate() {
        let mut config = NodeConfig {
            node_id: i as u64 + 1,
            data_dir: root.join(format!("node{}", i + 1)),
            listen_addr: address.clone(),
            join: addresses.clone(),
            sql_addr: format!("127.0.0.1:{}", u64::from(sql_base_port) + i as u64),
            ..Default::default()
        };
        tune(&mut config);
        let listener = bind(address).await.context("try another --base-port")?;
        running.push(Node::start(&config, listener).await?);
    }
    if running[0].store().cluster_id() == 0 {
        init(&addresses[0]).await?;
    }
    println!();
    println!("Tessera demo: {nodes} node(s), data in {}", root.display());
    for (i, (address, node)) in addresses.iter().zip(&running).enumerate() {
        println!(
            "  node {}: gRPC {address}, SQL {}",
            i + 1,
            node.sql_address()
        );
    }
    println!();
    println!("Connect with psql (any node):");
    println!(
        "  psql \"postgresql://root@{}/{DEFAULT_DATABASE}\"",
        running[0].sql_address()
    );
    println!();
    println!("Try:");
    println!("  tessera kv --host {} put hello world", addresses[0]);
    println!(
        "  tessera kv --host {} get hello",
        addresses[addresses.len() - 1]
    );
    println!("  tessera admin --host {} ranges", addresses[0]);
    println!();
    println!("Ctrl-C stops the cluster.");
    let stores: Vec<_> = running.iter().map(|node| node.store()).collect();
    let failed = tokio::select! {
        _ = shutdown_signal() => false,
        _ = store_stopped(&stores) => true,
    };
    println!("stopping");
    // All at once: each waits a few seconds for its gRPC server, whose
    // streams from the other nodes stay open until the process exits.
    let stopping: Vec<_> = running
        .into_iter()
        .map(|node| tokio::spawn(node.shutdown()))
        .collect();
    for node in stopping {
        let _ = node.await;
    }
    if failed {
        bail!("{STORE_STOPPED}");
    }
    Ok(())
}

fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

async fn kv(hosts: Vec<String>, op: KvOp) -> anyhow::Result<()> {
    let client = KvClient::new(hosts, KvClientConfig::default());
    match op {
        KvOp::Get { key } => match client.get(key.as_bytes()).await? {
            Some(value) => println!("{}", show(&value)),
            None => bail!("key {key:?} not found"),
        },
        KvOp::Put { key, value } => {
            client.put(key.as_bytes(), value.as_bytes()).await?;
            println!("OK");
        }
        KvOp::Delete { key } => {
            client.delete(key.as_bytes()).await?;
            println!("OK");
        }
        KvOp::Scan { start, end, limit } => {
            let start = if start.is_empty() {
                tessera_types::keys::USER_MIN.to_vec()
            } else {
                start.into_bytes()
            };
            for (key, value) in client.scan(&start, end.as_bytes(), limit).await? {
                println!("{} = {}", show(&key), show(&value));
            }
        }
    }
    Ok(())
}

/// The nodes of a range's replicas, as `n1,n2,n3`.
fn replica_nodes(d: &tessera_proto::meta::RangeDescriptor) -> String {
    d.replicas
        .iter()
        .map(|r| format!("n{}", r.node_id))
        .collect::<Vec<_>>()
        .join(",")
}

/// One line of a range's bounds.
fn range_line(d: &tessera_proto::meta::RangeDescriptor) -> String {
    let end = if d.end_key.is_empty() {
        "<end>".to_string()
    } else {
        hex(&d.end_key)
    };
    format!(
        "range {} [{}, {end}) on {}",
        d.range_id,
        hex(&d.start_key),
        replica_nodes(d)
    )
}

fn hex(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(text: &str) -> anyhow::Result<Vec<u8>> {
    let text = text.trim_start_matches("0x");
    anyhow::ensure!(
        text.len().is_multiple_of(2) && !text.is_empty(),
        "a key is an even number of hex digits"
    );
    (0..text.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&text[i..i + 2], 16).map_err(|e| anyhow::anyhow!("{text}: {e}"))
        })
        .collect()
}

async fn admin(host: &str, op: AdminOp) -> anyhow::Result<()> {
    let client = || {
        TxnClient::new(
            KvClient::new(vec![host.to_string()], KvClientConfig::default()),
            TxnOptions::default(),
        )
    };
    match op {
        AdminOp::Split { key, dry_run } => {
            let key = parse_hex(&key)?;
            let client = client();
            let range = client
                .ranges()
                .await?
                .into_iter()
                .find(|d| tessera_types::keys::span_contains(&d.start_key, &d.end_key, &key))
                .ok_or_else(|| anyhow::anyhow!("no range holds key {}", hex(&key)))?;
            anyhow::ensure!(
                range.start_key != key,
                "{}: a range already starts at {}",
                range_line(&range),
                hex(&key)
            );
            println!("{}: splits at {}", range_line(&range), hex(&key));
            if dry_run {
                println!("dry run: nothing split");
            } else {
                client.split(&key).await?;
                println!("split");
            }
        }
        AdminOp::Merge {
            range,
            with,
            dry_run,
        } => {
            let client = client();
            let left = client.range(range).await?;
            let right = client
                .ranges()
                .await?
                .into_iter()
                .find(|d| !left.end_key.is_empty() && d.start_key == left.end_key)
                .ok_or_else(|| {
                    anyhow::anyhow!("range {range} is the last range: nothing follows it")
                })?;
            if let Some(with) = with {
                client.range(with).await?;
                anyhow::ensure!(
                    with == right.range_id,
                    "ranges {range} and {with} are not adjacent: range {} follows range {range}",
                    right.range_id
                );
            }
            println!("{}\n{}", range_line(&left), range_line(&right));
            if dry_run {
                println!(
                    "dry run: range {} would merge into range {range}",
                    right.range_id
                );
            } else {
                let started = std::time::Instant::now();
                let merged = client.merge_ranges(range, Some(right.range_id)).await?;
                println!(
                    "merged in {:.2?}: {}",
                    started.elapsed(),
                    range_line(&merged)
                );
            }
        }
        AdminOp::Relocate {
            range,
            from,
            to,
            dry_run,
        } => {
            let client = client();
            let d = client.range(range).await?;
            println!("{}: n{from} -> n{to}", range_line(&d));
            if dry_run {
                println!("dry run: nothing moved");
            } else {
                let started = std::time::Instant::now();
                let moved = client.relocate_voter(range, from, to).await?;
                println!("moved in {:.2?}: {}", started.elapsed(), range_line(&moved));
            }
        }
        AdminOp::Decommission { node, dry_run } => {
            let client = client();
            let plan = client.drain_plan(node).await?;
            if plan.is_empty() {
                if !dry_run {
                    client.decommission(node).await?;
                }
                println!("node {node} holds no replicas: it may leave");
                return Ok(());
            }
            for (range, to) in &plan {
                println!("{}: n{node} -> n{to}", range_line(range));
            }
            if dry_run {
                println!("dry run: nothing moved ({} replicas would)", plan.len());
                return Ok(());
            }
            client.decommission(node).await?;
            println!("node {node} is decommissioned: it gets no new replicas");
            // The ranges' sizes, as their leaders last measured them.
            let starts: Vec<Vec<u8>> = plan.iter().map(|(d, _)| d.start_key.clone()).collect();
            let sizes: Vec<(u64, u64)> = client
                .range_statuses(&starts)
                .await
                .into_iter()
                .map(|s| s.map_or((0, 0), |s| (s.size_bytes, s.keys)))
                .collect();
            let (total_bytes, total_keys) = sizes
                .iter()
                .fold((0, 0), |(b, k), (rb, rk)| (b + rb, k + rk));
            let (mut bytes, mut keys) = (0u64, 0u64);
            let total = plan.len();
            for (i, ((range, to), (range_bytes, range_keys))) in
                plan.into_iter().zip(sizes).enumerate()
            {
                let started = std::time::Instant::now();
                client.relocate_voter(range.range_id, node, to).await?;
                bytes += range_bytes;
                keys += range_keys;
                let done = (bytes * 20)
                    .checked_div(total_bytes)
                    .map_or((i + 1) * 20 / total, |d| d as usize);
                println!(
                    "[{}{}] {}/{total} ranges, {bytes} of {total_bytes} bytes, {keys} of {total_keys} keys: \
                     range {} moved to n{to} in {:.2?}",
                    "#".repeat(done),
                    "-".repeat(20 - done),
                    i + 1,
                    range.range_id,
                    started.elapsed()
                );
            }
            println!("node {node} holds no replicas: it may leave once it has removed them");
        }
        AdminOp::Ranges => {
            let response = connect_node(host)
                .await?
                .ranges(tessera_proto::node::RangesRequest {})
                .await
                .map_err(|s| anyhow::anyhow!("{}", s.message()))?
                .into_inner();
            println!("node {}", response.node_id);
            println!(
                "{:>6}  {:<20} {:<20} {:>8} {:>6} {:>6} {:>8} {:>8}  replicas",
                "range", "start", "end", "role", "leader", "term", "commit", "applied"
            );
            for r in response.replicas {
                let (start, end, replicas) = match &r.descriptor {
                    Some(d) => (
                        hex(&d.start_key),
                        if d.end_key.is_empty() {
                            "<end>".to_string()
                        } else {
                            hex(&d.end_key)
                        },
                        d.replicas
                            .iter()
                            .map(|r| format!("n{}", r.node_id))
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                    None => ("?".into(), "?".into(), "?".into()),
                };
                let role = if r.is_leader { "leader" } else { "follower" };
                let start = if start.is_empty() {
                    "<start>".to_string()
                } else {
                    start
                };
                let leader = match r.leader_node_id {
                    0 => "-".to_string(),
                    n => format!("n{n}"),
                };
                println!(
                    "{:>6}  {:<20} {:<20} {:>8} {:>6} {:>6} {:>8} {:>8}  {}",
                    r.descriptor.as_ref().map_or(0, |d| d.range_id),
                    start,
                    end,
                    role,
                    leader,
                    r.term,
                    r.commit_index,
                    r.applied_index,
                    replicas
                );
            }
        }
        AdminOp::Nodes => {
            let client = client();
            println!(
                "{:>5}  {:<22} {:>5} {:>8} {:>6}",
                "node", "address", "live", "replicas", "leases"
            );
            for node in client.nodes().await? {
                let count = |c: Option<usize>| c.map_or("-".to_string(), |c| c.to_string());
                println!(
                    "{:>5}  {:<22} {:>5} {:>8} {:>6}",
                    node.node_id,
                    node.address,
                    if node.live { "yes" } else { "no" },
                    count(node.replicas),
                    count(node.leases)
                );
            }
        }
        AdminOp::TransferLease { range, to, dry_run } => {
            let client = client();
            let descriptor = client
                .ranges()
                .await?
                .into_iter()
                .find(|d| d.range_id == range)
                .ok_or_else(|| anyhow::anyhow!("range {range} does not exist"))?;
            let holder = client
                .lease_holders(std::slice::from_ref(&descriptor.start_key))
                .await
                .pop()
                .flatten();
            let holder = holder.map_or("none".to_string(), |n| format!("n{n}"));
            let replicas: Vec<String> = descriptor
                .replicas
                .iter()
                .map(|r| format!("n{}", r.node_id))
                .collect();
            println!(
                "range {range} (replicas {}): lease {holder} -> n{to}",
                replicas.join(",")
            );
            if dry_run {
                println!("dry run: nothing moved");
            } else {
                client.transfer_lease(range, to).await?;
                println!("n{to} holds the lease of range {range}");
            }
        }
    }
    Ok(())
}
