//! `--access-log-file`, `--access-log-encoding`, `--access-log-format` (Istio's MeshConfig
//! `accessLogFile`, `accessLogEncoding`, `accessLogFormat`) → the snapshot's access log
//! settings, which give every HTTP connection manager and `tcp_proxy` an Envoy file access log.

use anyhow::Context as _;
use mast_model::snapshot::access_log::parse_json_format;
use mast_model::snapshot::{AccessLogEncoding, AccessLogOptions};

/// `--access-log-encoding`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// One text line per request (`TEXT`).
    #[value(alias = "TEXT")]
    Text,
    /// One JSON object per request (`JSON`).
    #[value(alias = "JSON")]
    Json,
}

/// The access log settings of `args`; `None` without `--access-log-file` (or with an empty
/// one, which Istio reads as "off").
///
/// # Errors
/// A JSON format that is not a JSON object (Istio would log it and use its default; mastd
/// refuses to start instead, so the mistake is seen).
pub fn options(args: &crate::Args) -> anyhow::Result<Option<AccessLogOptions>> {
    let Some(path) = args
        .access_log_file
        .as_deref()
        .filter(|p| !p.trim().is_empty())
    else {
        return Ok(None);
    };
    let encoding = match args.access_log_encoding {
        Encoding::Text => AccessLogEncoding::Text,
        Encoding::Json => AccessLogEncoding::Json,
    };
    if encoding == AccessLogEncoding::Json {
        parse_json_format(&args.access_log_format).context("--access-log-format")?;
    }
    Ok(Some(AccessLogOptions {
        path: path.to_owned(),
        encoding,
        format: args.access_log_format.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn parse(extra: &[&str]) -> anyhow::Result<Option<AccessLogOptions>> {
        let mut argv = vec!["mastd"];
        argv.extend_from_slice(extra);
        options(&crate::Args::try_parse_from(argv)?)
    }

    #[test]
    fn off_by_default() {
        assert_eq!(parse(&[]).unwrap(), None);
        assert_eq!(parse(&["--access-log-file", ""]).unwrap(), None);
    }

    #[test]
    fn file_encoding_and_format() {
        let o = parse(&["--access-log-file", "/dev/stdout"])
            .unwrap()
            .unwrap();
        assert_eq!(o, AccessLogOptions::text("/dev/stdout"));
        let o = parse(&[
            "--access-log-file=/tmp/a.log",
            "--access-log-encoding=JSON",
            r#"--access-log-format={"code":"%RESPONSE_CODE%"}"#,
        ])
        .unwrap()
        .unwrap();
        assert_eq!(o.encoding, AccessLogEncoding::Json);
        assert_eq!(o.format, r#"{"code":"%RESPONSE_CODE%"}"#);
    }

    #[test]
    fn a_json_format_must_be_an_object() {
        let e = parse(&[
            "--access-log-file=/dev/stdout",
            "--access-log-encoding=json",
            "--access-log-format=[]",
        ])
        .unwrap_err();
        assert!(format!("{e:#}").contains("must be a JSON object"), "{e:#}");
    }
}
