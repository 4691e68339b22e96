//! [`SecretManager`]: keeps one workload certificate fresh (ztunnel's `SecretManager` and
//! istio-agent's SDS cache play this role). It makes an ECDSA P-256 key and a CSR for the
//! workload's identity, asks the CA (`CreateCertificate`, authenticated with the token
//! file's contents), publishes the resulting [`CertBundle`] on a `watch` channel, and
//! refreshes it at half its lifetime (±1 % jitter, Istio's SECRET_GRACE_PERIOD_RATIO 0.5).
//! Failures are retried with back-off while the previous bundle stays published.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mast_core::{SpiffeId, SpiffeIdError};
use parking_lot::Mutex;
use ring::rand::{SecureRandom as _, SystemRandom};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::authority::{DEFAULT_CERT_TTL, make_csr};
use crate::bundle::{CertBundle, SharedBundle};
use crate::client::{AddressError, CaClient};
use crate::pb::IstioCertificateRequest;

/// First retry delay after a failure; doubles up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often a missing token file is looked for.
pub const TOKEN_POLL: Duration = Duration::from_secs(1);

/// What a workload asks its CA for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretConfig {
    /// The CA: `host:port` or `http://host:port` (plaintext gRPC).
    pub ca_address: String,
    /// The token file, re-read before every request; waited for while absent.
    pub token_file: PathBuf,
    /// The workload's namespace.
    pub namespace: String,
    /// The workload's service account (empty = `default`).
    pub service_account: String,
    /// The trust domain of the identity asked for.
    pub trust_domain: String,
    /// The validity asked for.
    pub ttl: Duration,
    /// The mesh root to verify an `https://` CA address against (istiod's 15012).
    pub ca_root_cert: Option<PathBuf>,
}

impl SecretConfig {
    /// A config with a 24 h TTL in the default trust domain.
    pub fn new(
        ca_address: impl Into<String>,
        token_file: impl Into<PathBuf>,
        namespace: &str,
        service_account: &str,
    ) -> Self {
        Self {
            ca_address: ca_address.into(),
            token_file: token_file.into(),
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
            trust_domain: mast_core::DEFAULT_TRUST_DOMAIN.to_owned(),
            ttl: DEFAULT_CERT_TTL,
            ca_root_cert: None,
        }
    }

    /// Verifies an `https://` CA address against the root in `file`.
    #[must_use]
    pub fn with_ca_root_cert(mut self, file: Option<PathBuf>) -> Self {
        self.ca_root_cert = file;
        self
    }

    /// Asks for `ttl` instead of 24 h.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Uses another trust domain.
    #[must_use]
    pub fn with_trust_domain(mut self, trust_domain: &str) -> Self {
        trust_domain.clone_into(&mut self.trust_domain);
        self
    }

    /// The identity asked for.
    pub fn identity(&self) -> Result<SpiffeId, ManagerError> {
        let sa = if self.service_account.is_empty() {
            "default"
        } else {
            &self.service_account
        };
        Ok(SpiffeId::new(&self.trust_domain, &self.namespace, sa)?)
    }
}

/// Why a secret manager could not start.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// The namespace / service account do not make an identity.
    #[error(transparent)]
    Identity(#[from] SpiffeIdError),
    /// The CA address is unusable.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// The root certificate file cannot be read.
    #[error("reading the CA root certificate {path}: {source}")]
    RootCert {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Starts secret managers.
#[derive(Debug)]
pub struct SecretManager;

impl SecretManager {
    /// Starts fetching and rotating the certificate described by `config` on the current
    /// Tokio runtime (panics outside one, as `tokio::spawn`). Errors only for a bad config.
    pub fn spawn(config: SecretConfig) -> Result<SecretHandle, ManagerError> {
        let identity = config.identity()?;
        let roots =
            match &config.ca_root_cert {
                Some(path) => Some(std::fs::read_to_string(path).map_err(|source| {
                    ManagerError::RootCert {
                        path: path.clone(),
                        source,
                    }
                })?),
                None => None,
            };
        let client = CaClient::with_roots(&config.ca_address, roots.as_deref())?;
        let (tx, rx) = watch::channel(None);
        let last_error = Arc::new(Mutex::new(None));
        let worker = Worker {
            config,
            identity: identity.clone(),
            client,
            tx,
            last_error: last_error.clone(),
        };
        let task = tokio::spawn(worker.run());
        Ok(SecretHandle {
            inner: Arc::new(Inner {
                rx,
                identity,
                last_error,
                task,
            }),
        })
    }
}

struct Inner {
    rx: watch::Receiver<SharedBundle>,
    identity: SpiffeId,
    last_error: Arc<Mutex<Option<String>>>,
    task: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A running secret manager. Clones share it; it stops when the last clone is dropped or
/// on [`SecretHandle::shutdown`] (the last bundle stays readable).
#[derive(Clone)]
pub struct SecretHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SecretHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretHandle")
            .field("identity", &self.inner.identity)
            .finish_non_exhaustive()
    }
}

impl SecretHandle {
    /// The bundles: `None` until the first certificate, then each rotation.
    pub fn subscribe(&self) -> watch::Receiver<SharedBundle> {
        self.inner.rx.clone()
    }

    /// The bundle now.
    pub fn current(&self) -> SharedBundle {
        self.inner.rx.borrow().clone()
    }

    /// The identity asked for.
    pub fn identity(&self) -> &SpiffeId {
        &self.inner.identity
    }

    /// The current leaf's notAfter (for metrics).
    pub fn expiry(&self) -> Option<SystemTime> {
        self.inner.rx.borrow().as_ref().map(|b| b.not_after)
    }

    /// The last failure to get a certificate; `None` after a success.
    pub fn last_error(&self) -> Option<String> {
        self.inner.last_error.lock().clone()
    }

    /// Waits up to `timeout` for a bundle.
    pub async fn wait_ready(&self, timeout: Duration) -> Option<std::sync::Arc<CertBundle>> {
        let mut rx = self.subscribe();
        let got = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
        match got {
            Ok(Ok(b)) => b.clone(),
            _ => self.current(),
        }
    }

    /// Stops refreshing.
    pub fn shutdown(&self) {
        self.inner.task.abort();
    }
}

struct Worker {
    config: SecretConfig,
    identity: SpiffeId,
    client: CaClient,
    tx: watch::Sender<SharedBundle>,
    last_error: Arc<Mutex<Option<String>>>,
}

impl Worker {
    async fn run(mut self) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let token = self.wait_token().await;
            let started = SystemTime::now();
            match self.fetch(&token).await {
                Ok(bundle) => {
                    backoff = MIN_BACKOFF;
                    let delay = refresh_delay(started, bundle.not_after);
                    tracing::info!(
                        identity = %self.identity,
                        serial = %bundle.serial_hex,
                        refresh_in = ?delay,
                        "workload certificate issued"
                    );
                    self.set_error(None);
                    self.tx.send_replace(Some(Arc::new(bundle)));
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    tracing::warn!(
                        identity = %self.identity,
                        ca = %self.config.ca_address,
                        retry_in = ?backoff,
                        "cannot get a workload certificate: {e}"
                    );
                    self.set_error(Some(e));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn set_error(&self, e: Option<String>) {
        *self.last_error.lock() = e;
    }

    /// The token file's contents, waiting for the file to appear (and be non-empty).
    async fn wait_token(&self) -> String {
        let mut logged = false;
        loop {
            match std::fs::read_to_string(&self.config.token_file) {
                Ok(t) if !t.trim().is_empty() => return t.trim().to_owned(),
                Ok(_) | Err(_) => {
                    if !logged {
                        let msg = format!(
                            "waiting for the CA token file {}",
                            self.config.token_file.display()
                        );
                        tracing::info!(identity = %self.identity, "{msg}");
                        self.set_error(Some(msg));
                        logged = true;
                    }
                    tokio::time::sleep(TOKEN_POLL).await;
                }
            }
        }
    }

    async fn fetch(&mut self, token: &str) -> Result<CertBundle, String> {
        let (key_pem, csr) = make_csr(&self.identity)?;
        let request = IstioCertificateRequest {
            csr,
            validity_duration: i64::try_from(self.config.ttl.as_secs()).unwrap_or(i64::MAX),
            metadata: None,
        };
        let response = self
            .client
            .create_certificate(request, Some(token))
            .await
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
        let bundle = CertBundle::from_chain(&response.cert_chain, key_pem)
            .map_err(|e| format!("the CA's answer: {e}"))?;
        if bundle.identity != self.identity {
            return Err(format!(
                "the CA issued a certificate for {} instead of {}",
                bundle.identity, self.identity
            ));
        }
        Ok(bundle)
    }
}

/// When to refresh a certificate fetched at `started` that expires at `not_after`: at half
/// the remaining lifetime, ±1 % jitter, at least 500 ms from now.
pub fn refresh_delay(started: SystemTime, not_after: SystemTime) -> Duration {
    let life = not_after.duration_since(started).unwrap_or_default();
    let mut buf = [0u8; 4];
    let _ = SystemRandom::new().fill(&mut buf);
    let unit = f64::from(u32::from_le_bytes(buf)) / f64::from(u32::MAX); // 0..=1
    let factor = 0.5 * (1.0 + (unit * 2.0 - 1.0) * 0.01);
    let at = started + life.mul_f64(factor);
    at.duration_since(SystemTime::now())
        .unwrap_or_default()
        .max(Duration::from_millis(500))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_is_at_half_life_with_one_percent_jitter() {
        let now = SystemTime::now();
        for _ in 0..50 {
            let d = refresh_delay(now, now + Duration::from_secs(1000)).as_secs_f64();
            assert!((494.0..=505.1).contains(&d), "{d}");
        }
        // Expired or nearly expired: retry soon, never in a tight loop.
        assert_eq!(refresh_delay(now, now), Duration::from_millis(500));
    }

    #[test]
    fn empty_service_account_means_default() {
        let c = SecretConfig::new("127.0.0.1:1", "/t", "ns", "");
        assert_eq!(
            c.identity().unwrap().to_string(),
            "spiffe://cluster.local/ns/ns/sa/default"
        );
        assert!(
            SecretConfig::new("127.0.0.1:1", "/t", "", "sa")
                .identity()
                .is_err()
        );
    }
}
