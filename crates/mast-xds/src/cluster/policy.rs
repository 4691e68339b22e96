//! The traffic policy that applies to one cluster, as Istio selects it: the DestinationRule's
//! top-level policy, replaced wholesale by a `portLevelSettings` entry for the cluster's port,
//! then overridden field by field by the subset's own policy (itself port-level resolved).
//! Istio's `GetPortLevelTrafficPolicy` / `MergeSubsetTrafficPolicy`.

use mast_config::networking::destination_rule::{
    ClientTlsSettings, ConnectionPoolSettings, LoadBalancerSettings, OutlierDetection,
    ProxyProtocol, RetryBudget, TrafficPolicy,
};

/// The parts of a traffic policy a cluster uses (tunnel settings are not supported).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Policy<'a> {
    /// Load balancing.
    pub load_balancer: Option<&'a LoadBalancerSettings>,
    /// Connection pool (circuit breakers).
    pub connection_pool: Option<&'a ConnectionPoolSettings>,
    /// Outlier detection.
    pub outlier_detection: Option<&'a OutlierDetection>,
    /// Upstream TLS.
    pub tls: Option<&'a ClientTlsSettings>,
    /// Upstream PROXY protocol.
    pub proxy_protocol: Option<&'a ProxyProtocol>,
    /// Retry budget.
    pub retry_budget: Option<&'a RetryBudget>,
}

impl<'a> Policy<'a> {
    /// The policy for `port`: a matching `portLevelSettings` entry replaces the load balancer,
    /// connection pool, outlier detection and TLS (fields it omits fall back to defaults, not to
    /// the top level). Returns whether a port-level entry applied.
    pub(crate) fn for_port(policy: Option<&'a TrafficPolicy>, port: u16) -> (Self, bool) {
        let Some(policy) = policy else {
            return (Self::default(), false);
        };
        let port_level = policy
            .port_level_settings
            .iter()
            .find(|p| p.port.as_ref().and_then(|s| s.number) == Some(i64::from(port)));
        match port_level {
            Some(p) => (
                Self {
                    load_balancer: p.load_balancer.as_ref(),
                    connection_pool: p.connection_pool.as_ref(),
                    outlier_detection: p.outlier_detection.as_ref(),
                    tls: p.tls.as_ref(),
                    proxy_protocol: None,
                    retry_budget: None,
                },
                true,
            ),
            None => (
                Self {
                    load_balancer: policy.load_balancer.as_ref(),
                    connection_pool: policy.connection_pool.as_ref(),
                    outlier_detection: policy.outlier_detection.as_ref(),
                    tls: policy.tls.as_ref(),
                    proxy_protocol: policy.proxy_protocol.as_ref(),
                    retry_budget: policy.retry_budget.as_ref(),
                },
                false,
            ),
        }
    }

    /// The policy of a subset cluster: the rule's (port-resolved) policy with the subset's
    /// (port-resolved) fields on top. A port-level entry in the subset replaces all four main
    /// fields, even those it leaves unset.
    pub(crate) fn for_subset(
        rule: Option<&'a TrafficPolicy>,
        subset: Option<&'a TrafficPolicy>,
        port: u16,
    ) -> Self {
        let (base, _) = Self::for_port(rule, port);
        if subset.is_none() {
            return base;
        }
        let (over, port_level) = Self::for_port(subset, port);
        fn pick<T>(over: Option<T>, base: Option<T>, force: bool) -> Option<T> {
            if over.is_some() || force { over } else { base }
        }
        Self {
            connection_pool: pick(over.connection_pool, base.connection_pool, port_level),
            outlier_detection: pick(over.outlier_detection, base.outlier_detection, port_level),
            load_balancer: pick(over.load_balancer, base.load_balancer, port_level),
            tls: pick(over.tls, base.tls, port_level),
            proxy_protocol: over.proxy_protocol.or(base.proxy_protocol),
            retry_budget: over.retry_budget.or(base.retry_budget),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mast_config::networking::destination_rule::{PortTrafficPolicy, SimpleLb};
    use mast_config::types::PortSelector;

    fn lb(simple: SimpleLb) -> Option<LoadBalancerSettings> {
        Some(LoadBalancerSettings {
            simple: Some(simple),
            ..Default::default()
        })
    }

    fn rule() -> TrafficPolicy {
        TrafficPolicy {
            load_balancer: lb(SimpleLb::Random),
            outlier_detection: Some(OutlierDetection {
                consecutive_5xx_errors: Some(7),
                ..Default::default()
            }),
            port_level_settings: vec![PortTrafficPolicy {
                port: Some(PortSelector { number: Some(9080) }),
                load_balancer: lb(SimpleLb::RoundRobin),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn port_level_replaces_the_top_level_policy() {
        let r = rule();
        let (p, hit) = Policy::for_port(Some(&r), 9080);
        assert!(hit);
        assert_eq!(
            p.load_balancer.and_then(|l| l.simple),
            Some(SimpleLb::RoundRobin)
        );
        assert!(
            p.outlier_detection.is_none(),
            "not inherited from the top level"
        );
        let (p, hit) = Policy::for_port(Some(&r), 80);
        assert!(!hit);
        assert_eq!(
            p.load_balancer.and_then(|l| l.simple),
            Some(SimpleLb::Random)
        );
        assert!(p.outlier_detection.is_some());
    }

    #[test]
    fn subset_overrides_field_by_field() {
        let r = rule();
        let sub = TrafficPolicy {
            load_balancer: lb(SimpleLb::LeastRequest),
            ..Default::default()
        };
        let p = Policy::for_subset(Some(&r), Some(&sub), 80);
        assert_eq!(
            p.load_balancer.and_then(|l| l.simple),
            Some(SimpleLb::LeastRequest)
        );
        assert_eq!(
            p.outlier_detection.and_then(|o| o.consecutive_5xx_errors),
            Some(7),
            "inherited"
        );
        let p = Policy::for_subset(Some(&r), None, 9080);
        assert_eq!(
            p.load_balancer.and_then(|l| l.simple),
            Some(SimpleLb::RoundRobin)
        );
        let sub_port = TrafficPolicy {
            port_level_settings: vec![PortTrafficPolicy {
                port: Some(PortSelector { number: Some(80) }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let p = Policy::for_subset(Some(&r), Some(&sub_port), 80);
        assert!(
            p.load_balancer.is_none() && p.outlier_detection.is_none(),
            "port-level subset policy resets"
        );
    }
}
