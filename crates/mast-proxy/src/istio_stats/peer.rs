//! Istio's HTTP metadata exchange: `x-envoy-peer-metadata` carries the base64 of a
//! protobuf `google.protobuf.Struct` with Istio's node-metadata keys (`NAME`, `NAMESPACE`,
//! `LABELS`, `WORKLOAD_NAME`, `CLUSTER_ID`, `SERVICE_ACCOUNT`, `MESH_ID`), and
//! `x-envoy-peer-metadata-id` the node id. Decoded peers are cached per thread by the
//! header value, so a known peer costs one hash lookup.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use prost::Message as _;
use serde_json::json;

use super::identity::Workload;
use crate::bootstrap::{NodeSpec, json_to_struct};

/// The metadata header.
pub const METADATA: &str = "x-envoy-peer-metadata";
/// The node id header.
pub const METADATA_ID: &str = "x-envoy-peer-metadata-id";

/// The header value this proxy sends: base64 of its metadata `Struct`.
pub fn encode(spec: &NodeSpec) -> String {
    let mut md = json!({
        "NAME": spec.workload,
        "NAMESPACE": spec.namespace,
        "LABELS": spec.labels,
        "WORKLOAD_NAME": spec.workload_name(),
        "CLUSTER_ID": spec.cluster_id,
        "MESH_ID": spec.mesh_id,
    });
    if let Some(sa) = &spec.service_account {
        md["SERVICE_ACCOUNT"] = json!(sa);
    }
    STANDARD.encode(json_to_struct(&md).encode_to_vec())
}

fn string<'a>(s: &'a Struct, key: &str) -> Option<&'a str> {
    match s.fields.get(key)?.kind.as_ref()? {
        Kind::StringValue(v) => Some(v),
        _ => None,
    }
}

fn labels(s: &Struct) -> BTreeMap<String, String> {
    let Some(Value {
        kind: Some(Kind::StructValue(l)),
    }) = s.fields.get("LABELS")
    else {
        return BTreeMap::new();
    };
    l.fields
        .iter()
        .filter_map(|(k, v)| match &v.kind {
            Some(Kind::StringValue(s)) => Some((k.clone(), s.clone())),
            _ => None,
        })
        .collect()
}

/// Decodes a peer's header value; `None` when it is not base64 of a `Struct`.
pub fn decode(value: &[u8], trust_domain: &str) -> Option<Workload> {
    let bytes = STANDARD.decode(value).ok()?;
    let s = Struct::decode(bytes.as_slice()).ok()?;
    let workload = string(&s, "WORKLOAD_NAME").or(string(&s, "NAME"));
    Some(Workload::from_parts(
        workload,
        string(&s, "NAMESPACE"),
        &labels(&s),
        string(&s, "SERVICE_ACCOUNT"),
        string(&s, "CLUSTER_ID"),
        trust_domain,
    ))
}

/// Peers decoded on this thread, by header value (bounded: cleared past 1024 entries).
type PeerCache = HashMap<Box<[u8]>, Arc<Workload>>;

thread_local! {
    static PEERS: RefCell<PeerCache> = RefCell::new(PeerCache::new());
}

/// The peer a header value describes, decoded once per thread.
pub fn lookup(value: &[u8], trust_domain: &str) -> Option<Arc<Workload>> {
    PEERS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(w) = cache.get(value) {
            return Some(Arc::clone(w));
        }
        let w = Arc::new(decode(value, trust_domain)?);
        if cache.len() >= 1024 {
            cache.clear();
        }
        cache.insert(value.into(), Arc::clone(&w));
        Some(w)
    })
}

thread_local! {
    static ENDPOINTS: RefCell<HashMap<Box<str>, Arc<Workload>>> = RefCell::new(HashMap::new());
}

/// The workload an endpoint's Istio metadata (`istio.workload`) names, parsed once per
/// thread.
pub fn endpoint_lookup(
    metadata: &envoy_types::pb::envoy::config::core::v3::Metadata,
) -> Option<Arc<Workload>> {
    let value = metadata
        .filter_metadata
        .get("istio")?
        .fields
        .get("workload")?;
    let Some(Kind::StringValue(text)) = &value.kind else {
        return None;
    };
    ENDPOINTS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(w) = cache.get(text.as_str()) {
            return Some(Arc::clone(w));
        }
        let w = Arc::new(super::tcp::endpoint_workload(metadata)?);
        if cache.len() >= 1024 {
            cache.clear();
        }
        cache.insert(text.as_str().into(), Arc::clone(&w));
        Some(w)
    })
}
