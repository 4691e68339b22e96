//! The report: markdown tables of every phase (median [min–max] over reps; "added" is the
//! difference of the medians against direct), memory, start-up, the issue's targets with
//! met/missed, the profile and the notes.

use std::fmt::Write as _;
use std::time::Duration;

use crate::Args;
use crate::load::Proto;
use crate::mesh::{Kind, TargetId, Tools};
use crate::procs::ProcStats;
use crate::stats::{LatencyRun, Spread, ThroughputRun, num, signed};

/// A sidecar's memory.
#[derive(Debug, Clone)]
pub struct Memory {
    /// Which.
    pub target: TargetId,
    /// Right after start, sync and one routed request.
    pub idle: ProcStats,
    /// Largest VmRSS sampled during the load phases, KiB.
    pub max_sampled_kb: u64,
    /// After all load phases (VmHWM is the peak).
    pub after: ProcStats,
}

/// Everything measured.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// The run's settings, for the header.
    pub settings: String,
    /// Fixed-rate runs.
    pub latency: Vec<LatencyRun>,
    /// Closed-loop runs.
    pub throughput: Vec<ThroughputRun>,
    /// Idle footprint of each sidecar.
    pub idle: Vec<(TargetId, ProcStats)>,
    /// Memory per sidecar.
    pub memory: Vec<Memory>,
    /// Start-up times per sidecar kind.
    pub startup: Vec<(TargetId, Vec<Option<Duration>>)>,
    /// The profile report.
    pub profile: Option<String>,
    /// Anything worth knowing.
    pub notes: Vec<String>,
}

impl Results {
    /// Empty results for this run.
    pub fn new(args: &Args, tools: &Tools) -> Self {
        Self {
            settings: format!(
                "reps {}, latency runs {} s at {:?} req/s over {} connections, throughput runs {} s over {} connections, \
                 proxy workers {} (throughput: {:?}), load generator threads {}, Envoy {}",
                args.reps,
                args.latency_secs(),
                args.rates,
                args.connections,
                args.throughput_secs(),
                args.throughput_connections,
                args.workers,
                args.throughput_workers,
                args.client_threads,
                tools
                    .envoy
                    .as_ref()
                    .map_or("-".into(), |e| e.display().to_string())
            ),
            ..Self::default()
        }
    }

    fn runs(&self, target: TargetId, proto: Proto, rate: u64) -> Vec<&LatencyRun> {
        self.latency
            .iter()
            .filter(|r| r.target == target && r.proto == proto && r.rate == rate)
            .collect()
    }

    fn targets(&self) -> Vec<TargetId> {
        let mut t: Vec<TargetId> = self.latency.iter().map(|r| r.target).collect();
        t.sort();
        t.dedup();
        t
    }

    fn pct(&self, target: TargetId, proto: Proto, rate: u64, i: usize) -> Spread {
        Spread::of(
            self.runs(target, proto, rate)
                .iter()
                .map(|r| r.pcts[i] as f64),
        )
    }

    fn direct(&self) -> Option<TargetId> {
        self.targets().into_iter().find(|t| t.kind == Kind::Direct)
    }

    /// Added latency (difference of medians) of percentile `i`, µs.
    fn added(&self, target: TargetId, proto: Proto, rate: u64, i: usize) -> Option<f64> {
        let direct = self.direct()?;
        let own = self.pct(target, proto, rate, i);
        let base = self.pct(direct, proto, rate, i);
        (own.n > 0 && base.n > 0).then_some(own.median - base.median)
    }

    fn cpu_per_10k(&self, target: TargetId, proto: Proto, rate: u64) -> Spread {
        Spread::of(
            self.runs(target, proto, rate)
                .iter()
                .map(|r| r.cpu_per_10k()),
        )
    }

    fn throughput_of(&self, target: TargetId) -> Spread {
        Spread::of(
            self.throughput
                .iter()
                .filter(|t| t.target == target)
                .map(|t| t.run.achieved),
        )
    }

    fn startup_of(&self, kind: Kind) -> Option<Spread> {
        let (_, times) = self.startup.iter().find(|(t, _)| t.kind == kind)?;
        Some(Spread::of(
            times.iter().flatten().map(|d| d.as_secs_f64() * 1000.0),
        ))
    }
}

/// The whole report as markdown.
pub fn render(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Settings: {}\n", r.settings);
    latency_tables(&mut s, r);
    throughput_table(&mut s, r);
    memory_table(&mut s, r);
    startup_table(&mut s, r);
    crate::report::targets::table(&mut s, r);
    if let Some(p) = &r.profile {
        let _ = writeln!(
            s,
            "#### mast-proxy profile (perf, HTTP/1.1 at 5,000 req/s)\n\n```\n{p}```\n"
        );
    }
    let mut notes: Vec<String> = r.notes.clone();
    for run in r.latency.iter().chain(r.throughput.iter().map(|t| &t.run)) {
        if run.failures > 0 {
            notes.push(format!(
                "{} {} {}: {} failed ({})",
                run.target,
                run.proto.label(),
                if run.rate == 0 {
                    "throughput".to_owned()
                } else {
                    format!("{}/s", run.rate)
                },
                run.failures,
                run.first_error.clone().unwrap_or_default()
            ));
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(s, "Notes:");
        for n in notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    s
}

fn latency_tables(s: &mut String, r: &Results) {
    let mut rates: Vec<u64> = r.latency.iter().map(|l| l.rate).collect();
    rates.sort_unstable();
    rates.dedup();
    for proto in [Proto::H1, Proto::H2] {
        let _ = writeln!(
            s,
            "#### {} latency at fixed rates (open loop, from scheduled send), µs, median [min–max] over reps\n",
            proto.label()
        );
        let _ = writeln!(
            s,
            "| target | rate | achieved req/s | p50 | p90 | p99 | p99.9 | max | added p50 / p90 / p99 / p99.9 | proxy vCPU | proxy CPU s / 10k req | max RSS MiB | failed | n |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for &rate in &rates {
            for target in r.targets() {
                let runs = r.runs(target, proto, rate);
                if runs.is_empty() {
                    continue;
                }
                let added = if target.kind == Kind::Direct {
                    "—".to_owned()
                } else {
                    (0..4)
                        .map(|i| r.added(target, proto, rate, i).map_or("?".into(), signed))
                        .collect::<Vec<_>>()
                        .join(" / ")
                };
                let cpu_note = if target.kind == Kind::Direct {
                    " (upstream)"
                } else {
                    ""
                };
                let _ = writeln!(
                    s,
                    "| {target} | {} | {} | {} | {} | {} | {} | {} | {added} | {}{cpu_note} | {}{cpu_note} | {} | {} | {} |",
                    num(rate as f64, 0),
                    Spread::of(runs.iter().map(|x| x.achieved)).show(0),
                    r.pct(target, proto, rate, 0).show(0),
                    r.pct(target, proto, rate, 1).show(0),
                    r.pct(target, proto, rate, 2).show(0),
                    r.pct(target, proto, rate, 3).show(0),
                    r.pct(target, proto, rate, 4).show(0),
                    Spread::of(runs.iter().map(|x| x.vcpu())).show(3),
                    r.cpu_per_10k(target, proto, rate).show(3),
                    Spread::of(runs.iter().map(|x| x.rss_kb as f64 / 1024.0)).show(1),
                    runs.iter().map(|x| x.failures).sum::<u64>(),
                    runs.len()
                );
            }
        }
        s.push('\n');
    }
}

fn throughput_table(s: &mut String, r: &Results) {
    if r.throughput.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "#### HTTP/1.1 maximum throughput (closed loop), median [min–max] over reps\n\n| target | req/s | × Envoy (same workers) | % of direct | p50 µs | p99 µs | proxy CPU s / 10k req | max RSS MiB | failed | n |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut targets: Vec<TargetId> = r.throughput.iter().map(|t| t.target).collect();
    targets.sort();
    targets.dedup();
    let direct = targets
        .iter()
        .find(|t| t.kind == Kind::Direct)
        .map(|t| r.throughput_of(*t).median);
    for target in targets {
        let runs: Vec<&LatencyRun> = r
            .throughput
            .iter()
            .filter(|t| t.target == target)
            .map(|t| &t.run)
            .collect();
        let rate = r.throughput_of(target);
        let envoy = r.throughput_of(TargetId {
            kind: Kind::Envoy,
            workers: target.workers,
        });
        let times = if target.kind == Kind::Mast && envoy.n > 0 {
            format!("{:.2}×", rate.median / envoy.median.max(1e-9))
        } else {
            "—".into()
        };
        let pct = direct.map_or("—".into(), |d| {
            format!("{:.0} %", 100.0 * rate.median / d.max(1e-9))
        });
        let cpu_note = if target.kind == Kind::Direct {
            " (upstream)"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "| {target} | {} | {times} | {pct} | {} | {} | {}{cpu_note} | {} | {} | {} |",
            rate.show(0),
            Spread::of(runs.iter().map(|x| x.pcts[0] as f64)).show(0),
            Spread::of(runs.iter().map(|x| x.pcts[2] as f64)).show(0),
            Spread::of(runs.iter().map(|x| x.cpu_per_10k())).show(3),
            Spread::of(runs.iter().map(|x| x.rss_kb as f64 / 1024.0)).show(1),
            runs.iter().map(|x| x.failures).sum::<u64>(),
            runs.len()
        );
    }
    s.push('\n');
}

fn memory_table(s: &mut String, r: &Results) {
    if r.memory.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "#### Proxy memory (MiB, /proc/<pid>/status)\n\n| target | idle VmRSS (started, synced, 1 request) | max VmRSS sampled under load | VmRSS after all load | VmHWM (peak) | threads |\n|---|---|---|---|---|---|"
    );
    let mib = |kb: u64| format!("{:.1}", kb as f64 / 1024.0);
    for m in &r.memory {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            m.target,
            mib(m.idle.rss_kb),
            mib(m.max_sampled_kb),
            mib(m.after.rss_kb),
            mib(m.after.hwm_kb),
            m.after.threads
        );
    }
    s.push('\n');
}

fn startup_table(s: &mut String, r: &Results) {
    if r.startup.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "#### Start-up: exec → first proxied 200 (ms; Envoy: exec of mast-agent)\n\n| target | median [min–max] | n | failed |\n|---|---|---|---|"
    );
    for (target, times) in &r.startup {
        let ok = Spread::of(times.iter().flatten().map(|d| d.as_secs_f64() * 1000.0));
        let _ = writeln!(
            s,
            "| {target} | {} | {} | {} |",
            ok.show(1),
            ok.n,
            times.iter().filter(|t| t.is_none()).count()
        );
    }
    s.push('\n');
}

#[path = "targets.rs"]
pub mod targets;
