//! Unit tests: inbound chains per PeerAuthentication mode (STRICT, PERMISSIVE, DISABLE, per
//! port) in both capture modes, the `DownstreamTlsContext`, and the XFCC settings.

use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, Listener};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::ForwardClientCertDetails;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::tls_parameters::TlsProtocol;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};
use prost::Message;
use serde_json::json;

use super::filters::*;
use super::inbound::mtls::ISTIO_MTLS_ALPNS;
use super::tests::{find, hcm, tcp_cluster};

const MESH: &str = "
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}, {name: tcp, port: 90, targetPort: 9090}]
";

fn pa(spec: &str) -> String {
    format!(
        "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\n\
         metadata: {{name: p, namespace: default}}\nspec: {spec}\n"
    )
}

fn snapshot(extra: &str) -> MeshSnapshot {
    let out = mast_config::load_str(&format!("{MESH}{extra}"), "t.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
    MeshSnapshot::build(&out.resources, SnapshotOptions::default(), 1)
}

fn iptables_web() -> ProxyNode {
    ProxyNode::parse(
        "sidecar~10.0.0.5~web-1.default~default.svc.cluster.local",
        &json!({"NAMESPACE": "default", "LABELS": {"app": "web"}}),
    )
    .unwrap()
}

fn ports_web() -> ProxyNode {
    ProxyNode::parse(
        "sidecar~127.0.0.1~web-1.default~default.svc.cluster.local",
        &json!({"NAMESPACE": "default", "LABELS": {"app": "web"}, "WORKLOAD_NAME": "web-1",
            "MAST_CAPTURE_MODE": "ports", "MAST_OUTBOUND_PORT": "15101",
            "MAST_INBOUND_PORTS": "8080=15106,9090=15107"}),
    )
    .unwrap()
}

/// (transport protocol, ALPN match is Istio's, terminates mTLS) per chain.
fn shape(chains: &[&FilterChain]) -> Vec<(String, bool, bool)> {
    chains
        .iter()
        .map(|c| {
            let m = c.filter_chain_match.clone().unwrap_or_default();
            let alpn = !m.application_protocols.is_empty();
            if alpn {
                assert_eq!(m.application_protocols, ISTIO_MTLS_ALPNS);
            }
            (m.transport_protocol, alpn, c.transport_socket.is_some())
        })
        .collect()
}

/// The chains of `virtualInbound` for one destination port.
fn port_chains(l: &Listener, port: u32) -> Vec<&FilterChain> {
    l.filter_chains
        .iter()
        .filter(|c| {
            c.filter_chain_match
                .as_ref()
                .and_then(|m| m.destination_port.as_ref())
                .is_some_and(|p| p.value == port)
        })
        .collect()
}

fn has_inspector(l: &Listener) -> bool {
    l.listener_filters
        .iter()
        .any(|f| f.name == TLS_INSPECTOR_FILTER)
}

fn downstream(c: &FilterChain) -> DownstreamTlsContext {
    let ts = c.transport_socket.as_ref().unwrap();
    assert_eq!(ts.name, "envoy.transport_sockets.tls");
    let Some(ConfigType::TypedConfig(any)) = &ts.config_type else {
        panic!()
    };
    DownstreamTlsContext::decode(any.value.as_slice()).unwrap()
}

fn t(transport: &str, alpn: bool, mtls: bool) -> (String, bool, bool) {
    (transport.to_owned(), alpn, mtls)
}

#[test]
fn chains_per_mode_in_virtual_inbound() {
    // In virtualInbound, STRICT refuses plaintext explicitly (else the passthrough default
    // chain would take it).
    let strict = [t("tls", false, true), t("raw_buffer", false, false)];
    let permissive_http = [t("tls", true, true), t("raw_buffer", false, false)];
    let permissive_tcp = [
        t("tls", true, true),
        t("tls", false, false),
        t("raw_buffer", false, false),
    ];
    let disable = [t("raw_buffer", false, false)];
    let cases: Vec<(String, Vec<_>, Vec<_>, bool)> = vec![
        (
            String::new(),
            permissive_http.to_vec(),
            permissive_tcp.to_vec(),
            true,
        ),
        (
            pa("{mtls: {mode: STRICT}}"),
            strict.to_vec(),
            strict.to_vec(),
            true,
        ),
        (
            pa("{mtls: {mode: PERMISSIVE}}"),
            permissive_http.to_vec(),
            permissive_tcp.to_vec(),
            true,
        ),
        (
            pa("{mtls: {mode: DISABLE}}"),
            disable.to_vec(),
            disable.to_vec(),
            false,
        ),
        (
            pa(
                "{selector: {matchLabels: {app: web}}, mtls: {mode: STRICT}, portLevelMtls: {\"9090\": {mode: DISABLE}}}",
            ),
            strict.to_vec(),
            disable.to_vec(),
            true,
        ),
    ];
    for (policy, http, tcp, inspector) in cases {
        let snap = snapshot(&policy);
        let ls = super::listeners(&snap, &iptables_web());
        let vi = find(&ls, "virtualInbound");
        assert_eq!(shape(&port_chains(vi, 8080)), http, "{policy}");
        assert_eq!(shape(&port_chains(vi, 9090)), tcp, "{policy}");
        assert_eq!(has_inspector(vi), inspector, "{policy}");
        assert_eq!(vi.listener_filters[0].name, ORIGINAL_DST_FILTER);
        // Passthrough and blackhole behaviour unchanged.
        assert_eq!(vi.filter_chains[0].name, "virtualInbound-blackhole");
        assert_eq!(
            tcp_cluster(vi.default_filter_chain.as_ref().unwrap()).0,
            "InboundPassthroughCluster"
        );
        let refuses = |c: &FilterChain| {
            c.filters.last().is_some_and(|f| f.name == TCP_PROXY_FILTER)
                && tcp_cluster(c).0 == "BlackHoleCluster"
        };
        let strict_ports = [&http, &tcp]
            .iter()
            .filter(|s| s.len() == 2 && s[0] == t("tls", false, true))
            .count();
        let refusing = vi.filter_chains[1..].iter().filter(|c| refuses(c)).count();
        assert_eq!(refusing, strict_ports, "{policy}");
        for c in port_chains(vi, 8080).into_iter().filter(|c| !refuses(c)) {
            assert_eq!(c.name, "0.0.0.0_8080");
            assert_eq!(hcm(c).stat_prefix, "inbound_0.0.0.0_8080");
        }
        for c in port_chains(vi, 9090).into_iter().filter(|c| !refuses(c)) {
            assert_eq!(tcp_cluster(c).0, "inbound|9090||");
        }
    }
}

#[test]
fn chains_per_mode_in_ports_mode() {
    let cases = [
        ("", 2, 3, true),
        ("{mtls: {mode: STRICT}}", 1, 1, true),
        ("{mtls: {mode: DISABLE}}", 1, 1, false),
    ];
    for (spec, http_chains, tcp_chains, inspector) in cases {
        let policy = if spec.is_empty() {
            String::new()
        } else {
            pa(spec)
        };
        let snap = snapshot(&policy);
        let ls = super::listeners(&snap, &ports_web());
        let web = find(&ls, "mast_inbound_8080");
        let tcp = find(&ls, "mast_inbound_9090");
        assert_eq!(web.filter_chains.len(), http_chains, "{spec}");
        assert_eq!(tcp.filter_chains.len(), tcp_chains, "{spec}");
        for l in [web, tcp] {
            assert_eq!(has_inspector(l), inspector, "{spec}");
            assert!(
                l.default_filter_chain.is_none(),
                "unmatched connections are closed"
            );
            for c in &l.filter_chains {
                let m = c.filter_chain_match.as_ref().unwrap();
                assert!(m.destination_port.is_none());
            }
        }
        let first = shape(&web.filter_chains.iter().collect::<Vec<_>>());
        let want_first = match spec {
            "{mtls: {mode: DISABLE}}" => t("raw_buffer", false, false),
            "{mtls: {mode: STRICT}}" => t("tls", false, true),
            _ => t("tls", true, true),
        };
        assert_eq!(first[0], want_first, "{spec}");
        assert_eq!(hcm(&web.filter_chains[0]).stat_prefix, "inbound_8080");
    }
}

#[test]
fn downstream_tls_context_requires_a_mesh_client_certificate() {
    let snap = snapshot(&pa("{mtls: {mode: STRICT}}"));
    let ls = super::listeners(&snap, &iptables_web());
    let vi = find(&ls, "virtualInbound");
    let http = downstream(port_chains(vi, 8080)[0]);
    let tcp = downstream(port_chains(vi, 9090)[0]);
    assert_eq!(http.require_client_certificate.map(|b| b.value), Some(true));
    let common = http.common_tls_context.unwrap();
    assert_eq!(common.alpn_protocols, ["h2", "http/1.1"]);
    assert_eq!(
        tcp.common_tls_context.unwrap().alpn_protocols,
        ["istio-peer-exchange", "h2", "http/1.1"]
    );
    let params = common.tls_params.unwrap();
    assert_eq!(
        (
            params.tls_minimum_protocol_version,
            params.tls_maximum_protocol_version
        ),
        (TlsProtocol::TlSv12 as i32, TlsProtocol::TlSv13 as i32)
    );
    assert_eq!(
        common.tls_certificate_sds_secret_configs,
        [crate::sds::default_secret()]
    );
    let Some(ValidationContextType::CombinedValidationContext(v)) = common.validation_context_type
    else {
        panic!("not combined")
    };
    assert_eq!(
        v.validation_context_sds_secret_config,
        Some(crate::sds::rootca_secret())
    );
    let sans = v
        .default_validation_context
        .unwrap()
        .match_typed_subject_alt_names;
    assert_eq!(sans.len(), 1);
    assert_eq!(sans[0].san_type, SanType::Uri as i32);
    assert_eq!(
        sans[0].matcher.as_ref().unwrap().match_pattern,
        Some(MatchPattern::Prefix("spiffe://cluster.local/".into()))
    );
}

#[test]
fn xfcc_is_append_forward_inbound_and_sanitize_set_outbound() {
    let snap = snapshot("");
    let ls = super::listeners(&snap, &iptables_web());
    let vi = find(&ls, "virtualInbound");
    for c in port_chains(vi, 8080) {
        let h = hcm(c);
        assert_eq!(
            h.forward_client_cert_details,
            ForwardClientCertDetails::AppendForward as i32
        );
        let set = h.set_current_client_cert_details.unwrap();
        assert_eq!(set.subject.map(|b| b.value), Some(true));
        assert!(set.uri && set.dns && !set.cert && !set.chain);
    }
    let out = find(&ls, "0.0.0.0_80");
    let h = hcm(&out.filter_chains[0]);
    assert_eq!(
        h.forward_client_cert_details,
        ForwardClientCertDetails::SanitizeSet as i32
    );
    assert!(h.set_current_client_cert_details.is_none());
    let ports = super::listeners(&snap, &ports_web());
    let h = hcm(&find(&ports, "mast_outbound").filter_chains[0]);
    assert_eq!(
        h.forward_client_cert_details,
        ForwardClientCertDetails::SanitizeSet as i32
    );
}
