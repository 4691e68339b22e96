//! Checks every Gateway API kind shares: names and hostnames in Gateway API's formats,
//! parent references, backend references and durations.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

use crate::gateway_api::ParentReference;
use crate::validate::Report;

/// The Gateway API `Hostname` pattern (an optional leading `*.` wildcard label).
static HOSTNAME: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").ok()
});

/// A lower-case RFC 1123 subdomain (listener names, section names).
static SUBDOMAIN: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").ok()
});

/// A Gateway API `Duration` (GEP-2257): up to four `<number><unit>` parts, units h/m/s/ms.
static DURATION: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$").ok());

/// An HTTP header name (RFC 7230 token).
static HEADER_NAME: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$").ok());

fn is(re: &LazyLock<Option<Regex>>, s: &str) -> bool {
    re.as_ref().is_some_and(|re| re.is_match(s))
}

/// Checks a Gateway API hostname (wildcards allowed, IP addresses not).
pub fn hostname(r: &mut Report, field: &str, h: &str) {
    if h.len() > 253 || !is(&HOSTNAME, h) {
        r.error(
            field,
            format!(
                "invalid hostname {h:?}: must be a lower-case DNS name, optionally starting with \"*.\""
            ),
        );
    } else if h.parse::<std::net::IpAddr>().is_ok() {
        r.error(field, format!("hostname {h:?} must not be an IP address"));
    }
}

/// Checks a list of route hostnames (at most 16).
pub fn hostnames(r: &mut Report, field: &str, hs: &[String]) {
    max_items(r, field, hs.len(), 16);
    for (i, h) in hs.iter().enumerate() {
        hostname(r, &format!("{field}[{i}]"), h);
    }
}

/// Checks a name that must be a lower-case RFC 1123 subdomain.
pub fn section_name(r: &mut Report, field: &str, name: &str) {
    if name.is_empty() {
        r.error(field, "required field is missing");
    } else if name.len() > 253 || !is(&SUBDOMAIN, name) {
        r.error(
            field,
            format!("invalid name {name:?}: must be a lower-case RFC 1123 subdomain"),
        );
    }
}

/// Checks a required object name.
pub fn object_name(r: &mut Report, field: &str, name: &str) {
    if name.is_empty() {
        r.error(field, "required field is missing");
    } else if name.len() > 253 {
        r.error(field, "must be at most 253 characters");
    }
}

/// Checks a Gateway API duration such as `10s` or `1h30m`.
pub fn duration(r: &mut Report, field: &str, d: &str) {
    if !is(&DURATION, d) {
        r.error(
            field,
            format!(
                "invalid duration {d:?}: expected up to four <number><unit> parts with units h, m, s or ms, as in \"10s\" or \"1h30m\""
            ),
        );
    }
}

/// A Gateway API duration in milliseconds (`None` when malformed).
pub fn duration_millis(d: &str) -> Option<u64> {
    if !is(&DURATION, d) {
        return None;
    }
    let mut total = 0u64;
    let mut number = String::new();
    let mut chars = d.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().ok()?;
        number.clear();
        let unit = match c {
            'h' => 3_600_000,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1
            }
            'm' => 60_000,
            's' => 1_000,
            _ => return None,
        };
        total += n * unit;
    }
    Some(total)
}

/// Checks an HTTP header name.
pub fn header_name(r: &mut Report, field: &str, name: &str) {
    if name.is_empty() {
        r.error(field, "required field is missing");
    } else if name.len() > 256 || !is(&HEADER_NAME, name) {
        r.error(field, format!("invalid header name {name:?}"));
    }
}

/// Checks a port number (1–65535).
pub fn port(r: &mut Report, field: &str, n: i64) {
    if !(1..=65535).contains(&n) {
        r.error(field, format!("port {n} must be between 1 and 65535"));
    }
}

/// Reports a list longer than `max`.
pub fn max_items(r: &mut Report, field: &str, len: usize, max: usize) {
    if len > max {
        r.error(field, format!("must have at most {max} items (has {len})"));
    }
}

/// Checks a route's parent references: each names a parent, ports are valid, and two
/// references to the same parent are told apart by unique section names or ports.
pub fn parent_refs(r: &mut Report, refs: &[ParentReference]) {
    max_items(r, "spec.parentRefs", refs.len(), 32);
    let mut by_parent: BTreeMap<(&str, &str, &str, &str), Vec<usize>> = BTreeMap::new();
    for (i, p) in refs.iter().enumerate() {
        let f = format!("spec.parentRefs[{i}]");
        object_name(r, &format!("{f}.name"), &p.name);
        if let Some(n) = p.port {
            port(r, &format!("{f}.port"), n);
        }
        if let Some(s) = &p.section_name {
            section_name(r, &format!("{f}.sectionName"), s);
        }
        let ns = p.namespace.as_deref().unwrap_or("");
        by_parent
            .entry((p.group(), p.kind(), ns, p.name.as_str()))
            .or_default()
            .push(i);
    }
    for indexes in by_parent.values().filter(|v| v.len() > 1) {
        let mut seen = Vec::new();
        for &i in indexes {
            let p = &refs[i];
            let f = format!("spec.parentRefs[{i}]");
            if p.section_name.is_none() && p.port.is_none() {
                r.error(
                    &f,
                    "sectionName or port must be specified when parentRefs includes 2 or more references to the same parent",
                );
                continue;
            }
            let key = (p.section_name.clone(), p.port);
            if seen.contains(&key) {
                r.error(
                    &f,
                    "sectionName must be unique when parentRefs includes 2 or more references to the same parent",
                );
            }
            seen.push(key);
        }
    }
}

/// The parts of a backend reference every route kind checks.
pub struct Backend<'a> {
    /// API group (`""` is core).
    pub group: &'a str,
    /// Kind.
    pub kind: &'a str,
    /// Name.
    pub name: &'a str,
    /// Port.
    pub port: Option<i64>,
    /// Weight.
    pub weight: Option<i64>,
}

/// Checks one backend reference at `field`.
pub fn backend(r: &mut Report, field: &str, b: &Backend<'_>) {
    object_name(r, &format!("{field}.name"), b.name);
    match b.port {
        Some(n) => port(r, &format!("{field}.port"), n),
        None if b.group.is_empty() && b.kind == "Service" => {
            r.error(field, "Must have port for Service reference");
        }
        None => {}
    }
    if let Some(w) = b.weight
        && !(0..=1_000_000).contains(&w)
    {
        r.error(
            format!("{field}.weight"),
            format!("weight {w} must be between 0 and 1000000"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::duration_millis;

    #[test]
    fn durations() {
        assert_eq!(duration_millis("10s"), Some(10_000));
        assert_eq!(duration_millis("1h30m"), Some(5_400_000));
        assert_eq!(duration_millis("1ms"), Some(1));
        assert_eq!(duration_millis("1m5s10ms"), Some(65_010));
        assert_eq!(duration_millis("1.5s"), None);
        assert_eq!(duration_millis("10"), None);
    }
}
