//! Application probes rewritten through the sidecar's agent port, as Istio does: with mTLS
//! STRICT the kubelet cannot reach the application directly, so each HTTP, TCP or gRPC
//! readiness, liveness and startup probe becomes an HTTP GET of
//! `/app-health/<container>/readyz|livez|startupz` on port 15020, and the original probe
//! (named ports resolved to numbers) goes into the sidecar's `ISTIO_KUBE_APP_PROBERS` JSON.
//! `exec` probes are left alone.

use serde_json::{Map, Value, json};

use super::PROXY_CONTAINER;

/// The agent's port, where rewritten probes point.
pub const STATUS_PORT: u16 = 15020;

/// The probes rewritten, with the path suffix Istio uses for each.
const PROBES: [(&str, &str); 3] = [
    ("readinessProbe", "readyz"),
    ("livenessProbe", "livez"),
    ("startupProbe", "startupz"),
];

/// Rewrites the probes of every application container in `containers` (the sidecar is
/// skipped) and returns the prober table: path → original probe, keys sorted.
pub fn rewrite(containers: &mut [Value]) -> Map<String, Value> {
    let mut probers = Map::new();
    for c in containers.iter_mut() {
        let Some(c) = c.as_object_mut() else { continue };
        let name = c
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if name == PROXY_CONTAINER || name.is_empty() {
            continue;
        }
        let ports = c.get("ports").cloned().unwrap_or(Value::Null);
        for (field, suffix) in PROBES {
            let Some(probe) = c.get_mut(field).and_then(Value::as_object_mut) else {
                continue;
            };
            let Some(original) = prober(probe, &ports) else {
                continue;
            };
            let path = format!("/app-health/{name}/{suffix}");
            for k in ["httpGet", "tcpSocket", "grpc"] {
                probe.remove(k);
            }
            probe.insert(
                "httpGet".into(),
                json!({ "path": path, "port": STATUS_PORT }),
            );
            probers.insert(path, original);
        }
    }
    probers
}

/// The prober entry for one probe: its httpGet, tcpSocket or grpc action with the port as
/// a number, plus `timeoutSeconds` when set. `None` for exec probes and probes without an
/// action.
fn prober(probe: &Map<String, Value>, ports: &Value) -> Option<Value> {
    let (key, action) = ["httpGet", "tcpSocket", "grpc"]
        .into_iter()
        .find_map(|k| probe.get(k).and_then(Value::as_object).map(|a| (k, a)))?;
    let mut action = action.clone();
    let resolved = match action.get("port") {
        Some(Value::String(port_name)) => named_port(ports, port_name),
        _ => None,
    };
    if let Some(number) = resolved {
        action.insert("port".into(), json!(number));
    }
    let mut out = Map::new();
    out.insert(key.into(), Value::Object(action));
    if let Some(t) = probe.get("timeoutSeconds") {
        out.insert("timeoutSeconds".into(), t.clone());
    }
    Some(Value::Object(out))
}

/// The `containerPort` of the port named `name` (or `name` itself when it is a number).
fn named_port(ports: &Value, name: &str) -> Option<u64> {
    if let Ok(n) = name.parse::<u64>() {
        return Some(n);
    }
    ports.as_array()?.iter().find_map(|p| {
        (p.get("name").and_then(Value::as_str) == Some(name))
            .then(|| p.get("containerPort").and_then(Value::as_u64))
            .flatten()
    })
}
