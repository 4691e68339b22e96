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
    let port = PortDigits::new(port);
    concat(&["outbound|", port.as_str(), "|", subset, "|", host.as_str()])
}

/// `inbound|<port>||`.
pub fn inbound_cluster(port: u16) -> String {
    concat(&["inbound|", PortDigits::new(port).as_str(), "||"])
}

/// The parts joined, in one allocation of the right size (`format!` grows its buffer as it
/// goes, and names are built by the thousand).
pub(crate) fn concat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.push_str(p);
    }
    out
}

/// `<name>:<port>`, in one allocation.
pub(crate) fn with_port(name: &str, port: u16) -> String {
    concat(&[name, ":", PortDigits::new(port).as_str()])
}

/// The decimal digits of a port, without allocating.
pub(crate) struct PortDigits {
    buf: [u8; 5],
    start: usize,
}

impl PortDigits {
    /// The digits of `port`.
    pub(crate) fn new(mut port: u16) -> Self {
        let mut buf = [b'0'; 5];
        let mut start = buf.len();
        loop {
            start -= 1;
            // A digit: `port % 10` is below 10.
            buf[start] = b'0' + u8::try_from(port % 10).unwrap_or(0);
            port /= 10;
            if port == 0 {
                break;
            }
        }
        Self { buf, start }
    }

    /// The digits as text.
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[self.start..]).unwrap_or_default()
    }
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
        for port in [0, 1, 9, 10, 80, 443, 9080, 15001, 65535] {
            assert_eq!(PortDigits::new(port).as_str(), port.to_string());
            assert_eq!(with_port("a.b", port), format!("a.b:{port}"));
            assert_eq!(
                outbound_cluster(port, "v1", &h),
                format!("outbound|{port}|v1|{h}")
            );
        }
    }
}
