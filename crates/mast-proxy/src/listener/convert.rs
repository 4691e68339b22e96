//! Listener (LDS) → [`ListenerConfig`]: address, capture flags, filter chains and their
//! matches, each chain's downstream TLS (`transport_socket` with a `DownstreamTlsContext`), its
//! leading network RBAC filters and its terminal network filter (HTTP connection manager or
//! TCP proxy). Only the fields of `docs/xds-subset.md` (LDS) are accepted; anything else that
//! changes behaviour is a [`ConfigError`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{Address, CidrRange, address, socket_address};
use envoy_types::pb::envoy::config::listener::v3::{
    FilterChain as PbChain, FilterChainMatch, Listener, filter, listener_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use prost::Message as _;

use crate::error::ConfigError;
use crate::hcm::HcmConfig;
use crate::rbac::{NETWORK_RBAC_TYPE, NetworkRbac};
use crate::tcp::TcpProxyConfig;
use crate::tls::{SecretStore, ServerTls};

const KIND: &str = "Listener";
const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
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

/// A filter chain match (the fields mastd uses).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ChainMatch {
    /// The connection's original destination port.
    pub destination_port: Option<u16>,
    /// Destination address blocks.
    pub prefix_ranges: Vec<(IpAddr, u8)>,
    /// SNI values (exact, or `*.suffix`).
    pub server_names: Vec<String>,
    /// `raw_buffer` or `tls`.
    pub transport_protocol: Option<String>,
    /// ALPN values.
    pub application_protocols: Vec<String>,
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
            .map_err(|(f, r)| err(format!("{at}.transport_socket.{f}"), r))?
            .map(Arc::new),
    };
    let Some((terminal, leading)) = c.filters.split_last() else {
        return Err(err(
            format!("{at}.filters"),
            "a terminal network filter is required".into(),
        ));
    };
    let mut rbac = Vec::with_capacity(leading.len());
    for (i, f) in leading.iter().enumerate() {
        let field = format!("{at}.filters[{i}]");
        let any = typed(f).map_err(|r| err(format!("{field}.typed_config"), r))?;
        if any.type_url != NETWORK_RBAC_TYPE {
            return Err(err(
                format!("{field}.typed_config"),
                format!(
                    "only envoy.filters.network.rbac may precede the terminal filter, got {:?}",
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
    Ok(FilterChain {
        name: c.name.clone(),
        matcher,
        tls,
        rbac,
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

fn convert_match(m: &FilterChainMatch) -> Result<ChainMatch, (String, String)> {
    if !m.source_prefix_ranges.is_empty() || !m.direct_source_prefix_ranges.is_empty() {
        return Err((
            "source_prefix_ranges".into(),
            "source matches are not supported".into(),
        ));
    }
    if !m.source_ports.is_empty() || m.source_type != 0 {
        return Err((
            "source_ports".into(),
            "source matches are not supported".into(),
        ));
    }
    let destination_port = m
        .destination_port
        .map(|p| u16::try_from(p.value))
        .transpose()
        .map_err(|_| {
            (
                "destination_port".to_owned(),
                "port out of range".to_owned(),
            )
        })?;
    let prefix_ranges = m
        .prefix_ranges
        .iter()
        .enumerate()
        .map(|(i, r)| cidr(r).map_err(|e| (format!("prefix_ranges[{i}]"), e)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ChainMatch {
        destination_port,
        prefix_ranges,
        server_names: m
            .server_names
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect(),
        transport_protocol: (!m.transport_protocol.is_empty())
            .then(|| m.transport_protocol.clone()),
        application_protocols: m.application_protocols.clone(),
    })
}

fn cidr(r: &CidrRange) -> Result<(IpAddr, u8), String> {
    let ip: IpAddr = r
        .address_prefix
        .parse()
        .map_err(|_| format!("{:?} is not an IP address", r.address_prefix))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = r.prefix_len.map_or(max, |l| l.value);
    let len = u8::try_from(len)
        .ok()
        .filter(|l| u32::from(*l) <= max)
        .ok_or_else(|| format!("prefix_len {len} is out of range"))?;
    Ok((ip, len))
}

impl ChainMatch {
    /// Whether a connection to `dst` (with `sni` / ALPN when inspected) matches, and how
    /// specific the match is (Envoy's order: destination port, then address prefix length,
    /// then server name, transport protocol, ALPN; a more specific match wins).
    pub fn score(
        &self,
        dst: SocketAddr,
        sni: Option<&str>,
        transport: &str,
        alpn: &[String],
    ) -> Option<u32> {
        let mut score = 0;
        if let Some(port) = self.destination_port {
            if port != dst.port() {
                return None;
            }
            score += 1 << 20;
        }
        if !self.prefix_ranges.is_empty() {
            let best = self
                .prefix_ranges
                .iter()
                .filter(|(net, len)| in_prefix(dst.ip(), *net, *len))
                .map(|(_, len)| u32::from(*len))
                .max()?;
            score += (best + 1) << 10;
        }
        if !self.server_names.is_empty() {
            let sni = sni?;
            let best = self
                .server_names
                .iter()
                .filter_map(|name| server_name_score(name, sni))
                .max()?;
            score += (best.min(255) + 1) << 2;
        }
        if let Some(tp) = &self.transport_protocol {
            if tp != transport {
                return None;
            }
            score += 2;
        }
        if !self.application_protocols.is_empty() {
            if !alpn.iter().any(|p| self.application_protocols.contains(p)) {
                return None;
            }
            score += 1;
        }
        Some(score)
    }
}

fn server_name_score(name: &str, sni: &str) -> Option<u32> {
    let sni = sni.to_ascii_lowercase();
    if name == sni {
        return u32::try_from(name.len() + 1).ok();
    }
    let suffix = name.strip_prefix('*')?;
    (sni.ends_with(suffix) && sni.len() > suffix.len())
        .then(|| u32::try_from(suffix.len()).ok())
        .flatten()
}

/// Whether `ip` lies in `net/len`.
pub fn in_prefix(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}
