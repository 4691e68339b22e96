//! Outlier detection → Envoy (Istio's `applyOutlierDetection`). Nothing is written unless the
//! policy sets `outlierDetection`. Success-rate ejection is always disabled; each consecutive
//! error kind is enforced at 100% when its threshold is positive and disabled (0) when it is
//! zero. `minHealthPercent` (default 0) becomes the cluster's healthy panic threshold.
//!
//! The deprecated `consecutiveErrors` is honoured as Istio 1.5 did (gateway errors, 5xx
//! enforcement off) when neither `consecutive5xxErrors` nor `consecutiveGatewayErrors` is set;
//! current Istio ignores it.

use envoy_types::pb::envoy::config::cluster::v3::OutlierDetection as EnvoyOutlier;
use envoy_types::pb::envoy::r#type::v3::Percent;
use mast_config::networking::destination_rule::OutlierDetection;

use super::draft::Draft;
use super::pb;

/// Applies `outlier` (when set) to the cluster.
pub(crate) fn apply(draft: &mut Draft, outlier: Option<&OutlierDetection>) {
    let Some(o) = outlier else { return };
    let enforce = |v: u32| pb::u32_value(if v > 0 { 100 } else { 0 });
    let mut out = EnvoyOutlier {
        enforcing_success_rate: Some(pb::u32_value(0)),
        ..Default::default()
    };
    if let Some(v) = o.consecutive_5xx_errors.map(pb::clamp_u32) {
        out.consecutive_5xx = Some(pb::u32_value(v));
        out.enforcing_consecutive_5xx = Some(enforce(v));
    }
    if let Some(v) = o.consecutive_gateway_errors.map(pb::clamp_u32) {
        out.consecutive_gateway_failure = Some(pb::u32_value(v));
        out.enforcing_consecutive_gateway_failure = Some(enforce(v));
    }
    let legacy = o.consecutive_errors.filter(|n| *n > 0);
    if let (Some(n), None, None) = (
        legacy,
        o.consecutive_5xx_errors,
        o.consecutive_gateway_errors,
    ) {
        out.consecutive_gateway_failure = Some(pb::u32_value(pb::clamp_u32(n)));
        out.enforcing_consecutive_gateway_failure = Some(pb::u32_value(100));
        out.enforcing_consecutive_5xx = Some(pb::u32_value(0));
    }
    out.interval = o.interval.map(pb::config_duration);
    out.base_ejection_time = o.base_ejection_time.map(pb::config_duration);
    if let Some(p) = o.max_ejection_percent.filter(|p| *p > 0) {
        out.max_ejection_percent = Some(pb::u32_value(pb::clamp_u32(p)));
    }
    if o.split_external_local_origin_errors == Some(true) {
        out.split_external_local_origin_errors = true;
        if let Some(n) = o.consecutive_local_origin_failures.filter(|n| *n > 0) {
            out.consecutive_local_origin_failure = Some(pb::u32_value(pb::clamp_u32(n)));
            out.enforcing_consecutive_local_origin_failure = Some(pb::u32_value(100));
        }
        out.enforcing_local_origin_success_rate = Some(pb::u32_value(0));
    }
    draft.cluster.outlier_detection = Some(out);
    let min_health = o.min_health_percent.unwrap_or(0).clamp(0, 100);
    let common = draft
        .cluster
        .common_lb_config
        .get_or_insert_with(Default::default);
    #[allow(clippy::cast_precision_loss)] // 0..=100
    let threshold = Percent {
        value: min_health as f64,
    };
    common.healthy_panic_threshold = Some(threshold);
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::cluster::DiscoveryType;
    use mast_config::types::Duration;

    fn applied(o: &OutlierDetection) -> (EnvoyOutlier, f64) {
        let mut d = Draft::new("c", DiscoveryType::Eds);
        apply(&mut d, Some(o));
        let panic = d
            .cluster
            .common_lb_config
            .unwrap()
            .healthy_panic_threshold
            .unwrap()
            .value;
        (d.cluster.outlier_detection.unwrap(), panic)
    }

    #[test]
    fn unset_means_no_outlier_detection() {
        let mut d = Draft::new("c", DiscoveryType::Eds);
        apply(&mut d, None);
        assert!(d.cluster.outlier_detection.is_none());
        assert!(
            d.cluster
                .common_lb_config
                .unwrap()
                .healthy_panic_threshold
                .is_none()
        );
    }

    #[test]
    fn maps_every_field() {
        let o = OutlierDetection {
            consecutive_5xx_errors: Some(1),
            consecutive_gateway_errors: Some(0),
            interval: Some(Duration::parse("1s").unwrap()),
            base_ejection_time: Some(Duration::parse("3m").unwrap()),
            max_ejection_percent: Some(100),
            min_health_percent: Some(25),
            split_external_local_origin_errors: Some(true),
            consecutive_local_origin_failures: Some(4),
            ..Default::default()
        };
        let (out, panic) = applied(&o);
        assert_eq!(out.consecutive_5xx.unwrap().value, 1);
        assert_eq!(out.enforcing_consecutive_5xx.unwrap().value, 100);
        assert_eq!(out.consecutive_gateway_failure.unwrap().value, 0);
        assert_eq!(out.enforcing_consecutive_gateway_failure.unwrap().value, 0);
        assert_eq!(out.enforcing_success_rate.unwrap().value, 0);
        assert_eq!(out.interval, Some(pb::seconds(1)));
        assert_eq!(out.base_ejection_time, Some(pb::seconds(180)));
        assert_eq!(out.max_ejection_percent.unwrap().value, 100);
        assert!(out.split_external_local_origin_errors);
        assert_eq!(out.consecutive_local_origin_failure.unwrap().value, 4);
        assert_eq!(panic, 25.0);
    }

    #[test]
    fn legacy_consecutive_errors_and_defaults() {
        let (out, panic) = applied(&OutlierDetection {
            consecutive_errors: Some(2),
            ..Default::default()
        });
        assert_eq!(out.consecutive_gateway_failure.unwrap().value, 2);
        assert_eq!(
            out.enforcing_consecutive_gateway_failure.unwrap().value,
            100
        );
        assert_eq!(out.enforcing_consecutive_5xx.unwrap().value, 0);
        assert_eq!(panic, 0.0, "panic threshold disabled by default");
        assert!(
            out.interval.is_none() && out.max_ejection_percent.is_none(),
            "Envoy defaults"
        );
    }
}
