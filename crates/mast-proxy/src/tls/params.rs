//! `tls_params.cipher_suites` and `tls_params.ecdh_curves`: Envoy's (BoringSSL/OpenSSL) names
//! mapped onto rustls' TLS 1.2 suites and key-exchange groups. A list entry may be a single
//! name, a `:`-separated list, or an equal-preference group `[A|B]` (rustls has no groups:
//! members keep their order and the client's order decides among all configured suites, as
//! BoringSSL does within a group). Names rustls cannot do (CBC, RSA key exchange, 3DES, TLS 1.3
//! names, which Envoy does not accept in this list either) are refused naming the entry. TLS
//! 1.3 suites stay rustls' defaults (not configurable, as in Envoy).

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::{cipher_suite as cs, kx_group};
use rustls::{SupportedCipherSuite, crypto::SupportedKxGroup};

use super::context::{Fail, fail};

/// The TLS 1.2 suites rustls offers, by their OpenSSL/BoringSSL names.
const SUITES: [(&str, SupportedCipherSuite); 6] = [
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// Key-exchange groups by Envoy's names.
const CURVES: [(&str, &dyn SupportedKxGroup); 4] = [
    ("X25519", kx_group::X25519),
    ("P-256", kx_group::SECP256R1),
    ("prime256v1", kx_group::SECP256R1),
    ("P-384", kx_group::SECP384R1),
];

/// Configured suites and groups (canonical names, in preference order); empty: rustls'
/// defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// TLS 1.2 cipher suites.
    pub ciphers: Vec<&'static str>,
    /// Whether an equal-preference group `[A|B]` with more than one member was configured
    /// (the client's order then decides).
    pub grouped: bool,
    /// Key-exchange groups.
    pub curves: Vec<&'static str>,
}

/// Parses `cipher_suites` (errors name `tls_params.cipher_suites[i]`).
pub fn ciphers(list: &[String], params: &mut Params) -> Result<(), Fail> {
    for (i, entry) in list.iter().enumerate() {
        let at = || format!("tls_params.cipher_suites[{i}]");
        for part in entry.split(':').filter(|p| !p.is_empty()) {
            let members: Vec<&str> = match part.strip_prefix('[') {
                Some(rest) => {
                    let inner = rest
                        .strip_suffix(']')
                        .ok_or_else(|| fail(at(), format!("unbalanced group {part:?}")))?;
                    inner.split('|').collect()
                }
                None => vec![part],
            };
            params.grouped |= members.len() > 1;
            for name in members {
                let canonical = SUITES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(n, _)| *n)
                    .ok_or_else(|| fail(at(), unsupported(name)))?;
                if !params.ciphers.contains(&canonical) {
                    params.ciphers.push(canonical);
                }
            }
        }
    }
    Ok(())
}

fn unsupported(name: &str) -> String {
    let why = if name.starts_with("TLS_") {
        "TLS 1.3 suites are not configurable"
    } else if !name.starts_with("ECDHE-") {
        "RSA/PSK key exchange is not supported"
    } else if name.contains("-SHA") && !name.contains("GCM") {
        "CBC suites are not supported"
    } else {
        "unknown or unsupported cipher suite"
    };
    let known: Vec<&str> = SUITES.iter().map(|(n, _)| *n).collect();
    format!(
        "cipher suite {name:?}: {why} (supported: {})",
        known.join(", ")
    )
}

/// Parses `ecdh_curves` (errors name `tls_params.ecdh_curves[i]`).
pub fn curves(list: &[String], params: &mut Params) -> Result<(), Fail> {
    for (i, entry) in list.iter().enumerate() {
        for name in entry.split(':').filter(|p| !p.is_empty()) {
            let canonical = CURVES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(n, _)| if *n == "prime256v1" { "P-256" } else { *n })
                .ok_or_else(|| {
                    fail(
                        format!("tls_params.ecdh_curves[{i}]"),
                        format!("curve {name:?} is not supported (X25519, P-256, P-384)"),
                    )
                })?;
            if !params.curves.contains(&canonical) {
                params.curves.push(canonical);
            }
        }
    }
    Ok(())
}

impl Params {
    /// The crypto provider for these parameters: rustls' TLS 1.3 suites followed by the
    /// configured TLS 1.2 suites (or all defaults), and the configured groups.
    pub fn provider(&self) -> Arc<CryptoProvider> {
        let base = super::provider();
        if self.ciphers.is_empty() && self.curves.is_empty() {
            return base;
        }
        let mut p = (*base).clone();
        if !self.ciphers.is_empty() {
            p.cipher_suites
                .retain(|s| matches!(s, SupportedCipherSuite::Tls13(_)));
            p.cipher_suites.extend(
                self.ciphers
                    .iter()
                    .filter_map(|name| SUITES.iter().find(|(n, _)| n == name).map(|(_, s)| *s)),
            );
        }
        if !self.curves.is_empty() {
            p.kx_groups = self
                .curves
                .iter()
                .filter_map(|name| CURVES.iter().find(|(n, _)| n == name).map(|(_, g)| *g))
                .collect();
        }
        Arc::new(p)
    }

    /// Whether the server's order decides (Envoy's default unless `prefer_client_ciphers`;
    /// equal-preference groups leave it to the client).
    pub fn server_order(&self) -> bool {
        !self.ciphers.is_empty() && !self.grouped
    }
}
