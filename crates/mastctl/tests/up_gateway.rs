//! Gateways in `mastctl up`, as a user has them: a `LocalGateway` (Istio's ingress gateway
//! labels) with a Service mapping port 80 to a host port, an echo backend, and Istio's
//! ingress task Gateway + VirtualService; `curl -H 'Host: …' http://127.0.0.1:<port>/` through
//! the gateway reaches the backend. The table and the state list the gateway (kind gateway,
//! its URL), `proxy-status` and `proxy-config` see its `router` proxy, removing and adding
//! the LocalGateway file stops and starts it, a Gateway API `Gateway` of class `istio` gets
//! a gateway of its own, and Ctrl-C leaves no process or port behind. On mast-proxy, and on
//! Envoy (mast-agent) when found. Every port is a free one: the tests run in parallel.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use mast_test_support::{free_port, wait_for};
use up_support::{Dir, Proxy, Up, echo_workload, listening_ports, with_descendants};

/// `GET path` with `Host: host` on 127.0.0.1:`port`: the status line and body, or `ERR …`.
fn get(port: u16, host: &str, path: &str) -> String {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return "ERR connect".into();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return "ERR write".into();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.lines().next().unwrap_or("ERR empty").to_owned();
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b).trim();
    format!("{status} | {body}")
}

fn local_gateway(port: u16) -> String {
    format!(
        "apiVersion: mast.dev/v1alpha1\nkind: LocalGateway\nmetadata:\n  name: ingress\n  namespace: istio-system\n  labels: {{istio: ingressgateway}}\nspec:\n  serviceAccount: ingress-sa\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: istio-ingressgateway, namespace: istio-system}}\nspec:\n  selector: {{istio: ingressgateway}}\n  ports: [{{name: http2, port: 80, targetPort: {port}}}]\n"
    )
}

const ROUTING: &str = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: web-gateway}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [web.example.com]\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web}\nspec:\n  hosts: [web.example.com]\n  gateways: [web-gateway]\n  http:\n  - route:\n    - destination: {host: web, port: {number: 8000}}\n";

fn backend(port: u16) -> String {
    format!(
        "{}---\napiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  selector: {{app: web}}\n  ports: [{{name: http, port: 8000}}]\n",
        echo_workload("web", "app: web", port, "hello from web")
    )
}

/// Polls (10 s at most) until `GET /` through the gateway answers `want`; the last answer.
fn answer_through(port: u16, host: &str, want: &str) -> String {
    let mut last = String::new();
    wait_for(
        || {
            last = get(port, host, "/");
            last.contains(want)
        },
        Duration::from_secs(10),
    );
    last
}

fn gateway(proxy: &Proxy) {
    let Some(dir) = Dir::for_up(&format!("gateway-{}", proxy.name())) else {
        return;
    };
    let (gw_port, app_port) = (free_port(), free_port());
    dir.write("gateway.yaml", &local_gateway(gw_port));
    dir.write("backend.yaml", &backend(app_port));
    dir.write("routing.yaml", ROUTING);
    let mut up = Up::start_on(&dir, proxy, &[]);
    up.wait_ready();

    // The table and the state list the gateway, with its URL on this machine.
    let out = up.stdout();
    let url = format!("http://127.0.0.1:{gw_port}");
    assert!(
        out.contains(&format!("gateway:   ingress.istio-system  {url}")),
        "{out}"
    );
    let row = out.lines().find(|l| l.starts_with("ingress ")).unwrap();
    assert!(
        row.contains(" gateway ") && row.contains(proxy.name()),
        "{row}"
    );
    let gw = up.workload("ingress");
    assert_eq!(gw["kind"], "gateway");
    assert_eq!(gw["status"], "Running");
    assert_eq!(gw["proxy"], proxy.name());
    assert_eq!(gw["urls"][0], url.as_str());
    assert!(gw["sidecar_pid"].as_u64().is_some() && gw["pid"].is_null());

    // mastd sees a router proxy; its listener binds the Service's targetPort on loopback.
    let status = up.mastctl(&["proxy-status"]);
    assert!(status.contains("ingress.istio-system"), "{status}");
    let listeners = up.mastctl(&["proxy-config", "listener", "ingress.istio-system"]);
    assert!(
        listeners.contains(&gw_port.to_string()),
        "no listener on {gw_port}:\n{listeners}"
    );

    // Through the gateway to the backend; an unknown host is a 404.
    let got = answer_through(gw_port, "web.example.com", "hello from web");
    assert!(
        got.starts_with("HTTP/1.1 200") && got.contains("hello from web"),
        "{got}\n{}",
        up.stderr()
    );
    let other = get(gw_port, "other.example.com", "/");
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");

    // Removing the LocalGateway stops it; adding it back starts it again.
    let pid = gw["sidecar_pid"].as_u64().unwrap() as u32;
    std::fs::remove_file(dir.join("gateway.yaml")).unwrap();
    assert!(
        wait_for(
            || up.workload_opt("ingress").is_none(),
            Duration::from_secs(15)
        ),
        "{}",
        up.stderr()
    );
    assert!(!up_support::alive(pid), "the gateway proxy still runs");
    dir.write("gateway.yaml", &local_gateway(gw_port));
    assert!(
        wait_for(
            || up.workload("ingress")["status"] == "Running",
            Duration::from_secs(15)
        ),
        "{}",
        up.stderr()
    );
    let got = answer_through(gw_port, "web.example.com", "hello from web");
    assert!(got.contains("hello from web"), "after re-adding: {got}");

    // Ctrl-C: no process, no port, no state file left.
    let (pids, _) = up.pids_and_ports();
    let all = with_descendants(&pids);
    assert_eq!(up.interrupt(), Some(0), "{}", up.stderr());
    let left: Vec<u32> = all
        .iter()
        .copied()
        .filter(|p| up_support::alive(*p))
        .collect();
    assert!(left.is_empty(), "still running: {left:?}");
    assert!(get(gw_port, "web.example.com", "/").starts_with("ERR"));
    assert!(listening_ports(&all).is_empty());
    assert!(!up.state_file.exists(), "the state file is left");
}

#[test]
fn local_gateway_on_mast_proxy() {
    gateway(&Proxy::Mast);
}

#[test]
fn local_gateway_on_envoy() {
    if let Some(envoy) = Proxy::envoy() {
        gateway(&envoy);
    }
}

/// A Gateway API `Gateway` of class `istio`: `mastctl up` runs its gateway (`<name>-istio`,
/// labelled with the gateway name) and generates its Service (listener ports on the host).
#[test]
fn gateway_api_gateway_gets_a_gateway() {
    let Some(dir) = Dir::for_up("gateway-api") else {
        return;
    };
    let port = free_port();
    dir.write(
        "gateway.yaml",
        &format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: web}}\nspec:\n  gatewayClassName: istio\n  listeners:\n  - {{name: http, port: {port}, protocol: HTTP}}\n"
        ),
    );
    let mut up = Up::start(&dir, &[]);
    up.wait_ready();
    let gw = up.workload("web-istio");
    assert_eq!(gw["kind"], "gateway", "{}", up.stdout());
    assert_eq!(gw["status"], "Running");
    assert_eq!(gw["urls"][0], format!("http://127.0.0.1:{port}").as_str());
    let generated = up.state()["generated"].as_str().unwrap().to_owned();
    let service = std::fs::read_to_string(
        std::path::Path::new(&generated).join("svc_default.web-istio.yaml"),
    )
    .unwrap();
    assert!(
        service.contains("gateway.networking.k8s.io/gateway-name"),
        "{service}"
    );
    let status = up.mastctl(&["proxy-status"]);
    assert!(status.contains("web-istio.default"), "{status}");

    // Changing the class to one Mast does not serve stops the gateway and its Service.
    dir.write(
        "gateway.yaml",
        &format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: web}}\nspec:\n  gatewayClassName: other\n  listeners:\n  - {{name: http, port: {port}, protocol: HTTP}}\n"
        ),
    );
    assert!(
        wait_for(
            || up.workload_opt("web-istio").is_none(),
            Duration::from_secs(15)
        ),
        "{}",
        up.stderr()
    );
    assert!(
        !std::path::Path::new(&generated)
            .join("svc_default.web-istio.yaml")
            .exists()
    );
    assert_eq!(up.interrupt(), Some(0), "{}", up.stderr());
}
