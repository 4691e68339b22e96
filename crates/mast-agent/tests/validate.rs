//! Every shape of bootstrap the agent writes is accepted by real Envoy 1.40
//! (`envoy --mode validate`), and the check itself rejects a broken file.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use mast_agent::bootstrap::{AdsApi, Bootstrap, NodeSpec};
use mast_agent::envoy::{EnvoyError, validate};
use mast_model::{CaptureMode, NodeType};
use mast_test_support::{TempDir, require_envoy};

fn sidecar() -> Bootstrap {
    let mut node = NodeSpec::sidecar("reviews-v1", "bookinfo");
    node.labels = BTreeMap::from([
        ("app".into(), "reviews".into()),
        ("version".into(), "v1".into()),
    ]);
    node.service_account = Some("bookinfo-reviews".into());
    Bootstrap {
        node,
        admin_port: 15000,
        xds: "127.0.0.1:15010".parse().unwrap(),
        api: AdsApi::Sotw,
        initial_fetch_timeout: Duration::from_secs(15),
        sds_socket: Some("/tmp/mast-validate/sds.sock".into()),
    }
}

fn check(name: &str, bootstrap: &Bootstrap) {
    let dir = TempDir::new(&format!("mast-validate-{name}")).unwrap();
    let path = bootstrap.write_to(dir.path()).unwrap();
    if let Err(e) = validate(&require_envoy(), &path) {
        panic!("{name}: {e}\n{}", std::fs::read_to_string(&path).unwrap());
    }
}

#[test]
fn iptables_sidecar_bootstrap_validates() {
    check("iptables", &sidecar());
}

#[test]
fn ports_mode_delta_bootstrap_validates() {
    let mut b = sidecar();
    b.node.capture = CaptureMode::Ports {
        outbound: 15101,
        inbound: BTreeMap::from([(9080, 15106), (9090, 15107)]),
    };
    b.api = AdsApi::Delta;
    b.initial_fetch_timeout = Duration::ZERO;
    check("ports-delta", &b);
}

#[test]
fn gateway_with_dns_control_plane_validates() {
    let mut b = sidecar();
    b.node = NodeSpec::sidecar("istio-ingressgateway", "istio-system");
    b.node.node_type = NodeType::Router;
    b.node.labels = BTreeMap::from([("istio".into(), "ingressgateway".into())]);
    b.xds = "localhost:15010".parse().unwrap();
    b.admin_port = 0;
    check("router-dns", &b);
}

#[test]
fn odd_label_values_survive_yaml() {
    let mut b = sidecar();
    b.node.labels = BTreeMap::from([
        ("version".into(), "1.10".into()),
        ("quoted".into(), "a: \"b\" # c".into()),
        ("empty".into(), String::new()),
        ("yes".into(), "true".into()),
    ]);
    check("odd-labels", &b);
}

#[test]
fn validation_rejects_a_broken_bootstrap() {
    let dir = TempDir::new("mast-validate-broken").unwrap();
    let path = dir.join("bad.yaml");
    std::fs::write(
        &path,
        "static_resources:\n  clusters:\n  - name: x\n    type: NOT_A_TYPE\n",
    )
    .unwrap();
    let err = validate(&require_envoy(), &path).unwrap_err();
    assert!(matches!(err, EnvoyError::Invalid { .. }), "{err}");
}
