//! Load balancer settings → Envoy (Istio's `applyLoadBalancer`): LEAST_REQUEST by default;
//! `simple` ROUND_ROBIN / RANDOM / LEAST_REQUEST (LEAST_CONN is LEAST_REQUEST) / PASSTHROUGH
//! (ORIGINAL_DST with CLUSTER_PROVIDED); `warmup` (or the deprecated `warmupDurationSecs`) as
//! slow start on ROUND_ROBIN and LEAST_REQUEST; `consistentHash` → MAGLEV when `maglev` is set,
//! else RING_HASH (minimum ring size from `ringHash`, else the deprecated `minimumRingSize`,
//! else 1024). The hash key itself is a route's `hash_policy` (RDS). Locality settings are not
//! applied (the model has no localities).

use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    DiscoveryType, LbConfig, LbPolicy, LeastRequestLbConfig, MaglevLbConfig, RingHashLbConfig,
    RoundRobinLbConfig, SlowStartConfig,
};
use envoy_types::pb::envoy::config::core::v3::RuntimeDouble;
use envoy_types::pb::envoy::r#type::v3::Percent;
use mast_config::networking::destination_rule::{ConsistentHashLb, LoadBalancerSettings, SimpleLb};

use super::draft::Draft;
use super::pb;

/// Istio's default ring size.
const DEFAULT_RING_SIZE: u64 = 1024;

/// Applies `lb` (absent: the default) to the cluster.
pub(crate) fn apply(draft: &mut Draft, lb: Option<&LoadBalancerSettings>) {
    if draft.kind() == Some(DiscoveryType::OriginalDst) {
        draft.set_lb(LbPolicy::ClusterProvided);
        return;
    }
    let slow_start = lb.and_then(slow_start);
    match lb.and_then(|l| l.simple).unwrap_or_default() {
        SimpleLb::Random => draft.set_lb(LbPolicy::Random),
        SimpleLb::RoundRobin => {
            draft.set_lb(LbPolicy::RoundRobin);
            if let Some(s) = slow_start {
                draft.cluster.lb_config = Some(LbConfig::RoundRobinLbConfig(RoundRobinLbConfig {
                    slow_start_config: Some(s),
                }));
            }
        }
        SimpleLb::Passthrough => {
            draft.set_kind(DiscoveryType::OriginalDst);
            draft.set_lb(LbPolicy::ClusterProvided);
            draft.cluster.load_assignment = None;
            draft.cluster.eds_cluster_config = None;
        }
        SimpleLb::LeastConn | SimpleLb::LeastRequest | SimpleLb::Unspecified => {
            draft.set_lb(LbPolicy::LeastRequest);
            if let Some(s) = slow_start {
                draft.cluster.lb_config =
                    Some(LbConfig::LeastRequestLbConfig(LeastRequestLbConfig {
                        slow_start_config: Some(s),
                        ..Default::default()
                    }));
            }
        }
    }
    if let Some(hash) = lb.and_then(|l| l.consistent_hash.as_ref()) {
        apply_consistent_hash(draft, hash);
    }
}

fn apply_consistent_hash(draft: &mut Draft, hash: &ConsistentHashLb) {
    if let Some(maglev) = &hash.maglev {
        draft.set_lb(LbPolicy::Maglev);
        draft.cluster.lb_config = maglev.table_size.filter(|n| *n > 0).map(|n| {
            LbConfig::MaglevLbConfig(MaglevLbConfig {
                table_size: Some(pb::u64_value(pb::clamp_u64(n))),
            })
        });
        return;
    }
    draft.set_lb(LbPolicy::RingHash);
    let size = match &hash.ring_hash {
        Some(ring) => ring.minimum_ring_size.filter(|n| *n > 0).map(pb::clamp_u64),
        None => Some(
            hash.minimum_ring_size
                .filter(|n| *n > 0)
                .map_or(DEFAULT_RING_SIZE, pb::clamp_u64),
        ),
    };
    draft.cluster.lb_config = size.map(|n| {
        LbConfig::RingHashLbConfig(RingHashLbConfig {
            minimum_ring_size: Some(pb::u64_value(n)),
            ..Default::default()
        })
    });
}

/// Slow start from `warmup` (aggression 1 and minimum weight 10% unless set) or the deprecated
/// `warmupDurationSecs`.
fn slow_start(lb: &LoadBalancerSettings) -> Option<SlowStartConfig> {
    if let Some(w) = &lb.warmup {
        return Some(SlowStartConfig {
            slow_start_window: w.duration.map(pb::config_duration),
            // A runtime key is required; like Istio, use one no operator would set, so the
            // configured value is what applies.
            aggression: Some(RuntimeDouble {
                default_value: w.aggression.unwrap_or(1.0),
                runtime_key: "(".into(),
            }),
            min_weight_percent: Some(Percent {
                value: w.minimum_percent.unwrap_or(10.0),
            }),
        });
    }
    lb.warmup_duration_secs.map(|d| SlowStartConfig {
        slow_start_window: Some(pb::config_duration(d)),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mast_config::networking::destination_rule::{Maglev, RingHash, WarmupConfiguration};
    use mast_config::types::Duration;

    fn applied(lb: Option<LoadBalancerSettings>, kind: DiscoveryType) -> Draft {
        let mut d = Draft::new("c", kind);
        apply(&mut d, lb.as_ref());
        d
    }

    fn simple(s: SimpleLb) -> Option<LoadBalancerSettings> {
        Some(LoadBalancerSettings {
            simple: Some(s),
            ..Default::default()
        })
    }

    fn policy(d: &Draft) -> LbPolicy {
        LbPolicy::try_from(d.cluster.lb_policy).unwrap()
    }

    #[test]
    fn simple_policies() {
        assert_eq!(
            policy(&applied(None, DiscoveryType::Eds)),
            LbPolicy::LeastRequest
        );
        assert_eq!(
            policy(&applied(simple(SimpleLb::RoundRobin), DiscoveryType::Eds)),
            LbPolicy::RoundRobin
        );
        assert_eq!(
            policy(&applied(simple(SimpleLb::Random), DiscoveryType::Eds)),
            LbPolicy::Random
        );
        assert_eq!(
            policy(&applied(simple(SimpleLb::LeastConn), DiscoveryType::Eds)),
            LbPolicy::LeastRequest
        );
        let d = applied(simple(SimpleLb::Passthrough), DiscoveryType::Eds);
        assert_eq!(
            (policy(&d), d.kind()),
            (LbPolicy::ClusterProvided, Some(DiscoveryType::OriginalDst))
        );
        let d = applied(simple(SimpleLb::RoundRobin), DiscoveryType::OriginalDst);
        assert_eq!(
            policy(&d),
            LbPolicy::ClusterProvided,
            "ORIGINAL_DST needs CLUSTER_PROVIDED"
        );
    }

    #[test]
    fn consistent_hash() {
        let hash = |h: ConsistentHashLb| {
            Some(LoadBalancerSettings {
                consistent_hash: Some(h),
                ..Default::default()
            })
        };
        let d = applied(
            hash(ConsistentHashLb {
                http_header_name: Some("x-user".into()),
                ..Default::default()
            }),
            DiscoveryType::Eds,
        );
        assert_eq!(policy(&d), LbPolicy::RingHash);
        let Some(LbConfig::RingHashLbConfig(r)) = d.cluster.lb_config else {
            panic!("ring hash config")
        };
        assert_eq!(r.minimum_ring_size.unwrap().value, 1024);
        let ring = ConsistentHashLb {
            ring_hash: Some(RingHash {
                minimum_ring_size: Some(2048),
            }),
            ..Default::default()
        };
        let Some(LbConfig::RingHashLbConfig(r)) =
            applied(hash(ring), DiscoveryType::Eds).cluster.lb_config
        else {
            panic!()
        };
        assert_eq!(r.minimum_ring_size.unwrap().value, 2048);
        let mag = ConsistentHashLb {
            maglev: Some(Maglev {
                table_size: Some(65537),
            }),
            ..Default::default()
        };
        let d = applied(hash(mag), DiscoveryType::Eds);
        assert_eq!(policy(&d), LbPolicy::Maglev);
        let Some(LbConfig::MaglevLbConfig(m)) = d.cluster.lb_config else {
            panic!()
        };
        assert_eq!(m.table_size.unwrap().value, 65537);
    }

    #[test]
    fn warmup_becomes_slow_start() {
        let lb = LoadBalancerSettings {
            simple: Some(SimpleLb::RoundRobin),
            warmup: Some(WarmupConfiguration {
                duration: Some(Duration::parse("30s").unwrap()),
                minimum_percent: None,
                aggression: Some(2.0),
            }),
            ..Default::default()
        };
        let Some(LbConfig::RoundRobinLbConfig(rr)) =
            applied(Some(lb), DiscoveryType::Eds).cluster.lb_config
        else {
            panic!()
        };
        let s = rr.slow_start_config.unwrap();
        assert_eq!(s.slow_start_window, Some(pb::seconds(30)));
        assert_eq!(s.aggression.unwrap().default_value, 2.0);
        assert_eq!(s.min_weight_percent.unwrap().value, 10.0);
    }
}
