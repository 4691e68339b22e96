//! Root rotation for mastd's self-signed CA directory, in three phases so that no workload
//! ever holds a certificate its peers cannot verify:
//!
//! 1. [`RotationPhase::Add`]: a new root is generated (`next-ca-key.pem`, `next-ca-cert.pem`)
//!    and appended to the trust bundle (`root-cert.pem` = old + new); signing stays on the
//!    old root. Workloads pick up the two-root bundle at their next refresh.
//! 2. [`RotationPhase::Switch`]: the new root becomes the signing root (`ca-key.pem`,
//!    `ca-cert.pem`; the old certificate is kept as `prev-ca-cert.pem`); the bundle still
//!    holds both, so new leaves verify everywhere.
//! 3. [`RotationPhase::Drop`]: once every leaf signed by the old root has rotated, the old
//!    root leaves the bundle (`root-cert.pem` = the new root only).
//!
//! mastd reloads the directory when its files change ([`crate::reload`]); every issued
//! chain ends with the current bundle.

use std::path::Path;
use std::str::FromStr;

use crate::authority::{
    CA_CERT_FILE, CA_KEY_FILE, CERT_CHAIN_FILE, CaError, ROOT_CERT_FILE, generate_root,
};
use crate::files::{FileError, read_text, write_atomic};
use crate::x509::{cert_facts, cert_pem, load_key, pem_certs};

/// The staged new root's key.
pub const NEXT_KEY_FILE: &str = "next-ca-key.pem";
/// The staged new root's certificate.
pub const NEXT_CERT_FILE: &str = "next-ca-cert.pem";
/// The previous signing root, kept between `switch` and `drop`.
pub const PREV_CERT_FILE: &str = "prev-ca-cert.pem";

/// A root rotation step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationPhase {
    /// Generate a new root and trust it (still signing with the old one).
    Add,
    /// Sign with the new root (both still trusted).
    Switch,
    /// Stop trusting the old root.
    Drop,
}

impl FromStr for RotationPhase {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "add" => Ok(Self::Add),
            "switch" => Ok(Self::Switch),
            "drop" => Ok(Self::Drop),
            _ => Err(format!("unknown phase {s:?}: expected add, switch or drop")),
        }
    }
}

fn refuse(dir: &Path, reason: impl Into<String>) -> CaError {
    CaError::Invalid {
        path: dir.to_path_buf(),
        reason: reason.into(),
    }
}

fn remove(path: &Path) -> Result<(), CaError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FileError::new(path, e).into()),
    }
}

/// Runs one phase on the CA directory `dir`; returns a one-line summary for the operator.
pub fn rotate_root(
    dir: &Path,
    trust_domain: &str,
    phase: RotationPhase,
) -> Result<String, CaError> {
    if !dir.join(CA_KEY_FILE).exists() {
        return Err(refuse(
            dir,
            format!("no {CA_KEY_FILE}: not a CA directory (start mastd once to create it)"),
        ));
    }
    if dir.join(CERT_CHAIN_FILE).exists() {
        return Err(refuse(
            dir,
            format!("holds {CERT_CHAIN_FILE}: a plug-in CA is rotated by replacing its files"),
        ));
    }
    let staged = dir.join(NEXT_KEY_FILE).exists();
    match phase {
        RotationPhase::Add => add(dir, trust_domain, staged),
        RotationPhase::Switch => switch(dir, staged),
        RotationPhase::Drop => drop_old(dir, staged),
    }
}

fn add(dir: &Path, trust_domain: &str, staged: bool) -> Result<String, CaError> {
    if staged {
        return Err(refuse(
            dir,
            format!("a new root is already staged ({NEXT_CERT_FILE}); run --phase switch"),
        ));
    }
    let (key, cert) = generate_root(trust_domain)?;
    write_atomic(&dir.join(NEXT_KEY_FILE), key.as_bytes(), 0o600)?;
    write_atomic(&dir.join(NEXT_CERT_FILE), cert.as_bytes(), 0o644)?;
    let mut bundle = normalized_roots(dir)?;
    bundle.push_str(&cert);
    write_atomic(&dir.join(ROOT_CERT_FILE), bundle.as_bytes(), 0o644)?;
    Ok(format!(
        "added a new root to {}; still signing with the old root (next: --phase switch)",
        dir.join(ROOT_CERT_FILE).display()
    ))
}

fn switch(dir: &Path, staged: bool) -> Result<String, CaError> {
    if !staged {
        return Err(refuse(dir, "no staged root: run --phase add first"));
    }
    let next_key = read_text(&dir.join(NEXT_KEY_FILE))?;
    let next_cert = read_text(&dir.join(NEXT_CERT_FILE))?;
    let key = load_key(&next_key).map_err(|e| refuse(&dir.join(NEXT_KEY_FILE), e))?;
    let der = pem_certs(&next_cert)
        .ok()
        .and_then(|c| c.into_iter().next())
        .ok_or_else(|| refuse(&dir.join(NEXT_CERT_FILE), "no certificate"))?;
    let facts = cert_facts(&der).map_err(|e| refuse(&dir.join(NEXT_CERT_FILE), e))?;
    if facts.public_key != key.public_key_raw() {
        return Err(refuse(
            &dir.join(NEXT_CERT_FILE),
            format!("does not match {NEXT_KEY_FILE}"),
        ));
    }
    let old_cert = read_text(&dir.join(CA_CERT_FILE))?;
    write_atomic(&dir.join(PREV_CERT_FILE), old_cert.as_bytes(), 0o644)?;
    write_atomic(&dir.join(CA_KEY_FILE), next_key.as_bytes(), 0o600)?;
    write_atomic(&dir.join(CA_CERT_FILE), next_cert.as_bytes(), 0o644)?;
    remove(&dir.join(NEXT_KEY_FILE))?;
    remove(&dir.join(NEXT_CERT_FILE))?;
    Ok("now signing with the new root; both roots stay trusted (next, once every workload has rotated: --phase drop)".into())
}

fn drop_old(dir: &Path, staged: bool) -> Result<String, CaError> {
    if staged {
        return Err(refuse(
            dir,
            "a new root is staged but not signing yet: run --phase switch first",
        ));
    }
    let current = read_text(&dir.join(CA_CERT_FILE))?;
    let current_der = pem_certs(&current)
        .ok()
        .and_then(|c| c.into_iter().next())
        .ok_or_else(|| refuse(&dir.join(CA_CERT_FILE), "no certificate"))?;
    let before = pem_certs(&read_text(&dir.join(ROOT_CERT_FILE))?)
        .map_err(|e| refuse(&dir.join(ROOT_CERT_FILE), e))?;
    write_atomic(
        &dir.join(ROOT_CERT_FILE),
        cert_pem(&current_der).as_bytes(),
        0o644,
    )?;
    remove(&dir.join(PREV_CERT_FILE))?;
    Ok(format!(
        "the trust bundle now holds only the signing root ({} root(s) dropped)",
        before.iter().filter(|c| **c != current_der).count()
    ))
}

/// `root-cert.pem` re-encoded (one PEM block per root, nothing else).
fn normalized_roots(dir: &Path) -> Result<String, CaError> {
    let path = dir.join(ROOT_CERT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => read_text(&dir.join(CA_CERT_FILE))?,
        Err(e) => return Err(FileError::new(&path, e).into()),
    };
    let certs = pem_certs(&text).map_err(|e| refuse(&path, e))?;
    Ok(certs.iter().map(|c| cert_pem(c)).collect())
}
