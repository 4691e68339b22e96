//! Services as the mesh sees them, whatever declared them (a Kubernetes `Service`, a
//! `ServiceEntry`): a fully qualified host, ports with protocols, and the endpoints behind
//! each port (from `Endpoints`, `WorkloadEntry`, `ServiceEntry.endpoints`).

use std::collections::BTreeMap;

use mast_core::Hostname;

/// The application protocol of a port, from its name prefix (`http-web`), `appProtocol`, or
/// the declared protocol, as Istio decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// HTTP/1.1 (and h2c upgrades).
    Http,
    /// HTTP/2 with prior knowledge.
    Http2,
    /// gRPC (HTTP/2).
    Grpc,
    /// gRPC-Web (HTTP/1.1).
    GrpcWeb,
    /// TLS carrying HTTP, passed through by SNI.
    Https,
    /// Opaque TCP.
    Tcp,
    /// TLS, routed by SNI.
    Tls,
    /// UDP (not proxied).
    Udp,
    /// MongoDB, MySQL, Redis: treated as TCP.
    Mongo,
    /// MySQL: treated as TCP.
    Mysql,
    /// Redis: treated as TCP.
    Redis,
    /// Nothing declared: Istio would sniff; Mast treats it as TCP.
    Unsupported,
}

impl Protocol {
    /// Parses a protocol name as Istio does (case-insensitive); unknown names are `Unsupported`.
    pub fn parse(s: &str) -> Protocol {
        match s.to_ascii_lowercase().as_str() {
            "http" | "http_proxy" => Protocol::Http,
            "http2" => Protocol::Http2,
            "grpc" => Protocol::Grpc,
            "grpc-web" => Protocol::GrpcWeb,
            "https" => Protocol::Https,
            "tcp" => Protocol::Tcp,
            "tls" => Protocol::Tls,
            "udp" => Protocol::Udp,
            "mongo" => Protocol::Mongo,
            "mysql" => Protocol::Mysql,
            "redis" => Protocol::Redis,
            _ => Protocol::Unsupported,
        }
    }

    /// The protocol a Kubernetes service port declares: `appProtocol`, else the name prefix
    /// (`grpc-web` first, then up to the first `-`), else UDP/SCTP from `protocol`.
    pub fn from_port(name: &str, app_protocol: Option<&str>, l4: Option<&str>) -> Protocol {
        if l4.is_some_and(|p| p.eq_ignore_ascii_case("UDP")) {
            return Protocol::Udp;
        }
        if let Some(app) = app_protocol.filter(|a| !a.is_empty()) {
            return Protocol::parse(app);
        }
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("grpc-web") {
            return Protocol::GrpcWeb;
        }
        Protocol::parse(lower.split('-').next().unwrap_or(""))
    }

    /// Whether the port carries HTTP that the proxy routes by request (HTTP, HTTP/2, gRPC).
    pub fn is_http(self) -> bool {
        matches!(
            self,
            Protocol::Http | Protocol::Http2 | Protocol::Grpc | Protocol::GrpcWeb
        )
    }

    /// Whether the upstream speaks HTTP/2 (HTTP2, gRPC).
    pub fn is_http2(self) -> bool {
        matches!(self, Protocol::Http2 | Protocol::Grpc)
    }

    /// Whether the port is TLS routed by SNI (TLS, HTTPS).
    pub fn is_tls(self) -> bool {
        matches!(self, Protocol::Tls | Protocol::Https)
    }
}

/// One port of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The port's name (may be empty).
    pub name: String,
    /// The service port number clients use.
    pub port: u16,
    /// The protocol.
    pub protocol: Protocol,
}

/// How the proxy finds a service's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Endpoints are known addresses (EDS).
    Static,
    /// Endpoints are host names the proxy resolves (Envoy `STRICT_DNS`).
    Dns,
    /// No endpoints: traffic goes to the original destination (ServiceEntry `NONE`).
    Passthrough,
}

/// One endpoint behind a service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// IP address (or host name for DNS resolution).
    pub address: String,
    /// The port the endpoint listens on (the target port).
    pub port: u16,
    /// The workload's labels (subsets select on these).
    pub labels: BTreeMap<String, String>,
    /// The workload's namespace.
    pub namespace: String,
    /// The workload's name (pod, WorkloadEntry, local workload), empty when unknown.
    pub workload: String,
    /// The workload's service account, empty when unknown.
    pub service_account: String,
    /// Load-balancing weight (1 when unset).
    pub weight: u32,
    /// Whether it may receive traffic: `false` for a `WorkloadEntry` with health checks
    /// on that is not `Healthy` (Istio sends such endpoints to no proxy). An unhealthy
    /// endpoint still gives its own proxy its inbound listeners.
    pub healthy: bool,
}

/// A service known to the mesh.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Fully qualified host (`reviews.default.svc.cluster.local`, `httpbin.org`).
    pub hostname: Hostname,
    /// Namespace of the declaring resource.
    pub namespace: String,
    /// Name of the declaring resource.
    pub name: String,
    /// Ports, in declaration order.
    pub ports: Vec<ServicePort>,
    /// Virtual IPs (Kubernetes ClusterIP, ServiceEntry addresses); may be empty.
    pub addresses: Vec<String>,
    /// Namespaces the service is visible to (`exportTo`): empty means everywhere.
    pub export_to: Vec<String>,
    /// Whether the service is outside the mesh (ServiceEntry `MESH_EXTERNAL`).
    pub mesh_external: bool,
    /// How endpoints are found.
    pub resolution: Resolution,
    /// The selector of its workloads (Kubernetes Service selector, ServiceEntry
    /// workloadSelector); empty when it has none.
    pub selector: BTreeMap<String, String>,
    /// Endpoints per service port number.
    pub endpoints: BTreeMap<u16, Vec<Endpoint>>,
}

impl Service {
    /// The port with this number.
    pub fn port(&self, number: u16) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.port == number)
    }

    /// The endpoints behind a service port (empty when none).
    pub fn endpoints_for(&self, port: u16) -> &[Endpoint] {
        self.endpoints.get(&port).map_or(&[], Vec::as_slice)
    }

    /// Whether the service can be seen from namespace `ns` (`exportTo`: `*`, `.`, a name).
    pub fn visible_from(&self, ns: &str) -> bool {
        self.export_to.is_empty()
            || self
                .export_to
                .iter()
                .any(|e| e == "*" || e == ns || (e == "." && ns == self.namespace))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_from_port_names() {
        assert_eq!(Protocol::from_port("http-web", None, None), Protocol::Http);
        assert_eq!(
            Protocol::from_port("grpc-web-x", None, None),
            Protocol::GrpcWeb
        );
        assert_eq!(
            Protocol::from_port("web", Some("http2"), None),
            Protocol::Http2
        );
        assert_eq!(Protocol::from_port("dns", None, Some("UDP")), Protocol::Udp);
        assert_eq!(
            Protocol::from_port("web", None, None),
            Protocol::Unsupported
        );
        assert!(Protocol::Grpc.is_http() && Protocol::Grpc.is_http2());
    }
}
