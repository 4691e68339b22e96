//! Validation of HTTPRoute and GRPCRoute filters: the field the type names is set (and no
//! other), no type repeated, redirect and rewrite not together, and each filter's bounds.

use crate::gateway_api::{
    FilterType, HttpHeaderFilter, HttpPathModifier, HttpRequestMirrorFilter,
    HttpRequestRedirectFilter, HttpRouteFilter, PathModifierType,
};
use crate::validate::Report;

use super::shared;

/// Checks the filters of a rule (or a backend) at `field`; `allowed` are the types the
/// route kind defines.
pub fn filters(r: &mut Report, field: &str, list: &[HttpRouteFilter], allowed: &[FilterType]) {
    shared::max_items(r, field, list.len(), 16);
    let mut seen: Vec<FilterType> = Vec::new();
    for (i, f) in list.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let t = f.r#type;
        if !allowed.contains(&t) {
            r.error(
                format!("{at}.type"),
                format!("filter type {} is not supported here", t.as_str()),
            );
            continue;
        }
        consistent(r, &at, f);
        if t != FilterType::RequestMirror && t != FilterType::ExtensionRef && seen.contains(&t) {
            r.error(&at, format!("{} filter cannot be repeated", t.as_str()));
        }
        seen.push(t);
        check_one(r, &at, f);
    }
    if seen.contains(&FilterType::RequestRedirect) && seen.contains(&FilterType::UrlRewrite) {
        r.error(
            field,
            "May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both",
        );
    }
}

/// Reports a filter whose set fields do not match its type.
fn consistent(r: &mut Report, at: &str, f: &HttpRouteFilter) {
    let set = [
        (
            FilterType::RequestHeaderModifier,
            f.request_header_modifier.is_some(),
        ),
        (
            FilterType::ResponseHeaderModifier,
            f.response_header_modifier.is_some(),
        ),
        (FilterType::RequestMirror, f.request_mirror.is_some()),
        (FilterType::RequestRedirect, f.request_redirect.is_some()),
        (FilterType::UrlRewrite, f.url_rewrite.is_some()),
        (FilterType::Cors, f.cors.is_some()),
        (FilterType::ExtensionRef, f.extension_ref.is_some()),
    ];
    for (t, present) in set {
        if t == f.r#type && !present {
            r.error(
                format!("{at}.{}", t.field()),
                format!(
                    "filter.{} must be specified for {} filter.type",
                    t.field(),
                    t.as_str()
                ),
            );
        } else if t != f.r#type && present {
            r.error(
                format!("{at}.{}", t.field()),
                format!(
                    "filter.{} must be nil if the filter.type is not {}",
                    t.field(),
                    t.as_str()
                ),
            );
        }
    }
}

fn check_one(r: &mut Report, at: &str, f: &HttpRouteFilter) {
    if let Some(h) = &f.request_header_modifier {
        header_filter(r, &format!("{at}.requestHeaderModifier"), h);
    }
    if let Some(h) = &f.response_header_modifier {
        header_filter(r, &format!("{at}.responseHeaderModifier"), h);
    }
    if let Some(m) = &f.request_mirror {
        mirror(r, &format!("{at}.requestMirror"), m);
    }
    if let Some(rd) = &f.request_redirect {
        redirect(r, &format!("{at}.requestRedirect"), rd);
    }
    if let Some(rw) = &f.url_rewrite {
        if let Some(h) = &rw.hostname {
            shared::hostname(r, &format!("{at}.urlRewrite.hostname"), h);
        }
        if let Some(p) = &rw.path {
            path_modifier(r, &format!("{at}.urlRewrite.path"), p);
        }
    }
    if let Some(c) = &f.cors {
        shared::max_items(
            r,
            &format!("{at}.cors.allowOrigins"),
            c.allow_origins.len(),
            64,
        );
        if let Some(age) = c.max_age
            && age < 1
        {
            r.error(format!("{at}.cors.maxAge"), "maxAge must be at least 1");
        }
    }
}

fn header_filter(r: &mut Report, at: &str, h: &HttpHeaderFilter) {
    for (list, name) in [(&h.set, "set"), (&h.add, "add")] {
        shared::max_items(r, &format!("{at}.{name}"), list.len(), 16);
        let mut seen = Vec::new();
        for (i, header) in list.iter().enumerate() {
            let f = format!("{at}.{name}[{i}].name");
            shared::header_name(r, &f, &header.name);
            let lower = header.name.to_ascii_lowercase();
            if seen.contains(&lower) {
                r.error(f, format!("header {:?} is listed twice", header.name));
            }
            seen.push(lower);
        }
    }
    shared::max_items(r, &format!("{at}.remove"), h.remove.len(), 16);
    for (i, name) in h.remove.iter().enumerate() {
        shared::header_name(r, &format!("{at}.remove[{i}]"), name);
    }
}

fn mirror(r: &mut Report, at: &str, m: &HttpRequestMirrorFilter) {
    let b = &m.backend_ref;
    let backend = shared::Backend {
        group: b.group(),
        kind: b.kind(),
        name: &b.name,
        port: b.port,
        weight: None,
    };
    shared::backend(r, &format!("{at}.backendRef"), &backend);
    if m.percent.is_some() && m.fraction.is_some() {
        r.error(
            at,
            "Only one of percent or fraction may be specified in HTTPRequestMirrorFilter",
        );
    }
    if let Some(p) = m.percent
        && !(0..=100).contains(&p)
    {
        r.error(
            format!("{at}.percent"),
            format!("percent {p} must be between 0 and 100"),
        );
    }
    if let Some(fr) = &m.fraction {
        let den = fr.denominator.unwrap_or(100);
        if fr.numerator < 0 {
            r.error(
                format!("{at}.fraction.numerator"),
                "numerator must not be negative",
            );
        }
        if den < 1 {
            r.error(
                format!("{at}.fraction.denominator"),
                "denominator must be at least 1",
            );
        } else if fr.numerator > den {
            r.error(
                format!("{at}.fraction"),
                "numerator must be less than or equal to denominator",
            );
        }
    }
}

fn redirect(r: &mut Report, at: &str, rd: &HttpRequestRedirectFilter) {
    if let Some(s) = &rd.scheme
        && s != "http"
        && s != "https"
    {
        r.error(
            format!("{at}.scheme"),
            format!("scheme {s:?} must be http or https"),
        );
    }
    if let Some(h) = &rd.hostname {
        shared::hostname(r, &format!("{at}.hostname"), h);
    }
    if let Some(p) = rd.port {
        shared::port(r, &format!("{at}.port"), p);
    }
    if let Some(c) = rd.status_code
        && ![301, 302, 303, 307, 308].contains(&c)
    {
        r.error(
            format!("{at}.statusCode"),
            format!("statusCode {c} must be one of 301, 302, 303, 307, 308"),
        );
    }
    if let Some(p) = &rd.path {
        path_modifier(r, &format!("{at}.path"), p);
    }
}

fn path_modifier(r: &mut Report, at: &str, p: &HttpPathModifier) {
    match p.r#type {
        PathModifierType::ReplaceFullPath => {
            if p.replace_full_path.is_none() {
                r.error(
                    format!("{at}.replaceFullPath"),
                    "replaceFullPath must be specified when type is set to 'ReplaceFullPath'",
                );
            }
            if p.replace_prefix_match.is_some() {
                r.error(
                    format!("{at}.replacePrefixMatch"),
                    "type must be 'ReplacePrefixMatch' when replacePrefixMatch is set",
                );
            }
        }
        PathModifierType::ReplacePrefixMatch => {
            if p.replace_prefix_match.is_none() {
                r.error(
                    format!("{at}.replacePrefixMatch"),
                    "replacePrefixMatch must be specified when type is set to 'ReplacePrefixMatch'",
                );
            }
            if p.replace_full_path.is_some() {
                r.error(
                    format!("{at}.replaceFullPath"),
                    "type must be 'ReplaceFullPath' when replaceFullPath is set",
                );
            }
        }
    }
    for v in [&p.replace_full_path, &p.replace_prefix_match]
        .into_iter()
        .flatten()
    {
        if !v.is_empty() && !v.starts_with('/') {
            r.error(at, format!("path {v:?} must start with '/'"));
        }
    }
}
