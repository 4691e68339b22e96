//! A timing harness (ignored by default): listener generation for a sidecar of a mesh of
//! many HTTP and TCP services, with tracing and access logging on.
//! `cargo test --release -p mast-xds timing -- --ignored --nocapture`.

use std::fmt::Write as _;
use std::time::Instant;

use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions, TraceCollector, TracingOptions};
use serde_json::json;

use crate::listener::listeners_part;
use crate::share::Part;

fn mesh(services: usize) -> String {
    let mut out = String::new();
    for i in 0..services {
        let _ = write!(
            out,
            "apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: default}}\nspec:\n  clusterIP: 10.96.{}.{}\n  selector: {{app: s{i}}}\n  ports:\n  - {{name: http, port: {}}}\n  - {{name: tcp, port: 9000}}\n---\n",
            i / 250,
            i % 250 + 1,
            8000 + i % 500
        );
    }
    out
}

fn snapshot(options: SnapshotOptions) -> MeshSnapshot {
    let out = mast_config::load_str(&mesh(1000), "mesh.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
    MeshSnapshot::build(&out.resources, options, 1)
}

fn time(label: &str, options: SnapshotOptions) {
    let snapshot = snapshot(options);
    let proxy = ProxyNode::parse(
        "sidecar~10.0.0.9~reviews-v2.default~default.svc.cluster.local",
        &json!({"NAMESPACE": "default", "LABELS": {"app": "reviews"}}),
    )
    .unwrap();
    let rounds = 30;
    let start = Instant::now();
    let mut count = 0;
    for _ in 0..rounds {
        count += listeners_part(&snapshot, &proxy, Part::Shared).len();
    }
    let per = start.elapsed() / rounds;
    println!(
        "TIMING {label}: {} listeners, {per:?} per generation",
        count / rounds as usize
    );
}

#[test]
#[ignore = "timing harness"]
fn timing_listener_generation() {
    time("nothing", SnapshotOptions::default());
    let access_log = SnapshotOptions {
        access_log: Some(mast_model::snapshot::AccessLogOptions::text("/dev/stdout")),
        ..SnapshotOptions::default()
    };
    time("access log", access_log);
}

#[test]
#[ignore = "timing harness"]
fn timing_listener_generation_with_tracing() {
    let options = SnapshotOptions {
        tracing: Some(TracingOptions {
            sampling_bp: 100,
            collector: TraceCollector::Zipkin {
                address: "127.0.0.1:9411".into(),
                path: "/api/v2/spans".into(),
            },
        }),
        ..SnapshotOptions::default()
    };
    let snapshot = snapshot(options);
    let proxy = ProxyNode::parse(
        "sidecar~10.0.0.9~reviews-v2.default~default.svc.cluster.local",
        &json!({"NAMESPACE": "default", "LABELS": {"app": "reviews"}}),
    )
    .unwrap();
    let rounds = 30;
    let start = Instant::now();
    let mut count = 0;
    for _ in 0..rounds {
        count += listeners_part(&snapshot, &proxy, Part::Shared).len();
    }
    let per = start.elapsed() / rounds;
    println!(
        "TIMING shared part: {} listeners, {per:?} per generation",
        count / rounds as usize
    );
}
