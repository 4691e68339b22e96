//! `mast-agent`: runs Envoy as a Mast sidecar or gateway. This file only parses flags, sets
//! up logging (`MAST_LOG`, default `info`, to stderr) and maps the outcome to an exit code;
//! [`cli`] resolves the flags, [`certs`] gets the workload's certificate, the SDS server
//! (`mast_agent::sds`) serves it to Envoy, [`supervise`] runs Envoy, and the metrics port
//! (`mast_agent::metrics`) serves Envoy's stats merged with the agent's.

mod certs;
mod cli;
mod iptables;
mod supervise;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use mast_agent::metrics::{AgentMetrics, MetricsServer};
use mast_agent::sds::SdsServer;
use tracing::{error, info, warn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MAST_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = cli::Args::parse();
    if let Some(cli::Command::Iptables(flags)) = &args.command {
        return iptables::run(flags);
    }
    let mut config = match args.resolve() {
        Ok(config) => config,
        Err(e) => {
            error!("{e:#}");
            return ExitCode::from(2);
        }
    };
    info!(
        node_id = config.bootstrap.node.node_id(),
        work_dir = %config.work_dir.display(),
        envoy = %config.envoy.binary.display(),
        admin = config.plan.admin,
        "starting envoy"
    );
    let metrics = AgentMetrics::new();
    let metrics_task = start_metrics(&mut config, &metrics).await;
    let certificates = match certs::start(&config.identity, &metrics) {
        Ok(c) => c,
        Err(e) => {
            error!("{e:#}");
            return ExitCode::from(2);
        }
    };
    let listener = match SdsServer::bind(&config.sds_socket) {
        Ok(l) => l,
        Err(e) => {
            error!(socket = %config.sds_socket.display(), "cannot listen for SDS: {e}");
            return ExitCode::from(1);
        }
    };
    let (stop_sds, sds_stopped) = tokio::sync::oneshot::channel::<()>();
    let sds = SdsServer::new(certificates.bundles.clone(), certificates.pending)
        .with_metrics(metrics.clone());
    let sds = tokio::spawn(sds.serve(listener, async {
        let _ = sds_stopped.await;
    }));
    let code = match supervise::run(&config, &metrics).await {
        Ok(code) => code,
        Err(e) => {
            error!("{e:#}");
            1
        }
    };
    let _ = stop_sds.send(());
    match tokio::time::timeout(std::time::Duration::from_secs(1), sds).await {
        Ok(Ok(Err(e))) => warn!("SDS server: {e}"),
        Err(_) => warn!("SDS server did not stop in time"),
        _ => {}
    }
    if let Some(task) = metrics_task {
        task.abort();
    }
    let _ = std::fs::remove_file(&config.sds_socket);
    drop(certificates);
    if code == 0 && config.temporary_work_dir {
        let _ = std::fs::remove_dir_all(&config.work_dir);
    }
    ExitCode::from(code)
}

/// Binds and serves the metrics port when asked for. A port that cannot be bound is not
/// fatal (Envoy still runs): the agent says so and the ports file leaves `prometheus` out.
async fn start_metrics(
    config: &mut cli::AgentConfig,
    metrics: &AgentMetrics,
) -> Option<tokio::task::JoinHandle<std::io::Result<()>>> {
    let addr = config.metrics_addr?;
    // SO_REUSEPORT: a picked metrics port is held by the agent's reservation.
    let bound = mast_agent::ports::listen_beside_reservation(addr)
        .and_then(tokio::net::TcpListener::from_std);
    match bound {
        Ok(listener) => {
            info!(%addr, "serving merged metrics on /stats/prometheus");
            let probers = std::sync::Arc::new(std::mem::take(&mut config.app_probers));
            let server =
                MetricsServer::new(config.plan.admin, metrics.clone()).with_probers(probers);
            Some(tokio::spawn(mast_agent::metrics::serve(listener, server)))
        }
        Err(e) => {
            warn!(%addr, "cannot listen on the metrics port ({e}): metrics are not served");
            config.plan.metrics = None;
            config.metrics_addr = None;
            None
        }
    }
}
