//! Traffic policy rules of Istio's `validateTrafficPolicy`: at least one field, tunnel and
//! PROXY protocol exclusive, port-level settings, outlier detection, connection pools
//! (shared with `Sidecar`), client TLS (`ValidateTLS`), tunnel and retry budget.

use std::collections::HashMap;

use mast_core::is_dns1123_label;

use super::load_balancer::load_balancer;
use crate::networking::destination_rule::{
    ClientTlsSettings, ConnectionPoolSettings, H2UpgradePolicy, HttpSettings, LoadBalancerSettings,
    OutlierDetection, PortTrafficPolicy, RetryBudget, TcpSettings, TlsMode, TrafficPolicy,
    TunnelSettings,
};
use crate::validate::{Report, common};

const INT32_MAX: i64 = i32::MAX as i64;
const UINT32_MAX: i64 = u32::MAX as i64;

/// `parent.name`.
pub(super) fn at(parent: &str, name: &str) -> String {
    format!("{parent}.{name}")
}

/// A count: an error when negative (Istio's "must be non-negative") or beyond `max`.
pub(super) fn count(r: &mut Report, field: String, value: Option<i64>, what: &str, max: i64) {
    match value {
        Some(n) if n < 0 => r.error(field, format!("{what} must be non-negative")),
        Some(n) if n > max => r.error(field, format!("{what} {n} is too large (at most {max})")),
        _ => {}
    }
}

/// Checks the traffic policy at `p` (`spec.trafficPolicy`, `spec.subsets[1].trafficPolicy`).
pub(super) fn traffic_policy(r: &mut Report, p: &str, tp: &TrafficPolicy, ns: &str) {
    let empty = tp.load_balancer.is_none()
        && tp.connection_pool.is_none()
        && tp.outlier_detection.is_none()
        && tp.tls.is_none()
        && tp.port_level_settings.is_empty()
        && tp.tunnel.is_none()
        && tp.proxy_protocol.is_none()
        && tp.retry_budget.is_none();
    if empty {
        r.error(p, "traffic policy must have at least one field");
        return;
    }
    if tp.tunnel.is_some() && tp.proxy_protocol.is_some() {
        r.error(p, "tunnel and proxyProtocol must not be set together");
        return;
    }
    let parts = Parts {
        load_balancer: tp.load_balancer.as_ref(),
        connection_pool: tp.connection_pool.as_ref(),
        outlier_detection: tp.outlier_detection.as_ref(),
        tls: tp.tls.as_ref(),
    };
    parts.check(r, p, ns);
    port_level_settings(r, p, &tp.port_level_settings, ns);
    if let Some(t) = &tp.tunnel {
        tunnel(r, &at(p, "tunnel"), t);
    }
    if let Some(b) = &tp.retry_budget {
        retry_budget(r, &at(p, "retryBudget"), b);
    }
}

/// The settings a whole policy and a port-level policy share.
struct Parts<'a> {
    load_balancer: Option<&'a LoadBalancerSettings>,
    connection_pool: Option<&'a ConnectionPoolSettings>,
    outlier_detection: Option<&'a OutlierDetection>,
    tls: Option<&'a ClientTlsSettings>,
}

impl Parts<'_> {
    fn check(&self, r: &mut Report, p: &str, ns: &str) {
        if let Some(od) = self.outlier_detection {
            outlier_detection(r, &at(p, "outlierDetection"), od);
        }
        if let Some(cp) = self.connection_pool {
            connection_pool(r, &at(p, "connectionPool"), cp);
        }
        if let Some(lb) = self.load_balancer {
            load_balancer(
                r,
                &at(p, "loadBalancer"),
                lb,
                self.outlier_detection.is_some(),
            );
        }
        if let Some(t) = self.tls {
            tls(r, &at(p, "tls"), t, ns);
        }
    }
}

/// Each port-level policy names a valid port and sets something. A second policy for the
/// same port is never used (Envoy's cluster takes the first), which is worth a warning.
fn port_level_settings(r: &mut Report, p: &str, list: &[PortTrafficPolicy], ns: &str) {
    let mut seen: HashMap<i64, usize> = HashMap::new();
    for (i, pls) in list.iter().enumerate() {
        let f = format!("{p}.portLevelSettings[{i}]");
        match &pls.port {
            None => r.error(at(&f, "port"), "portTrafficPolicy must have valid port"),
            Some(sel) => {
                let n = sel.number.unwrap_or(0);
                common::port(r, &at(&f, "port.number"), n);
                if let Some(first) = seen.get(&n).copied() {
                    r.warn(at(&f, "port.number"), format!("port {n} already has settings in portLevelSettings[{first}]; only the first applies"));
                } else if n != 0 {
                    seen.insert(n, i);
                }
            }
        }
        let parts = Parts {
            load_balancer: pls.load_balancer.as_ref(),
            connection_pool: pls.connection_pool.as_ref(),
            outlier_detection: pls.outlier_detection.as_ref(),
            tls: pls.tls.as_ref(),
        };
        if parts.load_balancer.is_none()
            && parts.connection_pool.is_none()
            && parts.outlier_detection.is_none()
            && parts.tls.is_none()
        {
            r.error(&f, "port traffic policy must have at least one field");
        } else {
            parts.check(r, &f, ns);
        }
    }
}

/// Istio's `validateOutlierDetection`, plus the ranges of its counts.
fn outlier_detection(r: &mut Report, p: &str, od: &OutlierDetection) {
    if let Some(d) = od.base_ejection_time {
        common::duration(r, &at(p, "baseEjectionTime"), d);
    }
    if let Some(d) = od.interval {
        common::duration(r, &at(p, "interval"), d);
    }
    if od.consecutive_errors.is_some_and(|n| n != 0) {
        r.warn(
            at(p, "consecutiveErrors"),
            "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead",
        );
    }
    if !od.split_external_local_origin_errors.unwrap_or(false)
        && od.consecutive_local_origin_failures.is_some_and(|n| n > 0)
    {
        r.error(
            at(p, "consecutiveLocalOriginFailures"),
            "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false",
        );
    }
    let counts = [
        (
            "consecutiveErrors",
            od.consecutive_errors,
            "consecutive errors",
            INT32_MAX,
        ),
        (
            "consecutiveLocalOriginFailures",
            od.consecutive_local_origin_failures,
            "consecutive local origin failures",
            UINT32_MAX,
        ),
        (
            "consecutiveGatewayErrors",
            od.consecutive_gateway_errors,
            "consecutive gateway errors",
            UINT32_MAX,
        ),
        (
            "consecutive5xxErrors",
            od.consecutive_5xx_errors,
            "consecutive 5xx errors",
            UINT32_MAX,
        ),
    ];
    for (name, value, what, max) in counts {
        count(r, at(p, name), value, what, max);
    }
    for (name, value) in [
        ("maxEjectionPercent", od.max_ejection_percent),
        ("minHealthPercent", od.min_health_percent),
    ] {
        if let Some(v) = value.filter(|v| !(0..=100).contains(v)) {
            r.error(
                at(p, name),
                format!("percentage {v} is not in range 0..100"),
            );
        }
    }
}

/// Istio's `validateConnectionPool`, used by traffic policies and `Sidecar` listeners.
pub(crate) fn connection_pool(r: &mut Report, p: &str, cp: &ConnectionPoolSettings) {
    if cp.http.is_none() && cp.tcp.is_none() {
        r.error(p, "connection pool must have at least one field");
        return;
    }
    if let Some(h) = &cp.http {
        http_pool(r, &at(p, "http"), h);
    }
    if let Some(t) = &cp.tcp {
        tcp_pool(r, &at(p, "tcp"), t);
    }
}

fn http_pool(r: &mut Report, p: &str, h: &HttpSettings) {
    let counts = [
        (
            "http1MaxPendingRequests",
            h.http1_max_pending_requests,
            "http1 max pending requests",
        ),
        (
            "http2MaxRequests",
            h.http2_max_requests,
            "http2 max requests",
        ),
        (
            "maxRequestsPerConnection",
            h.max_requests_per_connection,
            "max requests per connection",
        ),
        ("maxRetries", h.max_retries, "max retries"),
        (
            "maxConcurrentStreams",
            h.max_concurrent_streams,
            "max concurrent streams",
        ),
    ];
    for (name, value, what) in counts {
        count(r, at(p, name), value, what, INT32_MAX);
    }
    if let Some(d) = h.idle_timeout {
        common::duration(r, &at(p, "idleTimeout"), d);
    }
    if h.h2_upgrade_policy == Some(H2UpgradePolicy::Upgrade) && h.use_client_protocol == Some(true)
    {
        r.error(
            at(p, "useClientProtocol"),
            "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
        );
    }
}

fn tcp_pool(r: &mut Report, p: &str, t: &TcpSettings) {
    count(
        r,
        at(p, "maxConnections"),
        t.max_connections,
        "max connections",
        INT32_MAX,
    );
    if let Some(d) = t.connect_timeout {
        common::duration(r, &at(p, "connectTimeout"), d);
    }
    if let Some(d) = t.max_connection_duration {
        common::duration(r, &at(p, "maxConnectionDuration"), d);
    }
    // A zero idle timeout disables it.
    if let Some(d) = t.idle_timeout.filter(|d| d.as_std().as_millis() != 0) {
        common::duration(r, &at(p, "idleTimeout"), d);
    }
    if let Some(ka) = &t.tcp_keepalive {
        let k = at(p, "tcpKeepalive");
        count(
            r,
            at(&k, "probes"),
            ka.probes,
            "keepalive probes",
            UINT32_MAX,
        );
        if let Some(d) = ka.time {
            common::duration(r, &at(&k, "time"), d);
        }
        if let Some(d) = ka.interval {
            common::duration(r, &at(&k, "interval"), d);
        }
    }
}

/// Istio's `ValidateTLS` for client TLS settings.
fn tls(r: &mut Report, p: &str, t: &ClientTlsSettings, ns: &str) {
    let set = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.is_empty());
    let mode = t.mode();
    let credential = t.credential_name.as_deref().unwrap_or("");
    if let Some(rest) = credential.strip_prefix("configmap://") {
        configmap_credential(r, &at(p, "credentialName"), rest, ns);
    }
    if t.insecure_skip_verify == Some(true) {
        let f = at(p, "insecureSkipVerify");
        let ca_or_san = set(&t.ca_certificates) || !t.subject_alt_names.is_empty();
        if mode == TlsMode::Simple && (ca_or_san || !credential.is_empty()) {
            r.error(f, "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true");
        } else if mode == TlsMode::Mutual && ca_or_san {
            r.error(f, "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true");
        }
    }
    if matches!(mode, TlsMode::Simple | TlsMode::Mutual) && !credential.is_empty() {
        if set(&t.client_certificate)
            || set(&t.ca_certificates)
            || set(&t.private_key)
            || set(&t.ca_crl)
        {
            r.error(at(p, "credentialName"), "cannot specify client certificates or CA certificate or CA CRL If credentialName is set");
        }
        return;
    }
    if mode == TlsMode::Mutual {
        if !set(&t.client_certificate) {
            r.error(
                at(p, "clientCertificate"),
                "client certificate required for mutual tls",
            );
        }
        if !set(&t.private_key) {
            r.error(at(p, "privateKey"), "private key required for mutual tls");
        }
    }
}

/// `configmap://[namespace/]name` must name a config map of the rule's own namespace.
fn configmap_credential(r: &mut Report, f: &str, rest: &str, ns: &str) {
    let (cm_ns, name) = rest.split_once('/').unwrap_or((ns, rest));
    if name.is_empty() || name.contains('/') {
        r.error(
            f,
            format!("invalid configmap:// credentialName: {rest:?} is not [namespace/]name"),
        );
    } else if cm_ns != ns || ns.is_empty() {
        r.error(f, format!("invalid configmap:// credentialName: namespace must match the configuration namespace {ns:?}"));
    }
}

/// Istio's `validateTunnelSettings`.
fn tunnel(r: &mut Report, p: &str, t: &TunnelSettings) {
    if let Some(proto) = t
        .protocol
        .as_deref()
        .filter(|s| !s.is_empty() && !matches!(*s, "CONNECT" | "POST"))
    {
        r.error(
            at(p, "protocol"),
            format!("tunnel protocol must be \"CONNECT\" or \"POST\", not {proto:?}"),
        );
    }
    if let Some(fqdn) = fqdn_error(&t.target_host)
        && t.target_host.parse::<std::net::IpAddr>().is_err()
    {
        r.error(
            at(p, "targetHost"),
            format!(
                "tunnel target host must be valid FQDN or IP address: {fqdn}; {} is not a valid IP",
                t.target_host
            ),
        );
    }
    if !(1..=65535).contains(&t.target_port) {
        r.error(
            at(p, "targetPort"),
            format!(
                "tunnel target port is invalid: port number {} must be in the range 1..65535",
                t.target_port
            ),
        );
    }
}

/// The retry budget's percentage and minimum concurrency.
fn retry_budget(r: &mut Report, p: &str, b: &RetryBudget) {
    if let Some(v) = b.percent.filter(|v| !(0.0..=100.0).contains(v)) {
        r.error(
            at(p, "percent"),
            format!("retry budget percent {v} is not in range 0..100"),
        );
    }
    count(
        r,
        at(p, "minRetryConcurrency"),
        b.min_retry_concurrency,
        "min retry concurrency",
        UINT32_MAX,
    );
}

/// Istio's `ValidateFQDN`: a DNS name of labels, no wildcard, top-level domain not all
/// digits, at most 255 characters, one trailing dot allowed. `None` when valid.
pub(crate) fn fqdn_error(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("empty domain name not allowed".into());
    }
    if s.len() > 255 {
        return Some(format!("domain name {s:?} too long (max 255)"));
    }
    let labels: Vec<&str> = s.strip_suffix('.').unwrap_or(s).split('.').collect();
    if let Some(tld) = labels
        .last()
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
    {
        return Some(format!(
            "domain name {s:?} invalid (top level domain {tld:?} cannot be all-numeric)"
        ));
    }
    labels
        .iter()
        .find(|l| !is_dns1123_label(l))
        .map(|l| format!("domain name {s:?} invalid (label {l:?} invalid)"))
}
