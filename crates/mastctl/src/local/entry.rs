//! What `mastctl up` derives from a running workload: the `WorkloadEntry` mastd reads from
//! the generated folder (so Services that select the workload send its traffic to its
//! sidecar's inbound listener), and the program's environment (its sidecar as HTTP proxy).

use std::collections::BTreeMap;

use mast_config::Resource;
use mast_config::networking::HEALTH_CHECKS_ANNOTATION;
use serde_json::{Value, json};

use super::spec::LocalSpec;

/// The `ports:` of the workload's entry: every port name of a Service in its namespace
/// that selects its labels and targets its one `port` (a numeric `targetPort` equal to it, or
/// no `targetPort`: two versions behind one Service listen on different ports on this
/// machine), mapped to `inbound` (the sidecar's listener; mastd maps it back to the
/// workload's own port).
pub fn entry_ports(
    spec: &LocalSpec,
    resources: &[Resource],
    inbound: u16,
) -> BTreeMap<String, u16> {
    if spec.gateway {
        return super::gateway::entry_ports(spec, resources);
    }
    let mut out = BTreeMap::new();
    let Some(app_port) = spec.port else {
        return out;
    };
    for r in resources {
        let Some(service) = r.as_service() else {
            continue;
        };
        if r.namespace() != spec.key.namespace {
            continue;
        }
        let Ok(svc) = serde_json::to_value(service) else {
            continue;
        };
        if !selects(&svc["spec"]["selector"], &spec.labels) {
            continue;
        }
        for port in svc["spec"]["ports"].as_array().into_iter().flatten() {
            // A numeric targetPort must be the workload's port; without one the Service
            // port is taken to mean the workload's one port (the versions behind a Service
            // listen on different ports on one machine).
            let targets = match &port["targetPort"] {
                Value::Number(n) => n.as_u64() == Some(u64::from(app_port)),
                Value::Null => true,
                _ => false,
            };
            if !targets || port["protocol"].as_str() == Some("UDP") {
                continue;
            }
            let name = port["name"].as_str().unwrap_or("").to_owned();
            out.insert(name, inbound);
        }
    }
    out
}

/// Whether a Service `selector` (non-empty) selects `labels`.
pub(crate) fn selects(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector.as_object().filter(|s| !s.is_empty()) else {
        return false;
    };
    selector.iter().all(|(k, v)| {
        v.as_str()
            .is_some_and(|v| labels.get(k).is_some_and(|l| l == v))
    })
}

/// The label that tells clients an endpoint's sidecar speaks Istio mutual TLS (auto-mTLS).
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";

/// The generated WorkloadEntry for a running workload at `address` (127.0.0.1 in ports
/// mode; its network namespace's with `--capture namespaces`, where `ports` are the
/// program's own), as YAML. Its labels are the
/// workload's plus `security.istio.io/tlsMode: istio` (the sidecar has the workload's
/// certificate, so clients may use mutual TLS), and its service account is the workload's.
pub fn workload_entry_at(
    spec: &LocalSpec,
    ports: &BTreeMap<String, u16>,
    address: &str,
    healthy: bool,
) -> String {
    let mut labels = spec.labels.clone();
    // A gateway proxy is no sidecar: its listeners are its Gateways' servers, so clients
    // send it what those servers expect (Istio's gateway pods carry no tlsMode label; with
    // a service account and no label Istio would assume `istio`).
    let tls_mode = if spec.gateway { "disabled" } else { "istio" };
    labels.insert(TLS_MODE_LABEL.to_owned(), tls_mode.to_owned());
    let doc = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "WorkloadEntry",
        "metadata": {
            // The workload's own name: mastd then knows the endpoint is this sidecar's own
            // workload and maps the listener port back to the application's port
            // (MAST_INBOUND_PORTS APP=LISTEN).
            "name": spec.key.name,
            "namespace": spec.key.namespace,
            "labels": spec.labels,
            // Istio's WorkloadEntry health checks: the entry gets traffic only while its
            // status says Healthy (mastctl up sets it once the program listens).
            "annotations": {
                "mast.dev/generated-by": "mastctl up",
                "mast.dev/workload": spec.key.name,
                HEALTH_CHECKS_ANNOTATION: "true",
            },
        },
        "spec": {
            "address": address,
            "labels": labels,
            "serviceAccount": spec.service_account,
            "ports": ports,
        },
        "status": {"conditions": [{
            "type": "Healthy",
            "status": if healthy { "True" } else { "False" },
        }]},
    });
    // JSON is YAML; the folder loader reads both.
    format!(
        "# Generated by mastctl up for {} {}: {}.\n{}\n",
        if spec.gateway {
            "gateway"
        } else {
            "LocalWorkload"
        },
        spec.key,
        if spec.gateway {
            "Services selecting it reach its listeners"
        } else {
            "traffic to it enters through its sidecar"
        },
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    )
}

/// The program's environment in a pod (`--capture namespaces`): `PORT`, the workload's
/// identity, then `spec.env`; no proxy settings (its traffic is captured).
pub fn captured_env(spec: &LocalSpec) -> BTreeMap<String, String> {
    let mut env = program_env(spec, 0);
    for k in ["HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"] {
        if !spec.env.contains_key(k) {
            env.remove(k);
        }
    }
    env
}

/// The program's environment: `PORT`, the sidecar's outbound listener as `HTTP_PROXY` /
/// `http_proxy` (loopback bypasses it), the workload's identity, then `spec.env`.
pub fn program_env(spec: &LocalSpec, outbound: u16) -> BTreeMap<String, String> {
    let proxy = format!("http://127.0.0.1:{outbound}");
    let no_proxy = "127.0.0.1,localhost,::1".to_owned();
    let mut env = BTreeMap::from([
        ("HTTP_PROXY".to_owned(), proxy.clone()),
        ("http_proxy".to_owned(), proxy),
        ("NO_PROXY".to_owned(), no_proxy.clone()),
        ("no_proxy".to_owned(), no_proxy),
        ("MAST_WORKLOAD".to_owned(), spec.key.name.clone()),
        ("MAST_NAMESPACE".to_owned(), spec.key.namespace.clone()),
        (
            "MAST_SERVICE_ACCOUNT".to_owned(),
            spec.service_account.clone(),
        ),
    ]);
    if let Some(port) = spec.port {
        env.insert("PORT".into(), port.to_string());
    }
    env.extend(spec.env.clone());
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::spec::from_resource;
    use mast_config::{LoadOptions, load_str};

    const YAML: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  selector: {app: a}\n  ports:\n  - {name: http, port: 80, targetPort: 8080}\n  - {name: other, port: 81, targetPort: 9090}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: t}\nspec:\n  selector: {app: a}\n  ports: [{name: web, port: 8080}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: u}\nspec:\n  selector: {app: b}\n  ports: [{name: x, port: 8080}]\n---\napiVersion: mast.dev/v1alpha1\nkind: LocalWorkload\nmetadata: {name: a1, labels: {app: a, version: v1}}\nspec: {command: [x], port: 8080, env: {PORT: '1'}}\n";

    #[test]
    fn maps_selecting_service_port_names_to_the_inbound_listener() {
        let loaded = load_str(YAML, "f.yaml", &LoadOptions::default());
        let spec = loaded
            .resources
            .iter()
            .find_map(from_resource)
            .unwrap()
            .unwrap();
        let ports = entry_ports(&spec, &loaded.resources, 20103);
        assert_eq!(
            ports,
            BTreeMap::from([("http".to_owned(), 20103), ("web".to_owned(), 20103)])
        );
        let yaml = workload_entry_at(&spec, &ports, "127.0.0.1", false);
        let back = load_str(&yaml, "g.yaml", &LoadOptions::default());
        assert!(back.diagnostics.is_empty(), "{:?}", back.diagnostics);
        let we = back.resources[0].as_workload_entry().unwrap();
        assert_eq!(we.address(), "127.0.0.1");
        assert!(!we.healthy, "a starting workload gets no traffic");
        let healthy = workload_entry_at(&spec, &ports, "127.0.0.1", true);
        let back_healthy = load_str(&healthy, "g.yaml", &LoadOptions::default());
        assert!(
            back_healthy.resources[0]
                .as_workload_entry()
                .unwrap()
                .healthy
        );
        let doc: serde_json::Value =
            serde_json::from_str(yaml.split_once('\n').unwrap().1).unwrap();
        assert_eq!(doc["spec"]["labels"][TLS_MODE_LABEL], "istio");
        assert_eq!(doc["spec"]["labels"]["app"], "a");
        assert_eq!(doc["spec"]["serviceAccount"], "default");
        assert!(doc["metadata"]["labels"].get(TLS_MODE_LABEL).is_none());
        assert_eq!(back.resources[0].name(), "a1");
        let env = program_env(&spec, 20100);
        assert_eq!(env["HTTP_PROXY"], "http://127.0.0.1:20100");
        assert_eq!(env["PORT"], "1", "spec.env wins");
    }
}
