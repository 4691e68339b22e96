//! `mastctl proxy-config secret` on a real sidecar that got its certificate from mastd's CA:
//! Envoy run by mast-agent (SDS over the agent's socket) and mast-proxy (in-process), each
//! started with a CA token mastd issued for `default/client`. The sidecar's `/config_dump`
//! lists `default` and `ROOTCA` as active secrets, Envoy's `/certs` shows the SPIFFE URI, and
//! the table shows both with VALID CERT true. Needs `cargo build -p mastd -p mast-agent
//! -p mast-proxy`; the Envoy run is skipped when Envoy is not found.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use mast_test_support::{
    MastdOptions, MastdProcess, ProxyKind, ProxyOptions, ProxyProcess, TempDir, envoy_binary,
    http_get_direct, wait_for_async,
};
use serde_json::Value;

const MASTCTL: &str = env!("CARGO_BIN_EXE_mastctl");

/// A Service selecting the client, so its sidecar has an inbound listener (whose TLS chain
/// takes the certificate by SDS).
const CONFIG: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: client, namespace: default}\nspec:\n  selector: {app: client}\n  ports: [{name: http, port: 9080}]\n";

async fn active_secrets(admin: SocketAddr) -> Vec<String> {
    let Ok(r) = http_get_direct(admin, "/config_dump", &[]).await else {
        return Vec::new();
    };
    let dump: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let mut names: Vec<String> = dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| {
            c["@type"]
                .as_str()
                .is_some_and(|t| t.ends_with(".SecretsConfigDump"))
        })
        .flat_map(|c| {
            c["dynamic_active_secrets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|s| s["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

fn secret_table(admin: SocketAddr, json: bool) -> String {
    let mut cmd = Command::new(MASTCTL);
    cmd.args(["proxy-config", "secret", "--admin", &admin.to_string()]);
    if json {
        cmd.args(["-o", "json"]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn sidecar_gets_its_certificate(kind: ProxyKind) {
    let dir = TempDir::new("mast-pc-secret").unwrap();
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("svc.yaml"), CONFIG).unwrap();
    let mastd = MastdProcess::start(&MastdOptions::new(&config).unwrap())
        .await
        .unwrap();
    let token = mastd.token_file("default", "client").unwrap();
    let options = ProxyOptions::new(kind, mastd.xds_addr())
        .label("app", "client")
        .inbound(9080, 0)
        .args(["--service-account", "client"])
        .ca_token_file(token);
    let proxy = tokio::task::spawn_blocking(move || ProxyProcess::start(options))
        .await
        .unwrap()
        .unwrap();
    let admin = proxy.admin_addr();
    let both = || async move { active_secrets(admin).await == ["ROOTCA", "default"] };
    assert!(
        wait_for_async(both, Duration::from_secs(20)).await,
        "{kind}: active secrets {:?}\n{}",
        active_secrets(admin).await,
        proxy.log_tail()
    );

    let table = secret_table(admin, false);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("RESOURCE NAME"), "{table}");
    let row = |name: &str| {
        lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(
        row("default")[1..5],
        ["Cert", "Chain", "ACTIVE", "true"],
        "{table}"
    );
    assert_eq!(row("ROOTCA")[1..4], ["CA", "ACTIVE", "true"], "{table}");
    let root = mastd.root_cert_pem().unwrap();
    assert!(root.contains("BEGIN CERTIFICATE"));
    let json: Value = serde_json::from_str(&secret_table(admin, true)).unwrap();
    assert_eq!(json["dynamic_active_secrets"].as_array().unwrap().len(), 2);

    if kind == ProxyKind::Envoy {
        let certs = http_get_direct(admin, "/certs", &[]).await.unwrap();
        let certs = String::from_utf8_lossy(&certs.body);
        assert!(
            certs.contains("spiffe://cluster.local/ns/default/sa/client"),
            "{certs}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_sidecar_shows_its_certificate() {
    if envoy_binary().is_none() {
        eprintln!("Envoy not found: skipped");
        return;
    }
    sidecar_gets_its_certificate(ProxyKind::Envoy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mast_proxy_sidecar_shows_its_certificate() {
    sidecar_gets_its_certificate(ProxyKind::Mast).await;
}
