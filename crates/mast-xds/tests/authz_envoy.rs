//! Real Envoy accepts the authorization filters (`envoy --mode validate`): a minimal inbound
//! HTTP listener whose `HttpConnectionManager` carries the generated `jwt_authn` and RBAC
//! filters (every action, every from/to/when field, path templates, CUSTOM's fail-closed
//! filter, fetched and fake JWKS) before the router, and a TCP listener with the network RBAC
//! filters before `tcp_proxy`.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier as TcpCluster;
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};
use serde_json::json;

const POLICIES: &str = r#"
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: foo}
spec:
  jwtRules:
  - issuer: https://fetched.example.com
    jwksUri: https://fetched.example.com/jwks
    outputPayloadToHeader: x-jwt-payload
    forwardOriginalToken: true
  - issuer: https://missing.example.com
    jwksUri: https://missing.example.com/jwks
    fromHeaders: [{name: x-token, prefix: "Bearer "}]
    fromParams: [token]
    outputClaimToHeaders: [{header: x-sub, claim: sub}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-all-fields, namespace: foo}
spec:
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/foo/sa/a", "pre*", "*suf", "*"]
        requestPrincipals: ["https://fetched.example.com/alice", "*"]
        namespaces: ["foo", "ns-*"]
        serviceAccounts: ["sa", "bar/sb"]
        ipBlocks: ["10.0.0.0/8"]
        remoteIpBlocks: ["192.168.1.1"]
        notPrincipals: ["bad"]
        notIpBlocks: ["10.9.9.9"]
    to:
    - operation:
        hosts: ["example.com", "*.example.com"]
        methods: ["GET", "POST"]
        paths: ["/api/*", "*.png", "/x/{*}/y", "/{**}/z", "*"]
        ports: ["8080"]
        notPaths: ["/admin"]
    when:
    - key: request.headers[x-env]
      values: ["prod"]
    - key: request.auth.audiences
      values: ["api"]
    - key: request.auth.presenter
      values: ["web"]
    - key: request.auth.claims[groups]
      values: ["admin"]
    - key: destination.ip
      values: ["10.1.1.1"]
    - key: destination.port
      notValues: ["9999"]
    - key: connection.sni
      values: ["*.local"]
    - key: experimental.envoy.filters.a.b[c]
      values: ["x", "[y]"]
  - {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: foo}
spec:
  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/private/*"]
        ports: ["9000"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit, namespace: foo}
spec:
  action: AUDIT
  rules:
  - to:
    - operation:
        methods: ["DELETE"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: foo}
spec:
  action: CUSTOM
  provider: {name: opa}
  rules:
  - to:
    - operation:
        paths: ["/ext"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: nothing, namespace: istio-system}
spec: {}
"#;

const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"k","e":"AQAB","n":"u1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0_IzW7yWR7QkrmBL7jTKEn5u-qKhbwKfBstIs-bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW_VDL5AaWTg0nLVkjRo9z-40RQzuVaE8AkAFmxZzow3x-VJYKdjykkJ0iT9wCS0DRTXu269V264Vf_3jvredZiKRkgwlL9xNAwxXFg0x_XFw005UWVRIkdgcKWTjpBP2dPwVZ4WWC-9aGVd-Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbcmw"}]}"#;

fn snapshot() -> MeshSnapshot {
    let out = mast_config::load_str(POLICIES, "authz.yaml", &Default::default());
    assert!(
        out.diagnostics
            .iter()
            .all(|d| d.level != mast_config::Level::Error),
        "load: {:?}",
        out.diagnostics
    );
    let mut jwks = BTreeMap::new();
    jwks.insert(
        "https://fetched.example.com/jwks".to_owned(),
        JWKS.to_owned(),
    );
    let options = SnapshotOptions {
        jwks: Arc::new(jwks),
        ..SnapshotOptions::default()
    };
    MeshSnapshot::build(&out.resources, options, 1)
}

fn proxy() -> ProxyNode {
    let meta = json!({ "NAMESPACE": "foo", "LABELS": { "app": "httpbin" } });
    ProxyNode::parse(
        "sidecar~10.0.0.1~httpbin-1.foo~foo.svc.cluster.local",
        &meta,
    )
    .expect("proxy")
}

fn address(port: u32) -> Option<Address> {
    Some(Address {
        address: Some(AddressKind::SocketAddress(SocketAddress {
            address: "127.0.0.1".into(),
            port_specifier: Some(PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    })
}

fn backend() -> Cluster {
    Cluster {
        name: "backend".into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        ..Default::default()
    }
}

fn http_listener(mut filters: Vec<HttpFilter>) -> Listener {
    filters.push(HttpFilter {
        name: "envoy.filters.http.router".into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(support::any(
            Router::default(),
        ))),
        ..Default::default()
    });
    let route = Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(PathSpecifier::Prefix("/".into())),
            ..Default::default()
        }),
        action: Some(Action::Route(RouteAction {
            cluster_specifier: Some(ClusterSpecifier::Cluster("backend".into())),
            ..Default::default()
        })),
        ..Default::default()
    };
    let hcm = HttpConnectionManager {
        stat_prefix: "inbound_8080".into(),
        http_filters: filters,
        route_specifier: Some(RouteSpecifier::RouteConfig(RouteConfiguration {
            name: "inbound|8080||".into(),
            virtual_hosts: vec![VirtualHost {
                name: "inbound|http|8080".into(),
                domains: vec!["*".into()],
                routes: vec![route],
                ..Default::default()
            }],
            ..Default::default()
        })),
        ..Default::default()
    };
    listener(
        "authz-http",
        18080,
        vec![network_filter(
            "envoy.filters.network.http_connection_manager",
            support::any(hcm),
        )],
    )
}

fn network_filter(name: &str, any: envoy_types::pb::google::protobuf::Any) -> Filter {
    Filter {
        name: name.into(),
        config_type: Some(filter::ConfigType::TypedConfig(any)),
    }
}

fn listener(name: &str, port: u32, filters: Vec<Filter>) -> Listener {
    Listener {
        name: name.into(),
        address: address(port),
        filter_chains: vec![FilterChain {
            filters,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn tcp_listener(mut filters: Vec<Filter>) -> Listener {
    let proxy = TcpProxy {
        stat_prefix: "inbound_9000".into(),
        cluster_specifier: Some(TcpCluster::Cluster("backend".into())),
        ..Default::default()
    };
    filters.push(network_filter(
        "envoy.filters.network.tcp_proxy",
        support::any(proxy),
    ));
    listener("authz-tcp", 19000, filters)
}

#[test]
fn envoy_accepts_authz_filters_on_http_and_tcp_chains() {
    let snap = snapshot();
    let http = mast_xds::authz::inbound_http_filters(&snap, &proxy(), 8080);
    let names: Vec<&str> = http.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "envoy.filters.http.rbac",
            "envoy.filters.http.jwt_authn",
            "envoy.filters.http.rbac",
            "envoy.filters.http.rbac",
            "envoy.filters.http.rbac",
        ],
        "CUSTOM (fail-closed), jwt_authn, AUDIT, DENY, ALLOW"
    );
    let tcp = mast_xds::authz::inbound_network_filters(&snap, &proxy(), 9000);
    assert_eq!(tcp.len(), 4, "CUSTOM, AUDIT, DENY, ALLOW");
    let res = support::Resources {
        clusters: vec![backend()],
        listeners: vec![http_listener(http), tcp_listener(tcp)],
        ..Default::default()
    };
    let out = support::assert_envoy_accepts("authz-filters", &res);
    // The only deprecated field in use is RBAC's `metadata` (what Istio emits).
    for d in support::deprecations(&out) {
        assert!(d.contains("metadata"), "unexpected deprecation: {d}");
    }
}
