//! Small identifiers: a resource's namespace and name, and a validated TCP/UDP port number.

use std::fmt;

/// `namespace/name`, the way Kubernetes and Istio identify a resource of a known kind.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct NamespacedName {
    /// The namespace (empty for cluster-scoped resources).
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl NamespacedName {
    /// Builds a namespaced name.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for NamespacedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// A port number is outside 1–65535.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("port number {0} must be in the range 1..65535")]
pub struct PortNumberError(pub i64);

/// A TCP/UDP port number, 1–65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct PortNumber(u16);

impl PortNumber {
    /// Validates a port number.
    pub fn new(n: i64) -> Result<Self, PortNumberError> {
        match u16::try_from(n) {
            Ok(p) if p > 0 => Ok(Self(p)),
            _ => Err(PortNumberError(n)),
        }
    }

    /// The port as a number.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for PortNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert!(PortNumber::new(0).is_err());
        assert!(PortNumber::new(65536).is_err());
        assert_eq!(PortNumber::new(80).unwrap().get(), 80);
    }

    #[test]
    fn display() {
        assert_eq!(NamespacedName::new("default", "a").to_string(), "default/a");
        assert_eq!(NamespacedName::new("", "a").to_string(), "a");
    }
}
