//! Watch responses: a chunked body of JSON lines `{"type": …, "object": …}` fed from the
//! store's replayed history and its live changes, with bookmarks when asked, ending at
//! `timeoutSeconds`, cut (as a connection reset) when the test drops every watch, and a
//! single `ERROR` event with a 410 `Status` when the resourceVersion is too old.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::channel::{Channel, Sender};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use super::store::{ApiError, Event, WatchStart, view};
use super::types::ApiType;
use super::util::{FieldSelector, LabelSelector};

/// What a watch sends besides the changes.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Send `BOOKMARK` events (`allowWatchBookmarks=true`).
    pub bookmarks: bool,
    /// How often to send a bookmark.
    pub bookmark_every: Duration,
    /// End the watch after this long (`timeoutSeconds`).
    pub timeout: Duration,
    /// Send a bookmark with `k8s.io/initial-events-end` after the initial events
    /// (`sendInitialEvents=true`).
    pub initial_events_end: bool,
}

/// Which objects the watch is about, and in which version it shows them.
#[derive(Debug, Clone)]
pub struct WatchFilter {
    /// The type.
    pub t: ApiType,
    /// The version objects are shown in.
    pub version: String,
    /// The namespace watched (`None`: all).
    pub namespace: Option<String>,
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
}

impl WatchFilter {
    fn matches(&self, e: &Event) -> bool {
        e.group == self.t.group
            && e.plural == self.t.plural
            && self.namespace.as_ref().is_none_or(|n| *n == e.namespace)
            && self.labels.matches(&e.object)
            && self.fields.matches(&e.object)
    }

    fn line(&self, kind: &str, object: Value) -> Bytes {
        let mut text = json!({"type": kind, "object": object}).to_string();
        text.push('\n');
        Bytes::from(text)
    }

    fn event(&self, e: &Event) -> Bytes {
        self.line(e.kind.as_str(), view(&self.t, &self.version, &e.object))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({
            "apiVersion": self.t.api_version(&self.version),
            "kind": self.t.kind,
            "metadata": meta,
        });
        self.line("BOOKMARK", object)
    }
}

/// The body of a watch that failed to start: one `ERROR` event.
pub fn error_body(err: &ApiError) -> Bytes {
    let mut text = json!({"type": "ERROR", "object": err.status()}).to_string();
    text.push('\n');
    Bytes::from(text)
}

/// Streams a watch into a new body, from a task on the current runtime.
pub fn stream(
    start: WatchStart,
    filter: WatchFilter,
    options: WatchOptions,
    drops: watch::Receiver<u64>,
) -> Channel<Bytes, io::Error> {
    let (tx, body) = Channel::new(64);
    tokio::spawn(run(start, filter, options, drops, tx));
    body
}

async fn run(
    start: WatchStart,
    filter: WatchFilter,
    options: WatchOptions,
    mut drops: watch::Receiver<u64>,
    mut tx: Sender<Bytes, io::Error>,
) {
    let WatchStart {
        initial,
        mut live,
        rv,
    } = start;
    let mut last = rv;
    if drops.has_changed().unwrap_or(true) {
        tx.abort(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "watch dropped by the test",
        ));
        return;
    }
    for e in initial {
        last = last.max(e.rv);
        if filter.matches(&e) && tx.send_data(filter.event(&e)).await.is_err() {
            return;
        }
    }
    if options.initial_events_end && tx.send_data(filter.bookmark(last, true)).await.is_err() {
        return;
    }
    let deadline = tokio::time::sleep(options.timeout);
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(options.bookmark_every);
    tick.tick().await;
    loop {
        let line = tokio::select! {
            // A drop wins over events that arrived after it.
            biased;
            _ = drops.changed() => {
                tx.abort(io::Error::new(io::ErrorKind::ConnectionReset, "watch dropped by the test"));
                return;
            }
            () = &mut deadline => return,
            _ = tick.tick(), if options.bookmarks => filter.bookmark(last, false),
            r = live.recv() => match r {
                Ok(e) if e.rv <= last => continue,
                Ok(e) => {
                    last = e.rv;
                    if !filter.matches(&e) {
                        continue;
                    }
                    filter.event(&e)
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    tx.abort(io::Error::other("watch fell behind"));
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if tx.send_data(line).await.is_err() {
            return;
        }
    }
}
