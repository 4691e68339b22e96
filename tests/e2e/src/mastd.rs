//! [`Mastd`]: the control plane as a real process ([`MastdProcess`] from
//! `mast-test-support`: the `mastd` binary built in the cargo target dir, on ports picked free
//! at run time) watched by a [`Reaper`], and a client for its monitoring API
//! (`/debug/syncz`, `/debug/configz`).

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, bail};
use mast_test_support::{MastdOptions, MastdProcess, http_get_direct};
use serde_json::Value;

use crate::reaper::Reaper;
use crate::sync::ProxySync;

/// Where a mastd listens and what it serves.
pub type MastdConfig = MastdOptions;

/// A running mastd, killed (with everything in its process group) when dropped, and also
/// when the test process ends (see [`crate::reaper`]).
#[derive(Debug)]
pub struct Mastd {
    process: MastdProcess,
    _reaper: Reaper,
}

impl Mastd {
    /// Starts mastd and waits until its monitoring API answers.
    pub async fn start(config: &MastdConfig) -> anyhow::Result<Self> {
        let mut process = MastdProcess::start(config).await?;
        let reaper = Reaper::watch(process.guard_mut().pid())?;
        Ok(Self {
            process,
            _reaper: reaper,
        })
    }

    /// A file holding a CA token for service account `sa` of namespace `ns` (issued with
    /// this mastd's CA key, so it stays valid across restarts on the same CA folder).
    pub fn token_file(&self, ns: &str, sa: &str) -> anyhow::Result<std::path::PathBuf> {
        Ok(self.process.token_file(ns, sa)?)
    }

    /// Kills mastd at once (SIGKILL), as a crash would.
    pub fn kill(self) {
        self.process.kill();
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
