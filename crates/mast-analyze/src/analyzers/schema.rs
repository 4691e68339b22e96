//! IST0106 SchemaValidationError and IST0133 SchemaWarning: each resource's own validation.
//! Validation findings that Istio reports under codes of their own become IST0130
//! VirtualServiceUnreachableRule and IST0131 VirtualServiceIneffectiveMatch.

use mast_config::validate::{Finding, validate};

use crate::messages::{
    SCHEMA_VALIDATION_ERROR, SCHEMA_WARNING, VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
    VIRTUAL_SERVICE_UNREACHABLE_RULE,
};
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
                out.push(Message::new(
                    SCHEMA_VALIDATION_ERROR,
                    r,
                    &e.field,
                    format!("Schema validation error: {}: {}", e.field, e.message),
                ));
            }
            for w in &report.warnings {
                out.push(match &w.analysis {
                    Some(Finding::UnreachableRule { rule, reason }) => Message::new(VIRTUAL_SERVICE_UNREACHABLE_RULE, r, &w.field, format!("VirtualService rule {rule} not used ({reason}).")),
                    Some(Finding::IneffectiveMatch { rule, matchno, dup }) => Message::new(
                        VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
                        r,
                        &w.field,
                        format!("VirtualService rule {rule} match {matchno} is not used (duplicate/overlapping match in rule {dup})."),
                    ),
                    None => Message::new(SCHEMA_WARNING, r, &w.field, format!("Schema validation warning: {}: {}", w.field, w.message)),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{only, run};

    const VS: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: r\nspec:\n  hosts: [reviews]\n  http:\n";

    #[test]
    fn unreachable_rule_after_catch_all() {
        let yaml = format!(
            "{VS}  - route:\n    - destination: {{host: reviews}}\n  - match:\n    - uri: {{prefix: /a}}\n    route:\n    - destination: {{host: reviews}}\n"
        );
        let msgs = run(&yaml);
        let found = only(&msgs, "IST0130");
        assert_eq!(found.len(), 1, "{msgs:?}");
        assert_eq!(
            found[0].text,
            "VirtualService rule #1 not used (route without matches defined before)."
        );
        assert_eq!(found[0].reference.as_ref().map(|o| o.line), Some(10));
        assert!(
            only(&msgs, "IST0133").is_empty(),
            "findings are not also schema warnings"
        );
    }

    #[test]
    fn ineffective_duplicate_match() {
        let m =
            "  - match:\n    - uri: {exact: /a}\n    route:\n    - destination: {host: reviews}\n";
        let yaml = format!("{VS}{m}{m}  - route:\n    - destination: {{host: reviews}}\n");
        let msgs = run(&yaml);
        let found = only(&msgs, "IST0131");
        assert_eq!(found.len(), 1, "{msgs:?}");
        assert_eq!(
            found[0].text,
            "VirtualService rule #1 match #0 is not used (duplicate/overlapping match in rule #0)."
        );
        let clean = format!("{VS}{m}  - route:\n    - destination: {{host: reviews}}\n");
        assert!(only(&run(&clean), "IST0131").is_empty());
        assert!(only(&run(&clean), "IST0130").is_empty());
    }
}
