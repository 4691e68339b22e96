//! `mastctl profile`, `manifest generate`, `install`, `verify-install`, `upgrade` and
//! `uninstall` as a user runs them: the real binary, against the Kubernetes API emulator
//! (mast-test-support's `KubeEmulator`) through a kubeconfig. The emulator runs no
//! controllers, so a "kubelet" thread here marks each Deployment available once it exists.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use mast_test_support::TempDir;
use mast_test_support::kube::KubeEmulator;
use serde_json::{Value, json};

const MASTCTL: &str = env!("CARGO_BIN_EXE_mastctl");

/// Runs mastctl; its command line and output go to the test log (`--nocapture`).
fn mastctl(args: &[&str]) -> Output {
    let o = Command::new(MASTCTL)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    eprintln!("$ mastctl {}\n{}{}", args.join(" "), text(&o), err(&o));
    o
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn profile_list_dump_and_diff() {
    let o = mastctl(&["profile", "list"]);
    assert!(o.status.success());
    assert_eq!(
        text(&o),
        "Mast configuration profiles:\n    default\n    demo\n    empty\n    minimal\n    remote\n"
    );

    let o = mastctl(&[
        "profile",
        "dump",
        "demo",
        "--config-path",
        "components.egressGateways",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let v: Value = serde_saphyr::from_str(&text(&o)).unwrap();
    assert_eq!(v, json!([{"name": "mast-egressgateway", "enabled": true}]));

    let o = mastctl(&["profile", "dump", "minimal"]);
    let v: Value = serde_saphyr::from_str(&text(&o)).unwrap();
    assert_eq!(v["kind"], "IstioOperator");
    assert_eq!(v["spec"]["profile"], "minimal");
    assert_eq!(
        v["spec"]["components"]["ingressGateways"][0]["enabled"],
        false
    );

    let o = mastctl(&["profile", "diff", "default", "demo"]);
    let d = text(&o);
    assert!(d.starts_with("The difference between profiles:\n"), "{d}");
    assert!(
        d.contains("\n-    accessLogFile: ''\n") || d.contains("\n-    accessLogFile: \"\"\n"),
        "{d}"
    );
    assert!(d.contains("\n+    accessLogFile: /dev/stdout\n"), "{d}");
    assert_eq!(
        text(&mastctl(&["profile", "diff", "demo", "demo"])),
        "Profiles are identical\n"
    );

    let o = mastctl(&["profile", "dump", "nope"]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains(
            "unknown profile \"nope\": the profiles are default, demo, empty, minimal, remote"
        ),
        "{}",
        err(&o)
    );
}

#[test]
fn manifest_generate_prints_sorted_yaml() {
    let o = mastctl(&[
        "manifest",
        "generate",
        "--set",
        "profile=demo",
        "--set",
        "values.global.proxy.image=my/proxy:1",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text(&o)).unwrap();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert!(
        kinds[..9].iter().all(|k| *k == "CustomResourceDefinition"),
        "{kinds:?}"
    );
    assert_eq!(kinds[9], "Namespace");
    let gw = docs
        .iter()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "mast-egressgateway")
        .unwrap();
    assert_eq!(
        gw["spec"]["template"]["spec"]["containers"][0]["image"],
        "my/proxy:1"
    );

    let o = mastctl(&[
        "manifest",
        "generate",
        "--set",
        "values.pilot.replicaCount=lots",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("values.pilot.replicaCount: expected a whole number"),
        "{}",
        err(&o)
    );
}

/// Marks every Deployment available (as the Deployment controller and kubelet would) until
/// stopped; at most 120 s.
fn kubelet(emulator: Arc<KubeEmulator>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            for mut d in emulator.list("apps/v1", "Deployment").unwrap_or_default() {
                if d["status"]["availableReplicas"].as_i64().unwrap_or(0) > 0 {
                    continue;
                }
                let n = d["spec"]["replicas"].as_i64().unwrap_or(1);
                d["status"] = json!({"replicas": n, "readyReplicas": n, "availableReplicas": n,
                    "conditions": [{"type": "Available", "status": "True"}]});
                let _ = emulator.put(d);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

fn names(emulator: &KubeEmulator, api: &str, kind: &str) -> Vec<String> {
    let mut n: Vec<String> = emulator
        .list(api, kind)
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

fn lines_with_check(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with('✔')).collect()
}

#[test]
fn install_verify_upgrade_uninstall_against_the_emulator() {
    let emulator = Arc::new(KubeEmulator::start_bare().unwrap());
    let dir = TempDir::new("mastctl-install").unwrap();
    let kc = dir.path().join("kubeconfig");
    emulator.write_kubeconfig(&kc).unwrap();
    let kc = kc.to_str().unwrap();

    // Nothing is ready: install times out naming what is not.
    let o = mastctl(&[
        "install",
        "-y",
        "--kubeconfig",
        kc,
        "--readiness-timeout",
        "2s",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(lines_with_check(&text(&o)), ["✔ Mast core installed"]);
    assert!(err(&o).contains("Mastd failed: timed out after 2s waiting for resources to be ready: Deployment mast-system/mastd (0/1 replicas available)"), "{}", err(&o));

    let stop = Arc::new(AtomicBool::new(false));
    let k = kubelet(emulator.clone(), stop.clone());
    let o = mastctl(&[
        "install",
        "-y",
        "--kubeconfig",
        kc,
        "--readiness-timeout",
        "20s",
    ]);
    assert!(o.status.success(), "{}\n{}", text(&o), err(&o));
    assert_eq!(
        lines_with_check(&text(&o)),
        [
            "✔ Mast core installed",
            "✔ Mastd installed",
            "✔ Ingress gateways installed",
            "✔ Installation complete"
        ]
    );
    assert_eq!(
        names(
            &emulator,
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition"
        )
        .len(),
        9
    );
    // The injection webhook trusts the mesh CA that mastd signs with.
    let secret = emulator
        .get("v1", "Secret", "mast-system", "cacerts")
        .unwrap();
    let wh = emulator
        .get(
            "admissionregistration.k8s.io/v1",
            "MutatingWebhookConfiguration",
            "",
            "istio-sidecar-injector",
        )
        .unwrap();
    assert_eq!(
        wh["webhooks"][0]["clientConfig"]["caBundle"],
        secret["data"]["root-cert.pem"]
    );
    let root = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["root-cert.pem"].as_str().unwrap())
        .unwrap();
    let cm = emulator
        .get("v1", "ConfigMap", "mast-system", "istio-ca-root-cert")
        .unwrap();
    assert_eq!(
        cm["data"]["root-cert.pem"].as_str().unwrap().as_bytes(),
        root.as_slice()
    );
    assert!(
        String::from_utf8(root)
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );

    let o = mastctl(&["verify-install", "--kubeconfig", kc]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("✔ Deployment: mastd.mast-system checked successfully\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "✔ CustomResourceDefinition: virtualservices.networking.istio.io checked successfully\n"
        ),
        "{out}"
    );
    assert!(out.ends_with("Checked 9 custom resource definitions\nChecked 2 Mast Deployments\n✔ Mast is installed and verified successfully\n"), "{out}");
    // The demo profile's egress gateway is not installed: verify-install says so.
    let o = mastctl(&[
        "verify-install",
        "--kubeconfig",
        kc,
        "--set",
        "profile=demo",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("✘ Deployment: mast-egressgateway.mast-system: not found\n"),
        "{}",
        text(&o)
    );

    // A canary revision beside the default one; the same CA.
    let o = mastctl(&[
        "upgrade",
        "-y",
        "--kubeconfig",
        kc,
        "--revision",
        "canary",
        "--readiness-timeout",
        "20s",
    ]);
    assert!(o.status.success(), "{}\n{}", text(&o), err(&o));
    assert!(text(&o).contains("istio.io/rev=canary"), "{}", text(&o));
    assert_eq!(
        names(&emulator, "apps/v1", "Deployment"),
        ["mast-ingressgateway", "mastd", "mastd-canary"]
    );
    let wh = emulator
        .get(
            "admissionregistration.k8s.io/v1",
            "MutatingWebhookConfiguration",
            "",
            "istio-sidecar-injector-canary",
        )
        .unwrap();
    assert_eq!(
        wh["webhooks"][0]["namespaceSelector"]["matchExpressions"][0]["values"],
        json!(["canary"])
    );
    assert_eq!(
        wh["webhooks"][0]["clientConfig"]["caBundle"],
        secret["data"]["root-cert.pem"]
    );

    // Removing the old revision keeps the new one, the gateway it took over, and the CRDs.
    let o = mastctl(&[
        "uninstall",
        "-y",
        "--kubeconfig",
        kc,
        "--revision",
        "default",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        text(&o).contains("  Removed Deployment:mast-system:mastd.\n"),
        "{}",
        text(&o)
    );
    assert!(text(&o).ends_with("✔ Uninstall complete\n"));
    assert_eq!(
        names(&emulator, "apps/v1", "Deployment"),
        ["mast-ingressgateway", "mastd-canary"]
    );
    assert_eq!(
        names(
            &emulator,
            "admissionregistration.k8s.io/v1",
            "MutatingWebhookConfiguration"
        ),
        ["istio-sidecar-injector-canary"]
    );
    assert_eq!(
        names(
            &emulator,
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition"
        )
        .len(),
        9
    );

    let o = mastctl(&["uninstall", "-y", "--kubeconfig", kc, "--purge"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(names(&emulator, "apps/v1", "Deployment").is_empty());
    assert!(
        names(
            &emulator,
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition"
        )
        .is_empty()
    );
    assert!(
        emulator
            .get("v1", "Secret", "mast-system", "cacerts")
            .is_err()
    );
    stop.store(true, Ordering::SeqCst);
    k.join().unwrap();
}

/// `kubectl apply --dry-run=client --validate=false` accepts the manifests (kubectl reads
/// the emulator's discovery to map each kind).
#[test]
fn kubectl_dry_run_accepts_the_manifests() {
    if Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_err()
    {
        eprintln!("skipped: no kubectl binary on PATH");
        return;
    }
    let emulator = KubeEmulator::start_bare().unwrap();
    let dir = TempDir::new("mastctl-kubectl").unwrap();
    let kc = dir.path().join("kubeconfig");
    emulator.write_kubeconfig(&kc).unwrap();
    let manifest = text(&mastctl(&["manifest", "generate", "--set", "profile=demo"]));
    let mut child = Command::new("kubectl")
        .args(["apply", "--dry-run=client", "--validate=false", "-f", "-"])
        .env("KUBECONFIG", &kc)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(manifest.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "kubectl: {}\n{}", err(&o), text(&o));
    let out = text(&o);
    assert!(
        out.contains("deployment.apps/mastd created (dry run)"),
        "{out}"
    );
    assert!(out.contains("customresourcedefinition.apiextensions.k8s.io/virtualservices.networking.istio.io created (dry run)"), "{out}");
}

/// Without `-y`, install asks first; anything but `y` changes nothing.
#[test]
fn install_asks_before_changing_the_cluster() {
    let emulator = KubeEmulator::start_bare().unwrap();
    let dir = TempDir::new("mastctl-install-ask").unwrap();
    let kc = dir.path().join("kubeconfig");
    emulator.write_kubeconfig(&kc).unwrap();
    let mut child = Command::new(MASTCTL)
        .args(["install", "--set", "profile=minimal", "--kubeconfig"])
        .arg(&kc)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"n\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(text(&o), "Cancelled.\n");
    let want = format!(
        "This will install the Mast {} \"minimal\" profile with [Mast core Mastd] components into the cluster. Proceed? (y/N) ",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(err(&o), want);
    assert!(
        emulator
            .list("v1", "Namespace")
            .unwrap()
            .iter()
            .all(|n| n["metadata"]["name"] != "mast-system")
    );
}
