//! A run: clients, each with its own connection, run a script as
//! transactions until the duration has passed or each has run its count.
//!
//! Every run of the script is one transaction. A statement failing with a
//! serialization failure (40001) or a deadlock (40P01) rolls the transaction
//! back and runs it again, with the same variable values, up to `--max-tries`
//! tries in all; then it counts as failed. Any other error stops the run. With
//! `--rate`, each client starts its transactions on a Poisson schedule, and a
//! transaction's latency counts from its scheduled start, as pgbench's does,
//! so that a server falling behind shows in the latencies rather than slowing
//! the load down.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context, Result};
use bytes::{BufMut, BytesMut};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{to_sql_checked, Format, IsNull, ToSql, Type};
use tokio_postgres::{Config, NoTls};

use super::script::{Command, Script, Statement};
use crate::report::{Progress, ProgressLine, Report};

/// How statements are sent.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryMode {
    /// Prepared once per connection, then bound to the variables' values
    /// and executed (the extended query protocol).
    Prepared,
    /// As text with the values written in (the simple query protocol).
    Simple,
}

impl fmt::Display for QueryMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QueryMode::Prepared => "prepared",
            QueryMode::Simple => "simple",
        })
    }
}

/// The options of every SQL workload.
#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// The server: a postgresql:// URL or libpq-style "host=... port=..."
    /// conninfo.
    #[arg(long, default_value = "postgresql://root@127.0.0.1:5433/tessera")]
    pub url: String,
    /// Concurrent clients, one connection each.
    #[arg(short = 'c', long, default_value_t = 8)]
    pub clients: usize,
    /// Seconds to run.
    #[arg(short = 'T', long, default_value_t = 10)]
    pub duration: u64,
    /// Transactions per client, instead of a duration.
    #[arg(short = 't', long, conflicts_with = "duration")]
    pub transactions: Option<u64>,
    /// Target transactions per second over all clients; latencies then count
    /// from each transaction's scheduled start.
    #[arg(short = 'R', long)]
    pub rate: Option<f64>,
    /// Tries of a transaction that fails with a serialization failure or a
    /// deadlock (40001, 40P01) before it counts as failed.
    #[arg(long, default_value_t = 10)]
    pub max_tries: u32,
    /// How statements are sent.
    #[arg(long, value_enum, default_value_t = QueryMode::Prepared)]
    pub mode: QueryMode,
    /// Print the final report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// No progress lines on stderr.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// The connection options of `--url`.
pub(super) fn config(url: &str) -> Result<Config> {
    let mut config: Config = url
        .parse()
        .with_context(|| format!("--url {url:?} is neither a postgresql:// URL nor conninfo"))?;
    if config.get_user().is_none() {
        // libpq's default, which tokio-postgres does not have.
        if let Ok(user) = std::env::var("PGUSER").or_else(|_| std::env::var("USER")) {
            config.user(user);
        }
    }
    if config.get_connect_timeout().is_none() {
        // An unreachable server should fail the run, not hang it.
        config.connect_timeout(Duration::from_secs(10));
    }
    Ok(config)
}

/// Opens a connection, driving it on its own task.
pub(super) async fn connect(config: &Config) -> Result<tokio_postgres::Client> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .with_context(|| format!("cannot connect to {}", describe(config)))?;
    tokio::spawn(async move {
        // The client's next request fails with "connection closed"; this
        // says why.
        if let Err(err) = connection.await {
            tracing::warn!("bench connection lost: {err}");
        }
    });
    Ok(client)
}

/// Where a configuration connects, for messages (without the password).
fn describe(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "host={} port={} user={} dbname={}",
        hosts.join(","),
        if ports.is_empty() {
            "5432".into()
        } else {
            ports.join(",")
        },
        config.get_user().unwrap_or("?"),
        config.get_dbname().unwrap_or("(the user's)"),
    )
}

/// `statement "..." failed: ERROR 42P01: ...`, the statement shortened to a
/// line.
pub(super) fn statement_failed(sql: &str, err: &tokio_postgres::Error) -> anyhow::Error {
    let mut shown = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some((cut, _)) = shown.char_indices().nth(80) {
        shown.truncate(cut);
        shown.push_str(" ...");
    }
    let why = match err.as_db_error() {
        Some(db) => {
            let mut why = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
            if let Some(detail) = db.detail() {
                why.push_str(&format!(" ({detail})"));
            }
            why
        }
        None => {
            // tokio-postgres's message leaves its cause out, e.g. which
            // parameter value did not fit.
            let mut why = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(cause) = source {
                why.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            why
        }
    };
    anyhow!("statement \"{shown}\" failed: {why}")
}

/// A script statement's failure, located in the script.
fn script_failure(
    script: &Script,
    statement: &Statement,
    err: &tokio_postgres::Error,
) -> anyhow::Error {
    statement_failed(statement.text(), err).context(format!(
        "{}:{}",
        script.name(),
        statement.line()
    ))
}

/// Runs the script on `args.clients` connections and prints the report.
pub(super) async fn run(config: &Config, script: Script, scale: u32, args: &RunArgs) -> Result<()> {
    ensure!(args.clients >= 1, "--clients must be at least 1");
    ensure!(args.max_tries >= 1, "--max-tries must be at least 1");
    ensure!(
        args.transactions != Some(0),
        "--transactions must be at least 1"
    );
    ensure!(
        args.rate.is_none_or(|rate| rate > 0.0 && rate.is_finite()),
        "--rate must be above 0"
    );
    let mut sessions = Vec::new();
    for id in 0..args.clients {
        sessions.push(Session::open(config, &script, args.mode, id));
    }
    let sessions = futures::future::try_join_all(sessions).await?;

    let workload = format!(
        "{} scale={scale} clients={} mode={}",
        script.name(),
        args.clients,
        args.mode
    );
    let progress = Progress::new();
    let line = (!args.quiet).then(|| ProgressLine::start(progress.clone(), "tps"));
    let started = Instant::now();
    let plan = Arc::new(Plan {
        script,
        scale: i64::from(scale),
        mode: args.mode,
        max_tries: args.max_tries,
        end: match args.transactions {
            Some(count) => End::Count(count),
            None => End::Deadline(started + Duration::from_secs(args.duration)),
        },
        client_rate: args.rate.map(|rate| rate / args.clients as f64),
    });
    let mut clients = JoinSet::new();
    for session in sessions {
        clients.spawn(session.run(plan.clone(), progress.clone()));
    }
    let mut tally = Tally::default();
    while let Some(client) = clients.join_next().await {
        // Returning drops the other clients' tasks, which aborts them.
        let client = client.map_err(|err| anyhow!("a client stopped: {err}"))??;
        tally.retried += client.retried;
        tally.retries += client.retries;
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(line);

    let report = Report {
        workload,
        latencies: progress.latencies(),
        seconds,
        failed: progress.failed(),
        retried: tally.retried,
        retries: tally.retries,
    };
    if args.json {
        println!("{}", report.json()?);
    } else {
        println!("{}", report.text());
    }
    Ok(())
}

/// What every client runs, and until when.
struct Plan {
    script: Script,
    scale: i64,
    mode: QueryMode,
    max_tries: u32,
    end: End,
    /// Mean transactions per second of one client, when throttled.
    client_rate: Option<f64>,
}

/// When a client stops starting transactions.
enum End {
    /// After this many.
    Count(u64),
    /// At this time.
    Deadline(Instant),
}

/// A client's retries.
#[derive(Default)]
struct Tally {
    /// Transactions tried more than once.
    retried: u64,
    /// Tries beyond the first.
    retries: u64,
}

/// One client's connection, and its prepared statements.
struct Session {
    /// The client's number, from 0: the script's `client_id`.
    id: usize,
    client: tokio_postgres::Client,
    /// In prepared mode, the script's statements by index.
    prepared: Vec<tokio_postgres::Statement>,
}

impl Session {
    /// Connects and, in prepared mode, prepares the script's statements:
    /// one that the server refuses fails the run before it starts.
    async fn open(config: &Config, script: &Script, mode: QueryMode, id: usize) -> Result<Self> {
        let client = connect(config).await?;
        let mut prepared = Vec::new();
        if mode == QueryMode::Prepared {
            for statement in script.statements() {
                let sql = statement.with_parameters();
                let prepared_statement = client
                    .prepare(&sql)
                    .await
                    .map_err(|err| script_failure(script, statement, &err))?;
                prepared.push(prepared_statement);
            }
        }
        Ok(Self {
            id,
            client,
            prepared,
        })
    }

    /// Runs transactions until the plan's end.
    async fn run(self, plan: Arc<Plan>, progress: Arc<Progress>) -> Result<Tally> {
        let mut rng = SmallRng::from_entropy();
        let mut tally = Tally::default();
        let mut started = 0;
        let mut scheduled = Instant::now();
        loop {
            scheduled = match plan.client_rate {
                // Exponential gaps make the starts a Poisson process, as
                // pgbench's --rate does.
                Some(rate) => {
                    let uniform: f64 = rng.gen();
                    scheduled + Duration::from_secs_f64(-(1.0 - uniform).ln() / rate)
                }
                None => Instant::now(),
            };
            let done = match plan.end {
                End::Count(count) => started >= count,
                // A client behind its schedule stops at the deadline too,
                // leaving its backlog.
                End::Deadline(deadline) => scheduled.max(Instant::now()) >= deadline,
            };
            if done {
                return Ok(tally);
            }
            // The timer rounds up to whole milliseconds even for a start
            // that has come: sleeping then would cap a client near 1,000 tps.
            if scheduled > Instant::now() {
                tokio::time::sleep_until(scheduled.into()).await;
            }
            started += 1;
            let outcome = self.transaction(&plan, rng.gen()).await?;
            if outcome.committed {
                progress.record(scheduled.elapsed());
            } else {
                progress.record_failure();
            }
            if outcome.tries > 1 {
                tally.retried += 1;
                tally.retries += u64::from(outcome.tries - 1);
            }
        }
    }

    /// Runs one transaction, again after each serialization failure or
    /// deadlock, up to the plan's tries.
    async fn transaction(&self, plan: &Plan, seed: u64) -> Result<Outcome> {
        for tries in 1..=plan.max_tries {
            if self.attempt(plan, seed).await? {
                return Ok(Outcome {
                    committed: true,
                    tries,
                });
            }
            // End the failed transaction, if one is open. Outside a
            // transaction block ROLLBACK only warns (or, on a server that
            // makes it an error, fails harmlessly); a connection that broke
            // shows in the next try's error.
            let _ = self.client.batch_execute("ROLLBACK").await;
        }
        Ok(Outcome {
            committed: false,
            tries: plan.max_tries,
        })
    }

    /// Runs the script once: true if it completed, false if a statement
    /// failed with a serialization failure or a deadlock.
    async fn attempt(&self, plan: &Plan, seed: u64) -> Result<bool> {
        let script = &plan.script;
        // The same seed on every try: a retry runs the same transaction.
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut variables = script.variables(plan.scale, self.id as i64);
        for command in script.commands() {
            let statement = match command {
                Command::Set(assignment) => {
                    assignment
                        .apply(&mut variables, &mut rng)
                        .with_context(|| format!("{}:{}", script.name(), assignment.line()))?;
                    continue;
                }
                Command::Sql(statement) => statement,
            };
            let result = match plan.mode {
                QueryMode::Prepared => {
                    let arguments: Vec<Argument> = statement
                        .arguments(&variables)
                        .into_iter()
                        .map(Argument)
                        .collect();
                    let prepared = &self.prepared[statement.index()];
                    self.client
                        .execute_raw(prepared, arguments.iter())
                        .await
                        .map(drop)
                }
                QueryMode::Simple => {
                    self.client
                        .batch_execute(&statement.with_literals(&variables))
                        .await
                }
            };
            match result {
                Ok(()) => {}
                Err(err)
                    if err.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
                        || err.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED) =>
                {
                    return Ok(false)
                }
                Err(err) => return Err(script_failure(script, statement, &err)),
            }
        }
        Ok(true)
    }
}

/// How a transaction ended.
struct Outcome {
    /// Whether it committed; if not, it failed for good.
    committed: bool,
    /// Tries it took, from 1.
    tries: u32,
}

/// A variable's value bound to a parameter of the type the server asked for:
/// binary for the integer and floating-point types, and text for the others
/// (numeric, text, ...), which the server reads as it would a literal, as it
/// reads pgbench's parameters, all text.
#[derive(Debug)]
struct Argument(i64);

impl ToSql for Argument {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let out_of_range = || format!("{} is out of range for {ty}", self.0);
        match *ty {
            Type::INT2 => i16::try_from(self.0)
                .map_err(|_| out_of_range())?
                .to_sql(ty, out),
            Type::INT4 => i32::try_from(self.0)
                .map_err(|_| out_of_range())?
                .to_sql(ty, out),
            Type::INT8 => self.0.to_sql(ty, out),
            Type::FLOAT4 => (self.0 as f32).to_sql(ty, out),
            Type::FLOAT8 => (self.0 as f64).to_sql(ty, out),
            _ => {
                out.put_slice(self.0.to_string().as_bytes());
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(_: &Type) -> bool {
        // Every type: those without a binary encoding here go as text.
        true
    }

    fn encode_format(&self, ty: &Type) -> Format {
        match *ty {
            Type::INT2 | Type::INT4 | Type::INT8 | Type::FLOAT4 | Type::FLOAT8 => Format::Binary,
            _ => Format::Text,
        }
    }

    to_sql_checked!();
}
