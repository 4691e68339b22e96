//! Gateway API status written to the API server, as istiod's gateway controller writes it:
//! the conditions [`mast_model::gateway_api::convert`] computes for GatewayClasses,
//! Gateways (with their listeners) and routes (`status.parents[]`), through the status
//! subresource, by the holder of the status Lease only.
//!
//! Each condition gets `observedGeneration` (the object's `metadata.generation`) and
//! `lastTransitionTime`, kept from the stored condition of the same type when its status
//! did not change. An object is patched only when what Mast wants differs from what it
//! last wrote (or, after a restart, from what the API server holds). On routes, the
//! `parents` entries of other controllers are kept; a route that no longer names a served
//! parent loses Mast's entries.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use mast_config::Resource;
use mast_model::gateway_api::{CONTROLLERS, ObjectStatus};
use mast_registry::kube::kinds::WATCHED;
use mast_registry::kube::status::{LeaderElection, LeaseConfig};
use serde_json::{Map, Value, json};

/// The Gateway API group.
const GROUP: &str = "gateway.networking.k8s.io";
/// The route kinds (their status is `parents[]`).
const ROUTES: &[&str] = &["HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute"];

/// An object: kind, namespace (empty when cluster-scoped) and name.
type Key = (String, String, String);

/// What one object should carry: its `metadata.generation` as Mast read it, and the
/// status body without times and generations.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Wanted {
    generation: Option<i64>,
    body: Value,
}

/// The Gateway API statuses of `resources`, by object (empty when there is no Gateway
/// API resource).
pub(super) fn wanted(resources: &[Resource], domain: &str) -> BTreeMap<Key, Wanted> {
    let ours = |r: &&Resource| r.api_version.starts_with(GROUP);
    if !resources.iter().any(|r| ours(&r)) {
        return BTreeMap::new();
    }
    let generations: BTreeMap<(&str, &str, &str), Option<i64>> = resources
        .iter()
        .filter(ours)
        .map(|r| {
            (
                (r.kind.as_str(), r.namespace(), r.name()),
                r.meta.generation,
            )
        })
        .collect();
    mast_model::gateway_api::convert(resources, domain)
        .statuses
        .into_iter()
        .map(|s: ObjectStatus| {
            let generation = generations
                .get(&(s.kind.as_str(), s.namespace.as_str(), s.name.as_str()))
                .copied()
                .flatten();
            let body = serde_json::to_value(&s.status).unwrap_or(Value::Null);
            ((s.kind, s.namespace, s.name), Wanted { generation, body })
        })
        .collect()
}

/// Writes Gateway API statuses. See the module documentation.
pub(super) struct GatewayApiWriter {
    client: Client,
    leader: LeaderElection,
    written: BTreeMap<Key, Wanted>,
}

impl GatewayApiWriter {
    /// A writer electing itself on `lease` (the Lease the analyzer status writer uses).
    pub(super) fn new(client: Client, lease: LeaseConfig) -> Self {
        Self {
            leader: LeaderElection::new(client.clone(), lease),
            client,
            written: BTreeMap::new(),
        }
    }

    /// Writes `wanted` when this replica leads; returns how many objects it patched, or
    /// `None` when another replica leads.
    pub(super) async fn write(
        &mut self,
        mut wanted: BTreeMap<Key, Wanted>,
    ) -> Result<Option<usize>, kube::Error> {
        if wanted.is_empty() && self.written.is_empty() {
            return Ok(Some(0));
        }
        if !self.leader.try_acquire().await? {
            return Ok(None);
        }
        // Routes Mast reported on before and no longer: drop Mast's parents entries.
        for key in self.written.keys() {
            if ROUTES.contains(&key.0.as_str()) && !wanted.contains_key(key) {
                let body = json!({"parents": []});
                wanted.insert(
                    key.clone(),
                    Wanted {
                        generation: None,
                        body,
                    },
                );
            }
        }
        // Objects gone from the configuration need nothing more.
        self.written.retain(|k, _| wanted.contains_key(k));
        let mut apis: BTreeMap<String, Option<ApiResource>> = BTreeMap::new();
        let mut changed = 0;
        for (key, want) in wanted {
            if self.written.get(&key) == Some(&want) {
                continue;
            }
            if !apis.contains_key(&key.0) {
                apis.insert(key.0.clone(), resolve(&self.client, &key.0).await?);
            }
            let Some(Some(resource)) = apis.get(&key.0) else {
                continue;
            };
            if self.patch(resource, &key, &want.body).await? {
                changed += 1;
            }
            let dropped = want.body.get("parents").and_then(Value::as_array);
            if dropped.is_some_and(Vec::is_empty) {
                self.written.remove(&key);
            } else {
                self.written.insert(key, want);
            }
        }
        Ok(Some(changed))
    }

    /// Patches one object's status to `body` (times and generations added); `false`
    /// when the object is gone or already carries that status.
    async fn patch(
        &self,
        resource: &ApiResource,
        (_, ns, name): &Key,
        body: &Value,
    ) -> Result<bool, kube::Error> {
        let api: Api<DynamicObject> = if ns.is_empty() {
            Api::all_with(self.client.clone(), resource)
        } else {
            Api::namespaced_with(self.client.clone(), ns, resource)
        };
        let Some(live) = api.get_opt(name).await? else {
            return Ok(false);
        };
        let live_status = live.data.get("status").cloned().unwrap_or(Value::Null);
        let generation = live.metadata.generation;
        let status = stamp(body, &live_status, generation, &rfc3339_now());
        if carries(&live_status, &status) {
            return Ok(false);
        }
        let patch = json!({"status": status});
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The Gateway API resource of `kind` at the newest version the cluster serves.
async fn resolve(client: &Client, kind: &str) -> Result<Option<ApiResource>, kube::Error> {
    match WATCHED.iter().find(|k| k.group == GROUP && k.kind == kind) {
        Some(watched) => watched.resolve(client).await,
        None => Ok(None),
    }
}

/// Whether `live` already holds every field of `status`.
fn carries(live: &Value, status: &Value) -> bool {
    let Some(fields) = status.as_object() else {
        return false;
    };
    fields.iter().all(|(k, v)| {
        let held = live.get(k);
        held == Some(v) || (held.is_none() && v.as_array().is_some_and(Vec::is_empty))
    })
}

/// `wanted` with `observedGeneration` and `lastTransitionTime` on every condition (the
/// time kept from `live` when the condition's status is the same), and, for routes, the
/// other controllers' `parents` entries from `live` appended.
pub(super) fn stamp(wanted: &Value, live: &Value, generation: Option<i64>, now: &str) -> Value {
    let mut out = wanted.as_object().cloned().unwrap_or_default();
    let stamp_list = |list: &Value, old: Option<&Value>| -> Value {
        conditions(list, old.unwrap_or(&Value::Null), generation, now)
    };
    if let Some(c) = wanted.get("conditions") {
        out.insert("conditions".into(), stamp_list(c, live.get("conditions")));
    }
    if let Some(listeners) = wanted.get("listeners").and_then(Value::as_array) {
        let stamped = listeners
            .iter()
            .map(|l| {
                let old = find(live.get("listeners"), |o| o.get("name") == l.get("name"));
                with_conditions(l, old, &stamp_list)
            })
            .collect();
        out.insert("listeners".into(), Value::Array(stamped));
    }
    if let Some(parents) = wanted.get("parents").and_then(Value::as_array) {
        let mut stamped: Vec<Value> = parents
            .iter()
            .map(|p| {
                let old = find(live.get("parents"), |o| {
                    o.get("controllerName") == p.get("controllerName")
                        && same_parent(&o["parentRef"], &p["parentRef"])
                });
                with_conditions(p, old, &stamp_list)
            })
            .collect();
        let others = live.get("parents").and_then(Value::as_array);
        stamped.extend(others.into_iter().flatten().filter(|o| !ours(o)).cloned());
        out.insert("parents".into(), Value::Array(stamped));
    }
    Value::Object(out)
}

/// An entry (listener or parent) with its `conditions` stamped against `old`'s.
fn with_conditions(
    entry: &Value,
    old: Option<&Value>,
    stamp_list: &dyn Fn(&Value, Option<&Value>) -> Value,
) -> Value {
    let mut e: Map<String, Value> = entry.as_object().cloned().unwrap_or_default();
    let list = entry.get("conditions").cloned().unwrap_or(Value::Null);
    e.insert(
        "conditions".into(),
        stamp_list(&list, old.and_then(|o| o.get("conditions"))),
    );
    Value::Object(e)
}

fn conditions(wanted: &Value, live: &Value, generation: Option<i64>, now: &str) -> Value {
    let stamped = wanted
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let mut c = c.as_object().cloned().unwrap_or_default();
            let old = find(Some(live), |o| o.get("type") == c.get("type"));
            let since = old
                .filter(|o| o.get("status") == c.get("status"))
                .and_then(|o| o.get("lastTransitionTime"))
                .cloned()
                .unwrap_or_else(|| Value::String(now.to_owned()));
            c.insert("lastTransitionTime".into(), since);
            if let Some(g) = generation {
                c.insert("observedGeneration".into(), g.into());
            }
            Value::Object(c)
        })
        .collect();
    Value::Array(stamped)
}

fn find(list: Option<&Value>, pred: impl Fn(&Value) -> bool) -> Option<&Value> {
    list.and_then(Value::as_array)?.iter().find(|v| pred(v))
}

/// Whether a `parents` entry is Mast's (or Istio's, whose controller name Mast answers to).
fn ours(entry: &Value) -> bool {
    entry
        .get("controllerName")
        .and_then(Value::as_str)
        .is_some_and(|c| CONTROLLERS.contains(&c))
}

/// Whether two parentRefs name the same parent (the API server may have filled in the
/// defaulted `group` and `kind`).
fn same_parent(a: &Value, b: &Value) -> bool {
    let field = |v: &Value, k: &str, default: &str| -> String {
        v.get(k)
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
            .unwrap_or_else(|| default.to_owned())
    };
    [
        ("group", GROUP),
        ("kind", "Gateway"),
        ("namespace", ""),
        ("name", ""),
        ("sectionName", ""),
        ("port", ""),
    ]
    .iter()
    .all(|(k, d)| field(a, k, d) == field(b, k, d))
}

/// The current time as RFC 3339 UTC with whole seconds (Kubernetes' `metav1.Time`).
fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

fn rfc3339(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_703_000), "2026-11-26T14:23:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn transition_time_is_kept_while_the_status_stays() {
        let wanted = json!({"conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "ok"},
            {"type": "Programmed", "status": "True", "reason": "Programmed", "message": "ok"}],
            "listeners": [{"name": "http", "attachedRoutes": 1, "conditions": [
                {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "ok"}]}]});
        let live = json!({"conditions": [
            {"type": "Accepted", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"},
            {"type": "Programmed", "status": "False", "lastTransitionTime": "2020-01-01T00:00:00Z"}],
            "listeners": [{"name": "http", "conditions": [
                {"type": "Accepted", "status": "True", "lastTransitionTime": "2021-01-01T00:00:00Z"}]}]});
        let out = stamp(&wanted, &live, Some(3), "2026-01-01T00:00:00Z");
        assert_eq!(
            out["conditions"][0]["lastTransitionTime"],
            "2020-01-01T00:00:00Z"
        );
        assert_eq!(
            out["conditions"][1]["lastTransitionTime"],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(out["conditions"][1]["observedGeneration"], 3);
        assert_eq!(
            out["listeners"][0]["conditions"][0]["lastTransitionTime"],
            "2021-01-01T00:00:00Z"
        );
        assert_eq!(out["listeners"][0]["attachedRoutes"], 1);
        // Stamped again against itself: nothing to write.
        let again = stamp(&wanted, &out, Some(3), "2027-01-01T00:00:00Z");
        assert!(carries(&out, &again));
        assert!(!carries(&out, &stamp(&wanted, &out, Some(4), "x")));
    }

    #[test]
    fn other_controllers_parents_are_kept_and_defaults_match() {
        let wanted = json!({"parents": [{
            "parentRef": {"name": "gw"},
            "controllerName": "istio.io/gateway-controller",
            "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": ""}]}]});
        let live = json!({"parents": [
            {"parentRef": {"group": GROUP, "kind": "Gateway", "name": "gw"},
             "controllerName": "istio.io/gateway-controller",
             "conditions": [{"type": "Accepted", "status": "True", "lastTransitionTime": "T0"}]},
            {"parentRef": {"name": "other"}, "controllerName": "example.com/gw", "conditions": []}]});
        let out = stamp(&wanted, &live, Some(1), "T1");
        let parents = out["parents"].as_array().cloned().unwrap_or_default();
        assert_eq!(parents.len(), 2);
        assert_eq!(parents[0]["conditions"][0]["lastTransitionTime"], "T0");
        assert_eq!(parents[1]["controllerName"], "example.com/gw");
        // Dropping Mast's entries keeps the others'.
        let dropped = stamp(&json!({"parents": []}), &live, None, "T1");
        assert_eq!(dropped["parents"].as_array().map(Vec::len), Some(1));
    }
}
