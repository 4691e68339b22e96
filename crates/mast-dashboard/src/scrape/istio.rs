//! Istio's standard metrics (rates of `istio_requests_total`,
//! `istio_request_duration_milliseconds_bucket`, `istio_tcp_*`) into request and TCP series
//! keyed by the labels the graph uses.

use std::collections::HashMap;

use super::parse::{Sample, parse_le};
use super::traffic::{
    HttpKey, HttpSeries, Origin, Peer, Protocol, Reporter, TcpKey, TcpSeries, UNKNOWN,
};

/// `istio_requests_total`.
pub const REQUESTS: &str = "istio_requests_total";
/// The request-duration histogram's buckets.
pub const DURATION_BUCKET: &str = "istio_request_duration_milliseconds_bucket";
/// Bytes sent to the client.
pub const TCP_SENT: &str = "istio_tcp_sent_bytes_total";
/// Bytes received from the client.
pub const TCP_RECEIVED: &str = "istio_tcp_received_bytes_total";
/// Connections opened.
pub const TCP_OPENED: &str = "istio_tcp_connections_opened_total";

/// Whether a scraped sample is one of the Istio metrics the dashboard reads.
pub fn wanted(name: &str) -> bool {
    matches!(
        name,
        REQUESTS | DURATION_BUCKET | TCP_SENT | TCP_RECEIVED | TCP_OPENED
    )
}

/// The labels Prometheus is asked to keep for request series (and, with `le`, for buckets).
pub const HTTP_LABELS: &[&str] = &[
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_app",
    "source_version",
    "destination_workload",
    "destination_workload_namespace",
    "destination_app",
    "destination_version",
    "destination_service",
    "request_protocol",
    "response_code",
    "response_flags",
    "connection_security_policy",
];

/// The labels Prometheus is asked to keep for TCP series.
pub const TCP_LABELS: &[&str] = &[
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_app",
    "source_version",
    "destination_workload",
    "destination_workload_namespace",
    "destination_app",
    "destination_version",
    "destination_service",
    "connection_security_policy",
];

fn label<'a>(s: &'a Sample, name: &str) -> &'a str {
    s.label(name).filter(|v| !v.is_empty()).unwrap_or(UNKNOWN)
}

fn peer(s: &Sample, side: &str) -> Peer {
    let get = |l: &str| label(s, &format!("{side}_{l}")).to_owned();
    Peer {
        workload: get("workload"),
        namespace: get("workload_namespace"),
        app: get("app"),
        version: get("version"),
    }
}

fn reporter(s: &Sample) -> Option<Reporter> {
    match s.label("reporter")? {
        "source" => Some(Reporter::Source),
        "destination" => Some(Reporter::Destination),
        _ => None,
    }
}

fn http_key(s: &Sample) -> Option<HttpKey> {
    Some(HttpKey {
        reporter: reporter(s)?,
        origin: Origin::Istio,
        source: peer(s, "source"),
        destination: peer(s, "destination"),
        service: label(s, "destination_service").to_owned(),
        subset: String::new(),
        protocol: match s.label("request_protocol") {
            Some("grpc") => Protocol::Grpc,
            _ => Protocol::Http,
        },
        response_code: label(s, "response_code").to_owned(),
        response_flags: s.label("response_flags").unwrap_or("-").to_owned(),
        mtls: label(s, "connection_security_policy").to_owned(),
    })
}

fn tcp_key(s: &Sample) -> Option<TcpKey> {
    Some(TcpKey {
        reporter: reporter(s)?,
        origin: Origin::Istio,
        source: peer(s, "source"),
        destination: peer(s, "destination"),
        service: label(s, "destination_service").to_owned(),
        subset: String::new(),
        mtls: label(s, "connection_security_policy").to_owned(),
    })
}

/// Groups rate samples of Istio's metrics into series (samples of other names are ignored;
/// series with neither requests nor latency are dropped).
pub fn series(rates: &[Sample]) -> (Vec<HttpSeries>, Vec<TcpSeries>) {
    let mut http: HashMap<HttpKey, HttpSeries> = HashMap::new();
    let mut tcp: HashMap<TcpKey, TcpSeries> = HashMap::new();
    for s in rates {
        match s.name.as_str() {
            REQUESTS | DURATION_BUCKET => {
                let Some(key) = http_key(s) else { continue };
                let entry = http.entry(key.clone()).or_insert_with(|| HttpSeries {
                    key,
                    rps: 0.0,
                    latency: Vec::new(),
                });
                if s.name == REQUESTS {
                    entry.rps += s.value;
                } else if let Some(le) = s.label("le").and_then(parse_le) {
                    entry.latency.push((le, s.value));
                }
            }
            TCP_SENT | TCP_RECEIVED | TCP_OPENED => {
                let Some(key) = tcp_key(s) else { continue };
                let entry = tcp.entry(key.clone()).or_insert_with(|| TcpSeries {
                    key,
                    bytes_per_second: 0.0,
                    connections_per_second: 0.0,
                });
                if s.name == TCP_OPENED {
                    entry.connections_per_second += s.value;
                } else {
                    entry.bytes_per_second += s.value;
                }
            }
            _ => {}
        }
    }
    let mut http: Vec<HttpSeries> = http.into_values().collect();
    for h in &mut http {
        h.latency.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    http.sort_by(|a, b| a.key.cmp(&b.key));
    let mut tcp: Vec<TcpSeries> = tcp.into_values().collect();
    tcp.sort_by(|a, b| a.key.cmp(&b.key));
    (http, tcp)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::scrape::parse::parse;

    #[test]
    fn requests_and_buckets_join_on_their_labels() {
        let text = r#"
istio_requests_total{reporter="destination",source_workload="client",source_workload_namespace="default",source_app="client",source_version="unknown",destination_workload="nginx-1",destination_workload_namespace="default",destination_app="nginx",destination_version="v1",destination_service="nginx-svc.default.svc.cluster.local",request_protocol="http",response_code="200",response_flags="-",connection_security_policy="mutual_tls",grpc_response_status=""} 4
istio_request_duration_milliseconds_bucket{reporter="destination",source_workload="client",source_workload_namespace="default",source_app="client",source_version="unknown",destination_workload="nginx-1",destination_workload_namespace="default",destination_app="nginx",destination_version="v1",destination_service="nginx-svc.default.svc.cluster.local",request_protocol="http",response_code="200",response_flags="-",connection_security_policy="mutual_tls",grpc_response_status="",le="5.0"} 3
istio_request_duration_milliseconds_bucket{reporter="destination",source_workload="client",source_workload_namespace="default",source_app="client",source_version="unknown",destination_workload="nginx-1",destination_workload_namespace="default",destination_app="nginx",destination_version="v1",destination_service="nginx-svc.default.svc.cluster.local",request_protocol="http",response_code="200",response_flags="-",connection_security_policy="mutual_tls",grpc_response_status="",le="+Inf"} 4
istio_tcp_sent_bytes_total{reporter="source",source_workload="client",destination_service="db.default.svc.cluster.local",connection_security_policy="unknown"} 100
istio_tcp_received_bytes_total{reporter="source",source_workload="client",destination_service="db.default.svc.cluster.local",connection_security_policy="unknown"} 50
istio_tcp_connections_opened_total{reporter="source",source_workload="client",destination_service="db.default.svc.cluster.local",connection_security_policy="unknown"} 2
istio_requests_total{reporter="bogus"} 9
"#;
        let (http, tcp) = series(&parse(text, wanted).unwrap());
        assert_eq!(http.len(), 1, "{http:?}");
        let h = &http[0];
        assert_eq!(h.rps, 4.0);
        assert_eq!(h.latency, vec![(5.0, 3.0), (f64::INFINITY, 4.0)]);
        assert_eq!(h.key.reporter, Reporter::Destination);
        assert_eq!(h.key.source.workload, "client");
        assert_eq!(h.key.destination.version, "v1");
        assert_eq!(h.key.mtls, "mutual_tls");
        assert_eq!(tcp.len(), 1);
        assert_eq!(tcp[0].bytes_per_second, 150.0);
        assert_eq!(tcp[0].connections_per_second, 2.0);
        assert_eq!(tcp[0].key.destination.workload, UNKNOWN);
    }
}
