//! mast-agent (Envoy) as an injected pod starts it: no flags, everything from the
//! environment the injector writes — xDS over TLS (Envoy's `xds_cluster` verifies mastd
//! against the mesh root), the CA over TLS, `ISTIO_KUBE_APP_PROBERS` — and the agent port
//! answering the application's rewritten probes. Also the bootstrap's TLS transport socket
//! for `https://` addresses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mast_agent::{Bootstrap, XdsAddress};
use mast_test_support::{
    Behaviour, EchoServer, MastdOptions, MastdProcess, ProcessGuard, TempDir, cargo_bin, free_port,
    http_get_direct,
};
use serde_json::{Value, json};

const MESH: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n  namespace: default\nspec:\n  selector:\n    app: reviews\n  ports:\n  - name: http\n    port: 9080\n";

fn sidecar(xds: &str) -> Bootstrap {
    Bootstrap {
        node: mast_agent::NodeSpec::sidecar("app", "default"),
        admin_port: 15000,
        xds: xds.parse().unwrap(),
        api: mast_agent::AdsApi::Sotw,
        initial_fetch_timeout: Duration::from_secs(1),
        sds_socket: None,
    }
}

#[test]
fn https_xds_address_gets_a_verified_tls_socket() {
    let mut b = sidecar("127.0.0.1:15010");
    b.xds = "https://mastd.mast-system.svc:15012".parse().unwrap();
    assert!(b.xds.tls);
    assert_eq!(
        (b.xds.host.as_str(), b.xds.port),
        ("mastd.mast-system.svc", 15012)
    );
    b.xds.root_cert = Some("/var/run/secrets/istio/root-cert.pem".into());
    let j = b.to_json();
    let socket = &j["static_resources"]["clusters"][0]["transport_socket"];
    assert_eq!(socket["name"], "envoy.transport_sockets.tls");
    let tls = &socket["typed_config"];
    assert_eq!(
        tls["@type"],
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
    );
    assert_eq!(tls["sni"], "mastd.mast-system.svc");
    let common = &tls["common_tls_context"];
    assert_eq!(common["alpn_protocols"], json!(["h2"]));
    let validation = &common["validation_context"];
    assert_eq!(
        validation["trusted_ca"]["filename"],
        "/var/run/secrets/istio/root-cert.pem"
    );
    assert_eq!(
        validation["match_typed_subject_alt_names"],
        json!([{"san_type": "DNS", "matcher": {"exact": "mastd.mast-system.svc"}}])
    );
    b.xds = "https://10.0.0.7:15012".parse().unwrap();
    let j = b.to_json();
    let tls = &j["static_resources"]["clusters"][0]["transport_socket"]["typed_config"];
    assert!(tls.get("sni").is_none(), "no SNI for an IP");
    assert_eq!(
        tls["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"][0]["san_type"],
        "IP_ADDRESS"
    );
    for plain in ["http://127.0.0.1:15010", "127.0.0.1:15010"] {
        b.xds = plain.parse().unwrap();
        assert!(!b.xds.tls);
        let j = b.to_json();
        assert!(
            j["static_resources"]["clusters"][0]
                .get("transport_socket")
                .is_none()
        );
    }
    assert!("ftp://a:1".parse::<XdsAddress>().is_err());
}

/// The sidecar's environment, as the injector writes it (ports mode and free ports, since
/// the test shares the host).
fn pod_env(
    dir: &Path,
    tls_port: u16,
    root: &Path,
    token: &Path,
    probers: &str,
) -> Vec<(String, String)> {
    let xds = format!("https://localhost:{tls_port}");
    let envoy = mast_test_support::require_envoy();
    [
        ("MAST_XDS_ADDRESS", xds.as_str()),
        ("MAST_CA_ADDRESS", xds.as_str()),
        ("MAST_XDS_ROOT_CERT", &root.display().to_string()),
        ("MAST_CA_ROOT_CERT", &root.display().to_string()),
        ("MAST_CA_TOKEN_FILE", &token.display().to_string()),
        ("MAST_WORKLOAD", "app"),
        ("MAST_NAMESPACE", "default"),
        ("MAST_SERVICE_ACCOUNT", "app"),
        ("MAST_CAPTURE_MODE", "ports"),
        ("MAST_ADMIN_PORT", "0"),
        ("MAST_METRICS_PORT", "0"),
        ("MAST_ENVOY", &envoy.display().to_string()),
        ("MAST_WORK_DIR", &dir.join("work").display().to_string()),
        (
            "MAST_PORTS_FILE",
            &dir.join("ports.json").display().to_string(),
        ),
        ("ISTIO_KUBE_APP_PROBERS", probers),
        ("NO_COLOR", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn spawn(dir: &Path, env: &[(String, String)]) -> ProcessGuard {
    let binary = cargo_bin("mast-agent").expect("mast-agent is built");
    let log = std::fs::File::create(dir.join("agent.log")).unwrap();
    let mut command = Command::new(binary);
    command
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    ProcessGuard::spawn(&mut command).unwrap()
}

fn logs(dir: &Path) -> String {
    let agent = std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
    let envoy = std::fs::read_to_string(dir.join("work/envoy.log")).unwrap_or_default();
    let tail: Vec<&str> = envoy.lines().rev().take(30).collect();
    format!(
        "{agent}\n--- envoy.log (last lines, newest first)\n{}",
        tail.join("\n")
    )
}

/// Waits (bounded) for the ports file; panics with the logs when the agent exits or times out.
fn wait_ports(guard: &mut ProcessGuard, dir: &Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let text = std::fs::read_to_string(dir.join("ports.json")).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            return v;
        }
        if let Ok(Some(status)) = guard.try_wait() {
            panic!("mast-agent exited ({status}):\n{}", logs(dir));
        }
        assert!(
            Instant::now() < deadline,
            "not ready in 40 s:\n{}",
            logs(dir)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn addr(ports: &Value, key: &str) -> std::net::SocketAddr {
    let p = ports[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {ports}"));
    std::net::SocketAddr::from(([127, 0, 0, 1], u16::try_from(p).unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_envoy_sidecar_over_tls_answers_app_probes() {
    let dir = TempDir::new("mast-agent-status").unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("mesh.yaml"), MESH).unwrap();
    let mut options = MastdOptions::new(&config).unwrap();
    let tls_port = free_port();
    options
        .extra_args
        .extend(["--xds-tls-addr".to_owned(), format!("127.0.0.1:{tls_port}")]);
    let mastd = MastdProcess::start(&options).await.unwrap();
    let root: PathBuf = options.ca_dir().join("root-cert.pem");
    let token = mastd.token_file("default", "app").unwrap();
    let app = EchoServer::start("app").unwrap();
    let probers = format!(
        r#"{{"/app-health/app/readyz": {{"httpGet": {{"path": "/", "port": {p}}}, "timeoutSeconds": 1}},
            "/app-health/app/livez": {{"tcpSocket": {{"port": {p}}}}}}}"#,
        p = app.port()
    );
    let env = pod_env(dir.path(), tls_port, &root, &token, &probers);
    let mut guard = spawn(dir.path(), &env);
    let ports = tokio::task::block_in_place(|| wait_ports(&mut guard, dir.path()));
    let (admin, status) = (addr(&ports, "admin"), addr(&ports, "prometheus"));
    let bootstrap = std::fs::read_to_string(dir.join("work/bootstrap.yaml")).unwrap();
    assert!(bootstrap.contains("UpstreamTlsContext"), "{bootstrap}");

    // Envoy got its clusters from mastd over TLS, and the workload certificate came from
    // the CA over TLS (Envoy's /certs lists it with its SPIFFE identity).
    let dump = http_get_direct(admin, "/config_dump", &[])
        .await
        .unwrap()
        .text();
    assert!(
        dump.contains("outbound|9080||reviews.default.svc.cluster.local"),
        "clusters over TLS:\n{}",
        logs(dir.path())
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let certs = http_get_direct(admin, "/certs", &[]).await.unwrap().text();
        if certs.contains("spiffe://cluster.local/ns/default/sa/app") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no workload certificate: {certs}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let get = |path: &'static str| async move {
        http_get_direct(status, path, &[]).await.unwrap().status
    };
    assert_eq!(get("/healthz/ready").await, 200);
    assert_eq!(get("/stats/prometheus").await, 200);
    assert_eq!(get("/app-health/app/readyz").await, 200);
    assert_eq!(get("/app-health/app/livez").await, 200);
    assert_eq!(get("/app-health/other/readyz").await, 400);
    assert_eq!(get("/nothing").await, 404);
    app.set_behaviour(Behaviour::default().status(503));
    assert_eq!(get("/app-health/app/readyz").await, 503, "the app's status");
    drop(app);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(get("/app-health/app/readyz").await, 500, "app gone");
    assert_eq!(get("/app-health/app/livez").await, 500, "app gone (tcp)");
    drop(guard);
    drop(mastd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pod_environment_is_a_startup_error() {
    let dir = TempDir::new("mast-agent-status-bad").unwrap();
    let run = |env: Vec<(String, String)>| {
        let mut guard = spawn(dir.path(), &env);
        let status = guard
            .wait_timeout(Duration::from_secs(10))
            .unwrap()
            .expect("mast-agent should refuse to start");
        (status.success(), logs(dir.path()))
    };
    let absent = dir.join("absent-root.pem");
    let token = dir.join("token");
    let (ok, log) = run(pod_env(dir.path(), 1, &absent, &token, ""));
    assert!(!ok && log.contains(&absent.display().to_string()), "{log}");
    let root = dir.join("root.pem");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(&root, cert.cert.pem()).unwrap();
    let bad = r#"{"/app-health/app/readyz": {"exec": {}}}"#;
    let (ok, log) = run(pod_env(dir.path(), 1, &root, &token, bad));
    assert!(!ok && log.contains("ISTIO_KUBE_APP_PROBERS"), "{log}");
}
