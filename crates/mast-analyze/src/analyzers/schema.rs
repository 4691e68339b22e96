//! IST0106 SchemaValidationError and IST0133 SchemaWarning: each resource's own validation.

use mast_config::validate::validate;

use crate::messages::{SCHEMA_VALIDATION_ERROR, SCHEMA_WARNING};
use crate::{Analyzer, Context, Message};

/// Runs per-resource validation and reports its errors and warnings.
pub struct SchemaAnalyzer;

impl Analyzer for SchemaAnalyzer {
    fn name(&self) -> &'static str {
        "schema.ValidationAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        for r in ctx.resources {
            let report = validate(r);
            for e in &report.errors {
                out.push(Message::new(SCHEMA_VALIDATION_ERROR, r, &e.field, format!("Schema validation error: {}: {}", e.field, e.message)));
            }
            for w in &report.warnings {
                out.push(Message::new(SCHEMA_WARNING, r, &w.field, format!("Schema validation warning: {}: {}", w.field, w.message)));
            }
        }
    }
}
