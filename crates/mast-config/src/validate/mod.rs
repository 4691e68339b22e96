//! Per-resource validation as Istio's `pkg/config/validation` does it: each kind's rules
//! produce errors and warnings separately, each naming the field path. [`validate`]
//! dispatches on the kind; [`Report::into_diagnostics`] adds file:line and the resource.

mod authorization_policy;
pub mod common;
mod destination_rule;
mod gateway;
mod gateway_api;
mod local_gateway;
mod local_workload;
mod peer_authentication;
mod request_authentication;
mod service_entry;
mod sidecar;
mod virtual_service;
mod workload_entry;

use crate::diag::{Diagnostic, Level};
use crate::resource::{Body, Resource};

/// A message about one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMessage {
    /// Full path from the resource root, as in `spec.http[1].route[0].weight`.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// For findings that analysis reports under a code of their own (Istio's
    /// `AnalysisAwareError`), the structured finding.
    pub analysis: Option<Finding>,
}

/// A validation finding that `istioctl analyze` reports with its own code rather than as a
/// plain schema warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// IST0130: a rule can never be used (`rule` as Istio names it, e.g. `#1` or `"name"`).
    UnreachableRule {
        /// The rule.
        rule: String,
        /// Why it is never used.
        reason: String,
    },
    /// IST0131: one match of a rule repeats a match of an earlier rule.
    IneffectiveMatch {
        /// The rule.
        rule: String,
        /// The match within the rule.
        matchno: String,
        /// The earlier rule holding the same match.
        dup: String,
    },
}

/// The outcome of validating one resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Problems that make the resource invalid.
    pub errors: Vec<FieldMessage>,
    /// Problems that Istio accepts but warns about.
    pub warnings: Vec<FieldMessage>,
}

impl Report {
    /// Records an error at `field`.
    pub fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldMessage {
            field: field.into(),
            message: message.into(),
            analysis: None,
        });
    }

    /// Records a warning at `field`.
    pub fn warn(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(FieldMessage {
            field: field.into(),
            message: message.into(),
            analysis: None,
        });
    }

    /// Records a warning that analysis reports under its own code.
    pub fn warn_finding(
        &mut self,
        field: impl Into<String>,
        message: impl Into<String>,
        finding: Finding,
    ) {
        self.warnings.push(FieldMessage {
            field: field.into(),
            message: message.into(),
            analysis: Some(finding),
        });
    }

    /// Whether there are no errors (warnings allowed).
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    /// The messages as diagnostics naming `resource`'s file, line of each field, and itself.
    pub fn into_diagnostics(self, resource: &Resource) -> Vec<Diagnostic> {
        let tag = |level: Level| {
            move |m: FieldMessage| Diagnostic {
                level,
                origin: Some(resource.origin_of(&m.field)),
                resource: Some(resource.reference()),
                field: Some(m.field),
                message: m.message,
            }
        };
        let mut out: Vec<Diagnostic> = self.errors.into_iter().map(tag(Level::Error)).collect();
        out.extend(self.warnings.into_iter().map(tag(Level::Warning)));
        out
    }
}

/// Validates one resource by the rules of its kind. Kinds Mast does not know are reported
/// as a warning, never dropped silently.
pub fn validate(resource: &Resource) -> Report {
    let mut r = Report::default();
    match &resource.body {
        Body::VirtualService(s) => virtual_service::validate(s, resource, &mut r),
        Body::DestinationRule(s) => destination_rule::validate(s, resource, &mut r),
        Body::Gateway(s) => gateway::validate(s, resource, &mut r),
        Body::ServiceEntry(s) => service_entry::validate(s, resource, &mut r),
        Body::WorkloadEntry(s) => workload_entry::validate(s, resource, &mut r),
        Body::Sidecar(s) => sidecar::validate(s, resource, &mut r),
        Body::PeerAuthentication(s) => peer_authentication::validate(s, resource, &mut r),
        Body::AuthorizationPolicy(s) => authorization_policy::validate(s, resource, &mut r),
        Body::RequestAuthentication(s) => request_authentication::validate(s, resource, &mut r),
        Body::LocalWorkload(s) => local_workload::validate(s, resource, &mut r),
        Body::LocalGateway(s) => local_gateway::validate(s, resource, &mut r),
        Body::GatewayClass(s) => gateway_api::gateway_class(s, resource, &mut r),
        Body::KubeGateway(s) => gateway_api::gateway(s, resource, &mut r),
        Body::HttpRoute(s) => gateway_api::http_route(s, resource, &mut r),
        Body::GrpcRoute(s) => gateway_api::grpc_route(s, resource, &mut r),
        Body::TcpRoute(s) => gateway_api::tcp_route(s, resource, &mut r),
        Body::TlsRoute(s) => gateway_api::tls_route(s, resource, &mut r),
        Body::ReferenceGrant(s) => gateway_api::reference_grant(s, resource, &mut r),
        Body::Unknown(_) => r.warn(
            "kind",
            format!(
                "unknown kind {} ({}): Mast keeps it but does not act on it",
                resource.kind, resource.api_version
            ),
        ),
        // Kubernetes kinds are checked by their schema when loaded; analyzers do the rest.
        _ => {}
    }
    r
}

/// Validates every resource and returns their messages as diagnostics, errors and warnings
/// together, in resource order.
pub fn validate_all(resources: &[Resource]) -> Vec<Diagnostic> {
    resources
        .iter()
        .flat_map(|r| validate(r).into_diagnostics(r))
        .collect()
}

/// Test support: loads `yaml` (which must decode cleanly) and validates its only resource.
#[cfg(test)]
pub(crate) fn check(yaml: &str) -> Report {
    let out = crate::load::load_str(yaml, "test.yaml", &crate::load::LoadOptions::default());
    assert!(
        out.diagnostics.is_empty(),
        "load failed: {:?}",
        out.diagnostics
    );
    assert_eq!(out.resources.len(), 1, "expected one resource");
    validate(&out.resources[0])
}

/// Test support: loads `yaml` and returns the load failure it must produce.
#[cfg(test)]
pub(crate) fn load_error(yaml: &str) -> Diagnostic {
    let out = crate::load::load_str(yaml, "test.yaml", &crate::load::LoadOptions::default());
    assert_eq!(
        out.diagnostics.len(),
        1,
        "expected one load failure, got {:?}",
        out.diagnostics
    );
    out.diagnostics.into_iter().next().expect("one diagnostic")
}

/// Test support: the fields of a report's errors.
#[cfg(test)]
pub(crate) fn error_fields(r: &Report) -> Vec<&str> {
    r.errors.iter().map(|e| e.field.as_str()).collect()
}
