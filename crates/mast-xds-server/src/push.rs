//! The push queue: watches the snapshot channel, debounces bursts (quiet period, bounded by
//! a maximum delay), classifies each change with the [`Generator`] and publishes one
//! [`PushEvent`] that every stream turns into the pushes its proxy needs.

use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeSet;

use mast_core::Hostname;
use mast_model::{Change, MeshSnapshot};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::generator::Generator;

/// How long to wait before pushing a snapshot change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Debounce {
    /// Push once no new snapshot has arrived for this long (default 100 ms).
    pub quiet: Duration,
    /// …but never wait longer than this after the first change of a burst (default 1 s).
    pub max: Duration,
}

impl Default for Debounce {
    fn default() -> Self {
        Self {
            quiet: Duration::from_millis(100),
            max: Duration::from_secs(1),
        }
    }
}

/// One debounced snapshot change, as the streams see it.
#[derive(Debug)]
pub(crate) struct PushEvent {
    /// Increases by one per event.
    pub seq: u64,
    /// The snapshot to generate from.
    pub snapshot: Arc<MeshSnapshot>,
    /// The `seq` of the latest event that needed every type regenerated.
    pub last_full_seq: u64,
    /// The `seq` of the latest event that changed listeners and routes.
    pub last_routes_seq: u64,
    /// The `seq` of the latest event that changed anything (endpoints included).
    pub last_change_seq: u64,
    /// Snapshot version at which clusters (and types other than the four) last changed.
    pub full_version: u64,
    /// Snapshot version at which listeners and routes last changed.
    pub routes_version: u64,
    /// Snapshot version at which endpoints last changed.
    pub eds_version: u64,
    /// When the first snapshot of this event's burst arrived (for push latency).
    pub changed_at: Instant,
    /// When endpoints at `last_change_seq` differ from those at an earlier event only in
    /// some services: that event's `seq` and the services' hosts (EDS can then be
    /// regenerated for those alone).
    pub eds_delta: Option<(u64, Arc<BTreeSet<Hostname>>)>,
}

impl PushEvent {
    /// The event a server starts with.
    pub(crate) fn initial(snapshot: Arc<MeshSnapshot>) -> Self {
        let version = snapshot.version;
        Self {
            seq: 0,
            snapshot,
            last_full_seq: 0,
            last_routes_seq: 0,
            last_change_seq: 0,
            full_version: version,
            routes_version: version,
            eds_version: version,
            changed_at: Instant::now(),
            eds_delta: None,
        }
    }

    /// The event after `self` for `snapshot`, classified as `change`.
    pub(crate) fn next(
        &self,
        snapshot: Arc<MeshSnapshot>,
        change: &Change,
        changed_at: Instant,
    ) -> Self {
        let seq = self.seq + 1;
        let version = snapshot.version;
        let mut next = Self {
            seq,
            snapshot,
            last_full_seq: self.last_full_seq,
            last_routes_seq: self.last_routes_seq,
            last_change_seq: self.last_change_seq,
            full_version: self.full_version,
            routes_version: self.routes_version,
            eds_version: self.eds_version,
            changed_at,
            eds_delta: self.eds_delta.clone(),
        };
        match change {
            Change::None => {}
            Change::EndpointsOnly(hosts) => {
                next.eds_delta = Some((self.last_change_seq, Arc::new(hosts.clone())));
                next.last_change_seq = seq;
                next.eds_version = version;
            }
            Change::RoutesOnly => {
                next.last_routes_seq = seq;
                next.routes_version = version;
            }
            Change::Full => {
                next.eds_delta = None;
                next.last_full_seq = seq;
                next.last_routes_seq = seq;
                next.last_change_seq = seq;
                next.full_version = version;
                next.routes_version = version;
                next.eds_version = version;
            }
        }
        next
    }

    /// The version string of `type_url` at this event.
    pub(crate) fn type_version(&self, type_url: &str) -> String {
        match type_url {
            mast_xds::ENDPOINT_TYPE => self.eds_version,
            mast_xds::LISTENER_TYPE | mast_xds::ROUTE_TYPE => self.routes_version,
            _ => self.full_version,
        }
        .to_string()
    }

    /// The `seq` of the latest event that changed `type_url`'s inputs.
    pub(crate) fn type_seq(&self, type_url: &str) -> u64 {
        match type_url {
            mast_xds::ENDPOINT_TYPE => self.last_change_seq,
            mast_xds::LISTENER_TYPE | mast_xds::ROUTE_TYPE => self.last_routes_seq,
            _ => self.last_full_seq,
        }
    }

    /// Whether `type_url` must be regenerated by a stream that last saw event `seen_seq`.
    pub(crate) fn touches(&self, type_url: &str, seen_seq: u64) -> bool {
        self.type_seq(type_url) > seen_seq
    }

    /// Whether, since event `seen_seq` (whose snapshot is `before`'s), endpoints changed at
    /// the address `ip` of a proxy: its inbound ports (and a gateway's listener ports) follow
    /// its own endpoints, so such an endpoint-only change must regenerate its listeners,
    /// routes and clusters too, not only EDS. Conservative (true) when the change is not
    /// known host by host.
    pub(crate) fn own_endpoints_changed(
        &self,
        before: &PushEvent,
        ip: &str,
        seen_seq: u64,
    ) -> bool {
        if self.last_change_seq <= seen_seq {
            return false;
        }
        match &self.eds_delta {
            Some((from, hosts)) if *from <= seen_seq => {
                let at = |s: &MeshSnapshot| {
                    s.services_with_endpoint_at(ip)
                        .any(|svc| hosts.contains(&svc.hostname))
                };
                at(&self.snapshot) || at(&before.snapshot)
            }
            _ => true,
        }
    }
}

/// The pusher task: runs until the snapshot sender is dropped or `closing` turns true.
pub(crate) async fn run_pusher(
    mut snapshots: watch::Receiver<Arc<MeshSnapshot>>,
    events: Arc<watch::Sender<Arc<PushEvent>>>,
    generator: Arc<dyn Generator>,
    debounce: Debounce,
    mut closing: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            biased;
            _ = closing.wait_for(|c| *c) => return,
            changed = snapshots.changed() => if changed.is_err() { return },
        }
        let changed_at = Instant::now();
        let sender_gone = settle(&mut snapshots, debounce, changed_at).await;
        let snapshot = snapshots.borrow_and_update().clone();
        let previous = events.borrow().clone();
        let diff_started = Instant::now();
        let change = if Arc::ptr_eq(&previous.snapshot, &snapshot) {
            Change::None
        } else {
            generator.change(&previous.snapshot, &snapshot)
        };
        tracing::info!(
            version = snapshot.version,
            change = change_kind(&change),
            waited_ms = changed_at.elapsed().as_millis() as u64,
            diff_ms = diff_started.elapsed().as_secs_f64() * 1e3,
            "publishing push"
        );
        events.send_replace(Arc::new(previous.next(snapshot, &change, changed_at)));
        if sender_gone {
            return;
        }
    }
}

/// A short name for a change, for logs.
fn change_kind(change: &Change) -> &'static str {
    match change {
        Change::None => "none",
        Change::EndpointsOnly(_) => "endpoints",
        Change::RoutesOnly => "routes",
        Change::Full => "full",
    }
}

/// Waits until the snapshots have been quiet for `debounce.quiet`, or `debounce.max` has
/// passed since `first`. Returns true when the sender went away.
async fn settle(
    snapshots: &mut watch::Receiver<Arc<MeshSnapshot>>,
    debounce: Debounce,
    first: Instant,
) -> bool {
    let hard_deadline = first + debounce.max;
    let mut last = first;
    loop {
        let deadline = (last + debounce.quiet).min(hard_deadline);
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(deadline) => return false,
            changed = snapshots.changed() => {
                if changed.is_err() {
                    return true;
                }
                last = Instant::now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(version: u64) -> Arc<MeshSnapshot> {
        let mut s = MeshSnapshot::default();
        s.version = version;
        Arc::new(s)
    }

    #[test]
    fn events_track_what_changed() {
        let e0 = PushEvent::initial(snap(1));
        let e1 = e0.next(
            snap(2),
            &Change::EndpointsOnly(Default::default()),
            Instant::now(),
        );
        assert!(e1.touches(mast_xds::ENDPOINT_TYPE, 0));
        assert!(!e1.touches(mast_xds::CLUSTER_TYPE, 0));
        assert_eq!(e1.type_version(mast_xds::ENDPOINT_TYPE), "2");
        assert_eq!(e1.type_version(mast_xds::CLUSTER_TYPE), "1");
        let e2 = e1.next(snap(3), &Change::None, Instant::now());
        // A stream that missed e1 still regenerates EDS at e2.
        assert!(e2.touches(mast_xds::ENDPOINT_TYPE, 0));
        assert!(!e2.touches(mast_xds::ENDPOINT_TYPE, 1));
        let e3 = e2.next(snap(4), &Change::Full, Instant::now());
        assert!(e3.touches(mast_xds::ROUTE_TYPE, 2));
        assert_eq!(e3.type_version(mast_xds::ROUTE_TYPE), "4");
        let e4 = e3.next(snap(5), &Change::RoutesOnly, Instant::now());
        assert!(e4.touches(mast_xds::ROUTE_TYPE, 3));
        assert!(e4.touches(mast_xds::LISTENER_TYPE, 3));
        assert!(!e4.touches(mast_xds::CLUSTER_TYPE, 3));
        assert!(!e4.touches(mast_xds::ENDPOINT_TYPE, 3));
        assert_eq!(e4.type_version(mast_xds::ROUTE_TYPE), "5");
        assert_eq!(e4.type_version(mast_xds::CLUSTER_TYPE), "4");
    }

    fn with_endpoint(version: u64, address: &str) -> Arc<MeshSnapshot> {
        let yaml = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: shop}}\n\
             spec:\n  selector: {{app: web}}\n  ports: [{{name: http, port: 80}}]\n---\n\
             apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n\
             metadata: {{name: web-1, namespace: shop}}\nspec: {{address: {address}, labels: {{app: web}}}}\n"
        );
        let out = mast_config::load_str(&yaml, "test.yaml", &Default::default());
        assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
        Arc::new(MeshSnapshot::build(
            &out.resources,
            mast_model::SnapshotOptions::default(),
            version,
        ))
    }

    #[test]
    fn endpoints_moving_to_or_from_a_proxy_touch_its_own_config() {
        let e0 = PushEvent::initial(with_endpoint(1, "10.0.0.1"));
        let host = Hostname::new_unchecked("web.shop.svc.cluster.local");
        let e1 = e0.next(
            with_endpoint(2, "10.0.0.2"),
            &Change::EndpointsOnly(BTreeSet::from([host])),
            Instant::now(),
        );
        // The endpoint left 10.0.0.1 and arrived at 10.0.0.2: both proxies' inbound change.
        assert!(e1.own_endpoints_changed(&e0, "10.0.0.1", 0));
        assert!(e1.own_endpoints_changed(&e0, "10.0.0.2", 0));
        assert!(!e1.own_endpoints_changed(&e0, "10.0.0.3", 0));
        // Nothing new for a stream that saw e1.
        assert!(!e1.own_endpoints_changed(&e0, "10.0.0.2", 1));
    }
}
