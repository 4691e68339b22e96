//! `mastctl x load`'s numbers: outcomes counted by status, latencies in HDR histograms
//! (the whole run and the last second), the one-line progress display and the final
//! summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::fmt_duration;
use super::load_conn::{Failure, Outcome};

/// Latencies are recorded in microseconds, from 1µs to an hour, 3 significant digits.
const MAX_US: u64 = 3_600_000_000;

/// One finished request.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// From the moment the request was due to the end of its answer.
    pub latency: Duration,
    /// How it ended.
    pub outcome: Outcome,
}

/// Counts and latencies of a run.
pub struct Stats {
    started: Instant,
    finished: Instant,
    all: Histogram<u64>,
    window: Histogram<u64>,
    window_done: u64,
    outcomes: BTreeMap<Outcome, u64>,
}

fn histogram() -> Result<Histogram<u64>, hdrhistogram::CreationError> {
    Histogram::new_with_bounds(1, MAX_US, 3)
}

impl Stats {
    /// Empty stats of a run that started at `started`.
    pub fn new(started: Instant) -> Result<Self, hdrhistogram::CreationError> {
        Ok(Self {
            started,
            finished: started,
            all: histogram()?,
            window: histogram()?,
            window_done: 0,
            outcomes: BTreeMap::new(),
        })
    }

    /// When the run started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Counts one finished request.
    pub fn record(&mut self, sample: Sample) {
        *self.outcomes.entry(sample.outcome).or_default() += 1;
        self.window_done += 1;
        // Failures without an answer have no latency worth a percentile.
        if !matches!(sample.outcome, Outcome::Failed(_)) {
            let us = u64::try_from(sample.latency.as_micros())
                .unwrap_or(MAX_US)
                .max(1);
            self.all.saturating_record(us);
            self.window.saturating_record(us);
        }
        self.finished = Instant::now();
    }

    /// Makes the run last at least until `at` (the end of the schedule).
    pub fn finished_at(&mut self, at: Instant) {
        self.finished = self.finished.max(at);
    }

    /// Counts `n` requests that were due but never finished.
    pub fn add_unfinished(&mut self, n: u64) {
        if n > 0 {
            *self
                .outcomes
                .entry(Outcome::Failed(Failure::Unfinished))
                .or_default() += n;
        }
    }

    /// All requests counted.
    pub fn total(&self) -> u64 {
        self.outcomes.values().sum()
    }

    /// Requests that failed.
    pub fn failed(&self) -> u64 {
        self.outcomes
            .iter()
            .filter(|(o, _)| !o.is_ok())
            .map(|(_, n)| n)
            .sum()
    }

    /// Time from the start to the last answer.
    pub fn elapsed(&self) -> Duration {
        self.finished.duration_since(self.started)
    }

    /// The latency at quantile `q` (0..=1) over the whole run; `None` before any answer.
    pub fn latency(&self, q: f64) -> Option<Duration> {
        (!self.all.is_empty()).then(|| Duration::from_micros(self.all.value_at_quantile(q)))
    }

    /// `  3s  100.0/s  ok 300  errors 0  p50 1.20ms  p99 3.40ms`, over the last second
    /// except the cumulative counts; starts a new window.
    pub fn progress_line(&mut self, window: Duration) -> String {
        let rate = self.window_done as f64 / window.as_secs_f64().max(1e-3);
        let pct = |q: f64| {
            if self.window.is_empty() {
                "-".to_owned()
            } else {
                fmt_duration(Duration::from_micros(self.window.value_at_quantile(q)))
            }
        };
        let line = format!(
            "{:>4.0}s  {rate:>7.1}/s  ok {}  errors {}  p50 {}  p99 {}",
            self.started.elapsed().as_secs_f64(),
            self.total() - self.failed(),
            self.failed(),
            pct(0.5),
            pct(0.99),
        );
        self.window.reset();
        self.window_done = 0;
        line
    }

    /// The final summary, one fact per line.
    pub fn summary(&self) -> String {
        let total = self.total();
        let secs = self.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { total as f64 / secs } else { 0.0 };
        let mut out = format!("total      {total} requests in {secs:.2}s ({rate:.1}/s)\n");
        let list = |pick: fn(&Outcome) -> bool| -> String {
            let items: Vec<String> = self
                .outcomes
                .iter()
                .filter(|(o, _)| pick(o))
                .map(|(o, n)| format!("{o}: {n}"))
                .collect();
            items.join(", ")
        };
        let status = list(|o| matches!(o, Outcome::Status(_)));
        let grpc = list(|o| matches!(o, Outcome::Grpc(_)));
        let errors = list(|o| matches!(o, Outcome::Failed(_)));
        for (label, text) in [("status", status), ("grpc", grpc), ("errors", errors)] {
            if !text.is_empty() {
                let _ = writeln!(out, "{label:<10} {text}");
            }
        }
        let _ = writeln!(out, "latency    {}", self.percentiles());
        let failed = self.failed();
        let _ = if failed == 0 {
            writeln!(out, "result     all {total} succeeded")
        } else {
            writeln!(out, "result     {failed} of {total} failed")
        };
        out
    }

    fn percentiles(&self) -> String {
        let Some(max) = self.latency(1.0) else {
            return "- (no answers)".to_owned();
        };
        let mut line = String::new();
        for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)] {
            if let Some(d) = self.latency(q) {
                let _ = write!(line, "{name} {}  ", fmt_duration(d));
            }
        }
        let _ = write!(line, "max {}", fmt_duration(max));
        line
    }
}
