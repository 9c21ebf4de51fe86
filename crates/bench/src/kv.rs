//! Replicated single-key puts through the KV API: N concurrent writers, each
//! waiting for its put to be acknowledged before sending the next.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use tessera_kv::{KvClient, KvClientConfig};

use crate::report::{json, new_histogram, summary};

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
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let (client, done, args) = (client.clone(), done.clone(), args.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(worker as u64);
            let mut histogram = new_histogram();
            let value = vec![b'v'; args.value_size];
            while Instant::now() < deadline {
                let key = format!("bench/{:012}", rng.gen_range(0..args.keys));
                let begin = Instant::now();
                client.put(key.as_bytes(), &value).await?;
                histogram.saturating_record(begin.elapsed().as_micros() as u64);
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(histogram)
        }));
    }
    let progress = {
        let done = done.clone();
        let quiet = args.json;
        tokio::spawn(async move {
            let mut last = 0;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = done.load(Ordering::Relaxed);
                if !quiet {
                    eprintln!(
                        "{:>4}s {:>8} ops/s",
                        started.elapsed().as_secs(),
                        now - last
                    );
                }
                last = now;
            }
        })
    };
    let mut total = new_histogram();
    for worker in workers {
        total.add(worker.await??)?;
    }
    progress.abort();
    let seconds = started.elapsed().as_secs_f64();
    let label = format!("kv-put c={}", args.concurrency);
    if args.json {
        println!("{}", json(&label, &total, seconds));
    } else {
        println!("{}", summary(&label, &total, seconds));
    }
    Ok(())
}
