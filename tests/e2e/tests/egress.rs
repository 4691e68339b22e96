//! `outboundTrafficPolicy: REGISTRY_ONLY`: a Sidecar in the client's namespace makes the
//! sidecar refuse hosts the mesh does not know (502 from the `block_all` virtual host) while
//! known services keep working. Runs on a mesh of its own: the Sidecar applies to the whole
//! namespace.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mast_e2e::{Mesh, Proxy, yaml};
use mast_test_support::EchoServer;

const REGISTRY_ONLY: &str = r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"#;

async fn registry_only_blocks_unknown_hosts(proxy: Proxy) {
    let known = EchoServer::start("v1").unwrap();
    let service = yaml::http_service("known-svc", &[&known]);
    let mesh = Mesh::start(proxy, &[("known.yaml", &service)])
        .await
        .unwrap();
    let unknown = "http://unknown.example.org/";
    let before = mesh.get(unknown, &[]).await.unwrap();
    assert_ne!(
        before.status,
        502,
        "ALLOW_ANY (the default) must not block: {}",
        before.text()
    );

    mesh.apply("sidecar.yaml", REGISTRY_ONLY).await.unwrap();
    let blocked = mesh.get(unknown, &[]).await.unwrap();
    let allowed = mesh.get("http://known-svc/", &[]).await.unwrap();
    let ok = blocked.status == 502 && allowed.status == 200 && allowed.trimmed() == "v1";
    assert!(
        ok,
        "unknown host → {} {:?}; known host → {} {:?}{}",
        blocked.status,
        blocked.text(),
        allowed.status,
        allowed.text(),
        mesh.explain().await
    );
}

mast_e2e::both! {
    registry_only_blocks_unknown_hosts,
}
