//! Process-wide signals the parts share: readiness (first configuration applied and
//! listeners bound), draining (stop taking new work, close idle connections), and shutdown.

use tokio::sync::watch;

/// Readiness, draining and shutdown, cheap to clone.
#[derive(Debug, Clone)]
pub struct Signals {
    ready: watch::Sender<bool>,
    draining: watch::Sender<bool>,
    shutdown: watch::Sender<bool>,
    connections: watch::Sender<usize>,
}

/// Counts one downstream connection while it lives.
#[derive(Debug)]
pub struct ConnectionGuard {
    connections: watch::Sender<usize>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.connections.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Default for Signals {
    fn default() -> Self {
        Self::new()
    }
}

impl Signals {
    /// Not ready, not draining.
    pub fn new() -> Self {
        Self {
            ready: watch::Sender::new(false),
            draining: watch::Sender::new(false),
            shutdown: watch::Sender::new(false),
            connections: watch::Sender::new(0),
        }
    }

    /// Counts a new downstream connection until the guard drops.
    pub fn connection(&self) -> ConnectionGuard {
        self.connections.send_modify(|n| *n += 1);
        ConnectionGuard {
            connections: self.connections.clone(),
        }
    }

    /// Downstream connections open now.
    pub fn open_connections(&self) -> usize {
        *self.connections.borrow()
    }

    /// Resolves when no downstream connection is open.
    pub async fn idle(&self) {
        let mut rx = self.connections.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Marks the proxy ready (or not).
    pub fn set_ready(&self, ready: bool) {
        self.ready.send_replace(ready);
    }

    /// Whether the first configuration is applied and the listeners are bound.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Starts draining: listeners answer HTTP/1 with `Connection: close`, send HTTP/2 GOAWAY.
    pub fn start_draining(&self) {
        self.draining.send_replace(true);
    }

    /// Whether draining has started.
    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// A receiver that changes to `true` when draining starts.
    pub fn draining(&self) -> watch::Receiver<bool> {
        self.draining.subscribe()
    }

    /// Asks the process to exit (admin `/quitquitquit`, SIGTERM after the drain).
    pub fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    /// A receiver that changes to `true` when the process should exit.
    pub fn shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}
