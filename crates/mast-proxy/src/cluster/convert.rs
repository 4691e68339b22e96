//! `Cluster` (CDS) → [`ClusterConfig`]: discovery type, load balancer, circuit breakers,
//! outlier detection, upstream HTTP protocol options and TCP options, validated once.
//! Anything mastd does not emit and that would change behaviour is refused with the field path.

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as PbCluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbConfig, LbPolicy as PbLbPolicy,
};
use envoy_types::pb::envoy::extensions::clusters::dynamic_forward_proxy::v3::ClusterConfig as DfpConfig;
use envoy_types::pb::envoy::extensions::clusters::dynamic_forward_proxy::v3::cluster_config::ClusterImplementationSpecifier;
use envoy_types::pb::google::protobuf::Duration as PbDuration;
use prost::Message as _;

use super::assignment::{AssignedEndpoint, HostSpec, hosts};
use super::convert_opts::{breakers, http_options, keepalive, outlier};
use super::outlier::OutlierConfig;
use crate::error::ConfigError;
use crate::tls::{SecretStore, Transports};
use crate::upstream::{Limits, UpstreamOptions};

pub(crate) const KIND: &str = "Cluster";
const DFP_TYPE: &str = "envoy.clusters.dynamic_forward_proxy";

/// DNS address family preference (`dns_lookup_family`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    V4Only,
    V6Only,
    V4Preferred,
    /// V6 preferred (Envoy's AUTO).
    Auto,
    All,
}

/// How a cluster finds its endpoints.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Discovery {
    /// Inline IP endpoints.
    Static(Vec<AssignedEndpoint>),
    /// Endpoints from EDS.
    Eds,
    /// Inline host names resolved every `refresh`.
    StrictDns {
        hosts: Vec<HostSpec>,
        family: Family,
        refresh: Duration,
    },
    /// The connection's original destination.
    OriginalDst,
    /// The request's authority, resolved through a DNS cache.
    ForwardProxy(DnsCacheSettings),
}

/// The dynamic forward proxy's DNS cache settings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DnsCacheSettings {
    pub name: String,
    pub family: Family,
    pub refresh: Duration,
    pub host_ttl: Duration,
    pub max_hosts: usize,
}

/// The load-balancing policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum LbPolicy {
    RoundRobin,
    LeastRequest { choice_count: u32 },
    Random,
    RingHash { min_size: u64, max_size: u64 },
    Maglev { table_size: u64 },
    ClusterProvided,
}

/// A converted, validated Cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    pub(crate) name: String,
    pub(crate) discovery: Discovery,
    pub(crate) lb: LbPolicy,
    pub(crate) upstream: UpstreamOptions,
    pub(crate) limits: Limits,
    pub(crate) outlier: Option<OutlierConfig>,
    /// `common_lb_config.healthy_panic_threshold` in percent (Envoy default 50; 0 disables).
    pub(crate) panic_threshold: f64,
    /// `transport_socket` and `transport_socket_matches`.
    pub(crate) transports: Transports,
}

pub(crate) fn dur(d: &PbDuration) -> Duration {
    Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32)
}

impl ClusterConfig {
    /// Converts and validates a CDS Cluster; SDS secrets resolve to the process-wide
    /// [`SecretStore::global`].
    pub fn from_proto(c: &PbCluster) -> Result<Self, ConfigError> {
        Self::from_proto_with(c, SecretStore::global())
    }

    /// [`Self::from_proto`] with SDS secrets (`default`, `ROOTCA`) from `store`.
    pub fn from_proto_with(
        c: &PbCluster,
        store: &std::sync::Arc<SecretStore>,
    ) -> Result<Self, ConfigError> {
        let name = c.name.as_str();
        let err = |field: &str, reason: &str| ConfigError::new(KIND, name, field, reason);
        if name.is_empty() {
            return Err(err("name", "a name is required"));
        }
        unsupported(c)?;
        let mut upstream = http_options(c)?;
        upstream.connect_timeout = c
            .connect_timeout
            .as_ref()
            .map_or(Duration::from_secs(5), dur);
        if upstream.connect_timeout.is_zero() {
            return Err(err("connect_timeout", "must be greater than 0"));
        }
        upstream.keepalive = keepalive(c);
        upstream.bind = bind(c)?;
        let discovery = discovery(c)?;
        let lb = lb_policy(c, &discovery)?;
        let panic_threshold = c
            .common_lb_config
            .as_ref()
            .and_then(|l| l.healthy_panic_threshold.as_ref())
            .map_or(50.0, |p| p.value);
        if !(0.0..=100.0).contains(&panic_threshold) {
            return Err(err(
                "common_lb_config.healthy_panic_threshold.value",
                "must be within 0-100",
            ));
        }
        let transports = Transports::from_cluster(
            c.transport_socket.as_ref(),
            &c.transport_socket_matches,
            store,
            (upstream.auto_sni, upstream.auto_san),
        )
        .map_err(|(f, r)| ConfigError::new(KIND, name, f, r))?;
        Ok(Self {
            name: name.to_owned(),
            discovery,
            lb,
            upstream,
            limits: breakers(c)?,
            outlier: outlier(c)?,
            panic_threshold,
            transports,
        })
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cluster's `connect_timeout`.
    pub fn connect_timeout(&self) -> Duration {
        self.upstream.connect_timeout
    }

    /// Whether the cluster's endpoints come from EDS.
    pub fn is_eds(&self) -> bool {
        matches!(self.discovery, Discovery::Eds)
    }
}

/// Fields that change behaviour and that mast-proxy does not implement.
#[allow(deprecated)]
fn unsupported(c: &PbCluster) -> Result<(), ConfigError> {
    let lb = c.common_lb_config.as_ref();
    let checks: [(&str, bool); 15] = [
        (
            "common_lb_config.locality_weighted_lb_config",
            lb.is_some_and(|l| l.locality_config_specifier.is_some()),
        ),
        (
            "common_lb_config.consistent_hashing_lb_config",
            lb.is_some_and(|l| l.consistent_hashing_lb_config.is_some()),
        ),
        (
            "transport_socket_matcher",
            c.transport_socket_matcher.is_some(),
        ),
        ("health_checks", !c.health_checks.is_empty()),
        ("lb_subset_config", c.lb_subset_config.is_some()),
        ("load_balancing_policy", c.load_balancing_policy.is_some()),
        ("upstream_config", c.upstream_config.is_some()),
        ("filters", !c.filters.is_empty()),
        ("dns_resolvers", !c.dns_resolvers.is_empty()),
        (
            "typed_dns_resolver_config",
            c.typed_dns_resolver_config.is_some(),
        ),
        ("http2_protocol_options", c.http2_protocol_options.is_some()),
        (
            "max_requests_per_connection",
            c.max_requests_per_connection.is_some(),
        ),
        ("preconnect_policy", c.preconnect_policy.is_some()),
        (
            "connection_pool_per_downstream_connection",
            c.connection_pool_per_downstream_connection,
        ),
        ("protocol_selection", c.protocol_selection != 0),
    ];
    match checks.iter().find(|(_, set)| *set) {
        Some((field, _)) => Err(ConfigError::new(KIND, &c.name, *field, "not supported")),
        None => Ok(()),
    }
}

fn bind(c: &PbCluster) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    let Some(b) = &c.upstream_bind_config else {
        return Ok(None);
    };
    let Some(sa) = &b.source_address else {
        return Ok(None);
    };
    let ip: std::net::IpAddr = sa.address.parse().map_err(|_| {
        ConfigError::new(
            KIND,
            &c.name,
            "upstream_bind_config.source_address.address",
            "not an IP address",
        )
    })?;
    let port = match sa.port_specifier {
        Some(
            envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(p),
        ) => u16::try_from(p).unwrap_or(0),
        _ => 0,
    };
    Ok(Some(std::net::SocketAddr::new(ip, port)))
}

fn family(v: i32, c: &PbCluster, field: &str) -> Result<Family, ConfigError> {
    Ok(match v {
        0 => Family::Auto,
        1 => Family::V4Only,
        2 => Family::V6Only,
        3 => Family::V4Preferred,
        4 => Family::All,
        _ => return Err(ConfigError::new(KIND, &c.name, field, "unknown family")),
    })
}

#[allow(deprecated)] // dns_refresh_rate: Envoy still honours it
fn discovery(c: &PbCluster) -> Result<Discovery, ConfigError> {
    let err = |field: &str, reason: &str| ConfigError::new(KIND, &c.name, field, reason);
    let t = match &c.cluster_discovery_type {
        None => DiscoveryType::Static,
        Some(ClusterDiscoveryType::Type(t)) => {
            DiscoveryType::try_from(*t).map_err(|_| err("type", "unknown discovery type"))?
        }
        Some(ClusterDiscoveryType::ClusterType(ct)) => {
            if ct.name != DFP_TYPE {
                return Err(err(
                    "cluster_type.name",
                    "only envoy.clusters.dynamic_forward_proxy is supported",
                ));
            }
            return forward_proxy(c, ct.typed_config.as_ref());
        }
    };
    let inline = match &c.load_assignment {
        Some(a) => hosts(a, KIND, &c.name, "load_assignment.")?,
        None => Vec::new(),
    };
    match t {
        DiscoveryType::Static => {
            let mut eps = Vec::with_capacity(inline.len());
            for (path, h) in inline {
                let ip: std::net::IpAddr = h.host.parse().map_err(|_| {
                    err(
                        &format!("{path}.endpoint.address.socket_address.address"),
                        "a STATIC cluster needs IP addresses",
                    )
                })?;
                eps.push(AssignedEndpoint {
                    addr: std::net::SocketAddr::new(ip, h.port),
                    weight: h.weight,
                    metadata: h.metadata,
                });
            }
            Ok(Discovery::Static(eps))
        }
        DiscoveryType::StrictDns => Ok(Discovery::StrictDns {
            hosts: inline.into_iter().map(|(_, h)| h).collect(),
            family: family(c.dns_lookup_family, c, "dns_lookup_family")?,
            refresh: c
                .dns_refresh_rate
                .as_ref()
                .map_or(Duration::from_secs(5), dur),
        }),
        DiscoveryType::Eds => {
            if c.load_assignment.is_some() {
                return Err(err(
                    "load_assignment",
                    "an EDS cluster takes its endpoints from EDS",
                ));
            }
            let eds = c.eds_cluster_config.as_ref();
            if eds.is_some_and(|e| !e.service_name.is_empty() && e.service_name != c.name) {
                return Err(err(
                    "eds_cluster_config.service_name",
                    "must be empty or the cluster name",
                ));
            }
            Ok(Discovery::Eds)
        }
        DiscoveryType::OriginalDst => Ok(Discovery::OriginalDst),
        DiscoveryType::LogicalDns => Err(err("type", "LOGICAL_DNS is not supported")),
    }
}

fn forward_proxy(
    c: &PbCluster,
    any: Option<&envoy_types::pb::google::protobuf::Any>,
) -> Result<Discovery, ConfigError> {
    let err = |field: &str, reason: String| ConfigError::new(KIND, &c.name, field, reason);
    let any = any.ok_or_else(|| err("cluster_type.typed_config", "required".into()))?;
    let cfg = DfpConfig::decode(any.value.as_slice())
        .map_err(|e| err("cluster_type.typed_config", e.to_string()))?;
    let Some(ClusterImplementationSpecifier::DnsCacheConfig(d)) =
        cfg.cluster_implementation_specifier
    else {
        return Err(err(
            "cluster_type.typed_config.dns_cache_config",
            "a dns_cache_config is required".into(),
        ));
    };
    if d.typed_dns_resolver_config.is_some() || !d.preresolve_hostnames.is_empty() {
        return Err(err(
            "cluster_type.typed_config.dns_cache_config",
            "only name, dns_lookup_family, dns_refresh_rate, host_ttl and max_hosts are supported"
                .into(),
        ));
    }
    Ok(Discovery::ForwardProxy(DnsCacheSettings {
        name: d.name,
        family: family(
            d.dns_lookup_family,
            c,
            "cluster_type.typed_config.dns_cache_config.dns_lookup_family",
        )?,
        refresh: d
            .dns_refresh_rate
            .as_ref()
            .map_or(Duration::from_secs(60), dur),
        host_ttl: d.host_ttl.as_ref().map_or(Duration::from_secs(300), dur),
        max_hosts: d.max_hosts.map_or(1024, |m| m.value as usize),
    }))
}

fn lb_policy(c: &PbCluster, discovery: &Discovery) -> Result<LbPolicy, ConfigError> {
    let err = |field: &str, reason: &str| ConfigError::new(KIND, &c.name, field, reason);
    let policy = PbLbPolicy::try_from(c.lb_policy).map_err(|_| err("lb_policy", "unknown"))?;
    let provided = matches!(
        discovery,
        Discovery::OriginalDst | Discovery::ForwardProxy(_)
    );
    if provided != (policy == PbLbPolicy::ClusterProvided) {
        return Err(err(
            "lb_policy",
            "CLUSTER_PROVIDED goes with ORIGINAL_DST and the dynamic forward proxy, only",
        ));
    }
    let lb = match policy {
        PbLbPolicy::RoundRobin => LbPolicy::RoundRobin,
        PbLbPolicy::LeastRequest => {
            let choice_count = match &c.lb_config {
                Some(LbConfig::LeastRequestLbConfig(l)) => l.choice_count.map_or(2, |v| v.value),
                _ => 2,
            };
            if choice_count < 2 {
                return Err(err(
                    "least_request_lb_config.choice_count",
                    "must be at least 2",
                ));
            }
            LbPolicy::LeastRequest { choice_count }
        }
        PbLbPolicy::Random => LbPolicy::Random,
        PbLbPolicy::RingHash => {
            let (min, max) = match &c.lb_config {
                Some(LbConfig::RingHashLbConfig(r)) => (
                    r.minimum_ring_size.map_or(1024, |v| v.value),
                    r.maximum_ring_size.map_or(8 * 1024 * 1024, |v| v.value),
                ),
                _ => (1024, 8 * 1024 * 1024),
            };
            if min == 0 || min > max || max > 8 * 1024 * 1024 {
                return Err(err(
                    "ring_hash_lb_config",
                    "need 0 < minimum_ring_size <= maximum_ring_size <= 8M",
                ));
            }
            LbPolicy::RingHash {
                min_size: min,
                max_size: max,
            }
        }
        PbLbPolicy::Maglev => {
            let size = match &c.lb_config {
                Some(LbConfig::MaglevLbConfig(m)) => m.table_size.map_or(65537, |v| v.value),
                _ => 65537,
            };
            if !is_prime(size) || size > 5_000_011 {
                return Err(err(
                    "maglev_lb_config.table_size",
                    "must be a prime up to 5000011",
                ));
            }
            LbPolicy::Maglev { table_size: size }
        }
        PbLbPolicy::ClusterProvided => LbPolicy::ClusterProvided,
        _ => return Err(err("lb_policy", "not supported")),
    };
    lb_config_matches(c, &lb)?;
    Ok(lb)
}

/// `lb_config` must fit the policy; slow start is ignored (logged).
fn lb_config_matches(c: &PbCluster, lb: &LbPolicy) -> Result<(), ConfigError> {
    let ok = match (&c.lb_config, lb) {
        (None, _) => true,
        (Some(LbConfig::RoundRobinLbConfig(r)), LbPolicy::RoundRobin) => {
            if r.slow_start_config.is_some() {
                tracing::debug!(cluster = %c.name, "slow_start_config ignored");
            }
            true
        }
        (Some(LbConfig::LeastRequestLbConfig(l)), LbPolicy::LeastRequest { .. }) => {
            if l.slow_start_config.is_some() {
                tracing::debug!(cluster = %c.name, "slow_start_config ignored");
            }
            true
        }
        (Some(LbConfig::RingHashLbConfig(_)), LbPolicy::RingHash { .. }) => true,
        (Some(LbConfig::MaglevLbConfig(_)), LbPolicy::Maglev { .. }) => true,
        (Some(LbConfig::OriginalDstLbConfig(o)), LbPolicy::ClusterProvided) => {
            !o.use_http_header && o.upstream_port_override.is_none()
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            KIND,
            &c.name,
            "lb_config",
            "does not fit lb_policy or sets unsupported fields",
        ))
    }
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut i = 2;
    while i * i <= n {
        if n.is_multiple_of(i) {
            return false;
        }
        i += 1;
    }
    true
}
