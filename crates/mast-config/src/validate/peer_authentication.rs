//! Validation of `PeerAuthentication`, following Istio's `pkg/config/validation`.

use super::Report;
use crate::security::PeerAuthentication;
use crate::resource::Resource;

/// Checks a `PeerAuthentication`; `res` gives its name, namespace and API version.
pub(crate) fn validate(_spec: &PeerAuthentication, _res: &Resource, _r: &mut Report) {}
