//! A small, strict parser for the Prometheus text exposition format (and the OpenMetrics
//! text that `prometheus-client` writes): `name{label="value",…} value [timestamp]` lines,
//! `#` comments (`HELP`, `TYPE`, `UNIT`, `EOF`) skipped, escapes `\\`, `\"` and `\n` in label
//! values, `+Inf` / `-Inf` / `NaN` values, OpenMetrics exemplars (` # {…} v`) dropped.
//! Anything else is an error naming the line: a proxy that answers garbage is marked, not
//! half-read.

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name as written (`istio_requests_total`, `…_bucket`).
    pub name: String,
    /// The labels, sorted by name.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a text could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// Parses a whole exposition text, keeping the samples whose name `keep` accepts.
pub fn parse(text: &str, keep: impl Fn(&str) -> bool) -> Result<Vec<Sample>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r').trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fail = |reason: String| ParseError {
            line: i + 1,
            reason,
        };
        let name_end = line.find(|c: char| !is_name_char(c)).unwrap_or(line.len());
        let name = &line[..name_end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(fail(format!("no metric name in {raw:?}")));
        }
        if !keep(name) {
            continue;
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(after) = rest.strip_prefix('{') {
            let (parsed, tail) = parse_labels(after).map_err(fail)?;
            labels = parsed;
            rest = tail;
        }
        let value = parse_value(rest).map_err(fail)?;
        labels.sort();
        out.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(out)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Parses `k="v",k2="v2"}` (after the `{`); returns the labels and what follows the `}`.
/// Label pairs, in the order written.
type Labels = Vec<(String, String)>;

fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(tail) = s.strip_prefix('}') {
            return Ok((labels, tail));
        }
        let key_end = s.find(|c: char| !is_name_char(c)).unwrap_or(s.len());
        let key = &s[..key_end];
        if key.is_empty() {
            return Err(format!("expected a label name at {s:?}"));
        }
        s = s[key_end..].trim_start();
        s = s
            .strip_prefix('=')
            .ok_or_else(|| format!("expected '=' after label {key}"))?
            .trim_start();
        s = s
            .strip_prefix('"')
            .ok_or_else(|| format!("expected '\"' to open the value of label {key}"))?;
        let (value, tail) =
            parse_quoted(s).ok_or_else(|| format!("unterminated value of {key}"))?;
        labels.push((key.to_owned(), value));
        s = tail.trim_start();
        if let Some(tail) = s.strip_prefix(',') {
            s = tail;
        } else if !s.starts_with('}') {
            return Err(format!("expected ',' or '}}' after label {key}"));
        }
    }
}

/// The unescaped content up to the closing quote, and what follows it.
fn parse_quoted(s: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            other => value.push(other),
        }
    }
    None
}

/// ` value [timestamp] [# exemplar]`.
fn parse_value(s: &str) -> Result<f64, String> {
    let s = match s.find(" # ") {
        Some(i) => &s[..i],
        None => s,
    };
    let mut parts = s.split_ascii_whitespace();
    let text = parts.next().ok_or("no value")?;
    if let Some(ts) = parts.next() {
        ts.parse::<f64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if let Some(extra) = parts.next() {
        return Err(format!("unexpected {extra:?} after the value"));
    }
    match text {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        t => t.parse().map_err(|_| format!("bad value {t:?}")),
    }
}

/// The `le` bound of a bucket label (`+Inf` included).
pub fn parse_le(le: &str) -> Option<f64> {
    match le {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        other => other.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn all(text: &str) -> Result<Vec<Sample>, ParseError> {
        parse(text, |_| true)
    }

    #[test]
    fn reads_samples_labels_and_comments() {
        let text = "# HELP istio_requests Requests.\n# TYPE istio_requests counter\n\
            istio_requests_total{reporter=\"source\",response_code=\"200\"} 12\n\
            \n  up 1 1700000000000\n# EOF\n";
        let s = all(text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "istio_requests_total");
        assert_eq!(s[0].label("reporter"), Some("source"));
        assert_eq!(s[0].label("response_code"), Some("200"));
        assert_eq!(s[0].value, 12.0);
        assert_eq!(s[1].name, "up");
        assert!(s[1].labels.is_empty());
    }

    #[test]
    fn unescapes_values_and_sorts_labels() {
        let s = all(r#"m{z="a\"b",a="c\\d\ne", } 1.5e3"#).unwrap();
        assert_eq!(
            s[0].labels,
            vec![
                ("a".to_owned(), "c\\d\ne".to_owned()),
                ("z".to_owned(), "a\"b".to_owned())
            ]
        );
        assert_eq!(s[0].value, 1500.0);
    }

    #[test]
    fn special_values_and_exemplars() {
        let s =
            all("a +Inf\nb -Inf\nc NaN\nd_bucket{le=\"+Inf\"} 3 # {trace_id=\"x\"} 1\n").unwrap();
        assert_eq!(s[0].value, f64::INFINITY);
        assert_eq!(s[1].value, f64::NEG_INFINITY);
        assert!(s[2].value.is_nan());
        assert_eq!(s[3].value, 3.0);
        assert_eq!(parse_le("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_le("0.5"), Some(0.5));
    }

    #[test]
    fn keep_filters_without_parsing_the_rest_of_the_line() {
        let s = parse("skip{this is not parsed\nkeep 2\n", |n| n == "keep").unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].value, 2.0);
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line) in [
            ("ok 1\nbad{a=\"1\" 2\n", 2),
            ("x{a=1} 2\n", 1),
            ("x{a=\"1\"}\n", 1),
            ("x 1 2 3\n", 1),
            ("x abc\n", 1),
            ("ok 1\n\n{a=\"b\"} 1\n", 3),
            ("x{a=\"unterminated} 1\n", 1),
        ] {
            let e = all(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
        }
    }
}
