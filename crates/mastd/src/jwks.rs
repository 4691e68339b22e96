//! The JWKS resolver (istiod's `JwksResolver`): fetches the key sets RequestAuthentications
//! name by `jwksUri` (or, without one, through the issuer's OpenID discovery document),
//! caches them and publishes the current `key → JWKS JSON` map on a `watch` channel, which
//! lands in `MeshSnapshot.options.jwks`; translation inlines the documents as `local_jwks`.
//!
//! - Keys are what `mast_xds::authz::jwt::jwks_keys(&snapshot)` returns: a `jwksUri`, or
//!   `<issuer>/.well-known/openid-configuration`, whose `jwks_uri` is then fetched.
//! - A new key is fetched at once; every key is fetched again every [`REFRESH_INTERVAL`]
//!   (Istio's 20 minutes). A key whose fetch failed and that has no document yet is retried
//!   every [`RETRY_INTERVAL`]; translation meanwhile emits a JWKS that rejects every token.
//! - A failed refresh (network error, non-2xx status, a body that is not a JWKS) keeps the
//!   last good document. A key no longer named is dropped.
//! - HTTP and HTTPS (rustls, Mozilla's roots from `webpki-roots`), one connection per fetch,
//!   bounded by [`FETCH_TIMEOUT`] and [`MAX_BODY`]. Redirects are not followed.
//!
//! Wiring (for `app.rs`): `let jwks = JwksResolver::spawn(JwksConfig::new()?);` after
//! each snapshot build `jwks.set_keys(mast_xds::authz::jwt::jwks_keys(&snap))`; when
//! `jwks.subscribe()` changes, rebuild the snapshot with `options.jwks = rx.borrow().clone()`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// How often every key is fetched again (Istio's `PILOT_JWT_PUB_KEY_REFRESH_INTERVAL`).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(20 * 60);
/// How often a key without a document is retried.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(30);
/// The longest one fetch (connect, TLS, request, body) may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest document accepted.
pub const MAX_BODY: usize = 1 << 20;
/// The suffix marking an OpenID discovery URL.
const OPENID_SUFFIX: &str = "/.well-known/openid-configuration";

/// The published map: key (a `jwksUri` or an OpenID discovery URL) → JWKS JSON.
pub type JwksMap = Arc<BTreeMap<String, String>>;

/// How the resolver fetches.
#[derive(Clone)]
pub struct JwksConfig {
    /// Full refresh period.
    pub refresh: Duration,
    /// Retry period for keys without a document.
    pub retry: Duration,
    /// Per-fetch timeout.
    pub timeout: Duration,
    /// TLS client configuration for `https` URLs.
    pub tls: Arc<rustls::ClientConfig>,
}

impl JwksConfig {
    /// Istio's periods, Mozilla's roots.
    pub fn new() -> anyhow::Result<Self> {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        Ok(Self {
            refresh: REFRESH_INTERVAL,
            retry: RETRY_INTERVAL,
            timeout: FETCH_TIMEOUT,
            tls: Arc::new(tls_config(roots)?),
        })
    }
}

/// A rustls client configuration (ring, TLS 1.2 and 1.3) trusting `roots`.
pub fn tls_config(roots: rustls::RootCertStore) -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Handle on the resolver task; dropping every handle stops it.
pub struct JwksResolver {
    keys: watch::Sender<BTreeSet<String>>,
    map: watch::Receiver<JwksMap>,
}

impl JwksResolver {
    /// Starts the resolver on the current Tokio runtime, with no keys.
    pub fn spawn(config: JwksConfig) -> Self {
        let (keys_tx, keys_rx) = watch::channel(BTreeSet::new());
        let (map_tx, map_rx) = watch::channel(JwksMap::default());
        tokio::spawn(run(config, keys_rx, map_tx));
        Self {
            keys: keys_tx,
            map: map_rx,
        }
    }

    /// Sets the keys to resolve (new ones are fetched at once, gone ones dropped).
    pub fn set_keys(&self, keys: BTreeSet<String>) {
        self.keys.send_if_modified(|k| {
            let changed = *k != keys;
            *k = keys;
            changed
        });
    }

    /// The published map; changes whenever a document appears, changes or goes.
    pub fn subscribe(&self) -> watch::Receiver<JwksMap> {
        self.map.clone()
    }
}

/// One key's state.
#[derive(Default)]
struct Entry {
    doc: Option<String>,
    next: Option<Instant>,
}

async fn run(
    config: JwksConfig,
    mut keys: watch::Receiver<BTreeSet<String>>,
    out: watch::Sender<JwksMap>,
) {
    let mut cache: BTreeMap<String, Entry> = BTreeMap::new();
    loop {
        let wanted = keys.borrow_and_update().clone();
        cache.retain(|k, _| wanted.contains(k));
        for k in wanted {
            cache.entry(k).or_default();
        }
        let now = Instant::now();
        for (key, entry) in cache
            .iter_mut()
            .filter(|(_, e)| e.next.is_none_or(|t| t <= now))
        {
            refresh(&config, key, entry).await;
        }
        publish(&cache, &out);
        let wake = cache.values().filter_map(|e| e.next).min();
        let sleep = async {
            match wake {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = keys.changed() => if changed.is_err() { return },
            () = sleep => {}
            () = out.closed() => return,
        }
    }
}

async fn refresh(config: &JwksConfig, key: &str, entry: &mut Entry) {
    match tokio::time::timeout(config.timeout, resolve(config, key)).await {
        Ok(Ok(doc)) => {
            entry.doc = Some(doc);
            entry.next = Some(Instant::now() + config.refresh);
        }
        Ok(Err(e)) => failed(config, key, entry, &format!("{e:#}")),
        Err(_) => failed(config, key, entry, "timed out"),
    }
}

fn failed(config: &JwksConfig, key: &str, entry: &mut Entry, why: &str) {
    let kept = entry.doc.is_some();
    tracing::warn!(key, kept_last_good = kept, "fetching JWKS failed: {why}");
    let wait = if kept { config.refresh } else { config.retry };
    entry.next = Some(Instant::now() + wait);
}

fn publish(cache: &BTreeMap<String, Entry>, out: &watch::Sender<JwksMap>) {
    let map: BTreeMap<String, String> = cache
        .iter()
        .filter_map(|(k, e)| e.doc.clone().map(|d| (k.clone(), d)))
        .collect();
    out.send_if_modified(|cur| {
        if **cur == map {
            return false;
        }
        *cur = Arc::new(map);
        true
    });
}

/// The JWKS for `key`: fetched directly, or through OpenID discovery.
async fn resolve(config: &JwksConfig, key: &str) -> anyhow::Result<String> {
    let uri = if key.ends_with(OPENID_SUFFIX) {
        let body = fetch(config, key).await?;
        let doc: serde_json::Value =
            serde_json::from_slice(&body).context("OpenID discovery document is not JSON")?;
        doc.get("jwks_uri")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| anyhow!("OpenID discovery document has no jwks_uri"))?
            .to_owned()
    } else {
        key.to_owned()
    };
    let body = fetch(config, &uri).await?;
    let text = String::from_utf8(body.to_vec()).context("JWKS is not UTF-8")?;
    let doc: serde_json::Value = serde_json::from_str(&text).context("JWKS is not JSON")?;
    if !doc.get("keys").is_some_and(serde_json::Value::is_array) {
        bail!("JWKS from {uri} has no \"keys\" array");
    }
    Ok(text)
}

/// GETs `url` over HTTP/1.1 on a fresh connection; the body of a 2xx response.
async fn fetch(config: &JwksConfig, url: &str) -> anyhow::Result<Bytes> {
    let uri: http::Uri = url.parse().with_context(|| format!("bad URL {url:?}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => bail!("unsupported URL {url:?}: http or https only"),
    };
    let host = uri
        .host()
        .ok_or_else(|| anyhow!("URL {url:?} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .with_context(|| format!("connecting to {host}:{port}"))?;
    if !https {
        return get(tcp, &uri).await;
    }
    let name = ServerName::try_from(host.clone()).context("bad TLS server name")?;
    let tls = tokio_rustls::TlsConnector::from(config.tls.clone())
        .connect(name, tcp)
        .await
        .with_context(|| format!("TLS handshake with {host}:{port}"))?;
    get(tls, &uri).await
}

async fn get<S>(stream: S, uri: &http::Uri) -> anyhow::Result<Bytes>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake")?;
    let conn = tokio::spawn(conn);
    let authority = uri.authority().map_or("", |a| a.as_str()).to_owned();
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let req = http::Request::get(path)
        .header(http::header::HOST, authority)
        .header(http::header::ACCEPT, "application/json")
        .header(
            http::header::USER_AGENT,
            concat!("mastd/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())
        .context("building the request")?;
    let resp = sender
        .send_request(req)
        .await
        .context("sending the request")?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| anyhow!("reading the body: {e}"))?
        .to_bytes();
    conn.abort();
    if !status.is_success() {
        bail!("{uri} answered {status}");
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    //! A real resolver against local HTTP and HTTPS servers on 127.0.0.1 (port 0).

    use std::sync::atomic::{AtomicUsize, Ordering};

    use parking_lot::Mutex;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;

    const KEYS: &str = r#"{"keys":[{"kty":"RSA","e":"AQAB","n":"abc"}]}"#;
    const KEYS2: &str = r#"{"keys":[{"kty":"RSA","e":"AQAB","n":"def"}]}"#;

    /// What the test server answers per path: (status, body).
    type Routes = Arc<Mutex<BTreeMap<String, (u16, String)>>>;

    struct Server {
        base: String,
        routes: Routes,
        hits: Arc<AtomicUsize>,
    }

    impl Server {
        fn set(&self, path: &str, status: u16, body: &str) {
            self.routes
                .lock()
                .insert(path.to_owned(), (status, body.to_owned()));
        }
    }

    async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, routes: &Routes) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&buf);
        let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
        let (status, body) = routes
            .lock()
            .get(&path)
            .cloned()
            .unwrap_or((404, String::new()));
        let resp = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = s.write_all(resp.as_bytes()).await;
        let _ = s.shutdown().await;
    }

    /// A server on 127.0.0.1:0; with `tls`, HTTPS with that server config.
    async fn server(tls: Option<Arc<rustls::ServerConfig>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let routes: Routes = Arc::default();
        let hits = Arc::new(AtomicUsize::new(0));
        let scheme = if tls.is_some() {
            "https://localhost"
        } else {
            "http://127.0.0.1"
        };
        let (r, h) = (routes.clone(), hits.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                h.fetch_add(1, Ordering::SeqCst);
                let (r, tls) = (r.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(cfg) => {
                            if let Ok(s) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await {
                                answer(s, &r).await;
                            }
                        }
                        None => answer(tcp, &r).await,
                    }
                });
            }
        });
        Server {
            base: format!("{scheme}:{port}"),
            routes,
            hits,
        }
    }

    fn config(tls: rustls::ClientConfig) -> JwksConfig {
        JwksConfig {
            refresh: Duration::from_millis(200),
            retry: Duration::from_millis(100),
            timeout: Duration::from_secs(2),
            tls: Arc::new(tls),
        }
    }

    fn plain_config() -> JwksConfig {
        config(tls_config(rustls::RootCertStore::empty()).expect("tls"))
    }

    /// Waits (at most 5 s) until the published map satisfies `ok`.
    async fn until(rx: &mut watch::Receiver<JwksMap>, ok: impl Fn(&JwksMap) -> bool) -> JwksMap {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let cur = rx.borrow_and_update().clone();
            if ok(&cur) {
                return cur;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => panic!("timed out; last map: {cur:?}"),
            }
        }
    }

    fn keys(k: &[&str]) -> BTreeSet<String> {
        k.iter().map(|s| (*s).to_owned()).collect()
    }

    #[tokio::test]
    async fn fetches_refreshes_keeps_last_good_and_drops() {
        let srv = server(None).await;
        srv.set("/jwks", 200, KEYS);
        let url = format!("{}/jwks", srv.base);
        let r = JwksResolver::spawn(plain_config());
        let mut rx = r.subscribe();
        r.set_keys(keys(&[&url]));
        until(&mut rx, |m| m.get(&url).map(String::as_str) == Some(KEYS)).await;

        srv.set("/jwks", 200, KEYS2);
        until(&mut rx, |m| m.get(&url).map(String::as_str) == Some(KEYS2)).await;

        // Failures (500, then a body that is not a JWKS) keep the last good document.
        srv.set("/jwks", 500, "oops");
        let before = srv.hits.load(Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(5);
        while srv.hits.load(Ordering::SeqCst) < before + 2 {
            assert!(Instant::now() < deadline, "no refresh happened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        srv.set("/jwks", 200, "{\"not\":\"a jwks\"}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(rx.borrow().get(&url).map(String::as_str), Some(KEYS2));

        r.set_keys(BTreeSet::new());
        until(&mut rx, |m| m.is_empty()).await;
    }

    #[tokio::test]
    async fn unreachable_key_is_absent_then_appears() {
        let srv = server(None).await;
        let url = format!("{}/late", srv.base);
        let r = JwksResolver::spawn(plain_config());
        let mut rx = r.subscribe();
        r.set_keys(keys(&[&url]));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(rx.borrow().is_empty(), "a 404 publishes nothing");
        srv.set("/late", 200, KEYS);
        until(&mut rx, |m| m.get(&url).is_some()).await;
    }

    #[tokio::test]
    async fn openid_discovery_follows_jwks_uri() {
        let srv = server(None).await;
        let disc = format!("{}/.well-known/openid-configuration", srv.base);
        srv.set(
            "/.well-known/openid-configuration",
            200,
            &format!(
                "{{\"issuer\":\"{}\",\"jwks_uri\":\"{}/certs\"}}",
                srv.base, srv.base
            ),
        );
        srv.set("/certs", 200, KEYS);
        let r = JwksResolver::spawn(plain_config());
        let mut rx = r.subscribe();
        r.set_keys(keys(&[&disc]));
        until(&mut rx, |m| m.get(&disc).map(String::as_str) == Some(KEYS)).await;
    }

    #[tokio::test]
    async fn https_with_a_trusted_certificate() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
        let der = cert.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()),
        );
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server_cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .expect("server config");
        let srv = server(Some(Arc::new(server_cfg))).await;
        srv.set("/jwks", 200, KEYS);
        let url = format!("{}/jwks", srv.base);

        // Not trusted: nothing published.
        let untrusted = JwksResolver::spawn(plain_config());
        untrusted.set_keys(keys(&[&url]));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(untrusted.subscribe().borrow().is_empty());

        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).expect("root");
        let r = JwksResolver::spawn(config(tls_config(roots).expect("tls")));
        let mut rx = r.subscribe();
        r.set_keys(keys(&[&url]));
        until(&mut rx, |m| m.get(&url).map(String::as_str) == Some(KEYS)).await;
    }

    #[test]
    fn default_config_has_webpki_roots() {
        let c = JwksConfig::new().expect("config");
        assert_eq!(c.refresh, Duration::from_secs(1200));
    }
}
