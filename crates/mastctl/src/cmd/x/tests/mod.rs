//! Tests of `mastctl x echo` and `mastctl x load` over real sockets on 127.0.0.1: what a
//! client sees (bodies, headers, gRPC statuses, delays, error rates) and what the load
//! generator reports. This module holds the shared helpers (an echo server on a free port,
//! a small client, the command line as `main.rs` builds it).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::echo::serve;
use super::grpc;
use super::reply::Echo;

mod echo;
mod load;

/// A running echo server; dropping it does not stop it, [`Server::stop`] does.
struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("echo stops within 10s")
            .unwrap()
            .unwrap();
    }
}

fn echo(message: &str) -> Echo {
    Echo {
        message: message.to_owned(),
        version: "v2".to_owned(),
        hostname: "testhost".to_owned(),
        workload: BTreeMap::from([
            ("name".to_owned(), "nginx-1".to_owned()),
            ("namespace".to_owned(), "default".to_owned()),
        ]),
        delay: Duration::ZERO,
        error_rate: 0.0,
        error_status: StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn start(echo: Echo) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, Arc::new(echo), async move {
        let _ = rx.await;
    }));
    Server { addr, stop, task }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    trailers: Option<HeaderMap>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One client connection, HTTP/1.1 or h2c with prior knowledge.
enum Client {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Client {
    async fn connect(addr: SocketAddr, h2: bool) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let io = TokioIo::new(stream);
        if h2 {
            let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(conn);
            Client::H2(send)
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            Client::H1(send)
        }
    }

    async fn send(&mut self, req: Request<Full<Bytes>>) -> Answer {
        let resp = match self {
            Client::H1(s) => s.send_request(req).await.unwrap(),
            Client::H2(s) => s.send_request(req).await.unwrap(),
        };
        let (parts, body) = resp.into_parts();
        let collected = tokio::time::timeout(Duration::from_secs(10), body.collect())
            .await
            .unwrap()
            .unwrap();
        let trailers = collected.trailers().cloned();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: collected.to_bytes(),
            trailers,
        }
    }

    async fn get(&mut self, addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = Request::get(format!("http://{addr}{path}"));
        if let Client::H1(_) = self {
            req = Request::get(path).header("host", addr.to_string());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req.body(Full::default()).unwrap()).await
    }

    async fn grpc(&mut self, addr: SocketAddr, path: &str, message: &str) -> Answer {
        let body = grpc::encode(&grpc::EchoRequest {
            message: message.to_owned(),
        });
        let req = Request::post(format!("http://{addr}{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(body))
            .unwrap();
        self.send(req).await
    }
}

/// The command line as `main.rs` builds it (version flag propagated to subcommands).
#[derive(Parser)]
#[command(name = "mastctl", version = "0.0.0", propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    program: super::Program,
}
