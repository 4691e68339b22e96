//! Clusters (CDS), endpoints (EDS), load balancing, circuit breakers and outlier detection.
//!
//! - [`convert`] / [`assignment`]: protos → [`ClusterConfig`] / [`Assignment`] (validated once);
//! - [`manager`]: the [`ClusterManager`] holding every [`Cluster`] (arc-swapped map);
//! - [`state`]: a cluster at run time ([`Cluster::select`], breakers, outlier ejection);
//! - [`lb`], [`ring`], [`maglev`]: the load balancers; [`outlier`]: outlier detection;
//! - [`breaker`]: request and retry breakers; [`dns`]: STRICT_DNS and the forward-proxy cache;
//! - [`endpoint`]: an [`Endpoint`] (host) that sends requests through [`crate::upstream`].

pub mod assignment;
pub mod breaker;
pub mod convert;
mod convert_opts;
pub mod dns;
pub mod endpoint;
pub mod lb;
pub mod maglev;
pub mod manager;
pub mod outlier;
pub mod ring;
pub mod state;

pub use crate::upstream::{UpstreamConnection, UpstreamError};
pub use assignment::Assignment;
pub use breaker::{Overflow, RequestGuard, RetryGuard};
pub use convert::ClusterConfig;
pub use endpoint::Endpoint;
pub use manager::ClusterManager;
pub use outlier::Outcome;
pub use state::Cluster;

/// What the load balancer needs to know about a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct LbContext<'a> {
    /// The route's hash-policy result (ring hash and maglev); `None` → random.
    pub hash: Option<u64>,
    /// Hosts already tried by this request (retries avoid them).
    pub previous: &'a [std::net::SocketAddr],
    /// How many more picks may be made to avoid `previous` hosts.
    pub max_attempts: u32,
    /// `host:port` or `host` (port 80) for the dynamic forward proxy.
    pub authority: Option<&'a str>,
    /// The downstream connection's original destination (ORIGINAL_DST).
    pub original_dst: Option<std::net::SocketAddr>,
}

/// No endpoint could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// No healthy host (flag UH).
    #[error("no healthy upstream")]
    NoHealthyUpstream,
    /// The dynamic forward proxy could not resolve the host (flag DF).
    #[error("DNS resolution failed for {0:?}")]
    DnsFailure(String),
    /// An ORIGINAL_DST cluster got no original destination.
    #[error("no original destination")]
    NoOriginalDst,
}

#[cfg(test)]
mod tests;
