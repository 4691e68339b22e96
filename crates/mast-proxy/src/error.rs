//! The error every xDS conversion returns: which resource, which field, and why. Its text
//! becomes the NACK's `error_detail`, so it names the resource kind and name and the field
//! path as in the proto (`virtual_hosts[0].routes[2].match.safe_regex.regex`).

/// A resource mast-proxy cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {name:?}: {field}: {reason}")]
pub struct ConfigError {
    /// The message type: `Cluster`, `ClusterLoadAssignment`, `Listener`, `RouteConfiguration`.
    pub kind: &'static str,
    /// The resource's name.
    pub name: String,
    /// The field path inside the resource (proto field names).
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl ConfigError {
    /// A new error.
    pub fn new(
        kind: &'static str,
        name: impl Into<String>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            name: name.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }
}
