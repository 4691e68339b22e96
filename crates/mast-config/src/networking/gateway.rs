//! `Gateway` (networking.istio.io v1alpha3/v1beta1/v1): the spec types, field for field as
//! Istio's `networking/v1alpha3/gateway.proto` — servers, their ports and TLS settings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The spec of a `Gateway`: a load balancer at the edge of the mesh, described by the
/// servers (ports, hosts, TLS) that the selected gateway workloads expose.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gateway {
    /// The servers the gateway exposes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<Server>,
    /// Labels of the gateway pods the configuration applies to.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
}

/// One listener of a gateway: a port, the hosts served on it and optional TLS.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Server {
    /// The port on which the proxy listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<Port>,
    /// The IP or `unix://` socket the listener binds to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// Hosts exposed by the server, `dnsName` or `namespace/dnsName`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// TLS settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSettings>,
    /// Where traffic is forwarded by default (not implemented by Istio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_endpoint: Option<String>,
    /// An optional name for the server, used in stats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A gateway server's port.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Port {
    /// The port number (0 only with a Unix domain socket `bind`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<i64>,
    /// The protocol: HTTP, HTTPS, GRPC, GRPC-WEB, HTTP2, MONGO, TCP or TLS (any case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The port's name, unique across the gateway's servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Deprecated: has no effect on gateways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<i64>,
}

/// TLS settings of a gateway server (`ServerTLSSettings`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerTlsSettings {
    /// Send a 301 redirect to HTTPS for plain HTTP requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_redirect: Option<bool>,
    /// How TLS is enforced; `PASSTHROUGH` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ServerTlsMode>,
    /// Path to the server certificate file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_certificate: Option<String>,
    /// Path to the server private key file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// Secret holding the CA certificates that verify client certificates, apart from
    /// the server certificate's `credentialName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_credential_name: Option<String>,
    /// Path to the CA bundle that verifies client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    /// Path to a certificate revocation list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_crl: Option<String>,
    /// Name of the secret holding the certificate, key and (`-cacert`) CA bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    /// Several secrets (for example an RSA and an ECDSA certificate).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credential_names: Vec<String>,
    /// Several certificate/key file pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_certificates: Vec<TlsCertificate>,
    /// Subject alternative names accepted in client certificates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// Base64 SHA-256 hashes of the SPKIs of accepted client certificates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_spki: Vec<String>,
    /// Hex SHA-256 hashes of accepted client certificates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_hash: Vec<String>,
    /// Minimum TLS version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_protocol_version: Option<TlsProtocol>,
    /// Maximum TLS version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_protocol_version: Option<TlsProtocol>,
    /// Allowed cipher suites (OpenSSL names); Envoy's defaults when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
}

impl ServerTlsSettings {
    /// The mode, with Istio's default (`PASSTHROUGH`) when unset.
    pub fn mode(&self) -> ServerTlsMode {
        self.mode.unwrap_or_default()
    }
}

/// One certificate/key pair of `tlsCertificates`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsCertificate {
    /// Path to the certificate file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_certificate: Option<String>,
    /// Path to the private key file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// Path to a CA bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
}

/// How a gateway server handles TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerTlsMode {
    /// Route on SNI without terminating TLS.
    #[default]
    Passthrough,
    /// Terminate TLS with the server's certificate.
    Simple,
    /// Terminate TLS and require a client certificate.
    Mutual,
    /// Passthrough with the destination encoded in SNI (multi-network east-west).
    AutoPassthrough,
    /// Mutual TLS with certificates issued by the mesh.
    IstioMutual,
    /// Terminate TLS; verify a client certificate when one is presented.
    OptionalMutual,
}

impl ServerTlsMode {
    /// The name as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerTlsMode::Passthrough => "PASSTHROUGH",
            ServerTlsMode::Simple => "SIMPLE",
            ServerTlsMode::Mutual => "MUTUAL",
            ServerTlsMode::AutoPassthrough => "AUTO_PASSTHROUGH",
            ServerTlsMode::IstioMutual => "ISTIO_MUTUAL",
            ServerTlsMode::OptionalMutual => "OPTIONAL_MUTUAL",
        }
    }
}

/// A TLS protocol version bound. Ordered from `TLS_AUTO` to `TLSV1_3`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub enum TlsProtocol {
    /// Let the proxy choose.
    #[default]
    #[serde(rename = "TLS_AUTO")]
    TlsAuto,
    /// TLS 1.0.
    #[serde(rename = "TLSV1_0")]
    TlsV1_0,
    /// TLS 1.1.
    #[serde(rename = "TLSV1_1")]
    TlsV1_1,
    /// TLS 1.2.
    #[serde(rename = "TLSV1_2")]
    TlsV1_2,
    /// TLS 1.3.
    #[serde(rename = "TLSV1_3")]
    TlsV1_3,
}

impl TlsProtocol {
    /// The name as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsProtocol::TlsAuto => "TLS_AUTO",
            TlsProtocol::TlsV1_0 => "TLSV1_0",
            TlsProtocol::TlsV1_1 => "TLSV1_1",
            TlsProtocol::TlsV1_2 => "TLSV1_2",
            TlsProtocol::TlsV1_3 => "TLSV1_3",
        }
    }
}
