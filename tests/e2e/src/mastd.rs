//! [`Mastd`]: the control plane as a real process (the `mastd` binary built in the cargo
//! target dir), on ports picked free at run time, and a client for its monitoring API
//! (`/debug/syncz`, `/debug/configz`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mast_test_support::{ProcessGuard, http_get_direct};
use serde_json::Value;

use crate::reaper::Reaper;
use crate::sync::ProxySync;

/// How long mastd may take to answer on its monitoring port after being started.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Where a mastd listens and what it serves.
#[derive(Debug, Clone)]
pub struct MastdConfig {
    /// The `mastd` binary.
    pub binary: PathBuf,
    /// The watched config folder (`--config-dir`).
    pub config_dir: PathBuf,
    /// The xDS address (`--xds-addr`).
    pub xds_addr: SocketAddr,
    /// The monitoring address (`--monitoring-addr`).
    pub monitoring_addr: SocketAddr,
    /// mastd's output goes here (appended, so a restart keeps the first run's log).
    pub log: PathBuf,
}

/// A running mastd, killed (with everything in its process group) when dropped.
#[derive(Debug)]
pub struct Mastd {
    guard: ProcessGuard,
    _reaper: Reaper,
}

impl Mastd {
    /// Starts mastd and waits until its monitoring API answers.
    pub async fn start(config: &MastdConfig) -> anyhow::Result<Self> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.log)
            .with_context(|| format!("opening {}", config.log.display()))?;
        let log_err = log.try_clone()?;
        let mut command = Command::new(&config.binary);
        command
            .arg("--config-dir")
            .arg(&config.config_dir)
            .arg("--xds-addr")
            .arg(config.xds_addr.to_string())
            .arg("--monitoring-addr")
            .arg(config.monitoring_addr.to_string())
            .env("MAST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let guard = ProcessGuard::spawn(&mut command)
            .with_context(|| format!("starting {}", config.binary.display()))?;
        let reaper = Reaper::watch(guard.pid())?;
        let mut mastd = Self {
            guard,
            _reaper: reaper,
        };
        mastd.wait_answering(config).await?;
        Ok(mastd)
    }

    async fn wait_answering(&mut self, config: &MastdConfig) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(r) = http_get_direct(config.monitoring_addr, "/version", &[]).await
                && r.status == 200
            {
                return Ok(());
            }
            if let Some(status) = self.guard.try_wait()? {
                bail!(
                    "mastd exited with {status} before answering; its log:\n{}",
                    tail(&config.log, 40)
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "mastd did not answer on {} within {START_TIMEOUT:?}; its log:\n{}",
                    config.monitoring_addr,
                    tail(&config.log, 40)
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Kills mastd at once (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        self.guard.kill();
    }
}

/// A client for a mastd's monitoring API.
#[derive(Debug, Clone, Copy)]
pub struct Monitoring {
    /// The monitoring address.
    pub addr: SocketAddr,
}

impl Monitoring {
    /// GETs `path` and parses the JSON answer.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let r = http_get_direct(self.addr, path, &[])
            .await
            .with_context(|| format!("GET {path} from mastd at {}", self.addr))?;
        if r.status != 200 {
            bail!("GET {path} from mastd: status {}: {}", r.status, r.text());
        }
        serde_json::from_slice(&r.body).with_context(|| format!("GET {path}: not JSON"))
    }

    /// `/debug/configz`.
    pub async fn configz(&self) -> anyhow::Result<Value> {
        self.get_json("/debug/configz").await
    }

    /// The version of the mesh snapshot mastd serves now (`snapshotVersion` in configz).
    pub async fn snapshot_version(&self) -> anyhow::Result<u64> {
        let configz = self.configz().await?;
        configz
            .get("snapshotVersion")
            .and_then(Value::as_u64)
            .context("configz has no snapshotVersion")
    }

    /// `/debug/syncz`: one entry per connected proxy.
    pub async fn syncz(&self) -> anyhow::Result<Value> {
        self.get_json("/debug/syncz").await
    }

    /// The sync state of the newest stream of proxy `node_id`, if it is connected.
    pub async fn proxy_sync(&self, node_id: &str) -> anyhow::Result<Option<ProxySync>> {
        let syncz = self.syncz().await?;
        Ok(ProxySync::find(&syncz, node_id))
    }
}

/// The last `lines` lines of a log file (empty when unreadable).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
