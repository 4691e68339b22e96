//! Start-up time: from the exec of the sidecar's binary (mast-proxy; for Envoy, `mast-agent`,
//! which writes the bootstrap and execs Envoy) to the first `GET http://bench-svc/` answered
//! 200 through its outbound listener, with mastd already running the config. The listener
//! port is chosen beforehand and probed every 1 ms with a fresh connection; each rep is a new
//! node (own workload name), killed before the next.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mast_test_support::{ProcessGuard, free_port};

use crate::mesh::{self, Kind, Tools};

/// How long one start may take before it counts as failed.
const START_LIMIT: Duration = Duration::from_secs(10);
/// Time between probes.
const POLL: Duration = Duration::from_millis(1);

/// The start-up times of `reps` starts of `kind` (`None` for a start that failed).
pub async fn measure(
    tools: &Tools,
    kind: Kind,
    workers: usize,
    xds: SocketAddr,
    root: &std::path::Path,
    reps: usize,
) -> anyhow::Result<Vec<Option<Duration>>> {
    let mut out = Vec::with_capacity(reps);
    for rep in 0..reps {
        out.push(once(tools, kind, workers, xds, root, rep).await?);
    }
    Ok(out)
}

async fn once(
    tools: &Tools,
    kind: Kind,
    workers: usize,
    xds: SocketAddr,
    root: &std::path::Path,
    rep: usize,
) -> anyhow::Result<Option<Duration>> {
    let port = free_port();
    let suffix = format!("-start{rep}");
    let options = mesh::sidecar_options(tools, kind, workers, xds, port, &suffix)
        .context("direct has no start-up")?;
    let (binary, envoy) = options.resolve_binaries()?;
    let dir = root.join(format!("startup-{}-{rep}", kind.name()));
    std::fs::create_dir_all(&dir)?;
    let log = std::fs::File::create(dir.join("output.log"))?;
    let mut command = Command::new(binary);
    command.args(options.command_args(envoy.as_deref()));
    if kind == Kind::Envoy {
        command.arg("--work-dir").arg(dir.join("work"));
    }
    command
        .arg("--ports-file")
        .arg(dir.join("ports.json"))
        .env("MAST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    let mut guard = ProcessGuard::spawn(&mut command).context("starting the sidecar")?;
    let mut took = None;
    while started.elapsed() < START_LIMIT {
        if let Ok(200) = mesh::probe(addr, Duration::from_millis(100)).await {
            took = Some(started.elapsed());
            break;
        }
        if let Ok(Some(_)) = guard.try_wait() {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    // SIGKILL to the group (the agent and its Envoy): a graceful drain would only add waiting.
    let _ = tokio::task::spawn_blocking(move || guard.kill()).await;
    Ok(took)
}
