//! Downstream TLS through the accept path: real connections to a STRICT-like and a
//! PERMISSIVE-like listener whose chains proxy TCP to an echo server, and the network RBAC
//! filter seeing the peer identity.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as PbCluster;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain as PbChain, FilterChainMatch, Listener, ListenerFilter, filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy, tcp_proxy::ClusterSpecifier,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::super::accept;
use super::super::convert::ListenerConfig;
use crate::cluster::{ClusterConfig, ClusterManager};
use crate::hcm::Env;
use crate::tls::tests::{Ca, spiffe, strict_context, tls_socket};
use crate::tls::{Carried, ClientTls, SecretStore};

fn addr(port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: "127.0.0.1".into(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port.into())),
            ..Default::default()
        })),
    }
}

async fn echo() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 256];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn env(echo_port: u16) -> Arc<Env> {
    let cluster = PbCluster {
        name: "echo".into(),
        connect_timeout: Some(envoy_types::pb::google::protobuf::Duration {
            seconds: 1,
            nanos: 0,
        }),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: "echo".into(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                        address: Some(addr(echo_port)),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let clusters = ClusterManager::new();
    clusters.apply_clusters(vec![ClusterConfig::from_proto(&cluster).unwrap()], &[]);
    let mut registry = prometheus_client::registry::Registry::default();
    Arc::new(Env {
        clusters: Arc::new(clusters),
        routes: Arc::new(crate::config::RouteStore::new()),
        access_log: None,
        stats: crate::stats::ProxyStats::register(&mut registry),
    })
}

fn chain(transport: &str, tls: bool) -> PbChain {
    let tcp = TcpProxy {
        stat_prefix: "echo".into(),
        cluster_specifier: Some(ClusterSpecifier::Cluster("echo".into())),
        ..Default::default()
    };
    PbChain {
        name: transport.into(),
        filter_chain_match: Some(FilterChainMatch {
            transport_protocol: transport.into(),
            ..Default::default()
        }),
        filters: vec![Filter {
            name: "envoy.filters.network.tcp_proxy".into(),
            config_type: Some(filter::ConfigType::TypedConfig(
                envoy_types::util::pack_any(tcp),
            )),
        }],
        transport_socket: tls.then(|| tls_socket(strict_context())),
        ..Default::default()
    }
}

/// Serves `listener` on a fresh socket; returns its address.
async fn serve(
    listener: Listener,
    store: &Arc<SecretStore>,
    env: Arc<Env>,
) -> std::net::SocketAddr {
    let config = Arc::new(ListenerConfig::from_proto_with(&listener, store).unwrap());
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = l.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..32 {
            let Ok((s, peer)) = l.accept().await else {
                return;
            };
            let serve = accept::serve(
                s,
                peer,
                Arc::clone(&config),
                Arc::new(Vec::new()),
                Arc::clone(&env),
                crate::signals::Signals::new(),
            );
            tokio::spawn(serve);
        }
    });
    address
}

fn listener(chains: Vec<PbChain>) -> Listener {
    Listener {
        name: "virtualInbound".into(),
        address: Some(addr(0)),
        listener_filters: vec![ListenerFilter {
            name: "envoy.filters.listener.tls_inspector".into(),
            ..Default::default()
        }],
        filter_chains: chains,
        ..Default::default()
    }
}

/// Sends `ping` and reads the echo (an error when the proxy closed the connection).
async fn ping<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut S,
) -> Result<(), String> {
    s.write_all(b"ping").await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4];
    match tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf)).await {
        Ok(Ok(_)) if &buf == b"ping" => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

fn client(ca: &Ca, with_cert: bool) -> ClientTls {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
    let store = SecretStore::new();
    if with_cert {
        store
            .set(Some(Arc::new(ca.bundle("ns2", "sleep"))))
            .unwrap();
    } else {
        // Roots only: a bundle from the same CA, but the client presents no certificate.
        store.set(Some(Arc::new(ca.bundle("ns2", "anon")))).unwrap();
    }
    let mut common = crate::tls::tests::istio_common(&["istio"], vec![]);
    if !with_cert {
        common.tls_certificate_sds_secret_configs.clear();
    }
    let ctx = UpstreamTlsContext {
        common_tls_context: Some(common),
        ..Default::default()
    };
    ClientTls::from_proto(&ctx, &store, false, false).unwrap()
}

#[tokio::test]
async fn strict_listener_terminates_mtls_and_refuses_the_rest() {
    let ca = Ca::new("mesh");
    let store = SecretStore::new();
    store
        .set(Some(Arc::new(ca.bundle("ns1", "server"))))
        .unwrap();
    let env = env(echo().await);
    let at = serve(listener(vec![chain("tls", true)]), &store, env).await;

    // mTLS with a certificate from the mesh root: proxied.
    let tcp = TcpStream::connect(at).await.unwrap();
    let mut tls = client(&ca, true)
        .connect(tcp, at.ip(), None, Carried::Raw)
        .await
        .unwrap();
    ping(&mut tls).await.unwrap();

    // Plaintext: no chain matches, closed.
    let mut plain = TcpStream::connect(at).await.unwrap();
    assert!(ping(&mut plain).await.is_err());

    // No client certificate: the handshake (or the first read) fails.
    let tcp = TcpStream::connect(at).await.unwrap();
    match client(&ca, false)
        .connect(tcp, at.ip(), None, Carried::Raw)
        .await
    {
        Err(_) => {}
        Ok(mut s) => assert!(ping(&mut s).await.is_err()),
    }
    let _ = spiffe("a", "b");
}

#[tokio::test]
async fn permissive_listener_takes_both() {
    let ca = Ca::new("mesh");
    let store = SecretStore::new();
    store
        .set(Some(Arc::new(ca.bundle("ns1", "server"))))
        .unwrap();
    let env = env(echo().await);
    let at = serve(
        listener(vec![chain("tls", true), chain("raw_buffer", false)]),
        &store,
        env,
    )
    .await;
    let mut plain = TcpStream::connect(at).await.unwrap();
    ping(&mut plain).await.unwrap();
    let tcp = TcpStream::connect(at).await.unwrap();
    let mut tls = client(&ca, true)
        .connect(tcp, at.ip(), None, Carried::Raw)
        .await
        .unwrap();
    ping(&mut tls).await.unwrap();
}

#[test]
fn chains_convert_tls_and_refuse_unknown_sds() {
    let store = SecretStore::new();
    let l = listener(vec![chain("tls", true)]);
    let c = ListenerConfig::from_proto_with(&l, &store).unwrap();
    assert!(c.chains[0].tls.is_some());
    let mut bad = strict_context();
    if let Some(common) = bad.common_tls_context.as_mut() {
        common.tls_certificate_sds_secret_configs = vec![crate::tls::tests::sds("kube://x")];
    }
    let mut ch = chain("tls", false);
    ch.transport_socket = Some(tls_socket(bad));
    let err = ListenerConfig::from_proto_with(&listener(vec![ch]), &store).unwrap_err();
    assert_eq!(
        err.field,
        "filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].name"
    );
}

/// An ALLOW network RBAC filter for `principal` (Istio's shape).
fn allow_only(principal: &str) -> Filter {
    use envoy_types::pb::envoy::config::rbac::v3::{
        Permission, Policy, Principal, Rbac, permission, principal,
    };
    use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetRbac;
    use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
    let policy = Policy {
        permissions: vec![Permission {
            rule: Some(permission::Rule::Any(true)),
        }],
        principals: vec![Principal {
            identifier: Some(principal::Identifier::Authenticated(
                principal::Authenticated {
                    principal_name: Some(StringMatcher {
                        match_pattern: Some(string_matcher::MatchPattern::Exact(principal.into())),
                        ..Default::default()
                    }),
                },
            )),
        }],
        ..Default::default()
    };
    let rbac = NetRbac {
        rules: Some(Rbac {
            action: 0,
            policies: [("ns[ns1]-policy[allow]-rule[0]".to_owned(), policy)]
                .into_iter()
                .collect(),
            ..Default::default()
        }),
        stat_prefix: "tcp.".into(),
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.rbac".into(),
        config_type: Some(filter::ConfigType::TypedConfig(
            envoy_types::util::pack_any(rbac),
        )),
    }
}

#[tokio::test]
async fn network_rbac_sees_the_peer_identity() {
    let ca = Ca::new("mesh");
    let store = SecretStore::new();
    store
        .set(Some(Arc::new(ca.bundle("ns1", "server"))))
        .unwrap();
    let env = env(echo().await);
    let mut ch = chain("tls", true);
    ch.filters.insert(0, allow_only(&spiffe("ns2", "sleep")));
    let at = serve(listener(vec![ch]), &store, env).await;
    // ns2/sleep is allowed.
    let tcp = TcpStream::connect(at).await.unwrap();
    let mut tls = client(&ca, true)
        .connect(tcp, at.ip(), None, Carried::Raw)
        .await
        .unwrap();
    ping(&mut tls).await.unwrap();
    // Another identity from the same root: handshake fine, connection closed by RBAC.
    let other = SecretStore::new();
    other
        .set(Some(Arc::new(ca.bundle("ns2", "other"))))
        .unwrap();
    let ctx = envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext {
        common_tls_context: Some(crate::tls::tests::istio_common(&["istio"], vec![])),
        ..Default::default()
    };
    let denied = ClientTls::from_proto(&ctx, &other, false, false).unwrap();
    let tcp = TcpStream::connect(at).await.unwrap();
    let mut tls = denied
        .connect(tcp, at.ip(), None, Carried::Raw)
        .await
        .unwrap();
    assert!(ping(&mut tls).await.is_err());
}
