//! Sidecar ingress listeners: port, bind, `defaultEndpoint`, connection pool and the TLS
//! termination rules (Istio's sidecar checks followed by `validateTLSOptions`).

use std::collections::HashSet;

use super::ports;
use crate::networking::gateway::{ServerTlsMode, ServerTlsSettings};
use crate::networking::sidecar::IngressListener;
use crate::validate::destination_rule::connection_pool;
use crate::validate::{Report, common};

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
fn tls(r: &mut Report, p: &str, t: &ServerTlsSettings, protocol: &str) {
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
        ServerTlsMode::IstioMutual | ServerTlsMode::AutoPassthrough
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
    crate::validate::gateway::tls::versions_and_ciphers(t, p, r);
    certificates(r, p, t);
}

fn has(o: &Option<String>) -> bool {
    o.as_deref().is_some_and(|s| !s.is_empty())
}

/// Istio's `validateTLSOptions` certificate rules for the mode.
fn certificates(r: &mut Report, p: &str, t: &ServerTlsSettings) {
    let mode = t.mode();
    let (cert, key, ca) = (
        has(&t.server_certificate),
        has(&t.private_key),
        has(&t.ca_certificates),
    );
    let credential = has(&t.credential_name) || !t.credential_names.is_empty();
    if mode == ServerTlsMode::IstioMutual {
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
        ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
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
        ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual
    );
    if terminating && !credential {
        let prefix = if mode == ServerTlsMode::Simple {
            "SIMPLE TLS"
        } else {
            "MUTUAL TLS"
        };
        if mode != ServerTlsMode::Simple && !ca {
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
        if mode == ServerTlsMode::Simple {
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
