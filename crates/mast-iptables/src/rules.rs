//! The nat table istio-iptables writes for a [`CaptureConfig`] (IPv4, or IPv6 with
//! [`nat_rules_for`]), as [`NatRules`]: the
//! chains `ISTIO_INBOUND`, `ISTIO_IN_REDIRECT`, `ISTIO_OUTPUT`, `ISTIO_REDIRECT` and the
//! rules in the order Istio's `capture.IptablesConfigurator.Run` issues them (so a rule list
//! compares line for line with Istio's goldens), rendered as `iptables-restore` input.

use std::fmt;

use super::config::{
    CaptureConfig, INBOUND_PASSTHROUGH_SOURCE, INBOUND_PASSTHROUGH_SOURCE_V6, InboundPorts,
    LOOPBACK, LOOPBACK_V6, OutboundRanges, OwnerGroups,
};

/// The IP family a table is for (`iptables` or `ip6tables`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4: `iptables`.
    V4,
    /// IPv6: `ip6tables`.
    V6,
}

impl Family {
    /// The source address of the proxy's inbound passthrough connections.
    fn passthrough_source(self) -> &'static str {
        match self {
            Self::V4 => INBOUND_PASSTHROUGH_SOURCE,
            Self::V6 => INBOUND_PASSTHROUGH_SOURCE_V6,
        }
    }

    /// The loopback address.
    fn loopback(self) -> &'static str {
        match self {
            Self::V4 => LOOPBACK,
            Self::V6 => LOOPBACK_V6,
        }
    }

    /// True when `net` is of this family.
    fn holds(self, net: &ipnet::IpNet) -> bool {
        matches!(
            (self, net),
            (Self::V4, ipnet::IpNet::V4(_)) | (Self::V6, ipnet::IpNet::V6(_))
        )
    }
}

/// Inbound TCP enters here from `PREROUTING`.
pub const ISTIO_INBOUND: &str = "ISTIO_INBOUND";
/// Redirects to the inbound capture port.
pub const ISTIO_IN_REDIRECT: &str = "ISTIO_IN_REDIRECT";
/// Outbound TCP enters here from `OUTPUT`.
pub const ISTIO_OUTPUT: &str = "ISTIO_OUTPUT";
/// Redirects to the outbound capture port.
pub const ISTIO_REDIRECT: &str = "ISTIO_REDIRECT";
/// Istio's nat chains, in the order istio-iptables creates them.
pub const ISTIO_CHAINS: [&str; 4] = [
    ISTIO_INBOUND,
    ISTIO_REDIRECT,
    ISTIO_IN_REDIRECT,
    ISTIO_OUTPUT,
];

/// How a rule is added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// `-A`: at the end of the chain.
    Append,
    /// `-I <n>`: at position n (1 = first).
    Insert(u32),
}

/// One rule of the nat table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The chain it goes in.
    pub chain: &'static str,
    /// Appended or inserted.
    pub position: Position,
    /// The match and target, as iptables arguments (`-p tcp -j ISTIO_INBOUND`).
    pub spec: String,
}

impl Rule {
    /// True when the rule goes in one of the table's built-in chains (`PREROUTING`, `OUTPUT`).
    pub fn in_builtin_chain(&self) -> bool {
        !self.chain.starts_with("ISTIO_")
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Position::Append => write!(f, "-A {} {}", self.chain, self.spec),
            Position::Insert(n) => write!(f, "-I {} {n} {}", self.chain, self.spec),
        }
    }
}

/// The nat table for one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatRules {
    /// The rules, in Istio's order.
    pub rules: Vec<Rule>,
}

impl NatRules {
    /// The rules as `-A`/`-I` lines.
    pub fn lines(&self) -> Vec<String> {
        self.rules.iter().map(ToString::to_string).collect()
    }

    /// The `iptables-restore` input for a fresh table: `*nat`, Istio's chains (declared,
    /// so `--noflush` creates them or flushes them), the rules, `COMMIT`.
    pub fn restore_input(&self) -> String {
        let mut out = String::from("*nat\n");
        for chain in ISTIO_CHAINS {
            out.push_str(&format!(":{chain} - [0:0]\n"));
        }
        for line in self.lines() {
            out.push_str(&line);
            out.push('\n');
        }
        out.push_str("COMMIT\n");
        out
    }
}

/// Builds the rule list.
struct Builder(Vec<Rule>);

impl Builder {
    fn append(&mut self, chain: &'static str, spec: String) {
        self.0.push(Rule {
            chain,
            position: Position::Append,
            spec,
        });
    }

    fn insert_first(&mut self, chain: &'static str, spec: String) {
        self.0.push(Rule {
            chain,
            position: Position::Insert(1),
            spec,
        });
    }
}

/// The IPv4 nat rules istio-iptables writes for `config` (IPv6 ranges in `-i`/`-x` are
/// left out: they belong to ip6tables).
pub fn nat_rules(config: &CaptureConfig) -> NatRules {
    nat_rules_for(config, Family::V4)
}

/// The nat rules of one family: the same rules, with that family's loopback and inbound
/// passthrough addresses and only its ranges from `-i`/`-x`.
pub fn nat_rules_for(config: &CaptureConfig, family: Family) -> NatRules {
    let mut b = Builder(Vec::new());
    interfaces_and_targets(&mut b, config);
    let tunnel = config.inbound_tunnel_port;
    inbound(&mut b, config);
    b.append("OUTPUT", format!("-p tcp -j {ISTIO_OUTPUT}"));
    for port in &config.outbound_ports_exclude {
        b.append(ISTIO_OUTPUT, format!("-p tcp --dport {port} -j RETURN"));
    }
    b.append(
        ISTIO_OUTPUT,
        format!("-o lo -s {} -j RETURN", family.passthrough_source()),
    );
    let keep_loopback = !config.outbound_ranges.has_loopback();
    for (owner, ids) in [("uid", &config.proxy_uids), ("gid", &config.proxy_gids)] {
        for id in ids {
            proxy_owner(&mut b, (owner, id.as_str()), family, tunnel, keep_loopback);
        }
    }
    owner_groups(&mut b, &config.owner_groups);
    b.append(ISTIO_OUTPUT, format!("-d {} -j RETURN", family.loopback()));
    for net in config
        .outbound_ranges_exclude
        .iter()
        .filter(|n| family.holds(n))
    {
        b.append(ISTIO_OUTPUT, format!("-d {net} -j RETURN"));
    }
    for port in &config.outbound_ports {
        b.append(
            ISTIO_OUTPUT,
            format!("-p tcp --dport {port} -j {ISTIO_REDIRECT}"),
        );
    }
    outbound_ranges(&mut b, config, family);
    NatRules { rules: b.0 }
}

/// The interface rules (`-c`, `-k`), then the tunnel port's return and the two redirect
/// targets, as istio-iptables starts.
fn interfaces_and_targets(b: &mut Builder, config: &CaptureConfig) {
    for nic in &config.exclude_interfaces {
        b.append("PREROUTING", format!("-i {nic} -j RETURN"));
        b.append("OUTPUT", format!("-o {nic} -j RETURN"));
    }
    for nic in &config.kube_virt_interfaces {
        b.insert_first("PREROUTING", format!("-i {nic} -j RETURN"));
    }
    let tunnel = config.inbound_tunnel_port;
    b.append(ISTIO_INBOUND, format!("-p tcp --dport {tunnel} -j RETURN"));
    b.append(
        ISTIO_REDIRECT,
        format!("-p tcp -j REDIRECT --to-ports {}", config.proxy_port),
    );
    b.append(
        ISTIO_IN_REDIRECT,
        format!(
            "-p tcp -j REDIRECT --to-ports {}",
            config.inbound_capture_port
        ),
    );
}

/// Outbound capture by owner group: the excluded groups return, or everyone outside the
/// included groups returns.
fn owner_groups(b: &mut Builder, groups: &OwnerGroups) {
    match groups {
        OwnerGroups::Exclude(groups) => {
            for group in groups {
                b.append(
                    ISTIO_OUTPUT,
                    format!("-m owner --gid-owner {group} -j RETURN"),
                );
            }
        }
        OwnerGroups::Include(groups) if !groups.iter().any(|g| g == "*") => {
            let none_of: Vec<String> = groups
                .iter()
                .map(|g| format!("-m owner ! --gid-owner {g}"))
                .collect();
            b.append(ISTIO_OUTPUT, format!("{} -j RETURN", none_of.join(" ")));
        }
        OwnerGroups::Include(_) => {}
    }
}

/// `-b`: the `PREROUTING` jump and what `ISTIO_INBOUND` redirects.
fn inbound(b: &mut Builder, config: &CaptureConfig) {
    match &config.inbound_ports {
        InboundPorts::None => {}
        InboundPorts::All => {
            b.append("PREROUTING", format!("-p tcp -j {ISTIO_INBOUND}"));
            for port in &config.inbound_ports_exclude {
                b.append(ISTIO_INBOUND, format!("-p tcp --dport {port} -j RETURN"));
            }
            b.append(ISTIO_INBOUND, format!("-p tcp -j {ISTIO_IN_REDIRECT}"));
        }
        InboundPorts::Only(ports) => {
            b.append("PREROUTING", format!("-p tcp -j {ISTIO_INBOUND}"));
            for port in ports {
                b.append(
                    ISTIO_INBOUND,
                    format!("-p tcp --dport {port} -j {ISTIO_IN_REDIRECT}"),
                );
            }
        }
    }
}

/// The three rules for one proxy uid or gid: the proxy calling the pod's own address goes
/// to inbound capture; other processes' loopback traffic returns (unless loopback ranges
/// are captured); the proxy's own traffic returns (no loop).
fn proxy_owner(
    b: &mut Builder,
    (owner, id): (&str, &str),
    family: Family,
    tunnel: u16,
    keep_loopback: bool,
) {
    let loopback = family.loopback();
    b.append(
        ISTIO_OUTPUT,
        format!(
            "-o lo ! -d {loopback} -p tcp ! --dport {tunnel} -m owner --{owner}-owner {id} -j {ISTIO_IN_REDIRECT}"
        ),
    );
    if keep_loopback {
        b.append(
            ISTIO_OUTPUT,
            format!("-o lo -m owner ! --{owner}-owner {id} -j RETURN"),
        );
    }
    b.append(
        ISTIO_OUTPUT,
        format!("-m owner --{owner}-owner {id} -j RETURN"),
    );
}

/// `-i` (with `-k`): what goes to `ISTIO_REDIRECT`.
fn outbound_ranges(b: &mut Builder, config: &CaptureConfig, family: Family) {
    match &config.outbound_ranges {
        OutboundRanges::None => {}
        OutboundRanges::All => {
            b.append(ISTIO_OUTPUT, format!("-j {ISTIO_REDIRECT}"));
            for nic in &config.kube_virt_interfaces {
                b.insert_first("PREROUTING", format!("-i {nic} -j {ISTIO_REDIRECT}"));
            }
        }
        OutboundRanges::Only(nets) => {
            for net in nets.iter().filter(|n| family.holds(n)) {
                for nic in &config.kube_virt_interfaces {
                    b.insert_first(
                        "PREROUTING",
                        format!("-i {nic} -d {net} -j {ISTIO_REDIRECT}"),
                    );
                }
                b.append(ISTIO_OUTPUT, format!("-d {net} -j {ISTIO_REDIRECT}"));
            }
        }
    }
}
