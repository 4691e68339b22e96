//! The tracing decision of the connection manager, as Envoy's
//! `ConnectionManagerUtility::mutateTracingRequestHeader` makes it: a decision already packed
//! in the `x-request-id` UUID (its 15th character: `9` sampled, `a` forced, `b` client) is
//! kept; otherwise `x-client-trace-id` (under `client_sampling`), `x-envoy-force-trace`, or
//! `random_sampling` against the request id's first 32 bits modulo 10000 decide, and
//! `overall_sampling` caps the result. The decision is written back into the request id so
//! the next proxy on the path sees it.

use http::{HeaderMap, HeaderValue};

const REQUEST_ID: &str = "x-request-id";
const CLIENT_TRACE_ID: &str = "x-client-trace-id";
const FORCE_TRACE: &str = "x-envoy-force-trace";
const UUID_LEN: usize = 36;
const TRACE_BYTE: usize = 14;

/// Why a request is (or is not) traced (Envoy's `Tracing::Reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Not sampled.
    NotTraceable,
    /// Chosen by `random_sampling`.
    Sampling,
    /// `x-envoy-force-trace`.
    ServiceForced,
    /// `x-client-trace-id` under `client_sampling`.
    ClientForced,
}

impl Reason {
    /// Whether the request is traced.
    pub fn traced(self) -> bool {
        self != Reason::NotTraceable
    }

    fn byte(self) -> u8 {
        match self {
            Reason::NotTraceable => b'4',
            Reason::Sampling => b'9',
            Reason::ServiceForced => b'a',
            Reason::ClientForced => b'b',
        }
    }
}

/// The three sampling rates, in basis points (10000 = 100 %).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampling {
    /// `client_sampling`.
    pub client: u32,
    /// `random_sampling`.
    pub random: u32,
    /// `overall_sampling`.
    pub overall: u32,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            client: 10_000,
            random: 10_000,
            overall: 10_000,
        }
    }
}

/// The reason packed in a UUID request id.
fn packed(id: &[u8]) -> Reason {
    if id.len() != UUID_LEN {
        return Reason::NotTraceable;
    }
    match id[TRACE_BYTE] {
        b'9' => Reason::Sampling,
        b'a' => Reason::ServiceForced,
        b'b' => Reason::ClientForced,
        _ => Reason::NotTraceable,
    }
}

/// The request id's first 8 hex digits (Envoy's `getInteger`).
fn integer(id: &[u8]) -> Option<u64> {
    let head = id.get(..8)?;
    if !head.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(head).ok()?, 16).ok()
}

/// Packs `reason` into a UUID request id (other ids are left alone).
fn pack(headers: &mut HeaderMap, reason: Reason) {
    let Some(id) = headers.get(REQUEST_ID) else {
        return;
    };
    let bytes = id.as_bytes();
    if bytes.len() != UUID_LEN || bytes[TRACE_BYTE] == reason.byte() {
        return;
    }
    let mut copy = [0u8; UUID_LEN];
    copy.copy_from_slice(bytes);
    copy[TRACE_BYTE] = reason.byte();
    if let Ok(v) = HeaderValue::from_bytes(&copy) {
        headers.insert(REQUEST_ID, v);
    }
}

fn enabled(bp: u32, draw: u64) -> bool {
    draw % 10_000 < u64::from(bp)
}

/// Decides whether the request is traced, and packs the decision into its `x-request-id`.
pub fn decide(sampling: &Sampling, headers: &mut HeaderMap) -> Reason {
    let Some(id) = headers.get(REQUEST_ID) else {
        return Reason::NotTraceable;
    };
    let Some(draw) = integer(id.as_bytes()) else {
        return Reason::NotTraceable;
    };
    let mut reason = packed(id.as_bytes());
    if reason == Reason::NotTraceable {
        let client =
            headers.contains_key(CLIENT_TRACE_ID) && enabled(sampling.client, fastrand::u64(..));
        if client {
            reason = Reason::ClientForced;
        } else if headers.contains_key(FORCE_TRACE) {
            reason = Reason::ServiceForced;
        } else if enabled(sampling.random, draw) {
            reason = Reason::Sampling;
        }
        if reason.traced() {
            pack(headers, reason);
        }
    }
    if reason.traced() && !enabled(sampling.overall, draw) {
        reason = Reason::NotTraceable;
        pack(headers, reason);
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRESH: &str = "125a4afb-6f55-44ba-ad80-413f09f48a28";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn rate(random: u32) -> Sampling {
        Sampling {
            random,
            ..Sampling::default()
        }
    }

    #[test]
    fn random_sampling_marks_the_request_id() {
        let mut h = headers(&[("x-request-id", FRESH)]);
        assert_eq!(decide(&rate(10_000), &mut h), Reason::Sampling);
        assert_eq!(h["x-request-id"], "125a4afb-6f55-94ba-ad80-413f09f48a28");
        // The next hop keeps the packed decision even at 0 %.
        assert_eq!(decide(&rate(0), &mut h), Reason::Sampling);
    }

    #[test]
    fn zero_percent_leaves_the_request_id_alone() {
        let mut h = headers(&[("x-request-id", FRESH)]);
        assert_eq!(decide(&rate(0), &mut h), Reason::NotTraceable);
        assert_eq!(h["x-request-id"], FRESH);
    }

    #[test]
    fn the_draw_is_the_request_id_modulo_10000() {
        // 0x125a4afb = 307907323; % 10000 = 7323.
        let mut h = headers(&[("x-request-id", FRESH)]);
        assert_eq!(decide(&rate(7323), &mut h), Reason::NotTraceable);
        let mut h = headers(&[("x-request-id", FRESH)]);
        assert_eq!(decide(&rate(7324), &mut h), Reason::Sampling);
    }

    #[test]
    fn force_trace_and_client_trace_id() {
        let mut h = headers(&[("x-request-id", FRESH), ("x-envoy-force-trace", "1")]);
        assert_eq!(decide(&rate(0), &mut h), Reason::ServiceForced);
        assert_eq!(h["x-request-id"].as_bytes()[14], b'a');
        let mut h = headers(&[("x-request-id", FRESH), ("x-client-trace-id", "x")]);
        assert_eq!(decide(&rate(0), &mut h), Reason::ClientForced);
        assert_eq!(h["x-request-id"].as_bytes()[14], b'b');
    }

    #[test]
    fn overall_sampling_caps_every_reason() {
        let off = Sampling {
            overall: 0,
            ..Sampling::default()
        };
        let mut h = headers(&[("x-request-id", FRESH), ("x-envoy-force-trace", "1")]);
        assert_eq!(decide(&off, &mut h), Reason::NotTraceable);
        assert_eq!(h["x-request-id"], FRESH);
    }

    #[test]
    fn odd_request_ids() {
        // Not a UUID but hex-led: sampled per hop, the id is kept as sent.
        let mut h = headers(&[("x-request-id", "abcdef12-trace")]);
        assert_eq!(decide(&rate(10_000), &mut h), Reason::Sampling);
        assert_eq!(h["x-request-id"], "abcdef12-trace");
        // Not hex-led, or absent: never traced.
        let mut h = headers(&[("x-request-id", "req-123")]);
        assert_eq!(decide(&rate(10_000), &mut h), Reason::NotTraceable);
        assert_eq!(
            decide(&rate(10_000), &mut HeaderMap::new()),
            Reason::NotTraceable
        );
    }
}
