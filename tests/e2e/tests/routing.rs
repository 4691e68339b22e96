//! VirtualService HTTP routing, as a client sees it: every match kind, redirect, rewrite,
//! direct response, header manipulation, CORS preflight and mirroring. Each scenario has its
//! own service, file and echo servers on the mesh all tests of this file share.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mast_e2e::{Checks, Proxy, SharedMesh, shared, yaml};
use mast_test_support::{EchoServer, HttpRequest, wait_for_async};

static MESH: SharedMesh = SharedMesh::const_new();

/// Each rule of `match-svc` tags the request with `x-rule`, so the echo shows which matched.
const MATCH_VS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: match-svc, namespace: default}
spec:
  hosts: [match-svc]
  http:
  - match: [{uri: {exact: /exact}}]
    headers: {request: {set: {x-rule: uri-exact}}}
    route: [{destination: {host: match-svc}}]
  - match: [{uri: {prefix: /prefix/}}]
    headers: {request: {set: {x-rule: uri-prefix}}}
    route: [{destination: {host: match-svc}}]
  - match: [{uri: {regex: "/re/[0-9]+"}}]
    headers: {request: {set: {x-rule: uri-regex}}}
    route: [{destination: {host: match-svc}}]
  - match: [{headers: {x-match: {exact: "yes"}}}]
    headers: {request: {set: {x-rule: header-exact}}}
    route: [{destination: {host: match-svc}}]
  - match: [{headers: {x-user: {regex: "^a+$"}}}]
    headers: {request: {set: {x-rule: header-regex}}}
    route: [{destination: {host: match-svc}}]
  - match: [{queryParams: {q: {exact: "1"}}}]
    headers: {request: {set: {x-rule: query}}}
    route: [{destination: {host: match-svc}}]
  - match: [{method: {exact: POST}}]
    headers: {request: {set: {x-rule: method}}}
    route: [{destination: {host: match-svc}}]
  - match: [{authority: {exact: match-svc.default.svc.cluster.local}}]
    headers: {request: {set: {x-rule: authority}}}
    route: [{destination: {host: match-svc}}]
  - match: [{port: 8080}]
    headers: {request: {set: {x-rule: port}}}
    route: [{destination: {host: match-svc}}]
  - headers: {request: {set: {x-rule: default}}}
    route: [{destination: {host: match-svc}}]
"#;

/// An optional extra request header.
type Header = Option<(&'static str, &'static str)>;

/// (method, URL, extra header, the rule expected to match).
const MATCH_CASES: &[(&str, &str, Header, &str)] = &[
    ("GET", "http://match-svc/exact", None, "uri-exact"),
    ("GET", "http://match-svc/exact/more", None, "default"),
    ("GET", "http://match-svc/prefix/a/b", None, "uri-prefix"),
    ("GET", "http://match-svc/prefixed", None, "default"),
    ("GET", "http://match-svc/re/123", None, "uri-regex"),
    ("GET", "http://match-svc/re/abc", None, "default"),
    (
        "GET",
        "http://match-svc/",
        Some(("x-match", "yes")),
        "header-exact",
    ),
    (
        "GET",
        "http://match-svc/",
        Some(("x-match", "no")),
        "default",
    ),
    (
        "GET",
        "http://match-svc/",
        Some(("x-user", "aaa")),
        "header-regex",
    ),
    (
        "GET",
        "http://match-svc/",
        Some(("x-user", "ab")),
        "default",
    ),
    ("GET", "http://match-svc/search?q=1", None, "query"),
    ("GET", "http://match-svc/search?q=2", None, "default"),
    ("POST", "http://match-svc/", None, "method"),
    (
        "GET",
        "http://match-svc.default.svc.cluster.local/",
        None,
        "authority",
    ),
    ("GET", "http://match-svc:8080/", None, "port"),
    ("GET", "http://match-svc/", None, "default"),
];

async fn every_match_kind_selects_its_rule(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let echo = EchoServer::start("v1").unwrap();
    let ports = [("http", 80), ("http-alt", 8080)];
    let svc = yaml::http_service_on("match-svc", &ports, &[&echo]);
    let files = yaml::docs(&[svc, MATCH_VS.to_owned()]);
    mesh.apply("match.yaml", &files).await.unwrap();
    let mut checks = Checks::new();
    for (method, url, header, expected) in MATCH_CASES {
        let mut request = HttpRequest::new(method, url);
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        let got = match mesh.send(request).await {
            Ok(r) if r.status == 200 => r.header("x-echo-x-rule").unwrap_or("none").to_owned(),
            Ok(r) => format!("status {}", r.status),
            Err(e) => format!("error {e:#}"),
        };
        let what = format!("{method} {url} {header:?}: expected {expected}, got {got}");
        checks.check(what, got == *expected);
    }
    assert!(
        checks.ok(),
        "{:#?}{}",
        checks.failed(),
        mesh.explain().await
    );
}

const REDIRECT_VS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: redirect-svc, namespace: default}
spec:
  hosts: [redirect-svc]
  http:
  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, authority: moved.example.com, redirectCode: 308}
  - route: [{destination: {host: redirect-svc}}]
"#;

async fn redirect_answers_with_location(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let echo = EchoServer::start("v1").unwrap();
    let files = yaml::docs(&[
        yaml::http_service("redirect-svc", &[&echo]),
        REDIRECT_VS.into(),
    ]);
    mesh.apply("redirect.yaml", &files).await.unwrap();
    let r = mesh.get("http://redirect-svc/old/page", &[]).await.unwrap();
    let other = mesh.get("http://redirect-svc/other", &[]).await.unwrap();
    let mut checks = Checks::new();
    checks
        .check(format!("status 308, got {}", r.status), r.status == 308)
        .check(
            format!(
                "location http://moved.example.com/new, got {:?}",
                r.header("location")
            ),
            r.header("location") == Some("http://moved.example.com/new"),
        )
        .check(
            "the upstream saw only the other request",
            echo.request_count() == 1,
        )
        .check("other paths still routed", other.trimmed() == "v1");
    assert!(checks.ok(), "{:?}{}", checks.failed(), mesh.explain().await);
}

const REWRITE_VS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: rewrite-svc, namespace: default}
spec:
  hosts: [rewrite-svc]
  http:
  - match: [{uri: {prefix: /api/}}]
    rewrite: {uri: /v2/, authority: backend.internal}
    route: [{destination: {host: rewrite-svc}}]
  - route: [{destination: {host: rewrite-svc}}]
"#;

async fn rewrite_changes_uri_prefix_and_authority(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let echo = EchoServer::start("v1").unwrap();
    let files = yaml::docs(&[
        yaml::http_service("rewrite-svc", &[&echo]),
        REWRITE_VS.into(),
    ]);
    mesh.apply("rewrite.yaml", &files).await.unwrap();
    let r = mesh
        .get("http://rewrite-svc/api/items?id=7", &[])
        .await
        .unwrap();
    let plain = mesh.get("http://rewrite-svc/other", &[]).await.unwrap();
    let (path, authority) = (r.header("x-echo-path"), r.header("x-echo-authority"));
    let mut checks = Checks::new();
    checks
        .check(format!("status 200, got {}", r.status), r.status == 200)
        .check(
            format!("path /v2/items?id=7, got {path:?}"),
            path == Some("/v2/items?id=7"),
        )
        .check(
            format!("authority backend.internal, got {authority:?}"),
            authority == Some("backend.internal"),
        )
        .check(
            "other paths untouched",
            plain.header("x-echo-path") == Some("/other"),
        );
    assert!(checks.ok(), "{:?}{}", checks.failed(), mesh.explain().await);
}

const DIRECT_VS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: direct-svc, namespace: default}
spec:
  hosts: [direct-svc]
  http:
  - match: [{uri: {exact: /teapot}}]
    directResponse: {status: 418, body: {string: "short and stout"}}
  - route: [{destination: {host: direct-svc}}]
"#;

async fn direct_response_never_reaches_the_upstream(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let echo = EchoServer::start("v1").unwrap();
    let files = yaml::docs(&[yaml::http_service("direct-svc", &[&echo]), DIRECT_VS.into()]);
    mesh.apply("direct.yaml", &files).await.unwrap();
    let r = mesh.get("http://direct-svc/teapot", &[]).await.unwrap();
    let ok = r.status == 418 && r.text() == "short and stout" && echo.request_count() == 0;
    let (status, body) = (r.status, r.text());
    assert!(ok, "status {status} body {body:?}{}", mesh.explain().await);
}

const HEADERS_VS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: headers-svc, namespace: default}
spec:
  hosts: [headers-svc]
  http:
  - headers:
      request:
        set: {x-set: from-mesh}
        add: {x-add: added}
        remove: [x-secret]
      response:
        set: {x-resp-set: set-by-mesh}
        add: {x-resp-add: added-by-mesh}
        remove: [x-echo-server]
    route: [{destination: {host: headers-svc}}]
"#;

async fn headers_are_added_set_and_removed(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let echo = EchoServer::start("v1").unwrap();
    let files = yaml::docs(&[
        yaml::http_service("headers-svc", &[&echo]),
        HEADERS_VS.into(),
    ]);
    mesh.apply("headers.yaml", &files).await.unwrap();
    let sent = [("x-set", "from-client"), ("x-secret", "hunter2")];
    let r = mesh.get("http://headers-svc/", &sent).await.unwrap();
    let seen = echo.last_request().expect("the upstream got the request");
    let mut checks = Checks::new();
    checks
        .check(
            "request: x-set replaced",
            seen.header("x-set") == Some("from-mesh"),
        )
        .check(
            "request: x-add added",
            seen.header("x-add") == Some("added"),
        )
        .check(
            "request: x-secret removed",
            seen.header("x-secret").is_none(),
        )
        .check(
            "response: x-resp-set",
            r.header("x-resp-set") == Some("set-by-mesh"),
        )
        .check(
            "response: x-resp-add",
            r.header("x-resp-add") == Some("added-by-mesh"),
        )
        .check(
            "response: x-echo-server removed",
            r.header("x-echo-server").is_none(),
        )
        .check("body from v1", r.trimmed() == "v1");
    let (failed, response, request) = (checks.failed(), &r.headers, &seen.headers);
    assert!(
        checks.ok(),
        "{failed:?}; response headers {response:?}; upstream saw {request:?}{}",
        mesh.explain().await
    );
}

const CORS_VS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cors-svc, namespace: default}
spec:
  hosts: [cors-svc]
  http:
  - corsPolicy:
      allowOrigins: [{exact: "http://app.example.com"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-custom]
      exposeHeaders: [x-echo-server]
      maxAge: 24h
    route: [{destination: {host: cors-svc}}]
"#;

fn preflight(origin: &str) -> HttpRequest {
    HttpRequest::new("OPTIONS", "http://cors-svc/data")
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-custom")
}

async fn cors_preflight_is_answered_by_the_sidecar(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let echo = EchoServer::start("v1").unwrap();
    let files = yaml::docs(&[yaml::http_service("cors-svc", &[&echo]), CORS_VS.into()]);
    mesh.apply("cors.yaml", &files).await.unwrap();
    let origin = "http://app.example.com";
    let allowed = mesh.send(preflight(origin)).await.unwrap();
    // An allowed preflight is answered by the sidecar; others go on to the upstream.
    let upstream_calls = echo.request_count();
    let denied = mesh
        .send(preflight("http://evil.example.com"))
        .await
        .unwrap();
    let simple = mesh
        .get("http://cors-svc/data", &[("origin", origin)])
        .await
        .unwrap();
    let h = |r: &mast_test_support::HttpResponse, n: &str| r.header(n).unwrap_or("").to_owned();
    let mut checks = Checks::new();
    checks
        .check("preflight 200", allowed.status == 200)
        .check(
            "allow-origin",
            h(&allowed, "access-control-allow-origin") == origin,
        )
        .check(
            "allow-methods has POST",
            h(&allowed, "access-control-allow-methods").contains("POST"),
        )
        .check(
            "allow-headers",
            h(&allowed, "access-control-allow-headers").contains("x-custom"),
        )
        .check(
            "max-age 86400",
            h(&allowed, "access-control-max-age") == "86400",
        )
        .check("preflights stay in the sidecar", upstream_calls == 0)
        .check(
            "other origins not allowed",
            h(&denied, "access-control-allow-origin").is_empty(),
        )
        .check(
            "simple request allowed",
            h(&simple, "access-control-allow-origin") == origin,
        )
        .check(
            "expose-headers",
            h(&simple, "access-control-expose-headers") == "x-echo-server",
        );
    let (failed, headers) = (checks.failed(), &allowed.headers);
    assert!(
        checks.ok(),
        "{failed:?}; preflight headers {headers:?}{}",
        mesh.explain().await
    );
}

const MIRROR_VS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mirror-svc, namespace: default}
spec:
  hosts: [mirror-svc]
  http:
  - route: [{destination: {host: mirror-svc}}]
    mirror: {host: mirror-shadow}
    mirrorPercentage: {value: 100}
"#;

async fn mirror_copies_requests_to_the_shadow(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let (primary, shadow) = (
        EchoServer::start("v1").unwrap(),
        EchoServer::start("v2").unwrap(),
    );
    let files = yaml::docs(&[
        yaml::http_service("mirror-svc", &[&primary]),
        yaml::http_service("mirror-shadow", &[&shadow]),
        MIRROR_VS.to_owned(),
    ]);
    mesh.apply("mirror.yaml", &files).await.unwrap();
    let tally = mesh
        .tally(20, |i| {
            HttpRequest::get(&format!("http://mirror-svc/item/{i}"))
        })
        .await;
    let all_copied = || async { shadow.request_count() >= 20 };
    let copied = wait_for_async(all_copied, Duration::from_secs(5)).await;
    let seen = shadow.requests();
    let mut paths: Vec<&str> = seen.iter().map(|r| r.path.as_str()).collect();
    paths.sort_unstable();
    paths.dedup();
    let mut checks = Checks::new();
    checks
        .check(
            format!("the client sees only v1: {tally}"),
            tally.count("v1") == 20,
        )
        .check("the primary got 20", primary.request_count() == 20)
        .check(
            format!("the shadow got 20, got {}", shadow.request_count()),
            copied,
        )
        .check("each request copied once", paths.len() == 20)
        // Istio's current semantics: the copy keeps the authority (no `-shadow` suffix).
        .check(
            "copies keep the authority",
            seen.iter().all(|r| r.authority == "mirror-svc"),
        );
    assert!(checks.ok(), "{:?}{}", checks.failed(), mesh.explain().await);
}

mast_e2e::both! {
    every_match_kind_selects_its_rule,
    redirect_answers_with_location,
    rewrite_changes_uri_prefix_and_authority,
    direct_response_never_reaches_the_upstream,
    headers_are_added_set_and_removed,
    cors_preflight_is_answered_by_the_sidecar,
    mirror_copies_requests_to_the_shadow,
}
