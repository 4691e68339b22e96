//! Route policies of VirtualService HTTP rules: retries, fault injection, mirrors, CORS,
//! header operations, DestinationRule consistent hashing and skipped delegates — each
//! asserted on the Envoy route fields it sets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod rds_util;

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::route::v3::VirtualHost;
use envoy_types::pb::envoy::config::route::v3::route_action::HostRewriteSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_action::hash_policy::PolicySpecifier;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::fault_abort::ErrorType;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType;
use mast_xds::route::{CORS_FILTER, DEFAULT_RETRY_ON, FAULT_FILTER, PREVIOUS_HOSTS_PREDICATE};
use prost::Message;
use rds_util::*;
use serde_json::json;

#[test]
fn retries_default_disabled_and_custom() {
    let v = reviews_vs(
        "  - match: [{uri: {prefix: /none}}]
    retries: {attempts: 0}
    route: [{destination: {host: reviews}}]
  - match: [{uri: {prefix: /custom}}]
    retries: {attempts: 4, perTryTimeout: 2s, retryOn: 'gateway-error,503,reset'}
    route: [{destination: {host: reviews}}]
  - route: [{destination: {host: reviews}}]
",
    );
    assert!(
        action(&v.routes[0]).retry_policy.is_none(),
        "attempts 0 disables retries"
    );
    let custom = action(&v.routes[1]).retry_policy.as_ref().unwrap();
    assert_eq!(custom.num_retries.unwrap().value, 4);
    assert_eq!(
        custom.retry_on,
        "gateway-error,reset,retriable-status-codes"
    );
    assert_eq!(custom.retriable_status_codes, [503]);
    assert_eq!(custom.per_try_timeout.unwrap().seconds, 2);
    let default = action(&v.routes[2]).retry_policy.as_ref().unwrap();
    assert_eq!(default.retry_on, DEFAULT_RETRY_ON);
    assert_eq!(default.num_retries.unwrap().value, 2);
    assert_eq!(default.host_selection_retry_max_attempts, 5);
    assert_eq!(
        default.retry_host_predicate[0].name,
        PREVIOUS_HOSTS_PREDICATE
    );
}

#[test]
fn fault_injection_disables_retries_and_timeout() {
    let v = reviews_vs(
        "  - fault:
      delay: {fixedDelay: 2s, percentage: {value: 12.5}}
      abort: {httpStatus: 503, percentage: {value: 50}}
    timeout: 1s
    retries: {attempts: 3}
    route: [{destination: {host: reviews}}]
",
    );
    let r = &v.routes[0];
    let any = &r.typed_per_filter_config[FAULT_FILTER];
    assert_eq!(
        any.type_url,
        "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
    );
    let f = HttpFault::decode(any.value.as_slice()).unwrap();
    let delay = f.delay.unwrap();
    assert_eq!(delay.percentage.unwrap().numerator, 125_000);
    assert_eq!(
        delay.percentage.unwrap().denominator,
        DenominatorType::Million as i32
    );
    assert!(
        matches!(delay.fault_delay_secifier, Some(FaultDelaySecifier::FixedDelay(d)) if d.seconds == 2)
    );
    let abort = f.abort.unwrap();
    assert_eq!(abort.error_type, Some(ErrorType::HttpStatus(503)));
    assert_eq!(abort.percentage.unwrap().numerator, 500_000);
    assert!(action(r).retry_policy.is_none());
    assert_eq!(action(r).timeout.unwrap().seconds, 0);
    let g = reviews_vs(
        "  - fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}\n    route: [{destination: {host: reviews}}]\n",
    );
    let f = HttpFault::decode(
        g.routes[0].typed_per_filter_config[FAULT_FILTER]
            .value
            .as_slice(),
    )
    .unwrap();
    assert_eq!(f.abort.unwrap().error_type, Some(ErrorType::GrpcStatus(14)));
}

#[test]
fn mirrors_with_percentages() {
    let v = reviews_vs(
        "  - match: [{uri: {prefix: /one}}]
    mirror: {host: web, port: {number: 80}}
    mirrorPercentage: {value: 25.5}
    route: [{destination: {host: reviews}}]
  - match: [{uri: {prefix: /many}}]
    mirrors:
    - destination: {host: web, port: {number: 8080}}
    - destination: {host: reviews, subset: shadow}
      percentage: {value: 10}
    route: [{destination: {host: reviews}}]
  - mirror: {host: web, port: {number: 80}}
    mirrorPercentage: {value: 0}
    route: [{destination: {host: reviews}}]
",
    );
    let m = &action(&v.routes[0]).request_mirror_policies;
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].cluster, "outbound|80||web.default.svc.cluster.local");
    let f = m[0]
        .runtime_fraction
        .as_ref()
        .unwrap()
        .default_value
        .unwrap();
    assert_eq!(
        (f.numerator, f.denominator),
        (255_000, DenominatorType::Million as i32)
    );
    assert!(m[0].disable_shadow_host_suffix_append);
    let many = &action(&v.routes[1]).request_mirror_policies;
    assert_eq!(many.len(), 2);
    let all = many[0]
        .runtime_fraction
        .as_ref()
        .unwrap()
        .default_value
        .unwrap();
    assert_eq!(
        (all.numerator, all.denominator),
        (100, DenominatorType::Hundred as i32),
        "no percentage = all"
    );
    assert_eq!(
        many[1].cluster,
        "outbound|9080|shadow|reviews.default.svc.cluster.local"
    );
    assert!(
        action(&v.routes[2]).request_mirror_policies.is_empty(),
        "0% mirrors nothing"
    );
}

#[test]
fn cors_policy() {
    let v = reviews_vs(
        "  - corsPolicy:
      allowOrigins: [{exact: 'https://a.example'}, {regex: 'https://.*\\.b\\.example'}]
      allowMethods: [GET, POST]
      allowHeaders: [x-a, x-b]
      exposeHeaders: [x-c]
      maxAge: 24h
      allowCredentials: true
    route: [{destination: {host: reviews}}]
",
    );
    let any = &v.routes[0].typed_per_filter_config[CORS_FILTER];
    assert_eq!(
        any.type_url,
        "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"
    );
    let c = CorsPolicy::decode(any.value.as_slice()).unwrap();
    assert_eq!(c.allow_origin_string_match.len(), 2);
    assert_eq!(
        c.allow_origin_string_match[0].match_pattern,
        Some(MatchPattern::Exact("https://a.example".into()))
    );
    assert_eq!(c.allow_methods, "GET,POST");
    assert_eq!(c.allow_headers, "x-a,x-b");
    assert_eq!(c.expose_headers, "x-c");
    assert_eq!(c.max_age, "86400");
    assert_eq!(c.allow_credentials.map(|b| b.value), Some(true));
    assert_eq!(
        c.filter_enabled.unwrap().default_value.unwrap().numerator,
        100
    );
    assert_eq!(
        c.forward_not_matching_preflights.map(|b| b.value),
        Some(true)
    );
}

#[test]
fn header_operations_on_route_and_weighted_clusters() {
    let v = reviews_vs(
        "  - headers:
      request:
        set: {x-set: a, ':authority': pinned.local}
        add: {x-add: b}
        remove: [x-drop]
      response:
        set: {x-resp: c}
        remove: [server]
    route:
    - destination: {host: reviews, subset: v1}
      weight: 90
      headers: {request: {set: {x-canary: 'no'}}}
    - destination: {host: reviews, subset: v2}
      weight: 10
      headers: {response: {add: {x-canary: 'yes'}}}
",
    );
    let r = &v.routes[0];
    let set = r
        .request_headers_to_add
        .iter()
        .find(|h| h.header.as_ref().unwrap().key == "x-set")
        .unwrap();
    assert_eq!(
        set.append_action,
        HeaderAppendAction::OverwriteIfExistsOrAdd as i32
    );
    let add = r
        .request_headers_to_add
        .iter()
        .find(|h| h.header.as_ref().unwrap().key == "x-add")
        .unwrap();
    assert_eq!(
        add.append_action,
        HeaderAppendAction::AppendIfExistsOrAdd as i32
    );
    assert!(
        r.request_headers_to_add
            .iter()
            .all(|h| h.header.as_ref().unwrap().key != ":authority")
    );
    assert_eq!(r.request_headers_to_remove, ["x-drop"]);
    assert_eq!(r.response_headers_to_remove, ["server"]);
    assert_eq!(
        r.response_headers_to_add[0].header.as_ref().unwrap().value,
        "c"
    );
    assert_eq!(
        action(r).host_rewrite_specifier,
        Some(HostRewriteSpecifier::HostRewriteLiteral(
            "pinned.local".into()
        ))
    );
    let Some(
        envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier::WeightedClusters(
            w,
        ),
    ) = &action(r).cluster_specifier
    else {
        panic!()
    };
    assert_eq!(
        w.clusters[0].request_headers_to_add[0]
            .header
            .as_ref()
            .unwrap()
            .key,
        "x-canary"
    );
    assert_eq!(
        w.clusters[1].response_headers_to_add[0]
            .header
            .as_ref()
            .unwrap()
            .value,
        "yes"
    );
    assert!(w.clusters[1].host_rewrite_specifier.is_none());
}

fn with_dr(lb: &str, routes_http: &str) -> VirtualHost {
    let yaml = format!(
        "{SERVICES}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: default}}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      consistentHash: {lb}
  subsets:
  - name: v1
    labels: {{version: v1}}
    trafficPolicy:
      loadBalancer:
        consistentHash: {{httpQueryParameterName: user}}
{routes_http}"
    );
    vhost_of(&snapshot(&yaml), &sidecar("default", json!({})), "9080", R)
}

#[test]
fn consistent_hash_from_the_destination_rule() {
    let v = with_dr("{httpHeaderName: x-user}", "");
    let a = action(&v.routes[0]);
    assert!(
        matches!(&a.hash_policy[0].policy_specifier, Some(PolicySpecifier::Header(h)) if h.header_name == "x-user")
    );
    let v = with_dr("{httpCookie: {name: sess, ttl: 60s, path: /}}", "");
    match &action(&v.routes[0]).hash_policy[0].policy_specifier {
        Some(PolicySpecifier::Cookie(c)) => {
            assert_eq!((c.name.as_str(), c.path.as_str()), ("sess", "/"));
            assert_eq!(c.ttl.unwrap().seconds, 60);
        }
        other => panic!("{other:?}"),
    }
    let v = with_dr("{useSourceIp: true}", "");
    assert!(
        matches!(&action(&v.routes[0]).hash_policy[0].policy_specifier, Some(PolicySpecifier::ConnectionProperties(c)) if c.source_ip)
    );
    // A VirtualService route to the subset takes the subset's hash and drops previous_hosts.
    let vs = "---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v1}}]
";
    let v = with_dr("{useSourceIp: true}", vs);
    let a = action(&v.routes[0]);
    assert!(
        matches!(&a.hash_policy[0].policy_specifier, Some(PolicySpecifier::QueryParameter(q)) if q.name == "user")
    );
    assert!(
        a.retry_policy
            .as_ref()
            .unwrap()
            .retry_host_predicate
            .is_empty()
    );
}

#[test]
fn delegating_rules_are_skipped() {
    let v = reviews_vs(
        "  - match: [{uri: {prefix: /delegated}}]
    delegate: {name: reviews-delegate, namespace: default}
  - route: [{destination: {host: reviews, subset: v1}}]
",
    );
    assert_eq!(v.routes.len(), 1);
    assert_eq!(
        cluster(&v.routes[0]),
        "outbound|9080|v1|reviews.default.svc.cluster.local"
    );
}
