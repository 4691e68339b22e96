//! Warnings about rules that can never be used, as Istio's `analyzeUnreachable*Rules`
//! give them: a rule after a catch-all rule, a match identical to an earlier one, and (for
//! HTTP) a prefix match covered by an earlier, shorter prefix with the same conditions.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::networking::VirtualService;
use crate::networking::virtual_service::{HttpMatchRequest, HttpRoute};
use crate::types::StringMatch;
use crate::validate::{Finding, Report};

/// Adds the warnings for the HTTP, TCP and TLS rules of `spec`.
pub(super) fn analyze(spec: &VirtualService, r: &mut Report) {
    http_rules(&spec.http, r);
    l4_rules("tcp", spec.tcp.iter().map(|t| t.r#match.as_slice()), r);
    l4_rules("tls", spec.tls.iter().map(|t| t.r#match.as_slice()), r);
}

fn unused(r: &mut Report, field: String, rule: &str, reason: &str) {
    let finding = Finding::UnreachableRule {
        rule: rule.to_owned(),
        reason: reason.to_owned(),
    };
    r.warn_finding(
        field,
        format!("virtualService rule {rule} not used ({reason})"),
        finding,
    );
}

fn ineffective(r: &mut Report, field: String, rule: &str, matchno: &str, dup: &str) {
    let finding = Finding::IneffectiveMatch {
        rule: rule.to_owned(),
        matchno: matchno.to_owned(),
        dup: dup.to_owned(),
    };
    r.warn_finding(
        field,
        format!("virtualService rule {rule} match {matchno} is not used (duplicate/overlapping match in rule {dup})"),
        finding,
    );
}

fn rule_name(name: &str, n: usize) -> String {
    if name.is_empty() {
        format!("#{n}")
    } else {
        format!("{name:?}")
    }
}

/// The match as a comparable value, without its name.
fn key<T: Serialize>(m: &T) -> Value {
    let mut v = serde_json::to_value(m).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut v {
        o.remove("name");
    }
    v
}

fn http_rules(routes: &[HttpRoute], r: &mut Report) {
    let rules: Vec<Rule<'_, HttpMatchRequest>> = routes
        .iter()
        .enumerate()
        .map(|(n, rt)| Rule {
            name: rule_name(&rt.name, n),
            matches: &rt.r#match,
        })
        .collect();
    let first_seen = duplicates("http", &rules, |m, j| rule_name(&m.name, j), r);
    let prefixes: Vec<PrefixMatch> = first_seen
        .into_iter()
        .filter_map(|(n, j)| PrefixMatch::new(&rules[n].name, n, &rules[n].matches[j], j))
        .collect();
    overlapping(&prefixes, r);
}

fn l4_rules<'a, M: Serialize + 'a>(
    kind: &str,
    routes: impl Iterator<Item = &'a [M]>,
    r: &mut Report,
) {
    let rules: Vec<Rule<'_, M>> = routes
        .enumerate()
        .map(|(n, matches)| Rule {
            name: format!("#{n}"),
            matches,
        })
        .collect();
    duplicates(kind, &rules, |_, j| format!("#{j}"), r);
}

/// A rule as the duplicate check sees it: its display name and its matches.
struct Rule<'a, M> {
    name: String,
    matches: &'a [M],
}

/// Warns about rules after a catch-all rule and about matches equal (but for their name)
/// to earlier ones; returns `(rule, match)` of the matches seen first.
fn duplicates<M: Serialize>(
    kind: &str,
    rules: &[Rule<'_, M>],
    match_name: impl Fn(&M, usize) -> String,
    r: &mut Report,
) -> Vec<(usize, usize)> {
    let mut seen: Vec<(Value, usize, usize)> = Vec::new();
    let mut catch_all = false;
    for (n, rule) in rules.iter().enumerate() {
        let field = format!("spec.{kind}[{n}]");
        if rule.matches.is_empty() || catch_all {
            if catch_all {
                let reason = if rule.matches.is_empty() {
                    "only the last rule can have no matches"
                } else {
                    "route without matches defined before"
                };
                unused(r, field, &rule.name, reason);
            }
            catch_all = catch_all || rule.matches.is_empty();
            continue;
        }
        let mut dups = 0;
        for (j, m) in rule.matches.iter().enumerate() {
            let k = key(m);
            if let Some((_, d, _)) = seen.iter().find(|(v, _, _)| *v == k) {
                ineffective(
                    r,
                    format!("{field}.match[{j}]"),
                    &rule.name,
                    &match_name(m, j),
                    &rules[*d].name,
                );
                dups += 1;
            } else {
                seen.push((k, n, j));
            }
        }
        if dups == rule.matches.len() {
            unused(r, field, &rule.name, "all matches used by prior rules");
        }
    }
    seen.into_iter().map(|(_, n, j)| (n, j)).collect()
}

/// An HTTP match with a URI prefix, reduced to what the overlap check compares
/// (Istio's `OverlappingMatchValidationForHTTPRoute`).
struct PrefixMatch {
    field: String,
    rule: String,
    match_name: String,
    prefix: String,
    port: i64,
    method: String,
    authority: String,
    headers: BTreeMap<String, String>,
    query: BTreeMap<String, String>,
    without: BTreeMap<String, String>,
}

/// `exact:<v>`, `prefix:<v>` or empty (regexes are not compared).
fn exact_or_prefix(sm: Option<&StringMatch>) -> String {
    match sm {
        Some(StringMatch::Exact(e)) if !e.is_empty() => format!("exact:{e}"),
        Some(StringMatch::Prefix(p)) if !p.is_empty() => format!("prefix:{p}"),
        _ => String::new(),
    }
}

fn reduce(map: &BTreeMap<String, StringMatch>) -> BTreeMap<String, String> {
    map.iter()
        .map(|(k, v)| (k.clone(), exact_or_prefix(Some(v))))
        .collect()
}

impl PrefixMatch {
    fn new(rule: &str, n: usize, m: &HttpMatchRequest, j: usize) -> Option<Self> {
        let Some(StringMatch::Prefix(prefix)) = &m.uri else {
            return None;
        };
        if prefix.is_empty() {
            return None;
        }
        let method = exact_or_prefix(m.method.as_ref());
        Some(Self {
            field: format!("spec.http[{n}].match[{j}]"),
            rule: rule.to_owned(),
            match_name: rule_name(&m.name, j),
            prefix: prefix.clone(),
            port: m.port.unwrap_or(0),
            method: if method.is_empty() {
                "exact:GET".to_owned()
            } else {
                method
            },
            authority: exact_or_prefix(m.authority.as_ref()),
            headers: reduce(&m.headers),
            query: reduce(&m.query_params),
            without: reduce(&m.without_headers),
        })
    }

    /// Whether `self` (earlier) catches every request `later` would (Istio's
    /// `coveredValidation`).
    fn covers(&self, later: &PrefixMatch) -> bool {
        let narrower = |a: &str, b: &str| a == b || a.starts_with(b);
        let maps = |a: &BTreeMap<String, String>, b: &BTreeMap<String, String>| {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|bv| narrower(v, bv)))
        };
        later.prefix.starts_with(&self.prefix)
            && later.port == self.port
            && narrower(&self.method, &later.method)
            && narrower(&self.authority, &later.authority)
            && maps(&self.headers, &later.headers)
            && maps(&self.query, &later.query)
            && maps(&self.without, &later.without)
    }
}

fn overlapping(prefixes: &[PrefixMatch], r: &mut Report) {
    for (i, a) in prefixes.iter().enumerate() {
        for b in &prefixes[i + 1..] {
            if a.prefix != b.prefix && a.covers(b) {
                let this = format!("{} of prefix {}", b.match_name, b.prefix);
                let by = format!("{} of prefix {} on {}", a.match_name, a.prefix, a.rule);
                ineffective(r, b.field.clone(), &b.rule, &this, &by);
            }
        }
    }
}
