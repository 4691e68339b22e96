//! What the server serves: the [`Generator`] seam between the ADS protocol machinery and
//! translation. The default, [`MastGenerator`], is `mast_xds::generate` with
//! `mast_model::diff`, sharing outbound resources between proxies of the same
//! [`ShareKey`]; tests and embedders can plug in their own.

use std::collections::BTreeSet;

use mast_core::Hostname;
use mast_model::{Change, MeshSnapshot, ProxyNode};
use mast_xds::{NamedResource, Part, ShareKey};

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

    /// The key under which `proxy`'s [`Part::Shared`] resources are shared with other
    /// proxies, or `None` (the default) when this generator does not share: then
    /// [`Self::generate`] gives everything and [`Self::generate_part`] is not called.
    fn share_key(&self, snapshot: &MeshSnapshot, proxy: &ProxyNode) -> Option<ShareKey> {
        let _ = (snapshot, proxy);
        None
    }

    /// One part of the resources of `type_url` (only called when [`Self::share_key`] gives a
    /// key): the shared part must be equal for every proxy of the same key; the two parts
    /// together are what [`Self::generate`] gives.
    fn generate_part(
        &self,
        snapshot: &MeshSnapshot,
        proxy: &ProxyNode,
        type_url: &str,
        part: Part,
    ) -> Vec<NamedResource> {
        match part {
            Part::Shared => self.generate(snapshot, proxy, type_url),
            Part::Own => Vec::new(),
        }
    }

    /// The shared part's endpoint assignments of the services in `hosts` alone, when the
    /// generator can produce them (after an endpoint-only change of those services the
    /// rest of the shared EDS part is reused); `None` (the default) regenerates it all.
    fn generate_shared_endpoints(
        &self,
        snapshot: &MeshSnapshot,
        proxy: &ProxyNode,
        hosts: &BTreeSet<Hostname>,
    ) -> Option<Vec<NamedResource>> {
        let _ = (snapshot, proxy, hosts);
        None
    }

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

    fn share_key(&self, snapshot: &MeshSnapshot, proxy: &ProxyNode) -> Option<ShareKey> {
        Some(ShareKey::of(snapshot, proxy))
    }

    fn generate_part(
        &self,
        snapshot: &MeshSnapshot,
        proxy: &ProxyNode,
        type_url: &str,
        part: Part,
    ) -> Vec<NamedResource> {
        mast_xds::generate_part(snapshot, proxy, type_url, part)
    }

    fn generate_shared_endpoints(
        &self,
        snapshot: &MeshSnapshot,
        proxy: &ProxyNode,
        hosts: &BTreeSet<Hostname>,
    ) -> Option<Vec<NamedResource>> {
        Some(mast_xds::generate_endpoints_for_hosts(
            snapshot, proxy, hosts,
        ))
    }
}
