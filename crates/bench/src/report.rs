//! Latency summaries: the progress line a run prints every second, and the
//! hdrhistogram percentiles it prints at its end.
//!
//! A run's workers share one [`Progress`]: each completed operation records
//! its latency there, into the histogram of the whole run and into that of
//! the second under way, which the [`ProgressLine`] takes and prints.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Latencies from 1 µs to 60 s with 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// The figures of one run.
struct Figures {
    ops: u64,
    per_sec: f64,
    /// p50, p90, p99, p99.9 and max, in milliseconds.
    ms: [f64; 5],
}

fn figures(histogram: &Histogram<u64>, seconds: f64) -> Figures {
    let ms = |micros: u64| micros as f64 / 1000.0;
    Figures {
        ops: histogram.len(),
        per_sec: histogram.len() as f64 / seconds,
        ms: [
            ms(histogram.value_at_quantile(0.5)),
            ms(histogram.value_at_quantile(0.9)),
            ms(histogram.value_at_quantile(0.99)),
            ms(histogram.value_at_quantile(0.999)),
            ms(histogram.max()),
        ],
    }
}

/// One line: count, throughput and percentiles in milliseconds.
pub fn summary(label: &str, histogram: &Histogram<u64>, seconds: f64) -> String {
    let f = figures(histogram, seconds);
    let [p50, p90, p99, p999, max] = f.ms;
    format!(
        "{label}: {} ops in {seconds:.1}s = {:.0} ops/s; latency ms p50 {p50:.2} p90 {p90:.2} p99 {p99:.2} p99.9 {p999:.2} max {max:.2}",
        f.ops, f.per_sec
    )
}

/// The same figures as JSON.
pub fn json(label: &str, histogram: &Histogram<u64>, seconds: f64) -> String {
    let f = figures(histogram, seconds);
    let [p50, p90, p99, p999, max] = f.ms;
    format!(
        "{{\"workload\":\"{label}\",\"ops\":{},\"seconds\":{seconds:.3},\"ops_per_sec\":{:.1},\"p50_ms\":{p50:.3},\"p90_ms\":{p90:.3},\"p99_ms\":{p99:.3},\"p999_ms\":{p999:.3},\"max_ms\":{max:.3}}}",
        f.ops, f.per_sec
    )
}

/// What a run's workers record as they go, shared with its progress line.
pub struct Progress {
    latencies: Mutex<Latencies>,
    failed: AtomicU64,
}

/// Latencies in microseconds: of the whole run, and of the second under way.
struct Latencies {
    run: Histogram<u64>,
    second: Histogram<u64>,
}

impl Progress {
    /// An empty record, to share between a run's workers.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            latencies: Mutex::new(Latencies {
                run: new_histogram(),
                second: new_histogram(),
            }),
            failed: AtomicU64::new(0),
        })
    }

    /// Records a completed operation.
    pub fn record(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let mut latencies = self.lock();
        latencies.run.saturating_record(micros);
        latencies.second.saturating_record(micros);
    }

    /// Records an operation that failed for good (it has no latency).
    pub fn record_failure(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// The failures so far.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// The latencies of the whole run so far.
    pub fn latencies(&self) -> Histogram<u64> {
        self.lock().run.clone()
    }

    /// The latencies of the second under way, which starts a new one.
    fn take_second(&self) -> Histogram<u64> {
        std::mem::replace(&mut self.lock().second, new_histogram())
    }

    fn lock(&self) -> MutexGuard<'_, Latencies> {
        // A worker that panicked while holding the lock cannot have left a
        // histogram half-updated in a way that matters to a report.
        self.latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Prints a line to stderr every second: the seconds elapsed, the operations
/// per second, p50 and p99 latency of that second, and the failures so far.
/// Stops when dropped.
pub struct ProgressLine {
    task: tokio::task::JoinHandle<()>,
}

impl ProgressLine {
    /// Starts printing; `unit` names the rate, e.g. `tps`.
    pub fn start(progress: Arc<Progress>, unit: &'static str) -> Self {
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            progress.take_second();
            let mut last = Instant::now();
            loop {
                tick.tick().await;
                let second = progress.take_second();
                // Ticks can come late on a busy machine: divide by the time
                // that really passed.
                let now = Instant::now();
                let rate = second.len() as f64 / (now - last).as_secs_f64();
                last = now;
                let ms = |quantile| second.value_at_quantile(quantile) as f64 / 1000.0;
                eprintln!(
                    "{:>4}s {rate:>9.1} {unit}  p50 {:>8.2} ms  p99 {:>8.2} ms  {} failed",
                    started.elapsed().as_secs(),
                    ms(0.5),
                    ms(0.99),
                    progress.failed()
                );
            }
        });
        Self { task }
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The end of a run of transactions.
pub struct Report {
    /// What ran, e.g. `tpcb s=1 c=8 prepared`.
    pub workload: String,
    /// Latencies of the committed transactions, in microseconds.
    pub latencies: Histogram<u64>,
    /// Wall-clock seconds from the first transaction's start to the last one's end.
    pub seconds: f64,
    /// Transactions that failed for good (retries exhausted).
    pub failed: u64,
    /// Transactions that committed or failed after more than one try.
    pub retried: u64,
    /// Tries beyond the first, over all transactions.
    pub retries: u64,
}

impl Report {
    /// The report as lines of text.
    pub fn text(&self) -> String {
        let f = figures(&self.latencies, self.seconds);
        let [p50, p90, p99, p999, max] = f.ms;
        format!(
            "workload: {}\n\
             transactions: {} in {:.2} s = {:.1} tps\n\
             failed: {}, retried: {} ({} retries)\n\
             latency ms: p50 {p50:.3} p90 {p90:.3} p99 {p99:.3} p99.9 {p999:.3} max {max:.3}",
            self.workload, f.ops, self.seconds, f.per_sec, self.failed, self.retried, self.retries
        )
    }

    /// The report as one JSON object, its fields in the text's order.
    pub fn json(&self) -> serde_json::Result<String> {
        let f = figures(&self.latencies, self.seconds);
        let [p50_ms, p90_ms, p99_ms, p999_ms, max_ms] = f.ms;
        let json = JsonReport {
            workload: &self.workload,
            transactions: f.ops,
            seconds: self.seconds,
            tps: f.per_sec,
            failed: self.failed,
            retried: self.retried,
            retries: self.retries,
            p50_ms,
            p90_ms,
            p99_ms,
            p999_ms,
            max_ms,
        };
        serde_json::to_string(&json)
    }
}

/// `Report::json`'s fields.
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    workload: &'a str,
    transactions: u64,
    seconds: f64,
    tps: f64,
    failed: u64,
    retried: u64,
    retries: u64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
}
