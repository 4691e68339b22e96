//! `mastctl up --prometheus` with a real Prometheus (Debian's package) on the canary example,
//! as a user of Istio's tooling has it: under load, PromQL through Prometheus' HTTP API shows
//! the per-version request rate to nginx-svc split 80/20 (v1.0.0 about four times v1.0.1),
//! Istio's recording rules produce `workload:istio_requests_total`, mastd's job is up, and
//! every sidecar is a target that is up, labelled with its workload. With Envoy sidecars the
//! targets are mast-agent's merged endpoints (the port its ports file reports as
//! `prometheus`), serving Envoy's per-cluster stats (`envoy_cluster_upstream_rq_total` named by
//! the whole cluster name) with the agent's own. Skipped, saying why, without Prometheus.
//!
//! The repository's own configuration (`deploy/prometheus/`) is checked with promtool too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use up_support::canary::{copy_example, encode, get, on_path};
use up_support::{Dir, Proxy, Up};

/// Requests from inside `client` (its sidecar is its HTTP proxy), bounded in count and time.
const LOAD: &str = r#"
import sys, urllib.request
for _ in range(int(sys.argv[1])):
    try:
        urllib.request.urlopen("http://nginx-svc/", timeout=5).read()
    except Exception as e:
        print("ERR", e)
"#;

const WORKLOADS: [&str; 4] = ["client", "nginx-1", "nginx-2", "nginx-3"];

/// An instant PromQL query: (labels, value) per series.
fn query(prom: &str, promql: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let body = get(&format!("{prom}/api/v1/query?query={}", encode(promql)));
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert_eq!(v["status"], "success", "{promql}: {body}");
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let labels = serde_json::from_value(r["metric"].clone()).unwrap();
            let value = r["value"][1].as_str().unwrap().parse().unwrap();
            (labels, value)
        })
        .collect()
}

/// The value of series with `label` = `value` in a query's result.
fn by(result: &[(BTreeMap<String, String>, f64)], label: &str, value: &str) -> f64 {
    result
        .iter()
        .find(|(l, _)| l.get(label).map(String::as_str) == Some(value))
        .map_or(0.0, |(_, v)| *v)
}

/// Polls `promql` (every 500 ms, at most `timeout`) until `ok` accepts its result.
fn poll(
    prom: &str,
    promql: &str,
    timeout: Duration,
    ok: impl Fn(&[(BTreeMap<String, String>, f64)]) -> bool,
) -> Vec<(BTreeMap<String, String>, f64)> {
    let deadline = Instant::now() + timeout;
    loop {
        let result = query(prom, promql);
        if ok(&result) || Instant::now() > deadline {
            return result;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The active targets of Prometheus.
fn targets(prom: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(&get(&format!("{prom}/api/v1/targets"))).unwrap();
    v["data"]["activeTargets"].as_array().unwrap().clone()
}

/// Waits until every sidecar is a target that is up; returns the sidecar targets.
fn sidecar_targets_up(prom: &str, up: &Up) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sidecars: Vec<Value> = targets(prom)
            .into_iter()
            .filter(|t| t["labels"]["job"] == "kubernetes-pods")
            .collect();
        let all_up =
            sidecars.len() == WORKLOADS.len() && sidecars.iter().all(|t| t["health"] == "up");
        if all_up || Instant::now() > deadline {
            assert!(all_up, "sidecar targets: {sidecars:#?}\n{}", up.stderr());
            return sidecars;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The sidecar ports file of `workload` (in the run folder next to the state file).
fn ports_file(up: &Up, workload: &str) -> Value {
    let run_dir: PathBuf = up.state_file.with_extension("");
    let text =
        std::fs::read_to_string(run_dir.join(format!("default.{workload}.ports.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn load(up: &Up, count: usize) {
    let out = up.exec("client", &["python3", "-c", LOAD, &count.to_string()]);
    let failed = out.lines().filter(|l| l.starts_with("ERR")).count();
    assert!(
        failed * 20 <= count,
        "{failed} of {count} requests failed: {out}"
    );
}

/// The client's requests to nginx-svc that Prometheus has scraped so far.
const SCRAPED: &str =
    r#"sum(istio_requests_total{reporter="source",destination_service=~"nginx-svc.*"})"#;

fn scraped(prom: &str) -> f64 {
    query(prom, SCRAPED).first().map_or(0.0, |(_, v)| *v)
}

/// The per-version rate to nginx-svc, 80/20, seen from the client's sidecar, once the
/// load (`before` requests scraped before it, `count` sent) is all scraped.
fn assert_canary_split(prom: &str, up: &Up, before: f64, count: usize) {
    let all = poll(prom, SCRAPED, Duration::from_secs(20), |r| {
        r.first().is_some_and(|(_, v)| *v >= before + count as f64)
    });
    assert!(
        all.first()
            .is_some_and(|(_, v)| *v >= before + count as f64),
        "the load is not all scraped: {all:?} (before: {before})"
    );
    let promql = r#"sum by (destination_version) (rate(istio_requests_total{reporter="source",destination_service=~"nginx-svc.*"}[30s]))"#;
    let result = query(prom, promql);
    let x =
        by(&result, "destination_version", "v1.0.0") / by(&result, "destination_version", "v1.0.1");
    assert!(
        (2.5..=6.5).contains(&x),
        "v1.0.0 / v1.0.1 = {x:.2} (80/20 expected): {result:?}\n{}",
        up.stderr()
    );
    println!("per-version rate: {result:?} (ratio {x:.2})");
}

fn assert_mastd_and_rules(prom: &str) {
    let mastd = poll(
        prom,
        r#"up{job="mastd"} == 1"#,
        Duration::from_secs(15),
        |r| !r.is_empty(),
    );
    assert_eq!(mastd.len(), 1, "mastd's target: {mastd:?}");
    let rules = poll(
        prom,
        "count(workload:istio_requests_total)",
        Duration::from_secs(20),
        |r| r.first().is_some_and(|(_, v)| *v > 0.0),
    );
    assert!(
        rules.first().is_some_and(|(_, v)| *v > 0.0),
        "no workload:istio_requests_total series: {rules:?}"
    );
}

fn run(proxy: &Proxy) {
    let Some(dir) = Dir::for_up("prometheus") else {
        return;
    };
    copy_example(&dir);
    let mut up = Up::start_on(&dir, proxy, &["--prometheus"]);
    up.wait_ready();
    let prom = up.state()["prometheus"]
        .as_str()
        .expect("the state names Prometheus")
        .to_owned();
    assert!(
        up.stdout().contains(&format!("prometheus: {prom}")),
        "{}",
        up.stdout()
    );
    let sidecars = sidecar_targets_up(&prom, &up);
    for w in WORKLOADS {
        let t = sidecars.iter().find(|t| t["labels"]["pod"] == w).unwrap();
        assert_eq!(t["labels"]["namespace"], "default");
        let kind = if matches!(proxy, Proxy::Envoy(_)) {
            "envoy"
        } else {
            "mast-proxy"
        };
        assert_eq!(t["labels"]["mast_proxy"], kind, "{t}");
        if matches!(proxy, Proxy::Envoy(_)) {
            let merged = ports_file(&up, w)["prometheus"]
                .as_u64()
                .expect(
                    "mast-agent reports its metrics port as `prometheus` in its ports file (mastctl up starts it with --metrics-port)",
                );
            assert!(
                t["scrapeUrl"]
                    .as_str()
                    .unwrap()
                    .contains(&format!(":{merged}/stats/prometheus")),
                "{t}"
            );
        }
    }
    let nginx1 = sidecars
        .iter()
        .find(|t| t["labels"]["pod"] == "nginx-1")
        .unwrap();
    assert_eq!(nginx1["labels"]["app"], "nginx");
    assert_eq!(nginx1["labels"]["version"], "v1.0.0");
    if matches!(proxy, Proxy::Mast) {
        // Both versions' series must be scraped before the measured load: rate() needs a
        // sample of each from before it.
        load(&up, 50);
        let by_version = r#"sum by (destination_version) (istio_requests_total{reporter="source",destination_service=~"nginx-svc.*"})"#;
        let seen = poll(&prom, by_version, Duration::from_secs(30), |r| r.len() >= 2);
        assert!(seen.len() >= 2, "both versions scraped: {seen:?}");
    }
    let before = scraped(&prom);
    load(&up, 400);
    match proxy {
        Proxy::Mast => assert_canary_split(&prom, &up, before, 400),
        Proxy::Envoy(_) => assert_envoy_clusters(&prom, &up),
    }
    assert_mastd_and_rules_for(&prom, proxy);
    if matches!(proxy, Proxy::Mast) {
        assert_removed_workload_leaves_targets(&dir, &prom, &up);
    }
    assert_eq!(up.interrupt(), Some(0), "{}", up.stderr());
    let gone = TcpStream::connect(prom.trim_start_matches("http://")).is_err();
    assert!(gone, "Prometheus still answers after the mesh stopped");
}

/// nginx-3 taken out of the folder: its target goes (the targets file follows the mesh).
fn assert_removed_workload_leaves_targets(dir: &Dir, prom: &str, up: &Up) {
    let text = std::fs::read_to_string(dir.join("workloads.yaml")).unwrap();
    let kept: Vec<&str> = text
        .split("\n---\n")
        .filter(|doc| !doc.contains("name: nginx-3"))
        .collect();
    assert_eq!(kept.len(), 3, "{text}");
    dir.write("workloads.yaml", &kept.join("\n---\n"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let pods = || -> Vec<String> {
        targets(prom)
            .iter()
            .filter(|t| t["labels"]["job"] == "kubernetes-pods")
            .map(|t| t["labels"]["pod"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    while pods().len() != 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    let left = pods();
    assert!(
        left.len() == 3 && !left.iter().any(|p| p == "nginx-3"),
        "targets after removing nginx-3: {left:?}\n{}",
        up.stderr()
    );
}

fn assert_mastd_and_rules_for(prom: &str, proxy: &Proxy) {
    match proxy {
        Proxy::Mast => assert_mastd_and_rules(prom),
        Proxy::Envoy(_) => {
            let mastd = poll(
                prom,
                r#"up{job="mastd"} == 1"#,
                Duration::from_secs(15),
                |r| !r.is_empty(),
            );
            assert_eq!(mastd.len(), 1, "mastd's target: {mastd:?}");
        }
    }
}

/// Envoy's per-cluster request counts through the agents' merged endpoints: the client's
/// requests to nginx-svc go to the clusters of nginx-svc-1 and nginx-svc-2 (the canary's
/// route), 80/20; every target carries the agent's own metrics too.
fn assert_envoy_clusters(prom: &str, up: &Up) {
    let promql = r#"sum by (envoy_cluster_name) (envoy_cluster_upstream_rq_total{pod="client",envoy_cluster_name=~"outbound\\|80\\|\\|nginx-svc.*"})"#;
    let (one, two) = (
        "outbound|80||nginx-svc-1.default.svc.cluster.local",
        "outbound|80||nginx-svc-2.default.svc.cluster.local",
    );
    let result = poll(prom, promql, Duration::from_secs(30), |r| {
        by(r, "envoy_cluster_name", one) + by(r, "envoy_cluster_name", two) >= 400.0
    });
    let (a, b) = (
        by(&result, "envoy_cluster_name", one),
        by(&result, "envoy_cluster_name", two),
    );
    assert!(
        a + b >= 400.0 && (2.5..=6.5).contains(&(a / b)),
        "{result:?}\n{}",
        up.stderr()
    );
    let agents = query(
        prom,
        r#"count(mast_agent_envoy_restarts_total{job="kubernetes-pods"})"#,
    );
    assert_eq!(
        agents.first().map(|(_, v)| *v),
        Some(4.0),
        "the agents' own metrics: {agents:?}"
    );
}

#[test]
fn prometheus_scrapes_the_canary_mesh() {
    if !on_path("prometheus") {
        eprintln!("skipped: prometheus is not installed (Debian: apt-get install prometheus)");
        return;
    }
    run(&Proxy::Mast);
    if let Some(envoy) = Proxy::envoy() {
        run(&envoy);
    }
}

/// Checks the repository's configuration with promtool: the rules as they are; the scrape
/// configuration as it is when this promtool knows Kubernetes service discovery (Debian's
/// build does not), else with its `kubernetes_sd_configs` replaced by empty static configs
/// (the relabelling and everything else still checked).
#[test]
fn repository_config_passes_promtool() {
    if !on_path("promtool") {
        eprintln!("skipped: promtool is not installed (Debian: apt-get install prometheus)");
        return;
    }
    let deploy = mast_test_support::workspace_root().join("deploy/prometheus");
    let rules = promtool(&["check", "rules"], &deploy.join("istio-rules.yaml"));
    assert!(rules.0, "{}", rules.1);
    assert!(rules.1.contains("14 rules found"), "{}", rules.1);
    let config = deploy.join("prometheus.yml");
    let (ok, said) = promtool(&["check", "config"], &config);
    if ok {
        return;
    }
    assert!(
        said.contains("field kubernetes_sd_configs not found"),
        "{said}"
    );
    eprintln!("this promtool has no Kubernetes service discovery: checking the rest");
    let tmp = mast_test_support::TempDir::new("promtool").unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let replaced = without_kubernetes_sd(&text);
    assert_eq!(
        replaced.matches("static_configs: []").count(),
        2,
        "{replaced}"
    );
    std::fs::write(tmp.join("prometheus.yml"), replaced).unwrap();
    std::fs::copy(
        deploy.join("istio-rules.yaml"),
        tmp.join("istio-rules.yaml"),
    )
    .unwrap();
    let (ok, said) = promtool(&["check", "config"], &tmp.join("prometheus.yml"));
    assert!(ok, "{said}");
    assert!(said.contains("SUCCESS: 1 rule files found"), "{said}");
}

/// The configuration with each `kubernetes_sd_configs:` block (and its deeper-indented lines)
/// replaced by `static_configs: []`.
fn without_kubernetes_sd(text: &str) -> String {
    let mut out = Vec::new();
    let mut skipping: Option<usize> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(depth) = skipping {
            if line.trim().is_empty()
                || indent > depth
                || line.trim_start().starts_with("- ") && indent == depth
            {
                continue;
            }
            skipping = None;
        }
        if line.trim_start() == "kubernetes_sd_configs:" {
            skipping = Some(indent);
            out.push(format!("{}static_configs: []", " ".repeat(indent)));
            continue;
        }
        out.push(line.to_owned());
    }
    out.join("\n") + "\n"
}

fn promtool(args: &[&str], file: &Path) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .arg(file)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}
