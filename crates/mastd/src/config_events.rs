//! istiod's configuration event counter, `pilot_k8s_cfg_events{type, event}`, which Istio's
//! mesh dashboard reads for its "Virtual Services", "Destination Rules", … panels (adds minus
//! deletes): every published store state is compared with the previous one by (kind,
//! namespace, name), counting `add` for a resource that appears and `delete` for one that
//! goes (the kind as `type`, e.g. `VirtualService`). Also `istio_build{component="pilot",
//! tag}`, the "Istio Components by Version" panel's series.
//!
//! The events are a monotonic gauge, not a prometheus-client counter: a counter is always
//! exposed with a `_total` suffix, and istiod's series is named `pilot_k8s_cfg_events`.

use std::collections::BTreeSet;
use std::sync::Arc;

use mast_registry::{ConfigStore, StoreState};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// `pilot_k8s_cfg_events` labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EventLabels {
    r#type: String,
    event: &'static str,
}

/// `istio_build` labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    component: &'static str,
    tag: &'static str,
}

type Key = (String, String, String);

fn keys(state: &StoreState) -> BTreeSet<Key> {
    state
        .resources
        .iter()
        .map(|r| {
            (
                r.kind.clone(),
                r.namespace().to_owned(),
                r.name().to_owned(),
            )
        })
        .collect()
}

/// Registers both metrics and starts counting the store's changes.
pub fn start(store: &ConfigStore, registry: &mut Registry) {
    let events = Family::<EventLabels, Gauge>::default();
    registry.register(
        "pilot_k8s_cfg_events",
        "Configuration events (add, delete) per kind",
        events.clone(),
    );
    let build = Family::<BuildLabels, Gauge>::default();
    build
        .get_or_create(&BuildLabels {
            component: "pilot",
            tag: mast_core::VERSION,
        })
        .set(1);
    registry.register("istio_build", "Istio component build info", build);
    let mut rx = store.subscribe();
    tokio::spawn(async move {
        let mut seen = BTreeSet::new();
        loop {
            let state: Arc<StoreState> = rx.borrow_and_update().clone();
            let now = keys(&state);
            count(&events, &seen, &now);
            seen = now;
            if rx.changed().await.is_err() {
                return;
            }
        }
    });
}

fn count(events: &Family<EventLabels, Gauge>, before: &BTreeSet<Key>, after: &BTreeSet<Key>) {
    let inc = |kind: &str, event| {
        events
            .get_or_create(&EventLabels {
                r#type: kind.to_owned(),
                event,
            })
            .inc();
    };
    for (kind, _, _) in after.difference(before) {
        inc(kind, "add");
    }
    for (kind, _, _) in before.difference(after) {
        inc(kind, "delete");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: &str, name: &str) -> Key {
        (kind.into(), "default".into(), name.into())
    }

    #[test]
    fn adds_and_deletes_per_kind() {
        let events = Family::<EventLabels, Gauge>::default();
        let first = BTreeSet::from([key("VirtualService", "a"), key("Gateway", "g")]);
        count(&events, &BTreeSet::new(), &first);
        let second = BTreeSet::from([key("VirtualService", "a"), key("VirtualService", "b")]);
        count(&events, &first, &second);
        let get = |t: &str, e| {
            events
                .get_or_create(&EventLabels {
                    r#type: t.into(),
                    event: e,
                })
                .get()
        };
        assert_eq!(get("VirtualService", "add"), 2);
        assert_eq!(get("VirtualService", "delete"), 0);
        assert_eq!(get("Gateway", "add"), 1);
        assert_eq!(get("Gateway", "delete"), 1);
    }
}
