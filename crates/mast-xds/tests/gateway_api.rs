//! Gateway API resources all the way to xDS: a MeshSnapshot built from a Gateway, an
//! HTTPRoute (request/response header modifiers, a redirect, a rewrite) and a GRPCRoute,
//! and the listener, route table and clusters generated for the `router` proxy the
//! converted Gateway selects (`gateway.networking.k8s.io/gateway-name: gw`). Envoy
//! validates the result when it is installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod rds_util;
mod support;

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::route::v3::redirect_action::{
    RedirectResponseCode, SchemeRewriteSpecifier,
};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::HostRewriteSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    RedirectAction, Route, RouteAction, RouteConfiguration, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use mast_model::ProxyNode;
use prost::Message;
use serde_json::json;

/// A Service mapping the gateway's port 80 to 8080 (as `mastctl up` generates
/// `<gateway>-istio`), three backends, the Gateway and its routes.
const CONFIG: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: gw-istio, namespace: default}
spec:
  selector: {gateway.networking.k8s.io/gateway-name: gw}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web-v2, namespace: default}
spec:
  selector: {app: web-v2}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  selector: {app: echo}
  ports: [{name: grpc, port: 9000}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: istio
  listeners:
  - {name: http, port: 80, protocol: HTTP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [web.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: x-env, value: prod}]
        add: [{name: x-added, value: "1"}]
        remove: [x-drop]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        add: [{name: x-resp, value: "yes"}]
    backendRefs: [{name: web, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, statusCode: 301}
  - matches: [{path: {type: PathPrefix, value: /v2}}]
    filters:
    - type: URLRewrite
      urlRewrite:
        hostname: web-v2.internal
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /}
    backendRefs: [{name: web-v2, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: echo, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [grpc.example.com]
  rules:
  - matches: [{method: {service: echo.Echo, method: Say}}]
    backendRefs: [{name: echo, port: 9000}]
"#;

/// The gateway proxy of Gateway `gw`.
fn gateway_proxy() -> ProxyNode {
    ProxyNode::parse(
        "router~10.0.0.9~gw-istio-1.default~default.svc.cluster.local",
        &json!({"NAMESPACE": "default",
            "LABELS": {"gateway.networking.k8s.io/gateway-name": "gw"}}),
    )
    .unwrap()
}

fn generated() -> support::Resources {
    support::Resources::generated(&rds_util::snapshot(CONFIG), &gateway_proxy())
}

fn hcm(l: &Listener) -> HttpConnectionManager {
    assert_eq!(l.filter_chains.len(), 1, "{}: one chain", l.name);
    let f = l.filter_chains[0].filters.last().unwrap();
    assert_eq!(f.name, "envoy.filters.network.http_connection_manager");
    let Some(ConfigType::TypedConfig(any)) = &f.config_type else {
        panic!("no typed config")
    };
    HttpConnectionManager::decode(any.value.as_slice()).unwrap()
}

fn vhost<'a>(table: &'a RouteConfiguration, domain: &str) -> &'a VirtualHost {
    table
        .virtual_hosts
        .iter()
        .find(|v| v.domains.iter().any(|d| d == domain))
        .unwrap_or_else(|| panic!("no virtual host for {domain} in {}", table.name))
}

/// The route whose path match starts with `path` (prefix, path-separated prefix or exact).
fn route<'a>(vh: &'a VirtualHost, path: &str) -> &'a Route {
    vh.routes
        .iter()
        .find(|r| path_of(r) == path)
        .unwrap_or_else(|| {
            let paths: Vec<String> = vh.routes.iter().map(path_of).collect();
            panic!("no route for {path} in {}: {paths:?}", vh.name)
        })
}

fn path_of(r: &Route) -> String {
    match r.r#match.as_ref().and_then(|m| m.path_specifier.as_ref()) {
        // Istio matches a Gateway API PathPrefix by path element (`path_separated_prefix`);
        // a plain prefix keeps the same string.
        Some(PathSpecifier::Prefix(p) | PathSpecifier::PathSeparatedPrefix(p)) => p.clone(),
        Some(PathSpecifier::Path(p)) => format!("={p}"),
        other => format!("{other:?}"),
    }
}

fn action(r: &Route) -> &RouteAction {
    match &r.action {
        Some(Action::Route(a)) => a,
        other => panic!("{}: not a route action: {other:?}", r.name),
    }
}

fn redirect(r: &Route) -> &RedirectAction {
    match &r.action {
        Some(Action::Redirect(a)) => a,
        other => panic!("{}: not a redirect: {other:?}", r.name),
    }
}

fn cluster(r: &Route) -> String {
    use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
    match &action(r).cluster_specifier {
        Some(ClusterSpecifier::Cluster(c)) => c.clone(),
        other => panic!("{}: {other:?}", r.name),
    }
}

/// `(name, value, append action)` of headers to add.
fn headers(
    list: &[envoy_types::pb::envoy::config::core::v3::HeaderValueOption],
) -> Vec<(String, String, i32)> {
    list.iter()
        .map(|h| {
            let hv = h.header.clone().unwrap_or_default();
            (hv.key, hv.value, h.append_action)
        })
        .collect()
}

fn the_table(res: &support::Resources) -> &RouteConfiguration {
    let l = res
        .listeners
        .iter()
        .find(|l| l.name == "0.0.0.0_8080")
        .unwrap_or_else(|| {
            let names: Vec<&String> = res.listeners.iter().map(|l| &l.name).collect();
            panic!("no listener 0.0.0.0_8080: {names:?}")
        });
    let Some(RouteSpecifier::Rds(rds)) = hcm(l).route_specifier else {
        panic!("the HTTP listener is not on RDS")
    };
    assert_eq!(rds.route_config_name, "http.8080");
    res.routes
        .iter()
        .find(|t| t.name == rds.route_config_name)
        .expect("the listener's route table")
}

#[test]
fn the_gateway_listens_on_the_target_port_with_one_vhost_per_hostname() {
    let res = generated();
    let names: Vec<&String> = res.listeners.iter().map(|l| &l.name).collect();
    assert_eq!(
        names,
        ["0.0.0.0_8080"],
        "one listener, on the Service's targetPort"
    );
    let table = the_table(&res);
    let mut vhosts: Vec<(&str, &[String])> = table
        .virtual_hosts
        .iter()
        .map(|v| (v.name.as_str(), v.domains.as_slice()))
        .collect();
    vhosts.sort();
    assert_eq!(
        vhosts,
        [
            ("grpc.example.com:80", &["grpc.example.com".to_owned()][..]),
            ("web.example.com:80", &["web.example.com".to_owned()][..]),
        ]
    );
    let clusters: Vec<&String> = res.clusters.iter().map(|c| &c.name).collect();
    for c in [
        "outbound|80||web.default.svc.cluster.local",
        "outbound|80||web-v2.default.svc.cluster.local",
        "outbound|9000||echo.default.svc.cluster.local",
    ] {
        assert!(
            clusters.iter().any(|n| *n == c),
            "{c} missing: {clusters:?}"
        );
    }
}

#[test]
fn header_modifiers_become_route_header_actions() {
    let res = generated();
    let vh = vhost(the_table(&res), "web.example.com");
    let api = route(vh, "/api");
    assert_eq!(cluster(api), "outbound|80||web.default.svc.cluster.local");
    let mut added = headers(&api.request_headers_to_add);
    added.sort();
    assert_eq!(
        added,
        [
            (
                "x-added".into(),
                "1".into(),
                HeaderAppendAction::AppendIfExistsOrAdd as i32
            ),
            (
                "x-env".into(),
                "prod".into(),
                HeaderAppendAction::OverwriteIfExistsOrAdd as i32
            ),
        ]
    );
    assert_eq!(api.request_headers_to_remove, ["x-drop"]);
    assert_eq!(
        headers(&api.response_headers_to_add),
        [(
            "x-resp".into(),
            "yes".into(),
            HeaderAppendAction::AppendIfExistsOrAdd as i32
        )]
    );
}

#[test]
fn redirect_and_rewrite_filters_become_route_actions() {
    let res = generated();
    let vh = vhost(the_table(&res), "web.example.com");
    let old = redirect(route(vh, "/old"));
    assert_eq!(
        old.scheme_rewrite_specifier,
        Some(SchemeRewriteSpecifier::SchemeRedirect("https".into()))
    );
    assert_eq!(
        old.response_code,
        RedirectResponseCode::MovedPermanently as i32
    );
    // No port given with a scheme: the scheme's default (Envoy drops the request's port).
    assert_eq!(old.port_redirect, 0);

    let v2 = route(vh, "/v2");
    assert_eq!(cluster(v2), "outbound|80||web-v2.default.svc.cluster.local");
    let a = action(v2);
    assert_eq!(
        a.host_rewrite_specifier,
        Some(HostRewriteSpecifier::HostRewriteLiteral(
            "web-v2.internal".into()
        ))
    );
    assert!(
        a.prefix_rewrite == "/" || a.regex_rewrite.is_some(),
        "the /v2 prefix is replaced: {a:?}"
    );
}

#[test]
fn grpc_route_matches_the_method_path() {
    let res = generated();
    let vh = vhost(the_table(&res), "grpc.example.com");
    let say = route(vh, "=/echo.Echo/Say");
    assert_eq!(
        cluster(say),
        "outbound|9000||echo.default.svc.cluster.local"
    );
    assert_eq!(vh.routes.len(), 1, "{:?}", vh.routes);
}

#[test]
fn other_proxies_get_no_gateway_listener() {
    let snapshot = rds_util::snapshot(CONFIG);
    let other = ProxyNode::parse(
        "router~10.0.0.8~other-1.default~default.svc.cluster.local",
        &json!({"NAMESPACE": "default",
            "LABELS": {"gateway.networking.k8s.io/gateway-name": "other"}}),
    )
    .unwrap();
    let res = support::Resources::generated(&snapshot, &other);
    assert!(res.listeners.is_empty(), "{:?}", res.listeners);
}

#[test]
fn envoy_accepts_the_gateway_configuration() {
    support::assert_envoy_accepts("gateway-api", &generated());
}
