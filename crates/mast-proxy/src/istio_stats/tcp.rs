//! The TCP hooks: a [`Conn`] per proxied connection counts `istio_tcp_connections_opened`
//! once the peer is known (the upstream connected, or the attempt given up) and, when dropped,
//! `istio_tcp_connections_closed` and the bytes copied.
//!
//! Labels come from this proxy's identity, the cluster (`inbound|…` → reporter
//! `destination`; the service from the cluster's host) and what the connection tells about
//! the peer: on the server side the client's SPIFFE principal from mutual TLS
//! (`connection_security_policy` `mutual_tls`, else `none`); on the client side the chosen
//! endpoint's Istio workload metadata (`filter_metadata.istio.workload`, which mastd writes as
//! istiod does). Istio also exchanges workload metadata in band over the `istio-peer-exchange`
//! ALPN; that is not implemented (Envoy sidecars here cannot speak it either), so the
//! server side's `source_workload` stays `unknown`.

use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::google::protobuf::value::Kind;
use prometheus_client::metrics::counter::Counter;

use super::identity::Workload;
use super::{IstioStats, TcpLabels, UNKNOWN, global};
use crate::tls::SharedPeerTls;

/// One proxied TCP connection.
#[derive(Debug)]
pub struct Conn {
    stats: &'static IstioStats,
    inbound: bool,
    service: String,
    /// The peer: the client on the server side, the chosen endpoint on the client side.
    peer: Workload,
    security: &'static str,
    opened: bool,
    connected: bool,
    received: u64,
    sent: u64,
}

impl Conn {
    /// Starts measuring a connection to `cluster` that arrived with `tls`; `None` without
    /// metrics.
    pub fn open(cluster: &str, tls: &SharedPeerTls) -> Option<Self> {
        Some(Self::open_in(global()?, cluster, tls))
    }

    pub(super) fn open_in(stats: &'static IstioStats, cluster: &str, tls: &SharedPeerTls) -> Self {
        let inbound = super::is_inbound(cluster);
        let service = super::service_of_cluster(cluster).map_or("", |s| s.0);
        let mut peer = Workload::unknown();
        let security = if !inbound {
            UNKNOWN
        } else if let Some(tls) = tls {
            if let Some(p) = tls
                .peer_uri_sans
                .iter()
                .find(|s| s.starts_with("spiffe://"))
            {
                p.clone_into(&mut peer.principal);
            }
            "mutual_tls"
        } else {
            "none"
        };
        Self {
            stats,
            inbound,
            service: service.to_owned(),
            peer,
            security,
            opened: false,
            connected: false,
            received: 0,
            sent: 0,
        }
    }

    /// The upstream connection to an endpoint with `metadata` was established.
    pub fn connected(&mut self, metadata: Option<&Metadata>) {
        self.connected = true;
        if !self.inbound
            && let Some(w) = metadata.and_then(endpoint_workload)
        {
            self.peer = w;
        }
        self.count_opened();
    }

    /// Bytes copied: `received` from the client, `sent` to it.
    pub fn bytes(&mut self, received: u64, sent: u64) {
        self.received += received;
        self.sent += sent;
    }

    fn count_opened(&mut self) {
        if !self.opened {
            self.opened = true;
            self.counter(&self.stats.tcp_opened, "-").inc();
        }
    }

    fn counter(
        &self,
        family: &prometheus_client::metrics::family::Family<TcpLabels, Counter>,
        flags: &str,
    ) -> Counter {
        let me = &self.stats.identity.me;
        let (source, dest) = if self.inbound {
            (&self.peer, me)
        } else {
            (me, &self.peer)
        };
        let peers = super::cache::peer_labels(self.inbound, source, dest, &self.service);
        family.get_or_create_owned(&TcpLabels {
            peers,
            request_protocol: "tcp",
            response_flags: flags.to_owned(),
            connection_security_policy: self.security,
        })
    }
}

/// Istio's endpoint workload metadata: `"<name>;<namespace>;<canonical service>;<canonical
/// revision>;<cluster>"` under `filter_metadata.istio.workload`.
pub fn endpoint_workload(metadata: &Metadata) -> Option<Workload> {
    let value = metadata
        .filter_metadata
        .get("istio")?
        .fields
        .get("workload")?;
    let Some(Kind::StringValue(text)) = &value.kind else {
        return None;
    };
    let mut parts = text.split(';');
    let mut next = || {
        parts
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or(UNKNOWN)
            .to_owned()
    };
    let (workload, namespace, canonical_service, canonical_revision, cluster) =
        (next(), next(), next(), next(), next());
    Some(Workload {
        workload,
        namespace,
        principal: UNKNOWN.to_owned(),
        app: canonical_service.clone(),
        version: canonical_revision.clone(),
        canonical_service,
        canonical_revision,
        cluster,
    })
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.count_opened();
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
