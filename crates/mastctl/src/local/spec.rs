//! `LocalWorkload` resources as `mastctl up` runs them: name, namespace, labels, the sidecar
//! kind (`mast.dev/proxy` annotation or `--proxy`), command, port, service account,
//! environment and restart policy, plus the file that defined it (so a workload from a file
//! that no longer parses keeps running).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mast_config::Resource;
use serde::Deserialize;

/// The annotation that picks a workload's sidecar: `mast` or `envoy`.
pub const PROXY_ANNOTATION: &str = "mast.dev/proxy";

/// A workload's identity: namespace and name (`name.namespace` when printed).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.name, self.namespace)
    }
}

/// Which sidecar a workload runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum ProxyKind {
    /// `mast-proxy`, Mast's own sidecar.
    Mast,
    /// Envoy, run by `mast-agent`.
    Envoy,
}

impl ProxyKind {
    /// `mast` or `envoy`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyKind::Mast => "mast",
            ProxyKind::Envoy => "envoy",
        }
    }
}

/// One `LocalWorkload`, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSpec {
    /// Namespace and name.
    pub key: Key,
    /// The labels Services select it by.
    pub labels: BTreeMap<String, String>,
    /// The sidecar named by the annotation (`None`: the `--proxy` default).
    pub proxy: Option<ProxyKind>,
    /// The program and its arguments.
    pub command: Vec<String>,
    /// The port the program listens on (`$PORT`), which Services target.
    pub port: Option<u16>,
    /// The service account.
    pub service_account: String,
    /// Extra environment for the program.
    pub env: BTreeMap<String, String>,
    /// `restartPolicy: Never`: a job, run once.
    pub job: bool,
    /// A gateway (a `LocalGateway`, or one run for a Gateway API `Gateway`): a `router`
    /// proxy on the host and no program ([`crate::local::gateway`]).
    pub gateway: bool,
    /// The file that defines it.
    pub file: Arc<str>,
    /// `readinessProbe` (`None`: ready while `port` accepts connections,
    /// [`Readiness::listening`]).
    pub readiness: Option<Readiness>,
}

/// A `readinessProbe`, run against the program while it runs: it gets traffic only while
/// the probe passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// What is checked (`httpGet`, `tcpSocket`, `grpc`; a missing port is `$PORT`) and its
    /// `timeoutSeconds` (1 s by default).
    pub prober: mast_probe::Prober,
    /// `initialDelaySeconds` (0).
    pub initial_delay: Duration,
    /// `periodSeconds` (1 s here, Kubernetes' 10 s being long for a local loop; until the
    /// first success the probe runs more often).
    pub period: Duration,
    /// `successThreshold` (1): passes in a row that make it ready again.
    pub success_threshold: u32,
    /// `failureThreshold` (3): failures in a row that take its traffic away.
    pub failure_threshold: u32,
}

/// The spec fields, as written (read from the resource's JSON form).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpec {
    #[serde(default)]
    command: Vec<String>,
    port: Option<i64>,
    service_account: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    restart_policy: Option<String>,
    readiness_probe: Option<serde_json::Value>,
}

/// The spec of `r` when it is a `LocalWorkload`: `None` for other kinds, `Err` with the
/// reason when it cannot run.
pub fn from_resource(r: &Resource) -> Option<Result<LocalSpec, String>> {
    if r.kind != "LocalWorkload" {
        return None;
    }
    let raw = raw_spec(r)?;
    Some(raw.and_then(|raw| build(r, raw)))
}

fn raw_spec(r: &Resource) -> Option<Result<RawSpec, String>> {
    let value = match &r.body {
        mast_config::Body::LocalWorkload(spec) => serde_json::to_value(spec.as_ref()),
        mast_config::Body::Unknown(doc) => Ok(doc.get("spec").cloned().unwrap_or_default()),
        _ => return None,
    };
    Some(
        value
            .and_then(serde_json::from_value::<RawSpec>)
            .map_err(|e| format!("spec: {e}")),
    )
}

fn build(r: &Resource, raw: RawSpec) -> Result<LocalSpec, String> {
    if raw.command.is_empty() {
        return Err("spec.command: required, the program to run".into());
    }
    let port = match raw.port {
        None => None,
        Some(p) => Some(
            u16::try_from(p)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("spec.port: {p} is not a port number (1-65535)"))?,
        ),
    };
    let job = match raw.restart_policy.as_deref() {
        None | Some("Always") => false,
        Some("Never") => true,
        Some(other) => {
            return Err(format!(
                "spec.restartPolicy: {other:?}: use Always or Never"
            ));
        }
    };
    let proxy = proxy_of(r)?;
    let readiness = match raw.readiness_probe {
        None | Some(serde_json::Value::Null) => None,
        Some(probe) => Some(readiness(probe, port)?),
    };
    Ok(LocalSpec {
        key: key_of(r),
        labels: r.labels().clone(),
        proxy,
        command: raw.command,
        port,
        service_account: raw
            .service_account
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into()),
        env: raw.env,
        job,
        gateway: false,
        file: r.origin.file.clone(),
        readiness,
    })
}

impl Readiness {
    /// The readiness of a workload that gives no `readinessProbe`: its `port` accepts
    /// connections (a `tcpSocket` probe with the defaults).
    pub fn listening(port: u16) -> Self {
        Self {
            prober: mast_probe::Prober {
                probe: mast_probe::Probe::TcpSocket { port },
                timeout: mast_probe::DEFAULT_TIMEOUT,
            },
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
        }
    }
}

/// Checks `spec.readinessProbe` (Kubernetes' Probe); a missing action port is `port`.
fn readiness(mut probe: serde_json::Value, port: Option<u16>) -> Result<Readiness, String> {
    const FIELD: &str = "spec.readinessProbe";
    let serde_json::Value::Object(fields) = &mut probe else {
        return Err(format!("{FIELD}: not an object"));
    };
    if let Some(port) = port {
        for action in ["httpGet", "tcpSocket", "grpc"] {
            if let Some(serde_json::Value::Object(body)) = fields.get_mut(action) {
                body.entry("port").or_insert(port.into());
            }
        }
    }
    let number = |key: &str, default: u64, least: u64| -> Result<u64, String> {
        match fields.get(key) {
            None | Some(serde_json::Value::Null) => Ok(default),
            Some(v) => v
                .as_u64()
                .filter(|n| *n >= least)
                .ok_or_else(|| format!("{FIELD}.{key}: {v} is not a whole number ≥ {least}")),
        }
    };
    let initial_delay = Duration::from_secs(number("initialDelaySeconds", 0, 0)?);
    let period = Duration::from_secs(number("periodSeconds", 1, 1)?);
    let success_threshold = u32::try_from(number("successThreshold", 1, 1)?).unwrap_or(u32::MAX);
    let failure_threshold = u32::try_from(number("failureThreshold", 3, 1)?).unwrap_or(u32::MAX);
    // mast-probe checks the action as the sidecar checks ISTIO_KUBE_APP_PROBERS entries.
    const PATH: &str = "/app-health/program/readyz";
    let table = serde_json::json!({ PATH: probe }).to_string();
    let probers = mast_probe::AppProbers::parse(&table).map_err(|e| {
        let text = e.to_string();
        let field = text
            .split_once(&format!("{PATH}: "))
            .map_or(text.as_str(), |(_, f)| f);
        format!("{FIELD}.{field}")
    })?;
    let prober = probers
        .get(PATH)
        .cloned()
        .ok_or_else(|| format!("{FIELD}: no probe"))?;
    Ok(Readiness {
        prober,
        initial_delay,
        period,
        success_threshold,
        failure_threshold,
    })
}

/// The proxy named by `r`'s `mast.dev/proxy` annotation (`None`: the `--proxy` default).
pub fn proxy_of(r: &Resource) -> Result<Option<ProxyKind>, String> {
    match r.annotations().get(PROXY_ANNOTATION).map(String::as_str) {
        None => Ok(None),
        Some("mast") => Ok(Some(ProxyKind::Mast)),
        Some("envoy") => Ok(Some(ProxyKind::Envoy)),
        Some(other) => Err(format!(
            "metadata.annotations[{PROXY_ANNOTATION}]: {other:?}: use mast or envoy"
        )),
    }
}

/// `r`'s namespace (`default` when unset) and name.
pub fn key_of(r: &Resource) -> Key {
    let namespace = Some(r.namespace()).filter(|n| !n.is_empty());
    Key {
        namespace: namespace.unwrap_or("default").to_owned(),
        name: r.name().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mast_config::{LoadOptions, load_str};

    fn one(yaml: &str) -> Result<LocalSpec, String> {
        let out = load_str(yaml, "w.yaml", &LoadOptions::default());
        let r = out.resources.first().expect("a resource");
        from_resource(r).expect("a LocalWorkload")
    }

    #[test]
    fn reads_every_field() {
        let s = one(
            "apiVersion: mast.dev/v1alpha1\nkind: LocalWorkload\nmetadata: {name: a, namespace: ns, labels: {app: a}, annotations: {mast.dev/proxy: envoy}}\nspec: {command: [x, y], port: 8080, serviceAccount: sa, env: {K: v}, restartPolicy: Never}\n",
        )
        .unwrap();
        assert_eq!(s.key.to_string(), "a.ns");
        assert_eq!(s.command, ["x", "y"]);
        assert_eq!(s.port, Some(8080));
        assert_eq!(s.service_account, "sa");
        assert_eq!(s.proxy, Some(ProxyKind::Envoy));
        assert!(s.job);
        assert_eq!(s.env.get("K").map(String::as_str), Some("v"));
    }

    #[test]
    fn readiness_probe_as_kubernetes_writes_it() {
        let w = |probe: &str| {
            one(&format!(
                "apiVersion: mast.dev/v1alpha1\nkind: LocalWorkload\nmetadata: {{name: a}}\nspec:\n  command: [x]\n  port: 8080\n  readinessProbe: {probe}\n"
            ))
        };
        let r = w("{httpGet: {path: /ready}, periodSeconds: 2, failureThreshold: 1}")
            .unwrap()
            .readiness
            .unwrap();
        let mast_probe::Probe::HttpGet(get) = &r.prober.probe else {
            panic!("httpGet: {r:?}")
        };
        assert_eq!(
            (get.path.as_str(), get.port),
            ("/ready", 8080),
            "the port is $PORT"
        );
        assert_eq!(r.period, Duration::from_secs(2));
        assert_eq!((r.success_threshold, r.failure_threshold), (1, 1));
        assert_eq!(r.initial_delay, Duration::ZERO);
        let tcp = w("{tcpSocket: {port: 9090}, timeoutSeconds: 3}")
            .unwrap()
            .readiness
            .unwrap();
        assert_eq!(
            tcp.prober.probe,
            mast_probe::Probe::TcpSocket { port: 9090 }
        );
        assert_eq!(tcp.prober.timeout, Duration::from_secs(3));
        assert_eq!(tcp.period, Duration::from_secs(1), "1 s unless given");
        // Errors name the field.
        let e = w("{httpGet: {path: /ready}, periodSeconds: 0}").unwrap_err();
        assert!(e.starts_with("spec.readinessProbe.periodSeconds:"), "{e}");
        let e = w("{exec: {command: [true]}}").unwrap_err();
        assert!(e.starts_with("spec.readinessProbe."), "{e}");
        assert!(e.contains("httpGet, tcpSocket or grpc"), "{e}");
        let e = w("{tcpSocket: {port: 70000}}").unwrap_err();
        assert!(e.starts_with("spec.readinessProbe.tcpSocket.port:"), "{e}");
    }

    #[test]
    fn defaults() {
        let s = one(
            "apiVersion: mast.dev/v1alpha1\nkind: LocalWorkload\nmetadata: {name: a}\nspec: {command: [x]}\n",
        )
        .unwrap();
        assert_eq!(s.key.namespace, "default");
        assert_eq!(s.service_account, "default");
        assert_eq!(s.port, None);
        assert!(!s.job);
        assert_eq!(s.proxy, None);
    }
}
