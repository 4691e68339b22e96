//! Name checks a `VirtualService` needs, worded as Istio's `agent` validation words them:
//! FQDNs, wildcard domains (with the auto-generated `outbound_.<port>_._.<host>` SNI form
//! on gateways), gateway references, IP addresses and subnets.

use std::net::IpAddr;

use mast_core::is_dns1123_label;

use crate::validate::Report;

const OUTBOUND_SNI_FORMAT: &str = "outbound_.<PORT>_._.<HOSTNAME>";

/// Whether `s` is an IPv4 or IPv6 address.
pub(super) fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

fn preconditions(name: &str) -> Option<String> {
    if name.len() > 255 {
        Some(format!("domain name {name:?} too long (max 255)"))
    } else if name.is_empty() {
        Some("empty domain name not allowed".to_owned())
    } else {
        None
    }
}

/// Checks the dot-separated labels of `domain` (a trailing dot is allowed); `full` is the
/// name reported.
fn labels_error(domain: &str, full: &str) -> Option<String> {
    let parts: Vec<&str> = domain.split('.').collect();
    let tld = parts.last().copied().unwrap_or("");
    if tld.parse::<i64>().is_ok() {
        return Some(format!(
            "domain name {full:?} invalid (top level domain {tld:?} cannot be all-numeric)"
        ));
    }
    for (i, label) in parts.iter().enumerate() {
        if i + 1 == parts.len() && label.is_empty() {
            return None;
        }
        if !is_dns1123_label(label) {
            return Some(format!(
                "domain name {full:?} invalid (label {label:?} invalid)"
            ));
        }
    }
    None
}

/// Istio's `ValidateFQDN`: DNS labels, no wildcard, a non-numeric top-level domain.
pub(super) fn fqdn_error(name: &str) -> Option<String> {
    preconditions(name).or_else(|| labels_error(name, name))
}

/// A first label that may carry a wildcard: `*`, `*suffix`, `*-suffix` or a DNS label.
fn is_wildcard_label(label: &str) -> bool {
    if label == "*" {
        return true;
    }
    let rest = label
        .strip_prefix("*-")
        .or_else(|| label.strip_prefix('*'))
        .unwrap_or(label);
    label.len() <= 63 && is_dns1123_label(rest)
}

/// Istio's `ValidateWildcardDomain`: an FQDN whose first label may be a wildcard.
pub(super) fn wildcard_domain_error(domain: &str) -> Option<String> {
    if let Some(e) = preconditions(domain) {
        return Some(e);
    }
    let (first, rest) = domain
        .split_once('.')
        .map_or((domain, None), |(f, r)| (f, Some(r)));
    if !is_wildcard_label(first) {
        return Some(format!(
            "domain name {domain:?} invalid (label {first:?} invalid)"
        ));
    }
    rest.and_then(|r| labels_error(r, domain))
}

/// Istio's `ValidateWildcardDomainForVirtualServiceBoundToGateway`: as
/// [`wildcard_domain_error`], but with `sni` the auto-generated `outbound_.<port>_._.<host>`
/// names of AUTO_PASSTHROUGH gateways are accepted too.
pub(super) fn gateway_bound_domain_error(sni: bool, domain: &str) -> Option<String> {
    if let Some(e) = preconditions(domain) {
        return Some(e);
    }
    if sni && domain.starts_with("outbound_") {
        let parts: Vec<&str> = domain.split('_').collect();
        if parts.len() < 4 {
            return Some(format!(
                "domain name {domain} invalid, should follow '{OUTBOUND_SNI_FORMAT}' format"
            ));
        }
        let port = parts[1].trim_matches('.');
        if !port.bytes().any(|b| b.is_ascii_digit()) {
            return Some(format!(
                "domain name {domain:?} invalid (label {port:?} invalid). should follow {OUTBOUND_SNI_FORMAT} format"
            ));
        }
        let host = parts[3].trim_matches('.');
        if !host.bytes().any(|b| b.is_ascii_alphabetic()) {
            return Some(format!(
                "domain name {domain:?} invalid (label {host:?} invalid). should follow {OUTBOUND_SNI_FORMAT} format"
            ));
        }
        return None;
    }
    wildcard_domain_error(domain)
}

/// Istio's `ValidateIPSubnet`: an address, or a CIDR block when it has one `/`.
pub(super) fn ip_subnet_error(subnet: &str) -> Option<String> {
    if subnet.matches('/').count() == 1 {
        return subnet
            .parse::<ipnet::IpNet>()
            .is_err()
            .then(|| format!("{subnet} is not a valid CIDR block"));
    }
    (!is_ip(subnet)).then(|| format!("{subnet} is not a valid IP"))
}

/// Istio's `validateGatewayNames`: `name` (an FQDN; `name.namespace` draws a warning) or
/// `namespace/name` with DNS labels. With Gateway API semantics the name is free-form.
pub(super) fn gateway_names(
    r: &mut Report,
    field: &str,
    names: &[String],
    gateway_semantics: bool,
) {
    for (i, gw) in names.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let Some((ns, name)) = gw.split_once('/') else {
            if let Some((name, ns)) = gw.split_once('.') {
                let ns = ns.split('.').next().unwrap_or("");
                r.warn(&f, format!("using legacy gatewayName format {gw:?}; prefer the <namespace>/<name> format: \"{ns}/{name}\""));
            }
            if let Some(e) = fqdn_error(gw) {
                r.error(&f, e);
            }
            continue;
        };
        if ns.is_empty() || name.is_empty() {
            r.error(&f, "config namespace and gateway name cannot be empty");
            continue;
        }
        if !is_dns1123_label(ns) {
            r.error(&f, format!("invalid value for namespace: {ns:?}"));
        }
        if !is_dns1123_label(name) && !gateway_semantics {
            r.error(&f, format!("invalid value for gateway name: {name:?}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert_eq!(wildcard_domain_error("*.example.com"), None);
        assert_eq!(wildcard_domain_error("*"), None);
        assert_eq!(wildcard_domain_error("reviews"), None);
        assert_eq!(wildcard_domain_error("istio.io."), None);
        assert!(wildcard_domain_error("a.*.com").is_some());
        assert!(
            wildcard_domain_error("10.0.0.1").is_some(),
            "all-numeric top-level domain"
        );
        assert!(fqdn_error("*.example.com").is_some());
        assert_eq!(
            gateway_bound_domain_error(true, "outbound_.80_._.reviews.default.svc.cluster.local"),
            None
        );
        assert!(
            gateway_bound_domain_error(false, "outbound_.80_._.reviews.default.svc.cluster.local")
                .is_some()
        );
        assert!(gateway_bound_domain_error(true, "outbound_.x_._.reviews").is_some());
    }

    #[test]
    fn subnets() {
        assert_eq!(ip_subnet_error("10.0.0.0/8"), None);
        assert_eq!(ip_subnet_error("2001:db8::/32"), None);
        assert_eq!(ip_subnet_error("10.1.2.3"), None);
        assert!(ip_subnet_error("10.0.0.0/33").is_some());
        assert!(ip_subnet_error("host.com").is_some());
    }
}
