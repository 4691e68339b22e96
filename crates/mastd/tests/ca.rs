//! mastd's CA as a real process: CreateCertificate over gRPC on the xDS port with a real CSR
//! and a `mastd token`; the chain verifies against the CA directory's root with webpki;
//! missing / wrong tokens are refused; a SecretManager gets and rotates a certificate; the
//! root survives a restart; a root rotation reaches new chains; `/metrics` counts; and
//! `--local-tokens` writes a working token per LocalWorkload.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use mast_ca::authority::make_csr;
use mast_ca::bundle::certs_der;
use mast_ca::client::CaClient;
use mast_ca::pb::IstioCertificateRequest;
use mast_ca::{SecretConfig, SecretManager};
use mast_core::SpiffeId;
use mast_test_support::{
    MastdError, MastdOptions, MastdProcess, ProcessGuard, TempDir, cargo_bin, free_port,
    http_get_direct, wait_for,
};
use rustls::pki_types::UnixTime;
use rustls::server::WebPkiClientVerifier;
use tonic::Code;

fn request(ns: &str, sa: &str, ttl: i64) -> IstioCertificateRequest {
    let id = SpiffeId::new("cluster.local", ns, sa).unwrap();
    IstioCertificateRequest {
        csr: make_csr(&id).unwrap().1,
        validity_duration: ttl,
        metadata: None,
    }
}

/// Verifies a CA answer (leaf first, bundle last) against `roots_pem` with webpki.
fn verify(chain: &[String], roots_pem: &str) -> Result<(), rustls::Error> {
    let (_, certs) = chain.split_last().unwrap();
    let certs: Vec<_> = certs
        .iter()
        .flat_map(|p| certs_der(p, "chain").unwrap())
        .collect();
    let mut roots = rustls::RootCertStore::empty();
    for r in certs_der(roots_pem, "roots").unwrap() {
        roots.add(r).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .unwrap()
        .verify_client_cert(&certs[0], &certs[1..], UnixTime::now())
        .map(|_| ())
}

async fn start(name: &str) -> Option<(TempDir, MastdProcess)> {
    let root = TempDir::new(name).unwrap();
    let config = root.join("config");
    std::fs::create_dir_all(&config).unwrap();
    let options = match MastdOptions::new(&config) {
        Ok(o) => o,
        Err(MastdError::NotBuilt) => {
            eprintln!("skipped: mastd is not built (cargo build -p mastd)");
            return None;
        }
        Err(e) => panic!("{e}"),
    };
    let mastd = MastdProcess::start(&options).await.unwrap();
    Some((root, mastd))
}

#[tokio::test]
async fn issues_verifiable_certificates_and_refuses_bad_callers() {
    let Some((_root, mastd)) = start("mastd-ca").await else {
        return;
    };
    let ca_dir = mastd.options().ca_dir();
    let key_mode = std::fs::metadata(ca_dir.join("ca-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    let roots = mastd.root_cert_pem().unwrap();
    let token = std::fs::read_to_string(mastd.token_file("shop", "cart").unwrap()).unwrap();
    let mut client = CaClient::new(&mastd.ca_addr().to_string()).unwrap();

    let chain = client
        .create_certificate(request("shop", "cart", 3600), Some(&token))
        .await
        .unwrap()
        .cert_chain;
    assert_eq!(chain.len(), 2);
    assert_eq!(
        certs_der(&chain[1], "b").unwrap(),
        certs_der(&roots, "r").unwrap()
    );
    verify(&chain, &roots).unwrap();
    let leaf = mast_ca::x509::cert_facts(&certs_der(&chain[0], "leaf").unwrap()[0]).unwrap();
    assert_eq!(
        leaf.uris,
        vec!["spiffe://cluster.local/ns/shop/sa/cart".to_owned()]
    );

    let err = client
        .create_certificate(request("shop", "cart", 0), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    let err = client
        .create_certificate(request("shop", "admin", 0), Some(&token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("sa/admin"), "{}", err.message());

    let metrics = http_get_direct(mastd.monitoring_addr(), "/metrics", &[])
        .await
        .unwrap()
        .text();
    assert!(
        metrics.contains("mast_ca_certs_issued_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mast_ca_csr_errors_total{reason=\"unauthenticated\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mast_ca_csr_errors_total{reason=\"identity_mismatch\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("citadel_server_root_cert_expiry_timestamp "),
        "{metrics}"
    );

    // A SecretManager against the real mastd: first certificate, then a rotation at half of
    // a 4 s lifetime.
    let config = SecretConfig::new(
        mastd.ca_addr().to_string(),
        mastd.token_file("shop", "cart").unwrap(),
        "shop",
        "cart",
    )
    .with_ttl(Duration::from_secs(4));
    let handle = SecretManager::spawn(config).unwrap();
    let first = handle.wait_ready(Duration::from_secs(10)).await.unwrap();
    assert_eq!(first.roots_pem, chain[1]);
    let mut rx = handle.subscribe();
    rx.borrow_and_update();
    tokio::time::timeout(Duration::from_secs(4), rx.changed())
        .await
        .expect("rotated within 4 s")
        .unwrap();
    assert_ne!(handle.current().unwrap().serial_hex, first.serial_hex);
}

#[tokio::test]
async fn root_survives_restarts_and_rotation_reaches_new_chains() {
    let Some((_root, mastd)) = start("mastd-ca-rotate").await else {
        return;
    };
    let options = mastd.options().clone();
    let roots_before = mastd.root_cert_pem().unwrap();
    let token = std::fs::read_to_string(mastd.token_file("a", "b").unwrap()).unwrap();
    mastd.kill();
    let mastd = MastdProcess::start(&options).await.unwrap();
    assert_eq!(
        mastd.root_cert_pem().unwrap(),
        roots_before,
        "same root after restart"
    );
    let mut client = CaClient::new(&mastd.ca_addr().to_string()).unwrap();
    // The token from before the restart is still accepted (same token key).
    let chain = client
        .create_certificate(request("a", "b", 0), Some(&token))
        .await
        .unwrap()
        .cert_chain;
    verify(&chain, &roots_before).unwrap();

    let rotate = |phase: &str| {
        let out = Command::new(&options.binary)
            .args(["ca", "rotate-root", "--phase", phase, "--ca-dir"])
            .arg(options.ca_dir())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    rotate("add");
    // mastd reloads within its 2 s poll: new chains end with a two-root bundle.
    let mut bundle_len = 0;
    for _ in 0..50 {
        let chain = client
            .create_certificate(request("a", "b", 0), Some(&token))
            .await
            .unwrap()
            .cert_chain;
        bundle_len = certs_der(chain.last().unwrap(), "bundle").unwrap().len();
        if bundle_len == 2 {
            verify(&chain, &roots_before).unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(bundle_len, 2, "the new root reached the bundle");
    rotate("switch");
    rotate("drop");
    let new_roots = mastd.root_cert_pem().unwrap();
    let mut switched = false;
    for _ in 0..50 {
        let chain = client
            .create_certificate(request("a", "b", 0), Some(&token))
            .await
            .unwrap()
            .cert_chain;
        if certs_der(chain.last().unwrap(), "bundle").unwrap().len() == 1 {
            verify(&chain, &new_roots).unwrap();
            assert!(
                verify(&chain, &roots_before).is_err(),
                "signed by the new root"
            );
            switched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        switched,
        "mastd signs with the new root after switch + drop"
    );
}

const WORKLOAD: &str = "apiVersion: mast.dev/v1alpha1\nkind: LocalWorkload\nmetadata:\n  name: cart\n  namespace: shop\nspec:\n  command: [\"sleep\", \"1000\"]\n  serviceAccount: cart-sa\n";

#[tokio::test]
async fn local_tokens_are_written_for_local_workloads() {
    let Some(bin) = cargo_bin("mastd") else {
        eprintln!("skipped: mastd is not built");
        return;
    };
    let root = TempDir::new("mastd-ca-local-tokens").unwrap();
    let config = root.join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("w.yaml"), WORKLOAD).unwrap();
    let (xds, mon) = (free_port(), free_port());
    let tokens = root.join("tokens");
    let _mastd = ProcessGuard::spawn(
        Command::new(bin)
            .arg("--config-dir")
            .arg(&config)
            .args(["--xds-addr", &format!("127.0.0.1:{xds}")])
            .args(["--monitoring-addr", &format!("127.0.0.1:{mon}")])
            .arg("--ca-dir")
            .arg(root.join("ca"))
            .arg("--local-tokens")
            .arg(&tokens),
    )
    .unwrap();
    let first = tokens.join("shop/cart.token");
    assert!(
        wait_for(|| first.is_file(), Duration::from_secs(15)),
        "token written"
    );
    let mode = std::fs::metadata(&first).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let token = std::fs::read_to_string(&first).unwrap();
    let mut client = CaClient::new(&format!("127.0.0.1:{xds}")).unwrap();
    let chain = client
        .create_certificate(request("shop", "cart-sa", 0), Some(&token))
        .await
        .unwrap()
        .cert_chain;
    assert_eq!(chain.len(), 2);

    // A workload added later gets its token too.
    std::fs::write(
        config.join("w2.yaml"),
        WORKLOAD
            .replace("name: cart", "name: pay")
            .replace("cart-sa", "pay-sa"),
    )
    .unwrap();
    let second = tokens.join("shop/pay.token");
    assert!(
        wait_for(|| second.is_file(), Duration::from_secs(15)),
        "new token written"
    );
}
