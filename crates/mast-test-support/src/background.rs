//! The runtime the test servers run on: two worker threads shared by every server in the
//! test process, started on first use and never stopped. Servers on it keep answering even
//! while the test's own thread blocks (in `ProcessGuard::wait_timeout`, `wait_for`, …) or
//! runs a single-threaded `#[tokio::test]` runtime.

use std::io;
use std::sync::OnceLock;

use parking_lot::Mutex;
use tokio::runtime::{Handle, Runtime};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// A handle to the shared background runtime, starting it on first use.
pub fn handle() -> io::Result<Handle> {
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt.handle().clone());
    }
    let _init = INIT.lock();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt.handle().clone());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("mast-test-servers")
        .enable_all()
        .build()?;
    let handle = rt.handle().clone();
    // Cannot fail: we hold INIT and saw the cell empty.
    let _ = RUNTIME.set(rt);
    Ok(handle)
}

/// The accept loop of the test servers: takes connections on `listener` until the task
/// running it is aborted (a server's `Drop`), and runs the future `on_connection` makes for
/// each one in a set dropped with the loop, so stopping a server also stops its connections.
pub async fn accept_each<F, Fut>(listener: std::net::TcpListener, mut on_connection: F)
where
    F: FnMut(tokio::net::TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "test server cannot listen");
            return;
        }
    };
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "test server accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        connections.spawn(on_connection(stream));
        while connections.try_join_next().is_some() {}
    }
}
