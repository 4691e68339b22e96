//! Ingress and egress gateways: a ServiceAccount, a Deployment running mast-proxy as a
//! `router` (uid 1337, allowed ports 80/443 by the `ip_unprivileged_port_start` sysctl), a
//! Service (ports 15021, 80, 443, 15443 unless overridden; LoadBalancer for ingress,
//! ClusterIP for egress), and a PodDisruptionBudget / HorizontalPodAutoscaler as the values
//! ask. Gateway names are not suffixed by the revision: a new revision's install takes the
//! gateways over (their labels and discovery address move to it).

use serde_json::{Value, json};

use super::labels;
use super::mastd::{hpa_for, pdb_for};
use crate::cmd::install::settings::{Gateway, Settings};

/// The gateway's objects.
pub fn render(s: &Settings, g: &Gateway) -> Vec<Value> {
    let mut meta_labels = labels(s, &g.name);
    meta_labels.extend(g.labels.clone());
    let meta_labels = Value::Object(meta_labels);
    let meta = json!({"name": g.name, "namespace": s.namespace, "labels": meta_labels});
    let sa = format!("{}-service-account", g.name);
    let mut out = vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": s.namespace, "labels": meta_labels}}),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {"type": g.service_type, "selector": g.labels, "ports": g.ports},
        }),
        deployment(s, g, &meta, &sa),
    ];
    if s.pdb {
        out.push(pdb_for(
            &s.namespace,
            &g.name,
            meta_labels.clone(),
            Value::Object(g.labels.clone()),
        ));
    }
    if let Some(a) = &g.autoscale {
        out.push(hpa_for(&s.namespace, &g.name, meta_labels.clone(), a));
    }
    out
}

fn env_field(name: &str, path: &str) -> Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}})
}

fn container_ports(g: &Gateway) -> Vec<Value> {
    let mut ports: Vec<Value> = g
        .ports
        .iter()
        .filter_map(|p| {
            p.get("targetPort")
                .or_else(|| p.get("port"))
                .and_then(Value::as_i64)
        })
        .map(|p| json!({"containerPort": p, "protocol": "TCP"}))
        .collect();
    ports.push(json!({"name": "http-envoy-prom", "containerPort": 15090, "protocol": "TCP"}));
    ports
}

/// Istio's `istio-token`: a service-account token for audience `istio-ca`, which the CA
/// checks with a TokenReview.
fn token_volume() -> Value {
    json!({"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {
        "audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}}]}})
}

/// The mesh root (ConfigMap `istio-ca-root-cert`, mounted as in injected pods).
const ROOT_CERT_FILE: &str = "/var/run/secrets/istio/root-cert.pem";

/// mast-proxy's settings (`MAST_*`), the node identity from the downward API.
fn env(s: &Settings, g: &Gateway) -> Value {
    let labels_csv: Vec<String> = g
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    // mastd's 15012: xDS and the CA over TLS, verified against the mesh root.
    let xds = format!("https://{}.{}.svc:15012", s.mastd_name(), s.namespace);
    json!([
        {"name": "MAST_XDS_ADDRESS", "value": xds},
        {"name": "MAST_CA_ADDRESS", "value": xds},
        {"name": "MAST_XDS_ROOT_CERT", "value": ROOT_CERT_FILE},
        env_field("MAST_INSTANCE_IP", "status.podIP"),
        env_field("MAST_WORKLOAD", "metadata.name"),
        env_field("MAST_NAMESPACE", "metadata.namespace"),
        env_field("MAST_SERVICE_ACCOUNT", "spec.serviceAccountName"),
        {"name": "MAST_LABELS", "value": labels_csv.join(",")},
        {"name": "MAST_DOMAIN", "value": "cluster.local"},
        {"name": "MAST_CA_TOKEN_FILE", "value": "/var/run/secrets/tokens/istio-token"},
    ])
}

fn deployment(s: &Settings, g: &Gateway, meta: &Value, sa: &str) -> Value {
    let mut pod_labels = g.labels.clone();
    pod_labels.insert("istio.io/rev".into(), s.rev_label().into());
    pod_labels.insert("sidecar.istio.io/inject".into(), "false".into());
    let mut container = json!({
        "name": "istio-proxy",
        "image": s.proxy_image,
        "args": ["--type", "router", "--health-port", "15021", "--prometheus-port", "15090"],
        "env": env(s, g),
        "volumeMounts": [
            {"name": "istio-token", "mountPath": "/var/run/secrets/tokens", "readOnly": true},
            {"name": "istiod-ca-cert", "mountPath": "/var/run/secrets/istio", "readOnly": true},
        ],
        "ports": container_ports(g),
        "readinessProbe": {
            "httpGet": {"path": "/healthz/ready", "port": 15021},
            "initialDelaySeconds": 1, "periodSeconds": 2, "failureThreshold": 30,
        },
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "runAsUser": 1337, "runAsGroup": 1337, "runAsNonRoot": true,
        },
    });
    if g.resources.is_object() {
        container["resources"] = g.resources.clone();
    }
    let mut spec = json!({
        "selector": {"matchLabels": g.labels},
        "template": {
            "metadata": {"labels": pod_labels},
            "spec": {
                "serviceAccountName": sa,
                "containers": [container],
                "volumes": [
                    token_volume(),
                    json!({"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}}),
                ],
                // Listen on 80 and 443 as uid 1337 (Istio's gateways do the same).
                "securityContext": {"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]},
            },
        },
    });
    if g.autoscale.is_none() {
        spec["replicas"] = g.replicas.into();
    }
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec})
}
