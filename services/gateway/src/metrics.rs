//! Prometheus metrics in the text exposition format (`GET /metrics`).
//!
//! - `pfc_gateway_http_requests_total{method,route,status}`: counter.
//! - `pfc_gateway_http_request_duration_seconds{method,route,status}`: histogram (time to the
//!   response head; for SSE and gRPC-web streams that is the time to the first byte).
//! - `pfc_queue_*`, `pfc_jobs_*_total`, `pfc_workers_live`: the core's `GetStats`, read at
//!   scrape time; `pfc_core_up` is 0 when the core did not answer.
//!
//! `route` is the matched route template (`/api/v1/jobs/{job_id}`), never the raw path, so the
//! number of series stays bounded (gRPC-web calls are labelled with their RPC,
//! `/pfc.jobs.v1.JobService/GetJob`); paths matching no route (the UI) count as `other`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use pfc_proto::jobs::v1 as pb;

use crate::AppState;

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default, Clone)]
struct Series {
    count: u64,
    sum: f64,
    /// Non-cumulative counts per bucket; the last slot is `+Inf`.
    buckets: [u64; BUCKETS.len() + 1],
}

/// Request counters and latency histograms by (method, route, status).
#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(String, String, u16), Series>>,
}

impl Metrics {
    /// Records one request.
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let idx = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        // A poisoned lock only means another request panicked mid-update; the counters stay usable.
        let mut map = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let s = map
            .entry((method.to_string(), route.to_string(), status))
            .or_default();
        s.count += 1;
        s.sum += secs;
        s.buckets[idx] += 1;
    }

    /// Renders the request metrics.
    pub fn render(&self, out: &mut String) {
        let map = self
            .series
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        out.push_str(
            "# HELP pfc_gateway_http_requests_total HTTP requests answered by the gateway.\n",
        );
        out.push_str("# TYPE pfc_gateway_http_requests_total counter\n");
        for ((m, r, s), v) in &map {
            let _ = writeln!(
                out,
                "pfc_gateway_http_requests_total{{method=\"{m}\",route=\"{}\",status=\"{s}\"}} {}",
                escape(r),
                v.count
            );
        }
        out.push_str(
            "# HELP pfc_gateway_http_request_duration_seconds Time to the response head.\n",
        );
        out.push_str("# TYPE pfc_gateway_http_request_duration_seconds histogram\n");
        for ((m, r, s), v) in &map {
            let labels = format!("method=\"{m}\",route=\"{}\",status=\"{s}\"", escape(r));
            let mut cum = 0;
            for (i, b) in BUCKETS.iter().enumerate() {
                cum += v.buckets[i];
                let _ = writeln!(
                    out,
                    "pfc_gateway_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {cum}"
                );
            }
            cum += v.buckets[BUCKETS.len()];
            let _ = writeln!(
                out,
                "pfc_gateway_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {cum}"
            );
            let _ = writeln!(
                out,
                "pfc_gateway_http_request_duration_seconds_sum{{{labels}}} {}",
                v.sum
            );
            let _ = writeln!(
                out,
                "pfc_gateway_http_request_duration_seconds_count{{{labels}}} {}",
                v.count
            );
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Middleware recording every request.
pub async fn track(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = match req.extensions().get::<MatchedPath>() {
        // gRPC-web routes are `/{service}/{method}` templates over a fixed set of RPCs, so the
        // concrete method path is bounded too, and far more useful.
        Some(p) if p.as_str().starts_with("/pfc.") => req.uri().path().to_string(),
        Some(p) => p.as_str().to_string(),
        None => "other".to_string(),
    };
    let resp = next.run(req).await;
    st.metrics
        .observe(&method, &route, resp.status().as_u16(), start.elapsed());
    resp
}

fn gauge(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// Prometheus metrics: request counters and latency histograms by route and status, and the
/// core's queue gauges (read from `GetStats` at scrape time).
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4",
        content_type = "text/plain", body = String)))]
pub async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    st.metrics.render(&mut out);
    let mut req = tonic::Request::new(pb::GetStatsRequest {});
    req.set_timeout(Duration::from_secs(2));
    match st.jobs.clone().get_stats(req).await {
        Ok(s) => {
            let s = s.into_inner();
            gauge(
                &mut out,
                "pfc_core_up",
                "gauge",
                "1 when the jobs core answered GetStats.",
                1,
            );
            gauge(
                &mut out,
                "pfc_queue_queued",
                "gauge",
                "Jobs waiting for a worker (queue depth).",
                s.queued,
            );
            gauge(
                &mut out,
                "pfc_queue_scheduled",
                "gauge",
                "Jobs waiting for their run time or a retry.",
                s.scheduled,
            );
            gauge(
                &mut out,
                "pfc_queue_processing",
                "gauge",
                "Jobs leased by workers (in flight).",
                s.processing,
            );
            gauge(
                &mut out,
                "pfc_jobs_submitted_total",
                "counter",
                "Jobs accepted since the store started.",
                s.submitted_total,
            );
            gauge(
                &mut out,
                "pfc_jobs_done_total",
                "counter",
                "Jobs finished since the store started.",
                s.done_total,
            );
            gauge(
                &mut out,
                "pfc_jobs_failed_total",
                "counter",
                "Jobs failed for good since the store started.",
                s.failed_total,
            );
            gauge(
                &mut out,
                "pfc_jobs_cancelled_total",
                "counter",
                "Jobs cancelled since the store started.",
                s.cancelled_total,
            );
            gauge(
                &mut out,
                "pfc_jobs_retried_total",
                "counter",
                "Deliveries that failed and were retried.",
                s.retried_total,
            );
            gauge(
                &mut out,
                "pfc_workers_live",
                "gauge",
                "Workers that sent a heartbeat recently.",
                s.live_workers,
            );
        }
        Err(status) => {
            tracing::debug!(error = %status, "metrics: GetStats failed");
            gauge(
                &mut out,
                "pfc_core_up",
                "gauge",
                "1 when the jobs core answered GetStats.",
                0,
            );
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Histogram buckets are cumulative and end with +Inf equal to the count.
    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::default();
        m.observe("GET", "/healthz", 200, Duration::from_micros(500));
        m.observe("GET", "/healthz", 200, Duration::from_millis(30));
        m.observe("GET", "/healthz", 200, Duration::from_secs(20));
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains(
            "pfc_gateway_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 3"
        ));
        assert!(out.contains("le=\"0.001\"} 1\n"));
        assert!(out.contains("le=\"0.05\"} 2\n"));
        assert!(out.contains("le=\"10\"} 2\n"));
        assert!(out.contains("le=\"+Inf\"} 3\n"));
    }
}
