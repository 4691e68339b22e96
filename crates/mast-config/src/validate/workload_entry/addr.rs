//! Address checks shared by `WorkloadEntry`, `ServiceEntry` and `Gateway` validation, worded
//! as Istio's `agent` validation helpers: IPs, CIDR blocks, Unix socket paths and FQDNs.

use std::net::IpAddr;

use mast_core::is_dns1123_label;

use crate::validate::Report;

/// The prefix that marks a Unix domain socket address.
pub(crate) const UNIX_PREFIX: &str = "unix://";

/// Whether `s` is an IPv4 or IPv6 address.
pub(crate) fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

/// An IP address.
pub(crate) fn ip_address(r: &mut Report, field: &str, s: &str) {
    if !is_ip(s) {
        r.error(field, format!("{s} is not a valid IP"));
    }
}

/// An IP address or a CIDR block.
pub(crate) fn ip_or_cidr(r: &mut Report, field: &str, s: &str) {
    if s.contains('/') {
        if s.parse::<ipnet::IpNet>().is_err() {
            r.error(field, format!("{s:?} is not a valid CIDR block"));
        }
    } else {
        ip_address(r, field, s);
    }
}

/// The path of a Unix domain socket (after `unix://`): absolute and naming a file, or an
/// abstract socket `@name`.
pub(crate) fn unix_address(r: &mut Report, field: &str, path: &str) {
    if path.is_empty() {
        r.error(field, "unix address must not be empty");
    } else if !path.starts_with('@') && (!path.starts_with('/') || path.ends_with('/')) {
        r.error(field, format!("{path} is not an absolute path to a file"));
    }
}

/// Why `s` is not a fully qualified domain name (no wildcard, DNS-1123 labels, a top-level
/// domain that is not all digits, an optional final dot), or `None` when it is one.
pub(crate) fn fqdn_error(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("domain name must not be empty".to_owned());
    }
    if s.len() > 255 {
        return Some(format!("domain name {s:?} is longer than 255 characters"));
    }
    let trimmed = s.strip_suffix('.').unwrap_or(s);
    let labels: Vec<&str> = trimmed.split('.').collect();
    if let Some(tld) = labels.last()
        && !tld.is_empty()
        && tld.bytes().all(|b| b.is_ascii_digit())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fqdns() {
        assert!(fqdn_error("httpbin.org").is_none());
        assert!(fqdn_error("istio.io.").is_none());
        assert!(fqdn_error("reviews").is_none());
        assert!(fqdn_error("*.example.com").is_some());
        assert!(fqdn_error("1.2.3.999").is_some());
        assert!(fqdn_error("").is_some());
        assert!(fqdn_error("a..b").is_some());
    }

    #[test]
    fn addresses() {
        let mut r = Report::default();
        ip_or_cidr(&mut r, "a", "10.0.0.0/8");
        ip_or_cidr(&mut r, "a", "2001:db8::/32");
        ip_or_cidr(&mut r, "a", "192.168.1.1");
        unix_address(&mut r, "a", "/var/run/x.sock");
        unix_address(&mut r, "a", "@abstract");
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        ip_or_cidr(&mut r, "b", "10.0.0.0/33");
        ip_or_cidr(&mut r, "b", "host.example.com");
        unix_address(&mut r, "b", "relative/x.sock");
        unix_address(&mut r, "b", "/var/run/");
        unix_address(&mut r, "b", "");
        assert_eq!(r.errors.len(), 5, "{:?}", r.errors);
    }
}
