//! The resource model: every kind Mast reads, its API group and versions, and
//! [`Resource`], one loaded object with its metadata, typed body and source position.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::batch::v1 as batch;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::diag::{Origin, ResourceRef};
use crate::gateway_api::{
    GatewayClassSpec, GatewaySpec, GrpcRouteSpec, HttpRouteSpec, ReferenceGrantSpec, TcpRouteSpec,
    TlsRouteSpec,
};
use crate::local::{LocalGateway, LocalWorkload};
use crate::networking::{
    DestinationRule, Gateway, ServiceEntry, Sidecar, VirtualService, WorkloadEntry,
};
use crate::security::{AuthorizationPolicy, PeerAuthentication, RequestAuthentication};
use crate::yaml::LineIndex;

/// A kind's name: the variant's, or the one given with `as "Name"` (for kinds whose name
/// another group also uses, such as Gateway API's `Gateway`).
macro_rules! kind_name {
    ($kind:ident) => {
        stringify!($kind)
    };
    ($kind:ident, $name:literal) => {
        $name
    };
}

macro_rules! kinds {
    ($( $kind:ident $(as $name:literal)? => $group:literal, [$($version:literal),+], $namespaced:literal; )+) => {
        /// Every kind Mast understands.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Kind {
            $(
                #[doc = concat!("`", kind_name!($kind $(, $name)?), "` (", $group, ")")]
                $kind,
            )+
        }

        impl Kind {
            /// All known kinds.
            pub const ALL: &'static [Kind] = &[$(Kind::$kind),+];

            /// The kind's name, as written in `kind:`.
            pub fn name(self) -> &'static str {
                match self { $(Kind::$kind => kind_name!($kind $(, $name)?),)+ }
            }

            /// The API group (empty for the Kubernetes core group).
            pub fn group(self) -> &'static str {
                match self { $(Kind::$kind => $group,)+ }
            }

            /// The API versions served for the kind.
            pub fn versions(self) -> &'static [&'static str] {
                match self { $(Kind::$kind => &[$($version),+],)+ }
            }

            /// Whether resources of the kind live in a namespace.
            pub fn namespaced(self) -> bool {
                match self { $(Kind::$kind => $namespaced,)+ }
            }
        }
    };
}

kinds! {
    VirtualService => "networking.istio.io", ["v1alpha3", "v1beta1", "v1"], true;
    DestinationRule => "networking.istio.io", ["v1alpha3", "v1beta1", "v1"], true;
    Gateway => "networking.istio.io", ["v1alpha3", "v1beta1", "v1"], true;
    ServiceEntry => "networking.istio.io", ["v1alpha3", "v1beta1", "v1"], true;
    WorkloadEntry => "networking.istio.io", ["v1alpha3", "v1beta1", "v1"], true;
    Sidecar => "networking.istio.io", ["v1alpha3", "v1beta1", "v1"], true;
    PeerAuthentication => "security.istio.io", ["v1beta1", "v1"], true;
    AuthorizationPolicy => "security.istio.io", ["v1beta1", "v1"], true;
    RequestAuthentication => "security.istio.io", ["v1beta1", "v1"], true;
    LocalWorkload => "mast.dev", ["v1alpha1"], true;
    LocalGateway => "mast.dev", ["v1alpha1"], true;
    GatewayClass => "gateway.networking.k8s.io", ["v1", "v1beta1"], false;
    KubeGateway as "Gateway" => "gateway.networking.k8s.io", ["v1", "v1beta1"], true;
    HttpRoute as "HTTPRoute" => "gateway.networking.k8s.io", ["v1", "v1beta1"], true;
    GrpcRoute as "GRPCRoute" => "gateway.networking.k8s.io", ["v1", "v1alpha2"], true;
    TcpRoute as "TCPRoute" => "gateway.networking.k8s.io", ["v1alpha2"], true;
    TlsRoute as "TLSRoute" => "gateway.networking.k8s.io", ["v1alpha2"], true;
    ReferenceGrant => "gateway.networking.k8s.io", ["v1beta1", "v1alpha2", "v1"], true;
    Namespace => "", ["v1"], false;
    Service => "", ["v1"], true;
    Endpoints => "", ["v1"], true;
    Pod => "", ["v1"], true;
    ConfigMap => "", ["v1"], true;
    Secret => "", ["v1"], true;
    Deployment => "apps", ["v1"], true;
    ReplicaSet => "apps", ["v1"], true;
    DaemonSet => "apps", ["v1"], true;
    StatefulSet => "apps", ["v1"], true;
    Job => "batch", ["v1"], true;
    CronJob => "batch", ["v1"], true;
}

impl Kind {
    /// Finds the kind for `kind:` and `apiVersion:`. `Ok(None)` means the kind is not one
    /// Mast knows; `Err` means the kind is known but the group or version is not served.
    pub fn lookup(api_version: &str, kind: &str) -> Result<Option<Kind>, String> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        // By group AND name: two groups own a `Gateway` (Istio's and Gateway API's).
        let Some(k) = Kind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == kind && k.group() == group)
        else {
            return Ok(None);
        };
        if !k.versions().contains(&version) {
            let served: Vec<String> = k
                .versions()
                .iter()
                .map(|v| {
                    if group.is_empty() {
                        (*v).to_owned()
                    } else {
                        format!("{group}/{v}")
                    }
                })
                .collect();
            return Err(format!(
                "apiVersion {api_version:?} is not served for {kind}; use one of {}",
                served.join(", ")
            ));
        }
        Ok(Some(k))
    }
}

/// The typed content of a resource.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum Body {
    VirtualService(Arc<VirtualService>),
    DestinationRule(Arc<DestinationRule>),
    Gateway(Arc<Gateway>),
    ServiceEntry(Arc<ServiceEntry>),
    WorkloadEntry(Arc<WorkloadEntry>),
    Sidecar(Arc<Sidecar>),
    PeerAuthentication(Arc<PeerAuthentication>),
    AuthorizationPolicy(Arc<AuthorizationPolicy>),
    RequestAuthentication(Arc<RequestAuthentication>),
    LocalWorkload(Arc<LocalWorkload>),
    LocalGateway(Arc<LocalGateway>),
    GatewayClass(Arc<GatewayClassSpec>),
    KubeGateway(Arc<GatewaySpec>),
    HttpRoute(Arc<HttpRouteSpec>),
    GrpcRoute(Arc<GrpcRouteSpec>),
    TcpRoute(Arc<TcpRouteSpec>),
    TlsRoute(Arc<TlsRouteSpec>),
    ReferenceGrant(Arc<ReferenceGrantSpec>),
    Namespace(Arc<core::Namespace>),
    Service(Arc<core::Service>),
    Endpoints(Arc<core::Endpoints>),
    Pod(Arc<core::Pod>),
    ConfigMap(Arc<core::ConfigMap>),
    Secret(Arc<core::Secret>),
    Deployment(Arc<apps::Deployment>),
    ReplicaSet(Arc<apps::ReplicaSet>),
    DaemonSet(Arc<apps::DaemonSet>),
    StatefulSet(Arc<apps::StatefulSet>),
    Job(Arc<batch::Job>),
    CronJob(Arc<batch::CronJob>),
    /// A kind Mast does not know, kept as written.
    Unknown(Arc<serde_json::Value>),
}

/// One loaded resource. Cloning is cheap: the metadata and the body are shared.
#[derive(Debug, Clone)]
pub struct Resource {
    /// `apiVersion` as written.
    pub api_version: String,
    /// `kind` as written.
    pub kind: String,
    /// The metadata; `namespace` is filled with the default for namespaced kinds.
    pub meta: Arc<ObjectMeta>,
    /// The typed body.
    pub body: Body,
    /// Where the resource starts.
    pub origin: Origin,
    /// Where each of its fields starts.
    pub lines: Arc<LineIndex>,
}

impl Resource {
    /// The resource's name.
    pub fn name(&self) -> &str {
        self.meta.name.as_deref().unwrap_or("")
    }

    /// The resource's namespace (empty for cluster-scoped kinds).
    pub fn namespace(&self) -> &str {
        self.meta.namespace.as_deref().unwrap_or("")
    }

    /// The labels (empty when none).
    pub fn labels(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.meta.labels.as_ref().unwrap_or(&EMPTY)
    }

    /// The annotations (empty when none).
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.meta.annotations.as_ref().unwrap_or(&EMPTY)
    }

    /// The known kind, or `None` for kinds Mast does not know.
    pub fn known_kind(&self) -> Option<Kind> {
        Kind::lookup(&self.api_version, &self.kind).ok().flatten()
    }

    /// `Kind namespace/name`, for messages.
    pub fn reference(&self) -> ResourceRef {
        ResourceRef {
            kind: self.kind.clone(),
            namespace: self.namespace().to_owned(),
            name: self.name().to_owned(),
        }
    }

    /// The source position of a field path such as `spec.http[0].route`.
    pub fn origin_of(&self, field: &str) -> Origin {
        Origin {
            file: self.origin.file.clone(),
            line: self.lines.line_of(field).unwrap_or(self.origin.line),
        }
    }
}

macro_rules! accessors {
    ($( $fn:ident => $variant:ident : $ty:ty; )+) => {
        impl Resource {
            $(
                #[doc = concat!("The body when the resource is a `", stringify!($variant), "`.")]
                pub fn $fn(&self) -> Option<&$ty> {
                    match &self.body { Body::$variant(b) => Some(b), _ => None }
                }
            )+
        }
    };
}

accessors! {
    as_virtual_service => VirtualService: VirtualService;
    as_destination_rule => DestinationRule: DestinationRule;
    as_gateway => Gateway: Gateway;
    as_service_entry => ServiceEntry: ServiceEntry;
    as_workload_entry => WorkloadEntry: WorkloadEntry;
    as_sidecar => Sidecar: Sidecar;
    as_peer_authentication => PeerAuthentication: PeerAuthentication;
    as_authorization_policy => AuthorizationPolicy: AuthorizationPolicy;
    as_request_authentication => RequestAuthentication: RequestAuthentication;
    as_local_workload => LocalWorkload: LocalWorkload;
    as_local_gateway => LocalGateway: LocalGateway;
    as_gateway_class => GatewayClass: GatewayClassSpec;
    as_kube_gateway => KubeGateway: GatewaySpec;
    as_http_route => HttpRoute: HttpRouteSpec;
    as_grpc_route => GrpcRoute: GrpcRouteSpec;
    as_tcp_route => TcpRoute: TcpRouteSpec;
    as_tls_route => TlsRoute: TlsRouteSpec;
    as_reference_grant => ReferenceGrant: ReferenceGrantSpec;
    as_namespace => Namespace: core::Namespace;
    as_service => Service: core::Service;
    as_endpoints => Endpoints: core::Endpoints;
    as_pod => Pod: core::Pod;
    as_config_map => ConfigMap: core::ConfigMap;
    as_secret => Secret: core::Secret;
    as_deployment => Deployment: apps::Deployment;
    as_replica_set => ReplicaSet: apps::ReplicaSet;
    as_daemon_set => DaemonSet: apps::DaemonSet;
    as_stateful_set => StatefulSet: apps::StatefulSet;
    as_job => Job: batch::Job;
    as_cron_job => CronJob: batch::CronJob;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_versions() {
        assert_eq!(
            Kind::lookup("networking.istio.io/v1alpha3", "VirtualService"),
            Ok(Some(Kind::VirtualService))
        );
        assert_eq!(
            Kind::lookup("networking.istio.io/v1", "VirtualService"),
            Ok(Some(Kind::VirtualService))
        );
        assert!(Kind::lookup("networking.istio.io/v2", "VirtualService").is_err());
        assert_eq!(
            Kind::lookup("gateway.networking.k8s.io/v1", "Gateway"),
            Ok(Some(Kind::KubeGateway))
        );
        assert_eq!(
            Kind::lookup("networking.istio.io/v1", "Gateway"),
            Ok(Some(Kind::Gateway))
        );
        assert_eq!(Kind::lookup("example.com/v1", "Gateway"), Ok(None));
        assert_eq!(Kind::KubeGateway.name(), "Gateway");
        assert_eq!(
            Kind::lookup("gateway.networking.k8s.io/v1beta1", "HTTPRoute"),
            Ok(Some(Kind::HttpRoute))
        );
        assert!(Kind::lookup("gateway.networking.k8s.io/v1", "TCPRoute").is_err());
        assert_eq!(Kind::lookup("v1", "Service"), Ok(Some(Kind::Service)));
        assert_eq!(Kind::lookup("example.com/v1", "Widget"), Ok(None));
        assert_eq!(
            Kind::lookup("mast.dev/v1alpha1", "LocalWorkload"),
            Ok(Some(Kind::LocalWorkload))
        );
        assert!(Kind::lookup("mast.dev/v1", "LocalWorkload").is_err());
    }
}
