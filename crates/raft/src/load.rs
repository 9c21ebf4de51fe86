//! A range's recent load: the requests its leader served per second over
//! the last window, and a sample of the keys they touched (for splitting a
//! busy range where its load divides in two).

use std::time::{Duration, Instant};

/// How long one measuring window lasts.
pub const WINDOW: Duration = Duration::from_secs(5);

/// How many keys a window's sample keeps.
const SAMPLE_SIZE: usize = 64;

/// Counts a replica's requests; pure apart from the clock passed in.
#[derive(Debug)]
pub struct LoadMeter {
    started: Instant,
    requests: u64,
    /// Keys of this window's requests, a uniform sample (reservoir).
    sample: Vec<Vec<u8>>,
    /// A xorshift state for the reservoir's choices.
    rng: u64,
    /// Requests per second over the last complete window.
    rate: f64,
    /// The last complete window's sample, sorted.
    last_sample: Vec<Vec<u8>>,
}

impl LoadMeter {
    /// A meter whose first window starts at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            started: now,
            requests: 0,
            sample: Vec::new(),
            rng: 0x9E37_79B9_7F4A_7C15,
            rate: 0.0,
            last_sample: Vec::new(),
        }
    }

    /// Counts one request for `key`.
    pub fn record(&mut self, key: &[u8]) {
        self.requests += 1;
        if self.sample.len() < SAMPLE_SIZE {
            self.sample.push(key.to_vec());
            return;
        }
        // Keep this key with probability SAMPLE_SIZE / requests.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let slot = (self.rng % self.requests) as usize;
        if let Some(kept) = self.sample.get_mut(slot) {
            *kept = key.to_vec();
        }
    }

    /// Closes the window if it has run its length by `now`.
    pub fn tick(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.started);
        if elapsed < WINDOW {
            return;
        }
        self.rate = self.requests as f64 / elapsed.as_secs_f64();
        self.last_sample = std::mem::take(&mut self.sample);
        self.last_sample.sort();
        self.requests = 0;
        self.started = now;
    }

    /// Requests per second over the last complete window.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The median key of the last window's sample: half the sampled
    /// requests went below it. None without a sample.
    pub fn median_key(&self) -> Option<&[u8]> {
        self.last_sample
            .get(self.last_sample.len() / 2)
            .map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_median_of_a_window() {
        let start = Instant::now();
        let mut meter = LoadMeter::new(start);
        for i in 0..1000u32 {
            // Three quarters of the load on keys below 250.
            let key = if i % 4 == 3 { 500 + i % 500 } else { i % 250 };
            meter.record(&key.to_be_bytes());
        }
        assert_eq!(meter.rate(), 0.0, "no window has closed yet");
        assert_eq!(meter.median_key(), None);
        meter.tick(start + WINDOW / 2);
        assert_eq!(meter.rate(), 0.0, "the window is still open");
        meter.tick(start + WINDOW * 2);
        assert!((meter.rate() - 100.0).abs() < 1e-9, "{}", meter.rate());
        let median = u32::from_be_bytes(meter.median_key().unwrap().try_into().unwrap());
        assert!(median < 250, "median {median}");
        // A quiet window resets the rate.
        meter.tick(start + WINDOW * 4);
        assert_eq!(meter.rate(), 0.0);
        assert_eq!(meter.median_key(), None);
    }
}
