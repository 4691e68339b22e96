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

use envoy_types::pb::google::protobuf::Any;
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

/// Where one resource's name and value lie in its part's buffers.
#[derive(Debug, Clone, Copy)]
struct Slot {
    name: (u32, u32),
    value: (u32, u32),
    type_url: u16,
}

/// Resources sorted and unique by name, with their content hashes, packed into two buffers
/// (names, values): a part lives for a whole push and is shared by every stream of its key,
/// and one allocation per buffer, instead of three per resource scattered among the
/// generation's freed temporaries, keeps it from pinning megabytes of fragmented heap.
#[derive(Debug)]
pub(crate) struct Part {
    /// Unique per part in this process.
    pub id: u64,
    names: String,
    values: Vec<u8>,
    type_urls: Vec<String>,
    slots: Vec<Slot>,
    /// Content hash of each resource, in order.
    pub hashes: Vec<u64>,
    /// Hash of the whole part.
    pub digest: u64,
    /// What changed since the part this one replaced, when known.
    pub since: Option<PartDiff>,
}

/// One resource of a [`Part`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Res<'a> {
    part: &'a Part,
    slot: Slot,
}

impl<'a> Res<'a> {
    /// The resource name.
    pub(crate) fn name(&self) -> &'a str {
        let (start, len) = self.slot.name;
        self.part
            .names
            .get(start as usize..(start + len) as usize)
            .unwrap_or("")
    }

    /// The packed message's type URL.
    pub(crate) fn type_url(&self) -> &'a str {
        self.part
            .type_urls
            .get(usize::from(self.slot.type_url))
            .map_or("", String::as_str)
    }

    /// The packed message's bytes.
    pub(crate) fn value(&self) -> &'a [u8] {
        let (start, len) = self.slot.value;
        self.part
            .values
            .get(start as usize..(start + len) as usize)
            .unwrap_or(&[])
    }

    /// The length of the packed `Any`'s own encoding.
    fn any_len(&self) -> usize {
        let field = |n: usize| {
            if n == 0 {
                0
            } else {
                1 + prost::encoding::encoded_len_varint(n as u64) + n
            }
        };
        field(self.type_url().len()) + field(self.value().len())
    }

    /// The length of the packed `Any` encoded as message field `tag`.
    pub(crate) fn field_len(&self, tag: u32) -> usize {
        let len = self.any_len();
        prost::encoding::key_len(tag) + prost::encoding::encoded_len_varint(len as u64) + len
    }

    /// Writes the packed `Any` as message field `tag`, byte for byte as prost would.
    pub(crate) fn encode_field(&self, tag: u32, buf: &mut impl prost::bytes::BufMut) {
        use prost::encoding::{WireType, encode_key, encode_varint};
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(self.any_len() as u64, buf);
        for (field, bytes) in [(1, self.type_url().as_bytes()), (2, self.value())] {
            if !bytes.is_empty() {
                encode_key(field, WireType::LengthDelimited, buf);
                encode_varint(bytes.len() as u64, buf);
                buf.put_slice(bytes);
            }
        }
    }

    /// The packed message as an `Any`.
    pub(crate) fn to_any(self) -> Any {
        Any {
            type_url: self.type_url().to_owned(),
            value: self.value().to_vec(),
        }
    }

    /// A copy as a [`NamedResource`].
    pub(crate) fn to_named(self) -> NamedResource {
        NamedResource {
            name: self.name().to_owned(),
            resource: self.to_any(),
        }
    }
}

impl Part {
    /// Sorts (first of each name wins), hashes and packs `resources`.
    pub(crate) fn new(mut resources: Vec<NamedResource>) -> Self {
        resources.sort_by(|a, b| a.name.cmp(&b.name));
        resources.dedup_by(|later, earlier| later.name == earlier.name);
        let entries: Vec<Entry<'_>> = resources.iter().map(Entry::hashed).collect();
        Self::pack(&entries)
    }

    /// `prev` with the resources named in `fresh` replaced (and any new ones added), the
    /// others' hashes reused rather than computed again: after an endpoint change of a few
    /// services, only their assignments are new.
    pub(crate) fn replacing(prev: &Part, mut fresh: Vec<NamedResource>) -> Self {
        fresh.sort_by(|a, b| a.name.cmp(&b.name));
        fresh.dedup_by(|later, earlier| later.name == earlier.name);
        let mut entries = Vec::with_capacity(prev.len() + fresh.len());
        let (mut old, mut new) = (prev.iter().peekable(), fresh.iter().peekable());
        loop {
            let next = match (old.peek(), new.peek()) {
                (Some((o, _)), Some(n)) if o.name() < n.name.as_str() => None,
                (Some((o, _)), Some(n)) if o.name() == n.name.as_str() => {
                    old.next();
                    new.next().map(Entry::hashed)
                }
                (_, Some(_)) => new.next().map(Entry::hashed),
                (Some(_), None) => None,
                (None, None) => break,
            };
            match next {
                Some(e) => entries.push(e),
                None => {
                    if let Some((r, hash)) = old.next() {
                        entries.push(Entry {
                            name: r.name(),
                            type_url: r.type_url(),
                            value: r.value(),
                            hash,
                        });
                    }
                }
            }
        }
        Self::pack(&entries)
    }

    /// Packs entries sorted and unique by name.
    fn pack(entries: &[Entry<'_>]) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let hashes: Vec<u64> = entries.iter().map(|e| e.hash).collect();
        let digest = digest(entries.iter().map(|e| e.name).zip(&hashes));
        let mut names = String::with_capacity(entries.iter().map(|e| e.name.len()).sum());
        let mut values = Vec::with_capacity(entries.iter().map(|e| e.value.len()).sum());
        let mut type_urls: Vec<String> = Vec::new();
        let mut slots = Vec::with_capacity(entries.len());
        for e in entries {
            let type_url = match type_urls.iter().position(|t| t == e.type_url) {
                Some(i) => i,
                None => {
                    type_urls.push(e.type_url.to_owned());
                    type_urls.len() - 1
                }
            };
            slots.push(Slot {
                name: (offset(names.len()), offset(e.name.len())),
                value: (offset(values.len()), offset(e.value.len())),
                type_url: u16::try_from(type_url).unwrap_or(u16::MAX),
            });
            names.push_str(e.name);
            values.extend_from_slice(e.value);
        }
        Self {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            names,
            values,
            type_urls,
            slots,
            hashes,
            digest,
            since: None,
        }
    }

    /// How many resources.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The resource at `i`.
    pub(crate) fn res(&self, i: usize) -> Res<'_> {
        Res {
            part: self,
            slot: self.slots[i],
        }
    }

    /// Every resource, in order.
    pub(crate) fn all(&self) -> impl Iterator<Item = Res<'_>> {
        self.slots.iter().map(|slot| Res {
            part: self,
            slot: *slot,
        })
    }

    /// Records what changed since `prev` (both sorted by name).
    pub(crate) fn diff_from(&mut self, prev: &Part) {
        let (mut i, mut j) = (0, 0);
        let mut changed = Vec::new();
        let mut removed = false;
        while i < self.len() {
            let name = self.res(i).name();
            match (j < prev.len()).then(|| prev.res(j).name()) {
                Some(p) if p < name => {
                    removed = true;
                    j += 1;
                }
                Some(p) if p == name => {
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
        removed |= j < prev.len();
        self.since = Some(PartDiff {
            from: prev.id,
            changed,
            removed,
        });
    }

    /// The content hash of the resource named `name`.
    fn hash_of(&self, name: &str) -> Option<u64> {
        self.slots
            .binary_search_by(|slot| {
                Res {
                    part: self,
                    slot: *slot,
                }
                .name()
                .cmp(name)
            })
            .ok()
            .map(|i| self.hashes[i])
    }

    fn iter(&self) -> impl Iterator<Item = (Res<'_>, u64)> {
        self.all().zip(self.hashes.iter().copied())
    }
}

/// A resource on its way into a [`Part`], with its content hash.
struct Entry<'a> {
    name: &'a str,
    type_url: &'a str,
    value: &'a [u8],
    hash: u64,
}

impl<'a> Entry<'a> {
    fn hashed(r: &'a NamedResource) -> Self {
        Self {
            name: &r.name,
            type_url: &r.resource.type_url,
            value: &r.resource.value,
            hash: resource_hash(&r.resource),
        }
    }
}

/// A buffer offset or length as stored in a [`Slot`] (parts are far below 4 GiB).
fn offset(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
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
        self.indices.as_ref().map_or(self.part.len(), Vec::len)
    }

    /// The selected resources.
    pub(crate) fn resources(&self) -> Box<dyn Iterator<Item = Res<'_>> + '_> {
        match &self.indices {
            None => Box::new(self.part.all()),
            Some(ix) => Box::new(
                ix.iter()
                    .filter(|i| (**i as usize) < self.part.len())
                    .map(|i| self.part.res(*i as usize)),
            ),
        }
    }
}

/// Indexes of `part`'s resources for which `keep` holds, as a selection (`None` if empty).
fn select_where(part: &Arc<Part>, keep: impl Fn(&str) -> bool) -> Option<Selection> {
    let indices: Vec<u32> = part
        .all()
        .enumerate()
        .filter(|(_, r)| keep(r.name()))
        .filter_map(|(i, _)| u32::try_from(i).ok())
        .collect();
    if indices.is_empty() {
        None
    } else if indices.len() == part.len() {
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
            Some(s) if own.all().any(|r| s.hash_of(r.name()).is_some()) => {
                let kept = own
                    .all()
                    .filter(|r| s.hash_of(r.name()).is_none())
                    .map(Res::to_named)
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
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Res<'_>, u64)> {
        self.shared
            .iter()
            .flat_map(|s| s.iter())
            .chain(self.own.iter())
    }

    /// How many resources there are.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shared.as_ref().map_or(0, |s| s.len()) + self.own.len()
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
        self.iter().map(|(r, _)| r.to_named()).collect()
    }

    /// What a proxy that holds `held` lacks of `self`: resources new or changed since, and
    /// whether some are gone. Uses the shared part's recorded diff when `held` has its
    /// predecessor, so a thousand proxies do not compare thousands of resources each.
    pub(crate) fn changes_since(&self, held: &Generated) -> Changes {
        let mut out = Changes::default();
        let lacks = |p: &Part, i: usize| held.hash_of(p.res(i).name()) != Some(p.hashes[i]);
        match (&self.shared, &held.shared) {
            (Some(new), Some(old)) if Arc::ptr_eq(new, old) => {}
            (Some(new), Some(old)) if new.since.as_ref().is_some_and(|d| d.from == old.id) => {
                if let Some(d) = &new.since {
                    out.removed |= d.removed;
                    out.shared.clone_from(&d.changed);
                }
            }
            (Some(new), old) => {
                out.shared = (0..new.len()).filter(|i| lacks(new, *i)).collect();
                out.removed |= old
                    .iter()
                    .flat_map(|o| o.all())
                    .any(|r| self.hash_of(r.name()).is_none());
            }
            (None, old) => {
                out.removed |= old.as_ref().is_some_and(|o| o.len() > 0);
            }
        }
        if !Arc::ptr_eq(&self.own, &held.own) {
            out.own = (0..self.own.len())
                .filter(|i| lacks(&self.own, *i))
                .collect();
            out.removed |= held.own.all().any(|r| self.hash_of(r.name()).is_none());
        }
        out
    }

    /// The resources for which `keep` holds, as selections of the parts.
    pub(crate) fn select(&self, keep: impl Fn(&str) -> bool) -> Vec<Selection> {
        let shared = self.shared.as_ref().and_then(|p| select_where(p, &keep));
        let own = select_where(&self.own, &keep);
        shared.into_iter().chain(own).collect()
    }

    /// The resources of `changes` for which `keep` holds, as selections of the parts.
    pub(crate) fn select_changes(
        &self,
        changes: &Changes,
        keep: impl Fn(&str) -> bool,
    ) -> Vec<Selection> {
        let pick = |part: &Arc<Part>, ix: &[usize]| {
            let indices: Vec<u32> = ix
                .iter()
                .filter(|i| **i < part.len() && keep(part.res(**i).name()))
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

/// Hash of a set of (resource name, content hash) pairs.
pub(crate) fn digest<'a>(entries: impl Iterator<Item = (&'a str, &'a u64)>) -> u64 {
    let mut h = Fnv::new();
    for (name, hash) in entries {
        h.write(name.as_bytes()).write_u64(*hash);
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
        let own = event.own_endpoints_changed(&self.event, &self.proxy.ip, seen);
        self.event = event;
        let mut changed = Vec::new();
        let touched: Vec<String> = self
            .types
            .keys()
            .filter(|t| {
                self.event.touches(t, seen) || (own && t.as_str() != mast_xds::ENDPOINT_TYPE)
            })
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
            .map(|r| r.name().to_owned())
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
        let sel = now.select(|name| name != "b");
        let picked: Vec<&str> = sel
            .iter()
            .flat_map(Selection::resources)
            .map(|r| r.name())
            .collect();
        assert_eq!(picked, ["a", "d", "x"]);
        assert_eq!(sel.iter().map(Selection::len).sum::<usize>(), 3);
    }

    #[test]
    fn replacing_equals_building_anew() {
        let prev = Part::new(vec![res("a", 1), res("c", 1), res("e", 1)]);
        let fresh = vec![res("e", 5), res("b", 2), res("c", 1)];
        let replaced = Part::replacing(&prev, fresh);
        let anew = Part::new(vec![res("a", 1), res("b", 2), res("c", 1), res("e", 5)]);
        let all = |p: &Part| p.all().map(Res::to_named).collect::<Vec<_>>();
        assert_eq!(all(&replaced), all(&anew));
        assert_eq!(replaced.hashes, anew.hashes);
        assert_eq!(replaced.digest, anew.digest);
    }

    #[test]
    fn parts_keep_every_resource_exactly() {
        use prost::Message;
        let mut two_types = vec![res("b", 2), res("a", 1), res("a", 9)];
        two_types.push(NamedResource {
            name: "c".into(),
            resource: Any {
                type_url: "other".into(),
                value: Vec::new(),
            },
        });
        let part = Part::new(two_types);
        let back: Vec<NamedResource> = part.all().map(Res::to_named).collect();
        assert_eq!(back.len(), 3, "first of each name kept");
        assert_eq!(back[0], res("a", 1));
        assert_eq!(back[1], res("b", 2));
        assert_eq!(back[2].resource.type_url, "other");
        for r in part.all() {
            let mut ours = Vec::new();
            r.encode_field(2, &mut ours);
            let mut theirs = Vec::new();
            prost::encoding::message::encode(2, &r.to_any(), &mut theirs);
            assert_eq!(ours, theirs);
            assert_eq!(r.field_len(2), theirs.len());
            assert_eq!(Any::decode(&ours[2..]).ok(), Some(r.to_any()));
        }
    }
}
