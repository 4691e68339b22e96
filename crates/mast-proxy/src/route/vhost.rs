//! Virtual-host selection by `:authority`, as Envoy does: exact domain, then the longest
//! suffix wildcard (`*.x`, `*x`), then the longest prefix wildcard (`x*`), then `*`.
//! Case-insensitive; the authority is matched as received, port included.

use std::collections::HashMap;

use super::proto::Ctx;
use crate::error::ConfigError;

/// Domain → virtual host index, built once per table.
#[derive(Debug, Default)]
pub(crate) struct DomainIndex {
    exact: HashMap<Box<str>, usize>,
    /// Suffix wildcards without the `*`, longest first.
    suffixes: Vec<(Box<str>, usize)>,
    /// Prefix wildcards without the `*`, longest first.
    prefixes: Vec<(Box<str>, usize)>,
    default: Option<usize>,
}

impl DomainIndex {
    /// Adds the domains of virtual host `vh` (at `virtual_hosts[vh]`); duplicates are refused
    /// as Envoy refuses them.
    pub fn add(&mut self, ctx: Ctx<'_>, vh: usize, domains: &[String]) -> Result<(), ConfigError> {
        if domains.is_empty() {
            return Err(ctx.err(
                format!("virtual_hosts[{vh}].domains"),
                "at least one domain is required",
            ));
        }
        for (i, d) in domains.iter().enumerate() {
            let field = || format!("virtual_hosts[{vh}].domains[{i}]");
            let d = d.to_ascii_lowercase();
            let dup = if d == "*" {
                self.default.replace(vh).is_some()
            } else if !valid_domain(d.as_bytes()) {
                return Err(ctx.err(field(), "invalid domain"));
            } else if let Some(suffix) = d.strip_prefix('*') {
                insert(&mut self.suffixes, suffix, vh)
            } else if let Some(prefix) = d.strip_suffix('*') {
                insert(&mut self.prefixes, prefix, vh)
            } else {
                self.exact.insert(d.as_str().into(), vh).is_some()
            };
            if dup {
                return Err(ctx.err(
                    field(),
                    format!("duplicate domain {d:?}: only unique values are permitted"),
                ));
            }
        }
        Ok(())
    }

    /// Sorts the wildcards, longest first (call once after every `add`).
    pub fn finish(&mut self) {
        self.suffixes.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        self.prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
    }

    /// The virtual host for `authority`.
    pub fn find(&self, authority: &str) -> Option<usize> {
        if authority.bytes().any(|b| b.is_ascii_uppercase()) {
            return self.find_lower(&authority.to_ascii_lowercase());
        }
        self.find_lower(authority)
    }

    fn find_lower(&self, host: &str) -> Option<usize> {
        if let Some(&i) = self.exact.get(host) {
            return Some(i);
        }
        // Envoy: a wildcard needs at least one character of the host to stand for `*`.
        let suffix = self
            .suffixes
            .iter()
            .find(|(s, _)| s.len() < host.len() && host.ends_with(&**s));
        if let Some(&(_, i)) = suffix {
            return Some(i);
        }
        let prefix = self
            .prefixes
            .iter()
            .find(|(p, _)| p.len() < host.len() && host.starts_with(&**p));
        if let Some(&(_, i)) = prefix {
            return Some(i);
        }
        self.default
    }
}

/// Non-empty, with at most one `*`, at the start or the end.
fn valid_domain(d: &[u8]) -> bool {
    let stars = d.iter().filter(|&&b| b == b'*').count();
    !d.is_empty() && (stars == 0 || (stars == 1 && (d[0] == b'*' || d[d.len() - 1] == b'*')))
}

/// Adds a wildcard; `true` when it was already present.
fn insert(list: &mut Vec<(Box<str>, usize)>, key: &str, vh: usize) -> bool {
    if list.iter().any(|(k, _)| &**k == key) {
        return true;
    }
    list.push((key.into(), vh));
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(vhosts: &[&[&str]]) -> Result<DomainIndex, ConfigError> {
        let mut idx = DomainIndex::default();
        for (i, d) in vhosts.iter().enumerate() {
            let d: Vec<String> = d.iter().map(|s| s.to_string()).collect();
            idx.add(Ctx { name: "t" }, i, &d)?;
        }
        idx.finish();
        Ok(idx)
    }

    #[test]
    fn precedence() {
        let idx = index(&[
            &["*"],
            &["*.example.com"],
            &["*.b.example.com"],
            &["api.*"],
            &["api.example.*"],
            &["api.example.com", "api.example.com:8080"],
        ])
        .unwrap();
        assert_eq!(idx.find("api.example.com"), Some(5));
        assert_eq!(
            idx.find("API.Example.COM:8080"),
            Some(5),
            "case-insensitive, port kept"
        );
        assert_eq!(
            idx.find("api.example.com:9090"),
            Some(4),
            "other port: no exact match"
        );
        assert_eq!(idx.find("x.b.example.com"), Some(2), "longest suffix");
        assert_eq!(idx.find("x.example.com"), Some(1));
        assert_eq!(idx.find("api.example.org"), Some(4), "longest prefix");
        assert_eq!(idx.find("api.other"), Some(3));
        assert_eq!(
            idx.find(".example.com"),
            Some(0),
            "wildcard needs a character"
        );
        assert_eq!(idx.find("elsewhere"), Some(0));
        let no_default = index(&[&["a"]]).unwrap();
        assert_eq!(no_default.find("b"), None);
    }

    #[test]
    fn refusals() {
        assert_eq!(
            index(&[&["a"], &["A"]]).unwrap_err().field,
            "virtual_hosts[1].domains[0]"
        );
        assert_eq!(
            index(&[&["*"], &["x", "*"]]).unwrap_err().field,
            "virtual_hosts[1].domains[1]"
        );
        assert_eq!(
            index(&[&["a*b"]]).unwrap_err().field,
            "virtual_hosts[0].domains[0]"
        );
        assert_eq!(index(&[&[]]).unwrap_err().field, "virtual_hosts[0].domains");
    }
}
