//! examples/secure as its README walks through it: `mastctl up examples/secure` (files
//! unchanged), then from `sleep` and `intruder`: sleep → httpbin 200 with its SPIFFE identity
//! in `x-forwarded-client-cert`; intruder → 403 `RBAC: access denied`; `/admin…` (also behind
//! dot segments) and a POST → 403; plaintext straight to httpbin's sidecar refused (STRICT);
//! `/private` with alice's token 200, with the forged token 401, without a token 403;
//! `mastctl proxy-config secret` shows each sidecar's certificate (VALID CERT true) and
//! `mastctl x authz check httpbin` the three policies; the README's live edit lets intruder
//! in. On mast-proxy sidecars, and on Envoy when found (one mesh at a time: httpbin listens
//! on the fixed port 8000).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use mast_test_support::wait_for;
use parking_lot::Mutex;
use up_support::{Dir, Proxy, Up};

/// httpbin's URL as the README writes it (Service `httpbin`, namespace `foo`, port 8000).
const HTTPBIN: &str = "http://httpbin.foo:8000";

/// What the echo server answers a plain GET.
const HELLO: &str = "hello from httpbin";

const DENIED: &str = "RBAC: access denied";

fn example() -> PathBuf {
    mast_test_support::workspace_root().join("examples/secure")
}

fn copy_example(dir: &Dir) {
    for entry in std::fs::read_dir(example()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            dir.write(&name, &std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// A committed token of the example (`jwt/<name>.jwt`).
fn token(name: &str) -> String {
    let path = example().join("jwt").join(format!("{name}.jwt"));
    std::fs::read_to_string(&path).unwrap().trim().to_owned()
}

/// An answer: the HTTP status (0 when none came) and the body, trimmed.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
}

/// `mastctl exec <workload> -- curl -s --max-time 10 <args>` (its sidecar is HTTP_PROXY).
fn curl(up: &Up, workload: &str, args: &[&str]) -> Answer {
    let mut cmd = vec!["curl", "-s", "--max-time", "10", "-w", "\n%{http_code}"];
    cmd.extend(args);
    let out = up.exec(workload, &cmd);
    let (body, status) = out.rsplit_once('\n').unwrap_or(("", out.as_str()));
    Answer {
        status: status.trim().parse().unwrap_or(0),
        body: body.trim().to_owned(),
    }
}

/// [`curl`] with an `Authorization: Bearer <token>` header.
fn curl_with_token(up: &Up, workload: &str, token: &str, url: &str) -> Answer {
    let header = format!("Authorization: Bearer {token}");
    curl(up, workload, &["-H", &header, url])
}

fn assert_denied(answer: &Answer, what: &str, up: &Up) {
    assert!(
        answer.status == 403 && answer.body == DENIED,
        "{what}: expected 403 {DENIED:?}, got {answer:?}\n{}",
        up.stderr()
    );
}

/// sleep gets in with mTLS: the server sees both identities in XFCC.
fn sleep_sees_its_identity(up: &Up) {
    let url = format!("{HTTPBIN}/headers?format=json");
    let mut last = None;
    // The first request may race the sidecars' certificates and policies: bounded retry.
    let ok = wait_for(
        || {
            let a = curl(up, "sleep", &[&url]);
            let done = a.status == 200;
            last = Some(a);
            done
        },
        Duration::from_secs(20),
    );
    let answer = last.unwrap();
    assert!(ok, "sleep → httpbin: {answer:?}\n{}", up.stderr());
    let json: serde_json::Value = serde_json::from_str(&answer.body).expect(&answer.body);
    let xfcc = json["request"]["headers"]["x-forwarded-client-cert"]
        .as_str()
        .unwrap_or_default();
    assert!(
        xfcc.contains("URI=spiffe://cluster.local/ns/foo/sa/sleep")
            && xfcc.starts_with("By=spiffe://cluster.local/ns/foo/sa/httpbin;Hash="),
        "x-forwarded-client-cert: {xfcc:?}"
    );
    assert_eq!(json["workload"]["namespace"], "foo", "{json}");
    assert_eq!(json["workload"]["serviceAccount"], "httpbin", "{json}");
}

/// The AuthorizationPolicies: who, which method, which paths.
fn policies_allow_and_deny(up: &Up) {
    let headers = format!("{HTTPBIN}/headers");
    let plain = curl(up, "sleep", &[&headers]);
    assert_eq!(
        (plain.status, plain.body.as_str()),
        (200, HELLO),
        "{plain:?}"
    );
    assert_denied(
        &curl(up, "intruder", &[&headers]),
        "intruder → /headers",
        up,
    );
    let admin = format!("{HTTPBIN}/admin/users");
    assert_denied(&curl(up, "sleep", &[&admin]), "sleep → /admin/users", up);
    let sneaky = format!("{HTTPBIN}/headers/../admin");
    assert_denied(
        &curl(up, "sleep", &["--path-as-is", &sneaky]),
        "sleep → /headers/../admin (normalised to /admin)",
        up,
    );
    let post = curl(up, "sleep", &["-X", "POST", &headers]);
    assert_denied(&post, "sleep → POST /headers", up);
    let other = format!("{HTTPBIN}/ip");
    assert_denied(&curl(up, "sleep", &[&other]), "sleep → /ip", up);
}

/// RequestAuthentication + require-jwt on /private.
fn jwt_on_private(up: &Up) {
    let private = format!("{HTTPBIN}/private");
    assert_denied(
        &curl(up, "sleep", &[&private]),
        "/private without a token",
        up,
    );
    let alice = token("alice");
    let valid = curl_with_token(up, "sleep", &alice, &private);
    assert_eq!(
        (valid.status, valid.body.as_str()),
        (200, HELLO),
        "/private with alice's token: {valid:?}\n{}",
        up.stderr()
    );
    let forged = curl_with_token(up, "sleep", &token("forged"), &private);
    assert_eq!(
        forged.status, 401,
        "/private with the forged token: {forged:?}"
    );
    assert_eq!(forged.body, "Jwt verification fails", "{forged:?}");
    let forged_headers =
        curl_with_token(up, "sleep", &token("forged"), &format!("{HTTPBIN}/headers"));
    assert_eq!(
        forged_headers.status, 401,
        "any path with a bad token: {forged_headers:?}"
    );
    let intruder = curl_with_token(up, "intruder", &alice, &private);
    assert_denied(&intruder, "intruder with alice's token → /private", up);
}

/// STRICT: a client without a sidecar (curl from the test itself) gets no answer from the
/// sidecar's inbound port.
fn plaintext_is_refused(up: &Up) {
    let inbound = &up.workload("httpbin")["inbound"];
    let port = inbound["8000"]
        .as_u64()
        .or_else(|| inbound.as_object()?.values().next()?.as_u64())
        .expect("httpbin's inbound port in the state");
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", "-w", "%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}/headers"))
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .output()
        .expect("run curl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && stdout.trim() == "000",
        "plaintext to httpbin's sidecar (127.0.0.1:{port}) must be refused: exit {:?}, {stdout:?}",
        out.status.code()
    );
}

/// The words of the row whose first word is `first`.
fn row(table: &str, first: &str) -> Vec<String> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(first))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// `mastctl proxy-config secret <w>.foo`: `default` and `ROOTCA` active and valid.
fn every_sidecar_has_a_certificate(up: &Up, proxy: &Proxy) {
    for w in ["httpbin", "sleep", "intruder"] {
        let name = format!("{w}.foo");
        let table = up.mastctl(&["proxy-config", "secret", &name]);
        let default = row(&table, "default");
        let root = row(&table, "ROOTCA");
        assert!(
            default
                .get(1..5)
                .is_some_and(|c| c == ["Cert", "Chain", "ACTIVE", "true"])
                && root
                    .get(1..4)
                    .is_some_and(|c| c == ["CA", "ACTIVE", "true"]),
            "{} sidecar of {name}:\n{table}",
            proxy.name()
        );
    }
}

/// `mastctl x authz check httpbin.foo`: the proxy's RBAC filters, then the folder's policies.
fn authz_check_lists_the_policies(up: &Up) {
    // A bare workload name of the local mesh, as the README writes it.
    let out = up.mastctl(&["x", "authz", "check", "httpbin"]);
    let has = |cells: &[&str]| {
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == cells)
    };
    for cells in [
        ["ALLOW", "allow-sleep.foo", "1"],
        ["ALLOW", "require-jwt.foo", "1"],
        ["DENY", "deny-admin.foo", "1"],
    ] {
        assert!(has(&cells), "no row {cells:?} in:\n{out}");
    }
    for cells in [
        ["ALLOW", "allow-sleep.foo", "1", "yes"],
        ["ALLOW", "require-jwt.foo", "1", "yes"],
        ["DENY", "deny-admin.foo", "1", "yes"],
    ] {
        assert!(has(&cells), "no folder row {cells:?} in:\n{out}");
    }
}

/// The README's "Try a change": intruder added to allow-sleep gets in within a second or
/// two; /admin stays denied.
fn live_edit_lets_intruder_in(up: &Up, dir: &Dir) {
    let file = "authorization-policies.yaml";
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    let sleep_only = r#"principals: ["cluster.local/ns/foo/sa/sleep"]"#;
    let both =
        r#"principals: ["cluster.local/ns/foo/sa/sleep", "cluster.local/ns/foo/sa/intruder"]"#;
    assert_eq!(
        text.matches(sleep_only).count(),
        2,
        "allow-sleep and require-jwt"
    );
    dir.write(file, &text.replacen(sleep_only, both, 1));
    let headers = format!("{HTTPBIN}/headers");
    let mut last = None;
    let started = std::time::Instant::now();
    let ok = wait_for(
        || {
            let a = curl(up, "intruder", &[&headers]);
            let done = a.status == 200 && a.body == HELLO;
            last = Some(a);
            done
        },
        Duration::from_secs(10),
    );
    assert!(ok, "intruder after the edit: {last:?}\n{}", up.stderr());
    println!("intruder allowed {:?} after the edit", started.elapsed());
    let admin = format!("{HTTPBIN}/admin");
    assert_denied(
        &curl(up, "intruder", &[&admin]),
        "intruder → /admin after the edit",
        up,
    );
    assert_denied(
        &curl(up, "sleep", &[&admin]),
        "sleep → /admin after the edit",
        up,
    );
}

fn walkthrough(proxy: &Proxy) {
    let Some(dir) = Dir::for_up("secure") else {
        return;
    };
    copy_example(&dir);
    let mut up = Up::start_on(&dir, proxy, &[]);
    up.wait_ready();
    println!(
        "{}: {}",
        proxy.name(),
        up.stdout()
            .lines()
            .find(|l| l.contains("all workloads ready"))
            .unwrap_or_default()
    );
    sleep_sees_its_identity(&up);
    policies_allow_and_deny(&up);
    jwt_on_private(&up);
    plaintext_is_refused(&up);
    every_sidecar_has_a_certificate(&up, proxy);
    authz_check_lists_the_policies(&up);
    live_edit_lets_intruder_in(&up, &dir);
    assert_eq!(up.interrupt(), Some(0), "{}", up.stderr());
}

/// The two runs share httpbin's fixed port 8000: one at a time.
static ONE_MESH: Mutex<()> = Mutex::new(());

#[test]
fn secure_example_on_mast_proxy() {
    let _one = ONE_MESH.lock();
    walkthrough(&Proxy::Mast);
}

#[test]
fn secure_example_on_envoy() {
    let _one = ONE_MESH.lock();
    if let Some(envoy) = Proxy::envoy() {
        walkthrough(&envoy);
    }
}
