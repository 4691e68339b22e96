//! mastd's real output: every route table `mast_xds::route::routes` generates for a rich mesh
//! (every HTTP feature, both capture modes, both outbound policies) converts without error,
//! and requests route where mastd meant them to go.

use mast_config::Level;
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};
use serde_json::json;

use super::*;
use crate::route::{Abort, Preflight, UpstreamFailure};

/// Services, ServiceEntries, DestinationRules and VirtualServices using every feature mastd
/// translates: the `RICH` mesh that `mast-xds/tests/rds_envoy.rs` validates with Envoy, read
/// from that file so the two stay one.
fn rich() -> &'static str {
    let source = include_str!("../../../../mast-xds/tests/rds_envoy.rs");
    let start = source
        .find("const RICH: &str = r#\"")
        .map(|i| i + 22)
        .expect("RICH");
    let end = start + source[start..].find("\"#;").expect("end of RICH");
    &source[start..end]
}

fn snapshot() -> MeshSnapshot {
    let out = mast_config::load_str(rich(), "rich.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "load: {:?}", out.diagnostics);
    let errors: Vec<_> = mast_config::validate::validate_all(&out.resources)
        .into_iter()
        .filter(|d| d.level == Level::Error)
        .collect();
    assert!(errors.is_empty(), "validation: {errors:?}");
    MeshSnapshot::build(&out.resources, SnapshotOptions::default(), 1)
}

/// A sidecar in `ns` labelled `app: client`, with extra node metadata.
fn proxy(ns: &str, extra: serde_json::Value) -> ProxyNode {
    let mut md = json!({"NAMESPACE": ns, "LABELS": {"app": "client"}});
    if let (Some(m), Some(e)) = (md.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    ProxyNode::parse(
        &format!("sidecar~10.1.0.9~client.{ns}~{ns}.svc.cluster.local"),
        &md,
    )
    .expect("node")
}

/// Every table for every proxy flavour, converted.
fn all_tables() -> Vec<(String, RouteTable)> {
    let snap = snapshot();
    let flavours = [
        ("iptables", proxy("default", json!({}))),
        ("iptables-other-ns", proxy("other", json!({}))),
        (
            "ports",
            proxy(
                "default",
                json!({"MAST_CAPTURE_MODE": "ports", "MAST_OUTBOUND_PORT": "15101"}),
            ),
        ),
    ];
    let mut out = Vec::new();
    for (flavour, p) in flavours {
        let tables = mast_xds::route::routes(&snap, &p);
        assert!(!tables.is_empty(), "{flavour}: no tables");
        for rc in tables {
            let t = RouteTable::from_proto(&rc).unwrap_or_else(|e| panic!("{flavour}: {e}"));
            assert_eq!(t.name(), rc.name);
            assert_eq!(t.max_direct_response_body_size(), 1024 * 1024);
            out.push((flavour.to_owned(), t));
        }
    }
    out
}

fn find<'a>(tables: &'a [(String, RouteTable)], flavour: &str, name: &str) -> &'a RouteTable {
    tables
        .iter()
        .find(|(f, t)| f == flavour && t.name() == name)
        .map(|(_, t)| t)
        .unwrap_or_else(|| panic!("no table {name} for {flavour}"))
}

fn cluster_of(t: &RouteTable, req: &Req) -> String {
    let r = t
        .select(&req.head())
        .unwrap_or_else(|| panic!("no route for {} {}", req.authority, req.path));
    forward(r).pick(0).cluster.clone()
}

#[test]
fn every_generated_table_converts() {
    let tables = all_tables();
    assert!(tables.len() >= 5, "{} tables", tables.len());
}

#[test]
fn generated_tables_route_as_mastd_means() {
    let tables = all_tables();
    let t9080 = find(&tables, "iptables", "9080");
    // The catch-all rule of the reviews VirtualService splits v1/v2 1:3.
    let r = t9080.select(&Req::get("reviews", "/").head()).unwrap();
    assert_eq!(r.name, "catch-all");
    assert_eq!(
        forward(r).clusters().collect::<Vec<_>>(),
        [
            "outbound|9080|v1|reviews.default.svc.cluster.local",
            "outbound|9080|v2|reviews.default.svc.cluster.local"
        ]
    );
    assert_eq!(
        forward(r).pick(3).cluster,
        "outbound|9080|v2|reviews.default.svc.cluster.local"
    );
    let r = t9080
        .select(&Req::get("reviews:9080", "/api/x?y").head())
        .unwrap();
    assert_eq!(r.name, "rewrite");
    assert_eq!(r.rewritten_path("/api/x?y").as_deref(), Some("/x?y"));
    let f = forward(r);
    assert_eq!(f.host_rewrite.as_ref().unwrap(), "backend.internal");
    assert_eq!(f.timeout, Some(std::time::Duration::from_millis(2500)));
    let retry = f.retry.as_ref().unwrap();
    assert_eq!(retry.num_retries, 5);
    assert!(retry.retry_on_failure(UpstreamFailure::Reset));
    // Direct responses, faults and CORS.
    match &t9080
        .select(&Req::get("reviews", "/teapot").head())
        .unwrap()
        .action
    {
        Action::Direct(d) => assert_eq!(d.status.as_u16(), 418),
        other => panic!("{other:?}"),
    }
    let grpc_fault = t9080
        .select(&Req::get("reviews", "/grpc-fault").head())
        .unwrap();
    assert_eq!(
        grpc_fault.fault.as_ref().unwrap().abort(),
        Some(Abort::Grpc(14))
    );
    let cors_route = t9080.select(&Req::get("reviews", "/cors").head()).unwrap();
    let pre = Req::get("reviews", "/cors")
        .header("origin", "https://a.example")
        .header("access-control-request-method", "GET")
        .headers;
    assert!(matches!(
        cors_route
            .cors
            .as_ref()
            .unwrap()
            .preflight(&http::Method::OPTIONS, &pre),
        Preflight::Respond(..)
    ));
    // A service without a VirtualService gets the default route with Istio's retry policy.
    let t80 = find(&tables, "iptables", "80");
    let r = t80.select(&Req::get("api.other:80", "/").head()).unwrap();
    assert_eq!(r.name, "default");
    assert_eq!(forward(r).retry.as_ref().unwrap().num_retries, 2);
    // Unknown hosts: the catch-all passes through.
    assert_eq!(
        cluster_of(t80, &Req::get("unknown.example", "/")),
        "PassthroughCluster"
    );
}

#[test]
fn reviews_routes_to_its_service_without_a_virtual_service() {
    // The bare service, as a user of the brief's example expects: http://reviews/ →
    // outbound|9080||reviews.default.svc.cluster.local.
    let yaml = "
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 9080}]
  selector: {app: reviews}
";
    let out = mast_config::load_str(yaml, "plain.yaml", &Default::default());
    let snap = MeshSnapshot::build(&out.resources, SnapshotOptions::default(), 1);
    for (flavour, p) in [
        ("iptables", proxy("default", json!({}))),
        (
            "ports",
            proxy(
                "default",
                json!({"MAST_CAPTURE_MODE": "ports", "MAST_OUTBOUND_PORT": "15101"}),
            ),
        ),
    ] {
        let tables: Vec<RouteTable> = mast_xds::route::routes(&snap, &p)
            .iter()
            .map(|rc| RouteTable::from_proto(rc).unwrap_or_else(|e| panic!("{flavour}: {e}")))
            .collect();
        let t = &tables[0];
        let want = "outbound|9080||reviews.default.svc.cluster.local";
        assert_eq!(
            cluster_of(t, &Req::get("reviews:9080", "/")),
            want,
            "{flavour}"
        );
        assert_eq!(
            cluster_of(t, &Req::get("reviews", "/")),
            want,
            "{flavour}: only HTTP port"
        );
        assert_eq!(
            cluster_of(t, &Req::get("10.96.0.10:9080", "/x")),
            want,
            "{flavour}"
        );
        if flavour == "ports" {
            let r = t.select(&Req::connect("reviews:9080").head()).unwrap();
            assert!(forward(r).connect, "CONNECT terminates the tunnel");
            assert_eq!(forward(r).pick(0).cluster, want);
            let other = t.select(&Req::connect("example.org:443").head()).unwrap();
            assert_eq!(forward(other).pick(0).cluster, "ForwardProxyCluster");
        }
    }
}
