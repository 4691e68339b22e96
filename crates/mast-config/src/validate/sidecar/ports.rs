//! Rules on sidecar listener ports and addresses: port names and protocols as Istio's
//! `protocol.Parse` knows them, `targetPort`, IP binds, Unix socket paths and the ingress
//! `defaultEndpoint` form.

use mast_core::is_dns1123_label;

use crate::networking::sidecar::SidecarPort;
use crate::validate::{Report, common};

/// The scheme of Unix domain socket addresses.
pub(super) const UNIX_PREFIX: &str = "unix://";

/// The protocols Istio accepts on ports (case-insensitive).
const PROTOCOLS: &[&str] = &[
    "tcp",
    "udp",
    "grpc",
    "grpc-web",
    "http",
    "http_proxy",
    "http2",
    "https",
    "tls",
    "mongo",
    "redis",
    "mysql",
];

/// Whether `protocol` carries HTTP (HTTP/1.1, HTTP/2, gRPC).
pub(super) fn is_http(protocol: &str) -> bool {
    matches!(
        protocol.to_ascii_lowercase().as_str(),
        "http" | "http2" | "http_proxy" | "grpc" | "grpc-web"
    )
}

/// Whether `protocol` carries TLS.
pub(super) fn is_tls(protocol: &str) -> bool {
    matches!(protocol.to_ascii_lowercase().as_str(), "https" | "tls")
}

/// `targetPort` is deprecated and ignored by sidecars.
pub(super) fn target_port(r: &mut Report, p: &str, port: &SidecarPort) {
    if port.target_port.is_some_and(|t| t > 0) {
        r.error(
            format!("{p}.port.targetPort"),
            "targetPort has no impact on Sidecars",
        );
    }
}

/// An optional port name must be a DNS label; an empty protocol means sniffing.
pub(super) fn name_and_protocol(r: &mut Report, p: &str, port: &SidecarPort) {
    if let Some(name) = port
        .name
        .as_deref()
        .filter(|n| !n.is_empty() && !is_dns1123_label(n))
    {
        r.error(
            format!("{p}.port.name"),
            format!("invalid port name: {name}"),
        );
    }
    let proto = port.protocol();
    if !proto.is_empty() && !PROTOCOLS.contains(&proto.to_ascii_lowercase().as_str()) {
        r.error(
            format!("{p}.port.protocol"),
            format!("unsupported protocol: {proto} (known: HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, HTTP_PROXY, TCP, TLS, UDP, MONGO, REDIS, MYSQL)"),
        );
    }
}

/// A bind address, when given, is an IP address.
pub(super) fn bind_ip(r: &mut Report, f: &str, bind: &str) {
    if !bind.is_empty() && bind.parse::<std::net::IpAddr>().is_err() {
        r.error(f, format!("{bind} is not a valid IP"));
    }
}

/// Istio's `ValidateUnixAddress`: an absolute file path or an abstract `@name`.
pub(super) fn unix_address(r: &mut Report, f: &str, path: &str) {
    if path.is_empty() {
        r.error(f, "unix address must not be empty");
    } else if !path.starts_with('@') && (!path.starts_with('/') || path.ends_with('/')) {
        r.error(f, format!("{path} is not an absolute path to a file"));
    }
}

/// `defaultEndpoint`: `unix://path`, or `HOST:PORT` with host `127.0.0.1`, `0.0.0.0`,
/// `::1`, `::` (bracketed) or empty.
pub(super) fn default_endpoint(r: &mut Report, f: &str, endpoint: &str) {
    if let Some(path) = endpoint.strip_prefix(UNIX_PREFIX) {
        unix_address(r, f, path);
        return;
    }
    let (host, port) = match split_host_port(endpoint) {
        Ok(hp) => hp,
        Err(m) => {
            r.error(f, m);
            return;
        }
    };
    if !matches!(host, "" | "127.0.0.1" | "0.0.0.0" | "::1" | "::") {
        r.error(f, "sidecar: defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>,[::1]:port,[::]:port,unix://filepath or unset");
    }
    match port.parse::<i64>() {
        Ok(n) => common::port(r, f, n),
        Err(_) => r.error(
            f,
            format!("sidecar: defaultEndpoint port ({port}) is not a number"),
        ),
    }
}

/// Go's `net.SplitHostPort`: `host:port` or `[ipv6]:port`.
fn split_host_port(s: &str) -> Result<(&str, &str), String> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("address {s}: missing ']' in address"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| format!("address {s}: missing port in address"))?;
        return Ok((host, port));
    }
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("address {s}: missing port in address"))?;
    if host.contains(':') {
        return Err(format!("address {s}: too many colons in address"));
    }
    Ok((host, port))
}
