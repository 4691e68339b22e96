//! `mastd`, Mast's control plane (istiod's role): reads Istio configuration and services from
//! watched folders, builds the mesh model, and serves Envoy xDS v3 (ADS, state of the world
//! and delta) to every proxy. This binary only wires the parts together (see [`app`]).

mod access_log;
mod app;
mod ca;
mod commands;
mod config_events;
mod dashboard;
mod folders;
mod jwks;
#[cfg(feature = "k8s")]
mod kube_status;
mod monitoring;
mod snapshots;
mod webhook;
mod xds_tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// mimalloc rather than glibc's malloc: generation allocates and frees millions of small
/// protobuf strings per push, on several threads; mimalloc is faster at that and gives the
/// memory back instead of keeping it in per-thread arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mastd: Mast's control plane.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "mastd",
    version = mast_core::VERSION,
    about,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Args {
    /// A maintenance command instead of running the control plane.
    #[command(subcommand)]
    pub command: Option<commands::Command>,
    /// Folder of Istio and Kubernetes YAML to serve; edits are picked up live. Repeat it to
    /// serve several folders: a resource defined in two of them is reported and taken from
    /// the folder given first. Required with `--registry files`; optional with
    /// `kubernetes` (the folders' definitions then win over the cluster's).
    #[arg(long = "config-dir", env = "MAST_CONFIG_DIR")]
    pub config_dirs: Vec<PathBuf>,
    /// Where services and configuration come from: `files` (the `--config-dir` folders)
    /// or `kubernetes` (watch the API server: Services, EndpointSlices, Pods, Namespaces
    /// and the Istio CRDs).
    #[arg(long, env = "MAST_REGISTRY", value_enum, default_value_t = Registry::Files)]
    pub registry: Registry,
    /// The kubeconfig for `--registry kubernetes`. Default: `KUBECONFIG`, then
    /// `~/.kube/config`, then the pod's service account (in-cluster).
    #[arg(long, env = "MAST_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Address of the xDS (ADS) gRPC server.
    #[arg(long, env = "MAST_XDS_ADDR", default_value = "127.0.0.1:15010")]
    pub xds_addr: SocketAddr,
    /// Also serve xDS and the CA over TLS here (istiod's 15012, for proxies in other pods);
    /// the certificate comes from the mesh CA. Off unless given.
    #[arg(long, env = "MAST_XDS_TLS_ADDR")]
    pub xds_tls_addr: Option<SocketAddr>,
    /// DNS names of mastd's serving certificate on `--xds-tls-addr` (comma-separated).
    #[arg(long, default_value = xds_tls::DEFAULT_DNS_NAMES)]
    pub xds_tls_dns_names: String,
    /// Address of the sidecar injection and validation webhooks (HTTPS, `/inject`,
    /// `/validate`; istiod's 15017), or `off` [default: 0.0.0.0:15017 in a pod, else off].
    #[arg(long, env = "MAST_WEBHOOK_ADDR", value_name = "ADDR|off")]
    pub webhook_addr: Option<String>,
    /// Inject `istio-proxy` as a native sidecar (an init container with `restartPolicy:
    /// Always`, Kubernetes 1.29 and later), so Jobs complete; `mastctl install` sets it when
    /// the cluster supports it.
    #[arg(long, env = "MAST_NATIVE_SIDECARS")]
    pub native_sidecars: bool,
    /// Address of the monitoring server (`/metrics`, `/version`, `/debug/*`).
    #[arg(long, env = "MAST_MONITORING_ADDR", default_value = "127.0.0.1:15014")]
    pub monitoring_addr: SocketAddr,
    /// Set `SO_REUSEPORT` on the xDS and monitoring listeners, so they bind beside a
    /// socket that reserves their port for this mastd (`mastctl up` holds its mastd's free
    /// ports that way, so no process starting at the same moment is handed them). Off by
    /// default: a second mastd on the same address then fails instead of sharing it.
    #[arg(long, env = "MAST_REUSE_PORT")]
    pub reuse_port: bool,
    /// Namespace for resources that name none.
    #[arg(long, default_value = "default")]
    pub default_namespace: String,
    /// The root namespace: Sidecars and DestinationRules there apply mesh-wide.
    #[arg(long, default_value = mast_core::DEFAULT_ROOT_NAMESPACE)]
    pub root_namespace: String,
    /// The cluster DNS suffix.
    #[arg(long, default_value = mast_core::DEFAULT_DOMAIN_SUFFIX)]
    pub domain_suffix: String,
    /// Quiet time before pushing a burst of changes, in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub debounce_ms: u64,
    /// Longest wait before pushing while changes keep coming, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub debounce_max_ms: u64,
    /// The CA directory: the self-signed root (made on first start; key 0600) and the local
    /// token key. Default `$XDG_STATE_HOME/mast/ca` or `~/.local/state/mast/ca`.
    #[arg(long, env = "MAST_CA_DIR")]
    pub ca_dir: Option<PathBuf>,
    /// A plug-in CA folder in Istio's layout (ca-cert.pem, ca-key.pem, root-cert.pem,
    /// cert-chain.pem) to sign with instead of the self-signed root.
    #[arg(long, env = "MAST_CA_CACERTS")]
    pub ca_cacerts: Option<PathBuf>,
    /// Certificate validity when a workload asks for none.
    #[arg(long, default_value = "24h", value_parser = mast_ca::duration::parse_duration)]
    pub cert_default_ttl: Duration,
    /// The longest certificate validity granted (longer requests are capped).
    #[arg(long, default_value = "90d", value_parser = mast_ca::duration::parse_duration)]
    pub cert_max_ttl: Duration,
    /// The trust domain of workload identities.
    #[arg(long, default_value = mast_core::DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,
    /// Write a CA token for every LocalWorkload to `DIR/<namespace>/<name>.token` (0600).
    #[arg(long, value_name = "DIR")]
    pub local_tokens: Option<PathBuf>,
    /// Also authenticate CA callers with Kubernetes service-account tokens (a TokenReview,
    /// audience `istio-ca`, sent to the API server with mastd's own service-account token).
    /// `auto`: on when running in a pod.
    #[arg(long, value_enum, env = "MAST_KUBE_TOKEN_REVIEW", default_value_t = ca::KubeTokenReview::Auto)]
    pub kube_token_review: ca::KubeTokenReview,
    /// Address of the dashboard (and the local span collector); `off` disables both.
    /// Default 127.0.0.1:20001 (Kiali's port); when that default is taken, mastd runs
    /// without a dashboard and says so.
    #[arg(long, env = "MAST_DASHBOARD_ADDR", value_name = "ADDR|off")]
    pub dashboard_addr: Option<String>,
    /// A Prometheus (`http://host:port`) the dashboard queries instead of scraping the
    /// proxies itself.
    #[arg(long, env = "MAST_PROMETHEUS", value_name = "URL")]
    pub prometheus: Option<String>,
    /// Share of requests that start a trace, in percent (Istio's default 1; 0 turns tracing
    /// off).
    #[arg(long, default_value_t = 1.0, value_parser = dashboard::parse_percent)]
    pub trace_sampling: f64,
    /// Send spans to this Zipkin-compatible collector (Jaeger, Zipkin: `HOST:PORT`, posted to
    /// `/api/v2/spans`). Default: mastd's own collector on the dashboard address.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "trace_otlp")]
    pub trace_zipkin: Option<String>,
    /// Send spans to this OpenTelemetry collector over OTLP/HTTP (`HOST:PORT`, posted to
    /// `/v1/traces`).
    #[arg(long, value_name = "HOST:PORT")]
    pub trace_otlp: Option<String>,
    /// How many traces the local collector keeps.
    #[arg(long, default_value_t = 1000)]
    pub trace_capacity: usize,
    /// Envoy access log path for every proxy (Istio's `meshConfig.accessLogFile`, e.g.
    /// `/dev/stdout`). Default: no access log (Istio's default profile).
    #[arg(long, value_name = "PATH")]
    pub access_log_file: Option<String>,
    /// Access log encoding (Istio's `meshConfig.accessLogEncoding`).
    #[arg(long, value_enum, default_value_t = access_log::Encoding::Text)]
    pub access_log_encoding: access_log::Encoding,
    /// Access log format (Istio's `meshConfig.accessLogFormat`): Envoy command operators for
    /// TEXT, a JSON object of key → operator for JSON. Empty: Istio's default.
    #[arg(long, value_name = "STR", default_value = "")]
    pub access_log_format: String,
}

/// Where mastd reads services and configuration from.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registry {
    /// The `--config-dir` folders.
    Files,
    /// The Kubernetes API server (needs the `k8s` cargo feature).
    Kubernetes,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MAST_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = Args::parse();
    if let Some(command) = args.command.take() {
        return commands::run(command);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(app::run(args))
}
