//! Mutual TLS output is accepted by real Envoy (`envoy --mode validate`, see `tests/support`):
//! auto-mTLS transport socket matches, `ISTIO_MUTUAL` clusters, `tlsMode` endpoint metadata,
//! and inbound listeners with mTLS chains for every PeerAuthentication mode, in both capture
//! modes, with the static `sds-grpc` cluster their SDS references name. Skipped, with a
//! message, when no Envoy binary is found.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};
use serde_json::json;

const MESH: &str = "
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}, {name: grpc, port: 81, targetPort: 8081}, {name: tcp, port: 90, targetPort: 9090}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: default, labels: {app: web, version: v1, security.istio.io/tlsMode: istio}}
spec: {serviceAccountName: web, containers: [{name: c, image: i}]}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, namespace: default, labels: {app: web, version: v2}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 10.0.0.2}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: default}
spec:
  host: web
  trafficPolicy:
    portLevelSettings:
    - port: {number: 90}
      tls: {mode: ISTIO_MUTUAL, sni: web.example}
  subsets:
  - {name: v1, labels: {version: v1}}
  - name: v2
    labels: {version: v2}
    trafficPolicy: {tls: {mode: DISABLE}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.org]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
";

fn snapshot(extra: &str) -> MeshSnapshot {
    let out = mast_config::load_str(&format!("{MESH}{extra}"), "t.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
    MeshSnapshot::build(&out.resources, SnapshotOptions::default(), 1)
}

fn iptables() -> ProxyNode {
    ProxyNode::parse(
        "sidecar~10.0.0.1~web-1.default~default.svc.cluster.local",
        &json!({"NAMESPACE": "default", "LABELS": {"app": "web"}, "SERVICE_ACCOUNT": "web"}),
    )
    .unwrap()
}

fn ports() -> ProxyNode {
    ProxyNode::parse(
        "sidecar~127.0.0.1~web-1.default~default.svc.cluster.local",
        &json!({"NAMESPACE": "default", "LABELS": {"app": "web"}, "WORKLOAD_NAME": "web-1",
            "MAST_CAPTURE_MODE": "ports", "MAST_OUTBOUND_PORT": "15101",
            "MAST_INBOUND_PORTS": "8080=15106,8081=15107,9090=15108"}),
    )
    .unwrap()
}

fn policy(spec: &str) -> String {
    format!(
        "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\n\
         metadata: {{name: p, namespace: default}}\nspec: {spec}\n"
    )
}

/// Everything generated for `proxy`, plus the `sds-grpc` cluster of the agent's bootstrap.
fn resources(snap: &MeshSnapshot, proxy: &ProxyNode) -> support::Resources {
    let mut res = support::Resources::generated(snap, proxy);
    res.clusters
        .push(mast_xds::sds::sds_cluster("/tmp/mast-agent/sds.sock"));
    res
}

#[test]
fn envoy_accepts_auto_mtls_clusters_and_endpoint_metadata() {
    let snap = snapshot("");
    let res = resources(&snap, &iptables());
    let matches = res
        .clusters
        .iter()
        .filter(|c| !c.transport_socket_matches.is_empty())
        .count();
    assert!(matches >= 3, "auto mTLS on web's clusters");
    assert!(
        res.endpoints
            .iter()
            .flat_map(|a| &a.endpoints)
            .flat_map(|g| &g.lb_endpoints)
            .any(|e| e.metadata.is_some()),
        "tlsMode metadata on web-1"
    );
    support::assert_envoy_accepts_current("mtls-clusters", &res);
}

#[test]
fn envoy_accepts_inbound_mtls_chains_in_every_mode() {
    let modes = [
        String::new(),
        policy("{mtls: {mode: STRICT}}"),
        policy("{mtls: {mode: DISABLE}}"),
        policy(
            "{selector: {matchLabels: {app: web}}, mtls: {mode: STRICT}, portLevelMtls: {\"9090\": {mode: PERMISSIVE}, \"8081\": {mode: DISABLE}}}",
        ),
    ];
    for (i, extra) in modes.iter().enumerate() {
        let snap = snapshot(extra);
        for (label, proxy) in [("iptables", iptables()), ("ports", ports())] {
            let res = resources(&snap, &proxy);
            support::assert_envoy_accepts_current(&format!("mtls-inbound-{i}-{label}"), &res);
        }
    }
}
