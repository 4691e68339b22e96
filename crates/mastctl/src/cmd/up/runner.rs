//! The main loop of `mastctl up`: start-up (analysis, state file, mastd, workloads), the
//! table and "all workloads ready" once every workload has started, live edits, jobs with
//! `--exit-with-jobs`, and the shutdown on Ctrl-C/SIGTERM.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use parking_lot::Mutex;
use rustix::process::Signal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::config::{self, Folder};
use super::mesh::Mesh;
use super::netns;
use super::ports::PortPlan;
use super::proc::{self, Proc, say};
use super::prometheus;
use super::sidecar;
use super::supervisor::{self, Ctx, Event, Handle};
use super::watch::{POLL, Watch};
use super::{Args, Capture};
use crate::local::spec::{Key, LocalSpec, ProxyKind};
use crate::local::state::{self, MastdState, State};

/// Runs `mastctl up`.
pub async fn run(args: &Args) -> anyhow::Result<i32> {
    let t0 = Instant::now();
    let mut sigint = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    if !args.dir.is_dir() {
        bail!("{} is not a folder", args.dir.display());
    }
    let abs = std::path::absolute(&args.dir)?;
    let folder = config::read(&args.dir);
    for m in &folder.messages {
        println!("{m}");
    }
    if folder.has_errors() {
        eprintln!("Error: the folder has errors (above); fix them and run mastctl up again.");
        return Ok(if folder.broken_files.is_empty() {
            crate::exit::ANALYZER_FOUND_ISSUES
        } else {
            crate::exit::DATA_ERROR
        });
    }
    let kinds: Vec<ProxyKind> = folder
        .specs
        .values()
        .map(|s| s.proxy.unwrap_or(args.proxy))
        .collect();
    sidecar::check_binaries(&kinds)?;
    if args.prometheus {
        prometheus::check_binary(&args.prometheus_bin)?;
    }
    let pods = args.capture == Capture::Namespaces;
    if pods && let Some(why) = netns::unavailable() {
        bail!(why);
    }
    let mut plan = PortPlan::new(args.port_base);
    let host = if pods { netns::BRIDGE_IP } else { "127.0.0.1" };
    let mesh = Arc::new(prepare(args, &abs, &mut plan, host)?);
    // Before mastd: its xDS listens on the bridge. Dropped last: the pods go with it.
    let network = if pods {
        match netns::Network::create(&mesh.state_file, &mesh.run_dir) {
            Ok(n) => Some(Arc::new(n)),
            Err(e) => {
                mesh.clean_up();
                return Err(e);
            }
        }
    } else {
        None
    };
    let mut prom = match prometheus::start_for(args, &mesh).await {
        Ok(p) => p,
        Err(e) => {
            mesh.clean_up();
            return Err(e);
        }
    };
    // Before mastd: it reads the gateways' generated Services with the folder.
    mesh.sync_gateway_services(&folder.gateway_services);
    let snapshot = mesh.snapshot();
    let generated = mesh.generated.clone();
    let mastd = match sidecar::start_mastd(
        &[&args.dir, &generated],
        &sidecar::MastdOptions {
            xds: snapshot.mastd.xds.clone(),
            monitoring: snapshot.mastd.monitoring.clone(),
            dashboard: plan.dashboard(args.dashboard_addr.as_deref())?,
            prometheus: snapshot.prometheus.clone(),
            reuse_port: plan.mastd_reuse_port(),
        },
        &mesh.run_dir,
    )
    .await
    {
        Ok(p) => p,
        Err(e) => {
            mesh.clean_up();
            return Err(e);
        }
    };
    let pid = mastd.pid;
    let dashboard = sidecar::dashboard_url(&snapshot.mastd.monitoring).await;
    mesh.with_state(|s| {
        s.mastd.pid = Some(pid);
        s.dashboard = dashboard.unwrap_or_default();
    });
    let (tx, mut events) = mpsc::unbounded_channel();
    let (servers_tx, servers_settled) = tokio::sync::watch::channel(false);
    let ctx = Arc::new(Ctx {
        mesh,
        xds: snapshot.mastd.xds.clone(),
        default_proxy: args.proxy,
        resources: Mutex::new(Arc::clone(&folder.resources)),
        events: tx,
        servers_settled,
        network,
    });
    say(format!(
        "{}: mastd on {} (xDS), starting {} workloads",
        args.dir.display(),
        snapshot.mastd.xds,
        folder.specs.len()
    ));
    let mut run = Running::new(ctx, t0, args.exit_with_jobs, servers_tx);
    run.seen
        .extend(folder.messages.iter().map(ToString::to_string));
    for spec in folder.specs.values() {
        run.start(spec.clone(), &mut plan)?;
    }
    if run.pending_servers.is_empty() {
        run.servers_settled.send_replace(true);
    }
    let mut mastd = mastd;
    let mut watch = Watch::new(&args.dir);
    let mut tick = tokio::time::interval(POLL);
    let code = loop {
        tokio::select! {
            _ = sigint.recv() => break 0,
            _ = sigterm.recv() => break 0,
            status = mastd.wait() => {
                say(format!("mastd {}; stopping the mesh", status.map(|s| proc::describe(&s)).unwrap_or_default()));
                break 1;
            }
            Some(ev) = events.recv() => {
                if let Some(code) = run.on_event(ev) {
                    break code;
                }
            }
            status = prometheus::exited(&mut prom) => {
                say(format!("prometheus {}; the mesh goes on without it", status.map(|s| proc::describe(&s)).unwrap_or_default()));
                prom = None;
            }
            _ = tick.tick() => {
                if watch.changed() {
                    run.reload(&args.dir, &mut plan).await;
                }
                if let Some(p) = prom.as_mut() {
                    p.refresh(&run.ctx.mesh.snapshot(), run.handles.values().map(|h| &h.spec));
                }
            }
        }
    };
    if let Some(p) = prom {
        p.stop().await;
    }
    run.shutdown(mastd, &mut sigint).await;
    Ok(code)
}

/// Checks that the folder's mesh is not already running, creates the run folder and the
/// generated folder, and writes the first state.
fn prepare(args: &Args, abs: &Path, plan: &mut PortPlan, host: &str) -> anyhow::Result<Mesh> {
    let state_file = args
        .state_file
        .clone()
        .unwrap_or_else(|| state::default_path(abs));
    if let Ok(old) = state::read(&state_file)
        && old.pid != std::process::id()
        && state::is_alive(old.pid)
    {
        bail!(
            "{} already runs (mastctl up, pid {}; state file {}): stop it first",
            old.dir.display(),
            old.pid,
            state_file.display()
        );
    }
    if let Some(parent) = state_file.parent() {
        sidecar::ensure_dir(parent)?;
    }
    let run_dir = state::run_dir(&state_file);
    let generated = run_dir.join("generated");
    let _ = std::fs::remove_dir_all(&generated);
    sidecar::ensure_dir(&generated)?;
    let (xds, monitoring) = plan.mastd()?;
    let initial = State {
        dir: abs.to_path_buf(),
        pid: std::process::id(),
        mastd: MastdState {
            pid: None,
            xds: format!("{host}:{xds}"),
            monitoring: format!("127.0.0.1:{monitoring}"),
        },
        dashboard: String::new(),
        prometheus: None,
        generated,
        workloads: Vec::new(),
    };
    let mesh = Mesh::new(initial, state_file, run_dir);
    mesh.with_state(|_| {});
    Ok(mesh)
}

/// The running workloads and what the main loop tracks about them.
struct Running {
    ctx: Arc<Ctx>,
    handles: BTreeMap<Key, Handle>,
    /// Workloads whose first start is not over yet.
    pending: BTreeSet<Key>,
    /// Whether the start-up table was printed.
    announced: bool,
    t0: Instant,
    exit_with_jobs: bool,
    /// Jobs and their exit codes once finished.
    jobs: BTreeMap<Key, Option<i32>>,
    first_failure: Option<i32>,
    /// Analysis messages already shown.
    seen: BTreeSet<String>,
    /// Server workloads (with a port) whose first start is not over yet.
    pending_servers: BTreeSet<Key>,
    /// Opens the gate clients and jobs wait at (see [`Ctx::servers_settled`]).
    servers_settled: tokio::sync::watch::Sender<bool>,
}

impl Running {
    fn new(
        ctx: Arc<Ctx>,
        t0: Instant,
        exit_with_jobs: bool,
        servers_settled: tokio::sync::watch::Sender<bool>,
    ) -> Self {
        Self {
            ctx,
            handles: BTreeMap::new(),
            pending: BTreeSet::new(),
            announced: false,
            t0,
            exit_with_jobs,
            jobs: BTreeMap::new(),
            first_failure: None,
            seen: BTreeSet::new(),
            pending_servers: BTreeSet::new(),
            servers_settled,
        }
    }

    fn start(&mut self, spec: LocalSpec, plan: &mut PortPlan) -> anyhow::Result<()> {
        let block = plan.take()?;
        warn_shared_port(&spec, self.handles.values().map(|h| &h.spec));
        if spec.job {
            self.jobs.insert(spec.key.clone(), None);
        }
        self.pending.insert(spec.key.clone());
        if (spec.port.is_some() || spec.gateway) && !*self.servers_settled.borrow() {
            self.pending_servers.insert(spec.key.clone());
        }
        let key = spec.key.clone();
        let handle = supervisor::spawn(Arc::clone(&self.ctx), spec, block);
        self.handles.insert(key, handle);
        Ok(())
    }

    /// Handles a workload event; `Some(code)` ends the mesh.
    fn on_event(&mut self, ev: Event) -> Option<i32> {
        match ev {
            Event::Settled(key) => {
                self.pending.remove(&key);
                self.server_settled(&key);
                if self.pending.is_empty() {
                    self.announce();
                }
            }
            Event::JobDone(key, code) => {
                if let Some(slot) = self.jobs.get_mut(&key) {
                    *slot = Some(code);
                }
                if code != 0 && self.first_failure.is_none() {
                    self.first_failure = Some(code);
                }
                let all_done = !self.jobs.is_empty() && self.jobs.values().all(Option::is_some);
                if self.exit_with_jobs && all_done {
                    say("every job has finished (--exit-with-jobs)");
                    return Some(self.first_failure.unwrap_or(0));
                }
            }
        }
        None
    }

    /// Notes that a server's first start is over; opens the clients' gate after the last.
    fn server_settled(&mut self, key: &Key) {
        self.pending_servers.remove(key);
        if self.pending_servers.is_empty() {
            self.servers_settled.send_replace(true);
        }
    }

    /// Prints the table and, the first time, how long start-up took.
    fn announce(&mut self) {
        print!("{}", self.ctx.mesh.table());
        if self.announced {
            return;
        }
        self.announced = true;
        let ms = self.t0.elapsed().as_millis();
        let state = self.ctx.mesh.snapshot();
        let down: Vec<String> = self
            .handles
            .values()
            .filter(|h| !h.spec.job)
            .filter(|h| {
                let w = state
                    .workloads
                    .iter()
                    .find(|w| w.name == h.spec.key.name && w.namespace == h.spec.key.namespace);
                w.is_none_or(|w| w.status != "Running")
            })
            .map(|h| h.spec.key.to_string())
            .collect();
        if down.is_empty() {
            println!("all workloads ready in {ms} ms");
        } else {
            println!("not ready after {ms} ms: {} (see above)", down.join(", "));
        }
    }

    /// Applies an edit of the folder: analysis shown, entries refreshed, workloads added,
    /// removed or restarted.
    async fn reload(&mut self, dir: &Path, plan: &mut PortPlan) {
        let folder = config::read(dir);
        self.show_new_messages(&folder);
        *self.ctx.resources.lock() = Arc::clone(&folder.resources);
        self.ctx
            .mesh
            .sync_gateway_services(&folder.gateway_services);
        self.ctx.mesh.refresh_entries(&folder.resources);
        if let Some(net) = &self.ctx.network {
            net.refresh_hosts(&folder.resources);
        }
        let running: BTreeMap<Key, LocalSpec> = self
            .handles
            .iter()
            .map(|(k, h)| (k.clone(), h.spec.clone()))
            .collect();
        let want = config::desired(&folder, &running);
        let stale: Vec<Key> = running
            .iter()
            .filter(|(k, s)| want.get(*k) != Some(*s))
            .map(|(k, _)| k.clone())
            .collect();
        self.stop(&stale, plan, &want).await;
        for (key, spec) in want {
            if self.handles.contains_key(&key) {
                continue;
            }
            let verb = if running.contains_key(&key) {
                "restarting (changed)"
            } else {
                "starting (added)"
            };
            say(format!("{key}: {verb}"));
            if let Err(e) = self.start(spec, plan) {
                say(format!("{key}: {e:#}"));
            }
        }
    }

    async fn stop(&mut self, keys: &[Key], plan: &mut PortPlan, want: &BTreeMap<Key, LocalSpec>) {
        let mut stopping = Vec::new();
        for key in keys {
            if let Some(h) = self.handles.remove(key) {
                if !want.contains_key(key) {
                    say(format!("{key}: stopping (removed)"));
                }
                self.pending.remove(key);
                self.server_settled(key);
                self.jobs.remove(key);
                h.request_stop();
                stopping.push(h);
            }
        }
        for h in stopping {
            let (key, block) = (h.spec.key.clone(), h.block.clone());
            h.join().await;
            plan.release(&block);
            self.ctx.mesh.remove(&key);
        }
    }

    fn show_new_messages(&mut self, folder: &Folder) {
        for m in &folder.messages {
            if self.seen.insert(m.to_string()) {
                say(m);
            }
        }
        if folder.has_errors() {
            say(
                "the folder has errors (above): what they affect is kept as it runs until they are fixed",
            );
        }
    }

    /// Stops every workload, then mastd, and removes the state file. A second Ctrl-C kills
    /// what is left at once.
    async fn shutdown(self, mastd: Proc, sigint: &mut tokio::signal::unix::Signal) {
        say("stopping the mesh");
        for h in self.handles.values() {
            h.request_stop();
        }
        let joins = async {
            for h in self.handles.into_values() {
                h.join().await;
            }
        };
        tokio::select! {
            () = joins => {}
            _ = sigint.recv() => {
                say("killing what is left");
                for w in self.ctx.mesh.snapshot().workloads {
                    for pid in [w.pid, w.sidecar_pid].into_iter().flatten() {
                        proc::signal_group(pid, Signal::KILL);
                    }
                }
            }
        }
        mastd.stop(std::time::Duration::from_secs(5), false).await;
        self.ctx.mesh.clean_up();
        say("stopped");
    }
}

/// Workloads share 127.0.0.1 in ports mode: two programs told the same `$PORT` cannot both
/// listen. Says so rather than leaving a crash loop to explain.
fn warn_shared_port<'a>(spec: &LocalSpec, mut others: impl Iterator<Item = &'a LocalSpec>) {
    let Some(port) = spec.port else { return };
    if let Some(other) = others.find(|o| o.port == Some(port)) {
        say(format!(
            "{}: port {port} is also {}'s; workloads share 127.0.0.1 here, so give each its own port (and its Services the matching targetPort)",
            spec.key, other.key
        ));
    }
}
