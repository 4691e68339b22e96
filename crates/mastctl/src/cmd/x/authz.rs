//! `mastctl x authz check <workload>`: the RBAC a workload's proxy enforces (istioctl's
//! `x authz check`: ACTION, AuthorizationPolicy, RULES, read from the RBAC filters of the
//! proxy's listeners in its `/config_dump`), and the AuthorizationPolicies of the mesh folder
//! that select the workload (root namespace and the workload's namespace, `selector` matched
//! against the labels the proxy sent in its node metadata).
//!
//! The proxy is found as `proxy-config` finds it (mastd's `/debug/syncz` gives its admin
//! address; `--admin` reads one directly). The folder is `--config-dir`, else the running
//! local mesh's (`mastctl up`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use mast_config::Body;
use serde_json::Value;

use crate::cmd::table::Table;
use crate::http;

/// `mastctl x authz` subcommands.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

/// `mastctl x authz` actions.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Lists the authorization policies that apply to a workload.
    Check(CheckArgs),
}

/// `mastctl x authz check` arguments.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The workload (`name.namespace`, as proxy-status shows it; a bare name of the local
    /// mesh's workloads) or its proxy id.
    pub workload: String,
    /// mastd's monitoring address, to find the proxy.
    /// [default: the running local mesh's (mastctl up), else 127.0.0.1:15014]
    #[arg(long, env = "MAST_MONITORING_ADDR")]
    pub mastd: Option<String>,
    /// Read this admin address (`host:port`) directly instead of asking mastd.
    #[arg(long)]
    pub admin: Option<String>,
    /// The mesh folder whose AuthorizationPolicies to list [default: the local mesh's].
    #[arg(long)]
    pub config_dir: Option<PathBuf>,
}

/// Runs `mastctl x authz`.
pub fn run(args: &Args) -> anyhow::Result<i32> {
    let Action::Check(a) = &args.action;
    let workload = crate::cmd::proxy_config::proxy_name(a.mastd.as_deref(), &a.workload);
    let admin = match &a.admin {
        Some(addr) => addr.clone(),
        None => crate::cmd::proxy_config::admin_address(a.mastd.as_deref(), &workload)?,
    };
    let dump = http::get_json(&admin, "/config_dump").with_context(|| {
        format!("reading /config_dump from the proxy's admin interface at {admin}")
    })?;
    println!("Checked the RBAC filters of {workload} ({admin}):");
    print!("{}", rbac_table(&rbac_policies(&dump)));
    let dir = a.config_dir.clone().or_else(local_dir);
    if let Some(dir) = dir {
        let (ns, labels) = node_identity(&dump, &workload);
        println!();
        println!(
            "AuthorizationPolicies in {} selecting {workload} (namespace {ns}):",
            dir.display()
        );
        print!("{}", folder_table(&dir, &ns, labels.as_ref())?);
    }
    Ok(crate::exit::OK)
}

/// The running local mesh's folder: `$MAST_STATE_FILE`'s, else the most recent live one's.
fn local_dir() -> Option<PathBuf> {
    crate::local::state::find(None).ok().map(|(_, s)| s.dir)
}

/// One row: (action, `name.namespace` of the policy) → number of rules.
type Rows = BTreeMap<(String, String), usize>;

/// `ns[<ns>]-policy[<name>]-rule[<i>]` (with any prefix or suffix) → `<name>.<ns>`.
fn policy_of(rule_name: &str) -> Option<String> {
    let ns = rule_name.split("ns[").nth(1)?.split(']').next()?;
    let name = rule_name
        .split("-policy[")
        .nth(1)?
        .split("]-rule[")
        .next()?;
    Some(format!("{name}.{ns}"))
}

fn collect(v: &Value, out: &mut Rows) {
    match v {
        Value::Object(o) => {
            let is_rbac = o.get("name").and_then(Value::as_str).is_some_and(|n| {
                n == "envoy.filters.http.rbac" || n == "envoy.filters.network.rbac"
            });
            if is_rbac && let Some(rules) = v.pointer("/typed_config/rules") {
                add_rules(rules, out);
            }
            o.values().for_each(|v| collect(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect(v, out)),
        _ => {}
    }
}

fn add_rules(rules: &Value, out: &mut Rows) {
    let action = rules
        .get("action")
        .and_then(Value::as_str)
        .unwrap_or("ALLOW")
        .to_owned();
    let Some(policies) = rules.get("policies").and_then(Value::as_object) else {
        out.entry((action, "(no policy: matches nothing)".into()))
            .or_insert(0);
        return;
    };
    let mut per_policy: BTreeMap<String, usize> = BTreeMap::new();
    for name in policies.keys() {
        let policy = policy_of(name).unwrap_or_else(|| name.clone());
        *per_policy.entry(policy).or_default() += 1;
    }
    for (policy, n) in per_policy {
        let e = out.entry((action.clone(), policy)).or_insert(0);
        *e = (*e).max(n);
    }
}

/// The RBAC policies in every listener of a config dump.
fn rbac_policies(dump: &Value) -> Rows {
    let mut rows = Rows::new();
    let listeners = dump
        .get("configs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| {
            c.get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with("ListenersConfigDump"))
        });
    listeners.for_each(|l| collect(l, &mut rows));
    rows
}

fn rbac_table(rows: &Rows) -> String {
    if rows.is_empty() {
        return "no RBAC filter: every request is allowed\n".into();
    }
    let mut t = Table::new(&["ACTION", "AuthorizationPolicy", "RULES"]);
    for ((action, policy), n) in rows {
        t.row(vec![action.clone(), policy.clone(), n.to_string()]);
    }
    t.render()
}

/// The workload's namespace and labels, from the node in the dump's bootstrap (else the
/// namespace from `name.namespace` and no labels).
fn node_identity(dump: &Value, workload: &str) -> (String, Option<BTreeMap<String, String>>) {
    let node = dump
        .get("configs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find_map(|c| c.pointer("/bootstrap/node/metadata"));
    let from_name = workload.rsplit_once('.').map_or("default", |(_, ns)| ns);
    let ns = node
        .and_then(|m| m.get("NAMESPACE"))
        .and_then(Value::as_str)
        .unwrap_or(from_name)
        .to_owned();
    let labels = node
        .and_then(|m| m.get("LABELS"))
        .and_then(Value::as_object)
        .map(|l| {
            l.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        });
    (ns, labels)
}

fn folder_table(
    dir: &std::path::Path,
    ns: &str,
    labels: Option<&BTreeMap<String, String>>,
) -> anyhow::Result<String> {
    let out = mast_config::load_paths(&[dir], &Default::default());
    let root = mast_core::DEFAULT_ROOT_NAMESPACE;
    let mut t = Table::new(&["ACTION", "AuthorizationPolicy", "RULES", "SELECTS"]);
    let mut any = false;
    for r in &out.resources {
        let Body::AuthorizationPolicy(spec) = &r.body else {
            continue;
        };
        let pns = if r.namespace().is_empty() {
            "default"
        } else {
            r.namespace()
        };
        if pns != ns && pns != root {
            continue;
        }
        let selects = match (&spec.selector, labels) {
            (None, _) => "yes".to_owned(),
            (Some(s), Some(l)) if s.match_labels.iter().all(|(k, v)| l.get(k) == Some(v)) => {
                "yes".to_owned()
            }
            (Some(_), Some(_)) => continue,
            (Some(_), None) => "? (labels unknown)".to_owned(),
        };
        any = true;
        let name = format!("{}.{pns}", r.name());
        t.row(vec![
            spec.action().to_string(),
            name,
            spec.rules.len().to_string(),
            selects,
        ]);
    }
    if !any {
        if out.resources.is_empty() && !out.diagnostics.is_empty() {
            bail!(
                "cannot read {}: {}",
                dir.display(),
                out.diagnostics[0].message
            );
        }
        return Ok("none\n".into());
    }
    Ok(t.render())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn dump() -> Value {
        let rbac = |name: &str, rules: Value| {
            json!({ "name": name, "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC", "rules": rules } })
        };
        json!({ "configs": [
            { "@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
              "bootstrap": { "node": { "metadata": { "NAMESPACE": "foo", "LABELS": { "app": "httpbin" } } } } },
            { "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "dynamic_listeners": [
                { "name": "virtualInbound", "active_state": { "listener": { "filter_chains": [
                    { "filters": [{ "name": "envoy.filters.network.http_connection_manager", "typed_config": {
                        "http_filters": [
                            rbac("envoy.filters.http.rbac", json!({ "action": "DENY", "policies": {
                                "ns[foo]-policy[deny-admin]-rule[0]": {}, "ns[foo]-policy[deny-admin]-rule[1]": {} } })),
                            rbac("envoy.filters.http.rbac", json!({ "policies": {
                                "ns[istio-system]-policy[mesh]-rule[0]": {} } })),
                            { "name": "envoy.filters.http.router" }
                        ] } }] },
                    { "filters": [
                        rbac("envoy.filters.network.rbac", json!({ "action": "DENY", "policies": {
                            "ns[foo]-policy[deny-admin]-rule[1]": {} } })),
                        rbac("envoy.filters.network.rbac", json!({}))
                    ] }
                ] } } }
            ] }
        ] })
    }

    fn has_row(table: &str, cells: &[&str]) -> bool {
        table
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == cells)
    }

    #[test]
    fn lists_rbac_policies_like_istioctl() {
        let table = rbac_table(&rbac_policies(&dump()));
        let lines: Vec<&str> = table.lines().map(str::trim_end).collect();
        assert!(lines[0].starts_with("ACTION"), "{table}");
        assert!(has_row(&table, &["DENY", "deny-admin.foo", "2"]), "{table}");
        assert!(table.contains("mesh.istio-system"), "{table}");
        assert!(table.contains("(no policy: matches nothing)"), "{table}");
        let deny = lines
            .iter()
            .find(|l| l.contains("deny-admin"))
            .expect("row");
        assert!(deny.ends_with('2'), "max rules over chains: {deny}");
    }

    #[test]
    fn policy_names() {
        assert_eq!(
            policy_of("ns[foo]-policy[p]-rule[3]").as_deref(),
            Some("p.foo")
        );
        assert_eq!(
            policy_of(
                "istio-ext-authz-opa-ns[foo]-policy[ext]-rule[0]-deny-due-to-bad-CUSTOM-action"
            )
            .as_deref(),
            Some("ext.foo")
        );
        assert_eq!(policy_of("something-else"), None);
    }

    #[test]
    fn node_identity_from_bootstrap_or_name() {
        let (ns, labels) = node_identity(&dump(), "httpbin.bar");
        assert_eq!(ns, "foo");
        assert_eq!(
            labels.and_then(|l| l.get("app").cloned()).as_deref(),
            Some("httpbin")
        );
        let (ns, labels) = node_identity(&json!({}), "httpbin.bar");
        assert_eq!(ns, "bar");
        assert!(labels.is_none());
    }

    #[test]
    fn folder_policies_selecting_the_workload() {
        let dir = std::env::temp_dir().join(format!("mastctl-authz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let policy = |ns: &str, name: &str, spec: &str| {
            format!(
                "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{spec}\n---\n"
            )
        };
        let text = [
            policy("foo", "all", "  rules: [{}]"),
            policy(
                "foo",
                "mine",
                "  selector:\n    matchLabels: {app: httpbin}\n  action: DENY\n  rules: [{}, {}]",
            ),
            policy(
                "foo",
                "other",
                "  selector:\n    matchLabels: {app: other}\n  rules: [{}]",
            ),
            policy("bar", "elsewhere", "  rules: [{}]"),
            policy("istio-system", "mesh", "  {}"),
        ]
        .concat();
        std::fs::write(dir.join("authz.yaml"), text).expect("write");
        let labels: BTreeMap<String, String> = [("app".to_owned(), "httpbin".to_owned())].into();
        let table = folder_table(&dir, "foo", Some(&labels)).expect("table");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(table.contains("all.foo"), "{table}");
        assert!(
            has_row(&table, &["DENY", "mine.foo", "2", "yes"]),
            "{table}"
        );
        assert!(table.contains("mesh.istio-system"), "{table}");
        assert!(!table.contains("other.foo"), "{table}");
        assert!(!table.contains("elsewhere"), "{table}");
    }
}
