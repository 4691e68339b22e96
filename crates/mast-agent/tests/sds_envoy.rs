//! Real Envoy reading certificates from the agent's SDS server through the bootstrap's
//! `sds-grpc` cluster (h2 over the Unix socket): a TLS cluster naming `default` and `ROOTCA`
//! gets both (`/config_dump` lists them as `dynamic_active_secrets`, `/certs` shows the
//! workload certificate with its SPIFFE URI), a rotation replaces the certificate in the
//! running Envoy, and with no certificate coming Envoy still goes LIVE.

#![allow(clippy::unwrap_used)]

mod sds_support;

use std::net::SocketAddr;
use std::time::Duration;

use mast_agent::bootstrap::{AdsApi, Bootstrap, NodeSpec};
use mast_agent::envoy::{EnvoyCommand, EnvoyProcess};
use mast_agent::sds::Pending;
use mast_test_support::{free_port, http_get_direct, require_envoy, wait_for_async};
use sds_support::{Sds, TestCa};
use serde_json::{Value, json};

/// An SDS reference to `name` through `sds-grpc`, as mastd writes them (Istio's form).
fn sds(name: &str) -> Value {
    json!({"name": name, "sds_config": {
        "api_config_source": {"api_type": "GRPC", "transport_api_version": "V3",
            "grpc_services": [{"envoy_grpc": {"cluster_name": "sds-grpc"}}],
            "set_node_on_first_message_only": true},
        "initial_fetch_timeout": "0s", "resource_api_version": "V3"}})
}

/// A static cluster whose TLS context takes both secrets by SDS.
fn tls_cluster() -> Value {
    json!({
        "name": "tls_upstream", "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "tls_upstream", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9}}}}]}]},
        "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": {
                "tls_certificate_sds_secret_configs": [sds("default")],
                "combined_validation_context": {
                    "default_validation_context": {},
                    "validation_context_sds_secret_config": sds("ROOTCA")}}}},
    })
}

/// Envoy started on the agent's bootstrap plus [`tls_cluster`], its control plane absent.
async fn start_envoy(sds: &Sds) -> (EnvoyProcess, SocketAddr) {
    let admin = free_port();
    let bootstrap = Bootstrap {
        node: NodeSpec::sidecar("client", "default"),
        admin_port: admin,
        xds: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        api: AdsApi::Sotw,
        initial_fetch_timeout: Duration::from_millis(200),
        sds_socket: Some(sds.socket.clone()),
    };
    let mut config = bootstrap.to_json();
    config["static_resources"]["clusters"]
        .as_array_mut()
        .unwrap()
        .push(tls_cluster());
    let path = sds.dir.join("envoy.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let command = EnvoyCommand {
        binary: require_envoy(),
        config: path,
        log_path: sds.dir.join("envoy.log"),
        stdio_path: sds.dir.join("envoy.stdio.log"),
        concurrency: 1,
        log_level: std::env::var("SDS_TEST_ENVOY_LOG").unwrap_or_else(|_| "info".into()),
        drain_time: Duration::from_secs(1),
    };
    let envoy = command.spawn().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], admin));
    let live = || async move {
        http_get_direct(addr, "/ready", &[])
            .await
            .is_ok_and(|r| r.status == 200)
    };
    let log = || {
        let text = std::fs::read_to_string(sds.dir.join("envoy.log")).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("server.cc:467"))
            .collect();
        lines.join("\n")
    };
    assert!(
        wait_for_async(live, Duration::from_secs(20)).await,
        "Envoy not LIVE:\n{}",
        log()
    );
    (envoy, addr)
}

async fn get_json(addr: SocketAddr, path: &str) -> Value {
    let r = http_get_direct(addr, path, &[]).await.unwrap();
    assert_eq!(r.status, 200, "{path}");
    serde_json::from_slice(&r.body).unwrap()
}

/// The SecretsConfigDump of `/config_dump`.
async fn secrets_dump(addr: SocketAddr) -> Value {
    let dump = get_json(addr, "/config_dump").await;
    dump["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["@type"]
                .as_str()
                .unwrap_or("")
                .ends_with(".SecretsConfigDump")
        })
        .cloned()
        .unwrap_or(Value::Null)
}

fn names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// The serial numbers of the workload certificates `/certs` shows.
async fn cert_serials(addr: SocketAddr) -> Vec<String> {
    let certs = get_json(addr, "/certs").await;
    certs["certificates"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["cert_chain"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["serial_number"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_takes_certificates_by_sds_and_rotates_them() {
    let ca = TestCa::new();
    let sds = Sds::start(Some(ca.bundle("default", "client", 0x1234)), Pending::Wait);
    let (_envoy, admin) = start_envoy(&sds).await;

    let secrets = secrets_dump(admin).await;
    assert_eq!(
        names(&secrets["dynamic_active_secrets"]),
        ["ROOTCA", "default"],
        "{secrets:#}"
    );
    let certs = get_json(admin, "/certs").await.to_string();
    assert!(
        certs.contains("spiffe://cluster.local/ns/default/sa/client"),
        "{certs}"
    );
    assert!(cert_serials(admin).await.iter().any(|s| s == "1234"));

    sds.publish(ca.bundle("default", "client", 0x5678));
    let rotated = || async move { cert_serials(admin).await.iter().any(|s| s == "5678") };
    assert!(
        wait_for_async(rotated, Duration::from_secs(10)).await,
        "the running Envoy did not take the new certificate: {:?}",
        cert_serials(admin).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_certificate_envoy_still_goes_live() {
    let sds = Sds::start(None, Pending::Refuse);
    let (_envoy, admin) = start_envoy(&sds).await;
    let secrets = secrets_dump(admin).await;
    assert!(
        names(&secrets["dynamic_active_secrets"]).is_empty(),
        "{secrets:#}"
    );
}
