//! Tracing end to end: a real mastd started with `--trace-sampling 100` (and `--trace-otlp`
//! for the OpenTelemetry side) configures a client sidecar and a server sidecar; one request
//! from the client through both sidecars to an echo app must show up in mastd's own span
//! collector (the dashboard listener, `GET /api/traces`) as one trace with a CLIENT span from
//! `client.default` and a SERVER span from `echo.default`, the server span a child of the
//! client span, and the app must have received the trace context.
//!
//! Both proxies: real Envoy (bootstrapped by mast-agent) and mast-proxy. The mast-proxy side
//! is skipped with a printed reason while mast-proxy has no tracing (`crates/mast-proxy/src/
//! trace` absent).
//!
//! Every port is free at run time, every wait is bounded, every process is killed at the end
//! (process groups, plus reapers should the test process die).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mast_e2e::reaper::Reaper;
use mast_e2e::{Proxy, yaml};
use mast_test_support::{
    EchoServer, HttpRequest, ProcessGuard, ProxyOptions, ProxyProcess, TempDir, cargo_bin,
    free_port, http_get_direct,
};
use serde_json::Value;

/// How long a sidecar may take to start and a request to first succeed.
const START_TIMEOUT: Duration = Duration::from_secs(40);
/// How long spans may take to reach the collector (Envoy's Zipkin tracer flushes every 5 s).
const SPAN_TIMEOUT: Duration = Duration::from_secs(25);

/// Which collector mastd tells the proxies about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Collector {
    /// The default: Zipkin v2 JSON to mastd's own collector.
    OwnZipkin,
    /// `--trace-otlp <dashboard address>`: OTLP/HTTP to the same collector.
    Otlp,
}

/// mastd on a temporary config folder, with its dashboard (and span collector) on a free port.
struct TracedMastd {
    root: TempDir,
    guard: ProcessGuard,
    _reaper: Reaper,
    xds: SocketAddr,
    monitoring: SocketAddr,
    dashboard: SocketAddr,
    binary: PathBuf,
}

impl TracedMastd {
    async fn start(collector: Collector) -> anyhow::Result<Self> {
        let binary = cargo_bin("mastd").context("mastd is not built (cargo build -p mastd)")?;
        let root = TempDir::new("mast-e2e-tracing")?;
        std::fs::create_dir_all(root.join("config"))?;
        let [xds, monitoring, dashboard] =
            [free_port(), free_port(), free_port()].map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
        let log = std::fs::File::create(root.join("mastd.log"))?;
        let mut command = Command::new(&binary);
        command
            .arg("--config-dir")
            .arg(root.join("config"))
            .args(["--xds-addr", &xds.to_string()])
            .args(["--monitoring-addr", &monitoring.to_string()])
            .arg("--ca-dir")
            .arg(root.join("ca"))
            .args(["--dashboard-addr", &dashboard.to_string()])
            .args(["--trace-sampling", "100"])
            .env("MAST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if collector == Collector::Otlp {
            command.args(["--trace-otlp", &dashboard.to_string()]);
        }
        let guard = ProcessGuard::spawn(&mut command)?;
        let reaper = Reaper::watch_and_remove(guard.pid(), &[root.path().to_path_buf()])?;
        let mut mastd = Self {
            root,
            guard,
            _reaper: reaper,
            xds,
            monitoring,
            dashboard,
            binary,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while http_get_direct(mastd.dashboard, "/api/traces", &[])
            .await
            .map_or(true, |r| r.status != 200)
        {
            if let Some(status) = mastd.guard.try_wait()? {
                bail!("mastd exited ({status}):\n{}", mastd.log());
            }
            if Instant::now() >= deadline {
                bail!("mastd's collector did not answer in 20 s:\n{}", mastd.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(mastd)
    }

    /// A CA token file for `default/<sa>`, issued with this mastd's CA key.
    fn token(&self, sa: &str) -> anyhow::Result<PathBuf> {
        let out = Command::new(&self.binary)
            .arg("token")
            .arg("--ca-dir")
            .arg(self.root.join("ca"))
            .args(["--namespace", yaml::NAMESPACE, "--service-account", sa])
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            bail!("mastd token: {}", String::from_utf8_lossy(&out.stderr));
        }
        let path = self.root.join(&format!("{sa}.token"));
        std::fs::write(&path, out.stdout.trim_ascii())?;
        Ok(path)
    }

    fn write(&self, name: &str, text: &str) -> anyhow::Result<()> {
        mast_e2e::write_atomic(&self.root.join("config").join(name), text)
    }

    async fn collector_json(&self, path: &str) -> anyhow::Result<Value> {
        let r = http_get_direct(self.dashboard, path, &[]).await?;
        if r.status != 200 {
            bail!(
                "GET {path}: {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
        }
        Ok(serde_json::from_slice(&r.body)?)
    }

    async fn syncz(&self) -> String {
        match http_get_direct(self.monitoring, "/debug/syncz", &[]).await {
            Ok(r) => String::from_utf8_lossy(&r.body).into_owned(),
            Err(e) => format!("syncz: {e}"),
        }
    }

    fn log(&self) -> String {
        mast_e2e::mastd::tail(&self.root.join("mastd.log"), 40)
    }
}

/// A sidecar of workload `name` (service account `name`), killed when dropped.
struct Sidecar {
    process: ProxyProcess,
    _reaper: Reaper,
}

impl Sidecar {
    async fn start(
        mastd: &TracedMastd,
        kind: Proxy,
        name: &str,
        app_port: Option<u16>,
    ) -> anyhow::Result<Self> {
        let mut options = ProxyOptions::new(kind, mastd.xds)
            .workload(name, yaml::NAMESPACE)
            .label("app", name)
            .args(["--service-account", name])
            .ca_token_file(mastd.token(name)?)
            .timeout(START_TIMEOUT);
        if let Some(port) = app_port {
            options = options.inbound(port, 0);
        }
        if kind == Proxy::Envoy {
            options = options.args(["--drain-duration", "0s"]);
        }
        let mut process = tokio::task::spawn_blocking(move || ProxyProcess::start(options))
            .await?
            .with_context(|| format!("starting {name}'s sidecar"))?;
        let reaper =
            Reaper::watch_and_remove(process.guard_mut().pid(), &[process.dir().to_path_buf()])?;
        Ok(Self {
            process,
            _reaper: reaper,
        })
    }

    fn log(&self) -> String {
        format!("{}\n{}", self.process.log_tail(), self.process.problems(40))
    }
}

/// The WorkloadEntry making `server`'s inbound listener the endpoint of service `echo`, as an
/// injected pod (mutual TLS between the sidecars).
fn echo_entry(server: &Sidecar, app_port: u16) -> String {
    let port = server
        .process
        .inbound_addr(app_port)
        .map(|a| a.port())
        .unwrap_or_default();
    format!(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: echo\n  \
         namespace: {ns}\nspec:\n  address: 127.0.0.1\n  serviceAccount: echo\n  labels:\n    \
         app: echo\n    security.istio.io/tlsMode: istio\n  ports:\n    http: {port}\n",
        ns = yaml::NAMESPACE
    )
}

/// Whether mast-proxy has tracing in this checkout.
fn mast_proxy_traces() -> bool {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../crates/mast-proxy/src/trace")
        .is_dir()
}

/// Sends `GET http://echo/` through the client's sidecar until one answers 200.
async fn first_ok(client: &Sidecar) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut last = String::new();
    while Instant::now() < deadline {
        match HttpRequest::get("http://echo/")
            .timeout(Duration::from_secs(5))
            .via_proxy(client.process.outbound_addr())
            .await
        {
            Ok(r) if r.status == 200 => return Ok(()),
            Ok(r) => last = format!("status {}", r.status),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("no 200 from http://echo/ through the client sidecar in {START_TIMEOUT:?}: {last}")
}

/// Polls the collector until a trace holds a span from both sidecars; returns its spans.
async fn wait_trace(mastd: &TracedMastd) -> anyhow::Result<(String, Vec<Value>)> {
    let deadline = Instant::now() + SPAN_TIMEOUT;
    let mut seen = Value::Null;
    while Instant::now() < deadline {
        let list = mastd
            .collector_json("/api/traces?service=client.default&limit=50")
            .await?;
        for t in list.as_array().into_iter().flatten() {
            let services = t["services"].as_array().cloned().unwrap_or_default();
            if services.iter().any(|s| s == "echo.default") {
                let id = t["traceId"].as_str().unwrap_or_default().to_owned();
                let detail = mastd.collector_json(&format!("/api/traces/{id}")).await?;
                let spans = detail["spans"].as_array().cloned().unwrap_or_default();
                return Ok((id, spans));
            }
        }
        seen = list;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("no trace with spans from both sidecars in {SPAN_TIMEOUT:?}; traces: {seen}")
}

async fn trace_through_two_sidecars(proxy: Proxy, collector: Collector) {
    if proxy == Proxy::Mast && !mast_proxy_traces() {
        eprintln!(
            "SKIPPED mast-proxy {collector:?}: mast-proxy has no tracing yet (crates/mast-proxy/src/trace)"
        );
        return;
    }
    let mastd = TracedMastd::start(collector).await.expect("mastd starts");
    mastd
        .write("echo.yaml", &yaml::service("echo", &[("http", 80)]))
        .expect("write service");
    let app = EchoServer::start("echo").expect("echo app");
    let server = Sidecar::start(&mastd, proxy, "echo", Some(app.port()))
        .await
        .expect("server sidecar");
    let client = Sidecar::start(&mastd, proxy, "client", None)
        .await
        .expect("client sidecar");
    let docs = yaml::docs(&[
        yaml::service("echo", &[("http", 80)]),
        echo_entry(&server, app.port()),
    ]);
    mastd.write("echo.yaml", &docs).expect("write endpoint");
    let explain = |what: &str, e: anyhow::Error| {
        format!(
            "{what}: {e:#}\n--- mastd\n{}\n--- syncz\n(see below)\n--- client\n{}\n--- server\n{}",
            mastd.log(),
            client.log(),
            server.log()
        )
    };
    if let Err(e) = first_ok(&client).await {
        panic!("{}\n{}", explain("request", e), mastd.syncz().await);
    }
    let (trace_id, spans) = match wait_trace(&mastd).await {
        Ok(t) => t,
        Err(e) => panic!("{}\n{}", explain("trace", e), mastd.syncz().await),
    };

    let find = |service: &str, kind: &str| {
        spans
            .iter()
            .find(|s| s["service"] == service && s["kind"] == kind)
            .cloned()
            .unwrap_or_else(|| {
                panic!("no {kind} span from {service} in trace {trace_id}: {spans:#?}")
            })
    };
    let client_span = find("client.default", "CLIENT");
    let server_span = find("echo.default", "SERVER");
    assert_eq!(
        server_span["parentId"], client_span["spanId"],
        "the server span is the client span's child: {spans:#?}"
    );
    assert_eq!(trace_id.len(), 32, "128-bit trace ids: {trace_id}");
    assert_eq!(
        client_span["tags"]["http.status_code"], "200",
        "{client_span:#}"
    );
    assert_eq!(
        server_span["tags"]["http.status_code"], "200",
        "{server_span:#}"
    );
    assert_eq!(
        client_span["tags"]["istio.canonical_service"], "client",
        "{client_span:#}"
    );
    assert_eq!(
        server_span["tags"]["istio.namespace"], "default",
        "{server_span:#}"
    );

    // The app received the same trace, in the tracer's propagation format.
    let seen = app
        .requests()
        .into_iter()
        .find_map(|r| match collector {
            Collector::OwnZipkin => r.header("x-b3-traceid").map(str::to_owned),
            Collector::Otlp => r
                .header("traceparent")
                .and_then(|t| t.split('-').nth(1))
                .map(str::to_owned),
        })
        .unwrap_or_default();
    assert_eq!(seen, trace_id, "the app saw the trace context");
    // `mastctl proxy-config` reads these: mastd's view and the proxy's own show the tracer.
    let tracer = match collector {
        Collector::OwnZipkin => "envoy.tracers.zipkin",
        Collector::Otlp => "envoy.tracers.opentelemetry",
    };
    let admin = client.process.admin_addr();
    for (what, addr, path) in [
        (
            "mastd",
            mastd.monitoring,
            "/debug/config_dump?proxyID=client.default",
        ),
        ("the client sidecar", admin, "/config_dump"),
    ] {
        let dump = http_get_direct(addr, path, &[]).await.expect("config dump");
        let text = String::from_utf8_lossy(&dump.body);
        assert!(
            dump.status == 200 && text.contains(tracer),
            "{what}'s config dump ({}) lacks {tracer}: {}",
            dump.status,
            text.chars().take(500).collect::<String>()
        );
    }
    let services = mastd
        .collector_json("/api/services/traced")
        .await
        .expect("traced services");
    assert!(
        services
            .as_array()
            .is_some_and(|s| s.iter().any(|v| v == "echo.default")),
        "{services}"
    );
}

async fn zipkin_to_mastd(proxy: Proxy) {
    trace_through_two_sidecars(proxy, Collector::OwnZipkin).await;
}

async fn otlp_to_mastd(proxy: Proxy) {
    trace_through_two_sidecars(proxy, Collector::Otlp).await;
}

mast_e2e::both! {
    zipkin_to_mastd(multi_thread),
    otlp_to_mastd(multi_thread),
}
