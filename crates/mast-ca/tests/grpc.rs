//! The CA service over real gRPC on 127.0.0.1 (in process), and the SecretManager against it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Temp, verify_chain};
use mast_ca::authority::{CertificateAuthority, make_csr};
use mast_ca::client::CaClient;
use mast_ca::pb::IstioCertificateRequest;
use mast_ca::server::{Authenticator, CaService, LocalTokenAuthenticator, SharedCa};
use mast_ca::token::TokenIssuer;
use mast_ca::{SecretConfig, SecretManager};
use mast_core::SpiffeId;
use tonic::Code;

struct Ca {
    addr: String,
    issuer: TokenIssuer,
    shared: SharedCa,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start_ca() -> Ca {
    let issuer = TokenIssuer::ephemeral();
    let shared = SharedCa::new(CertificateAuthority::ephemeral("cluster.local").unwrap());
    let auth: Vec<Arc<dyn Authenticator>> = vec![Arc::new(LocalTokenAuthenticator(issuer.clone()))];
    let service = CaService::new(shared.clone(), auth);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = rx.await;
            }),
    );
    Ca {
        addr,
        issuer,
        shared,
        _stop: tx,
    }
}

fn request(ns: &str, sa: &str, ttl: i64) -> IstioCertificateRequest {
    let id = SpiffeId::new("cluster.local", ns, sa).unwrap();
    IstioCertificateRequest {
        csr: make_csr(&id).unwrap().1,
        validity_duration: ttl,
        metadata: None,
    }
}

#[tokio::test]
async fn create_certificate_authenticates_and_signs() {
    let ca = start_ca().await;
    let mut client = CaClient::new(&ca.addr).unwrap();
    let token = ca.issuer.issue("shop", "cart");
    let resp = client
        .create_certificate(request("shop", "cart", 3600), Some(&token))
        .await
        .unwrap();
    assert_eq!(resp.cert_chain.len(), 2);
    verify_chain(&resp.cert_chain).unwrap();

    let err = client
        .create_certificate(request("shop", "cart", 0), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(err.message().contains("authorization"), "{}", err.message());

    let forged = TokenIssuer::ephemeral().issue("shop", "cart");
    let err = client
        .create_certificate(request("shop", "cart", 0), Some(&forged))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("signature"), "{}", err.message());

    let err = client
        .create_certificate(request("shop", "admin", 0), Some(&token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("sa/admin"), "{}", err.message());

    let mut bad = request("shop", "cart", 0);
    bad.csr = "not a csr".into();
    let err = client
        .create_certificate(bad, Some(&token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    let m = ca.shared.metrics();
    assert_eq!(m.issued.get(), 1);
    let reason = |r: &str| {
        m.errors
            .get_or_create(&mast_ca::server::ReasonLabel { reason: r.into() })
            .get()
    };
    assert_eq!(reason("unauthenticated"), 2);
    assert_eq!(reason("identity_mismatch"), 1);
    assert_eq!(reason("csr_parse"), 1);
    assert!(m.root_expiry.get() > 0);
}

#[tokio::test]
async fn secret_manager_waits_for_the_token_then_rotates() {
    let ca = start_ca().await;
    let dir = Temp::new("manager");
    let token_file = dir.0.join("cart.token");
    let config = SecretConfig::new(ca.addr.clone(), &token_file, "shop", "cart")
        .with_ttl(Duration::from_secs(4));
    let handle = SecretManager::spawn(config).unwrap();
    let mut rx = handle.subscribe();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(handle.current().is_none());
    assert!(handle.last_error().unwrap().contains("token file"));
    std::fs::write(&token_file, ca.issuer.issue("shop", "cart")).unwrap();

    let first = handle
        .wait_ready(Duration::from_secs(5))
        .await
        .expect("first certificate");
    assert_eq!(
        first.identity.to_string(),
        "spiffe://cluster.local/ns/shop/sa/cart"
    );
    assert_eq!(handle.expiry(), Some(first.not_after));
    assert!(handle.last_error().is_none());
    rx.borrow_and_update();
    // Half of 4 s: a new certificate within ~2 s (allow 4).
    tokio::time::timeout(Duration::from_secs(4), rx.changed())
        .await
        .expect("rotation")
        .unwrap();
    let second = handle.current().unwrap();
    assert_ne!(second.serial_hex, first.serial_hex);
    assert_ne!(second.key_pem, first.key_pem, "a new key per certificate");
}

#[tokio::test]
async fn secret_manager_keeps_the_old_bundle_when_the_ca_refuses() {
    let ca = start_ca().await;
    let dir = Temp::new("manager-refused");
    let token_file = dir.0.join("t");
    std::fs::write(&token_file, ca.issuer.issue("shop", "cart")).unwrap();
    let config = SecretConfig::new(ca.addr.clone(), &token_file, "shop", "cart")
        .with_ttl(Duration::from_secs(2));
    let handle = SecretManager::spawn(config).unwrap();
    let first = handle.wait_ready(Duration::from_secs(5)).await.unwrap();
    // A token for another service account: the refresh is refused, the old bundle stays.
    std::fs::write(&token_file, ca.issuer.issue("shop", "other")).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while handle.last_error().is_none() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e = handle.last_error().expect("refused refresh");
    assert!(e.contains("PermissionDenied"), "{e}");
    assert_eq!(handle.current().unwrap().serial_hex, first.serial_hex);
}
