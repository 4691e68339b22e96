//! `mastctl kube-inject` end to end, with the seed notes' nginx Deployment and Service
//! (`istioctl kube-inject -f nginx-test.yaml` and `-f nginx-test-svc.yaml -o …`).

#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const NGINX_DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx-deployment
  namespace: jicki
  labels:
    app: nginx
spec:
  replicas: 1
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
        version: v1.0.0
    spec:
      containers:
        - name: nginx
          image: nginx:alpine
          imagePullPolicy: IfNotPresent
          ports:
            - containerPort: 80
              name: http
";

const NGINX_SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: nginx-svc
  namespace: jicki
  labels:
    app: nginx
spec:
  ports:
    - port: 80
      name: http
      targetPort: 80
      protocol: TCP
  selector:
    app: nginx
";

fn mastctl(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mastctl"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mastctl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The documents of `yaml`, as JSON values.
fn docs(yaml: &str) -> Vec<serde_json::Value> {
    mast_config::yaml::parse_documents(yaml)
        .into_iter()
        .map(|d| d.unwrap().value)
        .collect()
}

fn names(list: &serde_json::Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

fn temp_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "mastctl-kube-inject-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn nginx_deployment_gains_sidecar_and_service_passes_through() {
    let input = format!("{NGINX_DEPLOYMENT}---\n{NGINX_SERVICE}");
    let out = mastctl(&["kube-inject", "-f", "-"], &input);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("\n---\n"),
        "documents separated by ---: {stdout}"
    );
    let got = docs(&stdout);
    assert_eq!(got.len(), 2, "{stdout}");
    assert_eq!(got[0]["kind"], "Deployment", "order kept");
    let spec = &got[0]["spec"]["template"]["spec"];
    assert_eq!(names(&spec["containers"]), ["nginx", "istio-proxy"]);
    assert_eq!(names(&spec["initContainers"]), ["istio-init"]);
    let init_args: Vec<&str> = spec["initContainers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        init_args,
        [
            "-p",
            "15001",
            "-z",
            "15006",
            "-u",
            "1337",
            "-m",
            "REDIRECT",
            "-i",
            "*",
            "-x",
            "",
            "-b",
            "*",
            "-d",
            "15090,15021,15020"
        ]
    );
    let labels = &got[0]["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels["service.istio.io/canonical-name"], "nginx");
    assert_eq!(labels["service.istio.io/canonical-revision"], "v1.0.0");
    assert_eq!(got[1], docs(NGINX_SERVICE)[0], "the Service is unchanged");
}

#[test]
fn output_file_and_envoy_image_flags() {
    let dir = temp_dir();
    let input = dir.join("nginx-test-svc.yaml");
    std::fs::write(&input, NGINX_SERVICE).unwrap();
    let output = dir.join("nginx-test-svc-inject.yaml");
    let out = mastctl(
        &[
            "kube-inject",
            "-f",
            input.to_str().unwrap(),
            "-o",
            output.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(&output).unwrap();
    assert!(written.ends_with("---\n"), "{written}");
    assert_eq!(docs(&written), docs(NGINX_SERVICE));

    let out = mastctl(
        &[
            "kube-inject",
            "-f",
            "-",
            "--proxy",
            "envoy",
            "--image",
            "example.com/agent:1",
        ],
        NGINX_DEPLOYMENT,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let got = docs(&text(&out.stdout));
    let proxy = &got[0]["spec"]["template"]["spec"]["containers"][1];
    assert_eq!(proxy["image"], "example.com/agent:1");
    assert_eq!(proxy["command"][0], "mast-agent");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_yaml_and_bad_annotation_name_file_and_line() {
    let dir = temp_dir();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        format!("{NGINX_SERVICE}---\nkind: Deployment\nmetadata: {{name: x\n"),
    )
    .unwrap();
    let out = mastctl(&["kube-inject", "-f", bad.to_str().unwrap()], "");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing written on error");
    let prefix = format!("{}:", bad.display());
    let first = stderr.lines().next().unwrap();
    assert!(
        first.starts_with(&prefix) && first.contains("YAML syntax error"),
        "{stderr}"
    );
    assert!(stderr.contains("Error: 1 error occurred"), "{stderr}");

    let annotated = NGINX_DEPLOYMENT.replace(
        "      labels:\n        app: nginx\n        version",
        "      annotations:\n        traffic.sidecar.istio.io/includeInboundPorts: \"80,http\"\n      labels:\n        app: nginx\n        version",
    );
    let out = mastctl(&["kube-inject", "-f", "-"], &annotated);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("-:1: Deployment jicki/nginx-deployment: annotation traffic.sidecar.istio.io/includeInboundPorts: \"80,http\": \"http\" is not a port number"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
