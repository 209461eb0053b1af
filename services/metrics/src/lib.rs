//! Prometheus metrics for every pfc role, on the `prometheus-client` crate.
//!
//! One [`Registry`] per process: each crate keeps its metric families in a `LazyLock` static
//! that registers itself here on first use (so a family exists once even when tests or
//! `pfc dev` run several servers in one process), and a role forces its families at startup
//! so that every series a dashboard asks for is exported from the first scrape. The registry
//! is served in the OpenMetrics text format by [`serve`] (the `--metrics-addr` listener of
//! every role) and by the gateway's `/metrics`.
//!
//! Cardinality is bounded by construction: label values come from closed sets (gRPC methods
//! known from the descriptors, route templates, status codes, outcomes) or go through
//! [`Bounded`], which maps every value past a fixed number of distinct ones to `other`.
//! `docs/operations.md` lists every metric and its labels.
//!
//! # Layout
//! - [`register`], [`render`], [`CONTENT_TYPE`]: the process registry and its exposition.
//! - [`serve`]: the `GET /metrics` listener.
//! - [`grpc`]: the tower layer every gRPC server runs (requests by method and code, latency).
//! - [`labels`]: [`Bounded`] label values and the known gRPC methods.
//! - [`GaugeGuard`], [`latency_histogram`], [`HistogramFamily`]: small helpers the roles share.

pub mod grpc;
pub mod labels;
mod serve;

use std::sync::{LazyLock, Mutex};

pub use labels::Bounded;
pub use prometheus_client;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};
pub use serve::{router, serve};

/// The content type of [`render`]'s output (OpenMetrics text, which Prometheus prefers).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency bucket upper bounds in seconds, shared by every latency histogram so that
/// dashboards can aggregate them: 1 ms to 10 s, roughly ×2.5 per step.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Bucket upper bounds for job run times in seconds: jobs run from milliseconds to minutes.
pub const RUN_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0,
];

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(Registry::default()));

/// Registers `metric` under `name` in the process registry. Counters get their `_total`
/// suffix from the encoder, so `name` leaves it out. Call it once per name (from a
/// `LazyLock`): the registry does not deduplicate.
pub fn register(name: &str, help: &str, metric: impl Metric) {
    // a poisoned lock only means a panic mid-registration elsewhere; the registry is intact
    let mut r = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    r.register(name, help, metric);
}

/// Every registered metric in the OpenMetrics text format.
pub fn render() -> String {
    let r = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    let mut out = String::new();
    // writing into a String cannot fail; the encoder only errors on a failing writer
    let _ = prometheus_client::encoding::text::encode(&mut out, &r);
    out
}

/// A histogram over [`LATENCY_BUCKETS`] (a `fn` so a `Family` of them can live in a static).
pub fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS.iter().copied())
}

/// A histogram over [`RUN_BUCKETS`].
pub fn run_histogram() -> Histogram {
    Histogram::new(RUN_BUCKETS.iter().copied())
}

/// A family of histograms built by a plain `fn`, nameable in a static.
pub type HistogramFamily<L> =
    prometheus_client::metrics::family::Family<L, Histogram, fn() -> Histogram>;

/// Adds one to a gauge for as long as it lives: an open stream, a subscriber.
#[derive(Debug)]
pub struct GaugeGuard(Gauge);

impl GaugeGuard {
    /// Increments `gauge`; the drop decrements it again.
    pub fn new(gauge: Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    /// Counters get their `_total` suffix, help text and the OpenMetrics EOF marker.
    #[test]
    fn renders_openmetrics() {
        let c = Counter::<u64>::default();
        register("pfc_test_things", "Things counted by a test", c.clone());
        c.inc();
        let out = render();
        assert!(out.contains("# TYPE pfc_test_things counter"), "{out}");
        assert!(out.contains("pfc_test_things_total 1"), "{out}");
        assert!(out.ends_with("# EOF\n"));
    }

    /// A guard holds one on its gauge until dropped.
    #[test]
    fn gauge_guard_counts_while_alive() {
        let g = Gauge::<i64>::default();
        let a = GaugeGuard::new(g.clone());
        let b = GaugeGuard::new(g.clone());
        assert_eq!(g.get(), 2);
        drop(a);
        assert_eq!(g.get(), 1);
        drop(b);
        assert_eq!(g.get(), 0);
    }
}
