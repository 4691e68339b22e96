//! `mastctl up --capture namespaces`: the pod model on one machine. A copy of
//! `examples/canary` (files unchanged) runs with each workload in its own network namespace
//! (10.213.0.x behind a bridge at 10.213.0.1, where mastd's xDS listens), Istio's nat rules
//! written by the sidecar binary's init command, the sidecar as uid 1337 in iptables capture
//! mode, and the programs without any proxy setting. From `client`'s namespace (through
//! `mastctl exec`): `http://nginx-svc/` is split about 80/20 between nginx-1 and nginx-2 over
//! 100 requests, `vs-user: jicki` goes to nginx-3, a call to nginx-1's own address reaches its
//! program through its sidecar's inbound capture (the program sees the sidecar's 127.0.0.1
//! as peer, not the client), uid 1337's traffic is not captured (the same call by name
//! fails: the VIP exists only in the sidecar's routing), an ingress gateway on the host
//! (a `LocalGateway`, Istio's Gateway + VirtualService) reaches nginx-3's pod, and after Ctrl-C no namespace,
//! veth, bridge, `/etc/netns` entry or nat rule is left. On mast-proxy, and on Envoy when
//! found. Root only (with `ip`, `iptables-restore`, `setpriv`); skipped with the reason
//! otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::process::Command;
use std::time::Duration;

use up_support::{Dir, Proxy, Up};

/// One mesh at a time: they share 10.213.0.0/24.
static ONE_AT_A_TIME: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

/// `count` requests to `http://nginx-svc/` (with `vs-user: <header>` when given), one
/// answer per line, `ERR <reason>` for a failure; 5 s timeout each.
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

fn unavailable() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not root (network namespaces and iptables need it)".into());
    }
    for tool in [
        "ip",
        "iptables-restore",
        "iptables-save",
        "setpriv",
        "python3",
        "curl",
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    None
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Removes what a failed run may leave (mastctl's next start would too).
struct Leftovers(Vec<String>);

impl Drop for Leftovers {
    fn drop(&mut self) {
        for ns in &self.0 {
            if output("ip", &["netns", "list"]).contains(ns.as_str()) {
                let _ = Command::new("ip").args(["netns", "del", ns]).status();
            }
            let _ = std::fs::remove_dir_all(format!("/etc/netns/{ns}"));
            if let Some(id) = ns.split('-').nth(1) {
                let bridge = format!("mastbr{id}");
                if output("ip", &["-o", "link", "show"]).contains(&bridge) {
                    let _ = Command::new("ip").args(["link", "del", &bridge]).status();
                }
            }
        }
    }
}

/// Removes every namespaces-mode mesh's bridge and namespaces when dropped, even from a run
/// that failed before it could name them: the tests of this file take turns (one subnet per
/// machine), so whatever is there is theirs, and one failure must not fail the next test.
struct AllMeshes;

impl Drop for AllMeshes {
    fn drop(&mut self) {
        let netns = output("ip", &["netns", "list"]);
        for ns in netns.lines().filter_map(|l| l.split_whitespace().next()) {
            if ns.starts_with("mast-") {
                let _ = Command::new("ip").args(["netns", "del", ns]).status();
                let _ = std::fs::remove_dir_all(format!("/etc/netns/{ns}"));
            }
        }
        let links = output("ip", &["-o", "link", "show"]);
        for link in links.lines().filter_map(|l| l.split(':').nth(1)) {
            let link = link.trim().split('@').next().unwrap_or_default();
            if link.starts_with("mastbr") {
                let _ = Command::new("ip").args(["link", "del", link]).status();
            }
        }
    }
}

fn answers(up: &Up, count: usize, header: Option<&str>) -> Vec<String> {
    let n = count.to_string();
    let mut cmd = vec!["python3", "-c", COUNT, n.as_str()];
    cmd.extend(header);
    up.exec("client", &cmd).lines().map(str::to_owned).collect()
}

fn share(answers: &[String], of: &str) -> f64 {
    answers.iter().filter(|a| *a == of).count() as f64 / answers.len().max(1) as f64
}

/// The dashboard (on the host) reads each workload's metrics on Istio's status port 15020
/// at its namespace's address, as it would a pod's: the client's traffic to nginx-svc shows.
fn dashboard_sees_the_pods(up: &Up) {
    let url = up.state()["dashboard"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    assert!(!addr.is_empty(), "no dashboard URL in the state file");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let body = http_get(&addr, "/api/graph");
        let graph: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let seen = graph["edges"].as_array().is_some_and(|edges| {
            edges.iter().any(|e| {
                e["source"] == "workload:default/client" && e["rps"].as_f64().unwrap_or(0.0) > 0.0
            })
        });
        if seen {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dashboard shows no traffic from client: {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// A LocalGateway with Istio's ingress labels, its Service mapping port 80 to `port` on the
/// host, and a Gateway + VirtualService sending `canary.example.com` to nginx-svc-3.
fn ingress(port: u16) -> String {
    format!(
        "apiVersion: mast.dev/v1alpha1\nkind: LocalGateway\nmetadata:\n  name: ingress\n  namespace: istio-system\n  labels: {{istio: ingressgateway}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: istio-ingressgateway, namespace: istio-system}}\nspec:\n  selector: {{istio: ingressgateway}}\n  ports: [{{name: http2, port: 80, targetPort: {port}}}]\n---\n\
         apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: canary-gateway}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n  - port: {{number: 80, name: http, protocol: HTTP}}\n    hosts: [canary.example.com]\n---\n\
         apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: canary-ingress}}\nspec:\n  hosts: [canary.example.com]\n  gateways: [canary-gateway]\n  http:\n  - route:\n    - destination: {{host: nginx-svc-3}}\n"
    )
}

/// GETs `path` from `addr` (the answer ends with the connection); the body.
fn http_get(addr: &str, path: &str) -> String {
    http_get_host(addr, path, "dashboard")
}

/// [`http_get`] with `Host: host`.
fn http_get_host(addr: &str, path: &str, host: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    // HTTP/1.1: Envoy answers HTTP/1.0 with 426 (Istio leaves `accept_http_10` off).
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

/// The bridge keeps one MAC as pods join (a bridge takes its lowest port's MAC unless
/// given one), so the address every pod resolved for 10.213.0.1 stays the host's: a pod
/// holding an outdated one could not reach mastd until its ARP entry went stale.
fn every_pod_reaches_the_bridge_at_its_mac(namespaces: &[String]) {
    let addrs = output("ip", &["-o", "-4", "addr", "show"]);
    let bridge = addrs
        .lines()
        .find(|l| l.contains(" 10.213.0.1/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("the bridge holds 10.213.0.1")
        .to_owned();
    let link = output("ip", &["-o", "link", "show", "dev", &bridge]);
    let mac = link
        .split("link/ether ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("the bridge's MAC")
        .to_owned();
    // 3: NET_ADDR_SET, an address given (not a random one or a port's).
    let assigned = std::fs::read_to_string(format!("/sys/class/net/{bridge}/addr_assign_type"))
        .unwrap_or_default();
    assert_eq!(
        assigned.trim(),
        "3",
        "{bridge}'s MAC {mac} is set, not taken from a port"
    );
    for ns in namespaces {
        let neigh = output("ip", &["-n", ns, "neigh", "show", "10.213.0.1"]);
        assert!(
            neigh.contains(&format!("lladdr {mac}")),
            "{ns} resolves 10.213.0.1 to the bridge's {mac}: {neigh}"
        );
    }
}

fn scenario(proxy: &Proxy) {
    if let Some(why) = unavailable() {
        eprintln!("skipped: mastctl up --capture namespaces: {why}");
        return;
    }
    let Some(dir) = Dir::for_up("netns") else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock();
    let _all = AllMeshes;
    let example = mast_test_support::workspace_root().join("examples/canary");
    for name in ["services.yaml", "virtual-service.yaml", "workloads.yaml"] {
        dir.write(name, &std::fs::read_to_string(example.join(name)).unwrap());
    }
    // An ingress gateway (on the host, its port the host's) into the pods.
    let gw_port = mast_test_support::free_port();
    dir.write("gateway.yaml", &ingress(gw_port));
    let nat_before = output("iptables-save", &["-t", "nat"]);
    let mut up = Up::start_on(&dir, proxy, &["--capture", "namespaces"]);
    up.wait_ready();
    let state = up.state();
    let all = state["workloads"].as_array().unwrap().clone();
    let (gateways, workloads): (Vec<_>, Vec<_>) =
        all.into_iter().partition(|w| w["kind"] == "gateway");
    assert_eq!(gateways.len(), 1, "{state}");
    assert!(gateways[0]["netns"].is_null(), "a gateway runs on the host");
    let namespaces: Vec<String> = workloads
        .iter()
        .map(|w| w["netns"].as_str().unwrap().to_owned())
        .collect();
    let _leftovers = Leftovers(namespaces.clone());
    let stdout = up.stdout();
    // The table, as docs/kubernetes.md shows it.
    let table: Vec<&str> = stdout.lines().filter(|l| !l.starts_with('[')).collect();
    eprintln!(
        "mastctl up --capture namespaces ({}):\n{}",
        proxy.name(),
        table.join("\n")
    );
    assert!(stdout.contains("ADDRESS"), "{stdout}");
    for w in &workloads {
        let addr = w["address"].as_str().unwrap();
        assert!(addr.starts_with("10.213.0."), "{w}");
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(w["name"].as_str().unwrap()) && l.contains(addr)),
            "the table shows {addr}:\n{stdout}"
        );
        assert!(
            w["env"].get("HTTP_PROXY").is_none(),
            "no proxy setting: {w}"
        );
    }
    assert!(
        state["mastd"]["xds"]
            .as_str()
            .unwrap()
            .starts_with("10.213.0.1:")
    );
    every_pod_reaches_the_bridge_at_its_mac(&namespaces);

    let got = answers(&up, 100, None);
    assert_eq!(got.len(), 100, "{got:?}\n{}", up.stderr());
    let (one, two) = (share(&got, "hello nginx-1"), share(&got, "hello nginx-2"));
    assert!(
        (one + two - 1.0).abs() < 1e-9,
        "only nginx-1 and nginx-2 answer: {got:?}"
    );
    assert!((0.65..=0.93).contains(&one), "about 80 % nginx-1: {one}");
    eprintln!("client -> http://nginx-svc/ x100: nginx-1 {one:.2}, nginx-2 {two:.2}");
    let jicki = answers(&up, 5, Some("jicki"));
    assert_eq!(jicki, vec!["hello nginx-3"; 5], "the vs-user route");
    // From the host through the gateway to nginx-3's pod (mutual TLS to its sidecar).
    let mut through = String::new();
    let reached = mast_test_support::wait_for(
        || {
            through = http_get_host(&format!("127.0.0.1:{gw_port}"), "/", "canary.example.com");
            through.trim() == "hello nginx-3"
        },
        Duration::from_secs(10),
    );
    assert!(reached, "through the ingress gateway: {through:?}");
    dashboard_sees_the_pods(&up);

    // The client calls nginx-1's own address: captured out of the client, into nginx-1
    // through 15006; nginx-1's program sees its sidecar (127.0.0.1) as peer.
    let nginx1 = workloads.iter().find(|w| w["name"] == "nginx-1").unwrap();
    let url = format!(
        "http://{}:8081/by-pod-address",
        nginx1["address"].as_str().unwrap()
    );
    let body = up.exec("client", &["curl", "-s", "-m", "5", &url]);
    assert_eq!(body.trim(), "hello nginx-1");
    mast_test_support::wait_for(
        || up.stdout().contains("/by-pod-address"),
        Duration::from_secs(3),
    );
    let arrived = up.stdout();
    assert!(
        arrived
            .lines()
            .any(|l| l.starts_with("[nginx-1] 127.0.0.1:") && l.contains("/by-pod-address")),
        "nginx-1's program saw the request come from its sidecar:\n{arrived}"
    );

    // uid 1337 is not captured: by name, the VIP leads nowhere without the sidecar.
    let direct = up.exec(
        "client",
        &[
            "setpriv",
            "--reuid=1337",
            "--regid=1337",
            "--clear-groups",
            "curl",
            "-s",
            "-m",
            "3",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://nginx-svc/",
        ],
    );
    assert_eq!(
        direct.trim(),
        "000",
        "uid 1337 bypasses the sidecar: {direct}"
    );
    let by_root = up.exec(
        "client",
        &[
            "curl",
            "-s",
            "-m",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://nginx-svc/",
        ],
    );
    assert_eq!(by_root.trim(), "200");

    assert_eq!(up.interrupt(), Some(0), "{}", up.stderr());
    std::thread::sleep(Duration::from_millis(200));
    let left = output("ip", &["netns", "list"]);
    let links = output("ip", &["-o", "link", "show"]);
    for ns in &namespaces {
        assert!(!left.contains(ns.as_str()), "{ns} is gone: {left}");
        assert!(!std::path::Path::new(&format!("/etc/netns/{ns}")).exists());
        let id = ns.split('-').nth(1).unwrap();
        assert!(
            !links.contains(&format!("mastbr{id}")) && !links.contains(&format!("mv{id}h")),
            "no bridge or veth left: {links}"
        );
    }
    assert_eq!(
        output("iptables-save", &["-t", "nat"])
            .matches("ISTIO")
            .count(),
        nat_before.matches("ISTIO").count()
    );
}

#[test]
fn namespaces_capture_runs_canary_on_mast_proxy() {
    scenario(&Proxy::Mast);
}

#[test]
fn namespaces_capture_runs_canary_on_envoy() {
    let Some(proxy) = Proxy::envoy() else { return };
    scenario(&proxy);
}

/// The namespaces named `mast-<id>-*` of the mesh whose namespace `one` is.
fn mesh_namespaces(one: &str) -> Vec<String> {
    let prefix = one.rsplit_once('-').map(|(p, _)| format!("{p}-")).unwrap();
    output("ip", &["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|ns| ns.starts_with(&prefix))
        .map(str::to_owned)
        .collect()
}

/// mastctl killed (its processes too, as a crash would leave them): the namespaces stay;
/// the next `mastctl up` of the same folder removes them before building its own, and its
/// Ctrl-C leaves nothing.
#[test]
fn namespaces_left_by_a_crash_are_removed_on_the_next_start() {
    if let Some(why) = unavailable() {
        eprintln!("skipped: mastctl up --capture namespaces: {why}");
        return;
    }
    let Some(dir) = Dir::for_up("netns-crash") else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock();
    let _all = AllMeshes;
    dir.write(
        "mesh.yaml",
        &format!(
            "{}---\n{}",
            up_support::service("echo", "app: echo", 8080),
            up_support::echo_workload("echo-1", "app: echo", 8080, "one")
        ),
    );
    let mut first = Up::start(&dir, &["--capture", "namespaces"]);
    first.wait_ready();
    let ns = first.workload("echo-1")["netns"]
        .as_str()
        .unwrap()
        .to_owned();
    let _leftovers = Leftovers(vec![ns.clone()]);
    drop(first); // SIGKILL to mastctl and every process it started
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(mesh_namespaces(&ns), vec![ns.clone()], "the crash left it");
    let mut second = Up::start(&dir, &["--capture", "namespaces"]);
    second.wait_ready();
    assert_eq!(mesh_namespaces(&ns).len(), 1, "one namespace per workload");
    assert_eq!(second.interrupt(), Some(0), "{}", second.stderr());
    assert!(mesh_namespaces(&ns).is_empty(), "none left");
    assert!(!std::path::Path::new(&format!("/etc/netns/{ns}")).exists());
}
