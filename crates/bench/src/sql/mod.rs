//! pgbench-like SQL load over the PostgreSQL wire protocol: `tessera bench
//! tpcb`, `select` and `custom`.
//!
//! Every workload is a script in pgbench's language (`script`): the built-in
//! ones are pgbench's TPC-B-like and select-only scripts, over pgbench's
//! tables (`tpcb`, which also creates and loads them); a custom one is read
//! from a file. A run (`run`) then:
//!
//! 1. opens one connection per client and, in prepared mode, prepares the
//!    script's statements on each, so that a statement the server refuses
//!    fails before the clock starts;
//! 2. has every client run the script as one transaction after another
//!    until the duration has passed or it has run its count, on a schedule
//!    under `--rate`, retrying serialization failures and deadlocks; any
//!    other error stops the run, naming the statement;
//! 3. prints a progress line every second, and at the end a report of
//!    hdrhistogram latency percentiles (`crate::report`).

mod run;
mod script;
mod tpcb;

use std::path::PathBuf;

use anyhow::{Context, Result};

pub use run::{QueryMode, RunArgs};
use script::Script;

/// `tessera bench tpcb` and `tessera bench select` options.
#[derive(clap::Args, Clone, Debug)]
pub struct PgbenchArgs {
    /// Scale factor: 1 branch, 10 tellers and 100,000 accounts per unit.
    /// Without --init, the loaded tables' scale is used. [default: 1]
    #[arg(short = 's', long)]
    pub scale: Option<u32>,
    /// Drop, create and load the pgbench tables before the run.
    #[arg(short = 'i', long)]
    pub init: bool,
    /// Drop, create and load the pgbench tables, and run nothing.
    #[arg(long)]
    pub init_only: bool,
    /// How the run goes.
    #[command(flatten)]
    pub run: RunArgs,
}

/// `tessera bench custom` options.
#[derive(clap::Args, Clone, Debug)]
pub struct CustomArgs {
    /// The transaction: a pgbench-style script of `\set name expression`
    /// lines and SQL statements ending with `;`, using `:name` variables.
    #[arg(short = 'f', long)]
    pub file: PathBuf,
    /// The value of the script's `:scale` variable.
    #[arg(short = 's', long, default_value_t = 1)]
    pub scale: u32,
    /// How the run goes.
    #[command(flatten)]
    pub run: RunArgs,
}

/// pgbench's TPC-B-like transaction: three balance updates, a read and a
/// history insert.
pub async fn tpcb(args: PgbenchArgs) -> Result<()> {
    pgbench("tpcb", tpcb::TPCB_LIKE, args).await
}

/// pgbench's select-only transaction: one account balance read.
pub async fn select(args: PgbenchArgs) -> Result<()> {
    pgbench("select", tpcb::SELECT_ONLY, args).await
}

/// A script from a file.
pub async fn custom(args: CustomArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let script = Script::parse(&args.file.display().to_string(), &text)?;
    let config = run::config(&args.run.url)?;
    run::run(&config, script, args.scale, &args.run).await
}

/// A built-in script over pgbench's tables, loading them first if asked.
async fn pgbench(name: &str, script: &str, args: PgbenchArgs) -> Result<()> {
    let script = Script::parse(name, script)?;
    let config = run::config(&args.run.url)?;
    let scale = if args.init || args.init_only {
        let scale = args.scale.unwrap_or(1);
        tpcb::init(&config, scale, args.run.quiet).await?;
        scale
    } else {
        tpcb::loaded_scale(&config, args.scale).await?
    };
    if args.init_only {
        return Ok(());
    }
    run::run(&config, script, scale, &args.run).await
}
