//! RDS routes of VirtualService HTTP rules: matches, rule order, destinations and weights,
//! redirects, direct responses, rewrites and timeouts — each asserted on the Envoy route
//! fields it sets. Policies (retries, faults, mirrors, CORS, headers, hashing) are in
//! `rds_policies.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod rds_util;

use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::query_parameter_matcher::QueryParameterMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::redirect_action::{
    PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier,
};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::HostRewriteSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, Route};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use rds_util::*;
use serde_json::json;

fn string_pattern(h: &HeaderMatcher) -> &MatchPattern {
    match &h.header_match_specifier {
        Some(HeaderMatchSpecifier::StringMatch(s)) => s.match_pattern.as_ref().unwrap(),
        other => panic!("{other:?}"),
    }
}

fn header<'a>(r: &'a Route, name: &str) -> &'a HeaderMatcher {
    r.r#match
        .as_ref()
        .unwrap()
        .headers
        .iter()
        .find(|h| h.name == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn uri_matches_and_case() {
    let v = reviews_vs(
        "  - name: r
    match:
    - {name: exact, uri: {exact: /a}}
    - {uri: {prefix: /b}, ignoreUriCase: true}
    - {uri: {regex: '/c/[0-9]+'}}
    route: [{destination: {host: reviews}}]
",
    );
    let paths: Vec<_> = v
        .routes
        .iter()
        .map(|r| r.r#match.as_ref().unwrap().path_specifier.clone().unwrap())
        .collect();
    assert_eq!(paths[0], PathSpecifier::Path("/a".into()));
    assert_eq!(paths[1], PathSpecifier::Prefix("/b".into()));
    match &paths[2] {
        PathSpecifier::SafeRegex(r) => assert_eq!(r.regex, "/c/[0-9]+"),
        other => panic!("{other:?}"),
    }
    assert_eq!(v.routes[0].name, "r.exact");
    assert_eq!(
        v.routes[1]
            .r#match
            .as_ref()
            .unwrap()
            .case_sensitive
            .map(|b| b.value),
        Some(false)
    );
    assert_eq!(
        v.routes[0]
            .r#match
            .as_ref()
            .unwrap()
            .case_sensitive
            .map(|b| b.value),
        Some(true)
    );
}

#[test]
fn header_query_method_authority_scheme_matches() {
    let v = reviews_vs(
        "  - match:
    - headers:
        x-exact: {exact: a}
        x-prefix: {prefix: b}
        x-regex: {regex: 'c+'}
        x-present: {}
      withoutHeaders:
        x-not: {exact: bad}
        x-absent: {}
      queryParams:
        q: {exact: '1'}
        has: {}
      method: {exact: POST}
      authority: {prefix: reviews}
      scheme: {exact: http}
    route: [{destination: {host: reviews}}]
",
    );
    let r = &v.routes[0];
    assert_eq!(
        string_pattern(header(r, "x-exact")),
        &MatchPattern::Exact("a".into())
    );
    assert_eq!(
        string_pattern(header(r, "x-prefix")),
        &MatchPattern::Prefix("b".into())
    );
    assert!(
        matches!(string_pattern(header(r, "x-regex")), MatchPattern::SafeRegex(re) if re.regex == "c+")
    );
    assert_eq!(
        header(r, "x-present").header_match_specifier,
        Some(HeaderMatchSpecifier::PresentMatch(true))
    );
    let not = header(r, "x-not");
    assert!(not.invert_match && not.treat_missing_header_as_empty);
    let absent = header(r, "x-absent");
    assert!(absent.invert_match && !absent.treat_missing_header_as_empty);
    assert_eq!(
        string_pattern(header(r, ":method")),
        &MatchPattern::Exact("POST".into())
    );
    assert_eq!(
        string_pattern(header(r, ":authority")),
        &MatchPattern::Prefix("reviews".into())
    );
    assert_eq!(
        string_pattern(header(r, ":scheme")),
        &MatchPattern::Exact("http".into())
    );
    let q = &r.r#match.as_ref().unwrap().query_parameters;
    let has = q.iter().find(|m| m.name == "has").unwrap();
    assert_eq!(
        has.query_parameter_match_specifier,
        Some(QueryParameterMatchSpecifier::PresentMatch(true))
    );
    let exact = q.iter().find(|m| m.name == "q").unwrap();
    assert!(matches!(&exact.query_parameter_match_specifier,
        Some(QueryParameterMatchSpecifier::StringMatch(s)) if s.match_pattern == Some(MatchPattern::Exact("1".into()))));
}

#[test]
fn first_match_wins_and_nothing_follows_a_catch_all() {
    let v = reviews_vs(
        "  - match: [{uri: {prefix: /one}}]
    route: [{destination: {host: reviews, subset: one}}]
  - match: [{uri: {prefix: /}}, {uri: {prefix: /never}}]
    route: [{destination: {host: reviews, subset: two}}]
  - route: [{destination: {host: reviews, subset: three}}]
",
    );
    let clusters: Vec<&str> = v.routes.iter().map(cluster).collect();
    assert_eq!(
        clusters,
        [
            "outbound|9080|one|reviews.default.svc.cluster.local",
            "outbound|9080|two|reviews.default.svc.cluster.local"
        ]
    );
}

#[test]
fn relative_weights_subsets_and_ports() {
    let v = reviews_vs(
        "  - route:
    - {destination: {host: reviews, subset: v1}, weight: 3}
    - {destination: {host: web, port: {number: 8080}}, weight: 1}
    - {destination: {host: reviews, subset: v0}, weight: 0}
",
    );
    assert_eq!(
        weights(&v.routes[0]),
        [
            (
                "outbound|9080|v1|reviews.default.svc.cluster.local".to_string(),
                3
            ),
            (
                "outbound|8080||web.default.svc.cluster.local".to_string(),
                1
            )
        ]
    );
}

#[test]
fn redirect() {
    let v = reviews_vs(
        "  - redirect: {uri: /new, authority: other.example.com, port: 8443, scheme: https, redirectCode: 307}
",
    );
    let Some(Action::Redirect(r)) = &v.routes[0].action else {
        panic!("{:?}", v.routes[0].action)
    };
    assert_eq!(r.host_redirect, "other.example.com");
    assert_eq!(r.port_redirect, 8443);
    assert_eq!(
        r.path_rewrite_specifier,
        Some(PathRewriteSpecifier::PathRedirect("/new".into()))
    );
    assert_eq!(
        r.scheme_rewrite_specifier,
        Some(SchemeRewriteSpecifier::SchemeRedirect("https".into()))
    );
    assert_eq!(
        r.response_code,
        RedirectResponseCode::TemporaryRedirect as i32
    );
    let v = reviews_vs("  - redirect: {uri: /x, port: 443, scheme: https}\n");
    let Some(Action::Redirect(r)) = &v.routes[0].action else {
        panic!()
    };
    assert_eq!(r.port_redirect, 0, "no explicit :443 for https");
    assert_eq!(
        r.response_code,
        RedirectResponseCode::MovedPermanently as i32
    );
}

#[test]
fn direct_response_string_and_bytes() {
    let v = reviews_vs(
        "  - match: [{uri: {exact: /s}}]
    directResponse: {status: 418, body: {string: teapot}}
  - directResponse: {status: 200, body: {bytes: aGVsbG8=}}
",
    );
    let Some(Action::DirectResponse(d)) = &v.routes[0].action else {
        panic!()
    };
    assert_eq!(d.status, 418);
    assert_eq!(
        d.body.as_ref().unwrap().specifier,
        Some(Specifier::InlineString("teapot".into()))
    );
    let Some(Action::DirectResponse(d)) = &v.routes[1].action else {
        panic!()
    };
    assert_eq!(
        d.body.as_ref().unwrap().specifier,
        Some(Specifier::InlineBytes(b"hello".to_vec()))
    );
}

#[test]
fn rewrites() {
    let v = reviews_vs(
        "  - match: [{uri: {prefix: /api}}]
    rewrite: {uri: /v2, authority: backend.local}
    route: [{destination: {host: reviews}}]
  - rewrite: {uriRegexRewrite: {match: '^/old/(.*)$', rewrite: '/new/\\1'}}
    route: [{destination: {host: reviews}}]
",
    );
    let a = action(&v.routes[0]);
    assert_eq!(a.prefix_rewrite, "/v2");
    assert_eq!(
        a.host_rewrite_specifier,
        Some(HostRewriteSpecifier::HostRewriteLiteral(
            "backend.local".into()
        ))
    );
    let rr = action(&v.routes[1]).regex_rewrite.as_ref().unwrap();
    assert_eq!(rr.pattern.as_ref().unwrap().regex, "^/old/(.*)$");
    assert_eq!(rr.substitution, "/new/\\1");
}

#[test]
fn timeouts_default_to_none_and_follow_the_rule() {
    let v = reviews_vs(
        "  - match: [{uri: {prefix: /slow}}]
    timeout: 1.5s
    route: [{destination: {host: reviews}}]
  - route: [{destination: {host: reviews}}]
",
    );
    let t = action(&v.routes[0]).timeout.unwrap();
    assert_eq!((t.seconds, t.nanos), (1, 500_000_000));
    let t = action(&v.routes[1]).timeout.unwrap();
    assert_eq!((t.seconds, t.nanos), (0, 0), "Istio: no timeout unless set");
}

#[test]
fn default_route_has_no_stream_or_grpc_timeout() {
    let snap = snapshot(SERVICES);
    let v = vhost_of(&snap, &sidecar("default", json!({})), "9080", R);
    let a = action(&v.routes[0]);
    let msd = a.max_stream_duration.expect("max_stream_duration");
    assert_eq!(
        msd.grpc_timeout_header_max.map(|d| (d.seconds, d.nanos)),
        Some((0, 0))
    );
    assert_eq!(
        msd.max_stream_duration.map(|d| (d.seconds, d.nanos)),
        Some((0, 0))
    );
    assert_eq!(a.timeout.map(|d| d.seconds), Some(0));
}
