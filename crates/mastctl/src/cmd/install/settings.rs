//! The typed view of a merged `IstioOperator` tree that rendering reads: which components
//! are on, images, namespace, revision, autoscaling and gateway settings. Bad values are
//! reported with their IstioOperator path.

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Everything rendering needs, read from the merged tree.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The profile's name (`spec.profile`).
    pub profile: String,
    /// Where the control plane runs (`values.global.istioNamespace`).
    pub namespace: String,
    /// `spec.revision`; `None` for the default revision.
    pub revision: Option<String>,
    /// Image of mastd (`<hub>/<values.pilot.image>:<tag>`).
    pub mastd_image: String,
    /// Image of the gateways' proxy (`<hub>/<values.global.proxy.image>:<tag>`).
    pub proxy_image: String,
    /// `components.base.enabled`: CRDs, namespace, validation webhook.
    pub base: bool,
    /// `components.pilot.enabled`: mastd and its webhooks.
    pub pilot: bool,
    /// `components.dashboard.enabled`: the dashboard Service (port 20001).
    pub dashboard: bool,
    /// `values.global.configValidation`.
    pub validation: bool,
    /// `values.global.defaultPodDisruptionBudget.enabled`.
    pub pdb: bool,
    /// `values.pilot.replicaCount`.
    pub replicas: i64,
    /// mastd's autoscaling (`values.pilot.autoscale*`), when enabled.
    pub autoscale: Option<Autoscale>,
    /// `values.pilot.resources`.
    pub mastd_resources: Value,
    /// `meshConfig.trustDomain`.
    pub trust_domain: String,
    /// `meshConfig.defaultConfig.tracing.sampling`, percent.
    pub trace_sampling: f64,
    /// `meshConfig.accessLogFile`.
    pub access_log_file: String,
    /// `meshConfig.accessLogEncoding` (`TEXT` or `JSON`; empty: TEXT).
    pub access_log_encoding: String,
    /// `meshConfig.accessLogFormat` (empty: Istio's default).
    pub access_log_format: String,
    /// Enabled ingress and egress gateways.
    pub gateways: Vec<Gateway>,
    /// Inject native sidecars (`values.pilot.env.ENABLE_NATIVE_SIDECARS`; `install` turns it on
    /// when the cluster is Kubernetes 1.29 or later).
    pub native_sidecars: bool,
}

/// A HorizontalPodAutoscaler's bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Autoscale {
    /// Fewest replicas.
    pub min: i64,
    /// Most replicas.
    pub max: i64,
    /// CPU utilisation target, percent.
    pub cpu: i64,
}

/// One enabled gateway.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// Deployment and Service name (`mast-ingressgateway`).
    pub name: String,
    /// Ingress (true) or egress.
    pub ingress: bool,
    /// Pod labels: Istio's `app: istio-ingressgateway`, `istio: ingressgateway` (egress
    /// alike) with the component's `label` merged over them, so existing Istio Gateways
    /// select Mast's gateways.
    pub labels: serde_json::Map<String, Value>,
    /// Service type (`LoadBalancer`, `ClusterIP`, `NodePort`).
    pub service_type: String,
    /// Service ports, as Kubernetes ServicePorts.
    pub ports: Vec<Value>,
    /// Replicas when not autoscaled.
    pub replicas: i64,
    /// Autoscaling, when enabled.
    pub autoscale: Option<Autoscale>,
    /// Container resources.
    pub resources: Value,
}

impl Settings {
    /// Reads the settings from a merged IstioOperator tree.
    pub fn from_tree(tree: &Value) -> Result<Self> {
        let spec = tree.get("spec").context("IstioOperator has no spec")?;
        let s = |p: &str| str_at(spec, p);
        let hub = s("/hub").unwrap_or_default();
        let tag = match s("/tag") {
            Some(t) if !t.is_empty() => t,
            _ => mast_core::VERSION.to_string(),
        };
        let revision = s("/revision").filter(|r| !r.is_empty() && r != "default");
        if let Some(r) = &revision {
            check_dns_label("revision", r)?;
        }
        let namespace = s("/values/global/istioNamespace").unwrap_or("mast-system".into());
        check_dns_label("values.global.istioNamespace", &namespace)?;
        let gateways = gateways(spec)?;
        let access_log_encoding = s("/meshConfig/accessLogEncoding").unwrap_or_default();
        if !["", "TEXT", "JSON"].contains(&access_log_encoding.as_str()) {
            bail!("meshConfig.accessLogEncoding: {access_log_encoding:?} is not one of TEXT, JSON");
        }
        Ok(Settings {
            profile: s("/profile").unwrap_or("default".into()),
            namespace,
            revision,
            mastd_image: image(
                &hub,
                &s("/values/pilot/image").unwrap_or("mastd".into()),
                &tag,
            ),
            proxy_image: image(
                &hub,
                &s("/values/global/proxy/image").unwrap_or("mast-proxy".into()),
                &tag,
            ),
            base: enabled(spec, "/components/base"),
            pilot: enabled(spec, "/components/pilot"),
            dashboard: enabled(spec, "/components/dashboard"),
            validation: bool_at(spec, "/values/global/configValidation", true)?,
            pdb: bool_at(
                spec,
                "/values/global/defaultPodDisruptionBudget/enabled",
                true,
            )?,
            replicas: int_at(spec, "/values/pilot/replicaCount", 1)?,
            autoscale: autoscale(spec, "/values/pilot")?,
            mastd_resources: obj_at(spec, "/values/pilot/resources"),
            trust_domain: s("/meshConfig/trustDomain").unwrap_or("cluster.local".into()),
            trace_sampling: num_at(spec, "/meshConfig/defaultConfig/tracing/sampling", 1.0)?,
            access_log_file: s("/meshConfig/accessLogFile").unwrap_or_default(),
            access_log_encoding,
            access_log_format: s("/meshConfig/accessLogFormat").unwrap_or_default(),
            native_sidecars: match spec.pointer("/values/pilot/env/ENABLE_NATIVE_SIDECARS") {
                Some(Value::Bool(b)) => *b,
                Some(Value::String(v)) => v.eq_ignore_ascii_case("true"),
                _ => false,
            },
            gateways,
        })
    }

    /// `-<revision>` or empty: the suffix of revisioned object names.
    pub fn suffix(&self) -> String {
        self.revision
            .as_deref()
            .map(|r| format!("-{r}"))
            .unwrap_or_default()
    }

    /// The `istio.io/rev` label value (`default` for the default revision).
    pub fn rev_label(&self) -> &str {
        self.revision.as_deref().unwrap_or("default")
    }

    /// mastd's Service name for this revision (`mastd`, `mastd-canary`).
    pub fn mastd_name(&self) -> String {
        format!("mastd{}", self.suffix())
    }
}

fn image(hub: &str, name: &str, tag: &str) -> String {
    if name.contains('/') || hub.is_empty() {
        return if name.contains(':') {
            name.to_string()
        } else {
            format!("{name}:{tag}")
        };
    }
    format!("{hub}/{name}:{tag}")
}

fn check_dns_label(field: &str, v: &str) -> Result<()> {
    let ok = !v.is_empty()
        && v.len() <= 63
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !v.starts_with('-')
        && !v.ends_with('-');
    if !ok {
        bail!(
            "{field} {v:?} is not a valid DNS label (lowercase letters, digits, '-', at most 63)"
        );
    }
    Ok(())
}

/// Text at `p`; numbers (a `--set tag=1.5`) count as text too.
fn str_at(v: &Value, p: &str) -> Option<String> {
    match v.pointer(p)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn obj_at(v: &Value, p: &str) -> Value {
    v.pointer(p)
        .filter(|x| x.is_object())
        .cloned()
        .unwrap_or(Value::Null)
}

fn path_name(p: &str) -> String {
    p.trim_start_matches('/').replace('/', ".")
}

fn bool_at(v: &Value, p: &str, default: bool) -> Result<bool> {
    match v.pointer(p) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => bail!(
            "IstioOperator field {}: expected true or false, got {other}",
            path_name(p)
        ),
    }
}

fn int_at(v: &Value, p: &str, default: i64) -> Result<i64> {
    match v.pointer(p) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => x.as_i64().filter(|n| *n >= 0).with_context(|| {
            format!(
                "IstioOperator field {}: expected a whole number ≥ 0, got {x}",
                path_name(p)
            )
        }),
    }
}

fn num_at(v: &Value, p: &str, default: f64) -> Result<f64> {
    match v.pointer(p) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => x
            .as_f64()
            .filter(|n| (0.0..=100.0).contains(n))
            .with_context(|| {
                format!(
                    "IstioOperator field {}: expected a number from 0 to 100, got {x}",
                    path_name(p)
                )
            }),
    }
}

fn enabled(spec: &Value, p: &str) -> bool {
    spec.pointer(&format!("{p}/enabled"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn autoscale(spec: &Value, p: &str) -> Result<Option<Autoscale>> {
    if !bool_at(spec, &format!("{p}/autoscaleEnabled"), false)? {
        return Ok(None);
    }
    let a = Autoscale {
        min: int_at(spec, &format!("{p}/autoscaleMin"), 1)?,
        max: int_at(spec, &format!("{p}/autoscaleMax"), 5)?,
        cpu: int_at(spec, &format!("{p}/cpu/targetAverageUtilization"), 80)?,
    };
    if a.min < 1 || a.max < a.min {
        bail!(
            "IstioOperator field {}: autoscaleMin {} and autoscaleMax {} must satisfy 1 ≤ min ≤ max",
            path_name(p),
            a.min,
            a.max
        );
    }
    Ok(Some(a))
}

fn gateways(spec: &Value) -> Result<Vec<Gateway>> {
    let mut out = Vec::new();
    for (key, ingress) in [("ingressGateways", true), ("egressGateways", false)] {
        let Some(list) = spec.pointer(&format!("/components/{key}")) else {
            continue;
        };
        let list = list
            .as_array()
            .with_context(|| format!("IstioOperator field components.{key}: expected a list"))?;
        for (i, g) in list.iter().enumerate() {
            if !g.get("enabled").and_then(Value::as_bool).unwrap_or(false) {
                continue;
            }
            out.push(gateway(spec, key, i, g, ingress)?);
        }
    }
    Ok(out)
}

fn gateway(spec: &Value, key: &str, i: usize, g: &Value, ingress: bool) -> Result<Gateway> {
    let field = format!("components.{key}[{i}]");
    let name = g
        .get("name")
        .and_then(Value::as_str)
        .with_context(|| format!("IstioOperator field {field}.name is required"))?;
    check_dns_label(&format!("{field}.name"), name)?;
    let vals = gateway_values(spec, name, ingress);
    let vals_path = format!("/values/gateways/{name}");
    // Istio's gateway chart labels every ingress (egress) gateway alike unless the
    // component's `label` says otherwise; `label` is merged over them.
    let kind = if ingress {
        "ingressgateway"
    } else {
        "egressgateway"
    };
    let mut labels = serde_json::Map::new();
    labels.insert("app".into(), Value::from(format!("istio-{kind}")));
    labels.insert("istio".into(), Value::from(kind));
    if let Some(l) = g.get("label").and_then(Value::as_object) {
        labels.extend(l.clone());
    }
    let service_type = g
        .pointer("/k8s/service/type")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| str_at(&vals, &format!("{vals_path}/type")))
        .unwrap_or_else(|| if ingress { "LoadBalancer" } else { "ClusterIP" }.into());
    let ports = match g.pointer("/k8s/service/ports").and_then(Value::as_array) {
        Some(p) => p.clone(),
        None => default_ports(ingress),
    };
    let resources = match g.pointer("/k8s/resources") {
        Some(r) if r.is_object() => r.clone(),
        _ => obj_at(spec, "/values/global/proxy/resources"),
    };
    let replicas = match g.pointer("/k8s/replicaCount") {
        Some(v) => v.as_i64().with_context(|| {
            format!("IstioOperator field {field}.k8s.replicaCount: expected a whole number")
        })?,
        None => 1,
    };
    Ok(Gateway {
        name: name.to_string(),
        ingress,
        labels,
        service_type,
        ports,
        replicas,
        autoscale: autoscale(&vals, &vals_path)?,
        resources,
    })
}

/// The gateway's values: Istio's chart key (`values.gateways.istio-ingressgateway` /
/// `istio-egressgateway`), which applies to every ingress (egress) gateway as in Istio,
/// with `values.gateways.<name>` merged over it; returned as a tree holding only
/// `values.gateways.<name>` (so messages name that path).
fn gateway_values(spec: &Value, name: &str, ingress: bool) -> Value {
    let istio = if ingress {
        "istio-ingressgateway"
    } else {
        "istio-egressgateway"
    };
    let mut merged = serde_json::Map::new();
    for key in [istio, name] {
        if let Some(Value::Object(m)) = spec.pointer(&format!("/values/gateways/{key}")) {
            merged.extend(m.clone());
        }
    }
    serde_json::json!({ "values": { "gateways": { name: merged } } })
}

/// Istio's gateway Service ports: the status port (ingress only) and HTTP/HTTPS on 80/443
/// to the unprivileged 8080/8443 the proxy listens on (Gateways bind the targetPort).
fn default_ports(ingress: bool) -> Vec<Value> {
    let status = ("status-port", 15021, 15021);
    let rest = [("http2", 80, 8080), ("https", 443, 8443)];
    ingress
        .then_some(status)
        .into_iter()
        .chain(rest)
        .map(|(n, p, t)| serde_json::json!({"name": n, "port": p, "targetPort": t, "protocol": "TCP"}))
        .collect()
}
