//! The emulator's storage: every object by type, namespace and name; one resourceVersion
//! counter for all of them (increasing globally, as etcd's revision); the history of
//! changes that watches replay from a given resourceVersion; and the writes (create,
//! replace, merge patch, server-side apply, delete) with the metadata the API server
//! fills in (uid, creationTimestamp, generation, resourceVersion, managedFields).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::types::{self, ApiType};
use super::util::{self, FieldSelector, LabelSelector};

mod objects;

pub use objects::{ApiError, view};
use objects::{
    check_kind, check_namespace, crd_established, meta_mut, not_found, object_name, record_manager,
    resource_name, updated,
};

/// How many changes the history keeps before the oldest are compacted away (a watch from
/// before them gets `410 Gone`).
const HISTORY: usize = 100_000;

/// The type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// An object was created.
    Added,
    /// An object was changed.
    Modified,
    /// An object was deleted (the event carries its last state).
    Deleted,
}

impl EventType {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watches see it.
#[derive(Debug)]
pub struct Event {
    /// The resourceVersion of the change.
    pub rv: u64,
    /// The object's group and plural.
    pub group: String,
    /// The object's plural.
    pub plural: String,
    /// The object's namespace (empty when cluster-scoped).
    pub namespace: String,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (before it, for a delete), as stored.
    pub object: Value,
}

/// Which part of an object a write changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The main resource: the stored status is kept when the type has a status subresource.
    Main,
    /// The `status` subresource: only the status changes.
    Status,
    /// A test hook: everything given is stored.
    Raw,
}

type Key = (String, String, String, String);

fn key(t: &ApiType, ns: &str, name: &str) -> Key {
    (t.group.clone(), t.plural.clone(), ns.into(), name.into())
}

/// The start of a watch: the events to send first, and the live feed after them.
pub struct WatchStart {
    /// Replayed (or, for a watch without resourceVersion, synthetic `ADDED`) events.
    pub initial: Vec<Arc<Event>>,
    /// Every change after those.
    pub live: broadcast::Receiver<Arc<Event>>,
    /// The resourceVersion the watch starts at.
    pub rv: u64,
}

#[derive(Debug)]
struct Inner {
    types: Vec<ApiType>,
    objects: BTreeMap<Key, Value>,
    rv: u64,
    uids: u64,
    history: VecDeque<Arc<Event>>,
    /// Every change after this resourceVersion is in `history`.
    floor: u64,
}

/// The storage, shared by the HTTP handlers and the test hooks.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Arc<Event>>,
}

impl Store {
    /// A store serving `types`, with the namespaces every cluster has.
    pub fn new(types: Vec<ApiType>) -> Self {
        let (events, _) = broadcast::channel(4096);
        let store = Self {
            inner: Mutex::new(Inner {
                types,
                objects: BTreeMap::new(),
                rv: 0,
                uids: 0,
                history: VecDeque::new(),
                floor: 0,
            }),
            events,
        };
        for ns in ["default", "kube-system", "kube-public"] {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns},
                "status": {"phase": "Active"}});
            let _ = store.put(obj);
        }
        store
    }

    /// The types served now.
    pub fn types(&self) -> Vec<ApiType> {
        self.inner.lock().types.clone()
    }

    /// Adds (or replaces, by group and plural) a served type.
    pub fn register(&self, t: ApiType) {
        let mut inner = self.inner.lock();
        inner
            .types
            .retain(|o| !(o.group == t.group && o.plural == t.plural));
        inner.types.push(t);
    }

    /// The type served at `group`/`version` under `plural`.
    pub fn type_at(&self, group: &str, version: &str, plural: &str) -> Option<ApiType> {
        let inner = self.inner.lock();
        inner
            .types
            .iter()
            .find(|t| {
                t.group == group && t.plural == plural && t.versions.iter().any(|v| v == version)
            })
            .cloned()
    }

    /// The type of `apiVersion` + `kind`.
    pub fn type_of(&self, api_version: &str, kind: &str) -> Option<ApiType> {
        let inner = self.inner.lock();
        inner
            .types
            .iter()
            .find(|t| t.kind == kind && t.serves(api_version))
            .cloned()
    }

    /// The latest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.inner.lock().rv
    }

    /// Forgets the history: a watch from any resourceVersion older than the latest gets
    /// `410 Gone`.
    pub fn expire_history(&self) {
        let mut inner = self.inner.lock();
        inner.history.clear();
        inner.floor = inner.rv;
    }

    /// The objects of `t` (in `ns`, or all namespaces), read in `version`, with the
    /// list's resourceVersion.
    pub fn list(
        &self,
        t: &ApiType,
        ns: Option<&str>,
        version: &str,
        selectors: (&LabelSelector, &FieldSelector),
    ) -> (Vec<Value>, u64) {
        let inner = self.inner.lock();
        let items = inner
            .objects
            .iter()
            .filter(|((g, p, n, _), _)| {
                *g == t.group && *p == t.plural && ns.is_none_or(|ns| *n == ns)
            })
            .filter(|(_, o)| selectors.0.matches(o) && selectors.1.matches(o))
            .map(|(_, o)| view(t, version, o))
            .collect();
        (items, inner.rv)
    }

    /// One object, read in `version`.
    pub fn get(&self, t: &ApiType, ns: &str, name: &str, version: &str) -> Result<Value, ApiError> {
        let inner = self.inner.lock();
        inner
            .objects
            .get(&key(t, ns, name))
            .map(|o| view(t, version, o))
            .ok_or_else(|| not_found(t, name))
    }

    /// Creates an object (`POST`); the status is dropped when the type has a status
    /// subresource. With `dry_run` nothing is stored.
    pub fn create(
        &self,
        t: &ApiType,
        ns: &str,
        version: &str,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        check_kind(t, &obj)?;
        let mut inner = self.inner.lock();
        let name = object_name(&mut obj, &mut inner.uids, t)?;
        check_namespace(t, ns, &obj)?;
        if inner.objects.contains_key(&key(t, ns, &name)) {
            let msg = format!("{} {name:?} already exists", resource_name(t));
            return Err(ApiError::new(409, "AlreadyExists", msg));
        }
        if t.status
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        let obj = inner.fill_new(t, ns, version, obj);
        if dry_run {
            return Ok(view(t, version, &obj));
        }
        let stored = inner.commit(t, ns, &name, Some(obj), &self.events);
        Ok(view(t, version, &stored))
    }

    /// Replaces an object (`PUT`), refusing a stale `metadata.resourceVersion`.
    pub fn replace(
        &self,
        t: &ApiType,
        (ns, name): (&str, &str),
        version: &str,
        obj: Value,
        part: Part,
    ) -> Result<Value, ApiError> {
        check_kind(t, &obj)?;
        let given = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or(name);
        if given != name {
            let msg = format!(
                "the name of the object ({given}) does not match the name on the URL ({name})"
            );
            return Err(ApiError::new(400, "BadRequest", msg));
        }
        let mut inner = self.inner.lock();
        let old = inner
            .objects
            .get(&key(t, ns, name))
            .cloned()
            .ok_or_else(|| not_found(t, name))?;
        let want_rv = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let have_rv = old
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !want_rv.is_empty() && want_rv != have_rv {
            let msg = format!(
                "Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your changes to the latest version and try again",
                resource_name(t)
            );
            return Err(ApiError::new(409, "Conflict", msg));
        }
        let new = updated(t, &old, obj, part, version);
        let stored = inner.commit(t, ns, name, Some(new), &self.events);
        Ok(view(t, version, &stored))
    }

    /// Patches an object: a JSON merge patch (also used for strategic merge patches), or
    /// with `apply` (server-side apply by `manager`) a merge that creates the object when
    /// it does not exist.
    pub fn patch(
        &self,
        t: &ApiType,
        (ns, name): (&str, &str),
        version: &str,
        patch: &Value,
        apply: Option<&str>,
        part: Part,
    ) -> Result<Value, ApiError> {
        let mut inner = self.inner.lock();
        let existing = inner.objects.get(&key(t, ns, name)).cloned();
        let new = match (existing, apply) {
            (Some(old), _) => {
                let mut patched = old.clone();
                util::merge_patch(&mut patched, patch);
                let mut new = updated(t, &old, patched, part, version);
                if let Some(manager) = apply {
                    record_manager(&mut new, manager, &t.api_version(version));
                }
                new
            }
            (None, Some(manager)) if part != Part::Status => {
                let mut obj = patch.clone();
                check_kind(t, &obj)?;
                check_namespace(t, ns, &obj)?;
                if t.status
                    && let Some(m) = obj.as_object_mut()
                {
                    m.remove("status");
                }
                meta_mut(&mut obj).insert("name".into(), name.into());
                let mut obj = inner.fill_new(t, ns, version, obj);
                record_manager(&mut obj, manager, &t.api_version(version));
                obj
            }
            (None, _) => return Err(not_found(t, name)),
        };
        let stored = inner.commit(t, ns, name, Some(new), &self.events);
        Ok(view(t, version, &stored))
    }

    /// Deletes an object and returns its last state.
    pub fn delete(
        &self,
        t: &ApiType,
        ns: &str,
        name: &str,
        version: &str,
    ) -> Result<Value, ApiError> {
        let mut inner = self.inner.lock();
        if !inner.objects.contains_key(&key(t, ns, name)) {
            return Err(not_found(t, name));
        }
        let last = inner.commit(t, ns, name, None, &self.events);
        Ok(view(t, version, &last))
    }

    /// Stores `obj` as given (status included), creating or replacing it: the test hook.
    pub fn put(&self, mut obj: Value) -> Result<Value, ApiError> {
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let t = self.type_of(&api_version, &kind).ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                format!("no type {kind} is served in {api_version:?}"),
            )
        })?;
        let version = api_version.rsplit('/').next().unwrap_or("v1").to_owned();
        let ns = if t.namespaced {
            obj.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_owned()
        } else {
            String::new()
        };
        let mut inner = self.inner.lock();
        let name = object_name(&mut obj, &mut inner.uids, &t)?;
        let new = match inner.objects.get(&key(&t, &ns, &name)).cloned() {
            Some(old) => updated(&t, &old, obj, Part::Raw, &version),
            None => inner.fill_new(&t, &ns, &version, obj),
        };
        Ok(inner.commit(&t, &ns, &name, Some(new), &self.events))
    }

    /// Starts a watch on `t` (in `ns`, or all namespaces) from resourceVersion `from`
    /// (`None`: from now, with an `ADDED` event for every current object).
    pub fn watch(
        &self,
        t: &ApiType,
        ns: Option<&str>,
        from: Option<u64>,
    ) -> Result<WatchStart, ApiError> {
        let inner = self.inner.lock();
        let live = self.events.subscribe();
        let initial = match from {
            None => inner
                .objects
                .iter()
                .filter(|((g, p, n, _), _)| {
                    *g == t.group && *p == t.plural && ns.is_none_or(|ns| *n == ns)
                })
                .map(|((g, p, n, _), o)| {
                    Arc::new(Event {
                        rv: inner.rv,
                        group: g.clone(),
                        plural: p.clone(),
                        namespace: n.clone(),
                        kind: EventType::Added,
                        object: o.clone(),
                    })
                })
                .collect(),
            Some(rv) if rv < inner.floor => {
                let msg = format!("too old resource version: {rv} ({})", inner.floor);
                return Err(ApiError::new(410, "Expired", msg));
            }
            Some(rv) => inner
                .history
                .iter()
                .filter(|e| {
                    e.rv > rv
                        && e.group == t.group
                        && e.plural == t.plural
                        && ns.is_none_or(|n| n == e.namespace)
                })
                .cloned()
                .collect(),
        };
        Ok(WatchStart {
            initial,
            live,
            rv: from.unwrap_or(inner.rv),
        })
    }
}

impl Inner {
    /// Fills the metadata of a new object.
    fn fill_new(&mut self, t: &ApiType, ns: &str, version: &str, mut obj: Value) -> Value {
        self.uids += 1;
        let uid = format!("00000000-0000-4000-8000-{:012x}", self.uids);
        if let Some(m) = obj.as_object_mut() {
            m.insert("apiVersion".into(), t.api_version(version).into());
            m.insert("kind".into(), t.kind.clone().into());
        }
        let meta = meta_mut(&mut obj);
        meta.insert("uid".into(), uid.into());
        meta.insert("creationTimestamp".into(), util::now_rfc3339().into());
        meta.insert("generation".into(), 1.into());
        if t.namespaced {
            meta.insert("namespace".into(), ns.into());
        } else {
            meta.remove("namespace");
        }
        obj
    }

    /// Stores (or with `None` deletes) one object under a new resourceVersion, records the
    /// change and tells the watches. Returns what was stored (or the deleted object).
    fn commit(
        &mut self,
        t: &ApiType,
        ns: &str,
        name: &str,
        new: Option<Value>,
        events: &broadcast::Sender<Arc<Event>>,
    ) -> Value {
        self.rv += 1;
        let rv = self.rv;
        let k = key(t, ns, name);
        let (kind, object) = match new {
            Some(mut obj) => {
                meta_mut(&mut obj).insert("resourceVersion".into(), rv.to_string().into());
                if t.plural == "customresourcedefinitions" && t.group == "apiextensions.k8s.io" {
                    crd_established(&mut obj);
                    if let Some(declared) = types::from_crd(&obj) {
                        self.types.retain(|o| {
                            !(o.group == declared.group && o.plural == declared.plural)
                        });
                        self.types.push(declared);
                    }
                }
                let kind = if self.objects.contains_key(&k) {
                    EventType::Modified
                } else {
                    EventType::Added
                };
                self.objects.insert(k, obj.clone());
                (kind, obj)
            }
            None => {
                let mut obj = self.objects.remove(&k).unwrap_or(Value::Null);
                meta_mut(&mut obj).insert("resourceVersion".into(), rv.to_string().into());
                (EventType::Deleted, obj)
            }
        };
        let event = Arc::new(Event {
            rv,
            group: t.group.clone(),
            plural: t.plural.clone(),
            namespace: ns.into(),
            kind,
            object: object.clone(),
        });
        self.history.push_back(event.clone());
        while self.history.len() > HISTORY {
            if let Some(e) = self.history.pop_front() {
                self.floor = e.rv;
            }
        }
        // No receiver is not an error: nobody watches.
        let _ = events.send(event);
        object
    }
}
