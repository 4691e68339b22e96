//! The span collector's cluster: `zipkin` (Zipkin v2 JSON) or `opentelemetry` (OTLP/HTTP),
//! emitted in every proxy's CDS when the snapshot configures tracing
//! (`SnapshotOptions.tracing`), as Istio's bootstrap carries its `zipkin` cluster.
//!
//! The cluster is STATIC when the collector's address is an IP, STRICT_DNS (`V4_PREFERRED`)
//! when it is a name; one endpoint, a 1 s connect timeout, plain HTTP/1.1 (no upstream
//! protocol options), ROUND_ROBIN. The HCM `tracing` that sends spans to it is built by
//! [`crate::listener::trace`].

use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{DiscoveryType, DnsLookupFamily};
use mast_model::{TraceCollector, TracingOptions};

use super::draft::Draft;
use super::pb;
use crate::endpoint;

/// The cluster Zipkin spans are posted through (Istio's name).
pub const ZIPKIN_CLUSTER: &str = "zipkin";
/// The cluster OTLP/HTTP spans are posted through.
pub const OPENTELEMETRY_CLUSTER: &str = "opentelemetry";

/// Connect timeout of the collector cluster (Istio's bootstrap: 1 s).
const COLLECTOR_CONNECT_TIMEOUT_SECS: i64 = 1;

/// Where a collector is, parsed from its `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorTarget {
    /// The cluster spans go through: [`ZIPKIN_CLUSTER`] or [`OPENTELEMETRY_CLUSTER`].
    pub cluster: &'static str,
    /// The host as written (an IP without brackets, or a DNS name).
    pub host: String,
    /// The port.
    pub port: u16,
    /// Whether `host` is an IP address (STATIC) rather than a name (STRICT_DNS).
    pub is_ip: bool,
    /// The HTTP path spans are posted to.
    pub path: String,
}

impl CollectorTarget {
    /// Parses the collector of `options`; `None` (with a warning) when its address is not
    /// `host:port`: no tracing is emitted then, since Envoy rejects a tracer whose cluster is
    /// missing.
    pub fn of(options: &TracingOptions) -> Option<Self> {
        let (cluster, address, path) = match &options.collector {
            TraceCollector::Zipkin { address, path } => (ZIPKIN_CLUSTER, address, path),
            TraceCollector::Otlp { address, path } => (OPENTELEMETRY_CLUSTER, address, path),
        };
        let Some((host, port, is_ip)) = split_host_port(address) else {
            tracing::warn!(%address, "trace collector address is not host:port; tracing not configured");
            return None;
        };
        let path = if path.starts_with('/') {
            path.clone()
        } else {
            format!("/{path}")
        };
        Some(Self {
            cluster,
            host,
            port,
            is_ip,
            path,
        })
    }

    /// `host:port`, with brackets around an IPv6 host.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// `host:port` → (host, port, host is an IP); IPv6 hosts in brackets.
fn split_host_port(address: &str) -> Option<(String, u16, bool)> {
    if let Ok(sock) = address.parse::<SocketAddr>() {
        return Some((sock.ip().to_string(), sock.port(), true));
    }
    let (host, port) = address.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    if port == 0 || !valid {
        return None;
    }
    Some((host.to_owned(), port, host.parse::<IpAddr>().is_ok()))
}

/// The collector cluster for `options`, or `None` when its address cannot be used.
pub fn collector_cluster(options: &TracingOptions) -> Option<Cluster> {
    let target = CollectorTarget::of(options)?;
    let kind = if target.is_ip {
        DiscoveryType::Static
    } else {
        DiscoveryType::StrictDns
    };
    let mut d = Draft::new(target.cluster, kind);
    d.cluster.connect_timeout = Some(pb::seconds(COLLECTOR_CONNECT_TIMEOUT_SECS));
    d.cluster.common_lb_config = None;
    if !target.is_ip {
        d.cluster.dns_lookup_family = DnsLookupFamily::V4Preferred as i32;
    }
    d.cluster.load_assignment = Some(endpoint::local_assignment(
        target.cluster,
        &target.host,
        target.port,
    ));
    Some(d.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::cluster::ClusterDiscoveryType;
    use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
    use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
    use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;

    fn zipkin(address: &str) -> TracingOptions {
        TracingOptions {
            sampling_bp: 10000,
            collector: TraceCollector::Zipkin {
                address: address.into(),
                path: "/api/v2/spans".into(),
            },
        }
    }

    fn endpoint_of(c: &Cluster) -> (String, u32) {
        let la = c.load_assignment.as_ref().unwrap();
        let Some(HostIdentifier::Endpoint(ep)) = &la.endpoints[0].lb_endpoints[0].host_identifier
        else {
            panic!("an endpoint")
        };
        let Some(AddressKind::SocketAddress(sa)) = &ep.address.as_ref().unwrap().address else {
            panic!("a socket address")
        };
        let Some(PortSpecifier::PortValue(port)) = sa.port_specifier else {
            panic!("a port")
        };
        (sa.address.clone(), port)
    }

    fn kind(c: &Cluster) -> DiscoveryType {
        let Some(ClusterDiscoveryType::Type(t)) = c.cluster_discovery_type else {
            panic!("a discovery type")
        };
        DiscoveryType::try_from(t).unwrap()
    }

    #[test]
    fn ip_collector_is_static() {
        let c = collector_cluster(&zipkin("127.0.0.1:20001")).unwrap();
        assert_eq!(c.name, "zipkin");
        assert_eq!(kind(&c), DiscoveryType::Static);
        assert_eq!(endpoint_of(&c), ("127.0.0.1".into(), 20001));
        assert_eq!(c.connect_timeout, Some(pb::seconds(1)));
        assert!(
            c.typed_extension_protocol_options.is_empty(),
            "plain HTTP/1.1"
        );
        assert_eq!(c.load_assignment.unwrap().cluster_name, "zipkin");
    }

    #[test]
    fn dns_collector_is_strict_dns() {
        let options = TracingOptions {
            sampling_bp: 100,
            collector: TraceCollector::Otlp {
                address: "otel-collector.observability:4318".into(),
                path: "v1/traces".into(),
            },
        };
        let c = collector_cluster(&options).unwrap();
        assert_eq!(c.name, "opentelemetry");
        assert_eq!(kind(&c), DiscoveryType::StrictDns);
        assert_eq!(c.dns_lookup_family, DnsLookupFamily::V4Preferred as i32);
        assert_eq!(
            endpoint_of(&c),
            ("otel-collector.observability".into(), 4318)
        );
        assert_eq!(CollectorTarget::of(&options).unwrap().path, "/v1/traces");
    }

    #[test]
    fn ipv6_collector() {
        let t = CollectorTarget::of(&zipkin("[::1]:9411")).unwrap();
        assert_eq!((t.host.as_str(), t.port, t.is_ip), ("::1", 9411, true));
        assert_eq!(t.authority(), "[::1]:9411");
        let c = collector_cluster(&zipkin("[::1]:9411")).unwrap();
        assert_eq!(endpoint_of(&c), ("::1".into(), 9411));
    }

    #[test]
    fn bad_addresses_give_nothing() {
        for bad in [
            "",
            "zipkin",
            "zipkin:",
            ":9411",
            "zipkin:0",
            "zip kin:9411",
            "a:99999",
        ] {
            assert!(collector_cluster(&zipkin(bad)).is_none(), "{bad:?}");
        }
    }
}
