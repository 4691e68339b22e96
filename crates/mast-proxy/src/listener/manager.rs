//! The bound listeners: applying an LDS update binds new sockets first (a bind failure
//! rejects the whole update and changes nothing), then swaps configurations in. A listener
//! whose address is unchanged keeps its socket and gets the new configuration for new
//! connections; connections in flight keep the configuration they started with, and HTTP
//! ones drain (`Connection: close` after the response in progress, HTTP/2 GOAWAY), as Envoy
//! drains a listener's connections on update, so the next request uses the new configuration.
//! An update identical to the running listener (a state-of-the-world push re-sends every
//! listener) changes nothing. Removed listeners stop accepting; their connections drain.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::accept::{self, Virtuals};
use super::convert::ListenerConfig;
use crate::hcm::Env;
use crate::signals::Signals;

struct Active {
    address: SocketAddr,
    config: Arc<ArcSwap<ListenerConfig>>,
    stop: watch::Sender<bool>,
}

/// The proxy's listeners.
pub struct ListenerManager {
    env: Arc<Env>,
    signals: Signals,
    bound: Mutex<HashMap<String, Active>>,
    virtuals: Arc<ArcSwap<Vec<Arc<ListenerConfig>>>>,
    configs: Mutex<HashMap<String, Arc<ListenerConfig>>>,
}

impl std::fmt::Debug for ListenerManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerManager")
            .field("listeners", &self.configs.lock().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ListenerManager {
    /// No listeners yet.
    pub fn new(env: Arc<Env>, signals: Signals) -> Self {
        Self {
            env,
            signals,
            bound: Mutex::new(HashMap::new()),
            virtuals: Arc::new(ArcSwap::from_pointee(Vec::new())),
            configs: Mutex::new(HashMap::new()),
        }
    }

    /// The addresses of bound listeners, by name.
    pub fn addresses(&self) -> HashMap<String, SocketAddr> {
        self.bound
            .lock()
            .iter()
            .map(|(n, a)| (n.clone(), a.address))
            .collect()
    }

    /// Applies LDS: `upserts` added or replaced, `removed` dropped.
    pub fn apply(&self, upserts: Vec<ListenerConfig>, removed: &[String]) -> Result<(), String> {
        let old = self.configs.lock().clone();
        let mut configs = old.clone();
        for name in removed {
            configs.remove(name);
        }
        for l in upserts {
            let same = old.get(&l.name).is_some_and(|o| o.digest == l.digest);
            if !same {
                configs.insert(l.name.clone(), Arc::new(l));
            }
        }
        self.reconcile(configs.clone())?;
        for (name, before) in &old {
            let kept = configs
                .get(name)
                .is_some_and(|now| Arc::ptr_eq(now, before));
            if !kept {
                before.replaced.send_replace(true);
            }
        }
        Ok(())
    }

    fn reconcile(&self, configs: HashMap<String, Arc<ListenerConfig>>) -> Result<(), String> {
        let mut bound = self.bound.lock();
        let mut fresh = HashMap::new();
        for (name, l) in configs.iter().filter(|(_, l)| l.bind) {
            let reuse = bound.get(name).is_some_and(|a| a.address == l.address);
            if !reuse {
                let socket = bind(l.address, l.reuse_port).map_err(|e| {
                    format!("Listener {name:?}: address: cannot bind {}: {e}", l.address)
                })?;
                fresh.insert(name.clone(), socket);
            }
        }
        let keep: Vec<String> = bound
            .keys()
            .filter(|n| configs.get(*n).is_some_and(|l| l.bind) && !fresh.contains_key(*n))
            .cloned()
            .collect();
        bound.retain(|name, active| {
            let stays = keep.contains(name);
            if !stays {
                active.stop.send_replace(true);
            }
            stays
        });
        for name in &keep {
            if let (Some(active), Some(l)) = (bound.get(name), configs.get(name)) {
                active.config.store(Arc::clone(l));
            }
        }
        for (name, socket) in fresh {
            if let Some(l) = configs.get(&name) {
                let active = self.start(socket, Arc::clone(l));
                bound.insert(name, active);
            }
        }
        let virtuals: Vec<_> = configs.values().filter(|l| !l.bind).cloned().collect();
        self.virtuals.store(Arc::new(virtuals));
        *self.configs.lock() = configs;
        Ok(())
    }

    fn start(&self, socket: std::net::TcpListener, config: Arc<ListenerConfig>) -> Active {
        let address = config.address;
        let config = Arc::new(ArcSwap::new(config));
        let (stop, stopped) = watch::channel(false);
        let task = AcceptLoop {
            config: Arc::clone(&config),
            virtuals: Arc::clone(&self.virtuals),
            env: Arc::clone(&self.env),
            signals: self.signals.clone(),
        };
        match TcpListener::from_std(socket) {
            Ok(listener) => {
                tokio::spawn(task.run(listener, stopped));
            }
            Err(e) => tracing::error!(%address, error = %e, "listener socket unusable"),
        }
        Active {
            address,
            config,
            stop,
        }
    }
}

fn bind(address: SocketAddr, reuse_port: bool) -> std::io::Result<std::net::TcpListener> {
    if let Some(kept) = super::reserved::take(address) {
        return Ok(kept);
    }
    let domain = socket2::Domain::for_address(address);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

struct AcceptLoop {
    config: Arc<ArcSwap<ListenerConfig>>,
    virtuals: Arc<ArcSwap<Vec<Arc<ListenerConfig>>>>,
    env: Arc<Env>,
    signals: Signals,
}

impl AcceptLoop {
    async fn run(self, listener: TcpListener, mut stop: watch::Receiver<bool>) {
        let mut draining = self.signals.draining();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        // Over the global connection limit: closed at once.
                        let Some((stream, permit)) = crate::limits::conn::admit(stream) else {
                            continue;
                        };
                        let virtuals: Virtuals = self.virtuals.load_full();
                        let serve = accept::serve(
                            stream,
                            peer,
                            self.config.load_full(),
                            virtuals,
                            Arc::clone(&self.env),
                            self.signals.clone(),
                        );
                        tokio::spawn(async move {
                            let _permit = permit;
                            serve.await;
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
                _ = stop.changed() => return,
                _ = draining.changed() => {
                    if *draining.borrow() {
                        tracing::info!(listener = %self.config.load().name, "draining: no new connections");
                        return;
                    }
                }
            }
        }
    }
}
