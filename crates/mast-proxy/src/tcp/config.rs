//! TcpProxy (a listener's terminal network filter) → [`TcpProxyConfig`].

use std::time::Duration;

use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy, tcp_proxy::ClusterSpecifier,
};

use crate::hcm::config::duration;

/// A converted TCP proxy.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpProxyConfig {
    /// `stat_prefix`.
    pub stat_prefix: String,
    /// The upstream clusters with their weights (one entry: a single cluster).
    pub clusters: Vec<(String, u32)>,
    /// Idle timeout (Envoy's default 1 h; None: disabled).
    pub idle_timeout: Option<Duration>,
    /// Connection attempts (Envoy's default 1).
    pub max_connect_attempts: u32,
}

impl TcpProxyConfig {
    /// Converts and validates; errors are `(field, reason)`.
    pub fn from_proto(t: &TcpProxy) -> Result<Self, (String, String)> {
        let clusters = match &t.cluster_specifier {
            Some(ClusterSpecifier::Cluster(c)) => vec![(c.clone(), 1)],
            Some(ClusterSpecifier::WeightedClusters(w)) => w
                .clusters
                .iter()
                .filter(|c| c.weight > 0)
                .map(|c| (c.name.clone(), c.weight))
                .collect(),
            None => Vec::new(),
        };
        if clusters.is_empty() {
            return Err(("cluster_specifier".into(), "a cluster is required".into()));
        }
        crate::hcm::config::note_access_log(&t.access_log);
        if t.tunneling_config.is_some() {
            return Err((
                "tunneling_config".into(),
                "tunneling is not supported".into(),
            ));
        }
        Ok(Self {
            stat_prefix: t.stat_prefix.clone(),
            clusters,
            idle_timeout: match &t.idle_timeout {
                None => Some(Duration::from_secs(3600)),
                Some(d) => duration(Some(d)),
            },
            max_connect_attempts: t.max_connect_attempts.map_or(1, |m| m.value.max(1)),
        })
    }

    /// The cluster for a connection: weighted by `random`.
    pub fn pick(&self, random: u64) -> &str {
        let total: u64 = self.clusters.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut at = random % total.max(1);
        for (name, w) in &self.clusters {
            if at < u64::from(*w) {
                return name;
            }
            at -= u64::from(*w);
        }
        self.clusters.first().map_or("", |(n, _)| n.as_str())
    }
}
