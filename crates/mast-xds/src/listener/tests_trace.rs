//! Unit tests: HCM `tracing` on every HTTP connection manager, the provider configs, the
//! tags, and nothing at all when tracing is off.

use envoy_types::pb::envoy::config::core::v3::http_uri::HttpUpstreamType;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::trace::v3::tracing::http::ConfigType as ProviderConfig;
use envoy_types::pb::envoy::config::trace::v3::zipkin_config::CollectorEndpointVersion;
use envoy_types::pb::envoy::config::trace::v3::{OpenTelemetryConfig, ZipkinConfig};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::r#type::tracing::v3::custom_tag::Type as TagType;
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions, TraceCollector, TracingOptions};
use prost::{Message, Name};
use serde_json::json;

use super::*;
use crate::listener::listeners;

const MESH: &str = "\
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  clusterIP: 10.96.0.10
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080, targetPort: 9080}
  - {name: grpc-api, port: 9090, targetPort: 9091}
  - {name: tcp-admin, port: 9100, targetPort: 9100}
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: default}
spec:
  clusterIP: 10.96.0.11
  selector: {app: ratings}
  ports:
  - {name: http, port: 8080}
";

fn snapshot(tracing: Option<TracingOptions>) -> MeshSnapshot {
    let out = mast_config::load_str(MESH, "mesh.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
    let options = SnapshotOptions {
        tracing,
        ..SnapshotOptions::default()
    };
    MeshSnapshot::build(&out.resources, options, 1)
}

fn zipkin(bp: u32) -> TracingOptions {
    TracingOptions {
        sampling_bp: bp,
        collector: TraceCollector::Zipkin {
            address: "127.0.0.1:20001".into(),
            path: "/api/v2/spans".into(),
        },
    }
}

fn otlp() -> TracingOptions {
    TracingOptions {
        sampling_bp: 10_000,
        collector: TraceCollector::Otlp {
            address: "otel.observability:4318".into(),
            path: "/v1/traces".into(),
        },
    }
}

fn iptables_proxy() -> ProxyNode {
    ProxyNode::parse(
        "sidecar~10.0.0.9~reviews-v2.default~default.svc.cluster.local",
        &json!({"NAMESPACE": "default", "LABELS": {"app": "reviews", "version": "v2"},
            "MESH_ID": "cluster.local", "CLUSTER_ID": "Kubernetes"}),
    )
    .unwrap()
}

fn ports_proxy() -> ProxyNode {
    ProxyNode::parse(
        "sidecar~127.0.0.1~reviews-v2.default~default.svc.cluster.local",
        &json!({"NAMESPACE": "default", "LABELS": {"app": "reviews"}, "MAST_CAPTURE_MODE": "ports",
            "MAST_OUTBOUND_PORT": "15101", "MAST_INBOUND_PORTS": "9080=15106,9091=15107,9100=15108"}),
    )
    .unwrap()
}

/// (listener name, HCM) for every HTTP connection manager of `listeners`.
fn hcms(listeners: &[Listener]) -> Vec<(String, HttpConnectionManager)> {
    let mut out = Vec::new();
    for l in listeners {
        for c in l.filter_chains.iter().chain(&l.default_filter_chain) {
            for f in &c.filters {
                if let Some(ConfigType::TypedConfig(any)) = &f.config_type
                    && any.type_url == HttpConnectionManager::type_url()
                {
                    let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
                    out.push((l.name.clone(), hcm));
                }
            }
        }
    }
    out
}

fn tags(t: &Tracing) -> Vec<(String, String)> {
    t.custom_tags
        .iter()
        .map(|c| match &c.r#type {
            Some(TagType::Literal(l)) => (c.tag.clone(), l.value.clone()),
            other => panic!("{}: not a literal: {other:?}", c.tag),
        })
        .collect()
}

fn decode_provider<T: Message + Name + Default>(t: &Tracing, name: &str) -> T {
    let p = t.provider.as_ref().expect("a provider");
    assert_eq!(p.name, name);
    let Some(ProviderConfig::TypedConfig(any)) = &p.config_type else {
        panic!("typed config")
    };
    assert_eq!(any.type_url, T::type_url());
    T::decode(any.value.as_slice()).unwrap()
}

#[test]
fn every_hcm_gets_zipkin_tracing_in_iptables_capture() {
    let snap = snapshot(Some(zipkin(10_000)));
    let proxy = iptables_proxy();
    let all = hcms(&listeners(&snap, &proxy));
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"0.0.0.0_9080") && names.contains(&"virtualInbound"),
        "outbound and inbound HCMs: {names:?}"
    );
    for (name, hcm) in &all {
        let t = hcm
            .tracing
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no tracing"));
        assert_eq!(t.random_sampling.as_ref().unwrap().value, 100.0);
        assert_eq!(t.client_sampling.as_ref().unwrap().value, 100.0);
        assert_eq!(t.overall_sampling.as_ref().unwrap().value, 100.0);
        let z: ZipkinConfig = decode_provider(t, ZIPKIN_PROVIDER);
        assert_eq!(z.collector_cluster, "zipkin");
        assert_eq!(z.collector_endpoint, "/api/v2/spans");
        assert_eq!(
            z.collector_endpoint_version,
            CollectorEndpointVersion::HttpJson as i32
        );
        assert!(z.trace_id_128bit);
        assert_eq!(z.shared_span_context, bool_value(false));
        assert_eq!(z.collector_hostname, "127.0.0.1");
        let namespace_wide = [
            ("istio.cluster_id", "Kubernetes"),
            ("istio.mesh_id", "cluster.local"),
            ("istio.namespace", "default"),
        ];
        let mut all_tags = vec![
            ("istio.canonical_revision", "v2"),
            ("istio.canonical_service", "reviews"),
        ];
        all_tags.extend(namespace_wide);
        // The shared outbound listeners (generated once per namespace) carry the
        // namespace-wide tags; the workload's own inbound listener carries all of them.
        let want: Vec<(String, String)> = if name == "virtualInbound" {
            all_tags.iter()
        } else {
            namespace_wide.iter()
        }
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
        assert_eq!(tags(t).to_vec(), want, "{name}");
    }
}

#[test]
fn every_hcm_gets_opentelemetry_tracing_in_ports_capture() {
    let snap = snapshot(Some(otlp()));
    let proxy = ports_proxy();
    let all = hcms(&listeners(&snap, &proxy));
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"mast_outbound") && names.contains(&"mast_inbound_9080"),
        "{names:?}"
    );
    for (name, hcm) in &all {
        let t = hcm
            .tracing
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no tracing"));
        let o: OpenTelemetryConfig = decode_provider(t, OPENTELEMETRY_PROVIDER);
        assert_eq!(o.service_name, "reviews-v2.default");
        let uri = o.http_service.unwrap().http_uri.unwrap();
        assert_eq!(uri.uri, "http://otel.observability:4318/v1/traces");
        assert_eq!(
            uri.http_upstream_type,
            Some(HttpUpstreamType::Cluster("opentelemetry".into()))
        );
        assert_eq!(uri.timeout.unwrap().seconds, 5);
        assert!(o.grpc_service.is_none());
        let t = tags(t);
        assert!(t.contains(&("istio.canonical_revision".into(), "latest".into())));
        assert!(t.contains(&("istio.mesh_id".into(), "unknown".into())));
    }
}

#[test]
fn sampling_is_a_percentage_of_basis_points() {
    let snap = snapshot(Some(zipkin(150)));
    let all = hcms(&listeners(&snap, &iptables_proxy()));
    assert!(!all.is_empty());
    for (_, hcm) in all {
        assert_eq!(hcm.tracing.unwrap().random_sampling.unwrap().value, 1.5);
    }
}

#[test]
fn no_tracing_changes_nothing() {
    let proxy = iptables_proxy();
    let off = listeners(&snapshot(None), &proxy);
    assert!(hcms(&off).iter().all(|(_, h)| h.tracing.is_none()));
    let mut on = listeners(&snapshot(Some(zipkin(100))), &proxy);
    assert_ne!(on, off);
    // Tracing is the only difference.
    for l in &mut on {
        for c in l
            .filter_chains
            .iter_mut()
            .chain(l.default_filter_chain.as_mut())
        {
            for f in &mut c.filters {
                if let Some(ConfigType::TypedConfig(any)) = f.config_type.as_mut()
                    && any.type_url == HttpConnectionManager::type_url()
                {
                    let mut hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
                    hcm.tracing = None;
                    *any = pack_any(hcm);
                }
            }
        }
    }
    assert_eq!(on, off);
}

#[test]
fn an_unusable_collector_address_gives_no_tracing() {
    let bad = TracingOptions {
        sampling_bp: 100,
        collector: TraceCollector::Zipkin {
            address: "no-port".into(),
            path: "/api/v2/spans".into(),
        },
    };
    let all = hcms(&listeners(&snapshot(Some(bad)), &iptables_proxy()));
    assert!(all.iter().all(|(_, h)| h.tracing.is_none()));
}

#[test]
fn identity_falls_back_as_istio() {
    let proxy = ProxyNode::parse(
        "sidecar~10.0.0.1~client.prod~prod.svc.cluster.local",
        &json!({"LABELS": {"service.istio.io/canonical-name": "front",
            "service.istio.io/canonical-revision": "r7", "app": "ignored"}}),
    )
    .unwrap();
    let id = TraceIdentity::of(&proxy);
    assert_eq!(id.canonical_service, "front");
    assert_eq!(id.canonical_revision, "r7");
    assert_eq!(id.namespace, "prod");
    assert_eq!(id.service_name, "client.prod");
    assert_eq!(
        (id.cluster_id.as_str(), id.mesh_id.as_str()),
        ("unknown", "unknown")
    );
    let bare = ProxyNode::parse(
        "sidecar~10.0.0.1~client.prod~prod.svc.cluster.local",
        &json!({}),
    )
    .unwrap();
    assert_eq!(TraceIdentity::of(&bare).canonical_service, "client");
}

#[test]
fn share_key_splits_by_trace_identity_only_while_tracing() {
    let a = iptables_proxy();
    let b = ProxyNode::parse(
        "sidecar~10.0.0.10~ratings-v1.default~default.svc.cluster.local",
        &json!({"NAMESPACE": "default", "LABELS": {"app": "ratings"}}),
    )
    .unwrap();
    let off = snapshot(None);
    assert_eq!(crate::ShareKey::of(&off, &a), crate::ShareKey::of(&off, &b));
    // Zipkin: the shared part carries namespace-wide tags only, so workloads of one
    // namespace (and cluster) still share it.
    let b_same_cluster = ProxyNode::parse(
        "sidecar~10.0.0.10~ratings-v1.default~default.svc.cluster.local",
        &json!({"NAMESPACE": "default", "LABELS": {"app": "ratings"}, "CLUSTER_ID": a.metadata["CLUSTER_ID"], "MESH_ID": a.metadata["MESH_ID"]}),
    )
    .unwrap();
    let on = snapshot(Some(zipkin(100)));
    assert_eq!(
        crate::ShareKey::of(&on, &a),
        crate::ShareKey::of(&on, &b_same_cluster)
    );
    assert_ne!(crate::ShareKey::of(&on, &a), crate::ShareKey::of(&on, &b));
    // OpenTelemetry names the workload's service in the configuration: no sharing.
    let otel = snapshot(Some(otlp()));
    assert_ne!(
        crate::ShareKey::of(&otel, &a),
        crate::ShareKey::of(&otel, &b_same_cluster)
    );
    // Replicas of one workload still share.
    let a2 = ProxyNode::parse(
        "sidecar~10.0.0.11~reviews-v2.default~default.svc.cluster.local",
        &a.metadata,
    )
    .unwrap();
    assert_eq!(crate::ShareKey::of(&on, &a), crate::ShareKey::of(&on, &a2));
    // Ports capture shares no listener: tracing does not split its key.
    let ports_b = ProxyNode::parse(
        "sidecar~127.0.0.1~ratings-v1.default~default.svc.cluster.local",
        &json!({"NAMESPACE": "default", "LABELS": {"app": "ratings"}, "MAST_CAPTURE_MODE": "ports",
            "MAST_OUTBOUND_PORT": "15102"}),
    )
    .unwrap();
    assert_eq!(
        crate::ShareKey::of(&on, &ports_proxy()),
        crate::ShareKey::of(&on, &ports_b)
    );
}
