//! The upstreams of the capture test, bound to a given address (the shared `EchoServer`
//! binds 127.0.0.1 only): an HTTP/1.1 echo answering `"<name>\n"` with the request headers as
//! `x-echo-<header>` and the connection's addresses as `x-echo-local` / `x-echo-peer`, and a
//! TCP server that greets with `"<name> <local> <peer>\n"` then echoes what it reads.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// Binds `addr` and serves the HTTP echo named `name` on the current runtime.
pub async fn http_echo(addr: SocketAddr, name: &'static str) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let local = stream.local_addr().unwrap_or(addr);
            let service = service_fn(move |req| answer(req, name, local, peer));
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    Ok(())
}

async fn answer(
    req: Request<Incoming>,
    name: &'static str,
    local: SocketAddr,
    peer: SocketAddr,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{name}\n"))));
    let headers = response.headers_mut();
    for (key, value) in req.headers() {
        if let Ok(echo) = HeaderName::from_bytes(format!("x-echo-{key}").as_bytes()) {
            headers.append(echo, value.clone());
        }
    }
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    for (key, value) in [
        ("x-echo-path", path.to_owned()),
        ("x-echo-local", local.to_string()),
        ("x-echo-peer", peer.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(key, v);
        }
    }
    Ok(response)
}

/// Binds `addr` and serves the greeting TCP echo named `name` on the current runtime.
pub async fn tcp_echo(addr: SocketAddr, name: &'static str) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            tokio::spawn(greet_and_echo(stream, name, peer));
        }
    });
    Ok(())
}

async fn greet_and_echo(mut stream: TcpStream, name: &'static str, peer: SocketAddr) {
    let local = stream
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    if stream
        .write_all(format!("{name} {local} {peer}\n").as_bytes())
        .await
        .is_err()
    {
        return;
    }
    let (mut read, mut write) = stream.split();
    let _ = tokio::io::copy(&mut read, &mut write).await;
}
