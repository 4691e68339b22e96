//! The SDS secrets `default` (the workload's certificate and key) and `ROOTCA` (the trusted
//! roots), served in-process from the workload's certificate bundle
//! ([`mast_ca::bundle::SharedBundle`] on a watch channel from the secret manager).
//!
//! Each new bundle is parsed once into [`Material`] (a rustls `CertifiedKey`, a root store and a
//! client-certificate verifier over those roots) and swapped in atomically: new handshakes use
//! it, established connections are untouched. Before the first bundle, handshakes that need a
//! secret fail (logged once); nothing panics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use mast_ca::CertBundle;
use mast_ca::bundle::SharedBundle;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::CertifiedKey;
use tokio::sync::watch;

use super::provider;

/// The SDS name of the workload certificate.
pub const DEFAULT_SECRET: &str = "default";
/// The SDS name of the trusted roots.
pub const ROOTCA_SECRET: &str = "ROOTCA";

/// One bundle, parsed for rustls.
pub struct Material {
    /// The bundle it came from.
    pub bundle: Arc<CertBundle>,
    /// The chain and signing key the proxy presents.
    pub key: Arc<CertifiedKey>,
    /// The trusted roots.
    pub roots: Arc<RootCertStore>,
    /// A chain verifier for client certificates over `roots`.
    pub client_verifier: Arc<dyn ClientCertVerifier>,
    /// The URI SANs of the leaf (XFCC `By`).
    pub local_uri_sans: Vec<String>,
    /// When it was installed.
    pub updated: SystemTime,
    /// A counter, bumped by every bundle (the SDS `version_info`).
    pub version: u64,
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Material")
            .field("identity", &self.bundle.identity.to_string())
            .field("serial", &self.bundle.serial_hex)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The in-process SDS secrets of this proxy.
#[derive(Debug, Default)]
pub struct SecretStore {
    current: ArcSwapOption<Material>,
    versions: AtomicU64,
    missing_logged: AtomicBool,
}

impl SecretStore {
    /// An empty store (no bundle yet).
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The process-wide store that xDS conversions refer to for `default` and `ROOTCA`.
    pub fn global() -> &'static Arc<SecretStore> {
        static GLOBAL: OnceLock<Arc<SecretStore>> = OnceLock::new();
        GLOBAL.get_or_init(SecretStore::new)
    }

    /// The current material, if a bundle has arrived.
    pub fn current(&self) -> Option<Arc<Material>> {
        self.current.load_full()
    }

    /// Installs `bundle` (`None` clears). A bundle that does not parse is refused and the
    /// previous one kept.
    pub fn set(&self, bundle: SharedBundle) -> Result<(), String> {
        let Some(bundle) = bundle else {
            self.current.store(None);
            return Ok(());
        };
        let version = self.versions.fetch_add(1, Ordering::AcqRel) + 1;
        let material = parse(bundle, version)?;
        tracing::info!(
            identity = %material.bundle.identity,
            serial = %material.bundle.serial_hex,
            "workload certificate installed"
        );
        self.current.store(Some(Arc::new(material)));
        self.missing_logged.store(false, Ordering::Release);
        Ok(())
    }

    /// Follows `rx` until its sender is dropped: every value is installed.
    pub fn attach(self: &Arc<Self>, mut rx: watch::Receiver<SharedBundle>) {
        let store = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let value = rx.borrow_and_update().clone();
                if let Err(e) = store.set(value) {
                    tracing::error!(error = %e, "workload certificate bundle refused");
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    /// Logs (once until the next bundle) that a handshake needed `secret` before any arrived.
    pub(crate) fn missing(&self, secret: &str) {
        if !self.missing_logged.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                secret,
                "TLS handshake needs an SDS secret that has not arrived yet (no certificate from the CA): failing it"
            );
        }
    }
}

fn parse(bundle: Arc<CertBundle>, version: u64) -> Result<Material, String> {
    let chain = bundle.chain_der().map_err(|e| e.to_string())?;
    let key = bundle.key_der().map_err(|e| e.to_string())?;
    let local_uri_sans = chain
        .first()
        .map(|c| super::peer::uri_sans(c.as_ref()))
        .unwrap_or_default();
    let key = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| e.to_string())?;
    let mut roots = RootCertStore::empty();
    for root in bundle.roots_der().map_err(|e| e.to_string())? {
        roots
            .add(root)
            .map_err(|e| format!("root certificate: {e}"))?;
    }
    let roots = Arc::new(roots);
    let client_verifier = client_verifier(&roots)?;
    Ok(Material {
        bundle,
        key: Arc::new(key),
        roots,
        client_verifier,
        local_uri_sans,
        updated: SystemTime::now(),
        version,
    })
}

/// A chain verifier for client certificates over `roots` (names are checked separately).
pub(crate) fn client_verifier(
    roots: &Arc<RootCertStore>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    WebPkiClientVerifier::builder_with_provider(Arc::clone(roots), provider())
        .build()
        .map_err(|e| format!("client certificate verifier: {e}"))
}
