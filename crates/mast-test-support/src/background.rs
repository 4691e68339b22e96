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
