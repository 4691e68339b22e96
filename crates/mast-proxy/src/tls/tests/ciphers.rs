//! `tls_params.cipher_suites` / versions on a downstream context: Envoy names map onto
//! rustls' TLS 1.2 suites, unsupported names are refused with their entry, and a scanner sees
//! exactly the configured versions and suites (`sslscan` when installed).

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source::Specifier};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CommonTlsContext, DownstreamTlsContext, TlsCertificate, TlsParameters,
};

use super::{Ca, ServerTls, serve, spiffe};
use crate::tls::SecretStore;
use crate::tls::params::{Params, ciphers, curves};

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// A server context with an inline (ECDSA P-256) certificate and these parameters.
fn context(ca: &Ca, suites: &[&str], min: i32, max: i32) -> DownstreamTlsContext {
    let (chain, key) = ca.leaf(&spiffe("gw", "ingress"), &["gw.example.com"], false);
    let inline = |s: String| DataSource {
        specifier: Some(Specifier::InlineString(s)),
        ..Default::default()
    };
    DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_params: Some(TlsParameters {
                tls_minimum_protocol_version: min,
                tls_maximum_protocol_version: max,
                cipher_suites: strings(suites),
                ..Default::default()
            }),
            tls_certificates: vec![TlsCertificate {
                certificate_chain: Some(inline(chain)),
                private_key: Some(inline(key)),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn envoy_names_and_equal_preference_groups_map_to_rustls_suites() {
    let mut p = Params::default();
    ciphers(
        &strings(&[
            "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]",
            "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
        ]),
        &mut p,
    )
    .unwrap();
    assert_eq!(
        p.ciphers,
        [
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            "ECDHE-RSA-AES256-GCM-SHA384",
            "ECDHE-RSA-AES128-GCM-SHA256",
        ]
    );
    assert!(p.grouped);
    let provider = p.provider();
    let tls12: Vec<_> = provider
        .cipher_suites
        .iter()
        .filter(|s| s.version() == &rustls::version::TLS12)
        .map(|s| format!("{:?}", s.suite()))
        .collect();
    assert_eq!(
        tls12,
        [
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        ]
    );
    assert_eq!(
        provider.cipher_suites.len() - tls12.len(),
        3,
        "TLS 1.3 suites stay"
    );
}

#[test]
fn suites_rustls_cannot_do_are_refused_naming_the_entry() {
    let ca = Ca::new("gw");
    let cases = [
        ("AES128-GCM-SHA256", "RSA/PSK key exchange"),
        ("ECDHE-RSA-AES128-SHA", "CBC"),
        ("DES-CBC3-SHA", "RSA/PSK key exchange"),
        (
            "TLS_AES_128_GCM_SHA256",
            "TLS 1.3 suites are not configurable",
        ),
        (
            "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-AES128-SHA",
            "unbalanced",
        ),
    ];
    for (bad, why) in cases {
        let ctx = context(&ca, &["ECDHE-ECDSA-AES128-GCM-SHA256", bad], 3, 3);
        let (field, reason) = ServerTls::from_proto(&ctx, &SecretStore::new()).unwrap_err();
        assert_eq!(
            field, "common_tls_context.tls_params.cipher_suites[1]",
            "{bad}"
        );
        assert!(reason.contains(why), "{bad}: {reason}");
    }
}

/// A rustls client limited to `suite` (TLS 1.2) or TLS 1.3: does the handshake succeed?
async fn handshake(
    addr: std::net::SocketAddr,
    suite: Option<rustls::SupportedCipherSuite>,
) -> bool {
    let mut provider = rustls::crypto::ring::default_provider();
    let versions: &[&rustls::SupportedProtocolVersion] = match suite {
        Some(s) => {
            provider.cipher_suites = vec![s];
            &[&rustls::version::TLS12]
        }
        None => &[&rustls::version::TLS13],
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("gw.example.com").unwrap();
    let connect = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp);
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(5), connect).await,
        Ok(Ok(_))
    )
}

#[tokio::test]
async fn only_the_configured_tls12_suites_are_negotiated() {
    use rustls::crypto::ring::cipher_suite as cs;
    let ca = Ca::new("gw");
    let ctx = context(
        &ca,
        &["[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]"],
        3,
        3,
    );
    let addr = serve(ServerTls::from_proto(&ctx, &SecretStore::new()).unwrap()).await;
    assert!(handshake(addr, Some(cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)).await);
    assert!(
        handshake(
            addr,
            Some(cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256)
        )
        .await
    );
    assert!(!handshake(addr, Some(cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)).await);
    assert!(!handshake(addr, None).await, "TLS 1.3 is above the maximum");
}

/// The check: `sslscan` lists exactly the configured protocol and suites.
#[tokio::test]
async fn sslscan_sees_only_the_configured_version_and_ciphers() {
    let Some(sslscan) = which("sslscan") else {
        eprintln!("sslscan not installed: skipped");
        return;
    };
    let ca = Ca::new("gw");
    let ctx = context(
        &ca,
        &[
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "ECDHE-ECDSA-CHACHA20-POLY1305",
        ],
        3,
        3,
    );
    let addr = serve(ServerTls::from_proto(&ctx, &SecretStore::new()).unwrap()).await;
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new(sslscan)
            .args(["--no-colour", "--no-heartbleed", "--no-renegotiation"])
            .args([
                "--no-compression",
                "--no-fallback",
                "--no-groups",
                "--no-check-certificate",
            ])
            .arg("--sni-name=gw.example.com")
            .arg(addr.to_string())
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut accepted: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("Accepted") || l.starts_with("Preferred"))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let version = words.nth(1)?;
            let cipher = words.nth(2)?;
            Some(format!("{version} {cipher}"))
        })
        .collect();
    accepted.sort();
    assert_eq!(
        accepted,
        [
            "TLSv1.2 ECDHE-ECDSA-AES256-GCM-SHA384",
            "TLSv1.2 ECDHE-ECDSA-CHACHA20-POLY1305",
        ],
        "{text}"
    );
    // Envoy's default is the server's order: the first configured suite is preferred.
    assert!(
        text.lines()
            .any(|l| l.starts_with("Preferred") && l.contains("ECDHE-ECDSA-AES256-GCM-SHA384")),
        "{text}"
    );
    for line in text.lines().filter(|l| l.contains("enabled")) {
        assert!(
            line.starts_with("TLSv1.2") || !line.contains(" enabled"),
            "only TLS 1.2 may be enabled: {line}\n{text}"
        );
    }
}

fn which(tool: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    })
}

#[derive(Debug)]
struct AcceptAny;

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[test]
fn ecdh_curves_restrict_the_key_exchange_groups() {
    let mut p = Params::default();
    curves(&strings(&["P-256:X25519", "prime256v1"]), &mut p).unwrap();
    assert_eq!(p.curves, ["P-256", "X25519"]);
    let names: Vec<String> = p
        .provider()
        .kx_groups
        .iter()
        .map(|g| format!("{:?}", g.name()))
        .collect();
    assert_eq!(names, ["secp256r1", "X25519"]);
    let err = curves(&strings(&["X25519", "X448"]), &mut Params::default()).unwrap_err();
    assert_eq!(err.0, "tls_params.ecdh_curves[1]");
}
