//! One stream's view of the mesh: the resources generated for its proxy per type, with
//! their versions and content hashes, regenerated only when a [`PushEvent`] touches a type.
//! Shared by the state-of-the-world and delta streams.
//!
//! A type's resources are a [`Generated`]: a part shared with every proxy of the same
//! [`mast_xds::ShareKey`] (generated once, see [`crate::share`]) and the proxy's own part.
//! Parts are immutable and reference counted, so a thousand proxies of one namespace hold
//! one copy of their outbound configuration.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mast_model::ProxyNode;
use mast_xds::{NamedResource, ShareKey};

use crate::push::PushEvent;
use crate::service::Gone;
use crate::share::Generation;
use crate::version::{Fnv, resource_hash};

/// What changed in a part since the part it replaced.
#[derive(Debug, Clone)]
pub(crate) struct PartDiff {
    /// The [`Part::id`] of the replaced part.
    pub from: u64,
    /// Indexes of resources that are new or whose content changed.
    pub changed: Vec<usize>,
    /// Whether some resource of the replaced part is gone.
    pub removed: bool,
}

/// Resources sorted and unique by name, with their content hashes.
#[derive(Debug)]
pub(crate) struct Part {
    /// Unique per part in this process.
    pub id: u64,
    /// Sorted by name, unique.
    pub resources: Vec<NamedResource>,
    /// Content hash of each resource, parallel to `resources`.
    pub hashes: Vec<u64>,
    /// Hash of the whole part.
    pub digest: u64,
    /// What changed since the part this one replaced, when known.
    pub since: Option<PartDiff>,
}

impl Part {
    /// Sorts (first of each name wins) and hashes `resources`.
    pub(crate) fn new(mut resources: Vec<NamedResource>) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        resources.sort_by(|a, b| a.name.cmp(&b.name));
        resources.dedup_by(|later, earlier| later.name == earlier.name);
        let hashes: Vec<u64> = resources
            .iter()
            .map(|r| resource_hash(&r.resource))
            .collect();
        let digest = digest(resources.iter().zip(&hashes));
        Self {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            resources,
            hashes,
            digest,
            since: None,
        }
    }

    /// Records what changed since `prev` (both sorted by name).
    pub(crate) fn diff_from(&mut self, prev: &Part) {
        let (mut i, mut j) = (0, 0);
        let mut changed = Vec::new();
        let mut removed = false;
        while i < self.resources.len() {
            match prev.resources.get(j) {
                Some(p) if p.name < self.resources[i].name => {
                    removed = true;
                    j += 1;
                }
                Some(p) if p.name == self.resources[i].name => {
                    if prev.hashes[j] != self.hashes[i] {
                        changed.push(i);
                    }
                    i += 1;
                    j += 1;
                }
                _ => {
                    changed.push(i);
                    i += 1;
                }
            }
        }
        removed |= j < prev.resources.len();
        self.since = Some(PartDiff {
            from: prev.id,
            changed,
            removed,
        });
    }

    /// The content hash of the resource named `name`.
    fn hash_of(&self, name: &str) -> Option<u64> {
        self.resources
            .binary_search_by(|r| r.name.as_str().cmp(name))
            .ok()
            .map(|i| self.hashes[i])
    }

    fn iter(&self) -> impl Iterator<Item = (&NamedResource, u64)> {
        self.resources.iter().zip(self.hashes.iter().copied())
    }
}

/// Some or all resources of one part, in the part's order.
#[derive(Debug, Clone)]
pub(crate) struct Selection {
    part: Arc<Part>,
    /// `None`: all of them.
    indices: Option<Vec<u32>>,
}

impl Selection {
    /// Every resource of `part`.
    pub(crate) fn all(part: Arc<Part>) -> Self {
        Self {
            part,
            indices: None,
        }
    }

    /// The resources of `part` at `indices`.
    pub(crate) fn some(part: Arc<Part>, indices: Vec<u32>) -> Self {
        Self {
            part,
            indices: Some(indices),
        }
    }

    /// How many resources are selected.
    pub(crate) fn len(&self) -> usize {
        self.indices
            .as_ref()
            .map_or(self.part.resources.len(), Vec::len)
    }

    /// The selected resources.
    pub(crate) fn resources(&self) -> Box<dyn Iterator<Item = &NamedResource> + '_> {
        match &self.indices {
            None => Box::new(self.part.resources.iter()),
            Some(ix) => Box::new(
                ix.iter()
                    .filter_map(|i| self.part.resources.get(*i as usize)),
            ),
        }
    }
}

/// Indexes of `part`'s resources for which `keep` holds, as a selection (`None` if empty).
fn select_where(
    part: &Arc<Part>,
    keep: impl Fn(usize, &NamedResource) -> bool,
) -> Option<Selection> {
    let indices: Vec<u32> = part
        .resources
        .iter()
        .enumerate()
        .filter(|(i, r)| keep(*i, r))
        .filter_map(|(i, _)| u32::try_from(i).ok())
        .collect();
    if indices.is_empty() {
        None
    } else if indices.len() == part.resources.len() {
        Some(Selection::all(part.clone()))
    } else {
        Some(Selection::some(part.clone(), indices))
    }
}

/// The resources of one type as last generated for this proxy: the shared part, then the
/// proxy's own resources (those whose names the shared part lacks).
#[derive(Debug, Clone)]
pub(crate) struct Generated {
    /// The type version: the snapshot version at which this content last changed.
    pub version: String,
    shared: Option<Arc<Part>>,
    own: Arc<Part>,
    /// Hash of the whole set.
    pub digest: u64,
}

/// What a proxy holding one [`Generated`] lacks of another.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// Indexes of new or changed resources in the shared part.
    pub shared: Vec<usize>,
    /// Indexes of new or changed resources in the own part.
    pub own: Vec<usize>,
    /// Whether some resource held is gone.
    pub removed: bool,
}

impl Generated {
    /// Combines a shared part and the proxy's own part.
    pub(crate) fn new(version: String, shared: Option<Arc<Part>>, own: Part) -> Self {
        let own = match &shared {
            Some(s) if own.resources.iter().any(|r| s.hash_of(&r.name).is_some()) => {
                let kept = own
                    .resources
                    .into_iter()
                    .filter(|r| s.hash_of(&r.name).is_none())
                    .collect();
                Part::new(kept)
            }
            _ => own,
        };
        let mut h = Fnv::new();
        h.write_u64(shared.as_ref().map_or(0, |s| s.digest))
            .write_u64(own.digest);
        Self {
            version,
            digest: h.finish(),
            shared,
            own: Arc::new(own),
        }
    }

    /// Every resource with its content hash: shared first, then own, each sorted by name.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&NamedResource, u64)> {
        self.shared
            .iter()
            .flat_map(|s| s.iter())
            .chain(self.own.iter())
    }

    /// How many resources there are.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shared.as_ref().map_or(0, |s| s.resources.len()) + self.own.resources.len()
    }

    /// The content hash of the resource named `name`.
    pub(crate) fn hash_of(&self, name: &str) -> Option<u64> {
        self.shared
            .as_ref()
            .and_then(|s| s.hash_of(name))
            .or_else(|| self.own.hash_of(name))
    }

    /// A copy of every resource (for the config dump).
    pub(crate) fn to_vec(&self) -> Vec<NamedResource> {
        self.iter().map(|(r, _)| r.clone()).collect()
    }

    /// What a proxy that holds `held` lacks of `self`: resources new or changed since, and
    /// whether some are gone. Uses the shared part's recorded diff when `held` has its
    /// predecessor, so a thousand proxies do not compare thousands of resources each.
    pub(crate) fn changes_since(&self, held: &Generated) -> Changes {
        let mut out = Changes::default();
        let lacks = |p: &Part, i: usize| held.hash_of(&p.resources[i].name) != Some(p.hashes[i]);
        match (&self.shared, &held.shared) {
            (Some(new), Some(old)) if Arc::ptr_eq(new, old) => {}
            (Some(new), Some(old)) if new.since.as_ref().is_some_and(|d| d.from == old.id) => {
                if let Some(d) = &new.since {
                    out.removed |= d.removed;
                    out.shared.clone_from(&d.changed);
                }
            }
            (Some(new), old) => {
                out.shared = (0..new.resources.len())
                    .filter(|i| lacks(new, *i))
                    .collect();
                out.removed |= old
                    .iter()
                    .flat_map(|o| o.resources.iter())
                    .any(|r| self.hash_of(&r.name).is_none());
            }
            (None, old) => {
                out.removed |= old.as_ref().is_some_and(|o| !o.resources.is_empty());
            }
        }
        if !Arc::ptr_eq(&self.own, &held.own) {
            out.own = (0..self.own.resources.len())
                .filter(|i| lacks(&self.own, *i))
                .collect();
            out.removed |= held
                .own
                .resources
                .iter()
                .any(|r| self.hash_of(&r.name).is_none());
        }
        out
    }

    /// The resources for which `keep` holds, as selections of the parts.
    pub(crate) fn select(&self, keep: impl Fn(&NamedResource) -> bool) -> Vec<Selection> {
        let shared = self
            .shared
            .as_ref()
            .and_then(|p| select_where(p, |_, r| keep(r)));
        let own = select_where(&self.own, |_, r| keep(r));
        shared.into_iter().chain(own).collect()
    }

    /// The resources of `changes` for which `keep` holds, as selections of the parts.
    pub(crate) fn select_changes(
        &self,
        changes: &Changes,
        keep: impl Fn(&NamedResource) -> bool,
    ) -> Vec<Selection> {
        let pick = |part: &Arc<Part>, ix: &[usize]| {
            let indices: Vec<u32> = ix
                .iter()
                .filter(|i| keep(&part.resources[**i]))
                .filter_map(|i| u32::try_from(*i).ok())
                .collect();
            (!indices.is_empty()).then(|| Selection::some(part.clone(), indices))
        };
        let shared = self.shared.as_ref().and_then(|p| pick(p, &changes.shared));
        shared
            .into_iter()
            .chain(pick(&self.own, &changes.own))
            .collect()
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
    proxy: Arc<ProxyNode>,
    generation: Arc<Generation>,
    event: Arc<PushEvent>,
    key: Option<ShareKey>,
    types: BTreeMap<String, Arc<Generated>>,
}

impl ProxyView {
    /// A view starting at `event`; nothing is generated until asked for.
    pub(crate) fn new(
        proxy: ProxyNode,
        generation: Arc<Generation>,
        event: Arc<PushEvent>,
    ) -> Self {
        let key = generation.share_key(&event.snapshot, &proxy);
        Self {
            proxy: Arc::new(proxy),
            generation,
            event,
            key,
            types: BTreeMap::new(),
        }
    }

    /// The proxy this view is for.
    pub(crate) fn proxy(&self) -> &ProxyNode {
        &self.proxy
    }

    /// The resources of `type_url`, generated now if never asked for before.
    pub(crate) async fn get(&mut self, type_url: &str) -> Result<Arc<Generated>, Gone> {
        if let Some(g) = self.types.get(type_url) {
            return Ok(g.clone());
        }
        let g = Arc::new(self.generate(type_url).await?);
        self.types.insert(type_url.to_owned(), g.clone());
        Ok(g)
    }

    async fn generate(&self, type_url: &str) -> Result<Generated, Gone> {
        self.generation
            .generate(&self.event, &self.proxy, self.key.as_ref(), type_url)
            .await
    }

    /// Moves to `event`, regenerating the types it touches. Returns the types whose content
    /// changed, in push order (CDS, EDS, LDS, RDS, then any other type by name).
    pub(crate) async fn advance(&mut self, event: Arc<PushEvent>) -> Result<Vec<String>, Gone> {
        let seen = self.event.seq;
        self.key = self.generation.share_key(&event.snapshot, &self.proxy);
        self.event = event;
        let mut changed = Vec::new();
        let touched: Vec<String> = self
            .types
            .keys()
            .filter(|t| self.event.touches(t, seen))
            .cloned()
            .collect();
        for type_url in touched {
            let fresh = self.generate(&type_url).await?;
            let differs = self
                .types
                .get(&type_url)
                .is_none_or(|current| current.digest != fresh.digest);
            if differs {
                self.types.insert(type_url.clone(), Arc::new(fresh));
                changed.push(type_url);
            }
        }
        changed.sort_by_key(|t| push_rank(t));
        Ok(changed)
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

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::Any;

    fn res(name: &str, value: u8) -> NamedResource {
        NamedResource {
            name: name.into(),
            resource: Any {
                type_url: "t".into(),
                value: vec![value],
            },
        }
    }

    fn names(g: &Generated, c: &Changes) -> Vec<String> {
        let mut v: Vec<String> = g
            .select_changes(c, |_| true)
            .iter()
            .flat_map(Selection::resources)
            .map(|r| r.name.clone())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn changes_use_the_recorded_diff_or_compare() {
        let old = Arc::new(Part::new(vec![res("a", 1), res("b", 1), res("c", 1)]));
        let mut new = Part::new(vec![res("a", 1), res("b", 2), res("d", 1)]);
        new.diff_from(&old);
        let d = new.since.clone().unwrap();
        assert_eq!(d.changed, vec![1, 2]);
        assert!(d.removed);
        let new = Arc::new(new);
        let held = Generated::new("1".into(), Some(old.clone()), Part::new(vec![res("x", 1)]));
        let now = Generated::new(
            "2".into(),
            Some(new.clone()),
            Part::new(vec![res("x", 2), res("a", 9)]),
        );
        // "a" of the own part is shadowed by the shared one.
        assert_eq!(now.len(), 4);
        let c = now.changes_since(&held);
        assert_eq!(names(&now, &c), ["b", "d", "x"]);
        assert!(c.removed);
        // Without the recorded diff (a part not derived from the held one): same answer.
        let unrelated = Arc::new(Part::new(vec![res("a", 1), res("b", 2), res("d", 1)]));
        let now2 = Generated::new("2".into(), Some(unrelated), Part::new(vec![res("x", 2)]));
        let c = now2.changes_since(&held);
        assert_eq!(names(&now2, &c), ["b", "d", "x"]);
        assert!(c.removed);
        // The same parts: nothing.
        let c = held.changes_since(&held.clone());
        assert!(c.shared.is_empty() && c.own.is_empty() && !c.removed);
        // Selections keep the parts' order and skip what is filtered out.
        let sel = now.select(|r| r.name != "b");
        let picked: Vec<&str> = sel
            .iter()
            .flat_map(Selection::resources)
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(picked, ["a", "d", "x"]);
        assert_eq!(sel.iter().map(Selection::len).sum::<usize>(), 3);
    }
}
