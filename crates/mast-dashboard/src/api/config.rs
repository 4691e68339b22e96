//! `/api/config`: the resources served and every message about the configuration — the
//! store's load and validation diagnostics (IST0106 errors, IST0133 warnings, with file:line
//! and field) and the analyzers' messages (`mast_analyze::analyze`, as `mastctl analyze`
//! reports them). Messages are computed once per store state.

use std::sync::{Arc, Weak};

use mast_config::Level;
use mast_registry::StoreState;
use parking_lot::Mutex;
use serde::Serialize;

/// One served resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceJson {
    /// `VirtualService`, …
    pub kind: String,
    /// `networking.istio.io/v1`, …
    pub api_version: String,
    /// Its namespace (empty for cluster-scoped kinds).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `file:line`.
    pub origin: String,
}

/// One message about the configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageJson {
    /// Istio's message code (`IST0101`, …).
    pub code: Option<&'static str>,
    /// `Error`, `Warning` or `Info`.
    pub level: &'static str,
    /// What is wrong.
    pub message: String,
    /// `Kind namespace/name`, when about one resource.
    pub resource: Option<String>,
    /// `file:line`, when known.
    pub origin: Option<String>,
    /// The field path, when known.
    pub field: Option<String>,
}

/// The `/api/config` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigJson {
    /// The store's generation.
    pub generation: u64,
    /// The resources served.
    pub resources: Vec<ResourceJson>,
    /// Every message, errors first.
    pub messages: Arc<Vec<MessageJson>>,
}

/// The `/api/config` body for a store state.
pub fn config(state: &Arc<StoreState>) -> ConfigJson {
    ConfigJson {
        generation: state.generation,
        resources: state
            .resources
            .iter()
            .map(|r| ResourceJson {
                kind: r.kind.clone(),
                api_version: r.api_version.clone(),
                namespace: r.namespace().to_owned(),
                name: r.name().to_owned(),
                origin: r.origin.to_string(),
            })
            .collect(),
        messages: messages(state),
    }
}

/// The last state's messages, kept while that state is current.
type Cached = Option<(Weak<StoreState>, Arc<Vec<MessageJson>>)>;
static CACHE: Mutex<Cached> = Mutex::new(None);

/// Every message about a store state (computed once per state).
pub fn messages(state: &Arc<StoreState>) -> Arc<Vec<MessageJson>> {
    if let Some((weak, msgs)) = &*CACHE.lock()
        && std::ptr::eq(weak.as_ptr(), Arc::as_ptr(state))
    {
        return msgs.clone();
    }
    let msgs = Arc::new(compute(state));
    *CACHE.lock() = Some((Arc::downgrade(state), msgs.clone()));
    msgs
}

fn compute(state: &StoreState) -> Vec<MessageJson> {
    let mut out: Vec<MessageJson> = state
        .diagnostics
        .iter()
        .map(|d| MessageJson {
            code: Some(if d.level == Level::Error {
                mast_analyze::messages::SCHEMA_VALIDATION_ERROR.code
            } else {
                mast_analyze::messages::SCHEMA_WARNING.code
            }),
            level: d.level.as_str(),
            message: d.message.clone(),
            resource: d.resource.as_ref().map(ToString::to_string),
            origin: d.origin.as_ref().map(ToString::to_string),
            field: d.field.clone(),
        })
        .collect();
    let analyzed = mast_analyze::analyze(&state.resources, &[], &mast_analyze::Options::default());
    out.extend(analyzed.into_iter().map(|m| MessageJson {
        code: Some(m.kind.code),
        level: m.level().as_str(),
        message: m.text.clone(),
        resource: m.origin(),
        origin: m.reference.as_ref().map(ToString::to_string),
        field: None,
    }));
    out.sort_by_key(|m| std::cmp::Reverse(level_rank(m.level)));
    out
}

fn level_rank(level: &str) -> u8 {
    match level {
        "Error" => 2,
        "Warning" => 1,
        _ => 0,
    }
}
