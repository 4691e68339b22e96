//! State-of-the-world: initial sync, ACK/NACK, ordered and minimal pushes, reconnects,
//! node validation, status, config dump and metrics.

use std::time::Duration;

use mast_model::Change;
use mast_xds::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, NamedResource, ROUTE_TYPE};
use mast_xds_server::{SyncStatus, XdsProtocol};

use crate::common::*;

/// Every type's content changes with the snapshot version.
fn changing(v: u64, type_url: &str) -> Vec<NamedResource> {
    match type_url {
        CLUSTER_TYPE => vec![cluster("svc", v), cluster("other", v)],
        ENDPOINT_TYPE => vec![
            endpoints("svc", 8000 + v as u16),
            endpoints("other", 9000 + v as u16),
        ],
        LISTENER_TYPE => vec![listener("listener_http", 10000 + v as u16, "local_route")],
        ROUTE_TYPE => vec![route(
            "local_route",
            if v.is_multiple_of(2) { "svc" } else { "other" },
        )],
        _ => vec![],
    }
}

#[tokio::test]
async fn initial_sync_serves_all_four_types_and_acks_make_them_synced() {
    let h = Harness::start(Some(TestGen::new(changing)), fast()).await;
    let id = node_id("sync");
    let mut c = SotwClient::connect(h.addr, &id).await;
    c.subscribe_all(&["svc"], &["local_route"]).await;
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(c.recv().await);
    }
    let types: Vec<&str> = got.iter().map(|r| r.type_url.as_str()).collect();
    assert_eq!(types, TYPES, "one response per type, in request order");
    assert!(
        got.iter().all(|r| r.version_info == "1"),
        "versions are the snapshot version"
    );
    assert_eq!(
        names(&got[0]),
        ["other", "svc"],
        "CDS wildcard carries every cluster"
    );
    assert_eq!(
        names(&got[1]),
        ["svc"],
        "EDS carries only the subscribed names"
    );
    assert_eq!(names(&got[3]), ["local_route"]);

    let status = h
        .wait_status("4 types sent", |s| {
            s.len() == 1
                && TYPES
                    .iter()
                    .all(|t| s[0].sync_status(t) == SyncStatus::Stale)
        })
        .await;
    assert_eq!(status[0].node_id, id);
    assert_eq!(status[0].protocol, XdsProtocol::Sotw);
    assert_eq!(status[0].proxy.namespace, "default");
    assert_eq!(status[0].proxy.workload, "sync");

    for r in &got {
        c.ack(r).await;
    }
    let status = h
        .wait_status("all SYNCED", |s| {
            TYPES
                .iter()
                .all(|t| s[0].sync_status(t) == SyncStatus::Synced)
        })
        .await;
    let cds = &status[0].types[CLUSTER_TYPE];
    assert_eq!(cds.acked_version.as_deref(), Some("1"));
    assert_eq!(cds.sent_nonce, cds.acked_nonce);
    assert!(cds.last_nack.is_none());

    let dump = h
        .server
        .config_dump(&id)
        .expect("config dump for a connected proxy");
    assert_eq!(dump[CLUSTER_TYPE].len(), 2);
    assert_eq!(
        dump[ENDPOINT_TYPE].len(),
        2,
        "the dump holds every generated resource"
    );
    assert!(
        h.server
            .config_dump("sidecar~1.2.3.4~nobody.default~default.svc.cluster.local")
            .is_none()
    );
    c.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn push_goes_cds_eds_lds_rds_with_the_new_version() {
    let h = Harness::start(Some(TestGen::new(changing)), fast()).await;
    let mut c = SotwClient::connect(h.addr, &node_id("order")).await;
    c.subscribe_all(&["svc"], &["local_route"]).await;
    c.sync(4).await;
    h.publish(2);
    let mut types = Vec::new();
    for _ in 0..4 {
        let r = c.recv().await;
        assert_eq!(r.version_info, "2");
        types.push(r.type_url.clone());
        c.ack(&r).await;
    }
    assert_eq!(types, TYPES);
    c.expect_silence(Duration::from_millis(100)).await;
    let status = h
        .wait_status("synced at 2", |s| {
            TYPES
                .iter()
                .all(|t| s[0].types[*t].acked_version.as_deref() == Some("2"))
        })
        .await;
    assert!(
        TYPES
            .iter()
            .all(|t| status[0].sync_status(t) == SyncStatus::Synced)
    );
    let metrics = h.metrics();
    assert!(metrics.contains("pilot_xds 1"), "{metrics}");
    assert!(
        metrics.contains(r#"pilot_xds_pushes_total{type="cds"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"pilot_proxy_convergence_time_count{type="rds"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn endpoint_only_change_pushes_eds_alone() {
    let generator = TestGen::new(changing);
    let h = Harness::start(Some(generator.clone()), fast()).await;
    let mut c = SotwClient::connect(h.addr, &node_id("eds")).await;
    c.subscribe_all(&["svc"], &["local_route"]).await;
    c.sync(4).await;
    generator.set_change(Change::EndpointsOnly(Default::default()));
    h.publish(2);
    let r = c.recv().await;
    assert_eq!(r.type_url, ENDPOINT_TYPE);
    assert_eq!(r.version_info, "2");
    c.ack(&r).await;
    c.expect_silence(Duration::from_millis(200)).await;
    let status = h
        .wait_status("EDS at 2", |s| {
            s[0].types[ENDPOINT_TYPE].acked_version.as_deref() == Some("2")
        })
        .await;
    assert_eq!(
        status[0].types[CLUSTER_TYPE].acked_version.as_deref(),
        Some("1")
    );
}

#[tokio::test]
async fn only_types_whose_content_changed_are_pushed() {
    let content = |v: u64, t: &str| match t {
        CLUSTER_TYPE => vec![cluster("svc", v), cluster("other", 1)],
        _ => changing(1, t),
    };
    let h = Harness::start(Some(TestGen::new(content)), fast()).await;
    let mut c = SotwClient::connect(h.addr, &node_id("minimal")).await;
    c.subscribe_all(&["svc", "other"], &["local_route"]).await;
    c.sync(4).await;
    h.publish(2);
    let r = c.recv().await;
    assert_eq!(
        (r.type_url.as_str(), r.version_info.as_str()),
        (CLUSTER_TYPE, "2")
    );
    // The changed cluster's assignment follows, unchanged: Envoy's re-created cluster warms
    // until it receives it again. The unchanged cluster's is not sent.
    let eds = c.recv().await;
    assert_eq!(
        (eds.type_url.as_str(), eds.version_info.as_str()),
        (ENDPOINT_TYPE, "1")
    );
    assert_eq!(names(&eds), ["svc"]);
    c.expect_silence(Duration::from_millis(200)).await;
}

/// The RDS NACK of version 2 (sent with `nonce`) is in the status and the metrics.
async fn assert_nack_recorded(h: &Harness, nonce: &str) {
    let status = h
        .wait_status("NACK recorded", |s| {
            s[0].types[ROUTE_TYPE].last_nack.is_some()
        })
        .await;
    let rds = &status[0].types[ROUTE_TYPE];
    let nack = rds.last_nack.as_ref().unwrap();
    assert_eq!((nack.version.as_str(), nack.nonce.as_str()), ("2", nonce));
    assert!(nack.error.contains("weighted clusters"));
    assert_eq!(rds.status, SyncStatus::Stale);
    assert_eq!(
        rds.acked_version.as_deref(),
        Some("1"),
        "the proxy still holds version 1"
    );
    assert!(
        h.metrics()
            .contains(r#"pilot_total_xds_rejects_total{type="rds"} 1"#)
    );
}

#[tokio::test]
async fn nack_is_recorded_counted_and_never_resent() {
    let generator = TestGen::new(|v, t| match t {
        // v2 and v4 carry the same rejected route; v5 fixes it.
        ROUTE_TYPE if v == 2 || v == 4 => vec![bad_route("local_route")],
        ROUTE_TYPE => vec![route("local_route", if v >= 5 { "other" } else { "svc" })],
        // Endpoints move once, at version 3.
        ENDPOINT_TYPE => vec![endpoints("svc", 8000 + u16::from(v >= 3))],
        _ => changing(1, t),
    });
    let h = Harness::start(Some(generator.clone()), fast()).await;
    let id = node_id("nack");
    let mut c = SotwClient::connect(h.addr, &id).await;
    c.subscribe_all(&["svc"], &["local_route"]).await;
    c.sync(4).await;

    h.publish(2);
    let bad = c.recv().await;
    assert_eq!(
        (bad.type_url.as_str(), bad.version_info.as_str()),
        (ROUTE_TYPE, "2")
    );
    c.nack(
        &bad,
        "1",
        "route rejected: weighted clusters must not be empty",
    )
    .await;
    assert_nack_recorded(&h, &bad.nonce).await;

    // An endpoint change: EDS goes out, the rejected route does not.
    generator.set_change(Change::EndpointsOnly(Default::default()));
    h.publish(3);
    let eds = c.recv().await;
    assert_eq!(eds.type_url, ENDPOINT_TYPE);
    c.ack(&eds).await;
    c.expect_silence(Duration::from_millis(150)).await;

    // A full change that regenerates the same rejected route: still not re-sent.
    generator.set_change(Change::Full);
    h.publish(4);
    c.expect_silence(Duration::from_millis(200)).await;

    // The fix goes out and is ACKed; the NACK stays visible for diagnosis.
    h.publish(5);
    let fixed = c.recv().await;
    assert_eq!(
        (fixed.type_url.as_str(), fixed.version_info.as_str()),
        (ROUTE_TYPE, "5")
    );
    c.ack(&fixed).await;
    let status = h
        .wait_status("RDS synced at 5", |s| {
            s[0].sync_status(ROUTE_TYPE) == SyncStatus::Synced
        })
        .await;
    assert_eq!(
        status[0].types[ROUTE_TYPE].acked_version.as_deref(),
        Some("5")
    );
    assert_eq!(
        status[0].types[ROUTE_TYPE]
            .last_nack
            .as_ref()
            .map(|n| n.version.as_str()),
        Some("2")
    );
}

#[tokio::test]
async fn changed_subscription_is_answered_and_stale_nonces_ignored() {
    let h = Harness::start(Some(TestGen::new(changing)), fast()).await;
    let mut c = SotwClient::connect(h.addr, &node_id("names")).await;
    c.subscribe(ENDPOINT_TYPE, &["svc"]).await;
    let first = c.recv().await;
    c.ack(&first).await;
    c.expect_silence(Duration::from_millis(100)).await;
    // A request carrying a nonce the server never sent is ignored, even with new names.
    c.set_names(ENDPOINT_TYPE, &["svc", "other"]);
    let mut stale = first.clone();
    stale.nonce = "not-a-nonce".into();
    c.ack(&stale).await;
    c.expect_silence(Duration::from_millis(100)).await;
    // Envoy adds a cluster: the last nonce with more names gets an answer.
    c.ack(&first).await;
    let r = c.recv().await;
    assert_eq!(names(&r), ["other", "svc"]);
    assert_eq!(r.version_info, "1");
}

#[tokio::test]
async fn reconnect_gets_a_full_push() {
    let h = Harness::start(Some(TestGen::new(changing)), fast()).await;
    let id = node_id("again");
    let mut c = SotwClient::connect(h.addr, &id).await;
    c.subscribe_all(&["svc"], &["local_route"]).await;
    c.sync(4).await;
    drop(c);
    h.wait_status("old stream gone", |s| s.is_empty()).await;
    h.publish(2);
    // Let the (5 ms) debounce publish it: a stream opened before gets version 1, then a push.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = SotwClient::connect(h.addr, &id).await;
    c.subscribe_all(&["svc"], &["local_route"]).await;
    let got = c.sync(4).await;
    assert_eq!(got.len(), 4, "every type again on the new stream");
    assert!(got.values().all(|r| r.version_info == "2"));
    h.wait_status("one stream, synced", |s| {
        s.len() == 1
            && TYPES
                .iter()
                .all(|t| s[0].sync_status(t) == SyncStatus::Synced)
    })
    .await;
    assert!(h.metrics().contains("pilot_xds 1"));
}

#[tokio::test]
async fn a_node_mast_cannot_parse_is_refused_with_invalid_argument() {
    let h = Harness::start(Some(TestGen::new(changing)), fast()).await;
    let mut c = SotwClient::connect(h.addr, "bogus-node").await;
    c.subscribe(CLUSTER_TYPE, &[]).await;
    let status = c.recv_error().await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("bogus-node"),
        "{}",
        status.message()
    );
    assert!(h.server.status().is_empty());
}

#[tokio::test]
async fn default_generator_answers_every_type() {
    let h = Harness::start(None, fast()).await;
    let mut c = SotwClient::connect(h.addr, &node_id("real")).await;
    c.subscribe_all(&[], &[]).await;
    let got = c.sync(4).await;
    assert_eq!(got.len(), 4);
    assert!(got.values().all(|r| r.version_info == "1"));
}

#[tokio::test]
async fn shutdown_ends_streams_with_unavailable() {
    let h = Harness::start(Some(TestGen::new(changing)), fast()).await;
    let mut c = SotwClient::connect(h.addr, &node_id("bye")).await;
    c.subscribe(CLUSTER_TYPE, &[]).await;
    let r = c.recv().await;
    c.ack(&r).await;
    h.server.shutdown();
    let status = c.recv_error().await;
    assert_eq!(status.code(), tonic::Code::Unavailable);
}

const WEB: &str = "
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
  selector: {app: web}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web]
  http: [{route: [{destination: {host: web}}]}]
";

fn pod(name: &str, ip: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default, labels: {{app: web}}}}\n\
         spec: {{containers: [{{name: c, image: i}}]}}\nstatus: {{podIP: {ip}}}\n"
    )
}

#[tokio::test]
async fn with_real_snapshots_an_endpoint_change_pushes_eds_alone_and_a_vs_edit_listeners_and_routes()
 {
    let h = Harness::start(Some(TestGen::with_model_diff(changing)), fast()).await;
    let mut c = SotwClient::connect(h.addr, &node_id("model")).await;
    c.subscribe_all(&["svc"], &["local_route"]).await;
    c.sync(4).await;
    let one_pod = format!("{WEB}{}", pod("a", "10.0.0.1"));
    h.publish_yaml(&one_pod, 2);
    let first: Vec<String> = c.sync(4).await.into_keys().collect();
    assert_eq!(first.len(), 4, "a new service is a full push");

    let two_pods = format!("{one_pod}{}", pod("b", "10.0.0.2"));
    h.publish_yaml(&two_pods, 3);
    let r = c.recv().await;
    assert_eq!(
        (r.type_url.as_str(), r.version_info.as_str()),
        (ENDPOINT_TYPE, "3")
    );
    c.ack(&r).await;
    c.expect_silence(Duration::from_millis(200)).await;

    h.publish_yaml(
        &two_pods.replace("http: [{route", "http: [{timeout: 1s, route"),
        4,
    );
    // A VirtualService edit regenerates listeners and routes only (no Sidecar in the mesh):
    // the listener's content follows the version, the route table comes out as at version
    // 2 (the same cluster), so LDS alone goes out, at version 4.
    let r = c.recv().await;
    assert_eq!(
        (r.type_url.as_str(), r.version_info.as_str()),
        (LISTENER_TYPE, "4")
    );
    c.ack(&r).await;
    c.expect_silence(Duration::from_millis(200)).await;
}
