//! Sharing between proxies: proxies with the same share key get one generation of the
//! shared part per push (however many connect), merged with their own resources; and
//! endpoint pushes carry only the assignments that changed.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use mast_core::Hostname;
use mast_model::{Change, MeshSnapshot, ProxyNode};
use mast_xds::{
    CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, NamedResource, Part, ROUTE_TYPE, ShareKey,
};
use mast_xds_server::Generator;
use parking_lot::Mutex;

use crate::common::*;

/// Shares everything but one inbound cluster per proxy; counts shared generations.
struct SharingGen {
    shared_calls: Mutex<HashMap<(u64, String), usize>>,
    /// (version, hosts) of each targeted endpoint generation.
    targeted: Mutex<Vec<(u64, Vec<String>)>>,
    change: Mutex<Change>,
}

impl SharingGen {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            shared_calls: Mutex::new(HashMap::new()),
            targeted: Mutex::new(Vec::new()),
            change: Mutex::new(Change::Full),
        })
    }

    fn calls(&self, version: u64, type_url: &str) -> usize {
        let calls = self.shared_calls.lock();
        calls
            .get(&(version, type_url.to_owned()))
            .copied()
            .unwrap_or(0)
    }
}

/// The shared content at snapshot version `v`: only `svc-b`'s endpoints follow the version.
fn shared(v: u64, type_url: &str) -> Vec<NamedResource> {
    match type_url {
        CLUSTER_TYPE => vec![
            cluster("svc-a", 1),
            cluster("svc-b", 1),
            cluster("svc-c", 1),
        ],
        ENDPOINT_TYPE => vec![
            endpoints("svc-a", 8001),
            endpoints("svc-b", 8000 + v as u16),
            endpoints("svc-c", 8003),
        ],
        LISTENER_TYPE => vec![listener("listener_http", 10000, "local_route")],
        ROUTE_TYPE => vec![route("local_route", "svc-a")],
        _ => vec![],
    }
}

impl Generator for SharingGen {
    fn generate(&self, s: &MeshSnapshot, p: &ProxyNode, t: &str) -> Vec<NamedResource> {
        let mut all = self.generate_part(s, p, t, Part::Shared);
        all.extend(self.generate_part(s, p, t, Part::Own));
        all
    }

    fn share_key(&self, s: &MeshSnapshot, p: &ProxyNode) -> Option<ShareKey> {
        Some(ShareKey::of(s, p))
    }

    fn generate_part(
        &self,
        s: &MeshSnapshot,
        p: &ProxyNode,
        t: &str,
        part: Part,
    ) -> Vec<NamedResource> {
        match part {
            Part::Shared => {
                *self
                    .shared_calls
                    .lock()
                    .entry((s.version, t.to_owned()))
                    .or_default() += 1;
                // Slow enough that streams asking together really overlap.
                std::thread::sleep(Duration::from_millis(20));
                shared(s.version, t)
            }
            Part::Own if t == CLUSTER_TYPE => {
                vec![cluster(&format!("inbound|{}", p.workload), 1)]
            }
            Part::Own => vec![],
        }
    }

    fn generate_shared_endpoints(
        &self,
        s: &MeshSnapshot,
        _p: &ProxyNode,
        hosts: &BTreeSet<Hostname>,
    ) -> Option<Vec<NamedResource>> {
        let names: Vec<String> = hosts.iter().map(ToString::to_string).collect();
        self.targeted.lock().push((s.version, names.clone()));
        let all = shared(s.version, ENDPOINT_TYPE);
        Some(
            all.into_iter()
                .filter(|r| names.contains(&r.name))
                .collect(),
        )
    }

    fn change(&self, _old: &MeshSnapshot, _new: &MeshSnapshot) -> Change {
        self.change.lock().clone()
    }
}

const EDS: [&str; 3] = ["svc-a", "svc-b", "svc-c"];

#[tokio::test]
async fn proxies_of_one_key_share_one_generation_per_push() {
    let generator = SharingGen::new();
    let h = Harness::start(Some(generator.clone()), fast()).await;
    let mut clients = Vec::new();
    for i in 0..6 {
        let mut c = SotwClient::connect(h.addr, &node_id(&format!("w{i}"))).await;
        c.subscribe_all(&EDS, &["local_route"]).await;
        clients.push(c);
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let got = c.sync(4).await;
        let want = [&format!("inbound|w{i}"), "svc-a", "svc-b", "svc-c"];
        let mut cds = names(&got[CLUSTER_TYPE]);
        cds.sort();
        assert_eq!(cds, want, "shared clusters plus the proxy's own");
        assert_eq!(names(&got[ENDPOINT_TYPE]), EDS);
    }
    for t in TYPES {
        assert_eq!(
            generator.calls(1, t),
            1,
            "{t}: one shared generation for 6 proxies"
        );
    }

    h.publish(2);
    // Only EDS content changed (svc-b): every proxy gets EDS again, nothing else.
    for c in &mut clients {
        let r = c.recv().await;
        assert_eq!(r.type_url, ENDPOINT_TYPE);
        c.ack(&r).await;
    }
    for c in &mut clients {
        c.expect_silence(Duration::from_millis(150)).await;
    }
    for t in TYPES {
        assert_eq!(generator.calls(2, t), 1, "{t}: one shared generation at v2");
    }
}

#[tokio::test]
async fn endpoint_pushes_carry_only_changed_assignments() {
    let generator = SharingGen::new();
    let svc_b = BTreeSet::from([Hostname::new_unchecked("svc-b")]);
    *generator.change.lock() = Change::EndpointsOnly(svc_b);
    let h = Harness::start(Some(generator.clone()), fast()).await;
    let mut c = SotwClient::connect(h.addr, &node_id("eds")).await;
    c.subscribe_all(&EDS, &["local_route"]).await;
    c.sync(4).await;
    h.publish(2);
    let r = c.recv().await;
    assert_eq!(r.type_url, ENDPOINT_TYPE);
    assert_eq!(names(&r), ["svc-b"], "only the changed assignment");
    assert_eq!(r.version_info, "2");
    assert_eq!(
        r.resources[0],
        endpoints("svc-b", 8002).resource,
        "the new assignment"
    );
    c.ack(&r).await;
    // Generated for svc-b alone: the rest of the shared part was reused.
    assert_eq!(generator.calls(2, ENDPOINT_TYPE), 0);
    assert_eq!(*generator.targeted.lock(), [(2, vec!["svc-b".to_owned()])]);
    c.expect_silence(Duration::from_millis(150)).await;
    h.wait_status("EDS v2 acked", |s| {
        s.len() == 1
            && s[0].types[ENDPOINT_TYPE].acked_version.as_deref() == Some("2")
            && s[0].sync_status(ENDPOINT_TYPE) == mast_xds_server::SyncStatus::Synced
    })
    .await;
    // A proxy that connects now gets every assignment it asks for.
    let mut late = SotwClient::connect(h.addr, &node_id("late")).await;
    late.subscribe_all(&EDS, &["local_route"]).await;
    let got = late.sync(4).await;
    assert_eq!(names(&got[ENDPOINT_TYPE]), EDS);
}
