//! The access log: one line per request in Istio's default text format (Envoy's
//! `%START_TIME% "%REQ(:METHOD)% …" %RESPONSE_CODE% %RESPONSE_FLAGS% …`), written to stdout by
//! a background task so the request path only formats a line and sends it.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use super::flags::Flags;

/// Everything a line shows.
#[derive(Debug, Default)]
pub struct Entry {
    /// When the request started.
    pub start: Option<SystemTime>,
    /// `:method`.
    pub method: String,
    /// `x-envoy-original-path`, else `:path`.
    pub path: String,
    /// `HTTP/1.1`, `HTTP/2`.
    pub protocol: &'static str,
    /// The status sent (0 when none).
    pub status: u16,
    /// Response flags.
    pub flags: Flags,
    /// Envoy's `%RESPONSE_CODE_DETAILS%` (`via_upstream`, `route_not_found`, …).
    pub details: &'static str,
    /// Request body bytes received.
    pub bytes_received: u64,
    /// Response body bytes sent.
    pub bytes_sent: u64,
    /// Total duration.
    pub duration: Duration,
    /// `x-envoy-upstream-service-time`.
    pub upstream_time: Option<u128>,
    /// `x-forwarded-for`.
    pub forwarded_for: Option<String>,
    /// `user-agent`.
    pub user_agent: Option<String>,
    /// `x-request-id`.
    pub request_id: Option<String>,
    /// `:authority`.
    pub authority: String,
    /// The upstream host.
    pub upstream_host: Option<SocketAddr>,
    /// The upstream cluster.
    pub upstream_cluster: Option<String>,
    /// The downstream local (original destination) address.
    pub downstream_local: Option<SocketAddr>,
    /// The client's address.
    pub downstream_remote: Option<SocketAddr>,
    /// The route's name.
    pub route_name: Option<String>,
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("-")
}

fn opt_addr(out: &mut String, a: Option<SocketAddr>) {
    match a {
        Some(a) => {
            let _ = write!(out, "{a}");
        }
        None => out.push('-'),
    }
}

impl Entry {
    /// The line, with its newline.
    pub fn format(&self) -> String {
        let mut out = String::with_capacity(320);
        out.push('[');
        rfc3339(&mut out, self.start.unwrap_or(SystemTime::UNIX_EPOCH));
        let _ = write!(
            out,
            "] \"{} {} {}\" {} {} {} - \"-\" {} {} {} ",
            self.method,
            self.path,
            self.protocol,
            self.status,
            self.flags,
            self.details,
            self.bytes_received,
            self.bytes_sent,
            self.duration.as_millis(),
        );
        match self.upstream_time {
            Some(t) => {
                let _ = write!(out, "{t}");
            }
            None => out.push('-'),
        }
        let _ = write!(
            out,
            " \"{}\" \"{}\" \"{}\" \"{}\" \"",
            opt(&self.forwarded_for),
            opt(&self.user_agent),
            opt(&self.request_id),
            self.authority
        );
        opt_addr(&mut out, self.upstream_host);
        let _ = write!(out, "\" {} - ", opt(&self.upstream_cluster));
        opt_addr(&mut out, self.downstream_local);
        out.push(' ');
        opt_addr(&mut out, self.downstream_remote);
        let _ = writeln!(out, " - {}", opt(&self.route_name));
        out
    }
}

/// `2026-11-26T06:05:56.123Z`.
fn rfc3339(out: &mut String, t: SystemTime) {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    );
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

/// How often buffered lines are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
const FLUSH_BYTES: usize = 64 * 1024;

/// Writes and clears `pending` (nothing when empty).
fn write_out(pending: &mut Vec<u8>) -> std::io::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    out.write_all(pending)?;
    out.flush()?;
    pending.clear();
    Ok(())
}

/// Where lines go: a channel to a task writing stdout.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: mpsc::UnboundedSender<String>,
}

impl AccessLog {
    /// Starts the writer task (needs a tokio runtime). Lines are buffered and written every
    /// [`FLUSH_INTERVAL`] or when 64 KiB are waiting, so logging costs no system call per
    /// request (Envoy flushes its access logs on an interval too).
    pub fn stdout() -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            let mut pending = Vec::<u8>::with_capacity(FLUSH_BYTES);
            let mut batch = Vec::with_capacity(64);
            // Armed when the first line of a batch arrives: no wake-ups while idle.
            let mut deadline: Option<tokio::time::Instant> = None;
            loop {
                let flush_at = deadline;
                tokio::select! {
                    n = rx.recv_many(&mut batch, 64) => {
                        if n == 0 {
                            let _ = write_out(&mut pending);
                            return;
                        }
                        for line in batch.drain(..) {
                            pending.extend_from_slice(line.as_bytes());
                        }
                        if pending.len() >= FLUSH_BYTES {
                            if write_out(&mut pending).is_err() {
                                return;
                            }
                            deadline = None;
                        } else if deadline.is_none() {
                            deadline = Some(tokio::time::Instant::now() + FLUSH_INTERVAL);
                        }
                    }
                    () = async {
                        if let Some(at) = flush_at {
                            tokio::time::sleep_until(at).await;
                        }
                    }, if flush_at.is_some() => {
                        deadline = None;
                        if write_out(&mut pending).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Self { tx }
    }

    /// Logs one entry.
    pub fn log(&self, entry: &Entry) {
        let _ = self.tx.send(entry.format());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_istio_default_line() {
        let e = Entry {
            start: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_137_156_123)),
            method: "GET".into(),
            path: "/a?b=1".into(),
            protocol: "HTTP/1.1",
            status: 503,
            flags: Flags::UPSTREAM_OVERFLOW,
            details: "upstream_reset_before_response_started{overflow}",
            duration: Duration::from_millis(3),
            authority: "reviews".into(),
            upstream_cluster: Some("outbound|80||reviews.default.svc.cluster.local".into()),
            ..Entry::default()
        };
        let line = e.format();
        assert!(
            line.starts_with("[2025-11-26T06:05:56.123Z] \"GET /a?b=1 HTTP/1.1\" 503 UO "),
            "{line}"
        );
        assert!(
            line.contains("\"reviews\" \"-\" outbound|80||reviews.default.svc.cluster.local"),
            "{line}"
        );
        assert!(line.ends_with(" - -\n"), "{line}");
    }
}
