//! The dashboard in a real browser, as issue 7 asks: `mastctl up` on a copy of the canary
//! example with load flowing, then `tests/browser/dashboard.mjs` (playwright-core driving
//! Debian's Chromium, headless) asserts what a user sees — the graph's nodes (client, nginx-svc,
//! nginx v1 and v2 in one app box), the rates in the edge labels (v1 above v2), green edges,
//! live updates, the services, config, workload and traces tabs. Then a VirtualService that
//! aborts the 80/20 route with 503s is written into the folder, and the same script (phase
//! `fault`) waits for the client's edge toward nginx to turn red. Screenshots go to
//! `target/test-artifacts/dashboard/`.
//!
//! Skipped, saying why, without Chromium (`/usr/bin/chromium`, or `$MAST_CHROMIUM`), Node, or
//! `tests/browser/node_modules` (`npm ci --prefix tests/browser`). The quick page test against
//! a stand-in API (`tests/browser/page.mjs`) and the page's helpers in Node
//! (`tests/browser/units.mjs`) run here too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::io::Read;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mast_test_support::{free_port, wait_for, workspace_root};
use up_support::{Dir, Up};

/// The longest a browser phase may take (each waits 90 s at most for the graph itself).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

fn mastctl_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mastctl"))
}

fn browser_dir() -> PathBuf {
    workspace_root().join("tests/browser")
}

/// Why the browser cannot run here, if it cannot.
fn missing_browser() -> Option<String> {
    let chromium =
        std::env::var_os("MAST_CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from);
    if !chromium.is_file() {
        return Some(format!(
            "{} is missing (apt-get install chromium)",
            chromium.display()
        ));
    }
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("node is missing (apt-get install nodejs npm)".into());
    }
    if !browser_dir().join("node_modules/playwright-core").is_dir() {
        return Some(
            "tests/browser/node_modules is missing (npm ci --prefix tests/browser)".into(),
        );
    }
    None
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from);
    let dir = target.join("test-artifacts/dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `node tests/browser/<script> <args>` (killed after [`SCRIPT_TIMEOUT`]): whether it
/// passed, and everything it printed.
fn node(script: &str, args: &[&str]) -> (bool, String) {
    let mut child = Command::new("node")
        .arg(browser_dir().join(script))
        .args(args)
        .current_dir(browser_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start node");
    let pipes = [
        read_all(child.stdout.take().unwrap()),
        read_all(child.stderr.take().unwrap()),
    ];
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            kill_group(&mut child);
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text: String = pipes
        .into_iter()
        .map(|t| t.join().unwrap_or_default())
        .collect();
    match status {
        Some(s) => (s.success(), text),
        None => (
            false,
            format!("{text}\n{script} killed after {SCRIPT_TIMEOUT:?}"),
        ),
    }
}

fn read_all(mut from: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = from.read_to_string(&mut text);
        text
    })
}

fn kill_group(child: &mut Child) {
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.wait();
}

/// Load from inside `client` (through its sidecar) for a bounded time; killed when dropped.
struct Load(Child);

impl Load {
    fn start(up: &Up, rate: u32, duration: Duration) -> Self {
        let child = Command::new(mastctl_bin())
            .args(["exec", "--state-file"])
            .arg(&up.state_file)
            .args(["client", "--"])
            .arg(mastctl_bin())
            .args([
                "x",
                "load",
                "http://nginx-svc/",
                "-q",
                "--rate",
                &rate.to_string(),
            ])
            .args(["--duration", &format!("{}s", duration.as_secs())])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start mastctl x load");
        Self(child)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        kill_group(&mut self.0);
    }
}

/// Copies the canary example, its programs on free ports (the example's fixed 8081–8083
/// would clash with another mesh running at the same time).
fn copy_canary(dir: &Dir) {
    let example = workspace_root().join("examples/canary");
    for name in ["services.yaml", "virtual-service.yaml", "workloads.yaml"] {
        let mut text = std::fs::read_to_string(example.join(name)).unwrap();
        for port in ["8081", "8082", "8083"] {
            text = text.replace(&format!("port: {port}"), &format!("port: {}", free_port()));
        }
        dir.write(name, &text);
    }
}

/// The canary VirtualService with its 80/20 route aborted: 100 % answered 503 by the client's
/// sidecar (Istio's fault injection).
fn with_fault(vs: &str) -> String {
    let route = "    - route:\n        - destination:\n            host: nginx-svc-1.";
    let faulted = "    - fault:\n        abort:\n          percentage:\n            value: 100\n          httpStatus: 503\n      route:\n        - destination:\n            host: nginx-svc-1.";
    assert!(
        vs.contains(route),
        "the canary VirtualService changed shape:\n{vs}"
    );
    vs.replace(route, faulted)
}

/// The dashboard URL of the running mesh, from the state file (30 s at most).
fn dashboard_url(up: &Up) -> String {
    let mut url = String::new();
    wait_for(
        || {
            url = up.state()["dashboard"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            !url.is_empty()
        },
        Duration::from_secs(30),
    );
    assert!(
        url.starts_with("http://"),
        "no dashboard URL in the state file ({url:?}):\n{}\n{}",
        up.stdout(),
        tail(&up.stderr())
    );
    url
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

fn run_phase(url: &str, phase: &str, out: &Path, up: &Up) {
    let out = out.to_string_lossy();
    let (ok, log) = node(
        "dashboard.mjs",
        &["--url", url, "--phase", phase, "--out", &out],
    );
    println!("--- dashboard.mjs --phase {phase}\n{log}");
    assert!(
        ok,
        "the dashboard's {phase} checks failed (screenshots in {out}):\n{log}\n--- mastctl up stderr (last lines)\n{}",
        tail(&up.stderr())
    );
}

#[test]
fn dashboard_shows_the_canary_graph_and_a_fault_turns_its_edge_red() {
    if let Some(why) = missing_browser() {
        eprintln!("skipped: {why}");
        return;
    }
    let Some(dir) = Dir::for_up("dashboard") else {
        return;
    };
    copy_canary(&dir);
    let mut up = Up::start(&dir, &[]);
    up.wait_ready();
    let url = dashboard_url(&up);
    println!("dashboard at {url}");
    let out = artifacts();
    let load = Load::start(&up, 20, Duration::from_secs(600));

    run_phase(&url, "before", &out, &up);
    let vs = std::fs::read_to_string(dir.join("virtual-service.yaml")).unwrap();
    dir.write("virtual-service.yaml", &with_fault(&vs));
    run_phase(&url, "fault", &out, &up);

    drop(load);
    assert_eq!(up.interrupt(), Some(0), "{}", tail(&up.stderr()));
}

/// The page's pure helpers (formats, labels, health thresholds, layout, span tree) in Node.
#[test]
fn dashboard_page_helpers() {
    if !Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("skipped: node is missing (apt-get install nodejs npm)");
        return;
    }
    let (ok, log) = node("units.mjs", &[]);
    println!("{log}");
    assert!(ok, "the page's helpers failed:\n{log}");
}

/// The page alone against the stand-in API (no mesh): every tab renders, clicks, live
/// updates, the banner on API errors, polling without server-sent events.
#[test]
fn dashboard_page_works_against_a_stand_in_api() {
    if let Some(why) = missing_browser() {
        eprintln!("skipped: {why}");
        return;
    }
    let out = artifacts();
    let (ok, log) = node("page.mjs", &["--out", &out.to_string_lossy()]);
    println!("{log}");
    assert!(ok, "the page checks failed:\n{log}");
}
