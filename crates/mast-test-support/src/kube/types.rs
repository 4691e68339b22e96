//! The resource types the emulator serves: the built-in Kubernetes ones, Istio's CRDs, the
//! Gateway API's, and
//! any type a test registers or a created `CustomResourceDefinition` declares; and the
//! discovery documents (`/api`, `/apis`, `/api/v1`, `/apis/<group>/<version>`) built from
//! them.

use serde_json::{Value, json};

/// One resource type: a group's plural (such as `networking.istio.io` `virtualservices`)
/// served in one or more versions. Objects are stored once per type, whatever version
/// they were written in, and read back in the version asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiType {
    /// The API group, empty for the core group.
    pub group: String,
    /// The served versions, preferred first.
    pub versions: Vec<String>,
    /// The plural resource name used in paths (`pods`).
    pub plural: String,
    /// The kind (`Pod`).
    pub kind: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Whether the type has a `status` subresource (then writes to the main resource keep
    /// the stored status, and `…/status` writes change only the status).
    pub status: bool,
}

impl ApiType {
    /// A type with the given group, versions (preferred first), plural and kind.
    pub fn new(group: &str, versions: &[&str], plural: &str, kind: &str) -> Self {
        Self {
            group: group.into(),
            versions: versions.iter().map(|v| (*v).to_owned()).collect(),
            plural: plural.into(),
            kind: kind.into(),
            namespaced: true,
            status: false,
        }
    }

    /// Makes the type cluster-scoped.
    pub fn cluster(mut self) -> Self {
        self.namespaced = false;
        self
    }

    /// Gives the type a `status` subresource.
    pub fn with_status(mut self) -> Self {
        self.status = true;
        self
    }

    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_owned()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// The preferred `apiVersion`.
    pub fn preferred(&self) -> String {
        self.api_version(self.versions.first().map_or("v1", String::as_str))
    }

    /// Whether `apiVersion` names this type's group and one of its versions.
    pub fn serves(&self, api_version: &str) -> bool {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        group == self.group && self.versions.iter().any(|v| v == version)
    }

    fn singular(&self) -> String {
        self.kind.to_ascii_lowercase()
    }

    /// The `APIResource` entries of this type (the resource and its status subresource).
    fn discovery(&self) -> Vec<Value> {
        let verbs = [
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ];
        let mut out = vec![json!({
            "name": self.plural,
            "singularName": self.singular(),
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": verbs,
        })];
        if self.status {
            out.push(json!({
                "name": format!("{}/status", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        out
    }
}

/// The built-in Kubernetes types served from the start.
pub fn builtin() -> Vec<ApiType> {
    let core = |p, k| ApiType::new("", &["v1"], p, k);
    let apps = |p, k| ApiType::new("apps", &["v1"], p, k).with_status();
    vec![
        core("namespaces", "Namespace").cluster().with_status(),
        core("nodes", "Node").cluster().with_status(),
        core("services", "Service").with_status(),
        core("endpoints", "Endpoints"),
        core("pods", "Pod").with_status(),
        core("configmaps", "ConfigMap"),
        core("secrets", "Secret"),
        core("serviceaccounts", "ServiceAccount"),
        core("events", "Event"),
        apps("deployments", "Deployment"),
        apps("replicasets", "ReplicaSet"),
        apps("daemonsets", "DaemonSet"),
        apps("statefulsets", "StatefulSet"),
        ApiType::new("batch", &["v1"], "jobs", "Job").with_status(),
        ApiType::new("batch", &["v1"], "cronjobs", "CronJob").with_status(),
        ApiType::new(
            "discovery.k8s.io",
            &["v1"],
            "endpointslices",
            "EndpointSlice",
        ),
        ApiType::new(
            "apiextensions.k8s.io",
            &["v1"],
            "customresourcedefinitions",
            "CustomResourceDefinition",
        )
        .cluster()
        .with_status(),
        admission(
            "mutatingwebhookconfigurations",
            "MutatingWebhookConfiguration",
        ),
        admission(
            "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
        ),
        rbac("clusterroles", "ClusterRole").cluster(),
        rbac("clusterrolebindings", "ClusterRoleBinding").cluster(),
        rbac("roles", "Role"),
        rbac("rolebindings", "RoleBinding"),
        ApiType::new(
            "policy",
            &["v1"],
            "poddisruptionbudgets",
            "PodDisruptionBudget",
        )
        .with_status(),
        ApiType::new("coordination.k8s.io", &["v1"], "leases", "Lease"),
        ApiType::new(
            "autoscaling",
            &["v2"],
            "horizontalpodautoscalers",
            "HorizontalPodAutoscaler",
        )
        .with_status(),
    ]
}

fn admission(plural: &str, kind: &str) -> ApiType {
    ApiType::new("admissionregistration.k8s.io", &["v1"], plural, kind).cluster()
}

fn rbac(plural: &str, kind: &str) -> ApiType {
    ApiType::new("rbac.authorization.k8s.io", &["v1"], plural, kind)
}

/// Istio's CRD types, as Istio's own CRDs serve them (v1 preferred), each with a status
/// subresource.
pub fn istio() -> Vec<ApiType> {
    let net = ["v1", "v1beta1", "v1alpha3"];
    let sec = ["v1", "v1beta1"];
    let n = |p, k| ApiType::new("networking.istio.io", &net, p, k).with_status();
    let s = |p, k| ApiType::new("security.istio.io", &sec, p, k).with_status();
    vec![
        n("virtualservices", "VirtualService"),
        n("destinationrules", "DestinationRule"),
        n("gateways", "Gateway"),
        n("serviceentries", "ServiceEntry"),
        n("workloadentries", "WorkloadEntry"),
        n("workloadgroups", "WorkloadGroup"),
        n("sidecars", "Sidecar"),
        ApiType::new(
            "networking.istio.io",
            &["v1alpha3"],
            "envoyfilters",
            "EnvoyFilter",
        )
        .with_status(),
        s("peerauthentications", "PeerAuthentication"),
        s("authorizationpolicies", "AuthorizationPolicy"),
        s("requestauthentications", "RequestAuthentication"),
        ApiType::new(
            "telemetry.istio.io",
            &["v1", "v1alpha1"],
            "telemetries",
            "Telemetry",
        )
        .with_status(),
    ]
}

/// The Kubernetes Gateway API types (`gateway.networking.k8s.io`, standard channel plus
/// the experimental TCPRoute and TLSRoute), as their CRDs serve them: v1 preferred, each
/// kind but ReferenceGrant with a status subresource, GatewayClass cluster-scoped.
pub fn gateway_api() -> Vec<ApiType> {
    let gw = |versions: &[&str], p, k| {
        ApiType::new("gateway.networking.k8s.io", versions, p, k).with_status()
    };
    let v1 = ["v1", "v1beta1"];
    vec![
        gw(&v1, "gatewayclasses", "GatewayClass").cluster(),
        gw(&v1, "gateways", "Gateway"),
        gw(&v1, "httproutes", "HTTPRoute"),
        gw(&["v1", "v1alpha2"], "grpcroutes", "GRPCRoute"),
        gw(&["v1alpha2"], "tcproutes", "TCPRoute"),
        gw(&["v1alpha2"], "tlsroutes", "TLSRoute"),
        ApiType::new(
            "gateway.networking.k8s.io",
            &["v1", "v1beta1", "v1alpha2"],
            "referencegrants",
            "ReferenceGrant",
        ),
    ]
}

/// The type a `CustomResourceDefinition` object declares (its served versions, storage
/// version first), or `None` when the object lacks the group or names.
pub fn from_crd(crd: &Value) -> Option<ApiType> {
    let spec = crd.get("spec")?;
    let group = spec.get("group")?.as_str()?;
    let names = spec.get("names")?;
    let plural = names.get("plural")?.as_str()?;
    let kind = names.get("kind")?.as_str()?;
    let mut versions: Vec<(bool, String, bool)> = spec
        .get("versions")?
        .as_array()?
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(true))
        .filter_map(|v| {
            let name = v.get("name")?.as_str()?.to_owned();
            let storage = v.get("storage").and_then(Value::as_bool).unwrap_or(false);
            let status = v.pointer("/subresources/status").is_some();
            Some((!storage, name, status))
        })
        .collect();
    versions.sort_by_key(|v| v.0);
    let status = versions.iter().any(|v| v.2);
    let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
    Some(ApiType {
        group: group.into(),
        versions: versions.into_iter().map(|v| v.1).collect(),
        plural: plural.into(),
        kind: kind.into(),
        namespaced,
        status,
    })
}

/// `/api`: the core group's versions.
pub fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:0"}],
    })
}

/// One `APIGroup` entry for `/apis` and `/apis/<group>`.
fn group_entry(group: &str, versions: &[String]) -> Value {
    let entries: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": entries,
        "preferredVersion": entries.first().cloned().unwrap_or(Value::Null),
    })
}

/// The groups served (not the core group), each with its versions, in first-seen order.
fn groups(types: &[ApiType]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for t in types.iter().filter(|t| !t.group.is_empty()) {
        let idx = match out.iter().position(|(g, _)| *g == t.group) {
            Some(i) => i,
            None => {
                out.push((t.group.clone(), Vec::new()));
                out.len() - 1
            }
        };
        for v in &t.versions {
            if !out[idx].1.contains(v) {
                out[idx].1.push(v.clone());
            }
        }
    }
    out
}

/// `/apis`: every group with its versions.
pub fn group_list(types: &[ApiType]) -> Value {
    let groups: Vec<Value> = groups(types)
        .iter()
        .map(|(g, vs)| group_entry(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`, or `None` when the group is not served.
pub fn group(types: &[ApiType], name: &str) -> Option<Value> {
    groups(types)
        .into_iter()
        .find(|(g, _)| g == name)
        .map(|(g, vs)| group_entry(&g, &vs))
}

/// `/api/v1` or `/apis/<group>/<version>`, or `None` when nothing is served there.
pub fn resource_list(types: &[ApiType], group: &str, version: &str) -> Option<Value> {
    let resources: Vec<Value> = types
        .iter()
        .filter(|t| t.group == group && t.versions.iter().any(|v| v == version))
        .flat_map(ApiType::discovery)
        .collect();
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_declares_its_served_versions_storage_first() {
        let crd = json!({"spec": {
        "group": "example.com", "scope": "Cluster",
        "names": {"plural": "widgets", "kind": "Widget"},
        "versions": [
            {"name": "v1alpha1", "served": true, "storage": false},
            {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}},
            {"name": "v0", "served": false, "storage": false},
        ]}});
        let t = from_crd(&crd).unwrap_or_else(|| panic!("no type"));
        assert_eq!(t.versions, ["v1", "v1alpha1"]);
        assert!(!t.namespaced && t.status);
        assert!(t.serves("example.com/v1alpha1") && !t.serves("example.com/v0"));
    }

    #[test]
    fn discovery_lists_groups_and_resources() {
        let mut types = builtin();
        types.extend(istio());
        let list = group_list(&types);
        let net = list["groups"]
            .as_array()
            .and_then(|g| g.iter().find(|g| g["name"] == "networking.istio.io"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            net["preferredVersion"]["groupVersion"],
            "networking.istio.io/v1"
        );
        let v1 = resource_list(&types, "", "v1").unwrap_or_default();
        let names: Vec<&str> = v1["resources"]
            .as_array()
            .map(|r| r.iter().filter_map(|r| r["name"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            names.contains(&"pods") && names.contains(&"pods/status"),
            "{names:?}"
        );
        assert!(resource_list(&types, "networking.istio.io", "v9").is_none());
        let alpha = resource_list(&types, "networking.istio.io", "v1alpha3").unwrap_or_default();
        assert!(alpha.to_string().contains("envoyfilters"));
    }

    #[test]
    fn gateway_api_kinds_have_status_and_share_the_gateway_kind_by_group() {
        let mut types = istio();
        types.extend(gateway_api());
        let v1 = resource_list(&types, "gateway.networking.k8s.io", "v1").unwrap_or_default();
        let text = v1.to_string();
        for r in [
            "gatewayclasses/status",
            "gateways/status",
            "httproutes/status",
            "grpcroutes/status",
            "referencegrants",
        ] {
            assert!(text.contains(r), "{r} missing: {text}");
        }
        let alpha =
            resource_list(&types, "gateway.networking.k8s.io", "v1alpha2").unwrap_or_default();
        assert!(alpha.to_string().contains("tlsroutes/status"));
        let gw: Vec<&ApiType> = types.iter().filter(|t| t.kind == "Gateway").collect();
        assert_eq!(gw.len(), 2);
        assert!(gw.iter().any(|t| t.serves("gateway.networking.k8s.io/v1")));
        let class = types.iter().find(|t| t.kind == "GatewayClass");
        assert!(class.is_some_and(|c| !c.namespaced && c.status));
    }
}
