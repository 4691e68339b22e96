//! Generation for all streams: the shared-part cache (one generation per type, share key
//! and push, awaited by every stream that needs it, as istiod's XdsCache) and the bounded
//! pool of blocking threads generation runs on, so that the async workers stay free for
//! accepting connections, keepalives and ACKs however heavy a push is.

use std::collections::HashMap;
use std::sync::Arc;

use mast_model::{MeshSnapshot, ProxyNode};
use mast_xds::{Part as Half, ShareKey};
use parking_lot::Mutex;
use tokio::sync::{OnceCell, Semaphore};

use crate::generator::Generator;
use crate::push::PushEvent;
use crate::service::Gone;
use crate::view::{Generated, Part};

/// One shared part in the cache.
struct Entry {
    /// The push sequence the part belongs to (the type's last change).
    seq: u64,
    cell: Arc<OnceCell<Arc<Part>>>,
    /// The part this one replaces and its `seq`, to record what changed.
    prev: Option<Versioned>,
}

type CacheKey = (String, ShareKey);

/// A part and the push `seq` it belongs to.
type Versioned = (u64, Arc<Part>);

/// Shared parts by (type, key), and per type the newest push swept.
#[derive(Default)]
struct Cache {
    entries: HashMap<CacheKey, Entry>,
    swept: HashMap<String, u64>,
}

impl Cache {
    /// Once per type and push: drops parts older than `seq` that no stream holds any more.
    fn sweep(&mut self, type_url: &str, seq: u64) {
        if self.swept.get(type_url).is_some_and(|s| *s >= seq) {
            return;
        }
        self.swept.insert(type_url.to_owned(), seq);
        self.entries.retain(|(t, _), e| {
            t != type_url || e.seq >= seq || e.cell.get().is_some_and(|p| Arc::strong_count(p) > 1)
        });
    }
}

/// The generator, its shared-part cache and the blocking pool.
pub(crate) struct Generation {
    generator: Arc<dyn Generator>,
    cache: Mutex<Cache>,
    permits: Arc<Semaphore>,
}

impl Generation {
    /// Generation with `generator`, at most as many blocking generations at once as cores.
    pub(crate) fn new(generator: Arc<dyn Generator>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self {
            generator,
            cache: Mutex::new(Cache::default()),
            permits: Arc::new(Semaphore::new(cores.max(1))),
        }
    }

    /// The proxy's share key, if the generator shares.
    pub(crate) fn share_key(&self, snapshot: &MeshSnapshot, proxy: &ProxyNode) -> Option<ShareKey> {
        self.generator.share_key(snapshot, proxy)
    }

    /// The resources of `type_url` for `proxy` at `event`.
    pub(crate) async fn generate(
        &self,
        event: &Arc<PushEvent>,
        proxy: &Arc<ProxyNode>,
        key: Option<&ShareKey>,
        type_url: &str,
    ) -> Result<Generated, Gone> {
        let version = event.type_version(type_url);
        let Some(key) = key else {
            let (generator, snapshot, proxy, t) = self.owned(event, proxy, type_url);
            let own = self
                .blocking(move || Part::new(generator.generate(&snapshot, &proxy, &t)))
                .await?;
            return Ok(Generated::new(version, None, own));
        };
        let shared = self.shared(event, proxy, key, type_url).await?;
        // The own part is small by design (a workload's inbound side): generated in place.
        let own = self
            .generator
            .generate_part(&event.snapshot, proxy, type_url, Half::Own);
        Ok(Generated::new(version, Some(shared), Part::new(own)))
    }

    /// The shared part for `key`, generated once per push and type.
    async fn shared(
        &self,
        event: &Arc<PushEvent>,
        proxy: &Arc<ProxyNode>,
        key: &ShareKey,
        type_url: &str,
    ) -> Result<Arc<Part>, Gone> {
        let seq = event.type_seq(type_url);
        let (cell, prev) = self.cell(type_url, key, seq);
        // After an endpoint-only change, only the touched services' assignments are new.
        let delta = event
            .eds_delta
            .clone()
            .filter(|(base, _)| {
                type_url == mast_xds::ENDPOINT_TYPE && prev.as_ref().is_some_and(|(s, _)| s == base)
            })
            .map(|(_, hosts)| hosts);
        let init = async {
            let (generator, snapshot, proxy, t) = self.owned(event, proxy, type_url);
            let part = self
                .blocking(move || {
                    let started = std::time::Instant::now();
                    let prev = prev.map(|(_, p)| p);
                    let targeted = delta.as_ref().zip(prev.as_ref()).and_then(|(hosts, prev)| {
                        let fresh =
                            generator.generate_shared_endpoints(&snapshot, &proxy, hosts)?;
                        Some(Part::replacing(prev, fresh))
                    });
                    let mut part = targeted.unwrap_or_else(|| {
                        Part::new(generator.generate_part(&snapshot, &proxy, &t, Half::Shared))
                    });
                    if let Some(prev) = prev {
                        part.diff_from(&prev);
                    }
                    tracing::debug!(
                        r#type = crate::status::short_type_name(&t),
                        namespace = %proxy.namespace,
                        resources = part.len(),
                        touched_services = delta.as_ref().map(|h| h.len()),
                        ms = started.elapsed().as_secs_f64() * 1e3,
                        "generated a shared part"
                    );
                    part
                })
                .await?;
            Ok::<_, Gone>(Arc::new(part))
        };
        let part = cell.get_or_try_init(|| init).await.cloned()?;
        // The replaced part was only needed to record the diff: let it go.
        let mut cache = self.cache.lock();
        if let Some(e) = cache.entries.get_mut(&(type_url.to_owned(), key.clone()))
            && e.seq == seq
        {
            e.prev = None;
        }
        drop(cache);
        Ok(part)
    }

    /// The cache cell for (type, key) at `seq`, and the part it replaces. A stream behind
    /// the cache (an older `seq`) gets a private cell.
    fn cell(
        &self,
        type_url: &str,
        key: &ShareKey,
        seq: u64,
    ) -> (Arc<OnceCell<Arc<Part>>>, Option<Versioned>) {
        let mut cache = self.cache.lock();
        let cache_key = (type_url.to_owned(), key.clone());
        let found = match cache.entries.get_mut(&cache_key) {
            Some(e) if e.seq == seq => return (e.cell.clone(), e.prev.clone()),
            Some(e) if e.seq > seq => return (Arc::new(OnceCell::new()), None),
            Some(e) => e.cell.get().map(|p| (e.seq, p.clone())),
            None => None,
        };
        let cell = Arc::new(OnceCell::new());
        cache.entries.insert(
            cache_key,
            Entry {
                seq,
                cell: cell.clone(),
                prev: found.clone(),
            },
        );
        cache.sweep(type_url, seq);
        (cell, found)
    }

    fn owned(
        &self,
        event: &Arc<PushEvent>,
        proxy: &Arc<ProxyNode>,
        type_url: &str,
    ) -> (
        Arc<dyn Generator>,
        Arc<MeshSnapshot>,
        Arc<ProxyNode>,
        String,
    ) {
        (
            self.generator.clone(),
            event.snapshot.clone(),
            proxy.clone(),
            type_url.to_owned(),
        )
    }

    /// Runs `f` on the blocking pool, at most one per core at a time.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Gone> {
        let _permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Gone)?;
        match tokio::task::spawn_blocking(f).await {
            Ok(v) => Ok(v),
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(_) => Err(Gone),
            },
        }
    }
}
