//! Validation of `RequestAuthentication`, following Istio's `pkg/config/validation`.

use super::Report;
use crate::security::RequestAuthentication;
use crate::resource::Resource;

/// Checks a `RequestAuthentication`; `res` gives its name, namespace and API version.
pub(crate) fn validate(_spec: &RequestAuthentication, _res: &Resource, _r: &mut Report) {}
