//! `ClusterLoadAssignment` → [`Assignment`]: the endpoints of an EDS cluster, and the inline
//! endpoints of STATIC / STRICT_DNS clusters (which may name hosts to resolve). Each endpoint
//! keeps its metadata (`transport_socket_matches` read
//! `filter_metadata["envoy.transport_socket_match"]`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{Metadata, address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, LbEndpoint, lb_endpoint, locality_lb_endpoints,
};

use crate::error::ConfigError;

const KIND: &str = "ClusterLoadAssignment";

/// One endpoint of an assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EndpointSpec {
    pub addr: SocketAddr,
    /// `load_balancing_weight`, at least 1.
    pub weight: u32,
}

/// An endpoint with its metadata (EDS, STATIC).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AssignedEndpoint {
    pub addr: SocketAddr,
    /// `load_balancing_weight`, at least 1.
    pub weight: u32,
    /// The endpoint's `metadata`, when set.
    pub metadata: Option<Arc<Metadata>>,
}

/// Endpoints handed to [`super::Cluster::set_endpoints`]: resolved DNS addresses (no
/// metadata) or assigned endpoints.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HostList<'a> {
    Plain(&'a [EndpointSpec]),
    Assigned(&'a [AssignedEndpoint]),
}

/// One endpoint of a [`HostList`]: address, weight, metadata.
pub(crate) type HostItem<'a> = (SocketAddr, u32, Option<&'a Arc<Metadata>>);

impl<'a> HostList<'a> {
    /// (address, weight, metadata) of each endpoint, in order.
    pub fn iter(self) -> Box<dyn Iterator<Item = HostItem<'a>> + 'a> {
        match self {
            Self::Plain(l) => Box::new(l.iter().map(|e| (e.addr, e.weight, None))),
            Self::Assigned(l) => {
                Box::new(l.iter().map(|e| (e.addr, e.weight, e.metadata.as_ref())))
            }
        }
    }

    /// How many endpoints.
    pub fn len(self) -> usize {
        match self {
            Self::Plain(l) => l.len(),
            Self::Assigned(l) => l.len(),
        }
    }
}

impl<'a, const N: usize> From<&'a [EndpointSpec; N]> for HostList<'a> {
    fn from(l: &'a [EndpointSpec; N]) -> Self {
        Self::Plain(l)
    }
}

impl<'a> From<&'a [EndpointSpec]> for HostList<'a> {
    fn from(l: &'a [EndpointSpec]) -> Self {
        Self::Plain(l)
    }
}

impl<'a> From<&'a Vec<EndpointSpec>> for HostList<'a> {
    fn from(l: &'a Vec<EndpointSpec>) -> Self {
        Self::Plain(l)
    }
}

impl<'a> From<&'a [AssignedEndpoint]> for HostList<'a> {
    fn from(l: &'a [AssignedEndpoint]) -> Self {
        Self::Assigned(l)
    }
}

impl<'a> From<&'a Vec<AssignedEndpoint>> for HostList<'a> {
    fn from(l: &'a Vec<AssignedEndpoint>) -> Self {
        Self::Assigned(l)
    }
}

/// An inline endpoint that may be a host name (STRICT_DNS).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HostSpec {
    pub host: String,
    pub port: u16,
    pub weight: u32,
    /// The endpoint's `metadata`, when set.
    pub metadata: Option<Arc<Metadata>>,
}

/// A converted ClusterLoadAssignment.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    cluster_name: String,
    pub(crate) endpoints: Vec<AssignedEndpoint>,
}

impl Assignment {
    /// Converts an EDS assignment. Every endpoint address must be an IP (as Envoy requires);
    /// unhealthy, draining and timed-out endpoints are left out of load balancing.
    pub fn from_proto(a: &ClusterLoadAssignment) -> Result<Self, ConfigError> {
        let name = a.cluster_name.as_str();
        let hosts = hosts(a, KIND, name, "")?;
        let mut endpoints = Vec::with_capacity(hosts.len());
        for (path, h) in hosts {
            let ip: IpAddr = h.host.parse().map_err(|_| {
                ConfigError::new(
                    KIND,
                    name,
                    format!("{path}.endpoint.address.socket_address.address"),
                    format!("{:?} is not an IP address", h.host),
                )
            })?;
            endpoints.push(AssignedEndpoint {
                addr: SocketAddr::new(ip, h.port),
                weight: h.weight,
                metadata: h.metadata,
            });
        }
        Ok(Self {
            cluster_name: a.cluster_name.clone(),
            endpoints,
        })
    }

    /// The cluster this assignment is for.
    pub fn cluster_name(&self) -> &str {
        &self.cluster_name
    }
}

/// The usable endpoints of `a` as (field path, host) pairs. `kind`/`name`/`prefix` place
/// errors (an inline `load_assignment` inside a Cluster has the prefix `load_assignment.`).
#[allow(deprecated)] // LoadBalancerEndpoints: the inline list form
pub(crate) fn hosts(
    a: &ClusterLoadAssignment,
    kind: &'static str,
    name: &str,
    prefix: &str,
) -> Result<Vec<(String, HostSpec)>, ConfigError> {
    let err = |field: String, reason: &str| ConfigError::new(kind, name, field, reason);
    if !a.named_endpoints.is_empty() {
        return Err(err(format!("{prefix}named_endpoints"), "not supported"));
    }
    if a.policy
        .as_ref()
        .is_some_and(|p| !p.drop_overloads.is_empty())
    {
        return Err(err(
            format!("{prefix}policy.drop_overloads"),
            "not supported",
        ));
    }
    let mut out = Vec::new();
    for (i, group) in a.endpoints.iter().enumerate() {
        let gpath = format!("{prefix}endpoints[{i}]");
        if group.priority != 0 {
            return Err(err(
                format!("{gpath}.priority"),
                "only priority 0 is supported",
            ));
        }
        let list: &[LbEndpoint] = match &group.lb_config {
            None => &group.lb_endpoints,
            Some(locality_lb_endpoints::LbConfig::LoadBalancerEndpoints(l)) => &l.lb_endpoints,
            Some(_) => {
                return Err(err(
                    format!("{gpath}.leds_cluster_locality_config"),
                    "not supported",
                ));
            }
        };
        for (j, ep) in list.iter().enumerate() {
            let path = format!("{gpath}.lb_endpoints[{j}]");
            if let Some(h) = host(ep, &path, &err)? {
                out.push((path, h));
            }
        }
    }
    Ok(out)
}

fn host(
    ep: &LbEndpoint,
    path: &str,
    err: &impl Fn(String, &str) -> ConfigError,
) -> Result<Option<HostSpec>, ConfigError> {
    // UNHEALTHY (2), DRAINING (3), TIMEOUT (4) are not load balanced to.
    if matches!(ep.health_status, 2..=4) {
        return Ok(None);
    }
    let weight = ep.load_balancing_weight.map_or(1, |w| w.value);
    if weight == 0 {
        return Err(err(
            format!("{path}.load_balancing_weight"),
            "must be at least 1",
        ));
    }
    let Some(lb_endpoint::HostIdentifier::Endpoint(e)) = &ep.host_identifier else {
        return Err(err(format!("{path}.endpoint"), "an endpoint is required"));
    };
    let sa = match e.address.as_ref().and_then(|a| a.address.as_ref()) {
        Some(address::Address::SocketAddress(sa)) => sa,
        _ => {
            return Err(err(
                format!("{path}.endpoint.address.socket_address"),
                "a socket address is required",
            ));
        }
    };
    let port = match &sa.port_specifier {
        Some(socket_address::PortSpecifier::PortValue(p)) => u16::try_from(*p).ok(),
        _ => None,
    };
    let Some(port) = port else {
        return Err(err(
            format!("{path}.endpoint.address.socket_address.port_value"),
            "a port value (0-65535) is required",
        ));
    };
    if !sa.resolver_name.is_empty() {
        return Err(err(
            format!("{path}.endpoint.address.socket_address.resolver_name"),
            "not supported",
        ));
    }
    Ok(Some(HostSpec {
        host: sa.address.clone(),
        port,
        weight,
        metadata: ep.metadata.clone().map(Arc::new),
    }))
}
