//! The README's first experience, as a user has it: `mastctl up examples/canary` (the seed
//! notes' nginx example, files unchanged), then from the `client` workload: `http://nginx-svc/`
//! answered by nginx-1 about 80 % and nginx-2 about 20 % of the time, `vs-user: jicki` routed to
//! nginx-svc-3, and the weights edited to 50/50 while requests flow: the split follows within
//! about a second and no request fails. On mast-proxy sidecars, and on Envoy when found.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::time::Duration;

use up_support::canary::copy_example;
use up_support::{Dir, Up};

/// Requests from inside `client` (HTTP_PROXY is its sidecar): prints one answer per line,
/// `ERR <reason>` for a failure. Bounded: `count` requests with a 5 s timeout each.
const COUNT: &str = r#"
import sys, urllib.request
count, header = int(sys.argv[1]), sys.argv[2:]
for _ in range(count):
    req = urllib.request.Request("http://nginx-svc/")
    if header:
        req.add_header("vs-user", header[0])
    try:
        print(urllib.request.urlopen(req, timeout=5).read().decode().strip())
    except Exception as e:
        print("ERR", e)
"#;

fn answers(up: &Up, count: usize, header: Option<&str>) -> Vec<String> {
    let n = count.to_string();
    let mut cmd = vec!["python3", "-c", COUNT, n.as_str()];
    cmd.extend(header);
    up.exec("client", &cmd).lines().map(str::to_owned).collect()
}

fn share(answers: &[String], of: &str) -> f64 {
    answers.iter().filter(|a| *a == of).count() as f64 / answers.len().max(1) as f64
}

/// GETs `path` from 127.0.0.1:`port` (HTTP/1.0, so the answer ends with the connection).
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Sums the samples of `metric` whose labels include every `want` pair, by the value of
/// label `by`.
fn sum_by(text: &str, metric: &str, want: &[(&str, &str)], by: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(metric).and_then(|r| r.strip_prefix('{')) else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let has = |k: &str, v: &str| labels.contains(&format!("{k}=\"{v}\""));
        if !want.iter().all(|(k, v)| has(k, v)) {
            continue;
        }
        let key = labels
            .split(',')
            .find_map(|kv| kv.strip_prefix(&format!("{by}=\"")))
            .map(|v| v.trim_end_matches('"').to_owned())
            .unwrap_or_default();
        *out.entry(key).or_insert(0.0) += value.trim().parse::<f64>().unwrap_or(0.0);
    }
    out
}

/// Istio's standard metrics on the sidecars (mast-proxy): the client's `reporter="source"`
/// counters show the 80/20 split by destination workload (and the matching
/// `destination_service`), and nginx-1's
/// `reporter="destination"` counters show the client over mutual TLS.
fn istio_metrics_show_the_split(up: &Up) {
    let admin = |name: &str| up.workload(name)["admin"].as_u64().unwrap() as u16;
    let client = http_get(admin("client"), "/stats/prometheus");
    let by_workload = sum_by(
        &client,
        "istio_requests_total",
        &[
            ("reporter", "source"),
            ("source_workload", "client"),
            // As Istio reports it: the service of the cluster the route chose (the example's
            // VirtualService for nginx-svc routes to nginx-svc-1 and nginx-svc-2).
            ("destination_app", "nginx"),
            ("response_code", "200"),
        ],
        "destination_workload",
    );
    let (one, two) = (
        by_workload.get("nginx-1").copied().unwrap_or(0.0),
        by_workload.get("nginx-2").copied().unwrap_or(0.0),
    );
    let share = one / (one + two).max(1.0);
    let by_service = sum_by(
        &client,
        "istio_requests_total",
        &[("reporter", "source"), ("destination_workload", "nginx-2")],
        "destination_service",
    );
    assert!(
        by_service.contains_key("nginx-svc-2.default.svc.cluster.local"),
        "nginx-2's requests are reported for its service: {by_service:?}"
    );
    assert!(
        one + two >= 400.0 && (share - 0.8).abs() <= 0.08,
        "client's istio_requests_total by destination_workload: {by_workload:?}"
    );
    let server = http_get(admin("nginx-1"), "/stats/prometheus");
    let inbound = sum_by(
        &server,
        "istio_requests_total",
        &[
            ("reporter", "destination"),
            ("source_workload", "client"),
            ("destination_workload", "nginx-1"),
            ("connection_security_policy", "mutual_tls"),
        ],
        "source_principal",
    );
    assert!(
        inbound
            .get("spiffe://cluster.local/ns/default/sa/client")
            .is_some_and(|n| *n >= one * 0.9),
        "nginx-1's reporter=destination counters: {inbound:?} (client sent {one})"
    );
}

fn canary(up_args: &[&str], env: &[(&str, &OsStr)]) {
    let Some(dir) = Dir::for_up("canary") else {
        return;
    };
    copy_example(&dir);
    let mut up = Up::start_env(&dir, up_args, env);
    up.wait_ready();
    let ready = up
        .stdout()
        .lines()
        .find(|l| l.contains("all workloads ready"))
        .unwrap_or_default()
        .to_owned();
    println!("{ready}");

    let split = answers(&up, 400, None);
    let (one, two) = (
        share(&split, "hello nginx-1"),
        share(&split, "hello nginx-2"),
    );
    assert!(
        (one - 0.8).abs() <= 0.07 && (two - 0.2).abs() <= 0.07 && one + two == 1.0,
        "80/20 expected, got nginx-1 {one:.2} nginx-2 {two:.2}: {:?}\n{}",
        &split[..split.len().min(20)],
        up.stderr()
    );
    if !up_args.contains(&"envoy") {
        istio_metrics_show_the_split(&up);
    }
    let jicki = answers(&up, 20, Some("jicki"));
    assert!(
        jicki.iter().all(|a| a == "hello nginx-3"),
        "vs-user: jicki → {jicki:?}"
    );

    // Edit the weights to 50/50 while a client sends requests: none fails, and the split
    // moves within about a second.
    let vs = std::fs::read_to_string(dir.join("virtual-service.yaml")).unwrap();
    let edited = vs
        .replace("weight: 80", "weight: 50")
        .replace("weight: 20", "weight: 50");
    assert_ne!(vs, edited, "the example has 80/20 weights");
    let flowing = std::thread::scope(|s| {
        let during = s.spawn(|| answers(&up, 300, None));
        std::thread::sleep(Duration::from_millis(300));
        dir.write("virtual-service.yaml", &edited);
        during.join().unwrap()
    });
    let failed: Vec<_> = flowing.iter().filter(|a| a.starts_with("ERR")).collect();
    assert!(
        failed.is_empty(),
        "requests failed during the edit: {failed:?}"
    );
    std::thread::sleep(Duration::from_millis(1000));
    let after = answers(&up, 300, None);
    let one = share(&after, "hello nginx-1");
    assert!(
        (one - 0.5).abs() <= 0.1,
        "50/50 expected after the edit, nginx-1 {one:.2}"
    );
    assert_eq!(up.interrupt(), Some(0), "{}", up.stderr());
}

/// One test for both proxies, one after the other: the example's programs listen on fixed
/// ports (8081–8083), so two copies cannot run at once.
#[test]
fn canary_example_splits_routes_by_header_and_follows_edits() {
    canary(&[], &[]);
    match mast_test_support::envoy_binary() {
        Some(envoy) => canary(&["--proxy", "envoy"], &[("MAST_ENVOY", envoy.as_os_str())]),
        None => eprintln!("Envoy not found: the Envoy run is skipped"),
    }
}
