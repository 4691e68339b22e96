//! What one measured run keeps ([`LatencyRun`], [`ThroughputRun`]) and the median-and-range
//! summaries over reps that the report prints.

use std::time::Duration;

use crate::load::{Outcome, Proto};
use crate::mesh::TargetId;

/// One fixed-rate run of one target.
#[derive(Debug, Clone)]
pub struct LatencyRun {
    /// Which target.
    pub target: TargetId,
    /// Protocol.
    pub proto: Proto,
    /// Requested rate, req/s.
    pub rate: u64,
    /// p50, p90, p99, p99.9, max latency, µs.
    pub pcts: [u64; 5],
    /// Achieved successful req/s.
    pub achieved: f64,
    /// Failed requests (bad answers, errors, unfinished).
    pub failures: u64,
    /// Successful requests.
    pub ok: u64,
    /// Proxy CPU used during the run (for direct: the upstream's).
    pub cpu: Duration,
    /// The run's wall time.
    pub wall: Duration,
    /// Largest VmRSS sampled during the run, KiB.
    pub rss_kb: u64,
    /// The first failure.
    pub first_error: Option<String>,
}

impl LatencyRun {
    /// Builds a run's record from its outcome and the CPU and memory measured around it.
    pub fn new(
        target: TargetId,
        proto: Proto,
        rate: u64,
        out: &Outcome,
        cpu: Duration,
        rss_kb: u64,
    ) -> Self {
        Self {
            target,
            proto,
            rate,
            pcts: [
                out.at(0.5),
                out.at(0.9),
                out.at(0.99),
                out.at(0.999),
                out.hist.max(),
            ],
            achieved: out.rate(),
            failures: out.failures(),
            ok: out.ok,
            cpu,
            wall: out.elapsed,
            rss_kb,
            first_error: out.first_error.clone(),
        }
    }

    /// CPU seconds per 10,000 successful requests.
    pub fn cpu_per_10k(&self) -> f64 {
        self.cpu.as_secs_f64() * 10_000.0 / (self.ok.max(1) as f64)
    }

    /// CPU seconds per wall second.
    pub fn vcpu(&self) -> f64 {
        self.cpu.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }
}

/// One closed-loop throughput run of one target.
#[derive(Debug, Clone)]
pub struct ThroughputRun {
    /// Which target.
    pub target: TargetId,
    /// The latency and rate of the run (closed loop: latency from each send).
    pub run: LatencyRun,
}

/// Median, min and max of some numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spread {
    /// Median (mean of the two middle values for an even count).
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// How many.
    pub n: usize,
}

impl Spread {
    /// The spread of `values` (all zeros when empty).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let mut v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return Self::default();
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Self {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        }
    }

    /// `median [min–max]` with `decimals` decimals and thousands separators.
    pub fn show(&self, decimals: usize) -> String {
        if self.n == 0 {
            return "—".into();
        }
        if self.n == 1 {
            return num(self.median, decimals);
        }
        format!(
            "{} [{}–{}]",
            num(self.median, decimals),
            num(self.min, decimals),
            num(self.max, decimals)
        )
    }
}

/// `value` with `decimals` decimals and `,` between thousands.
pub fn num(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    let (int, frac) = text
        .split_once('.')
        .map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// `+N` / `-N` µs.
pub fn signed(value: f64) -> String {
    if value >= 0.0 {
        format!("+{}", num(value, 0))
    } else {
        num(value, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_and_numbers() {
        let s = Spread::of([3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(Spread::of([1.0, 2.0]).median, 1.5);
        assert_eq!(s.show(0), "2 [1–3]");
        assert_eq!(Spread::of([]).show(0), "—");
        assert_eq!(num(1234567.891, 1), "1,234,567.9");
        assert_eq!(num(-1234.0, 0), "-1,234");
        assert_eq!(signed(12.0), "+12");
        assert_eq!(signed(-3.0), "-3");
    }
}
