//! `mastctl up` and `mastctl exec` driven as a user drives them: a subprocess on a folder of
//! YAML, its printed table, `mastctl exec client -- curl …` through the mesh, live edits,
//! jobs, Ctrl-C. Needs mastd and mast-proxy built next to mastctl (`cargo build -p mastd -p
//! mast-proxy`); Envoy cases run when Envoy is found (`$MAST_ENVOY`, `.venv/bin/envoy`, PATH).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::time::{Duration, Instant};

use mast_test_support::{free_port, wait_for};
use up_support::{Dir, Up, echo_workload, job_workload, service, sleeper, workloads_running};

fn mesh_folder(dir: &Dir) -> u16 {
    let port = free_port();
    dir.write(
        "mesh.yaml",
        &[
            service("web", "app: web", port),
            echo_workload("web-1", "app: web", port, "hello web-1"),
            sleeper("client"),
        ]
        .join("---\n"),
    );
    port
}

#[test]
fn up_then_exec_reaches_a_service_through_the_mesh_and_ctrl_c_leaves_nothing() {
    let Some(dir) = Dir::for_up("basic") else {
        return;
    };
    mesh_folder(&dir);
    let mut up = Up::start(&dir, &[]);
    up.wait_ready();
    let table = up.stdout();
    for want in [
        "WORKLOAD", "OUTBOUND", "INBOUND", "client", "web-1", "Running", "mastd:",
    ] {
        assert!(table.contains(want), "{want:?} missing from:\n{table}");
    }
    let out = up.exec("client", &["curl", "-s", "-m", "5", "http://web/"]);
    assert_eq!(out.trim(), "hello web-1");
    let status = up.mastctl(&["proxy-status"]);
    assert!(
        status.contains("client.default") && status.contains("web-1.default"),
        "{status}"
    );
    let (pids, ports) = up.pids_and_ports();
    assert!(pids.len() >= 5, "mastd, 2 sidecars, 2 programs: {pids:?}");
    let code = up.interrupt();
    assert_eq!(code, Some(0), "{}", up.stderr());
    for pid in &pids {
        assert!(!up_support::alive(*pid), "pid {pid} is still running");
    }
    for port in &ports {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok(),
            "port {port} still bound"
        );
    }
    assert!(!up.state_file.exists(), "the state file is removed");
}

#[test]
fn workloads_added_and_removed_live() {
    let Some(dir) = Dir::for_up("live") else {
        return;
    };
    mesh_folder(&dir);
    let mut up = Up::start(&dir, &[]);
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
    assert!(
        wait_for(
            || workloads_running(&up.state(), &["web-1", "web-2", "client"]),
            Duration::from_secs(20)
        ),
        "web-2 did not start: {}",
        up.stderr()
    );
    let answered_by_2 = wait_for(
        || {
            up.exec("client", &["curl", "-s", "-m", "2", "http://web2/"])
                .contains("hello web-2")
        },
        Duration::from_secs(15),
    );
    assert!(answered_by_2, "web-2 never answered through the mesh");
    let web2 = up.workload("web-2");
    std::fs::remove_file(dir.join("web-2.yaml")).unwrap();
    assert!(
        wait_for(
            || up.workload_opt("web-2").is_none(),
            Duration::from_secs(20)
        ),
        "web-2 is still in the state: {}",
        up.stderr()
    );
    for pid in ["pid", "sidecar_pid"]
        .iter()
        .filter_map(|k| web2[*k].as_u64())
    {
        assert!(
            wait_for(|| !up_support::alive(pid as u32), Duration::from_secs(5)),
            "pid {pid} of web-2 is left"
        );
    }
    for _ in 0..5 {
        assert_eq!(
            up.exec("client", &["curl", "-s", "-m", "3", "http://web/"])
                .trim(),
            "hello web-1"
        );
    }
    assert!(
        up.stderr().contains("web-2.default: stopping (removed)"),
        "{}",
        up.stderr()
    );
    assert_eq!(up.interrupt(), Some(0));
}

#[test]
fn a_crashing_workload_is_restarted_with_back_off() {
    let Some(dir) = Dir::for_up("crash") else {
        return;
    };
    dir.write(
        "crash.yaml",
        "apiVersion: mast.dev/v1alpha1\nkind: LocalWorkload\nmetadata: {name: crasher}\nspec:\n  command: [sh, -c, 'echo up; exit 3']\n",
    );
    let mut up = Up::start(&dir, &[]);
    up.wait_ready();
    assert!(
        wait_for(
            || up.workload("crasher")["restarts"].as_u64() >= Some(2),
            Duration::from_secs(15)
        ),
        "not restarted twice: {}",
        up.stderr()
    );
    let err = up.stderr();
    assert!(
        err.contains("crasher.default: exited with status 3; restarting in 1s"),
        "{err}"
    );
    assert!(err.contains("restarting in 2s"), "{err}");
    assert!(up.stdout().contains("[crasher] up"), "{}", up.stdout());
    assert_eq!(up.interrupt(), Some(0));
}

#[test]
fn exit_with_jobs_returns_the_job_status_after_it_used_the_mesh() {
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
                "curl -s -m 5 --retry 20 --retry-delay 0 --retry-all-errors http://web/; exit 7",
            ),
        ]
        .join("---\n"),
    );
    let mut up = Up::start(&dir, &["--exit-with-jobs"]);
    let code = up.wait_exit(Duration::from_secs(40));
    assert_eq!(code, Some(7), "{}", up.stderr());
    assert!(up.stdout().contains("[job] hello web-1"), "{}", up.stdout());
    assert!(!up.state_file.exists());
}

#[test]
fn a_bad_file_is_reported_and_the_rest_keeps_running() {
    let Some(dir) = Dir::for_up("bad") else {
        return;
    };
    mesh_folder(&dir);
    let mut up = Up::start(&dir, &[]);
    up.wait_ready();
    dir.write(
        "bad.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bad}\nspec:\n  hosts: [web]\n  http:\n  - route:\n    - destination: {host: web}\n      weight: -5\n",
    );
    dir.write(
        "mesh.yaml",
        &format!(
            "{}\n  bad: [unclosed\n",
            std::fs::read_to_string(dir.join("mesh.yaml")).unwrap()
        ),
    );
    let reported = wait_for(
        || up.stderr().contains("bad.yaml:") && up.stderr().contains("mesh.yaml"),
        Duration::from_secs(10),
    );
    assert!(reported, "{}", up.stderr());
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        workloads_running(&up.state(), &["web-1", "client"]),
        "{}",
        up.stderr()
    );
    assert_eq!(
        up.exec("client", &["curl", "-s", "-m", "3", "http://web/"])
            .trim(),
        "hello web-1"
    );
    assert_eq!(up.interrupt(), Some(0));
}

#[test]
fn errors_in_the_folder_stop_it_before_anything_starts() {
    let Some(dir) = Dir::for_up("errors") else {
        return;
    };
    dir.write(
        "w.yaml",
        "apiVersion: mast.dev/v1alpha1\nkind: LocalWorkload\nmetadata: {name: w}\nspec:\n  command: []\n",
    );
    let mut up = Up::start(&dir, &[]);
    let code = up.wait_exit(Duration::from_secs(20));
    assert_ne!(code, Some(0));
    assert!(
        up.stdout().contains("w.yaml"),
        "{}\n{}",
        up.stdout(),
        up.stderr()
    );
}

#[test]
fn two_meshes_in_different_folders_run_at_once() {
    let Some(a) = Dir::for_up("two-a") else {
        return;
    };
    let Some(b) = Dir::for_up("two-b") else {
        return;
    };
    mesh_folder(&a);
    let port = free_port();
    b.write(
        "mesh.yaml",
        &[
            service("web", "app: web", port),
            echo_workload("web-1", "app: web", port, "hello b"),
            sleeper("client"),
        ]
        .join("---\n"),
    );
    let mut up_a = Up::start(&a, &[]);
    let mut up_b = Up::start(&b, &[]);
    up_a.wait_ready();
    up_b.wait_ready();
    assert_eq!(
        up_a.exec("client", &["curl", "-s", "-m", "5", "http://web/"])
            .trim(),
        "hello web-1"
    );
    assert_eq!(
        up_b.exec("client", &["curl", "-s", "-m", "5", "http://web/"])
            .trim(),
        "hello b"
    );
    assert_eq!(up_a.interrupt(), Some(0));
    assert_eq!(up_b.interrupt(), Some(0));
}

#[test]
fn envoy_sidecars_work_the_same() {
    let Some(envoy) = mast_test_support::envoy_binary() else {
        eprintln!("skipped: Envoy not found");
        return;
    };
    let Some(dir) = Dir::for_up("envoy") else {
        return;
    };
    mesh_folder(&dir);
    let mut up = Up::start_env(
        &dir,
        &["--proxy", "envoy"],
        &[("MAST_ENVOY", envoy.as_os_str())],
    );
    up.wait_ready();
    assert!(up.stdout().contains("envoy"), "{}", up.stdout());
    assert_eq!(
        up.exec("client", &["curl", "-s", "-m", "5", "http://web/"])
            .trim(),
        "hello web-1"
    );
    let (pids, _) = up.pids_and_ports();
    assert_eq!(up.interrupt(), Some(0), "{}", up.stderr());
    std::thread::sleep(Duration::from_millis(200));
    for pid in &pids {
        assert!(!up_support::alive(*pid), "pid {pid} is still running");
    }
}

/// Start-up time and idle memory of a canary-like mesh (two versions, a client, mastd).
#[test]
fn canary_like_mesh_ready_time_and_memory() {
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
    let mut up = Up::start(&dir, &[]);
    up.wait_ready();
    let wall = started.elapsed();
    let line = up
        .stdout()
        .lines()
        .find(|l| l.starts_with("all workloads ready in"))
        .map(str::to_owned);
    std::thread::sleep(Duration::from_secs(1));
    let state = up.state();
    let mut pids: Vec<u32> = state["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["sidecar_pid"].as_u64().map(|p| p as u32))
        .collect();
    pids.push(state["mastd"]["pid"].as_u64().unwrap() as u32);
    let rss: u64 = pids.iter().map(|p| up_support::rss_kib(*p)).sum();
    println!(
        "canary-like mesh: {} (wall {} ms incl. process start); mastd + {} sidecars RSS {:.1} MiB",
        line.unwrap_or_default(),
        wall.as_millis(),
        pids.len() - 1,
        rss as f64 / 1024.0
    );
    // The budget (100 MiB) is for release builds; debug binaries are larger.
    let budget = if cfg!(debug_assertions) { 160 } else { 100 };
    assert!(rss < budget * 1024, "idle mesh uses {rss} KiB");
    assert_eq!(up.interrupt(), Some(0));
}
