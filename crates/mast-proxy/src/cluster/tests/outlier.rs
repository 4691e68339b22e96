//! Outlier detection, panic threshold and circuit breakers.

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::cluster::v3::cluster::CommonLbConfig;
use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, OutlierDetection, circuit_breakers::Thresholds,
    circuit_breakers::thresholds::RetryBudget,
};
use envoy_types::pb::envoy::r#type::v3::Percent;

use super::super::Outcome;
use super::*;

fn ms(n: i32) -> Option<PbDuration> {
    Some(PbDuration {
        seconds: 0,
        nanos: n * 1_000_000,
    })
}

fn u32v(v: u32) -> Option<UInt32Value> {
    Some(UInt32Value { value: v })
}

fn with_outlier(n: u16, max_percent: u32, panic: Option<f64>) -> PbCluster {
    let eps: Vec<(u16, u32)> = (1..=n).map(|p| (p, 1)).collect();
    let mut c = static_pb("o", LbPolicy::RoundRobin, &eps);
    c.outlier_detection = Some(OutlierDetection {
        consecutive_5xx: u32v(3),
        interval: ms(20),
        base_ejection_time: ms(150),
        max_ejection_percent: u32v(max_percent),
        enforcing_success_rate: u32v(0),
        ..Default::default()
    });
    c.common_lb_config = Some(CommonLbConfig {
        healthy_panic_threshold: panic.map(|value| Percent { value }),
        ..Default::default()
    });
    c
}

fn endpoint(c: &Cluster, port: u16) -> Arc<super::super::Endpoint> {
    c.endpoints()
        .into_iter()
        .find(|e| e.address().port() == port)
        .unwrap()
}

#[tokio::test]
async fn consecutive_5xx_ejects_then_returns() {
    let (_m, c) = manager_with(&with_outlier(3, 10, None));
    let e1 = endpoint(&c, 1);
    e1.report(Outcome::Status(503));
    e1.report(Outcome::Status(200)); // resets the count
    e1.report(Outcome::Status(500));
    e1.report(Outcome::Status(502));
    assert_eq!(
        histogram(&c, 30, &ctx()).await.len(),
        3,
        "two failures do not eject"
    );
    e1.report(Outcome::Status(504));
    let h = histogram(&c, 30, &ctx()).await;
    assert_eq!(h.get(&1), None, "ejected: {h:?}");
    // max_ejection_percent 10: a second host cannot be ejected (1/3 already).
    let e2 = endpoint(&c, 2);
    for _ in 0..3 {
        e2.report(Outcome::ConnectFailure);
    }
    assert_eq!(histogram(&c, 30, &ctx()).await.get(&2), Some(&15));
    // Back after base_ejection_time (150 ms) at the next interval sweep.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if histogram(&c, 30, &ctx()).await.contains_key(&1) {
            break;
        }
        assert!(Instant::now() < deadline, "host 1 never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn split_local_origin_errors_count_apart() {
    let mut pb = with_outlier(2, 100, Some(0.0));
    if let Some(od) = pb.outlier_detection.as_mut() {
        od.split_external_local_origin_errors = true;
        od.consecutive_local_origin_failure = u32v(2);
        od.enforcing_local_origin_success_rate = u32v(0);
    }
    let (_m, c) = manager_with(&pb);
    let e1 = endpoint(&c, 1);
    e1.report(Outcome::Status(503));
    e1.report(Outcome::Status(503));
    e1.report(Outcome::Reset); // local origin: not a 5xx here
    assert_eq!(histogram(&c, 20, &ctx()).await.len(), 2);
    e1.report(Outcome::Timeout);
    assert_eq!(histogram(&c, 20, &ctx()).await.get(&1), None);
}

#[tokio::test]
async fn panic_threshold_uses_every_host() {
    let (_m, c) = manager_with(&with_outlier(2, 100, Some(50.0)));
    for _ in 0..3 {
        endpoint(&c, 1).report(Outcome::Status(500));
    }
    assert_eq!(
        histogram(&c, 20, &ctx()).await.get(&1),
        None,
        "50% healthy: no panic"
    );
    for _ in 0..3 {
        endpoint(&c, 2).report(Outcome::Status(500));
    }
    assert_eq!(histogram(&c, 20, &ctx()).await.len(), 2, "panic: all hosts");
    // With panic disabled, no host is left.
    let (_m, c) = manager_with(&with_outlier(1, 100, Some(0.0)));
    for _ in 0..3 {
        endpoint(&c, 1).report(Outcome::Status(500));
    }
    assert!(c.select(&ctx()).await.is_err());
}

fn with_breakers(t: Thresholds) -> PbCluster {
    let mut c = static_pb("b", LbPolicy::RoundRobin, &[(1, 1)]);
    c.circuit_breakers = Some(CircuitBreakers {
        thresholds: vec![t],
        ..Default::default()
    });
    c
}

#[tokio::test]
async fn max_requests_and_max_retries() {
    let (_m, c) = manager_with(&with_breakers(Thresholds {
        max_requests: u32v(2),
        max_retries: u32v(1),
        ..Default::default()
    }));
    let a = c.try_request().unwrap();
    let _b = c.try_request().unwrap();
    assert!(c.try_request().is_err());
    drop(a);
    assert!(c.try_request().is_ok());
    let r = c.try_retry().unwrap();
    assert!(c.try_retry().is_err());
    drop(r);
    assert!(c.try_retry().is_ok());
}

#[tokio::test]
async fn retry_budget_scales_with_active_requests() {
    let (_m, c) = manager_with(&with_breakers(Thresholds {
        retry_budget: Some(RetryBudget {
            budget_percent: Some(Percent { value: 50.0 }),
            min_retry_concurrency: u32v(1),
            ..Default::default()
        }),
        ..Default::default()
    }));
    let first = c.try_retry().unwrap(); // the minimum
    assert!(c.try_retry().is_err());
    let _reqs: Vec<_> = (0..6).map(|_| c.try_request().unwrap()).collect();
    let _more: Vec<_> = (0..2).map(|_| c.try_retry().unwrap()).collect();
    assert!(c.try_retry().is_err(), "50% of 6 = 3 retries");
    drop(first);
}
