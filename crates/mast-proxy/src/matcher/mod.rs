//! Envoy's leaf matchers shared by the route table, RBAC and the JWT filter's rules, compiled
//! once at conversion: `StringMatcher` ([`StrMatch`]), `safe_regex` ([`full_regex`]) and the
//! route-API `HeaderMatcher` ([`HeaderMatch`]: where the value is read, [`HeaderSource`], and
//! the condition on it, [`HeaderCond`]). Conversion errors are `(field path, reason)` pairs
//! ([`Failure`]); each caller wraps them in its own error (routes: a `RouteConfiguration`
//! `ConfigError`; RBAC and JWT: their `Failure`, the same pair). Matching never allocates,
//! except to join a header sent several times.

mod header;
mod string;

pub use header::{HeaderCond, HeaderMatch, HeaderSource, Pseudo};
pub use string::{StrMatch, full_regex};

/// A conversion failure: the proto field path and the reason.
pub type Failure = (String, String);

fn fail(field: impl Into<String>, reason: impl Into<String>) -> Failure {
    (field.into(), reason.into())
}

/// `path.field`, or `field` at the root.
fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

#[cfg(test)]
mod tests;
