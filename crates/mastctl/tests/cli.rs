//! End-to-end tests of the `mastctl` binary: the seed mesh from the notes, istioctl's output
//! formats and exit codes, and a clear message for every kind of bad input.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn mastctl(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mastctl"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run mastctl")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn seed_mesh_reports_missing_host_and_uninjected_namespace() {
    let out = mastctl(&["analyze", "examples/seed-nginx"], &root());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(79), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "Error [IST0101] (VirtualService default/nginx-svc-vs examples/seed-nginx/nginx-test-vs.yaml:21) Referenced host not found: \"nginx-svc-3.default.svc.cluster.local\"",
            "Warning [IST0102] (Namespace default) The namespace is not enabled for Istio injection. Run 'kubectl label namespace default istio-injection=enabled' to enable it, or 'kubectl label namespace default istio-injection=disabled' to explicitly mark it as not needing injection.",
        ]
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("Error: Analyzers found issues when analyzing namespace: default."),
        "{stderr}"
    );
}

#[test]
fn injected_namespace_analyzes_clean() {
    let ns = fixtures().join("injected/namespace.yaml");
    let seed = root().join("examples/seed-nginx");
    let out = mastctl(
        &[
            "analyze",
            seed.to_str().unwrap(),
            ns.to_str().unwrap(),
            "--failure-threshold",
            "Error",
        ],
        &root(),
    );
    // Only the missing host remains once the namespace is labelled.
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("IST0102"), "{stdout}");
    assert!(stdout.contains("IST0101"), "{stdout}");

    // Without the VirtualService that points at the missing host, nothing is left.
    let dir = tempdir();
    std::fs::copy(seed.join("nginx-test.yaml"), dir.join("nginx-test.yaml")).unwrap();
    std::fs::copy(&ns, dir.join("namespace.yaml")).unwrap();
    let out = mastctl(&["analyze", dir.to_str().unwrap()], &root());
    assert_eq!(
        text(&out.stdout),
        "\u{2714} No validation issues found when analyzing namespace: default.\n"
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn seed_namespace_jicki_as_in_the_notes() {
    let dir = tempdir();
    std::fs::write(
        dir.join("ns.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: jicki\n",
    )
    .unwrap();
    let out = mastctl(&["analyze", "-n", "jicki", dir.to_str().unwrap()], &root());
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("Warning [IST0102] (Namespace jicki "),
        "{stdout}"
    );
    assert_eq!(out.status.code(), Some(79));
    std::fs::write(dir.join("ns.yaml"), "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: jicki\n  labels:\n    istio-injection: enabled\n").unwrap();
    let out = mastctl(&["analyze", "-n", "jicki", dir.to_str().unwrap()], &root());
    assert_eq!(
        text(&out.stdout),
        "\u{2714} No validation issues found when analyzing namespace: jicki.\n"
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn json_output_has_istioctl_shape() {
    let out = mastctl(&["analyze", "examples/seed-nginx", "-o", "json"], &root());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let first = &v[0];
    assert_eq!(first["code"], "IST0101");
    assert_eq!(first["level"], "Error");
    assert_eq!(first["origin"], "VirtualService default/nginx-svc-vs");
    assert_eq!(
        first["reference"],
        "examples/seed-nginx/nginx-test-vs.yaml:21"
    );
    assert_eq!(
        first["message"],
        "Referenced host not found: \"nginx-svc-3.default.svc.cluster.local\""
    );
    assert_eq!(
        first["documentationUrl"],
        "https://istio.io/latest/docs/reference/config/analysis/ist0101/?ref=mastctl"
    );
    let keys: Vec<&String> = first.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 6, "{keys:?}");
    let out = mastctl(&["analyze", "examples/seed-nginx", "-o", "yaml"], &root());
    assert!(text(&out.stdout).contains("code: IST0101"));
}

#[test]
fn failure_threshold_and_all_namespaces() {
    let out = mastctl(
        &[
            "analyze",
            "examples/seed-nginx",
            "--failure-threshold",
            "Error",
            "--output-threshold",
            "Error",
        ],
        &root(),
    );
    assert_eq!(out.status.code(), Some(79));
    assert_eq!(text(&out.stdout).lines().count(), 1);
    let out = mastctl(&["analyze", "-A", "examples/seed-nginx"], &root());
    assert!(text(&out.stderr).contains("when analyzing all namespaces."));
    let out = mastctl(
        &[
            "analyze",
            "--failure-threshold",
            "Bogus",
            "examples/seed-nginx",
        ],
        &root(),
    );
    assert_eq!(out.status.code(), Some(1));
    let out = mastctl(&["analyze", "--no-such-flag"], &root());
    assert_eq!(out.status.code(), Some(64));
}

/// Each bad file gives one error naming file:line, the resource and the field.
#[test]
fn validate_names_file_line_resource_and_field() {
    let cases: &[(&str, &str)] = &[
        ("syntax.yaml", "syntax.yaml:7: YAML syntax error"),
        (
            "wrong-type.yaml",
            "wrong-type.yaml:13: VirtualService shop/wrong-type: spec.http[0].route[0].weight: invalid type",
        ),
        (
            "negative-weight.yaml",
            "negative-weight.yaml:18: VirtualService shop/negative-weight: spec.http[0].route[1].weight:",
        ),
        (
            "bad-duration.yaml",
            "bad-duration.yaml:13: VirtualService shop/bad-duration: spec.http[0].timeout: invalid duration \"10 seconds\"",
        ),
        (
            "bad-regex.yaml",
            "bad-regex.yaml:11: VirtualService shop/bad-regex: spec.http[0].match[0].uri: invalid regex \"/api/(v1|v2\"",
        ),
        (
            "unknown-field.yaml",
            "unknown-field.yaml:11: DestinationRule shop/unknown-field: spec.subsetz: unknown field \"subsetz\"; did you mean \"subsets\"?",
        ),
    ];
    let dir = fixtures().join("bad");
    for (file, want) in cases {
        let out = mastctl(&["validate", "-f", file], &dir);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{file}: {stderr}");
        assert!(
            stderr.lines().any(|l| l.starts_with(want)),
            "{file}: want {want:?} in\n{stderr}"
        );
        assert!(
            stderr.contains("Error: 1 error occurred"),
            "{file}: {stderr}"
        );
    }
}

#[test]
fn missing_file_is_reported() {
    let out = mastctl(&["validate", "-f", "no-such-file.yaml"], &fixtures());
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(
            "no-such-file.yaml: cannot read no-such-file.yaml: No such file or directory"
        ),
        "{stderr}"
    );
    assert_eq!(out.status.code(), Some(1));
    let out = mastctl(&["analyze", "no-such-file.yaml"], &fixtures());
    assert_eq!(out.status.code(), Some(65));
    assert!(text(&out.stderr).contains("Some files couldn't be parsed."));
}

#[test]
fn mixed_folder_reports_bad_and_still_analyzes_good() {
    let out = mastctl(&["analyze", "-n", "shop", "mixed"], &fixtures());
    let stdout = text(&out.stdout);
    // The bad weight and the broken Gateway are reported where they are written ...
    assert!(stdout.contains("(VirtualService shop/bad-weight mixed/bad.yaml:13) Schema validation error: spec.http[0].route[0].weight"), "{stdout}");
    assert!(stdout.contains("Error [IST0106] (mixed/bad.yaml:23) Schema validation error: YAML syntax error: unclosed bracket '['"), "{stdout}");
    // ... and the good file is still analyzed: its VirtualService points at a missing host.
    assert!(stdout.contains("Error [IST0101] (VirtualService shop/reviews mixed/good.yaml:31) Referenced host not found: \"ratings\""), "{stdout}");
    assert_eq!(out.status.code(), Some(65));
    let out = mastctl(&["validate", "-f", "mixed"], &fixtures());
    assert_eq!(
        text(&out.stderr).matches("mixed/bad.yaml:").count(),
        2,
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn stdin_and_version() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mastctl"))
        .args(["validate", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "validation succeed\n");
    let out = mastctl(&["version"], &root());
    assert_eq!(
        text(&out.stdout),
        format!("client version: {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn json_input_names_line_and_field() {
    let out = mastctl(&["validate", "-f", "json/vs.json"], &fixtures());
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("json/vs.json:8: VirtualService shop/reviews: spec.http[0].route[0].weight: weight -1 must not be negative"), "{stderr}");
}

#[test]
fn unknown_kinds_are_kept_and_reported() {
    let out = mastctl(&["analyze", "-n", "shop", "unknown"], &fixtures());
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Warning [IST0133] (Widget shop/w unknown/widget.yaml:2) Schema validation warning: kind: unknown kind Widget (example.com/v1)"), "{stdout}");
    let out = mastctl(&["validate", "-f", "unknown"], &fixtures());
    assert_eq!(
        out.status.code(),
        Some(0),
        "unknown kinds warn, they do not fail validation"
    );
    assert!(
        text(&out.stderr).starts_with(
            "Warning: unknown/widget.yaml:2: Widget shop/w: kind: unknown kind Widget"
        ),
        "{}",
        text(&out.stderr)
    );
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mastctl-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
