//! Gateways as `mastctl up` runs them: each `LocalGateway` (its labels, service account,
//! `mast.dev/proxy` annotation and proxy environment), and one gateway per Gateway API
//! `Gateway` of class `istio` or `mast` (workload `<name>-<class>`, labelled
//! `gateway.networking.k8s.io/gateway-name: <name>`, plus the Service `<name>-<class>` that
//! Istio's gateway controller would create, written to the generated folder). Also the
//! ports the Services selecting a gateway map it to (its WorkloadEntry's `ports:` and the
//! URLs the table prints).

use std::collections::BTreeMap;

use mast_config::{Body, Resource};
use serde::Deserialize;
use serde_json::{Value, json};

use super::entry::selects;
use super::spec::{Key, LocalSpec, ProxyKind, key_of, proxy_of};

/// The label a Gateway API `Gateway`'s gateway proxy carries (what its converted Istio
/// Gateway selects).
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// The Gateway API group.
const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";

/// The GatewayClass names whose Gateways `mastctl up` runs a gateway for.
pub const CLASSES: &[&str] = &["istio", "mast"];

/// The spec fields of a `LocalGateway`, as written.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawSpec {
    service_account: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

/// The gateway `r` defines when it is a `LocalGateway`: `None` for other kinds, `Err` with
/// the reason when it cannot run.
pub fn from_resource(r: &Resource) -> Option<Result<LocalSpec, String>> {
    if r.kind != "LocalGateway" {
        return None;
    }
    let value = match &r.body {
        Body::LocalGateway(spec) => serde_json::to_value(spec.as_ref()),
        Body::Unknown(doc) => Ok(doc.get("spec").cloned().unwrap_or_default()),
        _ => return None,
    };
    let raw = value
        .map(|v| if v.is_null() { json!({}) } else { v })
        .and_then(serde_json::from_value::<RawSpec>)
        .map_err(|e| format!("spec: {e}"));
    Some(raw.and_then(|raw| {
        Ok(gateway_spec(
            key_of(r),
            r.labels().clone(),
            proxy_of(r)?,
            raw,
            r,
        ))
    }))
}

fn gateway_spec(
    key: Key,
    labels: BTreeMap<String, String>,
    proxy: Option<ProxyKind>,
    raw: RawSpec,
    r: &Resource,
) -> LocalSpec {
    LocalSpec {
        key,
        labels,
        proxy,
        command: Vec::new(),
        port: None,
        service_account: raw
            .service_account
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into()),
        env: raw.env,
        job: false,
        gateway: true,
        file: r.origin.file.clone(),
        readiness: None,
    }
}

/// A gateway run for a Gateway API `Gateway`, with its generated Service.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoGateway {
    /// The gateway to run.
    pub spec: LocalSpec,
    /// The generated Service, as YAML.
    pub service: String,
    /// The generated Service's file name in the generated folder.
    pub service_file: String,
}

/// A Gateway API Gateway: only what `mastctl up` needs (gw-api owns the full types).
#[derive(Deserialize)]
struct KubeGateway {
    #[serde(default)]
    spec: KubeGatewaySpec,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct KubeGatewaySpec {
    #[serde(default)]
    gateway_class_name: String,
    #[serde(default)]
    listeners: Vec<Listener>,
}

#[derive(Deserialize)]
struct Listener {
    name: Option<String>,
    port: Option<i64>,
    protocol: Option<String>,
}

/// Whether `r` is a Gateway API `Gateway`.
pub fn is_gateway_api_gateway(r: &Resource) -> bool {
    r.kind == "Gateway"
        && r.api_version
            .split_once('/')
            .is_some_and(|(g, _)| g == GATEWAY_API_GROUP)
}

/// The gateways to run for the Gateway API `Gateway`s among `resources` whose class is
/// `istio` or `mast`; `Err` entries name a Gateway that cannot run and why.
pub fn auto_gateways(resources: &[Resource]) -> Vec<Result<AutoGateway, String>> {
    resources
        .iter()
        .filter(|r| is_gateway_api_gateway(r))
        .filter_map(|r| {
            let doc = document_of(r)?;
            let gw: KubeGateway = match serde_json::from_value(doc) {
                Ok(g) => g,
                Err(e) => return Some(Err(format!("Gateway {}: {e}", key_of(r)))),
            };
            let class = gw.spec.gateway_class_name.as_str();
            if !CLASSES.contains(&class) {
                return None;
            }
            Some(proxy_of(r).map(|proxy| auto_gateway(r, class, &gw.spec.listeners, proxy)))
        })
        .collect()
}

fn auto_gateway(
    r: &Resource,
    class: &str,
    listeners: &[Listener],
    proxy: Option<ProxyKind>,
) -> AutoGateway {
    let gw = key_of(r);
    let name = format!("{}-{class}", gw.name);
    let labels = BTreeMap::from([(GATEWAY_NAME_LABEL.to_owned(), gw.name.clone())]);
    let key = Key {
        namespace: gw.namespace.clone(),
        name: name.clone(),
    };
    let spec = gateway_spec(key, labels.clone(), proxy, RawSpec::default(), r);
    let mut ports = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, l) in listeners.iter().enumerate() {
        let Some(port) = l
            .port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
        else {
            continue;
        };
        if !seen.insert(port) {
            continue;
        }
        let protocol = l.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
        let port_name = l
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("{protocol}-{i}"));
        ports.push(json!({"name": port_name, "port": port, "targetPort": port, "appProtocol": protocol, "protocol": "TCP"}));
    }
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": gw.namespace,
            "labels": labels,
            "annotations": {"mast.dev/generated-by": "mastctl up"},
        },
        "spec": {"selector": labels, "ports": ports},
    });
    let service = format!(
        "# Generated by mastctl up for Gateway {}: the gateway's ports on this machine.\n{}\n",
        gw,
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    );
    AutoGateway {
        spec,
        service,
        service_file: format!("svc_{}.{name}.yaml", gw.namespace),
    }
}

/// The document `r` was loaded from: its own body when Mast kept it as written, else read
/// again from its file (the typed Gateway API body belongs to mast-config).
fn document_of(r: &Resource) -> Option<Value> {
    if let Body::Unknown(v) = &r.body {
        return Some((**v).clone());
    }
    let text = std::fs::read_to_string(r.origin.file.as_ref()).ok()?;
    mast_config::yaml::parse_documents(&text)
        .into_iter()
        .flatten()
        .map(|d| d.value)
        .find(|v| {
            v["kind"] == "Gateway"
                && v["apiVersion"]
                    .as_str()
                    .is_some_and(|a| a.starts_with(GATEWAY_API_GROUP))
                && v["metadata"]["name"].as_str() == Some(r.name())
                && v["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default")
                    .eq(key_of(r).namespace.as_str())
        })
}

/// One port of a Service that selects a gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayPort {
    /// The Service's port name.
    pub name: String,
    /// The Service port (a Gateway server's port number).
    pub port: u16,
    /// Where the gateway listens on this machine (`targetPort`, else `port`).
    pub target: u16,
    /// The port's `appProtocol`, if any.
    pub app_protocol: Option<String>,
}

/// The ports of the Services in the gateway's namespace that select it (numeric or absent
/// `targetPort`s; UDP ports left out), in Service then port order.
pub fn gateway_ports(spec: &LocalSpec, resources: &[Resource]) -> Vec<GatewayPort> {
    let mut out = Vec::new();
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
        for p in svc["spec"]["ports"].as_array().into_iter().flatten() {
            let Some(port) = p["port"].as_u64().and_then(|n| u16::try_from(n).ok()) else {
                continue;
            };
            let target = match &p["targetPort"] {
                Value::Null => Some(port),
                Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                _ => None,
            };
            let Some(target) = target.filter(|t| *t != 0) else {
                continue;
            };
            if p["protocol"].as_str() == Some("UDP") {
                continue;
            }
            out.push(GatewayPort {
                name: p["name"].as_str().unwrap_or("").to_owned(),
                port,
                target,
                app_protocol: p["appProtocol"].as_str().map(str::to_owned),
            });
        }
    }
    out
}

/// The gateway's WorkloadEntry `ports:`: each Service port name to where it listens.
pub fn entry_ports(spec: &LocalSpec, resources: &[Resource]) -> BTreeMap<String, u16> {
    gateway_ports(spec, resources)
        .into_iter()
        .map(|p| (p.name, p.target))
        .collect()
}

/// The URLs users reach the gateway at on `host`: `http://` for HTTP ports (by name or
/// `appProtocol` prefix, as Istio infers protocols, or port 80), `https://` for HTTPS
/// ones (or 443), `host:port` for the rest; one per distinct host port.
pub fn urls(spec: &LocalSpec, resources: &[Resource], host: &str) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    gateway_ports(spec, resources)
        .into_iter()
        .filter(|p| seen.insert(p.target))
        .map(|p| {
            let proto = p
                .app_protocol
                .clone()
                .unwrap_or_else(|| p.name.clone())
                .to_ascii_lowercase();
            let scheme = if proto.starts_with("https") || p.port == 443 {
                "https://"
            } else if ["http", "grpc"].iter().any(|s| proto.starts_with(s)) || p.port == 80 {
                "http://"
            } else {
                ""
            };
            format!("{scheme}{host}:{}", p.target)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mast_config::{LoadOptions, load_str};

    const YAML: &str = "apiVersion: mast.dev/v1alpha1\nkind: LocalGateway\nmetadata: {name: ingress, namespace: istio-system, labels: {istio: ingressgateway}, annotations: {mast.dev/proxy: envoy}}\nspec: {serviceAccount: gw, env: {A: b}}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: istio-ingressgateway, namespace: istio-system}\nspec:\n  selector: {istio: ingressgateway}\n  ports:\n  - {name: http2, port: 80, targetPort: 18080}\n  - {name: https, port: 443, targetPort: 18443}\n  - {name: tcp, port: 31400}\n  - {name: named, port: 15021, targetPort: status}\n";

    #[test]
    fn local_gateways_and_their_ports() {
        let loaded = load_str(YAML, "g.yaml", &LoadOptions::default());
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let spec = loaded
            .resources
            .iter()
            .find_map(from_resource)
            .unwrap()
            .unwrap();
        assert!(spec.gateway && spec.command.is_empty());
        assert_eq!(spec.key.to_string(), "ingress.istio-system");
        assert_eq!(spec.service_account, "gw");
        assert_eq!(spec.proxy, Some(ProxyKind::Envoy));
        assert_eq!(spec.env["A"], "b");
        assert_eq!(
            entry_ports(&spec, &loaded.resources),
            BTreeMap::from([
                ("http2".to_owned(), 18080),
                ("https".to_owned(), 18443),
                ("tcp".to_owned(), 31400)
            ])
        );
        assert_eq!(
            urls(&spec, &loaded.resources, "127.0.0.1"),
            [
                "http://127.0.0.1:18080",
                "https://127.0.0.1:18443",
                "127.0.0.1:31400"
            ]
        );
    }

    #[test]
    fn gateway_api_gateways_get_a_gateway_and_a_service() {
        let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: web, namespace: shop}\nspec:\n  gatewayClassName: istio\n  listeners:\n  - {name: http, port: 18081, protocol: HTTP}\n  - {name: again, port: 18081, protocol: HTTP}\n  - {port: 18444, protocol: HTTPS}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: other, namespace: shop}\nspec: {gatewayClassName: cilium, listeners: [{name: http, port: 80, protocol: HTTP}]}\n";
        let dir = std::env::temp_dir().join(format!("mast-gw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("gw.yaml");
        std::fs::write(&file, text).unwrap();
        let loaded = mast_config::load_paths(std::slice::from_ref(&dir), &LoadOptions::default());
        let autos: Vec<AutoGateway> = auto_gateways(&loaded.resources)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(autos.len(), 1, "only class istio/mast");
        let a = &autos[0];
        assert_eq!(a.spec.key.to_string(), "web-istio.shop");
        assert_eq!(a.spec.labels[GATEWAY_NAME_LABEL], "web");
        assert_eq!(a.service_file, "svc_shop.web-istio.yaml");
        let svc = load_str(&a.service, "s.yaml", &LoadOptions::default());
        assert!(svc.diagnostics.is_empty(), "{:?}", svc.diagnostics);
        assert_eq!(svc.resources[0].name(), "web-istio");
        assert_eq!(
            urls(&a.spec, &svc.resources, "127.0.0.1"),
            ["http://127.0.0.1:18081", "https://127.0.0.1:18444"]
        );
        assert_eq!(
            entry_ports(&a.spec, &svc.resources),
            BTreeMap::from([("http".to_owned(), 18081), ("https-2".to_owned(), 18444)])
        );
    }
}
