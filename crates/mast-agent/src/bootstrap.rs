//! The Envoy bootstrap a sidecar or gateway starts from: the node (id, cluster and Istio's
//! metadata keys, which `mast_model::ProxyNode` reads back), the admin listener on
//! 127.0.0.1, ADS to the control plane over an h2 `xds_cluster` (TLS verified against the
//! mesh root for an `https://` address, as istiod's 15012), with CDS and LDS
//! through ADS, and the static cluster `sds-grpc` (h2 over the agent's Unix socket) that
//! TLS contexts name to get the workload's certificates (`default`, `ROOTCA`) by SDS.
//! Everything else comes over xDS.
//!
//! `stats_config` keeps Envoy's default tags and adds one: Envoy's default `envoy.cluster_name`
//! stops at the first dot, so `cluster.outbound|80||nginx-svc.default.svc.cluster.local.upstream_rq_total`
//! would become `envoy_cluster_default_svc_cluster_local_upstream_rq_total{envoy_cluster_name="outbound|80||nginx-svc"}`.
//! The extra tag (Istio's bootstrap regex for its `cluster_name` tag) takes the whole name up to
//! `.svc.cluster.local`; written without a literal prefix, it runs before the default one,
//! which Envoy then skips as a duplicate (logging "Skipping duplicate tag" now and then).
//!
//! The same text serves `mast-agent`, `mastctl proxy-config bootstrap` and tests; it is
//! built as JSON and rendered as YAML. `initial_fetch_timeout` bounds how long Envoy waits
//! for its first CDS and then its first LDS answer before going LIVE without them (so with
//! no control plane, `/ready` turns LIVE after about twice that); `0s` waits forever.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use mast_model::{CaptureMode, NodeType};
use serde_json::{Value, json};

use crate::duration::envoy_duration;
use crate::sds::SDS_CLUSTER;

/// Istio's CLUSTER_ID for a single-cluster mesh.
pub const DEFAULT_CLUSTER_ID: &str = "Kubernetes";
/// Istio's MESH_ID (the trust domain by default).
pub const DEFAULT_MESH_ID: &str = "cluster.local";
/// The name of the static cluster that points at the control plane.
pub const XDS_CLUSTER: &str = "xds_cluster";
/// The file name the bootstrap is written as.
pub const BOOTSTRAP_FILE: &str = "bootstrap.yaml";

/// Why a bootstrap could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The control plane address is not `host:port`.
    #[error("xDS address {0:?} is not host:port")]
    BadXdsAddress(String),
    /// YAML rendering failed.
    #[error("cannot render the bootstrap as YAML: {0}")]
    Yaml(String),
    /// The file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Where the control plane's ADS server listens: `host:port`, `http://host:port`, or
/// `https://host:port` (TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdsAddress {
    /// An IP address (a STATIC cluster) or a host name (STRICT_DNS).
    pub host: String,
    /// The port.
    pub port: u16,
    /// `https://`: the connection is TLS, verified against [`XdsAddress::root_cert`].
    pub tls: bool,
    /// The mesh root certificate file Envoy verifies the control plane with (TLS only).
    pub root_cert: Option<PathBuf>,
}

impl FromStr for XdsAddress {
    type Err = BootstrapError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BootstrapError::BadXdsAddress(s.to_owned());
        let (tls, rest) = match s.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
            Some(_) => return Err(bad()),
            None => (false, s),
        };
        let (host, port) = rest
            .trim_end_matches('/')
            .rsplit_once(':')
            .ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = port.parse().map_err(|_| bad())?;
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            tls,
            root_cert: None,
        })
    }
}

impl XdsAddress {
    /// The `xds_cluster`'s transport socket: an `UpstreamTlsContext` with SNI the host
    /// (none for an IP), ALPN h2, the mesh root as trusted CA and the host as the SAN the
    /// control plane's certificate must carry.
    fn tls_socket(&self, is_ip: bool) -> Value {
        let root = self.root_cert.as_deref().map(Path::display);
        let san_type = if is_ip { "IP_ADDRESS" } else { "DNS" };
        let mut context = json!({
            "common_tls_context": {
                "alpn_protocols": ["h2"],
                "validation_context": {
                    "trusted_ca": {"filename": root.map(|r| r.to_string())},
                    "match_typed_subject_alt_names": [
                        {"san_type": san_type, "matcher": {"exact": self.host}},
                    ],
                },
            },
        });
        context["@type"] = json!(
            "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
        );
        if !is_ip {
            context["sni"] = json!(self.host);
        }
        json!({"name": "envoy.transport_sockets.tls", "typed_config": context})
    }
}

/// Which ADS flavour Envoy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdsApi {
    /// State of the world (`GRPC`).
    #[default]
    Sotw,
    /// Incremental (`DELTA_GRPC`).
    Delta,
}

/// Who the proxy is: everything that goes into the bootstrap's `node`.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    /// Sidecar or gateway (`router`).
    pub node_type: NodeType,
    /// The workload's IP.
    pub ip: String,
    /// The workload's name (for a pod: the pod's, which the node id carries).
    pub workload: String,
    /// The name of the workload the pod belongs to (`WORKLOAD_NAME`); `None`: `workload`.
    pub workload_name: Option<String>,
    /// The workload's namespace.
    pub namespace: String,
    /// The cluster DNS domain (`cluster.local`).
    pub domain: String,
    /// The workload's labels (LABELS).
    pub labels: BTreeMap<String, String>,
    /// The workload's service account (SERVICE_ACCOUNT), when known.
    pub service_account: Option<String>,
    /// How traffic reaches the proxy (MAST_CAPTURE_MODE and its ports).
    pub capture: CaptureMode,
    /// CLUSTER_ID.
    pub cluster_id: String,
    /// MESH_ID.
    pub mesh_id: String,
    /// A node id to use as is instead of the one built from the parts.
    pub id_override: Option<String>,
}

impl NodeSpec {
    /// A sidecar for `workload` in `namespace` at 127.0.0.1, iptables capture, Istio's
    /// defaults for the rest.
    pub fn sidecar(workload: &str, namespace: &str) -> Self {
        Self {
            node_type: NodeType::Sidecar,
            ip: "127.0.0.1".into(),
            workload: workload.into(),
            workload_name: None,
            namespace: namespace.into(),
            domain: "cluster.local".into(),
            labels: BTreeMap::new(),
            service_account: None,
            capture: CaptureMode::Iptables,
            cluster_id: DEFAULT_CLUSTER_ID.into(),
            mesh_id: DEFAULT_MESH_ID.into(),
            id_override: None,
        }
    }

    /// `sidecar~<ip>~<workload>.<namespace>~<namespace>.svc.<domain>` (`router~…` for
    /// gateways), or the override.
    pub fn node_id(&self) -> String {
        if let Some(id) = &self.id_override {
            return id.clone();
        }
        let kind = match self.node_type {
            NodeType::Sidecar => "sidecar",
            NodeType::Router => "router",
        };
        let (ip, w, ns, domain) = (&self.ip, &self.workload, &self.namespace, &self.domain);
        format!("{kind}~{ip}~{w}.{ns}~{ns}.svc.{domain}")
    }

    /// The node's `cluster`: `<workload>.<namespace>`.
    pub fn cluster(&self) -> String {
        format!("{}.{}", self.workload, self.namespace)
    }

    /// The node metadata, with Istio's keys and Mast's capture-mode keys (all values
    /// strings, LABELS a map).
    pub fn metadata(&self) -> Value {
        let mut md = json!({
            "NAMESPACE": self.namespace,
            "WORKLOAD_NAME": self.workload_name.as_deref().unwrap_or(&self.workload),
            "LABELS": self.labels,
            "CLUSTER_ID": self.cluster_id,
            "MESH_ID": self.mesh_id,
            "INSTANCE_IPS": self.ip,
        });
        if let Some(sa) = &self.service_account {
            md["SERVICE_ACCOUNT"] = json!(sa);
        }
        match &self.capture {
            CaptureMode::Iptables => md["MAST_CAPTURE_MODE"] = json!("iptables"),
            CaptureMode::Ports { outbound, inbound } => {
                let pairs: Vec<String> = inbound
                    .iter()
                    .map(|(app, listen)| format!("{app}={listen}"))
                    .collect();
                md["MAST_CAPTURE_MODE"] = json!("ports");
                md["MAST_OUTBOUND_PORT"] = json!(outbound.to_string());
                md["MAST_INBOUND_PORTS"] = json!(pairs.join(","));
            }
        }
        md
    }
}

/// Everything the bootstrap needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Bootstrap {
    /// The node.
    pub node: NodeSpec,
    /// Envoy's admin port on 127.0.0.1.
    pub admin_port: u16,
    /// The control plane.
    pub xds: XdsAddress,
    /// SotW or delta ADS.
    pub api: AdsApi,
    /// How long Envoy waits for its first CDS and LDS answers (zero: forever).
    pub initial_fetch_timeout: Duration,
    /// The agent's SDS socket, reached through the `sds-grpc` cluster (none: no such
    /// cluster).
    pub sds_socket: Option<PathBuf>,
}

impl Bootstrap {
    /// The bootstrap as Envoy's JSON (the `envoy.config.bootstrap.v3.Bootstrap` mapping).
    pub fn to_json(&self) -> Value {
        let api_type = match self.api {
            AdsApi::Sotw => "GRPC",
            AdsApi::Delta => "DELTA_GRPC",
        };
        let timeout = envoy_duration(self.initial_fetch_timeout);
        let ads_source =
            json!({"ads": {}, "resource_api_version": "V3", "initial_fetch_timeout": timeout});
        let mut metadata = self.node.metadata();
        // Where the admin interface listens, so `mastctl proxy-config <proxy>` can find it
        // through mastd's `/debug/syncz`.
        metadata["MAST_ADMIN_ADDRESS"] = json!(format!("127.0.0.1:{}", self.admin_port));
        json!({
            "node": {"id": self.node.node_id(), "cluster": self.node.cluster(), "metadata": metadata},
            "admin": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": self.admin_port}},
                // SO_REUSEPORT (SOL_SOCKET 1, option 15 on Linux), set before bind: a picked
                // admin port is held by the agent's reservation (`ports::Reservations`).
                "socket_options": [{"level": 1, "name": 15, "int_value": 1, "state": "STATE_PREBIND"}],
            },
            "dynamic_resources": {
                "ads_config": {
                    "api_type": api_type,
                    "transport_api_version": "V3",
                    "set_node_on_first_message_only": true,
                    // Reconnects back off from 0.5 s to 8 s (mast-proxy's bounds), not
                    // Envoy's default 30 s: a stream that failed while mastd or the pod's
                    // network came up is retried long before the initial fetch times out.
                    "grpc_services": [{"envoy_grpc": {
                        "cluster_name": XDS_CLUSTER,
                        "retry_policy": {"retry_back_off": {"base_interval": "0.500s", "max_interval": "8s"}},
                    }}],
                },
                "cds_config": ads_source,
                "lds_config": ads_source,
            },
            "static_resources": {"clusters": self.static_clusters()},
            "stats_config": stats_config(),
        })
    }

    fn static_clusters(&self) -> Vec<Value> {
        let mut clusters = vec![self.xds_cluster()];
        if let Some(path) = &self.sds_socket {
            clusters.push(sds_cluster(path));
        }
        clusters
    }

    fn xds_cluster(&self) -> Value {
        let is_ip = self.xds.host.parse::<IpAddr>().is_ok();
        let endpoint = json!({"endpoint": {"address": {"socket_address": {
            "address": self.xds.host, "port_value": self.xds.port,
        }}}});
        let mut cluster = json!({
            "name": XDS_CLUSTER,
            "type": if is_ip { "STATIC" } else { "STRICT_DNS" },
            "connect_timeout": "1s",
            "typed_extension_protocol_options": http2_options(),
            "load_assignment": {"cluster_name": XDS_CLUSTER, "endpoints": [{"lb_endpoints": [endpoint]}]},
        });
        if !is_ip {
            cluster["dns_lookup_family"] = json!("V4_PREFERRED");
        }
        if self.xds.tls {
            cluster["transport_socket"] = self.xds.tls_socket(is_ip);
        }
        cluster
    }

    /// The bootstrap as YAML text.
    pub fn to_yaml(&self) -> Result<String, BootstrapError> {
        serde_saphyr::to_string(&self.to_json()).map_err(|e| BootstrapError::Yaml(e.to_string()))
    }

    /// Writes [`BOOTSTRAP_FILE`] into `dir`; returns its path.
    pub fn write_to(&self, dir: &Path) -> Result<PathBuf, BootstrapError> {
        let path = dir.join(BOOTSTRAP_FILE);
        let text = self.to_yaml()?;
        std::fs::write(&path, text).map_err(|source| BootstrapError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }
}

/// The tag that names a cluster whole in its stats, even with dots in its name (see the
/// module doc).
pub const CLUSTER_NAME_TAG_REGEX: &str = r"^(?:cluster)\.((.+?(\..+?\.svc\.cluster\.local)?)\.)";

/// Envoy's default tags plus [`CLUSTER_NAME_TAG_REGEX`] as `envoy.cluster_name`.
fn stats_config() -> Value {
    json!({
        "use_all_default_tags": true,
        "stats_tags": [{"tag_name": "envoy.cluster_name", "regex": CLUSTER_NAME_TAG_REGEX}],
    })
}

/// HTTP/2 for a gRPC cluster.
fn http2_options() -> Value {
    json!({
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}},
        },
    })
}

/// Istio's `sds-grpc`: a STATIC h2 cluster whose one endpoint is the agent's Unix socket.
fn sds_cluster(path: &Path) -> Value {
    let endpoint = json!({"endpoint": {"address": {"pipe": {"path": path.display().to_string()}}}});
    json!({
        "name": SDS_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": http2_options(),
        "load_assignment": {"cluster_name": SDS_CLUSTER, "endpoints": [{"lb_endpoints": [endpoint]}]},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mast_model::ProxyNode;

    fn ports_bootstrap() -> Bootstrap {
        let mut node = NodeSpec::sidecar("reviews-v1", "bookinfo");
        node.labels = BTreeMap::from([
            ("app".into(), "reviews".into()),
            ("version".into(), "v1".into()),
        ]);
        node.service_account = Some("bookinfo-reviews".into());
        node.capture = CaptureMode::Ports {
            outbound: 15101,
            inbound: BTreeMap::from([(9080, 15106), (9090, 15107)]),
        };
        Bootstrap {
            node,
            admin_port: 15000,
            xds: "127.0.0.1:15010".parse().unwrap(),
            api: AdsApi::Sotw,
            initial_fetch_timeout: Duration::from_secs(1),
            sds_socket: Some("/w/sds.sock".into()),
        }
    }

    #[test]
    fn node_id_and_cluster_follow_istio() {
        let b = ports_bootstrap();
        assert_eq!(
            b.node.node_id(),
            "sidecar~127.0.0.1~reviews-v1.bookinfo~bookinfo.svc.cluster.local"
        );
        assert_eq!(b.node.cluster(), "reviews-v1.bookinfo");
        let mut gw = NodeSpec::sidecar("ingress", "istio-system");
        gw.node_type = NodeType::Router;
        assert_eq!(
            gw.node_id(),
            "router~127.0.0.1~ingress.istio-system~istio-system.svc.cluster.local"
        );
    }

    #[test]
    fn metadata_reads_back_as_the_same_proxy() {
        let b = ports_bootstrap();
        let parsed = ProxyNode::parse(&b.node.node_id(), &b.node.metadata()).unwrap();
        assert_eq!(parsed.workload, "reviews-v1");
        assert_eq!(parsed.namespace, "bookinfo");
        assert_eq!(parsed.labels["version"], "v1");
        assert_eq!(parsed.service_account, "bookinfo-reviews");
        assert_eq!(parsed.capture, b.node.capture);
        assert_eq!(parsed.metadata["CLUSTER_ID"], "Kubernetes");
        assert_eq!(parsed.metadata["MESH_ID"], "cluster.local");
    }

    #[test]
    fn yaml_keeps_numeric_looking_strings_as_strings() {
        // Envoy turns YAML into a protobuf Struct: an unquoted 15101 would arrive as a number
        // and ProxyNode would not read it.
        let mut b = ports_bootstrap();
        b.node.labels.insert("version".into(), "1.10".into());
        b.node.labels.insert("flag".into(), "true".into());
        b.node.labels.insert("tricky".into(), "a: \"b\" # c".into());
        b.node.labels.insert("empty".into(), String::new());
        let yaml = b.to_yaml().unwrap();
        let back: Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back, b.to_json(), "{yaml}");
        assert_eq!(
            back["node"]["metadata"]["MAST_OUTBOUND_PORT"],
            json!("15101")
        );
        let parsed = ProxyNode::parse(
            back["node"]["id"].as_str().unwrap(),
            &back["node"]["metadata"],
        )
        .unwrap();
        assert_eq!(parsed.capture, b.node.capture);
    }

    #[test]
    fn ads_and_xds_cluster() {
        let mut b = ports_bootstrap();
        b.api = AdsApi::Delta;
        b.xds = "mastd.mast-system:15010".parse().unwrap();
        let j = b.to_json();
        let ads = &j["dynamic_resources"]["ads_config"];
        assert_eq!(ads["api_type"], "DELTA_GRPC");
        assert_eq!(ads["set_node_on_first_message_only"], true);
        let back_off = &ads["grpc_services"][0]["envoy_grpc"]["retry_policy"]["retry_back_off"];
        assert_eq!(back_off["max_interval"], "8s");
        assert_eq!(
            j["admin"]["socket_options"][0]["name"], 15,
            "SO_REUSEPORT on the admin socket"
        );
        assert_eq!(
            j["dynamic_resources"]["cds_config"]["initial_fetch_timeout"],
            "1.000s"
        );
        let cluster = &j["static_resources"]["clusters"][0];
        assert_eq!(cluster["type"], "STRICT_DNS");
        let sa = &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
            ["socket_address"];
        assert_eq!(sa["address"], "mastd.mast-system");
        assert_eq!(sa["port_value"], 15010);
        assert_eq!(
            j["admin"]["address"]["socket_address"]["address"],
            "127.0.0.1"
        );
        let sds = &j["static_resources"]["clusters"][1];
        assert_eq!(sds["name"], "sds-grpc");
        assert_eq!(sds["type"], "STATIC");
        assert_eq!(
            sds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["pipe"]
                ["path"],
            "/w/sds.sock"
        );
        assert!(
            sds["typed_extension_protocol_options"]
                .to_string()
                .contains("http2_protocol_options")
        );
        b.sds_socket = None;
        assert_eq!(
            b.to_json()["static_resources"]["clusters"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn stats_tag_names_clusters_whole() {
        let j = ports_bootstrap().to_json();
        let tag = &j["stats_config"]["stats_tags"][0];
        assert_eq!(tag["tag_name"], "envoy.cluster_name");
        assert_eq!(tag["regex"], CLUSTER_NAME_TAG_REGEX);
        assert_eq!(j["stats_config"]["use_all_default_tags"], true);
    }

    #[test]
    fn xds_address_parsing() {
        assert_eq!("[::1]:15010".parse::<XdsAddress>().unwrap().host, "::1");
        assert!("15010".parse::<XdsAddress>().is_err());
        assert!(":15010".parse::<XdsAddress>().is_err());
        assert!("host:port".parse::<XdsAddress>().is_err());
    }
}
