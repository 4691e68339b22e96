//! One module per `mastctl` verb.

pub mod analyze;
pub mod validate;
pub mod version;
