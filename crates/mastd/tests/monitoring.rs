//! mastd as a process: it serves a folder with a broken file and an invalid resource in it,
//! reports both on `/debug/configz` (file:line, resource, field) and in `/metrics`, answers
//! `/version`, and exits cleanly on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use mast_test_support::{HttpRequest, ProcessGuard, TempDir, cargo_bin, free_port, wait_for};

const GOOD: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\nspec:\n  selector: {app: reviews}\n  ports:\n  - name: http\n    port: 9080\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n";
const INVALID: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: bad\nspec:\n  hosts: [ratings]\n  http:\n  - route:\n    - destination: {host: ratings}\n      weight: -3\n";

fn get(addr: &str, path: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    match rt.block_on(
        HttpRequest::get(&format!("http://{addr}{path}"))
            .timeout(Duration::from_secs(3))
            .direct(addr),
    ) {
        Ok(r) => (r.status, r.text()),
        Err(_) => (0, String::new()),
    }
}

#[test]
fn serves_reports_rejections_and_stops_on_sigterm() {
    let dir = TempDir::new("mastd-monitoring").unwrap();
    std::fs::write(dir.join("good.yaml"), GOOD).unwrap();
    std::fs::write(dir.join("invalid.yaml"), INVALID).unwrap();
    std::fs::write(dir.join("broken.yaml"), "kind: [\n").unwrap();
    let (xds, mon) = (free_port(), free_port());
    let monitoring = format!("127.0.0.1:{mon}");
    let bin = cargo_bin("mastd").expect("mastd is built (cargo build --workspace --bins)");
    let mut mastd = ProcessGuard::spawn(Command::new(bin).args([
        "--config-dir",
        dir.path().to_str().unwrap(),
        "--xds-addr",
        &format!("127.0.0.1:{xds}"),
        "--monitoring-addr",
        &monitoring,
    ]))
    .unwrap();
    assert!(
        wait_for(
            || get(&monitoring, "/version").0 == 200,
            Duration::from_secs(10)
        ),
        "mastd did not start"
    );

    let (_, version) = get(&monitoring, "/version");
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");

    let (status, configz) = get(&monitoring, "/debug/configz");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&configz).unwrap();
    assert_eq!(v["rejected"], 2, "{v:#}");
    let texts: Vec<&str> = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["text"].as_str())
        .collect();
    assert!(texts.iter().any(|t| t.contains("invalid.yaml:10: VirtualService default/bad: spec.http[0].route[0].weight: weight -3 must not be negative")), "{texts:#?}");
    assert!(
        texts
            .iter()
            .any(|t| t.contains("broken.yaml:") && t.contains("YAML syntax error")),
        "{texts:#?}"
    );
    let served: Vec<&str> = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(served, ["reviews", "reviews"], "the good file is served");

    let (_, metrics) = get(&monitoring, "/metrics");
    assert!(metrics.contains("mast_config_rejected 2"), "{metrics}");
    assert!(metrics.contains("mast_services 1"), "{metrics}");
    assert!(metrics.contains("pilot_xds"), "{metrics}");

    mastd.signal("TERM").unwrap();
    let exit = mastd
        .wait_timeout(Duration::from_secs(10))
        .unwrap()
        .expect("mastd exits after SIGTERM");
    assert!(exit.success(), "{exit:?}");
}
