//! Filter chains before they become Envoy's: the runtime match (SNI `server_names`,
//! destination `prefix_ranges`) and the network filters, with the rules Istio applies when
//! several chains share a listener — identical matches are dropped (Envoy refuses them), and a
//! match-all chain becomes the listener's `default_filter_chain`.

use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener,
};
use envoy_types::pb::google::protobuf::UInt32Value;

use super::filters;

/// A destination CIDR block, masked (`10.1.2.3/8` is `10.0.0.0/8`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cidr {
    /// The network address.
    pub addr: IpAddr,
    /// The prefix length.
    pub len: u8,
}

impl Cidr {
    /// Parses `a.b.c.d`, `a.b.c.d/n` or the IPv6 forms; `None` when malformed.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (ip, len) = match s.split_once('/') {
            Some((ip, len)) => (ip.trim(), Some(len.trim().parse::<u8>().ok()?)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = ip.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = len.unwrap_or(max);
        if len > max {
            return None;
        }
        Some(Cidr {
            addr: mask(addr, len),
            len,
        })
    }

    /// Whether the block is the unspecified address (`0.0.0.0`, `::`): it matches everything.
    pub fn is_unspecified(&self) -> bool {
        self.addr.is_unspecified()
    }

    fn to_envoy(&self) -> CidrRange {
        CidrRange {
            address_prefix: self.addr.to_string(),
            prefix_len: Some(UInt32Value {
                value: u32::from(self.len),
            }),
        }
    }
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

/// Parses destination subnets, leaving out malformed and unspecified ones (with a warning for
/// the malformed: validation should have refused them).
pub fn parse_cidrs(subnets: &[String]) -> Vec<Cidr> {
    let mut out: Vec<Cidr> = subnets
        .iter()
        .filter_map(|s| {
            let parsed = Cidr::parse(s);
            if parsed.is_none() {
                tracing::warn!(subnet = %s, "ignoring a destination subnet that is not an IP or CIDR");
            }
            parsed
        })
        .filter(|c| !c.is_unspecified())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// One filter chain to be: what it matches at run time and its network filters.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainOpts {
    /// SNI values (sorted; empty or containing `*` means any).
    pub server_names: Vec<String>,
    /// Destination blocks (sorted, masked; empty means any).
    pub prefix_ranges: Vec<Cidr>,
    /// The network filters, the terminal one last.
    pub filters: Vec<Filter>,
}

impl ChainOpts {
    /// A chain with these matches; server names are sorted and deduplicated.
    pub fn new(
        mut server_names: Vec<String>,
        prefix_ranges: Vec<Cidr>,
        filters: Vec<Filter>,
    ) -> Self {
        server_names.sort();
        server_names.dedup();
        Self {
            server_names,
            prefix_ranges,
            filters,
        }
    }

    /// The server names Envoy should match: none when any SNI is accepted.
    fn effective_server_names(&self) -> &[String] {
        if self.server_names.iter().any(|s| s == "*") {
            &[]
        } else {
            &self.server_names
        }
    }

    /// Whether the chain matches every connection.
    pub fn is_match_all(&self) -> bool {
        self.effective_server_names().is_empty() && self.prefix_ranges.is_empty()
    }

    /// Whether Envoy would see both chains as matching the same connections.
    pub fn same_match(&self, other: &ChainOpts) -> bool {
        self.effective_server_names() == other.effective_server_names()
            && self.prefix_ranges == other.prefix_ranges
    }

    /// Whether the chain needs the TLS inspector (it matches on SNI).
    pub fn needs_sni(&self) -> bool {
        !self.effective_server_names().is_empty()
    }

    fn into_chain(self) -> FilterChain {
        let filter_chain_match = (!self.is_match_all()).then(|| FilterChainMatch {
            server_names: self.effective_server_names().to_vec(),
            prefix_ranges: self.prefix_ranges.iter().map(Cidr::to_envoy).collect(),
            ..Default::default()
        });
        FilterChain {
            filter_chain_match,
            filters: self.filters,
            ..Default::default()
        }
    }
}

/// Appends `chain` unless a chain with the same match is already there (first wins, as in
/// Istio); returns whether it was added.
pub fn push_unique(chains: &mut Vec<ChainOpts>, chain: ChainOpts) -> bool {
    if chains.iter().any(|c| c.same_match(&chain)) {
        return false;
    }
    chains.push(chain);
    true
}

/// Fills `listener`'s chains as Istio does: a lone match-all chain is the only filter chain;
/// otherwise a match-all chain becomes `default_filter_chain`, and without one the
/// `fallback` filters (to Passthrough or BlackHole) form a `PassthroughFilterChain` default.
/// Adds the TLS inspector when a chain matches on SNI.
pub fn install(listener: &mut Listener, chains: Vec<ChainOpts>, fallback: Vec<Filter>) {
    if chains.iter().any(ChainOpts::needs_sni) {
        listener.listener_filters.push(filters::tls_inspector());
    }
    let (match_all, specific): (Vec<_>, Vec<_>) =
        chains.into_iter().partition(ChainOpts::is_match_all);
    let default = match_all.into_iter().next().map(ChainOpts::into_chain);
    listener.filter_chains = specific.into_iter().map(ChainOpts::into_chain).collect();
    match default {
        Some(chain) if listener.filter_chains.is_empty() => listener.filter_chains.push(chain),
        Some(chain) => listener.default_filter_chain = Some(chain),
        None => {
            listener.default_filter_chain = Some(FilterChain {
                name: PASSTHROUGH_FILTER_CHAIN.into(),
                filter_chain_match: Some(FilterChainMatch::default()),
                filters: fallback,
                ..Default::default()
            });
        }
    }
}

/// Name of the fallback chain of outbound listeners (Istio's).
pub const PASSTHROUGH_FILTER_CHAIN: &str = "PassthroughFilterChain";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_mask() {
        let c = Cidr::parse("10.1.2.3/8").unwrap();
        assert_eq!(c.addr.to_string(), "10.0.0.0");
        assert_eq!(c.len, 8);
        assert_eq!(Cidr::parse("10.1.2.3").unwrap().len, 32);
        assert_eq!(
            Cidr::parse("2001:db8::1/32").unwrap().addr.to_string(),
            "2001:db8::"
        );
        assert_eq!(
            Cidr::parse("10.0.0.0/0").unwrap().addr.to_string(),
            "0.0.0.0"
        );
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("bogus").is_none());
        assert_eq!(
            parse_cidrs(&["0.0.0.0/0".into(), "1.2.3.4".into(), "1.2.3.4/32".into()]).len(),
            1
        );
    }

    #[test]
    fn same_match_ignores_star_sni_and_order() {
        let a = ChainOpts::new(vec!["b".into(), "a".into()], vec![], vec![]);
        let b = ChainOpts::new(vec!["a".into(), "b".into()], vec![], vec![]);
        assert!(a.same_match(&b));
        let star = ChainOpts::new(vec!["*".into()], vec![], vec![]);
        assert!(star.is_match_all());
        let mut chains = vec![a];
        assert!(!push_unique(&mut chains, b));
        assert!(push_unique(&mut chains, star));
    }
}
