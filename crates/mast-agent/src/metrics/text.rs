//! The Prometheus text exposition format (0.0.4) as the merged endpoint serves it.
//!
//! [`from_openmetrics`] turns `prometheus-client`'s OpenMetrics output into 0.0.4 (a
//! counter's family is named with its `_total` suffix, no `# UNIT`, no `# EOF`), so it can be
//! served beside Envoy's text, which is 0.0.4 (its counter families end in `_total`, which
//! OpenMetrics forbids). [`merge`] concatenates several texts family by family: every family
//! appears once, with its first `# HELP` and `# TYPE` and all its samples together, and a
//! series (name and labels) that two texts both carry is kept once. Prometheus rejects a
//! scrape that declares a family twice or splits its samples.

use std::collections::{HashMap, HashSet};

/// One metric family being assembled.
#[derive(Debug, Default)]
struct Family {
    name: String,
    help: Option<String>,
    kind: Option<String>,
    samples: Vec<String>,
}

impl Family {
    /// Whether a sample called `sample` belongs to this family.
    fn owns(&self, sample: &str) -> bool {
        if sample == self.name {
            return true;
        }
        let Some(suffix) = sample.strip_prefix(self.name.as_str()) else {
            return false;
        };
        match self.kind.as_deref() {
            Some("histogram") => matches!(suffix, "_bucket" | "_sum" | "_count"),
            Some("summary") => matches!(suffix, "_sum" | "_count"),
            _ => false,
        }
    }
}

/// OpenMetrics text (as `prometheus-client` writes it) → text format 0.0.4.
pub fn from_openmetrics(text: &str) -> String {
    let counters: HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .filter(|(_, kind)| kind.trim() == "counter")
        .map(|(name, _)| name)
        .collect();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// The families of all `texts` (each in the 0.0.4 format), merged: one `# HELP` and one
/// `# TYPE` per family, its samples together, duplicate series dropped. Families keep the
/// order in which they first appear.
pub fn merge(texts: &[&str]) -> String {
    let mut families: Vec<Family> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut series: HashSet<String> = HashSet::new();
    for text in texts {
        let mut current: Option<usize> = None;
        for line in text.lines().map(str::trim_end) {
            if line.is_empty() {
                continue;
            }
            if let Some((keyword, name, rest)) = descriptor(line) {
                let i = family(&mut families, &mut index, name);
                let slot = match keyword {
                    "HELP" => &mut families[i].help,
                    _ => &mut families[i].kind,
                };
                if slot.is_none() {
                    *slot = Some(rest.to_owned());
                }
                current = Some(i);
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let key = series_key(line);
            let name = key.split('{').next().unwrap_or(key);
            let i = match current {
                Some(i) if families[i].owns(name) => i,
                _ => {
                    let base = untyped_base(&families, &index, name);
                    family(&mut families, &mut index, &base)
                }
            };
            current = Some(i);
            if series.insert(key.to_owned()) {
                families[i].samples.push(line.to_owned());
            }
        }
    }
    render(&families)
}

/// `# HELP name text` / `# TYPE name kind` → (keyword, name, the rest).
fn descriptor(line: &str) -> Option<(&str, &str, &str)> {
    let rest = line.strip_prefix("# ")?;
    let (keyword, rest) = rest.split_once(' ')?;
    if keyword != "HELP" && keyword != "TYPE" {
        return None;
    }
    let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((keyword, name, tail))
}

/// The family a sample without a current family goes to: an existing family that owns it
/// (its samples came back after another family's), else one of its own name.
fn untyped_base(families: &[Family], index: &HashMap<String, usize>, name: &str) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && let Some(&i) = index.get(base)
            && families[i].owns(name)
        {
            return base.to_owned();
        }
    }
    name.to_owned()
}

fn family(families: &mut Vec<Family>, index: &mut HashMap<String, usize>, name: &str) -> usize {
    if let Some(&i) = index.get(name) {
        return i;
    }
    families.push(Family {
        name: name.to_owned(),
        ..Family::default()
    });
    index.insert(name.to_owned(), families.len() - 1);
    families.len() - 1
}

/// A sample line's series: its name and labels, without value and timestamp.
fn series_key(line: &str) -> &str {
    let brace = line.find('{');
    let space = line.find([' ', '\t']).unwrap_or(line.len());
    match brace {
        Some(open) if open < space => closing_brace(line, open).map_or(line, |end| &line[..=end]),
        _ => &line[..space],
    }
}

/// The index of the `}` closing the label set opened at `open` (quoted values may hold
/// braces and escaped quotes).
fn closing_brace(line: &str, open: usize) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in line.char_indices().skip_while(|(i, _)| *i <= open) {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

fn render(families: &[Family]) -> String {
    let mut out = String::new();
    for f in families {
        if let Some(help) = &f.help {
            out.push_str(&format!("# HELP {} {help}\n", f.name));
        }
        if let Some(kind) = &f.kind {
            out.push_str(&format!("# TYPE {} {kind}\n", f.name));
        }
        for s in &f.samples {
            out.push_str(s);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_counters_become_total_families() {
        let open = "# HELP a_restarts Restarts.\n# TYPE a_restarts counter\na_restarts_total 3\n\
                    # HELP a_expiry Expiry.\n# TYPE a_expiry gauge\n# UNIT a_expiry seconds\na_expiry 7\n# EOF\n";
        let text = from_openmetrics(open);
        assert_eq!(
            text,
            "# HELP a_restarts_total Restarts.\n# TYPE a_restarts_total counter\na_restarts_total 3\n\
             # HELP a_expiry Expiry.\n# TYPE a_expiry gauge\na_expiry 7\n"
        );
    }

    #[test]
    fn merge_declares_each_family_once_and_keeps_samples_together() {
        let envoy = "# TYPE envoy_x_total counter\nenvoy_x_total{c=\"a\"} 1\n\
                     # TYPE envoy_t histogram\nenvoy_t_bucket{le=\"1\"} 1\nenvoy_t_bucket{le=\"+Inf\"} 2\n\
                     envoy_t_sum 3\nenvoy_t_count 2\n\
                     # TYPE envoy_x_total counter\nenvoy_x_total{c=\"b\"} 2\n";
        let agent = "# HELP envoy_x_total Dup.\n# TYPE envoy_x_total counter\nenvoy_x_total{c=\"a\"} 9\n\
                     # TYPE mast_agent_y gauge\nmast_agent_y 1\nuntyped_z 4\n";
        let merged = merge(&[envoy, agent]);
        assert_eq!(
            merged,
            "# HELP envoy_x_total Dup.\n# TYPE envoy_x_total counter\n\
             envoy_x_total{c=\"a\"} 1\nenvoy_x_total{c=\"b\"} 2\n\
             # TYPE envoy_t histogram\nenvoy_t_bucket{le=\"1\"} 1\nenvoy_t_bucket{le=\"+Inf\"} 2\n\
             envoy_t_sum 3\nenvoy_t_count 2\n\
             # TYPE mast_agent_y gauge\nmast_agent_y 1\nuntyped_z 4\n"
        );
        assert_eq!(merged.matches("# TYPE envoy_x_total").count(), 1);
    }

    #[test]
    fn series_keys_respect_quoted_braces() {
        assert_eq!(
            series_key(r#"m{a="x}y",b="q\"}"} 1 1700"#),
            r#"m{a="x}y",b="q\"}"}"#
        );
        assert_eq!(series_key("m 1"), "m");
        assert_eq!(series_key("m{a=\"1\"} 2"), "m{a=\"1\"}");
    }
}
