//! Replicated single-key puts through the KV API: N concurrent writers, each
//! waiting for its put to be acknowledged before sending the next.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use tessera_kv::{KvClient, KvClientConfig};

use crate::report::{json, summary, Progress, ProgressLine};

/// `tessera bench kv` options.
#[derive(clap::Args, Clone, Debug)]
pub struct KvBenchArgs {
    /// gRPC addresses of the cluster's nodes, comma-separated.
    #[arg(long, default_value = "127.0.0.1:7433", value_delimiter = ',')]
    pub host: Vec<String>,
    /// Concurrent writers.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Distinct keys written.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs the benchmark and prints its report.
pub async fn run(args: KvBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    anyhow::ensure!(args.keys >= 1, "--keys must be at least 1");
    let client = KvClient::new(args.host.clone(), KvClientConfig::default());
    // Warm up: find the leader and open connections.
    client.put(b"bench/warmup", b"x").await?;
    let progress = Progress::new();
    // The JSON report is for scripts: keep stderr quiet for them too.
    let line = (!args.json).then(|| ProgressLine::start(progress.clone(), "ops/s"));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let (client, progress, args) = (client.clone(), progress.clone(), args.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(worker as u64);
            let value = vec![b'v'; args.value_size];
            while Instant::now() < deadline {
                let key = format!("bench/{:012}", rng.gen_range(0..args.keys));
                let begin = Instant::now();
                client.put(key.as_bytes(), &value).await?;
                progress.record(begin.elapsed());
            }
            anyhow::Ok(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    drop(line);
    let total = progress.latencies();
    let seconds = started.elapsed().as_secs_f64();
    let label = format!("kv-put c={}", args.concurrency);
    if args.json {
        println!("{}", json(&label, &total, seconds));
    } else {
        println!("{}", summary(&label, &total, seconds));
    }
    Ok(())
}
