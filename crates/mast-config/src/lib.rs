//! Istio's configuration API as Rust types, loaded from YAML or JSON with the file and
//! line of every resource, and validated as Istio's `pkg/config/validation` does.
//!
//! Owns: the YAML front end ([`yaml`]), the resource model ([`resource`]), the typed
//! specs of `networking.istio.io` ([`networking`]) and `security.istio.io` ([`security`]),
//! Mast's own `mast.dev` kinds for local meshes ([`local`]),
//! the value types parsed at load time ([`types`]), loading files and folders ([`load`])
//! and per-resource validation ([`validate`]).

pub mod diag;
pub mod gateway_api;
pub mod load;
pub mod local;
pub mod networking;
pub mod resource;
pub mod schema;
pub mod security;
pub mod types;
pub mod validate;
pub mod yaml;

pub use diag::{Diagnostic, Level, Origin, ResourceRef};
pub use load::{LoadOptions, LoadOutput, load_paths, load_str};
pub use resource::{Body, Kind, Resource};
