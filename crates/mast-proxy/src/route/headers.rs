//! Header manipulation (`*_headers_to_add` / `*_headers_to_remove`) with Envoy's semantics:
//! removals first, then each addition per its `append_action`. Names and values are parsed
//! once at conversion; values are literal (`%%` is Envoy's escape for `%`; any other `%`
//! would be a formatter command, which mastd never emits, so it is refused).

use envoy_types::pb::envoy::config::core::v3::HeaderValueOption;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::proto::{Ctx, join};
use crate::error::ConfigError;

/// What to do with one added header (Envoy's `HeaderAppendAction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AppendAction {
    /// `APPEND_IF_EXISTS_OR_ADD`: add another value.
    Append,
    /// `ADD_IF_ABSENT`: add only when the header is absent.
    AddIfAbsent,
    /// `OVERWRITE_IF_EXISTS_OR_ADD`: replace every value, or add.
    Overwrite,
    /// `OVERWRITE_IF_EXISTS`: replace only when present.
    OverwriteIfExists,
}

/// A precomputed set of header removals and additions.
#[derive(Clone, Debug, Default)]
pub struct HeaderMutation {
    remove: Vec<HeaderName>,
    add: Vec<(HeaderName, HeaderValue, AppendAction)>,
}

impl HeaderMutation {
    /// Whether the mutation does nothing.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty()
    }

    /// Envoy's order: removals, then set/add per append_action (OVERWRITE_IF_EXISTS_OR_ADD,
    /// APPEND_IF_EXISTS_OR_ADD, ADD_IF_ABSENT, OVERWRITE_IF_EXISTS). Envoy's %VAR% formatting is
    /// not used by mastd: values are literal.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value, action) in &self.add {
            match action {
                AppendAction::Append => {
                    headers.append(name.clone(), value.clone());
                }
                AppendAction::AddIfAbsent => {
                    if !headers.contains_key(name) {
                        headers.insert(name.clone(), value.clone());
                    }
                }
                AppendAction::Overwrite => {
                    headers.insert(name.clone(), value.clone());
                }
                AppendAction::OverwriteIfExists => {
                    if headers.contains_key(name) {
                        headers.insert(name.clone(), value.clone());
                    }
                }
            }
        }
    }

    /// Converts the fields `<kind>_headers_to_add` and `<kind>_headers_to_remove` of the
    /// message at `path` (`kind`: `request` or `response`).
    pub(crate) fn from_fields(
        ctx: Ctx<'_>,
        path: &str,
        kind: &str,
        add: &[HeaderValueOption],
        remove: &[String],
    ) -> Result<Self, ConfigError> {
        let add_path = join(path, &format!("{kind}_headers_to_add"));
        let remove_path = join(path, &format!("{kind}_headers_to_remove"));
        Self::from_proto(ctx, &add_path, add, &remove_path, remove)
    }

    /// Converts `add` (at `add_path`) and `remove` (at `remove_path`).
    pub(crate) fn from_proto(
        ctx: Ctx<'_>,
        add_path: &str,
        add: &[HeaderValueOption],
        remove_path: &str,
        remove: &[String],
    ) -> Result<Self, ConfigError> {
        let mut out = HeaderMutation::default();
        for (i, name) in remove.iter().enumerate() {
            out.remove
                .push(modifiable_name(ctx, &format!("{remove_path}[{i}]"), name)?);
        }
        for (i, opt) in add.iter().enumerate() {
            if let Some(entry) = option(ctx, &format!("{add_path}[{i}]"), opt)? {
                out.add.push(entry);
            }
        }
        Ok(out)
    }
}

/// A header name that may be added or removed: not a pseudo-header, not `host`.
fn modifiable_name(ctx: Ctx<'_>, path: &str, name: &str) -> Result<HeaderName, ConfigError> {
    if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
        return Err(ctx.err(
            path,
            format!("{name:?}: pseudo-headers and host may not be modified"),
        ));
    }
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|e| ctx.err(path, format!("invalid header name {name:?}: {e}")))
}

/// One `HeaderValueOption`; `None` when Envoy would skip it (empty value without
/// `keep_empty_value`).
#[allow(deprecated)]
fn option(
    ctx: Ctx<'_>,
    path: &str,
    opt: &HeaderValueOption,
) -> Result<Option<(HeaderName, HeaderValue, AppendAction)>, ConfigError> {
    let Some(h) = &opt.header else {
        return Err(ctx.err(join(path, "header"), "required"));
    };
    let name = modifiable_name(ctx, &join(path, "header.key"), &h.key)?;
    let raw = if h.raw_value.is_empty() {
        h.value.as_bytes()
    } else if h.value.is_empty() {
        h.raw_value.as_slice()
    } else {
        return Err(ctx.err(
            join(path, "header.raw_value"),
            "both value and raw_value are set",
        ));
    };
    let literal = unescape(raw).ok_or_else(|| {
        ctx.err(
            join(path, "header.value"),
            "formatter commands (%...%) are not supported",
        )
    })?;
    let value = HeaderValue::from_bytes(&literal).map_err(|e| {
        ctx.err(
            join(path, "header.value"),
            format!("invalid header value: {e}"),
        )
    })?;
    let action = append_action(ctx, path, opt)?;
    if literal.is_empty() && !opt.keep_empty_value {
        return Ok(None);
    }
    Ok(Some((name, value, action)))
}

/// The action, from `append_action` or the deprecated `append`.
#[allow(deprecated)]
fn append_action(
    ctx: Ctx<'_>,
    path: &str,
    opt: &HeaderValueOption,
) -> Result<AppendAction, ConfigError> {
    if let Some(append) = &opt.append {
        if opt.append_action != 0 {
            return Err(ctx.err(
                join(path, "append"),
                "append and append_action are both set",
            ));
        }
        return Ok(if append.value {
            AppendAction::Append
        } else {
            AppendAction::Overwrite
        });
    }
    Ok(match opt.append_action {
        0 => AppendAction::Append,
        1 => AppendAction::AddIfAbsent,
        2 => AppendAction::Overwrite,
        3 => AppendAction::OverwriteIfExists,
        other => {
            return Err(ctx.err(
                join(path, "append_action"),
                format!("unknown value {other}"),
            ));
        }
    })
}

/// A literal value: `%%` becomes `%`; a lone `%` (a formatter command) gives `None`.
fn unescape(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            if raw.get(i + 1) != Some(&b'%') {
                return None;
            }
            i += 1;
        }
        out.push(raw[i]);
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::HeaderValue as PbHeaderValue;

    fn opt(key: &str, value: &str, action: i32) -> HeaderValueOption {
        HeaderValueOption {
            header: Some(PbHeaderValue {
                key: key.into(),
                value: value.into(),
                raw_value: vec![],
            }),
            append_action: action,
            ..Default::default()
        }
    }

    const CTX: Ctx<'static> = Ctx { name: "t" };

    fn mutation(add: &[HeaderValueOption], remove: &[&str]) -> Result<HeaderMutation, ConfigError> {
        let remove: Vec<String> = remove.iter().map(|s| s.to_string()).collect();
        HeaderMutation::from_proto(CTX, "add", add, "remove", &remove)
    }

    #[test]
    fn order_and_actions() {
        let m = mutation(
            &[
                opt("x-set", "new", 2),
                opt("x-app", "2", 0),
                opt("x-absent", "a", 1),
                opt("x-present", "p", 1),
                opt("x-ovr-missing", "o", 3),
                opt("x-ovr", "o", 3),
                opt("x-gone", "back", 0),
            ],
            &["x-gone", "x-drop"],
        )
        .unwrap();
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("x-set", "old1"),
            ("x-set", "old2"),
            ("x-app", "1"),
            ("x-present", "keep"),
            ("x-ovr", "before"),
            ("x-gone", "x"),
            ("x-drop", "y"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        m.apply(&mut h);
        let all =
            |k: &str| -> Vec<&str> { h.get_all(k).iter().map(|v| v.to_str().unwrap()).collect() };
        assert_eq!(all("x-set"), ["new"]);
        assert_eq!(all("x-app"), ["1", "2"]);
        assert_eq!(all("x-absent"), ["a"]);
        assert_eq!(all("x-present"), ["keep"]);
        assert!(all("x-ovr-missing").is_empty());
        assert_eq!(all("x-ovr"), ["o"]);
        assert_eq!(all("x-gone"), ["back"], "removal happens before additions");
        assert!(all("x-drop").is_empty());
    }

    #[test]
    fn empty_values_and_escapes() {
        let mut keep = opt("x-empty-kept", "", 2);
        keep.keep_empty_value = true;
        let m = mutation(&[opt("x-empty", "", 2), keep, opt("x-pct", "50%%", 2)], &[]).unwrap();
        let mut h = HeaderMap::new();
        m.apply(&mut h);
        assert!(!h.contains_key("x-empty"));
        assert_eq!(h["x-empty-kept"], "");
        assert_eq!(h["x-pct"], "50%");
        assert!(mutation(&[], &[]).unwrap().is_empty());
    }

    #[test]
    fn refusals() {
        let e = mutation(&[opt("x", "%REQ(x)%", 2)], &[]).unwrap_err();
        assert_eq!(e.field, "add[0].header.value");
        let e = mutation(&[opt("x", "v", 9)], &[]).unwrap_err();
        assert_eq!(e.field, "add[0].append_action");
        let e = mutation(&[opt(":path", "/", 2)], &[]).unwrap_err();
        assert_eq!(e.field, "add[0].header.key");
        let e = mutation(&[], &["ok", "host"]).unwrap_err();
        assert_eq!(e.field, "remove[1]");
        let e = mutation(&[opt("bad name", "v", 2)], &[]).unwrap_err();
        assert_eq!(e.field, "add[0].header.key");
    }
}
