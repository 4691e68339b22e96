//! `RequestAuthentication` (security.istio.io v1beta1/v1): the spec types, field for field as Istio's API.

use serde::{Deserialize, Serialize};

/// The spec of a `RequestAuthentication`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestAuthentication {}
