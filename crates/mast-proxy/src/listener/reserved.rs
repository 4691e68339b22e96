//! Sockets bound when the proxy picked its own free ports at start-up (`--admin-port 0`,
//! ports-capture listeners without a port, …), kept bound until the part that serves the port
//! takes them. Picking a port by binding 127.0.0.1:0 and releasing it lets another process
//! (a neighbouring sidecar starting at the same moment) be handed the same port before this
//! one binds it again; keeping the socket closes that window.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::OnceLock;

use parking_lot::Mutex;

fn registry() -> &'static Mutex<HashMap<u16, TcpListener>> {
    static REGISTRY: OnceLock<Mutex<HashMap<u16, TcpListener>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Keeps `listener` (bound on 127.0.0.1) until [`take`] asks for its port.
pub fn keep(listener: TcpListener) {
    if let Ok(addr) = listener.local_addr() {
        registry().lock().insert(addr.port(), listener);
    }
}

/// The kept socket for `address`, when one was kept for its port and `address` is the
/// loopback or unspecified address it can serve (set non-blocking for tokio).
pub fn take(address: SocketAddr) -> Option<TcpListener> {
    let ip = address.ip();
    if !(ip.is_loopback() || ip.is_unspecified()) {
        return None;
    }
    let listener = registry().lock().remove(&address.port())?;
    if ip.is_unspecified() {
        // It listens on 127.0.0.1 only: release it and let the caller bind the wildcard.
        return None;
    }
    listener.set_nonblocking(true).ok()?;
    Some(listener)
}

/// A tokio listener on `address`: the kept socket when there is one, else a new bind.
pub async fn bind(address: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    match take(address) {
        Some(kept) => tokio::net::TcpListener::from_std(kept),
        None => tokio::net::TcpListener::bind(address).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_socket_is_handed_back_once() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        keep(l);
        // The port stays taken while kept.
        assert!(TcpListener::bind(addr).is_err());
        let back = take(addr).expect("kept");
        assert_eq!(back.local_addr().unwrap(), addr);
        assert!(take(addr).is_none(), "handed out once");
    }
}
