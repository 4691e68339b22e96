//! Debounce: bursts of snapshots collapse into one push; a steady stream still pushes
//! within the maximum delay.

use std::time::Duration;

use mast_xds::{CLUSTER_TYPE, NamedResource};
use mast_xds_server::Debounce;
use tokio::time::Instant;

use crate::common::*;

fn clusters(v: u64, type_url: &str) -> Vec<NamedResource> {
    match type_url {
        CLUSTER_TYPE => vec![cluster("svc", v)],
        _ => vec![],
    }
}

#[tokio::test]
async fn a_burst_of_ten_snapshots_gives_one_push() {
    let h = Harness::start(Some(TestGen::new(clusters)), Debounce::default()).await;
    let mut c = SotwClient::connect(h.addr, &node_id("burst")).await;
    c.subscribe(CLUSTER_TYPE, &[]).await;
    let r = c.recv().await;
    c.ack(&r).await;
    for v in 2..=11 {
        h.publish(v);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let last_publish = Instant::now();
    let r = c.recv().await;
    let waited = last_publish.elapsed();
    assert_eq!(r.version_info, "11", "the push carries the last snapshot");
    assert!(
        waited >= Duration::from_millis(80),
        "pushed {waited:?} after the burst, before 100 ms of quiet"
    );
    c.ack(&r).await;
    c.expect_silence(Duration::from_millis(400)).await;
    assert!(
        h.metrics()
            .contains(r#"pilot_xds_pushes_total{type="cds"} 2"#)
    );
}

#[tokio::test]
async fn continuous_changes_still_push_within_the_maximum_delay() {
    let debounce = Debounce {
        quiet: Duration::from_millis(100),
        max: Duration::from_millis(300),
    };
    let h = Harness::start(Some(TestGen::new(clusters)), debounce).await;
    let mut c = SotwClient::connect(h.addr, &node_id("steady")).await;
    c.subscribe(CLUSTER_TYPE, &[]).await;
    let r = c.recv().await;
    c.ack(&r).await;
    let start = Instant::now();
    let publisher = {
        let snapshots = h.snapshots.clone();
        tokio::spawn(async move {
            for v in 2..=60 {
                snapshots.send_replace(snap(v));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let r = c.recv().await;
    let waited = start.elapsed();
    assert!(
        !publisher.is_finished(),
        "the push came only after the changes stopped ({waited:?})"
    );
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_millis(900),
        "first push after {waited:?}"
    );
    assert_ne!(r.version_info, "1");
    publisher.abort();
}
