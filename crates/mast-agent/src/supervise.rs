//! The supervisor: starts Envoy, reports it ready (log line and ports file) once its admin
//! `/ready` answers 200, restarts it with back-off when it dies (giving up after 5 restarts
//! within a minute), and on SIGTERM/SIGINT drains it gracefully (`POST
//! /drain_listeners?graceful`, the drain period, then SIGTERM, then SIGKILL if it lingers).
//!
//! Envoy's `/ready` turns LIVE once its initial xDS is done: the first CDS and LDS answers
//! (and the EDS/RDS they wait on) have arrived, or each has waited `initial_fetch_timeout`.
//! So with a reachable mastd "ready" means "configured", and without one it comes after
//! about twice the timeout, with no listeners.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mast_agent::admin::AdminClient;
use mast_agent::envoy::{EnvoyProcess, log_tail};
use mast_agent::metrics::AgentMetrics;
use mast_agent::ports::{PortsReport, remove_ports_file};
use mast_agent::restart::{RestartBudget, RestartPolicy};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing::{info, warn};

use crate::cli::AgentConfig;

/// How often `/ready` is polled until Envoy is ready.
const READY_POLL: Duration = Duration::from_millis(100);
/// How often the agent says it is still waiting.
const WAITING_NOTICE: Duration = Duration::from_secs(10);
/// How long Envoy may take to exit after SIGTERM before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(10);

/// SIGTERM and SIGINT.
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// How one run of Envoy ended.
enum Ended {
    /// We were asked to stop; Envoy is gone. The agent's exit code.
    Stopped(u8),
    /// Envoy exited on its own.
    Exited(std::process::ExitStatus),
}

/// Runs Envoy until asked to stop or out of restarts (each restart counted in `metrics`);
/// returns the agent's exit code.
pub async fn run(config: &AgentConfig, metrics: &AgentMetrics) -> anyhow::Result<u8> {
    let mut signals = Signals::new()?;
    let mut budget = RestartBudget::new(RestartPolicy::default());
    loop {
        let mut envoy = config.envoy.spawn()?;
        info!(pid = envoy.pid(), "envoy started");
        let ended = run_once(config, &mut envoy, &mut signals).await?;
        clear_ports_file(config);
        let status = match ended {
            Ended::Stopped(code) => return Ok(code),
            Ended::Exited(status) if status.success() => {
                info!("envoy exited cleanly; stopping");
                return Ok(0);
            }
            Ended::Exited(status) => status,
        };
        let tail = log_tail(&config.envoy.log_path, 5);
        warn!(%status, log = %tail, "envoy died");
        let Some(delay) = budget.next_delay(Instant::now()) else {
            bail!(
                "envoy died {} times within a minute; giving up",
                RestartPolicy::default().max_restarts + 1
            );
        };
        info!(delay_ms = delay.as_millis() as u64, "restarting envoy");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            sig = signals.recv() => {
                info!(signal = sig, "stopping (envoy is not running)");
                return Ok(0);
            }
        }
        metrics.envoy_restarted();
    }
}

async fn run_once(
    config: &AgentConfig,
    envoy: &mut EnvoyProcess,
    signals: &mut Signals,
) -> anyhow::Result<Ended> {
    let admin = AdminClient::new(config.plan.admin).with_timeout(Duration::from_secs(1));
    let mut ready = false;
    let started = Instant::now();
    let mut next_notice = started + WAITING_NOTICE;
    let mut poll = tokio::time::interval(READY_POLL);
    loop {
        tokio::select! {
            biased;
            sig = signals.recv() => {
                info!(signal = sig, "stopping");
                return Ok(Ended::Stopped(shutdown(config, envoy, &admin, signals).await));
            }
            status = envoy.wait() => return Ok(Ended::Exited(status.context("cannot wait for envoy")?)),
            _ = poll.tick(), if !ready => {
                if matches!(admin.is_ready().await, Ok(true)) {
                    ready = true;
                    report_ready(config, envoy.pid(), started.elapsed());
                } else if Instant::now() >= next_notice {
                    next_notice += WAITING_NOTICE;
                    let state = admin.get("/ready").await.map(|r| r.body.trim().to_owned()).unwrap_or_default();
                    info!(waited_s = started.elapsed().as_secs(), state, "envoy not ready yet");
                }
            }
        }
    }
}

fn report_ready(config: &AgentConfig, pid: u32, after: Duration) {
    let node_id = config.bootstrap.node.node_id();
    if let Some(path) = &config.ports_file {
        let report = PortsReport {
            plan: config.plan.clone(),
            envoy_pid: pid,
            node_id: node_id.clone(),
            work_dir: config.work_dir.clone(),
        };
        if let Err(e) = report.write(path) {
            warn!(error = %e, "cannot write the ports file");
        }
    }
    info!(
        pid,
        admin = config.plan.admin,
        node_id,
        after_ms = after.as_millis() as u64,
        "ready"
    );
}

fn clear_ports_file(config: &AgentConfig) {
    if let Some(path) = &config.ports_file
        && let Err(e) = remove_ports_file(path)
    {
        warn!(error = %e, "cannot remove the ports file");
    }
}

/// Drains, then stops Envoy; returns the agent's exit code (0, or 1 if Envoy had to be
/// killed).
async fn shutdown(
    config: &AgentConfig,
    envoy: &mut EnvoyProcess,
    admin: &AdminClient,
    signals: &mut Signals,
) -> u8 {
    if !config.drain.is_zero() {
        match admin.post("/drain_listeners?graceful").await {
            Ok(r) => info!(
                status = r.status,
                drain_ms = config.drain.as_millis() as u64,
                "draining listeners"
            ),
            Err(e) => warn!(error = %e, "cannot start draining"),
        }
        tokio::select! {
            biased;
            status = envoy.wait() => {
                info!(status = ?status.ok(), "envoy exited while draining");
                return 0;
            }
            sig = signals.recv() => info!(signal = sig, "second signal: stopping now"),
            _ = tokio::time::sleep(config.drain) => {}
        }
    }
    if let Err(e) = envoy.signal("TERM").await {
        warn!(error = %e, "asking envoy to quit through its admin instead");
        let _ = admin.post("/quitquitquit").await;
    }
    match tokio::time::timeout(TERM_GRACE, envoy.wait()).await {
        Ok(status) => {
            info!(status = ?status.ok(), "envoy stopped");
            0
        }
        Err(_) => {
            warn!(
                grace_s = TERM_GRACE.as_secs(),
                "envoy did not stop; killing it"
            );
            let _ = envoy.kill().await;
            1
        }
    }
}
