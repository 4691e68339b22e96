//! Rendering tests: component presence per profile (the seed notes' table), `--set` and `-f`
//! overrides, revisions, and a schema check — every object deserialises as its `k8s-openapi`
//! type and serialises back unchanged, so a misspelt or mistyped field fails.

use serde_json::Value;

use super::operator::{Input, build};
use super::render::{Object, render, to_yaml};
use super::settings::Settings;

fn objects(sets: &[&str]) -> Vec<Object> {
    let input = Input {
        files: vec![],
        sets: sets.iter().map(|s| s.to_string()).collect(),
    };
    render(&Settings::from_tree(&build(&input).unwrap()).unwrap(), None)
}

fn names(objs: &[Object], kind: &str) -> Vec<String> {
    objs.iter()
        .filter(|o| o.kind() == kind)
        .map(|o| o.name().to_string())
        .collect()
}

fn find<'a>(objs: &'a [Object], kind: &str, name: &str) -> &'a Value {
    &objs
        .iter()
        .find(|o| o.kind() == kind && o.name() == name)
        .unwrap_or_else(|| panic!("{kind} {name} missing"))
        .value
}

fn args(objs: &[Object]) -> Vec<String> {
    let d = find(objs, "Deployment", "mastd");
    serde_json::from_value(
        d.pointer("/spec/template/spec/containers/0/args")
            .unwrap()
            .clone(),
    )
    .unwrap()
}

#[test]
fn default_profile_has_mastd_and_ingress() {
    let o = objects(&[]);
    assert_eq!(names(&o, "Deployment"), ["mast-ingressgateway", "mastd"]);
    assert_eq!(names(&o, "CustomResourceDefinition").len(), 9);
    assert_eq!(
        names(&o, "Service"),
        ["istiod", "mast-ingressgateway", "mastd"]
    );
    assert_eq!(
        names(&o, "HorizontalPodAutoscaler"),
        ["mast-ingressgateway", "mastd"]
    );
    assert_eq!(
        names(&o, "PodDisruptionBudget"),
        ["mast-ingressgateway", "mastd"]
    );
    assert_eq!(
        names(&o, "ValidatingWebhookConfiguration"),
        ["istio-validator-mast-system"]
    );
    assert_eq!(
        names(&o, "MutatingWebhookConfiguration"),
        ["istio-sidecar-injector"]
    );
    let svc = find(&o, "Service", "mast-ingressgateway");
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    let ports: Vec<i64> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    assert_eq!(ports, [15021, 80, 443]);
    let targets: Vec<i64> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["targetPort"].as_i64().unwrap())
        .collect();
    assert_eq!(targets, [15021, 8080, 8443], "Istio's unprivileged ports");
    // Istio's labels: existing Gateways (`selector: {istio: ingressgateway}`) select it.
    assert_eq!(svc["spec"]["selector"]["istio"], "ingressgateway");
    assert_eq!(svc["spec"]["selector"]["app"], "istio-ingressgateway");
    let gw = find(&o, "Deployment", "mast-ingressgateway");
    let pod_labels = &gw["spec"]["template"]["metadata"]["labels"];
    assert_eq!(pod_labels["istio"], "ingressgateway");
    assert_eq!(pod_labels["app"], "istio-ingressgateway");
    let a = args(&o);
    assert!(
        a.windows(2).any(|w| w == ["--registry", "kubernetes"]),
        "{a:?}"
    );
    assert!(
        a.windows(2).any(|w| w == ["--dashboard-addr", "off"]),
        "{a:?}"
    );
    let d = find(&o, "Deployment", "mastd");
    assert_eq!(
        d.pointer("/spec/template/spec/containers/0/image").unwrap(),
        &format!("ghcr.io/mast-mesh/mastd:{}", mast_core::VERSION)
    );
    assert_eq!(
        d.pointer("/spec/template/spec/containers/0/readinessProbe/httpGet/port")
            .unwrap(),
        15014
    );
    assert_eq!(
        d["metadata"]["labels"]["operator.istio.io/component"],
        "Pilot"
    );
    assert_eq!(d["metadata"]["labels"]["istio.io/rev"], "default");
}

#[test]
fn demo_profile_adds_egress_dashboard_and_full_sampling() {
    let o = objects(&["profile=demo"]);
    assert_eq!(
        names(&o, "Deployment"),
        ["mast-egressgateway", "mast-ingressgateway", "mastd"]
    );
    assert_eq!(
        find(&o, "Service", "mast-egressgateway")["spec"]["type"],
        "ClusterIP"
    );
    let eg = find(&o, "Service", "mast-egressgateway");
    assert_eq!(eg["spec"]["selector"]["istio"], "egressgateway");
    assert_eq!(eg["spec"]["selector"]["app"], "istio-egressgateway");
    let ports: Vec<(i64, i64)> = eg["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["port"].as_i64().unwrap(),
                p["targetPort"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ports, [(80, 8080), (443, 8443)]);
    assert_eq!(
        find(&o, "Service", "mast-dashboard")["spec"]["ports"][0]["port"],
        20001
    );
    assert!(names(&o, "HorizontalPodAutoscaler").is_empty());
    let a = args(&o);
    assert!(
        a.windows(2).any(|w| w == ["--trace-sampling", "100"]),
        "{a:?}"
    );
    assert!(
        a.windows(2)
            .any(|w| w == ["--dashboard-addr", "0.0.0.0:20001"]),
        "{a:?}"
    );
    assert_eq!(find(&o, "Deployment", "mastd")["spec"]["replicas"], 1);
}

#[test]
fn minimal_remote_and_empty_profiles() {
    let o = objects(&["profile=minimal"]);
    assert_eq!(names(&o, "Deployment"), ["mastd"]);
    let o = objects(&["profile=remote"]);
    assert_eq!(names(&o, "Deployment"), ["mast-ingressgateway", "mastd"]);
    assert!(names(&o, "ValidatingWebhookConfiguration").is_empty());
    assert!(objects(&["profile=empty"]).is_empty());
}

#[test]
fn set_overrides_paths_istio_style() {
    let o = objects(&[
        "components.egressGateways[0].enabled=true",
        "values.global.proxy.image=registry.local/proxy:dev",
        "meshConfig.defaultConfig.tracing.sampling=50",
        // Istio's values key (the seed notes' NodePort switch) and the gateway's own.
        "values.gateways.istio-ingressgateway.type=NodePort",
        "components.ingressGateways[name:mast-ingressgateway].k8s.replicaCount=3",
        "values.gateways.mast-ingressgateway.autoscaleEnabled=false",
        "hub=example.org/mesh",
        "tag=1.2.3",
    ]);
    let eg = find(&o, "Deployment", "mast-egressgateway");
    assert_eq!(
        eg.pointer("/spec/template/spec/containers/0/image")
            .unwrap(),
        "registry.local/proxy:dev"
    );
    assert_eq!(
        find(&o, "Service", "mast-ingressgateway")["spec"]["type"],
        "NodePort"
    );
    assert_eq!(
        find(&o, "Deployment", "mast-ingressgateway")["spec"]["replicas"],
        3
    );
    assert!(args(&o).windows(2).any(|w| w == ["--trace-sampling", "50"]));
    let d = find(&o, "Deployment", "mastd");
    assert_eq!(
        d.pointer("/spec/template/spec/containers/0/image").unwrap(),
        "example.org/mesh/mastd:1.2.3"
    );
}

#[test]
fn bad_set_values_name_the_field() {
    let err = |sets: &[&str]| {
        let input = Input {
            files: vec![],
            sets: sets.iter().map(|s| s.to_string()).collect(),
        };
        match build(&input).and_then(|t| Settings::from_tree(&t)) {
            Ok(_) => panic!("{sets:?} accepted"),
            Err(e) => format!("{e:#}"),
        }
    };
    assert!(err(&["values.pilot.replicaCount=many"]).contains("values.pilot.replicaCount"));
    assert!(err(&["profile=huge"]).contains("unknown profile \"huge\""));
    assert!(err(&["novalue"]).contains("expected key=value"));
    assert!(err(&["components.ingressGateways[5].enabled=true"]).contains("[5]"));
    assert!(err(&["revision=Bad_Rev"]).contains("revision \"Bad_Rev\""));
    assert!(err(&["meshConfig.defaultConfig.tracing.sampling=200"]).contains("tracing.sampling"));
}

#[test]
fn file_overlay_then_set() {
    let dir = std::env::temp_dir().join(format!("mastctl-install-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("overlay.yaml");
    std::fs::write(&f, "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec:\n  profile: minimal\n  components:\n    egressGateways:\n    - name: mast-egressgateway\n      enabled: true\n  values:\n    global:\n      istioNamespace: mesh\n").unwrap();
    let input = Input {
        files: vec![f.clone()],
        sets: vec![
            "values.pilot.replicaCount=2".into(),
            "values.pilot.autoscaleEnabled=false".into(),
        ],
    };
    let s = Settings::from_tree(&build(&input).unwrap()).unwrap();
    let o = render(&s, None);
    assert_eq!(s.profile, "minimal");
    assert_eq!(names(&o, "Deployment"), ["mast-egressgateway", "mastd"]);
    assert_eq!(
        find(&o, "Deployment", "mastd")["metadata"]["namespace"],
        "mesh"
    );
    assert_eq!(find(&o, "Deployment", "mastd")["spec"]["replicas"], 2);
    std::fs::write(&f, "apiVersion: v1\nkind: ConfigMap\n").unwrap();
    let e = build(&Input {
        files: vec![f.clone()],
        sets: vec![],
    })
    .unwrap_err();
    assert!(
        format!("{e:#}").contains("overlay.yaml: kind is \"ConfigMap\", expected IstioOperator"),
        "{e:#}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn revision_suffixes_names_and_selects_namespaces_by_rev() {
    let o = objects(&["revision=canary"]);
    assert_eq!(
        names(&o, "Deployment"),
        ["mast-ingressgateway", "mastd-canary"]
    );
    assert_eq!(
        names(&o, "MutatingWebhookConfiguration"),
        ["istio-sidecar-injector-canary"]
    );
    let wh = find(
        &o,
        "MutatingWebhookConfiguration",
        "istio-sidecar-injector-canary",
    );
    assert_eq!(
        wh["webhooks"][0]["namespaceSelector"]["matchExpressions"][0],
        serde_json::json!({"key": "istio.io/rev", "operator": "In", "values": ["canary"]})
    );
    assert_eq!(
        wh["webhooks"][0]["clientConfig"]["service"]["name"],
        "mastd-canary"
    );
    let gw = find(&o, "Deployment", "mast-ingressgateway");
    assert_eq!(gw["metadata"]["labels"]["istio.io/rev"], "canary");
    assert_eq!(
        gw.pointer("/spec/template/spec/containers/0/env/0/value")
            .unwrap(),
        "https://mastd-canary.mast-system.svc:15012"
    );
    let d = objects(&[]);
    let wh = find(&d, "MutatingWebhookConfiguration", "istio-sidecar-injector");
    assert_eq!(
        wh["webhooks"][0]["namespaceSelector"]["matchExpressions"][0],
        serde_json::json!({"key": "istio-injection", "operator": "In", "values": ["enabled"]})
    );
    assert_eq!(
        wh["webhooks"][0]["clientConfig"]["service"]["path"],
        "/inject"
    );
}

#[test]
fn ca_fills_ca_bundle_secret_and_root_configmap() {
    let s = Settings::from_tree(&build(&Input::default()).unwrap()).unwrap();
    let ca = super::render::MeshCa {
        key_pem: "KEY".into(),
        cert_pem: "CERT".into(),
        root_pem: "ROOT".into(),
    };
    let o = render(&s, Some(&ca));
    let wh = find(&o, "MutatingWebhookConfiguration", "istio-sidecar-injector");
    assert_eq!(wh["webhooks"][0]["clientConfig"]["caBundle"], "Uk9PVA==");
    assert_eq!(
        find(&o, "ConfigMap", "istio-ca-root-cert")["data"]["root-cert.pem"],
        "ROOT"
    );
    assert_eq!(find(&o, "Secret", "cacerts")["data"]["ca-key.pem"], "S0VZ");
    let back = super::ca::from_secret(find(&o, "Secret", "cacerts")).unwrap();
    assert_eq!(
        (back.key_pem.as_str(), back.root_pem.as_str()),
        ("KEY", "ROOT")
    );
    assert!(
        args(&o)
            .windows(2)
            .any(|w| w == ["--ca-cacerts", "/etc/cacerts"])
    );
    assert!(
        find(&o, "Secret", "cacerts")["metadata"]["labels"]
            .get("istio.io/rev")
            .is_none()
    );
}

#[test]
fn output_is_sorted_crds_first_then_namespace() {
    let o = objects(&["profile=demo"]);
    let kinds: Vec<&str> = o.iter().map(Object::kind).collect();
    assert_eq!(kinds[0], "CustomResourceDefinition");
    assert_eq!(kinds[9], "Namespace");
    assert_eq!(*kinds.last().unwrap(), "ValidatingWebhookConfiguration");
    let vs = find(
        &o,
        "CustomResourceDefinition",
        "virtualservices.networking.istio.io",
    );
    let versions: Vec<(&str, bool)> = vs["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v["storage"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        versions,
        [("v1alpha3", false), ("v1beta1", false), ("v1", true)]
    );
}

fn roundtrip<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) {
    let typed: T = serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("{}: {e}", super::kube::describe(v)));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        &back,
        v,
        "{} changed through its Kubernetes type",
        super::kube::describe(v)
    );
}

#[test]
fn every_object_matches_its_kubernetes_schema() {
    use k8s_openapi::api::{
        admissionregistration::v1 as adm, apps::v1 as apps, autoscaling::v2 as hpa,
        core::v1 as core, policy::v1 as policy, rbac::v1 as rbac,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let ca = super::render::MeshCa {
        key_pem: "K".into(),
        cert_pem: "C".into(),
        root_pem: "R".into(),
    };
    for sets in [vec!["profile=demo"], vec!["revision=canary"]] {
        let input = Input {
            files: vec![],
            sets: sets.iter().map(|s| s.to_string()).collect(),
        };
        let mut all = render(
            &Settings::from_tree(&build(&input).unwrap()).unwrap(),
            Some(&ca),
        );
        all.extend(objects(&[]));
        for o in &all {
            let v = &o.value;
            match o.kind() {
                "CustomResourceDefinition" => roundtrip::<CustomResourceDefinition>(v),
                "Namespace" => roundtrip::<core::Namespace>(v),
                "ServiceAccount" => roundtrip::<core::ServiceAccount>(v),
                "Secret" => roundtrip::<core::Secret>(v),
                "ConfigMap" => roundtrip::<core::ConfigMap>(v),
                "Service" => roundtrip::<core::Service>(v),
                "ClusterRole" => roundtrip::<rbac::ClusterRole>(v),
                "ClusterRoleBinding" => roundtrip::<rbac::ClusterRoleBinding>(v),
                "Role" => roundtrip::<rbac::Role>(v),
                "RoleBinding" => roundtrip::<rbac::RoleBinding>(v),
                "Deployment" => roundtrip::<apps::Deployment>(v),
                "PodDisruptionBudget" => roundtrip::<policy::PodDisruptionBudget>(v),
                "HorizontalPodAutoscaler" => roundtrip::<hpa::HorizontalPodAutoscaler>(v),
                "MutatingWebhookConfiguration" => roundtrip::<adm::MutatingWebhookConfiguration>(v),
                "ValidatingWebhookConfiguration" => {
                    roundtrip::<adm::ValidatingWebhookConfiguration>(v)
                }
                other => panic!("no schema check for kind {other}"),
            }
        }
    }
}

#[test]
fn yaml_output_parses_back_to_the_same_objects() {
    let o = objects(&["profile=demo"]);
    let yaml = to_yaml(&o).unwrap();
    let back: Vec<Value> = serde_saphyr::from_multiple(&yaml).unwrap();
    let want: Vec<Value> = o.iter().map(|x| x.value.clone()).collect();
    assert_eq!(back, want);
}

/// kubectl parses the manifests (`annotate --local` needs no API server; the cluster tests
/// run `apply --dry-run=client` against the emulator).
#[test]
fn kubectl_parses_the_manifests() {
    if std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        eprintln!("skipped: no kubectl binary on PATH");
        return;
    }
    use std::io::Write;
    let o = objects(&["profile=demo"]);
    let mut child = std::process::Command::new("kubectl")
        .args([
            "annotate",
            "--local",
            "--dry-run=client",
            "-f",
            "-",
            "mast.io/check=1",
            "-o",
            "name",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(to_yaml(&o).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), o.len(), "{text}");
    assert!(text.contains("deployment.apps/mastd"), "{text}");
    assert!(
        text.contains(
            "customresourcedefinition.apiextensions.k8s.io/virtualservices.networking.istio.io"
        ),
        "{text}"
    );
}

#[test]
fn native_sidecars_on_request_and_mastd_serves_its_tls_ports() {
    let plain = args(&objects(&[]));
    assert!(
        !plain.contains(&"--native-sidecars".to_owned()),
        "{plain:?}"
    );
    for flag in ["--xds-tls-addr", "--webhook-addr", "--xds-tls-dns-names"] {
        assert!(plain.contains(&flag.to_owned()), "{flag} in {plain:?}");
    }
    let native = args(&objects(&["values.pilot.env.ENABLE_NATIVE_SIDECARS=true"]));
    assert!(
        native.contains(&"--native-sidecars".to_owned()),
        "{native:?}"
    );
}
