//! WebSocket for tests: [`WsEchoServer`], an upstream that accepts the HTTP/1.1 Upgrade
//! handshake and echoes every text and binary message, and [`WsClient`], which opens a
//! WebSocket through an HTTP proxy (a sidecar's ports-mode outbound listener) with an
//! absolute-form `GET http://host/path` Upgrade request, as a program with `HTTP_PROXY` set
//! sends plain HTTP, checks the `101` and `Sec-WebSocket-Accept`, then talks frames.
//! Both count the close handshakes they completed.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

pub use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::background;

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    echoed: AtomicU64,
    closed: AtomicU64,
}

/// A WebSocket echo upstream on 127.0.0.1; stops when dropped.
pub struct WsEchoServer {
    name: String,
    addr: SocketAddr,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for WsEchoServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsEchoServer")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .finish()
    }
}

impl WsEchoServer {
    /// Starts a server named `name` on a free port.
    pub fn start(name: &str) -> io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let task = background::handle()?.spawn(serve(listener, counters.clone()));
        Ok(Self {
            name: name.to_owned(),
            addr,
            counters,
            task,
        })
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// How many TCP connections it accepted.
    pub fn connection_count(&self) -> u64 {
        self.counters.connections.load(Ordering::SeqCst)
    }

    /// How many messages it echoed.
    pub fn echoed(&self) -> u64 {
        self.counters.echoed.load(Ordering::SeqCst)
    }

    /// How many connections ended with a close handshake (the client's Close received and
    /// answered).
    pub fn closed_cleanly(&self) -> u64 {
        self.counters.closed.load(Ordering::SeqCst)
    }
}

impl Drop for WsEchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: std::net::TcpListener, counters: Arc<Counters>) {
    background::accept_each(listener, |stream| {
        counters.connections.fetch_add(1, Ordering::SeqCst);
        echo(stream, counters.clone())
    })
    .await;
}

async fn echo(stream: TcpStream, counters: Arc<Counters>) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let mut saw_close = false;
    while let Some(Ok(message)) = ws.next().await {
        match message {
            WsMessage::Text(_) | WsMessage::Binary(_) => {
                if ws.send(message).await.is_err() {
                    return;
                }
                counters.echoed.fetch_add(1, Ordering::SeqCst);
            }
            // tungstenite queues the answering Close; polling on flushes it and ends.
            WsMessage::Close(_) => saw_close = true,
            _ => {}
        }
    }
    if saw_close {
        counters.closed.fetch_add(1, Ordering::SeqCst);
    }
}

/// Why a WebSocket could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    /// The TCP connection or the handshake's I/O failed.
    #[error("io: {0}")]
    Io(#[from] io::Error),
    /// The answer to the Upgrade request was not a valid `101`.
    #[error("upgrade refused: {0}")]
    Refused(String),
    /// A frame could not be sent or read.
    #[error("websocket: {0}")]
    Protocol(#[from] tokio_tungstenite::tungstenite::Error),
    /// Nothing arrived in time.
    #[error("nothing within {0:?}")]
    Timeout(Duration),
}

/// A WebSocket client connection (see the module docs).
#[derive(Debug)]
pub struct WsClient {
    ws: WebSocketStream<TcpStream>,
    timeout: Duration,
}

impl WsClient {
    /// Opens a WebSocket to `url` (`http://host/path`) through the HTTP proxy at `proxy`;
    /// every step is bounded by `timeout`.
    pub async fn connect_via_proxy(
        proxy: SocketAddr,
        url: &str,
        timeout: Duration,
    ) -> Result<Self, WsError> {
        let host = url
            .strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .ok_or_else(|| WsError::Refused(format!("{url:?} is not an http:// URL")))?;
        let key = generate_key();
        let head = format!(
            "GET {url} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        let handshake = async {
            let mut stream = TcpStream::connect(proxy).await?;
            let _ = stream.set_nodelay(true);
            stream.write_all(head.as_bytes()).await?;
            let answer = read_head(&mut stream).await?;
            check_upgrade(&answer, &derive_accept_key(key.as_bytes()))?;
            Ok::<_, WsError>(stream)
        };
        let stream = tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| WsError::Timeout(timeout))??;
        let ws = WebSocketStream::from_raw_socket(stream, Role::Client, None).await;
        Ok(Self { ws, timeout })
    }

    /// Sends `message`.
    pub async fn send(&mut self, message: WsMessage) -> Result<(), WsError> {
        tokio::time::timeout(self.timeout, self.ws.send(message))
            .await
            .map_err(|_| WsError::Timeout(self.timeout))??;
        Ok(())
    }

    /// The next message (pings answered on the way); `None` when the stream ended.
    pub async fn recv(&mut self) -> Result<Option<WsMessage>, WsError> {
        match tokio::time::timeout(self.timeout, self.ws.next()).await {
            Err(_) => Err(WsError::Timeout(self.timeout)),
            Ok(None) => Ok(None),
            Ok(Some(message)) => Ok(Some(message?)),
        }
    }

    /// Sends Close and reads until the peer's Close arrived and the stream ended: `true`
    /// when the close handshake completed.
    pub async fn close(mut self) -> Result<bool, WsError> {
        tokio::time::timeout(self.timeout, self.ws.close(None))
            .await
            .map_err(|_| WsError::Timeout(self.timeout))??;
        let mut answered = false;
        for _ in 0..100 {
            match tokio::time::timeout(self.timeout, self.ws.next()).await {
                Err(_) => return Err(WsError::Timeout(self.timeout)),
                Ok(None) => return Ok(answered),
                Ok(Some(Ok(WsMessage::Close(_)))) => answered = true,
                Ok(Some(Ok(_))) => {}
                // tungstenite reports the end after a completed handshake this way.
                Ok(Some(Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed))) => {
                    return Ok(answered);
                }
                Ok(Some(Err(e))) => return Err(e.into()),
            }
        }
        Ok(answered)
    }
}

/// Reads an HTTP response head (up to the blank line, at most 16 KiB), byte by byte so that
/// nothing after it is consumed.
async fn read_head(stream: &mut TcpStream) -> Result<String, WsError> {
    let mut head = Vec::with_capacity(512);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= 16 * 1024 {
            return Err(WsError::Refused("response head over 16 KiB".into()));
        }
        if stream.read(&mut byte).await? == 0 {
            return Err(WsError::Refused(format!(
                "connection closed after {:?}",
                String::from_utf8_lossy(&head)
            )));
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Checks a `101 Switching Protocols` answer carrying the expected accept key.
fn check_upgrade(head: &str, accept: &str) -> Result<(), WsError> {
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("101") {
        return Err(WsError::Refused(head.trim().to_owned()));
    }
    let accepted = lines.any(|l| {
        l.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == accept
        })
    });
    if !accepted {
        return Err(WsError::Refused(format!(
            "no matching sec-websocket-accept in {:?}",
            head.trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// A tiny HTTP proxy stand-in: forwards the bytes of one connection to `to`.
    async fn pipe_once(to: SocketAddr) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut inbound, _) = listener.accept().await.unwrap();
            let mut outbound = TcpStream::connect(to).await.unwrap();
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        });
        addr
    }

    #[tokio::test]
    async fn echoes_text_and_binary_and_closes() {
        let server = WsEchoServer::start("ws").unwrap();
        let proxy = pipe_once(server.addr).await;
        let url = format!("http://127.0.0.1:{}/echo", server.port());
        let mut client = WsClient::connect_via_proxy(proxy, &url, Duration::from_secs(5))
            .await
            .unwrap();
        client.send(WsMessage::text("hello")).await.unwrap();
        assert_eq!(client.recv().await.unwrap(), Some(WsMessage::text("hello")));
        client
            .send(WsMessage::binary(vec![0u8, 1, 255]))
            .await
            .unwrap();
        assert_eq!(
            client.recv().await.unwrap(),
            Some(WsMessage::binary(vec![0u8, 1, 255]))
        );
        assert!(client.close().await.unwrap());
        let closed = crate::wait_for_async(
            || async { server.closed_cleanly() == 1 },
            Duration::from_secs(5),
        )
        .await;
        assert!(closed && server.echoed() == 2);
    }
}
