//! Tests of the TLS module: real handshakes on 127.0.0.1 with rcgen certificates — the
//! STRICT-like server (client certificate required, SDS secrets), SAN matching, ALPN
//! fallback, no-secret-yet failures, and rotation under a live connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SubjectAltNameMatcher, TlsParameters,
    UpstreamTlsContext,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use mast_ca::CertBundle;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::*;

mod ciphers;
mod several;
mod support;

pub(crate) use support::*;

/// A TLS server on 127.0.0.1 answering each line with the peer facts it saw (`uri|alpn`),
/// then echoing. Returns its address.
async fn serve(server: ServerTls) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..64 {
            let Ok((s, _)) = l.accept().await else { return };
            let server = server.clone();
            tokio::spawn(async move {
                let Ok((mut tls, peer)) = server.accept(s).await else {
                    return;
                };
                let facts = format!(
                    "{}|{}\n",
                    peer.peer_uri_sans.join(","),
                    peer.alpn.unwrap_or_default()
                );
                let _ = tls.write_all(facts.as_bytes()).await;
                let mut buf = [0u8; 64];
                while let Ok(n) = tls.read(&mut buf).await {
                    if n == 0 || tls.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A client context with `cert` (chain, key PEM) and trusting `roots`.
fn client(
    cert: Option<(String, String)>,
    roots: &str,
    alpn: &[&str],
    sans: Vec<SubjectAltNameMatcher>,
) -> ClientTls {
    use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source::Specifier};
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::TlsCertificate;
    let inline = |s: &str| DataSource {
        specifier: Some(Specifier::InlineString(s.into())),
        ..Default::default()
    };
    let common = CommonTlsContext {
        alpn_protocols: alpn.iter().map(|s| (*s).to_owned()).collect(),
        tls_certificates: cert
            .iter()
            .map(|(c, k)| TlsCertificate {
                certificate_chain: Some(inline(c)),
                private_key: Some(inline(k)),
                ..Default::default()
            })
            .collect(),
        validation_context_type: Some(ValidationContextType::ValidationContext(
            CertificateValidationContext {
                trusted_ca: (!roots.is_empty()).then(|| inline(roots)),
                match_typed_subject_alt_names: sans,
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    let ctx = UpstreamTlsContext {
        common_tls_context: Some(common),
        ..Default::default()
    };
    ClientTls::from_proto(&ctx, &SecretStore::new(), false, false).unwrap()
}

/// Connects with `c` and returns the first line the server sent, or the error.
async fn hello(c: &ClientTls, addr: std::net::SocketAddr) -> Result<String, String> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = c
        .connect(tcp, addr.ip(), None, Carried::Raw)
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), tls.read(&mut buf))
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("closed".into());
    }
    Ok(String::from_utf8_lossy(&buf[..n]).trim_end().to_owned())
}

#[tokio::test]
async fn strict_server_requires_a_client_certificate_from_the_same_root() {
    let ca = Ca::new("mesh");
    let store = SecretStore::new();
    store
        .set(Some(Arc::new(ca.bundle("ns1", "server"))))
        .unwrap();
    let server = ServerTls::from_proto(&strict_context(), &store).unwrap();
    let addr = serve(server).await;
    let root = ca.root_pem();

    let good = client(
        Some(ca.leaf(&spiffe("ns2", "sleep"), &[], false)),
        &root,
        &["h2"],
        vec![],
    );
    assert_eq!(
        hello(&good, addr).await.unwrap(),
        format!("{}|h2", spiffe("ns2", "sleep"))
    );

    let anonymous = client(None, &root, &[], vec![]);
    assert!(
        hello(&anonymous, addr).await.is_err(),
        "no client certificate"
    );

    let foreign = Ca::new("foreign");
    let stranger = client(
        Some(foreign.leaf(&spiffe("ns2", "x"), &[], false)),
        &root,
        &[],
        vec![],
    );
    assert!(hello(&stranger, addr).await.is_err(), "foreign root");

    let expired = client(
        Some(ca.leaf(&spiffe("ns2", "old"), &[], true)),
        &root,
        &[],
        vec![],
    );
    assert!(hello(&expired, addr).await.is_err(), "expired certificate");

    // The client checks the server's SPIFFE identity (exact URI SAN).
    let exact = |uri: &str| vec![uri_matcher(MatchPattern::Exact(uri.into()))];
    let cert = || Some(ca.leaf(&spiffe("ns2", "sleep"), &[], false));
    let right = client(cert(), &root, &[], exact(&spiffe("ns1", "server")));
    assert!(hello(&right, addr).await.is_ok());
    let wrong = client(cert(), &root, &[], exact(&spiffe("ns1", "other")));
    let err = hello(&wrong, addr).await.unwrap_err();
    assert!(err.contains("TLS_error"), "{err}");
}

#[tokio::test]
async fn alpn_without_overlap_goes_on_without_alpn() {
    let ca = Ca::new("mesh");
    let store = SecretStore::new();
    store
        .set(Some(Arc::new(ca.bundle("ns1", "server"))))
        .unwrap();
    let addr = serve(ServerTls::from_proto(&strict_context(), &store).unwrap()).await;
    let istio = client(
        Some(ca.leaf(&spiffe("ns2", "a"), &[], false)),
        &ca.root_pem(),
        &["istio-peer-exchange", "istio"],
        vec![],
    );
    assert_eq!(
        hello(&istio, addr).await.unwrap(),
        format!("{}|", spiffe("ns2", "a"))
    );
}

#[tokio::test]
async fn before_the_first_bundle_handshakes_fail_without_panicking() {
    let store = SecretStore::new();
    let server = ServerTls::from_proto(&strict_context(), &store).unwrap();
    let addr = serve(server).await;
    let ca = Ca::new("mesh");
    let c = client(
        Some(ca.leaf(&spiffe("a", "b"), &[], false)),
        &ca.root_pem(),
        &[],
        vec![],
    );
    assert!(hello(&c, addr).await.is_err());
    // An upstream context on SDS secrets: no client certificate and no roots yet → fails.
    let up = UpstreamTlsContext {
        common_tls_context: Some(istio_common(&["istio"], vec![])),
        ..Default::default()
    };
    let up = ClientTls::from_proto(&up, &store, false, false).unwrap();
    let other = Ca::new("other");
    let other_store = SecretStore::new();
    other_store
        .set(Some(Arc::new(other.bundle("x", "y"))))
        .unwrap();
    let addr = serve(ServerTls::from_proto(&strict_context(), &other_store).unwrap()).await;
    assert!(hello(&up, addr).await.is_err());
}

#[tokio::test]
async fn rotation_applies_to_new_connections_only() {
    let ca = Ca::new("mesh");
    let store = SecretStore::new();
    let first = ca.bundle("ns1", "server");
    let first_serial = first.serial_hex.clone();
    store.set(Some(Arc::new(first))).unwrap();
    let addr = serve(ServerTls::from_proto(&strict_context(), &store).unwrap()).await;
    let c = client(
        Some(ca.leaf(&spiffe("ns2", "c"), &[], false)),
        &ca.root_pem(),
        &[],
        vec![],
    );
    let serial_of = |tls: &tokio_rustls::client::TlsStream<TcpStream>| {
        let der = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let hex: String = cert
            .raw_serial()
            .iter()
            .skip_while(|b| **b == 0)
            .map(|b| format!("{b:02x}"))
            .collect();
        hex
    };
    let mut old = c
        .connect(
            TcpStream::connect(addr).await.unwrap(),
            addr.ip(),
            None,
            Carried::Raw,
        )
        .await
        .unwrap();
    assert_eq!(serial_of(&old), first_serial);
    let mut line = [0u8; 128];
    let _ = old.read(&mut line).await.unwrap();

    let second = ca.bundle("ns1", "server");
    let second_serial = second.serial_hex.clone();
    store.set(Some(Arc::new(second))).unwrap();
    // A fresh client (a resumed session would show the certificate of the first handshake).
    let c = client(
        Some(ca.leaf(&spiffe("ns2", "c"), &[], false)),
        &ca.root_pem(),
        &[],
        vec![],
    );
    let new = c
        .connect(
            TcpStream::connect(addr).await.unwrap(),
            addr.ip(),
            None,
            Carried::Raw,
        )
        .await
        .unwrap();
    assert_eq!(serial_of(&new), second_serial);
    assert_ne!(first_serial, second_serial);
    // The old connection still works.
    old.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    old.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
}

#[test]
fn unsupported_fields_and_sds_names_are_refused_with_their_path() {
    let store = SecretStore::new();
    let mut ctx = strict_context();
    if let Some(c) = ctx.common_tls_context.as_mut() {
        c.tls_certificate_sds_secret_configs = vec![sds("file-cert")];
    }
    let (field, _) = ServerTls::from_proto(&ctx, &store).unwrap_err();
    assert_eq!(
        field,
        "common_tls_context.tls_certificate_sds_secret_configs[0].name"
    );
    let mut ctx = strict_context();
    if let Some(c) = ctx.common_tls_context.as_mut() {
        c.tls_params = Some(TlsParameters {
            cipher_suites: vec!["AES128-SHA".into()],
            ..Default::default()
        });
    }
    let (field, _) = ServerTls::from_proto(&ctx, &store).unwrap_err();
    assert_eq!(field, "common_tls_context.tls_params.cipher_suites[0]");
    // SANs without a trusted CA: refused as Envoy does.
    let up = UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            validation_context_type: Some(ValidationContextType::ValidationContext(
                CertificateValidationContext {
                    match_typed_subject_alt_names: vec![uri_matcher(MatchPattern::Exact(
                        "x".into(),
                    ))],
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (field, _) = ClientTls::from_proto(&up, &store, false, false).unwrap_err();
    assert_eq!(field, "common_tls_context.validation_context.trusted_ca");
}

#[test]
fn san_matchers_follow_envoy() {
    let sans = peer::Sans {
        uri: vec![spiffe("ns1", "a")],
        dns: vec!["*.example.com".into()],
        ..Default::default()
    };
    let m = |kind: SanType, p: MatchPattern| {
        matcher::SanMatcher::typed(&SubjectAltNameMatcher {
            san_type: kind as i32,
            matcher: Some(StringMatcher {
                match_pattern: Some(p),
                ..Default::default()
            }),
            ..Default::default()
        })
        .unwrap()
    };
    assert!(
        m(
            SanType::Uri,
            MatchPattern::Prefix("spiffe://cluster.local/ns/ns1/".into())
        )
        .matches(&sans)
    );
    assert!(!m(SanType::Uri, MatchPattern::Exact(spiffe("ns1", "b"))).matches(&sans));
    assert!(m(SanType::Dns, MatchPattern::Exact("api.example.com".into())).matches(&sans));
    assert!(!m(SanType::Dns, MatchPattern::Exact("a.b.example.com".into())).matches(&sans));
    assert!(!m(SanType::Dns, MatchPattern::Exact(spiffe("ns1", "a"))).matches(&sans));
}

#[test]
fn peer_facts_of_a_certificate() {
    let ca = Ca::new("mesh");
    let (chain, _) = ca.leaf(&spiffe("ns", "sa"), &["svc.ns"], false);
    let der = context::certs(chain.as_bytes()).unwrap().remove(0);
    let s = peer::sans(der.as_ref());
    assert_eq!(s.uri, [spiffe("ns", "sa")]);
    assert_eq!(s.dns, ["svc.ns"]);
    assert_eq!(peer::subject(der.as_ref()), "O=mast");
    assert_eq!(peer::sha256_hex(der.as_ref()).len(), 64);
    let bundle = ca.bundle("a", "b");
    let store = SecretStore::new();
    store.set(Some(Arc::new(bundle))).unwrap();
    assert_eq!(store.current().unwrap().local_uri_sans, [spiffe("a", "b")]);
    assert!(
        store
            .set(Some(Arc::new(CertBundle {
                key_pem: "nope".into(),
                ..ca.bundle("a", "b")
            })))
            .is_err()
    );
    assert!(
        store.current().is_some(),
        "a bad bundle keeps the previous one"
    );
}

#[tokio::test]
async fn an_empty_validation_context_verifies_nothing() {
    // DestinationRule `insecureSkipVerify`: any server certificate is accepted.
    let store = SecretStore::new();
    store
        .set(Some(Arc::new(Ca::new("unknown").bundle("ns1", "server"))))
        .unwrap();
    let mut ctx = strict_context();
    ctx.require_client_certificate = None;
    if let Some(c) = ctx.common_tls_context.as_mut() {
        c.validation_context_type = None;
    }
    let addr = serve(ServerTls::from_proto(&ctx, &store).unwrap()).await;
    let insecure = client(None, "", &[], vec![]);
    assert_eq!(hello(&insecure, addr).await.unwrap(), "|");
    let strict = client(None, &Ca::new("other").root_pem(), &[], vec![]);
    assert!(hello(&strict, addr).await.is_err());
}
