//! Free-port planning (ports given as 0 are chosen before the proxy connects to xDS, since
//! the node metadata carries them) and the ports file the e2e harness reads
//! (`{"admin":N,"outbound":N,"inbound":{"APP":N},"node_id":…,"pid":N,…}`).

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;

use serde_json::{Value, json};

use super::BootstrapError;

/// Istio's outbound capture port (iptables mode).
pub const IPTABLES_OUTBOUND: u16 = 15001;
/// Istio's inbound capture port (iptables mode).
pub const IPTABLES_INBOUND: u16 = 15006;
/// Istio's metrics port (`/stats/prometheus`), served by default in iptables mode.
pub const PROMETHEUS: u16 = 15090;
/// Istio's status port (pilot-agent's), served by default in iptables mode.
pub const STATUS: u16 = 15020;

/// Replaces each 0 in `ports` by a distinct free port on 127.0.0.1. Explicit ports must be
/// distinct; picked sockets are held until all are chosen so no two picks are equal, and the
/// chosen ones stay bound ([`crate::listener::reserved`]) until the admin server or the
/// listener manager serves them, so no other process can be handed the same port meanwhile.
pub(super) fn plan(ports: &[u16]) -> Result<Vec<u16>, BootstrapError> {
    let mut taken = BTreeSet::new();
    for port in ports.iter().copied().filter(|p| *p != 0) {
        if !taken.insert(port) {
            return Err(BootstrapError::DuplicatePort(port));
        }
    }
    let mut held = Vec::new();
    let mut out = Vec::with_capacity(ports.len());
    for &port in ports {
        if port != 0 {
            out.push(port);
            continue;
        }
        out.push(pick(&mut taken, &mut held)?);
    }
    for listener in held {
        let chosen = listener.local_addr().is_ok_and(|a| out.contains(&a.port()));
        if chosen {
            crate::listener::reserved::keep(listener);
        }
    }
    Ok(out)
}

fn pick(taken: &mut BTreeSet<u16>, held: &mut Vec<TcpListener>) -> Result<u16, BootstrapError> {
    for _ in 0..16 {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(BootstrapError::NoFreePort)?;
        let port = listener
            .local_addr()
            .map_err(BootstrapError::NoFreePort)?
            .port();
        held.push(listener);
        if taken.insert(port) {
            return Ok(port);
        }
    }
    Err(BootstrapError::NoFreePort(std::io::Error::other(
        "every pick collided with a requested port",
    )))
}

impl super::Bootstrap {
    /// The ports file's JSON: the agent's keys (`admin`, `outbound` — 15001 in iptables mode —,
    /// `inbound` {"APP": N}, `capture_mode`, `node_id`) plus `health`, `prometheus` and
    /// `status` (when served), `pid` and `envoy_pid` (this process, so a harness written for the agent
    /// finds it too).
    pub fn ports_json(&self) -> Value {
        let inbound: serde_json::Map<String, Value> = self
            .inbound
            .iter()
            .map(|(app, listen)| (app.to_string(), json!(listen)))
            .collect();
        let (mode, outbound) = if self.ports_mode {
            ("ports", self.outbound)
        } else {
            ("iptables", IPTABLES_OUTBOUND)
        };
        let pid = std::process::id();
        let mut out = json!({
            "admin": self.admin.port(),
            "health": self.health.port(),
            "outbound": outbound,
            "inbound": inbound,
            "capture_mode": mode,
            "node_id": self.node.id,
            "pid": pid,
            "envoy_pid": pid,
        });
        if let Some(p) = self.prometheus {
            out["prometheus"] = json!(p.port());
        }
        if let Some(p) = self.status {
            out["status"] = json!(p.port());
        }
        out
    }

    /// Writes [`Self::ports_json`] to `path` atomically (a temporary file renamed over it).
    pub fn write_ports_file(&self, path: &Path) -> std::io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        std::fs::write(&tmp, format!("{}\n", self.ports_json()))?;
        std::fs::rename(&tmp, path)
    }
}

/// Removes the ports file (not ready, or exiting); a missing file is fine.
pub fn remove_ports_file(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
