//! One gateway process, started directly (not through `mastctl up`): `mast-proxy --type
//! router` or `mast-agent --type router` running Envoy, workload `ingress-<kind>` in
//! `istio-system` (node id `router~127.0.0.1~ingress-<kind>.istio-system~istio-system.svc.cluster.local`),
//! labels `istio=ingressgateway` and `bench=<kind>`, every auxiliary port (admin, health,
//! metrics, status) picked free so two gateways run side by side, no drain on exit. Its
//! folder (under the run's folder) holds the ports file and the log; the listener port comes
//! from the gateway's Service (see [`super::setup`]), not from a flag.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use mast_test_support::{ProcessGuard, ProxyPorts};

use super::setup::NAMESPACE;
use crate::mesh::{Kind, Tools};
use crate::procs::{self, ProcStats};

/// How long a gateway may take to write its ports file.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running gateway, killed (with its Envoy) when dropped.
pub struct Gateway {
    /// mast-proxy or Envoy.
    pub kind: Kind,
    /// Where its HTTPS listener is (127.0.0.1, the Service's targetPort).
    pub addr: SocketAddr,
    /// Its folder (ports file, log; Envoy's work folder).
    pub dir: PathBuf,
    /// The data plane's process id (Envoy's, not mast-agent's).
    pub pid: u32,
    /// Memory once it answered its first request (configured, idle).
    pub idle: ProcStats,
    guard: ProcessGuard,
}

impl Gateway {
    /// Starts the gateway of `kind` (`workers` threads) against `xds` in `root/gw-<kind>`
    /// and waits until it reports ready; `addr` is where its listener will be.
    pub fn start(
        tools: &Tools,
        kind: Kind,
        workers: usize,
        xds: SocketAddr,
        (root, addr): (&Path, SocketAddr),
    ) -> anyhow::Result<Self> {
        let dir = root.join(format!("gw-{}", kind.name()));
        std::fs::create_dir_all(&dir)?;
        let ports_file = dir.join("ports.json");
        let (binary, log, args) = command(tools, kind, workers, xds, &dir)?;
        let out = std::fs::File::create(dir.join(log))?;
        let mut cmd = Command::new(&binary);
        cmd.args(&args)
            .arg("--ports-file")
            .arg(&ports_file)
            .env("NO_COLOR", "1")
            .env("MAST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let mut guard = ProcessGuard::spawn(&mut cmd)
            .with_context(|| format!("starting {}", binary.display()))?;
        let deadline = Instant::now() + READY_TIMEOUT;
        let pid = loop {
            let text = std::fs::read_to_string(&ports_file).unwrap_or_default();
            if let Some(ports) = ProxyPorts::parse(&text) {
                break ports.pid;
            }
            if let Ok(Some(status)) = guard.try_wait() {
                bail!(
                    "the {} gateway exited with {status}; its log: {}",
                    kind.name(),
                    dir.join(log).display()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "the {} gateway did not report ready within {READY_TIMEOUT:?}; its log: {}",
                    kind.name(),
                    dir.join(log).display()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        };
        Ok(Self {
            kind,
            addr,
            dir,
            pid,
            idle: ProcStats::default(),
            guard,
        })
    }

    /// Records the idle footprint (call once it routed its first request).
    pub fn settle(&mut self) {
        self.idle = procs::read(self.pid);
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.guard.try_wait(), Ok(None))
    }
}

/// The binary, its log file's name and its flags (without `--ports-file`).
fn command(
    tools: &Tools,
    kind: Kind,
    workers: usize,
    xds: SocketAddr,
    dir: &Path,
) -> anyhow::Result<(PathBuf, &'static str, Vec<String>)> {
    let name = kind.name();
    let mut args: Vec<String> = [
        "--type",
        "router",
        "--xds-address",
        &xds.to_string(),
        "--workload",
        &format!("ingress-{name}"),
        "--namespace",
        NAMESPACE,
        "--label",
        "istio=ingressgateway",
        "--label",
        &format!("bench={name}"),
        "--concurrency",
        &workers.max(1).to_string(),
        "--admin-port",
        "0",
        "--drain-duration",
        "0s",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    match kind {
        Kind::Mast => {
            for flag in ["--health-port", "--prometheus-port", "--status-port"] {
                args.extend([flag.to_owned(), "0".to_owned()]);
            }
            Ok((tools.proxy.clone(), "proxy.log", args))
        }
        Kind::Envoy => {
            let envoy = tools.envoy.clone().context("Envoy not found")?;
            args.extend(["--metrics-port".to_owned(), "0".to_owned()]);
            args.extend(["--envoy".to_owned(), envoy.display().to_string()]);
            args.extend([
                "--work-dir".to_owned(),
                dir.join("work").display().to_string(),
            ]);
            Ok((tools.agent.clone(), "agent.log", args))
        }
        other => bail!("{} has no gateway", other.name()),
    }
}
