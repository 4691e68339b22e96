//! From watched objects to the store's files: each object becomes the pseudo-file
//! `k8s/<Kind>/<namespace>/<name>` (`k8s/<Kind>/<name>` when cluster-scoped) holding its
//! JSON, loaded with [`mast_config::load_str`] so validation and diagnostics work as for
//! files; the EndpointSlices of one Service become one `Endpoints` object in
//! `k8s/EndpointSlice/<namespace>/<service>` (the form the mesh model reads).
//!
//! Secrets are kept only when they hold TLS material a gateway's `credentialName` can use
//! (type `kubernetes.io/tls`, or `Opaque` with `tls.crt`/`tls.key`/`ca.crt`/`cert`/`key`/
//! `cacert`), and of those only these keys: service-account tokens, registry credentials and
//! other data never enter the model or the store's diagnostics.
//!
//! [`KindState`] keeps the current objects of one kind and what it last gave the store,
//! so that a change yields only the files that really changed, and a re-list (after a
//! watch restart or a 410 Gone) yields the difference with the last good state rather
//! than dropping everything first.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::DynamicObject;
use kube::discovery::ApiResource;
use mast_config::LoadOptions;
use serde_json::{Map, Value, json};

use super::kinds::WatchedKind;
use crate::store::Change;

/// The label naming an EndpointSlice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The Secret keys kept: TLS material in Kubernetes' (`kubernetes.io/tls`) and Istio's
/// generic (`cert`, `key`, `cacert`) layouts.
pub const SECRET_TLS_KEYS: &[&str] = &["tls.crt", "tls.key", "ca.crt", "cert", "key", "cacert"];

/// The objects of one kind, and the files they were last published as.
#[derive(Debug)]
pub struct KindState {
    kind: WatchedKind,
    resource: ApiResource,
    load: LoadOptions,
    objects: BTreeMap<(String, String), Value>,
    published: BTreeMap<String, String>,
}

impl KindState {
    /// An empty state for `kind`, read as `resource`.
    pub fn new(kind: WatchedKind, resource: ApiResource, load: LoadOptions) -> Self {
        Self {
            kind,
            resource,
            load,
            objects: BTreeMap::new(),
            published: BTreeMap::new(),
        }
    }

    /// How many objects there are.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// An object was added or changed.
    pub fn apply(&mut self, object: DynamicObject) -> Vec<Change> {
        let (key, value) = self.normalize(object);
        let mut files = self.files_of(&key);
        match value {
            Some(value) => self.objects.insert(key.clone(), value),
            // Not kept (a Secret without TLS material): as if deleted.
            None => self.objects.remove(&key),
        };
        files.extend(self.files_of(&key));
        self.publish(files)
    }

    /// An object was deleted.
    pub fn delete(&mut self, object: &DynamicObject) -> Vec<Change> {
        let key = (
            object.metadata.namespace.clone().unwrap_or_default(),
            object.metadata.name.clone().unwrap_or_default(),
        );
        let files = self.files_of(&key);
        self.objects.remove(&key);
        self.publish(files)
    }

    /// The objects are now exactly `objects` (a complete list).
    pub fn resync(&mut self, objects: Vec<DynamicObject>) -> Vec<Change> {
        self.objects = objects
            .into_iter()
            .filter_map(|o| {
                let (key, value) = self.normalize(o);
                Some((key, value?))
            })
            .collect();
        let mut files: BTreeSet<String> = self.published.keys().cloned().collect();
        let keys: Vec<(String, String)> = self.objects.keys().cloned().collect();
        for key in &keys {
            files.extend(self.files_of(key));
        }
        self.publish(files)
    }

    /// The object as JSON with its type set, without `managedFields` (and, for a Pod,
    /// without what the mesh does not read), keyed by namespace and name; `None` for an
    /// object that is not kept (a Secret without TLS material, see [`trim_secret`]).
    fn normalize(&self, object: DynamicObject) -> ((String, String), Option<Value>) {
        let key = (
            object.metadata.namespace.clone().unwrap_or_default(),
            object.metadata.name.clone().unwrap_or_default(),
        );
        let mut value = serde_json::to_value(&object).unwrap_or(Value::Null);
        if let Some(m) = value.as_object_mut() {
            m.insert(
                "apiVersion".into(),
                self.resource.api_version.clone().into(),
            );
            m.insert("kind".into(), self.resource.kind.clone().into());
            if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("managedFields");
            }
        }
        if self.kind.kind == "Pod" {
            trim_pod(&mut value);
        }
        if self.kind.kind == "Secret" && !trim_secret(&mut value) {
            return (key, None);
        }
        (key, Some(value))
    }

    /// The files an object feeds.
    fn files_of(&self, (ns, name): &(String, String)) -> BTreeSet<String> {
        let kind = self.kind.kind;
        if kind == "EndpointSlice" {
            let service = self
                .objects
                .get(&(ns.clone(), name.clone()))
                .and_then(|o| o.pointer("/metadata/labels"))
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                .and_then(Value::as_str);
            return service
                .map(|s| format!("k8s/{kind}/{ns}/{s}"))
                .into_iter()
                .collect();
        }
        // Gateway API's `Gateway` shares its kind name with Istio's: the group keeps the
        // two apart (`k8s/Gateway.gateway.networking.k8s.io/<ns>/<name>`).
        let kind = if self.kind.group == "gateway.networking.k8s.io" {
            format!("{kind}.{}", self.kind.group)
        } else {
            kind.to_owned()
        };
        let file = if ns.is_empty() {
            format!("k8s/{kind}/{name}")
        } else {
            format!("k8s/{kind}/{ns}/{name}")
        };
        BTreeSet::from([file])
    }

    /// The JSON text of a file, or `None` when nothing feeds it any more.
    fn render(&self, file: &str) -> Option<String> {
        let rest = file.strip_prefix("k8s/")?.split_once('/')?.1;
        let (ns, name) = rest.split_once('/').unwrap_or(("", rest));
        let value = if self.kind.kind == "EndpointSlice" {
            endpoints(ns, name, &self.objects)?
        } else {
            self.objects.get(&(ns.to_owned(), name.to_owned()))?.clone()
        };
        serde_json::to_string_pretty(&value).ok()
    }

    /// The store changes that bring `files` up to date.
    fn publish(&mut self, files: BTreeSet<String>) -> Vec<Change> {
        let mut changes = Vec::new();
        for file in files {
            match self.render(&file) {
                Some(text) if self.published.get(&file) == Some(&text) => {}
                Some(text) => {
                    let loaded = mast_config::load_str(&text, &file, &self.load);
                    self.published.insert(file.clone(), text);
                    changes.push(Change::Set { file, loaded });
                }
                None => {
                    if self.published.remove(&file).is_some() {
                        changes.push(Change::Remove { file });
                    }
                }
            }
        }
        changes
    }
}

/// Keeps a Secret's TLS keys ([`SECRET_TLS_KEYS`]) in `data` and `stringData` and drops the
/// rest, with the `last-applied-configuration` annotation (which repeats the data in clear);
/// false when the Secret is not kept: a type other than `kubernetes.io/tls` and `Opaque`
/// (the default), or an `Opaque` Secret without any TLS key.
fn trim_secret(secret: &mut Value) -> bool {
    let Some(m) = secret.as_object_mut() else {
        return false;
    };
    let tls = match m.get("type").and_then(Value::as_str).unwrap_or("Opaque") {
        "kubernetes.io/tls" => true,
        "Opaque" | "" => false,
        _ => return false,
    };
    let mut found = false;
    for field in ["data", "stringData"] {
        if let Some(d) = m.get_mut(field).and_then(Value::as_object_mut) {
            d.retain(|k, _| SECRET_TLS_KEYS.contains(&k.as_str()));
            found |= !d.is_empty();
        }
    }
    if let Some(a) = m
        .get_mut("metadata")
        .and_then(|meta| meta.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    tls || found
}

/// Keeps what the mesh model reads of a Pod: metadata, containers' names, images and
/// ports, the service account, and the phase and addresses. (Fewer fields to decode, and
/// fields of a newer Kubernetes than Mast knows cannot reject the Pod.)
fn trim_pod(pod: &mut Value) {
    let keep = |v: &mut Value, fields: &[&str]| {
        if let Some(m) = v.as_object_mut() {
            m.retain(|k, _| fields.contains(&k.as_str()));
        }
    };
    if let Some(spec) = pod.get_mut("spec") {
        keep(
            spec,
            &[
                "containers",
                "serviceAccountName",
                "serviceAccount",
                "nodeName",
                "hostNetwork",
            ],
        );
        if let Some(containers) = spec.get_mut("containers").and_then(Value::as_array_mut) {
            for c in containers {
                keep(c, &["name", "image", "ports"]);
            }
        }
    }
    if let Some(status) = pod.get_mut("status") {
        keep(status, &["phase", "podIP", "podIPs", "hostIP"]);
    }
}

/// The `Endpoints` object equivalent to the EndpointSlices of Service `ns/service`: one
/// subset per slice, ready addresses in `addresses`, the others in `notReadyAddresses`.
fn endpoints(ns: &str, service: &str, slices: &BTreeMap<(String, String), Value>) -> Option<Value> {
    let mut subsets = Vec::new();
    for ((slice_ns, _), slice) in slices {
        let owner = slice
            .pointer("/metadata/labels")
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .and_then(Value::as_str);
        if slice_ns != ns || owner != Some(service) {
            continue;
        }
        if slice.get("addressType").and_then(Value::as_str) == Some("FQDN") {
            continue;
        }
        subsets.push(subset(slice));
    }
    if subsets.is_empty() {
        return None;
    }
    Some(json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": service, "namespace": ns},
        "subsets": subsets,
    }))
}

fn subset(slice: &Value) -> Value {
    let (mut ready, mut not_ready) = (Vec::new(), Vec::new());
    for ep in slice
        .get("endpoints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let is_ready = ep.pointer("/conditions/ready").and_then(Value::as_bool) != Some(false);
        for ip in ep
            .get("addresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mut address = Map::new();
            address.insert("ip".into(), ip.clone());
            for (from, to) in [
                ("targetRef", "targetRef"),
                ("nodeName", "nodeName"),
                ("hostname", "hostname"),
            ] {
                if let Some(v) = ep.get(from) {
                    address.insert(to.into(), v.clone());
                }
            }
            if is_ready {
                ready.push(Value::Object(address));
            } else {
                not_ready.push(Value::Object(address));
            }
        }
    }
    let ports: Vec<Value> = slice
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let mut port = Map::new();
            port.insert("port".into(), p.get("port")?.clone());
            for f in ["name", "protocol", "appProtocol"] {
                if let Some(v) = p.get(f) {
                    port.insert(f.into(), v.clone());
                }
            }
            Some(Value::Object(port))
        })
        .collect();
    let mut out = Map::new();
    if !ready.is_empty() {
        out.insert("addresses".into(), ready.into());
    }
    if !not_ready.is_empty() {
        out.insert("notReadyAddresses".into(), not_ready.into());
    }
    if !ports.is_empty() {
        out.insert("ports".into(), ports.into());
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests;
