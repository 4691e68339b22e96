//! mastd's objects (Istio's "Pilot" component): ServiceAccount, ClusterRole/Binding and a
//! namespaced Role/Binding, the Deployment, the `mastd` Service and its `istiod` alias,
//! PodDisruptionBudget, HorizontalPodAutoscaler, the mesh ConfigMap, and — when install
//! supplies the mesh CA — the `cacerts` Secret and the `istio-ca-root-cert` ConfigMap.

use serde_json::{Value, json};

use super::{MeshCa, base_labels, labels};
use crate::cmd::install::settings::{Autoscale, Settings};

/// Where the `cacerts` Secret is mounted (Istio's plug-in CA path).
const CACERTS_DIR: &str = "/etc/cacerts";
/// mastd's own CA state (token key; the self-signed root when there is no `cacerts`).
const CA_DIR: &str = "/var/run/mast/ca";

/// All of mastd's objects.
pub fn render(s: &Settings, ca: Option<&MeshCa>) -> Vec<Value> {
    let mut out = vec![
        service_account(s),
        cluster_role(s),
        cluster_role_binding(s),
        role(s),
        role_binding(s),
        mesh_config(s),
        service(s, &s.mastd_name()),
        service(s, &format!("istiod{}", s.suffix())),
        deployment(s, ca.is_some()),
    ];
    if s.pdb {
        out.push(pdb(s, &s.mastd_name(), selector(s)));
    }
    if let Some(a) = &s.autoscale {
        out.push(hpa(s, &s.mastd_name(), a));
    }
    if let Some(ca) = ca {
        out.push(cacerts(s, ca));
        out.push(root_cert(s, ca));
    }
    out
}

fn meta(s: &Settings, name: &str) -> Value {
    json!({"name": name, "namespace": s.namespace, "labels": labels(s, "mastd")})
}

fn selector(s: &Settings) -> Value {
    json!({"app": "mastd", "istio.io/rev": s.rev_label()})
}

/// Metadata of objects every revision shares (kept by `uninstall --revision`).
fn shared_meta(s: &Settings, name: &str) -> Value {
    let mut l = base_labels();
    l.insert("app".into(), "mastd".into());
    json!({"name": name, "namespace": s.namespace, "labels": l})
}

fn cluster_meta(s: &Settings) -> Value {
    let name = format!("mastd-clusterrole{}-{}", s.suffix(), s.namespace);
    json!({"name": name, "labels": labels(s, "mastd")})
}

fn service_account(s: &Settings) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(s, &s.mastd_name())})
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn cluster_role(s: &Settings) -> Value {
    let read = ["get", "list", "watch"];
    let istio = ["networking.istio.io", "security.istio.io"];
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": cluster_meta(s),
        "rules": [
            rule(&[""], &["services", "endpoints", "pods", "namespaces", "nodes", "secrets"], &read),
            rule(&[""], &["configmaps"], &["get", "list", "watch", "create", "update", "patch"]),
            rule(&["discovery.k8s.io"], &["endpointslices"], &read),
            rule(&istio, &["*"], &read),
            rule(&istio, &["*/status"], &["get", "update", "patch"]),
            // The Kubernetes Gateway API: read every kind, write status (as istiod's role).
            rule(&["gateway.networking.k8s.io"], &["*"], &read),
            rule(&["gateway.networking.k8s.io"], &["*/status"], &["get", "update", "patch"]),
            rule(&["apiextensions.k8s.io"], &["customresourcedefinitions"], &read),
            rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
            rule(&["authorization.k8s.io"], &["subjectaccessreviews"], &["create"]),
            rule(
                &["admissionregistration.k8s.io"],
                &["mutatingwebhookconfigurations", "validatingwebhookconfigurations"],
                &["get", "list", "watch", "update", "patch"],
            ),
        ],
    })
}

fn cluster_role_binding(s: &Settings) -> Value {
    let name = cluster_meta(s)["name"].clone();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": cluster_meta(s),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": s.mastd_name(), "namespace": s.namespace}],
    })
}

fn role(s: &Settings) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta(s, &s.mastd_name()),
        "rules": [
            rule(&["coordination.k8s.io"], &["leases"], &["get", "list", "watch", "create", "update", "patch", "delete"]),
            rule(&[""], &["secrets"], &["create", "update", "patch"]),
        ],
    })
}

fn role_binding(s: &Settings) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta(s, &s.mastd_name()),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": s.mastd_name()},
        "subjects": [{"kind": "ServiceAccount", "name": s.mastd_name(), "namespace": s.namespace}],
    })
}

/// Istio's `istio` ConfigMap: the mesh configuration under `mesh` (YAML).
fn mesh_config(s: &Settings) -> Value {
    let mesh = format!(
        "accessLogFile: {:?}\nrootNamespace: {}\ntrustDomain: {}\ndefaultConfig:\n  discoveryAddress: {}.{}.svc:15012\n  tracing:\n    sampling: {}\n",
        s.access_log_file,
        s.namespace,
        s.trust_domain,
        s.mastd_name(),
        s.namespace,
        s.trace_sampling
    );
    let mut mesh = mesh;
    if !s.access_log_encoding.is_empty() {
        mesh.push_str(&format!("accessLogEncoding: {}\n", s.access_log_encoding));
    }
    if !s.access_log_format.is_empty() {
        mesh.push_str(&format!("accessLogFormat: {:?}\n", s.access_log_format));
    }
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(s, &format!("istio{}", s.suffix())),
        "data": {"mesh": mesh},
    })
}

fn service(s: &Settings, name: &str) -> Value {
    let port =
        |n: &str, p: i64, t: i64| json!({"name": n, "port": p, "targetPort": t, "protocol": "TCP"});
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(s, name),
        "spec": {
            "selector": selector(s),
            "ports": [
                port("grpc-xds", 15010, 15010),
                port("https-dns", 15012, 15012),
                port("https-webhook", 443, 15017),
                port("http-monitoring", 15014, 15014),
            ],
        },
    })
}

/// The dashboard's Service (Kiali's port 20001), selecting mastd's pods.
pub fn dashboard_service(s: &Settings) -> Value {
    let mut m = meta(s, &format!("mast-dashboard{}", s.suffix()));
    m["labels"]["app"] = "mast-dashboard".into();
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": m,
        "spec": {
            "selector": selector(s),
            "ports": [{"name": "http-dashboard", "port": 20001, "targetPort": 20001, "protocol": "TCP"}],
        },
    })
}

/// `meshConfig.accessLogFile`, `accessLogEncoding`, `accessLogFormat` as mastd's flags
/// (nothing when the file is empty: no access log, Istio's default profile).
fn access_log_args(s: &Settings) -> Vec<String> {
    if s.access_log_file.is_empty() {
        return Vec::new();
    }
    let mut a = vec!["--access-log-file".to_string(), s.access_log_file.clone()];
    if !s.access_log_encoding.is_empty() {
        a.push("--access-log-encoding".to_string());
        a.push(s.access_log_encoding.to_ascii_lowercase());
    }
    if !s.access_log_format.is_empty() {
        a.push("--access-log-format".to_string());
        a.push(s.access_log_format.clone());
    }
    a
}

fn args(s: &Settings, has_ca: bool) -> Vec<String> {
    let dashboard = if s.dashboard { "0.0.0.0:20001" } else { "off" };
    let mut a = vec![
        "--registry".to_string(),
        "kubernetes".to_string(),
        "--xds-addr".to_string(),
        "0.0.0.0:15010".to_string(),
        "--monitoring-addr".to_string(),
        "0.0.0.0:15014".to_string(),
        "--root-namespace".to_string(),
        s.namespace.clone(),
        "--trust-domain".to_string(),
        s.trust_domain.clone(),
        "--trace-sampling".to_string(),
        s.trace_sampling.to_string(),
        "--dashboard-addr".to_string(),
        dashboard.to_string(),
    ];
    // istiod's 15012 (xDS and CA over TLS, for the sidecars) and 15017 (the webhooks), with a
    // certificate from the mesh CA for this revision's Service names.
    let svc = format!("mastd{}.{}.svc", s.suffix(), s.namespace);
    a.extend([
        "--xds-tls-addr".to_string(),
        "0.0.0.0:15012".to_string(),
        "--webhook-addr".to_string(),
        "0.0.0.0:15017".to_string(),
        "--xds-tls-dns-names".to_string(),
        format!("{svc},{svc}.cluster.local,istiod.istio-system.svc"),
    ]);
    if s.native_sidecars {
        a.push("--native-sidecars".to_string());
    }
    a.extend(access_log_args(s));
    a.extend(["--ca-dir".to_string(), CA_DIR.to_string()]);
    if has_ca {
        a.extend(["--ca-cacerts".to_string(), CACERTS_DIR.to_string()]);
    }
    a
}

fn env_field(name: &str, path: &str) -> Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}})
}

fn container(s: &Settings, has_ca: bool) -> Value {
    let cport = |n: &str, p: i64| json!({"name": n, "containerPort": p, "protocol": "TCP"});
    let mut mounts = vec![json!({"name": "mast-ca", "mountPath": CA_DIR})];
    if has_ca {
        mounts.push(json!({"name": "cacerts", "mountPath": CACERTS_DIR, "readOnly": true}));
    }
    let mut container = json!({
        "name": "discovery",
        "image": s.mastd_image,
        "args": args(s, has_ca),
        "ports": [
            cport("grpc-xds", 15010), cport("https-dns", 15012), cport("http-monitoring", 15014),
            cport("https-webhook", 15017), cport("http-dashboard", 20001),
        ],
        "env": [
            {"name": "REVISION", "value": s.rev_label()},
            env_field("POD_NAME", "metadata.name"),
            env_field("POD_NAMESPACE", "metadata.namespace"),
            {"name": "MAST_LOG", "value": "info"},
        ],
        "readinessProbe": {
            "httpGet": {"path": "/version", "port": 15014},
            "initialDelaySeconds": 1, "periodSeconds": 3, "timeoutSeconds": 5,
        },
        "securityContext": {
            "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
            "runAsNonRoot": true, "runAsUser": 1337, "runAsGroup": 1337,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    });
    if s.mastd_resources.is_object() {
        container["resources"] = s.mastd_resources.clone();
    }
    container
}

fn deployment(s: &Settings, has_ca: bool) -> Value {
    let mut pod_labels = labels(s, "mastd");
    pod_labels.insert("istio".into(), "pilot".into());
    pod_labels.insert("sidecar.istio.io/inject".into(), "false".into());
    let mut volumes = vec![json!({"name": "mast-ca", "emptyDir": {}})];
    if has_ca {
        volumes.push(
            json!({"name": "cacerts", "secret": {"secretName": "cacerts", "optional": true}}),
        );
    }
    let pod_spec = json!({
        "serviceAccountName": s.mastd_name(),
        "containers": [container(s, has_ca)],
        "volumes": volumes,
    });
    let mut spec = json!({
        "selector": {"matchLabels": selector(s)},
        "strategy": {"rollingUpdate": {"maxSurge": "100%", "maxUnavailable": "25%"}},
        "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
    });
    if s.autoscale.is_none() {
        spec["replicas"] = s.replicas.into();
    }
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(s, &s.mastd_name()), "spec": spec})
}

/// A PodDisruptionBudget keeping one pod of `name` available.
pub fn pdb_for(namespace: &str, name: &str, labels: Value, selector: Value) -> Value {
    json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": selector}},
    })
}

fn pdb(s: &Settings, name: &str, sel: Value) -> Value {
    pdb_for(&s.namespace, name, Value::Object(labels(s, "mastd")), sel)
}

/// A HorizontalPodAutoscaler (autoscaling/v2) on CPU for Deployment `name`.
pub fn hpa_for(namespace: &str, name: &str, labels: Value, a: &Autoscale) -> Value {
    json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": a.min,
            "maxReplicas": a.max,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": a.cpu}}}],
        },
    })
}

fn hpa(s: &Settings, name: &str, a: &Autoscale) -> Value {
    hpa_for(&s.namespace, name, Value::Object(labels(s, "mastd")), a)
}

/// Istio's plug-in CA Secret layout, mounted at `/etc/cacerts` for `mastd --ca-cacerts`.
fn cacerts(s: &Settings, ca: &MeshCa) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": shared_meta(s, "cacerts"),
        "type": "Opaque",
        "data": {
            "ca-cert.pem": b64(&ca.cert_pem),
            "ca-key.pem": b64(&ca.key_pem),
            "cert-chain.pem": b64(&ca.cert_pem),
            "root-cert.pem": b64(&ca.root_pem),
        },
    })
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn root_cert(s: &Settings, ca: &MeshCa) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": shared_meta(s, "istio-ca-root-cert"),
        "data": {"root-cert.pem": ca.root_pem},
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::cmd::install::operator::{Input, build};

    /// The verbs the ClusterRole grants on `resource` of `group`.
    fn verbs(role: &Value, group: &str, resource: &str) -> Vec<String> {
        let mut out = Vec::new();
        for r in role["rules"].as_array().unwrap() {
            let has = |k: &str, v: &str| {
                r[k].as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x.as_str() == Some(v))
            };
            if has("apiGroups", group) && (has("resources", resource) || has("resources", "*")) {
                out.extend(
                    r["verbs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap().to_owned()),
                );
            }
        }
        out
    }

    #[test]
    fn cluster_role_reads_secrets_and_the_gateway_api() {
        let s = Settings::from_tree(&build(&Input::default()).unwrap()).unwrap();
        let role = cluster_role(&s);
        for v in ["get", "list", "watch"] {
            assert!(
                verbs(&role, "", "secrets").iter().any(|x| x == v),
                "secrets {v}"
            );
            assert!(
                verbs(&role, "gateway.networking.k8s.io", "httproutes")
                    .iter()
                    .any(|x| x == v),
                "httproutes {v}"
            );
        }
        let status = verbs(&role, "gateway.networking.k8s.io", "*/status");
        assert!(status.iter().any(|x| x == "patch"), "{status:?}");
    }
}
