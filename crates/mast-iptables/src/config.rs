//! What to capture: [`CaptureConfig`], the parsed and validated form of istio-iptables'
//! flags (ports, proxy uid/gid, inbound and outbound selections, interfaces), with Istio's
//! defaults, and the errors naming the flag and the value that is wrong.

use ipnet::IpNet;

/// Istio's sidecar outbound capture port (`-p`).
pub const DEFAULT_PROXY_PORT: u16 = 15001;
/// Istio's sidecar inbound capture port (`-z`).
pub const DEFAULT_INBOUND_CAPTURE_PORT: u16 = 15006;
/// Istio's HBONE tunnel port, never redirected (`-e`).
pub const DEFAULT_INBOUND_TUNNEL_PORT: u16 = 15008;
/// The proxy's uid (and gid) when `-u` is not given (Istio's `istio-proxy` user).
pub const DEFAULT_PROXY_UID: &str = "1337";
/// The inbound ports Istio's injector always excludes (`-d 15090,15021,15020`): the
/// proxy's Prometheus port, its health port and the agent's metrics port.
pub const SIDECAR_EXCLUDE_INBOUND_PORTS: &str = "15090,15021,15020";
/// istio-iptables' flags as Istio's injector gives `istio-init` for a pod with no traffic
/// annotations (istio/istio `pkg/kube/inject/testdata/inject/hello.yaml.injected`).
pub const SIDECAR_INIT_FLAGS: [&str; 16] = [
    "-p",
    "15001",
    "-z",
    "15006",
    "-u",
    DEFAULT_PROXY_UID,
    "-m",
    "REDIRECT",
    "-i",
    "*",
    "-x",
    "",
    "-b",
    "*",
    "-d",
    SIDECAR_EXCLUDE_INBOUND_PORTS,
];
/// The source address of the proxy's inbound passthrough connections to the app.
pub const INBOUND_PASSTHROUGH_SOURCE: &str = "127.0.0.6/32";
/// The loopback address applications reach each other on (Istio's host IPv4 loopback CIDR).
pub const LOOPBACK: &str = "127.0.0.1/32";
/// [`INBOUND_PASSTHROUGH_SOURCE`] in IPv6.
pub const INBOUND_PASSTHROUGH_SOURCE_V6: &str = "::6/128";
/// [`LOOPBACK`] in IPv6.
pub const LOOPBACK_V6: &str = "::1/128";

/// Why the flags do not make a capture configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    /// A port list holds something that is not a port.
    #[error("{flag}: {value:?} is not a port (1-65535)")]
    BadPort {
        /// The flag, short and long.
        flag: &'static str,
        /// The offending list item.
        value: String,
    },
    /// A CIDR list holds something that is not a CIDR.
    #[error("{flag}: {value:?} is not an IP range in CIDR form (like 10.0.0.0/8): {reason}")]
    BadCidr {
        /// The flag, short and long.
        flag: &'static str,
        /// The offending list item.
        value: String,
        /// What the parser said.
        reason: String,
    },
    /// A user, group or interface name with characters iptables would not take.
    #[error("{flag}: {value:?} is not a valid {what} (letters, digits, '_', '-', '.')")]
    BadName {
        /// The flag, short and long.
        flag: &'static str,
        /// What the value names (user, group, interface).
        what: &'static str,
        /// The offending list item.
        value: String,
    },
    /// `-x "*"`: excluding every destination is not a capture.
    #[error("-x/--istio-service-exclude-cidr: \"*\" is not allowed (it would exclude everything)")]
    WildcardExclude,
    /// An inbound interception mode other than REDIRECT or TPROXY.
    #[error("-m/--istio-inbound-interception-mode: {0:?} is neither REDIRECT nor TPROXY")]
    BadMode(String),
    /// A flag of istio-iptables that Mast does not implement.
    #[error("{flag}: not supported by Mast: {why}")]
    Unsupported {
        /// The flag.
        flag: &'static str,
        /// Why, and what to do instead.
        why: &'static str,
    },
}

/// How inbound connections reach the proxy (`-m`). Only REDIRECT is implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InterceptionMode {
    /// nat `REDIRECT` to the inbound capture port (the app sees 127.0.0.6 or the pod IP).
    #[default]
    Redirect,
}

/// Which inbound ports are redirected (`-b`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum InboundPorts {
    /// Empty list: no inbound capture (no `PREROUTING` jump).
    #[default]
    None,
    /// `*`: every port but the excluded ones (`-d`) and the tunnel port.
    All,
    /// Only these ports.
    Only(Vec<u16>),
}

/// Which outbound destinations are redirected (`-i`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OutboundRanges {
    /// Empty list: no outbound capture (only the uid/gid and loopback rules).
    #[default]
    None,
    /// `*`: every destination but the excluded ranges (`-x`).
    All,
    /// Only these ranges.
    Only(Vec<IpNet>),
}

impl OutboundRanges {
    /// True when an included range is a loopback range (Istio then keeps app-to-app
    /// loopback traffic captured: no `-o lo … ! --uid-owner … RETURN` rules).
    pub fn has_loopback(&self) -> bool {
        match self {
            Self::Only(nets) => nets.iter().any(|n| n.addr().is_loopback()),
            _ => false,
        }
    }
}

/// Whose outbound traffic is captured, by the process's group (Istio's
/// `ISTIO_OUTBOUND_OWNER_GROUPS` / `ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerGroups {
    /// Only processes in one of these groups (`*`: every group, no rule).
    Include(Vec<String>),
    /// Every process except those in these groups.
    Exclude(Vec<String>),
}

impl Default for OwnerGroups {
    fn default() -> Self {
        Self::Include(vec!["*".to_owned()])
    }
}

/// istio-iptables' configuration, validated. [`Default`] is istio-iptables run with no
/// flags: the sidecar ports, uid/gid 1337, no inbound and no outbound capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureConfig {
    /// Where outbound TCP is redirected (`-p`, 15001).
    pub proxy_port: u16,
    /// Where inbound TCP is redirected (`-z`, 15006).
    pub inbound_capture_port: u16,
    /// The tunnel port, never redirected (`-e`, 15008).
    pub inbound_tunnel_port: u16,
    /// The proxy's users, whose traffic is not captured (`-u`, 1337).
    pub proxy_uids: Vec<String>,
    /// The proxy's groups, whose traffic is not captured (`-g`, the uids).
    pub proxy_gids: Vec<String>,
    /// The inbound interception mode (`-m`).
    pub mode: InterceptionMode,
    /// Inbound ports redirected (`-b`).
    pub inbound_ports: InboundPorts,
    /// Inbound ports not redirected when `-b '*'` (`-d`).
    pub inbound_ports_exclude: Vec<u16>,
    /// Outbound destinations redirected (`-i`).
    pub outbound_ranges: OutboundRanges,
    /// Outbound destinations never redirected (`-x`).
    pub outbound_ranges_exclude: Vec<IpNet>,
    /// Outbound ports redirected whatever the destination (`-q`).
    pub outbound_ports: Vec<u16>,
    /// Outbound ports never redirected (`-o`).
    pub outbound_ports_exclude: Vec<u16>,
    /// Virtual interfaces whose inbound traffic is treated as outbound (`-k`).
    pub kube_virt_interfaces: Vec<String>,
    /// Interfaces never captured, in or out (`-c`).
    pub exclude_interfaces: Vec<String>,
    /// Outbound capture by owner group.
    pub owner_groups: OwnerGroups,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            proxy_port: DEFAULT_PROXY_PORT,
            inbound_capture_port: DEFAULT_INBOUND_CAPTURE_PORT,
            inbound_tunnel_port: DEFAULT_INBOUND_TUNNEL_PORT,
            proxy_uids: vec![DEFAULT_PROXY_UID.to_owned()],
            proxy_gids: vec![DEFAULT_PROXY_UID.to_owned()],
            mode: InterceptionMode::Redirect,
            inbound_ports: InboundPorts::None,
            inbound_ports_exclude: Vec::new(),
            outbound_ranges: OutboundRanges::None,
            outbound_ranges_exclude: Vec::new(),
            outbound_ports: Vec::new(),
            outbound_ports_exclude: Vec::new(),
            kube_virt_interfaces: Vec::new(),
            exclude_interfaces: Vec::new(),
            owner_groups: OwnerGroups::default(),
        }
    }
}

/// Splits a comma-separated list as istio-iptables does: items trimmed, empty items dropped.
pub fn split(list: &str) -> Vec<&str> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// One port.
pub fn parse_port(flag: &'static str, value: &str) -> Result<u16, CaptureError> {
    match value.trim().parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(CaptureError::BadPort {
            flag,
            value: value.to_owned(),
        }),
    }
}

/// A comma-separated port list.
pub fn parse_ports(flag: &'static str, list: &str) -> Result<Vec<u16>, CaptureError> {
    split(list)
        .into_iter()
        .map(|p| parse_port(flag, p))
        .collect()
}

/// A comma-separated CIDR list (`*` is handled by the caller).
pub fn parse_cidrs(flag: &'static str, list: &str) -> Result<Vec<IpNet>, CaptureError> {
    split(list)
        .into_iter()
        .map(|c| {
            c.parse::<IpNet>().map_err(|e| CaptureError::BadCidr {
                flag,
                value: c.to_owned(),
                reason: e.to_string(),
            })
        })
        .collect()
}

/// A comma-separated list of user, group or interface names (or numbers).
pub fn parse_names(
    flag: &'static str,
    what: &'static str,
    list: &str,
) -> Result<Vec<String>, CaptureError> {
    split(list)
        .into_iter()
        .map(|name| {
            let ok = name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if ok && name.len() <= 32 {
                Ok(name.to_owned())
            } else {
                Err(CaptureError::BadName {
                    flag,
                    what,
                    value: name.to_owned(),
                })
            }
        })
        .collect()
}

/// `-b`: empty, `*`, or a port list.
pub fn parse_inbound_ports(list: &str) -> Result<InboundPorts, CaptureError> {
    let flag = "-b/--istio-inbound-ports";
    match list.trim() {
        "" => Ok(InboundPorts::None),
        "*" => Ok(InboundPorts::All),
        other => Ok(InboundPorts::Only(parse_ports(flag, other)?)),
    }
}

/// `-i`: empty, `*`, or a CIDR list.
pub fn parse_outbound_ranges(list: &str) -> Result<OutboundRanges, CaptureError> {
    let flag = "-i/--istio-service-cidr";
    match list.trim() {
        "" => Ok(OutboundRanges::None),
        "*" => Ok(OutboundRanges::All),
        other => Ok(OutboundRanges::Only(parse_cidrs(flag, other)?)),
    }
}

/// `-m`: REDIRECT (TPROXY is refused: Mast's proxies do not set the transparent socket
/// option Istio's TPROXY mode needs).
pub fn parse_mode(mode: &str) -> Result<InterceptionMode, CaptureError> {
    match mode.trim() {
        "" | "REDIRECT" => Ok(InterceptionMode::Redirect),
        "TPROXY" => Err(CaptureError::Unsupported {
            flag: "-m/--istio-inbound-interception-mode TPROXY",
            why: "Mast captures inbound traffic with REDIRECT only (use -m REDIRECT)",
        }),
        other => Err(CaptureError::BadMode(other.to_owned())),
    }
}

/// Owner groups from Istio's include and exclude lists: a non-empty exclude list wins.
pub fn parse_owner_groups(include: &str, exclude: &str) -> Result<OwnerGroups, CaptureError> {
    let excluded = parse_names("ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE", "group", exclude)?;
    if !excluded.is_empty() {
        return Ok(OwnerGroups::Exclude(excluded));
    }
    let included = split(include);
    if included.is_empty() || included.contains(&"*") {
        return Ok(OwnerGroups::default());
    }
    Ok(OwnerGroups::Include(parse_names(
        "ISTIO_OUTBOUND_OWNER_GROUPS",
        "group",
        include,
    )?))
}
