//! The API's JSON as the page reads it: services, workloads, config messages, and the
//! routes and event stream over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mast_model::{MeshSnapshot, SnapshotOptions};
use mast_registry::ConfigStore;
use mast_xds_server::{
    NackRecord, ProxyStatus, ProxySummary, SyncStatus, TypeStatus, XdsProtocol, XdsServer,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::view::View;
use super::{config, services, workloads};
use crate::scrape::traffic::{
    HttpKey, HttpSeries, Origin, Peer, Protocol, ProxyKind, ProxyScrape, Reporter, Traffic,
    TrafficSource,
};

const MESH: &str = "
apiVersion: v1
kind: Service
metadata: {name: nginx-svc, namespace: default}
spec: {selector: {app: nginx}, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: nginx-svc-1, namespace: default}
spec: {selector: {version: v1}, ports: [{name: http, port: 80}, {name: grpc-x, port: 90}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: nginx-svc-vs, namespace: default}
spec:
  hosts: [nginx-svc]
  http:
  - route:
    - destination: {host: nginx-svc-1}
      weight: 90
    - destination: {host: nginx-svc-9}
      weight: 10
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: nginx-1-dr, namespace: default}
spec: {host: nginx-svc-1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: nginx-1, namespace: default}
spec: {address: 10.0.0.1, labels: {app: nginx, version: v1}, ports: {http: 8080}, serviceAccount: nginx}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: nginx-2, namespace: default}
spec: {address: 10.0.0.2, labels: {app: nginx, version: v2}, ports: {http: 8080}}
";

fn store(extra: &[(&str, &str)]) -> ConfigStore {
    let store = ConfigStore::new();
    store.set_file(
        "mesh.yaml",
        mast_config::load_str(MESH, "mesh.yaml", &Default::default()),
    );
    for (file, text) in extra {
        store.set_file(
            *file,
            mast_config::load_str(text, file, &Default::default()),
        );
    }
    store
}

fn snapshot(store: &ConfigStore) -> Arc<MeshSnapshot> {
    Arc::new(MeshSnapshot::build(
        &store.current().resources,
        SnapshotOptions::default(),
        1,
    ))
}

fn peer(workload: &str) -> Peer {
    Peer {
        workload: workload.into(),
        namespace: "default".into(),
        app: "unknown".into(),
        version: "unknown".into(),
    }
}

/// client → nginx-svc → nginx-1: 9 rps, one of which fails.
fn traffic() -> Arc<Traffic> {
    let key = |code: &str| HttpKey {
        reporter: Reporter::Destination,
        origin: Origin::Istio,
        source: peer("client"),
        destination: peer("nginx-1"),
        service: "nginx-svc.default.svc.cluster.local".into(),
        subset: String::new(),
        protocol: Protocol::Http,
        response_code: code.into(),
        response_flags: "-".into(),
        mtls: "mutual_tls".into(),
    };
    let http = vec![
        HttpSeries {
            key: key("200"),
            rps: 8.0,
            latency: Vec::new(),
        },
        HttpSeries {
            key: key("503"),
            rps: 1.0,
            latency: Vec::new(),
        },
    ];
    let proxies = vec![ProxyScrape {
        node_id: "sidecar~10.0.0.1~nginx-1.default~default.svc.cluster.local".into(),
        workload: "nginx-1".into(),
        namespace: "default".into(),
        kind: Some(ProxyKind::MastProxy),
        error: None,
    }];
    Arc::new(Traffic {
        http,
        proxies,
        ..Traffic::empty(TrafficSource::Proxies, 30)
    })
}

fn proxy_status(workload: &str, version: &str) -> ProxyStatus {
    let mut types = BTreeMap::new();
    let synced = TypeStatus {
        status: SyncStatus::Synced,
        ..TypeStatus::default()
    };
    types.insert(
        "type.googleapis.com/envoy.config.cluster.v3.Cluster".to_owned(),
        synced,
    );
    let nack = NackRecord {
        version: "3".into(),
        nonce: "n".into(),
        error: "bad listener".into(),
        at: SystemTime::now(),
    };
    let stale = TypeStatus {
        status: SyncStatus::Stale,
        last_nack: Some(nack),
        ..TypeStatus::default()
    };
    types.insert(
        "type.googleapis.com/envoy.config.listener.v3.Listener".to_owned(),
        stale,
    );
    ProxyStatus {
        node_id: format!("sidecar~10.0.0.1~{workload}.default~default.svc.cluster.local"),
        proxy: ProxySummary {
            node_type: "sidecar".into(),
            ip: "10.0.0.1".into(),
            workload: workload.into(),
            namespace: "default".into(),
            service_account: String::new(),
            labels: BTreeMap::from([("app".to_owned(), workload.to_owned())]),
            cluster_id: "Kubernetes".into(),
            capture_mode: "ports".into(),
            proxy_version: version.into(),
            admin_address: "127.0.0.1:15000".into(),
        },
        protocol: XdsProtocol::Delta,
        connected_since: SystemTime::now(),
        types,
    }
}

#[test]
fn services_have_ports_workloads_rates_config_and_messages() {
    let store = store(&[]);
    let view = View::from_parts(traffic(), snapshot(&store), Vec::new());
    let messages = config::messages(&store.current());
    let list = serde_json::to_value(services::services(&view, &messages)).unwrap();
    let svc = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "nginx-svc")
        .unwrap();
    assert_eq!(svc["namespace"], "default");
    assert_eq!(svc["host"], "nginx-svc.default.svc.cluster.local");
    assert_eq!(
        svc["ports"],
        serde_json::json!([{"port": 80, "name": "http", "protocol": "HTTP"}])
    );
    assert_eq!(svc["endpoints"], 2);
    assert_eq!(
        svc["workloads"],
        serde_json::json!(["default/nginx-1", "default/nginx-2"])
    );
    assert_eq!(svc["rps"], 9.0);
    assert!((svc["errorRate"].as_f64().unwrap() - 1.0 / 9.0).abs() < 1e-9);
    assert_eq!(svc["health"], "degraded");
    assert_eq!(
        svc["config"],
        serde_json::json!([{"kind": "VirtualService", "namespace": "default", "name": "nginx-svc-vs"}])
    );
    // About its VirtualService: IST0101 (nginx-svc-9 does not exist) and IST0112
    // (nginx-svc-1 has two ports and the destination names none).
    assert_eq!(svc["messages"], 2, "{messages:#?}");
    let one = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "nginx-svc-1")
        .unwrap();
    assert_eq!(one["config"][0]["kind"], "DestinationRule");
    assert_eq!(one["ports"][1]["protocol"], "GRPC");
    assert_eq!(
        (one["health"].as_str(), one["rps"].as_f64()),
        (Some("idle"), Some(0.0))
    );
}

#[test]
fn config_lists_resources_and_messages_with_places() {
    let store = store(&[(
        "broken.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: [oops\n",
    )]);
    let body = serde_json::to_value(config::config(&store.current())).unwrap();
    assert_eq!(body["generation"], 2);
    let vs = body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "VirtualService")
        .unwrap();
    assert_eq!(vs["apiVersion"], "networking.istio.io/v1");
    assert_eq!(
        (vs["namespace"].as_str(), vs["name"].as_str()),
        (Some("default"), Some("nginx-svc-vs"))
    );
    assert!(
        vs["origin"].as_str().unwrap().starts_with("mesh.yaml:"),
        "{vs}"
    );
    let msgs = body["messages"].as_array().unwrap();
    let broken = msgs
        .iter()
        .find(|m| {
            m["origin"]
                .as_str()
                .is_some_and(|o| o.starts_with("broken.yaml"))
        })
        .unwrap();
    assert_eq!(
        (broken["level"].as_str(), broken["code"].as_str()),
        (Some("Error"), Some("IST0106"))
    );
    let missing = msgs.iter().find(|m| m["code"] == "IST0101").unwrap();
    assert_eq!(missing["resource"], "VirtualService default/nginx-svc-vs");
    assert!(
        missing["message"].as_str().unwrap().contains("nginx-svc-9"),
        "{missing}"
    );
    assert!(
        missing["origin"]
            .as_str()
            .unwrap()
            .starts_with("mesh.yaml:")
    );
    for key in ["code", "level", "message", "resource", "origin", "field"] {
        assert!(missing.get(key).is_some(), "no {key}");
    }
    assert_eq!(msgs[0]["level"], "Error", "errors first");
}

#[test]
fn workloads_have_proxies_sync_and_rates() {
    let store = store(&[]);
    let status = vec![
        proxy_status("nginx-1", mast_core::VERSION),
        proxy_status("client", "1.40.0"),
    ];
    let view = View::from_parts(traffic(), snapshot(&store), status);
    let list = serde_json::to_value(workloads::workloads(&view)).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["client", "nginx-1", "nginx-2"]);
    let n1 = &list[1];
    assert_eq!(n1["labels"]["app"], "nginx-1", "the proxy's labels first");
    assert_eq!(n1["serviceAccount"], "nginx");
    assert_eq!(n1["rps"], 9.0);
    assert_eq!(n1["health"], "degraded");
    let p = &n1["proxies"][0];
    assert_eq!(p["proxy"], "mast-proxy");
    assert_eq!(p["adminAddress"], "127.0.0.1:15000");
    assert_eq!(
        p["sync"],
        serde_json::json!({"CDS": "SYNCED", "LDS": "STALE"})
    );
    assert_eq!(p["lastNack"], "LDS: bad listener");
    assert_eq!(list[0]["proxies"][0]["proxy"], "envoy");
    assert_eq!(list[2]["proxies"], serde_json::json!([]));
    assert_eq!(list[2]["health"], "idle");
}

#[test]
fn workload_detail_has_config_names_and_edges() {
    let store = store(&[]);
    let view = View::from_parts(
        traffic(),
        snapshot(&store),
        vec![proxy_status("nginx-1", mast_core::VERSION)],
    );
    let dump = |id: &str| {
        assert!(id.contains("nginx-1"));
        Some(BTreeMap::from([
            (
                "type.googleapis.com/envoy.config.listener.v3.Listener".to_owned(),
                vec!["virtualInbound".to_owned()],
            ),
            (
                "type.googleapis.com/envoy.config.cluster.v3.Cluster".to_owned(),
                vec!["inbound|8080||".to_owned()],
            ),
        ]))
    };
    let d = serde_json::to_value(workloads::detail(&view, "default", "nginx-1", dump).unwrap())
        .unwrap();
    assert_eq!(d["name"], "nginx-1");
    assert_eq!(
        d["config"]["listeners"],
        serde_json::json!(["virtualInbound"])
    );
    assert_eq!(
        d["config"]["clusters"],
        serde_json::json!(["inbound|8080||"])
    );
    assert_eq!(d["config"]["routes"], serde_json::json!([]));
    assert_eq!(
        d["inbound"][0]["source"],
        "service:nginx-svc.default.svc.cluster.local"
    );
    assert_eq!(d["outbound"], serde_json::json!([]));
    assert!(workloads::detail(&view, "default", "nope", |_| None).is_none());
}

/// A running dashboard on 127.0.0.1 (no proxies connected).
async fn serve(store: ConfigStore) -> std::net::SocketAddr {
    let (tx, snapshots) = watch::channel(snapshot(&store));
    let xds = XdsServer::new(snapshots.clone());
    let sources = crate::Sources {
        store,
        snapshots,
        xds,
        folders: Arc::from(Vec::new()),
    };
    let options = crate::Options {
        scrape_interval: Duration::from_millis(200),
        ..crate::Options::default()
    };
    let d = crate::Dashboard::start(sources, options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _keep = tx;
        crate::serve(listener, d, std::future::pending()).await
    });
    addr
}

async fn get_json(addr: std::net::SocketAddr, path: &str) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut text))
        .await
        .unwrap()
        .unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn routes_answer_json_and_404() {
    let addr = serve(store(&[])).await;
    let (status, g) = get_json(addr, "/api/graph").await;
    assert_eq!(status, 200);
    assert_eq!(
        (g["source"].as_str(), g["windowSeconds"].as_u64()),
        (Some("proxies"), Some(30))
    );
    assert!(
        g["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["id"] == "service:nginx-svc.default.svc.cluster.local")
    );
    assert_eq!(get_json(addr, "/api/services").await.0, 200);
    let (status, w) = get_json(addr, "/api/workloads").await;
    assert_eq!((status, w.as_array().map(Vec::len)), (200, Some(2)));
    assert_eq!(
        get_json(addr, "/api/workloads/default/nginx-2").await.1["name"],
        "nginx-2"
    );
    let (status, body) = get_json(addr, "/api/workloads/default/nope").await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("default/nope"));
    assert_eq!(get_json(addr, "/api/config").await.1["generation"], 1);
}

#[tokio::test]
async fn events_stream_graphs_and_config_changes() {
    let store = store(&[]);
    let addr = serve(store.clone()).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 65536];
    let mut edited = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(seen.matches("event: graph").count() >= 2 && seen.contains("data: {\"generation\":2}"))
    {
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .expect(&seen)
            .unwrap();
        assert!(n > 0, "stream closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        if !edited && seen.contains("event: config") {
            assert!(seen.contains("data: {\"generation\":1}"), "{seen}");
            store.set_file("more.yaml", mast_config::load_str("apiVersion: v1\nkind: Service\nmetadata: {name: more}\nspec: {ports: [{port: 1}]}\n", "more.yaml", &Default::default()));
            edited = true;
        }
    }
    assert!(seen.contains("text/event-stream"), "{seen}");
    assert!(seen.contains("\"windowSeconds\":30"), "{seen}");
}
