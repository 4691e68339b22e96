//! Where the workload's certificate comes from, for the SDS server: with `--ca-token-file`,
//! the secret manager (mast-ca) asks the CA for one and renews it at half life; without,
//! there is none, and SDS answers so that Envoy stops waiting for it (TLS fails, plaintext
//! works).

use anyhow::Context as _;
use mast_agent::metrics::AgentMetrics;
use mast_agent::sds::Pending;
use mast_ca::bundle::SharedBundle;
use mast_ca::manager::{SecretConfig, SecretHandle, SecretManager};
use tokio::sync::watch;
use tracing::info;

use crate::cli::IdentityConfig;

/// What feeds the SDS server; keep it alive as long as the server runs.
pub struct Certificates {
    /// The bundles, `None` until the first certificate.
    pub bundles: watch::Receiver<SharedBundle>,
    /// What SDS answers meanwhile.
    pub pending: Pending,
    /// The running manager (stops when dropped).
    _manager: Option<SecretHandle>,
    /// Without a manager, the publishing side of a channel that stays empty.
    _empty: Option<watch::Sender<SharedBundle>>,
}

/// Starts getting the workload's certificate as `identity` says (on the current runtime);
/// each certificate's expiry goes to `metrics`.
pub fn start(identity: &IdentityConfig, metrics: &AgentMetrics) -> anyhow::Result<Certificates> {
    let Some(token_file) = &identity.token_file else {
        info!("no --ca-token-file: the workload has no certificate (TLS that needs one fails)");
        let (tx, rx) = watch::channel(None);
        return Ok(Certificates {
            bundles: rx,
            pending: Pending::Refuse,
            _manager: None,
            _empty: Some(tx),
        });
    };
    let config = SecretConfig::new(
        identity.ca_address.clone(),
        token_file.clone(),
        &identity.namespace,
        &identity.service_account,
    )
    .with_ttl(identity.ttl)
    .with_ca_root_cert(identity.ca_root_cert.clone());
    let handle = SecretManager::spawn(config).context("cannot start the certificate manager")?;
    info!(
        identity = %handle.identity(),
        ca = identity.ca_address,
        token_file = %token_file.display(),
        "getting the workload certificate"
    );
    tokio::spawn(log_certificates(handle.subscribe(), metrics.clone()));
    Ok(Certificates {
        bundles: handle.subscribe(),
        pending: Pending::Wait,
        _manager: Some(handle),
        _empty: None,
    })
}

/// Logs each certificate as it arrives and records its expiry.
async fn log_certificates(mut bundles: watch::Receiver<SharedBundle>, metrics: AgentMetrics) {
    while bundles.changed().await.is_ok() {
        let Some(bundle) = bundles.borrow_and_update().clone() else {
            continue;
        };
        metrics.cert_expires(bundle.not_after);
        let left = bundle.seconds_left(std::time::SystemTime::now());
        info!(
            identity = %bundle.identity,
            serial = bundle.serial_hex,
            expires_in_s = left,
            "workload certificate"
        );
    }
}
