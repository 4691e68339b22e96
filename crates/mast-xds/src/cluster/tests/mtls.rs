//! Unit tests of mutual TLS on outbound clusters, from snapshots: auto mTLS (matches, SNI,
//! SANs, ALPN), DestinationRule `ISTIO_MUTUAL` / `DISABLE` and their precedence, and the
//! services auto mTLS leaves alone.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::tls_parameters::TlsProtocol;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::google::protobuf::value::Kind;
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};
use prost::Message;

const MESH: &str = "
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}, {name: grpc, port: 9090}]
---
apiVersion: v1
kind: Pod
metadata: {name: r1, namespace: default, labels: {app: reviews, version: v1, security.istio.io/tlsMode: istio}}
spec: {serviceAccountName: reviews, containers: [{name: c, image: i}]}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: r2, namespace: default, labels: {app: reviews, version: v2}}
spec: {serviceAccountName: legacy, containers: [{name: c, image: i}]}
status: {podIP: 10.0.0.2}
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: default}
spec:
  selector: {app: nothing}
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.org]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: passthrough, namespace: default}
spec:
  hosts: [any.internal]
  location: MESH_INTERNAL
  resolution: NONE
  ports: [{number: 7000, name: tcp, protocol: TCP}]
";

fn snapshot(extra: &str) -> MeshSnapshot {
    let out = mast_config::load_str(&format!("{MESH}{extra}"), "t.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
    MeshSnapshot::build(&out.resources, SnapshotOptions::default(), 1)
}

fn client() -> ProxyNode {
    ProxyNode::parse(
        "sidecar~10.0.0.9~client.default~default.svc.cluster.local",
        &serde_json::json!({"NAMESPACE": "default"}),
    )
    .unwrap()
}

fn cluster(snap: &MeshSnapshot, name: &str) -> Cluster {
    super::super::clusters(snap, &client())
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no cluster {name}"))
}

fn tls_of(ts: &TransportSocket) -> UpstreamTlsContext {
    assert_eq!(ts.name, "envoy.transport_sockets.tls");
    let Some(ConfigType::TypedConfig(any)) = &ts.config_type else {
        panic!("untyped")
    };
    UpstreamTlsContext::decode(any.value.as_slice()).unwrap()
}

/// The auto-mTLS context of a cluster, after checking the two matches.
fn auto_context(c: &Cluster) -> UpstreamTlsContext {
    assert!(c.transport_socket.is_none(), "auto mTLS uses matches only");
    let m = &c.transport_socket_matches;
    assert_eq!(m.len(), 2, "{}", c.name);
    assert_eq!(m[0].name, "tlsMode-istio");
    let fields = &m[0].r#match.as_ref().unwrap().fields;
    assert_eq!(fields.len(), 1);
    assert_eq!(
        fields["tlsMode"].kind,
        Some(Kind::StringValue("istio".into()))
    );
    assert_eq!(m[1].name, "tlsMode-disabled");
    assert!(m[1].r#match.as_ref().unwrap().fields.is_empty());
    assert_eq!(
        m[1].transport_socket.as_ref().unwrap().name,
        "envoy.transport_sockets.raw_buffer"
    );
    tls_of(m[0].transport_socket.as_ref().unwrap())
}

/// (SNI, ALPN, URI SANs) of a context, checking the SDS references and TLS versions.
fn facts(ctx: &UpstreamTlsContext) -> (String, Vec<String>, Vec<String>) {
    let common = ctx.common_tls_context.as_ref().unwrap();
    let params = common.tls_params.as_ref().unwrap();
    assert_eq!(
        (
            params.tls_minimum_protocol_version,
            params.tls_maximum_protocol_version
        ),
        (TlsProtocol::TlSv12 as i32, TlsProtocol::TlSv13 as i32)
    );
    assert_eq!(common.tls_certificate_sds_secret_configs.len(), 1);
    assert_eq!(
        common.tls_certificate_sds_secret_configs[0],
        crate::sds::default_secret()
    );
    let Some(ValidationContextType::CombinedValidationContext(combined)) =
        &common.validation_context_type
    else {
        panic!("not a combined validation context")
    };
    assert_eq!(
        combined.validation_context_sds_secret_config,
        Some(crate::sds::rootca_secret())
    );
    let sans = combined
        .default_validation_context
        .as_ref()
        .unwrap()
        .match_typed_subject_alt_names
        .iter()
        .map(|m| {
            assert_eq!(m.san_type, SanType::Uri as i32);
            match &m.matcher.as_ref().unwrap().match_pattern {
                Some(MatchPattern::Exact(s)) => s.clone(),
                other => panic!("{other:?}"),
            }
        })
        .collect();
    (ctx.sni.clone(), common.alpn_protocols.clone(), sans)
}

#[test]
fn auto_mtls_matches_sni_sans_and_alpn() {
    let snap = snapshot("");
    let sans = vec![
        "spiffe://cluster.local/ns/default/sa/legacy".to_string(),
        "spiffe://cluster.local/ns/default/sa/reviews".to_string(),
    ];
    let http = auto_context(&cluster(
        &snap,
        "outbound|9080||reviews.default.svc.cluster.local",
    ));
    assert_eq!(
        facts(&http),
        (
            "outbound_.9080_._.reviews.default.svc.cluster.local".into(),
            vec!["istio-peer-exchange".into(), "istio".into()],
            sans.clone()
        )
    );
    let grpc = auto_context(&cluster(
        &snap,
        "outbound|9090||reviews.default.svc.cluster.local",
    ));
    assert_eq!(
        facts(&grpc).1,
        ["istio-peer-exchange", "istio", "h2"],
        "HTTP/2 clusters add h2 (ALPNInMeshH2WithMxc)"
    );
    // No endpoints: no SAN check, the roots still are.
    let empty = auto_context(&cluster(
        &snap,
        "outbound|80||empty.default.svc.cluster.local",
    ));
    assert!(facts(&empty).2.is_empty());
}

#[test]
fn auto_mtls_skips_mesh_external_and_passthrough_services() {
    let snap = snapshot("");
    for name in ["outbound|80||httpbin.org", "outbound|7000||any.internal"] {
        let c = cluster(&snap, name);
        assert!(
            c.transport_socket_matches.is_empty() && c.transport_socket.is_none(),
            "{name}"
        );
    }
}

const DR: &str = "
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
";

#[test]
fn istio_mutual_is_always_tls_with_rule_overrides() {
    let snap = snapshot(&format!(
        "{DR}  trafficPolicy: {{tls: {{mode: ISTIO_MUTUAL}}}}\n  subsets:\n  - name: v1\n    labels: {{version: v1}}\n  - name: pinned\n    labels: {{version: v1}}\n    trafficPolicy: {{tls: {{mode: ISTIO_MUTUAL, sni: my.sni, subjectAltNames: [spiffe://cluster.local/ns/default/sa/reviews]}}}}\n"
    ));
    let c = cluster(&snap, "outbound|9080|v1|reviews.default.svc.cluster.local");
    assert!(c.transport_socket_matches.is_empty());
    let (sni, _, sans) = facts(&tls_of(c.transport_socket.as_ref().unwrap()));
    assert_eq!(sni, "outbound_.9080_.v1_.reviews.default.svc.cluster.local");
    assert_eq!(sans.len(), 2, "the service's accounts");
    let c = cluster(
        &snap,
        "outbound|9080|pinned|reviews.default.svc.cluster.local",
    );
    let (sni, _, sans) = facts(&tls_of(c.transport_socket.as_ref().unwrap()));
    assert_eq!(
        (sni.as_str(), sans.as_slice()),
        (
            "my.sni",
            &["spiffe://cluster.local/ns/default/sa/reviews".to_string()][..]
        )
    );
}

#[test]
fn disable_and_port_level_and_subset_precedence() {
    // Top level DISABLE; port 9090 overrides it with ISTIO_MUTUAL; subset v2's own tls
    // overrides both on every port.
    let snap = snapshot(&format!(
        "{DR}  trafficPolicy:\n    tls: {{mode: DISABLE}}\n    portLevelSettings:\n    - port: {{number: 9090}}\n      tls: {{mode: ISTIO_MUTUAL}}\n  subsets:\n  - name: v1\n    labels: {{version: v1}}\n  - name: v2\n    labels: {{version: v2}}\n    trafficPolicy: {{tls: {{mode: ISTIO_MUTUAL}}}}\n"
    ));
    let plain = |name: &str| {
        let c = cluster(&snap, name);
        c.transport_socket.is_none() && c.transport_socket_matches.is_empty()
    };
    let istio = |name: &str| {
        let c = cluster(&snap, name);
        c.transport_socket_matches.is_empty()
            && c.transport_socket
                .as_ref()
                .is_some_and(|ts| !facts(&tls_of(ts)).0.is_empty())
    };
    assert!(
        plain("outbound|9080||reviews.default.svc.cluster.local"),
        "DISABLE"
    );
    assert!(
        plain("outbound|9080|v1|reviews.default.svc.cluster.local"),
        "inherited"
    );
    assert!(
        istio("outbound|9090||reviews.default.svc.cluster.local"),
        "port level"
    );
    assert!(
        istio("outbound|9090|v1|reviews.default.svc.cluster.local"),
        "port level, subset"
    );
    assert!(
        istio("outbound|9080|v2|reviews.default.svc.cluster.local"),
        "subset"
    );
}

#[test]
fn rule_without_tls_keeps_auto_mtls_and_simple_replaces_it() {
    let snap = snapshot(&format!(
        "{DR}  trafficPolicy: {{loadBalancer: {{simple: RANDOM}}}}\n  subsets:\n  - name: v1\n    labels: {{version: v1}}\n    trafficPolicy: {{tls: {{mode: SIMPLE}}}}\n"
    ));
    auto_context(&cluster(
        &snap,
        "outbound|9080||reviews.default.svc.cluster.local",
    ));
    let c = cluster(&snap, "outbound|9080|v1|reviews.default.svc.cluster.local");
    assert!(c.transport_socket_matches.is_empty());
    let ctx = tls_of(c.transport_socket.as_ref().unwrap());
    assert!(
        ctx.common_tls_context
            .unwrap()
            .tls_certificate_sds_secret_configs
            .is_empty(),
        "SIMPLE: no workload certificate"
    );
}

#[test]
fn proxy_protocol_wraps_every_match() {
    let snap = snapshot(&format!(
        "{DR}  trafficPolicy: {{proxyProtocol: {{version: V2}}}}\n"
    ));
    let c = cluster(&snap, "outbound|9080||reviews.default.svc.cluster.local");
    let names: Vec<&str> = c
        .transport_socket_matches
        .iter()
        .map(|m| m.transport_socket.as_ref().unwrap().name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "envoy.transport_sockets.upstream_proxy_protocol",
            "envoy.transport_sockets.upstream_proxy_protocol"
        ]
    );
}
