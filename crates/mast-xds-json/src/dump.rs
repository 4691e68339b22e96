//! Envoy's admin `/config_dump` document: building it from resources grouped by xDS type
//! ([`config_dump`]) and reading it back ([`parse_config_dump`]), in the shape of
//! `envoy/admin/v3/config_dump{,_shared}.proto`:
//!
//! ```text
//! {"configs": [
//!   {"@type": "…BootstrapConfigDump", "bootstrap": {…}},
//!   {"@type": "…ClustersConfigDump", "version_info", "dynamic_active_clusters": [{"version_info", "cluster": {…}}]},
//!   {"@type": "…EndpointsConfigDump", "dynamic_endpoint_configs": [{"version_info", "endpoint_config": {…}}]},
//!   {"@type": "…ListenersConfigDump", "version_info",
//!    "dynamic_listeners": [{"name", "active_state": {"version_info", "listener": {…}}}]},
//!   {"@type": "…RoutesConfigDump", "dynamic_route_configs": [{"version_info", "route_config": {…}}]}]}
//! ```
//!
//! Sections come in Envoy's order (bootstrap, clusters, endpoints, listeners, routes) whatever
//! the order given. Envoy's `last_updated` timestamps are left out: Mast does not track them.

use envoy_types::pb::envoy::admin::v3::{
    BootstrapConfigDump, ClustersConfigDump, ConfigDump, EndpointsConfigDump, ListenersConfigDump,
    RoutesConfigDump, clusters_config_dump, endpoints_config_dump, listeners_config_dump,
    routes_config_dump,
};
use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use prost::{Message, Name};
use serde_json::Value;

use crate::{JsonError, JsonOptions, message_to_json_with, read_message};

/// The resources of one xDS type, as sent to (or held by) one proxy, at one version.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DumpSection {
    /// The resources' type URL, e.g. `type.googleapis.com/envoy.config.cluster.v3.Cluster`.
    pub type_url: String,
    /// The version last sent for this type (Envoy's `version_info`); empty for static resources.
    pub version_info: String,
    /// The resources, packed.
    pub resources: Vec<Any>,
}

/// Envoy's `/config_dump` JSON for these sections, in Envoy's style (see [`JsonOptions`]).
/// Resources are shown as dynamic (xDS-delivered) ones; a bootstrap section holds one
/// `Bootstrap`. Types other than bootstrap, cluster, endpoint, listener and route are refused.
pub fn config_dump(sections: &[DumpSection]) -> Result<Value, JsonError> {
    config_dump_with(sections, &JsonOptions::default())
}

/// [`config_dump`] with explicit options.
pub fn config_dump_with(
    sections: &[DumpSection],
    options: &JsonOptions,
) -> Result<Value, JsonError> {
    message_to_json_with(&build_config_dump(sections)?, options)
}

/// The `envoy.admin.v3.ConfigDump` message behind [`config_dump`].
pub fn build_config_dump(sections: &[DumpSection]) -> Result<ConfigDump, JsonError> {
    let mut ranked = Vec::with_capacity(sections.len());
    for section in sections {
        let kind =
            Kind::of_resource(&section.type_url).ok_or_else(|| JsonError::UnsupportedDumpType {
                type_url: section.type_url.clone(),
            })?;
        ranked.push((kind, section));
    }
    // Stable: sections of one kind keep the order given.
    ranked.sort_by_key(|(kind, _)| *kind);
    let configs = ranked
        .into_iter()
        .map(|(kind, section)| dump_section(kind, section))
        .collect::<Result<_, _>>()?;
    Ok(ConfigDump { configs })
}

/// The sections of a dump Mast writes and reads, in Envoy's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Bootstrap,
    Clusters,
    Endpoints,
    Listeners,
    Routes,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Bootstrap,
        Kind::Clusters,
        Kind::Endpoints,
        Kind::Listeners,
        Kind::Routes,
    ];

    /// The type URL of the resources in this section.
    fn resource_type(self) -> String {
        match self {
            Kind::Bootstrap => Bootstrap::type_url(),
            Kind::Clusters => Cluster::type_url(),
            Kind::Endpoints => ClusterLoadAssignment::type_url(),
            Kind::Listeners => Listener::type_url(),
            Kind::Routes => RouteConfiguration::type_url(),
        }
    }

    /// The type URL of the section itself (`envoy.admin.v3.*ConfigDump`).
    fn dump_type(self) -> String {
        match self {
            Kind::Bootstrap => BootstrapConfigDump::type_url(),
            Kind::Clusters => ClustersConfigDump::type_url(),
            Kind::Endpoints => EndpointsConfigDump::type_url(),
            Kind::Listeners => ListenersConfigDump::type_url(),
            Kind::Routes => RoutesConfigDump::type_url(),
        }
    }

    fn of_resource(type_url: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.resource_type() == type_url)
    }

    fn of_dump(type_url: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.dump_type() == type_url)
    }
}

fn dump_section(kind: Kind, section: &DumpSection) -> Result<Any, JsonError> {
    let version_info = || section.version_info.clone();
    let resources = section.resources.iter().cloned();
    Ok(match kind {
        Kind::Bootstrap => {
            let bootstrap = section
                .resources
                .first()
                .map(unpack::<Bootstrap>)
                .transpose()?;
            pack_any(BootstrapConfigDump {
                bootstrap,
                last_updated: None,
            })
        }
        Kind::Clusters => pack_any(ClustersConfigDump {
            version_info: version_info(),
            dynamic_active_clusters: resources
                .map(|cluster| clusters_config_dump::DynamicCluster {
                    version_info: version_info(),
                    cluster: Some(cluster),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        Kind::Endpoints => pack_any(EndpointsConfigDump {
            dynamic_endpoint_configs: resources
                .map(|endpoints| endpoints_config_dump::DynamicEndpointConfig {
                    version_info: version_info(),
                    endpoint_config: Some(endpoints),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        Kind::Listeners => pack_any(listeners_dump(section)?),
        Kind::Routes => pack_any(RoutesConfigDump {
            dynamic_route_configs: resources
                .map(|routes| routes_config_dump::DynamicRouteConfig {
                    version_info: version_info(),
                    route_config: Some(routes),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    })
}

/// Listeners are keyed by name in Envoy's dump, so each one is decoded for its name.
fn listeners_dump(section: &DumpSection) -> Result<ListenersConfigDump, JsonError> {
    let mut dynamic_listeners = Vec::with_capacity(section.resources.len());
    for any in &section.resources {
        let name = unpack::<Listener>(any)?.name;
        dynamic_listeners.push(listeners_config_dump::DynamicListener {
            name,
            active_state: Some(listeners_config_dump::DynamicListenerState {
                version_info: section.version_info.clone(),
                listener: Some(any.clone()),
                last_updated: None,
            }),
            ..Default::default()
        });
    }
    Ok(ListenersConfigDump {
        version_info: section.version_info.clone(),
        dynamic_listeners,
        ..Default::default()
    })
}

fn unpack<M: Message + Name + Default>(any: &Any) -> Result<M, JsonError> {
    if any.type_url != M::type_url() {
        return Err(JsonError::TypeMismatch {
            expected: M::type_url(),
            found: any.type_url.clone(),
        });
    }
    M::decode(any.value.as_slice()).map_err(|source| JsonError::Decode {
        type_name: M::full_name(),
        source,
    })
}

/// Reads an Envoy (or mastd) `/config_dump` document back into sections, one per known section
/// of the dump: bootstrap, clusters, endpoints, listeners and routes. Static and active dynamic
/// resources are both returned (warming and draining ones are not); `version_info` is the
/// section's own, else that of its first dynamic resource. Other sections (secrets, scoped
/// routes, ECDS) are skipped. Fields unknown to Mast's descriptors (a newer Envoy) are ignored;
/// a nested `typed_config` of a type Mast does not know is an error.
pub fn parse_config_dump(json: &Value) -> Result<Vec<DumpSection>, JsonError> {
    let configs = json
        .get("configs")
        .and_then(Value::as_array)
        .ok_or_else(|| JsonError::MalformedDump {
            reason: "no \"configs\" array".to_owned(),
        })?;
    let mut sections = Vec::new();
    for config in configs {
        let type_url = config
            .get("@type")
            .and_then(Value::as_str)
            .ok_or(JsonError::MissingType)?;
        if let Some(section) = parse_section(type_url, config)? {
            sections.push(section);
        }
    }
    Ok(sections)
}

/// What a section of a dump holds: its own version, the version of its first dynamic resource,
/// and its static and active resources.
type Parsed = (String, Option<String>, Vec<Any>);

fn parse_section(type_url: &str, config: &Value) -> Result<Option<DumpSection>, JsonError> {
    let Some(kind) = Kind::of_dump(type_url) else {
        return Ok(None);
    };
    let (version, first, resources) = match kind {
        Kind::Bootstrap => parse_bootstrap(config)?,
        Kind::Clusters => parse_clusters(config)?,
        Kind::Endpoints => parse_endpoints(config)?,
        Kind::Listeners => parse_listeners(config)?,
        Kind::Routes => parse_routes(config)?,
    };
    Ok(Some(DumpSection {
        type_url: kind.resource_type(),
        version_info: or_first(version, first),
        resources,
    }))
}

fn parse_bootstrap(config: &Value) -> Result<Parsed, JsonError> {
    let dump: BootstrapConfigDump = read_message(config, false)?;
    Ok((
        String::new(),
        None,
        dump.bootstrap.map(pack_any).into_iter().collect(),
    ))
}

fn parse_clusters(config: &Value) -> Result<Parsed, JsonError> {
    let dump: ClustersConfigDump = read_message(config, false)?;
    let first = dump
        .dynamic_active_clusters
        .first()
        .map(|d| d.version_info.clone());
    let statics = dump.static_clusters.into_iter().filter_map(|s| s.cluster);
    let dynamics = dump
        .dynamic_active_clusters
        .into_iter()
        .filter_map(|d| d.cluster);
    Ok((dump.version_info, first, statics.chain(dynamics).collect()))
}

fn parse_endpoints(config: &Value) -> Result<Parsed, JsonError> {
    let dump: EndpointsConfigDump = read_message(config, false)?;
    let first = dump
        .dynamic_endpoint_configs
        .first()
        .map(|d| d.version_info.clone());
    let statics = dump
        .static_endpoint_configs
        .into_iter()
        .filter_map(|s| s.endpoint_config);
    let dynamics = dump
        .dynamic_endpoint_configs
        .into_iter()
        .filter_map(|d| d.endpoint_config);
    Ok((String::new(), first, statics.chain(dynamics).collect()))
}

fn parse_listeners(config: &Value) -> Result<Parsed, JsonError> {
    let dump: ListenersConfigDump = read_message(config, false)?;
    let active: Vec<_> = dump
        .dynamic_listeners
        .into_iter()
        .filter_map(|d| d.active_state)
        .collect();
    let first = active.first().map(|a| a.version_info.clone());
    let statics = dump.static_listeners.into_iter().filter_map(|s| s.listener);
    let dynamics = active.into_iter().filter_map(|a| a.listener);
    Ok((dump.version_info, first, statics.chain(dynamics).collect()))
}

fn parse_routes(config: &Value) -> Result<Parsed, JsonError> {
    let dump: RoutesConfigDump = read_message(config, false)?;
    let first = dump
        .dynamic_route_configs
        .first()
        .map(|d| d.version_info.clone());
    let statics = dump
        .static_route_configs
        .into_iter()
        .filter_map(|s| s.route_config);
    let dynamics = dump
        .dynamic_route_configs
        .into_iter()
        .filter_map(|d| d.route_config);
    Ok((String::new(), first, statics.chain(dynamics).collect()))
}

fn or_first(version: String, first: Option<String>) -> String {
    if version.is_empty() {
        first.unwrap_or_default()
    } else {
        version
    }
}
