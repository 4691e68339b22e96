//! Talking to the cluster through kube-rs: the client (from `--kubeconfig`, `KUBECONFIG`,
//! `~/.kube/config` or the in-cluster service account), the API resource of every kind
//! install renders, server-side apply with field manager `mastctl`, listing and deleting by
//! label, and waiting for Deployments to become available.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::Value;

/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "mastctl";

/// Flags that choose the cluster.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct KubeArgs {
    /// The kubeconfig file (default: `KUBECONFIG`, `~/.kube/config`, or in-cluster).
    #[arg(short = 'c', long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long)]
    pub context: Option<String>,
}

/// A client for the cluster the flags name.
pub async fn client(args: &KubeArgs) -> Result<Client> {
    let opts = KubeConfigOptions {
        context: args.context.clone(),
        ..Default::default()
    };
    let config = match &args.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &opts)
                .await
                .with_context(|| format!("kubeconfig {}", path.display()))?
        }
        None if args.context.is_some() => Config::from_kubeconfig(&opts)
            .await
            .context("loading kubeconfig")?,
        None => Config::infer()
            .await
            .context("no Kubernetes configuration found (give --kubeconfig)")?,
    };
    Client::try_from(config).context("creating the Kubernetes client")
}

/// (kind, group, version, plural, namespaced) of every kind install renders.
const KINDS: &[(&str, &str, &str, &str, bool)] = &[
    (
        "CustomResourceDefinition",
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        false,
    ),
    ("Namespace", "", "v1", "namespaces", false),
    ("ServiceAccount", "", "v1", "serviceaccounts", true),
    (
        "ClusterRole",
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        false,
    ),
    (
        "ClusterRoleBinding",
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        false,
    ),
    ("Role", "rbac.authorization.k8s.io", "v1", "roles", true),
    (
        "RoleBinding",
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        true,
    ),
    ("Secret", "", "v1", "secrets", true),
    ("ConfigMap", "", "v1", "configmaps", true),
    ("Service", "", "v1", "services", true),
    ("Deployment", "apps", "v1", "deployments", true),
    (
        "PodDisruptionBudget",
        "policy",
        "v1",
        "poddisruptionbudgets",
        true,
    ),
    (
        "HorizontalPodAutoscaler",
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        true,
    ),
    (
        "MutatingWebhookConfiguration",
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        false,
    ),
    (
        "ValidatingWebhookConfiguration",
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        false,
    ),
];

/// Every kind install renders, in apply order (for uninstall: reverse it).
pub fn kinds() -> impl DoubleEndedIterator<Item = &'static str> {
    KINDS.iter().map(|k| k.0)
}

/// The API handle for `kind` in `namespace` (ignored for cluster-scoped kinds).
pub fn api(client: &Client, kind: &str, namespace: &str) -> Result<Api<DynamicObject>> {
    let (k, g, v, plural, namespaced) = KINDS
        .iter()
        .find(|k| k.0 == kind)
        .with_context(|| format!("mastctl does not manage kind {kind}"))?;
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, k), plural);
    Ok(if *namespaced {
        Api::namespaced_with(client.clone(), namespace, &ar)
    } else {
        Api::all_with(client.clone(), &ar)
    })
}

/// `Kind ns/name` or `Kind name`, as messages name objects.
pub fn describe(v: &Value) -> String {
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("?");
    let name = v
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    match v.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Server-side applies `object` (field manager `mastctl`, forcing conflicts as istioctl does).
pub async fn apply(client: &Client, object: &Value) -> Result<()> {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let ns = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let api = api(client, kind, ns)?;
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(name, &pp, &Patch::Apply(object))
        .await
        .with_context(|| format!("applying {}", describe(object)))?;
    Ok(())
}

/// The object, or `None` when it does not exist.
pub async fn get(
    client: &Client,
    kind: &str,
    ns: &str,
    name: &str,
) -> Result<Option<DynamicObject>> {
    api(client, kind, ns)?
        .get_opt(name)
        .await
        .with_context(|| format!("reading {kind} {ns}/{name}"))
}

/// Objects of `kind` (in `ns` when namespaced) matching the label `selector`.
pub async fn list(
    client: &Client,
    kind: &str,
    ns: &str,
    selector: &str,
) -> Result<Vec<DynamicObject>> {
    let lp = ListParams::default().labels(selector);
    Ok(api(client, kind, ns)?
        .list(&lp)
        .await
        .with_context(|| format!("listing {kind} with labels {selector}"))?
        .items)
}

/// Deletes an object; a missing one is not an error.
pub async fn delete(client: &Client, kind: &str, ns: &str, name: &str) -> Result<bool> {
    match api(client, kind, ns)?
        .delete(name, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e).with_context(|| format!("deleting {kind} {ns}/{name}")),
    }
}

/// Why a Deployment is not available yet, or `None` when it is.
pub fn deployment_pending(d: &Value) -> Option<String> {
    let want = d
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(1);
    let status = d.get("status");
    let available = status
        .and_then(|s| s.get("availableReplicas"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let condition = status
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|c| {
            c.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Available"))
        })
        .and_then(|c| c.get("status").and_then(Value::as_str));
    if available >= want || condition == Some("True") {
        return None;
    }
    Some(format!("{available}/{want} replicas available"))
}

/// Waits until every Deployment in `deployments` (namespace, name) is available, polling
/// twice a second, at most `timeout`. The error names each one not ready and why.
pub async fn wait_deployments(
    client: &Client,
    deployments: &[(String, String)],
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut pending = Vec::new();
        for (ns, name) in deployments {
            let why = match get(client, "Deployment", ns, name).await? {
                None => Some("not found".to_string()),
                Some(d) => deployment_pending(&serde_json::to_value(&d)?),
            };
            if let Some(why) = why {
                pending.push(format!("Deployment {ns}/{name} ({why})"));
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "timed out after {:?} waiting for resources to be ready: {}",
                timeout,
                pending.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
