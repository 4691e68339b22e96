//! `mastctl up examples/canary` gives every sidecar the workload's certificate: mastd runs
//! its CA in the run folder and writes a token per LocalWorkload, each sidecar gets its
//! token, and `mastctl proxy-config secret <workload>` shows `default` (VALID CERT true) and
//! `ROOTCA` for each; the generated WorkloadEntries carry `security.istio.io/tlsMode: istio`
//! and the workload's service account; on Envoy, a request from `client` to `nginx-svc-1`
//! goes over TLS (the client sidecar's cluster counts a handshake). On mast-proxy sidecars,
//! then on Envoy when found (one after the other: the example's programs listen on fixed
//! ports).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::time::Duration;

use mast_test_support::wait_for;
use up_support::{Dir, Proxy, Up, admin_stat};

/// One request from inside `client` (its sidecar is HTTP_PROXY).
const GET: &str = "import urllib.request; print(urllib.request.urlopen('http://nginx-svc-1/', timeout=5).read().decode().strip())";

const WORKLOADS: [&str; 4] = ["client", "nginx-1", "nginx-2", "nginx-3"];

fn copy_example(dir: &Dir) {
    let example = mast_test_support::workspace_root().join("examples/canary");
    for entry in std::fs::read_dir(&example).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            dir.write(&name, &std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// The words of the table row of secret `name`.
fn row(table: &str, name: &str) -> Vec<String> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn has_valid_certificate(table: &str) -> bool {
    let default = row(table, "default");
    let root = row(table, "ROOTCA");
    default
        .get(1..5)
        .is_some_and(|c| c == ["Cert", "Chain", "ACTIVE", "true"])
        && root
            .get(1..4)
            .is_some_and(|c| c == ["CA", "ACTIVE", "true"])
}

fn every_sidecar_has_a_certificate(proxy: &Proxy) {
    let Some(dir) = Dir::for_up("secret") else {
        return;
    };
    copy_example(&dir);
    let mut up = Up::start_on(&dir, proxy, &[]);
    up.wait_ready();
    for name in WORKLOADS {
        let proxy_name = format!("{name}.default");
        let mut table = String::new();
        let ok = wait_for(
            || {
                table = up.mastctl(&["proxy-config", "secret", &proxy_name]);
                has_valid_certificate(&table)
            },
            Duration::from_secs(20),
        );
        assert!(
            ok,
            "{} sidecar of {name}: no valid certificate:\n{table}\n--- stderr\n{}",
            proxy.name(),
            up.stderr()
        );
    }
    let generated = std::path::PathBuf::from(up.state()["generated"].as_str().unwrap());
    let entry = std::fs::read_to_string(generated.join("default.nginx-1.yaml")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(entry.split_once('\n').unwrap().1).unwrap();
    assert_eq!(doc["spec"]["labels"]["security.istio.io/tlsMode"], "istio");
    assert_eq!(doc["spec"]["serviceAccount"], "nginx");
    if let Proxy::Envoy(_) = proxy {
        let answer = up.exec("client", &["python3", "-c", GET]);
        assert_eq!(answer.trim(), "hello nginx-1", "{}", up.stderr());
        let admin = up.workload("client")["admin"].as_u64().unwrap() as u16;
        let handshakes = admin_stat(admin, &["outbound|80||nginx-svc-1.", "ssl.handshake"]);
        assert!(handshakes > 0, "the request to nginx-svc-1 did not use TLS");
    }
    assert_eq!(up.interrupt(), Some(0), "{}", up.stderr());
}

#[test]
fn canary_sidecars_get_certificates() {
    every_sidecar_has_a_certificate(&Proxy::Mast);
    if let Some(envoy) = Proxy::envoy() {
        every_sidecar_has_a_certificate(&envoy);
    }
}
