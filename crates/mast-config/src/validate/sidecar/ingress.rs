//! Sidecar ingress listeners: port, bind, `defaultEndpoint`, connection pool and the TLS
//! termination rules (Istio's sidecar checks followed by `validateTLSOptions`).

use std::collections::HashSet;

use super::ports;
use crate::networking::sidecar::{
    IngressListener, SidecarIngressTls, SidecarTlsMode, TlsProtocolVersion,
};
use crate::validate::destination_rule::connection_pool;
use crate::validate::{Report, common};

/// Cipher suites Envoy (BoringSSL) accepts, as Istio's `security.IsValidCipherSuite`.
const CIPHER_SUITES: &[&str] = &[
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

/// Checks every ingress listener; ports must be unique.
pub(super) fn listeners(r: &mut Report, list: &[IngressListener]) {
    let mut seen = HashSet::new();
    for (i, l) in list.iter().enumerate() {
        let p = format!("spec.ingress[{i}]");
        let Some(port) = &l.port else {
            r.error(
                format!("{p}.port"),
                "sidecar: port is required for ingress listeners",
            );
            continue;
        };
        ports::target_port(r, &p, port);
        ports::name_and_protocol(r, &p, port);
        common::port(r, &format!("{p}.port.number"), port.number());
        ports::bind_ip(r, &format!("{p}.bind"), l.bind.as_deref().unwrap_or(""));
        if !seen.insert(port.number()) {
            r.error(
                format!("{p}.port.number"),
                "sidecar: ports on IP bound listeners must be unique",
            );
        }
        if let Some(ep) = l.default_endpoint.as_deref().filter(|e| !e.is_empty()) {
            ports::default_endpoint(r, &format!("{p}.defaultEndpoint"), ep);
        }
        if let Some(t) = &l.tls {
            tls(r, &format!("{p}.tls"), t, port.protocol());
        }
        if let Some(cp) = &l.connection_pool {
            connection_pool(r, &format!("{p}.connectionPool"), cp);
            if cp.http.is_some() && !ports::is_http(port.protocol()) {
                r.warn(
                    format!("{p}.connectionPool.http"),
                    format!(
                        "sidecar: HTTP connection pool settings are configured for port {} ({:?}) but its protocol is not HTTP ({}); only TCP settings will apply",
                        port.number(),
                        port.name.as_deref().unwrap_or(""),
                        port.protocol()
                    ),
                );
            }
        }
    }
}

/// What sidecars do not support, then the server TLS rules.
fn tls(r: &mut Report, p: &str, t: &SidecarIngressTls, protocol: &str) {
    let unsupported = [
        (
            "subjectAltNames",
            !t.subject_alt_names.is_empty(),
            "sidecar: subjectAltNames is not supported in ingress tls",
        ),
        (
            "httpsRedirect",
            t.https_redirect == Some(true),
            "sidecar: httpsRedirect is not supported",
        ),
        (
            "credentialName",
            has(&t.credential_name),
            "sidecar: credentialName is not currently supported",
        ),
        (
            "credentialNames",
            !t.credential_names.is_empty(),
            "sidecar: credentialNames is not currently supported",
        ),
        (
            "tlsCertificates",
            !t.tls_certificates.is_empty(),
            "sidecar: tls_certificates is not currently supported",
        ),
    ];
    for (field, present, message) in unsupported {
        if present {
            r.error(format!("{p}.{field}"), message);
        }
    }
    let mode = t.mode();
    if matches!(
        mode,
        SidecarTlsMode::IstioMutual | SidecarTlsMode::AutoPassthrough
    ) {
        r.error(
            format!("{p}.mode"),
            format!(
                "configuration is invalid: cannot set mode to {} in sidecar ingress tls",
                mode.as_str()
            ),
        );
    }
    if !ports::is_tls(protocol) {
        r.error(p, "server cannot have TLS settings for non HTTPS/TLS ports");
    }
    versions_and_ciphers(r, p, t);
    certificates(r, p, t);
}

fn has(o: &Option<String>) -> bool {
    o.as_deref().is_some_and(|s| !s.is_empty())
}

/// Old TLS versions need explicit ciphers; unknown and repeated ciphers are ignored.
fn versions_and_ciphers(r: &mut Report, p: &str, t: &SidecarIngressTls) {
    if matches!(
        t.min_protocol_version,
        Some(TlsProtocolVersion::TlsV1_0 | TlsProtocolVersion::TlsV1_1)
    ) && t.cipher_suites.is_empty()
    {
        r.warn(
            format!("{p}.minProtocolVersion"),
            "TLS version below TLSV1_2 require setting compatible ciphers as by default they no longer include compatible ciphers.",
        );
    }
    let mut seen = HashSet::new();
    for (i, c) in t.cipher_suites.iter().enumerate() {
        let f = format!("{p}.cipherSuites[{i}]");
        if !CIPHER_SUITES.contains(&c.as_str()) {
            r.warn(f, format!("ignoring invalid cipher suite: {c}"));
        } else if !seen.insert(c.as_str()) {
            r.warn(f, format!("ignoring duplicate cipher suite: {c}"));
        }
    }
}

/// Istio's `validateTLSOptions` certificate rules for the mode.
fn certificates(r: &mut Report, p: &str, t: &SidecarIngressTls) {
    let mode = t.mode();
    let (cert, key, ca) = (
        has(&t.server_certificate),
        has(&t.private_key),
        has(&t.ca_certificates),
    );
    let credential = has(&t.credential_name) || !t.credential_names.is_empty();
    if mode == SidecarTlsMode::IstioMutual {
        for (field, present, what) in [
            ("serverCertificate", cert, "server certificate"),
            ("privateKey", key, "private key"),
            ("caCertificates", ca, "CA bundle"),
        ] {
            if present {
                r.error(
                    format!("{p}.{field}"),
                    format!("ISTIO_MUTUAL TLS cannot have associated {what}"),
                );
            }
        }
        return;
    }
    if matches!(
        mode,
        SidecarTlsMode::Passthrough | SidecarTlsMode::AutoPassthrough
    ) && (cert || key || ca || has(&t.ca_crl) || credential)
    {
        r.warn(
            p,
            format!(
                "{} mode does not use certificates, they will be ignored",
                mode.as_str()
            ),
        );
    }
    let sources = usize::from(cert && key)
        + usize::from(has(&t.credential_name))
        + usize::from(!t.credential_names.is_empty())
        + usize::from(!t.tls_certificates.is_empty());
    if sources > 1 {
        r.error(p, "only one of credential_name, credential_names, server_certificate/private_key, tls_certificates should be specified");
    }
    let terminating = matches!(
        mode,
        SidecarTlsMode::Simple | SidecarTlsMode::Mutual | SidecarTlsMode::OptionalMutual
    );
    if terminating && !credential {
        let prefix = if mode == SidecarTlsMode::Simple {
            "SIMPLE TLS"
        } else {
            "MUTUAL TLS"
        };
        if mode != SidecarTlsMode::Simple && !ca {
            r.error(
                format!("{p}.caCertificates"),
                format!("{prefix} requires a client CA bundle"),
            );
        }
        if t.tls_certificates.is_empty() {
            required(r, p, cert, key, prefix);
        }
        for (i, c) in t.tls_certificates.iter().enumerate() {
            required(
                r,
                &format!("{p}.tlsCertificates[{i}]"),
                has(&c.server_certificate),
                has(&c.private_key),
                prefix,
            );
        }
    }
    if has(&t.ca_crl) {
        if has(&t.credential_name) {
            r.error(format!("{p}.caCrl"), "CRL is not supported with credentialName. CRL has to be specified in the credential");
        }
        if mode == SidecarTlsMode::Simple {
            r.error(format!("{p}.caCrl"), "CRL is not supported with SIMPLE TLS");
        }
    }
}

fn required(r: &mut Report, p: &str, cert: bool, key: bool, prefix: &str) {
    if !cert {
        r.error(
            format!("{p}.serverCertificate"),
            format!("{prefix} requires a server certificate"),
        );
    }
    if !key {
        r.error(
            format!("{p}.privateKey"),
            format!("{prefix} requires a private key"),
        );
    }
}
