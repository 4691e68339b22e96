//! Gateway semantics end to end in xDS: an HTTPRoute (PathPrefix, ReplacePrefixMatch
//! redirect and rewrite) through the conversion to the gateway's route table, next to a
//! hand-written VirtualService on an Istio Gateway whose prefix stays a plain prefix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use envoy_types::pb::envoy::config::route::v3::redirect_action::PathRewriteSpecifier;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterNotFoundResponseCode;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration, VirtualHost};
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};
use serde_json::json;

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
  - matches: [{path: {type: PathPrefix, value: /original-prefix}}]
    filters:
    - type: RequestRedirect
      requestRedirect:
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix}
  - matches: [{path: {type: PathPrefix, value: /full}}]
    filters:
    - type: RequestRedirect
      requestRedirect:
        path: {type: ReplaceFullPath, replaceFullPath: /elsewhere}
  - matches: [{path: {type: PathPrefix, value: /strip/}}]
    filters:
    - type: URLRewrite
      urlRewrite:
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /}
    backendRefs: [{name: web, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /v1}}]
    filters:
    - type: URLRewrite
      urlRewrite:
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2/}
    backendRefs: [{name: web, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: web, port: 80}]
"#;

const ISTIO: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: istio-system}
spec:
  hosts: [web.example.com]
  gateways: [ingress]
  http:
  - match: [{uri: {prefix: /foo}}]
    redirect: {uri: "%PREFIX()%/bar"}
  - match: [{uri: {prefix: /api}}]
    rewrite: {uri: /}
    route: [{destination: {host: web.default.svc.cluster.local}}]
"#;

fn snapshot(yaml: &str) -> MeshSnapshot {
    let out = mast_config::load_str(yaml, "test.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "load: {:?}", out.diagnostics);
    MeshSnapshot::build(&out.resources, SnapshotOptions::default(), 1)
}

fn router(namespace: &str, labels: serde_json::Value) -> ProxyNode {
    ProxyNode::parse(
        &format!("router~10.0.0.9~gw-1.{namespace}~{namespace}.svc.cluster.local"),
        &json!({"NAMESPACE": namespace, "LABELS": labels}),
    )
    .unwrap()
}

fn vhost<'a>(tables: &'a [RouteConfiguration], domain: &str) -> &'a VirtualHost {
    tables
        .iter()
        .flat_map(|t| &t.virtual_hosts)
        .find(|v| v.domains.iter().any(|d| d == domain))
        .unwrap_or_else(|| panic!("no virtual host {domain}: {tables:?}"))
}

fn path(r: &Route) -> Option<&PathSpecifier> {
    r.r#match.as_ref()?.path_specifier.as_ref()
}

/// The route whose path condition names `p`.
fn by_path<'a>(vh: &'a VirtualHost, p: &str) -> &'a Route {
    vh.routes
        .iter()
        .find(|r| match path(r) {
            Some(
                PathSpecifier::Prefix(x)
                | PathSpecifier::PathSeparatedPrefix(x)
                | PathSpecifier::Path(x),
            ) => x == p,
            _ => false,
        })
        .unwrap_or_else(|| panic!("no route for {p}: {:?}", vh.routes))
}

#[test]
fn gateway_api_routes_get_gateway_semantics() {
    let snap = snapshot(CONFIG);
    let tables = super::super::routes(
        &snap,
        &router(
            "default",
            json!({"gateway.networking.k8s.io/gateway-name": "gw"}),
        ),
    );
    let vh = vhost(&tables, "web.example.com");

    let redirect = by_path(vh, "/original-prefix");
    assert_eq!(
        path(redirect),
        Some(&PathSpecifier::PathSeparatedPrefix(
            "/original-prefix".into()
        )),
        "PathPrefix matches path elements: /original-prefixes does not match"
    );
    let Some(Action::Redirect(a)) = &redirect.action else {
        panic!("{redirect:?}")
    };
    assert_eq!(
        a.path_rewrite_specifier,
        Some(PathRewriteSpecifier::PrefixRewrite(
            "/replacement-prefix".into()
        ))
    );
    let Some(Action::Redirect(full)) = &by_path(vh, "/full").action else {
        panic!("not a redirect")
    };
    assert_eq!(
        full.path_rewrite_specifier,
        Some(PathRewriteSpecifier::PathRedirect("/elsewhere".into()))
    );

    let strip = by_path(vh, "/strip");
    let Some(Action::Route(a)) = &strip.action else {
        panic!("{strip:?}")
    };
    assert_eq!(a.prefix_rewrite, "");
    let rr = a
        .regex_rewrite
        .as_ref()
        .expect("the prefix is removed by a regex rewrite");
    assert_eq!(rr.pattern.as_ref().unwrap().regex, "^/strip(/?)(.*)");
    assert_eq!(rr.substitution, r"/\2");

    let Some(Action::Route(v1)) = &by_path(vh, "/v1").action else {
        panic!("not a route")
    };
    assert_eq!(
        v1.prefix_rewrite, "/v2",
        "a trailing / of replacePrefixMatch is trimmed"
    );
    assert!(v1.regex_rewrite.is_none());
    assert_eq!(
        v1.cluster_not_found_response_code,
        ClusterNotFoundResponseCode::InternalServerError as i32,
        "an invalid backend answers 500"
    );

    let last = vh.routes.last().unwrap();
    assert_eq!(
        path(last),
        Some(&PathSpecifier::Prefix("/".into())),
        "/ stays a prefix"
    );
}

#[test]
fn istio_virtual_services_keep_their_meaning() {
    let snap = snapshot(ISTIO);
    let tables = super::super::routes(
        &snap,
        &router("istio-system", json!({"istio": "ingressgateway"})),
    );
    let vh = vhost(&tables, "web.example.com");
    let foo = by_path(vh, "/foo");
    assert_eq!(path(foo), Some(&PathSpecifier::Prefix("/foo".into())));
    let Some(Action::Redirect(a)) = &foo.action else {
        panic!("{foo:?}")
    };
    assert_eq!(
        a.path_rewrite_specifier,
        Some(PathRewriteSpecifier::PathRedirect("%PREFIX()%/bar".into())),
        "outside the Gateway API the marker is literal, as in Istio"
    );
    let Some(Action::Route(api)) = &by_path(vh, "/api").action else {
        panic!("not a route")
    };
    assert_eq!(api.prefix_rewrite, "/");
    assert_eq!(
        api.cluster_not_found_response_code, 0,
        "503, Envoy's default"
    );
    assert!(api.regex_rewrite.is_none());
}
