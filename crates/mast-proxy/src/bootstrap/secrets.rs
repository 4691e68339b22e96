//! Starts the workload's secret manager (`--ca-token-file`): it fetches the certificate from
//! the CA and refreshes it at half life; its bundles feed the in-process SDS secrets
//! ([`crate::tls::SecretStore`]) that the TLS contexts read.

use std::sync::Arc;

use mast_ca::manager::{ManagerError, SecretConfig, SecretHandle, SecretManager};

use super::Bootstrap;
use crate::tls::SecretStore;

/// Starts the manager when a token file is given (`None` otherwise: no certificates) and
/// hands its bundles to `store`. Must run inside a Tokio runtime; keep the handle alive.
pub fn start_secret_manager(
    boot: &Bootstrap,
    store: &Arc<SecretStore>,
) -> Result<Option<SecretHandle>, ManagerError> {
    let Some(token) = &boot.ca_token_file else {
        tracing::info!("no --ca-token-file: no workload certificate (TLS chains needing one fail)");
        return Ok(None);
    };
    let sa = boot.spec.service_account.as_deref().unwrap_or_default();
    let config = SecretConfig::new(
        boot.ca_address.clone(),
        token.clone(),
        &boot.spec.namespace,
        sa,
    )
    .with_ttl(boot.cert_ttl)
    .with_ca_root_cert(boot.ca_root_cert.clone());
    let handle = SecretManager::spawn(config)?;
    tracing::info!(identity = %handle.identity(), ca = %boot.ca_address, "secret manager started");
    store.attach(handle.subscribe());
    Ok(Some(handle))
}
