//! What the server serves: the [`Generator`] seam between the ADS protocol machinery and
//! translation. The default, [`MastGenerator`], is `mast_xds::generate` with
//! `mast_model::diff`; tests and embedders can plug in their own.

use mast_model::{Change, MeshSnapshot, ProxyNode};
use mast_xds::NamedResource;

/// Produces the resources of one type for one proxy, and says what a snapshot change
/// touches. Must be pure: equal inputs give equal outputs.
pub trait Generator: Send + Sync + 'static {
    /// Every resource of `type_url` for `proxy` in `snapshot`; an unknown type gives nothing.
    fn generate(
        &self,
        snapshot: &MeshSnapshot,
        proxy: &ProxyNode,
        type_url: &str,
    ) -> Vec<NamedResource>;

    /// What changed from `old` to `new`: [`Change::EndpointsOnly`] re-generates EDS alone,
    /// [`Change::None`] nothing, [`Change::Full`] every type.
    fn change(&self, old: &MeshSnapshot, new: &MeshSnapshot) -> Change {
        mast_model::diff(old, new)
    }
}

/// The production generator: `mast_xds::generate` and `mast_model::diff`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MastGenerator;

impl Generator for MastGenerator {
    fn generate(
        &self,
        snapshot: &MeshSnapshot,
        proxy: &ProxyNode,
        type_url: &str,
    ) -> Vec<NamedResource> {
        mast_xds::generate(snapshot, proxy, type_url)
    }
}
