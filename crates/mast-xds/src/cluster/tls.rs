//! Upstream TLS (Istio's `buildUpstreamClusterTLSContext` and auto mTLS), and the upstream
//! PROXY protocol wrapper.
//!
//! Which TLS a cluster gets, from the DestinationRule `tls` that applies to it (a subset's over
//! a port-level one over the top-level one, see [`super::policy`]):
//! - none: **auto mTLS** ([`istio`]): `transport_socket_matches` that speak Istio mutual TLS to
//!   endpoints with a sidecar and plaintext to the others;
//! - `DISABLE`: plaintext;
//! - `ISTIO_MUTUAL`: Istio mutual TLS always ([`istio`]);
//! - `SIMPLE` / `MUTUAL` with certificate files: an `envoy.transport_sockets.tls` transport socket
//!   carrying an `UpstreamTlsContext`: TLS 1.2–1.3; `sni`; for `MUTUAL`, the client certificate
//!   and key files; a validation context with `caCertificates` (else the node's
//!   `TLS_CLIENT_ROOT_CERT` metadata, else the system bundle [`SYSTEM_CA_BUNDLE`]), the
//!   `subjectAltNames` (URI when they contain `://`, IP when they parse as one, DNS otherwise) and
//!   `caCrl`; an empty validation context (no verification) with `insecureSkipVerify`. ALPN `h2`
//!   on HTTP/2 clusters. Without `sni`, the upstream HTTP options get `auto_sni` (and
//!   `auto_san_validation` when no SANs are given and verification is on), as Istio does.
//!
//! `credentialName` (gateways only, Istio's TLS origination at an egress gateway): the Kubernetes
//! Secret of that name in the gateway's namespace gives the CA that verifies the server (its
//! `ca.crt`/`cacert`, else `<name>-cacert`; without one, the files or system roots as above)
//! and, for `MUTUAL`, the client certificate and key, all inlined (`inline_string`).
//!
//! Not emitted (the cluster stays plaintext and a warning is logged): `credentialName` on a
//! sidecar (sidecars do not read Kubernetes secrets), a `MUTUAL` `credentialName` whose Secret
//! has no certificate, and `MUTUAL` without both client files (Istio rejects it too).

pub(super) mod istio;

use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
use envoy_types::pb::envoy::config::core::v3::{
    DataSource, ProxyProtocolConfig, TransportSocket, data_source,
};
use envoy_types::pb::envoy::extensions::transport_sockets::proxy_protocol::v3::ProxyProtocolUpstreamTransport;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::tls_parameters::TlsProtocol;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SubjectAltNameMatcher, TlsCertificate,
    TlsParameters, UpstreamTlsContext,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use mast_config::networking::destination_rule::{
    ClientTlsSettings, ProxyProtocol, ProxyProtocolVersion, TlsMode,
};
use mast_model::{MeshSnapshot, NodeType, ProxyNode};

use super::draft::Draft;
use super::outbound::Target;

/// The CA bundle used when a rule verifies the server but names no CA (Istio's "system" roots;
/// the path of Debian, Ubuntu and Alpine).
pub(crate) const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The node metadata key Istio reads a default client root certificate from.
const ROOT_CERT_METADATA: &str = "TLS_CLIENT_ROOT_CERT";

/// TLS material from a DestinationRule `credentialName` (PEM text).
#[derive(Default)]
struct Credential {
    /// The client certificate chain and key.
    cert: Option<(String, String)>,
    /// The CA bundle that verifies the server.
    ca: Option<String>,
}

/// The `credentialName` material of `tls` for `proxy`: `Ok(None)` without one, `Err` when it
/// cannot be used (logged by the caller).
fn credential(
    tls: &ClientTlsSettings,
    proxy: &ProxyNode,
    snapshot: &MeshSnapshot,
    mutual: bool,
) -> Result<Option<Credential>, &'static str> {
    let Some(name) = tls.credential_name.as_deref().filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    if proxy.node_type != NodeType::Router {
        return Err("DestinationRule tls.credentialName is not supported on sidecars");
    }
    let secret = snapshot.tls_secret(&proxy.namespace, name);
    if mutual && secret.is_none() {
        return Err(
            "tls.credentialName names no Secret with a certificate in the gateway's namespace",
        );
    }
    Ok(Some(Credential {
        cert: secret.map(|s| (s.cert_chain.clone(), s.private_key.clone())),
        ca: snapshot
            .secret_ca(&proxy.namespace, name)
            .map(str::to_owned),
    }))
}

/// Applies the TLS of target `t` to its cluster (see the module doc).
pub(crate) fn apply(draft: &mut Draft, t: &Target<'_>, proxy: &ProxyNode, snapshot: &MeshSnapshot) {
    let Some(tls) = t.policy.tls else {
        istio::apply_auto(draft, t);
        return;
    };
    let mutual = match tls.mode() {
        TlsMode::Disable => return,
        TlsMode::IstioMutual => {
            istio::apply_istio_mutual(draft, t, tls);
            return;
        }
        TlsMode::Simple => false,
        TlsMode::Mutual => true,
    };
    let credential = match credential(tls, proxy, snapshot, mutual) {
        Ok(c) => c,
        Err(why) => {
            tracing::warn!(cluster = %draft.cluster.name, "{why}: TLS not applied");
            return;
        }
    };
    let Some(context) = context(draft, tls, mutual, proxy, credential.as_ref()) else {
        tracing::warn!(cluster = %draft.cluster.name, "tls mode MUTUAL needs clientCertificate and privateKey: TLS not applied");
        return;
    };
    set_auto_sni(draft, tls);
    draft.cluster.transport_socket = Some(TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(ConfigType::TypedConfig(envoy_types::util::pack_any(
            context,
        ))),
    });
}

fn context(
    draft: &Draft,
    tls: &ClientTlsSettings,
    mutual: bool,
    proxy: &ProxyNode,
    credential: Option<&Credential>,
) -> Option<UpstreamTlsContext> {
    let mut validation = validation(tls, proxy);
    if let Some(ca) = credential.and_then(|c| c.ca.as_deref())
        && tls.insecure_skip_verify != Some(true)
    {
        validation.trusted_ca = Some(inline(ca));
    }
    let mut common = CommonTlsContext {
        tls_params: Some(TlsParameters {
            tls_minimum_protocol_version: TlsProtocol::TlSv12 as i32,
            tls_maximum_protocol_version: TlsProtocol::TlSv13 as i32,
            ..Default::default()
        }),
        validation_context_type: Some(ValidationContextType::ValidationContext(validation)),
        ..Default::default()
    };
    if let Some((cert, key)) = credential.and_then(|c| c.cert.as_ref()).filter(|_| mutual) {
        common.tls_certificates = vec![TlsCertificate {
            certificate_chain: Some(inline(cert)),
            private_key: Some(inline(key)),
            ..Default::default()
        }];
    } else if mutual {
        let cert = tls
            .client_certificate
            .as_deref()
            .filter(|s| !s.is_empty())?;
        let key = tls.private_key.as_deref().filter(|s| !s.is_empty())?;
        common.tls_certificates = vec![TlsCertificate {
            certificate_chain: Some(file(cert)),
            private_key: Some(file(key)),
            ..Default::default()
        }];
    }
    if draft.is_h2() {
        common.alpn_protocols = vec!["h2".into()];
    }
    Some(UpstreamTlsContext {
        common_tls_context: Some(common),
        sni: tls.sni.clone().unwrap_or_default(),
        ..Default::default()
    })
}

fn validation(tls: &ClientTlsSettings, proxy: &ProxyNode) -> CertificateValidationContext {
    if tls.insecure_skip_verify == Some(true) {
        return CertificateValidationContext::default();
    }
    let metadata_root = proxy
        .metadata
        .get(ROOT_CERT_METADATA)
        .and_then(serde_json::Value::as_str);
    let ca = [tls.ca_certificates.as_deref(), metadata_root]
        .into_iter()
        .flatten()
        .find(|s| !s.is_empty())
        .unwrap_or(SYSTEM_CA_BUNDLE);
    CertificateValidationContext {
        trusted_ca: Some(file(ca)),
        match_typed_subject_alt_names: tls.subject_alt_names.iter().map(|s| san(s)).collect(),
        crl: tls.ca_crl.as_deref().filter(|s| !s.is_empty()).map(file),
        ..Default::default()
    }
}

/// A SAN matcher: URI when `name` contains `://`, IP when it parses as one, DNS otherwise.
pub(crate) fn san(name: &str) -> SubjectAltNameMatcher {
    let san_type = if name.contains("://") {
        SanType::Uri
    } else if name.parse::<IpAddr>().is_ok() {
        SanType::IpAddress
    } else {
        SanType::Dns
    };
    SubjectAltNameMatcher {
        san_type: san_type as i32,
        matcher: Some(StringMatcher {
            match_pattern: Some(MatchPattern::Exact(name.to_owned())),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An `inline_string` data source.
fn inline(text: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::InlineString(text.to_owned())),
        ..Default::default()
    }
}

/// A `filename` data source.
pub(crate) fn file(path: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::Filename(path.to_owned())),
        ..Default::default()
    }
}

/// Without an explicit SNI, Envoy derives it from the request's host (`auto_sni`) and, unless
/// SANs are given or verification is off, checks the certificate against it.
fn set_auto_sni(draft: &mut Draft, tls: &ClientTlsSettings) {
    if tls.sni.as_deref().is_some_and(|s| !s.is_empty()) {
        return;
    }
    let auto_san = tls.subject_alt_names.is_empty() && tls.insecure_skip_verify != Some(true);
    let upstream = draft
        .http_mut()
        .upstream_http_protocol_options
        .get_or_insert_with(Default::default);
    upstream.auto_sni = true;
    upstream.auto_san_validation = auto_san;
}

/// Wraps the cluster's transport socket (raw buffer when none), and each transport socket
/// match's, in an upstream PROXY protocol header of the configured version (V1 unless set).
pub(crate) fn apply_proxy_protocol(draft: &mut Draft, proxy_protocol: Option<&ProxyProtocol>) {
    let Some(p) = proxy_protocol else { return };
    let version = match p.version.unwrap_or_default() {
        ProxyProtocolVersion::V1 => 0,
        ProxyProtocolVersion::V2 => 1,
    };
    let inner = draft
        .cluster
        .transport_socket
        .take()
        .unwrap_or_else(istio::raw_buffer);
    draft.cluster.transport_socket = Some(proxy_protocol_socket(version, inner));
    for m in &mut draft.cluster.transport_socket_matches {
        let inner = m.transport_socket.take().unwrap_or_else(istio::raw_buffer);
        m.transport_socket = Some(proxy_protocol_socket(version, inner));
    }
}

fn proxy_protocol_socket(version: i32, inner: TransportSocket) -> TransportSocket {
    let wrapper = ProxyProtocolUpstreamTransport {
        config: Some(ProxyProtocolConfig {
            version,
            ..Default::default()
        }),
        transport_socket: Some(inner),
        ..Default::default()
    };
    TransportSocket {
        name: "envoy.transport_sockets.upstream_proxy_protocol".into(),
        config_type: Some(ConfigType::TypedConfig(envoy_types::util::pack_any(
            wrapper,
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::outbound::Discovery;
    use super::super::policy::Policy;
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::cluster::DiscoveryType;
    use mast_model::{Protocol, Resolution, Service, ServicePort};
    use prost::Message;

    fn node(md: serde_json::Value) -> ProxyNode {
        ProxyNode::parse("sidecar~10.0.0.1~c.default~default.svc.cluster.local", &md).unwrap()
    }

    pub(crate) fn svc() -> Service {
        Service {
            hostname: mast_core::Hostname::new_unchecked("svc.default.svc.cluster.local"),
            namespace: "default".into(),
            name: "svc".into(),
            ports: vec![ServicePort {
                name: "http".into(),
                port: 80,
                protocol: Protocol::Http,
            }],
            addresses: Vec::new(),
            export_to: Vec::new(),
            mesh_external: false,
            resolution: Resolution::Static,
            selector: Default::default(),
            endpoints: Default::default(),
        }
    }

    fn applied(
        tls: &ClientTlsSettings,
        h2: bool,
        md: serde_json::Value,
    ) -> (Draft, Option<UpstreamTlsContext>) {
        let mut d = Draft::new("c", DiscoveryType::Eds);
        if h2 {
            d.set_h2();
        }
        let s = svc();
        let t = Target {
            name: "c".into(),
            service: &s,
            port: &s.ports[0],
            subset: None,
            rule: None,
            policy: Policy {
                tls: Some(tls),
                ..Default::default()
            },
            discovery: Discovery::Eds,
        };
        apply(&mut d, &t, &node(md), &MeshSnapshot::default());
        let ctx = d.cluster.transport_socket.as_ref().map(|ts| {
            assert_eq!(ts.name, "envoy.transport_sockets.tls");
            let Some(ConfigType::TypedConfig(any)) = &ts.config_type else {
                panic!()
            };
            UpstreamTlsContext::decode(any.value.as_slice()).unwrap()
        });
        (d, ctx)
    }

    fn validation_of(ctx: &UpstreamTlsContext) -> &CertificateValidationContext {
        let Some(ValidationContextType::ValidationContext(v)) = &ctx
            .common_tls_context
            .as_ref()
            .unwrap()
            .validation_context_type
        else {
            panic!()
        };
        v
    }

    #[test]
    fn simple_with_sni_sans_and_ca() {
        let tls = ClientTlsSettings {
            mode: Some(TlsMode::Simple),
            sni: Some("api.example.com".into()),
            subject_alt_names: vec!["api.example.com".into(), "spiffe://td/ns/a/sa/b".into()],
            ca_certificates: Some("/etc/ca.pem".into()),
            ..Default::default()
        };
        let (d, ctx) = applied(&tls, true, serde_json::json!({}));
        let ctx = ctx.unwrap();
        assert_eq!(ctx.sni, "api.example.com");
        assert_eq!(
            ctx.common_tls_context.as_ref().unwrap().alpn_protocols,
            vec!["h2"]
        );
        let v = validation_of(&ctx);
        assert_eq!(v.trusted_ca, Some(file("/etc/ca.pem")));
        let types: Vec<i32> = v
            .match_typed_subject_alt_names
            .iter()
            .map(|m| m.san_type)
            .collect();
        assert_eq!(types, vec![SanType::Dns as i32, SanType::Uri as i32]);
        assert!(
            d.http
                .as_ref()
                .and_then(|h| h.upstream_http_protocol_options.as_ref())
                .is_none(),
            "explicit SNI: no auto_sni"
        );
    }

    #[test]
    fn mutual_needs_both_files_and_defaults_ca() {
        let mut tls = ClientTlsSettings {
            mode: Some(TlsMode::Mutual),
            client_certificate: Some("/c.pem".into()),
            ..Default::default()
        };
        assert!(
            applied(&tls, false, serde_json::json!({})).1.is_none(),
            "no key: no TLS"
        );
        tls.private_key = Some("/k.pem".into());
        let (d, ctx) = applied(&tls, false, serde_json::json!({}));
        let ctx = ctx.unwrap();
        let cert = &ctx.common_tls_context.as_ref().unwrap().tls_certificates[0];
        assert_eq!(
            (cert.certificate_chain.clone(), cert.private_key.clone()),
            (Some(file("/c.pem")), Some(file("/k.pem")))
        );
        assert_eq!(validation_of(&ctx).trusted_ca, Some(file(SYSTEM_CA_BUNDLE)));
        let up = d.http.unwrap().upstream_http_protocol_options.unwrap();
        assert!(up.auto_sni && up.auto_san_validation);
        let (_, ctx) = applied(
            &tls,
            false,
            serde_json::json!({"TLS_CLIENT_ROOT_CERT": "/meta/root.pem"}),
        );
        assert_eq!(
            validation_of(&ctx.unwrap()).trusted_ca,
            Some(file("/meta/root.pem"))
        );
    }

    #[test]
    fn skipped_modes() {
        for tls in [
            ClientTlsSettings {
                mode: Some(TlsMode::Disable),
                ..Default::default()
            },
            ClientTlsSettings {
                mode: Some(TlsMode::Simple),
                credential_name: Some("secret".into()),
                ..Default::default()
            },
        ] {
            assert!(
                applied(&tls, false, serde_json::json!({})).1.is_none(),
                "{tls:?}"
            );
        }
        let insecure = ClientTlsSettings {
            mode: Some(TlsMode::Simple),
            insecure_skip_verify: Some(true),
            ..Default::default()
        };
        let (d, ctx) = applied(&insecure, false, serde_json::json!({}));
        assert_eq!(
            validation_of(&ctx.unwrap()),
            &CertificateValidationContext::default()
        );
        assert!(
            !d.http
                .unwrap()
                .upstream_http_protocol_options
                .unwrap()
                .auto_san_validation
        );
    }

    #[test]
    fn proxy_protocol_wraps_the_socket() {
        let mut d = Draft::new("c", DiscoveryType::Eds);
        apply_proxy_protocol(
            &mut d,
            Some(&ProxyProtocol {
                version: Some(ProxyProtocolVersion::V2),
            }),
        );
        let ts = d.cluster.transport_socket.unwrap();
        assert_eq!(ts.name, "envoy.transport_sockets.upstream_proxy_protocol");
        let Some(ConfigType::TypedConfig(any)) = ts.config_type else {
            panic!()
        };
        let w = ProxyProtocolUpstreamTransport::decode(any.value.as_slice()).unwrap();
        assert_eq!(w.config.unwrap().version, 1);
        assert_eq!(
            w.transport_socket.unwrap().name,
            "envoy.transport_sockets.raw_buffer"
        );
    }
}
