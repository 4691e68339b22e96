//! Which series make which edges, Kiali's versioned app graph (client workload → service →
//! server workload), counting every request once:
//! - Istio series reported by the destination are used as they are (the server saw the
//!   request, and knows its client through the metadata exchange);
//! - Istio series reported by the source are used only for what no destination reported:
//!   local replies (no healthy upstream, fault injection, …) and calls to workloads whose
//!   proxy does not report Istio metrics;
//! - Envoy sidecars' series (client side only) give client → service, and the service's
//!   traffic is shared between its endpoint workloads (of the cluster's subset) in
//!   proportion to what each one's Envoy counted inbound, else evenly;
//! - TCP comes from the client side, shared the same way.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use mast_core::Hostname;
use mast_model::MeshSnapshot;

use crate::scrape::traffic::known;
use crate::scrape::{HttpSeries, Origin, Peer, Protocol, Reporter, TcpSeries, Traffic};
use crate::scrape::{ProxyKind, traffic::UNKNOWN};

/// The id of the node standing for every unknown client.
pub const UNKNOWN_ID: &str = "unknown";

/// The id of a workload node.
pub fn workload_id(namespace: &str, name: &str) -> String {
    format!("workload:{namespace}/{name}")
}

/// The id of a service node.
pub fn service_id(host: &str) -> String {
    format!("service:{host}")
}

/// The id of an app node (the box around an app's versions).
pub fn app_id(namespace: &str, app: &str) -> String {
    format!("app:{namespace}/{app}")
}

/// An edge's key: source id, target id, protocol.
pub type EdgeKey = (String, String, Protocol);

/// What is summed on one edge.
#[derive(Debug, Default, Clone)]
pub struct Acc {
    /// Requests per second.
    pub rps: f64,
    /// Failed requests per second.
    pub errors: f64,
    /// Requests per second by response code.
    pub codes: BTreeMap<String, f64>,
    /// Latency bucket rates by bound (`f64::to_bits` of non-negative bounds sorts as the
    /// bounds do).
    pub buckets: BTreeMap<u64, f64>,
    /// Traffic by `connection_security_policy`.
    pub mtls: BTreeMap<String, f64>,
    /// TCP bytes per second.
    pub bytes: f64,
}

/// Whether a request failed: a 5xx, or any response flag.
pub fn is_error(code: &str, flags: &str) -> bool {
    code.starts_with('5') || !(flags == "-" || flags.is_empty() || flags == UNKNOWN)
}

/// The edges of a traffic view, summed.
pub struct EdgeSet<'a> {
    snapshot: &'a MeshSnapshot,
    /// Workloads whose proxy reports Istio metrics on the server side.
    reporting: BTreeSet<(String, String)>,
    /// Inbound rate per workload counted by Envoy sidecars.
    envoy_inbound: HashMap<(String, String), f64>,
    /// The sums.
    pub edges: BTreeMap<EdgeKey, Acc>,
    /// Peers seen in traffic (for node labels).
    pub peers: BTreeMap<String, Peer>,
}

impl<'a> EdgeSet<'a> {
    /// Sums every series of `traffic`.
    pub fn build(traffic: &Traffic, snapshot: &'a MeshSnapshot) -> Self {
        let mut set = Self {
            snapshot,
            reporting: reporting(traffic),
            envoy_inbound: envoy_inbound(traffic),
            edges: BTreeMap::new(),
            peers: BTreeMap::new(),
        };
        for s in &traffic.http {
            set.http(s);
        }
        for s in &traffic.tcp {
            set.tcp(s);
        }
        set
    }

    fn peer_node(&mut self, peer: &Peer) -> String {
        if !peer.is_known() {
            return UNKNOWN_ID.to_owned();
        }
        let id = workload_id(&peer.namespace, &peer.workload);
        self.peers.entry(id.clone()).or_insert_with(|| peer.clone());
        id
    }

    fn is_reporting(&self, peer: &Peer) -> bool {
        self.reporting
            .contains(&(peer.namespace.clone(), peer.workload.clone()))
    }

    fn http(&mut self, s: &HttpSeries) {
        if s.rps <= 0.0 && s.latency.is_empty() {
            return;
        }
        let k = &s.key;
        let host = self.host(&k.service, &k.source, &k.destination);
        let svc = host.as_deref().map(service_id);
        match (k.origin, k.reporter) {
            (_, Reporter::Destination) if k.origin == Origin::Envoy => {}
            (_, Reporter::Destination) => {
                let src = self.peer_node(&k.source);
                let dst = self.peer_node(&k.destination);
                match svc {
                    Some(svc) => {
                        self.add_http(&src, &svc, s, 1.0);
                        self.add_http(&svc, &dst, s, 1.0);
                    }
                    None => self.add_http(&src, &dst, s, 1.0),
                }
            }
            (Origin::Istio, Reporter::Source) => self.istio_source(s, host),
            (Origin::Envoy, Reporter::Source) => {
                let src = self.peer_node(&k.source);
                let target = svc.unwrap_or_else(|| UNKNOWN_ID.to_owned());
                self.add_http(&src, &target, s, 1.0);
                if let Some(host) = host {
                    self.share_http(&host, s);
                }
            }
        }
    }

    /// A client-side Istio series: only what no destination proxy reported.
    fn istio_source(&mut self, s: &HttpSeries, host: Option<String>) {
        let k = &s.key;
        let local_reply = is_error("", &k.response_flags);
        if k.destination.is_known() && self.is_reporting(&k.destination) {
            return;
        }
        let covered = host
            .as_deref()
            .is_some_and(|h| self.all_endpoints_report(h));
        if !k.destination.is_known() && !local_reply && covered {
            return;
        }
        let src = self.peer_node(&k.source);
        let Some(host) = host else {
            self.add_http(&src, UNKNOWN_ID, s, 1.0);
            return;
        };
        let svc = service_id(&host);
        self.add_http(&src, &svc, s, 1.0);
        if k.destination.is_known() {
            let dst = self.peer_node(&k.destination);
            self.add_http(&svc, &dst, s, 1.0);
        } else if !local_reply {
            self.share_http(&host, s);
        }
    }

    /// The service host of a series: as reported when the mesh has it, else a short name
    /// qualified with the client's (then the server's) namespace when that names a service
    /// (a client-side local reply reports the authority as the client wrote it); `None`
    /// when unknown.
    fn host(&self, service: &str, source: &Peer, destination: &Peer) -> Option<String> {
        if !known(service) {
            return None;
        }
        let exists = |h: &Hostname| self.snapshot.service(h).is_some();
        if exists(&Hostname::new_unchecked(service)) || service.contains(".svc.") {
            return Some(service.to_owned());
        }
        [&source.namespace, &destination.namespace]
            .into_iter()
            .filter(|ns| known(ns))
            .map(|ns| self.snapshot.resolve_host(ns, service))
            .find(exists)
            .map(|h| h.to_string())
            .or_else(|| Some(service.to_owned()))
    }

    fn tcp(&mut self, s: &TcpSeries) {
        let k = &s.key;
        if k.reporter != Reporter::Source || s.bytes_per_second <= 0.0 {
            return;
        }
        let src = self.peer_node(&k.source);
        let Some(host) = self.host(&k.service, &k.source, &k.destination) else {
            self.add_tcp(&src, UNKNOWN_ID, s, 1.0);
            return;
        };
        let svc = service_id(&host);
        self.add_tcp(&src, &svc, s, 1.0);
        if k.destination.is_known() && k.origin == Origin::Istio {
            let dst = self.peer_node(&k.destination);
            self.add_tcp(&svc, &dst, s, 1.0);
        } else {
            for (dst, share) in self.shares(&host, &k.subset, &k.source.namespace, false) {
                self.add_tcp(&svc, &dst, s, share);
            }
        }
    }

    /// Shares the series between the endpoint workloads of service `host`.
    fn share_http(&mut self, host: &str, s: &HttpSeries) {
        let k = &s.key;
        let svc = service_id(host);
        for (dst, share) in self.shares(host, &k.subset, &k.source.namespace, true) {
            self.add_http(&svc, &dst, s, share);
        }
    }

    fn add_http(&mut self, from: &str, to: &str, s: &HttpSeries, share: f64) {
        let key = (from.to_owned(), to.to_owned(), s.key.protocol);
        let a = self.edges.entry(key).or_default();
        let rps = s.rps * share;
        a.rps += rps;
        if is_error(&s.key.response_code, &s.key.response_flags) {
            a.errors += rps;
        }
        *a.codes.entry(s.key.response_code.clone()).or_default() += rps;
        *a.mtls.entry(s.key.mtls.clone()).or_default() += rps;
        for (le, rate) in &s.latency {
            if *le >= 0.0 {
                *a.buckets.entry(le.to_bits()).or_default() += rate * share;
            }
        }
    }

    fn add_tcp(&mut self, from: &str, to: &str, s: &TcpSeries, share: f64) {
        let key = (from.to_owned(), to.to_owned(), Protocol::Tcp);
        let a = self.edges.entry(key).or_default();
        a.bytes += s.bytes_per_second * share;
        *a.mtls.entry(s.key.mtls.clone()).or_default() += s.bytes_per_second * share;
    }

    /// The service's endpoint workloads, in the subset when one is named.
    fn endpoints(&self, host: &str, subset: &str, client_ns: &str) -> BTreeSet<(String, String)> {
        let host = Hostname::new_unchecked(host);
        let Some(svc) = self.snapshot.service(&host) else {
            return BTreeSet::new();
        };
        let labels = (!subset.is_empty())
            .then(|| {
                let ns = if known(client_ns) {
                    client_ns
                } else {
                    &svc.namespace
                };
                self.snapshot
                    .subsets(ns, &host)
                    .iter()
                    .find(|s| s.name == subset)
                    .map(|s| s.labels.clone())
            })
            .flatten()
            .unwrap_or_default();
        svc.endpoints
            .values()
            .flatten()
            .filter(|e| !e.workload.is_empty())
            .filter(|e| labels.iter().all(|(k, v)| e.labels.get(k) == Some(v)))
            .map(|e| (e.namespace.clone(), e.workload.clone()))
            .collect()
    }

    fn all_endpoints_report(&self, host: &str) -> bool {
        let eps = self.endpoints(host, "", "");
        !eps.is_empty() && eps.iter().all(|w| self.reporting.contains(w))
    }

    /// (workload node, share) for a service's traffic that no server reported (HTTP: the
    /// workloads whose proxies report Istio metrics are left out, they report their own).
    fn shares(
        &self,
        host: &str,
        subset: &str,
        client_ns: &str,
        skip_reporting: bool,
    ) -> Vec<(String, f64)> {
        let eps: Vec<(String, String)> = self
            .endpoints(host, subset, client_ns)
            .into_iter()
            .filter(|w| !(skip_reporting && self.reporting.contains(w)))
            .collect();
        let weights: Vec<f64> = eps
            .iter()
            .map(|w| self.envoy_inbound.get(w).copied().unwrap_or(0.0))
            .collect();
        let total: f64 = weights.iter().sum();
        let n = eps.len() as f64;
        eps.iter()
            .zip(weights)
            .map(|((ns, name), w)| {
                let share = if total > 0.0 { w / total } else { 1.0 / n };
                (workload_id(ns, name), share)
            })
            .filter(|(_, share)| *share > 0.0)
            .collect()
    }
}

/// Workloads whose proxy reports Istio metrics: mast-proxies scraped successfully, and every
/// destination of a destination-reported Istio series (with Prometheus).
fn reporting(traffic: &Traffic) -> BTreeSet<(String, String)> {
    let mut out: BTreeSet<(String, String)> = traffic
        .proxies
        .iter()
        .filter(|p| p.kind == Some(ProxyKind::MastProxy) && p.error.is_none())
        .map(|p| (p.namespace.clone(), p.workload.clone()))
        .collect();
    for s in &traffic.http {
        let k = &s.key;
        if k.origin == Origin::Istio
            && k.reporter == Reporter::Destination
            && k.destination.is_known()
        {
            out.insert((
                k.destination.namespace.clone(),
                k.destination.workload.clone(),
            ));
        }
    }
    out
}

/// What Envoy sidecars counted inbound, per workload (requests, else bytes).
fn envoy_inbound(traffic: &Traffic) -> HashMap<(String, String), f64> {
    let mut out: HashMap<(String, String), f64> = HashMap::new();
    let mut add = |origin: Origin, reporter: Reporter, d: &Peer, rate: f64| {
        if origin == Origin::Envoy && reporter == Reporter::Destination {
            *out.entry((d.namespace.clone(), d.workload.clone()))
                .or_default() += rate;
        }
    };
    for s in &traffic.http {
        add(s.key.origin, s.key.reporter, &s.key.destination, s.rps);
    }
    for s in &traffic.tcp {
        let rate = s.bytes_per_second;
        add(s.key.origin, s.key.reporter, &s.key.destination, rate);
    }
    out
}
