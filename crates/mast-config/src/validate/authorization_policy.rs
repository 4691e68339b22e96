//! Validation of `AuthorizationPolicy`, following Istio's `pkg/config/validation`.

use super::Report;
use crate::security::AuthorizationPolicy;
use crate::resource::Resource;

/// Checks a `AuthorizationPolicy`; `res` gives its name, namespace and API version.
pub(crate) fn validate(_spec: &AuthorizationPolicy, _res: &Resource, _r: &mut Report) {}
