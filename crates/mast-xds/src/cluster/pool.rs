//! Connection pool settings → Envoy (Istio's `applyConnectionPool`, `applyH2Upgrade`,
//! `applyTCPKeepalive`, `applyRetryBudget`).
//!
//! Circuit-breaker thresholds are always written, unlimited (`u32::MAX`) unless set:
//! `tcp.maxConnections` → `max_connections`, `http.http1MaxPendingRequests` →
//! `max_pending_requests`, `http.http2MaxRequests` → `max_requests`, `http.maxRetries` →
//! `max_retries` (zero means "unset", as in Istio). `track_remaining` is on.

use envoy_types::pb::envoy::config::cluster::v3::CircuitBreakers;
use envoy_types::pb::envoy::config::cluster::v3::UpstreamConnectionOptions;
use envoy_types::pb::envoy::config::cluster::v3::circuit_breakers::Thresholds;
use envoy_types::pb::envoy::config::cluster::v3::circuit_breakers::thresholds::RetryBudget as EnvoyRetryBudget;
use envoy_types::pb::envoy::config::core::v3::TcpKeepalive as EnvoyTcpKeepalive;
use envoy_types::pb::envoy::r#type::v3::Percent;
use mast_config::networking::destination_rule::{
    ConnectionPoolSettings, H2UpgradePolicy, RetryBudget, TcpKeepalive, TcpSettings,
};

use super::draft::Draft;
use super::pb;

/// Thresholds with every limit at `u32::MAX` (Istio's defaults, not Envoy's 1024/3).
pub(crate) fn default_thresholds() -> Thresholds {
    Thresholds {
        max_connections: Some(pb::u32_value(u32::MAX)),
        max_pending_requests: Some(pb::u32_value(u32::MAX)),
        max_requests: Some(pb::u32_value(u32::MAX)),
        max_retries: Some(pb::u32_value(u32::MAX)),
        track_remaining: true,
        ..Default::default()
    }
}

/// Applies the HTTP/2 upgrade policy (outbound only): `UPGRADE` makes the cluster HTTP/2 unless
/// `useClientProtocol` is set. The mesh default is `DO_NOT_UPGRADE`.
pub(crate) fn apply_h2_upgrade(draft: &mut Draft, pool: Option<&ConnectionPoolSettings>) {
    let Some(http) = pool.and_then(|p| p.http.as_ref()) else {
        return;
    };
    if http.use_client_protocol != Some(true)
        && http.h2_upgrade_policy == Some(H2UpgradePolicy::Upgrade)
    {
        draft.set_h2();
    }
}

/// Applies a connection pool (an absent one still yields the default thresholds).
pub(crate) fn apply(
    draft: &mut Draft,
    pool: Option<&ConnectionPoolSettings>,
    budget: Option<&RetryBudget>,
) {
    let mut t = default_thresholds();
    if let Some(b) = budget {
        t.retry_budget = Some(retry_budget(b));
    }
    let http = pool.and_then(|p| p.http.as_ref());
    let tcp = pool.and_then(|p| p.tcp.as_ref());
    let positive = |v: Option<i64>| v.filter(|n| *n > 0).map(pb::clamp_u32);
    if let Some(h) = http {
        if let Some(v) = positive(h.http2_max_requests) {
            t.max_requests = Some(pb::u32_value(v));
        }
        if let Some(v) = positive(h.http1_max_pending_requests) {
            t.max_pending_requests = Some(pb::u32_value(v));
        }
        if let Some(v) = positive(h.max_retries) {
            t.max_retries = Some(pb::u32_value(v));
        }
    }
    if let Some(v) = positive(tcp.and_then(|t| t.max_connections)) {
        t.max_connections = Some(pb::u32_value(v));
    }
    if let Some(d) = tcp.and_then(|t| t.connect_timeout) {
        draft.cluster.connect_timeout = Some(pb::config_duration(d));
    }
    apply_keepalive(draft, tcp);
    draft.cluster.circuit_breakers = Some(CircuitBreakers {
        thresholds: vec![t],
        ..Default::default()
    });
    apply_http_options(draft, pool);
    if http.and_then(|h| h.use_client_protocol) == Some(true) {
        draft.set_use_downstream_protocol();
    }
}

/// Idle timeout (HTTP's, else TCP's), max requests per connection, max connection duration and
/// HTTP/2 max concurrent streams, in the upstream HTTP options.
fn apply_http_options(draft: &mut Draft, pool: Option<&ConnectionPoolSettings>) {
    let http = pool.and_then(|p| p.http.as_ref());
    let tcp = pool.and_then(|p| p.tcp.as_ref());
    let idle = http
        .and_then(|h| h.idle_timeout)
        .or_else(|| tcp.and_then(|t| t.idle_timeout));
    let per_conn = http
        .and_then(|h| h.max_requests_per_connection)
        .filter(|n| *n > 0);
    let duration = tcp.and_then(|t| t.max_connection_duration);
    let streams = http
        .and_then(|h| h.max_concurrent_streams)
        .filter(|n| *n > 0);
    if idle.is_none() && per_conn.is_none() && duration.is_none() && streams.is_none() {
        return;
    }
    let common = draft.common_http_mut();
    if let Some(d) = idle {
        common.idle_timeout = Some(pb::config_duration(d));
    }
    if let Some(n) = per_conn {
        common.max_requests_per_connection = Some(pb::u32_value(pb::clamp_u32(n)));
    }
    if let Some(d) = duration {
        common.max_connection_duration = Some(pb::config_duration(d));
    }
    if let (Some(n), Some(h2)) = (streams, draft.h2_options_mut()) {
        h2.max_concurrent_streams = Some(pb::u32_value(pb::clamp_u32(n)));
    }
}

/// TCP keepalive: an empty `tcp_keepalive` (SO_KEEPALIVE with OS defaults) plus the probes,
/// time and interval that are set (whole seconds, as Envoy takes them).
fn apply_keepalive(draft: &mut Draft, tcp: Option<&TcpSettings>) {
    let Some(k) = tcp.and_then(|t| t.tcp_keepalive.as_ref()) else {
        return;
    };
    draft.cluster.upstream_connection_options = Some(UpstreamConnectionOptions {
        tcp_keepalive: Some(keepalive(k)),
        ..Default::default()
    });
}

fn keepalive(k: &TcpKeepalive) -> EnvoyTcpKeepalive {
    let secs = |d: mast_config::types::Duration| {
        pb::u32_value(u32::try_from(d.as_std().as_secs()).unwrap_or(u32::MAX))
    };
    EnvoyTcpKeepalive {
        keepalive_probes: k
            .probes
            .filter(|p| *p > 0)
            .map(|p| pb::u32_value(pb::clamp_u32(p))),
        keepalive_time: k.time.map(secs),
        keepalive_interval: k.interval.map(secs),
    }
}

/// Istio's retry budget: 20% and a minimum concurrency of 3 unless set.
fn retry_budget(b: &RetryBudget) -> EnvoyRetryBudget {
    EnvoyRetryBudget {
        budget_percent: Some(Percent {
            value: b.percent.unwrap_or(20.0),
        }),
        min_retry_concurrency: Some(pb::u32_value(
            b.min_retry_concurrency
                .filter(|n| *n > 0)
                .map_or(3, pb::clamp_u32),
        )),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::cluster::DiscoveryType;
    use mast_config::networking::destination_rule::HttpSettings;
    use mast_config::types::Duration;

    fn dur(s: &str) -> Option<Duration> {
        Some(Duration::parse(s).unwrap())
    }

    fn thresholds(d: &Draft) -> &Thresholds {
        &d.cluster.circuit_breakers.as_ref().unwrap().thresholds[0]
    }

    #[test]
    fn no_pool_means_unlimited_thresholds() {
        let mut d = Draft::new("c", DiscoveryType::Eds);
        apply(&mut d, None, None);
        let t = thresholds(&d);
        for v in [
            &t.max_connections,
            &t.max_pending_requests,
            &t.max_requests,
            &t.max_retries,
        ] {
            assert_eq!(v.as_ref().unwrap().value, 4_294_967_295);
        }
        assert!(t.track_remaining);
        assert!(d.http.is_none());
        assert_eq!(d.cluster.connect_timeout, Some(pb::seconds(10)));
    }

    #[test]
    fn pool_limits_timeouts_and_keepalive() {
        let pool = ConnectionPoolSettings {
            tcp: Some(TcpSettings {
                max_connections: Some(1),
                connect_timeout: dur("250ms"),
                tcp_keepalive: Some(TcpKeepalive {
                    probes: Some(3),
                    time: dur("2h"),
                    interval: dur("75s"),
                }),
                idle_timeout: dur("30s"),
                ..Default::default()
            }),
            http: Some(HttpSettings {
                http1_max_pending_requests: Some(2),
                http2_max_requests: Some(3),
                max_retries: Some(0),
                max_requests_per_connection: Some(1),
                ..Default::default()
            }),
        };
        let mut d = Draft::new("c", DiscoveryType::Eds);
        apply(
            &mut d,
            Some(&pool),
            Some(&RetryBudget {
                percent: Some(50.0),
                min_retry_concurrency: None,
            }),
        );
        let t = thresholds(&d);
        assert_eq!(t.max_connections.unwrap().value, 1);
        assert_eq!(t.max_pending_requests.unwrap().value, 2);
        assert_eq!(t.max_requests.unwrap().value, 3);
        assert_eq!(
            t.max_retries.unwrap().value,
            u32::MAX,
            "0 is unset in Istio"
        );
        let budget = t.retry_budget.as_ref().unwrap();
        assert_eq!(
            (
                budget.budget_percent.as_ref().unwrap().value,
                budget.min_retry_concurrency.unwrap().value
            ),
            (50.0, 3)
        );
        assert_eq!(
            d.cluster.connect_timeout,
            Some(pb::duration(std::time::Duration::from_millis(250)))
        );
        let k = d
            .cluster
            .upstream_connection_options
            .as_ref()
            .unwrap()
            .tcp_keepalive
            .unwrap();
        assert_eq!(
            (
                k.keepalive_probes.unwrap().value,
                k.keepalive_time.unwrap().value,
                k.keepalive_interval.unwrap().value
            ),
            (3, 7200, 75)
        );
        let common = d
            .http
            .as_ref()
            .unwrap()
            .common_http_protocol_options
            .as_ref()
            .unwrap();
        assert_eq!(
            common.idle_timeout,
            Some(pb::seconds(30)),
            "TCP idle timeout when HTTP has none"
        );
        assert_eq!(common.max_requests_per_connection.unwrap().value, 1);
    }

    #[test]
    fn h2_upgrade_and_client_protocol() {
        let up = |policy, client| ConnectionPoolSettings {
            http: Some(HttpSettings {
                h2_upgrade_policy: Some(policy),
                use_client_protocol: client,
                max_concurrent_streams: Some(9),
                ..Default::default()
            }),
            tcp: None,
        };
        let mut d = Draft::new("c", DiscoveryType::Eds);
        let pool = up(H2UpgradePolicy::Upgrade, None);
        apply_h2_upgrade(&mut d, Some(&pool));
        apply(&mut d, Some(&pool), None);
        assert!(d.is_h2());
        assert_eq!(
            d.h2_options_mut()
                .unwrap()
                .max_concurrent_streams
                .unwrap()
                .value,
            9
        );

        let mut d = Draft::new("c", DiscoveryType::Eds);
        let pool = up(H2UpgradePolicy::Upgrade, Some(true));
        apply_h2_upgrade(&mut d, Some(&pool));
        apply(&mut d, Some(&pool), None);
        assert!(!d.is_h2(), "useClientProtocol wins over UPGRADE");
        assert!(d.http.as_ref().unwrap().upstream_protocol_options.is_some());
    }
}
