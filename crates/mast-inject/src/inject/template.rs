//! The sidecar template: what injection adds to a pod — the `istio-init` capture container
//! (unless CNI), the `istio-proxy` container (or native sidecar), Istio's volumes, labels and
//! annotations — with the per-pod annotations (`sidecar.istio.io/*`,
//! `traffic.sidecar.istio.io/*`, `proxy.istio.io/config`) applied. Field values follow
//! Istio's `injection-template.yaml`; see docs/kubernetes.md for where Mast differs.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::annotations::PodSettings;
use super::{INIT_CONTAINER, InjectConfig, InjectError, Owner, PROXY_CONTAINER, STATUS_ANNOTATION};
use super::{ProxyKind, probes, type_name};

/// The sidecar's UID and GID (traffic from it is not captured).
pub const PROXY_UID: u64 = 1337;
/// Where the projected service-account token is mounted.
pub const TOKEN_DIR: &str = "/var/run/secrets/tokens";
/// Where the mesh root certificate (ConfigMap `istio-ca-root-cert`) is mounted.
pub const ROOT_CERT_DIR: &str = "/var/run/secrets/istio";
/// The volumes injection adds, in order.
pub const VOLUMES: [&str; 5] = [
    "istio-envoy",
    "istio-data",
    "istio-podinfo",
    "istio-token",
    "istiod-ca-cert",
];

/// Injects the sidecar into the pod template `pod` (`metadata` + `spec`).
pub fn inject_pod(
    pod: &mut Map<String, Value>,
    cfg: &InjectConfig,
    owner: &Owner,
) -> Result<(), InjectError> {
    let settings = PodSettings::read(pod, cfg, owner)?;
    let labels = add_labels(pod, cfg, owner)?;
    let spec = object_at(pod, "spec", "spec", owner)?;
    let mut containers = list_at(spec, "containers", owner)?;
    let probers = if settings.rewrite_probes {
        probes::rewrite(&mut containers)
    } else {
        Map::new()
    };
    let proxy = proxy_container(&settings, owner, &containers, &labels, &probers);
    let mut inits = list_at(spec, "initContainers", owner)?;
    let mut added_inits = Vec::new();
    if !settings.cfg.cni {
        added_inits.push(init_container(&settings));
    }
    let native = settings.cfg.native_sidecars;
    if native {
        added_inits.push(proxy);
    } else {
        containers.push(proxy);
    }
    let status = Status::new(&added_inits, native);
    added_inits.append(&mut inits);
    if !added_inits.is_empty() {
        spec.insert("initContainers".into(), Value::Array(added_inits));
    }
    spec.insert("containers".into(), Value::Array(containers));
    let mut volumes = list_at(spec, "volumes", owner)?;
    volumes.extend(volumes_json());
    spec.insert("volumes".into(), Value::Array(volumes));
    set_fs_group(spec);
    add_annotations(pod, &settings, &status, owner)
}

/// `sidecar.istio.io/status`, with Istio's key order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    init_containers: Vec<String>,
    containers: Vec<String>,
    volumes: Vec<String>,
    image_pull_secrets: Option<Vec<String>>,
}

impl Status {
    fn new(inits: &[Value], native: bool) -> Self {
        let name = |c: &Value| c.get("name").and_then(Value::as_str).map(str::to_owned);
        Self {
            init_containers: inits.iter().filter_map(name).collect(),
            containers: if native {
                Vec::new()
            } else {
                vec![PROXY_CONTAINER.into()]
            },
            volumes: VOLUMES.iter().map(|v| (*v).to_owned()).collect(),
            image_pull_secrets: None,
        }
    }
}

/// Adds `security.istio.io/tlsMode`, `service.istio.io/canonical-name|-revision` and
/// `istio.io/rev`; returns the labels after.
fn add_labels(
    pod: &mut Map<String, Value>,
    cfg: &InjectConfig,
    owner: &Owner,
) -> Result<Map<String, Value>, InjectError> {
    let meta = object_at(pod, "metadata", "metadata", owner)?;
    let labels = object_at(meta, "labels", "metadata.labels", owner)?;
    let get = |k: &str| labels.get(k).and_then(Value::as_str).map(str::to_owned);
    let name = get("service.istio.io/canonical-name")
        .or_else(|| get("app.kubernetes.io/name"))
        .or_else(|| get("app"))
        .unwrap_or_else(|| owner.name.clone());
    let revision = get("service.istio.io/canonical-revision")
        .or_else(|| get("app.kubernetes.io/version"))
        .or_else(|| get("version"))
        .unwrap_or_else(|| "latest".into());
    labels.insert("security.istio.io/tlsMode".into(), json!("istio"));
    labels.insert("service.istio.io/canonical-name".into(), json!(name));
    labels.insert(
        "service.istio.io/canonical-revision".into(),
        json!(revision),
    );
    labels
        .entry("istio.io/rev")
        .or_insert_with(|| json!(cfg.revision));
    Ok(labels.clone())
}

fn add_annotations(
    pod: &mut Map<String, Value>,
    settings: &PodSettings,
    status: &Status,
    owner: &Owner,
) -> Result<(), InjectError> {
    let meta = object_at(pod, "metadata", "metadata", owner)?;
    let annotations = object_at(meta, "annotations", "metadata.annotations", owner)?;
    if !annotations.contains_key("prometheus.io/scrape") {
        let port = match settings.cfg.proxy {
            ProxyKind::Mast => "15090",
            ProxyKind::Envoy => "15020",
        };
        annotations.insert("prometheus.io/scrape".into(), json!("true"));
        annotations.insert("prometheus.io/port".into(), json!(port));
        annotations.insert("prometheus.io/path".into(), json!("/stats/prometheus"));
    }
    let status = serde_json::to_string(status).unwrap_or_default();
    annotations.insert(STATUS_ANNOTATION.into(), Value::String(status));
    Ok(())
}

/// `istio-init`: `mast-proxy init` / `mast-agent iptables` with istio-iptables' flags.
fn init_container(s: &PodSettings) -> Value {
    let [program, sub] = s.cfg.proxy.init_command();
    json!({
        "name": INIT_CONTAINER,
        "image": s.cfg.image,
        "command": [program, sub],
        "args": s.iptables_args(),
        "resources": s.resources(),
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": { "add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"] },
            "privileged": false,
            "readOnlyRootFilesystem": false,
            "runAsGroup": 0,
            "runAsNonRoot": false,
            "runAsUser": 0,
        },
    })
}

/// `istio-proxy`: the sidecar, configured through `MAST_*` environment variables.
fn proxy_container(
    s: &PodSettings,
    owner: &Owner,
    containers: &[Value],
    labels: &Map<String, Value>,
    probers: &Map<String, Value>,
) -> Value {
    let mut c = json!({
        "name": PROXY_CONTAINER,
        "image": s.cfg.image,
        "command": [s.cfg.proxy.program()],
        "env": proxy_env(s, owner, containers, labels, probers),
        "ports": [
            { "containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP" },
            { "containerPort": 15021, "name": "health", "protocol": "TCP" },
            { "containerPort": 15020, "name": "metrics", "protocol": "TCP" },
        ],
        "readinessProbe": {
            "failureThreshold": 30,
            "httpGet": { "path": "/healthz/ready", "port": health_port(s.cfg.proxy) },
            "initialDelaySeconds": 1,
            "periodSeconds": 2,
            "timeoutSeconds": 3,
        },
        "resources": s.resources(),
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": { "drop": ["ALL"] },
            "privileged": false,
            "readOnlyRootFilesystem": true,
            "runAsGroup": PROXY_UID,
            "runAsNonRoot": true,
            "runAsUser": PROXY_UID,
        },
        "volumeMounts": [
            { "mountPath": ROOT_CERT_DIR, "name": "istiod-ca-cert" },
            { "mountPath": "/var/lib/istio/data", "name": "istio-data" },
            { "mountPath": "/etc/istio/proxy", "name": "istio-envoy" },
            { "mountPath": TOKEN_DIR, "name": "istio-token" },
            { "mountPath": "/etc/istio/pod", "name": "istio-podinfo" },
        ],
    });
    if s.cfg.native_sidecars
        && let Some(obj) = c.as_object_mut()
    {
        obj.insert("restartPolicy".into(), json!("Always"));
    }
    c
}

fn proxy_env(
    s: &PodSettings,
    owner: &Owner,
    containers: &[Value],
    labels: &Map<String, Value>,
    probers: &Map<String, Value>,
) -> Vec<Value> {
    let cfg = &s.cfg;
    let field = |name: &str, path: &str| json!({ "name": name, "valueFrom": { "fieldRef": { "fieldPath": path } } });
    let value = |name: &str, v: String| json!({ "name": name, "value": v });
    let label_list: Vec<String> = labels
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
        .collect();
    let app_names: Vec<&str> = containers
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let mut env = vec![
        value("MAST_PROXY_TYPE", "sidecar".into()),
        value(
            "MAST_XDS_ADDRESS",
            control_plane_url(&cfg.discovery_address),
        ),
        value("MAST_CA_ADDRESS", control_plane_url(&cfg.discovery_address)),
        value("MAST_CA_TOKEN_FILE", format!("{TOKEN_DIR}/istio-token")),
        value("MAST_XDS_ROOT_CERT", root_cert()),
        value("MAST_CA_ROOT_CERT", root_cert()),
        field("MAST_WORKLOAD", "metadata.name"),
        field("MAST_NAMESPACE", "metadata.namespace"),
        field("MAST_INSTANCE_IP", "status.podIP"),
        field("MAST_SERVICE_ACCOUNT", "spec.serviceAccountName"),
        value("MAST_LABELS", label_list.join(",")),
        value("MAST_CLUSTER_ID", cfg.cluster_id.clone()),
        value("MAST_MESH_ID", cfg.mesh_id.clone()),
        value("MAST_CAPTURE_MODE", "iptables".into()),
        value("MAST_CONCURRENCY", cfg.concurrency.to_string()),
    ];
    env.extend(match cfg.proxy {
        ProxyKind::Mast => [
            value("MAST_PROMETHEUS_PORT", "15090".into()),
            value("MAST_HEALTH_PORT", "15021".into()),
        ],
        ProxyKind::Envoy => [
            value("MAST_METRICS_PORT", "15020".into()),
            value("MAST_ADMIN_PORT", "15000".into()),
        ],
    });
    env.push(value("ISTIO_META_APP_CONTAINERS", app_names.join(",")));
    env.push(value("ISTIO_META_WORKLOAD_NAME", owner.name.clone()));
    env.push(value("TRUST_DOMAIN", cfg.trust_domain.clone()));
    if !probers.is_empty() {
        let json = serde_json::to_string(probers).unwrap_or_default();
        env.push(value("ISTIO_KUBE_APP_PROBERS", json));
    }
    env
}

/// Istio's `discoveryAddress` (`host:port`, TLS as on istiod's 15012) as the `https://` URL
/// Mast's proxies take; an address that already has a scheme is kept.
pub fn control_plane_url(address: &str) -> String {
    if address.contains("://") {
        address.to_owned()
    } else {
        format!("https://{address}")
    }
}

/// The mesh root certificate file in the sidecar (from ConfigMap `istio-ca-root-cert`).
fn root_cert() -> String {
    format!("{ROOT_CERT_DIR}/root-cert.pem")
}

/// Where the sidecar answers `/healthz/ready`: mast-proxy on Istio's 15021; mast-agent serves
/// it on its agent port 15020.
pub fn health_port(kind: ProxyKind) -> u16 {
    match kind {
        ProxyKind::Mast => 15021,
        ProxyKind::Envoy => 15020,
    }
}

fn volumes_json() -> Vec<Value> {
    let resource = |path: &str, res: &str| {
        json!({ "path": path, "resourceFieldRef": {
            "containerName": PROXY_CONTAINER, "divisor": "1m", "resource": res } })
    };
    vec![
        json!({ "emptyDir": { "medium": "Memory" }, "name": "istio-envoy" }),
        json!({ "emptyDir": {}, "name": "istio-data" }),
        json!({ "downwardAPI": { "items": [
            { "fieldRef": { "fieldPath": "metadata.labels" }, "path": "labels" },
            { "fieldRef": { "fieldPath": "metadata.annotations" }, "path": "annotations" },
            resource("cpu-limit", "limits.cpu"),
            resource("cpu-request", "requests.cpu"),
        ] }, "name": "istio-podinfo" }),
        json!({ "name": "istio-token", "projected": { "sources": [ { "serviceAccountToken": {
            "audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token" } } ] } }),
        json!({ "configMap": { "name": "istio-ca-root-cert" }, "name": "istiod-ca-cert" }),
    ]
}

/// `securityContext.fsGroup: 1337` (so the proxy reads the token) unless the pod sets one.
fn set_fs_group(spec: &mut Map<String, Value>) {
    let sc = spec
        .entry("securityContext")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(sc) = sc.as_object_mut() {
        sc.entry("fsGroup").or_insert(json!(PROXY_UID));
    }
}

/// The mapping at `key` in `parent`, created when absent or null.
pub(crate) fn object_at<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
    field: &str,
    owner: &Owner,
) -> Result<&'a mut Map<String, Value>, InjectError> {
    let slot = parent.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(m) => Ok(m),
        other => Err(InjectError::BadField {
            resource: owner.display(),
            field: format!("{}{field}", owner.prefix),
            message: format!("expected a mapping, found {}", type_name(other)),
        }),
    }
}

/// Takes the list at `key` out of `parent` (empty when absent or null).
fn list_at(
    parent: &mut Map<String, Value>,
    key: &str,
    owner: &Owner,
) -> Result<Vec<Value>, InjectError> {
    match parent.remove(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(v)) => Ok(v),
        Some(other) => Err(InjectError::BadField {
            resource: owner.display(),
            field: format!("{}spec.{key}", owner.prefix),
            message: format!("expected a list, found {}", type_name(&other)),
        }),
    }
}
