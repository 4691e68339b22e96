//! Envoy sidecars' cluster stats, TCP, and plaintext mesh traffic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn envoy_source(service: &'static str, subset: &'static str, code: &'static str, rps: f64) -> Http {
    Http {
        origin: Origin::Envoy,
        subset,
        code,
        mtls: "mutual_tls",
        ..Http::source(
            peer("client", "client", "unknown"),
            Peer::unknown(),
            service,
            rps,
        )
    }
}

fn envoy_inbound(workload: &str, rps: f64) -> Http {
    Http {
        origin: Origin::Envoy,
        code: "unknown",
        ..Http::dest(
            Peer::unknown(),
            peer(workload, "x", "unknown"),
            "unknown",
            rps,
        )
    }
}

#[test]
fn envoy_clusters_share_a_service_between_its_workloads() {
    let rows = vec![
        envoy_source(NGINX_1, "", "200", 8.0),
        envoy_source("nginx-svc-2.default.svc.cluster.local", "", "200", 2.0),
        envoy_source(NGINX, "", "200", 4.0),
        envoy_source(NGINX, "", "503", 1.0),
        envoy_inbound("nginx-1", 9.0),
        envoy_inbound("nginx-2", 3.0),
    ];
    let g = graph(&traffic(rows, Vec::new(), &[]));
    assert!(close(
        edge(&g, CLIENT, "service:nginx-svc-1.default.svc.cluster.local").rps,
        8.0
    ));
    assert!(close(
        edge(&g, "service:nginx-svc-1.default.svc.cluster.local", W1).rps,
        8.0
    ));
    let e = edge(&g, CLIENT, SVC);
    assert!(close(e.rps, 5.0) && close(e.error_rate, 0.2), "{e:?}");
    assert_eq!(e.mtls, "mutual_tls");
    // nginx-svc's 5 rps shared 9:3 by what each Envoy counted inbound.
    assert!(
        close(edge(&g, SVC, W1).rps, 3.75),
        "{:?}",
        edge(&g, SVC, W1)
    );
    assert!(close(edge(&g, SVC, W2).rps, 1.25));
    // Inbound counts alone make no edge.
    assert!(!g.edges.iter().any(|e| e.source == UNKNOWN_ID));
}

#[test]
fn envoy_subsets_go_to_the_subsets_workloads_evenly_without_inbound_counts() {
    let rows = vec![
        envoy_source(REVIEWS, "v2", "200", 4.0),
        envoy_source(REVIEWS, "v1", "200", 1.0),
    ];
    let g = graph(&traffic(rows, Vec::new(), &[]));
    let svc = "service:reviews.default.svc.cluster.local";
    assert!(close(edge(&g, svc, "workload:default/reviews-v2").rps, 2.0));
    assert!(close(
        edge(&g, svc, "workload:default/reviews-v2b").rps,
        2.0
    ));
    assert!(close(edge(&g, svc, "workload:default/reviews-v1").rps, 1.0));
    assert!(close(edge(&g, CLIENT, svc).rps, 5.0));
}

#[test]
fn tcp_comes_from_the_client_side() {
    let key = |reporter| TcpKey {
        reporter,
        origin: Origin::Istio,
        source: if reporter == Reporter::Source {
            peer("client", "client", "unknown")
        } else {
            Peer::unknown()
        },
        destination: if reporter == Reporter::Source {
            Peer::unknown()
        } else {
            peer("db-1", "db", "unknown")
        },
        service: DB.into(),
        subset: String::new(),
        mtls: "unknown".into(),
    };
    let tcp = vec![
        TcpSeries {
            key: key(Reporter::Source),
            bytes_per_second: 100.0,
            connections_per_second: 1.0,
        },
        TcpSeries {
            key: key(Reporter::Destination),
            bytes_per_second: 100.0,
            connections_per_second: 1.0,
        },
    ];
    let g = graph(&traffic(Vec::new(), tcp, &["client", "db-1"]));
    let e = edge(&g, CLIENT, "service:db.default.svc.cluster.local");
    assert_eq!(
        (e.protocol, e.bytes_per_second, e.rps),
        ("tcp", Some(100.0), 0.0)
    );
    assert_eq!(
        edge(
            &g,
            "service:db.default.svc.cluster.local",
            "workload:default/db-1"
        )
        .bytes_per_second,
        Some(100.0)
    );
    assert_eq!(g.edges.len(), 2, "{:#?}", g.edges);
    assert_eq!(node(&g, "workload:default/db-1").health, Health::Healthy);
}

#[test]
fn plaintext_calls_are_counted_once_from_the_server() {
    // mTLS off: no metadata exchange, so the client does not know the server and the server
    // does not know the client.
    let mut s = Http::source(
        peer("client", "client", "unknown"),
        Peer::unknown(),
        NGINX,
        3.0,
    );
    s.mtls = "unknown";
    let mut d = Http::dest(Peer::unknown(), peer("nginx-1", "nginx", "v1"), NGINX, 3.0);
    d.mtls = "none";
    let g = graph(&traffic(
        vec![s, d],
        Vec::new(),
        &["client", "nginx-1", "nginx-2"],
    ));
    assert_eq!(node(&g, SVC).rps, 3.0);
    assert_eq!(edge(&g, UNKNOWN_ID, SVC).mtls, "none");
    assert_eq!(g.edges.len(), 2, "{:#?}", g.edges);
}
