//! Istio's `virtualservice.DestinationRuleAnalyzer`: a route or mirror destination that
//! names a subset needs a DestinationRule for its host that defines that subset (IST0101
//! `host+subset in destinationrule` / `mirror+subset in destinationrule`).
//!
//! Hosts are compared qualified (the destination's in the VirtualService's namespace, the
//! rule's in its own). Where no rule names the host exactly, a rule with a wildcard host
//! covering it counts, as the proxy would apply it.

use mast_config::Resource;
use mast_core::Hostname;

use super::{
    AnnotatedDestination, mirror_destinations, not_found, route_destinations, virtual_services,
};
use crate::context::resolve;
use crate::messages::REFERENCED_RESOURCE_NOT_FOUND;
use crate::{Analyzer, Context, Message};

/// Checks that the subsets VirtualServices route to are defined.
pub(super) struct DestinationRuleAnalyzer;

/// A DestinationRule's qualified host and the names of its subsets.
struct RuleSubsets<'a> {
    host: Hostname,
    subsets: Vec<&'a str>,
}

impl Analyzer for DestinationRuleAnalyzer {
    fn name(&self) -> &'static str {
        "virtualservice.DestinationRuleAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let rules: Vec<RuleSubsets<'_>> = ctx
            .of_kind("DestinationRule")
            .filter_map(|r| r.as_destination_rule().map(|dr| (r, dr)))
            .filter(|(_, dr)| !dr.host.is_empty())
            .map(|(r, dr)| RuleSubsets {
                host: resolve(&dr.host, r.namespace()),
                subsets: dr.subsets.iter().map(|s| s.name.as_str()).collect(),
            })
            .collect();
        for (r, vs) in virtual_services(ctx) {
            for d in route_destinations(vs)
                .into_iter()
                .chain(mirror_destinations(vs))
            {
                check(r, &d, &rules, out);
            }
        }
    }
}

fn check(
    r: &Resource,
    d: &AnnotatedDestination<'_>,
    rules: &[RuleSubsets<'_>],
    out: &mut Vec<Message>,
) {
    let subset = d.dest.subset.as_str();
    if subset.is_empty() {
        return;
    }
    let host = resolve(&d.dest.host, r.namespace());
    let exact: Vec<&RuleSubsets<'_>> = rules.iter().filter(|rule| rule.host == host).collect();
    let candidates = if exact.is_empty() {
        rules
            .iter()
            .filter(|rule| rule.host.is_wildcard() && host.subset_of(&rule.host))
            .collect()
    } else {
        exact
    };
    if candidates.iter().any(|rule| rule.subsets.contains(&subset)) {
        return;
    }
    let reftype = if d.mirror {
        "mirror+subset in destinationrule"
    } else {
        "host+subset in destinationrule"
    };
    let value = format!("{}+{subset}", d.dest.host);
    out.push(Message::new(
        REFERENCED_RESOURCE_NOT_FOUND,
        r,
        &d.at("subset"),
        not_found(reftype, &value),
    ));
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{line, service, vs};
    use crate::testing::{only, run};

    fn dr(ns: &str, host: &str, subsets: &[&str]) -> String {
        let mut s = format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: dr-{ns}\n  namespace: {ns}\nspec:\n  host: {host}\n  subsets:\n"
        );
        for name in subsets {
            s.push_str(&format!(
                "  - name: {name}\n    labels: {{version: {name}}}\n"
            ));
        }
        s.push_str("---\n");
        s
    }

    fn to_subset(host: &str, subset: &str) -> String {
        format!(
            "  http:\n  - route:\n    - destination:\n        host: {host}\n        subset: {subset}\n"
        )
    }

    fn subset_messages(yaml: &str) -> Vec<(String, u32)> {
        let msgs = run(yaml);
        only(&msgs, "IST0101")
            .iter()
            .map(|m| (m.text.clone(), line(m)))
            .collect()
    }

    #[test]
    fn missing_subset() {
        let svc = service("reviews", "default", &[80], "");
        let yaml = format!(
            "{svc}{}{}{}",
            dr("default", "reviews", &["v1", "v2"]),
            vs("r", "default"),
            to_subset("reviews", "v3")
        );
        let expected = r#"Referenced host+subset in destinationrule not found: "reviews+v3""#;
        assert_eq!(subset_messages(&yaml), vec![(expected.to_owned(), 34)]);
    }

    #[test]
    fn defined_subsets() {
        let svc = service("reviews", "default", &[80], "");
        // Short and qualified names on either side, rule in another namespace.
        for (rule, dest) in [
            (dr("default", "reviews", &["v1"]), "reviews"),
            (
                dr("default", "reviews.default.svc.cluster.local", &["v1"]),
                "reviews",
            ),
            (
                dr("other", "reviews.default.svc.cluster.local", &["v1"]),
                "reviews.default.svc.cluster.local",
            ),
            (
                dr("default", "\"*.default.svc.cluster.local\"", &["v1"]),
                "reviews",
            ),
        ] {
            let yaml = format!("{svc}{rule}{}{}", vs("r", "default"), to_subset(dest, "v1"));
            assert!(subset_messages(&yaml).is_empty(), "{rule}");
        }
        // A short name in another namespace is another host.
        let yaml = format!(
            "{svc}{}{}{}",
            dr("other", "reviews", &["v1"]),
            vs("r", "default"),
            to_subset("reviews", "v1")
        );
        assert_eq!(subset_messages(&yaml).len(), 1);
        // An exact rule wins over a wildcard one.
        let yaml = format!(
            "{svc}{}{}{}{}",
            dr("default", "reviews", &["v2"]),
            dr("other", "\"*.default.svc.cluster.local\"", &["v1"]),
            vs("r", "default"),
            to_subset("reviews", "v1")
        );
        assert_eq!(subset_messages(&yaml).len(), 1);
    }

    #[test]
    fn mirror_subset() {
        let svc = service("reviews", "default", &[80], "");
        let routes = "  http:\n  - route:\n    - destination:\n        host: reviews\n        subset: v1\n    mirror:\n      host: reviews\n      subset: v9\n";
        let yaml = format!(
            "{svc}{}{}{routes}",
            dr("default", "reviews", &["v1"]),
            vs("m", "default")
        );
        let found = subset_messages(&yaml);
        assert_eq!(
            found,
            vec![(
                r#"Referenced mirror+subset in destinationrule not found: "reviews+v9""#.to_owned(),
                35
            )]
        );
    }
}
