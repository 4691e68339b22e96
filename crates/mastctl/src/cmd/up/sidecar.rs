//! Starting the processes a mesh is made of: mastd on the user's folder plus the generated
//! one (its CA kept in the run folder's `ca/`, a token per LocalWorkload written to
//! `tokens/<namespace>/<name>.token`), and a workload's sidecar (`mast-proxy`, or
//! `mast-agent` running Envoy) in ports capture mode with its token, so it gets the
//! workload's certificate from mastd, ready when its ports file appears. Binaries are found
//! next to the `mastctl` executable, else on PATH.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Deserialize;
use tokio::process::Command;

use super::ports::Block;
use super::proc::{self, Proc, Sink};
use crate::local::spec::{LocalSpec, ProxyKind};

/// How long a sidecar may take to get its first configuration.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long mastd may take to listen.
const MASTD_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a stopping sidecar drains its listeners.
pub const DRAIN: Duration = Duration::from_secs(2);

/// The path of binary `name`: next to this executable, else `name` (found on PATH).
pub fn binary(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(name)))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// A command for a child of ours: none of our `MAST_*` settings leak into it (its flags
/// say everything) except `MAST_ENVOY`; its log level is `$MAST_MESH_LOG` or `warn`.
pub fn command(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("MAST_") && k != "MAST_ENVOY" {
            cmd.env_remove(k.as_ref());
        }
    }
    let level = std::env::var("MAST_MESH_LOG").unwrap_or_else(|_| "warn".into());
    cmd.env("MAST_LOG", level).env("NO_COLOR", "1");
    cmd
}

/// The CA folder of a mesh whose run folder is `run_dir` (kept across runs: same root).
pub fn ca_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("ca")
}

/// The folder where mastd writes the workloads' CA tokens.
pub fn tokens_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("tokens")
}

/// mastd's addresses and options in a local mesh.
#[derive(Debug, Clone)]
pub struct MastdOptions {
    /// xDS address.
    pub xds: String,
    /// Monitoring address.
    pub monitoring: String,
    /// `--dashboard-addr` (may list fallbacks).
    pub dashboard: String,
    /// A Prometheus the dashboard queries (`mastctl up --prometheus`).
    pub prometheus: Option<String>,
    /// `--reuse-port`: the xDS and monitoring ports are reserved for mastd.
    pub reuse_port: bool,
}

/// Starts mastd serving `dirs`, its CA in `run_dir`, and waits until its xDS port accepts
/// connections. Every request is traced (the demo's 100 %), spans going to mastd's own
/// collector, shown by the dashboard, and logged by the proxies on their stdout.
pub async fn start_mastd(
    dirs: &[&Path],
    opts: &MastdOptions,
    run_dir: &Path,
) -> anyhow::Result<Proc> {
    let (xds, monitoring) = (opts.xds.as_str(), opts.monitoring.as_str());
    let mut cmd = command(&binary("mastd"));
    for dir in dirs {
        cmd.arg("--config-dir").arg(dir);
    }
    cmd.args(["--xds-addr", xds, "--monitoring-addr", monitoring])
        .args([
            "--dashboard-addr",
            &opts.dashboard,
            "--trace-sampling",
            "100",
            // Istio's demo profile: every proxy logs each request and connection on stdout
            // (a sidecar's stdout is kept as `<run>/<ns>.<name>.access.log`).
            "--access-log-file",
            "/dev/stdout",
        ])
        .arg("--ca-dir")
        .arg(ca_dir(run_dir))
        .arg("--local-tokens")
        .arg(tokens_dir(run_dir));
    if let Some(url) = &opts.prometheus {
        cmd.args(["--prometheus", url]);
    }
    if opts.reuse_port {
        cmd.arg("--reuse-port");
    }
    let mut mastd = proc::spawn(
        cmd,
        "mastd",
        Sink::Stderr("[mastd] ".into()),
        Sink::Stderr("[mastd] ".into()),
    )?;
    let deadline = Instant::now() + MASTD_TIMEOUT;
    loop {
        if tokio::net::TcpStream::connect(xds).await.is_ok() {
            return Ok(mastd);
        }
        tokio::select! {
            status = mastd.wait() => bail!("mastd {} before listening (its messages are above)", status.map(|s| proc::describe(&s)).unwrap_or_default()),
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        if Instant::now() > deadline {
            mastd.stop(Duration::from_secs(2), false).await;
            bail!("mastd did not listen on {xds} within {MASTD_TIMEOUT:?}");
        }
    }
}

/// The dashboard URL mastd reports on its monitoring server (`None` when it runs none or
/// does not answer).
pub async fn dashboard_url(monitoring: &str) -> Option<String> {
    let addr = monitoring.to_owned();
    let answer =
        tokio::task::spawn_blocking(move || crate::http::get_json(&addr, "/debug/endpointz"))
            .await
            .ok()?;
    match answer {
        Ok(v) => v["dashboard"].as_str().map(str::to_owned),
        Err(e) => {
            tracing::warn!("cannot read the dashboard address from mastd: {e:#}");
            None
        }
    }
}

/// The ports a ready sidecar reports.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct SidecarPorts {
    /// Outbound listener.
    pub outbound: u16,
    /// Admin interface.
    pub admin: u16,
    /// Health endpoint (mast-proxy).
    #[serde(default)]
    pub health: Option<u16>,
    /// Inbound listeners by application port.
    #[serde(default)]
    pub inbound: BTreeMap<String, u16>,
}

/// Where a workload's sidecar files go under the run folder.
pub struct SidecarFiles {
    /// The ports file.
    pub ports: PathBuf,
    /// The access log (the sidecar's stdout).
    pub access_log: PathBuf,
    /// mast-agent's work folder (Envoy's bootstrap and logs).
    pub work_dir: PathBuf,
    /// The CA token mastd writes for the workload.
    pub token: PathBuf,
}

impl SidecarFiles {
    /// The files of workload `spec` under `run_dir`.
    pub fn new(run_dir: &Path, spec: &LocalSpec) -> Self {
        let base = format!("{}.{}", spec.key.namespace, spec.key.name);
        Self {
            ports: run_dir.join(format!("{base}.ports.json")),
            access_log: run_dir.join(format!("{base}.access.log")),
            work_dir: run_dir.join(format!("{base}.envoy")),
            token: tokens_dir(run_dir)
                .join(&spec.key.namespace)
                .join(format!("{}.token", spec.key.name)),
        }
    }
}

/// Starts the sidecar of `spec` (not waiting for it to be ready).
pub fn start_sidecar(
    spec: &LocalSpec,
    kind: ProxyKind,
    xds: &str,
    block: &Block,
    files: &SidecarFiles,
) -> anyhow::Result<Proc> {
    let _ = std::fs::remove_file(&files.ports);
    let bin = binary(match kind {
        ProxyKind::Mast => "mast-proxy",
        ProxyKind::Envoy => "mast-agent",
    });
    let mut cmd = command(&bin);
    cmd.args(["--xds-address", xds, "--workload", &spec.key.name])
        .args(["--namespace", &spec.key.namespace])
        .args(["--service-account", &spec.service_account])
        .args(["--capture-mode", "ports", "--concurrency", "1"])
        .args(["--outbound-port", &block.outbound.to_string()])
        .args(["--admin-port", &block.admin.to_string()])
        .arg("--drain-duration")
        .arg(format!("{}s", DRAIN.as_secs()))
        .arg("--ports-file")
        .arg(&files.ports)
        .arg("--ca-token-file")
        .arg(&files.token);
    for (k, v) in &spec.labels {
        cmd.arg("--label").arg(format!("{k}={v}"));
    }
    if let Some(port) = spec.port {
        cmd.arg("--inbound-port")
            .arg(format!("{port}={}", block.inbound));
    }
    match kind {
        ProxyKind::Mast => cmd.args(["--health-port", &block.health.to_string()]),
        // The agent's merged metrics (Envoy's and its own) and readiness, Istio's 15020, on
        // the block's health port.
        ProxyKind::Envoy => cmd
            .arg("--work-dir")
            .arg(&files.work_dir)
            .args(["--metrics-port", &block.health.to_string()]),
    };
    let prefix = format!("[{} sidecar] ", spec.key.name);
    proc::spawn(
        cmd,
        &format!("{} ({})", bin.display(), spec.key),
        Sink::File(files.access_log.clone()),
        Sink::Stderr(prefix),
    )
}

/// Waits until the sidecar writes its ports file (it has its first configuration).
pub async fn wait_ready(sidecar: &mut Proc, files: &SidecarFiles) -> anyhow::Result<SidecarPorts> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(text) = std::fs::read_to_string(&files.ports)
            && let Ok(ports) = serde_json::from_str::<SidecarPorts>(&text)
        {
            return Ok(ports);
        }
        tokio::select! {
            status = sidecar.wait() => bail!("the sidecar {} before it was ready", status.map(|s| proc::describe(&s)).unwrap_or_default()),
            () = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
        if Instant::now() > deadline {
            bail!("the sidecar was not ready within {READY_TIMEOUT:?}");
        }
    }
}

/// Fails with a clear message when mastd or a needed sidecar binary (or Envoy) is missing.
pub fn check_binaries(kinds: &[ProxyKind]) -> anyhow::Result<()> {
    let mut names = vec!["mastd"];
    for k in kinds {
        names.push(match k {
            ProxyKind::Mast => "mast-proxy",
            ProxyKind::Envoy => "mast-agent",
        });
    }
    for name in names {
        let path = binary(name);
        if path.is_file() || which(name).is_some() {
            continue;
        }
        bail!("{name} not found next to mastctl nor on PATH: build it (cargo build -p {name})");
    }
    if kinds.contains(&ProxyKind::Envoy) {
        let envoy = std::env::var_os("MAST_ENVOY").map(PathBuf::from);
        let found = envoy.as_ref().is_some_and(|p| p.is_file()) || which("envoy").is_some();
        if !found {
            bail!(
                "a workload runs with Envoy but Envoy was not found: set MAST_ENVOY or put envoy on PATH"
            );
        }
    }
    Ok(())
}

/// `name` found on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl SidecarPorts {
    /// The inbound listener for `port`, if any.
    pub fn inbound_for(&self, port: Option<u16>) -> Option<u16> {
        port.and_then(|p| self.inbound.get(&p.to_string()).copied())
    }
}

/// Makes sure the run folder exists.
pub fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}
