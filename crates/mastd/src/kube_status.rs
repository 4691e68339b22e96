//! Analyzer results written back to the Istio resources that come from Kubernetes
//! (`status.validationMessages`, as istiod's status controller does): after every change of
//! the configuration (debounced), mastd runs the analyzers over it and one replica — the holder
//! of the `mast-status-leader` Lease in its namespace — writes what changed
//! ([`mast_registry::kube::status::StatusWriter`]). The same replica writes the Gateway
//! API objects' status (conditions, listeners, route parents: [`gateway_api`]).
//! `validationMessages` carry Istio's codes only (Mast's own codes, such as the Gateway
//! API analyzer's, are reported by `mastctl analyze`; on Kubernetes the Gateway API status
//! says the same).

mod gateway_api;

use std::time::Duration;

use mast_analyze::Message;
use mast_config::diag::Level;
use mast_registry::ConfigStore;
use mast_registry::kube::status::{LeaseConfig, Messages, StatusWriter, ValidationMessage};

/// The Lease that elects the status writer.
const LEASE: &str = "mast-status-leader";
/// Quiet time before analyzing a burst of changes.
const DEBOUNCE: Duration = Duration::from_secs(1);
/// How soon a failed write is tried again.
const RETRY: Duration = Duration::from_secs(5);

/// Starts writing analyzer results for `store`'s Kubernetes resources (`domain`: the
/// cluster DNS suffix, which shapes the hosts named in Gateway API conditions).
pub fn spawn(client: kube::Client, store: ConfigStore, domain: String) {
    let namespace = std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "mast-system".to_owned());
    let identity = std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("mastd-{}", std::process::id()));
    let lease = LeaseConfig {
        namespace,
        name: LEASE.to_owned(),
        identity,
        duration: Duration::from_secs(30),
    };
    let writer = StatusWriter::new(client.clone(), lease.clone());
    let mut gateways = gateway_api::GatewayApiWriter::new(client, lease);
    tokio::spawn(async move {
        let mut rx = store.subscribe();
        loop {
            let state = rx.borrow_and_update().clone();
            let domain = domain.clone();
            let (found, wanted) = tokio::task::spawn_blocking(move || {
                let found = messages(&mast_analyze::analyze(
                    &state.resources,
                    &[],
                    &mast_analyze::Options::default(),
                ));
                let wanted = gateway_api::wanted(&state.resources, &domain);
                (found, wanted)
            })
            .await
            .unwrap_or_default();
            let failed = report("analyzer status", writer.write(&found).await)
                | report("Gateway API status", gateways.write(wanted).await);
            // A failed write is tried again soon even when nothing changes.
            let changed = if failed {
                tokio::time::timeout(RETRY, rx.changed())
                    .await
                    .unwrap_or(Ok(()))
            } else {
                rx.changed().await
            };
            if changed.is_err() {
                return;
            }
            tokio::time::sleep(DEBOUNCE).await;
        }
    });
}

/// Logs the outcome of a status write; whether it failed.
fn report(what: &str, result: Result<Option<usize>, kube::Error>) -> bool {
    match result {
        Ok(Some(n)) if n > 0 => tracing::info!(objects = n, "wrote {what}"),
        Ok(_) => {}
        Err(e) => {
            tracing::warn!("cannot write {what}: {e}");
            return true;
        }
    }
    false
}

/// Analyzer messages by resource, in Istio's status shape.
fn messages(found: &[Message]) -> Messages {
    let mut out = Messages::new();
    for m in found.iter().filter(|m| m.kind.code.starts_with("IST")) {
        let Some(r) = &m.resource else { continue };
        let level = match m.kind.level {
            Level::Error => "ERROR",
            Level::Warning => "WARNING",
            Level::Info => "INFO",
        };
        out.entry((r.kind.clone(), r.namespace.clone(), r.name.clone()))
            .or_default()
            .push(ValidationMessage {
                code: m.kind.code.to_owned(),
                name: m.kind.name.to_owned(),
                level: level.to_owned(),
            });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_group_by_resource_in_istio_levels() {
        let vs = mast_config::diag::ResourceRef {
            kind: "VirtualService".into(),
            namespace: "default".into(),
            name: "reviews".into(),
        };
        let found = [
            Message::unplaced(
                mast_analyze::messages::REFERENCED_RESOURCE_NOT_FOUND,
                vs.clone(),
                "gateway missing",
            ),
            Message::unplaced(
                mast_analyze::messages::REFERENCED_RESOURCE_NOT_FOUND,
                vs,
                "host missing",
            ),
        ];
        let out = messages(&found);
        let list = &out[&(
            "VirtualService".to_owned(),
            "default".to_owned(),
            "reviews".to_owned(),
        )];
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].code, "IST0101");
        assert_eq!(list[0].level, "ERROR");
    }
}
