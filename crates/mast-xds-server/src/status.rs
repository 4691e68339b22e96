//! What each connected proxy has been sent and has accepted, for `proxy-status` and
//! `/debug/syncz`, plus the last generated resources for `/debug/config_dump`.
//!
//! Sync status follows istioctl: **SYNCED** when the last nonce sent for a type has been
//! ACKed, **NOT SENT** when nothing of that type was sent, **STALE** otherwise (sent and not
//! yet ACKed, or NACKed).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use mast_xds::NamedResource;

use crate::view::Generated;
use parking_lot::Mutex;
use serde::{Serialize, Serializer};

/// istioctl's per-type sync status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SyncStatus {
    /// The last response sent was ACKed.
    #[serde(rename = "SYNCED")]
    Synced,
    /// Nothing of this type was sent.
    #[serde(rename = "NOT SENT")]
    NotSent,
    /// Sent but not (yet) ACKed, or NACKed.
    #[serde(rename = "STALE")]
    Stale,
}

impl std::fmt::Display for SyncStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Synced => "SYNCED",
            Self::NotSent => "NOT SENT",
            Self::Stale => "STALE",
        })
    }
}

/// Which ADS flavour a proxy uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum XdsProtocol {
    /// `StreamAggregatedResources` (state of the world).
    Sotw,
    /// `DeltaAggregatedResources` (incremental).
    Delta,
}

impl XdsProtocol {
    /// `sotw` or `delta`, as logs and status show it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sotw => "sotw",
            Self::Delta => "delta",
        }
    }
}

/// A rejected response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NackRecord {
    /// The version that was rejected.
    pub version: String,
    /// The nonce of the rejected response.
    pub nonce: String,
    /// The proxy's `error_detail` message, as sent.
    pub error: String,
    /// When the NACK arrived.
    #[serde(serialize_with = "unix_millis")]
    pub at: SystemTime,
}

/// One type's exchange with one proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TypeStatus {
    /// Version of the last response sent.
    pub sent_version: Option<String>,
    /// Nonce of the last response sent.
    pub sent_nonce: Option<String>,
    /// Version of the last response ACKed.
    pub acked_version: Option<String>,
    /// Nonce of the last response ACKed.
    pub acked_nonce: Option<String>,
    /// The last NACK, if any (kept after later ACKs, for diagnosis).
    pub last_nack: Option<NackRecord>,
    /// SYNCED / NOT SENT / STALE.
    pub status: SyncStatus,
}

impl Default for TypeStatus {
    fn default() -> Self {
        Self {
            sent_version: None,
            sent_nonce: None,
            acked_version: None,
            acked_nonce: None,
            last_nack: None,
            status: SyncStatus::NotSent,
        }
    }
}

impl TypeStatus {
    fn refresh(&mut self) {
        self.status = match (&self.sent_nonce, &self.acked_nonce) {
            (None, _) => SyncStatus::NotSent,
            (Some(sent), Some(acked)) if sent == acked => SyncStatus::Synced,
            _ => SyncStatus::Stale,
        };
    }
}

/// Who a proxy is, from its node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProxySummary {
    /// `sidecar` or `router`.
    pub node_type: String,
    /// The workload's IP.
    pub ip: String,
    /// The workload's name.
    pub workload: String,
    /// The workload's namespace.
    pub namespace: String,
    /// The workload's service account (empty when unknown).
    pub service_account: String,
    /// The workload's labels.
    pub labels: BTreeMap<String, String>,
    /// `CLUSTER_ID` metadata, else the node's cluster (istioctl's CLUSTER column).
    pub cluster_id: String,
    /// `iptables` or `ports`.
    pub capture_mode: String,
    /// The proxy's own version (Envoy's build version), empty when not reported.
    pub proxy_version: String,
    /// Where the proxy's admin interface listens (`MAST_ADMIN_ADDRESS` metadata, set by
    /// mast-agent), empty when not reported.
    pub admin_address: String,
}

/// One connected proxy stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProxyStatus {
    /// The node id.
    pub node_id: String,
    /// Who it is.
    pub proxy: ProxySummary,
    /// SotW or delta.
    pub protocol: XdsProtocol,
    /// When the stream opened.
    #[serde(serialize_with = "unix_millis")]
    pub connected_since: SystemTime,
    /// Per type URL; the four push-order types are always present.
    pub types: BTreeMap<String, TypeStatus>,
}

impl ProxyStatus {
    /// The sync status of `type_url` (NOT SENT for a type never sent).
    pub fn sync_status(&self, type_url: &str) -> SyncStatus {
        self.types
            .get(type_url)
            .map_or(SyncStatus::NotSent, |t| t.status)
    }
}

/// The short name of a type URL as istioctl prints it: `CDS`, `EDS`, `LDS`, `RDS`, else the
/// message name.
pub fn short_type_name(type_url: &str) -> &str {
    match type_url {
        mast_xds::CLUSTER_TYPE => "CDS",
        mast_xds::ENDPOINT_TYPE => "EDS",
        mast_xds::LISTENER_TYPE => "LDS",
        mast_xds::ROUTE_TYPE => "RDS",
        other => other.rsplit('/').next().unwrap_or(other),
    }
}

fn unix_millis<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let ms = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    s.serialize_u64(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// The live record of one stream, updated by its task.
#[derive(Debug)]
pub(crate) struct ConnRecord {
    status: ProxyStatus,
    dump: BTreeMap<String, Arc<Generated>>,
}

impl ConnRecord {
    /// Records a response sent.
    pub(crate) fn sent(&mut self, type_url: &str, version: &str, nonce: &str) {
        let t = self.type_mut(type_url);
        t.sent_version = Some(version.to_owned());
        t.sent_nonce = Some(nonce.to_owned());
        t.refresh();
    }

    /// Records an ACK.
    pub(crate) fn acked(&mut self, type_url: &str, version: &str, nonce: &str) {
        let t = self.type_mut(type_url);
        t.acked_version = Some(version.to_owned());
        t.acked_nonce = Some(nonce.to_owned());
        t.refresh();
    }

    /// Records a NACK of `version` (sent with `nonce`).
    pub(crate) fn nacked(&mut self, type_url: &str, version: &str, nonce: &str, error: &str) {
        let t = self.type_mut(type_url);
        t.last_nack = Some(NackRecord {
            version: version.to_owned(),
            nonce: nonce.to_owned(),
            error: error.to_owned(),
            at: SystemTime::now(),
        });
        t.refresh();
    }

    /// Records the resources last generated for a type.
    pub(crate) fn generated(&mut self, type_url: &str, resources: Arc<Generated>) {
        self.dump.insert(type_url.to_owned(), resources);
    }

    fn type_mut(&mut self, type_url: &str) -> &mut TypeStatus {
        self.status.types.entry(type_url.to_owned()).or_default()
    }
}

/// Every live stream's record.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    next_id: AtomicU64,
    conns: Mutex<BTreeMap<u64, Arc<Mutex<ConnRecord>>>>,
}

impl Registry {
    /// Registers a new stream; the guard unregisters it when dropped.
    pub(crate) fn open(
        self: &Arc<Self>,
        node_id: &str,
        proxy: ProxySummary,
        protocol: XdsProtocol,
    ) -> ConnGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let types = mast_xds::PUSH_ORDER
            .iter()
            .map(|t| ((*t).to_owned(), TypeStatus::default()))
            .collect();
        let record = Arc::new(Mutex::new(ConnRecord {
            status: ProxyStatus {
                node_id: node_id.to_owned(),
                proxy,
                protocol,
                connected_since: SystemTime::now(),
                types,
            },
            dump: BTreeMap::new(),
        }));
        self.conns.lock().insert(id, record.clone());
        ConnGuard {
            id,
            registry: self.clone(),
            record,
        }
    }

    /// Status of every stream, oldest first.
    pub(crate) fn status(&self) -> Vec<ProxyStatus> {
        let records: Vec<_> = self.conns.lock().values().cloned().collect();
        records.iter().map(|r| r.lock().status.clone()).collect()
    }

    /// The last generated resources of the newest stream of `node_id`.
    pub(crate) fn dump(&self, node_id: &str) -> Option<BTreeMap<String, Vec<NamedResource>>> {
        let records: Vec<_> = self.conns.lock().values().rev().cloned().collect();
        records.iter().find_map(|r| {
            let r = r.lock();
            (r.status.node_id == node_id).then(|| {
                r.dump
                    .iter()
                    .map(|(t, res)| (t.clone(), res.to_vec()))
                    .collect()
            })
        })
    }
}

/// A registered stream; unregisters on drop.
#[derive(Debug)]
pub(crate) struct ConnGuard {
    id: u64,
    registry: Arc<Registry>,
    record: Arc<Mutex<ConnRecord>>,
}

impl ConnGuard {
    /// Updates the record.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut ConnRecord) -> R) -> R {
        f(&mut self.record.lock())
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.registry.conns.lock().remove(&self.id);
    }
}
