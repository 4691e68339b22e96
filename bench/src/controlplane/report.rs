//! Numbers and how they are printed: per-client latency distributions (p50/p90/p99/max and
//! how many clients saw the change at all) and the final table beside the targets.

use std::time::{Duration, Instant};

/// Per-client latencies of one measurement.
#[derive(Debug, Clone, Default)]
pub struct Distribution {
    /// The latencies of the clients that got there, sorted.
    pub samples: Vec<Duration>,
    /// How many clients were expected.
    pub expected: usize,
}

impl Distribution {
    /// From each client's arrival time (if any), relative to `start`.
    pub fn from_arrivals(start: Instant, arrivals: &[Option<Instant>]) -> Self {
        let mut samples: Vec<Duration> = arrivals
            .iter()
            .flatten()
            .map(|at| at.saturating_duration_since(start))
            .collect();
        samples.sort_unstable();
        Self {
            samples,
            expected: arrivals.len(),
        }
    }

    /// From latencies already measured, out of `expected` clients.
    pub fn from_durations(mut samples: Vec<Duration>, expected: usize) -> Self {
        samples.sort_unstable();
        Self { samples, expected }
    }

    /// Merges several rounds.
    pub fn pooled(parts: &[Distribution]) -> Self {
        let mut samples: Vec<Duration> = parts
            .iter()
            .flat_map(|d| d.samples.iter().copied())
            .collect();
        samples.sort_unstable();
        Self {
            samples,
            expected: parts.iter().map(|d| d.expected).sum(),
        }
    }

    /// The `p`-quantile (0..=1), nearest rank.
    pub fn quantile(&self, p: f64) -> Option<Duration> {
        if self.samples.is_empty() {
            return None;
        }
        let rank = ((p * self.samples.len() as f64).ceil() as usize).clamp(1, self.samples.len());
        Some(self.samples[rank - 1])
    }

    /// The slowest.
    pub fn max(&self) -> Option<Duration> {
        self.samples.last().copied()
    }

    /// Whether every expected client got there.
    pub fn complete(&self) -> bool {
        self.samples.len() == self.expected
    }

    /// `p50 a / p90 b / p99 c / max d ms (n/N)`.
    pub fn summary(&self) -> String {
        format!(
            "p50 {} / p90 {} / p99 {} / max {} ms ({}/{} clients)",
            ms(self.quantile(0.5)),
            ms(self.quantile(0.9)),
            ms(self.quantile(0.99)),
            ms(self.max()),
            self.samples.len(),
            self.expected
        )
    }
}

/// Milliseconds with one decimal, `-` for nothing.
pub fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.1}", d.as_secs_f64() * 1000.0),
    )
}

/// Mebibytes from KiB.
pub fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

/// Bytes in a readable unit.
pub fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n => format!("{:.1} KiB", n as f64 / 1024.0),
    }
}

/// One row of the final table.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured.
    pub what: String,
    /// The measured value.
    pub measured: String,
    /// The target, if any.
    pub target: String,
    /// `met`, `MISSED`, or empty when there is no target.
    pub verdict: String,
}

impl Row {
    /// A row with a target and whether it was met.
    pub fn judged(what: &str, measured: String, target: &str, met: Option<bool>) -> Self {
        let verdict = match met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "-",
        };
        Self {
            what: what.into(),
            measured,
            target: target.into(),
            verdict: verdict.into(),
        }
    }

    /// A row without a target.
    pub fn info(what: &str, measured: String) -> Self {
        Self {
            what: what.into(),
            measured,
            target: "-".into(),
            verdict: "-".into(),
        }
    }
}

/// Prints `rows` as a Markdown table.
pub fn print_table(rows: &[Row]) {
    println!("| measurement | result | target | |");
    println!("| --- | --- | --- | --- |");
    for r in rows {
        println!(
            "| {} | {} | {} | {} |",
            r.what, r.measured, r.target, r.verdict
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let start = Instant::now();
        let arrivals: Vec<Option<Instant>> = (1..=100)
            .map(|i| Some(start + Duration::from_millis(i)))
            .chain([None])
            .collect();
        let d = Distribution::from_arrivals(start, &arrivals);
        assert_eq!(d.quantile(0.5), Some(Duration::from_millis(50)));
        assert_eq!(d.quantile(0.99), Some(Duration::from_millis(99)));
        assert_eq!(d.max(), Some(Duration::from_millis(100)));
        assert!(!d.complete());
        assert_eq!(Distribution::pooled(&[d.clone(), d]).expected, 202);
        assert_eq!(ms(None), "-");
    }
}
