//! The gateway's metrics and `GET /metrics` (the whole process registry of
//! [`pfc_metrics`], in the OpenMetrics text format).
//!
//! - `pfc_gateway_http_requests_total{method,route,status}`: counter.
//! - `pfc_gateway_http_request_duration_seconds{method,route}`: histogram of the time to the
//!   response head (for SSE and gRPC-web streams, the time to open the stream).
//! - `pfc_gateway_sse_streams{stream}`: Server-Sent Events streams open now (`job`, `jobs`,
//!   `chat`).
//!
//! Labels are bounded: `route` is the matched route template (`/api/v1/jobs/{job_id}`),
//! never the raw path; gRPC-web has one route per method known from the descriptors
//! (`/pfc.jobs.v1.JobService/GetJob`) and an invented method of a known service counts under
//! its service's template (`/pfc.jobs.v1.JobService/{method}`); paths matching no route (the
//! UI) are `other`, and so is an HTTP method outside the standard ones.
//!
//! The queue's gauges and counters come from the jobs core's own metrics (`--metrics-addr`
//! of `pfc jobs`), not from here: every replica of the gateway reporting the same queue
//! would only multiply the series.

use std::sync::LazyLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use pfc_metrics::prometheus_client::metrics::counter::Counter;
use pfc_metrics::prometheus_client::metrics::family::Family;
use pfc_metrics::prometheus_client::metrics::gauge::Gauge;
use pfc_metrics::{GaugeGuard, HistogramFamily};

type RequestLabels = [(&'static str, String); 3];
type RouteLabels = [(&'static str, String); 2];

struct Metrics {
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily<RouteLabels>,
    sse: Family<[(&'static str, &'static str); 1], Gauge>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let m = Metrics {
        requests: Family::default(),
        duration: Family::new_with_constructor(pfc_metrics::latency_histogram),
        sse: Family::default(),
    };
    pfc_metrics::register(
        "pfc_gateway_http_requests",
        "HTTP requests answered by the gateway, by method, route template and status",
        m.requests.clone(),
    );
    pfc_metrics::register(
        "pfc_gateway_http_request_duration_seconds",
        "Time from an HTTP request's arrival to its response head, by method and route template",
        m.duration.clone(),
    );
    pfc_metrics::register(
        "pfc_gateway_sse_streams",
        "Server-Sent Events streams open now, by stream (job, jobs, chat)",
        m.sse.clone(),
    );
    for s in ["job", "jobs", "chat"] {
        let _ = m.sse.get_or_create(&[("stream", s)]);
    }
    m
});

/// Registers the gateway's families (exported from the first scrape on).
pub fn init() {
    LazyLock::force(&METRICS);
}

/// Holds one on `pfc_gateway_sse_streams{stream}` while an SSE stream is open.
pub fn sse_stream(stream: &'static str) -> GaugeGuard {
    GaugeGuard::new(METRICS.sse.get_or_create(&[("stream", stream)]).clone())
}

/// The method label: the standard methods by name, anything else `other`.
fn method_label(m: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::PATCH,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|k| *k == m)
        .map_or(pfc_metrics::labels::OTHER, |k| k.as_str())
}

/// Middleware recording every request.
pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(pfc_metrics::labels::OTHER, |p| p.as_str())
        .to_owned();
    let resp = next.run(req).await;
    let m = &*METRICS;
    m.duration
        .get_or_create(&[("method", method.to_owned()), ("route", route.clone())])
        .observe(start.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&[
            ("method", method.to_owned()),
            ("route", route),
            ("status", resp.status().as_u16().to_string()),
        ])
        .inc();
    resp
}

/// Prometheus metrics of this process: the gateway's requests and SSE streams (and, in
/// `pfc dev`, every role's metrics). The same text the `--metrics-addr` listener serves.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "OpenMetrics text format 1.0.0",
        content_type = "application/openmetrics-text", body = String)))]
pub async fn metrics() -> impl IntoResponse {
    init();
    (
        [(header::CONTENT_TYPE, pfc_metrics::CONTENT_TYPE)],
        pfc_metrics::render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Invented HTTP methods share one label.
    #[test]
    fn methods_are_bounded() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(
            method_label(&Method::from_bytes(b"INVENTED").unwrap()),
            "other"
        );
    }
}
