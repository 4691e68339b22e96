//! Several certificates in one downstream context (Istio's `tlsCertificates`): the handshake
//! presents the one covering the SNI that the client can verify, as Envoy selects.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source::Specifier};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CommonTlsContext, DownstreamTlsContext, TlsCertificate, UpstreamTlsContext,
};
use rcgen::{CertificateParams, KeyPair};
use rustls::SignatureScheme;

use super::{ServerTls, serve};
use crate::tls::{ClientTls, SecretStore};

/// A self-signed certificate for `name` with a key of `alg`: (PEM, key PEM, DER).
fn cert(name: &str, alg: &'static rcgen::SignatureAlgorithm) -> (String, String, Vec<u8>) {
    let key = KeyPair::generate_for(alg).unwrap();
    let c = CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (c.pem(), key.serialize_pem(), c.der().to_vec())
}

fn tls_certificate((chain, key, _): &(String, String, Vec<u8>)) -> TlsCertificate {
    let inline = |s: &str| DataSource {
        specifier: Some(Specifier::InlineString(s.to_owned())),
        ..Default::default()
    };
    TlsCertificate {
        certificate_chain: Some(inline(chain)),
        private_key: Some(inline(key)),
        ..Default::default()
    }
}

/// Accepts any certificate, offering only `schemes`.
#[derive(Debug)]
struct Offering(Vec<SignatureScheme>);

impl rustls::client::danger::ServerCertVerifier for Offering {
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

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.clone()
    }
}

/// The DER of the certificate the server presents for `sni` to a client offering `schemes`.
async fn presented(
    addr: std::net::SocketAddr,
    sni: &str,
    schemes: Vec<SignatureScheme>,
) -> Vec<u8> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(Offering(schemes)))
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0]
        .as_ref()
        .to_vec()
}

#[tokio::test]
async fn the_certificate_follows_the_sni_and_the_clients_schemes() {
    let a_p256 = cert("a.example.com", &rcgen::PKCS_ECDSA_P256_SHA256);
    let a_ed = cert("a.example.com", &rcgen::PKCS_ED25519);
    let b_wild = cert("*.b.example.com", &rcgen::PKCS_ECDSA_P256_SHA256);
    let ctx = DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificates: [&a_p256, &a_ed, &b_wild]
                .into_iter()
                .map(tls_certificate)
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let addr = serve(ServerTls::from_proto(&ctx, &SecretStore::new()).unwrap()).await;
    let all = vec![
        SignatureScheme::ECDSA_NISTP256_SHA256,
        SignatureScheme::ED25519,
    ];
    assert_eq!(
        presented(addr, "a.example.com", all.clone()).await,
        a_p256.2
    );
    assert_eq!(
        presented(addr, "a.example.com", vec![SignatureScheme::ED25519]).await,
        a_ed.2,
        "the client cannot verify ECDSA"
    );
    assert_eq!(
        presented(addr, "x.b.example.com", all.clone()).await,
        b_wild.2
    );
    assert_eq!(
        presented(addr, "other.org", vec![SignatureScheme::ED25519]).await,
        a_ed.2,
        "no name matches: the first the client can verify"
    );

    let up = UpstreamTlsContext {
        common_tls_context: ctx.common_tls_context.clone(),
        ..Default::default()
    };
    let err = ClientTls::from_proto(&up, &SecretStore::new(), false, false).unwrap_err();
    assert_eq!(err.0, "common_tls_context.tls_certificates");
}
