//! Latency summaries.

use hdrhistogram::Histogram;

/// Latencies from 1 µs to 60 s with 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// One line: count, throughput and percentiles in milliseconds.
pub fn summary(label: &str, histogram: &Histogram<u64>, seconds: f64) -> String {
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    format!(
        "{label}: {} ops in {seconds:.1}s = {:.0} ops/s; latency ms p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}",
        histogram.len(),
        histogram.len() as f64 / seconds,
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        histogram.max() as f64 / 1000.0
    )
}

/// The same figures as JSON.
pub fn json(label: &str, histogram: &Histogram<u64>, seconds: f64) -> String {
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    format!(
        "{{\"workload\":\"{label}\",\"ops\":{},\"seconds\":{seconds:.3},\"ops_per_sec\":{:.1},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"max_ms\":{:.3}}}",
        histogram.len(),
        histogram.len() as f64 / seconds,
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        histogram.max() as f64 / 1000.0
    )
}
