//! A timing harness (ignored by default): listener generation for a sidecar of a mesh of
//! 1000 HTTP and TCP services (1501 listeners), with tracing set by the builders, against the
//! former way (listeners built without tracing, then every HCM decoded, given `tracing` and
//! packed again), and with an access log.
//! `cargo test --release -p mast-xds --lib timing -- --ignored --nocapture --test-threads 1`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing;
use envoy_types::util::pack_any;
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions, TraceCollector, TracingOptions};
use prost::{Message, Name};
use serde_json::json;

use crate::listener::listeners_part;
use crate::share::Part;

const ROUNDS: u32 = 40;

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

fn proxy() -> ProxyNode {
    ProxyNode::parse(
        "sidecar~10.0.0.9~reviews-v2.default~default.svc.cluster.local",
        &json!({"NAMESPACE": "default", "LABELS": {"app": "reviews"}}),
    )
    .unwrap()
}

fn tracing_options() -> TracingOptions {
    TracingOptions {
        sampling_bp: 100,
        collector: TraceCollector::Zipkin {
            address: "127.0.0.1:9411".into(),
            path: "/api/v2/spans".into(),
        },
    }
}

/// The former `trace::apply`: decode every HCM, set `tracing`, pack it again.
fn reencode(listeners: &mut [Listener], tracing: &Tracing) {
    for l in listeners {
        let chains = l
            .filter_chains
            .iter_mut()
            .chain(l.default_filter_chain.as_mut());
        for f in chains.flat_map(|c| c.filters.iter_mut()) {
            let Some(filter::ConfigType::TypedConfig(any)) = &mut f.config_type else {
                continue;
            };
            if any.type_url != HttpConnectionManager::type_url() {
                continue;
            }
            let mut hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
            hcm.tracing = Some(tracing.clone());
            *any = pack_any(hcm);
        }
    }
}

/// Mean time of `ROUNDS` runs of `f`.
fn mean(mut f: impl FnMut()) -> Duration {
    f();
    let start = Instant::now();
    for _ in 0..ROUNDS {
        f();
    }
    start.elapsed() / ROUNDS
}

#[test]
#[ignore = "timing harness"]
fn timing_listener_generation() {
    let proxy = proxy();
    let plain = snapshot(SnapshotOptions::default());
    let traced = snapshot(SnapshotOptions {
        tracing: Some(tracing_options()),
        ..SnapshotOptions::default()
    });
    let logged = snapshot(SnapshotOptions {
        access_log: Some(mast_model::snapshot::AccessLogOptions::text("/dev/stdout")),
        ..SnapshotOptions::default()
    });
    let tracing = super::trace::for_proxy(&tracing_options(), &proxy, Part::Shared).unwrap();
    let n = listeners_part(&plain, &proxy, Part::Shared).len();
    for round in 0..3 {
        let none = mean(|| drop(listeners_part(&plain, &proxy, Part::Shared)));
        let builders = mean(|| drop(listeners_part(&traced, &proxy, Part::Shared)));
        let former = mean(|| {
            let mut out = listeners_part(&plain, &proxy, Part::Shared);
            reencode(&mut out, &tracing);
        });
        let access_log = mean(|| drop(listeners_part(&logged, &proxy, Part::Shared)));
        println!(
            "TIMING round {round}, {n} listeners per generation: no tracing {none:?}; \
             tracing in builders {builders:?}; former re-encode {former:?}; access log {access_log:?}"
        );
    }
}
