//! The `IstioOperator` input: the built-in profiles (`manifests/profiles/*.yaml`), `-f`
//! overlay files and `--set key=value` paths, merged in Istio's order — default profile, the
//! chosen profile, each file, then each `--set` — into one JSON tree.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};

/// The built-in profiles, in the order `profile list` prints them.
pub const PROFILES: &[(&str, &str)] = &[
    (
        "default",
        include_str!("../../../../../manifests/profiles/default.yaml"),
    ),
    (
        "demo",
        include_str!("../../../../../manifests/profiles/demo.yaml"),
    ),
    (
        "empty",
        include_str!("../../../../../manifests/profiles/empty.yaml"),
    ),
    (
        "minimal",
        include_str!("../../../../../manifests/profiles/minimal.yaml"),
    ),
    (
        "remote",
        include_str!("../../../../../manifests/profiles/remote.yaml"),
    ),
];

/// What the user asked for: overlay files and `--set` flags, in order.
#[derive(Debug, Clone, Default)]
pub struct Input {
    /// `-f` files (IstioOperator YAML), applied in order.
    pub files: Vec<PathBuf>,
    /// `--set key=value` flags, applied last, in order.
    pub sets: Vec<String>,
}

/// The merged `IstioOperator` document (`apiVersion`, `kind`, `spec`).
pub fn build(input: &Input) -> Result<Value> {
    let mut overlays = Vec::new();
    for path in &input.files {
        overlays.push(read_overlay(path)?);
    }
    let sets = input
        .sets
        .iter()
        .map(|s| parse_set(s))
        .collect::<Result<Vec<_>>>()?;
    let mut profile = "default".to_string();
    for o in &overlays {
        if let Some(p) = o.pointer("/spec/profile").and_then(Value::as_str) {
            profile = p.to_string();
        }
    }
    for (path, value) in &sets {
        if path == "profile" {
            profile = value_text(value);
        }
    }
    let mut tree = profile_tree(&profile)?;
    for o in overlays {
        merge(&mut tree, o);
    }
    for (path, value) in sets {
        let spec = tree
            .as_object_mut()
            .and_then(|m| m.get_mut("spec"))
            .context("profile has no spec")?;
        set_path(spec, &path, value).with_context(|| format!("--set {path}"))?;
    }
    set_field(&mut tree, "spec", "profile", Value::String(profile));
    Ok(tree)
}

/// The default profile with `name` merged over it.
pub fn profile_tree(name: &str) -> Result<Value> {
    let mut tree = parse_profile("default")?;
    if name != "default" {
        merge(&mut tree, parse_profile(name)?);
    }
    Ok(tree)
}

fn parse_profile(name: &str) -> Result<Value> {
    let Some((_, text)) = PROFILES.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = PROFILES.iter().map(|(n, _)| *n).collect();
        bail!(
            "unknown profile {name:?}: the profiles are {}",
            names.join(", ")
        );
    };
    serde_saphyr::from_str(text).with_context(|| format!("built-in profile {name}"))
}

fn read_overlay(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value = serde_saphyr::from_str(&text)
        .with_context(|| format!("{}: not valid YAML", path.display()))?;
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind != "IstioOperator" {
        bail!(
            "{}: kind is {kind:?}, expected IstioOperator (apiVersion install.istio.io/v1alpha1)",
            path.display()
        );
    }
    if let Some(spec) = v.get("spec")
        && !spec.is_object()
    {
        bail!(
            "{}: IstioOperator field spec must be a mapping",
            path.display()
        );
    }
    Ok(v)
}

/// Merges `over` into `base`: mappings key by key; lists of mappings that all have a `name`
/// element by element with the same name (new names appended); anything else replaced.
pub fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) if !v.is_null() => merge(slot, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (Value::Array(b), Value::Array(o)) if named(b) && named(&o) => {
            for item in o {
                let name = item.get("name").cloned();
                match b.iter_mut().find(|x| x.get("name") == name.as_ref()) {
                    Some(slot) => merge(slot, item),
                    None => b.push(item),
                }
            }
        }
        (b, o) => *b = o,
    }
}

fn named(list: &[Value]) -> bool {
    list.iter()
        .all(|x| x.get("name").is_some_and(Value::is_string))
}

fn set_field(tree: &mut Value, parent: &str, key: &str, v: Value) {
    if let Some(Value::Object(m)) = tree.get_mut(parent) {
        m.insert(key.to_string(), v);
    }
}

/// Splits `key=value` and types the value as Istio does: `true`/`false`, numbers, else text.
pub fn parse_set(s: &str) -> Result<(String, Value)> {
    let Some((k, v)) = s.split_once('=') else {
        bail!("--set {s:?}: expected key=value");
    };
    let k = k.trim().strip_prefix("spec.").unwrap_or(k.trim());
    if k.is_empty() {
        bail!("--set {s:?}: empty key");
    }
    let value = match v {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => v
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| v.parse::<f64>().map(Value::from))
            .unwrap_or_else(|_| Value::String(v.to_string())),
    };
    Ok((k.to_string(), value))
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One step of a `--set` path: a key, a list index `[0]`, or a list selector `[name:x]`.
#[derive(Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
    Select(String, String),
}

fn steps(path: &str) -> Result<Vec<Step>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if key.is_empty() && out.is_empty() {
            bail!("path starts with an index");
        }
        if !key.is_empty() {
            out.push(Step::Key(key.to_string()));
        }
        while let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').context("unclosed [")?;
            let inner = &r[..end];
            out.push(match inner.split_once(':') {
                Some((k, v)) => Step::Select(k.to_string(), v.to_string()),
                None => Step::Index(
                    inner
                        .parse()
                        .with_context(|| format!("[{inner}] is not a list index"))?,
                ),
            });
            rest = &r[end + 1..];
        }
        if !rest.is_empty() {
            bail!("unexpected {rest:?} after ]");
        }
    }
    Ok(out)
}

/// Sets `value` at `path` under `root`, creating mappings on the way. An index one past the
/// end of a list appends; further is an error.
pub fn set_path(root: &mut Value, path: &str, value: Value) -> Result<()> {
    let steps = steps(path)?;
    let mut cur = root;
    for step in &steps {
        cur = descend(cur, step)?;
    }
    *cur = value;
    Ok(())
}

fn descend<'a>(cur: &'a mut Value, step: &Step) -> Result<&'a mut Value> {
    match step {
        Step::Key(k) => {
            if !cur.is_object() {
                *cur = Value::Object(Map::new());
            }
            let Value::Object(m) = cur else {
                bail!("{k}: parent is not a mapping");
            };
            Ok(m.entry(k.clone()).or_insert(Value::Null))
        }
        Step::Index(i) => {
            if cur.is_null() {
                *cur = Value::Array(Vec::new());
            }
            let Value::Array(list) = cur else {
                bail!("[{i}]: parent is not a list");
            };
            if *i == list.len() {
                list.push(Value::Null);
            }
            let len = list.len();
            list.get_mut(*i)
                .with_context(|| format!("[{i}]: the list has {len} element(s)"))
        }
        Step::Select(k, v) => {
            let Value::Array(list) = cur else {
                bail!("[{k}:{v}]: parent is not a list");
            };
            list.iter_mut()
                .find(|x| x.get(k).and_then(Value::as_str) == Some(v))
                .with_context(|| format!("[{k}:{v}]: no element has {k} {v:?}"))
        }
    }
}

/// The value at a dotted `path` (same syntax as `--set`) under `root`, if present.
pub fn get_path<'a>(root: &'a Value, path: &str) -> Result<Option<&'a Value>> {
    let mut cur = root;
    for step in steps(path)? {
        let next = match &step {
            Step::Key(k) => cur.get(k),
            Step::Index(i) => cur.get(*i),
            Step::Select(k, v) => cur.as_array().and_then(|l| {
                l.iter()
                    .find(|x| x.get(k).and_then(Value::as_str) == Some(v))
            }),
        };
        match next {
            Some(n) => cur = n,
            None => return Ok(None),
        }
    }
    Ok(Some(cur))
}
