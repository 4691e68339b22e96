//! The admin documents that read the xDS cache: `/config_dump` (Envoy's JSON shape through
//! `mast_xds_json`, endpoints only with `?include_eds` as in Envoy), `/clusters` (plain and
//! `?format=json`, the host list `mastctl proxy-config endpoint` reads) and `/server_info`.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::bootstrap::v3::{Admin, Bootstrap as PbBootstrap};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{
    Address, HealthStatus, SocketAddress, address, socket_address,
};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};
use mast_xds_json::DumpSection;
use prost::{Message as _, Name as _};
use serde_json::{Value, json};

use super::AdminState;
use crate::xds::{CLUSTER_TYPE, ENDPOINT_TYPE};

/// `/config_dump`: bootstrap (node, admin), clusters, endpoints (`include_eds`), listeners,
/// routes.
pub(super) fn config_dump(state: &AdminState, include_eds: bool) -> Result<Value, String> {
    let bootstrap = PbBootstrap {
        node: Some(state.xds.node().clone()),
        admin: Some(Admin {
            address: Some(socket(
                &state.bootstrap.admin.ip().to_string(),
                state.bootstrap.admin.port(),
            )),
            ..Admin::default()
        }),
        ..PbBootstrap::default()
    };
    let mut sections = vec![DumpSection {
        type_url: PbBootstrap::type_url(),
        version_info: String::new(),
        resources: vec![envoy_types::util::pack_any(bootstrap)],
    }];
    for t in state.xds.cache().types {
        if t.type_url == ENDPOINT_TYPE && !include_eds {
            continue;
        }
        sections.push(DumpSection {
            version_info: t.status.version.clone(),
            resources: t.resources.into_values().map(|r| r.value).collect(),
            type_url: t.type_url,
        });
    }
    mast_xds_json::config_dump(&sections).map_err(|e| e.to_string())
}

fn socket(ip: &str, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_owned(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port.into())),
            ..SocketAddress::default()
        })),
    }
}

/// One host as `/clusters` shows it.
#[derive(Debug, Clone, PartialEq)]
struct Host {
    ip: String,
    port: u32,
    health: &'static str,
    weight: u32,
}

/// Every cluster with its hosts: from its EDS assignment, or its inline `load_assignment`.
fn hosts(state: &AdminState) -> BTreeMap<String, Vec<Host>> {
    let assignments: BTreeMap<String, ClusterLoadAssignment> = state
        .xds
        .resources(ENDPOINT_TYPE)
        .into_iter()
        .filter_map(|(name, r)| {
            Some((
                name,
                ClusterLoadAssignment::decode(r.value.value.as_slice()).ok()?,
            ))
        })
        .collect();
    let mut out = BTreeMap::new();
    for (name, r) in state.xds.resources(CLUSTER_TYPE) {
        let Ok(cluster) = Cluster::decode(r.value.value.as_slice()) else {
            continue;
        };
        let eds_name = cluster
            .eds_cluster_config
            .as_ref()
            .map(|c| c.service_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| name.clone());
        let assignment = cluster
            .load_assignment
            .as_ref()
            .or_else(|| assignments.get(&eds_name));
        out.insert(name, assignment.map(assignment_hosts).unwrap_or_default());
    }
    out
}

fn assignment_hosts(cla: &ClusterLoadAssignment) -> Vec<Host> {
    let mut out = Vec::new();
    for locality in &cla.endpoints {
        for lb in &locality.lb_endpoints {
            let Some(lb_endpoint::HostIdentifier::Endpoint(endpoint)) = &lb.host_identifier else {
                continue;
            };
            let Some(address::Address::SocketAddress(sa)) =
                endpoint.address.as_ref().and_then(|a| a.address.as_ref())
            else {
                continue;
            };
            let port = match sa.port_specifier {
                Some(socket_address::PortSpecifier::PortValue(p)) => p,
                _ => 0,
            };
            let health = match HealthStatus::try_from(lb.health_status) {
                Ok(HealthStatus::Unknown) | Err(_) => "HEALTHY",
                Ok(h) => h.as_str_name(),
            };
            out.push(Host {
                ip: sa.address.clone(),
                port,
                health,
                weight: lb.load_balancing_weight.map_or(1, |w| w.value),
            });
        }
    }
    out
}

/// `/clusters?format=json` in Envoy's shape (`cluster_statuses[].host_statuses[]`).
pub(super) fn clusters_json(state: &AdminState) -> Value {
    if let Some(provider) = &state.clusters {
        return provider();
    }
    let statuses: Vec<Value> = hosts(state)
        .into_iter()
        .map(|(name, hosts)| {
            let hosts: Vec<Value> = hosts
                .iter()
                .map(|h| {
                    json!({
                        "address": {"socket_address": {"address": h.ip, "port_value": h.port}},
                        "health_status": {"eds_health_status": h.health},
                        "weight": h.weight,
                    })
                })
                .collect();
            json!({"name": name, "host_statuses": hosts})
        })
        .collect();
    json!({"cluster_statuses": statuses})
}

/// Plain `/clusters`: `<cluster>::<ip>:<port>::health_flags::healthy` lines.
pub(super) fn clusters_plain(state: &AdminState) -> String {
    let json = clusters_json(state);
    let mut out = String::new();
    for c in json["cluster_statuses"].as_array().into_iter().flatten() {
        let name = c["name"].as_str().unwrap_or_default();
        for h in c["host_statuses"].as_array().into_iter().flatten() {
            let sa = &h["address"]["socket_address"];
            let health = h["health_status"]["eds_health_status"]
                .as_str()
                .unwrap_or("HEALTHY");
            let flags = if health == "HEALTHY" {
                "healthy".to_owned()
            } else {
                format!("/eds_{}", health.to_ascii_lowercase())
            };
            out.push_str(&format!(
                "{name}::{}:{}::health_flags::{flags}\n",
                sa["address"].as_str().unwrap_or_default(),
                sa["port_value"]
            ));
        }
    }
    out
}

/// `/server_info`: version, state, uptime, node.
pub(super) fn server_info(state: &AdminState) -> Value {
    let node = mast_xds_json::message_to_json(state.xds.node()).unwrap_or(Value::Null);
    let uptime = state.started.elapsed().as_secs();
    json!({
        "version": format!("mast-proxy/{}", env!("CARGO_PKG_VERSION")),
        "state": super::server_state(state),
        "uptime_current_epoch": format!("{uptime}s"),
        "uptime_all_epochs": format!("{uptime}s"),
        "node": node,
        "command_line_options": {
            "concurrency": state.bootstrap.workers,
            "drain_time": format!("{}s", state.bootstrap.drain.as_secs()),
        },
    })
}
