//! Who a workload is, as Istio's metrics label it: this proxy's own identity (from the
//! bootstrap node, computed once) and peers' (from exchanged metadata).

use std::collections::BTreeMap;

use http::HeaderValue;

use super::UNKNOWN;
use crate::bootstrap::NodeSpec;

/// A workload's label values (`unknown` when not known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// `WORKLOAD_NAME`.
    pub workload: String,
    /// `NAMESPACE`.
    pub namespace: String,
    /// `spiffe://<trust domain>/ns/<ns>/sa/<sa>`.
    pub principal: String,
    /// The `app` label.
    pub app: String,
    /// The `version` label.
    pub version: String,
    /// Istio's canonical service.
    pub canonical_service: String,
    /// Istio's canonical revision.
    pub canonical_revision: String,
    /// `CLUSTER_ID`.
    pub cluster: String,
}

impl Workload {
    /// All `unknown`.
    pub fn unknown() -> Self {
        let u = || UNKNOWN.to_owned();
        Self {
            workload: u(),
            namespace: u(),
            principal: u(),
            app: u(),
            version: u(),
            canonical_service: u(),
            canonical_revision: u(),
            cluster: u(),
        }
    }

    /// From Istio's metadata fields: workload, namespace, labels, service account,
    /// cluster id; the principal uses `trust_domain`.
    pub fn from_parts(
        workload: Option<&str>,
        namespace: Option<&str>,
        labels: &BTreeMap<String, String>,
        service_account: Option<&str>,
        cluster: Option<&str>,
        trust_domain: &str,
    ) -> Self {
        let or_unknown =
            |v: Option<&str>| v.filter(|s| !s.is_empty()).unwrap_or(UNKNOWN).to_owned();
        let label = |k: &str| labels.get(k).map(String::as_str);
        let workload = or_unknown(workload);
        let canonical_service = label("service.istio.io/canonical-name")
            .or(label("app.kubernetes.io/name"))
            .or(label("app"))
            .unwrap_or(&workload)
            .to_owned();
        let canonical_revision = label("service.istio.io/canonical-revision")
            .or(label("app.kubernetes.io/version"))
            .or(label("version"))
            .unwrap_or("latest")
            .to_owned();
        let principal = match (service_account, namespace) {
            (Some(sa), Some(ns)) if !sa.is_empty() && !ns.is_empty() => {
                format!("spiffe://{trust_domain}/ns/{ns}/sa/{sa}")
            }
            _ => UNKNOWN.to_owned(),
        };
        Self {
            namespace: or_unknown(namespace),
            principal,
            app: or_unknown(label("app")),
            version: or_unknown(label("version")),
            canonical_service,
            canonical_revision,
            cluster: or_unknown(cluster),
            workload,
        }
    }
}

/// This proxy: its label values and the metadata-exchange header values, computed once.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The label values.
    pub me: Workload,
    /// The trust domain principals are built in.
    pub trust_domain: String,
    /// `x-envoy-peer-metadata-id`: the node id.
    pub id_header: HeaderValue,
    /// `x-envoy-peer-metadata`: base64 of the metadata `Struct`.
    pub metadata_header: HeaderValue,
}

impl Identity {
    /// From the bootstrap node (the trust domain is the node's DNS domain, Istio's default
    /// `cluster.local`).
    pub fn from_node(spec: &NodeSpec, node_id: &str) -> Self {
        let me = Workload::from_parts(
            Some(spec.workload_name()),
            Some(&spec.namespace),
            &spec.labels,
            spec.service_account.as_deref(),
            Some(&spec.cluster_id),
            &spec.domain,
        );
        let encoded = super::peer::encode(spec);
        Self {
            me,
            trust_domain: spec.domain.clone(),
            id_header: HeaderValue::from_str(node_id).unwrap_or(HeaderValue::from_static(UNKNOWN)),
            metadata_header: HeaderValue::from_str(&encoded)
                .unwrap_or(HeaderValue::from_static("")),
        }
    }
}
