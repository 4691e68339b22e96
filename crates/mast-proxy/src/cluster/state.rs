//! A cluster at run time: its converted config, its endpoints (swapped atomically with their
//! load-balancer state), its breaker counters, and the tasks that keep it current (outlier
//! sweep, STRICT_DNS refresh, dynamic host cleanup). The tasks hold only a `Weak` reference
//! and are aborted when the cluster is dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use super::assignment::{AssignedEndpoint, HostList};
use super::breaker::{Overflow, RequestGuard, RetryGuard, try_request, try_retry};
use super::convert::{ClusterConfig, Discovery};
use super::dns::{DnsCache, strict_dns_task};
use super::endpoint::Transport;
use super::lb::LbState;
use super::outlier::{OutlierConfig, may_eject};
use super::{Endpoint, LbContext, SelectError};
use crate::upstream::{Counters, Pool, Shared};

/// The endpoints of a cluster with their load-balancer state.
#[derive(Debug)]
pub(crate) struct HostSet {
    pub all: Vec<Arc<Endpoint>>,
    pub lb: LbState,
}

/// Hosts created on demand (ORIGINAL_DST, dynamic forward proxy), pooled per address.
#[derive(Debug, Default)]
struct Dynamic {
    hosts: Mutex<HashMap<SocketAddr, (Arc<Endpoint>, bool)>>,
}

/// A cluster with its run-time state.
#[derive(Debug)]
pub struct Cluster {
    config: Arc<ClusterConfig>,
    shared: Arc<Shared>,
    hosts: ArcSwap<HostSet>,
    rr: AtomicUsize,
    update: Mutex<()>,
    dynamic: Dynamic,
    dns_cache: Option<Arc<DnsCache>>,
    ready: tokio::sync::watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    me: Weak<Cluster>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for t in self.tasks.get_mut().drain(..) {
            t.abort();
        }
    }
}

/// Where a new cluster's pools and counters come from.
pub(crate) struct Inherit<'a> {
    pub previous: Option<&'a Cluster>,
    pub endpoints: Option<&'a [AssignedEndpoint]>,
    pub dns_cache: Option<Arc<DnsCache>>,
}

impl Cluster {
    /// Builds a cluster, taking over the counters of `previous` and the pools of its
    /// endpoints whose address is unchanged (when the connection options are the same).
    pub(crate) fn new(config: ClusterConfig, inherit: Inherit<'_>) -> Arc<Self> {
        let counters = inherit.previous.map_or_else(
            || Arc::new(Counters::default()),
            |p| p.shared.counters.clone(),
        );
        let shared = Arc::new(Shared {
            options: config.upstream.clone(),
            limits: config.limits,
            counters,
        });
        let strict = matches!(config.discovery, Discovery::StrictDns { .. });
        let config = Arc::new(config);
        let empty = HostSet {
            all: Vec::new(),
            lb: LbState::build(&config.lb, Vec::new()),
        };
        let cluster = Arc::new_cyclic(|me| Self {
            config: config.clone(),
            shared,
            hosts: ArcSwap::from_pointee(empty),
            rr: AtomicUsize::new(fastrand::usize(..)),
            update: Mutex::new(()),
            dynamic: Dynamic::default(),
            dns_cache: inherit.dns_cache,
            ready: tokio::sync::watch::Sender::new(!strict),
            tasks: Mutex::new(Vec::new()),
            me: me.clone(),
        });
        let pools = inherit
            .previous
            .filter(|p| {
                p.config.upstream == config.upstream && p.config.transports == config.transports
            })
            .map(Cluster::pools);
        let initial = match &config.discovery {
            Discovery::Static(eps) => Some(eps.as_slice()),
            Discovery::Eds => inherit.endpoints,
            _ => None,
        };
        if let Some(eps) = initial {
            cluster.set_endpoints(eps, pools.as_ref());
        }
        cluster.start_tasks();
        cluster
    }

    fn start_tasks(self: &Arc<Self>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(cluster = %self.config.name, "no tokio runtime: cluster tasks not started");
            self.mark_ready();
            return;
        };
        let mut tasks = self.tasks.lock();
        if let Some(cfg) = &self.config.outlier {
            tasks.push(
                rt.spawn(outlier_task(self.me.clone(), cfg.interval))
                    .abort_handle(),
            );
        }
        if let Discovery::StrictDns {
            hosts,
            family,
            refresh,
        } = &self.config.discovery
        {
            let t = strict_dns_task(self.me.clone(), hosts.clone(), *family, *refresh);
            tasks.push(rt.spawn(t).abort_handle());
        }
        if matches!(
            self.config.discovery,
            Discovery::OriginalDst | Discovery::ForwardProxy(_)
        ) {
            tasks.push(rt.spawn(cleanup_task(self.me.clone())).abort_handle());
        }
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The converted config.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The cluster's `connect_timeout`.
    pub fn connect_timeout(&self) -> Duration {
        self.config.upstream.connect_timeout
    }

    /// The current endpoints (for admin output and tests).
    pub fn endpoints(&self) -> Vec<Arc<Endpoint>> {
        let mut all = self.hosts.load().all.clone();
        all.extend(self.dynamic.hosts.lock().values().map(|(e, _)| e.clone()));
        all
    }

    /// `circuit_breakers.max_requests` (active requests on the cluster). `Err` → the router
    /// answers 503 with flag UO and `x-envoy-overloaded: true`.
    pub fn try_request(&self) -> Result<RequestGuard, Overflow> {
        try_request(&self.shared.counters, &self.shared.limits)
    }

    /// `circuit_breakers.max_retries`, or the retry budget when set.
    pub fn try_retry(&self) -> Result<RetryGuard, Overflow> {
        try_retry(&self.shared.counters, &self.shared.limits)
    }

    /// Picks an endpoint with the cluster's load balancer (see [`LbContext`]). Hosts ejected
    /// by outlier detection are skipped unless the cluster is in panic; a pick that lands on
    /// one of `ctx.previous` is retried up to `ctx.max_attempts` more times.
    pub async fn select(&self, ctx: &LbContext<'_>) -> Result<Arc<Endpoint>, SelectError> {
        match &self.config.discovery {
            Discovery::OriginalDst => {
                let addr = ctx.original_dst.ok_or(SelectError::NoOriginalDst)?;
                return Ok(self.dynamic_endpoint(addr));
            }
            Discovery::ForwardProxy(_) => {
                let authority = ctx
                    .authority
                    .ok_or_else(|| SelectError::DnsFailure(String::new()))?;
                let cache = self
                    .dns_cache
                    .as_ref()
                    .ok_or_else(|| SelectError::DnsFailure(authority.to_owned()))?;
                let addr = cache.resolve(authority).await?;
                return Ok(self.dynamic_endpoint(addr));
            }
            Discovery::StrictDns { .. } if !*self.ready.borrow() => {
                let mut rx = self.ready.subscribe();
                let _ = rx.wait_for(|r| *r).await;
            }
            _ => {}
        }
        self.pick(ctx)
    }

    fn pick(&self, ctx: &LbContext<'_>) -> Result<Arc<Endpoint>, SelectError> {
        let hosts = self.hosts.load();
        let mut attempt = 0;
        loop {
            let i = hosts
                .lb
                .pick(&self.config.lb, &self.rr, ctx.hash, attempt)
                .ok_or(SelectError::NoHealthyUpstream)?;
            let ep = &hosts.lb.candidates[i];
            if attempt >= ctx.max_attempts || !ctx.previous.contains(&ep.address()) {
                return Ok(ep.clone());
            }
            attempt += 1;
        }
    }

    fn dynamic_endpoint(&self, addr: SocketAddr) -> Arc<Endpoint> {
        let mut hosts = self.dynamic.hosts.lock();
        let entry = hosts.entry(addr).or_insert_with(|| {
            let (index, tls) = self.config.transports.select(None);
            let transport = Transport {
                index,
                tls: tls.cloned(),
                metadata: None,
            };
            let ep = Endpoint::new(
                (addr, 1),
                transport,
                self.shared.clone(),
                Arc::new(Pool::default()),
                self.me.clone(),
                false,
            );
            (Arc::new(ep), true)
        });
        entry.1 = true;
        entry.0.clone()
    }

    /// The pools of the endpoints by (address, transport index).
    pub(crate) fn pools(&self) -> HashMap<(SocketAddr, usize), Arc<Pool>> {
        self.hosts
            .load()
            .all
            .iter()
            .map(|e| ((e.address(), e.transport_index()), e.pool().clone()))
            .collect()
    }

    pub(crate) fn outlier_config(&self) -> Option<&OutlierConfig> {
        self.config.outlier.as_ref()
    }

    /// Replaces the endpoints; an address present before with the same transport socket keeps
    /// its endpoint (pool, outlier and LB state; metadata updated), a new one may take over
    /// `pools[(addr, transport)]`. Each endpoint's transport comes from its metadata through
    /// the cluster's `transport_socket_matches`, so plaintext and TLS connections (or TLS
    /// connections of different settings) never share a pool.
    pub(crate) fn set_endpoints<'a>(
        &self,
        specs: impl Into<HostList<'a>>,
        pools: Option<&HashMap<(SocketAddr, usize), Arc<Pool>>>,
    ) {
        let specs: HostList<'a> = specs.into();
        let _lock = self.update.lock();
        let current = self.hosts.load();
        let by_addr: HashMap<SocketAddr, &Arc<Endpoint>> =
            current.all.iter().map(|e| (e.address(), e)).collect();
        let mut seen = std::collections::HashSet::with_capacity(specs.len());
        let mut all = Vec::with_capacity(specs.len());
        for (addr, weight, metadata) in specs.iter() {
            if !seen.insert(addr) {
                continue;
            }
            let (index, tls) = self.config.transports.select(metadata.map(|m| &**m));
            let ep = match by_addr.get(&addr).filter(|e| e.transport_index() == index) {
                Some(e) => {
                    e.set_weight(weight);
                    e.set_metadata(metadata.cloned());
                    (*e).clone()
                }
                None => {
                    let pool = pools
                        .and_then(|p| p.get(&(addr, index)).cloned())
                        .unwrap_or_default();
                    let transport = Transport {
                        index,
                        tls: tls.cloned(),
                        metadata: metadata.cloned(),
                    };
                    Arc::new(Endpoint::new(
                        (addr, weight),
                        transport,
                        self.shared.clone(),
                        pool,
                        self.me.clone(),
                        self.config.outlier.is_some(),
                    ))
                }
            };
            all.push(ep);
        }
        self.store(all);
    }

    /// Marks STRICT_DNS resolution as done once (select waits for it).
    pub(crate) fn mark_ready(&self) {
        self.ready.send_replace(true);
    }

    /// Rebuilds the LB state over `all` (caller holds `update`).
    fn store(&self, all: Vec<Arc<Endpoint>>) {
        let candidates = self.candidates(&all);
        let lb = LbState::build(&self.config.lb, candidates);
        self.hosts.store(Arc::new(HostSet { all, lb }));
    }

    /// Healthy (not ejected) hosts, or all of them when the healthy share is below the panic
    /// threshold.
    fn candidates(&self, all: &[Arc<Endpoint>]) -> Vec<Arc<Endpoint>> {
        if self.config.outlier.is_none() {
            return all.to_vec();
        }
        let healthy: Vec<Arc<Endpoint>> = all
            .iter()
            .filter(|e| !e.outlier.is_ejected())
            .cloned()
            .collect();
        let panic = self.config.panic_threshold;
        if !all.is_empty() && (healthy.len() as f64) * 100.0 < panic * all.len() as f64 {
            return all.to_vec();
        }
        healthy
    }

    /// Ejects `ep` if the max-ejection rule allows it.
    pub(crate) fn eject(&self, ep: &Endpoint) {
        let Some(cfg) = &self.config.outlier else {
            return;
        };
        let _lock = self.update.lock();
        let current = self.hosts.load_full();
        if !current.all.iter().any(|e| std::ptr::eq(e.as_ref(), ep)) || ep.outlier.is_ejected() {
            return;
        }
        let ejected = current
            .all
            .iter()
            .filter(|e| e.outlier.is_ejected())
            .count();
        if !may_eject(cfg, ejected, current.all.len()) {
            return;
        }
        tracing::debug!(cluster = %self.config.name, host = %ep.address(), "outlier ejected");
        ep.outlier.eject();
        self.store(current.all.clone());
    }

    /// The interval sweep: brings back hosts whose ejection time is over.
    fn outlier_sweep(&self) {
        let Some(cfg) = &self.config.outlier else {
            return;
        };
        let now = Instant::now();
        let _lock = self.update.lock();
        let current = self.hosts.load_full();
        let mut changed = false;
        for e in &current.all {
            changed |= e.outlier.sweep(cfg, now);
        }
        if changed {
            self.store(current.all.clone());
        }
    }

    /// Drops dynamic hosts unused since the last sweep.
    fn cleanup_dynamic(&self) {
        let mut hosts = self.dynamic.hosts.lock();
        hosts.retain(|_, (ep, used)| {
            let keep = *used || Arc::strong_count(ep) > 1;
            *used = false;
            keep
        });
        drop(hosts);
        if let Some(cache) = &self.dns_cache {
            cache.sweep();
        }
    }
}

async fn outlier_task(cluster: Weak<Cluster>, interval: Duration) {
    let interval = interval.max(Duration::from_millis(1));
    loop {
        tokio::time::sleep(interval).await;
        let Some(c) = cluster.upgrade() else {
            return;
        };
        c.outlier_sweep();
    }
}

/// Envoy's ORIGINAL_DST `cleanup_interval` default.
const CLEANUP: Duration = Duration::from_secs(5);

async fn cleanup_task(cluster: Weak<Cluster>) {
    loop {
        tokio::time::sleep(CLEANUP).await;
        let Some(c) = cluster.upgrade() else {
            return;
        };
        c.cleanup_dynamic();
    }
}
