//! Reading a real Prometheus instead of scraping: `/api/v1/query` with
//! `sum by (<Istio labels>) (rate(istio_requests_total[<window>]))`, the same for the
//! duration buckets (with `le`, so the graph computes p50/p99 exactly as `histogram_quantile`
//! would) and for the TCP byte and connection counters. The answers become the same rate
//! samples a scrape gives, so the rest is shared.

use std::time::Duration;

use serde::Deserialize;

use super::client::{HttpClient, encode_query};
use super::istio;
use super::parse::Sample;

/// How long one query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: Vec<VectorSample>,
}

#[derive(Deserialize)]
struct VectorSample {
    metric: std::collections::BTreeMap<String, String>,
    value: (f64, String),
}

/// The PromQL queries, each with the metric name its samples are filed under.
pub fn queries(window: Duration) -> Vec<(&'static str, String)> {
    let w = format!("{}s", window.as_secs().max(1));
    let http = istio::HTTP_LABELS.join(", ");
    let tcp = istio::TCP_LABELS.join(", ");
    let q = |metric: &str, labels: &str| format!("sum by ({labels}) (rate({metric}[{w}]))");
    vec![
        (istio::REQUESTS, q(istio::REQUESTS, &http)),
        (
            istio::DURATION_BUCKET,
            q(istio::DURATION_BUCKET, &format!("{http}, le")),
        ),
        (istio::TCP_SENT, q(istio::TCP_SENT, &tcp)),
        (istio::TCP_RECEIVED, q(istio::TCP_RECEIVED, &tcp)),
        (istio::TCP_OPENED, q(istio::TCP_OPENED, &tcp)),
    ]
}

/// Parses one `/api/v1/query` answer into samples named `name`.
pub fn samples(name: &str, body: &str) -> Result<Vec<Sample>, String> {
    let answer: Answer =
        serde_json::from_str(body).map_err(|e| format!("not a Prometheus answer: {e}"))?;
    if answer.status != "success" {
        return Err(answer.error.unwrap_or(answer.status));
    }
    let data = answer.data.ok_or("no data in the answer")?;
    if data.result_type != "vector" {
        return Err(format!("expected a vector, got {}", data.result_type));
    }
    Ok(data
        .result
        .into_iter()
        .filter_map(|v| {
            let value = match v.value.1.as_str() {
                "+Inf" => f64::INFINITY,
                other => other.parse().ok()?,
            };
            Some(Sample {
                name: name.to_owned(),
                labels: v.metric.into_iter().collect(),
                value,
            })
        })
        .filter(|s| s.value.is_finite())
        .collect())
}

/// Runs every query against `base` (`http://host:port`, maybe with a path prefix).
pub async fn query(
    client: &HttpClient,
    base: &str,
    window: Duration,
) -> Result<Vec<Sample>, String> {
    let base = base.trim_end_matches('/');
    let runs = queries(window).into_iter().map(|(name, q)| {
        let url = format!("{base}/api/v1/query?query={}", encode_query(&q));
        async move {
            let body = client
                .get_text(&url, QUERY_TIMEOUT)
                .await
                .map_err(|e| format!("querying {base}: {e}"))?;
            samples(name, &body)
        }
    });
    let mut out = Vec::new();
    for r in futures::future::join_all(runs).await {
        out.extend(r?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn queries_keep_the_istio_labels() {
        let q = queries(Duration::from_secs(30));
        assert_eq!(q.len(), 5);
        assert!(
            q[0].1.starts_with("sum by (reporter, source_workload,"),
            "{}",
            q[0].1
        );
        assert!(
            q[0].1.ends_with("(rate(istio_requests_total[30s]))"),
            "{}",
            q[0].1
        );
        assert!(
            q[1].1.contains("connection_security_policy, le)"),
            "{}",
            q[1].1
        );
    }

    #[test]
    fn vector_answers_become_samples() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"reporter":"destination","response_code":"200"},"value":[1700000000.1,"2.5"]},
            {"metric":{"reporter":"source"},"value":[1700000000.1,"NaN"]}]}}"#;
        let s = samples(istio::REQUESTS, body).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].name, istio::REQUESTS);
        assert_eq!(s[0].value, 2.5);
        assert_eq!(s[0].label("response_code"), Some("200"));
        let err = samples(
            "x",
            r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
        );
        assert_eq!(err.unwrap_err(), "parse error");
        assert!(samples("x", "<html>").is_err());
    }
}
