//! Port allocation for a local mesh: mastd's xDS and monitoring ports, and one block per
//! workload's sidecar (outbound, admin, health, inbound). Free ports by default (the
//! sidecars pick their own, reported in their ports files, except the inbound listener that
//! the workload's WorkloadEntry names); with `--port-base N` a fixed
//! layout: mastd on N (xDS) and N+1 (monitoring), workload slot k (1, 2, … in name order)
//! on N+10k (outbound), +1 (admin), +2 (health), +3 (inbound).
//!
//! A free inbound port stays reserved for the workload's whole life: a socket bound to it
//! with `SO_REUSEPORT` and never listening. The kernel then hands the port to no other
//! process (a neighbouring mesh's sidecar picking a free port at the same moment took it
//! before), while the sidecar, whose listeners set `SO_REUSEPORT` too, binds it beside the
//! reservation; connections reach only listening sockets.

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::{Context as _, bail};

/// Ports per workload slot in the `--port-base` layout.
pub const BLOCK: u16 = 10;

/// The ports a sidecar is started with (0: the sidecar picks a free one).
#[derive(Debug, Clone)]
pub struct Block {
    /// The slot (0 in free mode).
    pub slot: u16,
    /// Outbound listener.
    pub outbound: u16,
    /// Admin interface.
    pub admin: u16,
    /// Health endpoint.
    pub health: u16,
    /// Inbound listener for the application port.
    pub inbound: u16,
    /// The socket reserving a free `inbound` (dropped with the last clone of the block).
    #[expect(dead_code, reason = "held, never read: dropping it frees the port")]
    pub reservation: Option<Arc<socket2::Socket>>,
}

/// Hands out port blocks.
#[derive(Debug)]
pub struct PortPlan {
    base: Option<u16>,
    used: BTreeSet<u16>,
    /// The sockets reserving mastd's free ports, held while the mesh runs.
    mastd_reserved: Vec<socket2::Socket>,
}

impl PortPlan {
    /// A plan from `--port-base` (`None`: free ports).
    pub fn new(base: Option<u16>) -> Self {
        Self {
            base,
            used: BTreeSet::new(),
            mastd_reserved: Vec::new(),
        }
    }

    /// mastd's (xDS, monitoring) ports; free ones stay reserved while the plan lives
    /// (mastd binds them beside the reservation: [`PortPlan::mastd_reuse_port`]).
    pub fn mastd(&mut self) -> anyhow::Result<(u16, u16)> {
        match self.base {
            Some(n) => Ok((n, n.checked_add(1).context("--port-base is too high")?)),
            None => {
                let (xds, a) = reserve()?;
                let (monitoring, b) = reserve()?;
                self.mastd_reserved = vec![a, b];
                Ok((xds, monitoring))
            }
        }
    }

    /// Whether mastd must bind with `--reuse-port` (its ports are reserved).
    pub fn mastd_reuse_port(&self) -> bool {
        !self.mastd_reserved.is_empty()
    }

    /// mastd's `--dashboard-addr`: `chosen` when given (`mastctl up --dashboard-addr`); else
    /// N+2 with `--port-base`; else Kiali's 20001 when free, any free port otherwise (mastd
    /// tries them in order and reports the one it bound).
    pub fn dashboard(&self, chosen: Option<&str>) -> anyhow::Result<String> {
        if let Some(addr) = chosen {
            return Ok(addr.to_owned());
        }
        match self.base {
            Some(n) => Ok(format!(
                "127.0.0.1:{}",
                n.checked_add(2).context("--port-base is too high")?
            )),
            None => Ok("127.0.0.1:20001,127.0.0.1:0".into()),
        }
    }

    /// The next block: the lowest free slot with `--port-base`; else the sidecar picks its
    /// ports, except the inbound listener, chosen here so that the workload's WorkloadEntry
    /// can name it before the sidecar starts.
    pub fn take(&mut self) -> anyhow::Result<Block> {
        let Some(base) = self.base else {
            let (inbound, socket) = reserve()?;
            return Ok(Block {
                slot: 0,
                outbound: 0,
                admin: 0,
                health: 0,
                inbound,
                reservation: Some(Arc::new(socket)),
            });
        };
        let slot = (1..=u16::MAX)
            .find(|s| !self.used.contains(s))
            .context("no slot left")?;
        let start = u32::from(base) + u32::from(slot) * u32::from(BLOCK);
        if start + u32::from(BLOCK) > 65_535 {
            bail!("--port-base {base}: no room for workload slot {slot} (ports past 65535)");
        }
        self.used.insert(slot);
        let p = |off: u32| u16::try_from(start + off).unwrap_or(0);
        Ok(Block {
            slot,
            outbound: p(0),
            admin: p(1),
            health: p(2),
            inbound: p(3),
            reservation: None,
        })
    }

    /// Gives a block's slot back.
    pub fn release(&mut self, block: &Block) {
        self.used.remove(&block.slot);
    }
}

/// A free port on 127.0.0.1, reserved by a bound, never listening `SO_REUSEPORT` socket.
fn reserve() -> anyhow::Result<(u16, socket2::Socket)> {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .context("reserving a free port")?;
    socket
        .set_reuse_port(true)
        .context("reserving a free port")?;
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    socket.bind(&any.into()).context("reserving a free port")?;
    let port = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.port())
        .context("reserving a free port: no local address")?;
    Ok((port, socket))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_layout_is_predictable_and_slots_are_reused() {
        let mut plan = PortPlan::new(Some(20000));
        assert_eq!(plan.mastd().unwrap(), (20000, 20001));
        assert!(!plan.mastd_reuse_port(), "fixed ports are not reserved");
        assert_eq!(plan.dashboard(None).unwrap(), "127.0.0.1:20002");
        assert_eq!(plan.dashboard(Some("127.0.0.1:0")).unwrap(), "127.0.0.1:0");
        let a = plan.take().unwrap();
        let b = plan.take().unwrap();
        assert_eq!(
            (a.outbound, a.admin, a.health, a.inbound),
            (20010, 20011, 20012, 20013)
        );
        assert_eq!(b.outbound, 20020);
        plan.release(&a);
        assert_eq!(plan.take().unwrap().outbound, 20010);
        assert!(PortPlan::new(Some(65530)).take().is_err());
    }

    #[test]
    fn free_mode_lets_sidecars_pick() {
        let mut plan = PortPlan::new(None);
        let (x, m) = plan.mastd().unwrap();
        assert_ne!(x, m);
        assert!(plan.mastd_reuse_port(), "mastd's free ports are reserved");
        assert!(std::net::TcpListener::bind(("127.0.0.1", x)).is_err());
        let block = plan.take().unwrap();
        assert_eq!(block.outbound, 0);
        assert_ne!(block.inbound, 0, "the inbound listener is chosen up front");
        // Reserved: a plain bind fails, a sidecar's SO_REUSEPORT listener binds beside it.
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], block.inbound));
        assert!(std::net::TcpListener::bind(addr).is_err());
        let sidecar =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sidecar.set_reuse_address(true).unwrap();
        sidecar.set_reuse_port(true).unwrap();
        sidecar.bind(&addr.into()).unwrap();
        sidecar.listen(8).unwrap();
        assert!(
            std::net::TcpStream::connect(addr).is_ok(),
            "connections reach the listener"
        );
        drop(block);
        drop(sidecar);
        assert!(
            std::net::TcpListener::bind(addr).is_ok(),
            "released with the block"
        );
    }
}
