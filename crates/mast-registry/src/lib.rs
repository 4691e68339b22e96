//! The registry: where mastd's configuration comes from.
//!
//! Owns the [`ConfigStore`] (the current valid resources of every source file, the
//! diagnostics about the rest, published as immutable [`StoreState`]s through a
//! `tokio::sync::watch` channel) and its sources: [`FilesSource`], a watched folder of
//! YAML and JSON files. A resource that fails to load or validate is reported and left
//! out; everything else keeps being served.
//!
//! ```no_run
//! # fn main() -> Result<(), mast_registry::RegistryError> {
//! use mast_registry::{ConfigStore, FilesOptions, FilesSource};
//!
//! let store = ConfigStore::new();
//! let _source = FilesSource::start("config/", store.clone(), FilesOptions::default())?;
//! let mut updates = store.subscribe();
//! let state = updates.borrow_and_update().clone();
//! println!("generation {}: {} resources", state.generation, state.resources.len());
//! # Ok(())
//! # }
//! ```

pub mod error;
pub mod files;
#[cfg(feature = "k8s")]
pub mod kube;
pub mod store;

#[cfg(feature = "k8s")]
pub use crate::kube::{KubeOptions, KubeSource, KubeSourceError, KubeSourceHandle};
pub use error::RegistryError;
pub use files::{FilesOptions, FilesSource, FilesSourceHandle};
pub use store::{Change, ConfigStore, StoreState};
