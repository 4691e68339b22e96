//! mastd's real output: every route table `mast_xds::route::routes` generates for a rich mesh
//! (every HTTP feature, both capture modes, both outbound policies) converts without error,
//! and requests route where mastd meant them to go.

use mast_config::Level;
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};
use serde_json::json;

use super::*;
use crate::route::{Abort, Preflight, UpstreamFailure};

/// Services, ServiceEntries, DestinationRules and VirtualServices using every feature mastd
/// translates (the same mesh `mast-xds/tests/rds_envoy.rs` validates with Envoy).
const RICH: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 9080}]
  selector: {app: reviews}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.20
  ports:
  - {name: http, port: 80}
  - {name: http2-alt, port: 8080}
  - {name: grpc, port: 9090}
  - {name: tcp-db, port: 5432}
  selector: {app: web}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: other}
spec:
  clusterIP: fd00::20
  ports: [{name: http, port: 80}]
  selector: {app: api}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.example.com]
  addresses: [240.0.0.1]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: default}
spec:
  hosts: ['*.wild.example.com']
  location: MESH_EXTERNAL
  resolution: NONE
  ports: [{number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {consistentHash: {httpCookie: {name: sess, ttl: 0s, path: /}}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - name: v2
    labels: {version: v2}
    trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: default}
spec:
  host: web
  trafficPolicy:
    portLevelSettings:
    - port: {number: 8080}
      loadBalancer: {consistentHash: {useSourceIp: true}}
    - port: {number: 9090}
      loadBalancer: {consistentHash: {httpQueryParameterName: shard}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews, reviews.example.com]
  http:
  - name: matches
    match:
    - name: exact
      uri: {exact: /exact}
      headers: {x-a: {exact: a}, x-b: {prefix: b}, x-c: {regex: 'c[0-9]+'}, x-d: {}}
      withoutHeaders: {x-e: {exact: e}, x-f: {}}
      queryParams: {q: {exact: '1'}, r: {regex: '[a-z]+'}, s: {}}
      method: {exact: GET}
      authority: {prefix: reviews}
      scheme: {exact: http}
    - uri: {prefix: /Prefix}
      ignoreUriCase: true
    - uri: {regex: '/re/[0-9]{1,4}'}
      port: 9080
    - sourceLabels: {app: client}
      uri: {prefix: /src}
    - gateways: [mesh]
      uri: {prefix: /gw}
    route:
    - destination: {host: reviews, subset: v1}
      weight: 70
      headers: {request: {set: {x-canary: 'no'}}, response: {remove: [x-internal]}}
    - destination: {host: reviews, subset: v2}
      weight: 30
      headers: {request: {set: {host: v2.reviews}}, response: {add: {x-v: '2'}}}
    headers:
      request: {set: {x-route: matches}, add: {x-trace: '1'}, remove: [x-secret]}
      response: {set: {x-served-by: mast}, remove: [server]}
  - name: redirect
    match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, authority: new.example.com, port: 8443, scheme: https, redirectCode: 308}
  - name: redirect-derived
    match: [{uri: {prefix: /derive}}]
    redirect: {authority: new.example.com, derivePort: FROM_REQUEST_PORT}
  - name: direct
    match: [{uri: {exact: /teapot}}]
    directResponse: {status: 418, body: {string: "I'm a teapot"}}
  - name: direct-bytes
    match: [{uri: {exact: /bytes}}]
    directResponse: {status: 200, body: {bytes: aGVsbG8=}}
  - name: rewrite
    match: [{uri: {prefix: /api/}}]
    rewrite: {uri: /, authority: backend.internal}
    timeout: 2.5s
    retries: {attempts: 5, perTryTimeout: 500ms, retryOn: '5xx,retriable-4xx,409,reset', retryRemoteLocalities: true, retryIgnorePreviousHosts: false, backoff: 50ms}
    route: [{destination: {host: reviews, subset: v3}}]
  - name: regex-rewrite
    match: [{uri: {regex: '/v([0-9]+)/.*'}}]
    rewrite: {uriRegexRewrite: {match: '^/v([0-9]+)/(.*)$', rewrite: '/version/\1/\2'}}
    route: [{destination: {host: reviews}}]
  - name: fault
    match: [{uri: {prefix: /fault}}]
    fault:
      delay: {fixedDelay: 1s, percentage: {value: 33.3}}
      abort: {httpStatus: 503, percentage: {value: 0.5}}
    timeout: 3s
    route: [{destination: {host: reviews}}]
  - name: grpc-fault
    match: [{uri: {prefix: /grpc-fault}}]
    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}, delay: {fixedDelay: 10ms, percent: 5}}
    route: [{destination: {host: web, port: {number: 9090}}}]
  - name: mirror
    match: [{uri: {prefix: /mirror}}]
    mirror: {host: web, port: {number: 80}}
    mirrorPercentage: {value: 12.5}
    route: [{destination: {host: reviews}}]
  - name: mirrors
    match: [{uri: {prefix: /mirrors}}]
    mirrors:
    - destination: {host: web, port: {number: 8080}}
      percentage: {value: 50}
    - destination: {host: httpbin.example.com}
    route: [{destination: {host: reviews}}]
  - name: cors
    match: [{uri: {prefix: /cors}}]
    corsPolicy:
      allowOrigins: [{exact: 'https://a.example'}, {prefix: 'https://b.'}, {regex: 'https://.*\.c\.example'}]
      allowMethods: [GET, POST, OPTIONS]
      allowHeaders: [authorization, content-type]
      exposeHeaders: [x-request-id]
      maxAge: 24h
      allowCredentials: true
      unmatchedPreflights: IGNORE
    route: [{destination: {host: reviews}}]
  - name: no-retries
    match: [{uri: {prefix: /once}}]
    retries: {attempts: 0}
    route: [{destination: {host: reviews}}]
  - name: catch-all
    route:
    - {destination: {host: reviews, subset: v1}, weight: 1}
    - {destination: {host: reviews, subset: v2}, weight: 3}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web.default.svc.cluster.local]
  http:
  - match: [{port: 8080, uri: {prefix: /alt}}]
    route: [{destination: {host: web, port: {number: 8080}}}]
  - match: [{port: 80}]
    route: [{destination: {host: httpbin.example.com}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: external, namespace: default}
spec:
  hosts: [shop.example.org, '*.wild.example.com']
  http:
  - timeout: 10s
    route: [{destination: {host: httpbin.example.com, port: {number: 80}}}]
"#;

fn snapshot() -> MeshSnapshot {
    let out = mast_config::load_str(RICH, "rich.yaml", &Default::default());
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
