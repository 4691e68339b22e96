//! TLS on both sides of the proxy: downstream (`DownstreamTlsContext` on a filter chain) and
//! upstream (`UpstreamTlsContext` on a cluster or a `transport_socket_matches` entry), with
//! certificates from files or from SDS secrets (`default`, `ROOTCA`) served in-process by the
//! workload's secret manager.
//!
//! [`PeerTls`] is what a terminated TLS connection tells the rest of the proxy (RBAC,
//! `x-forwarded-client-cert`, access log).

use std::sync::Arc;

/// What the downstream TLS handshake established, for RBAC, XFCC and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerTls {
    /// The peer certificate's URI SANs (`spiffe://cluster.local/ns/default/sa/sleep`); empty
    /// when the peer sent no certificate.
    pub peer_uri_sans: Vec<String>,
    /// The peer certificate's DNS SANs.
    pub peer_dns_sans: Vec<String>,
    /// The peer certificate's subject, RFC 2253 form (empty when none).
    pub peer_subject: String,
    /// Hex SHA-256 of the peer certificate's DER (XFCC `Hash`), empty when none.
    pub peer_cert_sha256: String,
    /// The URI SANs of the certificate this proxy presented (XFCC `By`).
    pub local_uri_sans: Vec<String>,
    /// The SNI the client sent.
    pub sni: Option<String>,
    /// The negotiated ALPN protocol.
    pub alpn: Option<String>,
}

impl PeerTls {
    /// The peer's principal as Envoy's RBAC sees it: the first URI SAN, else the first DNS
    /// SAN, else the subject; `None` without a peer certificate.
    pub fn principal(&self) -> Option<&str> {
        self.peer_uri_sans
            .first()
            .or(self.peer_dns_sans.first())
            .map(String::as_str)
            .or((!self.peer_subject.is_empty()).then_some(self.peer_subject.as_str()))
    }
}

/// Shared TLS facts of one connection.
pub type SharedPeerTls = Option<Arc<PeerTls>>;
