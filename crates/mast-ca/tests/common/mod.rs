//! Shared helpers for mast-ca's integration tests (included with `mod common;`).

#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;

/// A fresh temporary directory removed on drop.
pub struct Temp(pub PathBuf);

impl Temp {
    pub fn new(name: &str) -> Self {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p = std::env::temp_dir().join(format!("mast-ca-{name}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Verifies `chain` (leaf first, trust bundle last, as the CA answers) with rustls' webpki
/// client-certificate verifier against the bundle's roots.
pub fn verify_chain(chain: &[String]) -> Result<(), rustls::Error> {
    let (bundle, certs) = chain.split_last().unwrap();
    let certs: Vec<CertificateDer<'static>> = certs
        .iter()
        .flat_map(|p| mast_ca::bundle::certs_der(p, "chain").unwrap())
        .collect();
    verify_with_roots(&certs, bundle)
}

/// Verifies `certs` (leaf first) against the roots in `roots_pem`.
pub fn verify_with_roots(
    certs: &[CertificateDer<'static>],
    roots_pem: &str,
) -> Result<(), rustls::Error> {
    let mut roots = RootCertStore::empty();
    for r in mast_ca::bundle::certs_der(roots_pem, "roots").unwrap() {
        roots.add(r).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .unwrap();
    verifier
        .verify_client_cert(&certs[0], &certs[1..], UnixTime::now())
        .map(|_| ())
}
