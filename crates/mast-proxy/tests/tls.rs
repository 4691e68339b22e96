//! TLS interop with real Envoy (static bootstrap, file certificates from an rcgen CA):
//! - Envoy is the mTLS client (Istio-style `UpstreamTlsContext`: client certificate, URI SAN
//!   check, `istio` ALPN, SNI) of mast-proxy's STRICT inbound context;
//! - mast-proxy is the mTLS client of an Envoy listener that requires a client certificate:
//!   accepted with a certificate from the root, refused without one, and a SAN mismatch fails
//!   the handshake on our side.
//!
//! Skipped (with a message) when no Envoy binary is found (`MAST_ENVOY`, `.venv/bin/envoy`,
//! `PATH`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source::Specifier};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::{
    CombinedCertificateValidationContext, ValidationContextType,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig,
    SubjectAltNameMatcher, TlsCertificate, UpstreamTlsContext,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use mast_ca::CertBundle;
use mast_proxy::tls::{Carried, ClientTls, SecretStore, ServerTls};
use mast_test_support::{ProcessGuard, TempDir, envoy_binary, free_port};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    SanType as RcSan,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    fn new() -> Self {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "mast test root");
        Self(CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap())
    }

    fn leaf(&self, uri: &str) -> (String, String) {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.subject_alt_names
            .push(RcSan::URI(uri.try_into().unwrap()));
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.0).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn spiffe(ns: &str, sa: &str) -> String {
    format!("spiffe://cluster.local/ns/{ns}/sa/{sa}")
}

fn sds(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.into(),
        ..Default::default()
    }
}

/// mastd's STRICT inbound context (SDS `default` / `ROOTCA`, client certificate required).
fn strict() -> DownstreamTlsContext {
    DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            alpn_protocols: vec!["h2".into(), "http/1.1".into()],
            tls_certificate_sds_secret_configs: vec![sds("default")],
            validation_context_type: Some(ValidationContextType::CombinedValidationContext(
                CombinedCertificateValidationContext {
                    default_validation_context: Some(CertificateValidationContext::default()),
                    validation_context_sds_secret_config: Some(sds("ROOTCA")),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        require_client_certificate: Some(envoy_types::pb::google::protobuf::BoolValue {
            value: true,
        }),
        ..Default::default()
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Starts Envoy on `yaml` and waits until `port` accepts connections (at most 20 s).
fn start_envoy(envoy: &Path, dir: &TempDir, yaml: &str, port: u16) -> ProcessGuard {
    let config = write(dir.path(), "envoy.yaml", yaml);
    let log = std::fs::File::create(dir.join("envoy.log")).unwrap();
    let mut cmd = Command::new(envoy);
    cmd.args([
        "-c",
        &config,
        "--disable-hot-restart",
        "--concurrency",
        "1",
        "-l",
        "warning",
    ])
    .stdin(Stdio::null())
    .stdout(log.try_clone().unwrap())
    .stderr(log);
    let mut guard = ProcessGuard::spawn(&mut cmd).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return guard;
        }
        if let Ok(Some(status)) = guard.try_wait() {
            let log = std::fs::read_to_string(dir.join("envoy.log")).unwrap_or_default();
            panic!("envoy exited with {status}:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(dir.join("envoy.log")).unwrap_or_default();
    panic!("envoy did not listen on {port} within 20 s:\n{log}");
}

fn static_cluster(name: &str, port: u16, transport: &str) -> String {
    format!(
        r#"
  - name: {name}
    type: STATIC
    connect_timeout: 2s
    load_assignment:
      cluster_name: {name}
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}}}]}}]
{transport}"#
    )
}

fn tcp_listener(name: &str, port: u16, cluster: &str, transport: &str) -> String {
    format!(
        r#"
  - name: {name}
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: {name}
          cluster: {cluster}
{transport}"#
    )
}

/// A TLS server with `tls` that writes `<peer URI SANs>|<alpn>\n`, then echoes.
async fn mast_server(tls: ServerTls) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((s, _)) = l.accept().await else { return };
            let tls = tls.clone();
            tokio::spawn(async move {
                let Ok((mut s, peer)) = tls.accept(s).await else {
                    return;
                };
                let line = format!(
                    "{}|{}\n",
                    peer.peer_uri_sans.join(","),
                    peer.alpn.unwrap_or_default()
                );
                let _ = s.write_all(line.as_bytes()).await;
                let _ = s.flush().await;
                let mut buf = [0u8; 64];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    let _ = s.flush().await;
                }
            });
        }
    });
    addr
}

async fn read_line(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    let read = async {
        while s.read(&mut b).await.unwrap_or(0) == 1 && b[0] != b'\n' {
            out.push(b[0]);
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_is_the_mtls_client_of_the_strict_inbound() {
    let Some(envoy) = envoy_binary() else {
        eprintln!("skipped: no Envoy binary (set MAST_ENVOY)");
        return;
    };
    let ca = Ca::new();
    let dir = TempDir::new("mast-tls-envoy-client").unwrap();
    let store = SecretStore::new();
    let (chain, key) = ca.leaf(&spiffe("ns1", "server"));
    let bundle = CertBundle::from_chain(&[chain, ca.0.pem()], key).unwrap();
    store.set(Some(Arc::new(bundle))).unwrap();
    let mast = mast_server(ServerTls::from_proto(&strict(), &store).unwrap()).await;

    let (cert, key) = ca.leaf(&spiffe("ns2", "sleep"));
    let (cert, key, root) = (
        write(dir.path(), "client.pem", &cert),
        write(dir.path(), "client.key", &key),
        write(dir.path(), "root.pem", &ca.0.pem()),
    );
    let upstream_tls = |san: &str| {
        format!(
            r#"    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: outbound_.80_._.server.ns1.svc.cluster.local
        common_tls_context:
          alpn_protocols: [istio-peer-exchange, istio]
          tls_params: {{tls_minimum_protocol_version: TLSv1_2, tls_maximum_protocol_version: TLSv1_3}}
          tls_certificates: [{{certificate_chain: {{filename: {cert}}}, private_key: {{filename: {key}}}}}]
          validation_context:
            trusted_ca: {{filename: {root}}}
            match_typed_subject_alt_names: [{{san_type: URI, matcher: {{exact: "{san}"}}}}]"#
        )
    };
    let (good_port, bad_port) = (free_port(), free_port());
    let yaml = format!(
        "static_resources:\n  listeners:{}{}\n  clusters:{}{}\n",
        tcp_listener("good", good_port, "mast", ""),
        tcp_listener("bad", bad_port, "mast_wrong_san", ""),
        static_cluster("mast", mast.port(), &upstream_tls(&spiffe("ns1", "server"))),
        static_cluster(
            "mast_wrong_san",
            mast.port(),
            &upstream_tls(&spiffe("ns1", "other"))
        ),
    );
    let _envoy = start_envoy(&envoy, &dir, &yaml, good_port);

    let mut s = TcpStream::connect(("127.0.0.1", good_port)).await.unwrap();
    assert_eq!(
        read_line(&mut s).await,
        format!("{}|", spiffe("ns2", "sleep")),
        "mast-proxy saw Envoy's workload identity; without an ALPN overlap the handshake went on without ALPN, as Envoy's does"
    );
    s.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"ping");

    // Envoy refuses our certificate when it expects another identity.
    let mut s = TcpStream::connect(("127.0.0.1", bad_port)).await.unwrap();
    assert_eq!(read_line(&mut s).await, "");
}

fn inline(s: &str) -> DataSource {
    DataSource {
        specifier: Some(Specifier::InlineString(s.into())),
        ..Default::default()
    }
}

fn client(cert: Option<(String, String)>, root: &str, san: &str) -> ClientTls {
    let ctx = UpstreamTlsContext {
        sni: "outbound_.80_._.envoy.ns1.svc.cluster.local".into(),
        common_tls_context: Some(CommonTlsContext {
            alpn_protocols: vec!["istio".into()],
            tls_certificates: cert
                .into_iter()
                .map(|(c, k)| TlsCertificate {
                    certificate_chain: Some(inline(&c)),
                    private_key: Some(inline(&k)),
                    ..Default::default()
                })
                .collect(),
            validation_context_type: Some(ValidationContextType::ValidationContext(
                CertificateValidationContext {
                    trusted_ca: Some(inline(root)),
                    match_typed_subject_alt_names: vec![SubjectAltNameMatcher {
                        san_type: SanType::Uri as i32,
                        matcher: Some(StringMatcher {
                            match_pattern: Some(MatchPattern::Exact(san.into())),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        ..Default::default()
    };
    ClientTls::from_proto(&ctx, &SecretStore::new(), false, false).unwrap()
}

async fn ping_through(c: &ClientTls, port: u16) -> Result<(), String> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let peer = tcp.peer_addr().unwrap().ip();
    let mut s = c
        .connect(tcp, peer, None, Carried::Raw)
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(b"ping").await.map_err(|e| e.to_string())?;
    s.flush().await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4];
    match tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf)).await {
        Ok(Ok(_)) if &buf == b"ping" => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mast_proxy_is_the_mtls_client_of_envoy() {
    let Some(envoy) = envoy_binary() else {
        eprintln!("skipped: no Envoy binary (set MAST_ENVOY)");
        return;
    };
    let ca = Ca::new();
    let dir = TempDir::new("mast-tls-envoy-server").unwrap();
    // A plain echo behind Envoy.
    let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let (cert, key) = ca.leaf(&spiffe("ns1", "envoy"));
    let (cert, key, root) = (
        write(dir.path(), "server.pem", &cert),
        write(dir.path(), "server.key", &key),
        write(dir.path(), "root.pem", &ca.0.pem()),
    );
    let port = free_port();
    let tls = format!(
        r#"      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            alpn_protocols: [istio-peer-exchange, istio]
            tls_certificates: [{{certificate_chain: {{filename: {cert}}}, private_key: {{filename: {key}}}}}]
            validation_context: {{trusted_ca: {{filename: {root}}}}}"#
    );
    let yaml = format!(
        "static_resources:\n  listeners:{}\n  clusters:{}\n",
        tcp_listener("inbound", port, "echo", &tls),
        static_cluster("echo", echo_port, ""),
    );
    let _envoy = start_envoy(&envoy, &dir, &yaml, port);
    let root = ca.0.pem();
    let me = || Some(ca.leaf(&spiffe("ns2", "sleep")));
    ping_through(&client(me(), &root, &spiffe("ns1", "envoy")), port)
        .await
        .unwrap();
    assert!(
        ping_through(&client(None, &root, &spiffe("ns1", "envoy")), port)
            .await
            .is_err(),
        "Envoy requires a client certificate"
    );
    let err = ping_through(&client(me(), &root, &spiffe("ns1", "other")), port)
        .await
        .unwrap_err();
    assert!(err.contains("TLS_error"), "{err}");
}

#[path = "tls/generated.rs"]
mod generated;
