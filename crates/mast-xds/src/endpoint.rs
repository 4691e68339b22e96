//! EDS: one `ClusterLoadAssignment` per EDS cluster CDS generates (same names, from the same
//! plan), with the service port's endpoints — filtered by the subset's labels for subset
//! clusters — in one locality group, each with its weight as `load_balancing_weight` and
//! `health_status: HEALTHY`; endpoints whose workload runs a sidecar (label
//! `security.istio.io/tlsMode: istio`) carry the metadata
//! `envoy.transport_socket_match: {tlsMode: istio}` that selects auto mutual TLS (see
//! `cluster::tls`). An EDS cluster without endpoints still gets an empty assignment,
//! so Envoy does not keep it warming (Istio's EDS config has no initial fetch timeout).
//!
//! EDS endpoints must be IP addresses: an endpoint whose address is not one is left out with a
//! warning (Envoy would reject the whole assignment). STRICT_DNS clusters reuse
//! [`lb_endpoints`] with host names allowed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::{HealthStatus, Metadata};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use mast_core::Hostname;
use mast_model::{MeshSnapshot, ProxyNode};

use crate::cluster::{self, Discovery, pb};

/// Which endpoint addresses a cluster type accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Addresses {
    /// IP addresses only (EDS, STATIC).
    IpOnly,
    /// IP addresses and host names (STRICT_DNS).
    Any,
}

/// Every `ClusterLoadAssignment` for `proxy`, sorted by name.
pub fn endpoints(snapshot: &MeshSnapshot, proxy: &ProxyNode) -> Vec<ClusterLoadAssignment> {
    assignments(snapshot, cluster::outbound_targets(snapshot, proxy))
}

/// The `ClusterLoadAssignment`s of the clusters of the services in `hosts` only, sorted by
/// name: what an endpoint-only change of those services changes in [`endpoints`].
pub fn endpoints_for_hosts(
    snapshot: &MeshSnapshot,
    proxy: &ProxyNode,
    hosts: &BTreeSet<Hostname>,
) -> Vec<ClusterLoadAssignment> {
    assignments(
        snapshot,
        cluster::outbound_targets_where(snapshot, proxy, |s| hosts.contains(&s.hostname)),
    )
}

fn assignments(
    snapshot: &MeshSnapshot,
    targets: Vec<cluster::Target<'_>>,
) -> Vec<ClusterLoadAssignment> {
    let all = targets
        .into_iter()
        .filter(|t| t.discovery == Discovery::Eds)
        .map(|t| {
            let eps = lb_endpoints(
                snapshot,
                t.service.endpoints_for(t.port.port),
                t.subset_labels(),
                Addresses::IpOnly,
            );
            assignment(&t.name, eps)
        })
        .collect();
    cluster::sorted_unique(all, |c| c.cluster_name.as_str())
}

/// The `LbEndpoint`s of `endpoints` whose labels include `subset` (all when `None`), sorted by
/// address and port.
pub(crate) fn lb_endpoints(
    snapshot: &MeshSnapshot,
    endpoints: &[mast_model::Endpoint],
    subset: Option<&BTreeMap<String, String>>,
    addresses: Addresses,
) -> Vec<LbEndpoint> {
    let mut selected: Vec<&mast_model::Endpoint> = endpoints
        .iter()
        .filter(|e| subset.is_none_or(|labels| labels.iter().all(|(k, v)| e.labels.get(k) == Some(v))))
        // Istio sends no unhealthy endpoint (PILOT_SEND_UNHEALTHY_ENDPOINTS is off).
        .filter(|e| e.healthy)
        .filter(|e| {
            let ok = addresses == Addresses::Any || e.address.parse::<IpAddr>().is_ok();
            if !ok {
                tracing::warn!(address = %e.address, "endpoint address is not an IP address: left out of EDS");
            }
            ok
        })
        .collect();
    selected.sort_by(|a, b| (a.address.as_str(), a.port).cmp(&(b.address.as_str(), b.port)));
    selected.dedup_by(|a, b| a.address == b.address && a.port == b.port);
    selected
        .into_iter()
        .map(|e| lb_endpoint(e, snapshot.endpoint_accepts_mtls(e)))
        .collect()
}

/// One endpoint; `mtls`: it gets the `tlsMode: istio` metadata (see
/// [`MeshSnapshot::endpoint_accepts_mtls`]).
fn lb_endpoint(e: &mast_model::Endpoint, mtls: bool) -> LbEndpoint {
    LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(pb::socket_address(&e.address, u32::from(e.port))),
            ..Default::default()
        })),
        health_status: HealthStatus::Healthy as i32,
        load_balancing_weight: Some(pb::u32_value(e.weight.max(1))),
        metadata: endpoint_metadata(e, mtls),
    }
}

/// The endpoint's metadata: `tlsMode` for auto mTLS, and Istio's workload metadata
/// (`filter_metadata.istio.workload = "<name>;<namespace>;<canonical service>;<canonical
/// revision>;<cluster>"`, as istiod writes it) that proxies label metrics with when the
/// peer does not exchange its own.
fn endpoint_metadata(e: &mast_model::Endpoint, mtls: bool) -> Option<Metadata> {
    let mut md = if mtls {
        tls_mode_metadata()
    } else {
        Metadata::default()
    };
    if !e.workload.is_empty() {
        let text = format!(
            "{};{};{};{};{}",
            e.workload,
            e.namespace,
            canonical_service(&e.labels, &e.workload),
            canonical_revision(&e.labels),
            DEFAULT_CLUSTER_ID
        );
        let value = Value {
            kind: Some(Kind::StringValue(text)),
        };
        md.filter_metadata.insert(
            ISTIO_METADATA_KEY.to_owned(),
            Struct {
                fields: [("workload".to_owned(), value)].into_iter().collect(),
            },
        );
    }
    (!md.filter_metadata.is_empty()).then_some(md)
}

/// The endpoint metadata namespace of Istio's workload metadata.
pub const ISTIO_METADATA_KEY: &str = "istio";
/// The cluster id endpoints are labelled with (Istio's default).
const DEFAULT_CLUSTER_ID: &str = "Kubernetes";

/// Istio's canonical service of a workload: its `service.istio.io/canonical-name`,
/// `app.kubernetes.io/name` or `app` label, else its name.
pub fn canonical_service<'a>(
    labels: &'a std::collections::BTreeMap<String, String>,
    workload: &'a str,
) -> &'a str {
    [
        "service.istio.io/canonical-name",
        "app.kubernetes.io/name",
        "app",
    ]
    .iter()
    .find_map(|k| labels.get(*k))
    .map_or(workload, String::as_str)
}

/// Istio's canonical revision: `service.istio.io/canonical-revision`,
/// `app.kubernetes.io/version` or `version`, else `latest`.
pub fn canonical_revision(labels: &std::collections::BTreeMap<String, String>) -> &str {
    [
        "service.istio.io/canonical-revision",
        "app.kubernetes.io/version",
        "version",
    ]
    .iter()
    .find_map(|k| labels.get(*k))
    .map_or("latest", String::as_str)
}

/// The endpoint metadata namespace cluster transport socket matches read.
pub const TRANSPORT_SOCKET_MATCH_KEY: &str = "envoy.transport_socket_match";

/// `{tlsMode: "istio"}`: the metadata of endpoints with a sidecar, and the `match` of the
/// `tlsMode-istio` transport socket match.
pub fn tls_mode_istio() -> Struct {
    Struct {
        fields: [(
            "tlsMode".to_owned(),
            Value {
                kind: Some(Kind::StringValue(
                    mast_model::snapshot::TLS_MODE_ISTIO.into(),
                )),
            },
        )]
        .into_iter()
        .collect(),
    }
}

/// `filter_metadata["envoy.transport_socket_match"] = {tlsMode: "istio"}`: selects the
/// `tlsMode-istio` transport socket match of auto mutual TLS.
fn tls_mode_metadata() -> Metadata {
    Metadata {
        filter_metadata: [(TRANSPORT_SOCKET_MATCH_KEY.to_owned(), tls_mode_istio())]
            .into_iter()
            .collect(),
        ..Default::default()
    }
}

/// A `ClusterLoadAssignment` with `endpoints` in one locality group (none when empty).
pub(crate) fn assignment(cluster_name: &str, endpoints: Vec<LbEndpoint>) -> ClusterLoadAssignment {
    let groups = if endpoints.is_empty() {
        Vec::new()
    } else {
        vec![LocalityLbEndpoints {
            lb_endpoints: endpoints,
            ..Default::default()
        }]
    };
    ClusterLoadAssignment {
        cluster_name: cluster_name.to_owned(),
        endpoints: groups,
        ..Default::default()
    }
}

/// The assignment of an inbound cluster: the application at `address:port`.
pub(crate) fn local_assignment(
    cluster_name: &str,
    address: &str,
    port: u16,
) -> ClusterLoadAssignment {
    let ep = LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(pb::socket_address(address, u32::from(port))),
            ..Default::default()
        })),
        ..Default::default()
    };
    assignment(cluster_name, vec![ep])
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;

    fn ep(address: &str, version: &str, weight: u32) -> mast_model::Endpoint {
        mast_model::Endpoint {
            address: address.into(),
            port: 9080,
            labels: BTreeMap::from([
                ("app".into(), "reviews".into()),
                ("version".into(), version.into()),
            ]),
            namespace: "default".into(),
            workload: String::new(),
            service_account: String::new(),
            weight,
            healthy: true,
        }
    }

    fn addr(e: &LbEndpoint) -> (String, u32, u32) {
        let Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(a), ..
        })) = &e.host_identifier
        else {
            panic!()
        };
        let Some(AddressKind::SocketAddress(s)) = &a.address else {
            panic!()
        };
        let Some(
            envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(p),
        ) = s.port_specifier
        else {
            panic!()
        };
        (s.address.clone(), p, e.load_balancing_weight.unwrap().value)
    }

    #[test]
    fn filters_by_subset_labels_and_keeps_weights() {
        let eps = [
            ep("10.0.0.2", "v2", 3),
            ep("10.0.0.1", "v1", 1),
            ep("10.0.0.3", "v1", 0),
        ];
        let v1 = BTreeMap::from([("version".to_string(), "v1".to_string())]);
        let got: Vec<_> =
            lb_endpoints(&MeshSnapshot::default(), &eps, Some(&v1), Addresses::IpOnly)
                .iter()
                .map(addr)
                .collect();
        assert_eq!(
            got,
            vec![("10.0.0.1".into(), 9080, 1), ("10.0.0.3".into(), 9080, 1)],
            "weight 0 becomes 1"
        );
        assert_eq!(
            lb_endpoints(&MeshSnapshot::default(), &eps, None, Addresses::IpOnly).len(),
            3
        );
        let none = BTreeMap::from([("version".to_string(), "v9".to_string())]);
        assert!(
            lb_endpoints(
                &MeshSnapshot::default(),
                &eps,
                Some(&none),
                Addresses::IpOnly
            )
            .is_empty()
        );
    }

    #[test]
    fn sidecar_endpoints_carry_the_tls_mode() {
        let mut with = ep("10.0.0.1", "v1", 1);
        with.labels
            .insert("security.istio.io/tlsMode".into(), "istio".into());
        let mut other = ep("10.0.0.2", "v1", 1);
        other
            .labels
            .insert("security.istio.io/tlsMode".into(), "disabled".into());
        let eps = lb_endpoints(
            &MeshSnapshot::default(),
            &[with, other],
            None,
            Addresses::IpOnly,
        );
        let md = eps[0].metadata.as_ref().expect("tlsMode metadata");
        let s = &md.filter_metadata["envoy.transport_socket_match"];
        assert_eq!(
            s.fields["tlsMode"].kind,
            Some(envoy_types::pb::google::protobuf::value::Kind::StringValue(
                "istio".into()
            ))
        );
        assert_eq!(s.fields.len(), 1);
        assert!(eps[1].metadata.is_none());
    }

    #[test]
    fn workload_endpoints_carry_istio_workload_metadata() {
        let mut e = ep("10.0.0.1", "v2", 1);
        e.workload = "reviews-v2".into();
        let md = lb_endpoint(&e, false).metadata.unwrap();
        let workload = &md.filter_metadata[ISTIO_METADATA_KEY].fields["workload"];
        assert_eq!(
            workload.kind,
            Some(Kind::StringValue(
                "reviews-v2;default;reviews;v2;Kubernetes".into()
            ))
        );
        assert!(!md.filter_metadata.contains_key(TRANSPORT_SOCKET_MATCH_KEY));
        // No workload name (a ServiceEntry address): no Istio metadata, none at all.
        assert!(
            lb_endpoint(&ep("10.0.0.2", "v1", 1), false)
                .metadata
                .is_none()
        );
        let labels = BTreeMap::from([("service.istio.io/canonical-name".into(), "c".into())]);
        assert_eq!(canonical_service(&labels, "w"), "c");
        assert_eq!(canonical_service(&BTreeMap::new(), "w"), "w");
        assert_eq!(canonical_revision(&BTreeMap::new()), "latest");
    }

    #[test]
    fn host_names_only_for_dns() {
        let eps = [ep("api.example.com", "v1", 1), ep("fd00::1", "v1", 1)];
        assert_eq!(
            lb_endpoints(&MeshSnapshot::default(), &eps, None, Addresses::IpOnly).len(),
            1
        );
        assert_eq!(
            lb_endpoints(&MeshSnapshot::default(), &eps, None, Addresses::Any).len(),
            2
        );
    }

    #[test]
    fn empty_assignment_has_no_groups() {
        let a = assignment("outbound|80||a.b", Vec::new());
        assert_eq!(a.cluster_name, "outbound|80||a.b");
        assert!(a.endpoints.is_empty());
        let l = local_assignment("inbound|8080||", "127.0.0.1", 8080);
        assert_eq!(
            addr_no_weight(&l.endpoints[0].lb_endpoints[0]),
            ("127.0.0.1".into(), 8080)
        );
    }

    fn addr_no_weight(e: &LbEndpoint) -> (String, u32) {
        let Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(a), ..
        })) = &e.host_identifier
        else {
            panic!()
        };
        let Some(AddressKind::SocketAddress(s)) = &a.address else {
            panic!()
        };
        let Some(
            envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(p),
        ) = s.port_specifier
        else {
            panic!()
        };
        (s.address.clone(), p)
    }
}
