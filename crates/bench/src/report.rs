//! Latency summaries.

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
