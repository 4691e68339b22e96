//! Route tables received over RDS, by name; readers never block (arc-swap of an immutable
//! map), and an HTTP connection manager looks its table up per request.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::route::RouteTable;

/// RDS route tables by name.
#[derive(Debug, Default)]
pub struct RouteStore {
    tables: ArcSwap<HashMap<String, Arc<RouteTable>>>,
}

impl RouteStore {
    /// No tables.
    pub fn new() -> Self {
        Self::default()
    }

    /// The table `name`, when received.
    pub fn get(&self, name: &str) -> Option<Arc<RouteTable>> {
        self.tables.load().get(name).cloned()
    }

    /// Adds or replaces `upserts`, drops `removed`.
    pub fn apply(&self, upserts: Vec<RouteTable>, removed: &[String]) {
        let mut next = HashMap::clone(&self.tables.load());
        for name in removed {
            next.remove(name);
        }
        for t in upserts {
            next.insert(t.name().to_owned(), Arc::new(t));
        }
        self.tables.store(Arc::new(next));
    }

    /// The names of the tables held.
    pub fn names(&self) -> Vec<String> {
        self.tables.load().keys().cloned().collect()
    }
}
