//! `networking.istio.io` (v1alpha3, v1beta1, v1): VirtualService, DestinationRule, Gateway,
//! ServiceEntry, WorkloadEntry and Sidecar specs. The three API versions share one schema.

pub mod destination_rule;
pub mod gateway;
pub mod service_entry;
pub mod sidecar;
pub mod virtual_service;
pub mod workload_entry;

pub use destination_rule::DestinationRule;
pub use gateway::Gateway;
pub use service_entry::ServiceEntry;
pub use sidecar::Sidecar;
pub use virtual_service::VirtualService;
pub use workload_entry::{HEALTH_CHECKS_ANNOTATION, WorkloadEntry};
