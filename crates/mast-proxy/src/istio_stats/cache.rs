//! Per-thread caches of metric handles by label key, as `crate::stats` does for Envoy's
//! counters: a request whose label set this thread has seen records without allocating or
//! taking the family's lock.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use super::identity::Workload;
use super::{HttpLabels, IstioStats, PeerLabels, UNKNOWN};
use crate::hcm::flags::Flags;

/// What distinguishes one HTTP label set from another, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct HttpKey<'a> {
    /// Inbound (`reporter="destination"`).
    pub inbound: bool,
    /// The peer workload, when exchanged.
    pub peer: Option<&'a Arc<Workload>>,
    /// The peer's mTLS principal (inbound), `unknown` when none.
    pub principal: &'a str,
    /// The destination service host.
    pub service: &'a str,
    /// `http` or `grpc`.
    pub protocol: &'static str,
    /// The status code.
    pub code: u16,
    /// The gRPC status, when gRPC.
    pub grpc: Option<u32>,
    /// Response flags.
    pub flags: Flags,
    /// `mutual_tls`, `none`, `unknown`.
    pub security: &'static str,
}

struct OwnedKey {
    inbound: bool,
    peer: Option<Arc<Workload>>,
    principal: String,
    service: String,
    protocol: &'static str,
    code: u16,
    grpc: Option<u32>,
    flags: Flags,
    security: &'static str,
}

impl HttpKey<'_> {
    fn hash(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.inbound.hash(&mut h);
        if let Some(p) = self.peer {
            p.workload.hash(&mut h);
            p.namespace.hash(&mut h);
            p.version.hash(&mut h);
        }
        self.principal.hash(&mut h);
        self.service.hash(&mut h);
        self.protocol.hash(&mut h);
        self.code.hash(&mut h);
        self.grpc.hash(&mut h);
        self.security.hash(&mut h);
        h.finish()
    }

    fn matches(&self, o: &OwnedKey) -> bool {
        let peer = match (self.peer, &o.peer) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || **a == **b,
            _ => false,
        };
        peer && self.inbound == o.inbound
            && self.principal == o.principal
            && self.service == o.service
            && self.protocol == o.protocol
            && self.code == o.code
            && self.grpc == o.grpc
            && self.flags == o.flags
            && self.security == o.security
    }

    fn owned(self) -> OwnedKey {
        OwnedKey {
            inbound: self.inbound,
            peer: self.peer.cloned(),
            principal: self.principal.to_owned(),
            service: self.service.to_owned(),
            protocol: self.protocol,
            code: self.code,
            grpc: self.grpc,
            flags: self.flags,
            security: self.security,
        }
    }
}

/// The four HTTP metric handles of one label set.
#[derive(Debug, Clone)]
pub struct HttpHandles {
    /// `istio_requests_total`.
    pub requests: Counter,
    /// `istio_request_duration_milliseconds`.
    pub duration: Histogram,
    /// `istio_request_bytes`.
    pub request_bytes: Histogram,
    /// `istio_response_bytes`.
    pub response_bytes: Histogram,
}

type Cache = HashMap<u64, Vec<(OwnedKey, HttpHandles)>>;

thread_local! {
    static HTTP: RefCell<(usize, Cache)> = RefCell::new((0, Cache::new()));
}

/// The handles for `key`, from this thread's cache or created in `stats`' families.
pub fn http(stats: &IstioStats, key: HttpKey<'_>) -> HttpHandles {
    let hash = key.hash();
    let owner = std::ptr::from_ref(stats) as usize;
    HTTP.with(|cell| {
        let mut cell = cell.borrow_mut();
        let (stats_id, cache) = &mut *cell;
        if *stats_id != owner {
            // Another registry (tests run several); start over.
            cache.clear();
            *stats_id = owner;
        }
        if let Some(bucket) = cache.get(&hash)
            && let Some((_, h)) = bucket.iter().find(|(k, _)| key.matches(k))
        {
            return h.clone();
        }
        let labels = http_labels(stats, &key);
        let handles = HttpHandles {
            requests: stats.requests.get_or_create_owned(&labels),
            duration: stats.duration.get_or_create_owned(&labels),
            request_bytes: stats.request_bytes.get_or_create_owned(&labels),
            response_bytes: stats.response_bytes.get_or_create_owned(&labels),
        };
        if cache.len() > 4096 {
            cache.clear();
        }
        let bucket = cache.entry(hash).or_default();
        if bucket.len() >= 4 {
            bucket.clear();
        }
        bucket.push((key.owned(), handles.clone()));
        handles
    })
}

fn http_labels(stats: &IstioStats, key: &HttpKey<'_>) -> HttpLabels {
    let unknown = Workload::unknown();
    let peer = key.peer.map_or(&unknown, |p| &**p);
    let me = &stats.identity.me;
    let (source, dest) = if key.inbound { (peer, me) } else { (me, peer) };
    let expanded;
    let service = if key.inbound && !key.service.is_empty() && !key.service.contains('.') {
        // A short host on the server side names a service of the server's namespace.
        let ns = &me.namespace;
        expanded = format!("{}.{ns}.svc.{}", key.service, stats.identity.trust_domain);
        expanded.as_str()
    } else {
        key.service
    };
    let mut peers = peer_labels(key.inbound, source, dest, service);
    if key.inbound {
        key.principal.clone_into(&mut peers.source_principal);
    }
    HttpLabels {
        peers,
        request_protocol: key.protocol,
        response_code: key.code,
        grpc_response_status: key.grpc.map(|g| g.to_string()).unwrap_or_default(),
        response_flags: key.flags.to_string(),
        connection_security_policy: key.security,
    }
}

/// The reporter, source and destination labels.
pub fn peer_labels(inbound: bool, source: &Workload, dest: &Workload, service: &str) -> PeerLabels {
    let (service, name, namespace) = if service.is_empty() {
        (UNKNOWN, UNKNOWN, UNKNOWN)
    } else {
        super::service_of_host(service)
    };
    PeerLabels {
        reporter: if inbound { "destination" } else { "source" },
        source_workload: source.workload.clone(),
        source_workload_namespace: source.namespace.clone(),
        source_principal: source.principal.clone(),
        source_app: source.app.clone(),
        source_version: source.version.clone(),
        source_canonical_service: source.canonical_service.clone(),
        source_canonical_revision: source.canonical_revision.clone(),
        source_cluster: source.cluster.clone(),
        destination_workload: dest.workload.clone(),
        destination_workload_namespace: dest.namespace.clone(),
        destination_principal: dest.principal.clone(),
        destination_app: dest.app.clone(),
        destination_version: dest.version.clone(),
        destination_service: service.to_owned(),
        destination_service_name: name.to_owned(),
        destination_service_namespace: namespace.to_owned(),
        destination_canonical_service: dest.canonical_service.clone(),
        destination_canonical_revision: dest.canonical_revision.clone(),
        destination_cluster: dest.cluster.clone(),
    }
}
