//! LDS: the `Listener`s a sidecar needs, built as Istio builds them (`listener.go`,
//! `listener_builder.go`, `listener_inbound.go`, `networkfilter.go`, `tls.go`).
//!
//! Which listeners depends on the proxy's capture mode:
//! - **iptables**: `virtualOutbound` (0.0.0.0:15001, original destination, catch-all to
//!   `PassthroughCluster`/`BlackHoleCluster`), one `bind_to_port: false` listener per visible
//!   service port (`0.0.0.0_<port>` with an HTTP connection manager on RDS route `"<port>"` for
//!   HTTP ports; `<vip>_<port>` with `tcp_proxy` chains for TCP and TLS ports, honouring
//!   VirtualService `tcp` and `tls` routes), and `virtualInbound` (0.0.0.0:15006, a chain per
//!   inbound port, fallback to `InboundPassthroughCluster`) — see [`outbound`] and [`inbound`];
//! - **ports**: `mast_outbound` (127.0.0.1, an HTTP proxy on RDS route `mast_outbound`) and one
//!   `mast_inbound_<app port>` listener per inbound port the agent was given.
//!
//! With tracing configured, every HTTP connection manager gets Envoy's `tracing` ([`trace`]);
//! with an access log configured, every HTTP connection manager and `tcp_proxy` gets an
//! `envoy.access_loggers.file` entry ([`access_log`]). Both are computed once per part
//! ([`Telemetry`]) and set by the builders.
//! Gateways (`router` nodes) get the listeners of their Gateway servers from
//! [`crate::gateway`] (all in their own [`Part`]).
//! What exactly is emitted is written down in `docs/xds-subset.md`.

pub mod access_log;
mod chain;
pub(crate) mod filters;
mod inbound;
pub(crate) mod l4;
mod outbound;
pub mod telemetry;
pub mod trace;

pub(crate) use l4::StaticMatch;
pub use telemetry::Telemetry;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_access_log;
#[cfg(test)]
mod tests_inbound;
#[cfg(test)]
mod tests_l4;
#[cfg(test)]
mod tests_mtls;
#[cfg(test)]
mod tests_timing;

use std::collections::HashMap;

use envoy_types::pb::envoy::config::listener::v3::Listener;
use mast_config::networking::VirtualService;
use mast_core::Hostname;

use crate::share::Part;
use mast_model::{
    CaptureMode, Config, InboundPort, MeshSnapshot, NodeType, OutboundPolicy, ProxyNode, Service,
};

/// Name of the ports-mode outbound listener and of the RDS route configuration it uses.
pub const MAST_OUTBOUND: &str = "mast_outbound";

/// Prefix of the ports-mode inbound listeners: `mast_inbound_<application port>`.
pub const MAST_INBOUND_PREFIX: &str = "mast_inbound_";

/// Ports a sidecar keeps for itself (admin, captures, agent, health, metrics): no service
/// listener or inbound chain is generated on them.
pub const RESERVED_PORTS: [u16; 6] = [15000, 15001, 15006, 15020, 15021, 15090];

/// Every `Listener` for `proxy`, sorted by name.
pub fn listeners(snapshot: &MeshSnapshot, proxy: &ProxyNode) -> Vec<Listener> {
    let mut all = listeners_part(snapshot, proxy, Part::Shared);
    all.extend(listeners_part(snapshot, proxy, Part::Own));
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

/// One [`Part`] of [`listeners`], sorted by name: the outbound listeners (per-port and
/// `virtualOutbound`, or the ports-mode outbound listener), or the inbound ones.
pub fn listeners_part(snapshot: &MeshSnapshot, proxy: &ProxyNode, part: Part) -> Vec<Listener> {
    if proxy.node_type == NodeType::Router {
        // A gateway's listeners depend on the Gateways selecting it (its labels): its own.
        return match part {
            Part::Shared => Vec::new(),
            Part::Own => crate::gateway::listeners(snapshot, proxy),
        };
    }
    let telemetry = Telemetry::of(snapshot, proxy, part);
    let inputs = match part {
        Part::Shared => Inputs::new(
            proxy,
            snapshot.visible_services(proxy),
            snapshot.virtual_services(proxy, "mesh"),
            Vec::new(),
            snapshot.outbound_policy(proxy),
            &snapshot.options.domain_suffix,
        ),
        Part::Own => Inputs::new(
            proxy,
            Vec::new(),
            Vec::new(),
            snapshot.inbound_ports(proxy),
            snapshot.outbound_policy(proxy),
            &snapshot.options.domain_suffix,
        ),
    }
    .with_snapshot(snapshot)
    .with_telemetry(&telemetry);
    build_part(&inputs, part)
}

/// Everything listener generation reads, gathered from the snapshot for one proxy.
pub(crate) struct Inputs<'a> {
    /// The proxy.
    pub proxy: &'a ProxyNode,
    /// The services it may reach, sorted by host.
    pub services: Vec<&'a Service>,
    /// The VirtualServices bound to `mesh` it sees, in Istio's order.
    pub virtual_services: Vec<&'a Config<VirtualService>>,
    /// The service ports its workload serves.
    pub inbound: Vec<InboundPort<'a>>,
    /// What happens to traffic for unknown destinations.
    pub policy: OutboundPolicy,
    /// The cluster DNS suffix, to qualify short host names.
    pub domain_suffix: &'a str,
    /// The snapshot (PeerAuthentication modes and authorization policies of inbound chains);
    /// an empty one unless [`Inputs::with_snapshot`] sets it.
    pub snapshot: &'a MeshSnapshot,
    /// The access log and tracing of every HTTP connection manager and `tcp_proxy`; none
    /// unless [`Inputs::with_telemetry`] sets it.
    pub telemetry: &'a Telemetry,
    by_host: HashMap<&'a Hostname, &'a Service>,
}

impl<'a> Inputs<'a> {
    /// Gathers the inputs and indexes the services by host.
    pub fn new(
        proxy: &'a ProxyNode,
        services: Vec<&'a Service>,
        virtual_services: Vec<&'a Config<VirtualService>>,
        inbound: Vec<InboundPort<'a>>,
        policy: OutboundPolicy,
        domain_suffix: &'a str,
    ) -> Self {
        let by_host = services.iter().map(|s| (&s.hostname, *s)).collect();
        Self {
            proxy,
            services,
            virtual_services,
            inbound,
            policy,
            domain_suffix,
            snapshot: empty_snapshot(),
            telemetry: Telemetry::none(),
            by_host,
        }
    }

    /// The inputs reading policies from `snapshot`.
    pub fn with_snapshot(mut self, snapshot: &'a MeshSnapshot) -> Self {
        self.snapshot = snapshot;
        self
    }

    /// The inputs building HTTP connection managers and `tcp_proxy`s with `telemetry`.
    pub fn with_telemetry(mut self, telemetry: &'a Telemetry) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// The visible service with exactly this host.
    pub fn service(&self, host: &Hostname) -> Option<&'a Service> {
        self.by_host.get(host).copied()
    }

    /// Qualifies a host written in a config of namespace `ns`.
    pub fn resolve(&self, host: &str, ns: &str) -> Hostname {
        Hostname::new_unchecked(host).resolve(ns, self.domain_suffix)
    }
}

/// A snapshot without services or policies, for inputs built by hand.
fn empty_snapshot() -> &'static MeshSnapshot {
    static EMPTY: std::sync::LazyLock<MeshSnapshot> =
        std::sync::LazyLock::new(MeshSnapshot::default);
    &EMPTY
}

/// Builds the listeners for a sidecar, sorted by name.
#[cfg(test)]
pub(crate) fn build(inputs: &Inputs<'_>) -> Vec<Listener> {
    let mut out = build_part(inputs, Part::Shared);
    out.extend(build_part(inputs, Part::Own));
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Builds one [`Part`] of the listeners for a sidecar, sorted by name.
pub(crate) fn build_part(inputs: &Inputs<'_>, part: Part) -> Vec<Listener> {
    let mut out = match (&inputs.proxy.capture, part) {
        (CaptureMode::Iptables, Part::Shared) => {
            let mut all = outbound::service_listeners(inputs);
            all.push(outbound::virtual_outbound(inputs.policy, inputs.telemetry));
            all
        }
        (CaptureMode::Iptables, Part::Own) => vec![inbound::virtual_inbound(inputs)],
        // The explicit outbound listener is on the proxy's own port: not shared.
        (CaptureMode::Ports { .. }, Part::Shared) => Vec::new(),
        (CaptureMode::Ports { outbound, inbound }, Part::Own) => {
            let mut all = vec![outbound::explicit_outbound(*outbound, inputs.telemetry)];
            all.extend(inbound::explicit_inbound(inputs, *outbound, inbound));
            all
        }
    };
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
