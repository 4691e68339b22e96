//! [`CertBundle`]: what a workload holds to speak mutual TLS — its private key, its certificate
//! chain (leaf first) and the roots it trusts (one or several during a root rotation) — plus
//! the parsed facts consumers need (identity, validity, serial) and conversions to rustls types.

use std::sync::Arc;
use std::time::SystemTime;

use mast_core::SpiffeId;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A workload's key, certificate chain and trust bundle. Immutable; a rotation makes a new one.
#[derive(Debug, Clone)]
pub struct CertBundle {
    /// The identity in the leaf's URI SAN.
    pub identity: SpiffeId,
    /// PEM of the chain the workload presents: the leaf first, then intermediates (no root).
    pub chain_pem: String,
    /// PEM of the leaf's private key (PKCS#8).
    pub key_pem: String,
    /// PEM of every trusted root (the overlap bundle holds the old and the new root).
    pub roots_pem: String,
    /// The leaf's notBefore.
    pub not_before: SystemTime,
    /// The leaf's notAfter.
    pub not_after: SystemTime,
    /// The leaf's serial number, lower-case hex without separators.
    pub serial_hex: String,
}

/// Why PEM in a bundle could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A PEM block could not be read.
    #[error("{what}: {reason}")]
    Pem {
        /// Which part (`certificate chain`, `private key`, `roots`).
        what: &'static str,
        /// The parser's message.
        reason: String,
    },
    /// A chain from the CA cannot make a bundle.
    #[error("certificate chain: {0}")]
    Invalid(String),
}

impl CertBundle {
    /// The chain as DER certificates, leaf first.
    pub fn chain_der(&self) -> Result<Vec<CertificateDer<'static>>, BundleError> {
        certs_der(&self.chain_pem, "certificate chain")
    }

    /// The trusted roots as DER certificates.
    pub fn roots_der(&self) -> Result<Vec<CertificateDer<'static>>, BundleError> {
        certs_der(&self.roots_pem, "roots")
    }

    /// The private key as DER.
    pub fn key_der(&self) -> Result<PrivateKeyDer<'static>, BundleError> {
        use rustls_pki_types::pem::PemObject;
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| BundleError::Pem {
            what: "private key",
            reason: e.to_string(),
        })
    }

    /// A bundle from a CA's answer (`chain[0]` = leaf, then intermediates, the last element
    /// = the trust bundle, possibly several roots) and the leaf's key (PKCS#8 PEM). The
    /// identity, validity and serial are read from the leaf.
    pub fn from_chain(chain: &[String], key_pem: String) -> Result<Self, BundleError> {
        let Some((roots, certs)) = chain.split_last() else {
            return Err(BundleError::Invalid("empty".into()));
        };
        if certs.is_empty() {
            return Err(BundleError::Invalid(
                "expected the leaf and the root(s), got one element".into(),
            ));
        }
        let chain_pem: String = certs
            .iter()
            .map(|c| {
                let c = c.trim_end();
                format!("{c}\n")
            })
            .collect();
        let leaf = certs_der(&chain_pem, "certificate chain")?
            .into_iter()
            .next()
            .ok_or_else(|| BundleError::Invalid("no leaf".into()))?;
        certs_der(roots, "roots")?;
        let facts = crate::x509::cert_facts(&leaf).map_err(BundleError::Invalid)?;
        let uri = facts
            .uris
            .first()
            .ok_or_else(|| BundleError::Invalid("the leaf has no URI SAN".into()))?;
        let identity: SpiffeId = uri
            .parse()
            .map_err(|e: mast_core::SpiffeIdError| BundleError::Invalid(e.to_string()))?;
        Ok(Self {
            identity,
            chain_pem,
            key_pem,
            roots_pem: roots.clone(),
            not_before: facts.not_before,
            not_after: facts.not_after,
            serial_hex: facts.serial_hex,
        })
    }

    /// Seconds from `now` until the leaf expires (0 when expired).
    pub fn seconds_left(&self, now: SystemTime) -> u64 {
        self.not_after
            .duration_since(now)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// Every certificate in a PEM text, as DER.
pub fn certs_der(
    pem: &str,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, BundleError> {
    use rustls_pki_types::pem::PemObject;
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| BundleError::Pem {
            what,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(BundleError::Pem {
            what,
            reason: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

/// A shared bundle, as published on a watch channel.
pub type SharedBundle = Option<Arc<CertBundle>>;
