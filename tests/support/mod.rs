//! What the SQL test binaries (`sqllogictest`, `differential`, `drivers`,
//! `bad_input`) share: the servers they talk to, started once per binary and
//! stopped when it ends, tokio-postgres connections, fresh databases, and a
//! libtest-compatible main (`cargo test -- <filter>`, `--test-threads`).
//!
//! These binaries are `harness = false` so that one cluster serves every test
//! in the binary and is killed when the run ends: a static cannot own child
//! processes past `main`, and the standard harness gives no hook after the
//! last test.

// Each binary uses a different part of this module.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use sqllogictest::harness::{Arguments, Failed, Trial};
use tessera_e2e::pg::Postgres;
use tessera_e2e::Cluster;
use tokio_postgres::{Client, Config, NoTls};

/// Nodes in the cluster the SQL suites run on.
pub const CLUSTER_NODES: usize = 3;

/// Database every Tessera cluster has.
pub const TESSERA_DATABASE: &str = "tessera";

/// A SQL server the tests connect to.
pub struct Target {
    /// `tessera` or `postgres`, also a `skipif`/`onlyif` label.
    pub kind: TargetKind,
    /// For notices: which server this is.
    pub description: String,
    /// One connection config per entry point (every node of a Tessera
    /// cluster), all on the maintenance database.
    pub entry_points: Vec<Config>,
    /// The gRPC addresses of a Tessera cluster's nodes (empty for
    /// PostgreSQL), for checks below SQL.
    pub grpc: Vec<String>,
}

/// What kind of server a [`Target`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    Tessera,
    Postgres,
}

impl Target {
    /// Is this a Tessera cluster?
    pub fn is_tessera(&self) -> bool {
        self.kind == TargetKind::Tessera
    }

    /// The config of entry point `i` (wrapping around), on the maintenance
    /// database.
    pub fn entry_point(&self, i: usize) -> Config {
        self.entry_points[i % self.entry_points.len()].clone()
    }

    /// Creates the database `name` (dropping one left by an earlier run) and
    /// returns a config for it through entry point `i`.
    pub async fn fresh_database(&self, name: &str, i: usize) -> Result<Config, String> {
        let admin = self.entry_point(i);
        let client = connect(&admin).await?;
        // Best effort: a database of this name left by an earlier run against
        // a long-lived server.
        let _ = client
            .simple_query(&format!("DROP DATABASE IF EXISTS {name}"))
            .await;
        client
            .simple_query(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| format!("CREATE DATABASE {name}: {}", error_text(&e)))?;
        let mut config = admin;
        config.dbname(name);
        Ok(config)
    }

    /// Drops the database `name`, best effort (the server may not support
    /// it, or a connection may linger).
    pub async fn drop_database(&self, name: &str) {
        if let Ok(client) = connect(&self.entry_point(0)).await {
            let force = if self.is_tessera() {
                ""
            } else {
                " WITH (FORCE)"
            };
            let _ = client
                .simple_query(&format!("DROP DATABASE IF EXISTS {name}{force}"))
                .await;
        }
    }
}

/// Servers this process started, stopped by [`run_trials`] at the end.
static OWNED: Mutex<Vec<Owned>> = Mutex::new(Vec::new());

enum Owned {
    Cluster(Cluster),
    Postgres(Postgres),
}

/// The Tessera cluster of this binary, started on first use.
pub fn tessera() -> Result<&'static Target, String> {
    static TESSERA: OnceLock<Result<Target, String>> = OnceLock::new();
    TESSERA
        .get_or_init(|| {
            let started = Instant::now();
            let cluster = runtime()
                .block_on(async {
                    let cluster = Cluster::start(CLUSTER_NODES).await?;
                    for address in cluster.sql_addresses() {
                        let config = tessera_config(&address);
                        if let Err(err) = wait_for_sql(&config, Duration::from_secs(60)).await {
                            anyhow::bail!("{err}\n{}", cluster.log_tails(40));
                        }
                    }
                    Ok(cluster)
                })
                .map_err(|e| format!("cannot start a Tessera cluster: {e:#}"))?;
            let target = Target {
                kind: TargetKind::Tessera,
                description: format!(
                    "{CLUSTER_NODES}-node Tessera cluster (SQL on {}; data and logs in {}), \
                     up in {:.1?}",
                    cluster.sql_addresses().join(", "),
                    cluster.dir().display(),
                    started.elapsed()
                ),
                entry_points: cluster
                    .sql_addresses()
                    .iter()
                    .map(|a| tessera_config(a))
                    .collect(),
                grpc: cluster.addresses(),
            };
            println!("using {}", target.description);
            OWNED.lock().unwrap().push(Owned::Cluster(cluster));
            Ok(target)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The PostgreSQL server of this binary (`TESSERA_PG_URL`, or a throwaway
/// one started on first use). `Err` says why there is none.
pub fn postgres() -> Result<&'static Target, String> {
    static POSTGRES: OnceLock<Result<Target, String>> = OnceLock::new();
    POSTGRES
        .get_or_init(|| {
            let server = Postgres::from_env_or_start()?;
            let target = postgres_target(&server.url, server.description.clone())?;
            runtime().block_on(wait_for_sql(
                &target.entry_points[0],
                Duration::from_secs(30),
            ))?;
            println!("using {}", target.description);
            OWNED.lock().unwrap().push(Owned::Postgres(server));
            Ok(target)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The server named by the environment variable `var`: unset or `tessera`
/// for this binary's Tessera cluster, `postgres` for a throwaway PostgreSQL
/// (or the one in `TESSERA_PG_URL`), or a `postgres://` URL.
pub fn target_from_env(var: &str) -> Result<&'static Target, String> {
    let value = std::env::var(var).unwrap_or_default();
    match value.as_str() {
        "" | "tessera" => tessera(),
        "postgres" | "postgresql" | "pg" => postgres(),
        url => {
            static URL: OnceLock<Result<Target, String>> = OnceLock::new();
            URL.get_or_init(|| {
                let target = postgres_target(url, format!("PostgreSQL at {var}={url}"))?;
                println!("using {}", target.description);
                Ok(target)
            })
            .as_ref()
            .map_err(Clone::clone)
        }
    }
}

fn postgres_target(url: &str, description: String) -> Result<Target, String> {
    let mut config: Config = url
        .parse()
        .map_err(|e| format!("bad PostgreSQL URL {url}: {e}"))?;
    if config.get_user().is_none() {
        config.user("postgres");
    }
    if config.get_dbname().is_none() {
        config.dbname("postgres");
    }
    config.connect_timeout(Duration::from_secs(10));
    Ok(Target {
        kind: TargetKind::Postgres,
        description,
        entry_points: vec![config],
        grpc: Vec::new(),
    })
}

fn tessera_config(address: &str) -> Config {
    let (host, port) = address.rsplit_once(':').expect("host:port");
    let mut config = Config::new();
    config
        .host(host)
        .port(port.parse().expect("port"))
        .user("tessera")
        .dbname(TESSERA_DATABASE)
        .application_name("tessera-e2e")
        .connect_timeout(Duration::from_secs(10));
    config
}

/// Waits until `SELECT 1` answers through `config`.
pub async fn wait_for_sql(config: &Config, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let err = match connect(config).await {
            Ok(client) => match client.simple_query("SELECT 1").await {
                Ok(_) => return Ok(()),
                Err(e) => error_text(&e),
            },
            Err(e) => e,
        };
        if Instant::now() > deadline {
            return Err(format!("SQL not ready at {:?}: {err}", config.get_hosts()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Connects, driving the connection on the current tokio runtime.
pub async fn connect(config: &Config) -> Result<Client, String> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| format!("connect to {:?}: {}", config.get_hosts(), error_text(&e)))?;
    tokio::spawn(async move {
        // Errors surface on the client's next call.
        let _ = connection.await;
    });
    Ok(client)
}

/// This test package's directory as cargo gives it when it runs the test.
/// The path compiled into the binary is that of the checkout that built it,
/// which may be another one when checkouts share a build directory.
pub fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}

/// A runtime for one test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// An error as text: for server errors `SQLSTATE: severity: message`, for
/// the rest the whole source chain (tokio-postgres's own `Display` says only
/// "db error").
pub fn error_text(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        return format!("{}: {}", db.code().code(), db);
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// The SQLSTATE of a server error.
pub fn sqlstate(err: &tokio_postgres::Error) -> Option<String> {
    err.code().map(|c| c.code().to_string())
}

/// A database name that no other test of this run uses: `prefix` (made an
/// identifier), this process's id, and a counter.
pub fn unique_database(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let mut name: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    name.truncate(40);
    format!(
        "{name}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `trials` like libtest (`cargo test -- <filter>` selects by name),
/// then stops every server this binary started, then exits.
pub fn run_trials(trials: Vec<Trial>) -> ! {
    let args = Arguments::from_args();
    let conclusion = sqllogictest::harness::run(&args, trials);
    // Kill the clusters and PostgreSQL servers before exiting: nothing else
    // would.
    OWNED.lock().unwrap_or_else(|p| p.into_inner()).clear();
    conclusion.exit()
}

/// A trial from a test function, with the panic-free `Result<(), String>`
/// convention used by the async tests here. A failure keeps this binary's
/// Tessera cluster for a post-mortem and carries the nodes' last warnings.
pub fn trial(name: &str, test: impl FnOnce() -> Result<(), String> + Send + 'static) -> Trial {
    Trial::test(name, move || {
        test().map_err(|err| {
            let mut owned = OWNED.lock().unwrap_or_else(|p| p.into_inner());
            let notes: Vec<String> = owned
                .iter_mut()
                .filter_map(|server| match server {
                    Owned::Cluster(cluster) => Some(cluster.keep_for_post_mortem(20)),
                    Owned::Postgres(_) => None,
                })
                .collect();
            Failed::from(format!("{err}\n{}", notes.join("")))
        })
    })
}
