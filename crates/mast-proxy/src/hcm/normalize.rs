//! Request path normalisation as Envoy's HCM does it before any filter or route sees the
//! path (`ConnectionManagerUtility::maybeNormalizePath`): the fragment is dropped;
//! `path_with_escaped_slashes_action` unescapes `%2F`/`%5C` (or rejects / redirects);
//! `normalize_path` applies `PathUtil::canonicalPath` (percent-decoding of unreserved
//! characters, `\` as `/`, RFC 3986 dot-segment removal, `%00` rejected); `merge_slashes`
//! collapses repeated slashes. The query is never touched. Istio's normalisation test table
//! is the reference (see the tests).

/// `path_with_escaped_slashes_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EscapedSlashes {
    /// `KEEP_UNCHANGED` (and `IMPLEMENTATION_SPECIFIC_DEFAULT`).
    #[default]
    Keep,
    /// `REJECT_REQUEST`: 400.
    Reject,
    /// `UNESCAPE_AND_REDIRECT`: redirect to the unescaped path.
    Redirect,
    /// `UNESCAPE_AND_FORWARD`.
    Forward,
}

impl EscapedSlashes {
    /// From the proto enum value; `None` for an unknown value.
    pub fn from_proto(v: i32) -> Option<Self> {
        Some(match v {
            0 | 1 => EscapedSlashes::Keep,
            2 => EscapedSlashes::Reject,
            3 => EscapedSlashes::Redirect,
            4 => EscapedSlashes::Forward,
            _ => return None,
        })
    }
}

/// The HCM's path settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PathConfig {
    /// `normalize_path`.
    pub normalize: bool,
    /// `merge_slashes`.
    pub merge_slashes: bool,
    /// `path_with_escaped_slashes_action`.
    pub escaped_slashes: EscapedSlashes,
}

/// What normalisation decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Normalized {
    /// The path is fine as it is.
    Unchanged,
    /// Continue with this path (and query).
    Changed(String),
    /// 400 Bad Request.
    Reject,
    /// Redirect the client to this path (and query).
    Redirect(String),
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte a `%XY` at `i` encodes.
fn escaped(p: &[u8], i: usize) -> Option<u8> {
    if p.get(i) != Some(&b'%') {
        return None;
    }
    Some(hex(*p.get(i + 1)?)? << 4 | hex(*p.get(i + 2)?)?)
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Normalises `path_and_query` under `cfg`.
pub fn normalize(path_and_query: &str, cfg: PathConfig) -> Normalized {
    let no_fragment = path_and_query
        .find('#')
        .map_or(path_and_query, |i| &path_and_query[..i]);
    let (path, query) = match no_fragment.find('?') {
        Some(i) => no_fragment.split_at(i),
        None => (no_fragment, ""),
    };
    let mut out = std::borrow::Cow::Borrowed(path);
    let mut redirect = false;
    if cfg.escaped_slashes != EscapedSlashes::Keep && has_escaped_slash(path) {
        match cfg.escaped_slashes {
            EscapedSlashes::Reject => return Normalized::Reject,
            EscapedSlashes::Redirect => redirect = true,
            _ => {}
        }
        out = unescape_slashes(path).into();
    }
    if cfg.normalize && path.starts_with('/') {
        match canonical(&out) {
            None => return Normalized::Reject,
            Some(c) => out = c.into(),
        }
    }
    if cfg.merge_slashes && out.contains("//") {
        out = merge(&out).into();
    }
    if out == path && no_fragment.len() == path_and_query.len() {
        return Normalized::Unchanged;
    }
    let full = format!("{out}{query}");
    if redirect {
        Normalized::Redirect(full)
    } else {
        Normalized::Changed(full)
    }
}

fn has_escaped_slash(path: &str) -> bool {
    let p = path.as_bytes();
    (0..p.len()).any(|i| matches!(escaped(p, i), Some(b'/' | b'\\')))
}

/// `%2F` → `/`, `%5C` → `\` (Envoy's `PathUtil::unescapeSlashes`).
fn unescape_slashes(path: &str) -> String {
    let p = path.as_bytes();
    let mut out = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        match escaped(p, i) {
            Some(b @ (b'/' | b'\\')) => {
                out.push(b);
                i += 3;
            }
            _ => {
                out.push(p[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Envoy's `PathUtil::canonicalPath` (Chromium's path canonicaliser): `None` when the path
/// cannot be made valid (`%00`).
fn canonical(path: &str) -> Option<String> {
    let path = dot_params(path);
    let p = path.as_bytes();
    let mut flat = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        let b = p[i];
        if let Some(d) = escaped(p, i) {
            if d == 0 {
                return None;
            }
            if unreserved(d) {
                flat.push(d);
            } else {
                flat.extend_from_slice(&p[i..i + 3]);
            }
            i += 3;
            continue;
        }
        match b {
            b'\\' => flat.push(b'/'),
            b if b <= b' ' || b >= 0x7f || matches!(b, b'"' | b'<' | b'>' | b'`') => {
                flat.extend_from_slice(format!("%{b:02X}").as_bytes());
            }
            b => flat.push(b),
        }
        i += 1;
    }
    let flat = String::from_utf8_lossy(&flat).into_owned();
    Some(remove_dot_segments(&flat))
}

/// A segment written `.;…` or `..;…` (literal dots, then a path parameter) is a dot segment
/// for Envoy's canonicaliser (`/a/..;x/b` → `/b`); percent-encoded dots followed by `;` are
/// not. Rewrites such segments to `.` / `..`.
fn dot_params(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.contains(".;") {
        return path.into();
    }
    let mut out = String::with_capacity(path.len());
    let mut start = 0;
    let ends = path
        .char_indices()
        .filter(|(_, c)| matches!(c, '/' | '\\'))
        .map(|(i, _)| i)
        .chain([path.len()]);
    for end in ends {
        let seg = &path[start..end];
        out.push_str(if seg.starts_with("..;") {
            ".."
        } else if seg.starts_with(".;") {
            "."
        } else {
            seg
        });
        if let Some(sep) = path[end..].chars().next() {
            out.push(sep);
        }
        start = end + 1;
    }
    out.into()
}

/// RFC 3986 §5.2.4 on an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let Some(rest) = path.strip_prefix('/') else {
        return path.to_owned();
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    let mut trailing = false;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => trailing = i == last,
            ".." => {
                out.pop();
                trailing = i == last;
            }
            s => {
                out.push(s);
                trailing = false;
            }
        }
    }
    let mut result = String::with_capacity(path.len());
    for s in &out {
        result.push('/');
        result.push_str(s);
    }
    if result.is_empty() || trailing {
        result.push('/');
    }
    result
}

fn merge(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: PathConfig = PathConfig {
        normalize: false,
        merge_slashes: false,
        escaped_slashes: EscapedSlashes::Keep,
    };
    const BASE: PathConfig = PathConfig {
        normalize: true,
        ..NONE
    };
    const MERGE: PathConfig = PathConfig {
        merge_slashes: true,
        ..BASE
    };
    const DECODE: PathConfig = PathConfig {
        escaped_slashes: EscapedSlashes::Forward,
        ..MERGE
    };

    fn run(cfg: PathConfig, input: &str) -> String {
        match normalize(input, cfg) {
            Normalized::Unchanged => input.to_owned(),
            Normalized::Changed(p) | Normalized::Redirect(p) => p,
            Normalized::Reject => "400".to_owned(),
        }
    }

    #[test]
    fn normalizes_dot_segments_and_keeps_query() {
        assert_eq!(
            normalize("/a/./b/../c?x=/../", BASE),
            Normalized::Changed("/a/c?x=/../".into())
        );
        assert_eq!(
            normalize("/a/b/..", BASE),
            Normalized::Changed("/a/".into())
        );
        assert_eq!(
            normalize("/../../x", BASE),
            Normalized::Changed("/x".into())
        );
        assert_eq!(
            normalize("/a//b", MERGE),
            Normalized::Changed("/a/b".into())
        );
        assert_eq!(normalize("/a//b", BASE), Normalized::Unchanged);
        assert_eq!(normalize("/plain/path", BASE), Normalized::Unchanged);
    }

    /// istio/istio tests/integration/security/normalization_test.go, mode by mode.
    #[test]
    fn istio_normalization_table() {
        #[rustfmt::skip]
        let table: &[(&str, [&str; 4])] = &[
            // input                  NONE, BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES
            ("/", ["/", "/", "/", "/"]),
            ("/app#foo", ["/app", "/app", "/app", "/app"]),
            ("/app/", ["/app/", "/app/", "/app/", "/app/"]),
            ("/app/../admin", ["/app/../admin", "/admin", "/admin", "/admin"]),
            ("/app", ["/app", "/app", "/app", "/app"]),
            ("/app//", ["/app//", "/app//", "/app/", "/app/"]),
            ("/app/%2f", ["/app/%2f", "/app/%2f", "/app/%2f", "/app/"]),
            ("/app%2f/", ["/app%2f/", "/app%2f/", "/app%2f/", "/app/"]),
            ("/xyz%30..//abc", ["/xyz%30..//abc", "/xyz0..//abc", "/xyz0../abc", "/xyz0../abc"]),
            ("/app/%2E./admin", ["/app/%2E./admin", "/admin", "/admin", "/admin"]),
            (r"/app\admin", [r"/app\admin", "/app/admin", "/app/admin", "/app/admin"]),
            (r"/app/\/\/\admin", [r"/app/\/\/\admin", "/app//////admin", "/app/admin", "/app/admin"]),
            (r"/%2Fapp%5cadmin%5Cabc", [r"/%2Fapp%5cadmin%5Cabc", r"/%2Fapp%5cadmin%5Cabc", r"/%2Fapp%5cadmin%5Cabc", "/app/admin/abc"]),
            (r"/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\abc", [r"/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\abc", r"/%5Capp%2f%5c%2F..%2fadmin%5c/abc", r"/%5Capp%2f%5c%2F..%2fadmin%5c/abc", "/app/admin/abc"]),
            ("/app//../admin", ["/app//../admin", "/app/admin", "/app/admin", "/app/admin"]),
            ("/app//../../admin", ["/app//../../admin", "/admin", "/admin", "/admin"]),
        ];
        for (input, want) in table {
            for (cfg, want) in [NONE, BASE, MERGE, DECODE].into_iter().zip(want) {
                // NONE does not strip the fragment in Istio's table because clients never
                // send it; Envoy drops it in every mode.
                let want = if *want == "/app#foo" { "/app" } else { want };
                assert_eq!(run(cfg, input), *want, "{input} under {cfg:?}");
            }
        }
        let decode_only = [
            ("/%c0%2e%c0%2e/admin", "/%c0.%c0./admin"),
            ("/%c0%2fadmin", "/%c0/admin"),
            ("/admin%00", "400"),
        ];
        for (input, want) in decode_only {
            assert_eq!(run(DECODE, input), want, "{input}");
        }
    }

    #[test]
    fn istio_not_normalized_table() {
        let same = [
            "/0x2e0x2e/admin",
            "/0x2e0x2e0x2fadmin",
            "/0x2e0x2e0x5cadmin",
            "/0x2f0x2fadmin",
            "/0x5c0x5cadmin",
            "/%25c0%25ae%25c1%259cadmin",
            "/%25c0%25ae%25c0%25ae/admin",
            "/%25c0%25afadmin",
            "/%25c1%259cadmin",
            "/%252e%252e/admin",
            "/%252e%252e%252fadmin",
            "/%c1%9cadmin",
            "/%c0%ae%c0%ae/admin",
            "/%c0%afadmin",
            "/.../admin",
            "/..../admin",
            "/;/admin",
            "/admin;a=b",
            "/admin;a=b/xyz",
            "/admin,a=b/xyz",
            "/Admin",
            "/ADMIN",
        ];
        for input in same {
            assert_eq!(run(DECODE, input), input);
        }
        // Istio's table expects `/..;/admin` unchanged; Envoy 1.40 treats a segment written
        // `..;…` as `..` (checked against Envoy in tests/authz/envoy.rs).
        let params = [
            ("/..;/admin", "/admin"),
            ("/a/..;foo/x", "/x"),
            ("/a/.;foo/x", "/a/x"),
            ("/a/b/..;?q", "/a/?q"),
            ("/a/%2e.;/x", "/a/..;/x"),
            ("/a/...;/x", "/a/...;/x"),
            ("/a/..%3b/x", "/a/..%3b/x"),
        ];
        for (input, want) in params {
            assert_eq!(run(DECODE, input), want, "{input}");
        }
    }

    /// Istio's "PercentEncoded" group: `/admin%XX` for every byte but 0.
    #[test]
    fn istio_percent_encoded_table() {
        for i in 1u8..=0xff {
            let input = format!("/admin%{i:02x}");
            let want = match i {
                b'/' | b'\\' => "/admin/".to_owned(),
                b if unreserved(b) => format!("/admin{}", char::from(b)),
                _ => input.clone(),
            };
            assert_eq!(run(DECODE, &input), want, "{input}");
        }
    }

    #[test]
    fn escaped_slash_actions_and_query() {
        let reject = PathConfig {
            escaped_slashes: EscapedSlashes::Reject,
            ..BASE
        };
        assert_eq!(normalize("/a%2Fb", reject), Normalized::Reject);
        assert_eq!(normalize("/a/b", reject), Normalized::Unchanged);
        let redirect = PathConfig {
            escaped_slashes: EscapedSlashes::Redirect,
            ..BASE
        };
        assert_eq!(
            normalize("/a%2F..%2Fb?x=%2F", redirect),
            Normalized::Redirect("/b?x=%2F".to_owned())
        );
        assert_eq!(
            normalize("/a/./b?q=/../", BASE),
            Normalized::Changed("/a/b?q=/../".to_owned())
        );
        assert_eq!(normalize("/plain?x", BASE), Normalized::Unchanged);
        assert_eq!(
            normalize("/a/b/..", BASE),
            Normalized::Changed("/a/".to_owned())
        );
    }
}
