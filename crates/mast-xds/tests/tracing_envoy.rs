//! Real Envoy accepts what mastd generates when tracing is configured
//! (`SnapshotOptions.tracing`): every HTTP connection manager's `tracing` (Zipkin and
//! OpenTelemetry providers, Istio's tags) together with the collector cluster (`zipkin` /
//! `opentelemetry`, STATIC for an IP, STRICT_DNS for a name), on sidecars in both capture
//! modes. `envoy --mode validate` on a binary bootstrap (see `support`); skipped with a
//! message when no Envoy binary is found.

mod support;

use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions, TraceCollector, TracingOptions};
use prost::{Message, Name};
use serde_json::json;

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

fn snapshot(tracing: TracingOptions) -> MeshSnapshot {
    let out = mast_config::load_str(MESH, "mesh.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
    let options = SnapshotOptions {
        tracing: Some(tracing),
        ..SnapshotOptions::default()
    };
    MeshSnapshot::build(&out.resources, options, 1)
}

fn collectors() -> Vec<(&'static str, TracingOptions)> {
    let zipkin = |address: &str| TraceCollector::Zipkin {
        address: address.into(),
        path: "/api/v2/spans".into(),
    };
    vec![
        (
            "zipkin-ip",
            TracingOptions {
                sampling_bp: 10_000,
                collector: zipkin("127.0.0.1:20001"),
            },
        ),
        (
            "zipkin-dns",
            TracingOptions {
                sampling_bp: 100,
                collector: zipkin("zipkin.istio-system:9411"),
            },
        ),
        (
            "otlp-dns",
            TracingOptions {
                sampling_bp: 2_500,
                collector: TraceCollector::Otlp {
                    address: "otel-collector.observability:4318".into(),
                    path: "/v1/traces".into(),
                },
            },
        ),
    ]
}

fn proxies() -> Vec<(&'static str, ProxyNode)> {
    let iptables = ProxyNode::parse(
        "sidecar~10.0.0.9~reviews-v1.default~default.svc.cluster.local",
        &json!({"NAMESPACE": "default", "LABELS": {"app": "reviews", "version": "v1"}}),
    )
    .expect("iptables node");
    let ports = ProxyNode::parse(
        "sidecar~127.0.0.1~reviews-v1.default~default.svc.cluster.local",
        &json!({"NAMESPACE": "default", "LABELS": {"app": "reviews"}, "MAST_CAPTURE_MODE": "ports",
            "MAST_OUTBOUND_PORT": "15101", "MAST_INBOUND_PORTS": "9080=15106,9091=15107,9100=15108"}),
    )
    .expect("ports node");
    vec![("iptables", iptables), ("ports", ports)]
}

/// How many of `res`'s HTTP connection managers carry `tracing`, and how many there are.
fn traced_hcms(res: &support::Resources) -> (usize, usize) {
    let mut traced = 0;
    let mut all = 0;
    for l in &res.listeners {
        for c in l.filter_chains.iter().chain(&l.default_filter_chain) {
            for f in &c.filters {
                if let Some(ConfigType::TypedConfig(any)) = &f.config_type
                    && any.type_url == HttpConnectionManager::type_url()
                {
                    all += 1;
                    let hcm =
                        HttpConnectionManager::decode(any.value.as_slice()).expect("HCM decodes");
                    traced += usize::from(hcm.tracing.is_some());
                }
            }
        }
    }
    (traced, all)
}

#[test]
fn envoy_accepts_traced_sidecars() {
    for (collector, options) in collectors() {
        let snap = snapshot(options);
        for (mode, proxy) in proxies() {
            let label = format!("tracing-{collector}-{mode}");
            let res = support::Resources::generated(&snap, &proxy);
            let (traced, all) = traced_hcms(&res);
            assert!(
                all >= 3 && traced == all,
                "{label}: {traced} of {all} HCMs traced"
            );
            let wanted = if collector.starts_with("otlp") {
                "opentelemetry"
            } else {
                "zipkin"
            };
            assert!(
                res.clusters.iter().any(|c| c.name == wanted),
                "{label}: no {wanted} cluster"
            );
            // No deprecated field in the listeners and clusters (routes carry Istio's
            // deprecated `max_stream_duration` and are checked apart, in rds_envoy.rs).
            let without_routes = support::Resources {
                routes: Vec::new(),
                ..res.clone()
            };
            support::assert_envoy_accepts_current(&label, &without_routes);
            support::assert_envoy_accepts(&format!("{label}-all"), &res);
        }
    }
}

#[test]
fn envoy_refuses_a_tracer_without_its_cluster() {
    // The check is real: the same listeners without the collector cluster are refused.
    let (_, options) = collectors().remove(0);
    let (_, proxy) = proxies().remove(0);
    let mut res = support::Resources::generated(&snapshot(options), &proxy);
    res.routes.clear();
    res.clusters.retain(|c| c.name != "zipkin");
    let label = "tracing-no-cluster";
    match support::validate(label, &res) {
        Ok(support::Validation::Skipped(why)) => eprintln!("SKIPPED: {why}"),
        Ok(support::Validation::Passed(out)) => {
            panic!("Envoy accepted a zipkin tracer with no zipkin cluster: {out}")
        }
        Err(e) => {
            assert!(e.contains("unknown cluster 'zipkin'"), "{e}");
            support::remove_kept(label);
        }
    }
}
