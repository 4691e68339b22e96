//! mast-proxy's Istio metrics: the canary's client → nginx-svc → versions, local replies,
//! health thresholds, and the JSON shape.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// The canary on mast-proxy: the servers' reports make client → nginx-svc → v1/v2; the
/// client's own reports of the same requests are not counted twice; a local reply is.
fn canary_mast() -> Traffic {
    let client = peer("client", "client", "unknown");
    let (v1, v2) = (
        peer("nginx-1", "nginx", "v1"),
        peer("nginx-2", "nginx", "v2"),
    );
    let mut d1 = Http::dest(client.clone(), v1.clone(), NGINX, 8.0);
    d1.latency = vec![(1.0, 4.0), (5.0, 8.0), (10.0, 8.0), (f64::INFINITY, 8.0)];
    let mut d2 = Http::dest(client.clone(), v2.clone(), NGINX, 2.0);
    d2.latency = vec![(1.0, 0.0), (5.0, 1.0), (10.0, 2.0), (f64::INFINITY, 2.0)];
    let mut uh = Http::source(client.clone(), Peer::unknown(), NGINX_1, 0.5);
    (uh.code, uh.flags) = ("503", "UH");
    let rows = vec![
        d1,
        d2,
        Http::source(client.clone(), v1, NGINX_1, 8.0),
        Http::source(client, v2, "nginx-svc-2.default.svc.cluster.local", 2.0),
        uh,
    ];
    traffic(rows, Vec::new(), &["client", "nginx-1", "nginx-2"])
}

#[test]
fn canary_on_mast_proxy_is_client_service_versions() {
    let g = graph(&canary_mast());
    let e = edge(&g, CLIENT, SVC);
    assert!(close(e.rps, 10.0), "{e:?}");
    assert_eq!(
        (e.error_rate, e.mtls, e.protocol),
        (0.0, "mutual_tls", "http")
    );
    assert_eq!(e.response_codes, BTreeMap::from([("200".to_owned(), 10.0)]));
    // 10 requests: 4 ≤ 1 ms, 9 ≤ 5 ms, 10 ≤ 10 ms → p50 in (1, 5]: 1 + 4 × 1/5 = 1.8.
    assert!(close(e.p50_ms.unwrap(), 1.8), "{e:?}");
    assert!(close(e.p99_ms.unwrap(), 9.5), "{e:?}");
    assert!(close(edge(&g, SVC, W1).rps, 8.0));
    assert!(close(edge(&g, SVC, W2).rps, 2.0));
    assert_eq!(edge(&g, SVC, W2).p50_ms, Some(5.0));
    // The client's view of the same requests is not an edge of its own.
    assert!(!g.edges.iter().any(|e| e.target == W1 && e.source != SVC));
    assert!(
        !g.edges
            .iter()
            .any(|e| e.target == "service:nginx-svc-2.default.svc.cluster.local")
    );
    // The local reply (no healthy upstream) is, and it fails.
    let uh = edge(&g, CLIENT, "service:nginx-svc-1.default.svc.cluster.local");
    assert!(close(uh.rps, 0.5) && close(uh.error_rate, 1.0), "{uh:?}");
    assert_eq!(g.edges.len(), 4, "{:#?}", g.edges);
}

#[test]
fn canary_nodes_have_versions_apps_health_and_rates() {
    let g = graph(&canary_mast());
    let svc = node(&g, SVC);
    assert_eq!(
        (svc.kind, svc.name.as_str(), svc.namespace.as_str()),
        (NodeKind::Service, "nginx-svc", "default")
    );
    assert_eq!((svc.health, svc.rps), (Health::Healthy, 10.0));
    let v1 = node(&g, W1);
    assert_eq!(v1.kind, NodeKind::Workload);
    assert_eq!(
        (v1.app.as_deref(), v1.version.as_deref()),
        (Some("nginx"), Some("v1"))
    );
    assert_eq!(v1.parent.as_deref(), Some("app:default/nginx"));
    assert_eq!(v1.proxy, Some(ProxyKind::MastProxy));
    assert!(close(v1.rps, 8.0));
    let app = node(&g, "app:default/nginx");
    assert_eq!(
        (app.kind, app.rps, app.health),
        (NodeKind::App, 10.0, Health::Healthy)
    );
    // The client: known from traffic only (no endpoints), busy but nothing inbound.
    let client = node(&g, CLIENT);
    assert_eq!(
        (client.health, client.rps, client.parent.as_deref()),
        (Health::Healthy, 0.0, None)
    );
    assert_eq!(client.app.as_deref(), Some("client"));
    assert_eq!(client.version, None);
    // Services with endpoints and no traffic are shown, idle; their workloads too.
    assert_eq!(
        node(&g, "service:nginx-svc-3.default.svc.cluster.local").health,
        Health::Idle
    );
    let v3 = node(&g, "workload:default/nginx-3");
    assert_eq!((v3.health, v3.parent.as_deref()), (Health::Idle, None));
    assert_eq!(
        node(&g, "service:nginx-svc-1.default.svc.cluster.local").health,
        Health::Failing
    );
    assert!(
        g.nodes.windows(2).all(|w| w[0].id < w[1].id),
        "sorted by id"
    );
}

#[test]
fn health_thresholds_and_unknown_clients() {
    let anyone = Peer::unknown();
    let v1 = peer("nginx-1", "nginx", "v1");
    for (errors, health) in [
        (0.0, Health::Healthy),
        (0.05, Health::Degraded),
        (0.25, Health::Failing),
        (0.009, Health::Healthy),
    ] {
        let mut bad = Http::dest(anyone.clone(), v1.clone(), NGINX, errors * 100.0);
        bad.code = "500";
        let ok = Http::dest(anyone.clone(), v1.clone(), NGINX, (1.0 - errors) * 100.0);
        let g = graph(&traffic(vec![ok, bad], Vec::new(), &["nginx-1"]));
        let e = edge(&g, UNKNOWN_ID, SVC);
        assert!(close(e.error_rate, errors), "{e:?}");
        assert_eq!(node(&g, SVC).health, health, "error rate {errors}");
        assert_eq!(node(&g, W1).health, health, "error rate {errors}");
        let u = node(&g, UNKNOWN_ID);
        assert_eq!((u.kind, u.name.as_str()), (NodeKind::Unknown, "unknown"));
    }
}

#[test]
fn a_fault_on_the_client_lands_on_the_service_it_addressed() {
    // A fault abort is answered by the client's sidecar before routing: its series names
    // the authority as written (`nginx-svc`), which is the same service node.
    let client = peer("client", "client", "unknown");
    let ok = Http::dest(client.clone(), peer("nginx-1", "nginx", "v1"), NGINX, 3.0);
    let mut fault = Http::source(client, Peer::unknown(), "nginx-svc", 1.0);
    (fault.code, fault.flags) = ("503", "FI");
    let g = graph(&traffic(
        vec![ok, fault],
        Vec::new(),
        &["client", "nginx-1", "nginx-2"],
    ));
    let e = edge(&g, CLIENT, SVC);
    assert!(close(e.rps, 4.0) && close(e.error_rate, 0.25), "{e:?}");
    assert_eq!(node(&g, SVC).health, Health::Failing);
    assert_eq!(g.edges.len(), 2, "{:#?}", g.edges);
}

#[test]
fn a_response_flag_is_an_error_even_with_a_2xx() {
    let mut dc = Http::dest(
        peer("client", "client", "unknown"),
        peer("nginx-1", "nginx", "v1"),
        NGINX,
        1.0,
    );
    dc.flags = "DC";
    let g = graph(&traffic(vec![dc], Vec::new(), &["nginx-1"]));
    assert_eq!(edge(&g, CLIENT, SVC).error_rate, 1.0);
}

#[test]
fn json_is_the_contract() {
    let g = graph(&canary_mast());
    let v = serde_json::to_value(&g).unwrap();
    assert_eq!(v["windowSeconds"], 30);
    assert_eq!(v["source"], "proxies");
    let e = v["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["source"] == CLIENT && e["target"] == SVC)
        .unwrap();
    for key in [
        "id",
        "protocol",
        "rps",
        "errorRate",
        "p50Ms",
        "p99Ms",
        "mtls",
        "responseCodes",
        "bytesPerSecond",
    ] {
        assert!(e.get(key).is_some(), "edge has no {key}: {e}");
    }
    assert!(e["bytesPerSecond"].is_null());
    let n = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == W1)
        .unwrap();
    assert_eq!(n["kind"], "workload");
    assert_eq!(n["proxy"], "mast-proxy");
    assert_eq!(n["health"], "healthy");
    assert_eq!(n["parent"], "app:default/nginx");
    for key in ["name", "namespace", "app", "version", "rps"] {
        assert!(n.get(key).is_some(), "node has no {key}: {n}");
    }
    let svc = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == SVC)
        .unwrap();
    assert!(svc["proxy"].is_null() && svc["app"].is_null() && svc["parent"].is_null());
}
