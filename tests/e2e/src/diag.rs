//! What a failing scenario prints: which proxy ran, its sync state in mastd, mastd's config
//! diagnostics, the routes and clusters both as mastd generated them and as the proxy (Envoy
//! or mast-proxy) runs them (through `mastctl proxy-config`, the tool a user would reach for,
//! against the proxy's admin), its error counters, and the log tails.

use std::time::Duration;

use serde_json::Value;

use crate::mesh::{CLIENT, Mesh};

/// The most characters of one section kept in a report.
const SECTION_LIMIT: usize = 6_000;

impl Mesh {
    /// A report for failure messages: sync state, config diagnostics, `mastctl proxy-config
    /// route|cluster` from mastd and from the proxy's admin, and log tails.
    pub async fn explain(&self) -> String {
        let kind = self.proxy();
        let mut out = format!("\n======== mesh diagnostics ({kind} sidecar) ========\n");
        let sync = match self.monitoring().proxy_sync(self.node_id()).await {
            Ok(Some(s)) => s.summary(),
            Ok(None) => "not connected to mastd".to_owned(),
            Err(e) => format!("mastd unreachable: {e:#}"),
        };
        section(&mut out, "proxy-status (mastd /debug/syncz)", &sync);
        section(
            &mut out,
            "config diagnostics (mastd /debug/configz)",
            &self.diagnostics().await,
        );
        let proxy = format!("{}.{}", CLIENT.0, CLIENT.1);
        let mastd = self.monitoring().addr.to_string();
        let admin = self.admin().to_string();
        for what in ["route", "cluster"] {
            let generated = self
                .mastctl_output(&["proxy-config", what, &proxy, "--mastd", &mastd])
                .await;
            section(
                &mut out,
                &format!("mastctl proxy-config {what} (mastd)"),
                &generated,
            );
            let running = self
                .mastctl_output(&["proxy-config", what, "--admin", &admin])
                .await;
            section(
                &mut out,
                &format!("mastctl proxy-config {what} ({kind} admin)"),
                &running,
            );
        }
        section(
            &mut out,
            &format!("{kind} error counters (admin /stats)"),
            &self.proxy_error_stats().await,
        );
        section(&mut out, "mastd log", &self.mastd_log(25));
        section(&mut out, &format!("{kind} sidecar logs"), &self.proxy_log());
        out
    }

    /// The proxy's non-zero counters (Envoy's names, which mast-proxy's plain `/stats`
    /// follows) that explain failed requests (no route, no cluster, no healthy upstream,
    /// overflow, resets, 5xx), one per line.
    pub async fn proxy_error_stats(&self) -> String {
        const KEYS: &[&str] = &[
            "no_route",
            "no_cluster",
            "none_healthy",
            "overflow",
            "rq_5xx",
            "rq_503",
            "cx_destroy_remote_with_active_rq",
            "rq_pending_failure_eject",
            "update_rejected",
            "warming",
            "rq_reset",
            "listener_modified",
            "listener_removed",
            "listener_added",
            "cluster_modified",
            "cluster_added",
            "cluster_removed",
            "update_success",
            "total_listeners_draining",
            "downstream_cx_destroy",
        ];
        match mast_test_support::http_get_direct(self.admin(), "/stats", &[]).await {
            Ok(r) => r
                .text()
                .lines()
                .filter(|l| KEYS.iter().any(|k| l.contains(k)) && !l.ends_with(": 0"))
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => format!("{} admin unreachable: {e}", self.proxy()),
        }
    }

    /// mastd's config diagnostics (rejected resources and why), one per line.
    pub async fn diagnostics(&self) -> String {
        match self.monitoring().configz().await {
            Ok(configz) => configz
                .get("diagnostics")
                .and_then(Value::as_array)
                .map(|d| {
                    d.iter()
                        .filter_map(|x| x.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default(),
            Err(e) => format!("configz unavailable: {e:#}"),
        }
    }

    /// Runs `mastctl args…` (bounded to 10 s) and returns its output, or why it could not.
    pub async fn mastctl_output(&self, args: &[&str]) -> String {
        let Some(mastctl) = self.mastctl() else {
            return "mastctl is not built".to_owned();
        };
        let run = tokio::process::Command::new(mastctl)
            .args(args)
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(Duration::from_secs(10), run).await {
            Ok(Ok(o)) => format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Ok(Err(e)) => format!("cannot run mastctl: {e}"),
            Err(_) => "mastctl did not finish within 10s".to_owned(),
        }
    }
}

fn section(out: &mut String, title: &str, body: &str) {
    out.push_str(&format!("--- {title}\n"));
    let body = body.trim_end();
    if body.len() > SECTION_LIMIT {
        let mut cut = SECTION_LIMIT;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&body[..cut]);
        out.push_str("\n[… cut]\n");
    } else {
        out.push_str(body);
        out.push('\n');
    }
}
