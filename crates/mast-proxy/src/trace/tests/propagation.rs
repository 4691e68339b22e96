//! What the upstream receives for each kind of incoming trace context, per tracer.

use super::*;

const RID: &str = "125a4afb-6f55-44ba-ad80-413f09f48a28";
const TRACE: &str = "463ac35c9f6413ad48485a3953bb6124";
const SPAN: &str = "a2fb4a1d1a96d312";
const PARENT: &str = "0020000000000001";

fn h<'a>(head: &'a HeaderMap, name: &str) -> Option<&'a str> {
    head.get(name).map(|v| v.to_str().unwrap())
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn zipkin_table() {
    let on = config(&tracing(&zipkin_pb("zipkin"), 100.0));
    let off = config(&tracing(&zipkin_pb("zipkin"), 0.0));
    struct Case {
        what: &'static str,
        config: Arc<TraceConfig>,
        headers: Vec<(&'static str, &'static str)>,
        /// The trace id the upstream sees (`None`: a new 32-hex one).
        trace: Option<&'static str>,
        /// The parent the upstream sees (`Some("")`: none).
        parent: Option<&'static str>,
        sampled: &'static str,
    }
    let b3 = format!("{TRACE}-{SPAN}-1-{PARENT}");
    let b3: &'static str = Box::leak(b3.into_boxed_str());
    let tp = format!("00-{TRACE}-{SPAN}-01");
    let tp: &'static str = Box::leak(tp.into_boxed_str());
    let cases = [
        Case {
            what: "none: a new trace, sampled at 100 %",
            config: Arc::clone(&on),
            headers: vec![("x-request-id", RID)],
            trace: None,
            parent: Some(""),
            sampled: "1",
        },
        Case {
            what: "none at 0 %: still propagated, unsampled",
            config: Arc::clone(&off),
            headers: vec![("x-request-id", RID)],
            trace: None,
            parent: Some(""),
            sampled: "0",
        },
        Case {
            what: "force-trace at 0 %",
            config: Arc::clone(&off),
            headers: vec![("x-request-id", RID), ("x-envoy-force-trace", "1")],
            trace: None,
            parent: Some(""),
            sampled: "1",
        },
        Case {
            what: "B3 multi, sampled 1: continued, the caller's span is the parent",
            config: Arc::clone(&off),
            headers: vec![
                ("x-request-id", RID),
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-sampled", "1"),
            ],
            trace: Some(TRACE),
            parent: Some(SPAN),
            sampled: "1",
        },
        Case {
            what: "B3 multi, sampled 0 wins over 100 %",
            config: Arc::clone(&on),
            headers: vec![
                ("x-request-id", RID),
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-sampled", "0"),
            ],
            trace: Some(TRACE),
            parent: Some(SPAN),
            sampled: "0",
        },
        Case {
            what: "B3 single: written back as multi-header",
            config: Arc::clone(&off),
            headers: vec![("x-request-id", RID), ("b3", b3)],
            trace: Some(TRACE),
            parent: Some(SPAN),
            sampled: "1",
        },
        Case {
            what: "b3: 0 alone: a new trace, unsampled",
            config: Arc::clone(&on),
            headers: vec![("x-request-id", RID), ("b3", "0")],
            trace: None,
            parent: Some(""),
            sampled: "0",
        },
        Case {
            what: "W3C only: the Zipkin tracer reads B3 only (USE_B3)",
            config: Arc::clone(&on),
            headers: vec![("x-request-id", RID), ("traceparent", tp)],
            trace: None,
            parent: Some(""),
            sampled: "1",
        },
    ];
    for c in cases {
        let (span, head) = through(&c.config, false, &c.headers);
        let span = span.unwrap_or_else(|| panic!("{}: no span", c.what));
        let trace = h(&head, "x-b3-traceid").unwrap();
        match c.trace {
            Some(t) => assert_eq!(trace, t, "{}", c.what),
            None => assert!(is_hex(trace, 32) && trace != TRACE, "{}: {trace}", c.what),
        }
        let span_id = h(&head, "x-b3-spanid").unwrap();
        assert!(
            is_hex(span_id, 16) && span_id != SPAN,
            "{}: {span_id}",
            c.what
        );
        assert_eq!(span_id, format!("{:016x}", span.span_id()), "{}", c.what);
        assert_eq!(
            h(&head, "x-b3-parentspanid").unwrap_or(""),
            c.parent.unwrap(),
            "{}",
            c.what
        );
        assert_eq!(h(&head, "x-b3-sampled"), Some(c.sampled), "{}", c.what);
        assert_eq!(span.sampled(), c.sampled == "1", "{}", c.what);
        assert_eq!(span.name(), "svc.default:8080", "{}", c.what);
        assert_eq!(
            h(&head, "x-request-id").unwrap()[..8],
            RID[..8],
            "{}",
            c.what
        );
        if let Some(single) = h(&head, "b3").filter(|_| c.trace.is_some()) {
            let parent = c.parent.unwrap();
            let want = format!("{trace}-{span_id}-{}-{parent}", c.sampled);
            assert_eq!(single, want, "{}: b3 rewritten to our span", c.what);
        }
    }
}

#[test]
fn zipkin_new_trace_ids_and_request_id_mark() {
    let on = config(&tracing(&zipkin_pb("zipkin"), 100.0));
    let (span, head) = through(&on, false, &[("x-request-id", RID)]);
    let span = span.unwrap();
    // A root span's id is its trace id's low half, as Envoy's Zipkin tracer.
    assert_eq!(span.span_id(), span.trace_id().low);
    assert!(span.trace_id().wide);
    // The decision is packed into the request id for the next hop.
    assert_eq!(
        h(&head, "x-request-id"),
        Some("125a4afb-6f55-94ba-ad80-413f09f48a28")
    );
    let mut pb = zipkin_pb("zipkin");
    pb.trace_id_128bit = false;
    let (_, head) = through(&config(&tracing(&pb, 100.0)), false, &[]);
    assert!(is_hex(h(&head, "x-b3-traceid").unwrap(), 16));
}

#[test]
fn zipkin_w3c_option_and_shared_inbound_span() {
    let mut pb = zipkin_pb("zipkin");
    pb.trace_context_option = 1;
    let tp = format!("00-{TRACE}-{SPAN}-01");
    let (_, head) = through(&config(&tracing(&pb, 0.0)), false, &[("traceparent", &tp)]);
    assert_eq!(h(&head, "x-b3-traceid"), Some(TRACE));
    assert_eq!(h(&head, "x-b3-parentspanid"), Some(SPAN));
    let out = h(&head, "traceparent").unwrap();
    assert!(
        out.starts_with(&format!("00-{TRACE}-")) && out.ends_with("-01"),
        "{out}"
    );

    // Envoy's default shared span context: the inbound span reuses the caller's span id.
    let mut pb = zipkin_pb("zipkin");
    pb.shared_span_context = None;
    let b3 = [
        ("x-b3-traceid", TRACE),
        ("x-b3-spanid", SPAN),
        ("x-b3-parentspanid", PARENT),
        ("x-b3-sampled", "1"),
    ];
    let (span, head) = through(&config(&tracing(&pb, 100.0)), true, &b3);
    assert_eq!(h(&head, "x-b3-spanid"), Some(SPAN));
    assert_eq!(h(&head, "x-b3-parentspanid"), Some(PARENT));
    assert_eq!(span.unwrap().parent_id(), Some(0x0020_0000_0000_0001));
    // Outbound, it is always a child.
    let (_, head) = through(&config(&tracing(&pb, 100.0)), false, &b3);
    assert_eq!(h(&head, "x-b3-parentspanid"), Some(SPAN));
}

#[test]
fn malformed_context_is_not_traced_and_passes_untouched() {
    let on = config(&tracing(&zipkin_pb("zipkin"), 100.0));
    let bad = [("x-b3-traceid", "xyz"), ("x-b3-spanid", SPAN)];
    let (span, head) = through(&on, false, &bad);
    assert!(span.is_none());
    assert_eq!(h(&head, "x-b3-traceid"), Some("xyz"));
    assert_eq!(h(&head, "x-b3-sampled"), None);
    let otel = config(&tracing(&otel_pb("otel"), 100.0));
    let (span, head) = through(&otel, false, &[("traceparent", "00-zz-01")]);
    assert!(span.is_none());
    assert_eq!(h(&head, "traceparent"), Some("00-zz-01"));
}

#[test]
fn opentelemetry_table() {
    let on = config(&tracing(&otel_pb("otel"), 100.0));
    // traceparent in → traceparent out, same trace, our span as the parent, tracestate kept.
    let tp = format!("00-{TRACE}-{SPAN}-00");
    let (span, head) = through(&on, false, &[("traceparent", &tp), ("tracestate", "k=v")]);
    let span = span.unwrap();
    let out = h(&head, "traceparent").unwrap();
    let fields: Vec<&str> = out.split('-').collect();
    assert_eq!(fields[0], "00");
    assert_eq!(fields[1], TRACE);
    assert_eq!(fields[2], format!("{:016x}", span.span_id()));
    assert_ne!(fields[2], SPAN);
    // The caller's flags (not sampled) win over 100 %.
    assert_eq!(fields[3], "00");
    assert!(!span.sampled());
    assert_eq!(
        span.parent_id(),
        Some(u64::from_str_radix(SPAN, 16).unwrap())
    );
    assert_eq!(h(&head, "tracestate"), Some("k=v"));
    assert_eq!(span.name(), "egress svc.default:8080");

    // Nothing in: a new 128-bit trace, sampled by the decision; B3 is not read.
    let (span, head) = through(&on, true, &[("x-request-id", RID), ("x-b3-traceid", TRACE)]);
    let out = h(&head, "traceparent").unwrap();
    assert!(is_hex(&out[3..35], 32) && &out[3..35] != TRACE, "{out}");
    assert!(out.ends_with("-01"));
    assert_eq!(span.unwrap().name(), "ingress");
    let off = config(&tracing(&otel_pb("otel"), 0.0));
    let (_, head) = through(&off, false, &[("x-request-id", RID)]);
    assert!(h(&head, "traceparent").unwrap().ends_with("-00"));
}

#[test]
fn the_route_decorator_names_the_span() {
    let on = config(&tracing(&zipkin_pb("zipkin"), 100.0));
    let mut p = parts(&[]);
    crate::trace::start(&on, false, peer(), &mut p);
    crate::trace::set_operation(&mut p.extensions, None);
    assert_eq!(
        p.extensions.get::<RequestTrace>().unwrap().name(),
        "svc.default:8080"
    );
    crate::trace::set_operation(
        &mut p.extensions,
        Some("svc.default.svc.cluster.local:8080/*"),
    );
    assert_eq!(
        p.extensions.get::<RequestTrace>().unwrap().name(),
        "svc.default.svc.cluster.local:8080/*"
    );
}

#[test]
fn header_parsing() {
    use crate::trace::context::{Incoming, extract_b3, extract_w3c};
    let map = |pairs: &[(&str, &str)]| {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    };
    let ctx = |i: Incoming| match i {
        Incoming::Context(c) => c,
        other => panic!("{other:?}"),
    };
    let c = ctx(extract_b3(&map(&[("b3", &format!("{TRACE}-{SPAN}"))])));
    assert_eq!((c.sampled, c.parent_id), (None, None));
    let c = ctx(extract_b3(&map(&[(
        "b3",
        &format!("{}-{SPAN}-d", &TRACE[16..]),
    )])));
    assert_eq!((c.trace_id.wide, c.sampled), (false, Some(true)));
    assert_eq!(extract_b3(&map(&[("b3", "x")])), Incoming::Invalid);
    assert_eq!(
        extract_b3(&map(&[("b3", &format!("{TRACE}-{SPAN}-2"))])),
        Incoming::Invalid
    );
    assert_eq!(
        extract_b3(&map(&[("x-b3-sampled", "0")])),
        Incoming::Sampled(false)
    );
    assert_eq!(
        extract_b3(&map(&[("x-b3-flags", "1")])),
        Incoming::Sampled(true)
    );
    assert_eq!(extract_b3(&map(&[("x-b3-traceid", TRACE)])), Incoming::None);
    let zero = format!("00-{}-{SPAN}-01", "0".repeat(32));
    assert_eq!(
        extract_w3c(&map(&[("traceparent", &zero)])),
        Incoming::Invalid
    );
    let ff = format!("ff-{TRACE}-{SPAN}-01");
    assert_eq!(
        extract_w3c(&map(&[("traceparent", &ff)])),
        Incoming::Invalid
    );
    let future = format!("01-{TRACE}-{SPAN}-01-extra");
    assert_eq!(
        ctx(extract_w3c(&map(&[("traceparent", &future)]))).sampled,
        Some(true)
    );
    let long = format!("00-{TRACE}-{SPAN}-01-extra");
    assert_eq!(
        extract_w3c(&map(&[("traceparent", &long)])),
        Incoming::Invalid
    );
}
