//! Port protocols as Istio's `pkg/config/protocol` parses them (case-insensitive), and the
//! families validation cares about: HTTP-like, TLS-carrying and TCP-based.

/// A protocol Istio knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Http,
    HttpProxy,
    Http2,
    Grpc,
    GrpcWeb,
    Https,
    Tls,
    Tcp,
    Udp,
    Mongo,
    Redis,
    Mysql,
}

impl Protocol {
    /// Parses a protocol name in any case; `None` for names Istio does not support.
    pub(crate) fn parse(s: &str) -> Option<Protocol> {
        Some(match s.to_ascii_lowercase().as_str() {
            "http" => Protocol::Http,
            "http_proxy" => Protocol::HttpProxy,
            "http2" => Protocol::Http2,
            "grpc" => Protocol::Grpc,
            "grpc-web" => Protocol::GrpcWeb,
            "https" => Protocol::Https,
            "tls" => Protocol::Tls,
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "mongo" => Protocol::Mongo,
            "redis" => Protocol::Redis,
            "mysql" => Protocol::Mysql,
            _ => return None,
        })
    }

    /// HTTP/1.1, HTTP/2 and gRPC variants.
    pub(crate) fn is_http(self) -> bool {
        matches!(
            self,
            Protocol::Http
                | Protocol::HttpProxy
                | Protocol::Http2
                | Protocol::Grpc
                | Protocol::GrpcWeb
        )
    }

    /// HTTPS and TLS.
    pub(crate) fn is_tls(self) -> bool {
        matches!(self, Protocol::Https | Protocol::Tls)
    }

    /// Protocols carried over raw TCP as far as routing is concerned.
    pub(crate) fn is_tcp(self) -> bool {
        matches!(
            self,
            Protocol::Tcp
                | Protocol::Https
                | Protocol::Tls
                | Protocol::Mongo
                | Protocol::Redis
                | Protocol::Mysql
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_in_any_case() {
        assert_eq!(Protocol::parse("grpc-web"), Some(Protocol::GrpcWeb));
        assert_eq!(Protocol::parse("Https"), Some(Protocol::Https));
        assert_eq!(Protocol::parse(""), None);
        assert_eq!(Protocol::parse("HTTP3"), None);
        assert!(Protocol::parse("GRPC").is_some_and(Protocol::is_http));
        assert!(Protocol::parse("TLS").is_some_and(Protocol::is_tls));
        assert!(!Protocol::parse("HTTP").is_some_and(Protocol::is_tcp));
    }
}
