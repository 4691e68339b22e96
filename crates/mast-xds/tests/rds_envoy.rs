//! Every route table generated for a rich set of VirtualServices (every HTTP feature, both
//! capture modes, both outbound policies) is accepted by real Envoy (`envoy --mode validate`),
//! served to a listener whose HTTP connection manager runs the fault, CORS and router filters,
//! with each cluster the routes name present as a minimal static cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType as HttpFilterConfig;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::google::protobuf::Duration;
use mast_config::Level;
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};
use prost::{Message, Name};
use serde_json::json;

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

fn snapshot(yaml: &str) -> MeshSnapshot {
    let out = mast_config::load_str(yaml, "rich.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "load: {:?}", out.diagnostics);
    let errors: Vec<_> = mast_config::validate::validate_all(&out.resources)
        .into_iter()
        .filter(|d| d.level == Level::Error)
        .collect();
    assert!(errors.is_empty(), "validation: {errors:?}");
    MeshSnapshot::build(&out.resources, SnapshotOptions::default(), 1)
}

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

fn routes(snap: &MeshSnapshot, proxy: &ProxyNode) -> Vec<RouteConfiguration> {
    support::decode_all(mast_xds::generate(snap, proxy, mast_xds::ROUTE_TYPE))
}

/// Every cluster a route table names (routes, weighted clusters, mirrors).
fn named_clusters(tables: &[RouteConfiguration]) -> BTreeSet<String> {
    let vhosts = tables.iter().flat_map(|t| &t.virtual_hosts);
    let mut out = BTreeSet::new();
    for route in vhosts.flat_map(|v: &VirtualHost| &v.routes) {
        let Some(Action::Route(a)) = &route.action else {
            continue;
        };
        match &a.cluster_specifier {
            Some(ClusterSpecifier::Cluster(c)) => {
                out.insert(c.clone());
            }
            Some(ClusterSpecifier::WeightedClusters(w)) => {
                out.extend(w.clusters.iter().map(|c| c.name.clone()))
            }
            _ => {}
        }
        out.extend(a.request_mirror_policies.iter().map(|m| m.cluster.clone()));
    }
    out
}

fn static_cluster(name: &str) -> Cluster {
    Cluster {
        name: name.into(),
        connect_timeout: Some(Duration {
            seconds: 1,
            nanos: 0,
        }),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn http_filter<T: Message + Name>(name: &str, config: T) -> HttpFilter {
    HttpFilter {
        name: name.into(),
        config_type: Some(HttpFilterConfig::TypedConfig(support::any(config))),
        ..Default::default()
    }
}

/// An outbound-style listener using route table `route` over RDS.
fn listener(i: u32, route: &str) -> Listener {
    let hcm = HttpConnectionManager {
        stat_prefix: format!("outbound_{i}"),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(support::ads_source()),
            route_config_name: route.into(),
        })),
        http_filters: vec![
            http_filter("envoy.filters.http.fault", HttpFault::default()),
            http_filter("envoy.filters.http.cors", Cors::default()),
            http_filter("envoy.filters.http.router", Router::default()),
        ],
        ..Default::default()
    };
    let filter = Filter {
        name: "envoy.filters.network.http_connection_manager".into(),
        config_type: Some(ConfigType::TypedConfig(support::any(hcm))),
    };
    Listener {
        name: format!("rds-check-{i}"),
        address: Some(Address {
            address: Some(AddressKind::SocketAddress(SocketAddress {
                address: "127.0.0.1".into(),
                port_specifier: Some(PortSpecifier::PortValue(40000 + i)),
                ..Default::default()
            })),
        }),
        filter_chains: vec![FilterChain {
            filters: vec![filter],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn resources(tables: Vec<RouteConfiguration>) -> support::Resources {
    let clusters = named_clusters(&tables)
        .iter()
        .map(|c| static_cluster(c))
        .collect();
    let listeners = (0u32..)
        .zip(&tables)
        .map(|(i, t)| listener(i, &t.name))
        .collect();
    support::Resources {
        clusters,
        listeners,
        routes: tables,
        ..Default::default()
    }
}

/// Envoy accepts `res` and reports no deprecated field.
fn assert_accepted(label: &str, res: &support::Resources) {
    match support::validate(label, res) {
        Ok(support::Validation::Passed(out)) => {
            let deprecated: Vec<&str> = out
                .lines()
                .filter(|l| l.contains("Deprecated field"))
                .collect();
            assert!(
                deprecated.is_empty(),
                "{label}: unexpected deprecated fields: {deprecated:#?}"
            );
        }
        Ok(support::Validation::Skipped(why)) => {
            eprintln!("SKIPPED envoy validation of {label}: {why}")
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn envoy_accepts_every_route_table_of_a_rich_configuration() {
    let snap = snapshot(RICH);
    let cases = [
        ("rds-iptables-default", proxy("default", json!({}))),
        ("rds-iptables-other", proxy("other", json!({}))),
        (
            "rds-ports",
            proxy(
                "default",
                json!({"MAST_CAPTURE_MODE": "ports", "MAST_OUTBOUND_PORT": "15101"}),
            ),
        ),
    ];
    for (label, p) in cases {
        let tables = routes(&snap, &p);
        assert!(
            tables.len() >= 2 || label == "rds-ports",
            "{label}: {:?}",
            tables.iter().map(|t| &t.name).collect::<Vec<_>>()
        );
        let vhosts: usize = tables.iter().map(|t| t.virtual_hosts.len()).sum();
        assert!(
            vhosts > 5,
            "{label}: a rich configuration has many virtual hosts"
        );
        assert_accepted(label, &resources(tables));
    }
}

#[test]
fn envoy_accepts_registry_only_tables() {
    let yaml = format!(
        "{RICH}---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: default, namespace: istio-system}}
spec:
  outboundTrafficPolicy: {{mode: REGISTRY_ONLY}}
"
    );
    let snap = snapshot(&yaml);
    let tables = routes(&snap, &proxy("default", json!({})));
    assert!(tables.iter().all(|t| {
        t.virtual_hosts
            .last()
            .is_some_and(|v| v.name == "block_all")
    }));
    assert_accepted("rds-registry-only", &resources(tables));
}

#[test]
fn the_check_catches_a_broken_route_table() {
    let snap = snapshot(RICH);
    let mut tables = routes(&snap, &proxy("default", json!({})));
    // Give two virtual hosts the same domain: Envoy must refuse it.
    let first = tables[0].virtual_hosts[0].domains[0].clone();
    tables[0].virtual_hosts[1].domains.push(first);
    match support::validate("rds-broken", &resources(tables)) {
        Ok(support::Validation::Skipped(why)) => eprintln!("SKIPPED: {why}"),
        Ok(support::Validation::Passed(out)) => panic!("Envoy accepted a duplicate domain: {out}"),
        Err(e) => assert!(e.contains("domain"), "{e}"),
    }
}
