//! Where TLS material comes from: the SDS secrets of the in-process store (`default`,
//! `ROOTCA`, read at each handshake) or data sources (files read at conversion time, inline
//! bytes or strings, environment variables).

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::TlsCertificate;
use rustls::RootCertStore;
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::context::{Fail, fail};
use super::provider;
use super::secrets::{DEFAULT_SECRET, Material, ROOTCA_SECRET, SecretStore};

/// The certificate this side presents.
#[derive(Clone)]
pub enum CertSource {
    /// The SDS secret `default` (the workload certificate).
    Sds(Arc<SecretStore>),
    /// A certificate and key read from files or inline data.
    Static(Arc<StaticCert>),
    /// Several (Istio's `tlsCertificates`, e.g. RSA and ECDSA): chosen per handshake by the
    /// SNI and the client's signature schemes ([`CertSource::select`]).
    Several(Arc<[Arc<StaticCert>]>),
}

/// A certificate and key from data sources.
pub struct StaticCert {
    /// The parsed chain and key.
    pub key: Arc<CertifiedKey>,
    /// The leaf's URI SANs.
    pub uri_sans: Vec<String>,
    /// The leaf's DNS SANs (lowercase).
    pub dns_sans: Vec<String>,
    /// The source bytes (chain then key), for change detection.
    bytes: Vec<u8>,
}

/// The roots a peer certificate must chain to.
#[derive(Clone)]
pub enum RootsSource {
    /// The SDS secret `ROOTCA`.
    Sds(Arc<SecretStore>),
    /// Roots read from a file or inline data.
    Static(Arc<StaticRoots>),
}

/// Roots from data sources, with their client-certificate verifier.
pub struct StaticRoots {
    roots: Arc<RootCertStore>,
    client_verifier: Arc<dyn ClientCertVerifier>,
    bytes: Vec<u8>,
}

impl PartialEq for CertSource {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Sds(a), Self::Sds(b)) => Arc::ptr_eq(a, b),
            (Self::Static(a), Self::Static(b)) => a.bytes == b.bytes,
            (Self::Several(a), Self::Several(b)) => {
                a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x.bytes == y.bytes)
            }
            _ => false,
        }
    }
}

impl PartialEq for RootsSource {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Sds(a), Self::Sds(b)) => Arc::ptr_eq(a, b),
            (Self::Static(a), Self::Static(b)) => a.bytes == b.bytes,
            _ => false,
        }
    }
}

impl CertSource {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Sds(_) => DEFAULT_SECRET,
            Self::Static(_) | Self::Several(_) => "static",
        }
    }

    /// The key to present now (the first of several); `None` (logged once) before the SDS
    /// secret arrived.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        match self {
            Self::Static(c) => Some(Arc::clone(&c.key)),
            Self::Several(all) => all.first().map(|c| Arc::clone(&c.key)),
            Self::Sds(store) => material(store, DEFAULT_SECRET).map(|m| Arc::clone(&m.key)),
        }
    }

    /// The URI SANs of the certificate presented now.
    pub fn uri_sans(&self) -> Vec<String> {
        match self {
            Self::Static(c) => c.uri_sans.clone(),
            Self::Several(all) => all.first().map(|c| c.uri_sans.clone()).unwrap_or_default(),
            Self::Sds(store) => store
                .current()
                .map(|m| m.local_uri_sans.clone())
                .unwrap_or_default(),
        }
    }
}

impl CertSource {
    /// The key for a handshake, as Envoy picks among several certificates: those whose DNS
    /// SANs cover the SNI (exact, then a one-label wildcard) if any, else all; the first of
    /// them the client can verify (its signature schemes), else the first.
    pub fn select(
        &self,
        sni: Option<&str>,
        schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let Self::Several(all) = self else {
            return self.current();
        };
        let sni = sni.map(str::to_ascii_lowercase);
        let covers = |c: &&Arc<StaticCert>, exact: bool| {
            sni.as_deref().is_some_and(|s| {
                c.dns_sans.iter().any(|d| {
                    if exact {
                        d == s
                    } else {
                        d.strip_prefix('*').is_some_and(|suffix| {
                            suffix.starts_with('.')
                                && s.ends_with(suffix)
                                && !s[..s.len() - suffix.len()].contains('.')
                        })
                    }
                })
            })
        };
        let mut pool: Vec<&Arc<StaticCert>> = all.iter().filter(|c| covers(c, true)).collect();
        if pool.is_empty() {
            pool = all.iter().filter(|c| covers(c, false)).collect();
        }
        if pool.is_empty() {
            pool = all.iter().collect();
        }
        let usable = pool
            .iter()
            .find(|c| c.key.key.choose_scheme(schemes).is_some())
            .or(pool.first());
        usable.map(|c| Arc::clone(&c.key))
    }
}

impl RootsSource {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Sds(_) => ROOTCA_SECRET,
            Self::Static(_) => "static",
        }
    }

    /// The roots now; `None` (logged once) before the SDS secret arrived.
    pub fn roots(&self) -> Option<Arc<RootCertStore>> {
        match self {
            Self::Static(r) => Some(Arc::clone(&r.roots)),
            Self::Sds(store) => material(store, ROOTCA_SECRET).map(|m| Arc::clone(&m.roots)),
        }
    }

    /// A chain verifier for client certificates over the current roots.
    pub fn client_verifier(&self) -> Option<Arc<dyn ClientCertVerifier>> {
        match self {
            Self::Static(r) => Some(Arc::clone(&r.client_verifier)),
            Self::Sds(store) => {
                material(store, ROOTCA_SECRET).map(|m| Arc::clone(&m.client_verifier))
            }
        }
    }
}

fn material(store: &SecretStore, name: &str) -> Option<Arc<Material>> {
    let m = store.current();
    if m.is_none() {
        store.missing(name);
    }
    m
}

pub(crate) fn static_cert(t: &TlsCertificate, index: usize) -> Result<StaticCert, Fail> {
    let at = format!("tls_certificates[{index}]");
    let others = [
        ("pkcs12", t.pkcs12.is_some()),
        ("watched_directory", t.watched_directory.is_some()),
        ("private_key_provider", t.private_key_provider.is_some()),
        ("password", t.password.is_some()),
    ];
    if let Some((field, _)) = others.iter().find(|(_, set)| *set) {
        return Err(fail(format!("{at}.{field}"), "not supported"));
    }
    let chain_field = format!("{at}.certificate_chain");
    let key_field = format!("{at}.private_key");
    let chain_pem = read(t.certificate_chain.as_ref(), &chain_field)?;
    let key_pem = read(t.private_key.as_ref(), &key_field)?;
    let chain = certs(&chain_pem).map_err(|e| fail(&chain_field, e))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| fail(&key_field, format!("no private key: {e}")))?;
    let sans = chain
        .first()
        .map(|c| super::peer::sans(c.as_ref()))
        .unwrap_or_default();
    let key = CertifiedKey::from_der(chain, key, &provider())
        .map_err(|e| fail(&key_field, e.to_string()))?;
    let mut bytes = chain_pem;
    bytes.extend_from_slice(&key_pem);
    Ok(StaticCert {
        key: Arc::new(key),
        uri_sans: sans.uri,
        dns_sans: sans.dns.iter().map(|d| d.to_ascii_lowercase()).collect(),
        bytes,
    })
}

/// Reads a `DataSource`: a file (now), inline bytes or string, or an environment variable.
pub fn read(d: Option<&DataSource>, field: &str) -> Result<Vec<u8>, Fail> {
    match d.and_then(|d| d.specifier.as_ref()) {
        None => Err(fail(field, "required")),
        Some(data_source::Specifier::Filename(path)) => std::fs::read(path).map_err(|e| {
            fail(
                format!("{field}.filename"),
                format!("cannot read {path:?}: {e}"),
            )
        }),
        Some(data_source::Specifier::InlineBytes(b)) => Ok(b.clone()),
        Some(data_source::Specifier::InlineString(s)) => Ok(s.as_bytes().to_vec()),
        Some(data_source::Specifier::EnvironmentVariable(v)) => {
            std::env::var(v).map(String::into_bytes).map_err(|_| {
                fail(
                    format!("{field}.environment_variable"),
                    format!("{v} is not set"),
                )
            })
        }
    }
}

/// Every certificate of a PEM text.
pub fn certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block".into());
    }
    Ok(certs)
}

/// Roots from `ca`; `crl`: revocation lists (PEM) checked for client certificates, and
/// whether only the leaf is checked (`only_verify_leaf_cert_crl`).
pub(crate) fn static_roots(
    ca: &DataSource,
    field: &str,
    crl: Option<(Vec<u8>, bool, &str)>,
) -> Result<RootsSource, Fail> {
    let mut bytes = read(Some(ca), field)?;
    let mut roots = RootCertStore::empty();
    for c in certs(&bytes).map_err(|e| fail(field, e))? {
        roots
            .add(c)
            .map_err(|e| fail(field, format!("bad CA certificate: {e}")))?;
    }
    let roots = Arc::new(roots);
    let client_verifier = match &crl {
        None => super::secrets::client_verifier(&roots).map_err(|e| fail(field, e))?,
        Some((pem, leaf_only, crl_field)) => {
            crl_verifier(&roots, pem, *leaf_only).map_err(|e| fail(*crl_field, e))?
        }
    };
    if let Some((pem, _, _)) = crl {
        bytes.extend_from_slice(&pem);
    }
    Ok(RootsSource::Static(Arc::new(StaticRoots {
        roots,
        client_verifier,
        bytes,
    })))
}

/// A client-certificate verifier checking revocation against the CRLs in `pem` (every CA of
/// the chain needs its CRL unless `leaf_only`, as Envoy).
fn crl_verifier(
    roots: &Arc<RootCertStore>,
    pem: &[u8],
    leaf_only: bool,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    use rustls_pki_types::CertificateRevocationListDer;
    let crls = CertificateRevocationListDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad CRL PEM: {e}"))?;
    if crls.is_empty() {
        return Err("no X509 CRL block".into());
    }
    let mut builder =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::clone(roots), provider())
            .with_crls(crls);
    if leaf_only {
        builder = builder.only_check_end_entity_revocation();
    }
    builder
        .build()
        .map_err(|e| format!("client certificate verifier: {e}"))
}
