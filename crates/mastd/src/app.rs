//! Wiring: the files registry (one source per config folder) and, with `--registry
//! kubernetes`, the Kubernetes source feed the snapshot builder, whose snapshots the ADS server
//! serves; the monitoring server reads all three. Runs until SIGTERM or Ctrl-C, then closes
//! every xDS stream (proxies keep their last configuration) and exits.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use mast_config::LoadOptions;
use mast_model::{MeshSnapshot, SnapshotOptions};
use mast_registry::ConfigStore;
use mast_xds_server::{Debounce, XdsServer};
use tokio::sync::watch;

use crate::Args;
use crate::folders::Folders;
use crate::monitoring;

/// Runs mastd until a shutdown signal.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let store = ConfigStore::new();
    let load = LoadOptions {
        default_namespace: args.default_namespace.clone(),
    };
    let files = if args.config_dirs.is_empty() && args.registry == crate::Registry::Kubernetes {
        None
    } else {
        let (dirs, store, load) = (args.config_dirs.clone(), store.clone(), load.clone());
        Some(tokio::task::spawn_blocking(move || Folders::start(&dirs, &store, &load)).await??)
    };
    let _kube = kube_source(&args, &store, load).await?;
    let initial = store.current();
    tracing::info!(
        dirs = ?args.config_dirs,
        resources = initial.resources.len(),
        rejected = initial.rejected,
        "config loaded"
    );

    let dashboard_listener = crate::dashboard::bind(args.dashboard_addr.as_deref()).await?;
    let dashboard_addr = dashboard_listener
        .as_ref()
        .and_then(|l| l.local_addr().ok());
    let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(MeshSnapshot::default()));
    let options = SnapshotOptions {
        root_namespace: args.root_namespace.clone(),
        domain_suffix: args.domain_suffix.clone(),
        tracing: crate::dashboard::tracing_options(&args, dashboard_addr)?,
        access_log: crate::access_log::options(&args)?,
        ..SnapshotOptions::default()
    };
    if let Some(a) = &options.access_log {
        tracing::info!(path = %a.path, encoding = ?a.encoding, custom_format = !a.format.is_empty(), "access log");
    }
    if let Some(t) = &options.tracing {
        tracing::info!(collector = ?t.collector, sampling_percent = f64::from(t.sampling_bp) / 100.0, "tracing");
    }
    let jwks = crate::jwks::JwksResolver::spawn(crate::jwks::JwksConfig::new()?);
    tokio::spawn(crate::snapshots::run(
        store.subscribe(),
        snapshot_tx,
        options,
        jwks,
    ));
    // Serve nothing before the first real snapshot: a proxy that reconnects during start-up
    // (after a mastd restart) must get the mesh, not an empty configuration.
    let mut first = snapshot_rx.clone();
    first
        .wait_for(|s| s.version > 0)
        .await
        .context("building the first mesh snapshot")?;

    let xds = XdsServer::new(snapshot_rx.clone()).with_debounce(Debounce {
        quiet: Duration::from_millis(args.debounce_ms),
        max: Duration::from_millis(args.debounce_max_ms),
    });
    let ca = start_ca(&args).await?;
    if let (Some(ca), Some(dir)) = (&ca, &args.local_tokens) {
        tokio::spawn(crate::ca::write_local_tokens(
            dir.clone(),
            ca.tokens.clone(),
            store.subscribe(),
        ));
    }
    let folder_list: Arc<[std::path::PathBuf]> =
        files.as_ref().map(Folders::dirs).unwrap_or_default().into();
    let dashboard = dashboard_listener.map(|l| {
        let d = mast_dashboard::Dashboard::start(
            mast_dashboard::Sources {
                store: store.clone(),
                snapshots: snapshot_rx.clone(),
                xds: xds.clone(),
                folders: folder_list.clone(),
            },
            mast_dashboard::Options {
                prometheus: args.prometheus.clone(),
                trace_capacity: args.trace_capacity,
                ..mast_dashboard::Options::default()
            },
        );
        (l, d)
    });
    let monitor = monitoring::Monitor::new(
        store.clone(),
        snapshot_rx,
        xds.clone(),
        ca.as_ref().map(|c| &c.metrics),
    )
    .with_folders(files.as_ref().map(Folders::dirs).unwrap_or_default())
    .with_dashboard(dashboard_addr.map(|a| format!("http://{a}/")));
    let monitoring_listener = listen(args.monitoring_addr, args.reuse_port)
        .with_context(|| format!("binding the monitoring address {}", args.monitoring_addr))?;
    tracing::info!(addr = %args.monitoring_addr, "monitoring server listening");

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let monitoring_task = tokio::spawn(monitoring::serve(
        monitoring_listener,
        monitor,
        stopped(stop_rx.clone()),
    ));
    let dashboard_task = dashboard.map(|(listener, d)| {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(url = %format!("http://{addr}/"), "dashboard listening");
        }
        tokio::spawn(mast_dashboard::serve(listener, d, stopped(stop_rx.clone())))
    });
    let xds_listener = listen(args.xds_addr, args.reuse_port)
        .with_context(|| format!("binding the xDS address {}", args.xds_addr))?;
    let tls_task = match (&args.xds_tls_addr, &ca) {
        (None, _) => None,
        (Some(addr), None) => {
            anyhow::bail!("--xds-tls-addr {addr} needs the certificate authority (give --ca-dir)")
        }
        (Some(addr), Some(c)) => {
            let names: Vec<String> = args
                .xds_tls_dns_names
                .split(',')
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .collect();
            let acceptor = crate::xds_tls::acceptor(
                c.shared.clone(),
                names,
                args.cert_default_ttl,
                crate::xds_tls::ALPN_GRPC,
            )?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the xDS TLS address {addr}"))?;
            Some(tokio::spawn(serve_grpc_tls(
                listener,
                acceptor,
                xds.clone(),
                Some(c.service.clone()),
                stopped(stop_rx.clone()),
            )))
        }
    };
    let shared_ca = ca.as_ref().map(|c| c.shared.clone());
    let _webhook_task = crate::webhook::spawn(&args, shared_ca, stopped(stop_rx.clone())).await?;
    let xds_task = tokio::spawn(serve_grpc(
        xds_listener,
        xds,
        ca.map(|c| c.service),
        stopped(stop_rx),
    ));

    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    xds_task.await?.context("xDS server")?;
    if let Some(t) = tls_task {
        t.await?.context("xDS TLS server")?;
    }
    monitoring_task.await?.context("monitoring server")?;
    if let Some(t) = dashboard_task {
        t.await?.context("dashboard server")?;
    }
    drop(files);
    Ok(())
}

/// The CA, or `None` when the default CA directory cannot be used (an explicit `--ca-dir`
/// or `--ca-cacerts` that fails is an error).
async fn start_ca(args: &Args) -> anyhow::Result<Option<crate::ca::Ca>> {
    match crate::ca::start(args).await {
        Ok(ca) => Ok(Some(ca)),
        Err(e) if args.ca_dir.is_none() && args.ca_cacerts.is_none() => {
            tracing::error!("certificate authority disabled (give --ca-dir): {e:#}");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Serves ADS and the CA (`IstioCertificateService`) on the xDS listener until `shutdown`;
/// then ends every xDS stream with UNAVAILABLE.
async fn serve_grpc(
    listener: tokio::net::TcpListener,
    xds: XdsServer,
    ca: Option<mast_ca::server::CaService>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, ca = ca.is_some(), "xDS server listening");
    }
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    serve_incoming(incoming, xds, ca, shutdown).await
}

/// Serves ADS and the CA over TLS (`--xds-tls-addr`, istiod's 15012) until `shutdown`.
async fn serve_grpc_tls(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    xds: XdsServer,
    ca: Option<mast_ca::server::CaService>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "xDS and CA over TLS listening");
    }
    let incoming = crate::xds_tls::incoming(listener, acceptor);
    serve_incoming(incoming, xds, ca, shutdown).await
}

/// The gRPC services on one stream of connections.
async fn serve_incoming<I, IO, IE>(
    incoming: I,
    xds: XdsServer,
    ca: Option<mast_ca::server::CaService>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()>
where
    I: futures::Stream<Item = Result<IO, IE>>,
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(xds.into_service())
        .add_optional_service(ca);
    router
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown.await;
            xds.shutdown();
        })
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// With `--registry kubernetes`: watches the API server (from `--kubeconfig`, else
/// `KUBECONFIG`, `~/.kube/config` or in-cluster) into `store`, after the folders' sources,
/// and waits (at most 60 s) until every kind is listed once.
#[cfg(feature = "k8s")]
async fn kube_source(
    args: &Args,
    store: &ConfigStore,
    load: LoadOptions,
) -> anyhow::Result<Option<mast_registry::KubeSourceHandle>> {
    if args.registry != crate::Registry::Kubernetes {
        return Ok(None);
    }
    let config = match &args.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading the kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("using the kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer().await.context(
            "finding the Kubernetes API server (give --kubeconfig, set KUBECONFIG, or run in a pod)",
        )?,
    };
    let url = config.cluster_url.clone();
    let client = kube::Client::try_from(config).context("making the Kubernetes client")?;
    let opts = mast_registry::KubeOptions {
        load,
        source: args.config_dirs.len(),
        ..mast_registry::KubeOptions::default()
    };
    crate::kube_status::spawn(client.clone(), store.clone(), args.domain_suffix.clone());
    let handle = mast_registry::KubeSource::start(client, store.clone(), opts)
        .await
        .with_context(|| format!("watching Kubernetes at {url}"))?;
    if !handle.wait_synced(Duration::from_secs(60)).await {
        tracing::warn!(pending = ?handle.pending(), "serving before every Kubernetes kind is listed");
    }
    Ok(Some(handle))
}

/// Without the `k8s` feature, `--registry kubernetes` is refused.
#[cfg(not(feature = "k8s"))]
async fn kube_source(args: &Args, _: &ConfigStore, _: LoadOptions) -> anyhow::Result<Option<()>> {
    if args.registry == crate::Registry::Kubernetes {
        anyhow::bail!("this mastd was built without Kubernetes support (cargo feature k8s)");
    }
    Ok(None)
}

/// A listener on `addr`; with `reuse_port` (`--reuse-port`) it sets `SO_REUSEPORT`, so it
/// binds beside a socket reserving the port for it.
fn listen(
    addr: std::net::SocketAddr,
    reuse_port: bool,
) -> std::io::Result<tokio::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    tokio::net::TcpListener::from_std(socket.into())
}
