//! The message catalog: every code Mast reports, with Istio's name, level and wording
//! (`pkg/config/analysis/msg/messages.yaml`), and [`Message`], one report about a resource.

use std::fmt;

use mast_config::{Diagnostic, Level, Origin, Resource, ResourceRef};

/// A kind of message: code, name and level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageType {
    /// `IST0101`.
    pub code: &'static str,
    /// `ReferencedResourceNotFound`.
    pub name: &'static str,
    /// How bad it is.
    pub level: Level,
}

impl MessageType {
    /// The documentation page for the code, as istioctl links it.
    pub fn documentation_url(&self) -> String {
        if self.code.starts_with("MST") {
            // Mast's own codes (no Istio page): the table in docs/analyzers.md.
            return "https://github.com/mast-mesh/mast/blob/main/docs/analyzers.md#masts-own-codes-mst"
                .to_owned();
        }
        format!(
            "https://istio.io/latest/docs/reference/config/analysis/{}/",
            self.code.to_ascii_lowercase()
        )
    }
}

macro_rules! catalog {
    ($( $ident:ident = $code:literal $name:literal $level:ident; )+) => {
        $(
            #[doc = concat!("`", $code, "` ", $name, ".")]
            pub const $ident: MessageType = MessageType { code: $code, name: $name, level: Level::$level };
        )+
        /// Every message type in the catalog.
        pub const ALL: &[MessageType] = &[$($ident),+];
    };
}

catalog! {
    INTERNAL_ERROR = "IST0001" "InternalError" Error;
    REFERENCED_RESOURCE_NOT_FOUND = "IST0101" "ReferencedResourceNotFound" Error;
    // Istio 1.5 reported IST0102 as a warning (the seed notes show `Warn [IST0102]`); later
    // versions lowered it to Info. Mast keeps the warning: an uninjected namespace in a
    // mesh is almost always a mistake.
    NAMESPACE_NOT_INJECTED = "IST0102" "NamespaceNotInjected" Warning;
    POD_MISSING_PROXY = "IST0103" "PodMissingProxy" Warning;
    SCHEMA_VALIDATION_ERROR = "IST0106" "SchemaValidationError" Error;
    MISPLACED_ANNOTATION = "IST0107" "MisplacedAnnotation" Warning;
    UNKNOWN_ANNOTATION = "IST0108" "UnknownAnnotation" Warning;
    CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS = "IST0109" "ConflictingMeshGatewayVirtualServiceHosts" Error;
    CONFLICTING_SIDECAR_WORKLOAD_SELECTORS = "IST0110" "ConflictingSidecarWorkloadSelectors" Error;
    MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS = "IST0111" "MultipleSidecarsWithoutWorkloadSelectors" Error;
    VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED = "IST0112" "VirtualServiceDestinationPortSelectorRequired" Error;
    DEPLOYMENT_ASSOCIATED_TO_MULTIPLE_SERVICES = "IST0116" "DeploymentAssociatedToMultipleServices" Warning;
    PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION = "IST0118" "PortNameIsNotUnderNamingConvention" Info;
    NAMESPACE_MULTIPLE_INJECTION_LABELS = "IST0123" "NamespaceMultipleInjectionLabels" Warning;
    NO_MATCHING_WORKLOADS_FOUND = "IST0127" "NoMatchingWorkloadsFound" Warning;
    NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL = "IST0128" "NoServerCertificateVerificationDestinationLevel" Warning;
    NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL = "IST0129" "NoServerCertificateVerificationPortLevel" Warning;
    VIRTUAL_SERVICE_UNREACHABLE_RULE = "IST0130" "VirtualServiceUnreachableRule" Warning;
    VIRTUAL_SERVICE_INEFFECTIVE_MATCH = "IST0131" "VirtualServiceIneffectiveMatch" Info;
    VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY = "IST0132" "VirtualServiceHostNotFoundInGateway" Warning;
    SCHEMA_WARNING = "IST0133" "SchemaWarning" Warning;
    SERVICE_ENTRY_ADDRESSES_REQUIRED = "IST0134" "ServiceEntryAddressesRequired" Warning;
    CONFLICTING_GATEWAYS = "IST0145" "ConflictingGateways" Error;
    DESTINATION_RULE_SUBSET_NOT_SELECT_PODS = "IST0173" "DestinationRuleSubsetNotSelectPods" Error;
    UNKNOWN_DESTINATION_RULE_HOST = "IST0174" "UnknownDestinationRuleHost" Warning;
}

/// One message: its type, its text, the resource it is about and where that resource
/// (or the offending field) is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The message type.
    pub kind: MessageType,
    /// The rendered text.
    pub text: String,
    /// The resource the message is about, when there is one.
    pub resource: Option<ResourceRef>,
    /// The file and line (of the field when known, else of the resource).
    pub reference: Option<Origin>,
}

impl Message {
    /// A message about `resource`, pointing at `field` (a path such as
    /// `spec.http[0].route[0].destination.host`; empty for the resource itself).
    pub fn new(
        kind: MessageType,
        resource: &Resource,
        field: &str,
        text: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            text: text.into(),
            resource: Some(resource.reference()),
            reference: Some(if field.is_empty() {
                resource.origin.clone()
            } else {
                resource.origin_of(field)
            }),
        }
    }

    /// A message about a resource that exists only implicitly (a namespace that workloads
    /// live in but no file declares): no file reference.
    pub fn unplaced(kind: MessageType, resource: ResourceRef, text: impl Into<String>) -> Self {
        Self {
            kind,
            text: text.into(),
            resource: Some(resource),
            reference: None,
        }
    }

    /// IST0106 (or IST0133 for warnings) for a validation finding or a load failure.
    pub fn from_load_failure(d: &Diagnostic) -> Self {
        let kind = if d.level == Level::Error {
            SCHEMA_VALIDATION_ERROR
        } else {
            SCHEMA_WARNING
        };
        let detail = match &d.field {
            Some(f) => format!("{f}: {}", d.message),
            None => d.message.clone(),
        };
        let text = if kind == SCHEMA_VALIDATION_ERROR {
            format!("Schema validation error: {detail}")
        } else {
            format!("Schema validation warning: {detail}")
        };
        Self {
            kind,
            text,
            resource: d.resource.clone(),
            reference: d.origin.clone(),
        }
    }

    /// The level of the message.
    pub fn level(&self) -> Level {
        self.kind.level
    }

    /// `VirtualService default/reviews`, istioctl's "origin".
    pub fn origin(&self) -> Option<String> {
        self.resource.as_ref().map(ToString::to_string)
    }

    /// Whether the message belongs to namespace `ns` (its resource lives there, is that
    /// Namespace, or is cluster-scoped; messages about files with no resource are kept).
    pub fn in_namespace(&self, ns: &str) -> bool {
        match &self.resource {
            None => true,
            Some(r) if r.kind == "Namespace" => r.name == ns,
            Some(r) => r.namespace.is_empty() || r.namespace == ns,
        }
    }

    /// istioctl's order: errors first, then by code, origin, place and text.
    pub(crate) fn sort_key(
        &self,
    ) -> (
        std::cmp::Reverse<Level>,
        &'static str,
        String,
        String,
        String,
    ) {
        let reference = self
            .reference
            .as_ref()
            .map(|o| format!("{}:{:08}", o.file, o.line))
            .unwrap_or_default();
        (
            std::cmp::Reverse(self.kind.level),
            self.kind.code,
            self.origin().unwrap_or_default(),
            reference,
            self.text.clone(),
        )
    }
}

impl fmt::Display for Message {
    /// istioctl's log line: `Error [IST0101] (VirtualService default/a a.yaml:12) Referenced host not found: "b"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.kind.level, self.kind.code)?;
        match (&self.resource, &self.reference) {
            (Some(r), Some(o)) => write!(f, " ({r} {o})")?,
            (Some(r), None) => write!(f, " ({r})")?,
            (None, Some(o)) => write!(f, " ({o})")?,
            (None, None) => {}
        }
        write!(f, " {}", self.text)
    }
}

/// Quotes a string the way Go's `%q` does for the ASCII strings in Istio messages.
pub fn q(s: &str) -> String {
    format!("{s:?}")
}

/// Formats a list the way Go's `%v` does for a `[]string`: `[a b c]`.
pub fn list<T: fmt::Display>(items: &[T]) -> String {
    let parts: Vec<String> = items.iter().map(ToString::to_string).collect();
    format!("[{}]", parts.join(" "))
}
