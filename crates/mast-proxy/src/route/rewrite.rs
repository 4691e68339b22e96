//! Path rewrites of forwarding routes: `prefix_rewrite` (replaces the matched prefix, or the
//! whole path for exact and regex routes) and `regex_rewrite` (RE2 `GlobalReplace` over the
//! path, `\N` backreferences); the query is kept either way.

use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use regex::Regex;

use super::matcher::{PathMatch, path_only};
use super::proto::{Ctx, join};
use crate::error::ConfigError;

/// A compiled path rewrite.
#[derive(Clone, Debug)]
pub(crate) enum PathRewrite {
    Prefix(Box<str>),
    /// The pattern (unanchored) and the substitution in `regex` crate syntax.
    Regex(Regex, Box<str>),
}

impl PathRewrite {
    /// Converts `prefix_rewrite` / `regex_rewrite` of the `RouteAction` at `path`.
    pub fn from_proto(
        ctx: Ctx<'_>,
        path: &str,
        prefix: &str,
        regex: Option<&RegexMatchAndSubstitute>,
    ) -> Result<Option<Self>, ConfigError> {
        match (prefix.is_empty(), regex) {
            (true, None) => Ok(None),
            (false, None) => Ok(Some(PathRewrite::Prefix(prefix.into()))),
            (false, Some(_)) => Err(ctx.err(
                join(path, "regex_rewrite"),
                "prefix_rewrite and regex_rewrite are both set",
            )),
            (true, Some(r)) => {
                let p = join(path, "regex_rewrite");
                let Some(pattern) = &r.pattern else {
                    return Err(ctx.err(join(&p, "pattern"), "required"));
                };
                #[allow(deprecated)]
                ctx.deny(
                    &join(&p, "pattern"),
                    &[("google_re2", pattern.engine_type.is_some())],
                )?;
                let re = Regex::new(&pattern.regex).map_err(|e| {
                    ctx.err(
                        join(&p, "pattern.regex"),
                        format!("invalid regex: {}", one_line(&e)),
                    )
                })?;
                let sub = substitution(&r.substitution, re.captures_len())
                    .map_err(|reason| ctx.err(join(&p, "substitution"), reason))?;
                Ok(Some(PathRewrite::Regex(re, sub.into())))
            }
        }
    }

    /// The rewritten path (query kept), or `None` when the route's match gives nothing to
    /// rewrite (CONNECT).
    pub fn apply(&self, matcher: &PathMatch, path: &str) -> Option<String> {
        let just_path = path_only(path);
        let rest = &path[just_path.len()..];
        match self {
            PathRewrite::Prefix(new) => {
                let matched = match matcher {
                    PathMatch::Prefix(p) | PathMatch::SeparatedPrefix(p) => {
                        p.len().min(just_path.len())
                    }
                    PathMatch::Exact(_) | PathMatch::Regex(_) => just_path.len(),
                    PathMatch::Connect => return None,
                };
                let tail = just_path.get(matched..)?;
                Some(format!("{new}{tail}{rest}"))
            }
            PathRewrite::Regex(re, sub) => {
                if matches!(matcher, PathMatch::Connect) {
                    return None;
                }
                Some(format!("{}{rest}", re.replace_all(just_path, &**sub)))
            }
        }
    }
}

/// Translates an RE2 rewrite string (`\0`–`\9`, `\\`) to the `regex` crate's syntax,
/// checking that each group exists.
fn substitution(re2: &str, groups: usize) -> Result<String, String> {
    let mut out = String::with_capacity(re2.len() + 8);
    let mut chars = re2.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\\') => out.push('\\'),
                Some(d @ '0'..='9') => {
                    let n = d as usize - '0' as usize;
                    if n >= groups {
                        return Err(format!("\\{n} refers to a group the pattern does not have"));
                    }
                    out.push_str(&format!("${{{n}}}"));
                }
                _ => {
                    return Err(
                        "invalid rewrite: a backslash must be followed by a digit or a backslash"
                            .into(),
                    );
                }
            },
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// An error message on one line (regex errors draw a caret diagram over several lines; a
/// NACK's `error_detail` reads better without it).
fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_translation() {
        assert_eq!(
            substitution(r"/version/\1/\2", 3).unwrap(),
            "/version/${1}/${2}"
        );
        assert_eq!(substitution(r"a$b\\c\0", 1).unwrap(), r"a$$b\c${0}");
        assert!(substitution(r"\3", 3).is_err());
        assert!(substitution(r"\x", 3).is_err());
    }
}
