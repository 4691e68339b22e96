//! Istio's resource names, shared by every generator: `outbound|<port>|<subset>|<host>`,
//! `inbound|<port>||`, `BlackHoleCluster`, `PassthroughCluster`, `virtualOutbound`,
//! `virtualInbound`, `<ip>_<port>` / `0.0.0.0_<port>` listeners, RDS names (`"80"`).

use mast_core::Hostname;

/// The cluster that drops traffic (REGISTRY_ONLY).
pub const BLACKHOLE_CLUSTER: &str = "BlackHoleCluster";
/// The cluster that forwards to the original destination (ALLOW_ANY).
pub const PASSTHROUGH_CLUSTER: &str = "PassthroughCluster";
/// The cluster that serves inbound traffic to an unknown port (passthrough to the app).
pub const INBOUND_PASSTHROUGH_CLUSTER: &str = "InboundPassthroughCluster";
/// The outbound capture listener (15001).
pub const VIRTUAL_OUTBOUND: &str = "virtualOutbound";
/// The inbound capture listener (15006).
pub const VIRTUAL_INBOUND: &str = "virtualInbound";
/// Outbound capture port.
pub const OUTBOUND_CAPTURE_PORT: u16 = 15001;
/// Inbound capture port.
pub const INBOUND_CAPTURE_PORT: u16 = 15006;

/// `outbound|<port>|<subset>|<host>` (subset empty for the whole service).
pub fn outbound_cluster(port: u16, subset: &str, host: &Hostname) -> String {
    format!("outbound|{port}|{subset}|{host}")
}

/// `inbound|<port>||`.
pub fn inbound_cluster(port: u16) -> String {
    format!("inbound|{port}||")
}

/// The parts of an `outbound|port|subset|host` name.
pub fn parse_outbound_cluster(name: &str) -> Option<(u16, &str, &str)> {
    let mut parts = name.splitn(4, '|');
    if parts.next()? != "outbound" {
        return None;
    }
    let port = parts.next()?.parse().ok()?;
    Some((port, parts.next()?, parts.next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names() {
        let h = Hostname::new_unchecked("reviews.default.svc.cluster.local");
        assert_eq!(
            outbound_cluster(9080, "v1", &h),
            "outbound|9080|v1|reviews.default.svc.cluster.local"
        );
        assert_eq!(
            parse_outbound_cluster("outbound|9080||a.b"),
            Some((9080, "", "a.b"))
        );
        assert_eq!(inbound_cluster(8080), "inbound|8080||");
    }
}
