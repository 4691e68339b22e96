//! YAML for scenarios: how a local upstream becomes a mesh endpoint. A Kubernetes `Service`
//! (namespace `default`, selector `app: <service>`) plus one `WorkloadEntry` per upstream
//! (`address: 127.0.0.1`, labels `app: <service>` and `version: <upstream name>`, `ports`
//! mapping the service port's name to the upstream's port) is what a Pod would be in a
//! cluster. Scenario-specific resources (VirtualService, DestinationRule, …) are written
//! out in the scenarios themselves, as users would write them.

use mast_test_support::{EchoServer, TcpEchoServer};

/// The namespace every scenario's resources live in (the client's namespace).
pub const NAMESPACE: &str = "default";

/// A Kubernetes Service `name` in [`NAMESPACE`] selecting `app: <name>`, with `ports` given
/// as (port name, port number); the name gives the protocol (`http…`, `tcp…`).
pub fn service(name: &str, ports: &[(&str, u16)]) -> String {
    let ports: String = ports
        .iter()
        .map(|(port_name, number)| format!("  - name: {port_name}\n    port: {number}\n"))
        .collect();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {NAMESPACE}\n\
         spec:\n  selector:\n    app: {name}\n  ports:\n{ports}"
    )
}

/// A WorkloadEntry `<service>-<version>` on 127.0.0.1 with labels `app: <service>` and
/// `version: <version>`, serving the service's ports `ports` (port name → local port).
pub fn workload(service: &str, version: &str, ports: &[(&str, u16)]) -> String {
    let ports: String = ports
        .iter()
        .map(|(port_name, number)| format!("    {port_name}: {number}\n"))
        .collect();
    format!(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  \
         name: {service}-{version}\n  namespace: {NAMESPACE}\nspec:\n  address: 127.0.0.1\n  \
         labels:\n    app: {service}\n    version: {version}\n  ports:\n{ports}"
    )
}

/// An HTTP service on port 80 (port name `http`) whose endpoints are `upstreams`, each
/// labelled with its name as `version`.
pub fn http_service(name: &str, upstreams: &[&EchoServer]) -> String {
    http_service_on(name, &[("http", 80)], upstreams)
}

/// An HTTP service with several ports; every port of every upstream is the echo server's one
/// port.
pub fn http_service_on(name: &str, ports: &[(&str, u16)], upstreams: &[&EchoServer]) -> String {
    let mut parts = vec![service(name, ports)];
    for upstream in upstreams {
        let mapped: Vec<(&str, u16)> = ports.iter().map(|(n, _)| (*n, upstream.port())).collect();
        parts.push(workload(name, upstream.name(), &mapped));
    }
    docs(&parts)
}

/// A TCP service on `port` (port name `tcp`) whose one endpoint is `upstream`.
pub fn tcp_service(name: &str, port: u16, upstream: &TcpEchoServer) -> String {
    docs(&[
        service(name, &[("tcp", port)]),
        workload(name, upstream.name(), &[("tcp", upstream.port())]),
    ])
}

/// Joins YAML documents with `---`.
pub fn docs<S: AsRef<str>>(parts: &[S]) -> String {
    parts
        .iter()
        .map(|p| p.as_ref().trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n---\n")
        + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_and_workload_render() {
        let s = service("reviews", &[("http", 80), ("tcp-db", 9000)]);
        assert!(s.contains("name: reviews\n"));
        assert!(s.contains("  - name: tcp-db\n    port: 9000\n"));
        let w = workload("reviews", "v1", &[("http", 4242)]);
        assert!(w.contains("name: reviews-v1\n"));
        assert!(w.contains("    version: v1\n"));
        assert!(w.contains("    http: 4242\n"));
        assert_eq!(docs(&["a\n", "b"]), "a\n---\nb\n");
    }
}
