//! [`CertificateAuthority`]: signs workload certificates (Citadel's role).
//!
//! The signing material lives in a directory with Istio's `cacerts` layout: `ca-key.pem`
//! (the signing key, 0600), `ca-cert.pem` (the signing certificate, a root or an
//! intermediate), `root-cert.pem` (the trust bundle: every trusted root, two during a root
//! rotation) and optionally `cert-chain.pem` (the signing certificate and the intermediates
//! above it). mastd makes a self-signed root there on first start
//! ([`CertificateAuthority::load_or_create`]) or uses a plug-in CA's folder as is
//! ([`CertificateAuthority::load_dir`]).
//!
//! An issued chain is `[leaf, intermediates…, trust bundle]`: the last element is the whole
//! bundle (possibly several concatenated roots), as Istio's CA answers.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use mast_core::SpiffeId;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
    SubjectPublicKeyInfo,
};
use ring::rand::{SecureRandom as _, SystemRandom};
use rustls_pki_types::CertificateSigningRequestDer;
use rustls_pki_types::pem::PemObject as _;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer as _;

use crate::bundle::{BundleError, CertBundle};
use crate::files::{FileError, ensure_dir, read_text, write_atomic};
use crate::x509::{cert_facts, cert_pem, load_key, pem_certs};

/// The validity given when a request asks for none (Istio's DEFAULT_WORKLOAD_CERT_TTL).
pub const DEFAULT_CERT_TTL: Duration = Duration::from_secs(24 * 3600);
/// The longest validity granted by default (Istio's MAX_WORKLOAD_CERT_TTL, 90 days).
pub const DEFAULT_MAX_CERT_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// A generated root's validity: 10 years.
pub const ROOT_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How far in the past notBefore is set, for clocks that lag.
pub const BACKDATE: Duration = Duration::from_secs(60);

/// The signing key file.
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// The signing certificate file.
pub const CA_CERT_FILE: &str = "ca-cert.pem";
/// The trust bundle file.
pub const ROOT_CERT_FILE: &str = "root-cert.pem";
/// The signing certificate's chain file (plug-in CAs).
pub const CERT_CHAIN_FILE: &str = "cert-chain.pem";

/// How the CA signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaOptions {
    /// The trust domain (the generated root's O; identities must be in it).
    pub trust_domain: String,
    /// The validity when a request asks for none (0).
    pub default_ttl: Duration,
    /// The longest validity granted; longer requests are capped.
    pub max_ttl: Duration,
}

impl Default for CaOptions {
    fn default() -> Self {
        Self {
            trust_domain: mast_core::DEFAULT_TRUST_DOMAIN.to_owned(),
            default_ttl: DEFAULT_CERT_TTL,
            max_ttl: DEFAULT_MAX_CERT_TTL,
        }
    }
}

/// Why the CA's material could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// A file could not be read or written.
    #[error(transparent)]
    File(#[from] FileError),
    /// A file holds something unusable.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file (or directory).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Key or certificate generation failed.
    #[error("generating CA material: {0}")]
    Generate(String),
}

/// Why a CSR was not signed. The messages are sent to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The CSR is not a PEM certificate request.
    #[error("CSR parse error: {0}")]
    Parse(String),
    /// The CSR's signature does not verify with its own key.
    #[error("failed to verify CSR signature: {0}")]
    Signature(String),
    /// The CSR asks for an identity other than the caller's.
    #[error("CSR requests identity {requested:?} but the caller is authenticated as {caller:?}")]
    IdentityMismatch {
        /// The URI SAN in the CSR.
        requested: String,
        /// The authenticated identity.
        caller: String,
    },
    /// The caller's identity is outside this CA's trust domain.
    #[error("identity {identity} is not in the trust domain {trust_domain:?}")]
    TrustDomain {
        /// The caller's identity.
        identity: String,
        /// The CA's trust domain.
        trust_domain: String,
    },
    /// Signing itself failed.
    #[error("signing failed: {0}")]
    Internal(String),
}

impl SignError {
    /// A short label for metrics (`mast_ca_csr_errors_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Parse(_) => "csr_parse",
            Self::Signature(_) => "csr_signature",
            Self::IdentityMismatch { .. } => "identity_mismatch",
            Self::TrustDomain { .. } => "trust_domain",
            Self::Internal(_) => "internal",
        }
    }
}

/// The PEM texts a CA is made of.
#[derive(Debug, Clone, Default)]
pub struct CaMaterial {
    /// The signing key.
    pub key_pem: String,
    /// The signing certificate.
    pub cert_pem: String,
    /// The signing certificate and the intermediates above it (optional).
    pub chain_pem: Option<String>,
    /// The trust bundle.
    pub roots_pem: String,
}

/// A loaded CA, ready to sign. Immutable: a reload makes a new one.
pub struct CertificateAuthority {
    options: CaOptions,
    issuer: Issuer<'static, KeyPair>,
    /// PEM certificates sent after the leaf (intermediates; never a root of the bundle).
    chain: Vec<String>,
    roots_pem: String,
    root_expiry: SystemTime,
    signing_cert_pem: String,
    origin: String,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("origin", &self.origin)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn invalid(path: &Path, reason: impl Into<String>) -> CaError {
    CaError::Invalid {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Random positive 128-bit serial.
pub(crate) fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    let _ = SystemRandom::new().fill(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&bytes)
}

/// The roots of a bundle and the earliest expiry among them.
fn read_roots(
    pem: &str,
    path: &Path,
) -> Result<(Vec<rustls_pki_types::CertificateDer<'static>>, SystemTime), CaError> {
    let roots = pem_certs(pem).map_err(|e| invalid(path, e))?;
    let mut expiry = None::<SystemTime>;
    for r in &roots {
        let f = cert_facts(r).map_err(|e| invalid(path, e))?;
        expiry = Some(expiry.map_or(f.not_after, |t| t.min(f.not_after)));
    }
    let expiry = expiry.ok_or_else(|| invalid(path, "no CERTIFICATE block"))?;
    Ok((roots, expiry))
}

/// A new self-signed root for `trust_domain`: (key PEM, certificate PEM).
pub fn generate_root(trust_domain: &str) -> Result<(String, String), CaError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| CaError::Generate(e.to_string()))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, trust_domain);
    dn.push(DnType::CommonName, "Mast CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = SystemTime::now();
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + ROOT_TTL).into();
    params.serial_number = Some(random_serial());
    let cert = params
        .self_signed(&key)
        .map_err(|e| CaError::Generate(e.to_string()))?;
    Ok((key.serialize_pem(), cert.pem()))
}

impl CertificateAuthority {
    /// A CA from PEM texts; `origin` names where they came from, for messages.
    pub fn from_material(
        material: &CaMaterial,
        options: CaOptions,
        origin: &Path,
    ) -> Result<Self, CaError> {
        let key = load_key(&material.key_pem).map_err(|e| invalid(&origin.join(CA_KEY_FILE), e))?;
        let cert_path = origin.join(CA_CERT_FILE);
        let cert_der = pem_certs(&material.cert_pem)
            .map_err(|e| invalid(&cert_path, e))?
            .into_iter()
            .next()
            .ok_or_else(|| invalid(&cert_path, "no CERTIFICATE block"))?;
        let facts = cert_facts(&cert_der).map_err(|e| invalid(&cert_path, e))?;
        if facts.public_key != key.public_key_raw() {
            return Err(invalid(
                &cert_path,
                format!("does not match the key in {CA_KEY_FILE}"),
            ));
        }
        if !facts.is_ca {
            return Err(invalid(
                &cert_path,
                "is not a CA certificate (basicConstraints CA:FALSE)",
            ));
        }
        let roots_path = origin.join(ROOT_CERT_FILE);
        let (roots, root_expiry) = read_roots(&material.roots_pem, &roots_path)?;
        let chain_ders = match &material.chain_pem {
            Some(p) => pem_certs(p).map_err(|e| invalid(&origin.join(CERT_CHAIN_FILE), e))?,
            None => vec![cert_der.clone()],
        };
        let chain = chain_ders
            .iter()
            .filter(|c| !roots.contains(c))
            .map(|c| cert_pem(c))
            .collect();
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)
            .map_err(|e| invalid(&cert_path, e.to_string()))?;
        Ok(Self {
            options,
            issuer,
            chain,
            roots_pem: roots.iter().map(|r| cert_pem(r)).collect(),
            root_expiry,
            signing_cert_pem: cert_pem(&cert_der),
            origin: origin.display().to_string(),
        })
    }

    /// Loads a CA directory in Istio's `cacerts` layout (`root-cert.pem` defaults to
    /// `ca-cert.pem`; `cert-chain.pem` is optional).
    pub fn load_dir(dir: &Path, options: CaOptions) -> Result<Self, CaError> {
        let optional = |name: &str| -> Result<Option<String>, CaError> {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(s) => Ok(Some(s)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(FileError::new(&path, e).into()),
            }
        };
        let cert_pem = read_text(&dir.join(CA_CERT_FILE))?;
        let material = CaMaterial {
            key_pem: read_text(&dir.join(CA_KEY_FILE))?,
            roots_pem: optional(ROOT_CERT_FILE)?.unwrap_or_else(|| cert_pem.clone()),
            chain_pem: optional(CERT_CHAIN_FILE)?,
            cert_pem,
        };
        Self::from_material(&material, options, dir)
    }

    /// Loads the self-signed CA kept in `dir`, generating a root there first if the
    /// directory holds none (`ca-key.pem` 0600, `ca-cert.pem`, `root-cert.pem`).
    pub fn load_or_create(dir: &Path, options: CaOptions) -> Result<Self, CaError> {
        if !dir.join(CA_KEY_FILE).exists() {
            if dir.join(CA_CERT_FILE).exists() {
                return Err(invalid(
                    dir,
                    format!("{CA_CERT_FILE} exists but {CA_KEY_FILE} is missing"),
                ));
            }
            ensure_dir(dir)?;
            let (key, cert) = generate_root(&options.trust_domain)?;
            write_atomic(&dir.join(CA_KEY_FILE), key.as_bytes(), 0o600)?;
            write_atomic(&dir.join(CA_CERT_FILE), cert.as_bytes(), 0o644)?;
            write_atomic(&dir.join(ROOT_CERT_FILE), cert.as_bytes(), 0o644)?;
            tracing::info!(dir = %dir.display(), "generated a new self-signed root CA");
        }
        Self::load_dir(dir, options)
    }

    /// A CA with a fresh self-signed root kept only in memory (tests, examples).
    pub fn ephemeral(trust_domain: &str) -> Result<Self, CaError> {
        let (key_pem, cert_pem) = generate_root(trust_domain)?;
        let material = CaMaterial {
            key_pem,
            roots_pem: cert_pem.clone(),
            cert_pem,
            chain_pem: None,
        };
        let options = CaOptions {
            trust_domain: trust_domain.to_owned(),
            ..CaOptions::default()
        };
        Self::from_material(&material, options, Path::new("<memory>"))
    }

    /// The signing options.
    pub fn options(&self) -> &CaOptions {
        &self.options
    }

    /// The trust bundle (every trusted root, PEM).
    pub fn roots_pem(&self) -> &str {
        &self.roots_pem
    }

    /// The signing certificate (PEM).
    pub fn signing_cert_pem(&self) -> &str {
        &self.signing_cert_pem
    }

    /// The earliest notAfter among the trusted roots.
    pub fn root_expiry(&self) -> SystemTime {
        self.root_expiry
    }

    /// Where the material came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The validity granted for a requested `ttl`: the default for 0, capped at the max.
    pub fn effective_ttl(&self, ttl: Duration) -> Duration {
        if ttl.is_zero() {
            self.options.default_ttl.min(self.options.max_ttl)
        } else {
            ttl.min(self.options.max_ttl)
        }
    }

    /// Signs `csr_pem` for `identity` (the authenticated caller). Returns the chain leaf
    /// first, the trust bundle last. The leaf carries only `identity` as URI SAN; a CSR
    /// asking for another SPIFFE URI is refused.
    pub fn sign(
        &self,
        csr_pem: &str,
        identity: &SpiffeId,
        ttl: Duration,
    ) -> Result<Vec<String>, SignError> {
        if identity.trust_domain() != self.options.trust_domain {
            return Err(SignError::TrustDomain {
                identity: identity.to_string(),
                trust_domain: self.options.trust_domain.clone(),
            });
        }
        let spki = check_csr(csr_pem, identity)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        let uri = identity
            .to_string()
            .try_into()
            .map_err(|e: rcgen::Error| SignError::Internal(e.to_string()))?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let now = SystemTime::now();
        params.not_before = (now - BACKDATE).into();
        params.not_after = (now + self.effective_ttl(ttl)).into();
        params.serial_number = Some(random_serial());
        let leaf = params
            .signed_by(&spki, &self.issuer)
            .map_err(|e| SignError::Internal(e.to_string()))?;
        let mut out = Vec::with_capacity(self.chain.len() + 2);
        out.push(leaf.pem());
        out.extend(self.chain.iter().cloned());
        out.push(self.roots_pem.clone());
        Ok(out)
    }

    /// A serving certificate for mastd's own TLS listeners (xDS and CA on 15012, the
    /// webhooks on 15017): a new ECDSA P-256 key and a leaf with `dns_names` as DNS SANs
    /// (server and client auth), signed by the mesh CA, so that proxies trusting the mesh root
    /// verify mastd as they verify each other. Returns (chain PEM leaf first with the
    /// intermediates, key PEM, roots PEM).
    pub fn issue_serving(
        &self,
        dns_names: &[String],
        ttl: Duration,
    ) -> Result<(String, String, String), SignError> {
        let internal = |e: rcgen::Error| SignError::Internal(e.to_string());
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(internal)?;
        let mut params = CertificateParams::new(dns_names.to_vec()).map_err(internal)?;
        params.distinguished_name = DistinguishedName::new();
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let now = SystemTime::now();
        params.not_before = (now - BACKDATE).into();
        params.not_after = (now + self.effective_ttl(ttl)).into();
        params.serial_number = Some(random_serial());
        let leaf = params.signed_by(&key, &self.issuer).map_err(internal)?;
        let mut chain = leaf.pem();
        for c in &self.chain {
            chain.push_str(c);
        }
        Ok((chain, key.serialize_pem(), self.roots_pem.clone()))
    }

    /// Makes a key and a certificate for `identity` directly (no CSR round trip): for tests
    /// and for tools that need a workload bundle without mastd.
    pub fn issue_bundle(
        &self,
        identity: &SpiffeId,
        ttl: Duration,
    ) -> Result<CertBundle, SignError> {
        let (key_pem, csr) = make_csr(identity).map_err(SignError::Internal)?;
        let chain = self.sign(&csr, identity, ttl)?;
        CertBundle::from_chain(&chain, key_pem).map_err(|e| SignError::Internal(e.to_string()))
    }
}

/// A new ECDSA P-256 key and a CSR for `identity` (URI SAN, empty subject):
/// (key PEM in PKCS#8, CSR PEM).
pub fn make_csr(identity: &SpiffeId) -> Result<(String, String), String> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    let uri = identity
        .to_string()
        .try_into()
        .map_err(|e: rcgen::Error| e.to_string())?;
    params.subject_alt_names = vec![SanType::URI(uri)];
    let csr = params.serialize_request(&key).map_err(|e| e.to_string())?;
    Ok((key.serialize_pem(), csr.pem().map_err(|e| e.to_string())?))
}

/// Parses a CSR, verifies its signature and its requested URI SANs against `identity`;
/// returns its public key.
fn check_csr(csr_pem: &str, identity: &SpiffeId) -> Result<SubjectPublicKeyInfo, SignError> {
    let der = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
        .map_err(|e| SignError::Parse(format!("no PEM CERTIFICATE REQUEST: {e}")))?;
    let (_, csr) =
        X509CertificationRequest::from_der(&der).map_err(|e| SignError::Parse(e.to_string()))?;
    csr.verify_signature()
        .map_err(|e| SignError::Signature(e.to_string()))?;
    let want = identity.to_string();
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                if let GeneralName::URI(uri) = name
                    && *uri != want
                {
                    return Err(SignError::IdentityMismatch {
                        requested: (*uri).to_owned(),
                        caller: want,
                    });
                }
            }
        }
    }
    SubjectPublicKeyInfo::from_der(csr.certification_request_info.subject_pki.raw)
        .map_err(|e| SignError::Parse(format!("unsupported public key: {e}")))
}

impl From<BundleError> for SignError {
    fn from(e: BundleError) -> Self {
        SignError::Internal(e.to_string())
    }
}
