//! Worker metrics, in the process registry of `pfc-metrics` (a program embedding a worker
//! exports them with `pfc_metrics::render`; `pfc worker --metrics-addr` serves them):
//!
//! - `pfc_job_run_seconds{kind,outcome}`: handler run time; `outcome` is `done`, `retry`
//!   (failed, retryable) or `failed` (permanent). Revoked or aborted runs are not observed.
//! - `pfc_worker_slots_busy`, `pfc_worker_slots_total`: handlers running now, and the
//!   concurrency of the workers running in this process.
//! - `pfc_worker_leases_lost_total`: jobs whose lease this worker lost (revoked while
//!   running, or a report the core ignored as stale).
//! - `pfc_worker_heartbeats_total`: heartbeats sent (the core's side of a heartbeat, the
//!   lease renewal, is `pfc_store_operation_duration_seconds{operation="heartbeat"}`).
//!
//! `kind` is one of the worker's own handler kinds (a closed set per worker), or `other` for
//! an assignment of a kind it has no handler for.

use std::sync::LazyLock;

use pfc_metrics::prometheus_client::metrics::counter::Counter;
use pfc_metrics::prometheus_client::metrics::family::Family;
use pfc_metrics::prometheus_client::metrics::gauge::Gauge;
use pfc_metrics::HistogramFamily;

type RunLabels = [(&'static str, String); 2];

pub(crate) struct Metrics {
    pub(crate) run: HistogramFamily<RunLabels>,
    pub(crate) busy: Gauge,
    pub(crate) total: Gauge,
    pub(crate) leases_lost: Counter,
    pub(crate) heartbeats: Counter,
}

pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let m = Metrics {
        run: Family::new_with_constructor(pfc_metrics::run_histogram),
        busy: Gauge::default(),
        total: Gauge::default(),
        leases_lost: Counter::default(),
        heartbeats: Counter::default(),
    };
    pfc_metrics::register(
        "pfc_job_run_seconds",
        "Handler run time of jobs on this worker, by kind and outcome (done, retry, failed)",
        m.run.clone(),
    );
    pfc_metrics::register(
        "pfc_worker_slots_busy",
        "Handlers running now on the workers of this process",
        m.busy.clone(),
    );
    pfc_metrics::register(
        "pfc_worker_slots_total",
        "Concurrency (job slots) of the workers running in this process",
        m.total.clone(),
    );
    pfc_metrics::register(
        "pfc_worker_leases_lost",
        "Jobs whose lease a worker of this process lost",
        m.leases_lost.clone(),
    );
    pfc_metrics::register(
        "pfc_worker_heartbeats",
        "Heartbeats sent to the jobs core",
        m.heartbeats.clone(),
    );
    m
});

/// Adds `slots` to `pfc_worker_slots_total` for as long as a worker runs.
pub(crate) struct Slots(i64);

impl Slots {
    pub(crate) fn new(slots: u32) -> Self {
        METRICS.total.inc_by(i64::from(slots));
        Self(i64::from(slots))
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        METRICS.total.dec_by(self.0);
    }
}
