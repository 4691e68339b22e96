//! Flags and environment → who the proxy is and where it listens: [`Args`] (clap; every
//! flag also from a `MAST_*` variable, mirroring `mast-agent` where they apply) resolves into
//! a [`Bootstrap`]: the xDS `Node` (same id format and metadata keys as the agent), the
//! control plane address, the admin and health addresses, and the capture ports (ports
//! given as 0 are chosen free here, before connecting, because the node metadata carries
//! them). [`Bootstrap::write_ports_file`] writes the ports file the e2e harness reads.

mod node;
mod ports;
mod secrets;
#[cfg(test)]
mod tests;
mod tls;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use envoy_types::pb::envoy::config::core::v3::Node;

pub use node::{Capture, NodeSpec, ProxyType, json_to_struct};
pub use ports::{IPTABLES_INBOUND, IPTABLES_OUTBOUND, remove_ports_file};
pub use secrets::start_secret_manager;
pub use tls::is_https;

/// Why the flags do not make a bootstrap.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// Neither `--workload` nor `--node-id`.
    #[error("give --workload (or a whole --node-id)")]
    NoWorkload,
    /// The node id does not parse.
    #[error("node id {0:?}: {1}")]
    BadNodeId(String, String),
    /// Capture ports given in iptables mode.
    #[error("--outbound-port and --inbound-port apply only to --capture-mode ports")]
    PortsNeedPortsMode,
    /// The same port twice.
    #[error("port {0} is given twice")]
    DuplicatePort(u16),
    /// No free port could be found.
    #[error("cannot find a free port on 127.0.0.1: {0}")]
    NoFreePort(std::io::Error),
    /// The xDS address is not host:port.
    #[error("xDS address {0:?} is not host:port, http://host:port or https://host:port")]
    BadXdsAddress(String),
    /// An `https://` address without the root that verifies it.
    #[error("{address}: an https:// address needs the mesh root certificate: give {flag}")]
    NoRootCert {
        /// The address.
        address: String,
        /// The flag to give.
        flag: &'static str,
    },
    /// The root certificate file is unusable.
    #[error("the mesh root certificate {path}: {reason}")]
    RootCert {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `ISTIO_KUBE_APP_PROBERS` is malformed.
    #[error(transparent)]
    AppProbers(#[from] mast_probe::ConfigError),
    /// `--concurrency 0`.
    #[error("--concurrency must be at least 1")]
    NoWorkers,
}

/// mast-proxy: Mast's sidecar proxy, configured only by xDS (ADS) from mastd.
#[derive(Debug, Clone, Parser)]
#[command(name = "mast-proxy", version, about, long_about = None,
    after_help = "Logs go to stderr; MAST_LOG sets the level (a tracing filter, default info).")]
pub struct Args {
    /// The control plane's xDS (ADS) address: host:port or http://host:port (plaintext,
    /// mastd's 15010), https://host:port (TLS verified against --xds-root-cert; istiod's
    /// 15012).
    #[arg(long, env = "MAST_XDS_ADDRESS", default_value = "127.0.0.1:15010")]
    pub xds_address: String,
    /// The mesh root certificate (PEM) that verifies an https:// xDS address.
    #[arg(long, env = "MAST_XDS_ROOT_CERT")]
    pub xds_root_cert: Option<PathBuf>,
    /// Use state-of-the-world ADS instead of incremental (delta).
    #[arg(long, env = "MAST_SOTW")]
    pub sotw: bool,
    /// The whole node id (type~ip~workload.namespace~namespace.svc.domain). When given,
    /// --type, --ip, --workload and --namespace default to its parts.
    #[arg(long, env = "MAST_NODE_ID")]
    pub node_id: Option<String>,
    /// The proxy type [default: sidecar].
    #[arg(long = "type", env = "MAST_PROXY_TYPE", value_enum)]
    pub proxy_type: Option<ProxyType>,
    /// The workload's IP, as in the node id [default: 127.0.0.1].
    #[arg(long, env = "MAST_INSTANCE_IP")]
    pub ip: Option<String>,
    /// The workload's name. Required unless --node-id is given.
    #[arg(long, env = "MAST_WORKLOAD")]
    pub workload: Option<String>,
    /// The workload's name when the node id names a pod of it (Istio's
    /// `ISTIO_META_WORKLOAD_NAME`: the Deployment, written by the injector) [default: the
    /// --workload].
    #[arg(long, env = "ISTIO_META_WORKLOAD_NAME")]
    pub workload_name: Option<String>,
    /// The workload's namespace [default: default].
    #[arg(long, env = "MAST_NAMESPACE")]
    pub namespace: Option<String>,
    /// The cluster DNS domain used in the node id.
    #[arg(long, env = "MAST_DOMAIN", default_value = "cluster.local")]
    pub domain: String,
    /// A workload label, key=value (repeatable; comma-separated in MAST_LABELS).
    #[arg(long = "label", env = "MAST_LABELS", value_delimiter = ',', value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// The workload's service account (SERVICE_ACCOUNT).
    #[arg(long, env = "MAST_SERVICE_ACCOUNT")]
    pub service_account: Option<String>,
    /// CLUSTER_ID in the node metadata.
    #[arg(long, env = "MAST_CLUSTER_ID", default_value = "Kubernetes")]
    pub cluster_id: String,
    /// MESH_ID in the node metadata.
    #[arg(long, env = "MAST_MESH_ID", default_value = "cluster.local")]
    pub mesh_id: String,
    /// How traffic reaches the proxy: iptables redirection to 15001/15006, or explicit
    /// listeners on 127.0.0.1 (ports).
    #[arg(long, env = "MAST_CAPTURE_MODE", value_enum, default_value_t = CaptureArg::Iptables)]
    pub capture_mode: CaptureArg,
    /// Ports mode: the outbound listener (0 or absent: pick a free port).
    #[arg(long, env = "MAST_OUTBOUND_PORT")]
    pub outbound_port: Option<u16>,
    /// Ports mode: APP=LISTEN (LISTEN 0 or absent: pick a free port; repeatable;
    /// comma-separated in MAST_INBOUND_PORTS).
    #[arg(long = "inbound-port", env = "MAST_INBOUND_PORTS", value_delimiter = ',', value_parser = parse_inbound)]
    pub inbound_ports: Vec<(u16, u16)>,
    /// The admin port on 127.0.0.1 (0: pick a free port).
    #[arg(long, env = "MAST_ADMIN_PORT", default_value_t = 15000)]
    pub admin_port: u16,
    /// The health port (`/healthz/ready`; 0.0.0.0 in iptables mode, 127.0.0.1 in ports
    /// mode; 0: pick a free port).
    #[arg(long, env = "MAST_HEALTH_PORT", default_value_t = 15021)]
    pub health_port: u16,
    /// Istio's metrics port (`/stats/prometheus`; 0.0.0.0 in iptables mode, 127.0.0.1 in
    /// ports mode) [default: 15090 in iptables mode, off in ports mode; 0: pick a free port].
    #[arg(long, env = "MAST_PROMETHEUS_PORT")]
    pub prometheus_port: Option<u16>,
    /// Istio's status port (pilot-agent's 15020): `/healthz/ready`, `/stats/prometheus` and
    /// the application probes `/app-health/<container>/<readyz|livez|startupz>` (0.0.0.0 in
    /// iptables mode, 127.0.0.1 in ports mode) [default: 15020 in iptables mode, off in
    /// ports mode; 0: pick a free port].
    #[arg(long, env = "MAST_STATUS_PORT")]
    pub status_port: Option<u16>,
    /// The application's probes the status port runs (Istio's JSON, written by the
    /// injector).
    #[arg(long, env = "ISTIO_KUBE_APP_PROBERS", hide = true)]
    pub app_probers: Option<String>,
    /// Record Istio's standard metrics (`istio_requests_total`, …) and exchange peer
    /// metadata (`--istio-metrics=false`: off, as for measuring their cost).
    #[arg(long, env = "MAST_ISTIO_METRICS", default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub istio_metrics: bool,
    /// Worker threads.
    #[arg(long, env = "MAST_CONCURRENCY", default_value_t = 2)]
    pub concurrency: usize,
    /// Write the chosen ports as JSON here when ready.
    #[arg(long, env = "MAST_PORTS_FILE")]
    pub ports_file: Option<PathBuf>,
    /// On SIGTERM/SIGINT: how long listeners drain before the process exits (0: no drain).
    #[arg(long, env = "MAST_DRAIN_DURATION", default_value = "5s", value_parser = parse_duration)]
    pub drain_duration: Duration,

    /// The most downstream connections open at once, over all listeners (Envoy's overload
    /// manager `global_downstream_max_connections`); more are closed at accept. Unlimited
    /// when absent.
    #[arg(long, env = "MAST_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// The CA (Istio's `IstioCertificateService`), host:port or https://host:port
    /// [default: the xDS address].
    #[arg(long, env = "MAST_CA_ADDRESS")]
    pub ca_address: Option<String>,
    /// The mesh root certificate (PEM) that verifies an https:// CA address [default:
    /// --xds-root-cert].
    #[arg(long, env = "MAST_CA_ROOT_CERT")]
    pub ca_root_cert: Option<PathBuf>,
    /// The token file authenticating certificate requests. Without it the proxy gets no
    /// certificate: TLS chains that need one fail their handshakes; plaintext works.
    #[arg(long, env = "MAST_CA_TOKEN_FILE")]
    pub ca_token_file: Option<PathBuf>,
    /// The requested certificate validity (Go syntax: 24h, 90m, 1h30m, 2d).
    #[arg(long, env = "MAST_CERT_TTL", default_value = "24h", value_parser = mast_ca::duration::parse_duration)]
    pub cert_ttl: Duration,
    /// Something else than proxying.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `mast-proxy <command>`: what the binary does instead of proxying.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Writes istio-iptables' traffic capture rules into this network namespace (what the
    /// `istio-init` container runs; Istio's flags), prints them (--dry-run) or removes them
    /// (--cleanup).
    Init(mast_iptables::IptablesArgs),
}

/// Runs `mast-proxy init`; the process exit code: 0 done, 2 bad flags, 1 iptables failed
/// (the error, naming the failing command and its output, is logged).
pub fn run_init(args: &mast_iptables::IptablesArgs) -> i32 {
    use mast_iptables::{RunError, SystemRunner, cli};
    match cli::run(args, &SystemRunner, &mut std::io::stdout()) {
        Ok(_) => 0,
        Err(e) => {
            tracing::error!("{e}");
            if matches!(e, RunError::Config(_)) {
                2
            } else {
                1
            }
        }
    }
}

/// `--capture-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CaptureArg {
    /// iptables redirection (15001 outbound, 15006 inbound).
    Iptables,
    /// Explicit listeners on 127.0.0.1.
    Ports,
}

/// Everything the proxy needs from its flags, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Bootstrap {
    /// The xDS node (id, cluster, metadata).
    pub node: Node,
    /// The parts the node was built from.
    pub spec: NodeSpec,
    /// The control plane: `host:port`, `http://host:port` or `https://host:port`.
    pub xds: String,
    /// The mesh root (PEM text) verifying an `https://` control plane.
    pub xds_root_pem: Option<String>,
    /// The file it was read from.
    pub xds_root_cert: Option<PathBuf>,
    /// The admin address (127.0.0.1).
    pub admin: SocketAddr,
    /// The health address (0.0.0.0 in iptables mode, 127.0.0.1 in ports mode).
    pub health: SocketAddr,
    /// Istio's metrics address (`/stats/prometheus`), when served.
    pub prometheus: Option<SocketAddr>,
    /// Istio's status port, when served.
    pub status: Option<SocketAddr>,
    /// The application probes it runs.
    pub app_probers: mast_probe::AppProbers,
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Where to write the ports file.
    pub ports_file: Option<PathBuf>,
    /// The graceful drain on SIGTERM.
    pub drain: Duration,
    /// The global downstream connection limit.
    pub max_connections: Option<usize>,
    /// Delta ADS (`false`: state of the world).
    pub delta: bool,
    /// Ports capture mode (`false`: iptables).
    pub ports_mode: bool,
    /// The outbound listener's port (15001 in iptables mode).
    pub outbound: u16,
    /// Ports mode: (application port, listener port), by application port; empty in
    /// iptables mode (inbound capture is on [`IPTABLES_INBOUND`]).
    pub inbound: Vec<(u16, u16)>,
    /// The CA address, `host:port` or a URL.
    pub ca_address: String,
    /// The mesh root file verifying an `https://` CA address.
    pub ca_root_cert: Option<PathBuf>,
    /// The CA token file; `None`: no certificates.
    pub ca_token_file: Option<PathBuf>,
    /// The requested certificate validity.
    pub cert_ttl: Duration,
    /// Istio's standard metrics are recorded.
    pub istio_metrics: bool,
}

impl Bootstrap {
    /// The control plane as a URI for tonic: `http://host:port` for a bare `host:port`,
    /// URLs as given.
    pub fn xds_uri(&self) -> String {
        if self.xds.contains("://") {
            self.xds.clone()
        } else {
            format!("http://{}", self.xds)
        }
    }
}

impl Args {
    /// Resolves the node and picks free ports for the ones given as 0.
    pub fn resolve(self) -> Result<Bootstrap, BootstrapError> {
        if self.concurrency == 0 {
            return Err(BootstrapError::NoWorkers);
        }
        check_xds_address(&self.xds_address)?;
        if let Some(ca) = &self.ca_address {
            check_xds_address(ca)?;
        }
        let ports_mode = self.capture_mode == CaptureArg::Ports;
        if !ports_mode && (self.outbound_port.is_some() || !self.inbound_ports.is_empty()) {
            return Err(BootstrapError::PortsNeedPortsMode);
        }
        let mut apps = std::collections::BTreeSet::new();
        if let Some((app, _)) = self.inbound_ports.iter().find(|(a, _)| !apps.insert(*a)) {
            return Err(BootstrapError::DuplicatePort(*app));
        }
        let mut wanted = vec![self.admin_port, self.health_port];
        if ports_mode {
            wanted.push(self.outbound_port.unwrap_or(0));
            wanted.extend(self.inbound_ports.iter().map(|(_, l)| *l));
        }
        let prometheus = match (ports_mode, self.prometheus_port) {
            (_, Some(port)) => Some(port),
            (false, None) => Some(ports::PROMETHEUS),
            (true, None) => None,
        };
        let status = match (ports_mode, self.status_port) {
            (_, Some(port)) => Some(port),
            (false, None) => Some(ports::STATUS),
            (true, None) => None,
        };
        let first_extra = wanted.len();
        wanted.extend(prometheus.iter().chain(status.iter()).copied());
        let chosen = ports::plan(&wanted)?;
        let mut extra = chosen[first_extra..].iter().copied();
        let prometheus = prometheus.and_then(|_| extra.next());
        let status = status.and_then(|_| extra.next());
        let chosen = &chosen[..first_extra];
        let app_probers = match self.app_probers.as_deref() {
            Some(text) => mast_probe::AppProbers::parse(text)?,
            None => mast_probe::AppProbers::default(),
        };
        let (admin, health) = (chosen[0], chosen[1]);
        let (capture, outbound, inbound) = if ports_mode {
            let inbound: BTreeMap<u16, u16> = self
                .inbound_ports
                .iter()
                .zip(&chosen[3..])
                .map(|((app, _), listen)| (*app, *listen))
                .collect();
            let pairs = inbound.iter().map(|(a, l)| (*a, *l)).collect();
            let capture = Capture::Ports {
                outbound: chosen[2],
                inbound,
            };
            (capture, chosen[2], pairs)
        } else {
            (Capture::Iptables, IPTABLES_OUTBOUND, Vec::new())
        };
        let spec = self.node_spec(capture)?;
        let ca_address = self
            .ca_address
            .clone()
            .unwrap_or_else(|| self.xds_address.clone());
        let roots = tls::resolve(
            &self.xds_address,
            &ca_address,
            self.xds_root_cert.as_deref(),
            self.ca_root_cert.as_deref(),
        )?;
        let health_ip = if ports_mode {
            Ipv4Addr::LOCALHOST
        } else {
            Ipv4Addr::UNSPECIFIED
        };
        Ok(Bootstrap {
            node: spec.to_node(admin),
            spec,
            xds: self.xds_address,
            xds_root_pem: roots.xds_pem,
            xds_root_cert: roots.xds_file,
            ca_root_cert: roots.ca_file,
            admin: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), admin),
            health: SocketAddr::new(IpAddr::V4(health_ip), health),
            prometheus: prometheus.map(|p| SocketAddr::new(IpAddr::V4(health_ip), p)),
            status: status.map(|p| SocketAddr::new(IpAddr::V4(health_ip), p)),
            app_probers,
            workers: self.concurrency,
            ports_file: self.ports_file,
            drain: self.drain_duration,
            max_connections: self.max_connections,
            istio_metrics: self.istio_metrics,
            delta: !self.sotw,
            ports_mode,
            outbound,
            inbound,
            ca_address,
            ca_token_file: self.ca_token_file.clone(),
            cert_ttl: self.cert_ttl,
        })
    }

    fn node_spec(&self, capture: Capture) -> Result<NodeSpec, BootstrapError> {
        let from_id = self
            .node_id
            .as_deref()
            .map(node::parse_node_id)
            .transpose()?;
        let workload = self
            .workload
            .clone()
            .or_else(|| from_id.as_ref().map(|n| n.2.clone()))
            .ok_or(BootstrapError::NoWorkload)?;
        let namespace = self
            .namespace
            .clone()
            .or_else(|| {
                from_id
                    .as_ref()
                    .map(|n| n.3.clone())
                    .filter(|ns| !ns.is_empty())
            })
            .unwrap_or_else(|| "default".into());
        Ok(NodeSpec {
            proxy_type: self
                .proxy_type
                .or(from_id.as_ref().map(|n| n.0))
                .unwrap_or_default(),
            ip: self
                .ip
                .clone()
                .or_else(|| from_id.as_ref().map(|n| n.1.clone()))
                .unwrap_or_else(|| "127.0.0.1".into()),
            workload_name: self.workload_name.clone().filter(|w| !w.is_empty()),
            workload,
            namespace,
            domain: self.domain.clone(),
            labels: self.labels.iter().cloned().collect(),
            service_account: self.service_account.clone(),
            cluster_id: self.cluster_id.clone(),
            mesh_id: self.mesh_id.clone(),
            capture,
            id_override: self.node_id.clone(),
        })
    }
}

fn check_xds_address(text: &str) -> Result<(), BootstrapError> {
    let bad = || BootstrapError::BadXdsAddress(text.to_owned());
    let rest = match text.split_once("://") {
        Some((scheme, rest)) if ["http", "https"].contains(&&*scheme.to_ascii_lowercase()) => {
            rest.trim_end_matches('/')
        }
        Some(_) => return Err(bad()),
        None => text,
    };
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(())
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("{text:?} is not key=value")),
    }
}

fn parse_inbound(text: &str) -> Result<(u16, u16), String> {
    let bad = || format!("{text:?} is not APP=LISTEN (ports; LISTEN 0 picks a free one)");
    let (app, listen) = text.split_once('=').unwrap_or((text, "0"));
    let app: u16 = app.trim().parse().map_err(|_| bad())?;
    let listen = listen.trim().parse().map_err(|_| bad())?;
    if app == 0 {
        return Err(bad());
    }
    Ok((app, listen))
}

/// Parses `<number><unit>` with unit `ms`, `s` or `m` (a bare `0` is zero).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 500ms, 2s or 1m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?}: the unit must be ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}
