//! LocalWorkload tests: one invalid case per rule (field path and message), load failures
//! naming the field, defaults, and a round trip of a full workload.

use crate::local::{ProxyChoice, RestartPolicy};
use crate::validate::{check, error_fields, load_error};

/// A LocalWorkload named `name` with `meta` extra metadata lines and spec `spec` (flow YAML).
fn lw(name: &str, meta: &str, spec: &str) -> String {
    format!(
        "apiVersion: mast.dev/v1alpha1\nkind: LocalWorkload\nmetadata:\n  name: {name}\n  namespace: default\n{meta}spec: {spec}\n"
    )
}

fn ok_spec(extra: &str) -> String {
    format!("{{command: [mastctl, x, echo], port: 8080{extra}}}")
}

#[test]
fn invalid_local_workloads() {
    let cases = [
        (
            "w",
            "",
            "{port: 8080}".to_owned(),
            "spec.command",
            "command is required",
        ),
        (
            "w",
            "",
            "{command: []}".to_owned(),
            "spec.command",
            "command is required",
        ),
        (
            "w",
            "",
            "{command: ['']}".to_owned(),
            "spec.command[0]",
            "must not be empty",
        ),
        (
            "w",
            "",
            "{command: [x], port: 0}".to_owned(),
            "spec.port",
            "1..65535",
        ),
        (
            "w",
            "",
            "{command: [x], port: 70000}".to_owned(),
            "spec.port",
            "1..65535",
        ),
        (
            "w",
            "",
            ok_spec(", serviceAccount: Bad_SA"),
            "spec.serviceAccount",
            "invalid service account name",
        ),
        (
            "w",
            "",
            ok_spec(", env: {1ABC: x}"),
            "spec.env.1ABC",
            "invalid environment variable name",
        ),
        (
            "w",
            "",
            ok_spec(", env: {'A-B': x}"),
            "spec.env.A-B",
            "invalid environment variable name",
        ),
        (
            "Nginx_1",
            "",
            ok_spec(""),
            "metadata.name",
            "RFC 1123 label",
        ),
        (
            "w",
            "  labels: {app: 'a b'}\n",
            ok_spec(""),
            "metadata.labels.app",
            "invalid label value",
        ),
        (
            "w",
            "  annotations: {mast.dev/proxy: istio}\n",
            ok_spec(""),
            "metadata.annotations.mast.dev/proxy",
            "must be mast or envoy",
        ),
    ];
    for (name, meta, spec, field, msg) in cases {
        let r = check(&lw(name, meta, &spec));
        assert!(
            r.errors
                .iter()
                .any(|e| e.field == field && e.message.contains(msg)),
            "spec {spec}: expected error at {field} containing {msg:?}, got {:?}",
            r.errors
        );
    }
}

#[test]
fn errors_carry_file_and_line() {
    let text = "apiVersion: mast.dev/v1alpha1\nkind: LocalWorkload\nmetadata:\n  name: w\nspec:\n  command: [x]\n  port: 0\n";
    let out = crate::load::load_str(text, "w.yaml", &crate::load::LoadOptions::default());
    let d = crate::validate::validate_all(&out.resources);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        d[0].to_string(),
        "w.yaml:7: LocalWorkload default/w: spec.port: port number 0 must be in the range 1..65535"
    );
}

#[test]
fn port_env_warns() {
    let r = check(&lw("w", "", &ok_spec(", env: {PORT: '9'}")));
    assert!(r.is_valid(), "{:?}", r.errors);
    assert_eq!(r.warnings.len(), 1);
    assert_eq!(r.warnings[0].field, "spec.env.PORT");
    // Without spec.port, PORT is the user's own.
    assert!(
        check(&lw("w", "", "{command: [x], env: {PORT: '9'}}"))
            .warnings
            .is_empty()
    );
}

#[test]
fn load_failures() {
    let d = load_error(&lw("w", "", "{command: [x], restartPolicy: OnFailure}"));
    assert_eq!(d.field.as_deref(), Some("spec.restartPolicy"));
    assert!(d.message.contains("Always"), "{}", d.message);

    let d = load_error(&lw("w", "", "{comand: [x]}"));
    assert_eq!(d.field.as_deref(), Some("spec.comand"));
    assert!(
        d.message.contains("did you mean \"command\""),
        "{}",
        d.message
    );

    let d = load_error(&lw("w", "", "{command: x}"));
    assert_eq!(d.field.as_deref(), Some("spec.command"));

    let d = load_error(&lw("w", "", "{command: [x], env: [A]}"));
    assert_eq!(d.field.as_deref(), Some("spec.env"));

    let d = load_error(&lw("w", "", "{command: [x]}").replace("mast.dev/v1alpha1", "mast.dev/v1"));
    assert_eq!(d.field.as_deref(), Some("apiVersion"));
    assert!(d.message.contains("mast.dev/v1alpha1"), "{}", d.message);
}

#[test]
fn defaults() {
    let text = lw(
        "client",
        "",
        "{command: [sh, -c, 'curl http://nginx-svc/']}",
    );
    assert!(check(&text).errors.is_empty());
    let out = crate::load::load_str(&text, "t.yaml", &crate::load::LoadOptions::default());
    let res = &out.resources[0];
    let spec = res.as_local_workload().expect("a local workload");
    assert_eq!(res.known_kind(), Some(crate::Kind::LocalWorkload));
    assert_eq!(spec.restart_policy, RestartPolicy::Always);
    assert!(!spec.is_job());
    assert_eq!(spec.port_number(), None);
    assert_eq!(spec.service_account(), "default");
    assert_eq!(ProxyChoice::of(res), Some(ProxyChoice::Mast));
}

#[test]
fn round_trip() {
    let text = r#"apiVersion: mast.dev/v1alpha1
kind: LocalWorkload
metadata:
  name: nginx-1
  namespace: default
  labels: {app: nginx, version: v1}
  annotations: {mast.dev/proxy: envoy}
spec:
  command: ["mastctl", "x", "echo", "--message", "hello nginx-1"]
  port: 8080
  serviceAccount: nginx
  env: {GREETING: hi}
  restartPolicy: Never
"#;
    let r = check(text);
    assert!(r.errors.is_empty() && r.warnings.is_empty(), "{r:?}");
    let out = crate::load::load_str(text, "t.yaml", &crate::load::LoadOptions::default());
    let res = &out.resources[0];
    let spec = res.as_local_workload().expect("a local workload");
    assert_eq!(spec.port_number(), Some(8080));
    assert_eq!(spec.service_account(), "nginx");
    assert!(spec.is_job());
    assert_eq!(ProxyChoice::of(res), Some(ProxyChoice::Envoy));
    assert_eq!(res.labels()["version"], "v1");
    let input = crate::yaml::parse_documents(text)[0]
        .as_ref()
        .unwrap()
        .value["spec"]
        .clone();
    assert_eq!(serde_json::to_value(spec).unwrap(), input);
}

#[test]
fn error_fields_are_exact() {
    let r = check(&lw("w", "", "{command: [''], port: 0}"));
    assert_eq!(error_fields(&r), ["spec.command[0]", "spec.port"]);
}
