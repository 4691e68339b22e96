//! Listener (LDS) → [`ListenerConfig`]: address, capture flags, filter chains and their
//! matches, each chain's downstream TLS (`transport_socket` with a `DownstreamTlsContext`), its
//! leading network RBAC and SNI-cluster filters and its terminal network filter (HTTP connection manager or
//! TCP proxy). Only the fields of `docs/xds-subset.md` (LDS) are accepted; anything else that
//! changes behaviour is a [`ConfigError`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{Address, address, socket_address};
use envoy_types::pb::envoy::config::listener::v3::{
    FilterChain as PbChain, Listener, filter, listener_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use prost::Message as _;

pub use super::chain_match::{ChainMatch, in_prefix};
use super::chain_match::{convert_match, overlapping};
use crate::error::ConfigError;
use crate::hcm::HcmConfig;
use crate::rbac::{NETWORK_RBAC_TYPE, NetworkRbac};
use crate::tcp::TcpProxyConfig;
use crate::tls::{SecretStore, ServerTls};

const KIND: &str = "Listener";
const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const SNI_CLUSTER_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.sni_cluster.v3.SniCluster";
const TCP_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
const ORIGINAL_DST: &str = "envoy.filters.listener.original_dst";
const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";

/// Which way a listener's traffic goes (for stats and access logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Not set.
    Unspecified,
    /// Traffic to the local workload.
    Inbound,
    /// Traffic from the local workload.
    Outbound,
}

/// A converted listener.
#[derive(Debug)]
pub struct ListenerConfig {
    /// The listener's name.
    pub name: String,
    /// Where it listens (or, with `bind == false`, which original destinations it serves).
    pub address: SocketAddr,
    /// Whether it binds its own socket (`bind_to_port`, default true).
    pub bind: bool,
    /// Whether its socket sets `SO_REUSEPORT` (`enable_reuse_port`, default true on Linux as
    /// in Envoy): it may then share its port with a socket that reserves the port for it
    /// (`mastctl up` holds each sidecar's inbound port that way until the sidecar binds it).
    pub reuse_port: bool,
    /// Hand connections to the listener matching their original destination.
    pub use_original_dst: bool,
    /// Whether an original_dst listener filter is configured.
    pub original_dst_filter: bool,
    /// Whether a tls_inspector listener filter is configured (SNI for chain matches).
    pub tls_inspector: bool,
    /// The filter chains, in order.
    pub chains: Vec<FilterChain>,
    /// The chain used when none matches.
    pub default_chain: Option<FilterChain>,
    /// Traffic direction.
    pub direction: Direction,
    /// A digest of the listener's proto: an update with the same digest changes nothing.
    pub digest: u64,
    /// Set when this configuration is replaced or removed: HTTP connections accepted under it
    /// drain (as Envoy drains a listener's connections on update), so policies and routes
    /// changed by the update reach every client soon.
    pub replaced: tokio::sync::watch::Sender<bool>,
}

/// A filter chain: its match, its TLS termination, its network RBAC filters and its
/// terminal network filter.
#[derive(Debug)]
pub struct FilterChain {
    /// The chain's name.
    pub name: String,
    /// When the chain applies.
    pub matcher: ChainMatch,
    /// Downstream TLS, terminated after the chain is selected; `None`: plaintext.
    pub tls: Option<Arc<ServerTls>>,
    /// `envoy.filters.network.rbac` filters before the terminal filter, in order.
    pub rbac: Vec<Arc<NetworkRbac>>,
    /// An `envoy.filters.network.sni_cluster` filter precedes the terminal filter: a TCP
    /// proxy connects to the cluster named by the connection's SNI (when it sent one).
    pub sni_cluster: bool,
    /// What handles the connection.
    pub filter: NetworkFilter,
}

/// The terminal network filter of a chain.
#[derive(Debug, Clone)]
pub enum NetworkFilter {
    /// `envoy.filters.network.http_connection_manager`.
    Http(Arc<HcmConfig>),
    /// `envoy.filters.network.tcp_proxy`.
    Tcp(Arc<TcpProxyConfig>),
}

impl ListenerConfig {
    /// Converts and validates a listener; SDS secrets resolve to [`SecretStore::global`].
    pub fn from_proto(l: &Listener) -> Result<Self, ConfigError> {
        Self::from_proto_with(l, SecretStore::global())
    }

    /// [`Self::from_proto`] with SDS secrets (`default`, `ROOTCA`) from `store`.
    pub fn from_proto_with(l: &Listener, store: &Arc<SecretStore>) -> Result<Self, ConfigError> {
        let err = |field: &str, reason: String| ConfigError::new(KIND, &l.name, field, reason);
        let address = socket_address(l.address.as_ref()).map_err(|r| err("address", r))?;
        let mut original_dst_filter = false;
        let mut tls_inspector = false;
        for (i, f) in l.listener_filters.iter().enumerate() {
            match f.name.as_str() {
                ORIGINAL_DST => original_dst_filter = true,
                TLS_INSPECTOR => tls_inspector = true,
                other => {
                    return Err(err(
                        &format!("listener_filters[{i}].name"),
                        format!("listener filter {other:?} is not supported"),
                    ));
                }
            }
            if let Some(listener_filter::ConfigType::ConfigDiscovery(_)) = f.config_type {
                return Err(err(
                    &format!("listener_filters[{i}].config_discovery"),
                    "extension config discovery is not supported".into(),
                ));
            }
        }
        if l.filter_chain_matcher.is_some() {
            return Err(err(
                "filter_chain_matcher",
                "matcher-based chain selection is not supported".into(),
            ));
        }
        let inbound = l.traffic_direction == 1;
        let chains = l
            .filter_chains
            .iter()
            .enumerate()
            .map(|(i, c)| convert_chain(c, &l.name, &format!("filter_chains[{i}]"), store, inbound))
            .collect::<Result<Vec<_>, _>>()?;
        let default_chain = l
            .default_filter_chain
            .as_ref()
            .map(|c| convert_chain(c, &l.name, "default_filter_chain", store, inbound))
            .transpose()?;
        check_overlaps(&chains).map_err(|(f, r)| err(&f, r))?;
        if chains.is_empty() && default_chain.is_none() {
            return Err(err(
                "filter_chains",
                "a listener needs a filter chain".into(),
            ));
        }
        Ok(Self {
            digest: digest(l),
            replaced: tokio::sync::watch::Sender::new(false),
            name: l.name.clone(),
            address,
            bind: l.bind_to_port.as_ref().is_none_or(|b| b.value),
            reuse_port: l.enable_reuse_port.as_ref().is_none_or(|b| b.value),
            use_original_dst: l.use_original_dst.as_ref().is_some_and(|b| b.value),
            original_dst_filter,
            tls_inspector,
            chains,
            default_chain,
            direction: match l.traffic_direction {
                1 => Direction::Inbound,
                2 => Direction::Outbound,
                _ => Direction::Unspecified,
            },
        })
    }
}

/// A digest of a listener's wire form (prost encodes deterministically; the typed configs
/// inside are opaque bytes as sent).
fn digest(l: &Listener) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    prost::Message::encode_to_vec(l).hash(&mut h);
    h.finish()
}

fn socket_address(a: Option<&Address>) -> Result<SocketAddr, String> {
    let Some(Address {
        address: Some(address::Address::SocketAddress(sa)),
    }) = a
    else {
        return Err("a socket address is required".into());
    };
    let ip: IpAddr = sa
        .address
        .parse()
        .map_err(|_| format!("{:?} is not an IP address", sa.address))?;
    let port = match sa.port_specifier {
        Some(socket_address::PortSpecifier::PortValue(p)) => {
            u16::try_from(p).map_err(|_| format!("port {p} is out of range"))?
        }
        _ => return Err("a port_value is required".into()),
    };
    Ok(SocketAddr::new(ip, port))
}

/// `inbound`: the listener's `traffic_direction` is INBOUND (its HTTP connection managers
/// report Istio's metrics as `reporter="destination"`).
fn convert_chain(
    c: &PbChain,
    listener: &str,
    at: &str,
    store: &Arc<SecretStore>,
    inbound: bool,
) -> Result<FilterChain, ConfigError> {
    let err = |field: String, reason: String| ConfigError::new(KIND, listener, field, reason);
    let matcher = c
        .filter_chain_match
        .as_ref()
        .map(|m| convert_match(m).map_err(|(f, r)| err(format!("{at}.filter_chain_match.{f}"), r)))
        .transpose()?
        .unwrap_or_default();
    let tls = match &c.transport_socket {
        None => None,
        Some(ts) => crate::tls::transport::downstream(ts, store)
            .map_err(|(f, r)| err(format!("{at}.transport_socket.{f}"), r))?,
    };
    let Some((terminal, leading)) = c.filters.split_last() else {
        return Err(err(
            format!("{at}.filters"),
            "a terminal network filter is required".into(),
        ));
    };
    let mut rbac = Vec::with_capacity(leading.len());
    let mut sni_cluster = false;
    for (i, f) in leading.iter().enumerate() {
        let field = format!("{at}.filters[{i}]");
        let any = typed(f).map_err(|r| err(format!("{field}.typed_config"), r))?;
        if any.type_url == SNI_CLUSTER_TYPE {
            // SniCluster has no fields.
            sni_cluster = true;
            continue;
        }
        if any.type_url != NETWORK_RBAC_TYPE {
            return Err(err(
                format!("{field}.typed_config"),
                format!(
                    "only envoy.filters.network.rbac and envoy.filters.network.sni_cluster may precede the terminal filter, got {:?}",
                    any.type_url
                ),
            ));
        }
        let filter = NetworkRbac::from_any(any)
            .map_err(|(f, r)| err(format!("{field}.typed_config.{f}"), r))?;
        rbac.push(Arc::new(filter));
    }
    let field = format!("{at}.filters[{}]", leading.len());
    let filter = terminal_filter(terminal, &field, inbound).map_err(|(f, r)| err(f, r))?;
    let keep_chain = matches!(&filter, NetworkFilter::Http(h) if h.xfcc.cert || h.xfcc.chain);
    let tls = tls.map(|t| Arc::new(t.keep_peer_chain(keep_chain)));
    Ok(FilterChain {
        name: c.name.clone(),
        matcher,
        tls,
        rbac,
        sni_cluster,
        filter,
    })
}

fn typed(
    f: &envoy_types::pb::envoy::config::listener::v3::Filter,
) -> Result<&envoy_types::pb::google::protobuf::Any, String> {
    match &f.config_type {
        Some(filter::ConfigType::TypedConfig(any)) => Ok(any),
        _ => Err("typed_config is required".into()),
    }
}

fn terminal_filter(
    f: &envoy_types::pb::envoy::config::listener::v3::Filter,
    field: &str,
    inbound: bool,
) -> Result<NetworkFilter, (String, String)> {
    let any = typed(f).map_err(|r| (format!("{field}.typed_config"), r))?;
    let at = |f: &str| format!("{field}.typed_config{f}");
    match any.type_url.as_str() {
        HCM_TYPE => {
            let hcm = HttpConnectionManager::decode(any.value.as_slice())
                .map_err(|e| (at(""), e.to_string()))?;
            let mut config =
                HcmConfig::from_proto(&hcm).map_err(|(f, r)| (at(&format!(".{f}")), r))?;
            config.inbound = inbound;
            Ok(NetworkFilter::Http(Arc::new(config)))
        }
        TCP_TYPE => {
            let tcp =
                TcpProxy::decode(any.value.as_slice()).map_err(|e| (at(""), e.to_string()))?;
            let config =
                TcpProxyConfig::from_proto(&tcp).map_err(|(f, r)| (at(&format!(".{f}")), r))?;
            Ok(NetworkFilter::Tcp(Arc::new(config)))
        }
        other => Err((
            at(""),
            format!("network filter type {other:?} is not supported as the terminal filter"),
        )),
    }
}

/// Envoy refuses a listener two of whose chains can match the same connection equally.
fn check_overlaps(chains: &[FilterChain]) -> Result<(), (String, String)> {
    for (j, b) in chains.iter().enumerate() {
        if let Some(i) = chains[..j]
            .iter()
            .position(|a| overlapping(&a.matcher, &b.matcher))
        {
            return Err((
                format!("filter_chains[{j}].filter_chain_match"),
                format!(
                    "multiple filter chains with overlapping matching rules are defined ({:?} and {:?})",
                    chains[i].name, b.name
                ),
            ));
        }
    }
    Ok(())
}
