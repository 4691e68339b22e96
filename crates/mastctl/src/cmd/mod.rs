//! One module per `mastctl` verb.

pub mod analyze;
pub mod dashboard;
pub mod exec;
pub mod install;
pub mod kube_inject;
pub mod proxy_config;
pub mod proxy_status;
mod table;
pub mod up;
pub mod validate;
pub mod version;
pub mod x;
