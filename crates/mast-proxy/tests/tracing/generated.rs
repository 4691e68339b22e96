//! mastd's own tracing configuration: the resources `mast_xds::generate` emits for a
//! ports-capture sidecar when the snapshot configures tracing (`SnapshotOptions.tracing`:
//! the `zipkin` cluster and HCM `tracing` on every listener) are accepted by the proxy, and a
//! request through its outbound listener reaches the collector as a CLIENT span named by
//! mastd's route decorator and tagged with Istio's service tags.

use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions, TraceCollector, TracingOptions};
use mast_proxy::config::{ENDPOINTS, ROUTE};
use serde_json::json;

use super::*;

/// A Service `name` (port 80) with a WorkloadEntry on 127.0.0.1:`port`.
fn service(name: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n\
         spec:\n  selector: {{app: {name}}}\n  ports:\n  - {{name: http, port: 80}}\n---\n\
         apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n\
         metadata: {{name: {name}-0, namespace: default}}\n\
         spec:\n  address: 127.0.0.1\n  labels: {{app: {name}}}\n  ports: {{http: {port}}}\n"
    )
}

fn snapshot(yaml: &str, tracing: TracingOptions) -> MeshSnapshot {
    let out = mast_config::load_str(yaml, "mesh.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "load: {:?}", out.diagnostics);
    let options = SnapshotOptions {
        tracing: Some(tracing),
        ..Default::default()
    };
    MeshSnapshot::build(&out.resources, options, 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mastd_zipkin_configuration_traces_outbound_requests() {
    let (collector_port, posts) = collector(202).await;
    let app = EchoServer::start("nginx").unwrap();
    let outbound = free_port();
    let metadata = json!({"NAMESPACE": "default", "LABELS": {"app": "client", "version": "v1"},
        "MAST_CAPTURE_MODE": "ports", "MAST_OUTBOUND_PORT": outbound.to_string()});
    let node = ProxyNode::parse(
        "sidecar~127.0.0.1~client.default~default.svc.cluster.local",
        &metadata,
    )
    .unwrap();
    let tracing = TracingOptions {
        sampling_bp: 10_000,
        collector: TraceCollector::Zipkin {
            address: format!("127.0.0.1:{collector_port}"),
            path: "/api/v2/spans".into(),
        },
    };
    let snap = snapshot(&service("nginx", app.port()), tracing);
    let proxy = new_proxy();
    for t in [CLUSTER, ENDPOINTS, LISTENER, ROUTE] {
        let resources = mast_xds::generate(&snap, &node, t)
            .into_iter()
            .map(|r| resource(&r.name, r.resource))
            .collect();
        let update = Update {
            resources,
            removed: vec![],
            complete: false,
        };
        proxy
            .apply(t, &update)
            .unwrap_or_else(|e| panic!("{t}: {e}"));
    }

    let proxy_addr = SocketAddr::from(([127, 0, 0, 1], outbound));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = HttpRequest::get("http://nginx.default.svc.cluster.local/")
            .via_proxy(proxy_addr)
            .await;
        match r {
            Ok(r) if r.status == 200 => break,
            _ if Instant::now() > deadline => panic!("no answer: {r:?}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let seen = app.last_request().unwrap().headers;
    let trace = header(&seen, "x-b3-traceid").to_owned();
    assert_eq!(trace.len(), 32, "{seen:?}");
    assert_eq!(header(&seen, "x-b3-sampled"), "1");
    let spans = wait_spans(&posts, 1, zipkin_spans(&trace)).await;
    assert_eq!(spans.len(), 1, "{spans:?}");
    let s = &spans[0];
    assert_eq!(s["kind"], "CLIENT");
    assert_eq!(s["name"], "nginx.default.svc.cluster.local:80/*");
    assert_eq!(s["tags"]["http.status_code"], "200");
    assert_eq!(
        s["tags"]["upstream_cluster"],
        "outbound|80||nginx.default.svc.cluster.local"
    );
    assert_eq!(s["tags"]["istio.canonical_service"], "client");
    assert_eq!(s["tags"]["istio.namespace"], "default");
}
