//! Istio mutual TLS on outbound clusters (`cluster_tls.go` `buildAutoMtlsSettings`,
//! `buildUpstreamClusterTLSContext` for `ISTIO_MUTUAL`, `applyUpstreamTLSSettings`).
//!
//! - **Auto mTLS**: when no DestinationRule `tls` applies, the service is not `MESH_EXTERNAL` and
//!   the cluster is not a passthrough one (ORIGINAL_DST, Istio's `MTLSUnknown`), the cluster gets
//!   `transport_socket_matches`: `tlsMode-istio` (endpoints whose metadata
//!   `envoy.transport_socket_match` has `tlsMode: istio`) with the Istio mutual TLS context, then
//!   `tlsMode-disabled` (every other endpoint) with `raw_buffer`.
//! - **`ISTIO_MUTUAL`**: the same context as the cluster's `transport_socket`, always; the rule's
//!   `sni` and `subjectAltNames` replace the computed ones when given.
//!
//! The context: TLS 1.2–1.3; ALPN `istio-peer-exchange`, `istio` (plus `h2` on HTTP/2 clusters:
//! Istio's `ALPNInMeshWithMxc` / `ALPNInMeshH2WithMxc`); the certificate from SDS `default`;
//! a combined validation context with the SANs (URI matchers, exact) over the roots from SDS
//! `ROOTCA`; SNI `outbound_.<port>_.<subset>_.<host>`. SANs are the identities of the service's
//! endpoints; with none, only the chain is checked.

use envoy_types::pb::envoy::config::cluster::v3::cluster::TransportSocketMatch;
use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::{
    CombinedCertificateValidationContext, ValidationContextType,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::tls_parameters::TlsProtocol;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SubjectAltNameMatcher, TlsParameters,
    UpstreamTlsContext,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use envoy_types::pb::google::protobuf::Struct;
use mast_config::networking::destination_rule::ClientTlsSettings;
use mast_model::{MeshSnapshot, Resolution};

use super::super::draft::Draft;
use super::super::outbound::{Discovery, Target};
use crate::endpoint::tls_mode_istio;
use crate::names;
use crate::sds;

/// The TLS transport socket's name.
pub(crate) const TLS_SOCKET: &str = "envoy.transport_sockets.tls";
/// The plaintext transport socket's name.
pub(crate) const RAW_BUFFER_SOCKET: &str = "envoy.transport_sockets.raw_buffer";
/// The match of endpoints with a sidecar.
pub const TLS_MODE_ISTIO_MATCH: &str = "tlsMode-istio";
/// The match of every other endpoint.
pub const TLS_MODE_DISABLED_MATCH: &str = "tlsMode-disabled";
/// ALPN of in-mesh clusters (Istio's `ALPNInMeshWithMxc`).
pub const ALPN_IN_MESH: [&str; 2] = ["istio-peer-exchange", "istio"];
/// ALPN of in-mesh HTTP/2 clusters (Istio's `ALPNInMeshH2WithMxc`).
pub const ALPN_IN_MESH_H2: [&str; 3] = ["istio-peer-exchange", "istio", "h2"];

/// Istio's SNI for a cluster: `outbound_.<port>_.<subset>_.<host>`.
pub fn sni(t: &Target<'_>) -> String {
    let port = names::PortDigits::new(t.port.port);
    names::concat(&[
        "outbound_.",
        port.as_str(),
        "_.",
        t.subset.map_or("", |s| s.name.as_str()),
        "_.",
        t.service.hostname.as_str(),
    ])
}

/// Whether auto mTLS applies to a cluster without DestinationRule TLS.
fn auto_eligible(t: &Target<'_>) -> bool {
    !t.service.mesh_external
        && t.service.resolution != Resolution::Passthrough
        && t.discovery != Discovery::OriginalDst
}

/// Auto mTLS: the two transport socket matches (see the module doc), when eligible.
pub(crate) fn apply_auto(draft: &mut Draft, t: &Target<'_>) {
    if !auto_eligible(t) {
        return;
    }
    let sans = MeshSnapshot::service_accounts(t.service);
    let ctx = context(sni(t), &sans, draft.is_h2());
    draft.cluster.transport_socket_matches = vec![
        TransportSocketMatch {
            name: TLS_MODE_ISTIO_MATCH.into(),
            r#match: Some(tls_mode_istio()),
            transport_socket: Some(tls_socket(ctx)),
        },
        TransportSocketMatch {
            name: TLS_MODE_DISABLED_MATCH.into(),
            r#match: Some(Struct::default()),
            transport_socket: Some(raw_buffer()),
        },
    ];
}

/// DestinationRule `ISTIO_MUTUAL`: the context as the cluster's transport socket.
pub(crate) fn apply_istio_mutual(draft: &mut Draft, t: &Target<'_>, tls: &ClientTlsSettings) {
    let sni = tls
        .sni
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| sni(t));
    let sans = if tls.subject_alt_names.is_empty() {
        MeshSnapshot::service_accounts(t.service)
    } else {
        tls.subject_alt_names.clone()
    };
    draft.cluster.transport_socket = Some(tls_socket(context(sni, &sans, draft.is_h2())));
}

/// The Istio mutual TLS upstream context.
pub(crate) fn context(sni: String, sans: &[String], h2: bool) -> UpstreamTlsContext {
    let alpn: &[&str] = if h2 { &ALPN_IN_MESH_H2 } else { &ALPN_IN_MESH };
    let validation = CertificateValidationContext {
        match_typed_subject_alt_names: sans.iter().map(|s| uri_san(s)).collect(),
        ..Default::default()
    };
    UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_params: Some(tls_params()),
            alpn_protocols: alpn.iter().map(|s| (*s).to_owned()).collect(),
            tls_certificate_sds_secret_configs: vec![sds::default_secret()],
            validation_context_type: Some(ValidationContextType::CombinedValidationContext(
                CombinedCertificateValidationContext {
                    default_validation_context: Some(validation),
                    validation_context_sds_secret_config: Some(sds::rootca_secret()),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        sni,
        ..Default::default()
    }
}

/// TLS 1.2 to 1.3.
pub(crate) fn tls_params() -> TlsParameters {
    TlsParameters {
        tls_minimum_protocol_version: TlsProtocol::TlSv12 as i32,
        tls_maximum_protocol_version: TlsProtocol::TlSv13 as i32,
        ..Default::default()
    }
}

/// A URI SAN matcher: exact match.
fn uri_san(name: &str) -> SubjectAltNameMatcher {
    SubjectAltNameMatcher {
        san_type: SanType::Uri as i32,
        matcher: Some(StringMatcher {
            match_pattern: Some(MatchPattern::Exact(name.to_owned())),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `envoy.transport_sockets.tls` carrying `ctx`.
fn tls_socket(ctx: UpstreamTlsContext) -> TransportSocket {
    TransportSocket {
        name: TLS_SOCKET.into(),
        config_type: Some(ConfigType::TypedConfig(envoy_types::util::pack_any(ctx))),
    }
}

/// `envoy.transport_sockets.raw_buffer`.
pub(crate) fn raw_buffer() -> TransportSocket {
    TransportSocket {
        name: RAW_BUFFER_SOCKET.into(),
        config_type: Some(ConfigType::TypedConfig(envoy_types::util::pack_any(
            RawBuffer {},
        ))),
    }
}
