//! Test upstreams on 127.0.0.1: hyper HTTP/1.1 and HTTP/2 servers that count connections
//! and requests, and a raw server that closes each connection after one response.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
};
use envoy_types::pb::google::protobuf::Any;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::super::UpstreamError;
use super::*;

/// Counts of what a test server saw.
#[derive(Default)]
pub(super) struct Seen {
    pub conns: AtomicUsize,
    pub requests: AtomicUsize,
    /// Connections that ended (hyper servers only).
    pub closed: AtomicUsize,
}

/// A hyper server (HTTP/1.1 or HTTP/2) answering "ok" after `delay`.
pub(super) async fn server(h2: bool, delay: Duration) -> (u16, Arc<Seen>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = l.accept().await {
            s.conns.fetch_add(1, Ordering::SeqCst);
            let done = s.clone();
            let s = s.clone();
            let svc = service_fn(move |_req| {
                let s = s.clone();
                async move {
                    s.requests.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                        Bytes::from_static(b"ok"),
                    )))
                }
            });
            let io = TokioIo::new(stream);
            tokio::spawn(async move {
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, svc)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await;
                }
                done.closed.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (port, seen)
}

/// A raw HTTP/1.1 server that answers one request per connection (keep-alive implied, no
/// `Connection: close`) and closes the connection `linger` later.
pub(super) async fn closing_server(linger: Duration) -> (u16, Arc<Seen>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = l.accept().await {
            s.conns.fetch_add(1, Ordering::SeqCst);
            let s = s.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                s.requests.fetch_add(1, Ordering::SeqCst);
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                tokio::time::sleep(linger).await;
            });
        }
    });
    (port, seen)
}

pub(super) fn request(port: u16) -> http::Request<crate::body::Body> {
    http::Request::builder()
        .uri(format!("http://127.0.0.1:{port}/x?y=1"))
        .body(crate::body::empty())
        .unwrap()
}

pub(super) async fn get(c: &Cluster, port: u16) -> Result<Bytes, UpstreamError> {
    let ep = c.select(&ctx()).await.unwrap();
    let resp = ep.send(request(port)).await?;
    assert_eq!(resp.status(), 200);
    Ok(resp.into_body().collect().await.unwrap().to_bytes())
}

pub(super) fn h2_options() -> Any {
    http_options(HttpProtocolOptions {
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(Default::default())),
            },
        )),
        ..Default::default()
    })
}

/// `o` packed for `typed_extension_protocol_options`.
pub(super) fn http_options(o: HttpProtocolOptions) -> Any {
    Any {
        type_url: "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
            .into(),
        value: o.encode_to_vec(),
    }
}

/// `pb` with the HTTP protocol options `o`.
pub(super) fn with_http(mut pb: PbCluster, o: Any) -> PbCluster {
    pb.typed_extension_protocol_options.insert(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".into(),
        o,
    );
    pb
}

pub(super) async fn wait_for(n: usize, counter: &AtomicUsize) {
    for _ in 0..200 {
        if counter.load(Ordering::SeqCst) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never reached {n}");
}
