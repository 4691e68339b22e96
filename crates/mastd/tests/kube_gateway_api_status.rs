//! mastd with `--registry kubernetes` writes the Gateway API status to the API emulator,
//! as istiod does: the GatewayClass `istio` is Accepted, the Gateway Accepted and
//! Programmed with a listener's `attachedRoutes`, an HTTPRoute's `status.parents` say
//! Accepted/ResolvedRefs (BackendNotFound for a missing Service); conditions carry
//! `observedGeneration` and a `lastTransitionTime` kept while the status stays; nothing is
//! rewritten when nothing changed. Needs `cargo build -p mastd`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::time::{Duration, Instant};

use mast_test_support::kube::KubeEmulator;
use mast_test_support::{MastdOptions, MastdProcess, TempDir};
use serde_json::{Value, json};

const V1: &str = "gateway.networking.k8s.io/v1";

fn route(name: &str, section: &str, backend: &str, path: &str) -> Value {
    json!({"apiVersion": V1, "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"parentRefs": [{"name": "gw", "sectionName": section}],
            "hostnames": ["web.example.com"],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": path}}],
                "backendRefs": [{"name": backend, "port": 80}]}]}})
}

fn put_cluster(emulator: &KubeEmulator) {
    emulator
        .put(
            json!({"apiVersion": V1, "kind": "GatewayClass", "metadata": {"name": "istio"},
            "spec": {"controllerName": "istio.io/gateway-controller"}}),
        )
        .unwrap();
    emulator
        .put(json!({"apiVersion": V1, "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "default"},
            "spec": {"gatewayClassName": "istio", "listeners": [
                {"name": "http", "port": 80, "protocol": "HTTP"},
                {"name": "other", "port": 8080, "protocol": "HTTP"}]}}))
        .unwrap();
    emulator
        .put(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10",
                "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}))
        .unwrap();
    emulator.put(route("web", "http", "web", "/")).unwrap();
    emulator
        .put(route("lost", "other", "nowhere", "/lost"))
        .unwrap();
}

async fn start_mastd(emulator: &KubeEmulator, dir: &TempDir) -> MastdProcess {
    let (config, kubeconfig) = (dir.join("config"), dir.join("kubeconfig"));
    std::fs::create_dir_all(&config).unwrap();
    emulator.write_kubeconfig(&kubeconfig).unwrap();
    let mut options = MastdOptions::new(&config).unwrap();
    options.extra_args.extend([
        "--registry".to_owned(),
        "kubernetes".to_owned(),
        "--kubeconfig".to_owned(),
        kubeconfig.display().to_string(),
    ]);
    MastdProcess::start(&options).await.unwrap()
}

/// The condition `kind` of a conditions list.
fn condition<'a>(list: &'a Value, kind: &str) -> &'a Value {
    list.as_array()
        .and_then(|l| l.iter().find(|c| c["type"] == kind))
        .unwrap_or(&Value::Null)
}

/// `(status, reason)` of condition `kind`.
fn state(list: &Value, kind: &str) -> (String, String) {
    let c = condition(list, kind);
    let s = |k: &str| c[k].as_str().unwrap_or("").to_owned();
    (s("status"), s("reason"))
}

/// Waits until the object's status satisfies `ok`; returns the object.
async fn wait_status(
    emulator: &KubeEmulator,
    mastd: &MastdProcess,
    (kind, ns, name): (&str, &str, &str),
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let object = emulator.get(V1, kind, ns, name).unwrap();
        if ok(&object["status"]) {
            return object;
        }
        assert!(
            Instant::now() < deadline,
            "{kind} {ns}/{name}: never {what}; status: {:#}\n{}",
            object["status"],
            mastd.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn status_patches(emulator: &KubeEmulator) -> usize {
    emulator
        .requests()
        .iter()
        .filter(|r| {
            r.method == "PATCH"
                && r.path.contains("gateway.networking.k8s.io")
                && r.path.ends_with("/status")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_status_is_written_by_mastd() {
    let emulator = KubeEmulator::start_with_gateway_api().unwrap();
    put_cluster(&emulator);
    let dir = TempDir::new("mastd-gw-status").unwrap();
    let mastd = start_mastd(&emulator, &dir).await;

    let class = wait_status(
        &emulator,
        &mastd,
        ("GatewayClass", "", "istio"),
        "Accepted",
        |s| state(&s["conditions"], "Accepted").0 == "True",
    )
    .await;
    assert_eq!(class["status"]["conditions"][0]["observedGeneration"], 1);

    let web = wait_status(
        &emulator,
        &mastd,
        ("HTTPRoute", "default", "web"),
        "Accepted and ResolvedRefs",
        |s| {
            let c = &s["parents"][0]["conditions"];
            state(c, "Accepted").0 == "True" && state(c, "ResolvedRefs").0 == "True"
        },
    )
    .await;
    let parent = &web["status"]["parents"][0];
    assert_eq!(parent["controllerName"], "istio.io/gateway-controller");
    assert_eq!(parent["parentRef"]["name"], "gw");
    let accepted = condition(&parent["conditions"], "Accepted").clone();
    assert_eq!(accepted["observedGeneration"], 1, "{accepted:#}");
    assert!(
        accepted["lastTransitionTime"]
            .as_str()
            .is_some_and(|t| t.len() == 20 && t.ends_with('Z')),
        "{accepted:#}"
    );

    wait_status(
        &emulator,
        &mastd,
        ("HTTPRoute", "default", "lost"),
        "ResolvedRefs=False BackendNotFound",
        |s| {
            let c = &s["parents"][0]["conditions"];
            state(c, "ResolvedRefs") == ("False".into(), "BackendNotFound".into())
        },
    )
    .await;

    let gw = wait_status(
        &emulator,
        &mastd,
        ("Gateway", "default", "gw"),
        "Accepted and Programmed",
        |s| {
            state(&s["conditions"], "Accepted").0 == "True"
                && state(&s["conditions"], "Programmed").0 == "True"
        },
    )
    .await;
    let listeners = gw["status"]["listeners"].as_array().cloned().unwrap();
    let http = listeners.iter().find(|l| l["name"] == "http").unwrap();
    assert_eq!(http["attachedRoutes"], 1, "{http:#}");
    assert_eq!(http["supportedKinds"][0]["kind"], "HTTPRoute", "{http:#}");
    assert_eq!(state(&http["conditions"], "Programmed").0, "True");

    unchanged_status_is_not_rewritten(&emulator, &mastd).await;
    spec_change_updates_the_generation_only(&emulator, &mastd, &accepted).await;
    fixes_and_detachments_are_written(&emulator, &mastd).await;
}

/// The missing Service appears: ResolvedRefs turns True. The route then moves to a Gateway
/// of another class: Mast's `parents` entry goes, another controller's stays.
async fn fixes_and_detachments_are_written(emulator: &KubeEmulator, mastd: &MastdProcess) {
    emulator
        .put(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "nowhere", "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 80}]}}))
        .unwrap();
    wait_status(
        emulator,
        mastd,
        ("HTTPRoute", "default", "lost"),
        "ResolvedRefs=True once the Service exists",
        |s| state(&s["parents"][0]["conditions"], "ResolvedRefs").0 == "True",
    )
    .await;

    emulator
        .put(json!({"apiVersion": V1, "kind": "Gateway",
            "metadata": {"name": "foreign", "namespace": "default"},
            "spec": {"gatewayClassName": "other", "listeners": [
                {"name": "http", "port": 80, "protocol": "HTTP"}]}}))
        .unwrap();
    let mut moved = emulator.get(V1, "HTTPRoute", "default", "lost").unwrap();
    moved["spec"]["parentRefs"] = json!([{"name": "foreign"}]);
    moved["status"]["parents"].as_array_mut().unwrap().push(
        json!({"parentRef": {"name": "foreign"}, "controllerName": "example.com/other",
            "conditions": []}),
    );
    emulator.put(moved).unwrap();
    let lost = wait_status(
        emulator,
        mastd,
        ("HTTPRoute", "default", "lost"),
        "without Mast's parent entry",
        |s| s["parents"].as_array().is_some_and(|p| p.len() == 1),
    )
    .await;
    assert_eq!(
        lost["status"]["parents"][0]["controllerName"],
        "example.com/other"
    );
    let gw = emulator.get(V1, "Gateway", "default", "foreign").unwrap();
    assert!(gw["status"].is_null(), "another class's Gateway: {gw:#}");
}

/// A change elsewhere in the cluster makes mastd look again, and write nothing.
async fn unchanged_status_is_not_rewritten(emulator: &KubeEmulator, mastd: &MastdProcess) {
    // Let the writes the first burst of watch events caused settle.
    let mut before = status_patches(emulator);
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = status_patches(emulator);
        if now == before {
            break;
        }
        before = now;
    }
    let version =
        emulator.get(V1, "HTTPRoute", "default", "web").unwrap()["metadata"]["resourceVersion"]
            .clone();
    emulator
        .put(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "unrelated", "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 80}]}}))
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        status_patches(emulator),
        before,
        "status rewritten without a change\n{}",
        mastd.log_tail(20)
    );
    let after = emulator.get(V1, "HTTPRoute", "default", "web").unwrap();
    assert_eq!(after["metadata"]["resourceVersion"], version);
}

/// A spec edit bumps `metadata.generation`: the conditions follow it, and the Accepted
/// condition, still True, keeps its transition time.
async fn spec_change_updates_the_generation_only(
    emulator: &KubeEmulator,
    mastd: &MastdProcess,
    accepted: &Value,
) {
    // Edited as `kubectl apply` would: the stored status stays (a test `put` replaces it).
    let mut edited = emulator.get(V1, "HTTPRoute", "default", "web").unwrap();
    edited["spec"] = route("web", "http", "web", "/v2")["spec"].clone();
    emulator.put(edited).unwrap();
    let web = wait_status(
        emulator,
        mastd,
        ("HTTPRoute", "default", "web"),
        "observedGeneration 2",
        |s| condition(&s["parents"][0]["conditions"], "Accepted")["observedGeneration"] == 2,
    )
    .await;
    let now = condition(&web["status"]["parents"][0]["conditions"], "Accepted");
    assert_eq!(now["lastTransitionTime"], accepted["lastTransitionTime"]);
    assert_eq!(now["status"], "True");
}
