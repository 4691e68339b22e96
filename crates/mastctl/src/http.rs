//! A small HTTP/1.1 client for mastctl's reads of mastd's monitoring API and proxies'
//! admin interfaces (plain HTTP on loopback), with a bounded timeout.

use std::time::Duration;

use anyhow::{Context as _, bail};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const TIMEOUT: Duration = Duration::from_secs(5);

/// GETs `http://<addr><path>` and returns the body, failing on a non-2xx status.
pub fn get(addr: &str, path: &str) -> anyhow::Result<String> {
    let url = format!("http://{addr}{path}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
        let uri: http::Uri = url
            .parse()
            .with_context(|| format!("bad address {addr:?}"))?;
        let resp = tokio::time::timeout(TIMEOUT, client.get(uri))
            .await
            .with_context(|| format!("{url}: no answer within {TIMEOUT:?}"))?
            .with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .with_context(|| format!("reading {url}"))?
            .to_bytes();
        let text = String::from_utf8_lossy(&body).into_owned();
        if !status.is_success() {
            bail!("{url}: {status}: {}", text.trim());
        }
        Ok(text)
    })
}

/// GETs JSON.
pub fn get_json(addr: &str, path: &str) -> anyhow::Result<serde_json::Value> {
    let text = get(addr, path)?;
    serde_json::from_str(&text).with_context(|| format!("http://{addr}{path} did not return JSON"))
}
