//! What the mTLS mode keeps ([`Run`], [`HandshakeRun`], per-sidecar memory) and the markdown
//! report: medians with [min–max] over reps, latency added over direct, the two sidecars'
//! CPU together, handshakes per second and the server's CPU per handshake.

use std::fmt::Write as _;
use std::time::Duration;

use super::handshake;
use super::pair::Pair;
use crate::Args;
use crate::load::Outcome;
use crate::mesh::Kind;
use crate::procs::{self, ProcStats};
use crate::stats::{Spread, num, signed};

/// One fixed-rate (or, with `rate` 0, closed-loop) HTTP/1.1 run of one path.
#[derive(Debug, Clone)]
pub struct Run {
    /// Which path.
    pub kind: Kind,
    /// Requested rate, req/s; 0 for the closed-loop throughput run.
    pub rate: u64,
    /// p50, p90, p99, p99.9, µs.
    pub pcts: [u64; 4],
    /// Successful requests per second.
    pub achieved: f64,
    /// Failed requests.
    pub failures: u64,
    /// Successful requests.
    pub ok: u64,
    /// CPU of each measured process (direct: the upstream; a pair: client, server).
    pub cpu: Vec<Duration>,
    /// Largest RSS sampled of each measured process, KiB.
    pub rss_kb: Vec<u64>,
    /// The first failure.
    pub first_error: Option<String>,
}

impl Run {
    /// A run's record.
    pub fn new(kind: Kind, rate: u64, out: &Outcome, cpu: Vec<Duration>, rss_kb: Vec<u64>) -> Self {
        Self {
            kind,
            rate,
            pcts: [out.at(0.5), out.at(0.9), out.at(0.99), out.at(0.999)],
            achieved: out.rate(),
            failures: out.failures(),
            ok: out.ok,
            cpu,
            rss_kb,
            first_error: out.first_error.clone(),
        }
    }

    /// CPU seconds of all measured processes per 10,000 successful requests.
    pub fn cpu_per_10k(&self) -> f64 {
        let cpu: f64 = self.cpu.iter().map(Duration::as_secs_f64).sum();
        cpu * 10_000.0 / self.ok.max(1) as f64
    }

    /// A progress line.
    pub fn line(&self) -> String {
        let what = if self.rate == 0 {
            "max".to_owned()
        } else {
            format!("{}/s", self.rate)
        };
        format!(
            "{:<6} {what:>7}: p50 {} p90 {} p99 {} p99.9 {} µs, {:.0} req/s, {} failed, cpu {:.3} s/10k {:?}",
            self.kind.name(),
            self.pcts[0],
            self.pcts[1],
            self.pcts[2],
            self.pcts[3],
            self.achieved,
            self.failures,
            self.cpu_per_10k(),
            self.first_error
        )
    }
}

/// One handshake run against a server sidecar.
#[derive(Debug, Clone)]
pub struct HandshakeRun {
    /// Which server sidecar.
    pub kind: Kind,
    /// Completed handshakes per second.
    pub rate: f64,
    /// Handshake latency p50 and p99, µs.
    pub pcts: [u64; 2],
    /// Completed handshakes.
    pub ok: u64,
    /// Failed connections.
    pub failed: u64,
    /// The server sidecar's CPU during the run.
    pub cpu: Duration,
    /// The run's wall time.
    pub wall: Duration,
    /// Largest RSS of the server sampled, KiB.
    pub rss_kb: u64,
    /// The first failure.
    pub first_error: Option<String>,
}

impl HandshakeRun {
    /// A run's record.
    pub fn new(kind: Kind, out: &handshake::Outcome, cpu: Duration, rss_kb: u64) -> Self {
        Self {
            kind,
            rate: out.rate(),
            pcts: [
                out.hist.value_at_quantile(0.5),
                out.hist.value_at_quantile(0.99),
            ],
            ok: out.ok,
            failed: out.failed,
            cpu,
            wall: out.elapsed,
            rss_kb,
            first_error: out.first_error.clone(),
        }
    }

    /// Server CPU milliseconds per completed handshake.
    pub fn cpu_ms(&self) -> f64 {
        self.cpu.as_secs_f64() * 1000.0 / self.ok.max(1) as f64
    }

    /// Server CPU seconds per wall second.
    pub fn vcpu(&self) -> f64 {
        self.cpu.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }

    /// A progress line.
    pub fn line(&self) -> String {
        format!(
            "{:<6} handshakes: {:.0}/s, p50 {} p99 {} µs, {} failed, server {:.2} vCPU, {:.3} CPU-ms each {:?}",
            self.kind.name(),
            self.rate,
            self.pcts[0],
            self.pcts[1],
            self.failed,
            self.vcpu(),
            self.cpu_ms(),
            self.first_error
        )
    }
}

/// Memory of one pair: (client, server).
#[derive(Debug, Clone)]
pub struct Memory {
    /// Which pair.
    pub kind: Kind,
    /// Once configured and after the check.
    pub idle: (ProcStats, ProcStats),
    /// At the end of all phases (VmHWM = peak).
    pub after: (ProcStats, ProcStats),
}

/// Everything the report prints.
#[derive(Debug, Clone)]
pub struct Report {
    setup: String,
    /// `/proc/loadavg` before the run.
    pub load_before: String,
    /// `/proc/loadavg` after the run.
    pub load_after: String,
    /// The pairs' check lines.
    pub checks: Vec<String>,
    /// Remarks (warm-up failures, load averages).
    pub notes: Vec<String>,
    /// Latency and throughput runs.
    pub runs: Vec<Run>,
    /// Handshake runs.
    pub handshakes: Vec<HandshakeRun>,
    /// Memory per pair.
    pub memory: Vec<Memory>,
}

impl Report {
    /// An empty report of a run with `args`, started at load average `load_before`.
    pub fn new(args: &Args, load_before: String) -> Self {
        let setup = format!(
            "{} reps; latency {} s per rate over {} connections; throughput {} s closed loop over {} \
             connections; sidecars with {} worker thread(s); handshakes {} s, {} at a time (client on {} \
             threads), at most {} per run",
            args.reps,
            args.latency_secs(),
            args.connections,
            args.throughput_secs(),
            args.throughput_connections,
            args.workers,
            args.handshake_secs,
            args.handshake_concurrency,
            args.handshake_threads,
            args.handshake_max
        );
        Self {
            setup,
            load_before,
            load_after: String::new(),
            checks: Vec::new(),
            notes: Vec::new(),
            runs: Vec::new(),
            handshakes: Vec::new(),
            memory: Vec::new(),
        }
    }

    /// Records `pair`'s memory now.
    pub fn memory(&mut self, pair: &Pair) {
        let [client, server] = pair.pids();
        self.memory.push(Memory {
            kind: pair.kind,
            idle: pair.idle,
            after: (procs::read(client), procs::read(server)),
        });
    }

    fn kinds(&self) -> Vec<Kind> {
        let mut kinds: Vec<Kind> = self.runs.iter().map(|r| r.kind).collect();
        kinds.sort_unstable();
        kinds.dedup();
        kinds
    }

    fn runs_of(&self, kind: Kind, rate: u64) -> impl Iterator<Item = &Run> {
        self.runs
            .iter()
            .filter(move |r| r.kind == kind && r.rate == rate)
    }

    fn pct(&self, kind: Kind, rate: u64, i: usize) -> Spread {
        Spread::of(self.runs_of(kind, rate).map(|r| r.pcts[i] as f64))
    }

    /// The markdown report.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Setup: {}. Load average before: {}; after: {}.\n",
            self.setup, self.load_before, self.load_after
        );
        let _ = writeln!(s, "Checks:\n");
        for c in &self.checks {
            let _ = writeln!(s, "- {c}");
        }
        s.push('\n');
        self.latency(&mut s);
        self.cost(&mut s);
        self.handshake_table(&mut s);
        self.memory_table(&mut s);
        if !self.notes.is_empty() {
            let _ = writeln!(s, "Notes:\n");
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        s
    }

    fn latency(&self, s: &mut String) {
        let mut rates: Vec<u64> = self
            .runs
            .iter()
            .map(|r| r.rate)
            .filter(|&r| r > 0)
            .collect();
        rates.sort_unstable();
        rates.dedup();
        for rate in rates {
            let _ = writeln!(
                s,
                "HTTP/1.1 keep-alive at {} req/s (open loop), µs, median [min–max] over reps:\n\n\
                 | path | p50 | p90 | p99 | p99.9 | added p50 | added p99 | added p99.9 | achieved req/s | failed |\n\
                 |---|---|---|---|---|---|---|---|---|---|",
                num(rate as f64, 0)
            );
            for kind in self.kinds() {
                let p: Vec<Spread> = (0..4).map(|i| self.pct(kind, rate, i)).collect();
                let added = |i: usize| {
                    let direct = self.pct(Kind::Direct, rate, i);
                    if kind == Kind::Direct || direct.n == 0 {
                        "—".to_owned()
                    } else {
                        signed(p[i].median - direct.median)
                    }
                };
                let achieved = Spread::of(self.runs_of(kind, rate).map(|r| r.achieved));
                let failed: u64 = self.runs_of(kind, rate).map(|r| r.failures).sum();
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {failed} |",
                    label(kind),
                    p[0].show(0),
                    p[1].show(0),
                    p[2].show(0),
                    p[3].show(0),
                    added(0),
                    added(2),
                    added(3),
                    achieved.show(0)
                );
            }
            s.push('\n');
        }
    }

    fn cost(&self, s: &mut String) {
        let mut rates: Vec<u64> = self.runs.iter().map(|r| r.rate).collect();
        rates.sort_unstable();
        rates.dedup();
        rates.retain(|&r| r > 0);
        let heads: String = rates
            .iter()
            .map(|r| format!(" CPU-s / 10k req at {} req/s |", num(*r as f64, 0)))
            .collect();
        let _ = writeln!(
            s,
            "CPU (both sidecars together; direct: the upstream alone) and maximum throughput \
             (closed loop, HTTP/1.1), median [min–max] over reps:\n\n\
             | path |{heads} max throughput, req/s | p99 at max, µs | CPU-s / 10k req at max |\n\
             |---|{}---|---|---|",
            "---|".repeat(rates.len())
        );
        for kind in self.kinds() {
            let cpu = |rate| Spread::of(self.runs_of(kind, rate).map(Run::cpu_per_10k)).show(3);
            let cells: String = rates.iter().map(|&r| format!(" {} |", cpu(r))).collect();
            let tp = Spread::of(self.runs_of(kind, 0).map(|r| r.achieved));
            let _ = writeln!(
                s,
                "| {} |{cells} {} | {} | {} |",
                label(kind),
                tp.show(0),
                self.pct(kind, 0, 2).show(0),
                cpu(0)
            );
        }
        s.push('\n');
        self.cpu_split(s);
    }

    fn cpu_split(&self, s: &mut String) {
        let mut lines = Vec::new();
        for kind in self.kinds().into_iter().filter(|&k| k != Kind::Direct) {
            let share = |i: usize| {
                let runs = self.runs_of(kind, 1000);
                Spread::of(runs.map(|r| {
                    let cpu = r.cpu.get(i).map_or(0.0, Duration::as_secs_f64);
                    cpu * 10_000.0 / r.ok.max(1) as f64
                }))
                .median
            };
            lines.push(format!(
                "{}: client sidecar {:.3}, server sidecar {:.3}",
                label(kind),
                share(0),
                share(1)
            ));
        }
        if !lines.is_empty() {
            let _ = writeln!(
                s,
                "Split at 1,000 req/s (CPU-s / 10k req, medians): {}.\n",
                lines.join("; ")
            );
        }
    }

    fn handshake_table(&self, s: &mut String) {
        if self.handshakes.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "New mTLS handshakes against the server sidecar's inbound port (full handshakes, client \
             certificate, closed loop), median [min–max] over reps:\n\n\
             | server sidecar | handshakes/s | handshake p50, µs | p99, µs | failed | server vCPU | server CPU-ms per handshake |\n\
             |---|---|---|---|---|---|---|"
        );
        let mut kinds: Vec<Kind> = self.handshakes.iter().map(|h| h.kind).collect();
        kinds.sort_unstable();
        kinds.dedup();
        for kind in kinds {
            let runs: Vec<&HandshakeRun> =
                self.handshakes.iter().filter(|h| h.kind == kind).collect();
            let spread = |f: fn(&HandshakeRun) -> f64| Spread::of(runs.iter().map(|h| f(h)));
            let failed: u64 = runs.iter().map(|h| h.failed).sum();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {failed} | {} | {} |",
                label(kind),
                spread(|h| h.rate).show(0),
                spread(|h| h.pcts[0] as f64).show(0),
                spread(|h| h.pcts[1] as f64).show(0),
                spread(HandshakeRun::vcpu).show(2),
                spread(HandshakeRun::cpu_ms).show(3)
            );
        }
        s.push('\n');
    }

    fn memory_table(&self, s: &mut String) {
        if self.memory.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "Sidecar memory (MiB, /proc/<pid>/status; Envoy: the Envoy process):\n\n\
             | pair | client idle RSS | client max RSS sampled | client VmHWM | server idle RSS | server max RSS sampled | server VmHWM |\n\
             |---|---|---|---|---|---|---|"
        );
        let mib = |kb: u64| format!("{:.1}", kb as f64 / 1024.0);
        for m in &self.memory {
            let max = |i: usize| {
                let from_runs = self.runs.iter().filter(|r| r.kind == m.kind);
                let mut kb = from_runs
                    .filter_map(|r| r.rss_kb.get(i).copied())
                    .max()
                    .unwrap_or(0);
                if i == 1 {
                    let hs = self.handshakes.iter().filter(|h| h.kind == m.kind);
                    kb = kb.max(hs.map(|h| h.rss_kb).max().unwrap_or(0));
                }
                kb
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                label(m.kind),
                mib(m.idle.0.rss_kb),
                mib(max(0)),
                mib(m.after.0.hwm_kb),
                mib(m.idle.1.rss_kb),
                mib(max(1)),
                mib(m.after.1.hwm_kb)
            );
        }
        s.push('\n');
    }
}

fn label(kind: Kind) -> &'static str {
    match kind {
        Kind::Direct => "direct",
        Kind::Envoy => "Envoy pair",
        Kind::Mast => "mast-proxy pair",
        Kind::MastNoMetrics => "mast-proxy pair, Istio metrics off",
    }
}
