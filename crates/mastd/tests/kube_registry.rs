//! mastd with `--registry kubernetes` against the Kubernetes API emulator: a Service, its
//! Pods and a VirtualService from the "cluster" become the clusters, endpoints and routes
//! a real mast-proxy sidecar is sent (checked on mastd's `/debug/config_dump`), changes
//! in the cluster reach the sidecar, and `/debug/configz` reports an invalid
//! VirtualService by kind, namespace, name and field while the rest is served. Needs
//! `cargo build -p mastd -p mast-proxy`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::net::SocketAddr;
use std::time::Duration;

use mast_test_support::kube::KubeEmulator;
use mast_test_support::{
    MastdOptions, MastdProcess, ProxyKind, ProxyOptions, ProxyProcess, TempDir, http_get_direct,
    wait_for_async,
};
use serde_json::{Value, json};

const CLUSTER: &str = "outbound|80||web.default.svc.cluster.local";

fn pod(name: &str, ip: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 8080, "name": "http"}]}]},
        "status": {"phase": "Running", "podIP": ip}})
}

fn virtual_service(name: &str, timeout: &str, weight: i64) -> Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"hosts": ["web"], "http": [{"timeout": timeout,
            "route": [{"destination": {"host": "web"}, "weight": weight}]}]}})
}

async fn get_json(addr: SocketAddr, path: &str) -> Value {
    match http_get_direct(addr, path, &[]).await {
        Ok(r) if r.status == 200 => serde_json::from_slice(&r.body).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// Waits until mastd's config dump for the client sidecar satisfies `ok`.
async fn wait_dump(monitoring: SocketAddr, what: &str, ok: impl Fn(&str) -> bool) {
    let path = "/debug/config_dump?proxyID=client.default";
    let reached = wait_for_async(
        || async { ok(&get_json(monitoring, path).await.to_string()) },
        Duration::from_secs(15),
    )
    .await;
    let last = get_json(monitoring, path).await.to_string();
    assert!(
        reached,
        "the sidecar was never sent {what}; last dump: {}",
        &last[..last.len().min(3000)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_objects_become_the_sidecars_configuration() {
    let emulator = KubeEmulator::start().unwrap();
    emulator
        .put(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10",
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}))
        .unwrap();
    emulator.put(pod("web-1", "10.0.0.1")).unwrap();
    emulator.put(pod("web-2", "10.0.0.2")).unwrap();
    emulator.put(virtual_service("web", "7s", 100)).unwrap();
    emulator.put(virtual_service("bad", "1s", -1)).unwrap();

    let dir = TempDir::new("mastd-kube").unwrap();
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
    let mastd = MastdProcess::start(&options).await.unwrap();
    let monitoring = mastd.monitoring_addr();

    let configz = get_json(monitoring, "/debug/configz").await;
    let texts: Vec<String> = configz["diagnostics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["text"].as_str().map(str::to_owned))
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("k8s/VirtualService/default/bad")
            && t.contains("VirtualService default/bad: spec.http[0].route[0].weight: weight -1 must not be negative")),
        "{texts:#?}\n{}",
        mastd.log_tail(30)
    );
    assert_eq!(configz["byKind"]["Pod"], 2, "{configz:#}");

    let sidecar = ProxyOptions::new(ProxyKind::Mast, mastd.xds_addr())
        .workload("client", "default")
        .label("app", "client");
    let _proxy = tokio::task::spawn_blocking(move || ProxyProcess::start(sidecar))
        .await
        .unwrap()
        .unwrap();
    wait_dump(
        monitoring,
        "the web cluster, its pods and the 7s route",
        |d| {
            d.contains(CLUSTER)
                && d.contains("10.0.0.1")
                && d.contains("10.0.0.2")
                && d.contains("\"7s\"")
        },
    )
    .await;

    // The cluster changes: a third pod, the route's timeout, a pod gone.
    emulator.put(pod("web-3", "10.0.0.3")).unwrap();
    emulator.put(virtual_service("web", "9s", 100)).unwrap();
    emulator.delete("v1", "Pod", "default", "web-1").unwrap();
    wait_dump(monitoring, "the changed pods and timeout", |d| {
        d.contains("10.0.0.3")
            && !d.contains("10.0.0.1")
            && d.contains("\"9s\"")
            && !d.contains("\"7s\"")
    })
    .await;

    // Analyzer results go back to the resource's status (istiod's status controller): a
    // VirtualService routing to a host no service has gets IST0101.
    emulator
        .put(json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "lost", "namespace": "default"},
            "spec": {"hosts": ["lost"], "http": [{"route": [{"destination": {"host": "nowhere"}}]}]}}))
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let vs = emulator
            .get(
                "networking.istio.io/v1",
                "VirtualService",
                "default",
                "lost",
            )
            .unwrap();
        let codes: Vec<&str> = vs["status"]["validationMessages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|v| v["type"]["code"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        if codes.contains(&"IST0101") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no IST0101 in the VirtualService's status: {}",
            vs["status"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A dropped watch and expired history: mastd re-lists and keeps serving.
    emulator.hold_watches(true);
    emulator.drop_watches();
    emulator.put(pod("web-4", "10.0.0.4")).unwrap();
    emulator.expire_history();
    emulator.hold_watches(false);
    wait_dump(
        monitoring,
        "the pod added while the watches were down",
        |d| d.contains("10.0.0.4") && d.contains("10.0.0.3") && d.contains("\"9s\""),
    )
    .await;
}
