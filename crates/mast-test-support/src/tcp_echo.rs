//! [`TcpEchoServer`]: a raw TCP upstream for TCP-routing tests. On each connection it waits
//! for the client's first bytes, then answers `"<name>\n"` followed by those bytes, and from
//! then on echoes every byte back until the client closes.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::background;

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    bytes: AtomicU64,
}

/// A TCP echo upstream on 127.0.0.1 that prefixes its answer with its name; stops when
/// dropped.
pub struct TcpEchoServer {
    name: Arc<str>,
    addr: SocketAddr,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for TcpEchoServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpEchoServer")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .finish()
    }
}

impl TcpEchoServer {
    /// Starts a server named `name` on a free port.
    pub fn start(name: &str) -> io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let name: Arc<str> = Arc::from(name);
        let counters = Arc::new(Counters::default());
        let task = background::handle()?.spawn(serve(listener, name.clone(), counters.clone()));
        Ok(Self {
            name,
            addr,
            counters,
            task,
        })
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// How many connections it has accepted.
    pub fn connection_count(&self) -> u64 {
        self.counters.connections.load(Ordering::SeqCst)
    }

    /// How many bytes it has received, over all connections.
    pub fn bytes_received(&self) -> u64 {
        self.counters.bytes.load(Ordering::SeqCst)
    }
}

impl Drop for TcpEchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: std::net::TcpListener, name: Arc<str>, counters: Arc<Counters>) {
    background::accept_each(listener, |stream| {
        counters.connections.fetch_add(1, Ordering::SeqCst);
        echo(stream, name.clone(), counters.clone())
    })
    .await;
}

async fn echo(mut stream: TcpStream, name: Arc<str>, counters: Arc<Counters>) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut first = true;
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        counters.bytes.fetch_add(n as u64, Ordering::SeqCst);
        if first {
            first = false;
            if stream
                .write_all(format!("{name}\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
