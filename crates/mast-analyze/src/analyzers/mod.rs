//! The analyzers, one module per area, and the list [`all`] that `analyze` runs.

use crate::Analyzer;

mod annotations;
mod destination_rule;
mod gateway;
pub mod gateway_api;
mod injection;
mod schema;
mod security;
mod service;
pub(crate) mod service_entry;
mod sidecar;
mod virtual_service;

/// Every analyzer, in the order they run.
pub fn all() -> Vec<Box<dyn Analyzer>> {
    let mut all: Vec<Box<dyn Analyzer>> = vec![
        Box::new(schema::SchemaAnalyzer),
        Box::new(annotations::AnnotationAnalyzer),
        Box::new(injection::InjectionAnalyzer),
        Box::new(service::PortNameAnalyzer),
        Box::new(service::DeploymentServicesAnalyzer),
    ];
    all.extend(virtual_service::analyzers());
    all.extend(destination_rule::analyzers());
    all.extend(gateway::analyzers());
    all.extend(gateway_api::analyzers());
    all.extend(service_entry::analyzers());
    all.extend(sidecar::analyzers());
    all.extend(security::analyzers());
    all
}
