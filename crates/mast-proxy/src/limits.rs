//! Hardening limits with Envoy's as the reference (`docs/proxy-hardening.md` lists each
//! limit, Envoy's value and ours): the global downstream connection cap ([`conn`]), the
//! HTTP/1 request-head scanner that catches smuggling framings hyper tolerates ([`h1`]),
//! the HTTP/2 flood guard ([`h2`]), and the I/O wrapper that runs them on every downstream
//! connection together with the request-headers and idle timeouts ([`io`]).

pub mod conn;
pub mod h1;
pub mod h2;
pub mod io;

use std::time::Duration;

pub use conn::{ConnectionLimit, ConnectionPermit};
pub use io::{ConnShared, Guarded, Inspect};

/// How long a client may take to send one complete HTTP/1 request head (first byte to the
/// empty line) when the HCM sets no `request_headers_timeout`. Envoy has no such default;
/// ours stops slowloris clients without touching idle keep-alive connections.
pub const DEFAULT_HEADERS_TIMEOUT: Duration = Duration::from_secs(60);

/// Envoy's `max_outbound_control_frames` (1000): the burst of PING/SETTINGS frames that
/// need an ACK a client may send before the connection is closed.
pub const MAX_CONTROL_BURST: u32 = 1000;
/// Envoy's `max_consecutive_inbound_frames_with_empty_payload` (1).
pub const MAX_EMPTY_FRAMES: u32 = 1;
/// Envoy's `max_inbound_priority_frames_per_stream` (100).
pub const MAX_PRIORITY_PER_STREAM: u64 = 100;
/// Envoy's `max_inbound_window_update_frames_per_data_frame_sent` (10).
pub const MAX_WINDOW_UPDATES_PER_DATA: u64 = 10;
/// Envoy's `overload.premature_reset_total_stream_count` (500).
pub const PREMATURE_RESET_STREAMS: u64 = 500;
/// Envoy's `overload.premature_reset_min_stream_lifetime_seconds` (1 s).
pub const PREMATURE_RESET_LIFETIME: Duration = Duration::from_secs(1);
