//! Validation of a gateway server's TLS settings, following Istio's `validateTLSOptions`:
//! certificate sources by mode, `ISTIO_MUTUAL` without certificates, CRLs, protocol
//! versions and cipher suites.

use std::collections::HashSet;

use super::set;
use crate::networking::gateway::{ServerTlsMode, ServerTlsSettings, TlsProtocol};
use crate::validate::Report;

/// Cipher suites Envoy (BoringSSL) accepts in `cipherSuites`, as Istio lists them.
const VALID_CIPHER_SUITES: &[&str] = &[
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA",
    "AES256-SHA",
    "DES-CBC3-SHA",
];

/// The suites of [`VALID_CIPHER_SUITES`] that mast-proxy (rustls) can serve.
const MAST_PROXY_SUITES: &[&str] = &[
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
];

/// Checks TLS settings found at `f` (`spec.servers[0].tls`).
pub(super) fn validate(t: &ServerTlsSettings, f: &str, r: &mut Report) {
    versions_and_ciphers(t, f, r);
    let mode = t.mode();
    if mode == ServerTlsMode::IstioMutual {
        istio_mutual(t, f, r);
        return;
    }
    if matches!(
        mode,
        ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
    ) && has_certificates(t)
    {
        r.warn(
            format!("{f}.mode"),
            format!(
                "{} mode does not use certificates, they will be ignored",
                mode.as_str()
            ),
        );
    }
    if certificate_sources(t) > 1 {
        r.error(f, "only one of credentialName, credentialNames, serverCertificate/privateKey, tlsCertificates should be specified");
    }
    let terminates = matches!(
        mode,
        ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual
    );
    if terminates && (set(&t.credential_name) || !t.credential_names.is_empty()) {
        // Certificates and CA come from the credential.
        return;
    }
    if terminates {
        files(t, mode, f, r);
    }
    if set(&t.ca_crl) {
        if set(&t.credential_name) {
            r.error(format!("{f}.caCrl"), "CRL is not supported with credentialName. CRL has to be specified in the credential");
        }
        if mode == ServerTlsMode::Simple {
            r.error(format!("{f}.caCrl"), "CRL is not supported with SIMPLE TLS");
        }
    }
}

/// Istio's TLS version and cipher suite rules for `ServerTLSSettings`, shared by Gateway
/// servers and Sidecar ingress listeners.
pub(crate) fn versions_and_ciphers(t: &ServerTlsSettings, f: &str, r: &mut Report) {
    versions(t, f, r);
    ciphers(t, f, r);
}

fn versions(t: &ServerTlsSettings, f: &str, r: &mut Report) {
    let min = t.min_protocol_version.unwrap_or_default();
    let max = t.max_protocol_version.unwrap_or_default();
    if matches!(min, TlsProtocol::TlsV1_0 | TlsProtocol::TlsV1_1) && t.cipher_suites.is_empty() {
        r.warn(
            format!("{f}.minProtocolVersion"),
            "TLS version below TLSV1_2 require setting compatible ciphers as by default they no longer include compatible ciphers.",
        );
    }
    if min != TlsProtocol::TlsAuto && max != TlsProtocol::TlsAuto && min > max {
        r.error(
            format!("{f}.minProtocolVersion"),
            format!(
                "minProtocolVersion {} is higher than maxProtocolVersion {}",
                min.as_str(),
                max.as_str()
            ),
        );
    }
}

fn ciphers(t: &ServerTlsSettings, f: &str, r: &mut Report) {
    let mut seen = HashSet::new();
    for (k, cs) in t.cipher_suites.iter().enumerate() {
        let field = format!("{f}.cipherSuites[{k}]");
        if !valid_cipher_suite(cs) {
            r.warn(field, format!("ignoring invalid cipher suite: {cs}"));
        } else if !seen.insert(cs.as_str()) {
            r.warn(field, format!("ignoring duplicate cipher suite: {cs}"));
        } else if VALID_CIPHER_SUITES.contains(&cs.as_str())
            && !MAST_PROXY_SUITES.contains(&cs.as_str())
        {
            r.warn(
                field,
                format!(
                    "cipher suite {cs} is not supported by mast-proxy (rustls has no CBC, RSA key exchange or 3DES suites): a gateway on mast-proxy rejects this listener; Envoy accepts it"
                ),
            );
        }
    }
}

/// As Istio: empty, `ALL`, expressions starting with an operator (`-`, `+`, `!`, `[`) or a
/// known suite.
fn valid_cipher_suite(cs: &str) -> bool {
    match cs.chars().next() {
        None => true,
        Some(c) if !c.is_alphanumeric() => true,
        Some(_) => cs == "ALL" || VALID_CIPHER_SUITES.contains(&cs),
    }
}

fn istio_mutual(t: &ServerTlsSettings, f: &str, r: &mut Report) {
    let checks = [
        (
            "serverCertificate",
            set(&t.server_certificate),
            "server certificate",
        ),
        ("privateKey", set(&t.private_key), "private key"),
        ("caCertificates", set(&t.ca_certificates), "CA bundle"),
        (
            "tlsCertificates",
            !t.tls_certificates.is_empty(),
            "tlsCertificates",
        ),
        ("credentialName", set(&t.credential_name), "credentialName"),
        (
            "credentialNames",
            !t.credential_names.is_empty(),
            "credentialNames",
        ),
    ];
    for (field, present, what) in checks {
        if present {
            r.error(
                format!("{f}.{field}"),
                format!("ISTIO_MUTUAL TLS cannot have associated {what}"),
            );
        }
    }
}

fn has_certificates(t: &ServerTlsSettings) -> bool {
    [
        &t.ca_crl,
        &t.server_certificate,
        &t.private_key,
        &t.ca_certificates,
        &t.credential_name,
    ]
    .into_iter()
    .any(set)
        || !t.tls_certificates.is_empty()
        || !t.credential_names.is_empty()
}

fn certificate_sources(t: &ServerTlsSettings) -> usize {
    [
        set(&t.server_certificate) && set(&t.private_key),
        set(&t.credential_name),
        !t.credential_names.is_empty(),
        !t.tls_certificates.is_empty(),
    ]
    .into_iter()
    .filter(|x| *x)
    .count()
}

/// SIMPLE and MUTUAL without a credential: certificate and key files (top-level or in
/// `tlsCertificates`), and for MUTUAL a client CA bundle.
fn files(t: &ServerTlsSettings, mode: ServerTlsMode, f: &str, r: &mut Report) {
    let what = if mode == ServerTlsMode::Simple {
        "SIMPLE TLS"
    } else {
        "MUTUAL TLS"
    };
    if mode != ServerTlsMode::Simple && !set(&t.ca_certificates) {
        r.error(
            format!("{f}.caCertificates"),
            format!("{what} requires a client CA bundle"),
        );
    }
    if t.tls_certificates.len() > 2 {
        r.warn(
            format!("{f}.tlsCertificates"),
            format!("{what} can support up to 2 server certificates"),
        );
    }
    let mut pair = |prefix: &str, cert: &Option<String>, key: &Option<String>| {
        if !set(cert) {
            r.error(
                format!("{prefix}.serverCertificate"),
                format!("{what} requires a server certificate"),
            );
        }
        if !set(key) {
            r.error(
                format!("{prefix}.privateKey"),
                format!("{what} requires a private key"),
            );
        }
    };
    if t.tls_certificates.is_empty() {
        pair(f, &t.server_certificate, &t.private_key);
    }
    for (k, c) in t.tls_certificates.iter().enumerate() {
        pair(
            &format!("{f}.tlsCertificates[{k}]"),
            &c.server_certificate,
            &c.private_key,
        );
    }
}
