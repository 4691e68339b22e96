//! `remote_jwks`: keys fetched through a cluster, cached for `cache_duration`, and a
//! failed fetch rejecting tokens with Envoy's `Jwks remote fetch is failed`.

use std::sync::atomic::{AtomicU64, Ordering};

use envoy_types::pb::envoy::config::core::v3::HttpUri;
use envoy_types::pb::envoy::config::core::v3::http_uri::HttpUpstreamType;
use envoy_types::pb::envoy::config::route::v3::RouteMatch;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::jwt_provider::JwksSourceSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::jwt_requirement::RequiresType;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::requirement_rule::RequirementType;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtProvider, JwtRequirement, RemoteJwks, RequirementRule,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType;
use envoy_types::pb::google::protobuf::{Any, Duration as PbDuration};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// A JWKS server on 127.0.0.1 answering every request with the test keys; counts requests.
async fn jwks_server() -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hits = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&hits);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    RSA_JWKS.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(RSA_JWKS.as_bytes()).await;
            });
        }
    });
    (port, hits)
}

/// A jwt_authn filter whose provider fetches keys from `cluster`; the token is required.
fn remote_filter(cluster: &str) -> HttpFilter {
    let provider = JwtProvider {
        issuer: "https://issuer.example.com".to_owned(),
        jwks_source_specifier: Some(JwksSourceSpecifier::RemoteJwks(RemoteJwks {
            http_uri: Some(HttpUri {
                uri: "http://jwks.example.com/keys".to_owned(),
                timeout: Some(PbDuration {
                    seconds: 1,
                    nanos: 0,
                }),
                http_upstream_type: Some(HttpUpstreamType::Cluster(cluster.to_owned())),
            }),
            cache_duration: Some(PbDuration {
                seconds: 300,
                nanos: 0,
            }),
            ..Default::default()
        })),
        ..Default::default()
    };
    let config = JwtAuthentication {
        providers: [("p".to_owned(), provider)].into_iter().collect(),
        rules: vec![RequirementRule {
            r#match: Some(RouteMatch {
                path_specifier: Some(PathSpecifier::Prefix("/".to_owned())),
                ..Default::default()
            }),
            requirement_type: Some(RequirementType::Requires(JwtRequirement {
                requires_type: Some(RequiresType::ProviderName("p".to_owned())),
            })),
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

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[tokio::test]
async fn remote_jwks_are_fetched_through_the_cluster_and_cached() {
    let (port, hits) = jwks_server().await;
    let p = start_with(
        vec![remote_filter("jwks")],
        json!({}),
        None,
        &[("jwks", port)],
    )
    .await;
    let token = sign(json!({"iss": "https://issuer.example.com", "sub": "a", "exp": now() + 600}));
    let auth = format!("Bearer {token}");
    for _ in 0..3 {
        assert_eq!(get(&p, "/", &[("authorization", &auth)]).await.status, 200);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "fetched once, then cached");
    assert_eq!(get(&p, "/", &[]).await.status, 401, "the token is required");
}

#[tokio::test]
async fn failed_fetch_rejects_tokens() {
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let p = start_with(
        vec![remote_filter("jwks")],
        json!({}),
        None,
        &[("jwks", port)],
    )
    .await;
    let token = sign(json!({"iss": "https://issuer.example.com", "sub": "a", "exp": now() + 600}));
    let r = get(&p, "/", &[("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (401, "Jwks remote fetch is failed")
    );
}
