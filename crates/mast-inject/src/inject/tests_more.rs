//! More injection tests: the policy (namespace labels, pod label and annotation, default
//! policy), RFC 6902 patches, malformed objects and the mesh config.

use serde_json::{Map, Value, json};

use super::tests::{HELLO, run, yaml};
use super::*;

#[test]
fn namespace_labels_and_policy_decide_as_istio() {
    let pod = |labels: Value, annotations: Value| {
        yaml(&format!(
            "metadata: {{labels: {labels}, annotations: {annotations}}}\nspec: {{containers: [{{name: a}}]}}"
        ))
        .as_object()
        .unwrap()
        .clone()
    };
    let ns = |l: Value| l.as_object().unwrap().clone();
    let cfg = InjectConfig::default();
    let plain = pod(json!({}), json!({}));
    let d = |p: &Map<String, Value>, n: Option<&Map<String, Value>>, c: &InjectConfig| {
        policy::decide(c, p, "prod", n)
    };
    assert_eq!(d(&plain, None, &cfg), Decision::Inject);
    assert_eq!(
        d(
            &plain,
            Some(&ns(json!({"istio-injection": "enabled"}))),
            &cfg
        ),
        Decision::Inject
    );
    assert_eq!(
        d(
            &plain,
            Some(&ns(json!({"istio-injection": "disabled"}))),
            &cfg
        ),
        Decision::NamespaceDisabled
    );
    assert_eq!(
        d(&plain, Some(&ns(json!({}))), &cfg),
        Decision::NamespaceNotEnabled
    );
    assert_eq!(
        d(&plain, Some(&ns(json!({"istio.io/rev": "default"}))), &cfg),
        Decision::Inject
    );
    assert_eq!(
        d(&plain, Some(&ns(json!({"istio.io/rev": "canary"}))), &cfg),
        Decision::OtherRevision("canary".into())
    );
    let opt_in = pod(json!({"sidecar.istio.io/inject": "true"}), json!({}));
    assert_eq!(d(&opt_in, Some(&ns(json!({}))), &cfg), Decision::Inject);
    let disabled = InjectConfig {
        policy: InjectPolicy::Disabled,
        ..InjectConfig::default()
    };
    assert_eq!(d(&plain, None, &disabled), Decision::PolicyDisabled);
    let ann_yes = pod(json!({}), json!({"sidecar.istio.io/inject": "yes"}));
    assert_eq!(d(&ann_yes, None, &disabled), Decision::Inject);
    // The label wins over the annotation.
    let both = pod(
        json!({"sidecar.istio.io/inject": "false"}),
        json!({"sidecar.istio.io/inject": "true"}),
    );
    assert_eq!(d(&both, None, &cfg), Decision::PodOptOut("false".into()));
    assert_eq!(
        policy::decide(&cfg, &plain, "kube-system", None),
        Decision::IgnoredNamespace("kube-system".into())
    );
}

#[test]
fn patch_diff_applies_back() {
    let from = yaml(HELLO);
    let to = run(HELLO).object;
    let ops = patch::diff(&from, &to);
    assert!(
        ops.iter()
            .any(|o| o["path"] == "/spec/template/metadata/annotations")
    );
    assert_eq!(patch::apply(from.clone(), &ops).unwrap(), to);
    let escaped = patch::diff(&json!({"a": {}}), &json!({"a": {"x/y~z": 1}}));
    assert_eq!(
        escaped,
        [json!({"op": "add", "path": "/a/x~1y~0z", "value": 1})]
    );
    assert_eq!(
        patch::apply(json!({"a": {}}), &escaped).unwrap(),
        json!({"a": {"x/y~z": 1}})
    );
    let bad = patch::apply(
        json!({}),
        &[json!({"op": "add", "path": "/no/where", "value": 1})],
    );
    assert!(
        matches!(bad, Err(patch::PatchError::BadPath { .. })),
        "{bad:?}"
    );
}

#[test]
fn malformed_objects_are_errors_naming_the_field() {
    let err = inject(
        yaml("kind: Deployment\nmetadata: {name: d}\nspec: {template: 3}"),
        &InjectConfig::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Deployment d: spec.template: expected a mapping, found a number"
    );
    let err = inject(
        yaml("kind: Pod\nmetadata: {name: p}\nspec: {containers: {}}"),
        &InjectConfig::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Pod p: spec.containers: expected a list, found a mapping"
    );
    assert!(inject(json!([1]), &InjectConfig::default()).is_err());
}

#[test]
fn mesh_config_fields_apply() {
    let mut cfg = InjectConfig::default();
    let mesh = yaml(
        "trustDomain: example.org\ndefaultConfig: {discoveryAddress: 'mastd.x.svc:15012', concurrency: 4}",
    );
    cfg.apply_mesh_config(&mesh).unwrap();
    assert_eq!(
        (
            cfg.trust_domain.as_str(),
            cfg.discovery_address.as_str(),
            cfg.concurrency
        ),
        ("example.org", "mastd.x.svc:15012", 4)
    );
    let err = cfg
        .apply_mesh_config(&yaml("defaultConfig: {concurrency: -1}"))
        .unwrap_err();
    assert_eq!(err.0, "defaultConfig.concurrency");
}
