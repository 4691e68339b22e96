//! HCM `tracing` → [`TraceConfig`]: the sampling rates (`client_sampling`,
//! `random_sampling`, `overall_sampling`, Envoy's defaults 100 %), `max_path_tag_length`
//! (default 256), `custom_tags` (literal, environment, request header), and the tracer
//! ([`Provider`]), `spawn_upstream_span`. Fields mast-proxy cannot honour (`operation`,
//! metadata and formatter tags, other tracers) are refused.

use std::sync::{Arc, OnceLock};

use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing;
use envoy_types::pb::envoy::r#type::tracing::v3::custom_tag::Type as TagType;
use envoy_types::pb::envoy::r#type::v3::Percent;
use http::HeaderName;

use super::decision::Sampling;
use super::provider::Provider;
use super::reporter::Reporter;
use super::stats::HcmCounters;
use crate::cluster::ClusterManager;

type Failure = (String, String);

fn fail(field: &str, reason: impl Into<String>) -> Failure {
    (field.to_owned(), reason.into())
}

/// Envoy's default `max_path_tag_length`.
pub const DEFAULT_MAX_PATH_TAG_LENGTH: usize = 256;

/// A span tag from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomTag {
    /// A fixed value (`literal`, or `environment` read once at conversion, as Envoy).
    Literal {
        /// The tag.
        tag: String,
        /// Its value.
        value: String,
    },
    /// A request header's value, else `default` (no tag when both are empty).
    Header {
        /// The tag.
        tag: String,
        /// The header.
        name: HeaderName,
        /// The value when the header is absent.
        default: String,
    },
}

/// A connection manager's tracing configuration.
#[derive(Debug)]
pub struct TraceConfig {
    /// The sampling rates.
    pub sampling: Sampling,
    /// `http.url` keeps at most this many characters of the path.
    pub max_path_tag_length: usize,
    /// Tags added to every span.
    pub custom_tags: Vec<CustomTag>,
    /// The tracer; `None`: decisions are made (and packed in `x-request-id`) but no span.
    pub provider: Option<Provider>,
    /// `spawn_upstream_span`: a SERVER span here and a CLIENT child per upstream request.
    pub spawn_upstream_span: bool,
    /// The decision counters of this connection manager.
    pub counters: HcmCounters,
    /// The exporter, started with the first sampled span.
    reporter: OnceLock<Option<Arc<Reporter>>>,
}

/// A `Percent` (0–100) in basis points; absent → 100 %.
fn basis_points(p: Option<&Percent>, field: &str) -> Result<u32, Failure> {
    let Some(p) = p else {
        return Ok(10_000);
    };
    if !(0.0..=100.0).contains(&p.value) {
        return Err(fail(field, format!("{} is not within [0, 100]", p.value)));
    }
    Ok((p.value * 100.0).round() as u32)
}

impl TraceConfig {
    /// Converts `t`, the `tracing` of the connection manager with `stat_prefix` (fields
    /// relative to `tracing`).
    pub fn from_proto(t: &Tracing, stat_prefix: &str) -> Result<Self, Failure> {
        for (field, set) in [
            ("operation", !t.operation.is_empty()),
            ("upstream_operation", !t.upstream_operation.is_empty()),
        ] {
            if set {
                return Err(fail(field, "not supported by mast-proxy yet"));
            }
        }
        let sampling = Sampling {
            client: basis_points(t.client_sampling.as_ref(), "client_sampling")?,
            random: basis_points(t.random_sampling.as_ref(), "random_sampling")?,
            overall: basis_points(t.overall_sampling.as_ref(), "overall_sampling")?,
        };
        let provider = t
            .provider
            .as_ref()
            .map(Provider::from_proto)
            .transpose()
            .map_err(|(f, r)| (format!("provider.{f}"), r))?;
        Ok(Self {
            sampling,
            max_path_tag_length: t
                .max_path_tag_length
                .map_or(DEFAULT_MAX_PATH_TAG_LENGTH, |n| n.value as usize),
            custom_tags: custom_tags(t)?,
            spawn_upstream_span: t.spawn_upstream_span.is_some_and(|b| b.value),
            provider,
            counters: super::stats::global().hcm_counters(stat_prefix),
            reporter: OnceLock::new(),
        })
    }

    /// The exporter of this configuration's spans (started on first use, with `clusters`
    /// to reach the collector); `None` when the tracer has no collector.
    pub fn reporter(&self, clusters: &Arc<ClusterManager>) -> Option<&Arc<Reporter>> {
        self.reporter
            .get_or_init(|| {
                let provider = self.provider.as_ref()?;
                Reporter::shared(provider, clusters)
            })
            .as_ref()
    }
}

fn custom_tags(t: &Tracing) -> Result<Vec<CustomTag>, Failure> {
    let mut out = Vec::with_capacity(t.custom_tags.len());
    for (i, c) in t.custom_tags.iter().enumerate() {
        let at = |f: &str| format!("custom_tags[{i}].{f}");
        if c.tag.is_empty() {
            return Err(fail(&at("tag"), "required"));
        }
        let tag = c.tag.clone();
        let converted = match &c.r#type {
            Some(TagType::Literal(l)) => CustomTag::Literal {
                tag,
                value: l.value.clone(),
            },
            Some(TagType::Environment(e)) => CustomTag::Literal {
                tag,
                value: std::env::var(&e.name).unwrap_or_else(|_| e.default_value.clone()),
            },
            Some(TagType::RequestHeader(h)) => CustomTag::Header {
                tag,
                name: HeaderName::from_bytes(h.name.to_ascii_lowercase().as_bytes())
                    .map_err(|_| fail(&at("request_header.name"), "not a header name"))?,
                default: h.default_value.clone(),
            },
            Some(TagType::Metadata(_)) => {
                return Err(fail(&at("metadata"), "not supported by mast-proxy yet"));
            }
            Some(TagType::Value(_)) => {
                return Err(fail(&at("value"), "not supported by mast-proxy yet"));
            }
            None => return Err(fail(&at("type"), "required")),
        };
        out.push(converted);
    }
    Ok(out)
}
