//! `CommonTlsContext` → [`CommonSpec`]: protocol versions, ALPN, the certificate to present
//! (file/inline data or the SDS secret `default`) and the peer validation (trusted roots from
//! data or the SDS secret `ROOTCA`, SAN matchers). Files are read at conversion time. Fields
//! that change behaviour and are not implemented are refused with their path.

use std::sync::Arc;

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SdsSecretConfig, TlsParameters,
};

use super::matcher::SanMatcher;
use super::params::Params;
use super::pins::Pins;
use super::secrets::{DEFAULT_SECRET, ROOTCA_SECRET, SecretStore};
pub use super::source::{CertSource, RootsSource, StaticCert, StaticRoots, certs, read};
use super::source::{static_cert, static_roots};

/// A conversion failure: (field relative to the context, reason).
pub type Fail = (String, String);

pub(crate) fn fail(field: impl Into<String>, reason: impl Into<String>) -> Fail {
    (field.into(), reason.into())
}

/// How the peer certificate is validated.
#[derive(Clone, PartialEq)]
pub struct Validation {
    /// The trusted roots.
    pub roots: RootsSource,
    /// At least one must match a SAN of the peer certificate (empty: any).
    pub sans: Vec<SanMatcher>,
    /// `verify_certificate_hash` / `verify_certificate_spki`.
    pub pins: Pins,
    /// A `crl` is configured (checked by the client-certificate verifier; upstream contexts
    /// refuse it).
    pub crl: bool,
}

/// A converted `CommonTlsContext`.
#[derive(Clone, PartialEq)]
pub struct CommonSpec {
    /// Minimum and maximum TLS versions as 12 or 13.
    pub versions: (u8, u8),
    /// ALPN protocols, in preference order.
    pub alpn: Vec<Vec<u8>>,
    /// The certificate presented, if any.
    pub cert: Option<CertSource>,
    /// Peer validation; `None`: no verification (Envoy's empty validation context).
    pub validation: Option<Validation>,
    /// `tls_params.cipher_suites` / `ecdh_curves` (empty: rustls' defaults).
    pub params: Params,
}

impl std::fmt::Debug for CommonSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommonSpec")
            .field("versions", &self.versions)
            .field("alpn", &self.alpn)
            .field("params", &self.params)
            .field("cert", &self.cert.as_ref().map(CertSource::name))
            .field(
                "validation",
                &self.validation.as_ref().map(|v| (v.roots.name(), &v.sans)),
            )
            .finish()
    }
}

/// Converts a `CommonTlsContext`. `server` selects the server-side version defaults.
pub fn common(
    c: &CommonTlsContext,
    store: &Arc<SecretStore>,
    server: bool,
) -> Result<CommonSpec, Fail> {
    #[allow(deprecated)]
    let unsupported = [
        (
            "tls_certificate_provider_instance",
            c.tls_certificate_provider_instance.is_some(),
        ),
        (
            "custom_tls_certificate_selector",
            c.custom_tls_certificate_selector.is_some(),
        ),
        (
            "tls_certificate_certificate_provider",
            c.tls_certificate_certificate_provider.is_some(),
        ),
        (
            "tls_certificate_certificate_provider_instance",
            c.tls_certificate_certificate_provider_instance.is_some(),
        ),
        ("custom_handshaker", c.custom_handshaker.is_some()),
        ("key_log", c.key_log.is_some()),
    ];
    if let Some((field, _)) = unsupported.iter().find(|(_, set)| *set) {
        return Err(fail(*field, "not supported"));
    }
    let versions = versions(c.tls_params.as_ref(), server)?;
    let mut params = Params::default();
    if let Some(p) = &c.tls_params {
        super::params::ciphers(&p.cipher_suites, &mut params)?;
        super::params::curves(&p.ecdh_curves, &mut params)?;
    }
    let cert = certificate(c, store)?;
    let validation = match &c.validation_context_type {
        None => None,
        Some(v) => validation(v, store)?,
    };
    Ok(CommonSpec {
        versions,
        alpn: c
            .alpn_protocols
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect(),
        cert,
        validation,
        params,
    })
}

/// `tls_params`: rustls speaks TLS 1.2 and 1.3 only; a lower minimum becomes 1.2, a maximum
/// below 1.2 cannot be honoured. Envoy's defaults: clients 1.2–1.2, servers 1.2–1.3 (the TLS
/// 1.0 server minimum of Envoy is raised to 1.2).
fn versions(p: Option<&TlsParameters>, server: bool) -> Result<(u8, u8), Fail> {
    let Some(p) = p else {
        return Ok((12, if server { 13 } else { 12 }));
    };
    let lists = [
        (
            "tls_params.signature_algorithms",
            p.signature_algorithms.is_empty(),
        ),
        (
            "tls_params.compliance_policies",
            p.compliance_policies.is_empty(),
        ),
    ];
    if let Some((field, _)) = lists.iter().find(|(_, empty)| !*empty) {
        return Err(fail(*field, "not supported (rustls' defaults apply)"));
    }
    let min = match p.tls_minimum_protocol_version {
        0..=3 => 12,
        4 => 13,
        v => {
            return Err(fail(
                "tls_params.tls_minimum_protocol_version",
                format!("unknown {v}"),
            ));
        }
    };
    let max = match p.tls_maximum_protocol_version {
        0 if server => 13,
        0 | 3 => 12,
        4 => 13,
        1 | 2 => {
            return Err(fail(
                "tls_params.tls_maximum_protocol_version",
                "TLS 1.0 and 1.1 are not supported",
            ));
        }
        v => {
            return Err(fail(
                "tls_params.tls_maximum_protocol_version",
                format!("unknown {v}"),
            ));
        }
    };
    if min > max {
        return Err(fail(
            "tls_params",
            "the minimum version is above the maximum",
        ));
    }
    Ok((min, max))
}

fn sds_name<'a>(s: &'a SdsSecretConfig, field: &str, allowed: &str) -> Result<&'a str, Fail> {
    if s.name == allowed {
        Ok(&s.name)
    } else {
        Err(fail(
            format!("{field}.name"),
            format!(
                "SDS secret {:?} is not served in-process (only {allowed:?})",
                s.name
            ),
        ))
    }
}

fn certificate(c: &CommonTlsContext, store: &Arc<SecretStore>) -> Result<Option<CertSource>, Fail> {
    match (
        c.tls_certificates.as_slice(),
        c.tls_certificate_sds_secret_configs.as_slice(),
    ) {
        ([], []) => Ok(None),
        ([], [s]) => {
            sds_name(s, "tls_certificate_sds_secret_configs[0]", DEFAULT_SECRET)?;
            Ok(Some(CertSource::Sds(Arc::clone(store))))
        }
        ([t], []) => Ok(Some(CertSource::Static(Arc::new(static_cert(t, 0)?)))),
        (several, []) => {
            let certs = several
                .iter()
                .enumerate()
                .map(|(i, t)| static_cert(t, i).map(Arc::new))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(CertSource::Several(certs.into())))
        }
        _ => Err(fail(
            "tls_certificate_sds_secret_configs",
            "one SDS certificate, or certificates from files / inline data, not both",
        )),
    }
}

fn validation(
    v: &ValidationContextType,
    store: &Arc<SecretStore>,
) -> Result<Option<Validation>, Fail> {
    match v {
        ValidationContextType::ValidationContext(c) => {
            validation_context(c, None, "validation_context")
        }
        ValidationContextType::ValidationContextSdsSecretConfig(s) => {
            sds_name(s, "validation_context_sds_secret_config", ROOTCA_SECRET)?;
            Ok(Some(Validation {
                roots: RootsSource::Sds(Arc::clone(store)),
                sans: Vec::new(),
                pins: Pins::default(),
                crl: false,
            }))
        }
        ValidationContextType::CombinedValidationContext(c) => {
            let at = "combined_validation_context";
            #[allow(deprecated)]
            if c.validation_context_certificate_provider.is_some()
                || c.validation_context_certificate_provider_instance.is_some()
            {
                return Err(fail(at, "certificate providers are not supported"));
            }
            let sds = c
                .validation_context_sds_secret_config
                .as_ref()
                .ok_or_else(|| {
                    fail(
                        format!("{at}.validation_context_sds_secret_config"),
                        "required",
                    )
                })?;
            sds_name(
                sds,
                &format!("{at}.validation_context_sds_secret_config"),
                ROOTCA_SECRET,
            )?;
            let default = c.default_validation_context.clone().unwrap_or_default();
            let roots = RootsSource::Sds(Arc::clone(store));
            validation_context(
                &default,
                Some(roots),
                &format!("{at}.default_validation_context"),
            )
        }
        #[allow(unreachable_patterns)]
        _ => Err(fail("validation_context_type", "not supported")),
    }
}

/// A validation context; `sds_roots` (from a combined context) override `trusted_ca`.
#[allow(deprecated)]
fn validation_context(
    c: &CertificateValidationContext,
    sds_roots: Option<RootsSource>,
    at: &str,
) -> Result<Option<Validation>, Fail> {
    let unsupported = [
        (
            "ca_certificate_provider_instance",
            c.ca_certificate_provider_instance.is_some(),
        ),
        ("system_root_certs", c.system_root_certs.is_some()),
        ("watched_directory", c.watched_directory.is_some()),
        (
            "require_signed_certificate_timestamp",
            c.require_signed_certificate_timestamp.is_some(),
        ),
        ("allow_expired_certificate", c.allow_expired_certificate),
        ("trust_chain_verification", c.trust_chain_verification != 0),
        (
            "custom_validator_config",
            c.custom_validator_config.is_some(),
        ),
    ];
    if let Some((field, _)) = unsupported.iter().find(|(_, set)| *set) {
        return Err(fail(format!("{at}.{field}"), "not supported"));
    }
    let mut sans = Vec::new();
    for (i, m) in c.match_typed_subject_alt_names.iter().enumerate() {
        sans.push(
            SanMatcher::typed(m)
                .map_err(|r| fail(format!("{at}.match_typed_subject_alt_names[{i}]"), r))?,
        );
    }
    for (i, m) in c.match_subject_alt_names.iter().enumerate() {
        sans.push(
            SanMatcher::any(m)
                .map_err(|r| fail(format!("{at}.match_subject_alt_names[{i}]"), r))?,
        );
    }
    let pins = Pins::parse(&c.verify_certificate_hash, &c.verify_certificate_spki)
        .map_err(|(f, r)| fail(format!("{at}.{f}"), r))?;
    let (roots, has_crl) = roots(c, sds_roots, at)?;
    match roots {
        Some(roots) => Ok(Some(Validation {
            roots,
            sans,
            pins,
            crl: has_crl,
        })),
        None if sans.is_empty() && pins.is_empty() => Ok(None),
        None => Err(fail(
            format!("{at}.trusted_ca"),
            "SAN or pin verification of peer certificates without a trusted CA is not supported",
        )),
    }
}

/// The trusted roots of a validation context (`sds_roots` from a combined context win over
/// `trusted_ca`) and whether a CRL is configured (only with roots from data sources).
fn roots(
    c: &CertificateValidationContext,
    sds_roots: Option<RootsSource>,
    at: &str,
) -> Result<(Option<RootsSource>, bool), Fail> {
    let crl_field = format!("{at}.crl");
    let crl = c
        .crl
        .as_ref()
        .map(|d| read(Some(d), &crl_field))
        .transpose()?;
    let has_crl = crl.is_some();
    let roots = match (sds_roots, &c.trusted_ca) {
        (Some(_), _) if has_crl => {
            return Err(fail(
                crl_field,
                "a CRL with SDS roots (ROOTCA) is not supported",
            ));
        }
        (Some(r), _) => Some(r),
        (None, Some(ca)) => {
            let crl = crl.map(|pem| (pem, c.only_verify_leaf_cert_crl, crl_field.as_str()));
            Some(static_roots(ca, &format!("{at}.trusted_ca"), crl)?)
        }
        (None, None) if has_crl => return Err(fail(crl_field, "a CRL needs trusted_ca")),
        (None, None) => None,
    };
    Ok((roots, has_crl))
}
