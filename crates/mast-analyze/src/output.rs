//! istioctl's output formats for analysis: `log` lines, and `json`/`yaml` arrays of
//! `{code, level, origin, reference, message, documentationUrl}`.

use serde::Serialize;

use crate::Message;

/// One message in istioctl's structured shape.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Structured {
    /// `IST0101`.
    pub code: String,
    /// `Error`, `Warning` or `Info`.
    pub level: String,
    /// `VirtualService default/reviews`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// `file.yaml:12`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The text.
    pub message: String,
    /// The code's documentation page.
    pub documentation_url: String,
}

/// The structured form of each message.
pub fn structured(messages: &[Message]) -> Vec<Structured> {
    messages
        .iter()
        .map(|m| Structured {
            code: m.kind.code.to_owned(),
            level: m.kind.level.as_str().to_owned(),
            origin: m.origin(),
            reference: m.reference.as_ref().map(ToString::to_string),
            message: m.text.clone(),
            documentation_url: format!("{}?ref=mastctl", m.kind.documentation_url()),
        })
        .collect()
}
