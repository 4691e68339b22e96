//! X.509 helpers: splitting PEM texts into certificates, reading the facts the CA and the
//! secret manager need from a certificate (validity, serial, URI SANs, CA flag, public key),
//! and loading private keys in the forms plug-in CAs use (PKCS#8, PKCS#1 RSA, SEC1 EC).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::KeyPair;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// notBefore.
    pub not_before: SystemTime,
    /// notAfter.
    pub not_after: SystemTime,
    /// Serial number, lower-case hex.
    pub serial_hex: String,
    /// URI subject alternative names.
    pub uris: Vec<String>,
    /// Whether basicConstraints says CA.
    pub is_ca: bool,
    /// Whether subject == issuer (a root).
    pub self_issued: bool,
    /// The subject, as text.
    pub subject: String,
    /// The raw subject public key bits.
    pub public_key: Vec<u8>,
}

fn to_system_time(t: x509_parser::time::ASN1Time) -> SystemTime {
    let secs = t.timestamp();
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// Reads the facts of one DER certificate.
pub fn cert_facts(der: &[u8]) -> Result<CertFacts, String> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let uris = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::URI(u) => Some((*u).to_owned()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let serial: String = cert
        .raw_serial()
        .iter()
        .skip_while(|b| **b == 0)
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(CertFacts {
        not_before: to_system_time(cert.validity().not_before),
        not_after: to_system_time(cert.validity().not_after),
        serial_hex: if serial.is_empty() {
            "0".into()
        } else {
            serial
        },
        uris,
        is_ca: cert.is_ca(),
        self_issued: cert.subject() == cert.issuer(),
        subject: cert.subject().to_string(),
        public_key: cert.public_key().subject_public_key.data.to_vec(),
    })
}

/// Every CERTIFICATE block of a PEM text, as DER (empty when there is none).
pub fn pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM: {e}"))
}

/// One certificate as PEM.
pub fn cert_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Loads a private key from PEM: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or
/// SEC1 (`EC PRIVATE KEY`, P-256 or P-384), the forms Istio's `cacerts` may hold.
pub fn load_key(pem: &str) -> Result<KeyPair, String> {
    let key = PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| format!("no private key in PEM: {e}"))?;
    let pkcs8 = match &key {
        PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
        PrivateKeyDer::Pkcs1(k) => wrap_pkcs8(RSA_ALG_ID, k.secret_pkcs1_der()),
        PrivateKeyDer::Sec1(k) => {
            let der = k.secret_sec1_der();
            let alg = if contains(der, P384_OID) {
                EC_P384_ALG_ID
            } else {
                EC_P256_ALG_ID
            };
            wrap_pkcs8(alg, der)
        }
        _ => return Err("unsupported private key format".into()),
    };
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8);
    KeyPair::try_from(&der).map_err(|e| format!("unusable private key: {e}"))
}

// AlgorithmIdentifier DER: rsaEncryption + NULL.
const RSA_ALG_ID: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];
// id-ecPublicKey + prime256v1.
const EC_P256_ALG_ID: &[u8] = &[
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];
// id-ecPublicKey + secp384r1.
const EC_P384_ALG_ID: &[u8] = &[
    0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04,
    0x00, 0x22,
];
const P384_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn der_len(len: usize) -> Vec<u8> {
    if len < 0x80 {
        return vec![u8::try_from(len).unwrap_or(0)];
    }
    let bytes: Vec<u8> = len
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    let mut out = vec![0x80 | u8::try_from(bytes.len()).unwrap_or(0)];
    out.extend(bytes);
    out
}

fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_len(body.len()));
    out.extend_from_slice(body);
    out
}

/// PKCS#8 PrivateKeyInfo around a PKCS#1 or SEC1 key.
fn wrap_pkcs8(alg_id: &[u8], inner: &[u8]) -> Vec<u8> {
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(alg_id);
    body.extend(tlv(0x04, inner));
    tlv(0x30, &body)
}
