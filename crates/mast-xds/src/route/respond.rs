//! Answers a route gives without forwarding: redirects (Istio's `ApplyRedirect`) and direct
//! responses (`ApplyDirectResponse`), whose `HTTPBody.bytes` arrives base64-encoded
//! (protobuf JSON's form for bytes) and is decoded here (standard or URL-safe alphabet,
//! padding optional).

use envoy_types::pb::envoy::config::core::v3::DataSource;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::route::v3::redirect_action::{
    PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier,
};
use envoy_types::pb::envoy::config::route::v3::{DirectResponseAction, RedirectAction};
use mast_config::networking::virtual_service::{
    HttpDirectResponse, HttpRedirect, RedirectPortSelection,
};

/// A redirect; `None` (route left out) for a status Envoy cannot send.
pub fn redirect(r: &HttpRedirect, port: u16) -> Option<RedirectAction> {
    let response_code = match r.redirect_code.unwrap_or(301) {
        301 => RedirectResponseCode::MovedPermanently,
        302 => RedirectResponseCode::Found,
        303 => RedirectResponseCode::SeeOther,
        307 => RedirectResponseCode::TemporaryRedirect,
        308 => RedirectResponseCode::PermanentRedirect,
        code => {
            tracing::warn!(code, "redirect code not supported by Envoy: route left out");
            return None;
        }
    };
    let mut out = RedirectAction {
        host_redirect: r.authority.clone(),
        response_code: response_code as i32,
        path_rewrite_specifier: (!r.uri.is_empty())
            .then(|| PathRewriteSpecifier::PathRedirect(r.uri.clone())),
        scheme_rewrite_specifier: (!r.scheme.is_empty())
            .then(|| SchemeRewriteSpecifier::SchemeRedirect(r.scheme.clone())),
        ..Default::default()
    };
    let explicit = match (r.port, r.derive_port) {
        (Some(p), _) => u32::try_from(p).ok(),
        (None, Some(RedirectPortSelection::FromRequestPort)) => Some(u32::from(port)),
        (None, _) => None,
    };
    if let Some(p) = explicit {
        let scheme = if r.scheme.is_empty() {
            "http"
        } else {
            r.scheme.as_str()
        };
        // No explicit :80 for http or :443 for https.
        let default_port = (p == 80 && scheme == "http") || (p == 443 && scheme == "https");
        out.port_redirect = if default_port { 0 } else { p };
    }
    Some(out)
}

/// A fixed response; `None` (route left out) for an unusable status or body.
pub fn direct_response(d: &HttpDirectResponse) -> Option<DirectResponseAction> {
    let Ok(status) = u32::try_from(d.status) else {
        tracing::warn!(
            status = d.status,
            "invalid directResponse status: route left out"
        );
        return None;
    };
    let specifier = match d.body.as_ref() {
        Some(b) if b.string.is_some() => b.string.clone().map(Specifier::InlineString),
        Some(b) => match b.bytes.as_deref().map(decode_base64) {
            Some(Some(bytes)) => Some(Specifier::InlineBytes(bytes)),
            Some(None) => {
                tracing::warn!("directResponse body.bytes is not valid base64: route left out");
                return None;
            }
            None => None,
        },
        None => None,
    };
    let body = specifier.map(|s| DataSource {
        specifier: Some(s),
        watched_directory: None,
    });
    Some(DirectResponseAction {
        status,
        body,
        ..Default::default()
    })
}

/// Decodes base64; `None` when the text is not base64.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    let trimmed = text.trim().trim_end_matches('=');
    for c in trimmed.bytes().filter(|c| !c.is_ascii_whitespace()) {
        acc = (acc << 6) | sextet(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    // A single leftover sextet cannot encode a byte.
    (bits < 6).then_some(out)
}

fn sextet(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

#[cfg(test)]
mod tests {
    use super::decode_base64;

    #[test]
    fn decodes() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("").unwrap(), b"");
        assert!(decode_base64("a").is_none());
        assert!(decode_base64("!!!!").is_none());
    }
}
