//! `remote_jwks`: keys fetched with an HTTP GET of `http_uri.uri` through the cluster named in
//! `http_uri.cluster` (its endpoints, load balancing and transport socket, as any upstream
//! request), cached for `cache_duration` (Envoy's default 10 minutes). A fetch happens when a
//! request carries a token and the cached keys are missing or stale; concurrent requests
//! share one fetch. A failed fetch is not cached: tokens of that provider get
//! `Jwks remote fetch is failed` until a fetch succeeds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::http_uri::HttpUpstreamType;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::RemoteJwks as RemoteJwksProto;
use http::{Method, Request, Uri};
use http_body_util::BodyExt as _;

use super::keys::Jwks;
use crate::cluster::{ClusterManager, LbContext};
use crate::hcm::config::duration;
use crate::rbac::{Failure, fail, join};

/// The largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1 << 20;

/// A remote key set and its cache.
#[derive(Debug)]
pub struct RemoteJwks {
    uri: Uri,
    authority: String,
    cluster: String,
    timeout: Duration,
    cache_duration: Duration,
    retries: u32,
    backoff: Duration,
    cached: parking_lot::Mutex<Option<(Instant, Arc<Jwks>)>>,
    fetching: tokio::sync::Mutex<()>,
}

impl RemoteJwks {
    /// Converts `remote_jwks` found at `path`.
    pub fn from_proto(path: &str, r: &RemoteJwksProto) -> Result<Self, Failure> {
        let h = r
            .http_uri
            .as_ref()
            .ok_or_else(|| fail(join(path, "http_uri"), "required"))?;
        let parsed: Uri = h.uri.parse().map_err(|e| {
            fail(
                join(path, "http_uri.uri"),
                format!("invalid URI {:?}: {e}", h.uri),
            )
        })?;
        let authority = parsed
            .authority()
            .map(|a| a.as_str().to_owned())
            .ok_or_else(|| fail(join(path, "http_uri.uri"), "an absolute URI is required"))?;
        let pq = parsed.path_and_query().map_or("/", |p| p.as_str());
        let uri = Uri::builder()
            .scheme("http")
            .authority(authority.as_str())
            .path_and_query(pq)
            .build()
            .map_err(|e| fail(join(path, "http_uri.uri"), e.to_string()))?;
        let Some(HttpUpstreamType::Cluster(cluster)) = &h.http_upstream_type else {
            return Err(fail(join(path, "http_uri.cluster"), "required"));
        };
        let timeout = duration(h.timeout.as_ref())
            .ok_or_else(|| fail(join(path, "http_uri.timeout"), "must be set and positive"))?;
        let (retries, backoff) = match &r.retry_policy {
            None => (0, Duration::ZERO),
            Some(p) => (
                p.num_retries.map_or(1, |n| n.value),
                p.retry_back_off
                    .as_ref()
                    .and_then(|b| duration(b.base_interval.as_ref()))
                    .unwrap_or(Duration::from_secs(1)),
            ),
        };
        Ok(RemoteJwks {
            uri,
            authority,
            cluster: cluster.clone(),
            timeout,
            cache_duration: duration(r.cache_duration.as_ref()).unwrap_or(Duration::from_secs(600)),
            retries: retries.min(10),
            backoff,
            cached: parking_lot::Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The cached keys while fresh.
    pub fn current(&self) -> Option<Arc<Jwks>> {
        let cached = self.cached.lock();
        match &*cached {
            Some((at, keys)) if at.elapsed() < self.cache_duration => Some(Arc::clone(keys)),
            _ => None,
        }
    }

    /// Fresh keys: the cache, else one fetch (shared by concurrent callers).
    pub async fn refresh(&self, clusters: &ClusterManager) -> Option<Arc<Jwks>> {
        if let Some(k) = self.current() {
            return Some(k);
        }
        let _one = self.fetching.lock().await;
        if let Some(k) = self.current() {
            return Some(k);
        }
        for attempt in 0..=self.retries {
            if attempt > 0 {
                tokio::time::sleep(self.backoff).await;
            }
            match tokio::time::timeout(self.timeout, self.fetch(clusters)).await {
                Ok(Ok(keys)) => {
                    let keys = Arc::new(keys);
                    *self.cached.lock() = Some((Instant::now(), Arc::clone(&keys)));
                    return Some(keys);
                }
                Ok(Err(e)) => {
                    tracing::warn!(uri = %self.uri, cluster = %self.cluster, "JWKS fetch failed: {e}")
                }
                Err(_) => {
                    tracing::warn!(uri = %self.uri, cluster = %self.cluster, "JWKS fetch timed out")
                }
            }
        }
        None
    }

    async fn fetch(&self, clusters: &ClusterManager) -> Result<Jwks, String> {
        let cluster = clusters
            .get(&self.cluster)
            .ok_or_else(|| format!("cluster {} is unknown", self.cluster))?;
        let ctx = LbContext {
            hash: None,
            previous: &[],
            max_attempts: 1,
            authority: Some(&self.authority),
            original_dst: None,
        };
        let endpoint = cluster
            .select(&ctx)
            .await
            .map_err(|_| "no healthy upstream".to_owned())?;
        let mut req = Request::new(crate::body::empty());
        *req.method_mut() = Method::GET;
        *req.uri_mut() = self.uri.clone();
        let resp = endpoint.send(req).await.map_err(|e| e.to_string())?;
        if resp.status() != http::StatusCode::OK {
            return Err(format!("status {}", resp.status()));
        }
        let mut body = resp.into_body();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("body: {e}"))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > MAX_JWKS_BYTES {
                    return Err(format!("document larger than {MAX_JWKS_BYTES} bytes"));
                }
                buf.extend_from_slice(&data);
            }
        }
        Jwks::parse(&String::from_utf8_lossy(&buf))
    }
}
