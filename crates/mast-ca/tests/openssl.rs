//! Interoperability with material made by OpenSSL, as operators make Istio's `cacerts`:
//! an RSA root and intermediate with PKCS#1 keys, a SEC1 EC signing key, and a workload CSR
//! with a critical URI SAN. Skipped when `openssl` is not installed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Temp, verify_chain};
use mast_ca::authority::{CaOptions, CertificateAuthority};
use mast_ca::x509::{cert_facts, pem_certs};
use mast_core::SpiffeId;

fn openssl(dir: &Path, args: &[&str]) -> bool {
    match Command::new("openssl").args(args).current_dir(dir).output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => panic!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr)),
        Err(_) => false,
    }
}

const EXT: &str = "[v3_ca]\nbasicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n";

/// Root (RSA) + intermediate signed by it; the intermediate's key made by `key_args`.
fn make_cacerts(dir: &Path, key_args: &[&str]) -> bool {
    std::fs::write(dir.join("ext.cnf"), EXT).unwrap();
    let steps: Vec<Vec<&str>> = vec![
        vec!["genrsa", "-traditional", "-out", "root-key.pem", "2048"],
        vec![
            "req",
            "-x509",
            "-new",
            "-key",
            "root-key.pem",
            "-sha256",
            "-days",
            "3650",
            "-subj",
            "/O=Istio/CN=Root CA",
            "-addext",
            "basicConstraints=critical,CA:true",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            "root-cert.pem",
        ],
        key_args.to_vec(),
        vec![
            "req",
            "-new",
            "-key",
            "ca-key.pem",
            "-subj",
            "/O=Istio/CN=Intermediate CA",
            "-out",
            "ca.csr",
        ],
        vec![
            "x509",
            "-req",
            "-in",
            "ca.csr",
            "-CA",
            "root-cert.pem",
            "-CAkey",
            "root-key.pem",
            "-CAcreateserial",
            "-days",
            "730",
            "-sha256",
            "-extfile",
            "ext.cnf",
            "-extensions",
            "v3_ca",
            "-out",
            "ca-cert.pem",
        ],
    ];
    for s in steps {
        if !openssl(dir, &s) {
            return false;
        }
    }
    let chain = format!(
        "{}{}",
        std::fs::read_to_string(dir.join("ca-cert.pem")).unwrap(),
        std::fs::read_to_string(dir.join("root-cert.pem")).unwrap()
    );
    std::fs::write(dir.join("cert-chain.pem"), chain).unwrap();
    true
}

fn openssl_csr(dir: &Path, uri: &str) -> Option<String> {
    let san = format!("subjectAltName=critical,URI:{uri}");
    let ok = openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "w-key.pem",
            "-subj",
            "/O=cluster.local",
            "-addext",
            &san,
            "-out",
            "w.csr",
        ],
    );
    ok.then(|| std::fs::read_to_string(dir.join("w.csr")).unwrap())
}

fn check(dir: &Path) {
    let ca = CertificateAuthority::load_dir(dir, CaOptions::default()).unwrap();
    let me = SpiffeId::new("cluster.local", "shop", "cart").unwrap();
    let Some(csr) = openssl_csr(dir, &me.to_string()) else {
        return;
    };
    let chain = ca.sign(&csr, &me, Duration::from_secs(3600)).unwrap();
    assert_eq!(chain.len(), 3, "leaf, intermediate, root");
    verify_chain(&chain).unwrap();
    let leaf = cert_facts(&pem_certs(&chain[0]).unwrap()[0]).unwrap();
    assert_eq!(leaf.uris, vec![me.to_string()]);
    let other = openssl_csr(dir, "spiffe://cluster.local/ns/shop/sa/admin").unwrap();
    assert!(ca.sign(&other, &me, Duration::ZERO).is_err());
}

#[test]
fn rsa_pkcs1_plugin_ca_signs_an_openssl_csr() {
    let dir = Temp::new("openssl-rsa");
    if !make_cacerts(
        &dir.0,
        &["genrsa", "-traditional", "-out", "ca-key.pem", "2048"],
    ) {
        eprintln!("skipped: no openssl");
        return;
    }
    assert!(
        std::fs::read_to_string(dir.0.join("ca-key.pem"))
            .unwrap()
            .contains("RSA PRIVATE KEY")
    );
    check(&dir.0);
}

#[test]
fn sec1_ec_plugin_ca_signs_an_openssl_csr() {
    let dir = Temp::new("openssl-ec");
    let key = [
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "ca-key.pem",
    ];
    if !make_cacerts(&dir.0, &key) {
        eprintln!("skipped: no openssl");
        return;
    }
    assert!(
        std::fs::read_to_string(dir.0.join("ca-key.pem"))
            .unwrap()
            .contains("EC PRIVATE KEY")
    );
    check(&dir.0);
}
