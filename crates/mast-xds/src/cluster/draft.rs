//! A cluster being built together with its upstream `HttpProtocolOptions` (Istio's
//! `clusterWrapper`): the options are packed into `typed_extension_protocol_options` only at
//! the end, once every step (protocol, connection pool, TLS) has had its say.
//!
//! Upstream protocol (Istio's `setUpstreamProtocol`): HTTP/2 and gRPC ports get
//! `explicit_http_config.http2_protocol_options`; ports whose protocol was not declared get
//! `use_downstream_protocol_config` (HTTP/1.1 and HTTP/2 follow the client) on sidecars; plain
//! HTTP ports get nothing (Envoy's default is HTTP/1.1) unless another setting needs the
//! options message, in which case `explicit_http_config.http_protocol_options {}` is written,
//! as Istio does.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbPolicy,
};
use envoy_types::pb::envoy::config::core::v3::{
    Http1ProtocolOptions, Http2ProtocolOptions, HttpProtocolOptions as CommonHttpProtocolOptions,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    ExplicitHttpConfig, UpstreamProtocolOptions, UseDownstreamHttpConfig,
    explicit_http_config::ProtocolConfig,
};
use mast_model::{NodeType, Protocol};

use super::pb;

/// The key of the upstream HTTP options in `typed_extension_protocol_options`.
pub(crate) const HTTP_PROTOCOL_OPTIONS_KEY: &str =
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Istio's default connect timeout (MeshConfig `connectTimeout`).
pub(crate) const CONNECT_TIMEOUT_SECS: i64 = 10;

/// A cluster under construction.
#[derive(Debug, Clone, Default)]
pub(crate) struct Draft {
    /// The cluster.
    pub cluster: Cluster,
    /// Upstream HTTP options, packed by [`Draft::finish`] when present.
    pub http: Option<HttpProtocolOptions>,
}

impl Draft {
    /// A cluster named `name` of discovery type `kind`, with the default connect timeout and an
    /// empty `common_lb_config`.
    pub(crate) fn new(name: &str, kind: DiscoveryType) -> Self {
        let cluster = Cluster {
            name: name.to_owned(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(kind as i32)),
            connect_timeout: Some(pb::seconds(CONNECT_TIMEOUT_SECS)),
            common_lb_config: Some(Default::default()),
            ..Default::default()
        };
        Self {
            cluster,
            http: None,
        }
    }

    /// The discovery type.
    pub(crate) fn kind(&self) -> Option<DiscoveryType> {
        match self.cluster.cluster_discovery_type {
            Some(ClusterDiscoveryType::Type(t)) => DiscoveryType::try_from(t).ok(),
            _ => None,
        }
    }

    /// Sets the discovery type.
    pub(crate) fn set_kind(&mut self, kind: DiscoveryType) {
        self.cluster.cluster_discovery_type = Some(ClusterDiscoveryType::Type(kind as i32));
    }

    /// Sets the load balancing policy.
    pub(crate) fn set_lb(&mut self, lb: LbPolicy) {
        self.cluster.lb_policy = lb as i32;
    }

    /// The upstream HTTP options, created on first use.
    pub(crate) fn http_mut(&mut self) -> &mut HttpProtocolOptions {
        self.http.get_or_insert_with(HttpProtocolOptions::default)
    }

    /// `common_http_protocol_options`, created on first use.
    pub(crate) fn common_http_mut(&mut self) -> &mut CommonHttpProtocolOptions {
        self.http_mut()
            .common_http_protocol_options
            .get_or_insert_with(Default::default)
    }

    /// Makes the cluster speak HTTP/2 upstream.
    pub(crate) fn set_h2(&mut self) {
        self.http_mut().upstream_protocol_options = Some(
            UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(
                    Http2ProtocolOptions::default(),
                )),
            }),
        );
    }

    /// Makes the cluster use the client's protocol (HTTP/1.1 or HTTP/2) upstream.
    pub(crate) fn set_use_downstream_protocol(&mut self) {
        self.http_mut().upstream_protocol_options = Some(use_downstream_protocol());
    }

    /// Whether the cluster is set to HTTP/2 explicitly.
    pub(crate) fn is_h2(&self) -> bool {
        matches!(
            self.http
                .as_ref()
                .and_then(|h| h.upstream_protocol_options.as_ref()),
            Some(UpstreamProtocolOptions::ExplicitHttpConfig(
                ExplicitHttpConfig {
                    protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(_)),
                }
            ))
        )
    }

    /// The explicit HTTP/2 options, when the cluster is HTTP/2.
    pub(crate) fn h2_options_mut(&mut self) -> Option<&mut Http2ProtocolOptions> {
        match self.http.as_mut()?.upstream_protocol_options.as_mut()? {
            UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(h2)),
            }) => Some(h2),
            _ => None,
        }
    }

    /// Chooses the upstream protocol from the port's protocol.
    pub(crate) fn set_upstream_protocol(&mut self, protocol: Protocol, node: NodeType) {
        if protocol.is_http2() {
            self.set_h2();
        } else if protocol == Protocol::Unsupported && node == NodeType::Sidecar {
            self.set_use_downstream_protocol();
        }
    }

    /// The finished cluster: HTTP options (defaulting to explicit HTTP/1.1 when no protocol was
    /// chosen) packed under [`HTTP_PROTOCOL_OPTIONS_KEY`].
    pub(crate) fn finish(mut self) -> Cluster {
        if let Some(mut http) = self.http.take() {
            if http.upstream_protocol_options.is_none() {
                http.upstream_protocol_options = Some(UpstreamProtocolOptions::ExplicitHttpConfig(
                    ExplicitHttpConfig {
                        protocol_config: Some(ProtocolConfig::HttpProtocolOptions(
                            Http1ProtocolOptions::default(),
                        )),
                    },
                ));
            }
            self.cluster.typed_extension_protocol_options.insert(
                HTTP_PROTOCOL_OPTIONS_KEY.to_owned(),
                envoy_types::util::pack_any(http),
            );
        }
        self.cluster
    }
}

/// `use_downstream_protocol_config { http_protocol_options {}, http2_protocol_options {} }`.
pub(crate) fn use_downstream_protocol() -> UpstreamProtocolOptions {
    UpstreamProtocolOptions::UseDownstreamProtocolConfig(UseDownstreamHttpConfig {
        http_protocol_options: Some(Http1ProtocolOptions::default()),
        http2_protocol_options: Some(Http2ProtocolOptions::default()),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn options(c: &Cluster) -> Option<HttpProtocolOptions> {
        let any = c
            .typed_extension_protocol_options
            .get(HTTP_PROTOCOL_OPTIONS_KEY)?;
        assert_eq!(
            any.type_url,
            "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        );
        Some(HttpProtocolOptions::decode(any.value.as_slice()).unwrap())
    }

    #[test]
    fn protocol_per_port() {
        let mut d = Draft::new("c", DiscoveryType::Eds);
        d.set_upstream_protocol(Protocol::Grpc, NodeType::Sidecar);
        assert!(d.is_h2());
        let o = options(&d.finish()).unwrap();
        assert!(matches!(
            o.upstream_protocol_options,
            Some(UpstreamProtocolOptions::ExplicitHttpConfig(_))
        ));

        let mut d = Draft::new("c", DiscoveryType::Eds);
        d.set_upstream_protocol(Protocol::Http, NodeType::Sidecar);
        assert!(
            options(&d.finish()).is_none(),
            "plain HTTP uses Envoy's HTTP/1.1 default"
        );

        let mut d = Draft::new("c", DiscoveryType::Eds);
        d.set_upstream_protocol(Protocol::Unsupported, NodeType::Sidecar);
        let o = options(&d.finish()).unwrap();
        assert!(matches!(
            o.upstream_protocol_options,
            Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(_))
        ));

        let mut d = Draft::new("c", DiscoveryType::Eds);
        d.set_upstream_protocol(Protocol::Unsupported, NodeType::Router);
        assert!(
            options(&d.finish()).is_none(),
            "gateways do not follow the client protocol"
        );
    }

    #[test]
    fn common_options_default_to_explicit_http1() {
        let mut d = Draft::new("c", DiscoveryType::Eds);
        d.common_http_mut().idle_timeout = Some(pb::seconds(3));
        let o = options(&d.finish()).unwrap();
        assert!(matches!(
            o.upstream_protocol_options,
            Some(UpstreamProtocolOptions::ExplicitHttpConfig(
                ExplicitHttpConfig {
                    protocol_config: Some(ProtocolConfig::HttpProtocolOptions(_))
                }
            ))
        ));
        assert_eq!(
            o.common_http_protocol_options.unwrap().idle_timeout,
            Some(pb::seconds(3))
        );
    }
}
