//! Istio's stock Grafana dashboards against Mast's metrics: `mastctl up --prometheus` on the
//! canary example (mast-proxy sidecars) with a real Prometheus (Debian's package), a bounded
//! load from `client` to nginx-svc (one request in ten `?status=404`), then every PromQL query
//! of `fixtures/istio-grafana-queries.yaml` — panels of Istio's Mesh, Service and Workload
//! dashboards, quoted exactly, their template variables filled in for the canary mesh — through
//! Prometheus' `/api/v1/query`, each checked against what the fixture expects: the panels that
//! work show what they should (request volumes > 0, success rates 1.0, latency quantiles > 0,
//! the right workloads and services), and the recorded gaps stay exactly as recorded. Prints a
//! table panel → result. Skipped, saying why, without Prometheus.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;
use up_support::canary::{copy_example, encode, get, on_path};
use up_support::{Dir, Proxy, Up};

/// Requests from inside `client` (its sidecar is its HTTP proxy) until the deadline
/// (`argv[1]` seconds) or until the file `argv[2]` exists; one in ten asks for a 404.
const LOAD: &str = r#"
import os, sys, time, urllib.request, urllib.error
end, stop, n = time.time() + float(sys.argv[1]), sys.argv[2], 0
while time.time() < end and not os.path.exists(stop):
    path = "/?status=404" if n % 10 == 9 else "/"
    try:
        urllib.request.urlopen("http://nginx-svc" + path, timeout=5).read()
    except urllib.error.HTTPError as e:
        if e.code != 404:
            print("ERR", e)
    except Exception as e:
        print("ERR", e)
    n += 1
    time.sleep(0.05)
print("SENT", n)
"#;

/// One series of an instant query: its labels and value.
type Series = (BTreeMap<String, String>, f64);

/// The fixture: Istio's queries, the dashboards' variables and what must hold.
#[derive(Debug, Deserialize)]
struct Fixture {
    vars: BTreeMap<String, String>,
    queries: Vec<Query>,
}

/// One panel's query.
#[derive(Debug, Deserialize)]
struct Query {
    dashboard: String,
    panel: String,
    expr: String,
    #[serde(default)]
    vars: BTreeMap<String, String>,
    expect: Expect,
    #[serde(default)]
    series: Vec<BTreeMap<String, String>>,
    gap: Option<String>,
    note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Expect {
    Positive,
    One,
    Nonempty,
    Empty,
}

/// Creates the load's stop file when dropped, so a failed wait does not keep the load going.
struct StopLoad<'a>(&'a Path);

impl Drop for StopLoad<'_> {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0, "");
    }
}

/// An instant PromQL query: its series, or Prometheus' error.
fn query(prom: &str, promql: &str) -> Result<Vec<Series>, String> {
    let body = get(&format!("{prom}/api/v1/query?query={}", encode(promql)));
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    if v["status"] != "success" {
        return Err(format!("{}: {}", v["errorType"], v["error"]));
    }
    let series = v["data"]["result"].as_array().cloned().unwrap_or_default();
    Ok(series
        .iter()
        .map(|r| {
            let labels = serde_json::from_value(r["metric"].clone()).unwrap_or_default();
            let value = r["value"][1]
                .as_str()
                .unwrap_or("NaN")
                .parse()
                .unwrap_or(f64::NAN);
            (labels, value)
        })
        .collect())
}

/// The query with the dashboard's variables replaced (the query's own first; longest
/// names first, so `$srcwl` is never read as `$src…`); `$__rate_interval` and `$__interval`
/// become `1m`.
fn substitute(q: &Query, vars: &BTreeMap<String, String>) -> String {
    let mut all = vars.clone();
    all.extend(q.vars.clone());
    all.insert("__rate_interval".into(), "1m".into());
    all.insert("__interval".into(), "1m".into());
    let mut names: Vec<&String> = all.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut expr = q.expr.clone();
    for name in names {
        expr = expr.replace(&format!("${name}"), &all[name]);
    }
    assert!(!expr.contains('$'), "a variable is left in {expr}");
    expr
}

fn matches(labels: &BTreeMap<String, String>, want: &BTreeMap<String, String>) -> bool {
    want.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Whether the result is what the query expects; if not, why.
fn check(q: &Query, result: &[Series]) -> Result<(), String> {
    let values = || result.iter().map(|(_, v)| *v);
    match q.expect {
        Expect::Empty if result.is_empty() => Ok(()),
        Expect::Empty => Err("series where the fixture records none".into()),
        _ if result.is_empty() => Err("no series".into()),
        Expect::One if values().all(|v| (v - 1.0).abs() <= 0.01) => Ok(()),
        Expect::One => Err("a value other than 1.0 ± 0.01".into()),
        Expect::Nonempty if values().all(|v| v >= 0.0) => Ok(()),
        Expect::Nonempty => Err("a value that is not a number ≥ 0".into()),
        Expect::Positive if q.series.is_empty() => {
            let max = values().fold(f64::NAN, f64::max);
            (max > 0.0)
                .then_some(())
                .ok_or_else(|| "no value > 0".into())
        }
        Expect::Positive => {
            for want in &q.series {
                let found: Vec<f64> = result
                    .iter()
                    .filter(|(l, _)| matches(l, want))
                    .map(|(_, v)| *v)
                    .collect();
                if found.is_empty() || !found.iter().all(|v| *v > 0.0) {
                    return Err(format!("no series {want:?} with a value > 0"));
                }
            }
            Ok(())
        }
    }
}

fn load_fixture() -> Fixture {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/istio-grafana-queries.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let fixture: Fixture = serde_saphyr::from_str(&text).unwrap();
    for q in &fixture.queries {
        let why = q.gap.is_some() || q.note.is_some();
        assert!(
            q.expect != Expect::Empty || why,
            "{} / {}: an empty result needs a `gap` or a `note`",
            q.dashboard,
            q.panel
        );
    }
    fixture
}

/// Waits (60 s at most) until Prometheus has scraped the load at least twice: every
/// series of the 404s (client and server side, both versions) has ≥ 3 samples.
fn wait_scraped(prom: &str, up: &Up) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let promql = r#"count_over_time(istio_requests_total{response_code="404"}[1m]) >= 3"#;
    loop {
        let n = query(prom, promql).map_or(0, |r| r.len());
        if n >= 4 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the load is not scraped twice: {n} series of 404s\n{}",
            up.stderr()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Every fixture query through Prometheus; a table panel → result; the failures.
fn run_queries(prom: &str, fixture: &Fixture) -> Vec<String> {
    let mut failures = Vec::new();
    println!("{:<8} {:<72} {:<6} result", "board", "panel", "status");
    for q in &fixture.queries {
        let expr = substitute(q, &fixture.vars);
        let outcome = query(prom, &expr).and_then(|r| check(q, &r).map(|()| r));
        let status = match (&outcome, q.gap.is_some(), q.note.is_some()) {
            (Err(_), ..) => "FAIL",
            (Ok(_), true, _) => "GAP",
            (Ok(_), false, true) if q.expect == Expect::Empty => "EMPTY",
            (Ok(_), ..) => "ok",
        };
        let shown = match &outcome {
            Ok(r) => r
                .iter()
                .map(|(l, v)| format!("{}={v:.4}", short(l)))
                .collect::<Vec<_>>()
                .join(" "),
            Err(e) => e.clone(),
        };
        println!("{:<8} {:<72} {status:<6} {shown}", q.dashboard, q.panel);
        if let Err(e) = outcome {
            failures.push(format!("{} / {}: {e}\n  {expr}", q.dashboard, q.panel));
        }
    }
    failures
}

/// The labels that tell a dashboard's series apart, `{a,b}` (`{}` for one number).
fn short(labels: &BTreeMap<String, String>) -> String {
    let keep = [
        "destination_workload",
        "destination_service",
        "source_workload",
        "response_code",
    ];
    let parts: Vec<&str> = keep
        .iter()
        .filter_map(|k| labels.get(*k).map(String::as_str))
        .collect();
    format!("{{{}}}", parts.join(","))
}

#[test]
fn istio_dashboards_query_the_canary_mesh() {
    if !on_path("prometheus") {
        eprintln!("skipped: prometheus is not installed (Debian: apt-get install prometheus)");
        return;
    }
    let fixture = load_fixture();
    let Some(dir) = Dir::for_up("grafana") else {
        return;
    };
    copy_example(&dir);
    let mut up = Up::start_on(&dir, &Proxy::Mast, &["--prometheus"]);
    up.wait_ready();
    let prom = up.state()["prometheus"]
        .as_str()
        .expect("the state names Prometheus")
        .to_owned();
    let stop = dir.path().with_file_name("stop-load");
    let stop_arg = stop.to_string_lossy().into_owned();
    let failures = std::thread::scope(|s| {
        let load = s.spawn(|| up.exec("client", &["python3", "-c", LOAD, "90", &stop_arg]));
        let stopping = StopLoad(&stop);
        wait_scraped(&prom, &up);
        let failures = run_queries(&prom, &fixture);
        drop(stopping);
        let out = load.join().unwrap();
        let sent: usize = out
            .lines()
            .find_map(|l| l.strip_prefix("SENT "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        let errors = out.lines().filter(|l| l.starts_with("ERR")).count();
        assert!(sent > 0 && errors * 20 <= sent, "load: {out}");
        failures
    });
    assert!(
        failures.is_empty(),
        "{} of {} queries not as the fixture says:\n{}\n{}",
        failures.len(),
        fixture.queries.len(),
        failures.join("\n"),
        up.stderr()
    );
    assert_eq!(up.interrupt(), Some(0), "{}", up.stderr());
}
