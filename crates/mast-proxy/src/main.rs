//! The `mast-proxy` binary: wiring only. Flags → bootstrap; the xDS client feeding the
//! configuration handler; the admin and health servers; readiness (first configuration
//! applied → ports file written); SIGTERM/SIGINT → drain, then exit.

use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser as _;
use mast_proxy::bootstrap::{Args, Bootstrap};
use mast_proxy::cluster::ClusterManager;
use mast_proxy::config::{Proxy, RouteStore};
use mast_proxy::hcm::{Env, access_log::AccessLog};
use mast_proxy::signals::Signals;
use mast_proxy::xds::XdsClient;
use tokio::signal::unix::{SignalKind, signal};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MAST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if let Some(mast_proxy::bootstrap::Command::Init(init)) = &args.command {
        std::process::exit(mast_proxy::bootstrap::run_init(init));
    }
    let boot = args.resolve().context("resolving the bootstrap")?;
    mast_proxy::limits::conn::set_global_max(boot.max_connections);
    // One worker: a current-thread runtime (no cross-thread queues or wake-ups), as Envoy
    // runs one event loop per worker.
    let runtime = if boot.workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(boot.workers)
            .enable_all()
            .build()
    }
    .context("starting the runtime")?;
    runtime.block_on(run(boot))
}

async fn run(boot: Bootstrap) -> anyhow::Result<()> {
    let signals = Signals::new();
    let mut registry = prometheus_client::registry::Registry::default();
    let stats = mast_proxy::stats::ProxyStats::register(&mut registry);
    if boot.istio_metrics {
        let identity = mast_proxy::istio_stats::Identity::from_node(&boot.spec, &boot.node.id);
        mast_proxy::istio_stats::install(mast_proxy::istio_stats::IstioStats::register(
            &mut registry,
            identity,
        ));
    }
    mast_proxy::trace::install(
        mast_proxy::trace::LocalNode {
            id: boot.node.id.clone(),
            cluster: boot.node.cluster.clone(),
            zone: boot
                .node
                .locality
                .as_ref()
                .map(|l| l.zone.clone())
                .unwrap_or_default(),
            ip: boot.spec.ip.parse().ok(),
        },
        mast_proxy::trace::stats::TraceStats::register(&mut registry),
    );
    let env = Arc::new(Env {
        clusters: Arc::new(ClusterManager::new()),
        routes: Arc::new(RouteStore::new()),
        access_log: Some(AccessLog::stdout()),
        stats,
    });
    let secrets =
        mast_proxy::bootstrap::start_secret_manager(&boot, mast_proxy::tls::SecretStore::global())
            .context("starting the secret manager")?;
    let proxy = Arc::new(Proxy::new(env, signals.clone()));
    let xds = Arc::new(
        XdsClient::new(
            boot.xds_uri(),
            boot.node.clone(),
            boot.delta,
            Arc::clone(&proxy) as Arc<dyn mast_proxy::xds::Handler>,
        )
        .with_root_cert(boot.xds_root_pem.clone()),
    );
    tokio::spawn(Arc::clone(&xds).run(signals.shutdown()));
    admin::start(&boot, &xds, &signals, Arc::new(registry)).await?;
    tracing::info!(node = %boot.node.id, xds = %boot.xds, "mast-proxy started");
    let mut sigterm = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut shutdown = signals.shutdown();
    let mut initial = xds.initial_fetch();
    let mut ready = false;
    loop {
        tokio::select! {
            _ = initial.changed(), if !ready => {
                if *initial.borrow() {
                    ready = true;
                    signals.set_ready(true);
                    if let Some(path) = &boot.ports_file {
                        boot.write_ports_file(path).context("writing the ports file")?;
                    }
                    tracing::info!("ready");
                }
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    finish(&boot);
                    return Ok(());
                }
            }
        }
    }
    tracing::info!(drain = ?boot.drain, "draining");
    signals.set_ready(false);
    signals.start_draining();
    if let Some(path) = &boot.ports_file {
        let _ = mast_proxy::bootstrap::remove_ports_file(path);
    }
    // Connections close as their requests finish (HTTP/1 `Connection: close`, HTTP/2
    // GOAWAY); exit when none is left or at the drain deadline.
    tokio::select! {
        _ = tokio::time::sleep(boot.drain) => {
            tracing::info!(open = signals.open_connections(), "drain deadline reached");
        }
        _ = signals.idle() => tracing::info!("drained: no connection left"),
        _ = shutdown.changed() => {}
    }
    signals.shut_down();
    finish(&boot);
    drop(secrets);
    Ok(())
}

fn finish(boot: &Bootstrap) {
    if let Some(path) = &boot.ports_file {
        let _ = mast_proxy::bootstrap::remove_ports_file(path);
    }
    tracing::info!("exiting");
}

mod admin {
    //! Starts the admin and health servers (bound before xDS starts, so their ports are
    //! taken when the ports file says so).
    use super::*;
    use mast_proxy::admin::{AdminState, serve_admin_on, serve_health_on, serve_prometheus_on};

    /// The socket kept for `addr` when the proxy picked that port itself, else a new bind.
    use mast_proxy::listener::reserved::bind;

    pub async fn start(
        boot: &Bootstrap,
        xds: &Arc<XdsClient>,
        signals: &Signals,
        registry: Arc<prometheus_client::registry::Registry>,
    ) -> anyhow::Result<()> {
        let admin = bind(boot.admin)
            .await
            .with_context(|| format!("binding the admin port {}", boot.admin))?;
        let health = bind(boot.health)
            .await
            .with_context(|| format!("binding the health port {}", boot.health))?;
        let state = AdminState::new(
            Arc::clone(xds),
            signals.clone(),
            registry,
            Arc::new(boot.clone()),
        );
        let health_state = state.clone();
        if let Some(addr) = boot.prometheus {
            // As the admin port, but a bind failure only loses the metrics port.
            match bind(addr).await {
                Ok(listener) => {
                    let state = state.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve_prometheus_on(listener, state).await {
                            tracing::error!(error = %e, "metrics server stopped");
                        }
                    });
                }
                Err(e) => tracing::warn!(%addr, error = %e, "cannot bind the metrics port"),
            }
        }
        tokio::spawn(async move {
            if let Err(e) = serve_admin_on(admin, state).await {
                tracing::error!(error = %e, "admin server stopped");
            }
        });
        tokio::spawn(async move {
            if let Err(e) = serve_health_on(health, health_state).await {
                tracing::error!(error = %e, "health server stopped");
            }
        });
        start_status(boot, signals).await;
        Ok(())
    }

    /// The status port (Istio's 15020), when asked for; a bind failure loses only it.
    async fn start_status(boot: &Bootstrap, signals: &Signals) {
        let Some(addr) = boot.status else { return };
        let listener = match bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(%addr, error = %e, "cannot bind the status port");
                return;
            }
        };
        let state = mast_proxy::status::StatusState {
            signals: signals.clone(),
            admin: boot.admin,
            probers: Arc::new(boot.app_probers.clone()),
        };
        tokio::spawn(async move {
            if let Err(e) = mast_proxy::status::serve_status_on(listener, state).await {
                tracing::error!(error = %e, "status server stopped");
            }
        });
    }
}
