//! The examples' READMEs, as a user follows them: `mastctl up examples/bookinfo` and `mastctl
//! up examples/resilience` (files unchanged), then every `mastctl exec client -- curl …` the
//! README lists, with the answer it promises; bookinfo's 50/50 edit and its broken subset; and
//! `mastctl analyze` / `mastctl version` without arguments finding the running mesh. On
//! mast-proxy sidecars, and on Envoy when found. Each example's programs listen on fixed
//! ports, so each test runs its meshes one after the other.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use up_support::{Dir, Up};

/// `count` requests to `url` from inside a workload (HTTP_PROXY is its sidecar), headers as
/// `name: value` arguments; one line per answer: `<status> <seconds> <body on one line>`
/// (status 0 when no answer came). Bounded: 10 s per request.
const REQUESTS: &str = r#"
import sys, time, urllib.request, urllib.error
url, count = sys.argv[1], int(sys.argv[2])
headers = dict(h.split(": ", 1) for h in sys.argv[3:])
for _ in range(count):
    req = urllib.request.Request(url, headers=headers)
    start = time.monotonic()
    try:
        r = urllib.request.urlopen(req, timeout=10)
        status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    except Exception as e:
        status, body = 0, str(e).encode()
    text = body.decode(errors="replace").strip().replace("\n", " ")
    print(status, "%.3f" % (time.monotonic() - start), text, flush=True)
"#;

/// One answer of [`REQUESTS`].
#[derive(Debug)]
struct Answer {
    status: u16,
    seconds: f64,
    body: String,
}

fn requests(up: &Up, url: &str, count: usize, headers: &[&str]) -> Vec<Answer> {
    let n = count.to_string();
    let mut cmd = vec!["python3", "-c", REQUESTS, url, n.as_str()];
    cmd.extend(headers);
    let out = up.exec("client", &cmd);
    let answers: Vec<Answer> = out
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ' ');
            Some(Answer {
                status: parts.next()?.parse().ok()?,
                seconds: parts.next()?.parse().ok()?,
                body: parts.next().unwrap_or_default().to_owned(),
            })
        })
        .collect();
    assert_eq!(answers.len(), count, "{url}: {out}\n{}", up.stderr());
    answers
}

/// `mastctl exec client -- curl -s <args>`: its output, trimmed.
fn curl(up: &Up, args: &[&str]) -> String {
    let mut cmd = vec!["curl", "-s", "--max-time", "10"];
    cmd.extend(args);
    up.exec("client", &cmd).trim().to_owned()
}

fn copy_example(dir: &Dir, example: &str) {
    let from = mast_test_support::workspace_root()
        .join("examples")
        .join(example);
    for entry in std::fs::read_dir(&from).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            dir.write(&name, &std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// The proxies to run an example on: mast-proxy, and Envoy when found.
fn each_proxy(run: impl Fn(&[&str], &[(&str, &OsStr)])) {
    run(&[], &[]);
    match mast_test_support::envoy_binary() {
        Some(envoy) => run(&["--proxy", "envoy"], &[("MAST_ENVOY", envoy.as_os_str())]),
        None => eprintln!("Envoy not found: the Envoy run is skipped"),
    }
}

fn start(dir: &Dir, up_args: &[&str], env: &[(&str, &OsStr)]) -> Up {
    let mut up = Up::start_env(dir, up_args, env);
    up.wait_ready();
    up
}

/// Polls (every 100 ms, `within` at most) until `done` holds; whether it did.
fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn bookinfo_example_answers_as_its_readme_says() {
    each_proxy(bookinfo);
}

fn bookinfo(up_args: &[&str], env: &[(&str, &OsStr)]) {
    let Some(dir) = Dir::for_up("bookinfo") else {
        return;
    };
    copy_example(&dir, "bookinfo");
    let mut up = start(&dir, up_args, env);
    let url = |service: &str| format!("http://{service}:9080/");
    assert_eq!(curl(&up, &[&url("productpage")]), "productpage v1");
    for _ in 0..10 {
        assert_eq!(curl(&up, &[&url("reviews")]), "reviews v1: no stars");
    }
    let jason = ["-H", "end-user: jason", "http://reviews:9080/"];
    assert_eq!(curl(&up, &jason), "reviews v2: black stars");
    assert_eq!(curl(&up, &[&url("ratings")]), "ratings v1");
    assert_eq!(
        curl(&up, &[&url("details")]),
        "details v1: a book by William Shakespeare"
    );
    let json = curl(&up, &["-H", "accept: application/json", &url("reviews")]);
    let json: serde_json::Value = serde_json::from_str(&json).expect(&json);
    assert_eq!(json["workload"]["name"], "reviews-v1", "{json}");
    assert_eq!(json["workload"]["namespace"], "default", "{json}");
    assert_eq!(json["workload"]["serviceAccount"], "bookinfo-reviews");

    running_mesh_verbs(&up, &dir);
    bookinfo_edits(&up, &dir);
    assert_eq!(up.interrupt(), Some(0), "{}", up.stderr());
}

/// `mastctl version` and `mastctl analyze` with no path find the running mesh.
fn running_mesh_verbs(up: &Up, dir: &Dir) {
    let version = up.mastctl(&["version"]);
    let ours = env!("CARGO_PKG_VERSION");
    assert!(
        version.contains(&format!(
            "client version: {ours}\ncontrol plane version: {ours}\n"
        )),
        "{version}"
    );
    assert!(version.contains("data plane version: "), "{version}");
    let client_only = up.mastctl(&["version", "--remote=false"]);
    assert_eq!(client_only, format!("client version: {ours}\n"));
    let json: serde_json::Value =
        serde_json::from_str(&up.mastctl(&["version", "-o", "json"])).unwrap();
    assert_eq!(json["meshVersion"][0]["component"], "mastd", "{json}");
    assert_eq!(json["meshVersion"][0]["version"], ours, "{json}");

    let analyzed = up.mastctl(&["analyze"]);
    let canonical = dir.path().canonicalize().unwrap();
    assert!(
        analyzed.contains(&format!("Analyzing {}", canonical.display()))
            || analyzed.contains(&format!("Analyzing {}", dir.path().display())),
        "{analyzed}"
    );
    assert!(
        analyzed.contains("No validation issues found"),
        "{analyzed}"
    );
}

/// The README's "Try a change": 50/50 v1/v3 within a second (jason still v2), then a subset
/// no DestinationRule defines, reported with file and line by `up` and `analyze`.
fn bookinfo_edits(up: &Up, dir: &Dir) {
    let vs = std::fs::read_to_string(dir.join("virtual-services.yaml")).unwrap();
    let default_route =
        "    - route:\n        - destination:\n            host: reviews\n            subset: v1\n";
    let split = "    - route:\n        - destination: {host: reviews, subset: v1}\n          weight: 50\n        - destination: {host: reviews, subset: v3}\n          weight: 50\n";
    assert!(vs.contains(default_route), "the reviews default route");
    dir.write("virtual-services.yaml", &vs.replace(default_route, split));
    let saved = Instant::now();
    let seen_v3 = eventually(Duration::from_secs(3), || {
        curl(up, &["http://reviews:9080/"]) == "reviews v3: red stars"
    });
    assert!(seen_v3, "no v3 after the edit:\n{}", up.stderr());
    assert!(
        saved.elapsed() < Duration::from_millis(1500),
        "v3 after {:?}",
        saved.elapsed()
    );
    let answers = requests(up, "http://reviews:9080/", 60, &[]);
    let v3 = answers
        .iter()
        .filter(|a| a.body == "reviews v3: red stars")
        .count();
    let v1 = answers
        .iter()
        .filter(|a| a.body == "reviews v1: no stars")
        .count();
    assert!(
        v1 + v3 == 60 && (15..=45).contains(&v3),
        "about half v3 expected: v1 {v1}, v3 {v3}: {answers:?}"
    );
    let jason = requests(up, "http://reviews:9080/", 5, &["end-user: jason"]);
    assert!(jason.iter().all(|a| a.body == "reviews v2: black stars"));

    let broken = std::fs::read_to_string(dir.join("virtual-services.yaml"))
        .unwrap()
        .replace("subset: v3}", "subset: v4}");
    dir.write("virtual-services.yaml", &broken);
    let reported = eventually(Duration::from_secs(5), || up.stderr().contains("IST0101"));
    let stderr = up.stderr();
    assert!(
        reported && names_file_and_line(&stderr) && stderr.contains("reviews+v4"),
        "{stderr}"
    );
    let analyzed = up.mastctl(&["analyze"]);
    assert!(
        analyzed.contains("IST0101") && names_file_and_line(&analyzed),
        "{analyzed}"
    );
    let explicit = up.mastctl(&["analyze", dir.path().to_str().unwrap()]);
    assert!(explicit.contains("IST0101"), "{explicit}");
}

/// Whether `text` names `virtual-services.yaml:<line>`.
fn names_file_and_line(text: &str) -> bool {
    text.split("virtual-services.yaml:")
        .skip(1)
        .any(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
}

#[test]
fn resilience_example_answers_as_its_readme_says() {
    each_proxy(resilience);
}

fn resilience(up_args: &[&str], env: &[(&str, &OsStr)]) {
    let Some(dir) = Dir::for_up("resilience") else {
        return;
    };
    copy_example(&dir, "resilience");
    let mut up = start(&dir, up_args, env);
    retries(&up);
    timeout(&up);
    faults(&up);
    circuit_breaking(&up);
    access_log_flags(&dir, up_args.is_empty());
    assert_eq!(up.interrupt(), Some(0), "{}", up.stderr());
}

/// flaky fails about 3 requests in 10; with retries (4 tries) almost none get through, and
/// without (`x-retries: off`) about 3 in 10 do.
fn retries(up: &Up) {
    let served_500 = || up.stdout().matches("\" 500 ").count();
    let before = served_500();
    let retried = requests(up, "http://flaky/", 100, &[]);
    let failed = retried.iter().filter(|a| a.status != 200).count();
    assert!(
        failed <= 5,
        "{failed} of 100 failed through retries: {retried:?}"
    );
    assert!(
        retried
            .iter()
            .filter(|a| a.status == 200)
            .all(|a| a.body == "flaky answered")
    );
    assert!(
        served_500() - before >= 10,
        "flaky did not fail behind the retries ({} 500s)",
        served_500() - before
    );
    let bare = requests(up, "http://flaky/", 100, &["x-retries: off"]);
    let errors = bare
        .iter()
        .filter(|a| a.status == 500 && a.body == "flaky answered: error 500 Internal Server Error")
        .count();
    let ok = bare.iter().filter(|a| a.body == "flaky answered").count();
    assert!(
        errors + ok == 100 && (12..=50).contains(&errors),
        "about 3 in 10 failures expected without retries: {errors}: {bare:?}"
    );
}

/// slow answers in 3 s; the route gives it 1 s, then 504 `upstream request timeout` (Envoy
/// may say `downstream duration timeout`: the route sets both limits, as Istio does).
fn timeout(up: &Up) {
    let out = curl(up, &["-w", " %{http_code} %{time_total}s", "http://slow/"]);
    let seconds: f64 = out
        .strip_prefix("upstream request timeout 504 ")
        .or_else(|| out.strip_prefix("downstream duration timeout 504 "))
        .and_then(|s| s.strip_suffix('s'))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("timeout expected: {out:?}"));
    assert!((0.95..1.6).contains(&seconds), "504 after {seconds}s");
    assert_eq!(curl(up, &["http://slow/?delay=100ms"]), "slow answered");
}

/// `x-fault: delay` waits 2 s, `x-fault: abort` answers 503 `fault filter abort`, and about
/// one in ten of the rest is delayed 500 ms.
fn faults(up: &Up) {
    let out = curl(
        up,
        &[
            "-w",
            " %{time_total}s",
            "-H",
            "x-fault: delay",
            "http://ratings/",
        ],
    );
    let (body, time) = out.rsplit_once(' ').unwrap_or_default();
    let body = body.trim();
    let seconds: f64 = time.trim().trim_end_matches('s').parse().unwrap_or(0.0);
    assert_eq!(body, "ratings answered", "{out:?}");
    assert!((1.95..2.6).contains(&seconds), "delay of {seconds}s");
    let abort = curl(
        up,
        &[
            "-w",
            " %{http_code}",
            "-H",
            "x-fault: abort",
            "http://ratings/",
        ],
    );
    assert_eq!(abort, "fault filter abort 503");
    let rest = requests(up, "http://ratings/", 100, &[]);
    assert!(
        rest.iter()
            .all(|a| a.status == 200 && a.body == "ratings answered")
    );
    let delayed = rest.iter().filter(|a| a.seconds >= 0.45).count();
    assert!(
        (1..=25).contains(&delayed),
        "about 10 of 100 delayed 500ms expected: {delayed}"
    );
}

/// `932µs`, `1.27ms` or `1.5s` in milliseconds.
fn millis(token: &str) -> Option<f64> {
    if let Some(n) = token.strip_suffix("µs") {
        return n.parse::<f64>().ok().map(|n| n / 1000.0);
    }
    if let Some(n) = token.strip_suffix("ms") {
        return n.parse().ok();
    }
    token
        .strip_suffix('s')?
        .parse::<f64>()
        .ok()
        .map(|n| n * 1000.0)
}

fn mastctl_bin() -> &'static str {
    env!("CARGO_BIN_EXE_mastctl")
}

/// `mastctl x load` from client: 10 connections at 50/s overflow the 1-connection limit
/// (503s at once); 1 connection at 4/s stays within it.
fn circuit_breaking(up: &Up) {
    let load = |rate: &str, connections: &str| {
        up.exec(
            "client",
            &[
                mastctl_bin(),
                "x",
                "load",
                "http://backend/",
                "--rate",
                rate,
                "--connections",
                connections,
                "--duration",
                "5s",
            ],
        )
    };
    let over = load("50", "10");
    let status = over
        .lines()
        .find(|l| l.starts_with("status"))
        .unwrap_or_default();
    assert!(
        status.contains("200: ") && status.contains("503: "),
        "200s and 503s expected:\n{over}"
    );
    let p50_ms = over
        .split("p50 ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(millis)
        .unwrap_or(f64::MAX);
    assert!(p50_ms < 100.0, "503s refused at once expected:\n{over}");
    assert!(over.contains(" of 250 failed"), "{over}");
    let within = load("4", "1");
    assert!(
        within.contains("result     all 20 succeeded"),
        "all 20 within the limits expected after the overload, as on Envoy (a sidecar that \
         counts its own overflow 503s as the host's failures ejects it: no healthy upstream):\n{within}"
    );
}

/// The README's last paragraph: the client sidecar's access log marks overflow `UO`,
/// timeouts `UT`, injected aborts `FI` and delays `DI`, on both proxies. mast-proxy writes
/// its lines to stdout, kept as `<run>/default.client.access.log`; Envoy writes them where
/// mastd's `access_log` says (`mastctl up` runs mastd with `--access-log-file /dev/stdout`),
/// its own stdout, which mast-agent keeps as `<run>/default.client.envoy/envoy.stdio.log`
/// unless it passes it on to its stdout. Envoy flushes its log every second: polled.
fn access_log_flags(dir: &Dir, mast_proxy: bool) {
    let run = dir.state_file().with_extension("");
    let mut logs = vec![run.join("default.client.access.log")];
    if !mast_proxy {
        logs.push(run.join("default.client.envoy").join("envoy.stdio.log"));
    }
    let read = || {
        logs.iter()
            .map(|l| std::fs::read_to_string(l).unwrap_or_default())
            .collect::<String>()
    };
    // The route sets both a timeout and a max stream duration, as Istio does: Envoy may end
    // the slow request by the latter, a 504 without flag whose details say
    // `max_duration_timeout` (see `timeout`).
    let marks = |text: &str| -> Vec<&'static str> {
        let timed_out = text.contains(" UT ") || text.contains(" max_duration_timeout ");
        ["UO", "FI", "DI"]
            .into_iter()
            .filter(|f| !text.contains(&format!(" {f} ")))
            .chain((!timed_out).then_some("UT"))
            .collect()
    };
    eventually(Duration::from_secs(5), || marks(&read()).is_empty());
    let text = read();
    // A request line in Istio's default format, to the resilience example's services.
    assert!(
        text.lines()
            .any(|l| l.starts_with('[') && l.contains("\"GET /") && l.contains("outbound|")),
        "no request line in {logs:?}: {text}"
    );
    let missing = marks(&text);
    assert!(
        missing.is_empty(),
        "{missing:?} expected in {logs:?}: {text}"
    );
}
