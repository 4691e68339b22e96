//! Ports capture's outbound listener as a real HTTP proxy: `CONNECT` tunnels to TCP and HTTP
//! services, hosts the mesh does not know reached through the dynamic forward proxy
//! (`ForwardProxyCluster`) under ALLOW_ANY (an absolute-form request to `127.0.0.1:<port>` would loop back into the
//! listener through `PassthroughCluster`), and both refused with 502 once a Sidecar sets
//! REGISTRY_ONLY. Each test runs its own mesh: the Sidecar applies to the whole namespace.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mast_e2e::traffic::{connect_tunnel, exchange};
use mast_e2e::{Mesh, Proxy, yaml};
use mast_test_support::{EchoServer, TcpEchoServer};

const TIMEOUT: Duration = Duration::from_secs(5);

const REGISTRY_ONLY: &str = r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"#;

/// Opens `CONNECT authority` and checks the TCP echo named `name` answers through it.
async fn tunnel_echoes(mesh: &Mesh, authority: &str, name: &str) -> Result<(), String> {
    let mut stream = connect_tunnel(mesh.outbound(), authority, TIMEOUT)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let want = format!("{name}\nping\n");
    let got = exchange(&mut stream, b"ping\n", want.len(), TIMEOUT)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let got = String::from_utf8_lossy(&got).into_owned();
    if got != want {
        return Err(format!(
            "through CONNECT {authority}: {got:?}, want {want:?}"
        ));
    }
    let again = exchange(&mut stream, b"more\n", 5, TIMEOUT)
        .await
        .map_err(|e| format!("{e:#}"))?;
    if again != b"more\n" {
        return Err(format!("second exchange: {again:?}"));
    }
    Ok(())
}

async fn connect_reaches_tcp_and_http_services(proxy: Proxy) {
    let tcp = TcpEchoServer::start("tcp-v1").unwrap();
    let web = EchoServer::start("web-v1").unwrap();
    let files = [
        ("tcp.yaml", yaml::tcp_service("tcp-svc", 9000, &tcp)),
        ("web.yaml", yaml::http_service("web-svc", &[&web])),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, y)| (*n, y.as_str())).collect();
    let mesh = Mesh::start(proxy, &files).await.unwrap();

    if let Err(e) = tunnel_echoes(&mesh, "tcp-svc:9000", "tcp-v1").await {
        panic!("{e}{}", mesh.explain().await);
    }
    assert_eq!(tcp.connection_count(), 1);
    // The fully qualified form reaches the same service.
    let fqdn = "tcp-svc.default.svc.cluster.local:9000";
    if let Err(e) = tunnel_echoes(&mesh, fqdn, "tcp-v1").await {
        panic!("{e}{}", mesh.explain().await);
    }

    // An HTTP service port accepts CONNECT too: the tunnel carries the client's own HTTP.
    let mut stream = match connect_tunnel(mesh.outbound(), "web-svc:80", TIMEOUT).await {
        Ok(s) => s,
        Err(e) => panic!("{e:#}{}", mesh.explain().await),
    };
    let request = b"GET /through-tunnel HTTP/1.1\r\nHost: web-svc\r\nConnection: close\r\n\r\n";
    let answer = exchange(&mut stream, request, usize::MAX, TIMEOUT)
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.trim_end().ends_with("web-v1"),
        "through CONNECT web-svc:80: {answer:?}"
    );
    assert_eq!(
        web.last_request().map(|r| r.path),
        Some("/through-tunnel".to_owned())
    );
}

async fn unknown_hosts_use_the_forward_proxy_until_registry_only_refuses_them(proxy: Proxy) {
    let outside = EchoServer::start("outside").unwrap();
    let outside_tcp = TcpEchoServer::start("outside-tcp").unwrap();
    let known = TcpEchoServer::start("known-tcp").unwrap();
    let known_yaml = yaml::tcp_service("known-tcp", 9000, &known);
    let mesh = Mesh::start(proxy, &[("known.yaml", &known_yaml)])
        .await
        .unwrap();

    // ALLOW_ANY: a host no service declares, by IP, reaches the server itself (through the
    // dynamic forward proxy) instead of coming back into the listener.
    let url = format!("http://127.0.0.1:{}/outside", outside.port());
    let direct = mesh.get(&url, &[]).await.unwrap();
    assert!(
        direct.status == 200 && direct.trimmed() == "outside",
        "ALLOW_ANY GET {url}: {} {:?}{}",
        direct.status,
        direct.text(),
        mesh.explain().await
    );
    assert_eq!(outside.request_count(), 1, "exactly one request, no loop");
    let dfp = mesh
        .proxy_counter("cluster.ForwardProxyCluster.upstream_rq_total")
        .await;
    assert!(dfp >= 1, "the request went through ForwardProxyCluster");
    // CONNECT to an unknown host:port tunnels through the forward proxy too.
    let authority = format!("127.0.0.1:{}", outside_tcp.port());
    if let Err(e) = tunnel_echoes(&mesh, &authority, "outside-tcp").await {
        panic!("ALLOW_ANY CONNECT {authority}: {e}{}", mesh.explain().await);
    }

    // REGISTRY_ONLY: both are refused with 502; known services keep working.
    mesh.apply("sidecar.yaml", REGISTRY_ONLY).await.unwrap();
    let blocked = mesh.get(&url, &[]).await.unwrap();
    assert_eq!(
        blocked.status,
        502,
        "REGISTRY_ONLY GET {url}: {:?}{}",
        blocked.text(),
        mesh.explain().await
    );
    assert_eq!(outside.request_count(), 1, "nothing reached the server");
    let refused = connect_tunnel(mesh.outbound(), &authority, TIMEOUT).await;
    match refused {
        Ok(_) => panic!("REGISTRY_ONLY let CONNECT {authority} through"),
        Err(e) => assert!(format!("{e:#}").contains(" 502 "), "{e:#}"),
    }
    assert_eq!(outside_tcp.connection_count(), 1);
    if let Err(e) = tunnel_echoes(&mesh, "known-tcp:9000", "known-tcp").await {
        panic!("REGISTRY_ONLY, known service: {e}{}", mesh.explain().await);
    }
}

mast_e2e::both! {
    connect_reaches_tcp_and_http_services,
    unknown_hosts_use_the_forward_proxy_until_registry_only_refuses_them,
}
