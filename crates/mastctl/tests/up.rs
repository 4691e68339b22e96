//! `mastctl up` and `mastctl exec` driven as a user drives them: a subprocess on a folder of
//! YAML, its printed table, `mastctl exec client -- curl …` through the mesh, live edits,
//! jobs, Ctrl-C. Every scenario runs twice: `mast::<scenario>` on mast-proxy sidecars and
//! `envoy::<scenario>` on Envoy through mast-agent (skipped, with the reason printed, when
//! Envoy is not found: `$MAST_ENVOY`, `.venv/bin/envoy`, PATH); `mixed_*` runs both in one
//! mesh through the `mast.dev/proxy` annotation. Needs `cargo build -p mastd -p mast-proxy
//! -p mast-agent` next to mastctl.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::time::{Duration, Instant};

use mast_test_support::{free_port, wait_for};
use up_support::{
    Dir, Proxy, Up, admin_stat, echo_workload, job_workload, listening_ports, on_proxy, service,
    sleeper, table_proxy, with_descendants, workloads_running,
};

/// Two `#[test]`s per scenario: `mast::<scenario>` and `envoy::<scenario>`.
macro_rules! on_both_proxies {
    ($($scenario:ident),* $(,)?) => {
        /// The scenarios on mast-proxy sidecars (the default).
        mod mast {
            $(#[test]
            fn $scenario() {
                super::$scenario(&super::Proxy::Mast);
            })*
        }
        /// The scenarios on Envoy sidecars.
        mod envoy {
            $(#[test]
            fn $scenario() {
                if let Some(envoy) = super::Proxy::envoy() {
                    super::$scenario(&envoy);
                }
            })*
        }
    };
}

on_both_proxies!(
    exec_reaches_a_service_and_ctrl_c_leaves_nothing,
    workloads_added_and_removed_live,
    a_crashing_workload_is_restarted_with_back_off,
    exit_with_jobs_returns_the_job_status_after_it_used_the_mesh,
    a_workload_gets_traffic_only_while_its_program_listens,
    a_readiness_probe_takes_traffic_away_and_gives_it_back,
    a_bad_file_is_reported_and_the_rest_keeps_running,
    errors_in_the_folder_stop_it_before_anything_starts,
    two_meshes_in_different_folders_run_at_once,
    canary_like_mesh_ready_time_and_memory,
);

fn mesh_folder(dir: &Dir, message: &str) {
    let port = free_port();
    dir.write(
        "mesh.yaml",
        &[
            service("web", "app: web", port),
            echo_workload("web-1", "app: web", port, message),
            sleeper("client"),
        ]
        .join("---\n"),
    );
}

fn curl(up: &Up, from: &str, url: &str) -> String {
    up.exec(from, &["curl", "-s", "-m", "5", url])
        .trim()
        .to_owned()
}

/// Interrupts `up` and checks that none of `pids` runs and none of `ports` is bound.
fn interrupt_leaves_nothing(up: &mut Up, pids: &[u32], ports: &[u16]) {
    assert_eq!(up.interrupt(), Some(0), "{}", up.stderr());
    for pid in pids {
        let gone = wait_for(|| !up_support::alive(*pid), Duration::from_secs(2));
        assert!(gone, "pid {pid} is still running");
    }
    for port in ports {
        if std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok() {
            continue;
        }
        // Every process of the mesh is gone (above), so a process still listening on the port
        // is another test's that the kernel gave the freed (ephemeral) port to; unless it is
        // one of ours or runs on this mesh's folder.
        let owner = mast_test_support::procfs::pid_listening_on(*port);
        let ours = owner.is_some_and(|p| {
            pids.contains(&p)
                || std::fs::read(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&up.dir_name()))
        });
        assert!(!ours, "port {port} still bound by pid {owner:?}");
        eprintln!("port {port} was taken again by another process ({owner:?})");
    }
    assert!(!up.state_file.exists(), "the state file is removed");
}

fn exec_reaches_a_service_and_ctrl_c_leaves_nothing(proxy: &Proxy) {
    let Some(dir) = Dir::for_up("basic") else {
        return;
    };
    mesh_folder(&dir, "hello web-1");
    let mut up = Up::start_on(&dir, proxy, &[]);
    up.wait_ready();
    let table = up.stdout();
    for want in [
        "WORKLOAD", "OUTBOUND", "INBOUND", "client", "web-1", "Running", "mastd:",
    ] {
        assert!(table.contains(want), "{want:?} missing from:\n{table}");
    }
    for w in ["web-1", "client"] {
        assert_eq!(
            table_proxy(&table, w).as_deref(),
            Some(proxy.name()),
            "{table}"
        );
    }
    assert_eq!(curl(&up, "client", "http://web/"), "hello web-1");
    let status = up.mastctl(&["proxy-status"]);
    assert!(
        status.contains("client.default") && status.contains("web-1.default"),
        "{status}"
    );
    let (state_pids, mut ports) = up.pids_and_ports();
    assert!(
        state_pids.len() >= 5,
        "mastd, 2 sidecars, 2 programs: {state_pids:?}"
    );
    // Everything `mastctl up` started, Envoy under mast-agent included, and all their ports.
    let pids = with_descendants(&[up.pid()]);
    let missing: Vec<&u32> = state_pids.iter().filter(|p| !pids.contains(p)).collect();
    assert!(missing.is_empty(), "not started by mastctl up: {missing:?}");
    let pids: Vec<u32> = pids.into_iter().filter(|p| *p != up.pid()).collect();
    ports.extend(listening_ports(&pids));
    interrupt_leaves_nothing(&mut up, &pids, &ports);
}

fn workloads_added_and_removed_live(proxy: &Proxy) {
    let Some(dir) = Dir::for_up("live") else {
        return;
    };
    mesh_folder(&dir, "hello web-1");
    let mut up = Up::start_on(&dir, proxy, &[]);
    up.wait_ready();
    let port2 = free_port();
    // Its own Service: workloads share 127.0.0.1, so a second replica cannot take web-1's port.
    dir.write(
        "web-2.yaml",
        &[
            service("web2", "app: web2", port2),
            echo_workload("web-2", "app: web2", port2, "hello web-2"),
        ]
        .join("---\n"),
    );
    let started = wait_for(
        || workloads_running(&up.state(), &["web-1", "web-2", "client"]),
        Duration::from_secs(20),
    );
    assert!(started, "web-2 did not start: {}", up.stderr());
    let answered_by_2 = wait_for(
        || {
            up.exec("client", &["curl", "-s", "-m", "2", "http://web2/"])
                .contains("hello web-2")
        },
        Duration::from_secs(15),
    );
    assert!(answered_by_2, "web-2 never answered through the mesh");
    let web2 = up.workload("web-2");
    let web2_pids: Vec<u32> = ["pid", "sidecar_pid"]
        .iter()
        .filter_map(|k| web2[*k].as_u64().map(|p| p as u32))
        .collect();
    assert_eq!(web2_pids.len(), 2, "{web2}");
    let web2_pids = with_descendants(&web2_pids);
    std::fs::remove_file(dir.join("web-2.yaml")).unwrap();
    let removed = wait_for(
        || up.workload_opt("web-2").is_none(),
        Duration::from_secs(20),
    );
    assert!(removed, "web-2 is still in the state: {}", up.stderr());
    for pid in web2_pids {
        let gone = wait_for(|| !up_support::alive(pid), Duration::from_secs(5));
        assert!(gone, "pid {pid} of web-2 is left");
    }
    for _ in 0..5 {
        assert_eq!(curl(&up, "client", "http://web/"), "hello web-1");
    }
    let err = up.stderr();
    assert!(err.contains("web-2.default: stopping (removed)"), "{err}");
    assert_eq!(up.interrupt(), Some(0));
}

fn a_crashing_workload_is_restarted_with_back_off(proxy: &Proxy) {
    let Some(dir) = Dir::for_up("crash") else {
        return;
    };
    dir.write(
        "crash.yaml",
        "apiVersion: mast.dev/v1alpha1\nkind: LocalWorkload\nmetadata: {name: crasher}\nspec:\n  command: [sh, -c, 'echo up; exit 3']\n",
    );
    let mut up = Up::start_on(&dir, proxy, &[]);
    up.wait_started();
    let sidecar = up.workload("crasher")["sidecar_pid"].as_u64();
    let restarted = wait_for(
        || up.workload("crasher")["restarts"].as_u64() >= Some(2),
        Duration::from_secs(15),
    );
    assert!(restarted, "not restarted twice: {}", up.stderr());
    let err = up.stderr();
    assert!(
        err.contains("crasher.default: exited with status 3; restarting in 1s"),
        "{err}"
    );
    assert!(err.contains("restarting in 2s"), "{err}");
    assert!(up.stdout().contains("[crasher] up"), "{}", up.stdout());
    // The program restarts; its sidecar stays.
    assert_eq!(up.workload("crasher")["sidecar_pid"].as_u64(), sidecar);
    assert!(sidecar.is_some_and(|p| up_support::alive(p as u32)));
    assert_eq!(up.interrupt(), Some(0));
}

fn exit_with_jobs_returns_the_job_status_after_it_used_the_mesh(proxy: &Proxy) {
    let Some(dir) = Dir::for_up("job") else {
        return;
    };
    let port = free_port();
    dir.write(
        "mesh.yaml",
        &[
            service("web", "app: web", port),
            echo_workload("web-1", "app: web", port, "hello web-1"),
            job_workload(
                "job",
                // -f: a 503 while web-1's sidecar is still starting is retried, not printed.
                "curl -sf -m 5 --retry 20 --retry-delay 0 --retry-all-errors http://web/; exit 7",
            ),
        ]
        .join("---\n"),
    );
    let mut up = Up::start_on(&dir, proxy, &["--exit-with-jobs"]);
    let code = up.wait_exit(Duration::from_secs(40));
    assert_eq!(code, Some(7), "{}", up.stderr());
    assert!(up.stdout().contains("[job] hello web-1"), "{}", up.stdout());
    assert!(!up.state_file.exists());
}

/// A slow server (listening 2 s after it starts) and a replica that never listens: the job
/// starts once the server listens and its very first request (no retry) and every later one
/// reach the server; the replica whose program keeps crashing never turns Healthy, so the
/// client's sidecar holds the server's endpoint and not the replica's.
fn a_workload_gets_traffic_only_while_its_program_listens(proxy: &Proxy) {
    let Some(dir) = Dir::for_up("health") else {
        return;
    };
    let (port, other) = (free_port(), free_port());
    let mastctl = up_support::mastctl_bin();
    let requests = 20;
    dir.write(
        "mesh.yaml",
        &[
            // No targetPort: each replica's own port (both cannot listen on one here).
            "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80}]\n".to_owned(),
            format!(
                "apiVersion: mast.dev/v1alpha1\nkind: LocalWorkload\nmetadata:\n  name: web-slow\n  labels: {{app: web}}\nspec:\n  command: [sh, -c, 'sleep 2; exec {} x echo --message slow']\n  port: {port}\n",
                mastctl.display()
            ),
            format!(
                "apiVersion: mast.dev/v1alpha1\nkind: LocalWorkload\nmetadata:\n  name: web-down\n  labels: {{app: web}}\nspec:\n  command: [sh, -c, 'sleep 1; exit 1']\n  port: {other}\n"
            ),
            job_workload(
                "job",
                &format!(
                    "for i in $(seq {requests}); do echo \"got $(curl -s -m 5 http://web/)\"; done"
                ),
            ),
            sleeper("client"),
        ]
        .join("---\n"),
    );
    let mut up = Up::start_on(&dir, proxy, &[]);
    up.wait_started();
    let done = wait_for(
        || up.workload("job")["status"] == "Completed",
        Duration::from_secs(30),
    );
    assert!(done, "{}\n{}", up.workload("job"), up.stderr());
    let out = up.stdout();
    let answers: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("[job] got "))
        .collect();
    assert_eq!(answers.len(), requests, "{out}");
    assert!(
        answers.iter().all(|a| *a == "slow"),
        "every request reached the listening server: {answers:?}"
    );
    let listener = |w: &str| {
        up.workload(w)["inbound"]
            .as_object()
            .and_then(|m| m.values().next())
            .and_then(serde_json::Value::as_u64)
            .unwrap_or_else(|| panic!("{w}'s inbound listener: {}", up.workload(w)))
    };
    let (slow, down) = (listener("web-slow"), listener("web-down"));
    let endpoints = up.mastctl(&["proxy-config", "endpoint", "client"]);
    let web: Vec<&str> = endpoints
        .lines()
        .filter(|l| l.contains("||web.default.svc.cluster.local"))
        .collect();
    assert!(
        web.len() == 1 && web[0].contains(&format!("127.0.0.1:{slow} ")),
        "the listening server is the one endpoint, not the replica at {down}: {endpoints}"
    );
    assert!(
        up.stderr()
            .contains("web-down.default: exited with status 1"),
        "{}",
        up.stderr()
    );
    assert_eq!(up.interrupt(), Some(0));
}

/// A Python server whose `/ready` answers 200 while the file `argv[1]` exists, else 503;
/// every other path answers `hello web-1`.
const READY_SERVER: &str = r#"
import http.server, os, sys
flag = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/ready":
            code = 200 if os.path.exists(flag) else 503
            body = b"ready\n" if code == 200 else b"not ready\n"
        else:
            code, body = 200, b"hello web-1\n"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// Kubernetes' `readinessProbe` on a LocalWorkload: while its `httpGet` fails the replica
/// gets no traffic (the other replica answers everything), and it gets traffic back once
/// the probe passes again; mastctl says both.
fn a_readiness_probe_takes_traffic_away_and_gives_it_back(proxy: &Proxy) {
    let Some(dir) = Dir::for_up("readiness") else {
        return;
    };
    let (port, other) = (free_port(), free_port());
    let flag = dir.join("web-1-ready");
    std::fs::write(&flag, "").unwrap();
    dir.write("ready_server.py", READY_SERVER);
    dir.write(
        "mesh.yaml",
        &[
            "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80}]\n".to_owned(),
            format!(
                "apiVersion: mast.dev/v1alpha1\nkind: LocalWorkload\nmetadata:\n  name: web-1\n  labels: {{app: web}}\nspec:\n  command: [python3, {}, {}]\n  port: {port}\n  readinessProbe:\n    httpGet: {{path: /ready}}\n    periodSeconds: 1\n    failureThreshold: 1\n",
                dir.join("ready_server.py").display(),
                flag.display()
            ),
            echo_workload("web-2", "app: web", other, "hello web-2"),
            sleeper("client"),
        ]
        .join("---\n"),
    );
    let mut up = Up::start_on(&dir, proxy, &[]);
    up.wait_ready();
    // Ten requests from the client, again until `want` holds of them (10 s at most).
    let answers_until = |up: &Up, want: &dyn Fn(&[String]) -> bool| {
        let mut got = Vec::new();
        let ok = wait_for(
            || {
                got = (0..10).map(|_| curl(up, "client", "http://web/")).collect();
                want(&got)
            },
            Duration::from_secs(10),
        );
        (ok, got)
    };
    let has = |got: &[String], who: &str| got.iter().any(|a| a == who);
    let (both, got) = answers_until(&up, &|g| has(g, "hello web-1") && has(g, "hello web-2"));
    assert!(
        both,
        "both replicas answer while ready: {got:?}\n{}",
        up.stderr()
    );
    std::fs::remove_file(&flag).unwrap();
    let (only_two, got) = answers_until(&up, &|g| g.iter().all(|a| a == "hello web-2"));
    assert!(
        only_two,
        "web-1 unready gets nothing: {got:?}\n{}",
        up.stderr()
    );
    assert!(
        up.stderr()
            .contains("web-1.default: its readiness probe fails"),
        "{}",
        up.stderr()
    );
    std::fs::write(&flag, "").unwrap();
    let (back, got) = answers_until(&up, &|g| has(g, "hello web-1"));
    assert!(
        back,
        "web-1 ready again gets traffic: {got:?}\n{}",
        up.stderr()
    );
    assert!(
        up.stderr()
            .contains("web-1.default: its readiness probe passes again")
    );
    assert_eq!(up.interrupt(), Some(0));
}

fn a_bad_file_is_reported_and_the_rest_keeps_running(proxy: &Proxy) {
    let Some(dir) = Dir::for_up("bad") else {
        return;
    };
    mesh_folder(&dir, "hello web-1");
    let mut up = Up::start_on(&dir, proxy, &[]);
    up.wait_ready();
    dir.write(
        "bad.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bad}\nspec:\n  hosts: [web]\n  http:\n  - route:\n    - destination: {host: web}\n      weight: -5\n",
    );
    let mesh = std::fs::read_to_string(dir.join("mesh.yaml")).unwrap();
    dir.write("mesh.yaml", &format!("{mesh}\n  bad: [unclosed\n"));
    let reported = wait_for(
        || up.stderr().contains("bad.yaml:") && up.stderr().contains("mesh.yaml"),
        Duration::from_secs(10),
    );
    assert!(reported, "{}", up.stderr());
    std::thread::sleep(Duration::from_millis(500));
    let running = workloads_running(&up.state(), &["web-1", "client"]);
    assert!(running, "{}", up.stderr());
    assert_eq!(curl(&up, "client", "http://web/"), "hello web-1");
    assert_eq!(up.interrupt(), Some(0));
}

fn errors_in_the_folder_stop_it_before_anything_starts(proxy: &Proxy) {
    let Some(dir) = Dir::for_up("errors") else {
        return;
    };
    dir.write(
        "w.yaml",
        "apiVersion: mast.dev/v1alpha1\nkind: LocalWorkload\nmetadata: {name: w}\nspec:\n  command: []\n",
    );
    let mut up = Up::start_on(&dir, proxy, &[]);
    let code = up.wait_exit(Duration::from_secs(20));
    assert_ne!(code, Some(0));
    let (out, err) = (up.stdout(), up.stderr());
    assert!(out.contains("w.yaml"), "{out}\n{err}");
    assert!(!out.contains("WORKLOAD"), "nothing started: {out}");
    assert!(!up.state_file.exists());
}

fn two_meshes_in_different_folders_run_at_once(proxy: &Proxy) {
    let (Some(a), Some(b)) = (Dir::for_up("two-a"), Dir::for_up("two-b")) else {
        return;
    };
    mesh_folder(&a, "hello a");
    mesh_folder(&b, "hello b");
    let mut up_a = Up::start_on(&a, proxy, &[]);
    let mut up_b = Up::start_on(&b, proxy, &[]);
    up_a.wait_ready();
    up_b.wait_ready();
    assert_eq!(curl(&up_a, "client", "http://web/"), "hello a");
    assert_eq!(curl(&up_b, "client", "http://web/"), "hello b");
    let (_, ports_a) = up_a.pids_and_ports();
    let (_, ports_b) = up_b.pids_and_ports();
    let shared: Vec<&u16> = ports_a.iter().filter(|p| ports_b.contains(p)).collect();
    assert!(shared.is_empty(), "both meshes use {shared:?}");
    assert_eq!(up_a.interrupt(), Some(0));
    assert_eq!(up_b.interrupt(), Some(0));
}

/// Start-up time and idle memory of a canary-like mesh (two versions, a client, mastd).
fn canary_like_mesh_ready_time_and_memory(proxy: &Proxy) {
    let Some(dir) = Dir::for_up("canary") else {
        return;
    };
    let (p1, p2) = (free_port(), free_port());
    dir.write(
        "mesh.yaml",
        &[
            service("nginx-svc-1", "web: nginx-1", p1),
            service("nginx-svc-2", "web: nginx-2", p2),
            echo_workload("nginx-1", "web: nginx-1", p1, "hello nginx-1"),
            echo_workload("nginx-2", "web: nginx-2", p2, "hello nginx-2"),
            sleeper("client"),
            sleeper("other"),
        ]
        .join("---\n"),
    );
    let started = Instant::now();
    let mut up = Up::start_on(&dir, proxy, &[]);
    up.wait_ready();
    let wall = started.elapsed();
    let line = up
        .stdout()
        .lines()
        .find(|l| l.starts_with("all workloads ready in"))
        .map(str::to_owned);
    std::thread::sleep(Duration::from_secs(1));
    let state = up.state();
    let sidecars: Vec<u32> = state["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["sidecar_pid"].as_u64().map(|p| p as u32))
        .collect();
    // With Envoy, the sidecar is mast-agent and the Envoy below it.
    let mut pids = with_descendants(&sidecars);
    pids.push(state["mastd"]["pid"].as_u64().unwrap() as u32);
    let rss: u64 = pids.iter().map(|p| up_support::rss_kib(*p)).sum();
    println!(
        "canary-like mesh on {}: {} (wall {} ms incl. process start); mastd + {} sidecars ({} processes) RSS {:.1} MiB",
        proxy.name(),
        line.unwrap_or_default(),
        wall.as_millis(),
        sidecars.len(),
        pids.len(),
        rss as f64 / 1024.0
    );
    if matches!(proxy, Proxy::Mast) {
        // The issue's budget (100 MiB, mast-proxy) is for release builds; debug ones are larger.
        let budget = if cfg!(debug_assertions) { 160 } else { 100 };
        assert!(rss < budget * 1024, "idle mesh uses {rss} KiB");
    }
    assert_eq!(up.interrupt(), Some(0));
}

#[test]
fn mixed_mesh_envoy_annotated_among_mast_proxy() {
    if let Some(envoy) = Proxy::envoy() {
        mixed_mesh(&Proxy::Mast, &envoy);
    }
}

#[test]
fn mixed_mesh_mast_annotated_among_envoy() {
    if let Some(envoy) = Proxy::envoy() {
        mixed_mesh(&envoy, &Proxy::Mast);
    }
}

/// One `mastctl up` with `default` sidecars (`--proxy`) and one workload annotated with
/// `mast.dev/proxy: <other>`: the table shows both, and requests go both ways between a
/// program behind one kind and a program behind the other, through both sidecars.
fn mixed_mesh(default: &Proxy, other: &Proxy) {
    let Some(dir) = Dir::for_up("mixed") else {
        return;
    };
    let (pd, po) = (free_port(), free_port());
    let annotated = on_proxy(
        &echo_workload("web-o", "app: web-o", po, "hello web-o"),
        other.name(),
    );
    dir.write(
        "mesh.yaml",
        &[
            service("web-d", "app: web-d", pd),
            service("web-o", "app: web-o", po),
            echo_workload("web-d", "app: web-d", pd, "hello web-d"),
            annotated,
            sleeper("client"),
        ]
        .join("---\n"),
    );
    let envoy = match (default, other) {
        (Proxy::Envoy(e), _) | (_, Proxy::Envoy(e)) => e.as_os_str(),
        _ => panic!("a mixed mesh needs Envoy"),
    };
    let mut up = Up::start_env(&dir, &default.up_args(), &[("MAST_ENVOY", envoy)]);
    up.wait_ready();
    let table = up.stdout();
    for (w, p) in [("web-d", default), ("client", default), ("web-o", other)] {
        assert_eq!(table_proxy(&table, w).as_deref(), Some(p.name()), "{table}");
        assert_eq!(up.workload(w)["proxy"], p.name(), "{}", up.workload(w));
    }
    for (from, to) in [("web-d", "web-o"), ("web-o", "web-d"), ("client", "web-o")] {
        let answer = curl(&up, from, &format!("http://{to}/"));
        assert_eq!(
            answer,
            format!("hello {to}"),
            "{from} -> {to}: {}",
            up.stderr()
        );
    }
    // Each request left through the caller's sidecar and entered through the callee's.
    for (from, to, port) in [("web-d", "web-o", po), ("web-o", "web-d", pd)] {
        let out = up.workload(from)["admin"].as_u64().unwrap() as u16;
        let inb = up.workload(to)["admin"].as_u64().unwrap() as u16;
        let outbound = format!("outbound|80||{to}.");
        let inbound = format!("inbound|{port}|");
        let counted = wait_for(
            || {
                admin_stat(out, &[&outbound, ".upstream_rq_total"]) >= 1
                    && admin_stat(inb, &[&inbound, ".upstream_rq_total"]) >= 1
            },
            Duration::from_secs(5),
        );
        assert!(counted, "{from} -> {to} not counted by both sidecars");
    }
    let pids = with_descendants(&[up.pid()]);
    let pids: Vec<u32> = pids.into_iter().filter(|p| *p != up.pid()).collect();
    let ports = listening_ports(&pids);
    interrupt_leaves_nothing(&mut up, &pids, &ports);
}
