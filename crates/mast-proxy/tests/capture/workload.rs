//! The pod side of the capture test (runs inside the pod namespace, as root): the local
//! application, mastd, the sidecar ([`Sidecar`]: mast-proxy, or Envoy run by mast-agent) as
//! uid/gid 1337 in iptables capture mode, the helpers that probe from the network side, as
//! another uid and as the proxy's uid, and the assertions.

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mast_test_support::{MastdOptions, MastdProcess, ProcessGuard, TempDir, cargo_bin};
use serde_json::Value;

use super::netns::{POD_IP, PROXY_UID, in_ns};
use super::probe::{self, Helper};
use super::servers;
use super::sidecar::{Sidecar, envoy_executable};

/// A uid that is neither root nor the proxy's.
const USER_UID: u32 = 1000;

/// The mesh: `echo` (HTTP, VIP 10.99.1.10:80 → 10.99.0.2:8080, a VirtualService setting
/// `x-mast-route`), `tcpecho` (TCP, VIP 10.99.1.20:9000 → 10.99.0.2:9000), and the pod's own
/// service `client` (VIP 10.99.1.30:80 → the pod 10.99.0.1:9080).
const MESH: &str = "apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  clusterIP: 10.99.1.10
  selector: {app: echo}
  ports:
  - {name: http, port: 80, targetPort: 8080}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: echo-remote, namespace: default}
spec:
  address: 10.99.0.2
  labels: {app: echo}
  ports: {http: 8080}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo]
  http:
  - headers: {request: {set: {x-mast-route: echo-vs}}}
    route:
    - destination: {host: echo}
---
apiVersion: v1
kind: Service
metadata: {name: tcpecho, namespace: default}
spec:
  clusterIP: 10.99.1.20
  selector: {app: tcpecho}
  ports:
  - {name: tcp, port: 9000}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: tcpecho-remote, namespace: default}
spec:
  address: 10.99.0.2
  labels: {app: tcpecho}
  ports: {tcp: 9000}
---
apiVersion: v1
kind: Service
metadata: {name: client, namespace: default}
spec:
  clusterIP: 10.99.1.30
  selector: {app: client}
  ports:
  - {name: http, port: 80, targetPort: 9080}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client-pod, namespace: default}
spec:
  address: 10.99.0.1
  labels: {app: client}
  ports: {http: 9080}
";

/// Prints the logs if the scenario panics.
struct Logs(PathBuf);

impl Drop for Logs {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for name in ["proxy.err", "proxy.log", "agent/envoy.log", "mastd.log"] {
                let text = std::fs::read_to_string(self.0.join(name)).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(60).collect();
                eprintln!("---- {name} (last lines)");
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// `path` itself when every other user can run it, else a copy in `dir` they can run.
fn runnable_by_anyone(path: &Path, dir: &Path) -> PathBuf {
    let open = path.ancestors().skip(1).all(|d| {
        d.metadata()
            .is_ok_and(|m| m.permissions().mode() & 0o001 != 0)
    }) && path
        .metadata()
        .is_ok_and(|m| m.permissions().mode() & 0o005 == 0o005);
    if open {
        return path.to_path_buf();
    }
    let copy = dir.join(path.file_name().expect("a file name"));
    std::fs::copy(path, &copy).expect("copy the binary");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    copy
}

fn start_sidecar(sidecar: Sidecar, dir: &Path, xds: std::net::SocketAddr) -> ProcessGuard {
    let binary = cargo_bin(sidecar.binary()).expect("the sidecar binary is built");
    let binary = runnable_by_anyone(&binary, dir);
    let log = std::fs::File::create(dir.join("proxy.log")).expect("proxy.log");
    let err = std::fs::File::create(dir.join("proxy.err")).expect("proxy.err");
    let mut command = Command::new(binary);
    command
        .args(["--xds-address", &xds.to_string()])
        .args([
            "--workload",
            "client",
            "--namespace",
            "default",
            "--label",
            "app=client",
        ])
        .args([
            "--ip",
            POD_IP,
            "--capture-mode",
            "iptables",
            "--concurrency",
            "1",
        ])
        .args(["--drain-duration", "0"])
        .arg("--ports-file")
        .arg(dir.join("ports.json"));
    if sidecar == Sidecar::Envoy {
        let envoy = runnable_by_anyone(&envoy_executable(), dir);
        command
            .arg("--envoy")
            .arg(envoy)
            .arg("--work-dir")
            .arg(dir.join("agent"));
    }
    command
        .env("MAST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .uid(PROXY_UID)
        .gid(PROXY_UID);
    ProcessGuard::spawn(&mut command).expect("start the sidecar")
}

fn wait_ready(proxy: &mut ProcessGuard, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir.join("ports.json").exists() {
        if let Ok(Some(status)) = proxy.try_wait() {
            panic!("the sidecar exited with {status} before it was ready");
        }
        assert!(
            Instant::now() < deadline,
            "the sidecar is not ready within 30s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn header<'a>(answer: &'a Value, name: &str) -> &'a str {
    answer["headers"][name].as_str().unwrap_or("")
}

fn assert_http(what: &str, answer: &Value, body: &str, checks: &[(&str, &str)]) {
    assert_eq!(answer["status"], 200, "{what}: {answer}");
    assert_eq!(answer["body"], body, "{what}: answered by {body}: {answer}");
    for (name, prefix) in checks {
        let value = header(answer, name);
        assert!(
            !value.is_empty() && value.starts_with(prefix),
            "{what}: {name} {value:?} is set and starts with {prefix:?}: {answer}"
        );
    }
}

/// The whole scenario; panics on the first failed expectation.
pub fn run(remote_ns: &str, sidecar: Sidecar) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = TempDir::new("mast-capture").expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let _logs = Logs(dir.path().to_path_buf());
    runtime.block_on(async {
        servers::http_echo(([127, 0, 0, 1], 9080).into(), "local-app")
            .await
            .expect("app");
        servers::http_echo(([0, 0, 0, 0], 9081).into(), "local-other")
            .await
            .expect("app 2");
    });
    let config = dir.join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    std::fs::write(config.join("mesh.yaml"), MESH).expect("mesh.yaml");
    let options = MastdOptions::new(&config).expect("mastd options");
    let _mastd = runtime
        .block_on(MastdProcess::start(&options))
        .expect("mastd");
    let mut proxy = start_sidecar(sidecar, dir.path(), options.xds_addr);
    wait_ready(&mut proxy, dir.path());

    let exe = std::env::current_exe().expect("the test binary");
    let mut remote = Helper::start(
        "network-side",
        helper_command(in_ns(remote_ns, &exe), "remote"),
    );
    let exe_for_all = runnable_by_anyone(&exe, dir.path());
    let as_uid = |uid: u32| {
        let mut command = Command::new(&exe_for_all);
        command.uid(uid).gid(uid);
        helper_command(command, "client")
    };
    let mut user = Helper::start("other-uid", as_uid(USER_UID));
    let mut proxy_uid = Helper::start("proxy-uid", as_uid(PROXY_UID));
    let ask = |command: &str| runtime.block_on(probe::run(command));

    outbound(&ask, &mut user);
    not_captured(&mut proxy_uid);
    inbound(&ask, &mut remote);
    let clusters = [
        "outbound|80||echo.default.svc.cluster.local",
        "PassthroughCluster",
        "inbound|9080||",
    ];
    match sidecar {
        Sidecar::MastProxy => {
            let read_log = || std::fs::read_to_string(dir.join("proxy.log")).unwrap_or_default();
            let logged = mast_test_support::wait_for(
                || clusters.iter().all(|c| read_log().contains(c)),
                Duration::from_secs(3),
            );
            assert!(logged, "the access log names {clusters:?}:\n{}", read_log());
        }
        Sidecar::Envoy => {
            let stats = envoy_stats("upstream_cx_total");
            for cluster in clusters {
                let used = stats.lines().any(|l| {
                    l.strip_prefix(&format!("cluster.{cluster}.upstream_cx_total: "))
                        .and_then(|n| n.trim().parse::<u64>().ok())
                        .is_some_and(|n| n > 0)
                });
                assert!(used, "Envoy's cluster {cluster} made connections:\n{stats}");
            }
        }
    }
}

/// Envoy's admin `/stats?filter=<filter>` (the admin port is 15000 on 127.0.0.1; root's
/// loopback traffic is not captured).
fn envoy_stats(filter: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", 15000)).expect("Envoy admin");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "GET /stats?filter={filter} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("ask Envoy's admin");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("Envoy's stats");
    answer
}

/// The proxy's own uid is not captured: its HTTP call to a known HTTP port goes straight
/// to the destination (no proxy header), so the proxy's upstream calls do not loop.
fn not_captured(proxy_uid: &mut Helper) {
    let direct = proxy_uid.ask("http 10.99.0.3:80 http://10.99.0.3/as-proxy-uid");
    assert_http(
        "HTTP from the proxy's uid 1337 (not captured)",
        &direct,
        "outside",
        &[
            ("x-echo-local", "10.99.0.3:80"),
            ("x-echo-peer", "10.99.0.1:"),
        ],
    );
    assert_eq!(
        header(&direct, "x-envoy-upstream-service-time"),
        "",
        "uid 1337 is not captured: {direct}"
    );
}

/// `command` re-running this test binary as a probe helper.
fn helper_command(mut command: Command, role: &str) -> Command {
    command
        .args([
            "--exact",
            "capture_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MAST_CAPTURE_ROLE", role)
        .stderr(Stdio::inherit());
    command
}

fn outbound(ask: &impl Fn(&str) -> Value, user: &mut Helper) {
    let proxied = [
        ("x-envoy-upstream-service-time", ""),
        ("x-echo-peer", "10.99.0.1:"),
    ];
    let by_name = ask("http 10.99.1.10:80 http://echo.default.svc.cluster.local/by-name");
    assert_http(
        "HTTP to a service VIP, by name",
        &by_name,
        "remote",
        &proxied,
    );
    assert_eq!(
        header(&by_name, "x-echo-x-mast-route"),
        "echo-vs",
        "{by_name}"
    );
    assert_eq!(
        header(&by_name, "x-echo-local"),
        "10.99.0.2:8080",
        "{by_name}"
    );
    let by_vip = ask("http 10.99.1.10:80 http://10.99.1.10/by-vip");
    assert_http(
        "HTTP to a service VIP, Host the VIP",
        &by_vip,
        "remote",
        &proxied,
    );
    assert_eq!(
        header(&by_vip, "x-echo-x-mast-route"),
        "echo-vs",
        "{by_vip}"
    );
    let as_user = user.ask("http 10.99.1.10:80 http://echo/as-user");
    assert_http("HTTP from another uid", &as_user, "remote", &proxied);
    assert_eq!(
        header(&as_user, "x-echo-x-mast-route"),
        "echo-vs",
        "{as_user}"
    );

    let tcp = ask("tcp 10.99.1.20:9000");
    assert_eq!(tcp["echo"], "ping", "TCP to a service VIP: {tcp}");
    let greeting = tcp["greeting"].as_str().unwrap_or("");
    assert!(
        greeting.starts_with("tcp 10.99.0.2:9000 10.99.0.1:"),
        "{tcp}"
    );

    let unknown = ask("http 10.99.0.3:80 http://10.99.0.3/unknown");
    assert_http(
        "HTTP to an unknown host on an HTTP port",
        &unknown,
        "outside",
        &proxied,
    );
    assert_eq!(
        header(&unknown, "x-echo-local"),
        "10.99.0.3:80",
        "{unknown}"
    );
    assert_eq!(header(&unknown, "x-echo-x-mast-route"), "", "{unknown}");
    let raw = ask("http 10.99.0.3:8080 http://10.99.0.3:8080/raw");
    assert_http(
        "HTTP to an unknown port (TCP passthrough)",
        &raw,
        "remote",
        &[("x-echo-peer", "10.99.0.1:")],
    );
    assert_eq!(
        header(&raw, "x-envoy-upstream-service-time"),
        "",
        "not through HTTP: {raw}"
    );
    let tcp_unknown = ask("tcp 10.99.0.3:9000");
    assert_eq!(
        tcp_unknown["echo"], "ping",
        "TCP to an unknown destination: {tcp_unknown}"
    );
    let greeting = tcp_unknown["greeting"].as_str().unwrap_or("");
    assert!(
        greeting.starts_with("tcp 10.99.0.3:9000 10.99.0.1:"),
        "{tcp_unknown}"
    );

    let own = ask("http 10.99.1.30:80 http://client.default.svc.cluster.local/self");
    assert_http(
        "HTTP to its own service (out 15001, back in 15006)",
        &own,
        "local-app",
        &[("x-echo-peer", "127.0.0.1:")],
    );
}

fn inbound(ask: &impl Fn(&str) -> Value, remote: &mut Helper) {
    let direct = ask("http 10.99.0.1:9080 http://10.99.0.1:9080/");
    assert!(
        direct.get("error").is_some(),
        "the app listens on 127.0.0.1 only: {direct}"
    );
    let served = remote.ask("http 10.99.0.1:9080 http://client.default.svc.cluster.local/in");
    assert_http(
        "HTTP into the pod's service port (15006 → inbound|9080||)",
        &served,
        "local-app",
        &[
            ("x-echo-peer", "127.0.0.1:"),
            ("x-echo-local", "127.0.0.1:9080"),
            ("x-envoy-upstream-service-time", ""),
        ],
    );
    let other = remote.ask("http 10.99.0.1:9081 http://10.99.0.1:9081/other");
    assert_http(
        "HTTP into a port no service declares (InboundPassthroughCluster)",
        &other,
        "local-other",
        &[
            ("x-echo-peer", "127.0.0.6:"),
            ("x-echo-local", "10.99.0.1:9081"),
        ],
    );
}
