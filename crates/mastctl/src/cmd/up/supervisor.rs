//! One task per workload: its WorkloadEntry (not yet healthy: no traffic), its sidecar
//! (ready = its ports file), then its program with the sidecar as HTTP proxy; the entry turns
//! `Healthy` once the program accepts connections on its port (a readiness probe, as
//! Kubernetes' before a pod gets traffic) and unhealthy when the program exits. `Always` programs that
//! exit are restarted with back-off (1 s doubling to 30 s, reset after 60 s up); a `Never`
//! program (a job) runs once and its sidecar stops with it. Stopping a workload stops the
//! program (SIGTERM, SIGKILL after 5 s), removes its entry, then drains its sidecar.
//! With `--capture namespaces` the workload first gets its pod ([`netns::Network::add_pod`]),
//! its sidecar and program run inside it, and the pod goes when the workload stops.
//! A gateway's life is its proxy alone ([`super::gateway::run_once`]), restarted the same way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mast_config::Resource;
use parking_lot::Mutex;
use tokio::process::Command;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::gateway;
use super::mesh::Mesh;
use super::netns::{self, Pod};
use super::ports::Block;
use super::proc::{self, Proc, Sink, say};
use super::sidecar::{self, SidecarFiles, SidecarPorts};
use crate::local::entry::{captured_env, program_env};
use crate::local::spec::{Key, LocalSpec, ProxyKind, Readiness};
use crate::local::state::GATEWAY_KIND;

/// How long a program has to exit after SIGTERM.
const PROGRAM_GRACE: Duration = Duration::from_secs(5);
/// First restart delay.
const BACKOFF_START: Duration = Duration::from_secs(1);
/// Longest restart delay.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Up this long, a program's back-off starts again from [`BACKOFF_START`].
const BACKOFF_RESET: Duration = Duration::from_secs(60);
/// How long a client or job waits for the start-up's servers.
const GATE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a program waits for its sidecar to have every running workload's endpoint.
const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(3);
/// After this long without its program listening, a server's first start counts as over
/// (clients stop waiting for it); it still gets traffic only once it listens.
const LISTEN_NOTICE: Duration = Duration::from_secs(30);

/// What workload tasks tell the main loop.
#[derive(Debug)]
pub enum Event {
    /// The workload's first start is over: its program runs, or it failed to start.
    Settled(Key),
    /// A job finished with this exit code.
    JobDone(Key, i32),
}

/// What all workload tasks share.
pub struct Ctx {
    /// The mesh state.
    pub mesh: Arc<Mesh>,
    /// mastd's xDS address.
    pub xds: String,
    /// The sidecar of workloads without the annotation.
    pub default_proxy: ProxyKind,
    /// The folder's resources (for the WorkloadEntries' ports).
    pub resources: Mutex<Arc<Vec<Resource>>>,
    /// Events for the main loop.
    pub events: mpsc::UnboundedSender<Event>,
    /// Becomes true once every server workload of the start-up has started.
    pub servers_settled: watch::Receiver<bool>,
    /// The pods' network (`--capture namespaces`).
    pub network: Option<Arc<netns::Network>>,
}

/// A running workload task.
pub struct Handle {
    /// What it runs.
    pub spec: LocalSpec,
    /// Its ports.
    pub block: Block,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Handle {
    /// Tells the task to stop (see [`Handle::join`]).
    pub fn request_stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Waits for the task to finish stopping.
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// Starts the task of workload `spec`.
pub fn spawn(ctx: Arc<Ctx>, spec: LocalSpec, block: Block) -> Handle {
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(supervise(ctx, spec.clone(), block.clone(), rx));
    Handle {
        spec,
        block,
        stop,
        task,
    }
}

/// Restart delays.
struct Backoff(Duration);

impl Backoff {
    /// The delay before the next start, after a run that lasted `ran`.
    fn next(&mut self, ran: Duration) -> Duration {
        if ran >= BACKOFF_RESET {
            self.0 = BACKOFF_START;
        }
        let delay = self.0;
        self.0 = (self.0 * 2).min(BACKOFF_MAX);
        delay
    }
}

/// How one life of a workload (sidecar + program) ended.
pub(super) enum Outcome {
    /// Stopped on request.
    Stopped,
    /// A job's program exited with this code.
    JobDone(i32),
    /// It failed (why); restarted with back-off.
    Failed(String),
}

/// Resolves once the workload is asked to stop.
pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

async fn supervise(ctx: Arc<Ctx>, spec: LocalSpec, block: Block, mut stop: watch::Receiver<bool>) {
    let kind = spec.proxy.unwrap_or(ctx.default_proxy);
    let key = spec.key.clone();
    let mut backoff = Backoff(BACKOFF_START);
    let mut settled = false;
    let pod = match make_pod(&ctx, &spec, kind) {
        Ok(pod) => pod,
        Err(e) => {
            say(format!("{key}: {e:#}"));
            mark(&ctx, &key, &format!("Failed: {e}"), true);
            let _ = ctx.events.send(Event::Settled(key.clone()));
            if spec.job {
                let _ = ctx.events.send(Event::JobDone(key.clone(), 1));
            }
            return;
        }
    };
    loop {
        ctx.mesh.update(&key, |w| {
            w.proxy = kind.as_str().into();
            w.status = "Starting".into();
            if spec.gateway {
                w.kind = Some(GATEWAY_KIND.into());
            }
        });
        let started = Instant::now();
        let life = Life {
            kind,
            block: &block,
            pod: pod.as_ref(),
        };
        let outcome = if spec.gateway {
            gateway::run_once(&ctx, &spec, (kind, &block), &mut stop, &mut settled).await
        } else {
            run_once(&ctx, &spec, &life, &mut stop, &mut settled).await
        };
        ctx.mesh.remove_entry(&key);
        let failure = match outcome {
            Outcome::Stopped => break,
            Outcome::JobDone(code) => {
                let _ = ctx.events.send(Event::JobDone(key.clone(), code));
                break;
            }
            Outcome::Failed(why) => why,
        };
        say(format!("{key}: {failure}"));
        mark(&ctx, &key, &format!("Failed: {failure}"), true);
        if !settled {
            settled = true;
            let _ = ctx.events.send(Event::Settled(key.clone()));
        }
        if spec.job {
            let _ = ctx.events.send(Event::JobDone(key.clone(), 1));
            break;
        }
        let delay = backoff.next(started.elapsed());
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stopped(&mut stop) => break,
        }
    }
    if let (Some(net), Some(pod)) = (&ctx.network, &pod) {
        net.remove_pod(pod);
    }
}

/// How one workload runs: its sidecar kind, ports, and pod (`--capture namespaces`).
struct Life<'a> {
    kind: ProxyKind,
    block: &'a Block,
    pod: Option<&'a Pod>,
}

/// The workload's pod with `--capture namespaces`, recorded in its state.
fn make_pod(ctx: &Ctx, spec: &LocalSpec, kind: ProxyKind) -> anyhow::Result<Option<Pod>> {
    // Gateways run on the host (their ports are the host's).
    let Some(net) = ctx.network.as_ref().filter(|_| !spec.gateway) else {
        return Ok(None);
    };
    let resources = Arc::clone(&ctx.resources.lock());
    let pod = net.add_pod(spec, kind, &resources)?;
    ctx.mesh.update(&spec.key, |w| {
        w.netns = Some(pod.ns.clone());
        w.address = Some(pod.ip.clone());
    });
    Ok(Some(pod))
}

async fn start_sidecar(
    ctx: &Ctx,
    spec: &LocalSpec,
    life: &Life<'_>,
) -> anyhow::Result<(Proc, SidecarFiles)> {
    let Some(pod) = life.pod else {
        let files = SidecarFiles::new(&ctx.mesh.run_dir, spec);
        let p = sidecar::start_sidecar(spec, life.kind, &ctx.xds, life.block, &files)?;
        return Ok((p, files));
    };
    netns::cmd::start_sidecar(pod, spec, life.kind, &ctx.xds, &ctx.mesh.run_dir).await
}

/// Records a status (and, when `down`, that no process runs).
pub(super) fn mark(ctx: &Ctx, key: &Key, status: &str, down: bool) {
    ctx.mesh.update(key, |w| {
        w.status = status.to_owned();
        if down {
            w.pid = None;
            w.sidecar_pid = None;
        }
    });
}

async fn run_once(
    ctx: &Ctx,
    spec: &LocalSpec,
    life: &Life<'_>,
    stop: &mut watch::Receiver<bool>,
    settled: &mut bool,
) -> Outcome {
    let block = life.block;
    // The WorkloadEntry goes in first: the sidecar then finds its own endpoint in its very
    // first configuration (mastd re-sends only endpoints when an endpoint appears later).
    if let Some(port) = spec.port {
        let resources = Arc::clone(&ctx.resources.lock());
        match life.pod {
            // In a pod: its address and the program's own port, as in a cluster.
            Some(pod) => ctx.mesh.write_entry_at(spec, port, &pod.ip, &resources),
            None => ctx.mesh.write_entry(spec, block.inbound, &resources),
        }
    }
    let (mut sidecar, files) = match start_sidecar(ctx, spec, life).await {
        Ok(p) => p,
        Err(e) => return Outcome::Failed(format!("{e:#}")),
    };
    let pid = sidecar.pid;
    ctx.mesh.update(&spec.key, |w| w.sidecar_pid = Some(pid));
    let ready = tokio::select! {
        r = sidecar::wait_ready(&mut sidecar, &files) => r,
        () = stopped(stop) => {
            stop_sidecar(sidecar).await;
            return Outcome::Stopped;
        }
    };
    let ports = match ready {
        Ok(p) => p,
        Err(e) => {
            stop_sidecar(sidecar).await;
            return Outcome::Failed(format!("{e:#}"));
        }
    };
    record_ports(ctx, spec, &ports, block.inbound, life.pod.is_some());
    tokio::select! {
        () = wait_for_endpoints(ctx, spec, ports.admin, life.pod.is_some()) => {}
        () = stopped(stop) => {
            stop_sidecar(sidecar).await;
            return Outcome::Stopped;
        }
    }
    let outcome = run_program(ctx, spec, (&ports, life.pod), &mut sidecar, stop, settled).await;
    ctx.mesh.remove_entry(&spec.key);
    stop_sidecar(sidecar).await;
    outcome
}

/// Stops a sidecar (or gateway proxy), letting it drain.
pub(super) async fn stop_sidecar(sidecar: Proc) {
    sidecar
        .stop(sidecar::DRAIN + Duration::from_secs(3), true)
        .await;
}

fn record_ports(
    ctx: &Ctx,
    spec: &LocalSpec,
    ports: &SidecarPorts,
    planned_inbound: u16,
    pod: bool,
) {
    let env = if pod {
        captured_env(spec)
    } else {
        program_env(spec, ports.outbound)
    };
    ctx.mesh.update(&spec.key, |w| {
        w.outbound = Some(ports.outbound);
        w.admin = Some(ports.admin);
        w.health = ports.health;
        w.inbound = ports.inbound.clone();
        w.env = env;
    });
    if let Some(inbound) = ports.inbound_for(spec.port)
        && !pod
        && inbound != planned_inbound
    {
        let resources = Arc::clone(&ctx.resources.lock());
        ctx.mesh.write_entry(spec, inbound, &resources);
    }
}

/// Before a program starts: a client or job (no port) waits for the start-up's servers,
/// then every program waits (a few seconds at most) until its sidecar has the endpoint of
/// every running workload, so its first requests find them.
async fn wait_for_endpoints(ctx: &Ctx, spec: &LocalSpec, admin: u16, pod: bool) {
    if spec.port.is_none() {
        let mut gate = ctx.servers_settled.clone();
        let _ = tokio::time::timeout(GATE_TIMEOUT, gate.wait_for(|v| *v)).await;
    }
    if pod {
        // The sidecar's admin port is inside its namespace: give the endpoints a moment.
        tokio::time::sleep(Duration::from_millis(300)).await;
        return;
    }
    let wanted = ctx.mesh.entry_listeners();
    if wanted.is_empty() {
        return;
    }
    let deadline = Instant::now() + PROPAGATION_TIMEOUT;
    while Instant::now() < deadline {
        let addr = format!("127.0.0.1:{admin}");
        let dump = tokio::task::spawn_blocking(move || crate::http::get(&addr, "/clusters")).await;
        if let Ok(Ok(text)) = dump
            && wanted
                .iter()
                .all(|p| text.contains(&format!("::127.0.0.1:{p}::")))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::debug!(workload = %spec.key, "starting before every endpoint reached the sidecar");
}

fn program_command(spec: &LocalSpec, ports: &SidecarPorts, pod: Option<&Pod>) -> Command {
    let mut cmd = match pod {
        Some(pod) => {
            let mut cmd = netns::cmd::in_pod(pod, &spec.command);
            cmd.envs(captured_env(spec));
            cmd
        }
        None => {
            let mut cmd = Command::new(&spec.command[0]);
            cmd.args(&spec.command[1..]);
            cmd.envs(program_env(spec, ports.outbound));
            cmd
        }
    };
    // `mastctl x echo` and friends resolve to the binaries next to this mastctl.
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Into::into))
    {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let dirs = std::iter::once(dir).chain(std::env::split_paths(&path));
        if let Ok(joined) = std::env::join_paths(dirs) {
            cmd.env("PATH", joined);
        }
    }
    cmd
}

async fn run_program(
    ctx: &Ctx,
    spec: &LocalSpec,
    (ports, pod): (&SidecarPorts, Option<&Pod>),
    sidecar: &mut Proc,
    stop: &mut watch::Receiver<bool>,
    settled: &mut bool,
) -> Outcome {
    let key = &spec.key;
    let mut backoff = Backoff(BACKOFF_START);
    loop {
        let started = Instant::now();
        let prefix = format!("[{}] ", key.name);
        let spawned = proc::spawn(
            program_command(spec, ports, pod),
            &format!("{:?}", spec.command[0]),
            Sink::Stdout(prefix.clone()),
            Sink::Stderr(prefix),
        );
        let result = match spawned {
            Ok(mut program) => {
                let pid = program.pid;
                ctx.mesh.update(key, |w| {
                    w.pid = Some(pid);
                    w.status = "Running".into();
                });
                // A server gets traffic while its readiness probe passes: its own
                // readinessProbe, else "its port accepts connections" (in a pod, whose port
                // only its sidecar reaches, once it runs); others are settled now.
                let own_probe = spec.readiness.is_some();
                let readiness = match (&spec.readiness, spec.port, pod) {
                    (Some(r), _, None) => Some(r.clone()),
                    (None, Some(port), None) => Some(Readiness::listening(port)),
                    (_, Some(_), Some(_)) => {
                        ctx.mesh.set_healthy(key, true);
                        None
                    }
                    _ => None,
                };
                let mut waiting = readiness.is_some();
                let mut readiness = readiness.map(ReadinessProbe::start);
                if !waiting {
                    settle(ctx, key, settled);
                }
                let notice = tokio::time::sleep(LISTEN_NOTICE);
                tokio::pin!(notice);
                let status = loop {
                    tokio::select! {
                        s = program.wait() => break s,
                        () = stopped(stop) => {
                            mark(ctx, key, "Stopping", false);
                            ctx.mesh.set_healthy(key, false);
                            program.stop(PROGRAM_GRACE, false).await;
                            return Outcome::Stopped;
                        }
                        s = sidecar.wait() => {
                            ctx.mesh.set_healthy(key, false);
                            program.stop(PROGRAM_GRACE, false).await;
                            let why = s.map(|s| proc::describe(&s)).unwrap_or_default();
                            return Outcome::Failed(format!("its sidecar {why}"));
                        }
                        ready = changed(&mut readiness) => {
                            ctx.mesh.set_healthy(key, ready);
                            let port = spec.port.unwrap_or(0);
                            let what = match (own_probe, ready) {
                                (true, false) => "its readiness probe fails: it gets no traffic until it passes".to_owned(),
                                (true, true) => "its readiness probe passes again: it gets traffic".to_owned(),
                                (false, false) => format!("nothing accepts connections on 127.0.0.1:{port}: it gets no traffic until something does"),
                                (false, true) => format!("127.0.0.1:{port} accepts connections again: it gets traffic"),
                            };
                            if !ready || !waiting {
                                say(format!("{key}: {what}"));
                            }
                            waiting &= !ready;
                            if ready {
                                settle(ctx, key, settled);
                            }
                        }
                        () = &mut notice, if waiting && !*settled => {
                            let what = if own_probe {
                                "its readiness probe has not passed".to_owned()
                            } else {
                                format!("nothing listens on 127.0.0.1:{}", spec.port.unwrap_or(0))
                            };
                            say(format!(
                                "{key}: {what} after {}s; it gets no traffic until it does",
                                LISTEN_NOTICE.as_secs()
                            ));
                            settle(ctx, key, settled);
                        }
                    }
                };
                ctx.mesh.set_healthy(key, false);
                proc::signal_group(pid, rustix::process::Signal::KILL);
                match status {
                    Ok(s) => Ok(s),
                    Err(e) => Err(format!("waiting for the program: {e}")),
                }
            }
            Err(e) => Err(format!("{e:#}")),
        };
        let code = match &result {
            Ok(s) => proc::exit_code(s),
            Err(_) => 127,
        };
        let what = match &result {
            Ok(s) => proc::describe(s),
            Err(e) => e.clone(),
        };
        if spec.job {
            let status = if code == 0 {
                "Completed".to_owned()
            } else {
                format!("Failed ({what})")
            };
            say(format!("{key}: job {what}"));
            mark(ctx, key, &status, false);
            ctx.mesh.update(key, |w| w.pid = None);
            settle(ctx, key, settled);
            return Outcome::JobDone(code);
        }
        let delay = backoff.next(started.elapsed());
        say(format!("{key}: {what}; restarting in {}s", delay.as_secs()));
        settle(ctx, key, settled);
        ctx.mesh.update(key, |w| {
            w.pid = None;
            w.restarts += 1;
            w.status = format!("Restarting ({what})");
        });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stopped(stop) => return Outcome::Stopped,
        }
    }
}

/// A workload's readiness probe running against its program (stopped when dropped): each
/// change of readiness comes out of `changes`. Ready after `successThreshold` passes in a
/// row, not ready after `failureThreshold` failures in a row, as the kubelet decides; until
/// the first pass the probe runs every 50 ms (at most its period) for [`LISTEN_NOTICE`],
/// then every period.
struct ReadinessProbe {
    changes: mpsc::UnboundedReceiver<bool>,
    task: JoinHandle<()>,
}

impl ReadinessProbe {
    fn start(r: Readiness) -> Self {
        let (tx, changes) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            tokio::time::sleep(r.initial_delay).await;
            let headers = http::HeaderMap::new();
            let started = Instant::now();
            let (mut ready, mut ever) = (false, false);
            let (mut passes, mut failures) = (0u32, 0u32);
            loop {
                let answer = mast_probe::run(&r.prober, &headers).await;
                if (200..400).contains(&answer.status) {
                    (passes, failures) = (passes.saturating_add(1), 0);
                } else {
                    (passes, failures) = (0, failures.saturating_add(1));
                }
                let now = if ready {
                    failures < r.failure_threshold
                } else {
                    passes >= r.success_threshold
                };
                if now != ready {
                    ready = now;
                    ever |= now;
                    if tx.send(now).is_err() {
                        return;
                    }
                }
                let pause = if ever || started.elapsed() >= LISTEN_NOTICE {
                    r.period
                } else {
                    r.period.min(Duration::from_millis(50))
                };
                tokio::time::sleep(pause).await;
            }
        });
        Self { changes, task }
    }
}

impl Drop for ReadinessProbe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The next change of `probe`'s readiness (never, without a probe).
async fn changed(probe: &mut Option<ReadinessProbe>) -> bool {
    match probe {
        Some(p) => match p.changes.recv().await {
            Some(ready) => ready,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// Tells the main loop, once, that the workload's first start is over.
pub(super) fn settle(ctx: &Ctx, key: &Key, settled: &mut bool) {
    if !*settled {
        *settled = true;
        let _ = ctx.events.send(Event::Settled(key.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_thirty_seconds_and_resets_after_a_minute_up() {
        let mut b = Backoff(BACKOFF_START);
        let short = Duration::from_millis(10);
        let delays: Vec<u64> = (0..7).map(|_| b.next(short).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(b.next(Duration::from_secs(61)).as_secs(), 1);
    }
}
