//! Injection tests. Inputs are Istio's `pkg/kube/inject/testdata/inject/*.yaml` shapes; the
//! expected values (container names, init args, ports, labels, annotations, probes) are the
//! ones in Istio's `.injected` goldens named at each test, where Mast's design matches.

use serde_json::{Value, json};

use super::*;

pub(super) fn yaml(text: &str) -> Value {
    let docs = mast_config::yaml::parse_documents(text);
    assert_eq!(docs.len(), 1, "one document expected");
    docs.into_iter().next().unwrap().unwrap().value
}

pub(super) fn run(text: &str) -> InjectOutcome {
    inject(yaml(text), &InjectConfig::default()).unwrap()
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .map(|l| l.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default()
}

fn env<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| {
            if e.get("value").is_some() {
                &e["value"]
            } else {
                &e["valueFrom"]
            }
        })
}

fn proxy(spec: &Value) -> &Value {
    spec["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == PROXY_CONTAINER))
        .expect("istio-proxy container")
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

// Istio: testdata/inject/hello.yaml
pub(super) const HELLO: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
spec:
  replicas: 7
  selector:
    matchLabels: {app: hello, tier: backend, track: stable}
  template:
    metadata:
      labels: {app: hello, tier: backend, track: stable}
    spec:
      containers:
        - name: hello
          image: "fake.docker.io/google-samples/hello-go-gke:1.0"
          ports:
            - name: http
              containerPort: 80
"#;

/// The status annotation of Istio's goldens (hello-probes.yaml.injected and others).
const ISTIO_STATUS: &str = r#"{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["istio-envoy","istio-data","istio-podinfo","istio-token","istiod-ca-cert"],"imagePullSecrets":null}"#;

/// istio-init's flags in Istio's goldens with no traffic annotations.
const DEFAULT_INIT_ARGS: [&str; 16] = [
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
    "15090,15021,15020",
];

#[test]
fn hello_deployment_matches_istio_golden_structure() {
    // Istio: testdata/inject/hello.yaml.injected
    let out = run(HELLO);
    assert!(out.changed);
    assert_eq!(out.notes, ["Deployment hello: injected"]);
    let t = &out.object["spec"]["template"];
    let spec = &t["spec"];
    assert_eq!(names(&spec["containers"]), ["hello", "istio-proxy"]);
    assert_eq!(names(&spec["initContainers"]), ["istio-init"]);
    let init = &spec["initContainers"][0];
    assert_eq!(strings(&init["command"]), ["mast-proxy", "init"]);
    assert_eq!(strings(&init["args"]), DEFAULT_INIT_ARGS);
    assert_eq!(
        init["securityContext"]["capabilities"]["add"],
        json!(["NET_ADMIN", "NET_RAW"])
    );
    assert_eq!(init["securityContext"]["runAsUser"], 0);
    let p = proxy(spec);
    assert_eq!(p["securityContext"]["runAsUser"], 1337);
    assert_eq!(p["securityContext"]["runAsGroup"], 1337);
    assert_eq!(
        p["ports"][0],
        json!({"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"})
    );
    assert_eq!(
        p["readinessProbe"]["httpGet"],
        json!({"path": "/healthz/ready", "port": 15021})
    );
    assert_eq!(p["readinessProbe"]["failureThreshold"], 30);
    assert_eq!(names(&spec["volumes"]), template::VOLUMES);
    assert_eq!(
        spec["volumes"][3]["projected"]["sources"][0]["serviceAccountToken"]["audience"],
        "istio-ca"
    );
    assert_eq!(
        spec["volumes"][4]["configMap"]["name"],
        "istio-ca-root-cert"
    );
    assert_eq!(spec["securityContext"]["fsGroup"], 1337);
    assert_eq!(
        t["metadata"]["annotations"][STATUS_ANNOTATION],
        ISTIO_STATUS
    );
    let labels = &t["metadata"]["labels"];
    assert_eq!(labels["security.istio.io/tlsMode"], "istio");
    assert_eq!(labels["service.istio.io/canonical-name"], "hello");
    assert_eq!(labels["service.istio.io/canonical-revision"], "latest");
    assert_eq!(labels["istio.io/rev"], "default");
}

#[test]
fn proxy_env_names_the_pod_from_the_downward_api() {
    let out = run(HELLO);
    let p = proxy(&out.object["spec"]["template"]["spec"]);
    let field = |path: &str| json!({"fieldRef": {"fieldPath": path}});
    assert_eq!(env(p, "MAST_WORKLOAD"), Some(&field("metadata.name")));
    assert_eq!(env(p, "MAST_NAMESPACE"), Some(&field("metadata.namespace")));
    assert_eq!(env(p, "MAST_INSTANCE_IP"), Some(&field("status.podIP")));
    assert_eq!(
        env(p, "MAST_SERVICE_ACCOUNT"),
        Some(&field("spec.serviceAccountName"))
    );
    assert_eq!(
        env(p, "MAST_XDS_ADDRESS"),
        Some(&json!("https://mastd.mast-system.svc:15012"))
    );
    assert_eq!(
        env(p, "MAST_CA_TOKEN_FILE"),
        Some(&json!("/var/run/secrets/tokens/istio-token"))
    );
    let labels = env(p, "MAST_LABELS").and_then(Value::as_str).unwrap();
    assert!(
        labels.contains("app=hello") && labels.contains("security.istio.io/tlsMode=istio"),
        "{labels}"
    );
    assert_eq!(env(p, "ISTIO_META_WORKLOAD_NAME"), Some(&json!("hello")));
    assert_eq!(
        env(p, "ISTIO_KUBE_APP_PROBERS"),
        None,
        "no probes, no probers"
    );
}

// Istio: testdata/inject/hello-probes.yaml
const HELLO_PROBES: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello}
spec:
  template:
    metadata:
      labels: {app: hello, tier: backend, track: stable}
    spec:
      containers:
        - name: hello
          image: "fake.docker.io/google-samples/hello-go-gke:1.0"
          ports: [{name: http, containerPort: 80}]
          livenessProbe: {httpGet: {port: http}}
          readinessProbe: {httpGet: {port: 3333}}
        - name: world
          image: "fake.docker.io/google-samples/hello-go-gke:1.0"
          ports: [{name: http, containerPort: 90}]
          livenessProbe: {httpGet: {port: http}}
          readinessProbe: {exec: {command: [cat, /tmp/healthy]}}
"#;

#[test]
fn probes_are_rewritten_through_the_agent_as_istio_does() {
    // Istio: testdata/inject/hello-probes.yaml.injected
    let out = run(HELLO_PROBES);
    let spec = &out.object["spec"]["template"]["spec"];
    assert_eq!(
        names(&spec["containers"]),
        ["hello", "world", "istio-proxy"]
    );
    let hello = &spec["containers"][0];
    let world = &spec["containers"][1];
    let get = |path: &str| json!({"path": path, "port": 15020});
    assert_eq!(
        hello["livenessProbe"]["httpGet"],
        get("/app-health/hello/livez")
    );
    assert_eq!(
        hello["readinessProbe"]["httpGet"],
        get("/app-health/hello/readyz")
    );
    assert_eq!(
        world["livenessProbe"]["httpGet"],
        get("/app-health/world/livez")
    );
    assert_eq!(
        world["readinessProbe"],
        json!({"exec": {"command": ["cat", "/tmp/healthy"]}})
    );
    let p = proxy(spec);
    assert_eq!(
        env(p, "ISTIO_KUBE_APP_PROBERS"),
        Some(&json!(
            r#"{"/app-health/hello/livez":{"httpGet":{"port":80}},"/app-health/hello/readyz":{"httpGet":{"port":3333}},"/app-health/world/livez":{"httpGet":{"port":90}}}"#
        ))
    );
    assert_eq!(
        env(p, "ISTIO_META_APP_CONTAINERS"),
        Some(&json!("hello,world"))
    );
}

#[test]
fn rewrite_annotation_false_keeps_probes() {
    // Istio: testdata/inject/app_probe/hello-probes-with-flag-unset-in-annotation.yaml
    let text = HELLO_PROBES.replace(
        "      labels: {app: hello, tier: backend, track: stable}",
        "      labels: {app: hello}\n      annotations: {sidecar.istio.io/rewriteAppHTTPProbers: \"false\"}",
    );
    let out = run(&text);
    let spec = &out.object["spec"]["template"]["spec"];
    assert_eq!(
        spec["containers"][0]["livenessProbe"],
        json!({"httpGet": {"port": "http"}})
    );
    assert_eq!(env(proxy(spec), "ISTIO_KUBE_APP_PROBERS"), None);
}

#[test]
fn every_workload_kind_injects_at_its_pod_template() {
    // Istio: daemonset.yaml, statefulset.yaml, job.yaml, cronjob.yaml, replicaset.yaml,
    // hello-pod (Pod) and their .injected goldens: same containers at the pod template.
    let pod_spec = "containers: [{name: app, image: app}]";
    let cases = [
        (
            "DaemonSet",
            format!("spec: {{template: {{spec: {{{pod_spec}}}}}}}"),
            "/spec/template",
        ),
        (
            "StatefulSet",
            format!("spec: {{template: {{spec: {{{pod_spec}}}}}}}"),
            "/spec/template",
        ),
        (
            "ReplicaSet",
            format!("spec: {{template: {{spec: {{{pod_spec}}}}}}}"),
            "/spec/template",
        ),
        (
            "Job",
            format!("spec: {{template: {{spec: {{{pod_spec}}}}}}}"),
            "/spec/template",
        ),
        (
            "CronJob",
            format!("spec: {{jobTemplate: {{spec: {{template: {{spec: {{{pod_spec}}}}}}}}}}}"),
            "/spec/jobTemplate/spec/template",
        ),
        ("Pod", format!("spec: {{{pod_spec}}}"), ""),
    ];
    for (kind, body, at) in cases {
        let text =
            format!("apiVersion: v1\nkind: {kind}\nmetadata: {{name: x, namespace: ns}}\n{body}\n");
        let out = run(&text);
        assert!(out.changed, "{kind}");
        let t = out.object.pointer(at).unwrap();
        assert_eq!(
            names(&t["spec"]["containers"]),
            ["app", "istio-proxy"],
            "{kind}"
        );
        assert_eq!(
            names(&t["spec"]["initContainers"]),
            ["istio-init"],
            "{kind}"
        );
        assert_eq!(out.notes, [format!("{kind} ns/x: injected")]);
    }
}

#[test]
fn other_kinds_pass_through_unchanged() {
    for text in [
        "apiVersion: v1\nkind: Service\nmetadata: {name: nginx-svc}\nspec: {ports: [{port: 80}]}",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: YQ==}",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}",
    ] {
        let input = yaml(text);
        let out = inject(input.clone(), &InjectConfig::default()).unwrap();
        assert_eq!(out.object, input);
        assert!(!out.changed && out.notes.is_empty());
    }
}

#[test]
fn traffic_annotations_become_init_flags() {
    // Istio: testdata/inject/traffic-annotations.yaml(.injected)
    let text = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: traffic}
spec:
  template:
    metadata:
      labels: {app: traffic}
      annotations:
        sidecar.istio.io/proxyCPU: 4000m
        traffic.sidecar.istio.io/includeInboundPorts: "1,2,3"
        traffic.sidecar.istio.io/excludeInboundPorts: "4,5,6"
        traffic.sidecar.istio.io/includeOutboundIPRanges: "127.0.0.1/24,10.96.0.1/24"
        traffic.sidecar.istio.io/excludeOutboundIPRanges: "10.96.0.2/24,10.96.0.3/24"
        traffic.sidecar.istio.io/excludeOutboundPorts: "7,8,9"
        proxy.istio.io/config: |-
          discoveryAddress: foo:123
          concurrency: 0
    spec:
      containers: [{name: traffic, image: t, ports: [{name: http, containerPort: 80}]}]
"#;
    let out = run(text);
    let spec = &out.object["spec"]["template"]["spec"];
    let init = &spec["initContainers"][0];
    assert_eq!(
        strings(&init["args"]),
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
            "127.0.0.1/24,10.96.0.1/24",
            "-x",
            "10.96.0.2/24,10.96.0.3/24",
            "-b",
            "1,2,3",
            "-d",
            "15090,15021,4,5,6,15020",
            "-o",
            "7,8,9",
        ]
    );
    let p = proxy(spec);
    assert_eq!(p["resources"], json!({"requests": {"cpu": "4"}}));
    assert_eq!(init["resources"], json!({"requests": {"cpu": "4"}}));
    assert_eq!(env(p, "MAST_XDS_ADDRESS"), Some(&json!("https://foo:123")));
    assert_eq!(
        env(p, "MAST_CONCURRENCY"),
        Some(&json!("4")),
        "concurrency 0: from the CPU"
    );
}

#[test]
fn bad_annotations_are_errors_naming_them() {
    let cases = [
        (
            "traffic.sidecar.istio.io/includeInboundPorts",
            "80,http",
            "\"http\" is not a port number",
        ),
        (
            "traffic.sidecar.istio.io/excludeOutboundIPRanges",
            "10.0.0.0",
            "is not a CIDR",
        ),
        (
            "sidecar.istio.io/proxyMemory",
            "lots",
            "not a Kubernetes quantity",
        ),
        (
            "sidecar.istio.io/rewriteAppHTTPProbers",
            "maybe",
            "expected \"true\" or \"false\"",
        ),
        (
            "proxy.istio.io/config",
            "concurrency: many",
            "concurrency: expected a count",
        ),
    ];
    for (name, value, want) in cases {
        let text = HELLO.replace(
            "      labels: {app: hello, tier: backend, track: stable}\n    spec:",
            &format!("      labels: {{app: hello}}\n      annotations: {{{name}: \"{value}\"}}\n    spec:"),
        );
        let err = inject(yaml(&text), &InjectConfig::default()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("Deployment hello: annotation {name}: ")),
            "{msg}"
        );
        assert!(msg.contains(want), "{msg}");
    }
}

#[test]
fn already_injected_and_opted_out_pods_are_unchanged() {
    // Istio: hello-always/hello-never, and re-injecting an injected file (kube-inject twice).
    let once = run(HELLO).object;
    let twice = inject(once.clone(), &InjectConfig::default()).unwrap();
    assert_eq!(twice.object, once);
    assert_eq!(twice.notes, ["Deployment hello: skipped: already injected"]);
    for (where_, text) in [
        (
            "annotation",
            "annotations: {sidecar.istio.io/inject: \"false\"}",
        ),
        ("label", "labels: {sidecar.istio.io/inject: \"false\"}"),
    ] {
        let text = HELLO.replace(
            "      labels: {app: hello, tier: backend, track: stable}",
            &format!("      {text}"),
        );
        let input = yaml(&text);
        let out = inject(input.clone(), &InjectConfig::default()).unwrap();
        assert_eq!(out.object, input, "{where_}");
        assert_eq!(
            out.notes,
            ["Deployment hello: skipped: sidecar.istio.io/inject=\"false\""]
        );
    }
    let host = HELLO.replace(
        "      containers:",
        "      hostNetwork: true\n      containers:",
    );
    assert!(!run(&host).changed);
}

#[test]
fn list_items_are_injected_one_by_one() {
    // Istio: testdata/inject/list.yaml (a List of two Deployments).
    let text = format!(
        "apiVersion: v1\nkind: List\nitems:\n- {}\n- {}\n- {{apiVersion: v1, kind: Service, metadata: {{name: s}}}}\n",
        serde_json::to_string(&yaml(HELLO)).unwrap(),
        serde_json::to_string(&yaml(
            &HELLO.replace("name: hello\nspec", "name: world\nspec")
        ))
        .unwrap(),
    );
    let out = run(&text);
    assert!(out.changed);
    assert_eq!(
        out.notes,
        ["Deployment hello: injected", "Deployment world: injected"]
    );
    let items = out.object["items"].as_array().unwrap();
    assert_eq!(
        names(&items[1]["spec"]["template"]["spec"]["containers"]),
        ["hello", "istio-proxy"]
    );
    assert_eq!(items[2]["kind"], "Service");
    assert!(items[2].get("spec").is_none());
}

#[test]
fn native_sidecars_and_cni_and_envoy() {
    let cfg = InjectConfig {
        native_sidecars: true,
        ..InjectConfig::default()
    };
    let out = inject(yaml(HELLO), &cfg).unwrap().object;
    let spec = &out["spec"]["template"]["spec"];
    assert_eq!(
        names(&spec["initContainers"]),
        ["istio-init", "istio-proxy"]
    );
    assert_eq!(spec["initContainers"][1]["restartPolicy"], "Always");
    assert_eq!(names(&spec["containers"]), ["hello"]);
    let status = out["spec"]["template"]["metadata"]["annotations"][STATUS_ANNOTATION]
        .as_str()
        .unwrap();
    assert!(
        status.starts_with(r#"{"initContainers":["istio-init","istio-proxy"],"containers":[]"#),
        "{status}"
    );

    let cfg = InjectConfig {
        cni: true,
        ..InjectConfig::for_proxy(ProxyKind::Envoy)
    };
    let out = inject(yaml(HELLO), &cfg).unwrap().object;
    let spec = &out["spec"]["template"]["spec"];
    assert_eq!(names(&spec["initContainers"]), Vec::<&str>::new());
    let p = proxy(spec);
    assert_eq!(strings(&p["command"]), ["mast-agent"]);
    assert!(p["image"].as_str().unwrap().contains("mast-agent"));
    assert_eq!(env(p, "MAST_METRICS_PORT"), Some(&json!("15020")));
}
