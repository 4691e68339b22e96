//! Mutual TLS between sidecars, as Istio's reachability tests check it: with a STRICT
//! PeerAuthentication a client without a sidecar is refused and a sidecar client gets through
//! with mTLS (the server sees its SPIFFE identity in `x-forwarded-client-cert`); PERMISSIVE
//! accepts both; DISABLE is plaintext; a port-level setting overrides the workload's mode.
//! Certificates come from mastd's CA (each sidecar holds a token for its service account).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mast_e2e::workloads::{echo_server, peer_authentication};
use mast_e2e::{Mesh, Proxy, SharedMesh, Workload, WorkloadSpec, shared, yaml};
use mast_test_support::{EchoServer, HttpRequest};

static MESH: SharedMesh = SharedMesh::const_new();

/// The identity of the mesh's client sidecar.
const CLIENT_ID: &str = "spiffe://cluster.local/ns/default/sa/client";

/// A server `name` (echo app + sidecar) behind Service `name` with `extra` YAML (policies).
async fn server(mesh: &Mesh, name: &str, extra: &str) -> (EchoServer, Workload) {
    echo_server(mesh, name, &[extra.to_owned()]).await.unwrap()
}

fn peer_authn(app: &str, mode: &str, port_level: &str) -> String {
    peer_authentication(app, mode, port_level)
}

/// A plaintext request straight to the server's sidecar (a client without a sidecar).
async fn plaintext(sidecar: &Workload) -> Result<u16, String> {
    let addr = sidecar
        .inbound()
        .expect("server sidecar has an inbound listener");
    HttpRequest::get(&format!("http://{addr}/"))
        .timeout(Duration::from_secs(5))
        .direct(addr)
        .await
        .map(|r| r.status)
        .map_err(|e| e.to_string())
}

async fn strict_refuses_plaintext_and_lets_sidecars_in(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let (_app, sidecar) = server(mesh, "strict-svc", &peer_authn("strict-svc", "STRICT", "")).await;
    let r = mesh.get("http://strict-svc/", &[]).await.unwrap();
    let xfcc = r
        .header("x-echo-x-forwarded-client-cert")
        .unwrap_or("")
        .to_owned();
    assert!(
        r.status == 200
            && r.trimmed() == "strict-svc"
            && xfcc.contains(&format!("URI={CLIENT_ID}")),
        "sidecar client: status {} body {:?} xfcc {xfcc:?}{}\n{}",
        r.status,
        r.text(),
        mesh.explain().await,
        sidecar.log()
    );
    assert!(
        xfcc.contains("By=spiffe://cluster.local/ns/default/sa/strict-svc"),
        "the server's own identity is XFCC's By: {xfcc:?}"
    );
    assert!(
        r.header("x-echo-x-envoy-peer-metadata").is_none()
            && r.header("x-echo-x-envoy-peer-metadata-id").is_none(),
        "the peer metadata exchange headers never reach the application"
    );
    let direct = plaintext(&sidecar).await;
    assert!(
        direct.is_err(),
        "a client without a sidecar must be refused under STRICT, got {direct:?}"
    );
}

async fn permissive_accepts_both(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let pa = peer_authn("permissive-svc", "PERMISSIVE", "");
    let (_app, sidecar) = server(mesh, "permissive-svc", &pa).await;
    let r = mesh.get("http://permissive-svc/", &[]).await.unwrap();
    let xfcc = r.header("x-echo-x-forwarded-client-cert").unwrap_or("");
    assert!(
        r.status == 200 && xfcc.contains(CLIENT_ID),
        "sidecar client uses mTLS (auto): status {} xfcc {xfcc:?}{}",
        r.status,
        mesh.explain().await
    );
    assert_eq!(plaintext(&sidecar).await, Ok(200), "plaintext accepted");
}

async fn disable_is_plaintext(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let (_app, sidecar) = server(
        mesh,
        "disable-svc",
        &peer_authn("disable-svc", "DISABLE", ""),
    )
    .await;
    // No DestinationRule needed: clients see the server's DISABLE (Istio's mTLS checker).
    let r = mesh.get("http://disable-svc/", &[]).await.unwrap();
    assert!(
        r.status == 200 && r.header("x-echo-x-forwarded-client-cert").is_none(),
        "plaintext between sidecars: status {} xfcc {:?}{}",
        r.status,
        r.header("x-echo-x-forwarded-client-cert"),
        mesh.explain().await
    );
    assert_eq!(plaintext(&sidecar).await, Ok(200), "plaintext accepted");
}

async fn port_level_mtls_overrides_the_workload_mode(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let app = EchoServer::start("portlevel-svc").unwrap();
    let port_level = format!(
        "  portLevelMtls:\n    {}:\n      mode: PERMISSIVE\n",
        app.port()
    );
    let sidecar = Workload::start(
        mesh,
        WorkloadSpec::server("portlevel-svc", "portlevel-svc", app.port()),
    )
    .await
    .unwrap();
    let files = yaml::docs(&[
        yaml::service("portlevel-svc", &[("http", 80)]),
        sidecar.entry("portlevel-svc", "http"),
        peer_authn("portlevel-svc", "STRICT", &port_level),
    ]);
    mesh.apply("portlevel-svc.yaml", &files).await.unwrap();
    assert_eq!(
        plaintext(&sidecar).await,
        Ok(200),
        "the port's PERMISSIVE overrides the workload's STRICT"
    );
    let r = mesh.get("http://portlevel-svc/", &[]).await.unwrap();
    assert_eq!(r.status, 200, "{}", mesh.explain().await);
}

async fn namespace_strict_covers_every_workload(proxy: Proxy) {
    // A mesh of its own: the namespace-wide policy would change the other scenarios.
    let mesh = Mesh::start(proxy, &[]).await.unwrap();
    let pa = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  \
              namespace: default\nspec:\n  mtls:\n    mode: STRICT\n";
    let (_app, sidecar) = server(&mesh, "ns-svc", pa).await;
    let r = mesh.get("http://ns-svc/", &[]).await.unwrap();
    assert!(
        r.status == 200
            && r.header("x-echo-x-forwarded-client-cert")
                .is_some_and(|x| x.contains(CLIENT_ID)),
        "status {} xfcc {:?}{}",
        r.status,
        r.header("x-echo-x-forwarded-client-cert"),
        mesh.explain().await
    );
    assert!(plaintext(&sidecar).await.is_err(), "plaintext refused");
    // Mesh-wide DISABLE in the root namespace does not weaken the namespace's STRICT.
    let mesh_wide = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  \
                     namespace: istio-system\nspec:\n  mtls:\n    mode: DISABLE\n";
    mesh.apply("mesh-pa.yaml", mesh_wide).await.unwrap();
    assert!(
        plaintext(&sidecar).await.is_err(),
        "namespace STRICT still wins"
    );
}

mast_e2e::both! {
    strict_refuses_plaintext_and_lets_sidecars_in,
    permissive_accepts_both,
    disable_is_plaintext,
    port_level_mtls_overrides_the_workload_mode,
    namespace_strict_covers_every_workload,
}
