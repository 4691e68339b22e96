//! The shared matchers on their own: string patterns, header conditions (Envoy's invert and
//! missing-as-empty rules), where header values come from, and conversion errors.

use envoy_types::pb::envoy::config::route::v3::HeaderMatcher;
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier as Spec;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher, regex_matcher};
use envoy_types::pb::envoy::r#type::v3::Int64Range;
use http::{HeaderMap, HeaderValue};

use super::*;

fn string(p: MatchPattern, ignore_case: bool) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(p),
        ignore_case,
    }
}

fn regex(r: &str) -> RegexMatcher {
    RegexMatcher {
        regex: r.into(),
        ..Default::default()
    }
}

fn header(name: &str, spec: Option<Spec>, invert: bool, missing_as_empty: bool) -> HeaderMatcher {
    HeaderMatcher {
        name: name.into(),
        header_match_specifier: spec,
        invert_match: invert,
        treat_missing_header_as_empty: missing_as_empty,
    }
}

fn cond(spec: Option<Spec>, invert: bool, missing_as_empty: bool) -> HeaderCond {
    HeaderCond::from_proto("h", &header("x", spec, invert, missing_as_empty)).unwrap()
}

#[test]
fn string_patterns_and_ignore_case() {
    let m = |p, ic| StrMatch::from_proto("m", &string(p, ic)).unwrap();
    assert!(m(MatchPattern::Exact("Ab".into()), true).matches("aB"));
    assert!(!m(MatchPattern::Exact("Ab".into()), false).matches("aB"));
    assert!(m(MatchPattern::Prefix("/A".into()), true).matches("/api"));
    assert!(!m(MatchPattern::Prefix("/api/".into()), false).matches("/api"));
    assert!(m(MatchPattern::Suffix(".JS".into()), true).matches("a.js"));
    assert!(!m(MatchPattern::Suffix("é".into()), false).matches("e"));
    assert!(m(MatchPattern::Contains("".into()), false).matches(""));
    assert!(m(MatchPattern::Contains("Mid".into()), true).matches("xmidy"));
    let re = m(MatchPattern::SafeRegex(regex("a+")), true);
    assert!(re.matches("aaa"));
    assert!(!re.matches("aaab"), "a regex matches the whole value");
    assert!(!re.matches("AAA"), "ignore_case does not apply to regexes");
}

#[test]
#[allow(deprecated)]
fn conversion_errors_name_the_field() {
    let err = |m: StringMatcher| StrMatch::from_proto("p.m", &m).unwrap_err();
    let (field, reason) = err(string(MatchPattern::SafeRegex(regex("(")), false));
    assert_eq!(field, "p.m.safe_regex.regex");
    assert!(
        reason.starts_with("invalid regex:") && !reason.contains('\n'),
        "{reason}"
    );
    assert_eq!(err(StringMatcher::default()).0, "p.m");
    #[allow(deprecated)]
    let google = RegexMatcher {
        regex: "a".into(),
        engine_type: Some(regex_matcher::EngineType::GoogleRe2(Default::default())),
    };
    assert!(
        full_regex("r", &google).is_ok(),
        "google_re2 is for the caller to refuse"
    );
    let bad = |name: &str| HeaderSource::parse("h", name, false).unwrap_err();
    assert_eq!(
        bad(":status"),
        (
            "h.name".into(),
            "pseudo-header \":status\" is not supported".into()
        )
    );
    assert!(bad("a b").1.starts_with("invalid header name"));
    let spec = Some(Spec::SafeRegexMatch(regex("[")));
    let (field, _) = HeaderCond::from_proto("h", &header("x", spec, false, false)).unwrap_err();
    assert_eq!(field, "h.safe_regex_match.regex");
}

#[test]
fn present_and_absent() {
    assert!(
        cond(None, false, false).matches(Some("")),
        "no specifier means present"
    );
    assert!(!cond(None, false, false).matches(None));
    assert!(cond(Some(Spec::PresentMatch(false)), false, false).matches(None));
    assert!(cond(Some(Spec::PresentMatch(true)), true, false).matches(None));
    // treat_missing_header_as_empty does not make a missing header present.
    assert!(!cond(Some(Spec::PresentMatch(true)), false, true).matches(None));
}

#[test]
#[allow(deprecated)]
fn invert_and_missing_as_empty() {
    let prefix = || Some(Spec::PrefixMatch("a".into()));
    assert!(cond(prefix(), false, false).matches(Some("abc")));
    assert!(!cond(prefix(), true, false).matches(Some("abc")));
    // A missing header fails the condition, inverted or not...
    assert!(!cond(prefix(), false, false).matches(None));
    assert!(!cond(prefix(), true, false).matches(None));
    // ...unless it counts as the empty value.
    assert!(cond(prefix(), true, true).matches(None));
    let empty = Some(Spec::StringMatch(string(
        MatchPattern::Exact(String::new()),
        false,
    )));
    assert!(cond(empty, false, true).matches(None));
}

#[test]
#[allow(deprecated)]
fn deprecated_specifiers_and_range() {
    let exact = |v: &str| Some(Spec::ExactMatch(v.into()));
    assert!(cond(exact("v"), false, false).matches(Some("v")));
    assert!(!cond(exact("v"), false, false).matches(Some("V")));
    assert!(
        cond(exact(""), false, false).matches(Some("any")),
        "empty exact matches any"
    );
    assert!(cond(Some(Spec::SuffixMatch("z".into())), false, false).matches(Some("xyz")));
    assert!(cond(Some(Spec::ContainsMatch("y".into())), false, false).matches(Some("xyz")));
    let re = Some(Spec::SafeRegexMatch(regex("x.z")));
    assert!(cond(re, false, false).matches(Some("xyz")));
    let range = || Some(Spec::RangeMatch(Int64Range { start: -5, end: 10 }));
    assert!(cond(range(), false, false).matches(Some("-5")));
    assert!(
        !cond(range(), false, false).matches(Some("10")),
        "end is exclusive"
    );
    assert!(!cond(range(), false, false).matches(Some("1.5")));
    assert!(cond(range(), true, false).matches(Some("abc")));
}

#[test]
fn values_come_from_pseudo_headers_or_joined_headers() {
    let mut headers = HeaderMap::new();
    headers.append("x-a", HeaderValue::from_static("1"));
    headers.append("x-a", HeaderValue::from_static("2"));
    headers.insert("host", HeaderValue::from_static("h.example"));
    let pseudo = Pseudo {
        method: Some("GET"),
        authority: Some("a.example"),
        ..Pseudo::default()
    };
    let m = |name: &str, v: &str, host_is_authority: bool| {
        let spec = Some(Spec::StringMatch(string(
            MatchPattern::Exact(v.into()),
            false,
        )));
        HeaderMatch::from_proto("h", &header(name, spec, false, false), host_is_authority)
            .unwrap()
            .matches(&pseudo, &headers)
    };
    assert!(m("X-A", "1,2", false), "several values are joined with ','");
    assert!(m(":METHOD", "GET", false));
    assert!(m(":authority", "a.example", false));
    assert!(m("host", "h.example", false));
    assert!(m("host", "a.example", true));
    assert!(!m(":path", "", false), "an absent pseudo-header is missing");
    assert!(!m("x-missing", "", false));
}
