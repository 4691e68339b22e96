//! What the gateway mode keeps ([`Run`] per path, phase and rep; memory per gateway) and its
//! markdown report: medians with [min–max] over reps of requests per second, latency, CPU
//! seconds per 10,000 requests and vCPU of the measured process, new connections per second,
//! and each gateway's memory.

use std::fmt::Write as _;
use std::time::Duration;

use crate::Args;
use crate::load::Outcome;
use crate::mesh::Kind;
use crate::mtls::handshake;
use crate::procs::ProcStats;
use crate::stats::{Spread, num};

/// What a run measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// HTTPS (direct: plaintext) HTTP/1.1 keep-alive, closed loop.
    H1,
    /// HTTPS (direct: h2c) HTTP/2, closed loop.
    H2,
    /// New connections: connect, full TLS handshake, one request, close.
    Connections,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Self::H1 => "h1",
            Self::H2 => "h2",
            Self::Connections => "new-conn",
        }
    }
}

/// One run of one path.
#[derive(Debug, Clone)]
pub struct Run {
    /// Which path.
    pub kind: Kind,
    /// Which phase.
    pub phase: Phase,
    /// Successful requests (or connections) per second.
    pub rate: f64,
    /// Latency p50 and p99, µs.
    pub pcts: [u64; 2],
    /// Successful requests (or connections).
    pub ok: u64,
    /// Failed ones.
    pub failures: u64,
    /// CPU of the measured process (a gateway; direct: the upstream).
    pub cpu: Duration,
    /// The run's wall time.
    pub wall: Duration,
    /// Largest RSS sampled, KiB.
    pub rss_kb: u64,
    /// The first failure.
    pub first_error: Option<String>,
}

impl Run {
    /// A keep-alive run's record.
    pub fn requests(kind: Kind, phase: Phase, out: &Outcome, cpu: Duration, rss_kb: u64) -> Self {
        Self {
            kind,
            phase,
            rate: out.rate(),
            pcts: [out.at(0.5), out.at(0.99)],
            ok: out.ok,
            failures: out.failures(),
            cpu,
            wall: out.elapsed,
            rss_kb,
            first_error: out.first_error.clone(),
        }
    }

    /// A new-connection run's record.
    pub fn connections(kind: Kind, out: &handshake::Outcome, cpu: Duration, rss_kb: u64) -> Self {
        Self {
            kind,
            phase: Phase::Connections,
            rate: out.rate(),
            pcts: [
                out.hist.value_at_quantile(0.5),
                out.hist.value_at_quantile(0.99),
            ],
            ok: out.ok,
            failures: out.failed,
            cpu,
            wall: out.elapsed,
            rss_kb,
            first_error: out.first_error.clone(),
        }
    }

    /// CPU seconds per 10,000 successful requests (or connections).
    pub fn cpu_per_10k(&self) -> f64 {
        self.cpu.as_secs_f64() * 10_000.0 / self.ok.max(1) as f64
    }

    /// CPU seconds per wall second.
    pub fn vcpu(&self) -> f64 {
        self.cpu.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }

    /// A progress line.
    pub fn line(&self) -> String {
        format!(
            "{:<6} {:<8}: {:.0}/s, p50 {} p99 {} µs, {} failed, {:.2} vCPU, {:.3} CPU-s/10k, rss {} KiB {:?}",
            self.kind.name(),
            self.phase.label(),
            self.rate,
            self.pcts[0],
            self.pcts[1],
            self.failures,
            self.vcpu(),
            self.cpu_per_10k(),
            self.rss_kb,
            self.first_error
        )
    }
}

/// Everything the report prints.
#[derive(Debug, Clone)]
pub struct Report {
    setup: String,
    /// `/proc/loadavg` before the run.
    pub load_before: String,
    /// `/proc/loadavg` after the run.
    pub load_after: String,
    /// The gateways' check lines.
    pub checks: Vec<String>,
    /// Remarks (warm-up failures, load averages).
    pub notes: Vec<String>,
    /// Every run.
    pub runs: Vec<Run>,
    /// Per gateway: idle (after the check) and at the end.
    pub memory: Vec<(Kind, ProcStats, ProcStats)>,
}

impl Report {
    /// An empty report of a run with `args` at load average `load_before`.
    pub fn new(args: &Args, load_before: String) -> Self {
        let setup = format!(
            "{} reps; keep-alive: {} s closed loop over {} connections per protocol; gateways with {} \
             worker thread(s); new connections: {} s, {} at a time (client on {} threads), at most {} \
             per run; load generator on {} thread(s)",
            args.reps,
            super::keepalive_secs(args),
            args.connections,
            args.workers,
            args.handshake_secs,
            args.handshake_concurrency,
            args.handshake_threads,
            args.handshake_max,
            args.client_threads
        );
        Self {
            setup,
            load_before,
            load_after: String::new(),
            checks: Vec::new(),
            notes: Vec::new(),
            runs: Vec::new(),
            memory: Vec::new(),
        }
    }

    fn spread(&self, kind: Kind, phase: Phase, f: impl Fn(&Run) -> f64) -> Spread {
        Spread::of(
            self.runs
                .iter()
                .filter(|r| r.kind == kind && r.phase == phase)
                .map(f),
        )
    }

    fn kinds(&self) -> Vec<Kind> {
        let mut kinds: Vec<Kind> = self.runs.iter().map(|r| r.kind).collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }

    /// The markdown report.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "## proxy-bench --gateway\n\n{}\n", self.setup);
        let _ = writeln!(
            out,
            "Load average before: {}; after: {}.\n",
            self.load_before, self.load_after
        );
        for line in self.checks.iter().chain(&self.notes) {
            let _ = writeln!(out, "- {line}");
        }
        for phase in [Phase::H1, Phase::H2] {
            self.keepalive_table(&mut out, phase);
        }
        self.connections_table(&mut out);
        self.memory_table(&mut out);
        self.ratios(&mut out);
        self.failures(&mut out);
        out
    }

    fn keepalive_table(&self, out: &mut String, phase: Phase) {
        let title = match phase {
            Phase::H1 => "HTTPS HTTP/1.1 keep-alive (direct: plaintext HTTP/1.1)",
            _ => "HTTPS HTTP/2 (direct: h2c)",
        };
        let _ = writeln!(
            out,
            "\n##### {title}, closed loop, median [min–max] over reps\n\n\
             | path | req/s | p50 µs | p99 µs | CPU-s / 10k req | vCPU |\n|---|---|---|---|---|---|"
        );
        for kind in self.kinds() {
            if self.spread(kind, phase, |r| r.rate).n == 0 {
                continue;
            }
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                path_name(kind),
                self.spread(kind, phase, |r| r.rate).show(0),
                self.spread(kind, phase, |r| r.pcts[0] as f64).show(0),
                self.spread(kind, phase, |r| r.pcts[1] as f64).show(0),
                self.spread(kind, phase, Run::cpu_per_10k).show(3),
                self.spread(kind, phase, Run::vcpu).show(2)
            );
        }
    }

    fn connections_table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\n##### New TLS connections (connect + full handshake + one request + close), median [min–max]\n\n\
             | gateway | connections/s | p50 µs | p99 µs | gateway vCPU | gateway CPU-ms per connection |\n\
             |---|---|---|---|---|---|"
        );
        let phase = Phase::Connections;
        for kind in self.kinds() {
            if self.spread(kind, phase, |r| r.rate).n == 0 {
                continue;
            }
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                path_name(kind),
                self.spread(kind, phase, |r| r.rate).show(0),
                self.spread(kind, phase, |r| r.pcts[0] as f64).show(0),
                self.spread(kind, phase, |r| r.pcts[1] as f64).show(0),
                self.spread(kind, phase, Run::vcpu).show(2),
                self.spread(kind, phase, |r| r.cpu_per_10k() / 10.0).show(3)
            );
        }
    }

    fn memory_table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\n##### Gateway memory (MiB, /proc/<pid>/status; Envoy: the Envoy process)\n\n\
             | gateway | idle RSS | max RSS sampled, keep-alive | max RSS sampled, new connections | VmHWM at the end |\n\
             |---|---|---|---|---|"
        );
        for (kind, idle, after) in &self.memory {
            let max = |phases: &[Phase]| {
                self.runs
                    .iter()
                    .filter(|r| r.kind == *kind && phases.contains(&r.phase))
                    .map(|r| r.rss_kb)
                    .max()
                    .unwrap_or(0)
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                path_name(*kind),
                mib(idle.rss_kb),
                mib(max(&[Phase::H1, Phase::H2])),
                mib(max(&[Phase::Connections])),
                mib(after.hwm_kb)
            );
        }
    }

    fn ratios(&self, out: &mut String) {
        let ratio = |phase: Phase, f: fn(&Run) -> f64| {
            let m = self.spread(Kind::Mast, phase, f).median;
            let e = self.spread(Kind::Envoy, phase, f).median;
            if e > 0.0 {
                format!("{:.2}×", m / e)
            } else {
                "—".to_owned()
            }
        };
        let _ = writeln!(
            out,
            "\nmast-proxy ÷ Envoy (medians): HTTP/1.1 req/s {}, CPU-s/10k {}; HTTP/2 req/s {}, CPU-s/10k {}; \
             connections/s {}, CPU per connection {}.",
            ratio(Phase::H1, |r| r.rate),
            ratio(Phase::H1, Run::cpu_per_10k),
            ratio(Phase::H2, |r| r.rate),
            ratio(Phase::H2, Run::cpu_per_10k),
            ratio(Phase::Connections, |r| r.rate),
            ratio(Phase::Connections, Run::cpu_per_10k)
        );
    }

    fn failures(&self, out: &mut String) {
        let failed: Vec<&Run> = self.runs.iter().filter(|r| r.failures > 0).collect();
        if failed.is_empty() {
            let _ = writeln!(out, "\n0 failed requests and connections in every run.");
            return;
        }
        let _ = writeln!(out, "\nFailures:");
        for r in failed {
            let _ = writeln!(
                out,
                "- {} {}: {} failed (first: {})",
                r.kind.name(),
                r.phase.label(),
                r.failures,
                r.first_error.as_deref().unwrap_or("?")
            );
        }
    }
}

/// The table's name of a path.
fn path_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Direct => "direct (client → upstream, plaintext)",
        Kind::Envoy => "Envoy gateway",
        Kind::Mast | Kind::MastNoMetrics => "mast-proxy gateway",
    }
}

fn mib(kb: u64) -> String {
    num(kb as f64 / 1024.0, 1)
}
