//! TLS on both sides of the proxy: downstream (`DownstreamTlsContext` on a filter chain) and
//! upstream (`UpstreamTlsContext` on a cluster or a `transport_socket_matches` entry), with
//! certificates from files or from SDS secrets (`default`, `ROOTCA`) served in-process by the
//! workload's secret manager.
//!
//! [`PeerTls`] is what a terminated TLS connection tells the rest of the proxy (RBAC,
//! `x-forwarded-client-cert`, access log).
//!
//! - [`secrets`]: the in-process SDS secrets (`default`, `ROOTCA`) from the secret manager;
//! - [`context`]: `CommonTlsContext` conversion; [`source`]: certificates and roots from SDS or
//!   data sources; [`matcher`]: SAN matchers; [`pins`]: certificate hash / SPKI pins; [`params`]: cipher suites and curves;
//! - [`server`] / [`client`]: rustls configurations and handshakes; [`verify`]: verifiers;
//! - [`transport`]: transport sockets and `transport_socket_matches`; [`peer`]: certificate
//!   facts (SANs, subject, hash).

pub mod client;
pub mod context;
pub mod matcher;
pub mod params;
pub mod peer;
pub mod pins;
pub mod secrets;
pub mod server;
pub mod source;
#[cfg(test)]
pub(crate) mod tests;
pub mod transport;
pub mod verify;

use std::sync::{Arc, OnceLock};

pub use client::{Carried, ClientTls};
pub use secrets::SecretStore;
pub use server::ServerTls;
pub use transport::Transports;

/// The crypto provider every TLS configuration uses (ring; rustls' default cipher suites).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}

/// The rustls versions for (minimum, maximum) given as 12 / 13.
pub(crate) fn protocol_versions(
    (min, max): (u8, u8),
) -> &'static [&'static rustls::SupportedProtocolVersion] {
    static BOTH: [&rustls::SupportedProtocolVersion; 2] =
        [&rustls::version::TLS13, &rustls::version::TLS12];
    static V12: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
    static V13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    match (min, max) {
        (12, 12) => &V12,
        (13, 13) => &V13,
        _ => &BOTH,
    }
}

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
    /// The certificates the peer presented (DER, leaf first) for XFCC `Cert` / `Chain`;
    /// kept only when a connection manager asks for them.
    pub peer_chain_der: Vec<Vec<u8>>,
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
