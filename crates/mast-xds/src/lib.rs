//! Pure translation from a [`MeshSnapshot`] and a [`ProxyNode`] to Envoy xDS v3
//! resources, following Istio's semantics. One generator per type URL: [`cluster`] (CDS),
//! [`endpoint`] (EDS), [`listener`] (LDS) and [`route`] (RDS); [`forward_proxy`] holds what
//! the three of them share for ports capture's dynamic forward proxy; [`gateway`] the
//! listeners, routes and SNI clusters of gateway (`router`) proxies. No I/O.
//!
//! What is emitted (type URLs, fields, filters) is written down in `docs/xds-subset.md`;
//! Mast's own proxy implements exactly that list.

pub mod authz;
pub mod cluster;
mod encode;
pub mod endpoint;
pub mod forward_proxy;
pub mod gateway;
pub mod listener;
pub mod names;
pub mod route;
pub mod sds;
pub mod share;

pub use share::{Part, ShareKey};

use std::collections::BTreeSet;

use envoy_types::pb::google::protobuf::Any;
use mast_core::Hostname;
use mast_model::{MeshSnapshot, ProxyNode};

/// `type.googleapis.com/envoy.config.cluster.v3.Cluster`.
pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// `type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment`.
pub const ENDPOINT_TYPE: &str =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
/// `type.googleapis.com/envoy.config.listener.v3.Listener`.
pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// `type.googleapis.com/envoy.config.route.v3.RouteConfiguration`.
pub const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

/// The order in which types are pushed: clusters before their endpoints, listeners before
/// their routes, so nothing refers to a resource the proxy does not have yet.
pub const PUSH_ORDER: [&str; 4] = [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE];

/// One generated resource: its name and the packed message.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedResource {
    /// The resource name (cluster name, listener name, route name).
    pub name: String,
    /// The message, packed.
    pub resource: Any,
}

/// Generates one [`Part`] of the resources of `type_url` for `proxy`; an unknown type gives
/// nothing. The shared part is the same for every proxy with the same [`ShareKey`]; the
/// two parts together are [`generate`]'s output (on a name clash, the shared one wins).
pub fn generate_part(
    snapshot: &MeshSnapshot,
    proxy: &ProxyNode,
    type_url: &str,
    part: Part,
) -> Vec<NamedResource> {
    match (type_url, part) {
        (CLUSTER_TYPE, _) => pack(cluster::clusters_part(snapshot, proxy, part), |c| {
            c.name.clone()
        }),
        (LISTENER_TYPE, _) => pack(listener::listeners_part(snapshot, proxy, part), |l| {
            l.name.clone()
        }),
        // A gateway's route tables depend on the Gateways selecting it: its own part.
        (ROUTE_TYPE, part) if proxy.node_type == mast_model::NodeType::Router => {
            if part == Part::Own {
                generate(snapshot, proxy, type_url)
            } else {
                Vec::new()
            }
        }
        (ENDPOINT_TYPE, Part::Shared) => pack(endpoint::endpoints(snapshot, proxy), |e| {
            e.cluster_name.clone()
        }),
        (ENDPOINT_TYPE, Part::Own) => pack(gateway::cluster::sni_endpoints(snapshot, proxy), |e| {
            e.cluster_name.clone()
        }),
        (ROUTE_TYPE, Part::Shared) => generate(snapshot, proxy, type_url),
        _ => Vec::new(),
    }
}

/// The shared part's endpoint assignments of the clusters of `hosts` only (see
/// [`endpoint::endpoints_for_hosts`]): after an endpoint-only change of those services, the
/// rest of the shared EDS part is unchanged.
pub fn generate_endpoints_for_hosts(
    snapshot: &MeshSnapshot,
    proxy: &ProxyNode,
    hosts: &BTreeSet<Hostname>,
) -> Vec<NamedResource> {
    pack(endpoint::endpoints_for_hosts(snapshot, proxy, hosts), |e| {
        e.cluster_name.clone()
    })
}

/// Generates every resource of `type_url` for `proxy`; an unknown type gives nothing.
pub fn generate(snapshot: &MeshSnapshot, proxy: &ProxyNode, type_url: &str) -> Vec<NamedResource> {
    match type_url {
        CLUSTER_TYPE => pack(cluster::clusters(snapshot, proxy), |c| c.name.clone()),
        ENDPOINT_TYPE => {
            let mut all = endpoint::endpoints(snapshot, proxy);
            all.extend(gateway::cluster::sni_endpoints(snapshot, proxy));
            all.sort_by(|a, b| a.cluster_name.cmp(&b.cluster_name));
            pack(all, |e| e.cluster_name.clone())
        }
        LISTENER_TYPE => pack(listener::listeners(snapshot, proxy), |l| l.name.clone()),
        ROUTE_TYPE => pack(route::routes(snapshot, proxy), |r| r.name.clone()),
        _ => Vec::new(),
    }
}

/// Packs each message with [`encode::pack_deterministic`]: map fields in key order, so equal
/// messages always give equal bytes (mastd hashes them to decide what to push).
fn pack<T: prost::Name + encode::Deterministic>(
    items: Vec<T>,
    name: impl Fn(&T) -> String,
) -> Vec<NamedResource> {
    items
        .into_iter()
        .map(|m| NamedResource {
            name: name(&m),
            resource: encode::pack_deterministic(m),
        })
        .collect()
}
