//! The TCP hooks: a [`Conn`] per proxied connection counts `istio_tcp_connections_opened`
//! when created and, when dropped, `istio_tcp_connections_closed` and the bytes copied.
//!
//! Labels come from this proxy's identity and the cluster (`inbound|…` → reporter
//! `destination`; the service from the cluster's host). The peer's workload is `unknown`:
//! Istio learns it with the in-band `istio-peer-exchange` protocol, which is not
//! implemented, and the TCP proxy does not see the connection's TLS facts, so
//! `connection_security_policy` and the peer principal are `unknown` too.

use prometheus_client::metrics::counter::Counter;

use super::identity::Workload;
use super::{IstioStats, TcpLabels, UNKNOWN, global};

/// One proxied TCP connection.
#[derive(Debug)]
pub struct Conn {
    stats: &'static IstioStats,
    inbound: bool,
    service: String,
    connected: bool,
    received: u64,
    sent: u64,
}

impl Conn {
    /// Counts a connection to `cluster` opened; `None` without metrics.
    pub fn open(cluster: &str) -> Option<Self> {
        Some(Self::open_in(global()?, cluster))
    }

    pub(super) fn open_in(stats: &'static IstioStats, cluster: &str) -> Self {
        let inbound = super::is_inbound(cluster);
        let service = super::service_of_cluster(cluster).map_or("", |s| s.0);
        let conn = Self {
            stats,
            inbound,
            service: service.to_owned(),
            connected: false,
            received: 0,
            sent: 0,
        };
        conn.counter(&stats.tcp_opened, "-").inc();
        conn
    }

    /// The upstream connection was established.
    pub fn connected(&mut self) {
        self.connected = true;
    }

    /// Bytes copied: `received` from the client, `sent` to it.
    pub fn bytes(&mut self, received: u64, sent: u64) {
        self.received += received;
        self.sent += sent;
    }

    fn counter(
        &self,
        family: &prometheus_client::metrics::family::Family<TcpLabels, Counter>,
        flags: &str,
    ) -> Counter {
        let unknown = Workload::unknown();
        let me = &self.stats.identity.me;
        let (source, dest) = if self.inbound {
            (&unknown, me)
        } else {
            (me, &unknown)
        };
        let mut peers = super::cache::peer_labels(self.inbound, source, dest, &self.service);
        if self.inbound {
            UNKNOWN.clone_into(&mut peers.source_principal);
        }
        family.get_or_create_owned(&TcpLabels {
            peers,
            request_protocol: "tcp",
            response_flags: flags.to_owned(),
            connection_security_policy: UNKNOWN,
        })
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let flags = if self.connected { "-" } else { "UF" };
        let s = self.stats;
        self.counter(&s.tcp_closed, flags).inc();
        if self.received > 0 {
            self.counter(&s.tcp_received, flags).inc_by(self.received);
        }
        if self.sent > 0 {
            self.counter(&s.tcp_sent, flags).inc_by(self.sent);
        }
    }
}
