//! The agent's metrics port (Istio's 15020) with real Envoy configured by a real mastd, as
//! Prometheus scrapes it: `/stats/prometheus` serves Envoy's stats (cluster stats named with
//! the whole cluster name, dots included, in `envoy_cluster_name`) merged with the agent's
//! own (`mast_agent_*`), as text Prometheus parses (one `# TYPE` per family; checked with
//! `promtool check metrics` when installed); the agent's restart counter follows a killed
//! Envoy; `/healthz/ready` answers 200 once Envoy is LIVE; and in ports mode the port is off
//! unless asked for, reported in the ports file as `prometheus` when on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use mast_test_support::{
    AgentProcess, MastdOptions, MastdProcess, TempDir, cargo_bin, free_port, http_get_direct,
    require_envoy, wait_for_async,
};
use serde_json::Value;

const AGENT: &str = env!("CARGO_BIN_EXE_mast-agent");

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: nginx-svc
  namespace: default
spec:
  ports:
    - port: 80
      name: http
  selector:
    app: nginx
";

/// The cluster Envoy gets for [`SERVICE`].
const NGINX_CLUSTER: &str = "outbound|80||nginx-svc.default.svc.cluster.local";

fn start_agent(xds: &str, fetch_timeout: &str, extra: &[&str]) -> AgentProcess {
    let envoy = require_envoy();
    let mut args = vec![
        "--workload",
        "client",
        "--namespace",
        "default",
        "--capture-mode",
        "ports",
        "--admin-port",
        "0",
        "--concurrency",
        "1",
        "--initial-fetch-timeout",
        fetch_timeout,
        "--drain-duration",
        "200ms",
        "--xds-address",
        xds,
        "--envoy",
        envoy.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    AgentProcess::start(Path::new(AGENT), &args, Duration::from_secs(30)).unwrap()
}

/// The ports file as JSON.
fn ports_file(agent: &AgentProcess) -> Value {
    let text = std::fs::read_to_string(agent.dir().join("ports.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn metrics_addr(agent: &AgentProcess) -> SocketAddr {
    let port = ports_file(agent)["prometheus"]
        .as_u64()
        .expect("the ports file reports the metrics port as `prometheus`");
    SocketAddr::from(([127, 0, 0, 1], u16::try_from(port).unwrap()))
}

async fn scrape(addr: SocketAddr) -> String {
    let r = http_get_direct(addr, "/stats/prometheus", &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    r.text()
}

/// The value of the sample whose line starts with `series ` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Each family declared once.
fn assert_one_type_per_family(text: &str) {
    let mut seen = BTreeMap::new();
    for name in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let name = name.split(' ').next().unwrap();
        *seen.entry(name.to_owned()).or_insert(0) += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "families declared twice: {twice:?}");
    assert!(seen.len() > 50, "few families: {}", seen.len());
}

/// `promtool check metrics` parses the text (lint findings such as missing HELP are fine:
/// Envoy writes none); skipped when promtool is not installed.
fn assert_promtool_parses(text: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("promtool not found: the text format check is skipped");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.code() != Some(1) && !said.contains("parsing error"),
        "promtool rejects the merged text: {said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_endpoint_serves_envoy_and_agent_metrics() {
    if cargo_bin("mastd").is_none() {
        eprintln!("skipped: mastd is not built (cargo build -p mastd)");
        return;
    }
    let dir = TempDir::new("mast-agent-metrics").unwrap();
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("svc.yaml"), SERVICE).unwrap();
    let mastd = MastdProcess::start(&MastdOptions::new(&config).unwrap())
        .await
        .unwrap();
    let xds = mastd.xds_addr().to_string();
    let mut agent = start_agent(&xds, "5s", &["--metrics-port", "0"]);
    let addr = metrics_addr(&agent);
    let series =
        format!("envoy_cluster_upstream_rq_total{{envoy_cluster_name=\"{NGINX_CLUSTER}\"}}");
    let found = wait_for_async(
        || async { scrape(addr).await.contains(&series) },
        Duration::from_secs(10),
    )
    .await;
    let text = scrape(addr).await;
    assert!(found, "no {series} in:\n{text}\n{}", agent.log_tail());
    assert!(
        !text.contains("default_svc_cluster_local"),
        "a cluster name leaked into a metric name"
    );
    assert_eq!(sample(&text, "mast_agent_envoy_restarts_total"), Some(0.0));
    assert!(text.contains("# TYPE mast_agent_envoy_restarts_total counter\n"));
    assert_one_type_per_family(&text);
    assert_promtool_parses(&text);
    let ready = http_get_direct(addr, "/healthz/ready", &[]).await.unwrap();
    assert_eq!(ready.status, 200, "{}", ready.text());

    // Envoy dies; the agent starts it again and counts it.
    let old = agent.ports().envoy_pid;
    Command::new("kill")
        .args(["-KILL", &old.to_string()])
        .status()
        .unwrap();
    agent
        .wait_ports(|p| p.envoy_pid != old, Duration::from_secs(30))
        .unwrap();
    let text = scrape(addr).await;
    assert_eq!(
        sample(&text, "mast_agent_envoy_restarts_total"),
        Some(1.0),
        "{}",
        agent.log_tail()
    );
    assert!(
        text.contains(&series),
        "Envoy's stats are back after the restart"
    );
    agent.stop(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_mode_serves_no_metrics_unless_asked() {
    let xds = format!("127.0.0.1:{}", free_port());
    let mut agent = start_agent(&xds, "300ms", &[]);
    assert!(
        ports_file(&agent).get("prometheus").is_none(),
        "{}",
        ports_file(&agent)
    );
    agent.stop(Duration::from_secs(10));
}
