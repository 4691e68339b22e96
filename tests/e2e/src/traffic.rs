//! Client traffic through the sidecar: many requests with bounded concurrency, counted by
//! what the client saw ([`Tally`]: the answering upstream's name for a 200, else the status,
//! else the error), and a `CONNECT` tunnel through the outbound HTTP proxy for TCP services.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use mast_test_support::{HttpRequest, HttpResponse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// The key a request is counted under: the upstream's name (the echo body) for a 200, else
/// the status code, else `error`.
pub fn outcome_key(result: &Result<HttpResponse, String>) -> String {
    match result {
        Ok(r) if r.status == 200 => r.trimmed(),
        Ok(r) => r.status.to_string(),
        Err(_) => "error".to_owned(),
    }
}

/// What a batch of requests observed.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Outcome key ([`outcome_key`]) → count.
    pub counts: BTreeMap<String, usize>,
    /// The first few errors and non-200 answers, for failure messages.
    pub samples: Vec<String>,
    /// Every response, in completion order.
    pub responses: Vec<HttpResponse>,
}

impl Tally {
    /// How many requests were counted.
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    /// How many requests had outcome `key`.
    pub fn count(&self, key: &str) -> usize {
        self.counts.get(key).copied().unwrap_or(0)
    }

    /// The share of requests with outcome `key` (0 when none were sent).
    pub fn share(&self, key: &str) -> f64 {
        let total = self.total();
        if total == 0 {
            return 0.0;
        }
        self.count(key) as f64 / total as f64
    }

    fn add(&mut self, result: Result<HttpResponse, String>) {
        let key = outcome_key(&result);
        *self.counts.entry(key).or_default() += 1;
        match result {
            Ok(r) => {
                if r.status != 200 && self.samples.len() < 5 {
                    self.samples
                        .push(format!("{} {}", r.status, r.text().trim()));
                }
                self.responses.push(r);
            }
            Err(e) => {
                if self.samples.len() < 5 {
                    self.samples.push(e);
                }
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        for (k, v) in other.counts {
            *self.counts.entry(k).or_default() += v;
        }
        for s in other.samples {
            if self.samples.len() < 5 {
                self.samples.push(s);
            }
        }
        self.responses.extend(other.responses);
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} over {} requests", self.counts, self.total())?;
        if !self.samples.is_empty() {
            write!(f, "; samples: {:?}", self.samples)?;
        }
        Ok(())
    }
}

/// Builds request number `i` of a batch.
pub type RequestFactory = Arc<dyn Fn(usize) -> HttpRequest + Send + Sync>;

/// Sends `count` requests built by `make` through the HTTP proxy at `proxy`, at most
/// `concurrency` at a time, and counts what came back.
pub async fn run(
    proxy: SocketAddr,
    make: RequestFactory,
    count: usize,
    concurrency: usize,
) -> Tally {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.clamp(1, count.max(1)) {
        let (next, make) = (next.clone(), make.clone());
        workers.spawn(async move {
            let mut tally = Tally::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return tally;
                }
                let result = make(i).via_proxy(proxy).await.map_err(|e| e.to_string());
                tally.add(result);
            }
        });
    }
    let mut total = Tally::default();
    while let Some(done) = workers.join_next().await {
        match done {
            Ok(t) => total.merge(t),
            Err(e) => total.add(Err(format!("worker failed: {e}"))),
        }
    }
    total
}

/// Opens a `CONNECT <authority>` tunnel through the HTTP proxy at `proxy`; returns the
/// stream once the proxy answered 2xx, else the status line it answered.
pub async fn connect_tunnel(
    proxy: SocketAddr,
    authority: &str,
    timeout: Duration,
) -> anyhow::Result<TcpStream> {
    tokio::time::timeout(timeout, async {
        let mut stream = TcpStream::connect(proxy)
            .await
            .with_context(|| format!("connect to {proxy}"))?;
        let head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
        stream.write_all(head.as_bytes()).await?;
        let answer = read_head(&mut stream).await?;
        let status_line = answer.lines().next().unwrap_or_default().to_owned();
        let ok = status_line
            .split_whitespace()
            .nth(1)
            .is_some_and(|code| code.starts_with('2'));
        if !ok {
            bail!("CONNECT {authority} answered {status_line:?}");
        }
        Ok(stream)
    })
    .await
    .with_context(|| format!("CONNECT {authority}: no answer within {timeout:?}"))?
}

/// Reads an HTTP/1 response head byte by byte (so no tunnel byte is consumed).
async fn read_head(stream: &mut TcpStream) -> anyhow::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            bail!("response head too long");
        }
        if stream.read(&mut byte).await? == 0 {
            bail!(
                "connection closed after {:?}",
                String::from_utf8_lossy(&head)
            );
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Writes `data` into a tunnel and reads until `expected` bytes came back (or `timeout`).
pub async fn exchange(
    stream: &mut TcpStream,
    data: &[u8],
    expected: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<u8>> {
    tokio::time::timeout(timeout, async {
        stream.write_all(data).await?;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.len() < expected {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        Ok::<_, anyhow::Error>(got)
    })
    .await
    .context("tunnel exchange timed out")?
}

#[cfg(test)]
mod tests {
    use super::*;
    use mast_test_support::EchoServer;

    #[tokio::test]
    async fn tally_counts_outcomes() {
        // An echo server standing in for the proxy answers every absolute-form request.
        let proxy = EchoServer::start("v1").unwrap();
        let make: RequestFactory = Arc::new(|i| HttpRequest::get(&format!("http://svc/{i}")));
        let tally = run(proxy.addr(), make, 20, 4).await;
        assert_eq!(tally.count("v1"), 20, "{tally}");
        assert_eq!(tally.total(), 20);
        assert!((tally.share("v1") - 1.0).abs() < f64::EPSILON);
        assert_eq!(proxy.request_count(), 20);
    }
}
