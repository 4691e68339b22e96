//! What the client holds: per type, the accepted resources (name → version, value, when it
//! was last updated) and the status (last accepted version, last ACKed nonce, last NACK),
//! for `/config_dump` and reconnects (delta `initial_resource_versions`).

use std::collections::BTreeMap;
use std::time::SystemTime;

use envoy_types::pb::google::protobuf::Any;
use parking_lot::RwLock;

use super::{Resource, TYPES};

/// One accepted resource.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedResource {
    /// Its version.
    pub version: String,
    /// The resource.
    pub value: Any,
    /// When it was accepted.
    pub last_updated: SystemTime,
}

/// A rejected response.
#[derive(Debug, Clone, PartialEq)]
pub struct Nack {
    /// The rejected version (SotW `version_info`, delta `system_version_info`).
    pub version: String,
    /// The rejected response's nonce.
    pub nonce: String,
    /// The handler's message (sent as `error_detail`).
    pub error: String,
    /// When.
    pub at: SystemTime,
}

/// The state of one type.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TypeStatus {
    /// The last accepted version.
    pub version: String,
    /// The nonce of the last ACKed response.
    pub acked_nonce: String,
    /// The last NACK (kept after later ACKs).
    pub last_nack: Option<Nack>,
    /// Whether a first response was processed.
    pub received: bool,
    /// Responses accepted (Envoy's `update_success`).
    pub accepted: u64,
    /// Responses rejected (Envoy's `update_rejected`).
    pub rejected: u64,
}

/// One type's resources and status.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeSnapshot {
    /// The type URL.
    pub type_url: String,
    /// Accepted resources by name.
    pub resources: BTreeMap<String, CachedResource>,
    /// The status.
    pub status: TypeStatus,
}

/// Everything the client holds.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSnapshot {
    /// Whether a stream is open.
    pub connected: bool,
    /// CDS, EDS, LDS, RDS, in that order.
    pub types: Vec<TypeSnapshot>,
}

impl CacheSnapshot {
    /// The snapshot of one type.
    pub fn get(&self, type_url: &str) -> Option<&TypeSnapshot> {
        self.types.iter().find(|t| t.type_url == type_url)
    }
}

#[derive(Debug, Default)]
struct TypeCache {
    resources: BTreeMap<String, CachedResource>,
    status: TypeStatus,
}

/// The cache (locked briefly, never across an await).
#[derive(Debug, Default)]
pub(super) struct Cache {
    types: RwLock<BTreeMap<String, TypeCache>>,
}

impl Cache {
    /// Records an accepted response.
    pub(super) fn accept(
        &self,
        type_url: &str,
        resources: Vec<Resource>,
        removed: &[String],
        version: &str,
        nonce: &str,
    ) {
        let now = SystemTime::now();
        let mut types = self.types.write();
        let t = types.entry(type_url.to_owned()).or_default();
        for name in removed {
            t.resources.remove(name);
        }
        for r in resources {
            let cached = CachedResource {
                version: r.version,
                value: r.value,
                last_updated: now,
            };
            t.resources.insert(r.name, cached);
        }
        t.status.version = version.to_owned();
        t.status.acked_nonce = nonce.to_owned();
        t.status.received = true;
        t.status.accepted += 1;
    }

    /// Records a rejected response.
    pub(super) fn reject(&self, type_url: &str, version: &str, nonce: &str, error: &str) {
        let mut types = self.types.write();
        let t = types.entry(type_url.to_owned()).or_default();
        t.status.received = true;
        t.status.rejected += 1;
        t.status.last_nack = Some(Nack {
            version: version.to_owned(),
            nonce: nonce.to_owned(),
            error: error.to_owned(),
            at: SystemTime::now(),
        });
    }

    /// Name → version of what is held.
    pub(super) fn versions(&self, type_url: &str) -> BTreeMap<String, String> {
        let types = self.types.read();
        types.get(type_url).map_or_else(BTreeMap::new, |t| {
            t.resources
                .iter()
                .map(|(k, v)| (k.clone(), v.version.clone()))
                .collect()
        })
    }

    /// The last accepted version and the last NACKed one.
    pub(super) fn versions_of_type(&self, type_url: &str) -> (String, Option<String>) {
        let types = self.types.read();
        types.get(type_url).map_or_else(Default::default, |t| {
            (
                t.status.version.clone(),
                t.status.last_nack.as_ref().map(|n| n.version.clone()),
            )
        })
    }

    /// Whether every subscribed type has had a first response.
    pub(super) fn all_received(&self) -> bool {
        let types = self.types.read();
        TYPES
            .iter()
            .all(|t| types.get(*t).is_some_and(|t| t.status.received))
    }

    pub(super) fn resources(&self, type_url: &str) -> Vec<(String, CachedResource)> {
        let types = self.types.read();
        types.get(type_url).map_or_else(Vec::new, |t| {
            t.resources
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
    }

    pub(super) fn snapshot(&self, connected: bool) -> CacheSnapshot {
        let types = self.types.read();
        let types = TYPES
            .iter()
            .map(|url| {
                let t = types.get(*url);
                TypeSnapshot {
                    type_url: (*url).to_owned(),
                    resources: t.map(|t| t.resources.clone()).unwrap_or_default(),
                    status: t.map(|t| t.status.clone()).unwrap_or_default(),
                }
            })
            .collect();
        CacheSnapshot { connected, types }
    }
}
