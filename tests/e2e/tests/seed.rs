//! The seed's example (`examples/seed-nginx`), its files unchanged: the `nginx-svc-vs`
//! VirtualService splits `nginx-svc` 80/20 between `nginx-svc-1` and `nginx-svc-2`, and sends
//! requests carrying `vs-user: jicki` to `nginx-svc-3`. The pods of the seed's Deployments
//! become WorkloadEntries with the same labels (echo servers `v1` and `v2`); `nginx-svc-3`,
//! which the seed names but never defines, is added with a `v3` echo server so the header
//! route resolves.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mast_e2e::{Mesh, PerProxy, Proxy, SharedMesh, shared, within, yaml};
use mast_test_support::{EchoServer, workspace_root};

static MESH: SharedMesh = SharedMesh::const_new();
static SEED: PerProxy<[EchoServer; 3]> = PerProxy::const_new();

/// The shared `proxy` mesh with the seed applied (once per process and proxy kind).
async fn seeded(proxy: Proxy) -> &'static Mesh {
    let mesh = shared(&MESH, proxy).await;
    SEED.get_or_init(proxy, || async {
        let servers = ["v1", "v2", "v3"].map(|v| EchoServer::start(v).unwrap());
        apply_seed(
            mesh,
            [servers[0].port(), servers[1].port(), servers[2].port()],
        )
        .await;
        servers
    })
    .await;
    mesh
}

fn pod(name: &str, web: &str, version: &str, port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: {name}\n  \
         namespace: default\nspec:\n  address: 127.0.0.1\n  labels:\n    app: nginx\n    \
         web: {web}\n    version: {version}\n  ports:\n    http: {port}\n"
    )
}

async fn apply_seed(mesh: &Mesh, [v1, v2, v3]: [u16; 3]) {
    let dir = workspace_root().join("examples/seed-nginx");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let pods = yaml::docs(&[
        pod("nginx-1", "nginx-1", "v1.0.0", v1),
        pod("nginx-2", "nginx-2", "v1.0.1", v2),
        yaml::service("nginx-svc-3", &[("http", 80)]),
        yaml::workload("nginx-svc-3", "v3", &[("http", v3)]),
    ]);
    mesh.apply("nginx-pods.yaml", &pods).await.unwrap();
    for file in ["busybox.yaml", "nginx-test.yaml", "nginx-test-vs.yaml"] {
        mesh.apply(file, &read(file)).await.unwrap();
    }
}

async fn seed_splits_80_20_over_2000_requests(proxy: Proxy) {
    let mesh = seeded(proxy).await;
    let tally = mesh.tally_get("http://nginx-svc/", &[], 2_000).await;
    let v1 = tally.share("v1");
    let v2 = tally.share("v2");
    println!("seed split ({proxy}): {tally}");
    let ok = tally.count("v1") + tally.count("v2") == 2_000
        && within(v1, 0.80, 0.05)
        && within(v2, 0.20, 0.05);
    assert!(
        ok,
        "expected 80/20 ±5% between v1 and v2, got {tally}{}",
        mesh.explain().await
    );
}

async fn seed_routes_vs_user_jicki_to_nginx_svc_3(proxy: Proxy) {
    let mesh = seeded(proxy).await;
    let jicki = mesh
        .tally_get("http://nginx-svc/", &[("vs-user", "jicki")], 50)
        .await;
    let other = mesh
        .tally_get("http://nginx-svc/", &[("vs-user", "someone-else")], 50)
        .await;
    let ok = jicki.count("v3") == 50 && other.count("v3") == 0 && other.total() == 50;
    assert!(
        ok,
        "vs-user: jicki → {jicki}; another user → {other}{}",
        mesh.explain().await
    );
    // The full host name reaches the same virtual host.
    let r = mesh
        .get(
            "http://nginx-svc.default.svc.cluster.local/",
            &[("vs-user", "jicki")],
        )
        .await
        .unwrap();
    assert_eq!(r.trimmed(), "v3", "{}", mesh.explain().await);
}

mast_e2e::both! {
    seed_splits_80_20_over_2000_requests,
    seed_routes_vs_user_jicki_to_nginx_svc_3,
}
