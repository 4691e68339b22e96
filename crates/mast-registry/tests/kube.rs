//! The Kubernetes source against the Kubernetes API emulator (mast-test-support's
//! `kube` module), and the emulator itself against kube-rs: list, watch with
//! resourceVersions, server-side apply, the status subresource, a dropped watch resumed
//! without losing an event, 410 Gone followed by a re-list that never empties the store,
//! an invalid VirtualService reported while the others serve, a CRD installed late, and
//! analyzer results written to status by the one writer holding the Lease.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::discovery::Discovery;
use kube::{Client, Config};
use mast_registry::kube::status::{LeaseConfig, Messages, StatusWriter, ValidationMessage};
use mast_registry::{ConfigStore, KubeOptions, KubeSource, KubeSourceHandle, StoreState};
use mast_test_support::kube::KubeEmulator;
use serde_json::{Value, json};

/// Longest wait for the store to show a change.
const WAIT: Duration = Duration::from_secs(10);

fn client(emulator: &KubeEmulator) -> Client {
    Client::try_from(Config::new(emulator.url().parse().unwrap())).unwrap()
}

fn vs(name: &str, host: &str, weight: i64) -> Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"hosts": [host], "http": [{"route": [{"destination": {"host": host}, "weight": weight}]}]}})
}

fn pod(name: &str, ip: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]},
        "status": {"phase": "Running", "podIP": ip}})
}

fn service() -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}})
}

async fn start(emulator: &KubeEmulator, store: &ConfigStore) -> KubeSourceHandle {
    let opts = KubeOptions {
        rediscover: Duration::from_millis(200),
        ..KubeOptions::default()
    };
    let handle = KubeSource::start(client(emulator), store.clone(), opts)
        .await
        .unwrap();
    assert!(
        handle.wait_synced(WAIT).await,
        "not synced: {:?}",
        handle.pending()
    );
    handle
}

/// Waits until the store's state satisfies `ok`; panics with `what` and the last state.
async fn wait_store(
    store: &ConfigStore,
    what: &str,
    ok: impl Fn(&StoreState) -> bool,
) -> Arc<StoreState> {
    let mut rx = store.subscribe();
    match tokio::time::timeout(WAIT, rx.wait_for(|s| ok(s))).await {
        Ok(Ok(s)) => s.clone(),
        _ => {
            let s = store.current();
            let names: Vec<String> = s
                .resources
                .iter()
                .map(|r| r.reference().to_string())
                .collect();
            panic!(
                "store never showed {what}; it has {names:?}, errors {:?}",
                s.errors().map(ToString::to_string).collect::<Vec<_>>()
            )
        }
    }
}

fn host_of(s: &StoreState, name: &str) -> Option<String> {
    s.get("VirtualService", "default", name)
        .and_then(|r| r.as_virtual_service().map(|v| v.hosts[0].clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_speaks_to_kube_rs() {
    let emulator = KubeEmulator::start().unwrap();
    let client = client(&emulator);
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let vs_kind = discovery
        .groups()
        .find(|g| g.name() == "networking.istio.io")
        .and_then(|g| g.recommended_kind("VirtualService"))
        .expect("VirtualService discovered");
    assert_eq!(vs_kind.0.api_version, "networking.istio.io/v1");

    // Server-side apply creates, then merges; fieldManager is recorded.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    let pp = PatchParams::apply("mast-test").force();
    let created = cms.patch("c", &pp, &Patch::Apply(&cm)).await.unwrap();
    let cm2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"b": "2"}});
    let merged = cms.patch("c", &pp, &Patch::Apply(&cm2)).await.unwrap();
    assert_eq!(merged.data.as_ref().unwrap()["a"], "1");
    assert_eq!(merged.data.as_ref().unwrap()["b"], "2");
    let rv = |c: &ConfigMap| {
        c.metadata
            .resource_version
            .clone()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(rv(&merged) > rv(&created));
    let managers = merged.metadata.managed_fields.unwrap();
    assert_eq!(managers[0].manager.as_deref(), Some("mast-test"));
    // Apply without a field manager is refused as the API server refuses it.
    let err = cms
        .patch("c", &PatchParams::default(), &Patch::Apply(&cm))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("fieldManager"), "{err}");
    // A replace with a stale resourceVersion conflicts.
    let mut stale = created.clone();
    stale.data = None;
    let err = cms
        .replace("c", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409),
        "{err}"
    );

    // Pods: the status is written through the status subresource only.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let p: Pod = serde_json::from_value(pod("p1", "10.0.0.9")).unwrap();
    let made = pods.create(&PostParams::default(), &p).await.unwrap();
    assert!(made.status.is_none(), "create keeps no status");
    let status = json!({"status": {"phase": "Running", "podIP": "10.0.0.9"}});
    let patched = pods
        .patch_status("p1", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(patched.status.unwrap().pod_ip.as_deref(), Some("10.0.0.9"));
    let list = pods.list(&Default::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let list_rv: u64 = list.metadata.resource_version.unwrap().parse().unwrap();
    assert_eq!(list_rv, emulator.resource_version());

    // Watch from the list's resourceVersion: a later change arrives; older history is 410.
    let stream = pods
        .watch(&WatchParams::default().timeout(5), &list_rv.to_string())
        .await
        .unwrap();
    let mut stream = std::pin::pin!(stream);
    emulator.put(pod("p2", "10.0.0.10")).unwrap();
    let event = tokio::time::timeout(WAIT, stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(&event, WatchEvent::Added(p) if p.metadata.name.as_deref() == Some("p2")),
        "{event:?}"
    );
    emulator.expire_history();
    let stream = pods
        .watch(&WatchParams::default(), &list_rv.to_string())
        .await
        .unwrap();
    let events: Vec<_> = stream.take(1).collect().await;
    assert!(
        matches!(&events[0], Ok(WatchEvent::Error(s)) if s.code == 410),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_lists_then_follows_changes() {
    let emulator = KubeEmulator::start().unwrap();
    emulator.put(service()).unwrap();
    emulator.put(pod("web-1", "10.0.0.1")).unwrap();
    emulator.put(vs("a", "web", 100)).unwrap();
    let store = ConfigStore::new();
    let _source = start(&emulator, &store).await;
    let s = store.current();
    assert!(s.get("Service", "default", "web").is_some());
    assert!(s.get("Pod", "default", "web-1").is_some());
    assert_eq!(host_of(&s, "a").as_deref(), Some("web"));
    assert!(s.get("Namespace", "", "kube-system").is_some());
    assert!(
        store
            .files()
            .contains(&"k8s/VirtualService/default/a".to_owned())
    );

    // Through the API as a user would (kubectl apply), then as the cluster would.
    let v1beta1 = kube::discovery::ApiResource {
        group: "networking.istio.io".into(),
        version: "v1beta1".into(),
        api_version: "networking.istio.io/v1beta1".into(),
        kind: "VirtualService".into(),
        plural: "virtualservices".into(),
    };
    let vss: Api<DynamicObject> = Api::namespaced_with(client(&emulator), "default", &v1beta1);
    let mut b = vs("b", "other", 100);
    b["apiVersion"] = json!("networking.istio.io/v1beta1");
    vss.patch("b", &PatchParams::apply("kubectl"), &Patch::Apply(&b))
        .await
        .unwrap();
    wait_store(&store, "VirtualService b", |s| {
        host_of(s, "b").as_deref() == Some("other")
    })
    .await;
    emulator.put(vs("a", "web2", 100)).unwrap();
    wait_store(&store, "VirtualService a modified", |s| {
        host_of(s, "a").as_deref() == Some("web2")
    })
    .await;
    emulator
        .delete("networking.istio.io/v1", "VirtualService", "default", "a")
        .unwrap();
    emulator.delete("v1", "Pod", "default", "web-1").unwrap();
    let s = wait_store(&store, "a and web-1 deleted", |s| {
        host_of(s, "a").is_none() && s.get("Pod", "default", "web-1").is_none()
    })
    .await;
    assert!(host_of(&s, "b").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_watch_resumes_without_losing_an_event() {
    let emulator = KubeEmulator::start().unwrap();
    emulator.put(vs("a", "web", 100)).unwrap();
    let store = ConfigStore::new();
    let _source = start(&emulator, &store).await;
    let lists_before = lists_of(&emulator, "virtualservices");
    emulator.hold_watches(true);
    emulator.drop_watches();
    // Changed while no watch is open: the resumed watch replays them from history.
    emulator.put(vs("b", "web", 100)).unwrap();
    emulator.put(vs("a", "changed", 100)).unwrap();
    emulator.hold_watches(false);
    wait_store(&store, "b added and a changed", |s| {
        host_of(s, "b").is_some() && host_of(s, "a").as_deref() == Some("changed")
    })
    .await;
    assert_eq!(
        lists_of(&emulator, "virtualservices"),
        lists_before,
        "resumed without a re-list"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_relists_without_emptying_the_store() {
    let emulator = KubeEmulator::start().unwrap();
    emulator.put(vs("keep", "web", 100)).unwrap();
    emulator.put(vs("old", "web", 100)).unwrap();
    let store = ConfigStore::new();
    let _source = start(&emulator, &store).await;
    // Record every state from now on: "keep" must be in each.
    let mut rx = store.subscribe();
    let watcher = tokio::spawn(async move {
        let mut seen = Vec::new();
        while rx.changed().await.is_ok() {
            let s = rx.borrow_and_update().clone();
            seen.push(host_of(&s, "keep").is_some());
            if host_of(&s, "new").is_some() && host_of(&s, "old").is_none() {
                return seen;
            }
        }
        seen
    });
    let lists_before = lists_of(&emulator, "virtualservices");
    emulator.hold_watches(true);
    emulator.drop_watches();
    emulator
        .delete("networking.istio.io/v1", "VirtualService", "default", "old")
        .unwrap();
    emulator.put(vs("new", "web", 100)).unwrap();
    emulator.expire_history();
    emulator.hold_watches(false);
    let seen = tokio::time::timeout(WAIT, watcher)
        .await
        .expect("re-list within the wait")
        .unwrap();
    assert!(
        !seen.is_empty() && seen.iter().all(|k| *k),
        "a state without \"keep\": {seen:?}"
    );
    assert!(
        lists_of(&emulator, "virtualservices") > lists_before,
        "410 led to a re-list"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_virtual_service_is_reported_and_the_rest_serves() {
    let emulator = KubeEmulator::start().unwrap();
    emulator.put(vs("good", "web", 100)).unwrap();
    emulator.put(vs("bad", "web", -1)).unwrap();
    let store = ConfigStore::new();
    let _source = start(&emulator, &store).await;
    let s = wait_store(&store, "good", |s| host_of(s, "good").is_some()).await;
    assert!(host_of(&s, "bad").is_none());
    let errors: Vec<String> = s.errors().map(ToString::to_string).collect();
    let expected = "k8s/VirtualService/default/bad";
    let e = errors
        .iter()
        .find(|e| e.contains(expected))
        .unwrap_or_else(|| panic!("{errors:?}"));
    assert!(e.contains("VirtualService default/bad: spec.http[0].route[0].weight: weight -1 must not be negative"), "{e}");
    // Fixing it serves it.
    emulator.put(vs("bad", "web", 50)).unwrap();
    let s = wait_store(&store, "bad fixed", |s| host_of(s, "bad").is_some()).await;
    assert_eq!(s.errors().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_installed_later_are_watched_and_slices_become_endpoints() {
    let emulator = KubeEmulator::start_bare().unwrap();
    emulator.put(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "ext-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "ext"}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["10.9.0.1"], "conditions": {"ready": true}}],
        "ports": [{"name": "tcp", "port": 9000, "protocol": "TCP"}]}))
        .unwrap();
    let store = ConfigStore::new();
    let _source = start(&emulator, &store).await;
    let s = store.current();
    let eps = s
        .get("Endpoints", "default", "ext")
        .and_then(|r| r.as_endpoints().cloned())
        .expect("Endpoints from the slice");
    assert_eq!(
        eps.subsets.unwrap()[0].addresses.as_ref().unwrap()[0].ip,
        "10.9.0.1"
    );
    assert!(emulator.put(vs("a", "web", 100)).is_err(), "no CRD yet");
    emulator.put(json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "virtualservices.networking.istio.io"},
        "spec": {"group": "networking.istio.io", "scope": "Namespaced",
            "names": {"plural": "virtualservices", "kind": "VirtualService"},
            "versions": [{"name": "v1beta1", "served": true, "storage": false},
                         {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}}]}}))
        .unwrap();
    emulator.put(vs("a", "web", 100)).unwrap();
    wait_store(&store, "VirtualService after its CRD", |s| {
        host_of(s, "a").is_some()
    })
    .await;
}

fn lists_of(emulator: &KubeEmulator, plural: &str) -> usize {
    emulator
        .requests()
        .iter()
        .filter(|r| r.is_list(plural))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_holder_alone_writes_analyzer_results_to_status() {
    let emulator = KubeEmulator::start().unwrap();
    emulator.put(vs("a", "web", 100)).unwrap();
    let lease = |id: &str| LeaseConfig {
        namespace: "istio-system".into(),
        name: "mast-status".into(),
        identity: id.into(),
        duration: Duration::from_secs(1),
    };
    let first = StatusWriter::new(client(&emulator), lease("mastd-1"));
    let second = StatusWriter::new(client(&emulator), lease("mastd-2"));
    let mut messages = Messages::new();
    let key = (
        "VirtualService".to_owned(),
        "default".to_owned(),
        "a".to_owned(),
    );
    messages.insert(
        key,
        vec![ValidationMessage {
            code: "IST0101".into(),
            name: "ReferencedResourceNotFound".into(),
            level: "ERROR".into(),
        }],
    );
    let get_a = || {
        emulator
            .get("networking.istio.io/v1", "VirtualService", "default", "a")
            .unwrap()
    };
    assert_eq!(first.write(&messages).await.unwrap(), Some(1));
    assert_eq!(
        second.write(&messages).await.unwrap(),
        None,
        "only the holder writes"
    );
    let a = get_a();
    let written = &a["status"]["validationMessages"][0];
    assert_eq!(
        written["type"],
        json!({"code": "IST0101", "name": "ReferencedResourceNotFound"})
    );
    assert_eq!(written["level"], "ERROR");
    assert_eq!(a["spec"]["hosts"][0], "web", "the spec is untouched");
    assert_eq!(
        first.write(&messages).await.unwrap(),
        Some(0),
        "nothing changed"
    );
    assert_eq!(
        first.write(&Messages::new()).await.unwrap(),
        Some(1),
        "messages removed"
    );
    assert!(
        get_a()["status"].get("validationMessages").is_none(),
        "{}",
        get_a()
    );

    // The holder stops renewing; once the Lease expires the other takes over.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(second.write(&messages).await.unwrap(), Some(1));
    let held = emulator
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            "istio-system",
            "mast-status",
        )
        .unwrap();
    assert_eq!(held["spec"]["holderIdentity"], "mastd-2");
    assert_eq!(held["spec"]["leaseTransitions"], 1);
    assert_eq!(first.write(&messages).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_and_gateway_api_gateways_of_one_name_both_serve() {
    // Istio's docs name both `bookinfo-gateway`: neither may hide the other.
    let emulator = KubeEmulator::start_with_gateway_api().unwrap();
    emulator
        .put(json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": {"name": "bookinfo-gateway", "namespace": "default"},
            "spec": {"selector": {"istio": "ingressgateway"},
                "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}}))
        .unwrap();
    emulator
        .put(
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "bookinfo-gateway", "namespace": "default"},
            "spec": {"gatewayClassName": "istio",
                "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}),
        )
        .unwrap();
    let store = ConfigStore::new();
    let _source = start(&emulator, &store).await;
    let s = wait_store(&store, "both gateways", |s| {
        s.resources
            .iter()
            .filter(|r| r.kind == "Gateway" && r.name() == "bookinfo-gateway")
            .count()
            == 2
    })
    .await;
    assert_eq!(s.errors().count(), 0);
}
