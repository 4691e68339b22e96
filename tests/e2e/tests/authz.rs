//! Authorization and request authentication at a server's sidecar, as a user checks them:
//! an ALLOW policy on `source.principals` lets one client in and keeps another out with 403
//! `RBAC: access denied`; DENY on a path prefix; a `when` on a header; `{}` denies all and
//! `rules: [{}]` allows all; a denied TCP connection is closed; JWTs: valid → 200, forged
//! → 401, missing → 200 unless a policy requires a request principal → 403.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mast_e2e::jwt::{Issuer, JwksServer, forge};
use mast_e2e::workloads::{authorization_policy, echo_server, peer_authentication};
use mast_e2e::{Mesh, Proxy, SharedMesh, Workload, WorkloadSpec, shared, yaml};
use mast_test_support::EchoServer;

static MESH: SharedMesh = SharedMesh::const_new();

/// A server `name` (echo app + sidecar, STRICT mTLS) behind Service `name` with `policies`.
async fn server(mesh: &Mesh, name: &str, policies: &str) -> (EchoServer, Workload) {
    let extra = [peer_authentication(name, "STRICT", ""), policies.to_owned()];
    echo_server(mesh, name, &extra).await.unwrap()
}

/// An AuthorizationPolicy `name` selecting `app: <app>` with `body` (YAML under `spec:`).
fn policy(name: &str, app: &str, body: &str) -> String {
    authorization_policy(name, app, body)
}

async fn allow_principal_lets_one_client_in(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let body = "  action: ALLOW\n  rules:\n  - from:\n    - source:\n        principals: [cluster.local/ns/default/sa/client]\n";
    let (_app, _srv) = server(
        mesh,
        "allow-svc",
        &policy("allow-client", "allow-svc", body),
    )
    .await;
    let other = Workload::start(mesh, WorkloadSpec::client("intruder", "intruder"))
        .await
        .unwrap();
    mesh.wait_synced().await.unwrap();
    let ok = mesh.get("http://allow-svc/", &[]).await.unwrap();
    assert_eq!(
        ok.status,
        200,
        "the allowed client: {}{}",
        ok.text(),
        mesh.explain().await
    );
    let denied = other.get("http://allow-svc/", &[]).await.unwrap();
    assert!(
        denied.status == 403 && denied.text() == "RBAC: access denied",
        "another identity: status {} body {:?}",
        denied.status,
        denied.text()
    );
}

async fn deny_on_a_path_prefix(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let body =
        "  action: DENY\n  rules:\n  - to:\n    - operation:\n        paths: [\"/admin*\"]\n";
    let (_app, _srv) = server(mesh, "deny-svc", &policy("deny-admin", "deny-svc", body)).await;
    let admin = mesh.get("http://deny-svc/admin/users", &[]).await.unwrap();
    assert_eq!(
        admin.status,
        403,
        "{}{}",
        admin.text(),
        mesh.explain().await
    );
    let public = mesh.get("http://deny-svc/public", &[]).await.unwrap();
    assert_eq!(public.status, 200);
    // Istio normalises the path before matching: dot segments cannot sneak past the rule.
    let sneaky = mesh
        .get("http://deny-svc/public/../admin/users", &[])
        .await
        .unwrap();
    assert_eq!(sneaky.status, 403, "normalised path /admin/users is denied");
}

async fn when_on_a_header(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let body = "  action: ALLOW\n  rules:\n  - when:\n    - key: request.headers[x-pass]\n      values: [let-me-in]\n";
    let (_app, _srv) = server(mesh, "when-svc", &policy("when-header", "when-svc", body)).await;
    let with = mesh
        .get("http://when-svc/", &[("x-pass", "let-me-in")])
        .await
        .unwrap();
    assert_eq!(with.status, 200, "{}{}", with.text(), mesh.explain().await);
    let without = mesh.get("http://when-svc/", &[]).await.unwrap();
    assert_eq!(without.status, 403);
    let wrong = mesh
        .get("http://when-svc/", &[("x-pass", "nope")])
        .await
        .unwrap();
    assert_eq!(wrong.status, 403);
}

async fn empty_spec_denies_all_and_empty_rule_allows_all(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let (_app, _srv) = server(
        mesh,
        "all-svc",
        &policy("deny-all", "all-svc", "  action: ALLOW\n"),
    )
    .await;
    let r = mesh.get("http://all-svc/", &[]).await.unwrap();
    assert_eq!(
        r.status,
        403,
        "an ALLOW policy without rules denies all: {}{}",
        r.text(),
        mesh.explain().await
    );
    let allow_all = policy("allow-all", "all-svc", "  rules:\n  - {}\n");
    mesh.apply("all-policy.yaml", &allow_all).await.unwrap();
    // Both policies exist now; `rules: [{}]` matches every request, so it is allowed.
    let r = mesh.get("http://all-svc/", &[]).await.unwrap();
    assert_eq!(r.status, 200, "rules: [{{}}] allows all");
}

async fn jwt_valid_forged_missing(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let issuer = Issuer::new("https://issuer.e2e.mast").unwrap();
    let ra = format!(
        "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata:\n  name: jwt\n  \
         namespace: default\nspec:\n  selector:\n    matchLabels:\n      app: jwt-svc\n  jwtRules:\n  \
         - issuer: {iss}\n    jwks: '{jwks}'\n",
        iss = issuer.iss,
        jwks = issuer.jwks()
    );
    let (_app, _srv) = server(mesh, "jwt-svc", &ra).await;
    let token = issuer.token("alice", serde_json::json!({})).unwrap();
    let bearer = format!("Bearer {token}");
    let valid = mesh
        .get("http://jwt-svc/", &[("authorization", &bearer)])
        .await
        .unwrap();
    assert_eq!(
        valid.status,
        200,
        "valid token: {}{}",
        valid.text(),
        mesh.explain().await
    );
    let forged = forge(
        &token,
        &serde_json::json!({"iss": issuer.iss, "sub": "mallory", "exp": 4_000_000_000u64}),
    );
    let forged = mesh
        .get(
            "http://jwt-svc/",
            &[("authorization", &format!("Bearer {forged}"))],
        )
        .await
        .unwrap();
    assert_eq!(forged.status, 401, "forged token");
    let missing = mesh.get("http://jwt-svc/", &[]).await.unwrap();
    assert_eq!(
        missing.status, 200,
        "no token passes RequestAuthentication alone"
    );
    let require = policy(
        "require-jwt",
        "jwt-svc",
        "  action: ALLOW\n  rules:\n  - from:\n    - source:\n        requestPrincipals: [\"*\"]\n",
    );
    mesh.apply("jwt-require.yaml", &require).await.unwrap();
    let missing = mesh.get("http://jwt-svc/", &[]).await.unwrap();
    assert_eq!(missing.status, 403, "a policy asks for a request principal");
    let valid = mesh
        .get("http://jwt-svc/", &[("authorization", &bearer)])
        .await
        .unwrap();
    assert_eq!(valid.status, 200, "valid token with the policy");
}

async fn jwks_uri_is_fetched_by_mastd(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let issuer = Issuer::new("https://uri-issuer.e2e.mast").unwrap();
    let jwks = JwksServer::start(issuer.jwks()).await.unwrap();
    let ra = format!(
        "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata:\n  name: jwt-uri\n  \
         namespace: default\nspec:\n  selector:\n    matchLabels:\n      app: jwturi-svc\n  jwtRules:\n  \
         - issuer: {iss}\n    jwksUri: {uri}\n    outputPayloadToHeader: x-jwt-payload\n",
        iss = issuer.iss,
        uri = jwks.url()
    );
    let (_app, _srv) = server(mesh, "jwturi-svc", &ra).await;
    let token = issuer
        .token("bob", serde_json::json!({"team": "blue"}))
        .unwrap();
    let bearer = format!("Bearer {token}");
    // mastd fetches the document when the rule appears and pushes it inlined: poll briefly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut last = None;
    while std::time::Instant::now() < deadline {
        let r = mesh
            .get("http://jwturi-svc/", &[("authorization", &bearer)])
            .await
            .unwrap();
        if r.status == 200 {
            last = Some(r);
            break;
        }
        last = Some(r);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let r = last.unwrap();
    assert_eq!(
        r.status,
        200,
        "valid token via jwksUri ({} fetches): {}{}",
        jwks.hits(),
        r.text(),
        mesh.explain().await
    );
    let payload = r.header("x-echo-x-jwt-payload").unwrap_or_default();
    assert!(
        !payload.is_empty(),
        "outputPayloadToHeader sets x-jwt-payload"
    );
    let other = Issuer::new("https://uri-issuer.e2e.mast").unwrap();
    let foreign = other.token("bob", serde_json::json!({})).unwrap();
    let r = mesh
        .get(
            "http://jwturi-svc/",
            &[("authorization", &format!("Bearer {foreign}"))],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401, "a token signed by another key");
}

async fn tcp_deny_closes_the_connection(proxy: Proxy) {
    use mast_e2e::traffic::{connect_tunnel, exchange};
    let mesh = shared(&MESH, proxy).await;
    let app = mast_test_support::TcpEchoServer::start("tcp-v1").unwrap();
    let sidecar = Workload::start(
        mesh,
        WorkloadSpec::server("tcpauthz-svc", "tcpauthz-svc", app.port()),
    )
    .await
    .unwrap();
    let files = yaml::docs(&[
        yaml::service("tcpauthz-svc", &[("tcp", 9000)]),
        sidecar.entry("tcpauthz-svc", "tcp"),
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: tcpauthz-svc\n  \
         namespace: default\nspec:\n  selector:\n    matchLabels:\n      app: tcpauthz-svc\n  mtls:\n    mode: STRICT\n"
            .to_owned(),
    ]);
    mesh.apply("tcpauthz-svc.yaml", &files).await.unwrap();
    let timeout = std::time::Duration::from_secs(5);
    let echo = async || -> Result<Vec<u8>, String> {
        let mut stream = connect_tunnel(mesh.outbound(), "tcpauthz-svc:9000", timeout)
            .await
            .map_err(|e| format!("{e:#}"))?;
        exchange(&mut stream, b"ping\n", 12, timeout)
            .await
            .map_err(|e| format!("{e:#}"))
    };
    let before = echo().await;
    assert_eq!(
        before.as_deref(),
        Ok(&b"tcp-v1\nping\n"[..]),
        "before the policy{}\n{}",
        mesh.explain().await,
        sidecar.log()
    );
    let body = "  action: DENY\n  rules:\n  - from:\n    - source:\n        principals: [cluster.local/ns/default/sa/client]\n";
    mesh.apply(
        "tcpauthz-policy.yaml",
        &policy("tcp-deny", "tcpauthz-svc", body),
    )
    .await
    .unwrap();
    let after = echo().await;
    assert!(
        after.as_ref().is_ok_and(Vec::is_empty) || after.is_err(),
        "denied: the connection is closed without data, got {after:?}"
    );
}

async fn port_conditions_name_the_workload_port(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let app = EchoServer::start("port-svc").unwrap();
    let port = app.port();
    // `ports` names the port the workload listens on, whatever port the sidecar's own
    // listener has (in ports capture they differ).
    let body = format!(
        "  action: DENY\n  rules:\n  - to:\n    - operation:\n        ports: [\"{port}\"]\n        paths: [\"/blocked*\"]\n  \
         - to:\n    - operation:\n        ports: [\"1\"]\n        paths: [\"/other-port*\"]\n"
    );
    let sidecar = Workload::start(mesh, WorkloadSpec::server("port-svc", "port-svc", port))
        .await
        .unwrap();
    let files = yaml::docs(&[
        yaml::service("port-svc", &[("http", 80)]),
        sidecar.entry("port-svc", "http"),
        policy("port-deny", "port-svc", &body),
    ]);
    mesh.apply("port-svc.yaml", &files).await.unwrap();
    let blocked = mesh.get("http://port-svc/blocked/x", &[]).await.unwrap();
    assert_eq!(
        blocked.status,
        403,
        "{}{}",
        blocked.text(),
        mesh.explain().await
    );
    let other = mesh.get("http://port-svc/other-port/x", &[]).await.unwrap();
    assert_eq!(other.status, 200, "a rule for another port does not apply");
}

async fn dry_run_policies_never_decide(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let dry = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: dry-deny\n  \
               namespace: default\n  annotations:\n    istio.io/dry-run: \"true\"\nspec:\n  selector:\n    \
               matchLabels:\n      app: dry-svc\n  action: DENY\n  rules:\n  - to:\n    - operation:\n        paths: [\"/dry*\"]\n";
    let enforced = policy(
        "real-deny",
        "dry-svc",
        "  action: DENY\n  rules:\n  - to:\n    - operation:\n        paths: [\"/real*\"]\n",
    );
    let (_app, _srv) = server(mesh, "dry-svc", &yaml::docs(&[dry.to_owned(), enforced])).await;
    let dry = mesh.get("http://dry-svc/dry/run", &[]).await.unwrap();
    assert_eq!(
        dry.status,
        200,
        "a dry-run DENY only logs: {}{}",
        dry.text(),
        mesh.explain().await
    );
    let real = mesh.get("http://dry-svc/real/thing", &[]).await.unwrap();
    assert_eq!(
        real.status, 403,
        "the enforced DENY beside it still decides"
    );
}

mast_e2e::both! {
    allow_principal_lets_one_client_in,
    deny_on_a_path_prefix,
    when_on_a_header,
    empty_spec_denies_all_and_empty_rule_allows_all,
    jwt_valid_forged_missing,
    jwks_uri_is_fetched_by_mastd,
    tcp_deny_closes_the_connection,
    port_conditions_name_the_workload_port,
    dry_run_policies_never_decide,
}
