//! A plain-HTTP GET with a deadline and a body-size limit (hyper-util's pooled client), for
//! proxies' `/stats/prometheus` and Prometheus's query API.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The largest body read (a proxy with many clusters writes a few MB at most).
const MAX_BODY: usize = 32 * 1024 * 1024;

/// Why a GET failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL could not be parsed.
    #[error("bad URL {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// No answer within the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Connecting or sending failed.
    #[error("request failed: {0}")]
    Request(String),
    /// The status was not 200.
    #[error("HTTP status {0}")]
    Status(u16),
    /// Reading the body failed (or it was too large).
    #[error("reading the body: {0}")]
    Body(String),
    /// The body is not UTF-8.
    #[error("the body is not UTF-8")]
    Utf8,
}

/// A cheap-to-clone HTTP/1.1 client.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpConnector, Empty<Bytes>>,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    /// A client with a connection pool.
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(1)));
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self { inner }
    }

    /// GETs `url` and returns the body as text, all within `timeout`.
    pub async fn get_text(&self, url: &str, timeout: Duration) -> Result<String, FetchError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| FetchError::Url {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        let fetch = async {
            let resp = self
                .inner
                .get(uri)
                .await
                .map_err(|e| FetchError::Request(e.to_string()))?;
            if resp.status() != http::StatusCode::OK {
                return Err(FetchError::Status(resp.status().as_u16()));
            }
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| FetchError::Body(e.to_string()))?
                .to_bytes();
            String::from_utf8(body.to_vec()).map_err(|_| FetchError::Utf8)
        };
        tokio::time::timeout(timeout, fetch)
            .await
            .map_err(|_| FetchError::Timeout(timeout))?
    }
}

/// Percent-encodes a query-string value (RFC 3986 unreserved characters kept).
pub fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn encodes_promql() {
        assert_eq!(
            encode_query("sum by (a) (rate(x{b=\"c\"}[30s]))"),
            "sum%20by%20%28a%29%20%28rate%28x%7Bb%3D%22c%22%7D%5B30s%5D%29%29"
        );
    }

    #[tokio::test]
    async fn unreachable_and_bad_urls_fail_fast() {
        let c = HttpClient::new();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let start = std::time::Instant::now();
        let e = c
            .get_text(
                &format!("http://127.0.0.1:{port}/x"),
                Duration::from_secs(1),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, FetchError::Request(_)), "{e}");
        assert!(start.elapsed() < Duration::from_secs(2));
        let e = c
            .get_text("not a url", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(e, FetchError::Url { .. }), "{e}");
    }
}
