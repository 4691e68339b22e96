//! CDS: the `Cluster`s a proxy needs, following Istio's cluster builder.
//!
//! - [`outbound`]: `outbound|<port>|<subset>|<host>` per visible service port and per subset of
//!   the DestinationRule that applies, EDS / STRICT_DNS / ORIGINAL_DST by resolution;
//! - [`local`]: `BlackHoleCluster`, `PassthroughCluster`, `ForwardProxyCluster` (ports-capture
//!   sidecars under ALLOW_ANY: the dynamic forward proxy, see [`crate::forward_proxy`]), and
//!   for sidecars `inbound|<port>||` (STATIC to the application on 127.0.0.1) and
//!   `InboundPassthroughCluster`;
//! - the traffic policy mapping: [`policy`] (port-level and subset merging), [`lb`], [`pool`]
//!   (circuit breakers and connection settings), [`outlier`], [`tls`]; [`draft`] holds a
//!   cluster with its upstream HTTP protocol options while it is built;
//! - [`trace`]: the span collector's cluster (`zipkin` / `opentelemetry`) when tracing is on;
//! - gateways (`router`) get no inbound clusters; their own part holds the SNI-named clusters
//!   of AUTO_PASSTHROUGH servers ([`crate::gateway::cluster`]).
//!
//! What is emitted field by field is listed in `docs/xds-subset.md`.

mod draft;
mod lb;
mod local;
mod outbound;
mod outlier;
pub(crate) mod pb;
mod policy;
mod pool;
pub(crate) mod tls;
pub mod trace;

#[cfg(test)]
mod tests;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use mast_model::{MeshSnapshot, NodeType, ProxyNode};

use crate::forward_proxy;
use crate::share::Part;

pub(crate) use outbound::{
    Discovery, Target, build as build_outbound, targets as outbound_targets,
    targets_where as outbound_targets_where,
};

/// Every `Cluster` for `proxy`, sorted by name; when two would share a name, the first
/// generated wins (outbound before the catch-alls before inbound).
pub fn clusters(snapshot: &MeshSnapshot, proxy: &ProxyNode) -> Vec<Cluster> {
    let mut all = clusters_part(snapshot, proxy, Part::Shared);
    all.extend(clusters_part(snapshot, proxy, Part::Own));
    sorted_unique(all, |c| c.name.as_str())
}

/// One [`Part`] of [`clusters`], sorted by name: outbound clusters and the catch-alls, or
/// the inbound clusters.
pub fn clusters_part(snapshot: &MeshSnapshot, proxy: &ProxyNode, part: Part) -> Vec<Cluster> {
    let mut all: Vec<Cluster> = Vec::new();
    match part {
        Part::Shared => {
            let targets = outbound_targets(snapshot, proxy);
            // Clusters are large (3.4 KB): grow the vector once.
            all.reserve_exact(targets.len() + 3);
            all.extend(
                targets
                    .iter()
                    .filter_map(|t| outbound::build(t, proxy, snapshot)),
            );
            all.push(local::blackhole());
            all.push(local::passthrough());
            if forward_proxy::enabled(proxy, snapshot.outbound_policy(proxy)) {
                all.push(local::forward_proxy());
            }
            if let Some(options) = &snapshot.options.tracing {
                all.extend(trace::collector_cluster(options));
            }
        }
        Part::Own => {
            if proxy.node_type == NodeType::Sidecar {
                all.extend(local::inbound(snapshot, proxy));
                all.push(local::inbound_passthrough(proxy));
            } else {
                all.extend(crate::gateway::cluster::sni_clusters(snapshot, proxy));
            }
        }
    }
    sorted_unique(all, |c| c.name.as_str())
}

/// Sorts by name (stable) and drops later duplicates.
///
/// Sorts indexes, then moves the items into place in the same buffer: a `Cluster` is over
/// 3 KiB, and sorting thousands of them directly, or collecting them into a new vector,
/// costs more than building them.
pub(crate) fn sorted_unique<T>(mut items: Vec<T>, name: impl Fn(&T) -> &str) -> Vec<T> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|a, b| name(&items[*a]).cmp(name(&items[*b])));
    let mut kept = vec![false; items.len()];
    let mut len = 0;
    for k in 0..order.len() {
        let i = order[k];
        if len > 0 && name(&items[order[len - 1]]) == name(&items[i]) {
            continue;
        }
        order[len] = i;
        kept[i] = true;
        len += 1;
    }
    order.truncate(len);
    order.extend((0..items.len()).filter(|i| !kept[*i]));
    permute(&mut items, &order);
    items.truncate(len);
    items
}

/// Moves `items[perm[k]]` to position `k`, for every `k` (`perm` is a permutation).
fn permute<T>(items: &mut [T], perm: &[usize]) {
    let mut done = vec![false; items.len()];
    for start in 0..items.len() {
        let mut j = start;
        while !done[j] {
            done[j] = true;
            let src = perm[j];
            if src == start {
                break;
            }
            items.swap(j, src);
            j = src;
        }
    }
}
