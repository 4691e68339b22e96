//! `mast-agent`'s flags (each also read from a `MAST_*` environment variable) and their
//! resolution into what the supervisor runs: the node, the ports, the work dir, the
//! bootstrap written there, and Envoy's command line.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use mast_agent::bootstrap::{AdsApi, Bootstrap, NodeSpec, XdsAddress};
use mast_agent::duration::parse_duration;
use mast_agent::envoy::EnvoyCommand;
use mast_agent::metrics::ISTIO_AGENT_PORT;
use mast_agent::ports::{CaptureRequest, PortPlan, Reservations, plan_ports};
use mast_agent::sds::SDS_SOCKET;
use mast_model::{NodeType, ProxyNode};

/// Starts Envoy as a Mast sidecar or gateway: writes its bootstrap (node id and Istio
/// metadata, admin on 127.0.0.1, ADS to mastd), runs it, reports when it is ready (log line
/// "ready" and the ports file), restarts it if it dies (at most 5 times a minute), and on
/// SIGTERM/SIGINT drains it gracefully and stops with it.
#[derive(Debug, Parser)]
#[command(
    name = "mast-agent",
    version,
    about,
    long_about = None,
    after_help = "The agent logs to stderr; MAST_LOG sets its level (a tracing filter, default info)."
)]
pub struct Args {
    /// The control plane's xDS (ADS) address: host:port or http://host:port (plaintext,
    /// mastd's 15010), https://host:port (TLS verified against --xds-root-cert; istiod's
    /// 15012).
    #[arg(long, env = "MAST_XDS_ADDRESS", default_value = "127.0.0.1:15010")]
    pub xds_address: String,

    /// The mesh root certificate (PEM) that verifies an https:// xDS address (Envoy's
    /// `xds_cluster` trusts it).
    #[arg(long, env = "MAST_XDS_ROOT_CERT")]
    pub xds_root_cert: Option<PathBuf>,

    /// Use incremental xDS (ADS DELTA_GRPC) instead of state of the world (GRPC).
    #[arg(long, env = "MAST_DELTA")]
    pub delta: bool,

    /// The whole node id (type~ip~workload.namespace~namespace.svc.domain). When given,
    /// --type, --ip, --workload and --namespace default to its parts.
    #[arg(long, env = "MAST_NODE_ID")]
    pub node_id: Option<String>,

    /// The proxy type: a workload's sidecar, or a gateway (router) [default: sidecar].
    #[arg(long = "type", env = "MAST_PROXY_TYPE", value_enum)]
    pub proxy_type: Option<ProxyType>,

    /// The workload's IP, as in the node id [default: 127.0.0.1].
    #[arg(long, env = "MAST_INSTANCE_IP")]
    pub ip: Option<String>,

    /// The workload's name (node id, cluster `<workload>.<namespace>`, WORKLOAD_NAME).
    /// Required unless --node-id is given.
    #[arg(long, env = "MAST_WORKLOAD")]
    pub workload: Option<String>,

    /// The workload's name when the node id names a pod of it (Istio's
    /// `ISTIO_META_WORKLOAD_NAME`, written by the injector) [default: the --workload].
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

    /// How traffic reaches the sidecar: iptables redirection to 15001/15006, or explicit
    /// listeners on 127.0.0.1 (ports; no root needed).
    #[arg(long, env = "MAST_CAPTURE_MODE", value_enum, default_value_t = CaptureArg::Iptables)]
    pub capture_mode: CaptureArg,

    /// Ports mode: the outbound listener, used by the workload as its HTTP proxy
    /// (0 or absent: pick a free port).
    #[arg(long, env = "MAST_OUTBOUND_PORT")]
    pub outbound_port: Option<u16>,

    /// Ports mode: APP=LISTEN, the sidecar accepts inbound traffic for application port APP
    /// on LISTEN and forwards it to 127.0.0.1:APP (LISTEN 0 or absent: pick a free port;
    /// repeatable; comma-separated in MAST_INBOUND_PORTS).
    #[arg(long = "inbound-port", env = "MAST_INBOUND_PORTS", value_delimiter = ',', value_parser = parse_inbound)]
    pub inbound_ports: Vec<(u16, u16)>,

    /// Envoy's admin port on 127.0.0.1 (0: pick a free port).
    #[arg(long, env = "MAST_ADMIN_PORT", default_value_t = 15000)]
    pub admin_port: u16,

    /// Istio's agent port: `/stats/prometheus` (Envoy's stats merged with the agent's own)
    /// and `/healthz/ready`; 0.0.0.0 in iptables mode, 127.0.0.1 in ports mode
    /// [default: 15020 in iptables mode, off in ports mode; 0: pick a free port].
    #[arg(long, env = "MAST_METRICS_PORT")]
    pub metrics_port: Option<u16>,

    /// The Envoy binary (default: `envoy` on PATH).
    #[arg(long, env = "MAST_ENVOY", default_value = "envoy")]
    pub envoy: PathBuf,

    /// Envoy's worker threads.
    #[arg(long, env = "MAST_CONCURRENCY", default_value_t = 2)]
    pub concurrency: u16,

    /// Envoy's log level (Envoy logs to <work-dir>/envoy.log; the agent's own level is MAST_LOG).
    #[arg(long, env = "MAST_PROXY_LOG_LEVEL", default_value = "info",
          value_parser = ["trace", "debug", "info", "warning", "warn", "error", "critical", "off"])]
    pub log_level: String,

    /// Where the bootstrap, Envoy's log (envoy.log) and stderr (envoy.stdio.log) go
    /// (default: a new temporary folder, removed when the agent exits cleanly).
    #[arg(long, env = "MAST_WORK_DIR")]
    pub work_dir: Option<PathBuf>,

    /// Write the chosen ports as JSON here when Envoy is ready
    /// ({"admin":N,"outbound":N,"inbound":{"APP":N},"envoy_pid":N,…}); removed while Envoy
    /// is not ready and when the agent exits.
    #[arg(long, env = "MAST_PORTS_FILE")]
    pub ports_file: Option<PathBuf>,

    /// How long Envoy waits for its first CDS, then its first LDS, before going LIVE
    /// without them (0: wait forever).
    #[arg(long, env = "MAST_INITIAL_FETCH_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub initial_fetch_timeout: Duration,

    /// On SIGTERM/SIGINT: how long listeners drain before Envoy is told to stop (0: no drain).
    #[arg(long, env = "MAST_DRAIN_DURATION", default_value = "5s", value_parser = parse_duration)]
    pub drain_duration: Duration,

    /// The CA's address, host:port or https://host:port (Istio's CreateCertificate API)
    /// [default: --xds-address].
    #[arg(long, env = "MAST_CA_ADDRESS")]
    pub ca_address: Option<String>,

    /// The mesh root certificate (PEM) that verifies an https:// CA address [default:
    /// --xds-root-cert].
    #[arg(long, env = "MAST_CA_ROOT_CERT")]
    pub ca_root_cert: Option<PathBuf>,

    /// The application's probes the metrics port runs under /app-health/ (Istio's JSON,
    /// written by the injector).
    #[arg(long, env = "ISTIO_KUBE_APP_PROBERS", hide = true)]
    pub app_probers: Option<String>,

    /// The token file authenticating the workload to the CA. Without it the workload gets
    /// no certificate: TLS that needs one fails, plaintext works.
    #[arg(long, env = "MAST_CA_TOKEN_FILE")]
    pub ca_token_file: Option<PathBuf>,

    /// The validity requested for the workload certificate (renewed at half life).
    #[arg(long, env = "MAST_CERT_TTL", default_value = "24h", value_parser = mast_ca::duration::parse_duration)]
    pub cert_ttl: Duration,

    /// Something else than running Envoy.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `mast-agent <command>`: what the agent does instead of running Envoy.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Writes istio-iptables' traffic capture rules into this network namespace (what the
    /// `istio-init` container runs; Istio's flags), prints them (--dry-run) or removes them
    /// (--cleanup).
    Iptables(mast_iptables::IptablesArgs),
}

/// `--type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProxyType {
    /// A workload's sidecar.
    Sidecar,
    /// A gateway.
    Router,
}

/// `--capture-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CaptureArg {
    /// iptables redirection (15001 outbound, 15006 inbound).
    Iptables,
    /// Explicit listeners on 127.0.0.1.
    Ports,
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

/// Whether `address` asks for TLS.
fn is_https(address: &str) -> bool {
    address
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// The root file an `https://` address needs: given, readable and holding a certificate.
fn need_root(address: &str, root: Option<&PathBuf>, flag: &str) -> anyhow::Result<PathBuf> {
    let Some(root) = root else {
        bail!("{address}: an https:// address needs the mesh root certificate: give {flag}");
    };
    let text = std::fs::read_to_string(root)
        .with_context(|| format!("the mesh root certificate {}", root.display()))?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        bail!(
            "the mesh root certificate {}: no PEM certificate in it",
            root.display()
        );
    }
    Ok(root.clone())
}

/// How the workload gets its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConfig {
    /// The CA's address.
    pub ca_address: String,
    /// The mesh root verifying an `https://` CA address.
    pub ca_root_cert: Option<PathBuf>,
    /// The token file (none: no certificate).
    pub token_file: Option<PathBuf>,
    /// The requested validity.
    pub ttl: Duration,
    /// The workload's namespace.
    pub namespace: String,
    /// The workload's service account (`default` when not given).
    pub service_account: String,
}

/// Everything the supervisor needs, resolved from the flags.
#[derive(Debug)]
pub struct AgentConfig {
    /// The bootstrap (already written).
    pub bootstrap: Bootstrap,
    /// The ports chosen.
    pub plan: PortPlan,
    /// The sockets reserving the picked ports, held while the agent runs.
    #[expect(dead_code, reason = "held, never read: dropping it frees the ports")]
    pub reservations: Reservations,
    /// Where the metrics port listens, when served.
    pub metrics_addr: Option<SocketAddr>,
    /// How Envoy is run.
    pub envoy: EnvoyCommand,
    /// The work dir, and whether the agent created it (and so removes it).
    pub work_dir: PathBuf,
    /// Whether the work dir is the agent's own temporary folder.
    pub temporary_work_dir: bool,
    /// The ports file.
    pub ports_file: Option<PathBuf>,
    /// The graceful drain.
    pub drain: Duration,
    /// The SDS socket Envoy reaches through `sds-grpc`.
    pub sds_socket: PathBuf,
    /// Where the certificate comes from.
    pub identity: IdentityConfig,
    /// The application probes served on the metrics port.
    pub app_probers: mast_probe::AppProbers,
}

impl Args {
    /// Resolves the node and ports, creates the work dir and writes the bootstrap there.
    pub fn resolve(self) -> anyhow::Result<AgentConfig> {
        let node = self.node_spec()?;
        let capture = self.capture_request()?;
        let metrics_port = match (&capture, self.metrics_port) {
            (_, Some(port)) => Some(port),
            (CaptureRequest::Iptables, None) => Some(ISTIO_AGENT_PORT),
            (CaptureRequest::Ports { .. }, None) => None,
        };
        let (plan, reservations) = plan_ports(self.admin_port, metrics_port, &capture)?;
        let metrics_ip = match capture {
            CaptureRequest::Iptables => Ipv4Addr::UNSPECIFIED,
            CaptureRequest::Ports { .. } => Ipv4Addr::LOCALHOST,
        };
        let metrics_addr = plan
            .metrics
            .map(|p| SocketAddr::new(IpAddr::V4(metrics_ip), p));
        let (xds, identity) = self.control_plane(&node)?;
        let app_probers = match self.app_probers.as_deref() {
            Some(text) => mast_probe::AppProbers::parse(text)?,
            None => mast_probe::AppProbers::default(),
        };
        let (work_dir, temporary_work_dir) = match self.work_dir {
            Some(dir) => (std::path::absolute(&dir).unwrap_or(dir), false),
            None => (
                std::env::temp_dir().join(format!("mast-agent-{}", std::process::id())),
                true,
            ),
        };
        let sds_socket = work_dir.join(SDS_SOCKET);
        let bootstrap = Bootstrap {
            node: NodeSpec {
                capture: plan.capture.clone(),
                ..node
            },
            admin_port: plan.admin,
            xds,
            api: if self.delta {
                AdsApi::Delta
            } else {
                AdsApi::Sotw
            },
            initial_fetch_timeout: self.initial_fetch_timeout,
            sds_socket: Some(sds_socket.clone()),
        };
        std::fs::create_dir_all(&work_dir)
            .with_context(|| format!("cannot create {}", work_dir.display()))?;
        let config = bootstrap.write_to(&work_dir)?;
        let envoy = EnvoyCommand {
            binary: self.envoy,
            config,
            log_path: work_dir.join("envoy.log"),
            stdio_path: work_dir.join("envoy.stdio.log"),
            concurrency: self.concurrency,
            log_level: if self.log_level == "warn" {
                "warning".into()
            } else {
                self.log_level
            },
            drain_time: self.drain_duration,
        };
        Ok(AgentConfig {
            bootstrap,
            plan,
            reservations,
            metrics_addr,
            envoy,
            work_dir,
            temporary_work_dir,
            ports_file: self.ports_file,
            drain: self.drain_duration,
            sds_socket,
            identity,
            app_probers,
        })
    }

    /// The xDS address (with its root for `https://`) and where the certificate comes from.
    fn control_plane(&self, node: &NodeSpec) -> anyhow::Result<(XdsAddress, IdentityConfig)> {
        let mut xds: XdsAddress = self.xds_address.parse()?;
        let ca_address = self
            .ca_address
            .clone()
            .unwrap_or_else(|| self.xds_address.clone());
        let ca_root_cert = self.ca_root_cert.clone().or(self.xds_root_cert.clone());
        if xds.tls {
            let root = need_root(
                &self.xds_address,
                self.xds_root_cert.as_ref(),
                "--xds-root-cert (MAST_XDS_ROOT_CERT)",
            )?;
            xds.root_cert = Some(std::path::absolute(&root).unwrap_or(root));
        }
        if is_https(&ca_address) {
            need_root(
                &ca_address,
                ca_root_cert.as_ref(),
                "--ca-root-cert (MAST_CA_ROOT_CERT) or --xds-root-cert",
            )?;
        }
        let identity = IdentityConfig {
            ca_address,
            ca_root_cert,
            token_file: self.ca_token_file.clone(),
            ttl: self.cert_ttl,
            namespace: node.namespace.clone(),
            service_account: node
                .service_account
                .clone()
                .filter(|sa| !sa.is_empty())
                .unwrap_or_else(|| "default".into()),
        };
        Ok((xds, identity))
    }

    fn node_spec(&self) -> anyhow::Result<NodeSpec> {
        let from_id = match &self.node_id {
            Some(id) => Some(ProxyNode::parse(id, &serde_json::json!({}))?),
            None => None,
        };
        let Some(workload) = self
            .workload
            .clone()
            .or_else(|| from_id.as_ref().map(|n| n.workload.clone()))
        else {
            bail!("give --workload (or a whole --node-id)");
        };
        let namespace = self
            .namespace
            .clone()
            .or_else(|| {
                from_id
                    .as_ref()
                    .map(|n| n.namespace.clone())
                    .filter(|ns| !ns.is_empty())
            })
            .unwrap_or_else(|| "default".into());
        let mut spec = NodeSpec::sidecar(&workload, &namespace);
        spec.workload_name = self.workload_name.clone().filter(|w| !w.is_empty());
        spec.node_type = match (self.proxy_type, &from_id) {
            (Some(ProxyType::Router), _) => NodeType::Router,
            (Some(ProxyType::Sidecar), _) => NodeType::Sidecar,
            (None, Some(node)) => node.node_type,
            (None, None) => NodeType::Sidecar,
        };
        spec.ip = self
            .ip
            .clone()
            .or_else(|| from_id.as_ref().map(|n| n.ip.clone()))
            .unwrap_or(spec.ip);
        spec.domain = self.domain.clone();
        spec.labels = self.labels.iter().cloned().collect::<BTreeMap<_, _>>();
        spec.service_account = self.service_account.clone();
        spec.cluster_id = self.cluster_id.clone();
        spec.mesh_id = self.mesh_id.clone();
        spec.id_override = self.node_id.clone();
        Ok(spec)
    }

    fn capture_request(&self) -> anyhow::Result<CaptureRequest> {
        match self.capture_mode {
            CaptureArg::Iptables => {
                if self.outbound_port.is_some() || !self.inbound_ports.is_empty() {
                    bail!("--outbound-port and --inbound-port apply only to --capture-mode ports");
                }
                Ok(CaptureRequest::Iptables)
            }
            CaptureArg::Ports => Ok(CaptureRequest::Ports {
                outbound: self.outbound_port.unwrap_or(0),
                inbound: self.inbound_ports.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_and_inbound_ports() {
        assert_eq!(
            parse_label("app=reviews"),
            Ok(("app".into(), "reviews".into()))
        );
        assert!(parse_label("app").is_err());
        assert_eq!(parse_inbound("9080=15106"), Ok((9080, 15106)));
        assert_eq!(parse_inbound("9080"), Ok((9080, 0)));
        assert!(parse_inbound("x=1").is_err());
        assert!(parse_inbound("0=1").is_err());
    }

    #[test]
    fn node_from_parts_and_from_id() {
        let args = Args::parse_from([
            "mast-agent",
            "--workload",
            "reviews-v1",
            "--namespace",
            "bookinfo",
        ]);
        let spec = args.node_spec().unwrap();
        assert_eq!(
            spec.node_id(),
            "sidecar~127.0.0.1~reviews-v1.bookinfo~bookinfo.svc.cluster.local"
        );
        let id = "router~10.1.2.3~ingress.istio-system~istio-system.svc.cluster.local";
        let args = Args::parse_from(["mast-agent", "--node-id", id]);
        let spec = args.node_spec().unwrap();
        assert_eq!(spec.node_id(), id);
        assert_eq!(spec.node_type, NodeType::Router);
        assert_eq!(spec.cluster(), "ingress.istio-system");
        assert_eq!(spec.ip, "10.1.2.3");
        assert!(Args::parse_from(["mast-agent"]).node_spec().is_err());
    }

    #[test]
    fn metrics_port_follows_mast_proxys_prometheus_port_rules() {
        let resolve = |extra: &[&str]| {
            let dir = std::env::temp_dir().join(format!(
                "mast-agent-cli-{}-{}",
                std::process::id(),
                extra.len()
            ));
            let mut argv = vec!["mast-agent", "--workload", "a", "--admin-port", "0"];
            argv.extend_from_slice(extra);
            argv.extend(["--work-dir", dir.to_str().unwrap()]);
            let config = Args::parse_from(argv).resolve().unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            config.metrics_addr
        };
        let iptables = resolve(&[]).unwrap();
        assert_eq!(iptables.to_string(), "0.0.0.0:15020");
        assert_eq!(resolve(&["--capture-mode", "ports"]), None);
        let picked = resolve(&["--capture-mode", "ports", "--metrics-port", "0"]).unwrap();
        assert!(picked.ip().is_loopback() && picked.port() != 0, "{picked}");
    }

    #[test]
    fn port_flags_need_ports_mode() {
        let args = Args::parse_from(["mast-agent", "--workload", "a", "--outbound-port", "15101"]);
        assert!(args.capture_request().is_err());
        let args = Args::parse_from([
            "mast-agent",
            "--workload",
            "a",
            "--capture-mode",
            "ports",
            "--inbound-port",
            "9080=15106,9090",
        ]);
        assert_eq!(
            args.capture_request().unwrap(),
            CaptureRequest::Ports {
                outbound: 0,
                inbound: vec![(9080, 15106), (9090, 0)]
            }
        );
    }

    #[test]
    fn iptables_subcommand_takes_istio_iptables_flags() {
        let args = Args::parse_from([
            "mast-agent",
            "iptables",
            "-p",
            "15001",
            "-z",
            "15006",
            "-u",
            "1337",
            "-m",
            "REDIRECT",
            "-i",
            "*",
            "-x",
            "",
            "-b",
            "*",
            "-d",
            "15090,15021,15020",
        ]);
        let Some(Command::Iptables(flags)) = &args.command else {
            panic!("not the iptables subcommand: {args:?}");
        };
        let config = flags.to_config().unwrap();
        assert_eq!(config.inbound_ports_exclude, [15090, 15021, 15020]);
        assert!(!flags.dry_run && !flags.cleanup);
        let cleanup = Args::parse_from(["mast-agent", "iptables", "--cleanup"]);
        assert!(matches!(&cleanup.command, Some(Command::Iptables(f)) if f.cleanup));
        let plain = Args::parse_from(["mast-agent", "--workload", "a"]);
        assert!(
            plain.command.is_none(),
            "no subcommand: runs Envoy as before"
        );
        assert!(Args::try_parse_from(["mast-agent", "iptables", "--envoy-port"]).is_err());
    }
}
