//! Filter-chain matching, Envoy's algorithm (`FilterChainManagerImpl::findFilterChain`): the
//! candidates are narrowed field by field in Envoy's order — destination port, destination IP
//! (longest prefix), server name (exact, then the longest `*.suffix` wildcard, which matches
//! one or more labels, then chains without names), transport protocol, application protocols
//! (the client's first offered protocol any chain lists), direct source IP, source type,
//! source IP, source port. At each step only the most specific candidates survive; when none
//! survives a step the connection gets the default chain (or is closed), never a less
//! specific chain. Conversion ([`convert_match`]) refuses what Envoy refuses: partial
//! wildcards, `address_suffix`, and chains whose matches overlap.

use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::listener::v3::FilterChainMatch;

use super::convert::FilterChain;

/// `source_type` of a filter chain match.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum SourceType {
    /// Any source (the default).
    #[default]
    Any,
    /// The peer is a loopback address or the connection's own local address.
    SameIpOrLoopback,
    /// Any other peer.
    External,
}

/// A filter chain match (all of Envoy's fields except the deprecated suffix ones).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ChainMatch {
    /// The connection's original destination port.
    pub destination_port: Option<u16>,
    /// Destination address blocks.
    pub prefix_ranges: Vec<(IpAddr, u8)>,
    /// SNI values, lowercase (exact, or `*.suffix`).
    pub server_names: Vec<String>,
    /// `raw_buffer` or `tls`.
    pub transport_protocol: Option<String>,
    /// ALPN values.
    pub application_protocols: Vec<String>,
    /// The directly connected peer's address blocks.
    pub direct_source_prefix_ranges: Vec<(IpAddr, u8)>,
    /// Local or external peers.
    pub source_type: SourceType,
    /// The peer's address blocks.
    pub source_prefix_ranges: Vec<(IpAddr, u8)>,
    /// The peer's ports.
    pub source_ports: Vec<u16>,
}

/// What a connection shows to filter-chain matching.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The (original) destination.
    pub dst: SocketAddr,
    /// The peer.
    pub peer: SocketAddr,
    /// The SNI, lowercase, when the TLS inspector saw one.
    pub server_name: Option<&'a str>,
    /// `tls` or `raw_buffer`.
    pub transport: &'a str,
    /// ALPN protocols the client offered, in its order.
    pub alpn: &'a [String],
}

/// The matching steps, in Envoy's order.
const STEPS: usize = 9;

impl ChainMatch {
    /// How specifically this match accepts the connection at `step` (higher is more
    /// specific; equal values mean the same Envoy lookup key); `None`: it does not match.
    fn level(&self, step: usize, c: &Facts<'_>) -> Option<u32> {
        match step {
            0 => match self.destination_port {
                None => Some(0),
                Some(p) => (p == c.dst.port()).then_some(1),
            },
            1 => prefix_level(&self.prefix_ranges, c.dst.ip()),
            2 => server_name_level(&self.server_names, c.server_name),
            3 => match &self.transport_protocol {
                None => Some(0),
                Some(t) => (t == c.transport).then_some(1),
            },
            4 => alpn_level(&self.application_protocols, c.alpn),
            5 => prefix_level(&self.direct_source_prefix_ranges, c.peer.ip()),
            6 => match self.source_type {
                SourceType::Any => Some(0),
                SourceType::SameIpOrLoopback => is_local(c).then_some(1),
                SourceType::External => (!is_local(c)).then_some(1),
            },
            7 => prefix_level(&self.source_prefix_ranges, c.peer.ip()),
            _ => {
                if self.source_ports.is_empty() {
                    Some(0)
                } else {
                    self.source_ports.contains(&c.peer.port()).then_some(1)
                }
            }
        }
    }

    fn survives(&self, best: &[u32], c: &Facts<'_>) -> bool {
        best.iter()
            .enumerate()
            .all(|(step, b)| self.level(step, c) == Some(*b))
    }
}

/// Envoy's `isSameIpOrLoopback`.
fn is_local(c: &Facts<'_>) -> bool {
    c.peer.ip().is_loopback() || c.peer.ip() == c.dst.ip()
}

/// No ranges: the catch-all (as `/0`); else the longest matching prefix.
fn prefix_level(ranges: &[(IpAddr, u8)], ip: IpAddr) -> Option<u32> {
    if ranges.is_empty() {
        return Some(0);
    }
    ranges
        .iter()
        .filter(|(net, len)| in_prefix(ip, *net, *len))
        .map(|(_, len)| u32::from(*len))
        .max()
}

/// Exact beats every wildcard, a longer `*.suffix` beats a shorter one, no names is last.
fn server_name_level(names: &[String], sni: Option<&str>) -> Option<u32> {
    if names.is_empty() {
        return Some(0);
    }
    let sni = sni.filter(|s| !s.is_empty())?;
    names
        .iter()
        .filter_map(|name| {
            if name == sni {
                return Some(u32::MAX);
            }
            let suffix = name.strip_prefix('*')?;
            wildcard_matches(suffix, sni).then(|| u32::try_from(suffix.len()).unwrap_or(0))
        })
        .max()
}

/// Whether `sni` is one or more labels followed by `suffix` (which starts with a dot), as
/// Envoy looks up `sni[pos..]` for each dot at `pos >= 1` before the last character.
fn wildcard_matches(suffix: &str, sni: &str) -> bool {
    suffix.len() >= 2 && sni.len() > suffix.len() && sni.ends_with(suffix)
}

/// The client's first offered protocol any chain lists wins (earlier offers rank higher);
/// chains without protocols come last.
fn alpn_level(protocols: &[String], offered: &[String]) -> Option<u32> {
    if protocols.is_empty() {
        return Some(0);
    }
    let n = offered.len();
    offered
        .iter()
        .position(|p| protocols.contains(p))
        .map(|i| u32::try_from(n - i).unwrap_or(u32::MAX))
}

/// The chain Envoy picks among `chains` for a connection (`None`: use the default chain).
/// Up to 128 chains the survivors of each step are a bit set (each chain's level is computed
/// once per step); beyond, survival is recomputed from the earlier steps' levels.
pub fn select<'a>(chains: &'a [FilterChain], c: &Facts<'_>) -> Option<&'a FilterChain> {
    if chains.len() <= 128 {
        return select_small(chains, c);
    }
    let mut best = [0u32; STEPS];
    for step in 0..STEPS {
        let top = chains
            .iter()
            .filter(|ch| ch.matcher.survives(&best[..step], c))
            .filter_map(|ch| ch.matcher.level(step, c))
            .max()?;
        best[step] = top;
    }
    chains.iter().find(|ch| ch.matcher.survives(&best, c))
}

fn select_small<'a>(chains: &'a [FilterChain], c: &Facts<'_>) -> Option<&'a FilterChain> {
    let mut alive: u128 = if chains.len() == 128 {
        u128::MAX
    } else {
        (1u128 << chains.len()) - 1
    };
    let mut levels = [None::<u32>; 128];
    for step in 0..STEPS {
        let mut top = None;
        for (i, ch) in chains.iter().enumerate() {
            if alive & (1 << i) != 0 {
                levels[i] = ch.matcher.level(step, c);
                top = top.max(levels[i]);
            }
        }
        let top = top?;
        for (i, level) in levels.iter().enumerate().take(chains.len()) {
            if *level != Some(top) {
                alive &= !(1u128 << i);
            }
        }
    }
    chains.get(alive.trailing_zeros() as usize)
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

/// Converts a `FilterChainMatch` (errors: (field relative to it, reason)).
pub fn convert_match(m: &FilterChainMatch) -> Result<ChainMatch, (String, String)> {
    #[allow(deprecated)]
    if !m.address_suffix.is_empty() || m.suffix_len.is_some() {
        return Err((
            "address_suffix".into(),
            "address_suffix/suffix_len are not implemented (Envoy refuses them too)".into(),
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
    let ranges = |list: &[CidrRange], field: &str| {
        list.iter()
            .enumerate()
            .map(|(i, r)| cidr(r).map_err(|e| (format!("{field}[{i}]"), e)))
            .collect::<Result<Vec<_>, _>>()
    };
    let mut server_names = Vec::with_capacity(m.server_names.len());
    for (i, name) in m.server_names.iter().enumerate() {
        if name.contains('*') && !name.starts_with("*.") {
            return Err((
                format!("server_names[{i}]"),
                format!("partial wildcards are not supported in server_names: {name:?}"),
            ));
        }
        server_names.push(name.to_ascii_lowercase());
    }
    let source_ports = m
        .source_ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            u16::try_from(*p)
                .map_err(|_| (format!("source_ports[{i}]"), "port out of range".into()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ChainMatch {
        destination_port: destination_port.filter(|p| *p != 0),
        prefix_ranges: ranges(&m.prefix_ranges, "prefix_ranges")?,
        server_names,
        transport_protocol: (!m.transport_protocol.is_empty())
            .then(|| m.transport_protocol.clone()),
        application_protocols: m.application_protocols.clone(),
        direct_source_prefix_ranges: ranges(
            &m.direct_source_prefix_ranges,
            "direct_source_prefix_ranges",
        )?,
        source_type: match m.source_type {
            0 => SourceType::Any,
            1 => SourceType::SameIpOrLoopback,
            2 => SourceType::External,
            v => return Err(("source_type".into(), format!("unknown source type {v}"))),
        },
        source_prefix_ranges: ranges(&m.source_prefix_ranges, "source_prefix_ranges")?,
        source_ports,
    })
}

/// A CIDR range, its address masked to the prefix (so equal blocks compare equal).
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
    Ok((masked(ip, len), len))
}

fn masked(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}

/// Envoy indexes every combination of a match's values; two chains sharing one combination
/// make the listener invalid ("multiple filter chains with overlapping matching rules").
pub fn overlapping(a: &ChainMatch, b: &ChainMatch) -> bool {
    fn meet<T: PartialEq>(x: &[T], y: &[T]) -> bool {
        (x.is_empty() && y.is_empty()) || x.iter().any(|v| y.contains(v))
    }
    a.destination_port == b.destination_port
        && meet(&a.prefix_ranges, &b.prefix_ranges)
        && meet(&a.server_names, &b.server_names)
        && a.transport_protocol == b.transport_protocol
        && meet(&a.application_protocols, &b.application_protocols)
        && meet(
            &a.direct_source_prefix_ranges,
            &b.direct_source_prefix_ranges,
        )
        && a.source_type == b.source_type
        && meet(&a.source_prefix_ranges, &b.source_prefix_ranges)
        && meet(&a.source_ports, &b.source_ports)
}
