//! `LocalGateway` (mast.dev/v1alpha1): a gateway proxy `mastctl up` runs on the host (a
//! `router` xDS node, mast-proxy or Envoy through mast-agent, picked by the `mast.dev/proxy`
//! annotation as for a LocalWorkload). Its `metadata.labels` are what an Istio
//! `Gateway.spec.selector` matches; a Service selecting them maps Gateway ports to the host
//! ports the gateway listens on (`port: 80, targetPort: 18080`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The service account used when `serviceAccount` is unset, as in Kubernetes.
const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// The spec of a `LocalGateway`: everything is optional (`spec: {}` is a gateway).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalGateway {
    /// The service account the gateway runs as (its certificate's identity, what
    /// ISTIO_MUTUAL servers present); see [`Self::service_account`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// Extra environment variables for the proxy process (Envoy's, through mast-agent).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

impl LocalGateway {
    /// The service account, `default` when unset or empty.
    pub fn service_account(&self) -> &str {
        self.service_account
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(DEFAULT_SERVICE_ACCOUNT)
    }
}
