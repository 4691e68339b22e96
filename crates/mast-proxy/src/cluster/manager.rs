//! The [`ClusterManager`]: every cluster by name in an immutable map swapped atomically, so
//! readers never block. CDS replaces clusters (an unchanged one keeps its state; a changed one
//! keeps its counters and, with the same connection options, its endpoints' pools); EDS
//! replaces endpoints (an endpoint present before and after keeps its pool, outlier and LB
//! state) and is remembered for EDS clusters that arrive or change later.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use super::assignment::Assignment;
use super::convert::{ClusterConfig, Discovery};
use super::dns::DnsCache;
use super::state::{Cluster, Inherit};

type Map = HashMap<String, Arc<Cluster>>;

/// All clusters, with their runtime state.
#[derive(Debug, Default)]
pub struct ClusterManager {
    clusters: ArcSwap<Map>,
    /// Serialises writers (CDS and EDS applies).
    write: Mutex<()>,
    /// The last EDS assignment of each cluster name.
    assignments: Mutex<HashMap<String, Arc<Assignment>>>,
    /// DNS caches by name (clusters naming the same cache share it).
    dns_caches: Mutex<HashMap<String, Weak<DnsCache>>>,
}

impl ClusterManager {
    /// An empty manager.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies CDS: `upserts` added or replaced, `removed` dropped.
    pub fn apply_clusters(&self, upserts: Vec<ClusterConfig>, removed: &[String]) {
        let _w = self.write.lock();
        let mut map: Map = (**self.clusters.load()).clone();
        for name in removed {
            map.remove(name);
        }
        for config in upserts {
            let previous = map.get(config.name()).cloned();
            if previous.as_ref().is_some_and(|p| *p.config() == config) {
                continue;
            }
            let assignment = matches!(config.discovery, Discovery::Eds)
                .then(|| self.assignments.lock().get(config.name()).cloned())
                .flatten();
            let dns_cache = match &config.discovery {
                Discovery::ForwardProxy(s) => Some(self.dns_cache(s)),
                _ => None,
            };
            let cluster = Cluster::new(
                config,
                Inherit {
                    previous: previous.as_deref(),
                    endpoints: assignment.as_deref().map(|a| a.endpoints.as_slice()),
                    dns_cache,
                },
            );
            map.insert(cluster.name().to_owned(), cluster);
        }
        self.clusters.store(Arc::new(map));
    }

    fn dns_cache(&self, settings: &super::convert::DnsCacheSettings) -> Arc<DnsCache> {
        let mut caches = self.dns_caches.lock();
        caches.retain(|_, w| w.strong_count() > 0);
        if let Some(c) = caches.get(&settings.name).and_then(Weak::upgrade)
            && c.settings() == settings
        {
            return c;
        }
        let c = Arc::new(DnsCache::new(settings.clone()));
        caches.insert(settings.name.clone(), Arc::downgrade(&c));
        c
    }

    /// Applies EDS: each assignment replaces its cluster's endpoints; `removed` empties them.
    pub fn apply_assignments(&self, upserts: Vec<Assignment>, removed: &[String]) {
        let _w = self.write.lock();
        let map = self.clusters.load();
        let mut store = self.assignments.lock();
        for name in removed {
            store.remove(name);
            if let Some(c) = map.get(name).filter(|c| c.config().is_eds()) {
                c.set_endpoints(&[], None);
            }
        }
        for a in upserts {
            let a = Arc::new(a);
            if let Some(c) = map.get(a.cluster_name()).filter(|c| c.config().is_eds()) {
                c.set_endpoints(&a.endpoints, None);
            }
            store.insert(a.cluster_name().to_owned(), a);
        }
    }

    /// The cluster named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Cluster>> {
        self.clusters.load().get(name).cloned()
    }

    /// The names of all clusters, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.clusters.load().keys().cloned().collect();
        names.sort();
        names
    }
}
