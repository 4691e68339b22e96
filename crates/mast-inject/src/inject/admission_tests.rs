//! AdmissionReview handler tests with requests shaped as the API server sends them
//! (Kubernetes API reference, `admission.k8s.io/v1` AdmissionReview: a Pod created by a
//! ReplicaSet controller, an Istio VirtualService created by a user).

use base64::Engine as _;
use serde_json::{Value, json};

use super::*;
use crate::inject::{PROXY_CONTAINER, STATUS_ANNOTATION};

/// A Pod CREATE as the API server sends it for a Deployment's ReplicaSet.
pub(crate) fn pod_review(annotations: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "jicki",
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "a7e0ab33-5d2b-4d3c-9a5b-7f6a0e0c4d11",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]
            },
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "generateName": "nginx-deployment-59897745f9-",
                    "namespace": "jicki",
                    "labels": {"app": "nginx", "version": "v1.0.0", "pod-template-hash": "59897745f9"},
                    "annotations": annotations,
                    "ownerReferences": [{
                        "apiVersion": "apps/v1", "kind": "ReplicaSet",
                        "name": "nginx-deployment-59897745f9",
                        "uid": "1b7b6c1e-2f7a-4f4e-8d6a-3e1f0f6c2b9a",
                        "controller": true, "blockOwnerDeletion": true
                    }]
                },
                "spec": {
                    "containers": [{
                        "name": "nginx", "image": "nginx:alpine", "imagePullPolicy": "IfNotPresent",
                        "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}],
                        "resources": {},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File"
                    }],
                    "dnsPolicy": "ClusterFirst",
                    "restartPolicy": "Always",
                    "schedulerName": "default-scheduler",
                    "serviceAccountName": "default",
                    "terminationGracePeriodSeconds": 30
                },
                "status": {}
            },
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

fn response(v: &Value) -> &Value {
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    assert_eq!(v["response"]["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    &v["response"]
}

fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

#[test]
fn pod_create_gets_a_json_patch_that_injects_it() {
    let review = pod_review(json!({}));
    let out = inject(&body(&review), &InjectConfig::default(), None).unwrap();
    let resp = response(&out);
    assert_eq!(resp["allowed"], true);
    assert_eq!(resp["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(resp["patch"].as_str().unwrap())
        .unwrap();
    let ops: Vec<Value> = serde_json::from_slice(&bytes).unwrap();
    let pod = patch::apply(review["request"]["object"].clone(), &ops).unwrap();
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nginx", PROXY_CONTAINER]);
    assert_eq!(pod["spec"]["initContainers"][0]["name"], "istio-init");
    assert!(pod["metadata"]["annotations"][STATUS_ANNOTATION].is_string());
    let env = pod["spec"]["containers"][1]["env"].as_array().unwrap();
    let workload = env
        .iter()
        .find(|e| e["name"] == "ISTIO_META_WORKLOAD_NAME")
        .unwrap();
    assert_eq!(
        workload["value"], "nginx-deployment",
        "the Deployment, from the ReplicaSet owner"
    );
}

#[test]
fn skipped_and_other_requests_are_allowed_without_patch() {
    let opted_out = pod_review(json!({"sidecar.istio.io/inject": "false"}));
    let out = inject(&body(&opted_out), &InjectConfig::default(), None).unwrap();
    assert_eq!(
        response(&out),
        &json!({"allowed": true, "uid": "705ab4f5-6393-11e8-b7cc-42010a800002"})
    );
    let mut update = pod_review(json!({}));
    update["request"]["operation"] = json!("UPDATE");
    let out = inject(&body(&update), &InjectConfig::default(), None).unwrap();
    assert!(response(&out).get("patch").is_none());
    let ns = json!({"istio-injection": "disabled"});
    let out = inject(
        &body(&pod_review(json!({}))),
        &InjectConfig::default(),
        ns.as_object(),
    )
    .unwrap();
    assert!(response(&out).get("patch").is_none());
}

#[test]
fn bad_annotation_denies_with_its_name() {
    let review = pod_review(json!({"traffic.sidecar.istio.io/includeInboundPorts": "eighty"}));
    let out = inject(&body(&review), &InjectConfig::default(), None).unwrap();
    let resp = response(&out);
    assert_eq!(resp["allowed"], false);
    let msg = resp["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains(
            "Pod jicki/nginx-deployment: annotation traffic.sidecar.istio.io/includeInboundPorts"
        ),
        "{msg}"
    );
}

#[test]
fn not_a_review_is_an_error() {
    assert!(matches!(
        inject(b"{", &InjectConfig::default(), None),
        Err(AdmissionError::NotJson(_))
    ));
    let err = validate(br#"{"kind":"AdmissionReview","request":{}}"#).unwrap_err();
    assert_eq!(err.to_string(), "not an AdmissionReview: no request.uid");
}

fn vs_review(weight: i64) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "networking.istio.io", "version": "v1", "kind": "VirtualService"},
            "resource": {"group": "networking.istio.io", "version": "v1", "resource": "virtualservices"},
            "name": "nginx-vs",
            "namespace": "jicki",
            "operation": "CREATE",
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
            "object": {
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": {"name": "nginx-vs", "namespace": "jicki"},
                "spec": {
                    "hosts": ["nginx-svc"],
                    "http": [{"route": [{"destination": {"host": "nginx-svc"}, "weight": weight}]}]
                }
            },
            "oldObject": null,
            "dryRun": false
        }
    })
}

#[test]
fn valid_virtual_service_is_allowed_and_bad_one_denied_naming_the_field() {
    let ok = validate(&body(&vs_review(100))).unwrap();
    assert_eq!(response(&ok)["allowed"], true);
    let bad = validate(&body(&vs_review(-10))).unwrap();
    let resp = response(&bad);
    assert_eq!(resp["allowed"], false);
    assert_eq!(resp["status"]["code"], 400);
    let msg = resp["status"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("configuration is invalid: VirtualService jicki/nginx-vs: "),
        "{msg}"
    );
    assert!(
        msg.contains("http[0].route[0].weight") && msg.contains("must not be negative"),
        "{msg}"
    );
}
