//! Cross-resource analysis of Istio configuration, as `istioctl analyze` does it: each
//! analyzer looks at the whole set of resources and reports messages with Istio's codes
//! (IST0101 …), levels and texts.
//!
//! Owns: the message catalog ([`messages`]), the analysis context with its indexes
//! ([`context`]), the analyzers ([`analyzers`]), and istioctl's output formats ([`output`]).

pub mod analyzers;
pub mod context;
pub mod messages;
pub mod output;
#[cfg(test)]
mod testing;

pub use context::Context;
pub use messages::{Message, MessageType};

use mast_config::{Diagnostic, Resource};

/// What to analyze and how.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only report messages about this namespace (`None`: all namespaces, as `-A`).
    pub namespace: Option<String>,
}

/// One analyzer: looks at the whole context and reports messages.
pub trait Analyzer: Send + Sync {
    /// A short name, as in `virtualservice.DestinationHostAnalyzer`.
    fn name(&self) -> &'static str;
    /// Reports what it finds.
    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>);
}

/// Runs schema validation (IST0106/IST0133 for every resource and every load failure) and
/// every analyzer, then filters by namespace and sorts as istioctl does.
pub fn analyze(
    resources: &[Resource],
    load_failures: &[Diagnostic],
    opts: &Options,
) -> Vec<Message> {
    let ctx = Context::new(resources);
    let mut out = Vec::new();
    for d in load_failures {
        out.push(Message::from_load_failure(d));
    }
    for a in analyzers::all() {
        a.analyze(&ctx, &mut out);
    }
    if let Some(ns) = &opts.namespace {
        out.retain(|m| m.in_namespace(ns));
    }
    out.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    out.dedup_by(|a, b| a.sort_key() == b.sort_key());
    out
}
