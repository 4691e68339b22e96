//! `ClusterLoadAssignment` → [`Assignment`]: the endpoints of an EDS cluster, and the inline
//! endpoints of STATIC / STRICT_DNS clusters (which may name hosts to resolve).

use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
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

/// An inline endpoint that may be a host name (STRICT_DNS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostSpec {
    pub host: String,
    pub port: u16,
    pub weight: u32,
}

/// A converted ClusterLoadAssignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    cluster_name: String,
    pub(crate) endpoints: Vec<EndpointSpec>,
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
            endpoints.push(EndpointSpec {
                addr: SocketAddr::new(ip, h.port),
                weight: h.weight,
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
    }))
}
