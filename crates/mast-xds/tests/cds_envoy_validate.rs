//! Every cluster and assignment Mast generates for the fixture mesh is accepted by real Envoy
//! (`envoy --mode validate` on a binary bootstrap carrying them as static resources; see
//! `tests/support`), without deprecation warnings. Skipped, with a message, when no Envoy
//! binary is found.

mod cds_common;
mod support;

use mast_model::ProxyNode;
use mast_xds::cluster::clusters;
use mast_xds::endpoint::endpoints;

fn cds_eds(proxy: &ProxyNode) -> support::Resources {
    let snap = cds_common::mesh();
    support::Resources {
        clusters: clusters(&snap, proxy),
        endpoints: endpoints(&snap, proxy),
        ..Default::default()
    }
}

#[test]
fn envoy_accepts_client_sidecar_clusters_and_endpoints() {
    let res = cds_eds(&cds_common::client());
    assert!(res.clusters.len() > 20 && !res.endpoints.is_empty());
    support::assert_envoy_accepts_current("cds-client", &res);
}

#[test]
fn envoy_accepts_serving_and_ports_mode_sidecars() {
    support::assert_envoy_accepts_current("cds-reviews-v1", &cds_eds(&cds_common::reviews_v1()));
    support::assert_envoy_accepts_current(
        "cds-reviews-v2-ports",
        &cds_eds(&cds_common::reviews_v2_ports_mode()),
    );
}

#[test]
fn envoy_accepts_gateway_clusters() {
    support::assert_envoy_accepts_current("cds-gateway", &cds_eds(&cds_common::gateway()));
}

#[test]
fn envoy_accepts_resources_packed_by_generate() {
    let snap = cds_common::mesh();
    let res = support::Resources::generated(&snap, &cds_common::client());
    assert_eq!(res.clusters, clusters(&snap, &cds_common::client()));
    support::assert_envoy_accepts_current(
        "cds-generate",
        &support::Resources {
            listeners: Vec::new(),
            routes: Vec::new(),
            ..res
        },
    );
}

/// A VirtualService splitting `reviews` over subsets, so that routes name subset clusters.
const REVIEWS_VS: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v3}, weight: 20}
";

#[test]
fn envoy_accepts_all_four_types_together() {
    // `validate_clusters` is forced on, so this also checks that every cluster a route names
    // is one CDS generates (the subsets the VirtualService uses included).
    let snap = cds_common::snapshot(&format!("{}\n---\n{REVIEWS_VS}", cds_common::mesh_yaml()));
    for proxy in [
        cds_common::client(),
        cds_common::reviews_v1(),
        cds_common::reviews_v2_ports_mode(),
    ] {
        let res = support::Resources::generated(&snap, &proxy);
        assert!(!res.listeners.is_empty(), "{}", proxy.id);
        support::assert_routes_resolve(&format!("cds-all-{}", proxy.workload), &res);
    }
}
