//! Unit tests: the access log on every HTTP connection manager and `tcp_proxy` mastd builds
//! (sidecars in both capture modes, catch-alls and blackhole chains, weighted `tcp_proxy`,
//! gateways of every server kind) when `SnapshotOptions.access_log` is set, and nowhere when
//! it is not; tracing still set alongside.

use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use mast_model::snapshot::AccessLogOptions;
use mast_model::{
    MeshSnapshot, OutboundPolicy, ProxyNode, SnapshotOptions, TraceCollector, TracingOptions,
};
use prost::{Message, Name};
use serde_json::json;

use super::access_log::{FILE_ACCESS_LOG, decode};
use super::{Telemetry, listeners};
use crate::share::Part;

const MESH: &str = "\
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  clusterIP: 10.96.0.10
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080, targetPort: 9080}
  - {name: tcp-admin, port: 9100, targetPort: 9100}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  clusterIP: 10.96.0.12
  selector: {app: db}
  ports:
  - {name: tcp, port: 5432}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports:
  - {name: https, port: 443}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: default}
spec:
  host: db
  subsets:
  - {name: a, labels: {v: a}}
  - {name: b, labels: {v: b}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db-split, namespace: default}
spec:
  hosts: [db]
  tcp:
  - route:
    - {destination: {host: db, subset: a}, weight: 80}
    - {destination: {host: db, subset: b}, weight: 20}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ['*']
  - port: {number: 15432, name: tcp, protocol: TCP}
    hosts: ['*']
  - port: {number: 15443, name: tls, protocol: TLS}
    hosts: ['*.local']
    tls: {mode: AUTO_PASSTHROUGH}
  - port: {number: 16443, name: tls-pass, protocol: TLS}
    hosts: ['web.example.com']
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge, namespace: default}
spec:
  hosts: ['*']
  gateways: [ingress]
  http:
  - route:
    - destination: {host: reviews, port: {number: 9080}}
  tcp:
  - match:
    - port: 15432
    route:
    - destination: {host: db, port: {number: 5432}}
  tls:
  - match:
    - port: 16443
      sniHosts: [web.example.com]
    route:
    - destination: {host: web, port: {number: 443}}
";

fn snapshot(access_log: Option<AccessLogOptions>, tracing: bool) -> MeshSnapshot {
    let out = mast_config::load_str(MESH, "mesh.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
    let tracing = tracing.then(|| TracingOptions {
        sampling_bp: 100,
        collector: TraceCollector::Zipkin {
            address: "127.0.0.1:9411".into(),
            path: "/api/v2/spans".into(),
        },
    });
    let options = SnapshotOptions {
        access_log,
        tracing,
        ..SnapshotOptions::default()
    };
    MeshSnapshot::build(&out.resources, options, 1)
}

fn proxies() -> Vec<(&'static str, ProxyNode)> {
    let parse = |id: &str, meta: serde_json::Value| ProxyNode::parse(id, &meta).unwrap();
    vec![
        (
            "iptables",
            parse(
                "sidecar~10.0.0.9~reviews-v1.default~default.svc.cluster.local",
                json!({"NAMESPACE": "default", "LABELS": {"app": "reviews"}}),
            ),
        ),
        (
            "ports",
            parse(
                "sidecar~127.0.0.1~reviews-v1.default~default.svc.cluster.local",
                json!({"NAMESPACE": "default", "LABELS": {"app": "reviews"},
                    "MAST_CAPTURE_MODE": "ports", "MAST_OUTBOUND_PORT": "15101",
                    "MAST_INBOUND_PORTS": "9080=15106,9100=15108"}),
            ),
        ),
        (
            "gateway",
            parse(
                "router~10.0.0.20~ingress-1.default~default.svc.cluster.local",
                json!({"NAMESPACE": "default", "LABELS": {"istio": "ingressgateway"}}),
            ),
        ),
    ]
}

/// One generated HCM or `tcp_proxy`: (kind and stat prefix, access log entries, traced).
type Seen = (
    String,
    Vec<envoy_types::pb::envoy::config::accesslog::v3::AccessLog>,
    bool,
);

fn filters(listeners: &[Listener]) -> Vec<Seen> {
    let chains = listeners
        .iter()
        .flat_map(|l| l.filter_chains.iter().chain(&l.default_filter_chain));
    let mut out = Vec::new();
    for f in chains.flat_map(|c| &c.filters) {
        let Some(ConfigType::TypedConfig(any)) = &f.config_type else {
            continue;
        };
        if any.type_url == HttpConnectionManager::type_url() {
            let h = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
            out.push((
                format!("hcm {}", h.stat_prefix),
                h.access_log,
                h.tracing.is_some(),
            ));
        } else if any.type_url == TcpProxy::type_url() {
            let t = TcpProxy::decode(any.value.as_slice()).unwrap();
            out.push((format!("tcp {}", t.stat_prefix), t.access_log, false));
        }
    }
    out
}

#[test]
fn every_hcm_and_tcp_proxy_logs_when_set() {
    let snap = snapshot(Some(AccessLogOptions::text("/dev/stdout")), false);
    for (kind, proxy) in proxies() {
        let seen = filters(&listeners(&snap, &proxy));
        assert!(seen.len() >= 4, "{kind}: {seen:?}");
        for (what, logs, _) in &seen {
            assert_eq!(
                logs.len(),
                1,
                "{kind}: {what} has {} access logs",
                logs.len()
            );
            assert_eq!(logs[0].name, FILE_ACCESS_LOG);
            assert_eq!(decode(&logs[0]).path, "/dev/stdout");
        }
        let names: Vec<&str> = seen.iter().map(|(w, _, _)| w.as_str()).collect();
        let wanted: &[&str] = match kind {
            "iptables" => &[
                "tcp PassthroughCluster",
                "tcp BlackHoleCluster",
                "tcp InboundPassthroughCluster",
                "tcp db-split.default",
                "tcp inbound|9100||",
                "hcm outbound_0.0.0.0_9080",
                "hcm inbound_0.0.0.0_9080",
            ],
            "ports" => &[
                "hcm outbound_mast_outbound",
                "hcm inbound_9080",
                "tcp inbound|9100||",
            ],
            _ => &["hcm outbound_0.0.0.0_8080", "tcp BlackHoleCluster"],
        };
        for w in wanted {
            assert!(names.contains(w), "{kind}: {w} missing in {names:?}");
        }
    }
}

#[test]
fn gateway_passthrough_and_tcp_servers_log() {
    let snap = snapshot(Some(AccessLogOptions::text("/dev/stdout")), false);
    let (_, gw) = proxies().remove(2);
    let seen = filters(&listeners(&snap, &gw));
    let tcp: Vec<&str> = seen
        .iter()
        .filter(|(w, _, _)| w.starts_with("tcp "))
        .map(|(w, _, _)| w.as_str())
        .collect();
    assert!(
        tcp.len() >= 3,
        "TCP, PASSTHROUGH and AUTO_PASSTHROUGH chains: {tcp:?}"
    );
    assert!(seen.iter().all(|(_, logs, _)| logs.len() == 1));
}

#[test]
fn nothing_logs_when_unset() {
    let snap = snapshot(None, false);
    for (kind, proxy) in proxies() {
        let seen = filters(&listeners(&snap, &proxy));
        assert!(!seen.is_empty());
        for (what, logs, _) in &seen {
            assert!(logs.is_empty(), "{kind}: {what} logs");
        }
    }
}

#[test]
fn tracing_and_access_log_together() {
    let snap = snapshot(Some(AccessLogOptions::text("/dev/stdout")), true);
    for (kind, proxy) in proxies() {
        for (what, logs, traced) in filters(&listeners(&snap, &proxy)) {
            assert_eq!(logs.len(), 1, "{kind}: {what}");
            assert_eq!(traced, what.starts_with("hcm "), "{kind}: {what}");
        }
    }
}

#[test]
fn registry_only_blackhole_logs() {
    let snap = snapshot(Some(AccessLogOptions::text("/dev/stdout")), false);
    let (_, proxy) = proxies().remove(0);
    let telemetry = Telemetry::of(&snap, &proxy, Part::Shared);
    let l = super::outbound::virtual_outbound(OutboundPolicy::RegistryOnly, &telemetry);
    let seen = filters(&[l]);
    assert!(seen.iter().any(|(w, _, _)| w == "tcp BlackHoleCluster"));
    assert!(!seen.iter().any(|(w, _, _)| w == "tcp PassthroughCluster"));
    assert!(seen.iter().all(|(_, logs, _)| logs.len() == 1), "{seen:?}");
}

#[test]
fn same_settings_same_bytes() {
    let json = AccessLogOptions {
        encoding: mast_model::snapshot::AccessLogEncoding::Json,
        ..AccessLogOptions::text("/dev/stdout")
    };
    let (_, proxy) = proxies().remove(0);
    let a = crate::generate(
        &snapshot(Some(json.clone()), false),
        &proxy,
        crate::LISTENER_TYPE,
    );
    for _ in 0..5 {
        let b = crate::generate(
            &snapshot(Some(json.clone()), false),
            &proxy,
            crate::LISTENER_TYPE,
        );
        assert_eq!(a, b);
    }
}
