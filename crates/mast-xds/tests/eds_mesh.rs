//! EDS from a whole mesh in Istio YAML: one assignment per EDS cluster, same names, endpoints
//! filtered by subset labels, weights kept, empty assignments for clusters without endpoints.

mod cds_common;

use cds_common::{assignment, client, gateway, kind, mesh, reviews};
use envoy_types::pb::envoy::config::cluster::v3::cluster::DiscoveryType;
use envoy_types::pb::envoy::config::core::v3::address::Address;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use mast_xds::cluster::clusters;
use mast_xds::endpoint::endpoints;

/// (address, port, weight) of every endpoint, in order.
fn eps(a: &ClusterLoadAssignment) -> Vec<(String, u32, u32)> {
    a.endpoints
        .iter()
        .flat_map(|g| &g.lb_endpoints)
        .map(|e| {
            let Some(HostIdentifier::Endpoint(ep)) = &e.host_identifier else {
                panic!("endpoint")
            };
            let Some(Address::SocketAddress(sa)) =
                ep.address.as_ref().and_then(|a| a.address.clone())
            else {
                panic!()
            };
            let Some(PortSpecifier::PortValue(port)) = sa.port_specifier else {
                panic!()
            };
            (
                sa.address,
                port,
                e.load_balancing_weight.map_or(0, |w| w.value),
            )
        })
        .collect()
}

fn ep(addr: &str, port: u32, weight: u32) -> (String, u32, u32) {
    (addr.to_owned(), port, weight)
}

#[test]
fn one_assignment_per_eds_cluster_and_no_other() {
    let snap = mesh();
    for proxy in [client(), gateway()] {
        let cds = clusters(&snap, &proxy);
        let eds = endpoints(&snap, &proxy);
        let mut want: Vec<&str> = cds
            .iter()
            .filter(|c| kind(c) == DiscoveryType::Eds)
            .map(|c| c.name.as_str())
            .collect();
        want.sort();
        let got: Vec<&str> = eds.iter().map(|a| a.cluster_name.as_str()).collect();
        assert_eq!(got, want, "{}", proxy.id);
    }
}

#[test]
fn endpoints_follow_subsets_ports_and_weights() {
    let all = endpoints(&mesh(), &client());
    assert_eq!(
        eps(assignment(&all, &reviews(9080, ""))),
        [
            ep("10.1.0.1", 9080, 1),
            ep("10.1.0.2", 9080, 1),
            ep("10.1.0.3", 9080, 1),
            ep("10.2.0.1", 9080, 3)
        ]
    );
    assert_eq!(
        eps(assignment(&all, &reviews(9080, "v1"))),
        [ep("10.1.0.1", 9080, 1), ep("10.2.0.1", 9080, 3)]
    );
    assert_eq!(
        eps(assignment(&all, &reviews(9080, "v2"))),
        [ep("10.1.0.2", 9080, 1)]
    );
    assert_eq!(
        eps(assignment(&all, &reviews(9090, "v2"))),
        [ep("10.1.0.2", 9091, 1)],
        "the target port"
    );
    assert!(
        !all.iter().any(|a| a.cluster_name == reviews(9080, "v3")),
        "PASSTHROUGH subset is ORIGINAL_DST"
    );
    assert!(
        !all.iter()
            .any(|a| a.cluster_name == "outbound|80||httpbin.org"),
        "DNS endpoints are inline"
    );
    assert_eq!(
        eps(assignment(&all, "outbound|443||secure.example.com")),
        [ep("192.0.2.10", 443, 1)]
    );
}

#[test]
fn clusters_without_endpoints_get_empty_assignments() {
    let all = endpoints(&mesh(), &client());
    assert!(
        assignment(&all, &reviews(9080, "none"))
            .endpoints
            .is_empty(),
        "no pod has version v9"
    );
    assert!(
        assignment(&all, "outbound|9080||ratings.default.svc.cluster.local")
            .endpoints
            .is_empty()
    );
    let gw = endpoints(&mesh(), &gateway());
    assert!(
        assignment(&gw, "outbound|7000||legacy.internal")
            .endpoints
            .is_empty()
    );
}

/// Istio's WorkloadEntry health: with `proxy.istio.io/health-checks-enabled`, an entry
/// serves only while its status says `Healthy: "True"`; unhealthy entries reach no proxy's
/// EDS, but their own proxy still gets its inbound ports (it must be ready to turn healthy).
#[test]
fn unhealthy_workload_entries_are_left_out_of_eds_but_keep_their_inbound() {
    let entries = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vms, namespace: default}
spec:
  hosts: [vms.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: plain, namespace: default}
spec: {address: 10.3.0.1, labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: healthy, namespace: default, annotations: {proxy.istio.io/health-checks-enabled: "true"}}
spec: {address: 10.3.0.2, labels: {app: vm}}
status: {conditions: [{type: Healthy, status: "True"}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: sick, namespace: default, annotations: {proxy.istio.io/health-checks-enabled: "true"}}
spec: {address: 10.3.0.3, labels: {app: vm}}
status: {conditions: [{type: Healthy, status: "False"}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: unprobed, namespace: default, annotations: {proxy.istio.io/health-checks-enabled: ""}}
spec: {address: 10.3.0.4, labels: {app: vm}}
"#;
    let snap = cds_common::snapshot(&format!("{}\n---\n{entries}", cds_common::mesh_yaml()));
    let all = endpoints(&snap, &client());
    assert_eq!(
        eps(assignment(&all, "outbound|8080||vms.internal")),
        [ep("10.3.0.1", 8080, 1), ep("10.3.0.2", 8080, 1)],
        "no annotation: healthy; annotation: only Healthy=True"
    );
    let sick = cds_common::sidecar("10.3.0.3", "sick", serde_json::json!({}));
    let inbound: Vec<u16> = snap
        .inbound_ports(&sick)
        .iter()
        .map(|p| p.target_port)
        .collect();
    assert_eq!(
        inbound,
        [8080],
        "the unhealthy entry's own proxy keeps its inbound"
    );
}
