//! The scrapers against stand-in servers on 127.0.0.1: proxies that answer, fail, hang or
//! write garbage, and a Prometheus answering `/api/v1/query`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use mast_model::MeshSnapshot;
use mast_xds_server::{ProxyStatus, ProxySummary, XdsProtocol};

use super::proxies::ProxyScraper;
use super::traffic::{ProxyKind, Reporter, TrafficSource};

async fn serve(app: Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    addr.to_string()
}

fn status(workload: &str, admin: &str) -> ProxyStatus {
    ProxyStatus {
        node_id: format!("sidecar~10.0.0.1~{workload}.default~default.svc.cluster.local"),
        proxy: ProxySummary {
            node_type: "sidecar".into(),
            ip: "10.0.0.1".into(),
            workload: workload.into(),
            namespace: "default".into(),
            service_account: String::new(),
            labels: BTreeMap::new(),
            cluster_id: "Kubernetes".into(),
            capture_mode: "ports".into(),
            proxy_version: mast_core::VERSION.into(),
            admin_address: admin.into(),
        },
        protocol: XdsProtocol::Delta,
        connected_since: SystemTime::now(),
        types: BTreeMap::new(),
    }
}

/// A mast-proxy whose request counter grows by 10 per scrape.
async fn counting_proxy() -> String {
    let n = Arc::new(AtomicU64::new(0));
    let app = Router::new()
        .route(
            "/stats/prometheus",
            get(|State(n): State<Arc<AtomicU64>>| async move {
                let v = n.fetch_add(10, Ordering::SeqCst) + 10;
                format!(
                    "# TYPE istio_requests counter\nistio_requests_total{{reporter=\"destination\",source_workload=\"client\",source_workload_namespace=\"default\",destination_workload=\"server\",destination_workload_namespace=\"default\",destination_service=\"server.default.svc.cluster.local\",response_code=\"200\",response_flags=\"-\",connection_security_policy=\"mutual_tls\"}} {v}\n# EOF\n"
                )
            }),
        )
        .with_state(n);
    serve(app).await
}

#[tokio::test]
async fn a_failing_or_hanging_proxy_does_not_hold_up_the_others() {
    let good = counting_proxy().await;
    let hanging = serve(Router::new().route(
        "/stats/prometheus",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late"
        }),
    ))
    .await;
    let garbage =
        serve(Router::new().route("/stats/prometheus", get(|| async { "{not metrics" }))).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let proxies = vec![
        status("server", &good),
        status("hanging", &hanging),
        status("garbage", &garbage),
        status("gone", &closed),
        status("no-admin", ""),
    ];
    let snapshot = MeshSnapshot::default();
    let mut scraper = ProxyScraper::new(Duration::from_secs(30));
    let start = Instant::now();
    let (http, _, report) = scraper.scrape(proxies.clone(), &snapshot).await;
    assert!(
        start.elapsed() < Duration::from_millis(2500),
        "{:?}",
        start.elapsed()
    );
    assert!(http.is_empty(), "one scrape gives no rate yet");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (http, _, report2) = scraper.scrape(proxies, &snapshot).await;
    assert_eq!(report, report2);
    let by: BTreeMap<&str, _> = report2.iter().map(|r| (r.workload.as_str(), r)).collect();
    assert_eq!(by.len(), 4, "no admin address, no scrape: {report2:?}");
    assert_eq!(
        (by["server"].kind, &by["server"].error),
        (Some(ProxyKind::MastProxy), &None)
    );
    assert!(
        by["hanging"]
            .error
            .as_deref()
            .unwrap()
            .contains("no answer"),
        "{report2:?}"
    );
    assert!(
        by["garbage"].error.as_deref().unwrap().contains("line 1"),
        "{report2:?}"
    );
    assert!(by["gone"].error.is_some());
    assert_eq!(http.len(), 1);
    let s = &http[0];
    assert_eq!(s.key.reporter, Reporter::Destination);
    assert_eq!(s.key.source.workload, "client");
    // 10 requests between two scrapes at least 0.5 s apart (each up to ~1 s long).
    assert!(s.rps > 3.0 && s.rps <= 20.0, "{}", s.rps);
}

#[tokio::test]
async fn prometheus_answers_become_the_same_series() {
    let seen = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let app = Router::new()
        .route(
            "/prom/api/v1/query",
            get(
                |State(seen): State<Arc<parking_lot::Mutex<Vec<String>>>>,
                 Query(q): Query<BTreeMap<String, String>>| async move {
                    let query = q.get("query").cloned().unwrap_or_default();
                    seen.lock().push(query.clone());
                    let result = if query.contains("istio_requests_total") {
                        r#"[{"metric":{"reporter":"destination","source_workload":"client","source_workload_namespace":"default","destination_workload":"nginx-1","destination_workload_namespace":"default","destination_service":"nginx-svc.default.svc.cluster.local","request_protocol":"http","response_code":"200","response_flags":"-","connection_security_policy":"mutual_tls"},"value":[1,"4.5"]}]"#
                    } else {
                        "[]"
                    };
                    format!(r#"{{"status":"success","data":{{"resultType":"vector","result":{result}}}}}"#)
                },
            ),
        )
        .with_state(seen.clone());
    let base = format!("http://{}/prom", serve(app).await);
    let (tx, snapshots) = tokio::sync::watch::channel(Arc::new(MeshSnapshot::default()));
    let sources = crate::Sources {
        store: mast_registry::ConfigStore::new(),
        snapshots: snapshots.clone(),
        xds: mast_xds_server::XdsServer::new(snapshots),
        folders: Arc::from(Vec::new()),
    };
    let options = crate::Options {
        prometheus: Some(base),
        scrape_interval: Duration::from_millis(100),
        ..crate::Options::default()
    };
    let telemetry = super::Telemetry::start(&sources, &options);
    let mut rx = telemetry.subscribe();
    let view = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|t| t.sequence > 0))
        .await
        .unwrap()
        .unwrap()
        .clone();
    drop(tx);
    assert_eq!(view.source, TrafficSource::Prometheus);
    assert_eq!(view.error, None);
    assert_eq!(view.http.len(), 1);
    assert_eq!(view.http[0].rps, 4.5);
    assert_eq!(view.http[0].key.destination.workload, "nginx-1");
    let queries = seen.lock().clone();
    assert!(
        queries
            .iter()
            .any(|q| q.contains("rate(istio_request_duration_milliseconds_bucket[30s])")),
        "{queries:?}"
    );
}

#[tokio::test]
async fn an_unreachable_prometheus_is_reported() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (_tx, snapshots) = tokio::sync::watch::channel(Arc::new(MeshSnapshot::default()));
    let sources = crate::Sources {
        store: mast_registry::ConfigStore::new(),
        snapshots: snapshots.clone(),
        xds: mast_xds_server::XdsServer::new(snapshots),
        folders: Arc::from(Vec::new()),
    };
    let options = crate::Options {
        prometheus: Some(format!("http://{closed}")),
        scrape_interval: Duration::from_millis(100),
        ..crate::Options::default()
    };
    let telemetry = super::Telemetry::start(&sources, &options);
    let mut rx = telemetry.subscribe();
    let view = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|t| t.sequence > 0))
        .await
        .unwrap()
        .unwrap()
        .clone();
    assert!(
        view.error.as_deref().unwrap().contains("querying"),
        "{:?}",
        view.error
    );
    assert!(view.http.is_empty());
}

#[test]
fn pods_are_scraped_on_their_status_port_local_proxies_on_their_admin() {
    let mut local = status("client", "127.0.0.1:15000").proxy;
    assert_eq!(
        super::proxies::metrics_url(&local),
        "http://127.0.0.1:15000/stats/prometheus",
        "ports capture: the admin address"
    );
    local.capture_mode = "iptables".into();
    assert_eq!(
        super::proxies::metrics_url(&local),
        "http://10.0.0.1:15020/stats/prometheus",
        "a pod: its admin is its own loopback, Istio's 15020 on its address is reachable"
    );
    local.ip = "127.0.0.1".into();
    assert_eq!(
        super::proxies::metrics_url(&local),
        "http://127.0.0.1:15000/stats/prometheus",
        "iptables capture on this machine: the admin address"
    );
}
