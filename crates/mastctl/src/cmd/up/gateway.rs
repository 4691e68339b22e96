//! A gateway's life in `mastctl up`: its CA token (issued here with mastd's token key, as
//! mastd issues LocalWorkloads' ones, so ISTIO_MUTUAL servers have the gateway's
//! certificate), its WorkloadEntry (address the host, `ports:` the targetPorts of the
//! Services selecting it), then its proxy — `mast-proxy --type router`, or `mast-agent
//! --type router` running Envoy — with node IP the host's (127.0.0.1: its listeners bind
//! loopback), its labels, namespace and service account, admin/health/metrics ports like a
//! sidecar's and no capture listeners of its own. It runs until stopped; a proxy that exits
//! is restarted by the supervisor.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::watch;

use super::netns;
use super::ports::Block;
use super::proc::{self, Proc, Sink};
use super::sidecar::{self, DRAIN, SidecarFiles};
use super::supervisor::{Ctx, Outcome, mark, settle, stop_sidecar, stopped};
use crate::local::spec::{LocalSpec, ProxyKind};

/// The CA token file of gateway `spec` (beside the workloads' ones mastd writes; its own
/// suffix, so a workload of the same name cannot clash).
pub fn token_path(run_dir: &Path, spec: &LocalSpec) -> PathBuf {
    sidecar::tokens_dir(run_dir)
        .join(&spec.key.namespace)
        .join(format!("{}.gateway.token", spec.key.name))
}

/// Writes the gateway's CA token (mode 0600), signed with the key mastd keeps in the CA
/// folder (mastd runs already, so the key exists).
fn write_token(run_dir: &Path, spec: &LocalSpec, path: &Path) -> anyhow::Result<()> {
    let issuer = mast_ca::token::TokenIssuer::load_or_create(&sidecar::ca_dir(run_dir))
        .context("loading mastd's token key")?;
    let token = issuer.issue(&spec.key.namespace, &spec.service_account);
    if let Some(dir) = path.parent() {
        sidecar::ensure_dir(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(format!("{token}\n").as_bytes())?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Starts the gateway proxy of `spec` at node IP `ip` (not waiting for it to be ready).
fn start(
    spec: &LocalSpec,
    kind: ProxyKind,
    (xds, ip): (&str, &str),
    block: &Block,
    files: &SidecarFiles,
) -> anyhow::Result<Proc> {
    let _ = std::fs::remove_file(&files.ports);
    let bin = sidecar::binary(match kind {
        ProxyKind::Mast => "mast-proxy",
        ProxyKind::Envoy => "mast-agent",
    });
    let mut cmd = sidecar::command(&bin);
    cmd.args(["--type", "router", "--ip", ip])
        .args(["--xds-address", xds, "--workload", &spec.key.name])
        .args(["--namespace", &spec.key.namespace])
        .args(["--service-account", &spec.service_account])
        // Ports mode: admin, health and metrics on 127.0.0.1, nothing captured.
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
    match kind {
        ProxyKind::Mast => cmd.args(["--health-port", &block.health.to_string()]),
        ProxyKind::Envoy => cmd
            .arg("--work-dir")
            .arg(&files.work_dir)
            .args(["--metrics-port", &block.health.to_string()]),
    };
    cmd.envs(&spec.env);
    proc::spawn(
        cmd,
        &format!("{} ({})", bin.display(), spec.key),
        Sink::File(files.access_log.clone()),
        Sink::Stderr(format!("[{} gateway] ", spec.key.name)),
    )
}

/// One life of a gateway: token, entry, proxy until it exits or the gateway is stopped.
pub(super) async fn run_once(
    ctx: &Ctx,
    spec: &LocalSpec,
    (kind, block): (ProxyKind, &Block),
    stop: &mut watch::Receiver<bool>,
    settled: &mut bool,
) -> Outcome {
    let run_dir = &ctx.mesh.run_dir;
    let mut files = SidecarFiles::new(run_dir, spec);
    files.token = token_path(run_dir, spec);
    if let Err(e) = write_token(run_dir, spec, &files.token) {
        return Outcome::Failed(format!("{e:#}"));
    }
    let ip = if ctx.network.is_some() {
        netns::BRIDGE_IP
    } else {
        "127.0.0.1"
    };
    let resources = Arc::clone(&ctx.resources.lock());
    ctx.mesh.write_entry_at(spec, 0, ip, &resources);
    let mut proxy = match start(spec, kind, (&ctx.xds, ip), block, &files) {
        Ok(p) => p,
        Err(e) => return Outcome::Failed(format!("{e:#}")),
    };
    let pid = proxy.pid;
    ctx.mesh.update(&spec.key, |w| w.sidecar_pid = Some(pid));
    let ready = tokio::select! {
        r = sidecar::wait_ready(&mut proxy, &files) => r,
        () = stopped(stop) => {
            stop_sidecar(proxy).await;
            return Outcome::Stopped;
        }
    };
    let ports = match ready {
        Ok(p) => p,
        Err(e) => {
            stop_sidecar(proxy).await;
            return Outcome::Failed(format!("{e:#}"));
        }
    };
    ctx.mesh.update(&spec.key, |w| {
        w.admin = Some(ports.admin);
        w.health = ports.health;
        w.status = "Running".into();
    });
    // A gateway is its proxy: ready, it gets traffic.
    ctx.mesh.set_healthy(&spec.key, true);
    settle(ctx, &spec.key, settled);
    let status = tokio::select! {
        s = proxy.wait() => s,
        () = stopped(stop) => {
            mark(ctx, &spec.key, "Stopping", false);
            ctx.mesh.remove_entry(&spec.key);
            stop_sidecar(proxy).await;
            return Outcome::Stopped;
        }
    };
    let why = status.map(|s| proc::describe(&s)).unwrap_or_default();
    Outcome::Failed(format!("the gateway proxy {why}"))
}
