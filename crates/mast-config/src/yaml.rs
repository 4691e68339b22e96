//! YAML (and JSON) text to JSON values, keeping the source line of every field.
//!
//! Owns the split of a multi-document stream into documents, the conversion of YAML
//! scalars by the YAML 1.2 core schema, anchors and aliases, and [`LineIndex`], the map
//! from a field path such as `spec.http[1].route[0].weight` to its line in the file.
//! A syntax error in one document does not hide the other documents of the same file.

use std::collections::HashMap;

use granit_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

/// A YAML syntax error, with the 1-based line where the parser stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct SyntaxError {
    /// 1-based line in the file.
    pub line: u32,
    /// What the parser reported.
    pub message: String,
}

/// Field paths (`spec.http[1].route[0]`) mapped to the 1-based line where they start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineIndex {
    lines: HashMap<String, u32>,
}

impl LineIndex {
    /// The line of `path`, or of its closest recorded ancestor.
    pub fn line_of(&self, path: &str) -> Option<u32> {
        let mut p = path;
        loop {
            if let Some(line) = self.lines.get(p) {
                return Some(*line);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }

    /// The entries under `prefix` (a `kind: List` item), re-rooted at the item.
    pub fn rebase(&self, prefix: &str) -> LineIndex {
        let lines = self
            .lines
            .iter()
            .filter_map(|(k, v)| {
                let rest = k.strip_prefix(prefix)?;
                let rest = rest.strip_prefix('.').or(rest.is_empty().then_some(""))?;
                Some((rest.to_owned(), *v))
            })
            .collect();
        LineIndex { lines }
    }

    fn insert(&mut self, path: &str, line: u32) {
        self.lines.entry(path.to_owned()).or_insert(line);
    }
}

/// One parsed document: its value, the line where its content starts, and its line index.
#[derive(Debug, Clone)]
pub struct Document {
    /// 1-based line of the document's first content.
    pub line: u32,
    /// The document as a JSON value (`Null` for an empty document).
    pub value: Value,
    /// Where each field starts.
    pub lines: LineIndex,
}

/// Splits `text` into documents and parses each one. A document with a syntax error
/// yields `Err` without affecting its neighbours.
pub fn parse_documents(text: &str) -> Vec<Result<Document, SyntaxError>> {
    split_documents(text)
        .into_iter()
        .map(|(offset, chunk)| parse_one(chunk, offset))
        .filter(|r| !matches!(r, Ok(d) if d.value.is_null()))
        .collect()
}

/// Splits on `---` / `...` lines at column 0: YAML forbids these markers inside content
/// at column 0, so this split is exact and lets one document fail alone.
fn split_documents(text: &str) -> Vec<(u32, &str)> {
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut start_line = 0u32;
    let mut pos = 0usize;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_marker = |m: &str| {
            bare == m || bare.starts_with(&format!("{m} ")) || bare.starts_with(&format!("{m}\t"))
        };
        if is_marker("---") || is_marker("...") {
            out.push((start_line, &text[start..pos]));
            // Content after `--- ` on the same line stays in the next document.
            let content_start = if is_marker("---") {
                pos + 3
            } else {
                pos + line.len()
            };
            start = content_start;
            start_line = u32::try_from(n).unwrap_or(u32::MAX);
        }
        pos += line.len();
    }
    out.push((start_line, &text[start..]));
    out
}

fn parse_one(chunk: &str, line_offset: u32) -> Result<Document, SyntaxError> {
    let mut builder = Builder {
        offset: line_offset,
        anchors: HashMap::new(),
        lines: LineIndex::default(),
        first_line: None,
    };
    let mut parser = Parser::new_from_str(chunk);
    let mut events = Vec::new();
    for ev in &mut parser {
        match ev {
            // Comments and anchor metadata are presentation, not data.
            Ok((
                ev @ (Event::Scalar(..)
                | Event::Alias(_)
                | Event::SequenceStart(..)
                | Event::SequenceEnd
                | Event::MappingStart(..)
                | Event::MappingEnd),
                span,
            )) => events.push((ev, span)),
            Ok(_) => {}
            Err(e) => {
                return Err(SyntaxError {
                    line: line_offset + u32::try_from(e.marker().line()).unwrap_or(0),
                    message: e.info(),
                });
            }
        }
    }
    let mut it = events.into_iter().peekable();
    let mut value = Value::Null;
    while let Some((ev, span)) = it.next() {
        value = builder.node(ev, span, &mut it, "")?;
    }
    Ok(Document {
        line: builder.first_line.unwrap_or(line_offset + 1),
        value,
        lines: builder.lines,
    })
}

type Events<'a> = std::iter::Peekable<std::vec::IntoIter<(Event<'a>, Span)>>;

struct Builder {
    offset: u32,
    anchors: HashMap<usize, Value>,
    lines: LineIndex,
    first_line: Option<u32>,
}

impl Builder {
    fn line(&self, span: &Span) -> u32 {
        self.offset + u32::try_from(span.start.line()).unwrap_or(0)
    }

    fn node<'a>(
        &mut self,
        ev: Event<'a>,
        span: Span,
        it: &mut Events<'a>,
        path: &str,
    ) -> Result<Value, SyntaxError> {
        let line = self.line(&span);
        self.first_line.get_or_insert(line);
        let (value, anchor) = match ev {
            Event::Scalar(text, style, anchor, tag) => (
                scalar(&text, style, tag.as_deref().and_then(|t| t.core_suffix())),
                anchor,
            ),
            Event::Alias(id) => (
                self.anchors.get(&id).cloned().ok_or_else(|| SyntaxError {
                    line,
                    message: "alias refers to an unknown anchor".into(),
                })?,
                0,
            ),
            Event::SequenceStart(_, anchor, _) => (self.sequence(it, path)?, anchor),
            Event::MappingStart(_, anchor, _) => (self.mapping(it, path)?, anchor),
            _ => (Value::Null, 0),
        };
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        Ok(value)
    }

    fn next<'a>(&mut self, it: &mut Events<'a>) -> Result<(Event<'a>, Span), SyntaxError> {
        it.next().ok_or_else(|| SyntaxError {
            line: self.offset,
            message: "unexpected end of document".into(),
        })
    }

    fn sequence<'a>(&mut self, it: &mut Events<'a>, path: &str) -> Result<Value, SyntaxError> {
        let mut items = Vec::new();
        loop {
            let (ev, span) = self.next(it)?;
            if matches!(ev, Event::SequenceEnd) {
                return Ok(Value::Array(items));
            }
            let child = format!("{path}[{}]", items.len());
            let line = self.line(&span);
            self.lines.insert(&child, line);
            items.push(self.node(ev, span, it, &child)?);
        }
    }

    fn mapping<'a>(&mut self, it: &mut Events<'a>, path: &str) -> Result<Value, SyntaxError> {
        let mut map = Map::new();
        loop {
            let (ev, span) = self.next(it)?;
            if matches!(ev, Event::MappingEnd) {
                return Ok(Value::Object(map));
            }
            let key_line = self.line(&span);
            let key = match self.node(ev, span, it, path)? {
                Value::String(s) => s,
                Value::Null => String::new(),
                other => other.to_string(),
            };
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            self.lines.insert(&child, key_line);
            let (ev, span) = self.next(it)?;
            let value = self.node(ev, span, it, &child)?;
            if key == "<<" {
                merge_into(&mut map, value);
            } else if map.contains_key(&key) {
                return Err(SyntaxError {
                    line: key_line,
                    message: format!("duplicate key {key:?}"),
                });
            } else {
                map.insert(key, value);
            }
        }
    }
}

/// YAML merge keys (`<<: *base`): keys already present win.
fn merge_into(map: &mut Map<String, Value>, value: Value) {
    let sources = match value {
        Value::Array(items) => items,
        other => vec![other],
    };
    for source in sources {
        if let Value::Object(src) = source {
            for (k, v) in src {
                map.entry(k).or_insert(v);
            }
        }
    }
}

/// Resolves a scalar by the YAML 1.2 core schema; quoted scalars are always strings.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&str>) -> Value {
    match tag {
        Some("str") => return Value::String(text.to_string()),
        Some("null") => return Value::Null,
        _ => {}
    }
    if style != ScalarStyle::Plain {
        return Value::String(text.to_string());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = parse_int(text) {
        return Value::Number(n.into());
    }
    if let Some(n) = parse_float(text) {
        return Value::Number(n);
    }
    Value::String(text.to_string())
}

fn parse_int(s: &str) -> Option<i64> {
    if let Some(hex) = s.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok();
    }
    if let Some(oct) = s.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok();
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_float(s: &str) -> Option<Number> {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    let looks_numeric = digits
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b == b'.')
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && digits.bytes().any(|b| b.is_ascii_digit());
    if !looks_numeric {
        return None;
    }
    s.parse::<f64>().ok().and_then(Number::from_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_lines() {
        let text = "a: 1\n---\nkind: X\nspec:\n  http:\n  - route:\n    - weight: 80\n";
        let docs = parse_documents(text);
        assert_eq!(docs.len(), 2);
        let second = docs[1].as_ref().unwrap();
        assert_eq!(second.line, 3);
        assert_eq!(
            second.lines.line_of("spec.http[0].route[0].weight"),
            Some(7)
        );
        assert_eq!(
            second.lines.line_of("spec.http[0].route[0].weight.nothing"),
            Some(7)
        );
        assert_eq!(second.value["spec"]["http"][0]["route"][0]["weight"], 80);
    }

    #[test]
    fn syntax_error_is_local() {
        let text = "a: 1\n---\nb: [1, 2\nc: 3\n---\nd: 4\n";
        let docs = parse_documents(text);
        assert_eq!(docs.len(), 3);
        assert!(docs[0].is_ok());
        let err = docs[1].as_ref().unwrap_err();
        assert!(err.line >= 3, "{err}");
        assert!(docs[2].is_ok());
    }

    #[test]
    fn scalars_follow_core_schema() {
        let docs = parse_documents("a: '80'\nb: 80\nc: 1.5\nd: true\ne: ~\nf: 1.5s\ng: yes\n");
        let v = &docs[0].as_ref().unwrap().value;
        assert_eq!(v["a"], "80");
        assert_eq!(v["b"], 80);
        assert_eq!(v["c"], 1.5);
        assert_eq!(v["d"], true);
        assert!(v["e"].is_null());
        assert_eq!(v["f"], "1.5s");
        assert_eq!(v["g"], "yes");
    }

    #[test]
    fn comments_are_ignored() {
        let docs = parse_documents("# head\na: # why\n  # inside\n  b: 1 # tail\n# end\n");
        assert_eq!(docs[0].as_ref().unwrap().value["a"]["b"], 1);
    }

    #[test]
    fn json_and_anchors() {
        let docs = parse_documents("{\"a\": {\"b\": [1, \"x\"]}}");
        assert_eq!(docs[0].as_ref().unwrap().value["a"]["b"][1], "x");
        let docs = parse_documents("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n");
        let v = &docs[0].as_ref().unwrap().value;
        assert_eq!(v["other"]["x"], 1);
        assert_eq!(v["other"]["y"], 2);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let docs = parse_documents("a: 1\na: 2\n");
        assert_eq!(docs[0].as_ref().unwrap_err().line, 2);
    }

    #[test]
    fn empty_documents_are_skipped() {
        assert!(parse_documents("---\n---\n# only a comment\n").is_empty());
    }
}
