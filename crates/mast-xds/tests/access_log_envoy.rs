//! Real Envoy accepts what mastd generates with an access log configured
//! (`SnapshotOptions.access_log`, Istio's `meshConfig.accessLogFile`): an
//! `envoy.access_loggers.file` entry on every HTTP connection manager and `tcp_proxy`, TEXT
//! (Istio's default and a custom format) and JSON (Istio's default keys and a custom object),
//! on sidecars in both capture modes and on a gateway. `envoy --mode validate` on a binary
//! bootstrap (see `support`); skipped with a message when no Envoy binary is found.

mod support;

use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use mast_model::snapshot::{AccessLogEncoding, AccessLogOptions};
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};
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
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
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
";

fn snapshot(access_log: AccessLogOptions) -> MeshSnapshot {
    let out = mast_config::load_str(MESH, "mesh.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
    let options = SnapshotOptions {
        access_log: Some(access_log),
        ..SnapshotOptions::default()
    };
    MeshSnapshot::build(&out.resources, options, 1)
}

fn settings() -> Vec<(&'static str, AccessLogOptions)> {
    let with = |encoding, format: &str| AccessLogOptions {
        path: "/dev/stdout".into(),
        encoding,
        format: format.into(),
    };
    vec![
        ("text", with(AccessLogEncoding::Text, "")),
        (
            "text-custom",
            with(
                AccessLogEncoding::Text,
                "%RESPONSE_CODE% %UPSTREAM_CLUSTER%",
            ),
        ),
        ("json", with(AccessLogEncoding::Json, "")),
        (
            "json-custom",
            with(
                AccessLogEncoding::Json,
                r#"{"code":"%RESPONSE_CODE%","peer":{"addr":"%DOWNSTREAM_REMOTE_ADDRESS%"}}"#,
            ),
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
            "MAST_OUTBOUND_PORT": "15101", "MAST_INBOUND_PORTS": "9080=15106,9100=15108"}),
    )
    .expect("ports node");
    let gateway = ProxyNode::parse(
        "router~10.0.0.20~ingress-1.default~default.svc.cluster.local",
        &json!({"NAMESPACE": "default", "LABELS": {"istio": "ingressgateway"}}),
    )
    .expect("router node");
    vec![
        ("iptables", iptables),
        ("ports", ports),
        ("gateway", gateway),
    ]
}

/// How many HCMs and `tcp_proxy`s of `listeners` carry an access log, and how many there are.
fn logged(listeners: &[Listener]) -> (usize, usize) {
    let (mut with, mut all) = (0, 0);
    let chains = listeners
        .iter()
        .flat_map(|l| l.filter_chains.iter().chain(&l.default_filter_chain));
    for f in chains.flat_map(|c| &c.filters) {
        let Some(ConfigType::TypedConfig(any)) = &f.config_type else {
            continue;
        };
        let n = if any.type_url == HttpConnectionManager::type_url() {
            HttpConnectionManager::decode(any.value.as_slice())
                .expect("HCM")
                .access_log
                .len()
        } else if any.type_url == TcpProxy::type_url() {
            TcpProxy::decode(any.value.as_slice())
                .expect("tcp_proxy")
                .access_log
                .len()
        } else {
            continue;
        };
        all += 1;
        with += usize::from(n == 1);
    }
    (with, all)
}

#[test]
fn envoy_accepts_access_logs_on_every_proxy_kind() {
    for (setting, options) in settings() {
        let snap = snapshot(options);
        for (kind, proxy) in proxies() {
            let label = format!("access-log-{setting}-{kind}");
            let res = support::Resources::generated(&snap, &proxy);
            let (with, all) = logged(&res.listeners);
            assert!(
                all >= 3 && with == all,
                "{label}: {with} of {all} filters log"
            );
            // No deprecated field in the listeners (routes carry Istio's deprecated
            // `max_stream_duration` and are checked apart, in rds_envoy.rs).
            let listeners_only = support::Resources {
                routes: Vec::new(),
                ..res.clone()
            };
            support::assert_envoy_accepts_current(&label, &listeners_only);
        }
    }
}

#[test]
fn the_check_is_real_a_bad_format_is_refused() {
    // An unknown command operator makes Envoy refuse the listener.
    let options = AccessLogOptions {
        path: "/dev/stdout".into(),
        encoding: AccessLogEncoding::Text,
        format: "%NO_SUCH_OPERATOR%".into(),
    };
    let (_, proxy) = proxies().remove(0);
    let mut res = support::Resources::generated(&snapshot(options), &proxy);
    res.routes.clear();
    let label = "access-log-bad-format";
    match support::validate(label, &res) {
        Ok(support::Validation::Skipped(why)) => eprintln!("SKIPPED: {why}"),
        Ok(support::Validation::Passed(out)) => {
            panic!("Envoy accepted an unknown access log operator: {out}")
        }
        Err(e) => {
            assert!(e.contains("NO_SUCH_OPERATOR"), "{e}");
            support::remove_kept(label);
        }
    }
}
