//! The inbound side of Istio mutual TLS (`pilot/pkg/networking/core/listener_inbound.go`,
//! `filterchain_options.go`, `security/authn` `BuildInboundTLS`): which filter chains a port
//! gets for its PeerAuthentication mode, and the `DownstreamTlsContext` that terminates mTLS.
//!
//! Per mode (Istio 1.2x):
//! - `STRICT`: one chain, `transport_protocol: "tls"`, terminating mTLS (no ALPN match, so any
//!   TLS client with a mesh certificate is served); in `virtualInbound`, whose default chain
//!   would otherwise take plaintext to the application, a `raw_buffer` chain to
//!   `BlackHoleCluster` too (Istio's passthrough chains are themselves STRICT);
//! - `PERMISSIVE`: a chain for `transport_protocol: "tls"` with `application_protocols` one of
//!   Istio's mTLS ALPNs ([`ISTIO_MTLS_ALPNS`]) terminating mTLS; on TCP ports, a chain for other
//!   TLS passed to the application as is; a `raw_buffer` chain for plaintext. TLS without an
//!   Istio ALPN on an HTTP port matches no chain: `virtualInbound`'s default chain passes it to
//!   the application, as Istio's passthrough chains do; a ports-mode listener closes it;
//! - `DISABLE`: one `raw_buffer` chain (TLS: as above, passed through or closed).

use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::{
    CombinedCertificateValidationContext, ValidationContextType,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::tls_parameters::TlsProtocol;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SubjectAltNameMatcher,
    TlsParameters,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use envoy_types::pb::google::protobuf::BoolValue;
use mast_config::security::peer_authentication::MtlsMode;

use crate::sds;

/// `transport_protocol` set by the TLS inspector on TLS connections.
pub const TLS_TRANSPORT: &str = "tls";
/// `transport_protocol` of every other connection.
pub const RAW_BUFFER_TRANSPORT: &str = "raw_buffer";
/// ALPN values that mark a connection as Istio mutual TLS (Istio's `allIstioMtlsALPNs`).
pub const ISTIO_MTLS_ALPNS: [&str; 5] = [
    "istio",
    "istio-peer-exchange",
    "istio-http/1.0",
    "istio-http/1.1",
    "istio-h2",
];
/// ALPN the server offers on HTTP chains (Istio's `ALPNHttp`).
pub const ALPN_HTTP: [&str; 2] = ["h2", "http/1.1"];
/// ALPN the server offers on TCP chains (Istio's `ALPNDownstreamWithMxc`).
pub const ALPN_TCP: [&str; 3] = ["istio-peer-exchange", "h2", "http/1.1"];

/// One chain of a port: what it matches and whether it terminates mTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainKind {
    /// `transport_protocol`.
    pub transport: &'static str,
    /// Match only connections offering one of [`ISTIO_MTLS_ALPNS`].
    pub istio_alpn: bool,
    /// Terminate mutual TLS (a `DownstreamTlsContext` transport socket).
    pub mtls: bool,
    /// Refuse the connection (`tcp_proxy` to `BlackHoleCluster`) instead of serving it.
    pub refuse: bool,
}

const MTLS_ANY: ChainKind = ChainKind {
    transport: TLS_TRANSPORT,
    istio_alpn: false,
    mtls: true,
    refuse: false,
};
const MTLS_ISTIO_ALPN: ChainKind = ChainKind {
    transport: TLS_TRANSPORT,
    istio_alpn: true,
    mtls: true,
    refuse: false,
};
const TLS_PASSTHROUGH: ChainKind = ChainKind {
    transport: TLS_TRANSPORT,
    istio_alpn: false,
    mtls: false,
    refuse: false,
};
const PLAINTEXT: ChainKind = ChainKind {
    transport: RAW_BUFFER_TRANSPORT,
    istio_alpn: false,
    mtls: false,
    refuse: false,
};

const REFUSE_PLAINTEXT: ChainKind = ChainKind {
    transport: RAW_BUFFER_TRANSPORT,
    istio_alpn: false,
    mtls: false,
    refuse: true,
};

/// The chains of a port in `mode` (see the module doc); `http` for HTTP ports. On a listener
/// with a default chain (`virtualInbound`'s passthrough), which Envoy uses for a connection no
/// chain of its port matches, a `STRICT` port also gets a chain refusing plaintext.
pub fn chain_kinds(mode: MtlsMode, http: bool, has_default: bool) -> Vec<ChainKind> {
    match mode {
        MtlsMode::Strict if has_default => vec![MTLS_ANY, REFUSE_PLAINTEXT],
        MtlsMode::Strict => vec![MTLS_ANY],
        MtlsMode::Permissive | MtlsMode::Unset if http => vec![MTLS_ISTIO_ALPN, PLAINTEXT],
        MtlsMode::Permissive | MtlsMode::Unset => vec![MTLS_ISTIO_ALPN, TLS_PASSTHROUGH, PLAINTEXT],
        MtlsMode::Disable => vec![PLAINTEXT],
    }
}

/// The `DownstreamTlsContext` of an mTLS chain: client certificate required, TLS 1.2–1.3, ALPN
/// [`ALPN_HTTP`] or [`ALPN_TCP`], the certificate from SDS `default`, peers validated against the
/// roots of SDS `ROOTCA` with a URI SAN in `trust_domain`.
pub fn downstream_context(http: bool, trust_domain: &str) -> DownstreamTlsContext {
    let alpn: &[&str] = if http { &ALPN_HTTP } else { &ALPN_TCP };
    let trust = SubjectAltNameMatcher {
        san_type: SanType::Uri as i32,
        matcher: Some(StringMatcher {
            match_pattern: Some(MatchPattern::Prefix(format!(
                "{}{trust_domain}/",
                mast_core::SPIFFE_PREFIX
            ))),
            ..Default::default()
        }),
        ..Default::default()
    };
    DownstreamTlsContext {
        require_client_certificate: Some(BoolValue { value: true }),
        common_tls_context: Some(CommonTlsContext {
            tls_params: Some(TlsParameters {
                tls_minimum_protocol_version: TlsProtocol::TlSv12 as i32,
                tls_maximum_protocol_version: TlsProtocol::TlSv13 as i32,
                ..Default::default()
            }),
            alpn_protocols: alpn.iter().map(|s| (*s).to_owned()).collect(),
            tls_certificate_sds_secret_configs: vec![sds::default_secret()],
            validation_context_type: Some(ValidationContextType::CombinedValidationContext(
                CombinedCertificateValidationContext {
                    default_validation_context: Some(CertificateValidationContext {
                        match_typed_subject_alt_names: vec![trust],
                        ..Default::default()
                    }),
                    validation_context_sds_secret_config: Some(sds::rootca_secret()),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `envoy.transport_sockets.tls` carrying [`downstream_context`].
pub fn transport_socket(http: bool, trust_domain: &str) -> TransportSocket {
    TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(ConfigType::TypedConfig(envoy_types::util::pack_any(
            downstream_context(http, trust_domain),
        ))),
    }
}
