//! Where traffic goes: DestinationRule subsets chosen by version label, a ServiceEntry for a
//! loopback "external" service, and a TCP service reached with `CONNECT` through the
//! sidecar's outbound HTTP proxy (ports mode has no per-port TCP listeners).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mast_e2e::traffic::{connect_tunnel, exchange};
use mast_e2e::{Proxy, SharedMesh, shared, yaml};
use mast_test_support::{EchoServer, TcpEchoServer};

static MESH: SharedMesh = SharedMesh::const_new();

async fn subsets_select_endpoints_by_version_label(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let v1 = EchoServer::start("v1").unwrap();
    let v2 = EchoServer::start("v2").unwrap();
    let rules = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"#;
    let files = yaml::docs(&[yaml::http_service("reviews", &[&v1, &v2]), rules.to_owned()]);
    mesh.apply("subsets.yaml", &files).await.unwrap();
    let anyone = mesh.tally_get("http://reviews/", &[], 60).await;
    let jason = mesh
        .tally_get("http://reviews/", &[("end-user", "jason")], 60)
        .await;
    let ok = anyone.count("v1") == 60 && jason.count("v2") == 60;
    assert!(
        ok,
        "default → {anyone}; end-user: jason → {jason}{}",
        mesh.explain().await
    );
}

async fn service_entry_reaches_a_static_external_endpoint(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let external = EchoServer::start("v1").unwrap();
    let entry = format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: external, namespace: default}}
spec:
  hosts: [external.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports:
  - {{number: 80, name: http, protocol: HTTP}}
  endpoints:
  - address: 127.0.0.1
    ports: {{http: {port}}}
"#,
        port = external.port()
    );
    mesh.apply("service-entry.yaml", &entry).await.unwrap();
    let tally = mesh
        .tally_get("http://external.example.com/status", &[], 20)
        .await;
    let seen = external.last_request();
    let ok = tally.count("v1") == 20
        && seen
            .as_ref()
            .is_some_and(|r| r.authority == "external.example.com" && r.path == "/status");
    assert!(
        ok,
        "{tally}; upstream saw {:?}{}",
        seen.map(|r| (r.authority, r.path)),
        mesh.explain().await
    );
    let with_port = mesh
        .get("http://external.example.com:80/", &[])
        .await
        .unwrap();
    assert_eq!(with_port.trimmed(), "v1", "{}", mesh.explain().await);
}

async fn tcp_service_is_reached_through_connect(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let upstream = TcpEchoServer::start("v1").unwrap();
    mesh.apply("tcp.yaml", &yaml::tcp_service("tcp-echo", 9000, &upstream))
        .await
        .unwrap();
    let timeout = Duration::from_secs(5);
    let tunnel = connect_tunnel(mesh.outbound(), "tcp-echo:9000", timeout).await;
    let mut stream = match tunnel {
        Ok(s) => s,
        Err(e) => panic!("{e:#}{}", mesh.explain().await),
    };
    let got = exchange(&mut stream, b"ping\n", "v1\nping\n".len(), timeout).await;
    let got = got.map(|b| String::from_utf8_lossy(&b).into_owned());
    assert!(
        matches!(&got, Ok(text) if text == "v1\nping\n"),
        "through the tunnel: {got:?}{}",
        mesh.explain().await
    );
    let again = exchange(&mut stream, b"more\n", "more\n".len(), timeout)
        .await
        .unwrap();
    assert_eq!(again, b"more\n");
    assert_eq!(upstream.connection_count(), 1);
}

mast_e2e::both! {
    subsets_select_endpoints_by_version_label,
    service_entry_reaches_a_static_external_endpoint,
    tcp_service_is_reached_through_connect,
}
