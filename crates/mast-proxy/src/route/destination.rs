//! Where a forwarding route sends a request: one cluster, or weighted clusters (each with
//! its own header mutations and host rewrite) picked as Envoy picks them.

use envoy_types::pb::envoy::config::route::v3::WeightedCluster;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::weighted_cluster::{ClusterWeight, cluster_weight};
use http::HeaderValue;

use super::headers::HeaderMutation;
use super::proto::{Ctx, join};
use crate::error::ConfigError;

/// Where a request goes: a cluster, with the mutations of its weighted-cluster entry.
#[derive(Clone, Debug)]
pub struct Destination {
    /// The cluster name.
    pub cluster: String,
    /// Request header mutation of this weighted-cluster entry (apply before the route's).
    pub request_headers: HeaderMutation,
    /// Response header mutation of this weighted-cluster entry (apply before the route's).
    pub response_headers: HeaderMutation,
    /// This entry's host rewrite; it takes precedence over [`Forward::host_rewrite`].
    pub host_rewrite: Option<HeaderValue>,
}

#[derive(Clone, Debug)]
pub(crate) enum Destinations {
    Single(Destination),
    /// Entries but the last with the exclusive end of their weight range, then the last
    /// entry (which ends at `total`, the sum of the weights).
    Weighted {
        rest: Vec<(u64, Destination)>,
        last: Destination,
        total: u64,
    },
}

pub(crate) fn host_value(ctx: Ctx<'_>, path: &str, h: &str) -> Result<HeaderValue, ConfigError> {
    if h.is_empty() {
        return Err(ctx.err(path, "empty host"));
    }
    HeaderValue::from_str(h).map_err(|e| ctx.err(path, format!("invalid host: {e}")))
}

impl Destinations {
    /// Converts the `cluster_specifier` of the `RouteAction` at `path`.
    pub fn from_proto(
        ctx: Ctx<'_>,
        path: &str,
        c: Option<&ClusterSpecifier>,
    ) -> Result<Destinations, ConfigError> {
        match c {
            Some(ClusterSpecifier::Cluster(name)) if !name.is_empty() => {
                Ok(Destinations::Single(Destination {
                    cluster: name.clone(),
                    request_headers: HeaderMutation::default(),
                    response_headers: HeaderMutation::default(),
                    host_rewrite: None,
                }))
            }
            Some(ClusterSpecifier::Cluster(_)) => {
                Err(ctx.err(join(path, "cluster"), "empty cluster name"))
            }
            Some(ClusterSpecifier::WeightedClusters(w)) => {
                weighted(ctx, &join(path, "weighted_clusters"), w)
            }
            Some(ClusterSpecifier::ClusterHeader(_)) => {
                Err(ctx.err(join(path, "cluster_header"), "not supported by mast-proxy"))
            }
            Some(ClusterSpecifier::ClusterSpecifierPlugin(_)) => Err(ctx.err(
                join(path, "cluster_specifier_plugin"),
                "not supported by mast-proxy",
            )),
            Some(ClusterSpecifier::InlineClusterSpecifierPlugin(_)) => Err(ctx.err(
                join(path, "inline_cluster_specifier_plugin"),
                "not supported by mast-proxy",
            )),
            None => Err(ctx.err(path, "no cluster_specifier")),
        }
    }

    /// Envoy's weighted pick: `random % total`, then the entry whose range holds it.
    pub fn pick(&self, random: u64) -> &Destination {
        match self {
            Destinations::Single(d) => d,
            Destinations::Weighted { rest, last, total } => {
                let v = random % total;
                let i = rest.partition_point(|(end, _)| *end <= v);
                rest.get(i).map_or(last, |(_, d)| d)
            }
        }
    }

    /// Every cluster, in configuration order.
    pub fn clusters(&self) -> impl Iterator<Item = &str> {
        let (rest, last) = match self {
            Destinations::Single(d) => (&[][..], d),
            Destinations::Weighted { rest, last, .. } => (rest.as_slice(), last),
        };
        rest.iter()
            .map(|(_, d)| d)
            .chain([last])
            .map(|d| d.cluster.as_str())
    }
}

#[allow(deprecated)]
fn weighted(ctx: Ctx<'_>, path: &str, w: &WeightedCluster) -> Result<Destinations, ConfigError> {
    // runtime_key_prefix names runtime keys: without a runtime the configured weights apply.
    ctx.deny(
        path,
        &[("random_value_specifier", w.random_value_specifier.is_some())],
    )?;
    if w.clusters.is_empty() {
        return Err(ctx.err(join(path, "clusters"), "at least one cluster is required"));
    }
    let mut entries = Vec::with_capacity(w.clusters.len());
    let mut total = 0u64;
    for (i, c) in w.clusters.iter().enumerate() {
        let p = format!("{path}.clusters[{i}]");
        let weight = u64::from(c.weight.as_ref().map_or(0, |w| w.value));
        let dest = cluster_weight(ctx, &p, c)?;
        if weight > 0 {
            total += weight;
            entries.push((total, dest));
        }
    }
    let Some((_, last)) = entries.pop() else {
        return Err(ctx.err(
            join(path, "clusters"),
            "the sum of the weights must be greater than 0",
        ));
    };
    if let Some(t) = &w.total_weight
        && u64::from(t.value) != total
    {
        return Err(ctx.err(
            join(path, "total_weight"),
            format!("{} is not the sum of the weights ({total})", t.value),
        ));
    }
    Ok(Destinations::Weighted {
        rest: entries,
        last,
        total,
    })
}

fn cluster_weight(ctx: Ctx<'_>, path: &str, c: &ClusterWeight) -> Result<Destination, ConfigError> {
    ctx.deny(
        path,
        &[
            ("cluster_header", !c.cluster_header.is_empty()),
            ("metadata_match", c.metadata_match.is_some()),
            (
                "typed_per_filter_config",
                !c.typed_per_filter_config.is_empty(),
            ),
        ],
    )?;
    if c.name.is_empty() {
        return Err(ctx.err(join(path, "name"), "empty cluster name"));
    }
    let host_rewrite = match &c.host_rewrite_specifier {
        Some(cluster_weight::HostRewriteSpecifier::HostRewriteLiteral(h)) => {
            Some(host_value(ctx, &join(path, "host_rewrite_literal"), h)?)
        }
        None => None,
    };
    Ok(Destination {
        cluster: c.name.clone(),
        request_headers: HeaderMutation::from_fields(
            ctx,
            path,
            "request",
            &c.request_headers_to_add,
            &c.request_headers_to_remove,
        )?,
        response_headers: HeaderMutation::from_fields(
            ctx,
            path,
            "response",
            &c.response_headers_to_add,
            &c.response_headers_to_remove,
        )?,
        host_rewrite,
    })
}
