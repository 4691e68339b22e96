//! Tests of the object-to-file conversion: EndpointSlices merged per Service, re-lists,
//! Pods trimmed, Secrets kept only with TLS material.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::kube::kinds::WATCHED;

fn kind(name: &str) -> WatchedKind {
    *WATCHED.iter().find(|k| k.kind == name).unwrap()
}

fn object(value: Value) -> DynamicObject {
    serde_json::from_value(value).unwrap()
}

#[test]
fn slices_of_a_service_become_one_endpoints_file() {
    let k = kind("EndpointSlice");
    let mut state = KindState::new(k, k.at("v1"), LoadOptions::default());
    let slice = |name: &str, ip: &str, ready: bool| {
        object(
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "default", "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}),
        )
    };
    let changes = state.apply(slice("web-a", "10.0.0.1", true));
    assert_eq!(changes.len(), 1);
    let Change::Set { file, loaded } = &changes[0] else {
        panic!("{changes:?}")
    };
    assert_eq!(file, "k8s/EndpointSlice/default/web");
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    assert_eq!(loaded.resources[0].kind, "Endpoints");
    let changes = state.apply(slice("web-b", "10.0.0.2", false));
    let Change::Set { loaded, .. } = &changes[0] else {
        panic!("{changes:?}")
    };
    let eps = loaded.resources[0].as_endpoints().unwrap();
    let subsets = eps.subsets.as_ref().unwrap();
    assert_eq!(subsets.len(), 2);
    assert_eq!(
        subsets[1].not_ready_addresses.as_ref().unwrap()[0].ip,
        "10.0.0.2"
    );
    // Re-applying the same slice changes nothing.
    assert!(state.apply(slice("web-b", "10.0.0.2", false)).is_empty());
    state.delete(&slice("web-a", "", true));
    let changes = state.delete(&slice("web-b", "", true));
    assert!(
        matches!(&changes[..], [Change::Remove { file }] if file == "k8s/EndpointSlice/default/web")
    );
}

#[test]
fn resync_yields_only_the_difference() {
    let k = kind("Service");
    let mut state = KindState::new(k, k.at("v1"), LoadOptions::default());
    let svc = |name: &str, port: u16| {
        object(
            json!({"metadata": {"name": name, "namespace": "ns1", "managedFields": [{"manager": "x"}]},
            "spec": {"ports": [{"port": port}]}}),
        )
    };
    assert_eq!(state.resync(vec![svc("a", 80), svc("b", 80)]).len(), 2);
    let changes = state.resync(vec![svc("a", 80), svc("c", 81)]);
    let files: Vec<String> = changes
        .iter()
        .map(|c| match c {
            Change::Set { file, .. } => format!("set {file}"),
            Change::Remove { file } => format!("remove {file}"),
        })
        .collect();
    assert_eq!(files, ["remove k8s/Service/ns1/b", "set k8s/Service/ns1/c"]);
    assert!(!state.published["k8s/Service/ns1/a"].contains("managedFields"));
}

#[test]
fn only_secrets_with_tls_material_are_kept() {
    let k = kind("Secret");
    let mut state = KindState::new(k, k.at("v1"), LoadOptions::default());
    let secret = |name: &str, ty: &str, data: Value| {
        object(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "gw", "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"password\":\"x\"}}",
                "team": "web"}},
            "type": ty, "data": data}))
    };
    // "Y2VydA==" is base64 for "cert".
    let tls = secret(
        "web-cert",
        "kubernetes.io/tls",
        json!({"tls.crt": "Y2VydA==", "tls.key": "Y2VydA==", "extra": "Y2VydA=="}),
    );
    let changes = state.apply(tls);
    let Change::Set { file, loaded } = &changes[0] else {
        panic!("{changes:?}")
    };
    assert_eq!(file, "k8s/Secret/gw/web-cert");
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let text = &state.published["k8s/Secret/gw/web-cert"];
    assert!(
        text.contains("tls.crt") && !text.contains("extra"),
        "{text}"
    );
    assert!(
        !text.contains("last-applied") && !text.contains("password"),
        "{text}"
    );
    assert!(text.contains("team"), "other annotations stay");

    let generic = secret(
        "generic",
        "Opaque",
        json!({"cert": "Y2VydA==", "key": "Y2VydA==", "password": "Y2VydA=="}),
    );
    assert_eq!(state.apply(generic).len(), 1);
    assert!(!state.published["k8s/Secret/gw/generic"].contains("password"));
    let ca_only = secret("generic-cacert", "Opaque", json!({"cacert": "Y2VydA=="}));
    assert_eq!(state.apply(ca_only).len(), 1);

    for (name, ty, data) in [
        (
            "token",
            "kubernetes.io/service-account-token",
            json!({"token": "Y2VydA==", "ca.crt": "Y2VydA=="}),
        ),
        (
            "pull",
            "kubernetes.io/dockerconfigjson",
            json!({".dockerconfigjson": "e30="}),
        ),
        ("db", "Opaque", json!({"password": "Y2VydA=="})),
    ] {
        assert!(
            state.apply(secret(name, ty, data)).is_empty(),
            "{name} is dropped"
        );
    }
    assert_eq!(state.len(), 3);

    // A kept Secret that loses its TLS keys leaves the store.
    let changes = state.apply(secret("generic", "Opaque", json!({"password": "Y2VydA=="})));
    assert!(
        matches!(&changes[..], [Change::Remove { file }] if file == "k8s/Secret/gw/generic"),
        "{changes:?}"
    );
    let changes = state.resync(vec![secret(
        "token",
        "kubernetes.io/service-account-token",
        json!({"token": "eA=="}),
    )]);
    assert_eq!(
        changes.len(),
        2,
        "both remaining Secrets removed: {changes:?}"
    );
    assert!(state.is_empty());
}

#[test]
fn pods_keep_what_the_mesh_reads() {
    let k = kind("Pod");
    let mut state = KindState::new(k, k.at("v1"), LoadOptions::default());
    let pod = object(
        json!({"metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx", "resources": {},
            "ports": [{"containerPort": 80, "name": "http"}]}], "serviceAccountName": "sa",
            "futureField": {"x": 1}},
        "status": {"phase": "Running", "podIP": "10.1.0.1", "futureStatus": 1}}),
    );
    let changes = state.apply(pod);
    let Change::Set { loaded, .. } = &changes[0] else {
        panic!("{changes:?}")
    };
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let p = loaded.resources[0].as_pod().unwrap();
    assert_eq!(
        p.status.as_ref().unwrap().pod_ip.as_deref(),
        Some("10.1.0.1")
    );
}
