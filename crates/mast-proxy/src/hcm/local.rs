//! Local replies: responses the proxy makes itself (no route, no healthy upstream, overflow,
//! timeouts, fault aborts, direct responses, redirects), with Envoy's status codes, bodies and
//! headers, and the outcome (flags, details) the access log reports.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use super::flags::Flags;
use crate::body::{self, Body};

/// A finished local reply with what the access log needs.
#[derive(Debug)]
pub struct Local {
    /// The response.
    pub response: Response<Body>,
    /// Flags to log.
    pub flags: Flags,
    /// `%RESPONSE_CODE_DETAILS%`.
    pub details: &'static str,
}

/// A plain-text reply, as Envoy's local replies (`content-type: text/plain`).
pub fn reply(status: StatusCode, text: &'static str, flags: Flags, details: &'static str) -> Local {
    let mut response = Response::new(if text.is_empty() {
        body::empty()
    } else {
        body::full(Bytes::from_static(text.as_bytes()))
    });
    *response.status_mut() = status;
    if !text.is_empty() {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
    }
    Local {
        response,
        flags,
        details,
    }
}

/// 404, no route matched (NR).
pub fn no_route() -> Local {
    reply(
        StatusCode::NOT_FOUND,
        "",
        Flags::NO_ROUTE_FOUND,
        "route_not_found",
    )
}

/// 426, HTTP/1.0 is not accepted (Envoy's default).
pub fn http10_refused() -> Local {
    reply(StatusCode::UPGRADE_REQUIRED, "", Flags::NONE, "low_version")
}

/// The route's cluster is unknown (NC): the route's `cluster_not_found_response_code`
/// (503 by default; 500 on Gateway API routes, as Istio sets).
pub fn no_cluster(status: StatusCode) -> Local {
    reply(status, "", Flags::NO_CLUSTER_FOUND, "cluster_not_found")
}

/// 503, no healthy upstream (UH).
pub fn no_healthy_upstream() -> Local {
    reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "no healthy upstream",
        Flags::NO_HEALTHY_UPSTREAM,
        "no_healthy_upstream",
    )
}

/// 503 with `x-envoy-overloaded: true`, a circuit breaker is open (UO).
pub fn overflow() -> Local {
    let mut l = reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "upstream connect error or disconnect/reset before headers. reset reason: overflow",
        Flags::UPSTREAM_OVERFLOW,
        "upstream_reset_before_response_started{overflow}",
    );
    l.response
        .headers_mut()
        .insert("x-envoy-overloaded", HeaderValue::from_static("true"));
    l
}

/// 503, the upstream connection failed (UF).
pub fn connect_failure() -> Local {
    reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
        Flags::UPSTREAM_CONNECTION_FAILURE,
        "upstream_reset_before_response_started{connection_failure}",
    )
}

/// 503, the upstream reset or closed before a response (UR / UC).
pub fn upstream_reset(flag: Flags) -> Local {
    reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
        flag,
        "upstream_reset_before_response_started{connection_termination}",
    )
}

/// 503, DNS resolution failed (DF).
pub fn dns_failure() -> Local {
    reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "dns resolution failure",
        Flags::DNS_FAILURE,
        "dns_resolution_failure",
    )
}

/// 504, the route or a try timed out (UT).
pub fn timeout() -> Local {
    reply(
        StatusCode::GATEWAY_TIMEOUT,
        "upstream request timeout",
        Flags::UPSTREAM_REQUEST_TIMEOUT,
        "upstream_response_timeout",
    )
}

/// 400, a request the proxy cannot handle (DPE).
pub fn bad_request(details: &'static str) -> Local {
    reply(
        StatusCode::BAD_REQUEST,
        "",
        Flags::DOWNSTREAM_PROTOCOL_ERROR,
        details,
    )
}

/// A fault abort (FI): the HTTP status, or for gRPC a 200 with `grpc-status` (Envoy's
/// trailers-only response).
pub fn fault_abort(abort: &crate::route::Abort) -> Local {
    match abort {
        crate::route::Abort::Http(status) => reply(
            *status,
            "fault filter abort",
            Flags::FAULT_INJECTED,
            "fault_filter_abort",
        ),
        crate::route::Abort::Grpc(code) => {
            let mut l = reply(
                StatusCode::OK,
                "",
                Flags::FAULT_INJECTED,
                "fault_filter_abort",
            );
            let h = l.response.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            h.insert("grpc-status", HeaderValue::from(*code));
            h.insert(
                "grpc-message",
                HeaderValue::from_static("fault filter abort"),
            );
            l
        }
    }
}
