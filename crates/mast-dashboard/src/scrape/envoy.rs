//! Envoy sidecars have no Istio metrics: their edges come from Envoy's own cluster stats.
//! An `outbound|<port>|<subset>|<host>` cluster is this workload calling the service `<host>`
//! (reporter `source`, destination workload unknown, the subset kept): requests from
//! `envoy_cluster_upstream_rq{envoy_response_code}` (else `…_rq_xx{envoy_response_code_class}`,
//! else `…_rq_total`), latency from `envoy_cluster_upstream_rq_time_bucket`, TCP from
//! `envoy_cluster_upstream_cx_{tx,rx}_bytes_total` and `…_cx_total`. mTLS is `mutual_tls` when
//! the cluster has completed TLS handshakes (`envoy_cluster_ssl_handshake`), `none` when it
//! has no TLS stats at all, else `unknown`. Response flags are not known (`-`). An
//! `inbound|<port>||` cluster gives this workload's inbound rate (reporter `destination`,
//! source and service unknown), which the graph uses to split a service's traffic between its
//! workloads.

use std::collections::{BTreeMap, HashMap};

use mast_model::Protocol as ServiceProtocol;

use super::parse::{Sample, parse_le};
use super::rates::SeriesId;
use super::traffic::{
    HttpKey, HttpSeries, Origin, Peer, Protocol, Reporter, TcpKey, TcpSeries, UNKNOWN,
};

const CLUSTER: &str = "envoy_cluster_name";
const SSL_HANDSHAKE: &str = "envoy_cluster_ssl_handshake";

/// Whether a scraped sample is one of the Envoy stats the dashboard reads.
pub fn wanted(name: &str) -> bool {
    name.starts_with("envoy_cluster_upstream_rq")
        || matches!(
            name,
            "envoy_cluster_upstream_cx_total"
                | "envoy_cluster_upstream_cx_tx_bytes_total"
                | "envoy_cluster_upstream_cx_rx_bytes_total"
                | SSL_HANDSHAKE
        )
}

/// One cluster's rates.
#[derive(Debug, Default)]
struct ClusterStats {
    total: f64,
    codes: BTreeMap<String, f64>,
    classes: BTreeMap<String, f64>,
    buckets: Vec<(f64, f64)>,
    bytes: f64,
    connections: f64,
}

/// Where a cluster goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Direction {
    Outbound {
        port: u16,
        subset: String,
        host: String,
    },
    Inbound,
}

fn direction(cluster: &str) -> Option<Direction> {
    let mut parts = cluster.splitn(4, '|');
    let dir = parts.next()?;
    let port = parts.next()?.parse().ok()?;
    let subset = parts.next()?.to_owned();
    let host = parts.next().unwrap_or("");
    match dir {
        "outbound" if !host.is_empty() => Some(Direction::Outbound {
            port,
            subset,
            host: host.to_owned(),
        }),
        "inbound" => Some(Direction::Inbound),
        _ => None,
    }
}

fn collect(rates: &[Sample]) -> BTreeMap<Direction, ClusterStats> {
    let mut clusters: BTreeMap<Direction, ClusterStats> = BTreeMap::new();
    for s in rates {
        let Some(dir) = s.label(CLUSTER).and_then(direction) else {
            continue;
        };
        let c = clusters.entry(dir).or_default();
        match s.name.as_str() {
            "envoy_cluster_upstream_rq_total" => c.total += s.value,
            "envoy_cluster_upstream_rq" => {
                if let Some(code) = s.label("envoy_response_code") {
                    *c.codes.entry(code.to_owned()).or_default() += s.value;
                }
            }
            "envoy_cluster_upstream_rq_xx" => {
                if let Some(class) = s.label("envoy_response_code_class") {
                    *c.classes.entry(format!("{class}xx")).or_default() += s.value;
                }
            }
            "envoy_cluster_upstream_rq_time_bucket" => {
                if let Some(le) = s.label("le").and_then(parse_le) {
                    c.buckets.push((le, s.value));
                }
            }
            "envoy_cluster_upstream_cx_tx_bytes_total"
            | "envoy_cluster_upstream_cx_rx_bytes_total" => c.bytes += s.value,
            "envoy_cluster_upstream_cx_total" => c.connections += s.value,
            _ => {}
        }
    }
    clusters
}

/// The mTLS state of each outbound cluster from the raw (cumulative) values.
fn mtls_of(latest: &HashMap<SeriesId, f64>) -> HashMap<String, &'static str> {
    let mut out: HashMap<String, &'static str> = HashMap::new();
    for ((name, labels), v) in latest {
        let Some((_, cluster)) = labels.iter().find(|(k, _)| k == CLUSTER) else {
            continue;
        };
        let entry = out.entry(cluster.clone()).or_insert("none");
        if name == SSL_HANDSHAKE {
            *entry = if *v > 0.0 { "mutual_tls" } else { UNKNOWN };
        }
    }
    out
}

/// What the converter needs to know about the proxy and the mesh.
pub struct EnvoyContext<'a> {
    /// The proxy's own workload.
    pub me: Peer,
    /// The protocol of a service port (`host`, `port`), when the service is known.
    pub protocol_of: &'a dyn Fn(&str, u16) -> Option<ServiceProtocol>,
}

/// Converts one Envoy proxy's rates (and newest raw values) into series.
pub fn series(
    rates: &[Sample],
    latest: &HashMap<SeriesId, f64>,
    cx: &EnvoyContext<'_>,
) -> (Vec<HttpSeries>, Vec<TcpSeries>) {
    let mtls = mtls_of(latest);
    let (mut http, mut tcp) = (Vec::new(), Vec::new());
    for (dir, stats) in collect(rates) {
        let (reporter, source, destination, service, subset, port, mtls) = match &dir {
            Direction::Outbound { port, subset, host } => {
                let name = format!("outbound|{port}|{subset}|{host}");
                let m = mtls.get(&name).copied().unwrap_or(UNKNOWN);
                let mut dest = Peer::unknown();
                if !subset.is_empty() {
                    dest.version.clone_from(subset);
                }
                let (src, svc) = (cx.me.clone(), host.clone());
                (Reporter::Source, src, dest, svc, subset.clone(), *port, m)
            }
            Direction::Inbound => (
                Reporter::Destination,
                Peer::unknown(),
                cx.me.clone(),
                UNKNOWN.to_owned(),
                String::new(),
                0,
                UNKNOWN,
            ),
        };
        let declared = (port != 0)
            .then(|| (cx.protocol_of)(&service, port))
            .flatten();
        let is_http = match declared {
            Some(p) => p.is_http(),
            None => stats.total > 0.0 || !stats.codes.is_empty(),
        };
        if is_http {
            let key = HttpKey {
                reporter,
                origin: Origin::Envoy,
                source,
                destination,
                service,
                subset,
                protocol: if declared == Some(ServiceProtocol::Grpc) {
                    Protocol::Grpc
                } else {
                    Protocol::Http
                },
                response_code: String::new(),
                response_flags: "-".into(),
                mtls: mtls.into(),
            };
            http.extend(http_series(key, stats));
        } else if stats.bytes > 0.0 || stats.connections > 0.0 {
            let key = TcpKey {
                reporter,
                origin: Origin::Envoy,
                source,
                destination,
                service,
                subset,
                mtls: mtls.into(),
            };
            tcp.push(TcpSeries {
                key,
                bytes_per_second: stats.bytes,
                connections_per_second: stats.connections,
            });
        }
    }
    (http, tcp)
}

/// One series per response code (or class), the latency on the busiest one.
fn http_series(key: HttpKey, mut stats: ClusterStats) -> Vec<HttpSeries> {
    let by_code: BTreeMap<String, f64> = if stats.codes.values().sum::<f64>() > 0.0 {
        std::mem::take(&mut stats.codes)
    } else if stats.classes.values().sum::<f64>() > 0.0 {
        std::mem::take(&mut stats.classes)
    } else if stats.total > 0.0 {
        [(UNKNOWN.to_owned(), stats.total)].into()
    } else {
        BTreeMap::new()
    };
    let mut out: Vec<HttpSeries> = by_code
        .into_iter()
        .filter(|(_, rps)| *rps > 0.0)
        .map(|(code, rps)| HttpSeries {
            key: HttpKey {
                response_code: code,
                ..key.clone()
            },
            rps,
            latency: Vec::new(),
        })
        .collect();
    out.sort_by(|a, b| b.rps.total_cmp(&a.rps));
    stats.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if let Some(first) = out.first_mut() {
        first.latency = stats.buckets;
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::scrape::parse::parse;
    use crate::scrape::rates::History;
    use std::time::{Duration, Instant};

    const C1: &str = "outbound|80||nginx-svc-1.default.svc.cluster.local";

    fn text(rq200: u32, rq503: u32, fast: u32) -> String {
        let total = rq200 + rq503;
        format!(
            "envoy_cluster_upstream_rq_total{{envoy_cluster_name=\"{C1}\"}} {total}\n\
             envoy_cluster_upstream_rq{{envoy_response_code=\"200\",envoy_cluster_name=\"{C1}\"}} {rq200}\n\
             envoy_cluster_upstream_rq{{envoy_response_code=\"503\",envoy_cluster_name=\"{C1}\"}} {rq503}\n\
             envoy_cluster_upstream_rq_xx{{envoy_response_code_class=\"2\",envoy_cluster_name=\"{C1}\"}} {rq200}\n\
             envoy_cluster_upstream_rq_time_bucket{{envoy_cluster_name=\"{C1}\",le=\"5\"}} {fast}\n\
             envoy_cluster_upstream_rq_time_bucket{{envoy_cluster_name=\"{C1}\",le=\"+Inf\"}} {total}\n\
             envoy_cluster_ssl_handshake{{envoy_cluster_name=\"{C1}\"}} 2\n\
             envoy_cluster_upstream_rq_total{{envoy_cluster_name=\"inbound|8080||\"}} {total}\n\
             envoy_cluster_upstream_cx_tx_bytes_total{{envoy_cluster_name=\"outbound|5432||db.default.svc.cluster.local\"}} {total}\n\
             envoy_cluster_upstream_rq_total{{envoy_cluster_name=\"BlackHoleCluster\"}} 7\n\
             envoy_server_uptime 5\n"
        )
    }

    #[test]
    fn outbound_clusters_become_source_series() {
        let t = Instant::now();
        let mut h = History::default();
        let keep = Duration::from_secs(60);
        h.push(t, parse(&text(0, 0, 0), wanted).unwrap(), keep);
        h.push(
            t + Duration::from_secs(10),
            parse(&text(80, 20, 50), wanted).unwrap(),
            keep,
        );
        let me = Peer {
            workload: "client".into(),
            namespace: "default".into(),
            app: "client".into(),
            version: UNKNOWN.into(),
        };
        let protocol_of =
            |host: &str, _port: u16| host.starts_with("db.").then_some(ServiceProtocol::Tcp);
        let cx = EnvoyContext {
            me,
            protocol_of: &protocol_of,
        };
        let (http, tcp) = series(&h.rates(), h.latest().unwrap(), &cx);
        let out: Vec<_> = http
            .iter()
            .filter(|s| s.key.reporter == Reporter::Source)
            .collect();
        assert_eq!(out.len(), 2, "{http:?}");
        assert_eq!(out[0].key.response_code, "200");
        assert_eq!(out[0].rps, 8.0);
        assert_eq!(out[0].latency, vec![(5.0, 5.0), (f64::INFINITY, 10.0)]);
        assert_eq!(out[1].key.response_code, "503");
        assert_eq!(out[1].rps, 2.0);
        assert!(out[1].latency.is_empty());
        assert_eq!(out[0].key.source.workload, "client");
        assert_eq!(out[0].key.service, "nginx-svc-1.default.svc.cluster.local");
        assert_eq!(out[0].key.mtls, "mutual_tls");
        assert!(!out[0].key.destination.is_known());
        let inbound: Vec<_> = http
            .iter()
            .filter(|s| s.key.reporter == Reporter::Destination)
            .collect();
        assert_eq!(inbound.len(), 1);
        assert_eq!(inbound[0].rps, 10.0);
        assert_eq!(inbound[0].key.destination.workload, "client");
        assert_eq!(tcp.len(), 1);
        assert_eq!(tcp[0].bytes_per_second, 10.0);
        assert_eq!(tcp[0].key.mtls, "none");
    }
}
