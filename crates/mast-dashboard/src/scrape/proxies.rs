//! Scraping every connected proxy's admin `/stats/prometheus` concurrently (each with its own
//! deadline, so a stuck proxy never holds up the others), keeping each proxy's history and
//! turning it into series: Istio's metrics for mast-proxy, Envoy's cluster stats for Envoy.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use mast_model::MeshSnapshot;
use mast_xds_server::ProxyStatus;

use super::client::HttpClient;
use super::envoy::{self, EnvoyContext};
use super::istio;
use super::parse::parse;
use super::rates::History;
use super::traffic::{HttpSeries, Peer, ProxyKind, ProxyScrape, TcpSeries, UNKNOWN};
use crate::graph::inventory::kind_from_version;

/// How long one proxy has to answer.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(1);

/// What is kept about one proxy between scrapes.
#[derive(Debug)]
struct Tracked {
    history: History,
    kind: Option<ProxyKind>,
    error: Option<String>,
}

/// The proxies' histories.
pub struct ProxyScraper {
    client: HttpClient,
    keep: Duration,
    tracked: HashMap<String, Tracked>,
}

/// A proxy's identity as its node tells it.
fn peer_of(status: &ProxyStatus) -> Peer {
    let p = &status.proxy;
    let label = |k: &str| p.labels.get(k).cloned().unwrap_or_else(|| UNKNOWN.into());
    Peer {
        workload: p.workload.clone(),
        namespace: p.namespace.clone(),
        app: label("app"),
        version: label("version"),
    }
}

/// Which proxy wrote a scrape: Istio's metrics are mast-proxy's, `envoy_server_uptime` is
/// Envoy's; a mast-proxy that has seen no traffic yet has neither, and is told by the
/// version it reports ([`kind_from_version`]).
pub fn kind_of(text: &str, status: &ProxyStatus) -> ProxyKind {
    if text.contains("istio_requests") || text.contains("istio_tcp") {
        ProxyKind::MastProxy
    } else if text.contains("envoy_server_uptime") {
        ProxyKind::Envoy
    } else {
        kind_from_version(status)
    }
}

impl ProxyScraper {
    /// A scraper keeping `keep` of history per proxy (the rate window, plus a little).
    pub fn new(keep: Duration) -> Self {
        Self {
            client: HttpClient::new(),
            keep,
            tracked: HashMap::new(),
        }
    }

    /// Scrapes every proxy of `status` that reports an admin address, and returns the series
    /// over the window and how each proxy's scrape went.
    pub async fn scrape(
        &mut self,
        status: Vec<ProxyStatus>,
        snapshot: &MeshSnapshot,
    ) -> (Vec<HttpSeries>, Vec<TcpSeries>, Vec<ProxyScrape>) {
        // The newest stream of each node id.
        let proxies: BTreeMap<String, ProxyStatus> = status
            .into_iter()
            .filter(|s| !s.proxy.admin_address.is_empty())
            .map(|s| (s.node_id.clone(), s))
            .collect();
        self.tracked.retain(|id, _| proxies.contains_key(id));
        let fetches = proxies.values().map(|s| {
            let client = self.client.clone();
            let url = metrics_url(&s.proxy);
            async move { client.get_text(&url, SCRAPE_TIMEOUT).await }
        });
        let results = futures::future::join_all(fetches).await;
        let now = Instant::now();
        for ((id, status), result) in proxies.iter().zip(results) {
            let t = self.tracked.entry(id.clone()).or_insert_with(|| Tracked {
                history: History::default(),
                kind: None,
                error: None,
            });
            match result.map_err(|e| e.to_string()).and_then(|text| {
                let kind = kind_of(&text, status);
                let keep = |n: &str| match kind {
                    ProxyKind::MastProxy => istio::wanted(n),
                    ProxyKind::Envoy => envoy::wanted(n),
                };
                parse(&text, keep)
                    .map(|s| (kind, s))
                    .map_err(|e| format!("bad metrics text: {e}"))
            }) {
                Ok((kind, samples)) => {
                    t.history.push(now, samples, self.keep);
                    t.kind = Some(kind);
                    t.error = None;
                }
                Err(e) => {
                    tracing::debug!(proxy = %id, error = %e, "scrape failed");
                    t.error = Some(e);
                }
            }
        }
        self.series(&proxies, snapshot)
    }

    fn series(
        &self,
        proxies: &BTreeMap<String, ProxyStatus>,
        snapshot: &MeshSnapshot,
    ) -> (Vec<HttpSeries>, Vec<TcpSeries>, Vec<ProxyScrape>) {
        let protocol_of = |host: &str, port: u16| {
            let host = mast_core::Hostname::new_unchecked(host);
            snapshot
                .service(&host)
                .and_then(|s| s.port(port))
                .map(|p| p.protocol)
        };
        let (mut http, mut tcp, mut report) = (Vec::new(), Vec::new(), Vec::new());
        for (id, status) in proxies {
            let Some(t) = self.tracked.get(id) else {
                continue;
            };
            report.push(ProxyScrape {
                node_id: id.clone(),
                workload: status.proxy.workload.clone(),
                namespace: status.proxy.namespace.clone(),
                kind: t.kind,
                error: t.error.clone(),
            });
            let rates = t.history.rates();
            let (h, c) = match (t.kind, t.history.latest()) {
                (Some(ProxyKind::MastProxy), _) => istio::series(&rates),
                (Some(ProxyKind::Envoy), Some(latest)) => {
                    let cx = EnvoyContext {
                        me: peer_of(status),
                        protocol_of: &protocol_of,
                    };
                    envoy::series(&rates, latest, &cx)
                }
                _ => continue,
            };
            http.extend(h);
            tcp.extend(c);
        }
        (http, tcp, report)
    }
}

/// Where a proxy's metrics are read: its admin address when mastd can reach it (a local
/// mesh: every proxy on this machine), else — a sidecar in a pod, whose admin listens on the
/// pod's own 127.0.0.1 — Istio's status port 15020 on the pod's address (`/stats/prometheus`
/// there: mast-proxy's status server, mast-agent's merged endpoint).
pub fn metrics_url(proxy: &mast_xds_server::ProxySummary) -> String {
    let admin_is_local = proxy
        .admin_address
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback());
    let pod_ip = proxy
        .ip
        .parse::<std::net::IpAddr>()
        .ok()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified());
    match pod_ip {
        Some(ip) if admin_is_local && proxy.capture_mode == "iptables" => {
            format!(
                "http://{}/stats/prometheus",
                std::net::SocketAddr::new(ip, 15020)
            )
        }
        _ => format!("http://{}/stats/prometheus", proxy.admin_address),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_from_the_families_present_else_the_version() {
        let status = |version: &str| ProxyStatus {
            node_id: "n".into(),
            proxy: mast_xds_server::ProxySummary {
                node_type: "sidecar".into(),
                ip: String::new(),
                workload: "w".into(),
                namespace: "default".into(),
                service_account: String::new(),
                labels: Default::default(),
                cluster_id: String::new(),
                capture_mode: "ports".into(),
                proxy_version: version.into(),
                admin_address: "127.0.0.1:1".into(),
            },
            protocol: mast_xds_server::XdsProtocol::Delta,
            connected_since: std::time::SystemTime::now(),
            types: Default::default(),
        };
        let (mast, envoy) = (status(mast_core::VERSION), status("1.40.0"));
        let istio = "# TYPE istio_requests counter\nenvoy_cluster_upstream_rq_total 1\n";
        assert_eq!(kind_of(istio, &envoy), ProxyKind::MastProxy);
        assert_eq!(kind_of("envoy_server_uptime 3\n", &mast), ProxyKind::Envoy);
        let idle = "envoy_control_plane_connected_state 1\n";
        assert_eq!(kind_of(idle, &mast), ProxyKind::MastProxy);
        assert_eq!(kind_of(idle, &envoy), ProxyKind::Envoy);
    }
}
