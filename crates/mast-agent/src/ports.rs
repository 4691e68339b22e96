//! The ports a sidecar uses and how it reports them: choosing free ports for the ones given
//! as 0, and the ports file (`{"admin":N,"outbound":N,"inbound":{"<app>":N},"prometheus":N,…}`)
//! the agent writes when Envoy is ready and removes when it is not.
//!
//! A picked port stays reserved while the agent runs: a socket bound to it with
//! `SO_REUSEPORT`, never listening ([`Reservations`]). The kernel hands it to no other
//! process (a port picked and released before Envoy bound it was seen taken by a
//! neighbouring sidecar starting at the same moment), while Envoy, whose listeners and admin
//! socket set `SO_REUSEPORT` too, binds it beside the reservation.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use mast_model::CaptureMode;
use serde_json::{Value, json};

/// Istio's outbound capture port (iptables mode).
pub const IPTABLES_OUTBOUND: u16 = 15001;
/// Istio's inbound capture port (iptables mode).
pub const IPTABLES_INBOUND: u16 = 15006;

/// Why the ports could not be chosen.
#[derive(Debug, thiserror::Error)]
pub enum PortsError {
    /// The same port was asked for twice.
    #[error("port {0} is given twice")]
    Duplicate(u16),
    /// A free port could not be found.
    #[error("cannot find a free port on 127.0.0.1: {0}")]
    NoFreePort(std::io::Error),
    /// The ports file could not be written or removed.
    #[error("cannot write the ports file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The capture mode as asked for on the command line: 0 means "pick a free port".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureRequest {
    /// iptables redirection to 15001/15006.
    Iptables,
    /// Explicit listeners.
    Ports {
        /// The outbound listener (0: pick).
        outbound: u16,
        /// (application port, listener port (0: pick)).
        inbound: Vec<(u16, u16)>,
    },
}

/// The ports chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPlan {
    /// Envoy's admin port.
    pub admin: u16,
    /// The capture mode with its ports.
    pub capture: CaptureMode,
    /// The agent's metrics port (merged `/stats/prometheus`, `/healthz/ready`), when served.
    pub metrics: Option<u16>,
}

/// Sockets reserving the picked ports (see the module's doc): keep them while the ports
/// are in use.
#[derive(Debug, Default)]
pub struct Reservations(Vec<socket2::Socket>);

impl Reservations {
    /// How many ports are reserved.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no port is reserved.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Replaces every 0 by a distinct free port, reserved (see [`Reservations`]). Explicit
/// ports are checked for duplicates first. `metrics` is the agent's metrics port (`None`:
/// not served).
pub fn plan_ports(
    admin: u16,
    metrics: Option<u16>,
    capture: &CaptureRequest,
) -> Result<(PortPlan, Reservations), PortsError> {
    let mut explicit = BTreeSet::new();
    let mut apps = BTreeSet::new();
    let mut requested = match capture {
        CaptureRequest::Iptables => vec![admin],
        CaptureRequest::Ports { outbound, inbound } => {
            for (app, _) in inbound {
                if !apps.insert(*app) {
                    return Err(PortsError::Duplicate(*app));
                }
            }
            [admin, *outbound]
                .into_iter()
                .chain(inbound.iter().map(|(_, l)| *l))
                .collect()
        }
    };
    requested.extend(metrics);
    for port in requested.into_iter().filter(|p| *p != 0) {
        if !explicit.insert(port) {
            return Err(PortsError::Duplicate(port));
        }
    }
    let mut picker = Picker {
        avoid: explicit,
        held: Vec::new(),
    };
    let admin = picker.resolve(admin)?;
    let capture = match capture {
        CaptureRequest::Iptables => CaptureMode::Iptables,
        CaptureRequest::Ports { outbound, inbound } => {
            let outbound = picker.resolve(*outbound)?;
            let mut chosen = BTreeMap::new();
            for (app, listen) in inbound {
                chosen.insert(*app, picker.resolve(*listen)?);
            }
            CaptureMode::Ports {
                outbound,
                inbound: chosen,
            }
        }
    };
    let metrics = match metrics {
        Some(port) => Some(picker.resolve(port)?),
        None => None,
    };
    let plan = PortPlan {
        admin,
        capture,
        metrics,
    };
    Ok((plan, Reservations(picker.held)))
}

/// Picks free ports, holding each so the next pick differs.
struct Picker {
    avoid: BTreeSet<u16>,
    held: Vec<socket2::Socket>,
}

impl Picker {
    fn resolve(&mut self, port: u16) -> Result<u16, PortsError> {
        if port != 0 {
            return Ok(port);
        }
        for _ in 0..16 {
            let (port, socket) = reserve().map_err(PortsError::NoFreePort)?;
            if self.avoid.insert(port) {
                self.held.push(socket);
                return Ok(port);
            }
        }
        Err(PortsError::NoFreePort(std::io::Error::other(
            "every pick collided with a requested port",
        )))
    }
}

/// A free port on 127.0.0.1 and the bound, never listening `SO_REUSEPORT` socket that
/// reserves it.
fn reserve() -> std::io::Result<(u16, socket2::Socket)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_port(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
    let port = socket
        .local_addr()?
        .as_socket()
        .map(|a| a.port())
        .ok_or_else(|| std::io::Error::other("no local address"))?;
    Ok((port, socket))
}

/// A listening socket on `addr` with `SO_REUSEPORT` (and `SO_REUSEADDR`), so it binds a
/// port that [`Reservations`] hold (the agent's metrics port).
pub fn listen_beside_reservation(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// What the ports file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortsReport {
    /// The ports.
    pub plan: PortPlan,
    /// The running Envoy's process id.
    pub envoy_pid: u32,
    /// The node id.
    pub node_id: String,
    /// The agent's work dir (bootstrap, Envoy's log).
    pub work_dir: PathBuf,
}

impl PortsReport {
    /// The JSON form: `admin`, `outbound` (15001 in iptables mode), `inbound` (application
    /// port → listener port; empty in iptables mode), `capture_mode`, `envoy_pid`,
    /// `node_id`, `work_dir`, and `prometheus` (the metrics port, as mast-proxy names its
    /// metrics port) when served.
    pub fn to_json(&self) -> Value {
        let (mode, outbound, inbound) = match &self.plan.capture {
            CaptureMode::Iptables => ("iptables", IPTABLES_OUTBOUND, BTreeMap::new()),
            CaptureMode::Ports { outbound, inbound } => ("ports", *outbound, inbound.clone()),
        };
        let inbound: BTreeMap<String, u16> = inbound
            .into_iter()
            .map(|(a, l)| (a.to_string(), l))
            .collect();
        let mut out = json!({
            "admin": self.plan.admin,
            "outbound": outbound,
            "inbound": inbound,
            "capture_mode": mode,
            "envoy_pid": self.envoy_pid,
            "node_id": self.node_id,
            "work_dir": self.work_dir,
        });
        if let Some(port) = self.plan.metrics {
            out["prometheus"] = json!(port);
        }
        out
    }

    /// Writes the file atomically (a temporary file renamed over it), so a reader never
    /// sees half of it.
    pub fn write(&self, path: &Path) -> Result<(), PortsError> {
        let error = |source| PortsError::File {
            path: path.to_path_buf(),
            source,
        };
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{}\n", self.to_json())).map_err(error)?;
        std::fs::rename(&tmp, path).map_err(error)
    }
}

/// Removes the ports file (Envoy is not ready); a missing file is fine.
pub fn remove_ports_file(path: &Path) -> Result<(), PortsError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(PortsError::File {
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_distinct_free_ports_and_keeps_explicit_ones() {
        let req = CaptureRequest::Ports {
            outbound: 0,
            inbound: vec![(9080, 0), (9090, 15107)],
        };
        let (plan, reserved) = plan_ports(0, Some(0), &req).unwrap();
        assert_eq!(
            reserved.len(),
            4,
            "admin, outbound, inbound 9080 and metrics"
        );
        let CaptureMode::Ports { outbound, inbound } = &plan.capture else {
            panic!("ports mode")
        };
        assert_eq!(inbound[&9090], 15107);
        let metrics = plan.metrics.unwrap();
        let all = BTreeSet::from([plan.admin, *outbound, inbound[&9080], 15107, metrics]);
        assert_eq!(all.len(), 5);
        assert!(!all.contains(&0));
    }

    #[test]
    fn picked_ports_stay_reserved_for_a_reuse_port_listener() {
        let req = CaptureRequest::Ports {
            outbound: 0,
            inbound: vec![(9080, 0)],
        };
        let (plan, reserved) = plan_ports(0, None, &req).unwrap();
        let CaptureMode::Ports { outbound, .. } = plan.capture else {
            panic!("ports mode")
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, outbound));
        // Another process's plain bind (or bind to port 0) cannot have it ...
        assert!(TcpListener::bind(addr).is_err());
        // ... while Envoy's SO_REUSEPORT listener binds beside the reservation.
        let envoy = listen_beside_reservation(addr).unwrap();
        assert!(std::net::TcpStream::connect(addr).is_ok());
        drop((envoy, reserved));
        assert!(
            TcpListener::bind(addr).is_ok(),
            "freed with the reservations"
        );
    }

    #[test]
    fn rejects_duplicates() {
        let req = CaptureRequest::Ports {
            outbound: 15101,
            inbound: vec![(9080, 15101)],
        };
        assert!(matches!(
            plan_ports(15000, None, &req),
            Err(PortsError::Duplicate(15101))
        ));
        let req = CaptureRequest::Ports {
            outbound: 0,
            inbound: vec![(9080, 0), (9080, 0)],
        };
        assert!(matches!(
            plan_ports(15000, None, &req),
            Err(PortsError::Duplicate(9080))
        ));
    }

    #[test]
    fn report_json() {
        let plan = PortPlan {
            admin: 15000,
            capture: CaptureMode::Ports {
                outbound: 15101,
                inbound: BTreeMap::from([(9080, 15106)]),
            },
            metrics: Some(15020),
        };
        let report = PortsReport {
            plan,
            envoy_pid: 7,
            node_id: "n".into(),
            work_dir: "/w".into(),
        };
        let j = report.to_json();
        assert_eq!(j["admin"], 15000);
        assert_eq!(j["outbound"], 15101);
        assert_eq!(j["inbound"]["9080"], 15106);
        assert_eq!(j["capture_mode"], "ports");
        assert_eq!(j["prometheus"], 15020);
        let iptables = PortsReport {
            plan: PortPlan {
                admin: 1,
                capture: CaptureMode::Iptables,
                metrics: None,
            },
            ..report
        };
        assert_eq!(iptables.to_json()["outbound"], 15001);
        assert!(iptables.to_json().get("prometheus").is_none());
    }
}
