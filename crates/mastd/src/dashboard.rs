//! Wiring of the dashboard (mast-dashboard on `--dashboard-addr`) and of tracing: which
//! collector the proxies are told to send spans to (`--trace-zipkin`, `--trace-otlp`, or
//! mastd's own collector on the dashboard listener) and at what sampling rate.

use std::net::SocketAddr;

use anyhow::{Context as _, bail};
use mast_model::{TraceCollector, TracingOptions};

/// Kiali's port: the dashboard's address when none is given.
pub const DEFAULT_ADDR: &str = "127.0.0.1:20001";

/// Parses `--trace-sampling` (0–100).
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|e| format!("{s:?} is not a number: {e}"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("{v} is not a percentage between 0 and 100"));
    }
    Ok(v)
}

/// The dashboard listener, or `None` when disabled (`off`) or when the default address is
/// taken. `ADDR` may list fallbacks separated by commas (`127.0.0.1:20001,127.0.0.1:0`: Kiali's
/// port when free, else any): the first that binds wins. Explicit addresses none of which
/// binds are an error.
pub async fn bind(addr: Option<&str>) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let (text, explicit) = match addr {
        Some(a) if a.eq_ignore_ascii_case("off") => return Ok(None),
        Some(a) => (a, true),
        None => (DEFAULT_ADDR, false),
    };
    let mut last = None;
    for candidate in text.split(',').map(str::trim) {
        let sock: SocketAddr = candidate.parse().with_context(|| {
            format!("--dashboard-addr {candidate:?} is not an address (HOST:PORT)")
        })?;
        match tokio::net::TcpListener::bind(sock).await {
            Ok(l) => return Ok(Some(l)),
            Err(e) => last = Some((sock, e)),
        }
    }
    match last {
        Some((sock, e)) if !explicit => {
            tracing::warn!(
                "dashboard disabled: cannot bind {sock} ({e}); give --dashboard-addr to use another address"
            );
            Ok(None)
        }
        Some((sock, e)) => Err(e).with_context(|| format!("binding the dashboard address {sock}")),
        None => bail!("--dashboard-addr is empty"),
    }
}

/// What the proxies are told about tracing: `None` when the sampling rate is 0 or there is no
/// collector (no `--trace-*` flag and no dashboard).
pub fn tracing_options(
    args: &crate::Args,
    dashboard: Option<SocketAddr>,
) -> anyhow::Result<Option<TracingOptions>> {
    if args.trace_sampling <= 0.0 {
        return Ok(None);
    }
    let collector = if let Some(a) = &args.trace_zipkin {
        TraceCollector::Zipkin {
            address: host_port(a)?,
            path: "/api/v2/spans".into(),
        }
    } else if let Some(a) = &args.trace_otlp {
        TraceCollector::Otlp {
            address: host_port(a)?,
            path: "/v1/traces".into(),
        }
    } else if let Some(mut addr) = dashboard {
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        TraceCollector::Zipkin {
            address: addr.to_string(),
            path: "/api/v2/spans".into(),
        }
    } else {
        return Ok(None);
    };
    Ok(Some(TracingOptions {
        // Basis points: 100 % = 10000.
        sampling_bp: (args.trace_sampling * 100.0).round() as u32,
        collector,
    }))
}

/// Checks `HOST:PORT` (an IP or DNS name and a port number).
fn host_port(s: &str) -> anyhow::Result<String> {
    let s = s
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let Some((host, port)) = s.rsplit_once(':') else {
        bail!("collector address {s:?} needs a port (HOST:PORT)");
    };
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        bail!("collector address {s:?} is not HOST:PORT");
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_are_checked() {
        assert_eq!(parse_percent("100"), Ok(100.0));
        assert_eq!(parse_percent("0.5%"), Ok(0.5));
        assert!(parse_percent("101").is_err());
        assert!(parse_percent("x").is_err());
    }

    #[test]
    fn collector_addresses_need_a_port() {
        assert_eq!(host_port("jaeger:9411").unwrap(), "jaeger:9411");
        assert_eq!(host_port("http://10.0.0.1:4318/").unwrap(), "10.0.0.1:4318");
        assert!(host_port("jaeger").is_err());
        assert!(host_port("jaeger:0").is_err());
    }
}
