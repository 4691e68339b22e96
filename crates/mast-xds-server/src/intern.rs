//! Interned subscription sets: thousands of proxies subscribe to the same thousands of
//! names (every EDS cluster of their namespace), so streams share one copy of each set.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock, Weak};

use parking_lot::Mutex;

/// Sets with the same content hash.
type Bucket = Vec<Weak<BTreeSet<String>>>;

/// Live sets by content hash.
static SETS: LazyLock<Mutex<HashMap<u64, Bucket>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// The shared copy of `set`.
pub(crate) fn names(set: BTreeSet<String>) -> Arc<BTreeSet<String>> {
    if set.is_empty() {
        return Arc::default();
    }
    let mut h = std::hash::DefaultHasher::new();
    set.hash(&mut h);
    let key = h.finish();
    let mut sets = SETS.lock();
    let bucket = sets.entry(key).or_default();
    bucket.retain(|w| w.strong_count() > 0);
    if let Some(found) = bucket.iter().filter_map(Weak::upgrade).find(|s| **s == set) {
        return found;
    }
    let shared = Arc::new(set);
    bucket.push(Arc::downgrade(&shared));
    if sets.len() > 4096 {
        sets.retain(|_, b| b.iter().any(|w| w.strong_count() > 0));
    }
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_sets_share_one_copy() {
        let set = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
        let a = names(set(&["x", "y"]));
        let b = names(set(&["y", "x"]));
        assert!(Arc::ptr_eq(&a, &b));
        let c = names(set(&["x"]));
        assert!(!Arc::ptr_eq(&a, &c));
        drop((a, b));
        let d = names(set(&["x", "y"]));
        assert_eq!(d.len(), 2);
    }
}
