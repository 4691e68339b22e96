//! Istio AuthorizationPolicies → mastd's generated RBAC filters, run by a real Envoy and by
//! mast-proxy (skipped without Envoy): the same plaintext requests (methods, paths, hosts,
//! headers, x-forwarded-for) must get the same answers.

use super::envoy::start_envoy;

/// Extra request headers.
type Headers = Vec<(&'static str, String)>;
use super::*;

const POLICIES: &str = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: foo}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*", "*.secret"], notMethods: [HEAD]}}]
  - when: [{key: "request.headers[x-block]", values: ["yes", "y*"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: foo}
spec:
  rules:
  - to: [{operation: {methods: [GET, HEAD], hosts: ["svc", "*.example.com"], notPaths: ["/private*"]}}]
  - from: [{source: {remoteIpBlocks: ["192.168.0.0/16"], notRemoteIpBlocks: ["192.168.9.0/24"]}}]
  - to: [{operation: {paths: ["/api/*", "/exact"]}}]
    when: [{key: "request.headers[x-user]", notValues: [mallory]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit, namespace: foo}
spec:
  action: AUDIT
  rules: [{to: [{operation: {methods: [POST]}}]}]
"#;

#[tokio::test]
async fn generated_policies_decide_like_envoy() {
    if mast_test_support::envoy_binary().is_none() {
        eprintln!("no Envoy binary: skipping");
        return;
    }
    let filters = generated(POLICIES);
    let as_json: Vec<Value> = filters
        .iter()
        .map(|f| mast_xds_json::message_to_json(f).expect("filter json"))
        .collect();
    let upstream = EchoServer::start("diff").expect("echo");
    let fields = json!({"normalize_path": true});
    let (envoy, _guard, _dir) = start_envoy(upstream.port(), &fields, as_json)
        .await
        .expect("envoy");
    let mast = start(filters, fields, None).await;
    let h = |pairs: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
    };
    #[rustfmt::skip]
    let cases: Vec<(&str, &str, Headers)> = vec![
        ("GET", "/get", vec![]),
        ("HEAD", "/get", vec![]),
        ("POST", "/get", vec![]),
        ("GET", "/admin/x", vec![]),
        ("HEAD", "/admin/x", vec![]),
        ("GET", "/files/a.secret", vec![]),
        ("GET", "/a/../admin", vec![]),
        ("GET", "/private/x", vec![]),
        ("GET", "/get", h(&[("x-block", "yes")])),
        ("GET", "/get", h(&[("x-block", "yolo")])),
        ("GET", "/get", h(&[("x-block", "no")])),
        ("POST", "/api/v1/items", vec![]),
        ("POST", "/api/v1/x/items", vec![]),
        ("POST", "/exact", h(&[("x-user", "alice")])),
        ("POST", "/exact", h(&[("x-user", "mallory")])),
        ("POST", "/x", h(&[("x-forwarded-for", "192.168.1.1")])),
        ("POST", "/x", h(&[("x-forwarded-for", "192.168.9.1")])),
        ("POST", "/x", h(&[("x-forwarded-for", "192.168.1.1, 10.0.0.1")])),
    ];
    let hosts = ["svc", "a.example.com", "A.EXAMPLE.COM", "other"];
    let mut diffs = Vec::new();
    for host in hosts {
        for (method, path, headers) in &cases {
            let want = raw_with(envoy, method, host, path, headers).await;
            let got = raw_with(mast.addr, method, host, path, headers).await;
            if got != want {
                diffs.push(format!(
                    "{method} {host}{path} {headers:?}\n  envoy: {want:?}\n  mast:  {got:?}"
                ));
            }
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

/// A raw request with a method and host of choice: (status, body).
async fn raw_with(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, String)],
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let local = !text.to_ascii_lowercase().contains("x-echo-server");
    (
        status,
        if local {
            body.to_owned()
        } else {
            String::new()
        },
    )
}
