//! Gateways (`router` proxies): which Istio `Gateway`s select a proxy, their servers merged
//! per listener port as Istio's `MergeGateways` (`pilot/pkg/model/gateway.go`) does, the
//! listener port of each server (Istio ≥ 1.8 `resolvePorts`: the `targetPort` of the
//! Services selecting the proxy), the host rules of gateway servers (`ns/host`, `./host`,
//! `*/host`, wildcards), and the TLS material of Kubernetes Secrets that `credentialName`
//! names ([`Credential`]: `name`, `kubernetes://[ns/]name`, `kubernetes-gateway://ns/name`,
//! `builtin://`).
//!
//! Merging, per listener port (and `bind`), in Gateway order (namespace, name; Istio: oldest
//! first) then server order:
//! - plaintext HTTP servers share one route table `http.<listener port>`;
//! - TLS servers (HTTPS, TLS, any non-HTTP server with `tls`) each keep their own filter
//!   chain, told apart by SNI; a terminating HTTPS server has the route table
//!   `https.<server port>.<port name>.<gateway>.<namespace>`; a server repeating an SNI host
//!   of an earlier server on the port is skipped (Envoy rejects two equal chain matches);
//! - any other mix on one port (HTTP and TCP, TCP and TCP, HTTPS after HTTP…) is a conflict:
//!   the first server wins, the later one is skipped with a warning.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1 as core;
use mast_config::networking::Gateway;
use mast_config::networking::gateway::{Server, ServerTlsMode};
use mast_core::Hostname;

use super::{Config, MeshSnapshot, selector_matches};

mod credential;
use crate::proxy::ProxyNode;
use crate::service::Protocol;
pub use credential::{
    BUILTIN_SECRET_PREFIX, Credential, KUBERNETES_GATEWAY_SECRET_PREFIX, KUBERNETES_SECRET_PREFIX,
};

/// The label the Kubernetes Gateway API conversion selects gateway proxies with: Gateways
/// selecting on it are not "legacy" selectors, so a server port no Service maps is skipped.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// TLS material from a Kubernetes Secret (PEM text).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSecret {
    /// The certificate chain (`tls.crt` or `cert`); empty for a CA-only Secret.
    pub cert_chain: String,
    /// The private key (`tls.key` or `key`); empty for a CA-only Secret.
    pub private_key: String,
    /// The CA bundle (`ca.crt` or `cacert`), if any.
    pub ca_cert: Option<String>,
}

impl TlsSecret {
    /// Reads the TLS keys of a Secret; `None` when it holds neither a certificate nor a CA.
    pub fn from_secret(secret: &core::Secret) -> Option<TlsSecret> {
        let get = |keys: &[&str]| -> Option<String> {
            keys.iter().find_map(|k| {
                let data = secret.data.as_ref().and_then(|d| d.get(*k));
                let text = data.and_then(|b| String::from_utf8(b.0.clone()).ok());
                text.or_else(|| secret.string_data.as_ref()?.get(*k).cloned())
                    .filter(|s| !s.trim().is_empty())
            })
        };
        let out = TlsSecret {
            cert_chain: get(&["tls.crt", "cert"]).unwrap_or_default(),
            private_key: get(&["tls.key", "key"]).unwrap_or_default(),
            ca_cert: get(&["ca.crt", "cacert"]),
        };
        (out.has_certificate() || out.ca_cert.is_some()).then_some(out)
    }

    /// Whether it holds a certificate and its key.
    pub fn has_certificate(&self) -> bool {
        !self.cert_chain.is_empty() && !self.private_key.is_empty()
    }
}

/// One Gateway server as a gateway proxy serves it.
#[derive(Debug, Clone)]
pub struct GatewayServer<'a> {
    /// The Gateway.
    pub gateway: &'a Config<Gateway>,
    /// The server as written.
    pub server: &'a Server,
    /// The Gateway as `namespace/name` (what VirtualService `gateways` name).
    pub gateway_name: String,
    /// The server port's protocol.
    pub protocol: Protocol,
    /// The server port number (the Service port).
    pub number: u16,
    /// The hosts, namespace prefixes sanitised as Istio does: `./h` → `<gateway ns>/h`,
    /// `*/h` → `h`, `*/*` → only `*`.
    pub hosts: Vec<String>,
    /// The SNI names of a TLS server: its hosts without namespace, sorted, unique.
    pub sni_hosts: Vec<String>,
    /// The route table of an HTTP server or a terminating HTTPS server.
    pub route_name: Option<String>,
}

impl GatewayServer<'_> {
    /// The TLS mode, when the server has TLS settings.
    pub fn tls_mode(&self) -> Option<ServerTlsMode> {
        self.server.tls.as_ref().map(|t| t.mode())
    }

    /// Whether it terminates TLS and serves HTTP (Istio's `IsHTTPSServerWithTLSTermination`).
    pub fn is_https_terminating(&self) -> bool {
        self.protocol == Protocol::Https && self.server.tls.is_some() && !self.is_passthrough()
    }

    /// Whether its TLS is passed through (PASSTHROUGH or AUTO_PASSTHROUGH).
    pub fn is_passthrough(&self) -> bool {
        matches!(
            self.tls_mode(),
            Some(ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough)
        )
    }

    /// The server hosts a VirtualService of `vs_namespace` may bind to (Istio's
    /// `NamesForNamespace`): `h` and `*/h` always, `ns/h` only when `ns` is `vs_namespace`.
    pub fn hosts_for_namespace(&self, vs_namespace: &str) -> Vec<Hostname> {
        self.hosts
            .iter()
            .filter_map(|h| match h.split_once('/') {
                Some((ns, host)) if ns == "*" || ns == vs_namespace => Some(host),
                Some(_) => None,
                None => Some(h.as_str()),
            })
            .map(Hostname::new_unchecked)
            .collect()
    }
}

/// The servers on one listener port.
#[derive(Debug, Clone)]
pub struct GatewayPort<'a> {
    /// The port the listener binds (the Service `targetPort`, else the server port).
    pub port: u16,
    /// The server `bind` address, if any.
    pub bind: Option<String>,
    /// The protocol of the first server (which decides what may merge).
    pub protocol: Protocol,
    /// Whether the servers are TLS servers (SNI chains), else plaintext.
    pub tls: bool,
    /// The servers, in merge order.
    pub servers: Vec<GatewayServer<'a>>,
}

/// Every server of the Gateways selecting one proxy, by listener port.
#[derive(Debug, Clone, Default)]
pub struct MergedGateway<'a> {
    /// The ports, sorted by (port, bind).
    pub ports: Vec<GatewayPort<'a>>,
    /// The servers left out, with why (translation logs them).
    pub skipped: Vec<Skipped>,
}

/// A server left out of the merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The Gateway, `namespace/name`.
    pub gateway: String,
    /// The server port number.
    pub port: u16,
    /// Why.
    pub reason: &'static str,
}

impl<'a> MergedGateway<'a> {
    /// Every server, port by port.
    pub fn servers(&self) -> impl Iterator<Item = (&GatewayPort<'a>, &GatewayServer<'a>)> {
        self.ports
            .iter()
            .flat_map(|p| p.servers.iter().map(move |s| (p, s)))
    }
}

/// Istio's `IntersectionOf` for gateway hosts: for each pair where one host covers the other,
/// the more specific one, in `server_hosts` order, without repeats.
pub fn intersect_hosts(server_hosts: &[Hostname], vs_hosts: &[Hostname]) -> Vec<Hostname> {
    let mut out: Vec<Hostname> = Vec::new();
    for s in server_hosts {
        for v in vs_hosts {
            let pick = if s.subset_of(v) {
                s
            } else if v.subset_of(s) {
                v
            } else {
                continue;
            };
            if !out.contains(pick) {
                out.push(pick.clone());
            }
        }
    }
    out
}

/// The Gateways that select `proxy`: an empty selector selects every gateway proxy, else the
/// proxy's labels must hold every selector label (any namespace, Istio's default with
/// `PILOT_SCOPE_GATEWAY_TO_NAMESPACE` off; a Gateway converted from the Gateway API, selecting
/// on [`GATEWAY_NAME_LABEL`], only in its own namespace, as Istio binds those to their
/// Service). Sidecars get none.
pub(super) fn gateways_for<'a>(
    snap: &'a MeshSnapshot,
    proxy: &ProxyNode,
) -> Vec<&'a Config<Gateway>> {
    if proxy.node_type != crate::proxy::NodeType::Router {
        return Vec::new();
    }
    snap.gateways
        .iter()
        .filter(|g| selector_matches(&g.spec.selector, &proxy.labels))
        .filter(|g| {
            !g.spec.selector.contains_key(GATEWAY_NAME_LABEL) || g.namespace == proxy.namespace
        })
        .collect()
}

/// Istio's `resolvePorts`: the target ports of the proxy's Service ports numbered `number`;
/// none found → the number itself for a legacy (label) selector, nothing otherwise.
fn resolve_ports(snap: &MeshSnapshot, proxy: &ProxyNode, number: u16, legacy: bool) -> Vec<u16> {
    let ports: BTreeSet<u16> = snap
        .inbound_ports(proxy)
        .iter()
        .filter(|p| p.port.port == number && p.service.namespace == proxy.namespace)
        .map(|p| p.target_port)
        .collect();
    if ports.is_empty() && legacy {
        return vec![number];
    }
    ports.into_iter().collect()
}

/// The server's hosts with namespace prefixes sanitised (see [`GatewayServer::hosts`]).
fn sanitize_hosts(hosts: &[String], gateway_ns: &str) -> Vec<String> {
    let mut out = Vec::with_capacity(hosts.len());
    for h in hosts {
        match h.split_once('/') {
            Some((".", host)) => out.push(format!("{gateway_ns}/{}", host.to_ascii_lowercase())),
            Some(("*", "*")) => return vec!["*".into()],
            Some(("*", host)) => out.push(host.to_ascii_lowercase()),
            Some((ns, host)) => out.push(format!("{ns}/{}", host.to_ascii_lowercase())),
            None => out.push(h.to_ascii_lowercase()),
        }
    }
    out
}

/// Istio's `gatewayRDSRouteName`.
fn route_name(
    server: &Server,
    protocol: Protocol,
    listen_port: u16,
    number: u16,
    gw: &Config<Gateway>,
) -> Option<String> {
    let bind = server
        .bind
        .as_deref()
        .map_or(String::new(), |b| format!(".{b}"));
    if protocol.is_http() {
        return Some(format!("http.{listen_port}{bind}"));
    }
    let passthrough = server.tls.as_ref().is_none_or(|t| {
        matches!(
            t.mode(),
            ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
        )
    });
    (protocol == Protocol::Https && !passthrough).then(|| {
        let port_name = server
            .port
            .as_ref()
            .and_then(|p| p.name.as_deref())
            .unwrap_or("");
        format!(
            "https.{number}.{port_name}.{}.{}{bind}",
            gw.name, gw.namespace
        )
    })
}

/// Builds a [`GatewayServer`] for `server` on `listen_port`.
fn gateway_server<'a>(
    gw: &'a Config<Gateway>,
    server: &'a Server,
    number: u16,
    protocol: Protocol,
    listen_port: u16,
) -> GatewayServer<'a> {
    let hosts = sanitize_hosts(&server.hosts, &gw.namespace);
    let sni_hosts: BTreeSet<String> = if server.tls.is_some() {
        hosts
            .iter()
            .map(|h| {
                h.split_once('/')
                    .map_or(h.as_str(), |(_, host)| host)
                    .to_owned()
            })
            .collect()
    } else {
        BTreeSet::new()
    };
    GatewayServer {
        gateway: gw,
        server,
        gateway_name: format!("{}/{}", gw.namespace, gw.name),
        protocol,
        number,
        route_name: route_name(server, protocol, listen_port, number, gw),
        hosts,
        sni_hosts: sni_hosts.into_iter().collect(),
    }
}

/// Whether a server is a TLS server in Istio's sense (`IsTLSServer`): TLS settings on a
/// non-HTTP port.
fn is_tls_server(server: &Server, protocol: Protocol) -> bool {
    server.tls.is_some() && !protocol.is_http()
}

/// See [`MeshSnapshot::merged_gateway`].
pub(super) fn merge<'a>(snap: &'a MeshSnapshot, proxy: &ProxyNode) -> MergedGateway<'a> {
    let mut ports: BTreeMap<(u16, Option<String>), GatewayPort<'a>> = BTreeMap::new();
    let mut route_names: BTreeSet<String> = BTreeSet::new();
    let mut skipped = Vec::new();
    for gw in gateways_for(snap, proxy) {
        let legacy = !gw.spec.selector.contains_key(GATEWAY_NAME_LABEL);
        for server in &gw.spec.servers {
            let Some(port) = server.port.as_ref() else {
                continue;
            };
            let Some(number) = port.number.and_then(|n| u16::try_from(n).ok()) else {
                continue;
            };
            let protocol = Protocol::parse(port.protocol.as_deref().unwrap_or(""));
            let resolved = resolve_ports(snap, proxy, number, legacy);
            if resolved.is_empty() {
                skipped.push(Skipped {
                    gateway: format!("{}/{}", gw.namespace, gw.name),
                    port: number,
                    reason: "no Service port of the gateway proxy matches the server port",
                });
            }
            for listen in resolved {
                let s = gateway_server(gw, server, number, protocol, listen);
                let key = (listen, server.bind.clone());
                if let Err(reason) = add_server(&mut ports, &mut route_names, key, &s) {
                    skipped.push(Skipped {
                        gateway: s.gateway_name,
                        port: number,
                        reason,
                    });
                }
            }
        }
    }
    MergedGateway {
        ports: ports.into_values().collect(),
        skipped,
    }
}

/// Adds one server to its port; on a conflict, why it is skipped.
fn add_server<'a>(
    ports: &mut BTreeMap<(u16, Option<String>), GatewayPort<'a>>,
    route_names: &mut BTreeSet<String>,
    key: (u16, Option<String>),
    s: &GatewayServer<'a>,
) -> Result<(), &'static str> {
    let tls = is_tls_server(s.server, s.protocol);
    let s = s.clone();
    let Some(existing) = ports.get_mut(&key) else {
        if let Some(r) = &s.route_name {
            route_names.insert(r.clone());
        }
        ports.insert(
            key.clone(),
            GatewayPort {
                port: key.0,
                bind: key.1,
                protocol: s.protocol,
                tls,
                servers: vec![s],
            },
        );
        return Ok(());
    };
    if !existing.tls {
        // Istio's canMergeProtocols: HTTP-family servers merge into `http.<port>`.
        if !(existing.protocol.is_http() && s.protocol.is_http()) {
            return Err("its protocol conflicts with an earlier server on the port");
        }
        existing.servers.push(s);
        return Ok(());
    }
    if !tls {
        return Err("a plaintext server cannot share a port with TLS servers");
    }
    if let Some(r) = &s.route_name
        && route_names.contains(r)
    {
        return Err("its HTTPS port name repeats an earlier server's");
    }
    let known: BTreeSet<&String> = existing.servers.iter().flat_map(|o| &o.sni_hosts).collect();
    if s.sni_hosts.iter().any(|h| known.contains(h)) {
        return Err("an SNI host repeats an earlier server's on the port");
    }
    if let Some(r) = &s.route_name {
        route_names.insert(r.clone());
    }
    existing.servers.push(s);
    Ok(())
}

/// The TLS material of every Secret holding a certificate or a CA bundle, by (namespace,
/// name); a Secret without a CA takes the one of `<name>-cacert` (Istio's convention).
pub(super) fn secrets(
    resources: &[mast_config::Resource],
) -> BTreeMap<(String, String), TlsSecret> {
    let mut out: BTreeMap<(String, String), TlsSecret> = resources
        .iter()
        .filter_map(|r| {
            let tls = TlsSecret::from_secret(r.as_secret()?)?;
            Some(((r.namespace().to_owned(), r.name().to_owned()), tls))
        })
        .collect();
    let cas: Vec<((String, String), String)> = out
        .iter()
        .filter(|(_, s)| s.ca_cert.is_none())
        .filter_map(|((ns, name), _)| {
            let ca = out
                .get(&(ns.clone(), format!("{name}-cacert")))?
                .ca_cert
                .clone()?;
            Some(((ns.clone(), name.clone()), ca))
        })
        .collect();
    for (key, ca) in cas {
        if let Some(s) = out.get_mut(&key) {
            s.ca_cert = Some(ca);
        }
    }
    out
}
