//! `/stats/prometheus` (the registry in the text format, plus the xDS counters Envoy keeps)
//! and `/stats` (Envoy's plain `name: value` form, `?filter=<regex>`).
//!
//! Plain names are derived from the Prometheus ones the way Envoy's tag extraction builds
//! them, reversed: `envoy_` is dropped; the `_total` suffix the encoder adds to counters is
//! dropped, except for families ending in `_cx` or `_rq` without a response-code label
//! (Envoy's `upstream_rq_total`, `downstream_cx_total`, … whose Prometheus names end in
//! `_total`); and the tag labels go back into the name — `envoy_cluster_name="X"` after
//! `cluster.`, `envoy_listener_address` after `listener.`, `envoy_http_conn_manager_prefix`
//! after `http.`, `envoy_tcp_prefix` after `tcp.`, `envoy_response_code="503"` as `_503`,
//! `envoy_response_code_class="5"` as `_5xx`. So a counter family registered as
//! `envoy_cluster_upstream_rq` (exposed as `envoy_cluster_upstream_rq_total`, Envoy's
//! Prometheus name) with `envoy_cluster_name="X"` reads `cluster.X.upstream_rq_total`, and one
//! registered as `envoy_cluster_upstream_cx_connect_fail` reads
//! `cluster.X.upstream_cx_connect_fail`. Other labels are appended as `.value`. Histograms
//! are left out of the plain form.

use std::fmt::Write as _;

use prometheus_client::registry::Registry;

use crate::xds::{CLUSTER_TYPE, CacheSnapshot, LISTENER_TYPE};

/// Envoy's xDS counters and gauges from the client's cache, as (plain name, value).
fn xds_stats(cache: &CacheSnapshot) -> Vec<(String, u64)> {
    let mut out = vec![(
        "control_plane.connected_state".to_owned(),
        u64::from(cache.connected),
    )];
    for (type_url, prefix, active) in [
        (
            CLUSTER_TYPE,
            "cluster_manager.cds",
            "cluster_manager.active_clusters",
        ),
        (
            LISTENER_TYPE,
            "listener_manager.lds",
            "listener_manager.total_listeners_active",
        ),
    ] {
        if let Some(t) = cache.get(type_url) {
            let s = &t.status;
            out.push((format!("{prefix}.update_attempt"), s.accepted + s.rejected));
            out.push((format!("{prefix}.update_success"), s.accepted));
            out.push((format!("{prefix}.update_rejected"), s.rejected));
            out.push((active.to_owned(), t.resources.len() as u64));
        }
    }
    out.extend(certificate_stats(crate::tls::SecretStore::global()));
    out
}

/// Envoy's certificate gauges for the workload certificate (SDS `default`), when the proxy
/// has one: `server.days_until_first_cert_expiring` and
/// `ssl.certificate.default.expiration_unix_time_seconds` (Envoy keeps the latter per
/// cluster and listener; every context here shares the one certificate).
fn certificate_stats(store: &crate::tls::SecretStore) -> Vec<(String, u64)> {
    let Some(material) = store.current() else {
        return Vec::new();
    };
    let not_after = material.bundle.not_after;
    let expires = not_after
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = material.bundle.seconds_left(std::time::SystemTime::now()) / 86_400;
    vec![
        ("server.days_until_first_cert_expiring".to_owned(), days),
        (
            "ssl.certificate.default.expiration_unix_time_seconds".to_owned(),
            expires,
        ),
    ]
}

/// The Prometheus text: the registry, then the xDS stats (as untyped `envoy_*` samples).
pub(super) fn prometheus(registry: &Registry, cache: &CacheSnapshot) -> String {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::warn!(error = %e, "cannot encode the metrics registry");
    }
    let eof = text.rfind("# EOF").unwrap_or(text.len());
    let mut tail = String::new();
    for (name, value) in xds_stats(cache) {
        let name = format!("envoy_{}", name.replace('.', "_"));
        let _ = writeln!(tail, "# TYPE {name} gauge\n{name} {value}");
    }
    text.insert_str(eof, &tail);
    if !text.ends_with("# EOF\n") {
        text.push_str("# EOF\n");
    }
    text
}

/// The plain form, sorted by name, filtered by `filter` when given.
pub(super) fn plain(
    registry: &Registry,
    cache: &CacheSnapshot,
    filter: Option<&regex::Regex>,
) -> String {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::warn!(error = %e, "cannot encode the metrics registry");
    }
    let mut stats = plain_from_prometheus(&text);
    stats.extend(
        xds_stats(cache)
            .into_iter()
            .map(|(n, v)| (n, v.to_string())),
    );
    stats.sort();
    let mut out = String::new();
    for (name, value) in stats {
        if filter.is_none_or(|f| f.is_match(&name)) {
            let _ = writeln!(out, "{name}: {value}");
        }
    }
    out
}

/// (plain name, value) for every counter and gauge sample of a Prometheus text.
fn plain_from_prometheus(text: &str) -> Vec<(String, String)> {
    let mut counters = std::collections::BTreeSet::new();
    let mut skipped = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                match kind {
                    "counter" => counters.insert(name.to_owned()),
                    "gauge" | "unknown" | "untyped" => false,
                    _ => skipped.insert(name.to_owned()),
                };
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(sample) = parse_sample(line, &counters, &skipped) {
            out.push(sample);
        }
    }
    out
}

fn parse_sample(
    line: &str,
    counters: &std::collections::BTreeSet<String>,
    skipped: &std::collections::BTreeSet<String>,
) -> Option<(String, String)> {
    let (series, value) = line.rsplit_once(' ')?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)),
        None => (series, Vec::new()),
    };
    let family = counters
        .iter()
        .find(|c| name.strip_prefix(c.as_str()) == Some("_total"))
        .map(String::as_str);
    if family.is_none() && skipped.iter().any(|h| name.starts_with(h.as_str())) {
        return None;
    }
    let keep_total = family.is_some_and(|f| {
        (f.ends_with("_cx") || f.ends_with("_rq"))
            && !labels
                .iter()
                .any(|(k, _)| k.starts_with("envoy_response_code"))
    });
    let base = match family {
        Some(f) if !keep_total => f,
        _ => name,
    };
    let value = value.parse::<f64>().ok()?;
    Some((plain_name(base, &labels), format_value(value)))
}

fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        value.to_string()
    }
}

/// Envoy's dotted name for a Prometheus family name and its labels.
fn plain_name(name: &str, labels: &[(String, String)]) -> String {
    let mut name = name.strip_prefix("envoy_").unwrap_or(name).to_owned();
    let mut suffix = String::new();
    let mut extra = String::new();
    for (key, value) in labels {
        let prefix = match key.as_str() {
            "envoy_cluster_name" => "cluster",
            "envoy_listener_address" => "listener",
            "envoy_http_conn_manager_prefix" => "http",
            "envoy_tcp_prefix" => "tcp",
            "envoy_response_code" => {
                suffix.push_str(&format!("_{value}"));
                continue;
            }
            "envoy_response_code_class" => {
                suffix.push_str(&format!("_{value}xx"));
                continue;
            }
            _ => {
                extra.push_str(&format!(".{value}"));
                continue;
            }
        };
        let rest = name
            .strip_prefix(prefix)
            .map(|r| r.trim_start_matches('_'))
            .unwrap_or(&name);
        name = format!("{prefix}.{value}.{rest}");
    }
    format!("{name}{suffix}{extra}")
}

/// `k="v",k2="v2"` with `\"`, `\\` and `\n` escapes.
fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() || chars.next() != Some('"') {
            return out;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                other => value.push(other),
            }
        }
        out.push((key.trim().to_owned(), value));
        if chars.next() != Some(',') {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_follow_envoy() {
        let text = "# TYPE envoy_cluster_upstream_rq counter\n\
            envoy_cluster_upstream_rq_total{envoy_cluster_name=\"outbound|80||a.default.svc.cluster.local\"} 3\n\
            envoy_cluster_upstream_rq_total{envoy_response_code=\"503\",envoy_cluster_name=\"b\"} 2\n\
            # TYPE envoy_cluster_upstream_cx_connect_fail counter\n\
            envoy_cluster_upstream_cx_connect_fail_total{envoy_cluster_name=\"b\"} 4\n\
            # TYPE envoy_server_live gauge\nenvoy_server_live 1\n\
            # TYPE envoy_cluster_upstream_rq_time histogram\n\
            envoy_cluster_upstream_rq_time_bucket{le=\"1\",envoy_cluster_name=\"b\"} 1\n# EOF\n";
        let stats = plain_from_prometheus(text);
        assert_eq!(
            stats,
            vec![
                (
                    "cluster.outbound|80||a.default.svc.cluster.local.upstream_rq_total".to_owned(),
                    "3".to_owned()
                ),
                ("cluster.b.upstream_rq_503".to_owned(), "2".to_owned()),
                (
                    "cluster.b.upstream_cx_connect_fail".to_owned(),
                    "4".to_owned()
                ),
                ("server_live".to_owned(), "1".to_owned()),
            ]
        );
        assert_eq!(
            parse_labels(r#"a="x\"y",b="2""#),
            vec![("a".into(), "x\"y".into()), ("b".into(), "2".into())]
        );
    }
}

#[cfg(test)]
mod cert_tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::certificate_stats;
    use crate::tls::SecretStore;

    #[test]
    fn certificate_expiry_is_reported_once_a_certificate_is_installed() {
        let store = SecretStore::new();
        assert!(
            certificate_stats(&store).is_empty(),
            "no certificate, no gauge"
        );
        let ca = mast_ca::CertificateAuthority::ephemeral("cluster.local").unwrap();
        let id = "spiffe://cluster.local/ns/default/sa/web".parse().unwrap();
        let bundle = ca
            .issue_bundle(&id, Duration::from_secs(3 * 86_400 + 60))
            .unwrap();
        let not_after = bundle
            .not_after
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        store.set(Some(Arc::new(bundle))).unwrap();
        let stats = certificate_stats(&store);
        assert!(stats.contains(&("server.days_until_first_cert_expiring".into(), 3)));
        assert!(stats.contains(&(
            "ssl.certificate.default.expiration_unix_time_seconds".into(),
            not_after
        )));
    }
}
