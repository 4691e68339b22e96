//! The run: start the upstream, mastd and the sidecars; warm every target up; then for each
//! rep, every phase over every target in turn (interleaved, so drift on the noisy host hits
//! all alike): fixed-rate latency (each protocol × rate) and closed-loop throughput; then
//! memory after the load, start-up times, and the profile; finally the report.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use crate::Args;
use crate::load::{self, Proto};
use crate::mesh::{self, Kind, Sidecar, Target, TargetId, Tools};
use crate::procs::{self, ProcStats, RssSampler};
use crate::report::{self, Memory, Results};
use crate::stats::{LatencyRun, ThroughputRun};
use crate::upstream::Upstream;

/// Everything running during the measurements.
struct Bench {
    args: Args,
    ticks: u64,
    targets: Vec<Target>,
    sidecars: Vec<Sidecar>,
    results: Results,
}

/// Runs the whole benchmark and prints (and optionally writes) the report.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let tools = Tools::find(args.wants("envoy"), args.wants("mast"))?;
    let (root, _temp) = mesh::run_folder(args.keep.as_deref(), "mast-proxy-bench")?;
    let upstream = Upstream::spawn().await?;
    let mastd = mesh::start_mastd(&tools, &root, upstream.h1.port()).await?;
    let xds = mastd.xds_addr();
    eprintln!(
        "upstream {} / {} (pid {}), mastd xDS {xds}, Envoy {}, folder {}",
        upstream.h1,
        upstream.h2,
        upstream.pid(),
        tools
            .envoy
            .as_ref()
            .map_or("-".into(), |e| e.display().to_string()),
        root.display()
    );
    let mut bench = Bench {
        ticks: procs::clock_ticks(),
        targets: Vec::new(),
        sidecars: Vec::new(),
        results: Results::new(&args, &tools),
        args,
    };
    bench.start_targets(&tools, &upstream, xds).await?;
    bench.warm_up().await;
    for rep in 0..bench.args.reps {
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        bench.results.notes.push(format!(
            "host load average at the start of rep {}: {}",
            rep + 1,
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        ));
        bench.latency_rep(rep).await?;
        bench.throughput_rep(rep).await?;
    }
    bench.memory_after_load();
    bench.startup(&tools, xds, &root).await?;
    if bench.args.wants("mast") && bench.args.profile_seconds > 0 {
        bench.profile(&root).await;
    }
    let text = report::render(&bench.results);
    println!("{text}");
    if let Some(out) = &bench.args.out {
        std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    }
    drop(mastd);
    drop(upstream);
    Ok(())
}

impl Bench {
    /// Direct plus one sidecar per selected kind and worker count.
    async fn start_targets(
        &mut self,
        tools: &Tools,
        upstream: &Upstream,
        xds: std::net::SocketAddr,
    ) -> anyhow::Result<()> {
        if self.args.wants("direct") {
            self.targets.push(Target {
                id: TargetId {
                    kind: Kind::Direct,
                    workers: 0,
                },
                h1: load::Endpoint {
                    addr: upstream.h1,
                    absolute: false,
                    url: load::URL,
                },
                h2: load::Endpoint {
                    addr: upstream.h2,
                    absolute: false,
                    url: load::URL,
                },
                pid: upstream.pid(),
            });
        }
        let mut workers = vec![self.args.workers];
        workers.extend(self.args.throughput_workers.iter().copied());
        workers.sort_unstable();
        workers.dedup();
        for kind in [Kind::Envoy, Kind::Mast] {
            if !self.args.wants(kind.name()) {
                continue;
            }
            for &w in &workers {
                let id = TargetId { kind, workers: w };
                let sidecar = Sidecar::start(tools, id, xds).await?;
                eprintln!(
                    "{id}: pid {}, outbound {}, idle RSS {} KiB, {} threads",
                    sidecar.process.pid(),
                    sidecar.process.outbound_addr(),
                    sidecar.idle.rss_kb,
                    sidecar.idle.threads
                );
                self.results.idle.push((id, sidecar.idle));
                self.targets.push(sidecar.target());
                self.sidecars.push(sidecar);
            }
        }
        Ok(())
    }

    fn latency_targets(&self) -> Vec<Target> {
        let workers = self.args.workers;
        self.targets
            .iter()
            .filter(|t| t.id.kind == Kind::Direct || t.id.workers == workers)
            .copied()
            .collect()
    }

    fn throughput_targets(&self) -> Vec<Target> {
        let wanted = &self.args.throughput_workers;
        self.targets
            .iter()
            .filter(|t| t.id.kind == Kind::Direct || wanted.contains(&t.id.workers))
            .copied()
            .collect()
    }

    /// A short unrecorded run per target and protocol (connections, pools, caches).
    async fn warm_up(&mut self) {
        let secs = if self.args.quick { 1 } else { 2 };
        for target in self.targets.clone() {
            for proto in [Proto::H1, Proto::H2] {
                let ep = target.endpoint(proto);
                let out =
                    load::open_loop(ep, proto, 1000, self.args.connections, secs_d(secs)).await;
                match out {
                    Ok(o) if o.failures() == 0 => {}
                    Ok(o) => self.results.notes.push(format!(
                        "warm-up {} {}: {} failures ({})",
                        target.id,
                        proto.label(),
                        o.failures(),
                        o.first_error.unwrap_or_default()
                    )),
                    Err(e) => self.results.notes.push(format!(
                        "warm-up {} {}: {e:#}",
                        target.id,
                        proto.label()
                    )),
                }
            }
        }
    }

    async fn latency_rep(&mut self, rep: usize) -> anyhow::Result<()> {
        let duration = secs_d(self.args.latency_secs());
        for proto in [Proto::H1, Proto::H2] {
            for rate in self.args.rates.clone() {
                for target in self.latency_targets() {
                    let ep = target.endpoint(proto);
                    let connections = self.args.connections;
                    let (out, cpu, rss) = self
                        .measured(
                            target.pid,
                            load::open_loop(ep, proto, rate, connections, duration),
                        )
                        .await;
                    let out =
                        out.with_context(|| format!("{} {} {rate}/s", target.id, proto.label()))?;
                    let run = LatencyRun::new(target.id, proto, rate, &out, cpu, rss);
                    eprintln!(
                        "rep {} {:<9} {:<13} {rate:>5}/s: p50 {} p90 {} p99 {} p99.9 {} µs, {:.0} req/s, {} failed, cpu {:.2} s/10k",
                        rep + 1,
                        target.id.to_string(),
                        proto.label(),
                        run.pcts[0],
                        run.pcts[1],
                        run.pcts[2],
                        run.pcts[3],
                        run.achieved,
                        run.failures,
                        run.cpu_per_10k()
                    );
                    self.results.latency.push(run);
                }
            }
        }
        Ok(())
    }

    async fn throughput_rep(&mut self, rep: usize) -> anyhow::Result<()> {
        let duration = secs_d(self.args.throughput_secs());
        for target in self.throughput_targets() {
            let connections = self.args.throughput_connections;
            let (out, cpu, rss) = self
                .measured(
                    target.pid,
                    load::closed_loop(target.h1, Proto::H1, connections, duration),
                )
                .await;
            let out = out.with_context(|| format!("{} throughput", target.id))?;
            let run = LatencyRun::new(target.id, Proto::H1, 0, &out, cpu, rss);
            eprintln!(
                "rep {} {:<9} throughput: {:.0} req/s, p50 {} p99 {} µs, {} failed, cpu {:.2} s/10k",
                rep + 1,
                target.id.to_string(),
                run.achieved,
                run.pcts[0],
                run.pcts[2],
                run.failures,
                run.cpu_per_10k()
            );
            self.results.throughput.push(ThroughputRun {
                target: target.id,
                run,
            });
        }
        Ok(())
    }

    /// Runs `load` while sampling `pid`'s RSS; returns its result, the CPU `pid` used and the
    /// largest RSS seen.
    async fn measured<T>(&self, pid: u32, load: impl Future<Output = T>) -> (T, Duration, u64) {
        let before = procs::cpu_ticks(pid);
        let sampler = RssSampler::start(Some(pid));
        let out = load.await;
        let after = procs::cpu_ticks(pid);
        let rss = sampler.stop();
        let cpu = Duration::from_millis(after.saturating_sub(before) * 1000 / self.ticks.max(1));
        (out, cpu, rss)
    }

    fn memory_after_load(&mut self) {
        for sidecar in &self.sidecars {
            let now: ProcStats = procs::read(sidecar.process.pid());
            let sampled = self
                .results
                .latency
                .iter()
                .map(|r| (r.target, r.rss_kb))
                .chain(
                    self.results
                        .throughput
                        .iter()
                        .map(|t| (t.target, t.run.rss_kb)),
                )
                .filter(|(t, _)| *t == sidecar.id)
                .map(|(_, kb)| kb)
                .max()
                .unwrap_or(0);
            self.results.memory.push(Memory {
                target: sidecar.id,
                idle: sidecar.idle,
                max_sampled_kb: sampled,
                after: now,
            });
        }
    }

    async fn startup(
        &mut self,
        tools: &Tools,
        xds: std::net::SocketAddr,
        root: &std::path::Path,
    ) -> anyhow::Result<()> {
        let reps = self.args.startup_reps();
        for kind in [Kind::Envoy, Kind::Mast] {
            if !self.args.wants(kind.name()) || reps == 0 {
                continue;
            }
            let workers = self.args.workers;
            let times = crate::startup::measure(tools, kind, workers, xds, root, reps).await?;
            eprintln!(
                "start-up {}-c{workers}: {:?}",
                kind.name(),
                times
                    .iter()
                    .map(|t| t.map(|d| d.as_secs_f64() * 1000.0))
                    .collect::<Vec<_>>()
            );
            self.results
                .startup
                .push((TargetId { kind, workers }, times));
        }
        Ok(())
    }

    async fn profile(&mut self, root: &std::path::Path) {
        let Some(target) = self
            .targets
            .iter()
            .find(|t| t.id.kind == Kind::Mast && t.id.workers == 1)
            .copied()
        else {
            return;
        };
        let dir: PathBuf = root.join("profile");
        let secs = self.args.profile_seconds;
        match crate::profile::run(target, &dir, secs, self.args.connections).await {
            Ok(text) => self.results.profile = Some(text),
            Err(e) => self.results.notes.push(format!("profile: {e:#}")),
        }
    }
}

fn secs_d(secs: u64) -> Duration {
    Duration::from_secs(secs.max(1))
}
