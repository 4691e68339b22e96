//! One module per `mastctl` verb.

pub mod analyze;
pub mod proxy_config;
pub mod proxy_status;
mod table;
pub mod validate;
pub mod version;
