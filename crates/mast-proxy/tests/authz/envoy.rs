//! Differential test against a real Envoy (skipped when none is installed): the same HCM
//! (path normalisation, `jwt_authn`, `rbac`) in Envoy and in mast-proxy, the same raw
//! HTTP/1.1 requests to both, and the same answers expected — status, local-reply body,
//! `www-authenticate`, and the path and headers the upstream received.

use std::process::Command;

use envoy_types::pb::envoy::config::route::v3::RouteMatch;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::jwt_provider::JwksSourceSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::jwt_requirement::RequiresType;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::requirement_rule::RequirementType;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtProvider, JwtRequirement, JwtRequirementOrList, RequirementRule,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType;
use envoy_types::pb::google::protobuf::{Any, Empty};
use mast_test_support::{ProcessGuard, TempDir, free_port};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

const ISSUER: &str = "https://issuer.example.com";

/// The jwt_authn config in Envoy's JSON.
fn jwt_json() -> Value {
    json!({"name": "envoy.filters.http.jwt_authn", "typed_config": {
        "@type": mast_proxy::hcm::jwt::JWT_AUTHN_TYPE,
        "providers": {"origins-0": {"issuer": ISSUER, "audiences": ["web"],
            "forward_payload_header": "x-jwt-payload", "payload_in_metadata": "payload",
            "local_jwks": {"inline_string": RSA_JWKS}}},
        "rules": [{"match": {"prefix": "/"}, "requires": {"requires_any": {"requirements": [
            {"provider_name": "origins-0"}, {"allow_missing": {}}]}}}]}})
}

/// The same config as a proto, for mast-proxy.
fn jwt_filter() -> HttpFilter {
    let provider = JwtProvider {
        issuer: ISSUER.to_owned(),
        audiences: vec!["web".to_owned()],
        forward_payload_header: "x-jwt-payload".to_owned(),
        payload_in_metadata: "payload".to_owned(),
        jwks_source_specifier: Some(JwksSourceSpecifier::LocalJwks(
            envoy_types::pb::envoy::config::core::v3::DataSource {
                specifier: Some(
                    envoy_types::pb::envoy::config::core::v3::data_source::Specifier::InlineString(
                        RSA_JWKS.to_owned(),
                    ),
                ),
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    let q = |t| JwtRequirement {
        requires_type: Some(t),
    };
    let config = JwtAuthentication {
        providers: [("origins-0".to_owned(), provider)].into_iter().collect(),
        rules: vec![RequirementRule {
            r#match: Some(RouteMatch {
                path_specifier: Some(PathSpecifier::Prefix("/".to_owned())),
                ..Default::default()
            }),
            requirement_type: Some(RequirementType::Requires(q(RequiresType::RequiresAny(
                JwtRequirementOrList {
                    requirements: vec![
                        q(RequiresType::ProviderName("origins-0".to_owned())),
                        q(RequiresType::AllowMissing(Empty {})),
                    ],
                },
            )))),
        }],
        ..Default::default()
    };
    HttpFilter {
        name: "envoy.filters.http.jwt_authn".to_owned(),
        config_type: Some(ConfigType::TypedConfig(Any {
            type_url: mast_proxy::hcm::jwt::JWT_AUTHN_TYPE.to_owned(),
            value: config.encode_to_vec(),
        })),
        ..Default::default()
    }
}

/// A DENY RBAC filter: paths under `/admin`, and requests with `x-deny`.
fn rbac_json() -> Value {
    json!({"name": "envoy.filters.http.rbac", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
        "rules": {"action": "DENY", "policies": {"deny": {
            "permissions": [{"url_path": {"path": {"prefix": "/admin"}}},
                {"header": {"name": "x-deny", "present_match": true}}],
            "principals": [{"any": true}]}}}}})
}

/// HCM fields both proxies share: Istio's BASE, MERGE_SLASHES and
/// DECODE_AND_MERGE_SLASHES normalisations.
fn hcm_fields() -> [Value; 5] {
    [
        json!({"normalize_path": true}),
        json!({"normalize_path": true, "merge_slashes": true}),
        json!({"normalize_path": true, "merge_slashes": true,
            "path_with_escaped_slashes_action": "UNESCAPE_AND_FORWARD"}),
        json!({"normalize_path": true, "path_with_escaped_slashes_action": "REJECT_REQUEST"}),
        json!({"normalize_path": true, "path_with_escaped_slashes_action": "UNESCAPE_AND_REDIRECT"}),
    ]
}

/// Starts Envoy with the HCM on a free port; `None` without an Envoy binary.
pub(super) async fn start_envoy(
    upstream: u16,
    fields: &Value,
    filters: Vec<Value>,
) -> Option<(SocketAddr, ProcessGuard, TempDir)> {
    let envoy = mast_test_support::envoy_binary()?;
    let port = free_port();
    let mut hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "diff",
        // Envoy waits 1 s for the client to close after a local reply; not what is compared.
        "delayed_close_timeout": "0s",
        "route_config": {"name": "r", "virtual_hosts": [{"name": "all", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "up"}}]}]},
        "http_filters": [],
    });
    if let (Some(h), Some(e)) = (hcm.as_object_mut(), fields.as_object()) {
        h.extend(e.clone());
    }
    let mut filters = filters;
    filters.push(json!({"name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}));
    hcm["http_filters"] = Value::Array(filters);
    let bootstrap = json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{"name": "l", "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}]}],
            "clusters": [{"name": "up", "type": "STATIC", "connect_timeout": "1s",
                "load_assignment": {"cluster_name": "up", "endpoints": [{"lb_endpoints": [{"endpoint":
                    {"address": {"socket_address": {"address": "127.0.0.1", "port_value": upstream}}}}]}]}}]}});
    let dir = TempDir::new("authz-envoy").expect("temp dir");
    let config = dir.join("envoy.json");
    std::fs::write(&config, bootstrap.to_string()).expect("write bootstrap");
    let log = std::fs::File::create(dir.join("envoy.log")).expect("log");
    let mut cmd = Command::new(envoy);
    cmd.arg("-c")
        .arg(&config)
        .args([
            "--use-dynamic-base-id",
            "--concurrency",
            "1",
            "-l",
            "warning",
        ])
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    let guard = ProcessGuard::spawn(&mut cmd).expect("spawn envoy");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let up = mast_test_support::wait_for_async(
        || async move { TcpStream::connect(addr).await.is_ok() },
        Duration::from_secs(20),
    )
    .await;
    let text = std::fs::read_to_string(dir.join("envoy.log")).unwrap_or_default();
    assert!(up, "envoy did not start: {text}");
    Some((addr, guard, dir))
}

/// What a client and the app saw for one request.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    status: u16,
    body: String,
    www_authenticate: Option<String>,
    location: Option<String>,
    upstream_path: Option<String>,
    upstream_payload: Option<String>,
}

async fn raw(addr: SocketAddr, path: &str, headers: &[(&str, String)]) -> Seen {
    let mut req = format!("GET {path} HTTP/1.1\r\nhost: svc\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let local = header("x-echo-server").is_none();
    Seen {
        status,
        body: if local {
            body.to_owned()
        } else {
            String::new()
        },
        www_authenticate: header("www-authenticate"),
        location: header("location"),
        upstream_path: header("x-echo-path"),
        upstream_payload: header("x-echo-x-jwt-payload"),
    }
}

#[tokio::test]
async fn mast_proxy_answers_like_envoy() {
    if mast_test_support::envoy_binary().is_none() {
        eprintln!("no Envoy binary: skipping the differential test");
        return;
    }
    for fields in hcm_fields() {
        compare(&fields).await;
    }
}

async fn compare(fields: &Value) {
    let upstream = EchoServer::start("diff").expect("echo");
    let Some((envoy, _guard, _dir)) =
        start_envoy(upstream.port(), fields, vec![jwt_json(), rbac_json()]).await
    else {
        return;
    };
    let rbac: HttpFilter = decode(rbac_json());
    let mast = start(vec![jwt_filter(), rbac], fields.clone(), None).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let token = |c: Value| format!("Bearer {}", sign(c));
    let good = json!({"iss": ISSUER, "sub": "alice", "aud": "web", "exp": now + 600});
    let alice = sign(good.clone());
    let (input, _) = sign(json!({"iss": ISSUER, "sub": "eve", "aud": "web"}))
        .rsplit_once('.')
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .expect("jwt");
    let forged = format!("Bearer {input}.{}", alice.rsplit_once('.').expect("jwt").1);
    let auth = |v: String| vec![("authorization", v)];
    #[rustfmt::skip]
    let mut cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("/", vec![]), ("/app/../admin", vec![]), ("/app//", vec![]), ("/app/%2f", vec![]),
        ("/app%2f/", vec![]), ("/xyz%30..//abc", vec![]), ("/app/%2E./admin", vec![]),
        ("/%2Fapp%5cadmin%5Cabc", vec![]), ("/app//../../admin", vec![]),
        ("/%c0%2e%c0%2e/admin", vec![]), ("/..;/admin", vec![]), ("/admin%00", vec![]),
        ("/a/b?x=/../admin", vec![]), ("/%61dmin", vec![]), ("/Admin", vec![]),
        ("/get", vec![("x-deny", "1".to_owned())]),
        ("/get", auth(format!("Bearer {alice}"))),
        ("/get", auth(token(json!({"iss": ISSUER, "sub": "a", "aud": "web", "exp": now - 3600})))),
        ("/get", auth(token(json!({"iss": ISSUER, "sub": "a", "aud": "web", "nbf": now + 3600})))),
        ("/get", auth(token(json!({"iss": ISSUER, "sub": "a", "aud": "mobile"})))),
        ("/get", auth(token(json!({"iss": "https://other", "sub": "a"})))),
        ("/get", auth(forged)),
        ("/get", auth("Bearer not-a-jwt".to_owned())),
        ("/get?access_token=x.y.z", vec![]),
        ("/get", vec![("x-jwt-payload", "forged".to_owned())]),
    ];
    let paths = [
        "/..;/x",
        "/a/..;foo/x",
        "/a/.;foo/x",
        "/a/..%3b/x",
        "/a/%2e.;/x",
        "/a/b/..;?q",
        "/a/...;/x",
        "/a/b;/../x",
        "/a\\b",
        "/a%5Cb",
        "/a%7eb",
        "/a%41b",
        "/a%2Fb",
        "/a%ZZ",
        "/x;y",
        "/a/%2E%2E/x",
    ];
    cases.extend(paths.iter().map(|p| (*p, Vec::new())));
    let mut diffs = Vec::new();
    for (path, headers) in &cases {
        let want = raw(envoy, path, headers).await;
        let got = raw(mast.addr, path, headers).await;
        if got != want {
            diffs.push(format!(
                "{path} {headers:?}\n  envoy: {want:?}\n  mast:  {got:?}"
            ));
        }
    }
    assert!(diffs.is_empty(), "{fields}:\n{}", diffs.join("\n"));
}
