//! The HTTP/1 request-head scanner: follows the request stream byte by byte (heads, then
//! bodies by their framing) so it can judge each head as Envoy's codec would before hyper
//! hands the request over. hyper already rejects duplicate differing `Content-Length`,
//! invalid header bytes and oversized heads; what it tolerates and Envoy rejects is judged
//! here: `Content-Length` together with `Transfer-Encoding` (hyper drops the length; Envoy
//! 400), repeated or list-valued `Content-Length` (400) and any `Transfer-Encoding` other
//! than exactly `chunked` (501); and a head larger than the limit that arrives in one read
//! (hyper checks its limit only while a head is incomplete; Envoy 431).
//!
//! The scanner fails open: on anything it does not follow (a parse error hyper will reject
//! itself, an upgrade or `CONNECT` after which the stream is opaque) it stops judging, and
//! hyper's own framing — which never lets a body be read two ways — stays in charge.

/// What the scanner decided about one head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it.
    Accept,
    /// Reply with this status and close (400, 431 or 501).
    Reject(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size { digits: u8, size: u64 },
    Ext(u64),
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    EndLf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Body(u64),
    Chunked(Chunk),
    Stopped,
}

/// Follows one HTTP/1 connection's request bytes.
#[derive(Debug)]
pub struct HeadScanner {
    state: State,
    head: Vec<u8>,
    searched: usize,
    max_head: usize,
    index: u64,
    in_head: bool,
}

/// What one [`HeadScanner::feed`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    /// A head to reject: its index on the connection (0-based) and the status.
    pub reject: Option<(u64, u16)>,
    /// The connection became opaque (upgrade, `CONNECT`): timeouts no longer apply.
    pub opaque: bool,
}

const MAX_HEADERS: usize = 128;

impl HeadScanner {
    /// A scanner for heads up to `max_head` bytes (larger ones hyper rejects with 431).
    pub fn new(max_head: usize) -> Self {
        Self {
            state: State::Head,
            head: Vec::new(),
            searched: 0,
            max_head,
            index: 0,
            in_head: false,
        }
    }

    /// Whether a request head has started but not ended (for the headers timeout).
    pub fn in_head(&self) -> bool {
        self.in_head && self.state == State::Head
    }

    /// Whether the scanner stopped following the stream.
    pub fn stopped(&self) -> bool {
        self.state == State::Stopped
    }

    /// Follows `data`, the next bytes the client sent.
    pub fn feed(&mut self, mut data: &[u8]) -> Fed {
        let mut fed = Fed::default();
        while !data.is_empty() {
            data = match self.state {
                State::Stopped => return fed,
                State::Head => self.head_bytes(data, &mut fed),
                State::Body(left) => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::Head
                    } else {
                        State::Body(left)
                    };
                    &data[n..]
                }
                State::Chunked(c) => self.chunk_bytes(c, data),
            };
        }
        fed
    }

    fn head_bytes<'a>(&mut self, data: &'a [u8], fed: &mut Fed) -> &'a [u8] {
        if !self.in_head {
            let skip = data
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            if skip == data.len() {
                return &[];
            }
            self.in_head = true;
            return &data[skip..];
        }
        let old = self.head.len();
        let take = data.len().min(self.max_head.saturating_sub(old) + 4);
        self.head.extend_from_slice(&data[..take]);
        let from = self.searched.saturating_sub(3);
        let end = head_end(&self.head[from..]).map(|e| from + e);
        if end.is_none_or(|e| e > self.max_head) && self.head.len() > self.max_head {
            // Too large: hyper answers 431 itself when its buffer fills first.
            fed.reject = Some((self.index, 431));
            self.state = State::Stopped;
            return &[];
        }
        let Some(end) = end else {
            self.searched = self.head.len();
            return &[];
        };
        let verdict = self.judge(end, fed);
        if let Verdict::Reject(status) = verdict {
            fed.reject = Some((self.index, status));
            self.state = State::Stopped;
        }
        self.index += 1;
        self.in_head = false;
        self.head.clear();
        self.searched = 0;
        &data[(end - old).min(data.len())..]
    }

    fn judge(&mut self, end: usize, fed: &mut Fed) -> Verdict {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(_)) = req.parse(&self.head[..end]) else {
            self.state = State::Stopped;
            return Verdict::Accept;
        };
        let mut lengths: [&[u8]; 2] = [&[], &[]];
        let mut encodings: [&[u8]; 2] = [&[], &[]];
        let (mut nl, mut ne, mut upgrade) = (0, 0, false);
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                lengths[nl.min(1)] = h.value;
                nl += 1;
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                encodings[ne.min(1)] = h.value;
                ne += 1;
            } else if h.name.eq_ignore_ascii_case("upgrade") {
                upgrade = true;
            }
        }
        let verdict = framing(&lengths[..nl.min(2)], &encodings[..ne.min(2)]);
        let (state, verdict) = match verdict {
            Framing::Reject(status) => (State::Stopped, Verdict::Reject(status)),
            Framing::Chunked => (
                State::Chunked(Chunk::Size { digits: 0, size: 0 }),
                Verdict::Accept,
            ),
            Framing::Length(0) => (State::Head, Verdict::Accept),
            Framing::Length(n) => (State::Body(n), Verdict::Accept),
        };
        self.state = state;
        if verdict == Verdict::Accept && (upgrade || req.method == Some("CONNECT")) {
            self.state = State::Stopped;
            fed.opaque = true;
        }
        verdict
    }

    fn chunk_bytes<'a>(&mut self, c: Chunk, data: &'a [u8]) -> &'a [u8] {
        if let Chunk::Data(left) = c {
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
            let left = left - n as u64;
            self.state = State::Chunked(if left == 0 {
                Chunk::DataCr
            } else {
                Chunk::Data(left)
            });
            return &data[n..];
        }
        let b = data[0];
        let next = match (c, b) {
            (Chunk::Size { digits, size }, _) if b.is_ascii_hexdigit() && digits < 15 => {
                let v = u64::from((b as char).to_digit(16).unwrap_or(0));
                Some(Chunk::Size {
                    digits: digits + 1,
                    size: size * 16 + v,
                })
            }
            (Chunk::Size { digits, size }, b'\r') if digits > 0 => Some(Chunk::SizeLf(size)),
            (Chunk::Size { digits, size }, b';' | b' ' | b'\t') if digits > 0 => {
                Some(Chunk::Ext(size))
            }
            (Chunk::Ext(n), b'\r') => Some(Chunk::SizeLf(n)),
            (Chunk::Ext(_), b'\n') => None,
            (Chunk::Ext(n), _) => Some(Chunk::Ext(n)),
            (Chunk::SizeLf(0), b'\n') => Some(Chunk::TrailerStart),
            (Chunk::SizeLf(n), b'\n') => Some(Chunk::Data(n)),
            (Chunk::DataCr, b'\r') => Some(Chunk::DataLf),
            (Chunk::DataLf, b'\n') => Some(Chunk::Size { digits: 0, size: 0 }),
            (Chunk::TrailerStart, b'\r') => Some(Chunk::EndLf),
            (Chunk::TrailerStart | Chunk::TrailerLine, b'\n') => Some(Chunk::TrailerStart),
            (Chunk::TrailerStart | Chunk::TrailerLine, _) => Some(Chunk::TrailerLine),
            (Chunk::EndLf, b'\n') => {
                self.state = State::Head;
                return &data[1..];
            }
            _ => None,
        };
        self.state = next.map_or(State::Stopped, State::Chunked);
        &data[1..]
    }
}

enum Framing {
    Length(u64),
    Chunked,
    Reject(u16),
}

/// Envoy's rules: one `Content-Length` of digits, or one `Transfer-Encoding: chunked`,
/// never both.
fn framing(lengths: &[&[u8]], encodings: &[&[u8]]) -> Framing {
    match (lengths, encodings) {
        ([], []) => Framing::Length(0),
        ([_, ..], [_, ..]) | ([_, _, ..], []) => Framing::Reject(400),
        ([len], []) => {
            let len = len.trim_ascii();
            if len.is_empty() || !len.iter().all(u8::is_ascii_digit) {
                return Framing::Reject(400);
            }
            std::str::from_utf8(len)
                .ok()
                .and_then(|l| l.parse().ok())
                .map_or(Framing::Reject(400), Framing::Length)
        }
        ([], [te]) if te.trim_ascii().eq_ignore_ascii_case(b"chunked") => Framing::Chunked,
        ([], [_]) => Framing::Reject(501),
        ([], [_, _, ..]) => Framing::Reject(501),
    }
}

/// The index just past the empty line ending a head (`\r\n\r\n` or `\n\n`).
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = buf[i..].iter().position(|&b| b == b'\n') {
        let at = i + p;
        match buf.get(at + 1) {
            Some(b'\n') => return Some(at + 2),
            Some(b'\r') if buf.get(at + 2) == Some(&b'\n') => return Some(at + 3),
            _ => i = at + 1,
        }
    }
    None
}

#[cfg(test)]
mod tests;
