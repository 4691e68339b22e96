//! mast-proxy as an injected pod starts it: no flags, everything from the environment the
//! injector writes — xDS and the CA over TLS (`https://`, verified against the mesh root),
//! a CA token, `ISTIO_KUBE_APP_PROBERS` — and the status port answering the application's
//! rewritten probes (`/app-health/app/readyz`: 200 while the application answers, its
//! status when it fails, 500 once it is gone).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mast_test_support::{
    Behaviour, EchoServer, MastdOptions, MastdProcess, ProcessGuard, TempDir, cargo_bin, free_port,
    http_get_direct,
};
use serde_json::Value;

const MESH: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n  namespace: default\nspec:\n  selector:\n    app: reviews\n  ports:\n  - name: http\n    port: 9080\n";

async fn mastd_with_tls(dir: &TempDir) -> (MastdProcess, u16) {
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("mesh.yaml"), MESH).unwrap();
    let mut options = MastdOptions::new(&config).unwrap();
    let tls_port = free_port();
    options
        .extra_args
        .extend(["--xds-tls-addr".to_owned(), format!("127.0.0.1:{tls_port}")]);
    (MastdProcess::start(&options).await.unwrap(), tls_port)
}

/// The sidecar's environment, as the injector writes it (with ports mode and free ports,
/// since the test runs beside others on one host).
fn pod_env(
    dir: &Path,
    tls_port: u16,
    root: &Path,
    token: &Path,
    probers: &str,
) -> Vec<(String, String)> {
    let xds = format!("https://localhost:{tls_port}");
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
        ("MAST_HEALTH_PORT", "0"),
        ("MAST_STATUS_PORT", "0"),
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
    let binary = cargo_bin("mast-proxy").expect("mast-proxy is built");
    let log = std::fs::File::create(dir.join("proxy.log")).unwrap();
    let mut command = Command::new(binary);
    command
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    ProcessGuard::spawn(&mut command).unwrap()
}

/// Waits (bounded) for the ports file; panics with the log when the proxy exits or times out.
fn wait_ports(guard: &mut ProcessGuard, dir: &Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(dir.join("ports.json")).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            return v;
        }
        let log = || std::fs::read_to_string(dir.join("proxy.log")).unwrap_or_default();
        if let Ok(Some(status)) = guard.try_wait() {
            panic!("mast-proxy exited ({status}):\n{}", log());
        }
        assert!(Instant::now() < deadline, "not ready in 30 s:\n{}", log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn port(ports: &Value, key: &str) -> std::net::SocketAddr {
    let p = ports[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {ports}"));
    std::net::SocketAddr::from(([127, 0, 0, 1], u16::try_from(p).unwrap()))
}

/// Runs the sidecar until it exits (it must, within 10 s); its exit success and log.
fn run_to_exit(dir: &Path, env: &[(String, String)]) -> (bool, String) {
    let mut guard = spawn(dir, env);
    let status = guard
        .wait_timeout(Duration::from_secs(10))
        .unwrap()
        .expect("mast-proxy should refuse to start");
    (
        status.success(),
        std::fs::read_to_string(dir.join("proxy.log")).unwrap(),
    )
}

/// The workload certificate's chain and roots in the config dump's secrets, once there.
async fn secrets(admin: std::net::SocketAddr) -> Option<(String, String)> {
    use base64::Engine as _;
    let text = http_get_direct(admin, "/config_dump", &[])
        .await
        .ok()?
        .text();
    let dump: Value = serde_json::from_str(&text).ok()?;
    let configs = dump["configs"].as_array()?;
    let secrets = configs
        .iter()
        .find_map(|c| c["dynamic_active_secrets"].as_array())?;
    let inline = |name: &str, pointer: &str| {
        let s = secrets.iter().find(|s| s["name"] == name)?;
        let b64 = s["secret"].pointer(pointer)?.as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        String::from_utf8(bytes).ok()
    };
    Some((
        inline("default", "/tls_certificate/certificate_chain/inline_bytes")?,
        inline("ROOTCA", "/validation_context/trusted_ca/inline_bytes")?,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_sidecar_over_tls_answers_app_probes() {
    let dir = TempDir::new("mast-proxy-status").unwrap();
    let (mastd, tls_port) = mastd_with_tls(&dir).await;
    let root: PathBuf = mastd.options().ca_dir().join("root-cert.pem");
    let token = mastd.token_file("default", "app").unwrap();
    let app = EchoServer::start("app").unwrap();
    let probers = format!(
        r#"{{"/app-health/app/readyz": {{"httpGet": {{"path": "/", "port": {p}, "scheme": "HTTP"}}, "timeoutSeconds": 1}},
            "/app-health/app/livez": {{"tcpSocket": {{"port": {p}}}}}}}"#,
        p = app.port()
    );
    let env = pod_env(dir.path(), tls_port, &root, &token, &probers);
    let mut guard = spawn(dir.path(), &env);
    let ports = tokio::task::block_in_place(|| wait_ports(&mut guard, dir.path()));
    let (admin, status) = (port(&ports, "admin"), port(&ports, "status"));

    // Configuration from mastd over TLS.
    let dump = http_get_direct(admin, "/config_dump", &[])
        .await
        .unwrap()
        .text();
    assert!(
        dump.contains("outbound|9080||reviews.default.svc.cluster.local"),
        "clusters from mastd over TLS"
    );
    // The workload certificate from the CA over TLS.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (chain, roots) = loop {
        if let Some(found) = secrets(admin).await {
            break found;
        }
        assert!(Instant::now() < deadline, "no workload certificate in 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(roots, std::fs::read_to_string(&root).unwrap());
    let (_, pem) = x509_parser::pem::parse_x509_pem(chain.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap().value;
    assert!(
        format!("{:?}", san.general_names).contains("spiffe://cluster.local/ns/default/sa/app"),
        "{san:?}"
    );

    // The status port: health, metrics, the application's probes.
    let get = |path: &'static str| async move {
        let r = http_get_direct(status, path, &[]).await.unwrap();
        (r.status, r.text())
    };
    assert_eq!(get("/healthz/ready").await.0, 200);
    let (code, metrics) = get("/stats/prometheus").await;
    assert_eq!(code, 200);
    assert!(metrics.contains("istio_build"), "{metrics}");
    assert_eq!(get("/app-health/app/readyz").await.0, 200);
    assert_eq!(get("/app-health/app/livez").await.0, 200);
    assert_eq!(get("/app-health/other/readyz").await.0, 400);
    assert_eq!(get("/nothing").await.0, 404);
    app.set_behaviour(Behaviour::default().status(503));
    assert_eq!(
        get("/app-health/app/readyz").await.0,
        503,
        "the app's status"
    );
    drop(app);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(get("/app-health/app/readyz").await.0, 500, "app gone");
    assert_eq!(get("/app-health/app/livez").await.0, 500, "app gone (tcp)");
    drop(guard);
    drop(mastd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pod_environment_is_a_startup_error() {
    let dir = TempDir::new("mast-proxy-status-bad").unwrap();
    let absent = dir.join("absent-root.pem");
    let token = dir.join("token");
    let env = pod_env(dir.path(), 1, &absent, &token, "");
    let (ok, log) = tokio::task::block_in_place(|| run_to_exit(dir.path(), &env));
    assert!(!ok && log.contains(&absent.display().to_string()), "{log}");
    let root = dir.join("root.pem");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(&root, cert.cert.pem()).unwrap();
    let env = pod_env(
        dir.path(),
        1,
        &root,
        &token,
        r#"{"/app-health/app/readyz": {"exec": {}}}"#,
    );
    let (ok, log) = tokio::task::block_in_place(|| run_to_exit(dir.path(), &env));
    assert!(!ok && log.contains("ISTIO_KUBE_APP_PROBERS"), "{log}");
}
