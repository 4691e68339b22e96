//! Envoy's request header mutation at the connection manager (`ConnectionManagerUtility::
//! mutateRequestHeaders`), the parts gateways depend on: with `use_remote_address` the peer
//! is appended to `x-forwarded-for` (a loopback peer appends the proxy's own address instead,
//! unless `skip_xff_append`), `x-forwarded-proto` is overwritten from the connection unless a
//! trusted hop set it, the trusted client address is read `xff_num_trusted_hops` from the
//! right; internal requests (with `use_remote_address`: no `x-forwarded-for` received, else a
//! single-address one; and the client address inside `internal_address_config` — Envoy ≥1.36
//! trusts no address by default) get `x-envoy-internal: true`, others lose Envoy's internal
//! control headers, and edge requests carry `x-envoy-external-address` and a fresh
//! `x-request-id`. Also `strip_any_host_port` /
//! `strip_matching_host_port` and the `server` response header.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::StripPortMode;
use http::{HeaderMap, HeaderValue};

use crate::listener::chain_match::in_prefix;

/// Envoy's control headers removed from requests that are not internal.
const INTERNAL_ONLY: [&str; 14] = [
    "x-envoy-retriable-status-codes",
    "x-envoy-retriable-header-names",
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-max-retries",
    "x-envoy-upstream-alt-stat-name",
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-force-trace",
    "x-envoy-ip-tags",
    "x-envoy-original-url",
    "x-envoy-hedge-on-per-try-timeout",
];

/// Also removed from edge requests.
const EDGE_ONLY: [&str; 3] = [
    "x-envoy-decorator-operation",
    "x-envoy-downstream-service-cluster",
    "x-envoy-downstream-service-node",
];

/// How the host's port is stripped before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StripPort {
    /// Kept.
    #[default]
    None,
    /// `strip_any_host_port`.
    Any,
    /// `strip_matching_host_port`: only when it is the listener's port.
    Matching,
}

/// The `server` response header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerHeader {
    /// OVERWRITE (the default): always this value.
    Overwrite(HeaderValue),
    /// APPEND_IF_ABSENT.
    IfAbsent(HeaderValue),
    /// PASS_THROUGH.
    PassThrough,
}

/// The edge settings of a connection manager.
#[derive(Debug, Clone)]
pub struct Edge {
    /// `skip_xff_append`.
    pub skip_xff_append: bool,
    /// `internal_address_config.cidr_ranges`.
    pub internal: Vec<(IpAddr, u8)>,
    /// `preserve_external_request_id`.
    pub preserve_external_request_id: bool,
    /// Host port stripping.
    pub strip_port: StripPort,
    /// The `server` header.
    pub server: ServerHeader,
}

impl Edge {
    /// Converts the edge fields (errors: (field, reason)).
    pub fn from_proto(h: &HttpConnectionManager) -> Result<Self, (String, String)> {
        refuse_unimplemented(h)?;
        let internal = internal_ranges(h)?;
        let strip_port = match &h.strip_port_mode {
            Some(StripPortMode::StripAnyHostPort(true)) => StripPort::Any,
            _ if h.strip_matching_host_port => StripPort::Matching,
            _ => StripPort::None,
        };
        let name = if h.server_name.is_empty() {
            HeaderValue::from_static("envoy")
        } else {
            HeaderValue::from_str(&h.server_name)
                .map_err(|e| ("server_name".to_owned(), e.to_string()))?
        };
        let server = match h.server_header_transformation {
            0 => ServerHeader::Overwrite(name),
            1 => ServerHeader::IfAbsent(name),
            2 => ServerHeader::PassThrough,
            v => {
                return Err((
                    "server_header_transformation".into(),
                    format!("unknown value {v}"),
                ));
            }
        };
        Ok(Self {
            skip_xff_append: h.skip_xff_append,
            internal,
            preserve_external_request_id: h.preserve_external_request_id,
            strip_port,
            server,
        })
    }

    /// Sets the `server` response header.
    pub fn server_header(&self, headers: &mut HeaderMap) {
        match &self.server {
            ServerHeader::Overwrite(v) => {
                headers.insert(http::header::SERVER, v.clone());
            }
            ServerHeader::IfAbsent(v) => {
                if !headers.contains_key(http::header::SERVER) {
                    headers.insert(http::header::SERVER, v.clone());
                }
            }
            ServerHeader::PassThrough => {}
        }
    }

    /// The authority without its port when stripping applies (`local_port`: the listener's).
    pub fn strip<'a>(&self, authority: &'a str, local_port: u16) -> &'a str {
        if self.strip_port == StripPort::None {
            return authority;
        }
        let Some((host, port)) = split_port(authority) else {
            return authority;
        };
        match self.strip_port {
            StripPort::Any => host,
            _ if port.parse::<u16>().ok() == Some(local_port) => host,
            _ => authority,
        }
    }
}

/// Header features of the connection manager mast-proxy does not implement.
fn refuse_unimplemented(h: &HttpConnectionManager) -> Result<(), (String, String)> {
    let unsupported = [
        ("via", !h.via.is_empty()),
        ("append_x_forwarded_port", h.append_x_forwarded_port),
        (
            "original_ip_detection_extensions",
            !h.original_ip_detection_extensions.is_empty(),
        ),
        (
            "early_header_mutation_extensions",
            !h.early_header_mutation_extensions.is_empty(),
        ),
        ("add_user_agent", h.add_user_agent.is_some_and(|b| b.value)),
        (
            "scheme_header_transformation",
            h.scheme_header_transformation.is_some(),
        ),
    ];
    if let Some((field, _)) = unsupported.iter().find(|(_, set)| *set) {
        return Err((
            (*field).to_owned(),
            "not supported by mast-proxy yet".into(),
        ));
    }
    Ok(())
}

/// `internal_address_config.cidr_ranges`.
fn internal_ranges(h: &HttpConnectionManager) -> Result<Vec<(IpAddr, u8)>, (String, String)> {
    let mut internal = Vec::new();
    if let Some(c) = &h.internal_address_config {
        for (i, r) in c.cidr_ranges.iter().enumerate() {
            let ip: IpAddr = r.address_prefix.parse().map_err(|_| {
                (
                    format!("internal_address_config.cidr_ranges[{i}].address_prefix"),
                    format!("{:?} is not an IP address", r.address_prefix),
                )
            })?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len = r.prefix_len.map_or(max, |l| l.value.min(max));
            internal.push((ip, u8::try_from(len).unwrap_or(0)));
        }
    }
    Ok(internal)
}

fn split_port(authority: &str) -> Option<(&str, &str)> {
    let i = if authority.starts_with('[') {
        authority.rfind("]:").map(|i| i + 1)?
    } else {
        authority.rfind(':')?
    };
    Some((&authority[..i], &authority[i + 1..]))
}

/// What the request mutation decided.
#[derive(Debug, Clone, Copy)]
pub struct Mutated {
    /// The client address Envoy trusts (for logs and policies).
    pub remote: IpAddr,
    /// An edge request (external, `use_remote_address`).
    pub edge: bool,
}

/// Envoy's request header mutation for a request from `peer` to `local` (`tls`: over TLS).
/// `use_remote` / `trusted_hops` / `edge` are the connection manager's settings.
pub fn mutate_request(
    headers: &mut HeaderMap,
    (peer, local, tls): (SocketAddr, SocketAddr, bool),
    (use_remote, trusted_hops): (bool, u32),
    edge: &Edge,
) -> Mutated {
    headers.remove("x-envoy-internal");
    let proto = HeaderValue::from_static(if tls { "https" } else { "http" });
    let mut remote = None;
    let trusted_checks;
    if use_remote {
        trusted_checks = !headers.contains_key("x-forwarded-for");
        if trusted_hops > 0 {
            remote = xff_from_right(headers, trusted_hops - 1);
        }
        if !edge.skip_xff_append {
            let appended = if peer.ip().is_loopback() {
                local_address(local.ip())
            } else {
                peer.ip()
            };
            append_xff(headers, appended);
        }
        if trusted_hops == 0 || !headers.contains_key("x-forwarded-proto") {
            headers.insert("x-forwarded-proto", proto.clone());
        }
    } else {
        // Envoy's default original-IP detection (XFF): trusted checks only for a single
        // address.
        let count = xff_entries(headers);
        remote = xff_from_right(headers, trusted_hops);
        trusted_checks = count == 1 && remote.is_some();
    }
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert("x-forwarded-proto", proto);
    }
    let internal = trusted_checks
        && remote
            .or(use_remote.then_some(peer.ip()))
            .is_some_and(|ip| edge.internal.iter().any(|(n, l)| in_prefix(ip, *n, *l)));
    let remote = remote.unwrap_or(peer.ip());
    let is_edge = !internal && use_remote;
    sanitize(headers, internal, is_edge);
    if is_edge && let Ok(v) = HeaderValue::from_str(&remote.to_string()) {
        headers.insert("x-envoy-external-address", v);
    }
    Mutated {
        remote,
        edge: is_edge,
    }
}

/// Marks an internal request, or strips Envoy's control headers from the others (and the
/// edge-only ones from edge requests).
fn sanitize(headers: &mut HeaderMap, internal: bool, edge: bool) {
    if internal {
        headers.insert("x-envoy-internal", HeaderValue::from_static("true"));
    } else if headers.keys().any(|k| k.as_str().starts_with("x-envoy-")) {
        // (One pass over the names first: most requests carry no x-envoy-* header.)
        if edge {
            for h in EDGE_ONLY {
                headers.remove(h);
            }
        }
        for h in INTERNAL_ONLY {
            headers.remove(h);
        }
    }
}

/// The address `skip` entries from the right of `x-forwarded-for` (all values joined).
fn xff_from_right(headers: &HeaderMap, skip: u32) -> Option<IpAddr> {
    let mut values: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    values.reverse();
    values
        .iter()
        .flat_map(|v| v.rsplit(','))
        .nth(usize::try_from(skip).ok()?)
        .and_then(|a| a.trim().parse().ok())
}

fn xff_entries(headers: &HeaderMap) -> usize {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(',').count())
        .sum()
}

fn append_xff(headers: &mut HeaderMap, ip: IpAddr) {
    let value = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prior) if !prior.is_empty() => format!("{prior},{ip}"),
        _ => ip.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert("x-forwarded-for", v);
    }
}

/// Envoy appends its own address for loopback peers: the host's first non-loopback address
/// (found once, by routing a UDP socket; nothing is sent), else the listener's address.
fn local_address(listener: IpAddr) -> IpAddr {
    static LOCAL: OnceLock<Option<IpAddr>> = OnceLock::new();
    let found = LOCAL.get_or_init(|| {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
        s.connect("192.0.2.1:9").ok()?;
        let ip = s.local_addr().ok()?.ip();
        (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
    });
    found.unwrap_or(listener)
}

#[cfg(test)]
mod tests;
