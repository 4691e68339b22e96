//! Load balancer rules of Istio's `validateLoadBalancer`: the `oneof`s, consistent hash
//! (cookie name, deprecated ring size, Maglev table size), locality settings
//! (`ValidateLocalityLbSetting`) and warmup.

use std::collections::{HashMap, HashSet};

use super::traffic_policy::{at, count};
use crate::networking::destination_rule::{
    ConsistentHashLb, LoadBalancerSettings, LocalityLbSetting, WarmupConfiguration,
};
use crate::validate::{Report, common};

/// Envoy's limit on the Maglev table size (exclusive).
const MAGLEV_TABLE_LIMIT: i64 = 5_000_011;

/// Checks load balancer settings at `p`; failover needs outlier detection beside it.
pub(super) fn load_balancer(r: &mut Report, p: &str, lb: &LoadBalancerSettings, has_outlier: bool) {
    if lb.simple.is_some() && lb.consistent_hash.is_some() {
        r.error(p, "only one of simple or consistentHash may be set");
    }
    if let Some(ch) = &lb.consistent_hash {
        consistent_hash(r, &at(p, "consistentHash"), ch);
    }
    if let Some(l) = &lb.locality_lb_setting {
        locality(r, &at(p, "localityLbSetting"), l, has_outlier);
    }
    if let Some(d) = lb.warmup_duration_secs {
        common::duration(r, &at(p, "warmupDurationSecs"), d);
    }
    if let Some(w) = &lb.warmup {
        warmup(r, &at(p, "warmup"), w);
    }
}

fn consistent_hash(r: &mut Report, p: &str, ch: &ConsistentHashLb) {
    let keys = [
        ch.http_header_name.is_some(),
        ch.http_cookie.is_some(),
        ch.use_source_ip.is_some(),
        ch.http_query_parameter_name.is_some(),
    ];
    if keys.iter().filter(|k| **k).count() > 1 {
        r.error(p, "only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName may be set");
    }
    if ch.ring_hash.is_some() && ch.maglev.is_some() {
        r.error(p, "only one of ringHash or maglev may be set");
    }
    if let Some(cookie) = &ch.http_cookie {
        let c = at(p, "httpCookie");
        if cookie.name.is_empty() {
            r.error(at(&c, "name"), "name required for HttpCookie");
        }
        for (i, a) in cookie.attributes.iter().enumerate() {
            if a.name.is_empty() {
                r.error(
                    format!("{c}.attributes[{i}].name"),
                    "name required for cookie attribute",
                );
            }
        }
    }
    let legacy = ch.minimum_ring_size.unwrap_or(0);
    if legacy != 0 {
        r.warn(
            at(p, "minimumRingSize"),
            "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash configuration instead",
        );
        if ch.ring_hash.is_some() || ch.maglev.is_some() {
            r.error(
                at(p, "minimumRingSize"),
                "only one of MinimumRingSize or Maglev/Ringhash can be specified",
            );
        }
    }
    count(
        r,
        at(p, "minimumRingSize"),
        ch.minimum_ring_size,
        "minimum ring size",
        i64::MAX,
    );
    if let Some(rh) = &ch.ring_hash {
        count(
            r,
            at(p, "ringHash.minimumRingSize"),
            rh.minimum_ring_size,
            "minimum ring size",
            i64::MAX,
        );
    }
    if let Some(m) = &ch.maglev {
        maglev_table(r, &at(p, "maglev.tableSize"), m.table_size.unwrap_or(0));
    }
}

fn maglev_table(r: &mut Report, f: &str, size: i64) {
    if size == 0 {
        r.error(f, "tableSize must be set for maglev");
    } else if size < 0 {
        r.error(f, "tableSize must be non-negative");
    } else {
        if size >= MAGLEV_TABLE_LIMIT {
            r.error(
                f,
                format!("tableSize must be less than {MAGLEV_TABLE_LIMIT} for maglev"),
            );
        }
        if !is_prime(size) {
            r.error(
                f,
                format!("tableSize must be a prime number for maglev, not {size}"),
            );
        }
    }
}

/// Envoy's primality test, so that Mast accepts exactly the table sizes Envoy does.
fn is_prime(x: i64) -> bool {
    if x > 0 && x < 4 {
        return true;
    }
    if x % 2 == 0 {
        return false;
    }
    let mut factor = 3;
    while factor * factor <= x {
        if x % factor == 0 {
            return false;
        }
        factor += 2;
    }
    true
}

/// Istio's `ValidateLocalityLbSetting`.
fn locality(r: &mut Report, p: &str, l: &LocalityLbSetting, has_outlier: bool) {
    if !l.distribute.is_empty() && !l.failover.is_empty() {
        r.error(
            p,
            "can not simultaneously specify 'distribute' and 'failover'",
        );
        return;
    }
    if !l.failover.is_empty() {
        const TOPOLOGY: [&str; 3] = [
            "topology.kubernetes.io/region",
            "topology.kubernetes.io/zone",
            "topology.istio.io/subzone",
        ];
        if let Some((i, label)) = l
            .failover_priority
            .iter()
            .enumerate()
            .find(|(_, x)| TOPOLOGY.contains(&x.as_str()))
        {
            r.error(
                format!("{p}.failoverPriority[{i}]"),
                format!("can not simultaneously set 'failover' and topology label '{label}' in 'failover_priority'"),
            );
            return;
        }
    }
    if !distribute(r, p, l) {
        return;
    }
    if (!l.failover.is_empty() || !l.failover_priority.is_empty()) && !has_outlier {
        r.warn(p, "outlier detection policy must be provided for failover");
    }
    for (i, f) in l.failover.iter().enumerate() {
        let (from, to) = (
            f.from.as_deref().unwrap_or(""),
            f.to.as_deref().unwrap_or(""),
        );
        let field = format!("{p}.failover[{i}]");
        if from == to {
            r.error(
                &field,
                "locality lb failover settings must specify different regions",
            );
        }
        if from.contains('/') || to.contains('/') {
            r.error(&field, "locality lb failover only specify region");
        }
        if from.contains('*') || to.contains('*') {
            r.error(
                &field,
                "locality lb failover region should not contain '*' wildcard",
            );
        }
    }
}

/// The `distribute` entries: weights 1–100 summing to 100, localities that do not
/// overlap. Returns false when Istio stops checking.
fn distribute(r: &mut Report, p: &str, l: &LocalityLbSetting) -> bool {
    for (i, d) in l.distribute.iter().enumerate() {
        let to = format!("{p}.distribute[{i}].to");
        if let Some((loc, _)) = d.to.iter().find(|(_, w)| !(1..=100).contains(*w)) {
            r.error(
                format!("{to}.{loc}"),
                "locality weight must be in range [1, 100]",
            );
            return false;
        }
        let total: i64 = d.to.values().sum();
        if total != 100 {
            r.error(&to, format!("total locality weight {total} != 100"));
            return false;
        }
        if let Err(m) = localities(d.to.keys().map(String::as_str)) {
            r.error(&to, m);
        }
    }
    let sources = l.distribute.iter().map(|d| d.from.as_deref().unwrap_or(""));
    if let Err(m) = localities(sources) {
        r.error(format!("{p}.distribute"), m);
    }
    true
}

/// Localities `region[/zone[/subzone]]` with at most one trailing `*`, none covering
/// another (Istio's `validateLocalities`).
fn localities<'a>(list: impl Iterator<Item = &'a str>) -> Result<(), String> {
    let mut regions: HashMap<&str, HashMap<&str, HashSet<&str>>> = HashMap::new();
    for loc in list {
        let stars = loc.matches('*').count();
        if stars > 1 || (stars == 1 && !loc.ends_with('*')) {
            return Err(format!(
                "locality {loc} wildcard '*' number can not exceed 1 and must be in the end"
            ));
        }
        let overlap = || format!("locality {loc} overlap with previous specified ones");
        if regions.contains_key("*") {
            return Err(overlap());
        }
        let parts: Vec<&str> = loc.splitn(3, '/').collect();
        if parts.iter().any(|s| s.is_empty()) {
            return Err(format!(
                "locality {loc} must not contain empty region/zone/subzone info"
            ));
        }
        let zones = regions.entry(parts[0]).or_default();
        let fresh = zones.is_empty();
        match parts[1..] {
            [] if !fresh => return Err(overlap()),
            [] => {
                zones.entry("*").or_default().insert("*");
            }
            [_, ..] if zones.contains_key("*") => return Err(overlap()),
            [zone] if zones.contains_key(zone) => return Err(overlap()),
            [zone] => {
                zones.entry(zone).or_default().insert("*");
            }
            [zone, sub, ..] => {
                let subs = zones.entry(zone).or_default();
                if subs.contains("*") || !subs.insert(sub) {
                    return Err(overlap());
                }
            }
        }
    }
    Ok(())
}

/// Istio's warmup rules: a duration is required, `minimumPercent` within 0–100,
/// `aggression` at least 1.
fn warmup(r: &mut Report, p: &str, w: &WarmupConfiguration) {
    match w.duration {
        None => r.error(at(p, "duration"), "duration is required"),
        Some(d) => common::duration(r, &at(p, "duration"), d),
    }
    match w.minimum_percent {
        Some(v) if v > 100.0 => r.error(
            at(p, "minimumPercent"),
            "minimumPercent value should be less than or equal to 100",
        ),
        Some(v) if v < 0.0 => r.error(
            at(p, "minimumPercent"),
            "minimumPercent value should be greater than or equal to 0",
        ),
        _ => {}
    }
    if w.aggression.is_some_and(|a| a < 1.0) {
        r.error(
            at(p, "aggression"),
            "aggression should be greater than or equal to 1",
        );
    }
}
