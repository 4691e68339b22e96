//! Load balancers: distributions, stickiness, minimal disruption, previous-host avoidance.

use super::*;

#[tokio::test]
async fn round_robin_is_exact_and_weighted() {
    let (_m, c) = manager_with(&static_pb(
        "rr",
        LbPolicy::RoundRobin,
        &[(1, 1), (2, 1), (3, 1)],
    ));
    let h = histogram(&c, 300, &ctx()).await;
    assert_eq!(h.values().copied().collect::<Vec<_>>(), vec![100, 100, 100]);
    let (_m, c) = manager_with(&static_pb(
        "wrr",
        LbPolicy::RoundRobin,
        &[(1, 1), (2, 2), (3, 3)],
    ));
    let h = histogram(&c, 600, &ctx()).await;
    assert_eq!(h.values().copied().collect::<Vec<_>>(), vec![100, 200, 300]);
}

#[tokio::test]
async fn random_spreads_by_weight() {
    let (_m, c) = manager_with(&static_pb("r", LbPolicy::Random, &[(1, 1), (2, 1), (3, 2)]));
    let h = histogram(&c, 4000, &ctx()).await;
    assert!((800..1200).contains(&h[&1]), "{h:?}");
    assert!((800..1200).contains(&h[&2]), "{h:?}");
    assert!((1700..2300).contains(&h[&3]), "{h:?}");
}

#[tokio::test]
async fn least_request_prefers_the_idle_endpoint() {
    let (_m, c) = manager_with(&static_pb("lr", LbPolicy::LeastRequest, &[(1, 1), (2, 1)]));
    let busy = c
        .endpoints()
        .into_iter()
        .find(|e| e.address().port() == 1)
        .unwrap();
    busy.active.store(5, std::sync::atomic::Ordering::Relaxed);
    let h = histogram(&c, 1000, &ctx()).await;
    // P2C over two hosts picks the busy one only when both samples land on it (~1/4).
    assert!(h.get(&2).copied().unwrap_or(0) > 650, "{h:?}");
}

#[tokio::test]
async fn previous_hosts_are_avoided() {
    let (_m, c) = manager_with(&static_pb("p", LbPolicy::Random, &[(1, 1), (2, 1)]));
    let prev = [local(1)];
    let ctx = LbContext {
        previous: &prev,
        max_attempts: 20,
        ..LbContext::default()
    };
    let h = histogram(&c, 200, &ctx).await;
    assert_eq!(h.get(&1), None, "{h:?}");
}

async fn consistent(policy: LbPolicy) {
    let ports: Vec<(u16, u32)> = (1..=4).map(|p| (p, 1)).collect();
    let pb = static_pb("h", policy, &ports);
    let (m, c) = manager_with(&pb);
    let mut before = Vec::new();
    for k in 0..2000u64 {
        let ctx = LbContext {
            hash: Some(crate::cluster::lb::mix(k)),
            ..LbContext::default()
        };
        let a = c.select(&ctx).await.unwrap().address().port();
        let b = c.select(&ctx).await.unwrap().address().port();
        assert_eq!(a, b, "sticky");
        before.push(a);
    }
    let mut spread = before.clone();
    spread.sort_unstable();
    spread.dedup();
    assert_eq!(spread.len(), 4, "every host gets keys");
    // Remove host 4 (a CDS update of the STATIC cluster).
    let pb2 = static_pb("h", policy, &ports[..3]);
    m.apply_clusters(vec![ClusterConfig::from_proto(&pb2).unwrap()], &[]);
    let c = m.get("h").unwrap();
    let (mut kept, mut survivors) = (0, 0);
    for (k, was) in before.iter().enumerate() {
        let ctx = LbContext {
            hash: Some(crate::cluster::lb::mix(k as u64)),
            ..LbContext::default()
        };
        let now = c.select(&ctx).await.unwrap().address().port();
        assert_ne!(now, 4);
        if *was != 4 {
            survivors += 1;
            kept += usize::from(now == *was);
        }
    }
    assert!(kept * 100 >= survivors * 75, "{kept}/{survivors} kept");
}

#[tokio::test]
async fn ring_hash_is_sticky_with_minimal_disruption() {
    consistent(LbPolicy::RingHash).await;
}

#[tokio::test]
async fn maglev_is_sticky_with_minimal_disruption() {
    consistent(LbPolicy::Maglev).await;
}

#[tokio::test]
async fn hash_policies_without_a_hash_pick_at_random() {
    let (_m, c) = manager_with(&static_pb("h", LbPolicy::Maglev, &[(1, 1), (2, 1)]));
    let h = histogram(&c, 400, &ctx()).await;
    assert_eq!(h.len(), 2, "{h:?}");
}

#[tokio::test]
async fn black_hole_and_original_dst() {
    let bh = cluster_pb(
        "BlackHoleCluster",
        DiscoveryType::Static,
        LbPolicy::RoundRobin,
    );
    let (_m, c) = manager_with(&bh);
    assert_eq!(
        c.select(&ctx()).await.unwrap_err(),
        super::super::SelectError::NoHealthyUpstream
    );
    let od = cluster_pb(
        "PassthroughCluster",
        DiscoveryType::OriginalDst,
        LbPolicy::ClusterProvided,
    );
    let (_m, c) = manager_with(&od);
    assert_eq!(
        c.select(&ctx()).await.unwrap_err(),
        super::super::SelectError::NoOriginalDst
    );
    let dst = local(9999);
    let ctx = LbContext {
        original_dst: Some(dst),
        ..LbContext::default()
    };
    let a = c.select(&ctx).await.unwrap();
    let b = c.select(&ctx).await.unwrap();
    assert_eq!(a.address(), dst);
    assert!(Arc::ptr_eq(&a, &b), "one pooled endpoint per address");
}

#[tokio::test]
async fn eds_updates_keep_endpoints() {
    let (m, c) = manager_with(&cluster_pb("e", DiscoveryType::Eds, LbPolicy::RoundRobin));
    assert!(c.select(&ctx()).await.is_err(), "no endpoints yet");
    eds(&m, &cla("e", &[("127.0.0.1", 1, 1)]));
    let first = c.select(&ctx()).await.unwrap();
    eds(&m, &cla("e", &[("127.0.0.1", 1, 1), ("127.0.0.1", 2, 1)]));
    let again = c
        .endpoints()
        .into_iter()
        .find(|e| e.address().port() == 1)
        .unwrap();
    assert!(Arc::ptr_eq(&first, &again));
    // A cluster re-added later gets the remembered assignment.
    m.apply_clusters(vec![], &["e".to_string()]);
    assert!(m.get("e").is_none());
    let pb = cluster_pb("e", DiscoveryType::Eds, LbPolicy::Random);
    m.apply_clusters(vec![ClusterConfig::from_proto(&pb).unwrap()], &[]);
    assert_eq!(m.get("e").unwrap().endpoints().len(), 2);
    assert_eq!(m.names(), vec!["e".to_string()]);
}
