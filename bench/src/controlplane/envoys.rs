//! The real Envoys of the benchmark: sidecars in ports mode started by `mast-agent`
//! (through `mast-test-support`'s [`AgentProcess`]) alongside the clients, checked SYNCED in
//! mastd's `/debug/syncz` (after the initial sync and after the restart), and watched through
//! their admin `/stats` to time when they accept a change.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mast_test_support::{AgentProcess, http_get_direct};
use serde_json::Value;

use crate::mastd::Mastd;
use crate::phases::Bench;
use crate::report::{self, Row};

/// A running sidecar.
pub struct Sidecar {
    /// The agent (and its Envoy), stopped when dropped.
    pub agent: AgentProcess,
    /// Its node id.
    pub node_id: String,
    /// How long the agent took from start to reporting Envoy ready.
    pub ready_after: Duration,
}

impl Sidecar {
    /// Envoy's admin address.
    pub fn admin(&self) -> SocketAddr {
        self.agent.admin_addr()
    }
}

/// Starts sidecar `k` in ports mode against `xds` and waits (up to `timeout`) for Envoy ready.
pub async fn start(
    agent: &Path,
    envoy: &Path,
    xds: SocketAddr,
    k: usize,
    timeout: Duration,
) -> anyhow::Result<Sidecar> {
    let (agent, envoy) = (agent.to_path_buf(), envoy.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let workload = format!("bench-envoy-{k}");
        let args = [
            "--xds-address".to_owned(),
            xds.to_string(),
            "--workload".into(),
            workload.clone(),
            "--namespace".into(),
            format!("ns{:02}", k % 20),
            "--label".into(),
            format!("app={workload}"),
            "--service-account".into(),
            "bench".into(),
            "--capture-mode".into(),
            "ports".into(),
            "--admin-port".into(),
            "0".into(),
            "--envoy".into(),
            envoy.display().to_string(),
            "--concurrency".into(),
            "1".into(),
            // Ready must mean configured: never go live on the initial-fetch timeout.
            "--initial-fetch-timeout".into(),
            "0".into(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let agent = AgentProcess::start(&agent, &args, timeout)
            .with_context(|| format!("starting sidecar {k}"))?;
        Ok(Sidecar {
            node_id: agent.ports().node_id.clone(),
            agent,
            ready_after: started.elapsed(),
        })
    })
    .await?
}

/// The CDS/LDS/EDS/RDS status mastd shows for `node_id` (`/debug/syncz`), if it lists it.
pub async fn sync_status(mastd: &Mastd, node_id: &str) -> anyhow::Result<Option<[String; 4]>> {
    let all = mastd.json("/debug/syncz").await?;
    let entries = all.as_array().map(Vec::as_slice).unwrap_or_default();
    let newest = entries
        .iter()
        .rev()
        .find(|e| e.get("proxy_id").and_then(Value::as_str) == Some(node_id));
    Ok(newest.map(|e| {
        ["cds", "lds", "eds", "rds"]
            .map(|k| e.get(k).and_then(Value::as_str).unwrap_or("?").to_owned())
    }))
}

/// Waits until every sidecar is SYNCED for all four types; returns each one's last status.
pub async fn wait_synced(mastd: &Mastd, sidecars: &[Sidecar], timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut all = Vec::new();
        for s in sidecars {
            all.push(match sync_status(mastd, &s.node_id).await {
                Ok(Some(status)) => status.join("/"),
                Ok(None) => "not connected".to_owned(),
                Err(_) => "no answer from /debug/syncz".to_owned(),
            });
        }
        if all.iter().all(|s| s == "SYNCED/SYNCED/SYNCED/SYNCED") || Instant::now() >= deadline {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The sum of the Envoy stats whose names match `regex` (Envoy's `/stats?filter=`).
pub async fn stat_sum(admin: SocketAddr, regex: &str) -> Option<u64> {
    let url = format!("/stats?filter={}", percent_encode(regex));
    let response = http_get_direct(admin, &url, &[]).await.ok()?;
    (response.status == 200).then(|| {
        response
            .text()
            .lines()
            .filter_map(|l| l.rsplit_once(": ")?.1.trim().parse::<u64>().ok())
            .sum()
    })
}

/// Polls each sidecar's `regex` stat sum until it exceeds `before`, up to `timeout`; returns
/// when each did, if it did.
pub async fn wait_stat_increase(
    admins: &[SocketAddr],
    regex: &str,
    before: &[Option<u64>],
    timeout: Duration,
) -> Vec<Option<Instant>> {
    let deadline = Instant::now() + timeout;
    let mut seen: Vec<Option<Instant>> = vec![None; admins.len()];
    while Instant::now() < deadline && seen.iter().any(Option::is_none) {
        for (i, admin) in admins.iter().enumerate() {
            if seen[i].is_some() {
                continue;
            }
            if let (Some(now), Some(old)) = (stat_sum(*admin, regex).await, before[i])
                && now > old
            {
                seen[i] = Some(Instant::now());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    seen
}

/// Each sidecar's `regex` stat sum now.
pub async fn stat_sums(admins: &[SocketAddr], regex: &str) -> Vec<Option<u64>> {
    let mut out = Vec::new();
    for admin in admins {
        out.push(stat_sum(*admin, regex).await);
    }
    out
}

/// An RE2 pattern matching `text` literally.
pub fn regex_escape(text: &str) -> String {
    text.chars().fold(String::new(), |mut s, c| {
        if !c.is_ascii_alphanumeric() && c != '-' && c != '_' {
            s.push('\\');
        }
        s.push(c);
        s
    })
}

fn percent_encode(text: &str) -> String {
    text.bytes().fold(String::new(), |mut s, b| {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
        s
    })
}

/// Real Envoys reaching SYNCED once ready (and reaching ready, beyond the clients' sync).
const ENVOY_TIMEOUT: Duration = Duration::from_secs(20);
/// Real Envoys re-syncing after the restart (after the clients have).
const RESYNC_TIMEOUT: Duration = Duration::from_secs(20);

impl Bench {
    /// Starts the real Envoys in the background (they sync alongside the clients).
    pub(crate) fn launch_envoys(&mut self) {
        let Some(envoy) = self.tools.envoy.clone().filter(|_| self.args.envoys > 0) else {
            return;
        };
        let timeout = self.sync_timeout() + ENVOY_TIMEOUT;
        self.launching = (0..self.args.envoys)
            .map(|k| {
                let (agent, envoy, xds) = (self.tools.agent.clone(), envoy.clone(), self.mastd.xds);
                tokio::spawn(async move { start(&agent, &envoy, xds, k, timeout).await })
            })
            .collect();
    }

    /// Waits for the Envoys launched with the clients and until mastd shows them SYNCED.
    pub(crate) async fn collect_envoys(&mut self) {
        let mut failures = Vec::new();
        for start in std::mem::take(&mut self.launching) {
            match start.await {
                Ok(Ok(sidecar)) => self.sidecars.push(sidecar),
                Ok(Err(e)) => failures.push(format!("{e:#}")),
                Err(e) => failures.push(e.to_string()),
            }
        }
        if self.args.envoys == 0 || self.tools.envoy.is_none() {
            return;
        }
        let timeout = self.sync_timeout() + ENVOY_TIMEOUT;
        let status = wait_synced(&self.mastd, &self.sidecars, ENVOY_TIMEOUT).await;
        let ready: Vec<String> = self
            .sidecars
            .iter()
            .map(|s| report::ms(Some(s.ready_after)))
            .collect();
        let all_synced =
            failures.is_empty() && status.iter().all(|s| s == "SYNCED/SYNCED/SYNCED/SYNCED");
        self.rows.push(Row::judged(
            &format!(
                "{} real Envoys (mast-agent, ports mode), started with the clients",
                self.args.envoys
            ),
            if self.sidecars.is_empty() {
                format!("none configured within {timeout:?} of its start")
            } else {
                format!(
                    "agent start → Envoy ready (configured) {} ms; CDS/LDS/EDS/RDS {}{}",
                    ready.join(", "),
                    status.join(", "),
                    if failures.is_empty() {
                        String::new()
                    } else {
                        format!("; {} not configured in time", failures.len())
                    }
                )
            },
            "SYNCED",
            Some(all_synced),
        ));
        for f in failures {
            self.notes.push(format!(
                "a real Envoy was not configured in time: {}",
                f.lines().next().unwrap_or("")
            ));
        }
    }

    /// Waits (bounded) until mastd shows the real Envoys SYNCED again after the restart.
    pub(crate) async fn envoys_after_restart(&mut self, listening: Instant) {
        if self.sidecars.is_empty() {
            return;
        }
        let status = wait_synced(&self.mastd, &self.sidecars, RESYNC_TIMEOUT).await;
        let all = status.iter().all(|s| s == "SYNCED/SYNCED/SYNCED/SYNCED");
        self.rows.push(Row::judged(
            "real Envoys after the restart (Envoy's own reconnect backoff)",
            format!(
                "{} after {} ms",
                status.join(", "),
                report::ms(Some(listening.elapsed()))
            ),
            "SYNCED",
            Some(all),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_for_envoy_stat_filters() {
        assert_eq!(regex_escape("a.b|c"), "a\\.b\\|c");
        assert_eq!(percent_encode("a\\.b c"), "a%5C.b%20c");
    }
}
