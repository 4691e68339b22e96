//! The SNI-named clusters of AUTO_PASSTHROUGH gateway servers (Istio's sni-dnat clusters):
//! for each service port (and DestinationRule subset) the gateway sees whose host one of the
//! servers' hosts covers (`MESH_EXTERNAL` services left out), a copy of its outbound cluster
//! named `outbound_.<port>_.<subset>_.<host>` (the SNI a client puts in its TLS hello for the
//! `sni_cluster` filter to pick), without TLS of its own (the client's TLS passes through).
//! EDS clusters get their endpoints under the same name ([`sni_endpoints`]). Generated only
//! when an AUTO_PASSTHROUGH server exists.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use mast_config::networking::gateway::ServerTlsMode;
use mast_core::Hostname;
use mast_model::{MeshSnapshot, ProxyNode};

use crate::cluster::{Target, build_outbound, outbound_targets};

/// `outbound_.<port>_.<subset>_.<host>` (Istio's `BuildDNSSrvSubsetKey`).
pub fn sni_cluster_name(port: u16, subset: &str, host: &Hostname) -> String {
    format!("outbound_.{port}_.{subset}_.{host}")
}

/// The hosts of the AUTO_PASSTHROUGH servers of `proxy`.
fn auto_passthrough_hosts(snapshot: &MeshSnapshot, proxy: &ProxyNode) -> Vec<Hostname> {
    let merged = snapshot.merged_gateway(proxy);
    let mut hosts: Vec<Hostname> = merged
        .servers()
        .filter(|(_, s)| s.tls_mode() == Some(ServerTlsMode::AutoPassthrough))
        .flat_map(|(_, s)| s.sni_hosts.iter().map(Hostname::new_unchecked))
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// The outbound targets the SNI clusters copy, with their SNI names.
fn sni_targets<'a>(snapshot: &'a MeshSnapshot, proxy: &ProxyNode) -> Vec<(String, Target<'a>)> {
    let hosts = auto_passthrough_hosts(snapshot, proxy);
    if hosts.is_empty() {
        return Vec::new();
    }
    outbound_targets(snapshot, proxy)
        .into_iter()
        .filter(|t| !t.service.mesh_external)
        .filter(|t| hosts.iter().any(|h| t.service.hostname.subset_of(h)))
        .map(|t| {
            let subset = t.subset.map_or("", |s| s.name.as_str());
            let name = sni_cluster_name(t.port.port, subset, &t.service.hostname);
            (name, t)
        })
        .collect()
}

/// The SNI clusters of `proxy` (none without an AUTO_PASSTHROUGH server).
pub fn sni_clusters(snapshot: &MeshSnapshot, proxy: &ProxyNode) -> Vec<Cluster> {
    sni_targets(snapshot, proxy)
        .into_iter()
        .filter_map(|(name, t)| {
            let mut c = build_outbound(&t, proxy, snapshot)?;
            c.name = name.clone();
            if let Some(eds) = c.eds_cluster_config.as_mut() {
                eds.service_name = name;
            }
            c.transport_socket = None;
            c.transport_socket_matches.clear();
            Some(c)
        })
        .collect()
}

/// The endpoints of the EDS SNI clusters: their outbound cluster's, renamed.
pub fn sni_endpoints(snapshot: &MeshSnapshot, proxy: &ProxyNode) -> Vec<ClusterLoadAssignment> {
    let targets = sni_targets(snapshot, proxy);
    if targets.is_empty() {
        return Vec::new();
    }
    let all = crate::endpoint::endpoints(snapshot, proxy);
    let mut out: Vec<ClusterLoadAssignment> = targets
        .iter()
        .filter_map(|(name, t)| {
            let cla = all.iter().find(|c| c.cluster_name == t.name)?;
            Some(ClusterLoadAssignment {
                cluster_name: name.clone(),
                ..cla.clone()
            })
        })
        .collect();
    out.sort_by(|a, b| a.cluster_name.cmp(&b.cluster_name));
    out
}
