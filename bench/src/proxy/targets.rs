//! The targets for mast-proxy, judged against Envoy and direct of the same run.

use std::fmt::Write as _;

use super::Results;
use crate::load::Proto;
use crate::mesh::{Kind, TargetId};
use crate::stats::num;

/// One target line.
struct Check {
    what: &'static str,
    target: String,
    measured: String,
    met: Option<bool>,
}

/// Appends the targets table.
pub fn table(s: &mut String, r: &Results) {
    let checks = checks(r);
    if checks.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "#### Targets (mast-proxy, medians of this run)\n\n| target | goal | measured | met |\n|---|---|---|---|"
    );
    for c in checks {
        let met = match c.met {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "not measured",
        };
        let _ = writeln!(s, "| {} | {} | {} | {met} |", c.what, c.target, c.measured);
    }
    s.push('\n');
}

fn checks(r: &Results) -> Vec<Check> {
    let targets = r.targets();
    let Some(mast) = targets.iter().find(|t| t.kind == Kind::Mast).copied() else {
        return Vec::new();
    };
    let envoy = targets.iter().find(|t| t.kind == Kind::Envoy).copied();
    let mut out = Vec::new();
    latency_checks(r, mast, envoy, &mut out);
    cost_checks(r, mast, envoy, &mut out);
    out
}

fn latency_checks(r: &Results, mast: TargetId, envoy: Option<TargetId>, out: &mut Vec<Check>) {
    let p50 = r.added(mast, Proto::H1, 1000, 0);
    out.push(Check {
        what: "added p50, HTTP/1.1 at 1,000 req/s",
        target: "≤ 100 µs".into(),
        measured: p50.map_or("—".into(), |v| format!("{} µs", num(v, 0))),
        met: p50.map(|v| v <= 100.0),
    });
    let p99 = r.added(mast, Proto::H1, 1000, 2);
    let envoy_p99 = envoy.and_then(|e| r.added(e, Proto::H1, 1000, 2));
    out.push(Check {
        what: "added p99, HTTP/1.1 at 1,000 req/s",
        target: format!(
            "≤ ⅓ of Envoy's ({})",
            envoy_p99.map_or("—".into(), |e| format!("≤ {} µs", num(e / 3.0, 0)))
        ),
        measured: p99.map_or("—".into(), |v| format!("{} µs", num(v, 0))),
        met: p99.zip(envoy_p99).map(|(m, e)| m <= e / 3.0),
    });
    for proto in [Proto::H1, Proto::H2] {
        let runs = r.runs(mast, proto, 5000);
        let p99 = r.pct(mast, proto, 5000, 2);
        let achieved = crate::stats::Spread::of(runs.iter().map(|x| x.achieved));
        let failed: u64 = runs.iter().map(|x| x.failures).sum();
        out.push(Check {
            what: if proto == Proto::H1 {
                "5,000 req/s on one worker, HTTP/1.1"
            } else {
                "5,000 req/s on one worker, HTTP/2"
            },
            target: "held, p99 ≤ 5 ms".into(),
            measured: if runs.is_empty() {
                "—".into()
            } else {
                format!(
                    "{} req/s, p99 {} µs, {failed} failed ({mast})",
                    num(achieved.median, 0),
                    num(p99.median, 0)
                )
            },
            met: (!runs.is_empty() && mast.workers == 1)
                .then_some(achieved.median >= 4_950.0 && p99.median <= 5_000.0 && failed == 0),
        });
    }
}

fn cost_checks(r: &Results, mast: TargetId, envoy: Option<TargetId>, out: &mut Vec<Check>) {
    let cpu = r.cpu_per_10k(mast, Proto::H1, 1000);
    let envoy_cpu = envoy.map(|e| r.cpu_per_10k(e, Proto::H1, 1000));
    out.push(Check {
        what: "CPU per request (HTTP/1.1, 1,000 req/s)",
        target: format!(
            "≤ ⅓ of Envoy's ({} CPU-s / 10k)",
            envoy_cpu.map_or("—".into(), |e| format!("≤ {:.3}", e.median / 3.0))
        ),
        measured: format!("{:.3} CPU-s / 10k", cpu.median),
        met: envoy_cpu
            .filter(|e| e.n > 0 && cpu.n > 0)
            .map(|e| cpu.median <= e.median / 3.0),
    });
    let one = |kind| TargetId { kind, workers: 1 };
    let tp = r.throughput_of(one(Kind::Mast));
    let envoy_tp = r.throughput_of(one(Kind::Envoy));
    out.push(Check {
        what: "maximum throughput, one worker",
        target: format!("≥ 3× Envoy's (≥ {} req/s)", num(envoy_tp.median * 3.0, 0)),
        measured: if envoy_tp.n > 0 {
            format!(
                "{} req/s ({:.2}×)",
                num(tp.median, 0),
                tp.median / envoy_tp.median.max(1e-9)
            )
        } else {
            format!("{} req/s (Envoy not measured)", num(tp.median, 0))
        },
        met: (tp.n > 0 && envoy_tp.n > 0).then_some(tp.median >= 3.0 * envoy_tp.median),
    });
    let memory = r.memory.iter().find(|m| m.target == mast);
    let mib = |kb: u64| kb as f64 / 1024.0;
    out.push(Check {
        what: "RSS idle",
        target: "≤ 10 MiB".into(),
        measured: memory.map_or("—".into(), |m| format!("{:.1} MiB", mib(m.idle.rss_kb))),
        met: memory.map(|m| mib(m.idle.rss_kb) <= 10.0),
    });
    out.push(Check {
        what: "RSS under load (VmHWM after all phases)",
        target: "≤ 40 MiB".into(),
        measured: memory.map_or("—".into(), |m| format!("{:.1} MiB", mib(m.after.hwm_kb))),
        met: memory.map(|m| mib(m.after.hwm_kb) <= 40.0),
    });
    let startup = r.startup_of(Kind::Mast).filter(|s| s.n > 0);
    out.push(Check {
        what: "start-up: exec → first proxied 200",
        target: "≤ 20 ms".into(),
        measured: startup.map_or("—".into(), |s| format!("{} ms", s.show(1))),
        met: startup.map(|s| s.median <= 20.0),
    });
}
