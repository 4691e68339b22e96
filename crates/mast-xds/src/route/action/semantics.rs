//! Gateway semantics: how a route translated from a VirtualService that the Kubernetes
//! Gateway API conversion produced differs (istiod's `model.UseGatewaySemantics` branches in
//! `route/route.go`; [`mast_model::gateway_api::uses_gateway_semantics`] tells which).
//!
//! - `prefix` match other than `/` → `path_separated_prefix` (trailing `/` trimmed), so
//!   `PathPrefix: /foo` matches `/foo` and `/foo/bar`, not `/foobar`;
//! - redirect `uri: "%PREFIX()%<p>"` (`ReplacePrefixMatch`) → `RedirectAction.prefix_rewrite:
//!   <p>`, the matched prefix swapped for `<p>`;
//! - rewrite `uri: /` → `regex_rewrite` `^<prefix>(/?)(.*)` → `/\2`, which removes the matched
//!   prefix without leaving `//` (a `prefix_rewrite` of `/` would turn `/foo/bar` into `//bar`);
//! - a route to a cluster that does not exist answers 500 (`cluster_not_found_response_code`,
//!   set in `route_action`).

use envoy_types::pb::envoy::config::route::v3::redirect_action::PathRewriteSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{RedirectAction, RouteAction, RouteMatch};
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use mast_model::gateway_api::PREFIX_MARKER;

use super::super::matching::regex;

/// A `prefix` other than `/` becomes a `path_separated_prefix`.
pub(super) fn path_separated(m: &mut RouteMatch) {
    if let Some(PathSpecifier::Prefix(p)) = &m.path_specifier
        && p != "/"
    {
        let trimmed = p.trim_end_matches('/');
        if !trimmed.is_empty() {
            m.path_specifier = Some(PathSpecifier::PathSeparatedPrefix(trimmed.to_owned()));
        }
    }
}

/// A redirect `uri` starting with `%PREFIX()%` becomes the redirect's `prefix_rewrite`.
pub(super) fn redirect_prefix(uri: &str, action: &mut RedirectAction) {
    if let Some(rest) = uri.strip_prefix(PREFIX_MARKER) {
        action.path_rewrite_specifier = Some(PathRewriteSpecifier::PrefixRewrite(rest.to_owned()));
    }
}

/// A `prefix_rewrite` of `/` becomes the regex rewrite that removes the matched prefix.
pub(super) fn remove_prefix(action: &mut RouteAction, m: Option<&RouteMatch>) {
    if action.prefix_rewrite != "/" {
        return;
    }
    let prefix = match m.and_then(|m| m.path_specifier.as_ref()) {
        Some(PathSpecifier::PathSeparatedPrefix(p)) => p.as_str(),
        _ => "",
    };
    action.prefix_rewrite.clear();
    action.regex_rewrite = Some(RegexMatchAndSubstitute {
        pattern: Some(regex(&format!("^{}(/?)(.*)", quote_meta(prefix)))),
        substitution: r"/\2".to_owned(),
    });
}

/// Escapes the RE2 metacharacters of `s` (Go's `regexp.QuoteMeta`).
fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(p: &str) -> RouteMatch {
        RouteMatch {
            path_specifier: Some(PathSpecifier::Prefix(p.into())),
            ..Default::default()
        }
    }

    #[test]
    fn prefixes_match_path_elements() {
        for (given, want) in [
            (
                "/foo",
                Some(PathSpecifier::PathSeparatedPrefix("/foo".into())),
            ),
            (
                "/foo/",
                Some(PathSpecifier::PathSeparatedPrefix("/foo".into())),
            ),
            ("/", Some(PathSpecifier::Prefix("/".into()))),
        ] {
            let mut m = prefix(given);
            path_separated(&mut m);
            assert_eq!(m.path_specifier, want, "{given}");
        }
        let mut exact = RouteMatch {
            path_specifier: Some(PathSpecifier::Path("/foo".into())),
            ..Default::default()
        };
        path_separated(&mut exact);
        assert_eq!(
            exact.path_specifier,
            Some(PathSpecifier::Path("/foo".into()))
        );
    }

    #[test]
    fn prefix_marker_becomes_a_redirect_prefix_rewrite() {
        let mut a = RedirectAction {
            path_rewrite_specifier: Some(PathRewriteSpecifier::PathRedirect(
                "%PREFIX()%/new".into(),
            )),
            ..Default::default()
        };
        redirect_prefix("%PREFIX()%/new", &mut a);
        assert_eq!(
            a.path_rewrite_specifier,
            Some(PathRewriteSpecifier::PrefixRewrite("/new".into()))
        );
        let mut full = RedirectAction::default();
        redirect_prefix("/full", &mut full);
        assert_eq!(full.path_rewrite_specifier, None);
    }

    #[test]
    fn root_rewrite_removes_the_matched_prefix() {
        let m = RouteMatch {
            path_specifier: Some(PathSpecifier::PathSeparatedPrefix("/a.b".into())),
            ..Default::default()
        };
        let mut a = RouteAction {
            prefix_rewrite: "/".into(),
            ..Default::default()
        };
        remove_prefix(&mut a, Some(&m));
        assert_eq!(a.prefix_rewrite, "");
        let rr = a.regex_rewrite.expect("a regex rewrite");
        assert_eq!(
            rr.pattern.map(|p| p.regex).as_deref(),
            Some(r"^/a\.b(/?)(.*)")
        );
        assert_eq!(rr.substitution, r"/\2");
        let mut other = RouteAction {
            prefix_rewrite: "/v2".into(),
            ..Default::default()
        };
        remove_prefix(&mut other, Some(&m));
        assert_eq!(other.prefix_rewrite, "/v2");
        assert!(other.regex_rewrite.is_none());
    }
}
