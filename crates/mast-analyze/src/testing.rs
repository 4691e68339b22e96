//! Test support: load YAML and run every analyzer over it.

use crate::{Message, Options, analyze};

/// Loads `yaml` as `t.yaml` (all documents must decode) and analyzes every namespace.
pub(crate) fn run(yaml: &str) -> Vec<Message> {
    let out = mast_config::load_str(yaml, "t.yaml", &mast_config::LoadOptions::default());
    assert!(
        out.diagnostics.is_empty(),
        "load failed: {:?}",
        out.diagnostics
    );
    analyze(&out.resources, &[], &Options::default())
}

/// The codes of `msgs`, in order.
pub(crate) fn codes(msgs: &[Message]) -> Vec<&'static str> {
    msgs.iter().map(|m| m.kind.code).collect()
}

/// Only the messages with `code`.
pub(crate) fn only<'a>(msgs: &'a [Message], code: &str) -> Vec<&'a Message> {
    msgs.iter().filter(|m| m.kind.code == code).collect()
}
