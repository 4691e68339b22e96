//! Istio's table of resource annotations (istio/api `annotation/annotations.yaml`): each
//! annotation Istio knows and the resource types it may be applied to, in the table's order.
//!
//! Carried from the generated `annotations.gen.go` (the operator's `install.operator.istio.io/*`
//! annotations are gone from it since Istio 1.24), plus the Pod annotations Istio 1.25 added
//! (`ambient.istio.io/dns-capture`, `istio.io/reroute-virtual-interfaces`).

/// One annotation of Istio's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Annotation {
    /// The annotation's key.
    pub name: &'static str,
    /// The resource types it applies to, as Istio names them (`Any` for every type).
    pub resources: &'static [&'static str],
}

impl Annotation {
    /// Whether the annotation may be applied to a resource of type `kind`.
    pub fn applies_to(&self, kind: &str) -> bool {
        self.resources.iter().any(|r| *r == ANY || *r == kind)
    }
}

/// The resource type that matches every resource.
const ANY: &str = "Any";

const POD: &[&str] = &["Pod"];
const SERVICE: &[&str] = &["Service"];
const GATEWAY: &[&str] = &["Gateway"];
const WORKLOAD_ENTRY: &[&str] = &["WorkloadEntry"];

macro_rules! table {
    ($( $name:literal => $resources:expr; )+) => {
        /// Every annotation Istio knows.
        pub(super) static ANNOTATIONS: &[Annotation] = &[
            $( Annotation { name: $name, resources: $resources }, )+
        ];
    };
}

table! {
    "alpha.istio.io/canonical-serviceaccounts" => SERVICE;
    "alpha.istio.io/kubernetes-serviceaccounts" => SERVICE;
    "ambient.istio.io/bypass-inbound-capture" => POD;
    "ambient.istio.io/dns-capture" => POD;
    "ambient.istio.io/redirection" => POD;
    "ambient.istio.io/waypoint-inbound-binding" => &["GatewayClass", "Gateway"];
    "galley.istio.io/analyze-suppress" => &[ANY];
    "gateway.istio.io/controller-version" => &[ANY];
    "gateway.istio.io/name-override" => GATEWAY;
    "gateway.istio.io/service-account" => GATEWAY;
    "inject.istio.io/templates" => POD;
    "istio.io/autoRegistrationGroup" => WORKLOAD_ENTRY;
    "istio.io/connectedAt" => WORKLOAD_ENTRY;
    "istio.io/disconnectedAt" => WORKLOAD_ENTRY;
    "istio.io/dry-run" => &["AuthorizationPolicy"];
    "istio.io/reroute-virtual-interfaces" => POD;
    "istio.io/rev" => POD;
    "istio.io/workloadController" => WORKLOAD_ENTRY;
    "kubernetes.io/ingress.class" => &["Ingress"];
    "networking.istio.io/exportTo" => SERVICE;
    "networking.istio.io/service-type" => GATEWAY;
    "networking.istio.io/traffic-distribution" => &["Service", "ServiceEntry"];
    "prometheus.istio.io/merge-metrics" => POD;
    "proxy.istio.io/config" => POD;
    "proxy.istio.io/overrides" => POD;
    "readiness.status.sidecar.istio.io/applicationPorts" => POD;
    "readiness.status.sidecar.istio.io/failureThreshold" => POD;
    "readiness.status.sidecar.istio.io/initialDelaySeconds" => POD;
    "readiness.status.sidecar.istio.io/periodSeconds" => POD;
    "sidecar.istio.io/agentLogLevel" => POD;
    "sidecar.istio.io/bootstrapOverride" => POD;
    "sidecar.istio.io/componentLogLevel" => POD;
    "sidecar.istio.io/discoveryAddress" => POD;
    "sidecar.istio.io/enableCoreDump" => POD;
    "sidecar.istio.io/extraStatTags" => POD;
    "sidecar.istio.io/inject" => POD;
    "sidecar.istio.io/interceptionMode" => POD;
    "sidecar.istio.io/logLevel" => POD;
    "sidecar.istio.io/nativeSidecar" => POD;
    "sidecar.istio.io/proxyCPU" => POD;
    "sidecar.istio.io/proxyCPULimit" => POD;
    "sidecar.istio.io/proxyImage" => POD;
    "sidecar.istio.io/proxyImageType" => POD;
    "sidecar.istio.io/proxyMemory" => POD;
    "sidecar.istio.io/proxyMemoryLimit" => POD;
    "sidecar.istio.io/rewriteAppHTTPProbers" => POD;
    "sidecar.istio.io/statsHistogramBuckets" => POD;
    "sidecar.istio.io/statsInclusionPrefixes" => POD;
    "sidecar.istio.io/statsInclusionRegexps" => POD;
    "sidecar.istio.io/statsInclusionSuffixes" => POD;
    "sidecar.istio.io/status" => POD;
    "sidecar.istio.io/userVolume" => POD;
    "sidecar.istio.io/userVolumeMount" => POD;
    "status.sidecar.istio.io/port" => POD;
    "topology.istio.io/controlPlaneClusters" => &["Namespace"];
    "traffic.istio.io/nodeSelector" => SERVICE;
    "traffic.sidecar.istio.io/excludeInboundPorts" => POD;
    "traffic.sidecar.istio.io/excludeInterfaces" => POD;
    "traffic.sidecar.istio.io/excludeOutboundIPRanges" => POD;
    "traffic.sidecar.istio.io/excludeOutboundPorts" => POD;
    "traffic.sidecar.istio.io/includeInboundPorts" => POD;
    "traffic.sidecar.istio.io/includeOutboundIPRanges" => POD;
    "traffic.sidecar.istio.io/includeOutboundPorts" => POD;
    "traffic.sidecar.istio.io/kubevirtInterfaces" => POD;
}

/// The table's entry for annotation `name`.
pub(super) fn lookup(name: &str) -> Option<&'static Annotation> {
    ANNOTATIONS.iter().find(|a| a.name == name)
}
