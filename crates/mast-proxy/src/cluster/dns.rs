//! DNS for clusters: STRICT_DNS refresh (every inline host resolved at start and every
//! `dns_refresh_rate`, 5 s by default; a failed lookup keeps the host's last addresses) and the
//! dynamic forward proxy's DNS cache (`host:port` → one address, refreshed after
//! `dns_refresh_rate`, dropped after `host_ttl` unused, at most `max_hosts`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Weak;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::SelectError;
use super::assignment::{EndpointSpec, HostSpec};
use super::convert::{DnsCacheSettings, Family};
use super::state::Cluster;

/// Keeps the addresses of `family`.
pub(crate) fn by_family(addrs: Vec<SocketAddr>, family: Family) -> Vec<SocketAddr> {
    let (v4, v6): (Vec<_>, Vec<_>) = addrs.into_iter().partition(SocketAddr::is_ipv4);
    match family {
        Family::V4Only => v4,
        Family::V6Only => v6,
        Family::V4Preferred if !v4.is_empty() => v4,
        Family::V4Preferred => v6,
        Family::Auto if !v6.is_empty() => v6,
        Family::Auto => v4,
        Family::All => v4.into_iter().chain(v6).collect(),
    }
}

async fn lookup(host: &str, port: u16, family: Family) -> std::io::Result<Vec<SocketAddr>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs = tokio::net::lookup_host((host, port)).await?.collect();
    let addrs = by_family(addrs, family);
    if addrs.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no address of the requested family",
        ));
    }
    Ok(addrs)
}

/// Resolves the hosts of a STRICT_DNS cluster now and every `refresh` while it lives.
pub(crate) async fn strict_dns_task(
    cluster: Weak<Cluster>,
    hosts: Vec<HostSpec>,
    family: Family,
    refresh: Duration,
) {
    let mut last: Vec<Vec<SocketAddr>> = vec![Vec::new(); hosts.len()];
    loop {
        for (h, prev) in hosts.iter().zip(last.iter_mut()) {
            match lookup(&h.host, h.port, family).await {
                Ok(addrs) => *prev = addrs,
                Err(e) => tracing::debug!(host = %h.host, error = %e, "STRICT_DNS lookup failed"),
            }
        }
        let specs: Vec<EndpointSpec> = hosts
            .iter()
            .zip(&last)
            .flat_map(|(h, addrs)| {
                addrs.iter().map(|a| EndpointSpec {
                    addr: *a,
                    weight: h.weight,
                })
            })
            .collect();
        {
            let Some(c) = cluster.upgrade() else {
                return;
            };
            c.set_endpoints(&specs, None);
            c.mark_ready();
        }
        tokio::time::sleep(refresh.max(Duration::from_millis(100))).await;
    }
}

#[derive(Debug)]
struct Entry {
    addr: SocketAddr,
    resolved: Instant,
    used: Instant,
}

/// The dynamic forward proxy's DNS cache, shared by the clusters naming the same cache.
#[derive(Debug)]
pub(crate) struct DnsCache {
    settings: DnsCacheSettings,
    entries: Mutex<HashMap<String, Entry>>,
}

impl DnsCache {
    pub fn new(settings: DnsCacheSettings) -> Self {
        Self {
            settings,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> &DnsCacheSettings {
        &self.settings
    }

    /// The address for `authority` (`host:port`, or `host` with port 80).
    pub async fn resolve(&self, authority: &str) -> Result<SocketAddr, SelectError> {
        let now = Instant::now();
        let stale = {
            let mut entries = self.entries.lock();
            match entries.get_mut(authority) {
                Some(e) => {
                    e.used = now;
                    if now.duration_since(e.resolved) < self.settings.refresh {
                        return Ok(e.addr);
                    }
                    Some(e.addr)
                }
                None => None,
            }
        };
        let fail = || SelectError::DnsFailure(authority.to_owned());
        let parsed: http::uri::Authority = authority.parse().map_err(|_| fail())?;
        let port = parsed.port_u16().unwrap_or(80);
        let addr = match lookup(parsed.host(), port, self.settings.family).await {
            Ok(addrs) => addrs[0],
            Err(e) => {
                tracing::debug!(%authority, error = %e, "DNS cache lookup failed");
                return stale.ok_or_else(fail);
            }
        };
        let mut entries = self.entries.lock();
        if entries.len() >= self.settings.max_hosts && !entries.contains_key(authority) {
            return Err(SelectError::DnsFailure(format!(
                "{authority}: DNS cache is full"
            )));
        }
        entries.insert(
            authority.to_owned(),
            Entry {
                addr,
                resolved: Instant::now(),
                used: now,
            },
        );
        Ok(addr)
    }

    /// Drops hosts unused for `host_ttl`.
    pub fn sweep(&self) {
        let ttl = self.settings.host_ttl;
        self.entries.lock().retain(|_, e| e.used.elapsed() < ttl);
    }
}
