//! The aggregated, immutable view the scraper publishes: per-second rates of Istio's
//! standard metrics (or of the Envoy stats standing in for them), grouped by the labels the
//! graph needs. Scraping the proxies and querying Prometheus both produce this form.

use serde::Serialize;

/// The value Istio gives a label it cannot fill.
pub const UNKNOWN: &str = "unknown";

/// Which side reported a series (Istio's `reporter` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Reporter {
    /// The client's proxy.
    Source,
    /// The server's proxy.
    Destination,
}

/// Which metrics a series was derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Origin {
    /// Istio's standard metrics (mast-proxy, or a Prometheus holding them).
    Istio,
    /// Envoy's cluster stats (`envoy_cluster_upstream_*`) of an Envoy sidecar.
    Envoy,
}

/// The proxy implementation behind a sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ProxyKind {
    /// Mast's own proxy.
    #[serde(rename = "mast-proxy")]
    MastProxy,
    /// Envoy (through mast-agent).
    #[serde(rename = "envoy")]
    Envoy,
}

impl ProxyKind {
    /// `mast-proxy` or `envoy`, as the API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MastProxy => "mast-proxy",
            Self::Envoy => "envoy",
        }
    }
}

/// One side of a request: a workload and its `app` / `version` labels (`unknown` when not
/// known).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Peer {
    /// The workload's name.
    pub workload: String,
    /// Its namespace.
    pub namespace: String,
    /// Its `app` label.
    pub app: String,
    /// Its `version` label.
    pub version: String,
}

impl Peer {
    /// A peer nothing is known about.
    pub fn unknown() -> Self {
        Self {
            workload: UNKNOWN.into(),
            namespace: UNKNOWN.into(),
            app: UNKNOWN.into(),
            version: UNKNOWN.into(),
        }
    }

    /// Whether the workload is known.
    pub fn is_known(&self) -> bool {
        known(&self.workload)
    }
}

/// Whether a label value carries information (not empty, not `unknown`).
pub fn known(value: &str) -> bool {
    !value.is_empty() && value != UNKNOWN
}

/// `http`, `grpc` or `tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Protocol {
    /// HTTP/1.1 or HTTP/2.
    Http,
    /// gRPC.
    Grpc,
    /// Opaque TCP.
    Tcp,
}

impl Protocol {
    /// `http`, `grpc` or `tcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Grpc => "grpc",
            Self::Tcp => "tcp",
        }
    }
}

/// What identifies a request series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpKey {
    /// Who reported it.
    pub reporter: Reporter,
    /// Where it came from.
    pub origin: Origin,
    /// The client.
    pub source: Peer,
    /// The server.
    pub destination: Peer,
    /// `destination_service` (a host name), `unknown` when not known.
    pub service: String,
    /// The DestinationRule subset of the cluster (Envoy series), empty when none.
    pub subset: String,
    /// `http` or `grpc`.
    pub protocol: Protocol,
    /// `200`, `503`, … (`2xx` when only the class is known).
    pub response_code: String,
    /// Envoy's response flags, `-` when none.
    pub response_flags: String,
    /// `mutual_tls`, `none` or `unknown`.
    pub mtls: String,
}

/// The rates of one request series over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpSeries {
    /// Its labels.
    pub key: HttpKey,
    /// Requests per second.
    pub rps: f64,
    /// The request-duration histogram's bucket rates: (upper bound in ms, cumulative rate),
    /// by bound; empty when unknown.
    pub latency: Vec<(f64, f64)>,
}

/// What identifies a TCP series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpKey {
    /// Who reported it.
    pub reporter: Reporter,
    /// Where it came from.
    pub origin: Origin,
    /// The client.
    pub source: Peer,
    /// The server.
    pub destination: Peer,
    /// `destination_service`, `unknown` when not known.
    pub service: String,
    /// The DestinationRule subset of the cluster (Envoy series), empty when none.
    pub subset: String,
    /// `mutual_tls`, `none` or `unknown`.
    pub mtls: String,
}

/// The rates of one TCP series over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpSeries {
    /// Its labels.
    pub key: TcpKey,
    /// Bytes sent plus received per second.
    pub bytes_per_second: f64,
    /// Connections opened per second.
    pub connections_per_second: f64,
}

/// How the last scrape of one proxy went.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyScrape {
    /// The proxy's node id.
    pub node_id: String,
    /// Its workload.
    pub workload: String,
    /// Its namespace.
    pub namespace: String,
    /// What its metrics say it is (`None` before a successful scrape).
    pub kind: Option<ProxyKind>,
    /// Why the last scrape failed, if it did.
    pub error: Option<String>,
}

/// Where the numbers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TrafficSource {
    /// mastd scraped the proxies itself.
    Proxies,
    /// A Prometheus was queried.
    Prometheus,
}

impl TrafficSource {
    /// `proxies` or `prometheus`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proxies => "proxies",
            Self::Prometheus => "prometheus",
        }
    }
}

/// One published view of the mesh's traffic.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Traffic {
    /// When it was computed (Unix milliseconds).
    pub timestamp: u64,
    /// The rate window in seconds.
    pub window_seconds: u64,
    /// Where the numbers come from.
    pub source: TrafficSource,
    /// Request series.
    pub http: Vec<HttpSeries>,
    /// TCP series.
    pub tcp: Vec<TcpSeries>,
    /// Every proxy scraped (empty with Prometheus).
    pub proxies: Vec<ProxyScrape>,
    /// Why the Prometheus query failed, if it did.
    pub error: Option<String>,
    /// How many views were published before this one (0 for the initial, empty view).
    pub sequence: u64,
}

impl Traffic {
    /// A view with no traffic.
    pub fn empty(source: TrafficSource, window_seconds: u64) -> Self {
        Self {
            timestamp: unix_millis(),
            window_seconds,
            source,
            http: Vec::new(),
            tcp: Vec::new(),
            proxies: Vec::new(),
            error: None,
            sequence: 0,
        }
    }

    /// The kind of the proxy of workload `namespace/workload`, as its metrics tell.
    pub fn proxy_kind(&self, namespace: &str, workload: &str) -> Option<ProxyKind> {
        self.proxies
            .iter()
            .filter(|p| p.namespace == namespace && p.workload == workload)
            .find_map(|p| p.kind)
    }
}

/// Now, in Unix milliseconds.
pub fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
