//! The mesh root that verifies mastd over TLS (istiod's 15012): `--xds-root-cert`
//! (`MAST_XDS_ROOT_CERT`) for an `https://` xDS address, `--ca-root-cert`
//! (`MAST_CA_ROOT_CERT`, default the xDS one) for an `https://` CA address. Both files are
//! read at start, so a missing or empty root is a startup error naming the file rather
//! than a proxy that never connects.

use std::path::{Path, PathBuf};

use super::BootstrapError;

/// The roots resolved from the flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Roots {
    /// The xDS root's PEM text, when given.
    pub xds_pem: Option<String>,
    /// The xDS root file, when given.
    pub xds_file: Option<PathBuf>,
    /// The CA root file (the xDS one when not given).
    pub ca_file: Option<PathBuf>,
}

/// Whether `address` asks for TLS.
pub fn is_https(address: &str) -> bool {
    address
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// Reads the roots; an `https://` address without its root, or a root file that cannot be
/// read or holds no certificate, is an error.
pub(super) fn resolve(
    xds: &str,
    ca: &str,
    xds_root: Option<&Path>,
    ca_root: Option<&Path>,
) -> Result<Roots, BootstrapError> {
    if is_https(xds) && xds_root.is_none() {
        return Err(BootstrapError::NoRootCert {
            address: xds.to_owned(),
            flag: "--xds-root-cert (MAST_XDS_ROOT_CERT)",
        });
    }
    let ca_root = ca_root.or(xds_root);
    if is_https(ca) && ca_root.is_none() {
        return Err(BootstrapError::NoRootCert {
            address: ca.to_owned(),
            flag: "--ca-root-cert (MAST_CA_ROOT_CERT) or --xds-root-cert",
        });
    }
    let xds_pem = xds_root.map(read_root).transpose()?;
    if let Some(file) = ca_root {
        read_root(file)?;
    }
    Ok(Roots {
        xds_pem,
        xds_file: xds_root.map(Path::to_path_buf),
        ca_file: ca_root.map(Path::to_path_buf),
    })
}

/// The PEM text of `file`, which must hold a certificate.
fn read_root(file: &Path) -> Result<String, BootstrapError> {
    let bad = |reason: String| BootstrapError::RootCert {
        path: file.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(file).map_err(|e| bad(e.to_string()))?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(text)
}
