//! What the Kubernetes Gateway API conversion asks of routes (Istio's "gateway semantics"):
//! `path_separated_prefix` matches, redirects with `prefix_rewrite` (ReplacePrefixMatch) and
//! the regex rewrite that removes a matched prefix (ReplacePrefixMatch `/`).

use http::StatusCode;
use serde_json::json;

use super::{Action, Req, routes, selected};
use crate::route::RouteTable;

/// The Location a request to `path` is redirected to by the route it selects.
fn location(t: &RouteTable, path: &str) -> Option<(StatusCode, String)> {
    let req = Req::get("gw.example.com", path);
    let route = t.select(&req.head())?;
    match &route.action {
        Action::Redirect(r) => {
            let (s, v) = r.location(&req.head());
            Some((s, v.to_str().ok()?.to_owned()))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn redirect_prefix_rewrite_swaps_the_matched_prefix() {
    let t = routes(json!([
        {"name": "sep", "match": {"path_separated_prefix": "/original-prefix"},
         "redirect": {"prefix_rewrite": "/replacement-prefix", "response_code": "FOUND"}},
        {"name": "plain", "match": {"prefix": "/p/"}, "redirect": {"prefix_rewrite": "/q/"}},
        {"name": "exact", "match": {"path": "/old"}, "redirect": {"prefix_rewrite": "/new", "strip_query": true}},
    ]))
    .unwrap();
    let loc = |p: &str| location(&t, p).map(|(_, l)| l);
    assert_eq!(
        location(&t, "/original-prefix/lemon"),
        Some((
            StatusCode::FOUND,
            "http://gw.example.com/replacement-prefix/lemon".into()
        ))
    );
    assert_eq!(
        loc("/original-prefix").as_deref(),
        Some("http://gw.example.com/replacement-prefix")
    );
    assert_eq!(
        loc("/original-prefix/a?x=1").as_deref(),
        Some("http://gw.example.com/replacement-prefix/a?x=1"),
        "the query is kept"
    );
    assert_eq!(
        loc("/original-prefixes"),
        None,
        "path elements, not characters"
    );
    assert_eq!(
        loc("/p/a/b").as_deref(),
        Some("http://gw.example.com/q/a/b")
    );
    assert_eq!(
        loc("/old?x=1").as_deref(),
        Some("http://gw.example.com/new"),
        "an exact match swaps the whole path; strip_query drops the query"
    );
}

#[test]
fn redirect_prefix_rewrite_refusals() {
    let err = routes(json!([{"name": "r", "match": {"prefix": "/"},
        "redirect": {"regex_rewrite": {"pattern": {"regex": "a"}, "substitution": "b"}}}]))
    .unwrap_err();
    assert!(err.to_string().contains("redirect.regex_rewrite"), "{err}");
}

#[test]
fn path_separated_prefix_and_prefix_removal() {
    // HTTPRoute PathPrefix /foo with URLRewrite ReplacePrefixMatch "/" as Istio emits it.
    let t = routes(json!([
        {"name": "foo", "match": {"path_separated_prefix": "/foo"},
         "route": {"cluster": "c", "regex_rewrite": {"pattern": {"regex": "^/foo(/?)(.*)"}, "substitution": "/\\2"}}},
        {"name": "rest", "match": {"prefix": "/"}, "route": {"cluster": "other"}},
    ]))
    .unwrap();
    let pick = |p: &str| selected(&t, &Req::get("h", p));
    assert_eq!(pick("/foo").as_deref(), Some("foo"));
    assert_eq!(pick("/foo/").as_deref(), Some("foo"));
    assert_eq!(pick("/foo/bar").as_deref(), Some("foo"));
    assert_eq!(pick("/foo?x").as_deref(), Some("foo"));
    assert_eq!(pick("/foobar").as_deref(), Some("rest"));
    let rewrite = |p: &str| {
        let req = Req::get("h", p);
        t.select(&req.head()).and_then(|r| r.rewritten_path(p))
    };
    assert_eq!(rewrite("/foo").as_deref(), Some("/"));
    assert_eq!(rewrite("/foo/").as_deref(), Some("/"));
    assert_eq!(rewrite("/foo/bar?q=1").as_deref(), Some("/bar?q=1"));
}

#[test]
fn cluster_not_found_status() {
    let t = routes(json!([
        {"name": "gw", "match": {"prefix": "/a"}, "route": {"cluster": "c", "cluster_not_found_response_code": "INTERNAL_SERVER_ERROR"}},
        {"name": "nf", "match": {"prefix": "/b"}, "route": {"cluster": "c", "cluster_not_found_response_code": "NOT_FOUND"}},
        {"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "c"}},
    ]))
    .unwrap();
    let status = |i: usize| super::forward(&t.vhosts[0].routes[i]).cluster_not_found;
    assert_eq!(status(0), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(status(1), StatusCode::NOT_FOUND);
    assert_eq!(status(2), StatusCode::SERVICE_UNAVAILABLE);
}
