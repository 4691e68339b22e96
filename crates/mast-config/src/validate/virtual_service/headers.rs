//! Header names and values in a `VirtualService`, checked as Istio does: match keys
//! (with pseudo-headers and `@request.auth.claims` routing), CORS header names, names of
//! headers being set or removed, and values with Envoy's `%VARIABLE%` syntax.

use crate::networking::virtual_service::{HeaderOperations, Headers};
use crate::validate::Report;

/// The prefix of header keys that route on JWT claims (gateways only).
const JWT_CLAIM_PREFIX: &str = "@request.auth.claims";

const PSEUDO_HEADERS: [&str; 5] = [":method", ":scheme", ":authority", ":path", ":status"];

/// Whether `name` is an RFC 7230 token (`tchar`s only).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `name` routes on a JWT claim: `@request.auth.claims.a.b` or
/// `@request.auth.claims[a][b]`.
pub(super) fn is_jwt_claim(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix(JWT_CLAIM_PREFIX) else {
        return false;
    };
    (rest.starts_with('.') && rest.len() > 1)
        || (rest.starts_with('[') && rest.ends_with(']') && rest.len() > 2)
}

/// Istio's `ValidateHTTPHeaderNameOrJwtClaimRoute`, for match keys.
pub(super) fn match_name_error(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("header name cannot be empty".to_owned());
    }
    if is_jwt_claim(name) || PSEUDO_HEADERS.contains(&name) || is_token(name) {
        return None;
    }
    Some(format!("header name {name} is not a valid header name"))
}

/// Istio's `ValidateCORSHTTPHeaderName`: a token or `*`.
pub(super) fn cors_name_error(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("header name cannot be empty".to_owned())
    } else if name == "*" || is_token(name) {
        None
    } else {
        Some(format!("header name {name} is not a valid header name"))
    }
}

/// Whether the header is the authority (`:authority` or `Host`).
pub(super) fn is_authority(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

fn is_internal(name: &str) -> bool {
    name.starts_with(':') || name.eq_ignore_ascii_case("host")
}

/// Istio's `ValidateHTTPHeaderWithAuthorityOperationName`: names set or added on
/// requests, where the authority may be set (checked elsewhere for conflicts).
fn set_request_name_error(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("header name cannot be empty".to_owned())
    } else if is_internal(name) && !is_authority(name) {
        Some(format!(
            "invalid header {name:?}: header cannot have \":\" prefix"
        ))
    } else {
        None
    }
}

/// Istio's `ValidateHTTPHeaderOperationName`: names removed, or set on responses.
fn operation_name_error(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("header name cannot be empty".to_owned())
    } else if name.eq_ignore_ascii_case("host") {
        Some(format!("invalid header {name:?}: cannot set Host header"))
    } else if name.starts_with(':') {
        Some(format!(
            "invalid header {name:?}: header cannot have \":\" prefix"
        ))
    } else {
        None
    }
}

/// Istio's `ValidateHTTPHeaderValue`: no control characters but tab, and well-formed
/// `%VARIABLE%` / `%VAR(args)%` expressions (`%%` escapes a percent sign).
pub(super) fn value_error(value: &str) -> Option<String> {
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Some(format!("header value configuration {value} is invalid"));
    }
    parse_value(value)
        .err()
        .map(|e| format!("header value configuration: invalid header configuration. {e}"))
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Literal,
    VariableName,
    ExpectArray,
    ExpectString,
    InString,
    ExpectDelimiterOrEnd,
    ExpectArgsEnd,
    ExpectVariableEnd,
}

/// A port of Envoy's header formatter parser (`header_parser.cc`), as Istio ports it.
fn parse_value(value: &str) -> Result<(), String> {
    let b = value.as_bytes();
    let mut state = State::Literal;
    let mut pos = 0;
    while pos < b.len() {
        let (ch, has_next) = (b[pos], pos + 1 < b.len());
        state = match (state, ch) {
            (State::Literal, b'%') if !has_next => return Err("Un-escaped %".to_owned()),
            (State::Literal, b'%') if b[pos + 1] == b'%' => {
                pos += 1;
                State::Literal
            }
            (State::Literal, b'%') => State::VariableName,
            (State::VariableName, b'%') | (State::ExpectVariableEnd, b'%') => State::Literal,
            (State::VariableName, b'(') => State::ExpectArray,
            (State::ExpectArray, b'[') => State::ExpectString,
            (State::ExpectArray, c) if c != b' ' => State::InString,
            (State::ExpectDelimiterOrEnd, b',') => State::ExpectString,
            (State::ExpectDelimiterOrEnd, b']') => State::ExpectArgsEnd,
            (State::ExpectDelimiterOrEnd, c) if c != b' ' => {
                return Err("Expecting ',', ']', or whitespace".to_owned());
            }
            (State::ExpectString, b'"') => State::InString,
            (State::ExpectString, c) if c != b' ' => return Err("Expecting '\"'".to_owned()),
            (State::InString, b'\\') if !has_next => {
                return Err("Un-terminated backslash in JSON string".to_owned());
            }
            (State::InString, b'\\') => {
                pos += 1;
                State::InString
            }
            (State::InString, b')') => State::ExpectVariableEnd,
            (State::InString, b'"') => State::ExpectDelimiterOrEnd,
            (State::ExpectArgsEnd, b')') => State::ExpectVariableEnd,
            (State::ExpectArgsEnd, c) if c != b' ' => {
                return Err("Expecting ')' or whitespace".to_owned());
            }
            (State::ExpectVariableEnd, c) if c != b' ' => {
                return Err("Expecting '%' or whitespace after".to_owned());
            }
            (s, _) => s,
        };
        pos += 1;
    }
    if state == State::Literal {
        Ok(())
    } else {
        Err(format!("Un-terminated variable expression '{value}'"))
    }
}

/// Checks the header operations of a route or destination; `field` is the `headers` path.
pub(super) fn operations(r: &mut Report, field: &str, headers: &Headers) {
    if let Some(ops) = &headers.request {
        one_side(r, &format!("{field}.request"), ops, true);
    }
    if let Some(ops) = &headers.response {
        one_side(r, &format!("{field}.response"), ops, false);
    }
}

fn one_side(r: &mut Report, field: &str, ops: &HeaderOperations, request: bool) {
    for (verb, map) in [("set", &ops.set), ("add", &ops.add)] {
        for (name, value) in map {
            let f = format!("{field}.{verb}.{name}");
            let name_error = if request {
                set_request_name_error(name)
            } else {
                operation_name_error(name)
            };
            for e in name_error.into_iter().chain(value_error(value)) {
                r.error(&f, e);
            }
        }
    }
    for (i, name) in ops.remove.iter().enumerate() {
        if let Some(e) = operation_name_error(name) {
            r.error(format!("{field}.remove[{i}]"), e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values() {
        for ok in [
            "foo",
            "%HOSTNAME%",
            "100%%",
            "prefix %HOSTNAME% suffix",
            "%REQ(x-foo)%",
            "%PER_REQUEST_STATE([\"a\", \"b\"])%",
        ] {
            assert_eq!(value_error(ok), None, "{ok}");
        }
        for bad in [
            "abc%123",
            "%START_TIME%%",
            "50%",
            "a\nb",
            "%REQ([\"a\" x])%",
        ] {
            assert!(value_error(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn jwt_claims() {
        assert!(is_jwt_claim("@request.auth.claims.groups"));
        assert!(is_jwt_claim("@request.auth.claims[nested][key]"));
        assert!(!is_jwt_claim("@request.auth.claims"));
        assert!(!is_jwt_claim("x-claims"));
    }
}
