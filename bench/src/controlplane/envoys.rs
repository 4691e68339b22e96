//! The real Envoys of the benchmark: sidecars in ports mode started by `mast-agent`
//! (through `mast-test-support`'s [`AgentProcess`]), checked SYNCED in mastd's
//! `/debug/syncz`, and watched through their admin `/stats` to time when they accept a change.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mast_test_support::{AgentProcess, http_get_direct};
use serde_json::Value;

use crate::mastd::Mastd;

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
            let status = sync_status(mastd, &s.node_id).await.ok().flatten();
            all.push(status.map_or_else(|| "not connected".to_owned(), |st| st.join("/")));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_for_envoy_stat_filters() {
        assert_eq!(regex_escape("a.b|c"), "a\\.b\\|c");
        assert_eq!(percent_encode("a\\.b c"), "a%5C.b%20c");
    }
}
