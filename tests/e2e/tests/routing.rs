//! VirtualService HTTP routing, as a client sees it: every match kind, redirect, rewrite,
//! direct response, header manipulation, CORS preflight and mirroring. Each scenario has its
//! own service, file and echo servers on the mesh all tests of this file share.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mast_e2e::{SharedMesh, shared, yaml};
use mast_test_support::{EchoServer, HttpRequest, wait_for_async};

static MESH: SharedMesh = SharedMesh::const_new();

/// Each rule of `match-svc` tags the request with `x-rule` so the echo shows which matched.
const MATCH_VS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: match-svc
  namespace: default
spec:
  hosts: [match-svc]
  http:
  - name: uri-exact
    match: [{uri: {exact: /exact}}]
    headers: {request: {set: {x-rule: uri-exact}}}
    route: [{destination: {host: match-svc}}]
  - name: uri-prefix
    match: [{uri: {prefix: /prefix/}}]
    headers: {request: {set: {x-rule: uri-prefix}}}
    route: [{destination: {host: match-svc}}]
  - name: uri-regex
    match: [{uri: {regex: "/re/[0-9]+"}}]
    headers: {request: {set: {x-rule: uri-regex}}}
    route: [{destination: {host: match-svc}}]
  - name: header-exact
    match: [{headers: {x-match: {exact: "yes"}}}]
    headers: {request: {set: {x-rule: header-exact}}}
    route: [{destination: {host: match-svc}}]
  - name: header-regex
    match: [{headers: {x-user: {regex: "^a+$"}}}]
    headers: {request: {set: {x-rule: header-regex}}}
    route: [{destination: {host: match-svc}}]
  - name: query
    match: [{queryParams: {q: {exact: "1"}}}]
    headers: {request: {set: {x-rule: query}}}
    route: [{destination: {host: match-svc}}]
  - name: method
    match: [{method: {exact: POST}}]
    headers: {request: {set: {x-rule: method}}}
    route: [{destination: {host: match-svc}}]
  - name: authority
    match: [{authority: {exact: match-svc.default.svc.cluster.local}}]
    headers: {request: {set: {x-rule: authority}}}
    route: [{destination: {host: match-svc}}]
  - name: port
    match: [{port: 8080}]
    headers: {request: {set: {x-rule: port}}}
    route: [{destination: {host: match-svc}}]
  - name: default
    headers: {request: {set: {x-rule: default}}}
    route: [{destination: {host: match-svc}}]
"#;

#[tokio::test]
async fn every_match_kind_selects_its_rule() {
    let mesh = shared(&MESH).await;
    let echo = EchoServer::start("v1").unwrap();
    let svc = yaml::http_service_on("match-svc", &[("http", 80), ("http-alt", 8080)], &[&echo]);
    mesh.apply("match.yaml", &yaml::docs(&[svc, MATCH_VS.to_owned()]))
        .await
        .unwrap();
    let base = "http://match-svc";
    let cases: Vec<(HttpRequest, &str)> = vec![
        (HttpRequest::get(&format!("{base}/exact")), "uri-exact"),
        (HttpRequest::get(&format!("{base}/exact/more")), "default"),
        (
            HttpRequest::get(&format!("{base}/prefix/a/b")),
            "uri-prefix",
        ),
        (HttpRequest::get(&format!("{base}/prefixed")), "default"),
        (HttpRequest::get(&format!("{base}/re/123")), "uri-regex"),
        (HttpRequest::get(&format!("{base}/re/abc")), "default"),
        (
            HttpRequest::get(&format!("{base}/")).header("x-match", "yes"),
            "header-exact",
        ),
        (
            HttpRequest::get(&format!("{base}/")).header("x-match", "no"),
            "default",
        ),
        (
            HttpRequest::get(&format!("{base}/")).header("x-user", "aaa"),
            "header-regex",
        ),
        (
            HttpRequest::get(&format!("{base}/")).header("x-user", "ab"),
            "default",
        ),
        (HttpRequest::get(&format!("{base}/search?q=1")), "query"),
        (HttpRequest::get(&format!("{base}/search?q=2")), "default"),
        (
            HttpRequest::new("POST", &format!("{base}/")).body("x"),
            "method",
        ),
        (
            HttpRequest::get("http://match-svc.default.svc.cluster.local/"),
            "authority",
        ),
        (HttpRequest::get("http://match-svc:8080/"), "port"),
        (HttpRequest::get(&format!("{base}/")), "default"),
    ];
    let mut wrong = Vec::new();
    for (request, expected) in cases {
        let label = format!("{request:?}");
        let got = match mesh.send(request).await {
            Ok(r) if r.status == 200 => r.header("x-echo-x-rule").unwrap_or("none").to_owned(),
            Ok(r) => format!("status {}", r.status),
            Err(e) => format!("error {e:#}"),
        };
        if got != expected {
            wrong.push(format!("{label}: expected rule {expected}, got {got}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{}{}",
        wrong.join("\n"),
        mesh.explain().await
    );
}

#[tokio::test]
async fn redirect_answers_with_location() {
    let mesh = shared(&MESH).await;
    let echo = EchoServer::start("v1").unwrap();
    let vs = r#"
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
    mesh.apply(
        "redirect.yaml",
        &yaml::docs(&[yaml::http_service("redirect-svc", &[&echo]), vs.into()]),
    )
    .await
    .unwrap();
    let r = mesh.get("http://redirect-svc/old/page", &[]).await.unwrap();
    let location = r.header("location").unwrap_or_default().to_owned();
    let ok =
        r.status == 308 && location == "http://moved.example.com/new" && echo.request_count() == 0;
    assert!(
        ok,
        "status {} location {location:?}, upstream saw {}{}",
        r.status,
        echo.request_count(),
        mesh.explain().await
    );
    let other = mesh.get("http://redirect-svc/other", &[]).await.unwrap();
    assert_eq!(other.trimmed(), "v1", "{}", mesh.explain().await);
}

#[tokio::test]
async fn rewrite_changes_uri_prefix_and_authority() {
    let mesh = shared(&MESH).await;
    let echo = EchoServer::start("v1").unwrap();
    let vs = r#"
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
    mesh.apply(
        "rewrite.yaml",
        &yaml::docs(&[yaml::http_service("rewrite-svc", &[&echo]), vs.into()]),
    )
    .await
    .unwrap();
    let r = mesh
        .get("http://rewrite-svc/api/items?id=7", &[])
        .await
        .unwrap();
    let path = r.header("x-echo-path").unwrap_or_default().to_owned();
    let authority = r.header("x-echo-authority").unwrap_or_default().to_owned();
    let ok = r.status == 200 && path == "/v2/items?id=7" && authority == "backend.internal";
    assert!(
        ok,
        "status {} path {path:?} authority {authority:?}{}",
        r.status,
        mesh.explain().await
    );
    let plain = mesh.get("http://rewrite-svc/other", &[]).await.unwrap();
    assert_eq!(plain.header("x-echo-path"), Some("/other"));
}

#[tokio::test]
async fn direct_response_never_reaches_the_upstream() {
    let mesh = shared(&MESH).await;
    let echo = EchoServer::start("v1").unwrap();
    let vs = r#"
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
    mesh.apply(
        "direct.yaml",
        &yaml::docs(&[yaml::http_service("direct-svc", &[&echo]), vs.into()]),
    )
    .await
    .unwrap();
    let r = mesh.get("http://direct-svc/teapot", &[]).await.unwrap();
    let ok = r.status == 418 && r.text() == "short and stout" && echo.request_count() == 0;
    assert!(
        ok,
        "status {} body {:?}{}",
        r.status,
        r.text(),
        mesh.explain().await
    );
}

#[tokio::test]
async fn headers_are_added_set_and_removed() {
    let mesh = shared(&MESH).await;
    let echo = EchoServer::start("v1").unwrap();
    let vs = r#"
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
    mesh.apply(
        "headers.yaml",
        &yaml::docs(&[yaml::http_service("headers-svc", &[&echo]), vs.into()]),
    )
    .await
    .unwrap();
    let headers = [("x-set", "from-client"), ("x-secret", "hunter2")];
    let r = mesh.get("http://headers-svc/", &headers).await.unwrap();
    let seen = echo.last_request();
    let upstream = |name: &str| {
        seen.as_ref()
            .and_then(|s| s.header(name))
            .map(str::to_owned)
    };
    let checks = [
        (
            "request x-set replaced",
            upstream("x-set").as_deref() == Some("from-mesh"),
        ),
        (
            "request x-add added",
            upstream("x-add").as_deref() == Some("added"),
        ),
        ("request x-secret removed", upstream("x-secret").is_none()),
        (
            "response x-resp-set",
            r.header("x-resp-set") == Some("set-by-mesh"),
        ),
        (
            "response x-resp-add",
            r.header("x-resp-add") == Some("added-by-mesh"),
        ),
        (
            "response x-echo-server removed",
            r.header("x-echo-server").is_none(),
        ),
        ("body from v1", r.trimmed() == "v1"),
    ];
    let failed: Vec<&str> = checks
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(what, _)| *what)
        .collect();
    assert!(
        failed.is_empty(),
        "failed: {failed:?}; response headers {:?}; upstream saw {:?}{}",
        r.headers,
        seen.map(|s| s.headers),
        mesh.explain().await
    );
}

#[tokio::test]
async fn cors_preflight_is_answered_by_the_sidecar() {
    let mesh = shared(&MESH).await;
    let echo = EchoServer::start("v1").unwrap();
    let vs = r#"
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
    mesh.apply(
        "cors.yaml",
        &yaml::docs(&[yaml::http_service("cors-svc", &[&echo]), vs.into()]),
    )
    .await
    .unwrap();
    let preflight = |origin: &str| {
        HttpRequest::new("OPTIONS", "http://cors-svc/data")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "x-custom")
    };
    let allowed = mesh
        .send(preflight("http://app.example.com"))
        .await
        .unwrap();
    let methods = allowed
        .header("access-control-allow-methods")
        .unwrap_or_default()
        .to_owned();
    let ok = allowed.status == 200
        && allowed.header("access-control-allow-origin") == Some("http://app.example.com")
        && methods.contains("POST")
        && allowed
            .header("access-control-allow-headers")
            .is_some_and(|h| h.contains("x-custom"))
        && allowed.header("access-control-max-age") == Some("86400")
        && echo.request_count() == 0;
    assert!(
        ok,
        "preflight: status {} headers {:?}, upstream saw {}{}",
        allowed.status,
        allowed.headers,
        echo.request_count(),
        mesh.explain().await
    );
    let denied = mesh
        .send(preflight("http://evil.example.com"))
        .await
        .unwrap();
    assert!(
        denied.header("access-control-allow-origin").is_none(),
        "{:?}",
        denied.headers
    );
    let simple = mesh
        .get(
            "http://cors-svc/data",
            &[("origin", "http://app.example.com")],
        )
        .await
        .unwrap();
    assert_eq!(
        simple.header("access-control-allow-origin"),
        Some("http://app.example.com")
    );
    assert_eq!(
        simple.header("access-control-expose-headers"),
        Some("x-echo-server")
    );
}

#[tokio::test]
async fn mirror_copies_requests_to_the_shadow() {
    let mesh = shared(&MESH).await;
    let primary = EchoServer::start("v1").unwrap();
    let shadow = EchoServer::start("v2").unwrap();
    let vs = r#"
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
    let files = yaml::docs(&[
        yaml::http_service("mirror-svc", &[&primary]),
        yaml::http_service("mirror-shadow", &[&shadow]),
        vs.to_owned(),
    ]);
    mesh.apply("mirror.yaml", &files).await.unwrap();
    let tally = mesh
        .tally(20, |i| {
            HttpRequest::get(&format!("http://mirror-svc/item/{i}"))
        })
        .await;
    let copied = wait_for_async(
        || async { shadow.request_count() >= 20 },
        Duration::from_secs(5),
    )
    .await;
    let shadow_seen = shadow.requests();
    // Istio's current semantics: the copy keeps the original authority (no `-shadow` suffix).
    let authorities_ok = shadow_seen.iter().all(|r| r.authority == "mirror-svc");
    let ok = tally.count("v1") == 20 && copied && primary.request_count() == 20 && authorities_ok;
    let authorities: Vec<&str> = shadow_seen
        .iter()
        .take(3)
        .map(|r| r.authority.as_str())
        .collect();
    assert!(
        ok,
        "client saw {tally}; primary got {}, shadow got {} (authorities {authorities:?}){}",
        primary.request_count(),
        shadow.request_count(),
        mesh.explain().await
    );
    let mut paths: Vec<String> = shadow_seen.iter().map(|r| r.path.clone()).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(
        paths.len(),
        20,
        "the shadow saw each request once: {paths:?}"
    );
}
