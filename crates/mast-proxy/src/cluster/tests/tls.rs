//! Upstream TLS through clusters: `transport_socket_matches` (TLS only for endpoints with
//! `tlsMode: istio` metadata, plaintext for the others), SAN mismatch as a connect failure,
//! HTTP/2 over TLS, and the TCP/`CONNECT` path.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::cluster::TransportSocketMatch;
use envoy_types::pb::envoy::config::core::v3::{Metadata, TransportSocket, transport_socket};
use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    SubjectAltNameMatcher, UpstreamTlsContext,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::super::UpstreamError;
use super::servers::{h2_options, request, server, with_http};
use super::*;
use crate::tls::tests::{Ca, istio_common, spiffe, strict_context, tls_socket};
use crate::tls::{SecretStore, ServerTls};

/// A TLS HTTP server (HTTP/1.1 or HTTP/2) answering with the client's URI SAN and the ALPN.
async fn tls_server(tls: ServerTls, h2: bool) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let tls = tls.clone();
            tokio::spawn(async move {
                let Ok((stream, peer)) = tls.accept(s).await else {
                    return;
                };
                let body = format!(
                    "{} {}",
                    peer.peer_uri_sans.join(","),
                    peer.alpn.unwrap_or_default()
                );
                let sni = peer.sni.unwrap_or_default();
                let svc = service_fn(move |_req| {
                    let (body, sni) = (body.clone(), sni.clone());
                    async move {
                        let mut r = http::Response::new(Full::new(bytes::Bytes::from(body)));
                        if let Ok(v) = http::HeaderValue::from_str(&sni) {
                            r.headers_mut().insert("x-sni", v);
                        }
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
                let io = TokioIo::new(stream);
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, svc)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await;
                }
            });
        }
    });
    port
}

fn istio_match(upstream: UpstreamTlsContext) -> Vec<TransportSocketMatch> {
    let tls_mode = |v: &str| Struct {
        fields: [(
            "tlsMode".to_owned(),
            Value {
                kind: Some(Kind::StringValue(v.into())),
            },
        )]
        .into_iter()
        .collect(),
    };
    vec![
        TransportSocketMatch {
            name: "tlsMode-istio".into(),
            r#match: Some(tls_mode("istio")),
            transport_socket: Some(tls_socket(upstream)),
        },
        TransportSocketMatch {
            name: "tlsMode-disabled".into(),
            r#match: Some(Struct::default()),
            transport_socket: Some(TransportSocket {
                name: "envoy.transport_sockets.raw_buffer".into(),
                config_type: Some(transport_socket::ConfigType::TypedConfig(
                    envoy_types::util::pack_any(RawBuffer {}),
                )),
            }),
        },
    ]
}

fn upstream_ctx(san: &str, alpn: &[&str]) -> UpstreamTlsContext {
    let m = SubjectAltNameMatcher {
        san_type: SanType::Uri as i32,
        matcher: Some(StringMatcher {
            match_pattern: Some(MatchPattern::Exact(san.into())),
            ..Default::default()
        }),
        ..Default::default()
    };
    UpstreamTlsContext {
        common_tls_context: Some(istio_common(alpn, vec![m])),
        sni: "outbound_.80_._.svc.ns1.svc.cluster.local".into(),
        ..Default::default()
    }
}

/// An EDS assignment over `ports`, the ones in `istio` carrying `tlsMode: istio`.
fn assignment(name: &str, ports: &[u16], istio: &[u16]) -> ClusterLoadAssignment {
    let mut a = cla(
        name,
        &ports
            .iter()
            .map(|p| ("127.0.0.1", *p, 1))
            .collect::<Vec<_>>(),
    );
    for ep in &mut a.endpoints[0].lb_endpoints {
        let Some(lb_endpoint::HostIdentifier::Endpoint(e)) = &ep.host_identifier else {
            continue;
        };
        let Some(address::Address::SocketAddress(sa)) =
            e.address.as_ref().and_then(|a| a.address.clone())
        else {
            continue;
        };
        let Some(socket_address::PortSpecifier::PortValue(p)) = sa.port_specifier else {
            continue;
        };
        if istio.contains(&(p as u16)) {
            let s = Struct {
                fields: [(
                    "tlsMode".to_owned(),
                    Value {
                        kind: Some(Kind::StringValue("istio".into())),
                    },
                )]
                .into_iter()
                .collect(),
            };
            ep.metadata = Some(Metadata {
                filter_metadata: HashMap::from([("envoy.transport_socket_match".to_owned(), s)]),
                ..Default::default()
            });
        }
    }
    a
}

struct Mesh {
    ca: Ca,
    client: Arc<SecretStore>,
    server: Arc<SecretStore>,
}

fn mesh() -> Mesh {
    let ca = Ca::new("mesh");
    let client = SecretStore::new();
    client
        .set(Some(Arc::new(ca.bundle("ns2", "sleep"))))
        .unwrap();
    let server = SecretStore::new();
    server
        .set(Some(Arc::new(ca.bundle("ns1", "server"))))
        .unwrap();
    Mesh { ca, client, server }
}

fn eds_cluster(
    name: &str,
    m: &Mesh,
    upstream: UpstreamTlsContext,
    h2: bool,
) -> (ClusterManager, Arc<Cluster>) {
    let mut pb = cluster_pb(name, DiscoveryType::Eds, LbPolicy::RoundRobin);
    pb.transport_socket_matches = istio_match(upstream);
    if h2 {
        pb = with_http(pb, h2_options());
    }
    let manager = ClusterManager::new();
    manager.apply_clusters(
        vec![ClusterConfig::from_proto_with(&pb, &m.client).unwrap()],
        &[],
    );
    let c = manager.get(name).unwrap();
    (manager, c)
}

async fn body_of(ep: &super::super::Endpoint, port: u16) -> Result<String, UpstreamError> {
    let resp = ep.send(request(port)).await?;
    assert_eq!(resp.status(), 200);
    Ok(String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes()).into_owned())
}

#[tokio::test]
async fn tls_only_for_istio_endpoints() {
    let m = mesh();
    let tls_port = tls_server(
        ServerTls::from_proto(&strict_context(), &m.server).unwrap(),
        false,
    )
    .await;
    let (plain_port, _) = server(false, std::time::Duration::ZERO).await;
    let ctx = upstream_ctx(&spiffe("ns1", "server"), &["istio-peer-exchange", "istio"]);
    let (manager, c) = eds_cluster("c", &m, ctx, false);
    eds(
        &manager,
        &assignment("c", &[tls_port, plain_port], &[tls_port]),
    );
    let eps = c.endpoints();
    assert_eq!(eps.len(), 2);
    for ep in eps {
        let port = ep.address().port();
        let body = body_of(&ep, port).await.unwrap();
        if port == tls_port {
            assert!(ep.is_tls());
            // mTLS with the workload certificate; HTTP/1.1 cluster over the `istio` ALPN.
            assert_eq!(body, format!("{} ", spiffe("ns2", "sleep")));
            assert!(ep.metadata().is_some());
        } else {
            assert!(!ep.is_tls());
            assert_eq!(body, "ok");
        }
    }
    // Metadata removed: the endpoint becomes plaintext (a new endpoint and pool).
    eds(&manager, &assignment("c", &[tls_port], &[]));
    let ep = c.select(&ctx_default()).await.unwrap();
    assert!(!ep.is_tls());
    assert!(
        body_of(&ep, tls_port).await.is_err(),
        "plaintext to a TLS port fails"
    );
}

#[tokio::test]
async fn san_mismatch_is_a_connect_failure() {
    let m = mesh();
    let tls_port = tls_server(
        ServerTls::from_proto(&strict_context(), &m.server).unwrap(),
        false,
    )
    .await;
    let ctx = upstream_ctx(&spiffe("ns1", "someone-else"), &["istio"]);
    let (manager, c) = eds_cluster("c", &m, ctx, false);
    eds(&manager, &assignment("c", &[tls_port], &[tls_port]));
    let ep = c.select(&ctx_default()).await.unwrap();
    match ep.send(request(tls_port)).await {
        Err(UpstreamError::ConnectFailure(e)) => {
            assert!(e.to_string().contains("TLS_error"), "{e}")
        }
        other => panic!("expected a connect failure, got {other:?}"),
    }
    // A foreign CA's server fails the same way.
    let foreign = SecretStore::new();
    foreign
        .set(Some(Arc::new(Ca::new("foreign").bundle("ns1", "server"))))
        .unwrap();
    let port = tls_server(
        ServerTls::from_proto(&strict_context(), &foreign).unwrap(),
        false,
    )
    .await;
    let _ = &m.ca;
    let ctx = upstream_ctx(&spiffe("ns1", "server"), &["istio"]);
    let (manager, c) = eds_cluster("d", &m, ctx, false);
    eds(&manager, &assignment("d", &[port], &[port]));
    let ep = c.select(&ctx_default()).await.unwrap();
    assert!(matches!(
        ep.send(request(port)).await,
        Err(UpstreamError::ConnectFailure(_))
    ));
}

fn ctx_default() -> LbContext<'static> {
    LbContext::default()
}

#[tokio::test]
async fn h2_cluster_speaks_h2_over_tls() {
    let m = mesh();
    let port = tls_server(
        ServerTls::from_proto(&strict_context(), &m.server).unwrap(),
        true,
    )
    .await;
    let ctx = upstream_ctx(
        &spiffe("ns1", "server"),
        &["istio-peer-exchange", "istio", "h2"],
    );
    let (manager, c) = eds_cluster("c", &m, ctx, true);
    eds(&manager, &assignment("c", &[port], &[port]));
    let ep = c.select(&ctx_default()).await.unwrap();
    let body = body_of(&ep, port).await.unwrap();
    assert_eq!(body, format!("{} h2", spiffe("ns2", "sleep")));
    // Two more requests share the one HTTP/2 connection.
    assert!(body_of(&ep, port).await.is_ok());
}

#[tokio::test]
async fn raw_connections_use_the_endpoint_transport() {
    let m = mesh();
    // A TLS echo server.
    let tls = ServerTls::from_proto(&strict_context(), &m.server).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let (mut s, _) = tls.accept(s).await.unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await.unwrap();
        s.write_all(&buf).await.unwrap();
        s.flush().await.unwrap();
    });
    let ctx = upstream_ctx(&spiffe("ns1", "server"), &["istio"]);
    let (manager, c) = eds_cluster("c", &m, ctx, false);
    eds(&manager, &assignment("c", &[port], &[port]));
    let ep = c.select(&ctx_default()).await.unwrap();
    let mut conn = ep.connect().await.unwrap();
    assert!(conn.is_tls());
    conn.write_all(b"hello").await.unwrap();
    conn.flush().await.unwrap();
    let mut buf = [0u8; 5];
    conn.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello");
}

/// A DestinationRule-SIMPLE-like cluster: no `sni`, `auto_sni` and `auto_san_validation`:
/// each host gets its own connection with its SNI, and the certificate must be valid for it.
#[tokio::test]
async fn auto_sni_pools_per_host_and_validates_the_host() {
    use envoy_types::pb::envoy::config::core::v3::{
        DataSource, UpstreamHttpProtocolOptions, data_source::Specifier,
    };
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
        CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, TlsCertificate,
    };
    use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
    let inline = |s: &str| DataSource {
        specifier: Some(Specifier::InlineString(s.into())),
        ..Default::default()
    };
    let ca = Ca::new("web");
    let (chain, key) = ca.leaf("spiffe://x/y", &["a.example.com"], false);
    let server = DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificates: vec![TlsCertificate {
                certificate_chain: Some(inline(&chain)),
                private_key: Some(inline(&key)),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let store = SecretStore::new();
    let port = tls_server(ServerTls::from_proto(&server, &store).unwrap(), false).await;
    let upstream = UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            validation_context_type: Some(ValidationContextType::ValidationContext(
                CertificateValidationContext {
                    trusted_ca: Some(inline(&ca.root_pem())),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut pb = static_pb("web", LbPolicy::RoundRobin, &[(port, 1)]);
    pb.transport_socket = Some(tls_socket(upstream));
    let pb = with_http(
        pb,
        super::servers::http_options(HttpProtocolOptions {
            upstream_http_protocol_options: Some(UpstreamHttpProtocolOptions {
                auto_sni: true,
                auto_san_validation: true,
                ..Default::default()
            }),
            ..Default::default()
        }),
    );
    let manager = ClusterManager::new();
    manager.apply_clusters(
        vec![ClusterConfig::from_proto_with(&pb, &store).unwrap()],
        &[],
    );
    let c = manager.get("web").unwrap();
    let ep = c.select(&ctx_default()).await.unwrap();
    let req = |host: &str| {
        http::Request::builder()
            .uri("/")
            .header("host", format!("{host}:{port}"))
            .body(crate::body::empty())
            .unwrap()
    };
    let resp = ep.send(req("a.example.com")).await.unwrap();
    assert_eq!(resp.headers()["x-sni"], "a.example.com");
    let _ = resp.into_body().collect().await.unwrap();
    // Another host: its own connection, SNI b.example.com — not in the certificate.
    match ep.send(req("b.example.com")).await {
        Err(UpstreamError::ConnectFailure(e)) => {
            assert!(e.to_string().contains("TLS_error"), "{e}")
        }
        other => panic!("expected a connect failure, got {other:?}"),
    }
    let resp = ep.send(req("a.example.com")).await.unwrap();
    assert_eq!(resp.headers()["x-sni"], "a.example.com");
}
