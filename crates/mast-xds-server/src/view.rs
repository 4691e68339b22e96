//! One stream's view of the mesh: the resources generated for its proxy per type, with
//! their versions and content hashes, regenerated only when a [`PushEvent`] touches a type.
//! Shared by the state-of-the-world and delta streams.

use std::collections::BTreeMap;
use std::sync::Arc;

use mast_model::ProxyNode;
use mast_xds::NamedResource;

use crate::generator::Generator;
use crate::push::PushEvent;
use crate::version::{Fnv, resource_hash};

/// The resources of one type as last generated for this proxy.
#[derive(Debug, Clone)]
pub(crate) struct Generated {
    /// The type version: the snapshot version at which this content last changed.
    pub version: String,
    /// Sorted by name.
    pub resources: Arc<[NamedResource]>,
    /// Content hash of each resource, parallel to `resources`.
    pub hashes: Vec<u64>,
    /// Hash of the whole set.
    pub digest: u64,
}

impl Generated {
    fn new(mut resources: Vec<NamedResource>, version: String) -> Self {
        resources.sort_by(|a, b| a.name.cmp(&b.name));
        resources.dedup_by(|a, b| a.name == b.name);
        let hashes: Vec<u64> = resources
            .iter()
            .map(|r| resource_hash(&r.resource))
            .collect();
        let digest = digest(resources.iter().zip(&hashes));
        Self {
            version,
            resources: resources.into(),
            hashes,
            digest,
        }
    }
}

/// Hash of a set of (resource, content hash) pairs.
pub(crate) fn digest<'a>(entries: impl Iterator<Item = (&'a NamedResource, &'a u64)>) -> u64 {
    let mut h = Fnv::new();
    for (r, hash) in entries {
        h.write(r.name.as_bytes()).write_u64(*hash);
    }
    h.finish()
}

/// Generated resources per type for one proxy.
pub(crate) struct ProxyView {
    proxy: ProxyNode,
    generator: Arc<dyn Generator>,
    event: Arc<PushEvent>,
    types: BTreeMap<String, Generated>,
}

impl ProxyView {
    /// A view starting at `event`; nothing is generated until asked for.
    pub(crate) fn new(
        proxy: ProxyNode,
        generator: Arc<dyn Generator>,
        event: Arc<PushEvent>,
    ) -> Self {
        Self {
            proxy,
            generator,
            event,
            types: BTreeMap::new(),
        }
    }

    /// The proxy this view is for.
    pub(crate) fn proxy(&self) -> &ProxyNode {
        &self.proxy
    }

    /// The resources of `type_url`, generated now if never asked for before.
    pub(crate) fn get(&mut self, type_url: &str) -> &Generated {
        let (event, generator, proxy) = (&self.event, &self.generator, &self.proxy);
        self.types.entry(type_url.to_owned()).or_insert_with(|| {
            let resources = generator.generate(&event.snapshot, proxy, type_url);
            Generated::new(resources, event.type_version(type_url))
        })
    }

    /// Moves to `event`, regenerating the types it touches. Returns the types whose content
    /// changed, in push order (CDS, EDS, LDS, RDS, then any other type by name).
    pub(crate) fn advance(&mut self, event: Arc<PushEvent>) -> Vec<String> {
        let seen = self.event.seq;
        let mut changed = Vec::new();
        for (type_url, current) in &mut self.types {
            if !event.touches(type_url, seen) {
                continue;
            }
            let resources = self
                .generator
                .generate(&event.snapshot, &self.proxy, type_url);
            let fresh = Generated::new(resources, event.type_version(type_url));
            if fresh.digest != current.digest {
                *current = fresh;
                changed.push(type_url.clone());
            }
        }
        self.event = event;
        changed.sort_by_key(|t| push_rank(t));
        changed
    }
}

/// Position of a type in the push order; unknown types go last.
pub(crate) fn push_rank(type_url: &str) -> (usize, String) {
    let rank = mast_xds::PUSH_ORDER
        .iter()
        .position(|t| *t == type_url)
        .unwrap_or(mast_xds::PUSH_ORDER.len());
    (rank, type_url.to_owned())
}
