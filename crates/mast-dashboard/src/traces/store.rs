//! The last N traces in memory. Spans are grouped by trace id as they arrive (a trace's spans
//! come from several proxies over several seconds); when a new trace would exceed the
//! capacity, the trace seen first goes. Queries compute summaries on demand.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

use super::model::{Span, TraceDetail, TraceSummary};

/// At most this many spans are kept per trace; later ones are dropped (and counted).
pub const MAX_SPANS_PER_TRACE: usize = 1000;

/// The traces kept in memory. Cheap to clone: clones share the same store.
#[derive(Clone)]
pub struct TraceStore {
    inner: Arc<Mutex<Inner>>,
}

impl Default for TraceStore {
    /// A store with the dashboard's default capacity (1000 traces).
    fn default() -> Self {
        Self::new(crate::Options::default().trace_capacity)
    }
}

impl std::fmt::Debug for TraceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock();
        f.debug_struct("TraceStore")
            .field("capacity", &inner.capacity)
            .field("traces", &inner.traces.len())
            .finish()
    }
}

#[derive(Default)]
struct Inner {
    capacity: usize,
    /// Spans by trace id.
    traces: HashMap<String, Vec<Span>>,
    /// Trace ids, first seen first.
    order: VecDeque<String>,
    /// Spans dropped because their trace was full.
    dropped_spans: u64,
}

/// The filter of `GET /api/traces`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceQuery {
    /// Only traces with a span from this service (its name, or its `istio.canonical_service`
    /// tag).
    pub service: Option<String>,
    /// At most this many traces, newest first.
    pub limit: usize,
}

impl TraceStore {
    /// A store keeping at most `capacity` traces (0 keeps none).
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                capacity,
                ..Inner::default()
            })),
        }
    }

    /// Adds spans, grouping them by trace; returns how many were kept. A span whose id,
    /// kind and service are already in its trace replaces the earlier copy (a report sent
    /// twice).
    pub fn add(&self, spans: impl IntoIterator<Item = Span>) -> usize {
        let mut inner = self.inner.lock();
        if inner.capacity == 0 {
            return 0;
        }
        let mut kept = 0;
        for span in spans {
            kept += usize::from(inner.add(span));
        }
        kept
    }

    /// How many traces are kept.
    pub fn len(&self) -> usize {
        self.inner.lock().traces.len()
    }

    /// Whether no trace is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many spans were dropped because their trace already had
    /// [`MAX_SPANS_PER_TRACE`].
    pub fn dropped_spans(&self) -> u64 {
        self.inner.lock().dropped_spans
    }

    /// The traces matching `query`, newest (latest start) first.
    pub fn traces(&self, query: &TraceQuery) -> Vec<TraceSummary> {
        let inner = self.inner.lock();
        let mut out: Vec<TraceSummary> = inner
            .traces
            .iter()
            .filter(|(_, spans)| match &query.service {
                Some(s) => spans.iter().any(|span| from_service(span, s)),
                None => true,
            })
            .map(|(id, spans)| summary(id, spans))
            .collect();
        drop(inner);
        out.sort_by(|a, b| {
            b.start_us
                .cmp(&a.start_us)
                .then_with(|| a.trace_id.cmp(&b.trace_id))
        });
        out.truncate(query.limit);
        out
    }

    /// One trace with its spans sorted by start, or `None` when it is not kept.
    pub fn trace(&self, trace_id: &str) -> Option<TraceDetail> {
        let id = super::model::normalize_trace_id(trace_id).ok()?;
        // A 64-bit id also names the 128-bit trace whose high half is zero, and back.
        let other = match id.len() {
            16 => format!("{:0>32}", id),
            _ => id
                .strip_prefix("0000000000000000")
                .unwrap_or(&id)
                .to_owned(),
        };
        let (id, mut spans) = {
            let inner = self.inner.lock();
            [id, other]
                .into_iter()
                .find_map(|id| inner.traces.get(&id).map(|s| (id, s.clone())))?
        };
        spans.sort_by(|a, b| {
            a.start_us
                .cmp(&b.start_us)
                .then_with(|| a.parent_id.is_some().cmp(&b.parent_id.is_some()))
                .then_with(|| a.span_id.cmp(&b.span_id))
        });
        Some(TraceDetail {
            trace_id: id,
            spans,
        })
    }

    /// The services that reported spans of the kept traces, sorted.
    pub fn services(&self) -> Vec<String> {
        let inner = self.inner.lock();
        let set: BTreeSet<&str> = inner
            .traces
            .values()
            .flatten()
            .map(|s| s.service.as_str())
            .collect();
        set.into_iter().map(str::to_owned).collect()
    }
}

impl Inner {
    fn add(&mut self, span: Span) -> bool {
        if !self.traces.contains_key(&span.trace_id) {
            while self.traces.len() >= self.capacity {
                let Some(oldest) = self.order.pop_front() else {
                    break;
                };
                self.traces.remove(&oldest);
            }
            self.order.push_back(span.trace_id.clone());
        }
        let spans = self.traces.entry(span.trace_id.clone()).or_default();
        if let Some(same) = spans
            .iter_mut()
            .find(|s| s.span_id == span.span_id && s.kind == span.kind && s.service == span.service)
        {
            *same = span;
            return true;
        }
        if spans.len() >= MAX_SPANS_PER_TRACE {
            self.dropped_spans += 1;
            return false;
        }
        spans.push(span);
        true
    }
}

fn from_service(span: &Span, service: &str) -> bool {
    span.service == service
        || span.tags.get("istio.canonical_service").map(String::as_str) == Some(service)
}

/// The summary of one trace (`spans` is never empty).
fn summary(trace_id: &str, spans: &[Span]) -> TraceSummary {
    let ids: BTreeSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let is_root = |s: &&Span| match &s.parent_id {
        None => true,
        Some(p) => !ids.contains(p.as_str()),
    };
    // The earliest root; a SERVER span before a CLIENT one that starts in the same µs.
    let root = spans
        .iter()
        .filter(is_root)
        .min_by_key(|s| (s.start_us, s.parent_id.is_some()))
        .or_else(|| spans.iter().min_by_key(|s| s.start_us));
    let start = spans.iter().map(|s| s.start_us).min().unwrap_or(0);
    let end = spans.iter().map(Span::end_us).max().unwrap_or(start);
    let services: BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    TraceSummary {
        trace_id: trace_id.to_owned(),
        root_service: root.map(|r| r.service.clone()).unwrap_or_default(),
        root_name: root.map(|r| r.name.clone()).unwrap_or_default(),
        start_us: start,
        duration_us: end.saturating_sub(start),
        span_count: spans.len(),
        services: services.into_iter().map(str::to_owned).collect(),
        error: spans.iter().any(|s| s.error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn span(
        trace: &str,
        id: &str,
        parent: Option<&str>,
        service: &str,
        start: u64,
    ) -> Span {
        Span {
            trace_id: trace.into(),
            span_id: id.into(),
            parent_id: parent.map(str::to_owned),
            name: format!("op-{id}"),
            service: service.into(),
            kind: if parent.is_some() { "SERVER" } else { "CLIENT" }.into(),
            start_us: start,
            duration_us: 100,
            tags: Default::default(),
            error: false,
        }
    }

    const T1: &str = "00000000000000000000000000000001";
    const T2: &str = "00000000000000000000000000000002";
    const T3: &str = "00000000000000000000000000000003";

    #[test]
    fn groups_spans_of_one_trace_from_two_posts() {
        let store = TraceStore::new(10);
        assert_eq!(store.add([span(T1, "a", None, "client.default", 1000)]), 1);
        assert_eq!(
            store.add([span(T1, "b", Some("a"), "nginx.default", 1050)]),
            1
        );
        assert_eq!(store.len(), 1);
        let list = store.traces(&TraceQuery {
            service: None,
            limit: 20,
        });
        assert_eq!(list.len(), 1);
        let t = &list[0];
        assert_eq!(t.span_count, 2);
        assert_eq!(
            (t.root_service.as_str(), t.root_name.as_str()),
            ("client.default", "op-a")
        );
        assert_eq!((t.start_us, t.duration_us), (1000, 150));
        assert_eq!(t.services, ["client.default", "nginx.default"]);
        let detail = store.trace(T1).unwrap();
        assert_eq!(
            detail
                .spans
                .iter()
                .map(|s| s.span_id.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn evicts_the_trace_seen_first() {
        let store = TraceStore::new(2);
        store.add([span(T1, "a", None, "s", 3000)]);
        store.add([span(T2, "b", None, "s", 1000)]);
        // A late span of T1 does not make it newer.
        store.add([span(T1, "c", Some("a"), "s", 3100)]);
        store.add([span(T3, "d", None, "s", 2000)]);
        assert_eq!(store.len(), 2);
        assert!(store.trace(T1).is_none(), "first seen, first evicted");
        let ids: Vec<String> = store
            .traces(&TraceQuery {
                service: None,
                limit: 20,
            })
            .into_iter()
            .map(|t| t.trace_id)
            .collect();
        assert_eq!(ids, [T3, T2], "newest start first");
    }

    #[test]
    fn filters_by_service_and_limits() {
        let store = TraceStore::new(10);
        let mut tagged = span(T1, "a", None, "reviews-v1.default", 10);
        tagged
            .tags
            .insert("istio.canonical_service".into(), "reviews".into());
        store.add([tagged, span(T2, "b", None, "ratings.default", 20)]);
        store.add([span(T3, "c", None, "ratings.default", 30)]);
        let q = |service: &str, limit| TraceQuery {
            service: Some(service.into()),
            limit,
        };
        assert_eq!(store.traces(&q("reviews", 20)).len(), 1);
        assert_eq!(store.traces(&q("reviews-v1.default", 20)).len(), 1);
        assert_eq!(store.traces(&q("ratings.default", 20)).len(), 2);
        assert_eq!(store.traces(&q("ratings.default", 1))[0].trace_id, T3);
        assert!(store.traces(&q("nobody", 20)).is_empty());
        assert_eq!(store.services(), ["ratings.default", "reviews-v1.default"]);
    }

    #[test]
    fn a_repeated_span_replaces_and_a_full_trace_drops() {
        let store = TraceStore::new(1);
        store.add([span(T1, "a", None, "s", 10)]);
        let mut again = span(T1, "a", None, "s", 10);
        again.error = true;
        store.add([again]);
        let t = store.trace(T1).unwrap();
        assert_eq!(t.spans.len(), 1);
        assert!(t.spans[0].error);
        let many = (0..MAX_SPANS_PER_TRACE + 5)
            .map(|i| span(T1, &format!("{i:016x}"), Some("a"), "s", 20));
        store.add(many);
        assert_eq!(store.trace(T1).unwrap().spans.len(), MAX_SPANS_PER_TRACE);
        assert_eq!(store.dropped_spans(), 6);
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let store = TraceStore::new(0);
        assert_eq!(store.add([span(T1, "a", None, "s", 10)]), 0);
        assert!(store.is_empty());
    }

    #[test]
    fn unknown_or_malformed_ids_are_not_found() {
        let store = TraceStore::new(2);
        store.add([span(T1, "a", None, "s", 10)]);
        assert!(store.trace("1").is_some(), "short ids are normalised");
        assert!(store.trace("zz").is_none());
        assert!(store.trace(T2).is_none());
    }
}
