//! The CA: chains, identities, TTLs, plug-in CAs, key files, restarts and root rotation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, SystemTime};

use common::{Temp, verify_chain};
use mast_ca::authority::{CaOptions, CertificateAuthority, SignError, make_csr};
use mast_ca::rotation::{RotationPhase, rotate_root};
use mast_ca::x509::{cert_facts, pem_certs};
use mast_core::SpiffeId;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

fn id(ns: &str, sa: &str) -> SpiffeId {
    SpiffeId::new("cluster.local", ns, sa).unwrap()
}

fn leaf_facts(chain: &[String]) -> mast_ca::x509::CertFacts {
    cert_facts(&pem_certs(&chain[0]).unwrap()[0]).unwrap()
}

#[test]
fn signs_a_csr_leaf_first_root_last_and_it_verifies() {
    let ca = CertificateAuthority::ephemeral("cluster.local").unwrap();
    let me = id("shop", "cart");
    let (_key, csr) = make_csr(&me).unwrap();
    let chain = ca.sign(&csr, &me, Duration::from_secs(3600)).unwrap();
    assert_eq!(chain.len(), 2, "self-signed root: leaf + bundle");
    assert_eq!(chain[1], ca.roots_pem());
    let leaf = leaf_facts(&chain);
    assert_eq!(
        leaf.uris,
        vec!["spiffe://cluster.local/ns/shop/sa/cart".to_owned()]
    );
    assert!(!leaf.is_ca);
    let root = cert_facts(&pem_certs(&chain[1]).unwrap()[0]).unwrap();
    assert!(root.is_ca && root.self_issued);
    assert!(root.subject.contains("Mast CA") && root.subject.contains("cluster.local"));
    verify_chain(&chain).unwrap();
}

#[test]
fn leaf_has_backdated_not_before_and_requested_ttl() {
    let ca = CertificateAuthority::ephemeral("cluster.local").unwrap();
    let me = id("a", "b");
    let (_k, csr) = make_csr(&me).unwrap();
    let now = SystemTime::now();
    let leaf = leaf_facts(&ca.sign(&csr, &me, Duration::from_secs(600)).unwrap());
    let back = now.duration_since(leaf.not_before).unwrap().as_secs();
    assert!((59..=61).contains(&back), "notBefore {back}s in the past");
    let life = leaf.not_after.duration_since(now).unwrap().as_secs();
    assert!((599..=601).contains(&life), "validity {life}s");
}

#[test]
fn ttl_defaults_to_24h_and_is_capped_at_the_max() {
    let ca = CertificateAuthority::ephemeral("cluster.local").unwrap();
    assert_eq!(ca.effective_ttl(Duration::ZERO), Duration::from_secs(86400));
    assert_eq!(
        ca.effective_ttl(Duration::from_secs(1000 * 86400)),
        Duration::from_secs(90 * 86400)
    );
    let me = id("a", "b");
    let (_k, csr) = make_csr(&me).unwrap();
    let leaf = leaf_facts(&ca.sign(&csr, &me, Duration::ZERO).unwrap());
    let life = leaf
        .not_after
        .duration_since(SystemTime::now())
        .unwrap()
        .as_secs();
    assert!((86398..=86400).contains(&life), "default validity {life}s");

    let dir = Temp::new("cap");
    let options = CaOptions {
        max_ttl: Duration::from_secs(3600),
        ..CaOptions::default()
    };
    let capped = CertificateAuthority::load_or_create(&dir.0, options).unwrap();
    let leaf = leaf_facts(
        &capped
            .sign(&csr, &me, Duration::from_secs(7 * 86400))
            .unwrap(),
    );
    let life = leaf
        .not_after
        .duration_since(SystemTime::now())
        .unwrap()
        .as_secs();
    assert!((3598..=3600).contains(&life), "capped validity {life}s");
}

#[test]
fn a_csr_for_another_identity_is_refused() {
    let ca = CertificateAuthority::ephemeral("cluster.local").unwrap();
    let (_k, csr) = make_csr(&id("shop", "admin")).unwrap();
    let err = ca
        .sign(&csr, &id("shop", "cart"), Duration::ZERO)
        .unwrap_err();
    assert!(matches!(err, SignError::IdentityMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("spiffe://cluster.local/ns/shop/sa/admin"),
        "{msg}"
    );
    assert!(
        msg.contains("spiffe://cluster.local/ns/shop/sa/cart"),
        "{msg}"
    );
    assert_eq!(err.reason(), "identity_mismatch");
}

#[test]
fn other_trust_domain_garbage_and_tampered_csrs_are_refused() {
    let ca = CertificateAuthority::ephemeral("cluster.local").unwrap();
    let other = SpiffeId::new("example.org", "a", "b").unwrap();
    let (_k, csr) = make_csr(&other).unwrap();
    assert!(matches!(
        ca.sign(&csr, &other, Duration::ZERO),
        Err(SignError::TrustDomain { .. })
    ));
    let me = id("a", "b");
    assert!(matches!(
        ca.sign("hello", &me, Duration::ZERO),
        Err(SignError::Parse(_))
    ));
    // Flip a byte inside the signed part: the signature no longer verifies.
    let (_k, csr) = make_csr(&me).unwrap();
    let der = pem_csr_der(&csr);
    let mut bad = der.clone();
    let i = bad.len() / 3;
    bad[i] ^= 0x01;
    let bad_pem = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", bad));
    let err = ca.sign(&bad_pem, &me, Duration::ZERO).unwrap_err();
    assert!(
        matches!(err, SignError::Signature(_) | SignError::Parse(_)),
        "{err}"
    );
}

fn pem_csr_der(csr: &str) -> Vec<u8> {
    pem::parse(csr).unwrap().into_contents()
}

#[test]
fn a_csr_without_sans_gets_the_callers_identity() {
    let ca = CertificateAuthority::ephemeral("cluster.local").unwrap();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::DnsName("evil.example".try_into().unwrap())];
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let chain = ca.sign(&csr, &id("x", "y"), Duration::ZERO).unwrap();
    assert_eq!(
        leaf_facts(&chain).uris,
        vec!["spiffe://cluster.local/ns/x/sa/y".to_owned()]
    );
    verify_chain(&chain).unwrap();
}

#[test]
fn key_file_is_private_and_a_restart_keeps_the_root() {
    let dir = Temp::new("restart");
    let ca_dir = dir.0.join("ca");
    let first = CertificateAuthority::load_or_create(&ca_dir, CaOptions::default()).unwrap();
    let mode = std::fs::metadata(ca_dir.join("ca-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    for f in ["ca-cert.pem", "root-cert.pem"] {
        assert!(ca_dir.join(f).is_file(), "{f}");
    }
    let second = CertificateAuthority::load_or_create(&ca_dir, CaOptions::default()).unwrap();
    assert_eq!(first.roots_pem(), second.roots_pem());
    // A leaf from the first instance verifies against the second's roots.
    let me = id("a", "b");
    let (_k, csr) = make_csr(&me).unwrap();
    let mut chain = first.sign(&csr, &me, Duration::ZERO).unwrap();
    *chain.last_mut().unwrap() = second.roots_pem().to_owned();
    verify_chain(&chain).unwrap();
}

/// A root and an intermediate made with rcgen, written in Istio's `cacerts` layout.
fn plugin_dir(dir: &std::path::Path) -> (String, String) {
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut root = CertificateParams::default();
    root.distinguished_name
        .push(DnType::CommonName, "Corp Root");
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let root_cert = root.self_signed(&root_key).unwrap();
    let root_issuer = rcgen::Issuer::new(root, root_key);
    let int_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut int = CertificateParams::default();
    int.distinguished_name
        .push(DnType::CommonName, "Mesh Intermediate");
    int.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    int.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let int_cert = int.signed_by(&int_key, &root_issuer).unwrap();
    std::fs::write(dir.join("ca-key.pem"), int_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca-cert.pem"), int_cert.pem()).unwrap();
    std::fs::write(dir.join("root-cert.pem"), root_cert.pem()).unwrap();
    std::fs::write(
        dir.join("cert-chain.pem"),
        format!("{}{}", int_cert.pem(), root_cert.pem()),
    )
    .unwrap();
    (int_cert.pem(), root_cert.pem())
}

#[test]
fn plugin_ca_with_an_intermediate_sends_leaf_intermediate_root() {
    let dir = Temp::new("plugin");
    let (int_pem, root_pem) = plugin_dir(&dir.0);
    let ca = CertificateAuthority::load_dir(&dir.0, CaOptions::default()).unwrap();
    let me = id("shop", "cart");
    let (_k, csr) = make_csr(&me).unwrap();
    let chain = ca.sign(&csr, &me, Duration::ZERO).unwrap();
    assert_eq!(chain.len(), 3, "leaf, intermediate, root: {chain:#?}");
    assert_eq!(pem_certs(&chain[1]).unwrap(), pem_certs(&int_pem).unwrap());
    assert_eq!(pem_certs(&chain[2]).unwrap(), pem_certs(&root_pem).unwrap());
    verify_chain(&chain).unwrap();
    // Without the intermediate the leaf does not verify.
    let short = vec![chain[0].clone(), chain[2].clone()];
    assert!(verify_chain(&short).is_err());
}

#[test]
fn plugin_ca_with_mismatched_key_or_leaf_cert_is_refused() {
    let dir = Temp::new("plugin-bad");
    plugin_dir(&dir.0);
    let other = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(dir.0.join("ca-key.pem"), other.serialize_pem()).unwrap();
    let err = CertificateAuthority::load_dir(&dir.0, CaOptions::default()).unwrap_err();
    assert!(err.to_string().contains("does not match the key"), "{err}");
}

#[test]
fn rotation_phases_produce_the_expected_bundles() {
    let dir = Temp::new("rotate");
    let td = "cluster.local";
    let old = CertificateAuthority::load_or_create(&dir.0, CaOptions::default()).unwrap();
    let old_root = pem_certs(old.roots_pem()).unwrap();
    assert_eq!(old_root.len(), 1);
    let me = id("a", "b");
    let (_k, csr) = make_csr(&me).unwrap();

    rotate_root(&dir.0, td, RotationPhase::Add).unwrap();
    let added = CertificateAuthority::load_dir(&dir.0, CaOptions::default()).unwrap();
    let roots = pem_certs(added.roots_pem()).unwrap();
    assert_eq!(roots.len(), 2);
    assert_eq!(roots[0], old_root[0]);
    let new_root = roots[1].clone();
    assert_eq!(
        added.signing_cert_pem(),
        old.signing_cert_pem(),
        "still signing with the old root"
    );
    let chain = added.sign(&csr, &me, Duration::ZERO).unwrap();
    verify_chain(&chain).unwrap();
    assert!(
        rotate_root(&dir.0, td, RotationPhase::Add).is_err(),
        "add twice"
    );
    assert!(
        rotate_root(&dir.0, td, RotationPhase::Drop).is_err(),
        "drop before switch"
    );

    rotate_root(&dir.0, td, RotationPhase::Switch).unwrap();
    let switched = CertificateAuthority::load_dir(&dir.0, CaOptions::default()).unwrap();
    assert_eq!(pem_certs(switched.roots_pem()).unwrap().len(), 2);
    assert_eq!(pem_certs(switched.signing_cert_pem()).unwrap()[0], new_root);
    let chain = switched.sign(&csr, &me, Duration::ZERO).unwrap();
    verify_chain(&chain).unwrap();
    // The new leaf verifies with the new root alone, not with the old one.
    let only_old = vec![chain[0].clone(), old.roots_pem().to_owned()];
    assert!(verify_chain(&only_old).is_err());
    assert!(
        rotate_root(&dir.0, td, RotationPhase::Switch).is_err(),
        "switch twice"
    );

    rotate_root(&dir.0, td, RotationPhase::Drop).unwrap();
    let dropped = CertificateAuthority::load_dir(&dir.0, CaOptions::default()).unwrap();
    assert_eq!(pem_certs(dropped.roots_pem()).unwrap(), vec![new_root]);
    verify_chain(&dropped.sign(&csr, &me, Duration::ZERO).unwrap()).unwrap();
    let mode = std::fs::metadata(dir.0.join("ca-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn issue_bundle_makes_a_usable_bundle() {
    let ca = CertificateAuthority::ephemeral("cluster.local").unwrap();
    let b = ca
        .issue_bundle(&id("a", "b"), Duration::from_secs(60))
        .unwrap();
    assert_eq!(b.identity, id("a", "b"));
    assert_eq!(b.roots_pem, ca.roots_pem());
    assert_eq!(b.chain_der().unwrap().len(), 1);
    b.key_der().unwrap();
    assert!(b.seconds_left(SystemTime::now()) <= 60);
    assert!(!b.serial_hex.is_empty());
}
