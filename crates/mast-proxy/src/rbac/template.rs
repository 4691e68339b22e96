//! The `uri_template` permission (`envoy.path.match.uri_template.uri_template_matcher`, what
//! Istio generates for paths with `{*}` / `{**}`): Envoy's path-template syntax compiled
//! once into a full-match regex over the path without query. `*` matches one non-empty
//! segment, `**` zero or more segments (nothing may follow it but literals); `{name}`,
//! `{name=*}`, `{name=a/**}` are variables with the same operators; literals use RFC 3986
//! pchar characters; text after the last segment without a `/` is a suffix (`/**.mpd`).

use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
use envoy_types::pb::envoy::extensions::path::r#match::uri_template::v3::UriTemplateMatchConfig;
use prost::Message;
use regex::Regex;

use super::{Failure, fail, join};

/// The config's type URL.
pub const URI_TEMPLATE_TYPE: &str =
    "type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig";

/// RFC 3986 pchar without `*` and `=`, as a regex class body.
const PCHAR: &str = r"a-zA-Z0-9\-._~%!$&'()+,;:@";

/// Converts the `uri_template` extension found at `path`.
pub fn from_proto(path: &str, t: &TypedExtensionConfig) -> Result<Regex, Failure> {
    let any = t
        .typed_config
        .as_ref()
        .ok_or_else(|| fail(join(path, "typed_config"), "required"))?;
    if any.type_url != URI_TEMPLATE_TYPE {
        return Err(fail(
            join(path, "typed_config"),
            format!("{} is not supported", any.type_url),
        ));
    }
    let config = UriTemplateMatchConfig::decode(any.value.as_slice())
        .map_err(|e| fail(join(path, "typed_config"), format!("cannot decode: {e}")))?;
    let field = join(path, "typed_config.path_template");
    let pattern = to_regex(&config.path_template).map_err(|r| fail(&field, r))?;
    Regex::new(&format!("^{pattern}$")).map_err(|e| fail(&field, e.to_string()))
}

fn valid_literal(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()+,;:@".contains(&b))
}

/// `*` / `**` at the start of `rest`: (regex, is text glob, remaining).
fn operator(rest: &str) -> (String, bool, &str) {
    match rest.strip_prefix("**") {
        Some(r) => (format!("[{PCHAR}/]*"), true, r),
        None => (format!("[{PCHAR}]+"), false, &rest[1..]),
    }
}

/// A `{name[=match]}` variable at the start of `rest`: (regex, globs it has, remaining).
fn variable(rest: &str) -> Result<(String, Vec<bool>, &str), String> {
    let (inner, after) = rest[1..]
        .split_once('}')
        .ok_or("unmatched variable bracket")?;
    let (name, matcher) = match inner.split_once('=') {
        Some((n, m)) => (n, Some(m)),
        None => (inner, None),
    };
    let name_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 16;
    if !name_ok {
        return Err(format!("invalid variable name {name:?}"));
    }
    let Some(matcher) = matcher else {
        return Ok((format!("[{PCHAR}]+"), vec![false], after));
    };
    if matcher.is_empty() {
        return Err("empty variable match".into());
    }
    let mut parts = Vec::new();
    let mut globs = Vec::new();
    for piece in matcher.split('/') {
        if piece.starts_with('*') {
            let (re, text, left) = operator(piece);
            if !left.is_empty() {
                return Err("invalid variable match".into());
            }
            parts.push(re);
            globs.push(text);
        } else if valid_literal(piece) {
            parts.push(regex::escape(piece));
        } else {
            return Err("invalid variable match".into());
        }
    }
    Ok((format!("(?:{})", parts.join("/")), globs, after))
}

/// Envoy's `parseURLPatternSyntax` + `toRegexPattern`.
fn to_regex(template: &str) -> Result<String, String> {
    let printable = template.bytes().all(|b| b.is_ascii_graphic());
    let Some(mut rest) = template.strip_prefix('/').filter(|_| printable) else {
        return Err("invalid pattern".into());
    };
    let mut segments: Vec<String> = Vec::new();
    let mut suffix = String::new();
    let mut seen_text_glob = false;
    while !rest.is_empty() {
        let (re, globs, left) = if rest.starts_with('*') {
            let (re, text, left) = operator(rest);
            (re, vec![text], left)
        } else if rest.starts_with('{') {
            variable(rest)?
        } else {
            let lit = rest.split('/').next().unwrap_or("");
            if !valid_literal(lit) {
                return Err("invalid literal".into());
            }
            (regex::escape(lit), Vec::new(), &rest[lit.len()..])
        };
        for text in globs {
            if seen_text_glob {
                return Err("glob after text glob".into());
            }
            seen_text_glob = text;
        }
        segments.push(re);
        rest = left;
        if rest == "/" {
            segments.push(String::new());
            break;
        } else if let Some(r) = rest.strip_prefix('/') {
            rest = r;
        } else if !rest.is_empty() {
            if !valid_literal(rest) {
                return Err("prefix match not supported".into());
            }
            suffix = regex::escape(rest);
            break;
        }
    }
    Ok(format!("/{}{suffix}", segments.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(template: &str, path: &str) -> bool {
        let re = Regex::new(&format!("^{}$", to_regex(template).unwrap())).unwrap();
        re.is_match(path)
    }

    #[test]
    fn envoy_template_semantics() {
        #[rustfmt::skip]
        let cases = [
            ("/api/*/items", "/api/v1/items", true),
            ("/api/*/items", "/api//items", false),
            ("/api/*/items", "/api/v1/x/items", false),
            ("/api/**", "/api/", true),
            ("/api/**", "/api/a/b/c", true),
            ("/api/**", "/apix", false),
            ("/**.mpd", "/content/123/manifest.mpd", true),
            ("/videos/*/*/*.m4s", "/videos/123414/hls/1080p5000_00001.m4s", true),
            ("/videos/{file}", "/videos/1080p.m4s", true),
            ("/videos/{file}", "/videos/a/b", false),
            ("/{dir=videos/**}", "/videos/a/b", true),
            ("/a/b/", "/a/b/", true),
            ("/a.b", "/aXb", false),
        ];
        for (t, p, want) in cases {
            assert_eq!(matches(t, p), want, "{t} ~ {p}");
        }
    }

    #[test]
    fn invalid_templates() {
        for t in ["api", "/a/**/*", "/a/{9x}", "/a/{x", "/a b", "/a/b*c/d"] {
            assert!(to_regex(t).is_err(), "{t}");
        }
    }
}
