//! The CustomResourceDefinitions for every Istio kind Mast reads: networking.istio.io
//! (v1alpha3, v1beta1, v1 served; v1 stored) and security.istio.io (v1beta1, v1 served; v1
//! stored), with a structural schema that keeps `spec` and `status` as given, the status
//! subresource, and the printer columns of Istio's `crd-all.gen.yaml`.

use serde_json::{Value, json};

use super::base_labels;
use crate::cmd::install::settings::Settings;

/// (kind, plural, short names, group, printer columns as (name, JSON path, type, description)).
type Kind = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static [Column],
);
type Column = (&'static str, &'static str, &'static str, &'static str);

const NET: &str = "networking.istio.io";
const SEC: &str = "security.istio.io";

/// The kinds, with the printer columns Istio's CRDs declare (crd-all.gen.yaml); every one also
/// ends with `Age`.
const KINDS: &[Kind] = &[
    (
        "DestinationRule",
        "destinationrules",
        &["dr"],
        NET,
        &[(
            "Host",
            ".spec.host",
            "string",
            "The name of a service from the service registry",
        )],
    ),
    ("Gateway", "gateways", &["gw"], NET, &[]),
    (
        "ServiceEntry",
        "serviceentries",
        &["se"],
        NET,
        &[
            (
                "Hosts",
                ".spec.hosts",
                "string",
                "The hosts associated with the ServiceEntry",
            ),
            (
                "Location",
                ".spec.location",
                "string",
                "Whether the service is external to the mesh or part of the mesh (MESH_EXTERNAL or MESH_INTERNAL)",
            ),
            (
                "Resolution",
                ".spec.resolution",
                "string",
                "Service resolution mode for the hosts (NONE, STATIC, or DNS)",
            ),
        ],
    ),
    ("Sidecar", "sidecars", &[], NET, &[]),
    (
        "VirtualService",
        "virtualservices",
        &["vs"],
        NET,
        &[
            (
                "Gateways",
                ".spec.gateways",
                "string",
                "The names of gateways and sidecars that should apply these routes",
            ),
            (
                "Hosts",
                ".spec.hosts",
                "string",
                "The destination hosts to which traffic is being sent",
            ),
        ],
    ),
    (
        "WorkloadEntry",
        "workloadentries",
        &["we"],
        NET,
        &[(
            "Address",
            ".spec.address",
            "string",
            "Address associated with the network endpoint.",
        )],
    ),
    (
        "AuthorizationPolicy",
        "authorizationpolicies",
        &["ap"],
        SEC,
        &[("Action", ".spec.action", "string", "The operation to take.")],
    ),
    (
        "PeerAuthentication",
        "peerauthentications",
        &["pa"],
        SEC,
        &[(
            "Mode",
            ".spec.mtls.mode",
            "string",
            "Defines the mTLS mode used for peer authentication.",
        )],
    ),
    (
        "RequestAuthentication",
        "requestauthentications",
        &["ra"],
        SEC,
        &[],
    ),
];

/// One CRD per kind.
pub fn render(_s: &Settings) -> Vec<Value> {
    KINDS.iter().map(crd).collect()
}

fn crd(k: &Kind) -> Value {
    let (kind, plural, short, group, cols) = *k;
    let versions: &[&str] = if group == NET {
        &["v1alpha3", "v1beta1", "v1"]
    } else {
        &["v1beta1", "v1"]
    };
    let category = if group == NET {
        "networking-istio-io"
    } else {
        "security-istio-io"
    };
    let mut columns: Vec<Value> = cols
        .iter()
        .map(|(n, p, t, d)| json!({"name": n, "jsonPath": p, "type": t, "description": d}))
        .collect();
    columns.push(json!({
        "name": "Age",
        "jsonPath": ".metadata.creationTimestamp",
        "type": "date",
        "description": "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC. Populated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    }));
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            json!({
                "name": v,
                "served": true,
                "storage": *v == "v1",
                "schema": {"openAPIV3Schema": schema(kind)},
                "subresources": {"status": {}},
                "additionalPrinterColumns": columns,
            })
        })
        .collect();
    let mut labels = base_labels();
    labels.insert("app".into(), "mastd".into());
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}"), "labels": labels},
        "spec": {
            "group": group,
            "names": {
                "categories": ["istio-io", category],
                "kind": kind,
                "listKind": format!("{kind}List"),
                "plural": plural,
                "shortNames": short,
                "singular": kind.to_ascii_lowercase(),
            },
            "scope": "Namespaced",
            "versions": versions,
        },
    })
}

fn schema(kind: &str) -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "description": format!("The {kind}'s configuration; Mast validates it as Istio's webhook does (see https://istio.io/latest/docs/reference/config/)."),
                "x-kubernetes-preserve-unknown-fields": true,
            },
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        },
        "required": ["spec"],
    })
}
