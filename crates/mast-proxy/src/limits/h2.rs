//! The HTTP/2 flood guard: follows the frame headers both ways (never the payloads, except
//! a padded frame's pad length) and applies Envoy's flood limits (`Http2ProtocolOptions`
//! defaults and the premature-reset heuristic), since h2 bounds its buffers but keeps
//! serving a peer that floods:
//! - PING / SETTINGS needing an ACK: a burst above [`MAX_CONTROL_BURST`] (the bucket
//!   refills at that many per second);
//! - consecutive HEADERS / CONTINUATION / DATA frames with an empty payload and no
//!   END_STREAM: more than [`MAX_EMPTY_FRAMES`];
//! - PRIORITY frames: more than [`MAX_PRIORITY_PER_STREAM`] × (1 + streams opened);
//! - WINDOW_UPDATE frames: more than 5 + 2 × (streams opened + [`MAX_WINDOW_UPDATES_PER_DATA`]
//!   × DATA frames sent);
//! - rapid reset: streams the client resets within [`PREMATURE_RESET_LIFETIME`] of opening
//!   them, once they are half of [`PREMATURE_RESET_STREAMS`] (or later half of all streams).
//!
//! A flood closes the connection with GOAWAY (ENHANCE_YOUR_CALM) — see [`super::io`].

use std::time::{Duration, Instant};

use super::{
    MAX_CONTROL_BURST, MAX_EMPTY_FRAMES, MAX_PRIORITY_PER_STREAM, MAX_WINDOW_UPDATES_PER_DATA,
    PREMATURE_RESET_LIFETIME, PREMATURE_RESET_STREAMS,
};

const PREFACE_LEN: u8 = 24;
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const PRIORITY: u8 = 2;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const PADDED: u8 = 0x8;

/// Which limit a peer broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flood {
    /// Too many PING / SETTINGS frames needing an ACK.
    Control,
    /// Too many consecutive frames with an empty payload.
    EmptyFrames,
    /// Too many PRIORITY frames.
    Priority,
    /// Too many WINDOW_UPDATE frames.
    WindowUpdate,
    /// Too many streams reset by the client right after opening them.
    PrematureReset,
}

impl Flood {
    /// Envoy's counter name for this flood.
    pub fn stat(self) -> &'static str {
        match self {
            Flood::Control => "http2.outbound_control_flood",
            Flood::EmptyFrames => "http2.inbound_empty_frames_flood",
            Flood::Priority => "http2.inbound_priority_frames_flood",
            Flood::WindowUpdate => "http2.inbound_window_update_frames_flood",
            Flood::PrematureReset => "downstream_rq_too_many_premature_resets",
        }
    }
}

/// Where a byte stream is within its frames.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cursor {
    header: [u8; 9],
    have: u8,
    left: u32,
    pad_pending: bool,
}

/// A frame header.
#[derive(Debug, Clone, Copy)]
struct Frame {
    len: u32,
    kind: u8,
    flags: u8,
    stream: u32,
}

impl Cursor {
    /// Whether the stream is between frames.
    pub fn at_boundary(&self) -> bool {
        self.have == 0 && self.left == 0
    }

    /// Consumes `data`, calling `on_frame` for each frame header and `on_pad` with the pad
    /// length of padded frames.
    fn feed(&mut self, mut data: &[u8], mut on: impl FnMut(Event)) {
        while !data.is_empty() {
            if self.left > 0 {
                if self.pad_pending {
                    self.pad_pending = false;
                    on(Event::Pad(data[0]));
                }
                let n = (self.left as usize).min(data.len());
                self.left -= n as u32;
                data = &data[n..];
                continue;
            }
            let need = 9 - self.have as usize;
            let n = need.min(data.len());
            self.header[self.have as usize..self.have as usize + n].copy_from_slice(&data[..n]);
            self.have += n as u8;
            data = &data[n..];
            if self.have == 9 {
                self.have = 0;
                let h = self.header;
                let f = Frame {
                    len: u32::from_be_bytes([0, h[0], h[1], h[2]]),
                    kind: h[3],
                    flags: h[4],
                    stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
                };
                self.left = f.len;
                self.pad_pending = f.len > 0 && f.flags & PADDED != 0 && f.kind <= HEADERS;
                on(Event::Frame(f));
            }
        }
    }
}

enum Event {
    Frame(Frame),
    Pad(u8),
}

/// Counters for one HTTP/2 connection.
#[derive(Debug)]
pub struct FloodGuard {
    preface_left: u8,
    inbound: Cursor,
    outbound: Cursor,
    tokens: f64,
    refilled: Instant,
    empty_run: u32,
    pending_empty: Option<(u32, bool)>,
    priority: u64,
    window_updates: u64,
    data_sent: u64,
    opened: u64,
    premature: u64,
    last_stream: u32,
    recent: [(Instant, u32); 11],
    recent_len: usize,
    flood: Option<Flood>,
}

impl FloodGuard {
    /// A guard for a connection whose client preface is still to come (`preface`) or
    /// already consumed.
    pub fn new(preface: bool) -> Self {
        let now = Instant::now();
        Self {
            preface_left: if preface { PREFACE_LEN } else { 0 },
            inbound: Cursor::default(),
            outbound: Cursor::default(),
            tokens: f64::from(MAX_CONTROL_BURST),
            refilled: now,
            empty_run: 0,
            pending_empty: None,
            priority: 0,
            window_updates: 0,
            data_sent: 0,
            opened: 0,
            premature: 0,
            last_stream: 0,
            recent: [(now, 0); 11],
            recent_len: 0,
            flood: None,
        }
    }

    /// The highest client stream id seen (for GOAWAY).
    pub fn last_stream(&self) -> u32 {
        self.last_stream
    }

    /// Whether the server's output is between frames (a GOAWAY can go in).
    pub fn outbound_at_boundary(&self) -> bool {
        self.outbound.at_boundary()
    }

    /// Follows bytes the client sent; the first flood found, if any.
    pub fn inbound(&mut self, mut data: &[u8]) -> Option<Flood> {
        if self.preface_left > 0 {
            let n = (self.preface_left as usize).min(data.len());
            self.preface_left -= n as u8;
            data = &data[n..];
        }
        let mut cursor = self.inbound;
        cursor.feed(data, |e| match e {
            Event::Frame(f) => self.on_inbound(f),
            Event::Pad(p) => self.on_pad(p),
        });
        self.inbound = cursor;
        self.flood
    }

    /// Follows bytes the server wrote.
    pub fn outbound(&mut self, data: &[u8]) {
        let mut cursor = self.outbound;
        let mut sent = 0;
        cursor.feed(data, |e| {
            if let Event::Frame(f) = e
                && f.kind == DATA
            {
                sent += 1;
            }
        });
        self.outbound = cursor;
        self.data_sent += sent;
    }

    fn on_inbound(&mut self, f: Frame) {
        if self.flood.is_some() {
            return;
        }
        let flood = match f.kind {
            DATA | HEADERS | CONTINUATION => {
                if f.kind == HEADERS && f.stream > self.last_stream && f.stream % 2 == 1 {
                    self.open(f.stream);
                }
                let end = f.kind != CONTINUATION && f.flags & END_STREAM != 0;
                if f.flags & PADDED != 0 && f.len > 0 && f.kind != CONTINUATION {
                    self.pending_empty = Some((f.len - 1, end));
                    None
                } else {
                    self.empty(f.len == 0, end)
                }
            }
            PRIORITY => {
                self.priority += 1;
                (self.priority > MAX_PRIORITY_PER_STREAM * (1 + self.opened))
                    .then_some(Flood::Priority)
            }
            WINDOW_UPDATE => {
                self.window_updates += 1;
                let allowed = 5 + 2 * (self.opened + MAX_WINDOW_UPDATES_PER_DATA * self.data_sent);
                (self.window_updates > allowed).then_some(Flood::WindowUpdate)
            }
            PING | SETTINGS if f.flags & ACK == 0 => self.control(),
            RST_STREAM => self.reset(f.stream),
            _ => None,
        };
        self.flood = flood;
    }

    fn on_pad(&mut self, pad: u8) {
        if let Some((rest, end)) = self.pending_empty.take()
            && self.flood.is_none()
        {
            self.flood = self.empty(rest <= u32::from(pad), end);
        }
    }

    fn empty(&mut self, empty: bool, end: bool) -> Option<Flood> {
        if empty && !end {
            self.empty_run += 1;
        } else {
            self.empty_run = 0;
        }
        (self.empty_run > MAX_EMPTY_FRAMES).then_some(Flood::EmptyFrames)
    }

    fn control(&mut self) -> Option<Flood> {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        let cap = f64::from(MAX_CONTROL_BURST);
        self.tokens = (self.tokens + elapsed * cap).min(cap) - 1.0;
        (self.tokens < 0.0).then_some(Flood::Control)
    }

    fn open(&mut self, stream: u32) {
        self.last_stream = stream;
        self.opened += 1;
        let now = Instant::now();
        let bucket = Duration::from_millis(100);
        let newest = self.recent_len.checked_sub(1).map(|i| self.recent[i].0);
        if newest.is_none_or(|t| now.saturating_duration_since(t) >= bucket) {
            if self.recent_len == self.recent.len() {
                self.recent.copy_within(1.., 0);
                self.recent_len -= 1;
            }
            self.recent[self.recent_len] = (now, stream);
            self.recent_len += 1;
        }
    }

    /// Whether `stream` was opened within the premature-reset lifetime.
    fn young(&self, stream: u32) -> bool {
        let now = Instant::now();
        self.recent[..self.recent_len]
            .iter()
            .find(|(t, _)| now.saturating_duration_since(*t) < PREMATURE_RESET_LIFETIME)
            .is_some_and(|(_, first)| stream >= *first)
    }

    fn reset(&mut self, stream: u32) -> Option<Flood> {
        if stream == 0 || stream > self.last_stream || !self.young(stream) {
            return None;
        }
        self.premature += 1;
        let limit = PREMATURE_RESET_STREAMS;
        let closed = self.opened;
        let flood = if closed < limit {
            self.premature * 2 >= limit
        } else {
            self.premature * 2 >= closed
        };
        flood.then_some(Flood::PrematureReset)
    }
}

/// A GOAWAY frame: `last_stream`, `code` (0xb ENHANCE_YOUR_CALM, 0 NO_ERROR), no debug data.
pub fn goaway(last_stream: u32, code: u32) -> [u8; 17] {
    let mut f = [0u8; 17];
    f[..9].copy_from_slice(&[0, 0, 8, 7, 0, 0, 0, 0, 0]);
    f[9..13].copy_from_slice(&(last_stream & 0x7fff_ffff).to_be_bytes());
    f[13..].copy_from_slice(&code.to_be_bytes());
    f
}

#[cfg(test)]
mod tests;
