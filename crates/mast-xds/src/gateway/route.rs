//! RDS for gateway proxies (Istio's `buildGatewayHTTPRouteConfig`): one table per route name
//! of the merged servers (`http.<port>` shared by the plaintext HTTP servers of a port,
//! `https.<port>.<port name>.<gateway>.<namespace>` per terminating HTTPS server).
//!
//! For each server of the table and each VirtualService bound to its Gateway (top-level
//! `gateways`, exportTo honoured), the hosts both name ([`intersect_hosts`] of the server's
//! hosts visible to the VirtualService's namespace and the VirtualService's hosts) each get
//! a virtual host `<host>:<server port>` with domain `<host>`, whose routes are the
//! VirtualService's HTTP rules translated by the sidecar code (`crate::route::action`, with
//! per-match `gateways` checked against this Gateway); a host named by several
//! VirtualServices gets their routes concatenated in order. The table of a terminating HTTPS
//! server also carries the virtual hosts of the servers on its port with identical TLS
//! settings (HTTP/2 connection coalescing, see [`coalescing_peers`]). `httpsRedirect` sets
//! `require_tls: ALL` on the server's virtual hosts (and adds one for each server host no
//! VirtualService names). No virtual host at all → `blackhole:<port>` for `*` with no
//! routes (404). Tables: `validate_clusters: false`, `ignore_port_in_host_matching: true`,
//! `max_direct_response_body_size_bytes` 1 MiB.

use std::collections::{BTreeMap, HashMap};

use envoy_types::pb::envoy::config::route::v3::virtual_host::TlsRequirementType;
use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration, VirtualHost};
use mast_core::Hostname;
use mast_model::snapshot::gateway::intersect_hosts;
use mast_model::snapshot::{GatewayPort, GatewayServer};
use mast_model::{MeshSnapshot, ProxyNode};

use crate::route::{Scope, action, table};

/// Every route table of gateway proxy `proxy`, sorted by name.
pub fn routes(snapshot: &MeshSnapshot, proxy: &ProxyNode) -> Vec<RouteConfiguration> {
    let merged = super::merged(snapshot, proxy);
    let mut by_name: BTreeMap<String, Vec<&GatewayServer<'_>>> = BTreeMap::new();
    for (port, server) in merged.servers() {
        let Some(name) = &server.route_name else {
            continue;
        };
        let servers = by_name.entry(name.clone()).or_default();
        servers.push(server);
        servers.extend(coalescing_peers(port, server));
    }
    by_name
        .into_iter()
        .map(|(name, servers)| route_table(snapshot, proxy, name, &servers))
        .collect()
}

/// The other terminating HTTPS servers of `port` with exactly `server`'s TLS settings (so
/// the same certificate). A client may reuse an HTTP/2 connection opened for one of their
/// hosts for another (connection coalescing): the connection stays on the first server's
/// chain, so its table also carries their virtual hosts. This avoids the 404s Istio's
/// analyzer warns about (IST0138, duplicate certificate); Istio itself keeps the tables apart.
fn coalescing_peers<'s, 'a>(
    port: &'s GatewayPort<'a>,
    server: &GatewayServer<'a>,
) -> impl Iterator<Item = &'s GatewayServer<'a>> {
    let tls = server.server.tls.clone();
    let own = server.route_name.clone();
    let terminating = server.is_https_terminating();
    port.servers.iter().filter(move |o| {
        terminating && o.is_https_terminating() && o.route_name != own && o.server.tls == tls
    })
}

/// One table from its servers.
fn route_table(
    snapshot: &MeshSnapshot,
    proxy: &ProxyNode,
    name: String,
    servers: &[&GatewayServer<'_>],
) -> RouteConfiguration {
    let mut vhosts: BTreeMap<String, VirtualHost> = BTreeMap::new();
    let mut cache: HashMap<(String, String, String, u16), Vec<Route>> = HashMap::new();
    for server in servers {
        add_server_vhosts(snapshot, proxy, server, &mut vhosts, &mut cache);
    }
    let mut virtual_hosts: Vec<VirtualHost> = vhosts.into_values().collect();
    if virtual_hosts.is_empty() {
        let port = servers.first().map_or(0, |s| s.number);
        tracing::warn!(route = %name, "gateway route table has no virtual host: 404 for every request");
        virtual_hosts.push(VirtualHost {
            name: format!("blackhole:{port}"),
            domains: vec!["*".into()],
            ..Default::default()
        });
    }
    virtual_hosts.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = table(name, virtual_hosts);
    out.ignore_port_in_host_matching = true;
    out
}

/// Adds the virtual hosts of one server.
fn add_server_vhosts(
    snapshot: &MeshSnapshot,
    proxy: &ProxyNode,
    server: &GatewayServer<'_>,
    vhosts: &mut BTreeMap<String, VirtualHost>,
    cache: &mut HashMap<(String, String, String, u16), Vec<Route>>,
) {
    let port = server.number;
    let redirect = server
        .server
        .tls
        .as_ref()
        .is_some_and(|t| t.https_redirect == Some(true));
    let vses = snapshot.virtual_services(proxy, &server.gateway_name);
    let scope = Scope::for_gateway(snapshot, proxy, &server.gateway_name, vses.clone());
    for vs in &vses {
        let vs_hosts: Vec<Hostname> = vs.spec.hosts.iter().map(Hostname::new_unchecked).collect();
        let hosts = intersect_hosts(&server.hosts_for_namespace(&vs.namespace), &vs_hosts);
        if hosts.is_empty() {
            continue;
        }
        let key = (
            server.gateway_name.clone(),
            vs.namespace.clone(),
            vs.name.clone(),
            port,
        );
        let routes = cache
            .entry(key)
            .or_insert_with(|| action::vs_routes(&scope, vs, port));
        for host in hosts {
            let vh = vhosts
                .entry(host.as_str().to_owned())
                .or_insert_with(|| vhost(host.as_str(), port));
            vh.routes.extend(routes.iter().cloned());
            if redirect {
                vh.require_tls = TlsRequirementType::All as i32;
            }
        }
    }
    if redirect {
        for host in &server.hosts {
            let host = host.split_once('/').map_or(host.as_str(), |(_, h)| h);
            let vh = vhosts
                .entry(host.to_owned())
                .or_insert_with(|| vhost(host, port));
            vh.require_tls = TlsRequirementType::All as i32;
        }
    }
}

/// An empty virtual host `<host>:<port>` for domain `host`.
fn vhost(host: &str, port: u16) -> VirtualHost {
    VirtualHost {
        name: format!("{host}:{port}"),
        domains: vec![host.to_owned()],
        ..Default::default()
    }
}
