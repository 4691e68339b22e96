//! Status write-back: analyzer results written to the Istio resources' `status` through
//! the status subresource, as istiod's status controller writes them
//! (`status.validationMessages`: `type.code`, `type.name`, `level`, `documentationUrl`),
//! by one writer at a time: the holder of a `coordination.k8s.io/v1` Lease.
//!
//! [`LeaderElection::try_acquire`] takes the Lease when it is free or expired and renews it
//! when held (optimistic concurrency: a competing writer's update makes the other's fail
//! with a conflict, which counts as not leading). [`StatusWriter::write`] writes only when
//! it leads, and only what changed since its last write; a resource whose messages went
//! away gets them removed.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::kinds::WATCHED;

/// Which Lease elects the writer, and who this writer is.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// The Lease's namespace (mastd's, such as `istio-system`).
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This writer's identity (the pod name).
    pub identity: String,
    /// How long a Lease not renewed stays held.
    pub duration: Duration,
}

/// Leader election on a Lease. See the module documentation.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    api: Api<Lease>,
    config: LeaseConfig,
}

impl LeaderElection {
    /// Election on `config`'s Lease.
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    /// Takes the Lease if it is free or expired, renews it if held; returns whether this
    /// writer holds it now.
    pub async fn try_acquire(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let seconds = i32::try_from(self.config.duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, seconds, 0)),
            };
            return conflict_is_false(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.as_deref().unwrap_or("");
        let ours = holder == self.config.identity;
        let held_for = i64::from(spec.lease_duration_seconds.unwrap_or(seconds));
        let expired = spec
            .renew_time
            .as_ref()
            .is_none_or(|t| t.0 + SignedDuration::from_secs(held_for) < now);
        if !ours && !holder.is_empty() && !expired {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
        let mut new_spec = self.spec(now, seconds, transitions);
        if ours {
            new_spec.acquire_time = spec.acquire_time.or(new_spec.acquire_time);
        }
        lease.spec = Some(new_spec);
        // The resourceVersion read above makes a concurrent taker's update conflict.
        let name = self.config.name.clone();
        conflict_is_false(
            self.api
                .replace(&name, &PostParams::default(), &lease)
                .await,
        )
    }

    fn spec(&self, now: Timestamp, seconds: i32, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(seconds),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }
}

fn conflict_is_false<T>(result: Result<T, kube::Error>) -> Result<bool, kube::Error> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// One analyzer message about a resource, in Istio's status shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationMessage {
    /// The message code (`IST0101`).
    pub code: String,
    /// The message name (`ReferencedResourceNotFound`).
    pub name: String,
    /// `ERROR`, `WARNING` or `INFO`.
    pub level: String,
}

impl ValidationMessage {
    fn to_json(&self) -> Value {
        let url = format!(
            "https://istio.io/latest/docs/reference/config/analysis/{}/?ref=status-controller",
            self.code.to_ascii_lowercase()
        );
        json!({"type": {"code": self.code, "name": self.name}, "level": self.level, "documentationUrl": url})
    }
}

/// Writes analyzer results to the Istio resources' status. See the module documentation.
pub struct StatusWriter {
    client: Client,
    leader: LeaderElection,
    written: Mutex<BTreeMap<(String, String, String), Value>>,
}

impl std::fmt::Debug for StatusWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusWriter")
            .field("lease", &self.leader.config)
            .finish_non_exhaustive()
    }
}

/// The messages of one resource: kind, namespace and name.
pub type Messages = BTreeMap<(String, String, String), Vec<ValidationMessage>>;

impl StatusWriter {
    /// A writer electing itself on `lease`.
    pub fn new(client: Client, lease: LeaseConfig) -> Self {
        Self {
            leader: LeaderElection::new(client.clone(), lease),
            client,
            written: Mutex::new(BTreeMap::new()),
        }
    }

    /// Writes `messages` (every resource with messages; a resource written before and
    /// absent now gets its messages removed) when this writer leads; returns how many
    /// resources it changed, or `None` when another writer leads. A resource that is gone
    /// is skipped.
    pub async fn write(&self, messages: &Messages) -> Result<Option<usize>, kube::Error> {
        if !self.leader.try_acquire().await? {
            return Ok(None);
        }
        let mut written = self.written.lock().await;
        let mut wanted: BTreeMap<(String, String, String), Value> = messages
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(k, m)| {
                (
                    k.clone(),
                    Value::Array(m.iter().map(ValidationMessage::to_json).collect()),
                )
            })
            .collect();
        for key in written.keys() {
            wanted.entry(key.clone()).or_insert(Value::Null);
        }
        let mut changed = 0;
        for (key, value) in wanted {
            if written.get(&key) == Some(&value) {
                continue;
            }
            if self.patch(&key, &value).await? {
                changed += 1;
            }
            if value.is_null() {
                written.remove(&key);
            } else {
                written.insert(key, value);
            }
        }
        Ok(Some(changed))
    }

    /// Patches one resource's `status.validationMessages`; `false` when it is gone or not
    /// a kind the registry reads.
    async fn patch(
        &self,
        (kind, ns, name): &(String, String, String),
        value: &Value,
    ) -> Result<bool, kube::Error> {
        let Some(watched) = WATCHED.iter().find(|k| k.kind == kind && k.custom) else {
            return Ok(false);
        };
        let Some(resource) = watched.resolve(&self.client).await? else {
            return Ok(false);
        };
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &resource);
        let body = json!({"status": {"validationMessages": value}});
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(e),
        }
    }
}
