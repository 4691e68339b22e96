//! Which Kubernetes and Istio kinds the Kubernetes source watches, and how each is found
//! on the API server: the core and `discovery.k8s.io` kinds at fixed versions, Istio's CRD
//! kinds through discovery at the newest version both the cluster serves and Mast reads.

use kube::Client;
use kube::discovery::ApiResource;

/// One watched kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchedKind {
    /// The kind, as in `kind:`.
    pub kind: &'static str,
    /// The API group (empty for the core group).
    pub group: &'static str,
    /// The plural resource name.
    pub plural: &'static str,
    /// The versions Mast reads, newest first.
    pub versions: &'static [&'static str],
    /// Whether the kind is a CRD (found through discovery, and possibly not installed).
    pub custom: bool,
}

const NET: &[&str] = &["v1", "v1beta1", "v1alpha3"];
const SEC: &[&str] = &["v1", "v1beta1"];
const GW: &str = "gateway.networking.k8s.io";
const GW_V1: &[&str] = &["v1", "v1beta1"];

const fn fixed(kind: &'static str, group: &'static str, plural: &'static str) -> WatchedKind {
    WatchedKind {
        kind,
        group,
        plural,
        versions: &["v1"],
        custom: false,
    }
}

const fn istio(
    kind: &'static str,
    group: &'static str,
    plural: &'static str,
    versions: &'static [&'static str],
) -> WatchedKind {
    WatchedKind {
        kind,
        group,
        plural,
        versions,
        custom: true,
    }
}

/// Every kind the source watches.
pub const WATCHED: &[WatchedKind] = &[
    fixed("Namespace", "", "namespaces"),
    fixed("Service", "", "services"),
    fixed("Pod", "", "pods"),
    fixed("EndpointSlice", "discovery.k8s.io", "endpointslices"),
    // TLS material for gateways' `credentialName` (the model keeps only Secrets holding a
    // certificate or a CA bundle: `mast_model::snapshot::TlsSecret::from_secret`).
    fixed("Secret", "", "secrets"),
    istio(
        "VirtualService",
        "networking.istio.io",
        "virtualservices",
        NET,
    ),
    istio(
        "DestinationRule",
        "networking.istio.io",
        "destinationrules",
        NET,
    ),
    istio("Gateway", "networking.istio.io", "gateways", NET),
    istio("ServiceEntry", "networking.istio.io", "serviceentries", NET),
    istio(
        "WorkloadEntry",
        "networking.istio.io",
        "workloadentries",
        NET,
    ),
    istio("Sidecar", "networking.istio.io", "sidecars", NET),
    istio(
        "PeerAuthentication",
        "security.istio.io",
        "peerauthentications",
        SEC,
    ),
    istio(
        "AuthorizationPolicy",
        "security.istio.io",
        "authorizationpolicies",
        SEC,
    ),
    istio(
        "RequestAuthentication",
        "security.istio.io",
        "requestauthentications",
        SEC,
    ),
    // Gateway API (skipped quietly when its CRDs are not installed).
    istio("GatewayClass", GW, "gatewayclasses", GW_V1),
    istio("Gateway", GW, "gateways", GW_V1),
    istio("HTTPRoute", GW, "httproutes", GW_V1),
    istio("GRPCRoute", GW, "grpcroutes", &["v1", "v1alpha2"]),
    istio("TCPRoute", GW, "tcproutes", &["v1alpha2"]),
    istio("TLSRoute", GW, "tlsroutes", &["v1alpha2"]),
    istio(
        "ReferenceGrant",
        GW,
        "referencegrants",
        &["v1", "v1beta1", "v1alpha2"],
    ),
];

impl WatchedKind {
    /// The resource at `version`.
    pub fn at(&self, version: &str) -> ApiResource {
        let api_version = if self.group.is_empty() {
            version.to_owned()
        } else {
            format!("{}/{version}", self.group)
        };
        ApiResource {
            group: self.group.into(),
            version: version.into(),
            api_version,
            kind: self.kind.into(),
            plural: self.plural.into(),
        }
    }

    /// The resource to watch: for a CRD kind, the newest of [`WatchedKind::versions`] the
    /// cluster serves; `Ok(None)` when it serves none (the CRD is not installed).
    pub async fn resolve(&self, client: &Client) -> Result<Option<ApiResource>, kube::Error> {
        if !self.custom {
            return Ok(Some(self.at(self.versions[0])));
        }
        let group = match kube::discovery::group(client, self.group).await {
            Ok(g) => g,
            // The group is not served at all: no CRD of it is installed.
            Err(kube::Error::Discovery(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        for version in self.versions {
            let served = group
                .versioned_resources(version)
                .into_iter()
                .any(|(ar, _)| ar.kind == self.kind);
            if served {
                return Ok(Some(self.at(version)));
            }
        }
        Ok(None)
    }
}
