//! Gateway API status as data: the conditions Istio writes on GatewayClasses, Gateways
//! (and their listeners) and routes (`parents[]`). mastd writes them to the status
//! subresource (adding `lastTransitionTime` and `observedGeneration`).

use serde::Serialize;

use mast_config::gateway_api::ParentReference;

/// One condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Condition {
    /// `Accepted`, `Programmed`, `ResolvedRefs`, …
    #[serde(rename = "type")]
    pub r#type: String,
    /// `True` or `False`.
    pub status: String,
    /// A CamelCase reason such as `NotAllowedByListeners`.
    pub reason: String,
    /// For people.
    pub message: String,
}

impl Condition {
    /// A condition; `ok` gives `True`.
    pub fn new(r#type: &str, ok: bool, reason: &str, message: impl Into<String>) -> Self {
        Self {
            r#type: r#type.into(),
            status: if ok { "True" } else { "False" }.into(),
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// Whether the status is `True`.
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

/// A listener's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    /// The listener's name.
    pub name: String,
    /// The route kinds it accepts.
    pub supported_kinds: Vec<RouteKind>,
    /// How many routes attached.
    pub attached_routes: u32,
    /// Its conditions.
    pub conditions: Vec<Condition>,
}

/// A route kind in `supportedKinds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteKind {
    /// Always `gateway.networking.k8s.io`.
    pub group: String,
    /// `HTTPRoute`, `GRPCRoute`, `TCPRoute` or `TLSRoute`.
    pub kind: String,
}

/// A route's status for one parent.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    /// The parent reference as written.
    pub parent_ref: ParentReference,
    /// The controller reporting.
    pub controller_name: String,
    /// `Accepted` and `ResolvedRefs`.
    pub conditions: Vec<Condition>,
}

/// The status body of one object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum StatusBody {
    /// A GatewayClass's (or a Gateway's, with listeners).
    Gateway {
        /// The object's conditions.
        conditions: Vec<Condition>,
        /// The listeners (Gateways only).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        listeners: Vec<ListenerStatus>,
    },
    /// A route's.
    Route {
        /// One entry per parent reference the controller handles.
        parents: Vec<RouteParentStatus>,
    },
}

/// The status of one object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectStatus {
    /// The kind (`GatewayClass`, `Gateway`, `HTTPRoute`, …).
    pub kind: String,
    /// The namespace (empty for GatewayClasses).
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The status to write.
    pub status: StatusBody,
}

impl ObjectStatus {
    /// The conditions of a GatewayClass or Gateway (empty for routes).
    pub fn conditions(&self) -> &[Condition] {
        match &self.status {
            StatusBody::Gateway { conditions, .. } => conditions,
            StatusBody::Route { .. } => &[],
        }
    }

    /// The per-parent statuses of a route (empty for others).
    pub fn parents(&self) -> &[RouteParentStatus] {
        match &self.status {
            StatusBody::Route { parents } => parents,
            StatusBody::Gateway { .. } => &[],
        }
    }
}
