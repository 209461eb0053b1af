//! The jobs core's metrics (see docs/operations.md for the whole list):
//!
//! - `pfc_jobs_submitted_total{queue,kind}`: jobs accepted (a replayed idempotent submit is
//!   not a new job and is not counted);
//! - `pfc_jobs_finished_total{queue,kind,status}`: reports this core applied, `status` one of
//!   `done`, `failed` (for good), `retried` (failed, another attempt follows), and cancels
//!   (`cancelled`);
//! - `pfc_queue_depth{queue}`, `pfc_jobs_in_flight{queue}`, `pfc_jobs_scheduled{queue}`,
//!   `pfc_workers_live`: the store's gauges, read every [`GAUGE_REFRESH`] — the same values on
//!   every replica of the core, so dashboards take their `max`;
//! - `pfc_jobs_watch_streams{rpc}`: `WatchJob`/`WatchJobs` streams open;
//! - `pfc_worker_sessions`: worker streams (`WorkerService.Work`) connected to this core.
//!
//! `kind` and `queue` are bounded to [`MAX_KINDS`] and [`MAX_QUEUES`] distinct values per
//! process (later ones are `other`): both are names any submitter may make up. Leases a worker resumed after reconnecting carry
//! no kind or queue here; their reports count under `other`.

use std::sync::LazyLock;
use std::time::Duration;

use pfc_metrics::prometheus_client::metrics::counter::Counter;
use pfc_metrics::prometheus_client::metrics::family::Family;
use pfc_metrics::prometheus_client::metrics::gauge::Gauge;
use pfc_metrics::{Bounded, GaugeGuard};
use pfc_queue::JobStore;

/// Distinct `kind` label values before the rest count as `other`.
pub const MAX_KINDS: usize = 100;

/// Distinct `queue` label values before the rest count as `other`.
pub const MAX_QUEUES: usize = 50;

/// How often the store's gauges are read.
pub const GAUGE_REFRESH: Duration = Duration::from_secs(5);

/// The queue of a job that names none.
const DEFAULT_QUEUE: &str = pfc_queue::DEFAULT_QUEUE;

type KindLabels = [(&'static str, String); 2];
type StatusLabels = [(&'static str, String); 3];
type QueueLabels = [(&'static str, String); 1];

struct Metrics {
    submitted: Family<KindLabels, Counter>,
    finished: Family<StatusLabels, Counter>,
    depth: Family<QueueLabels, Gauge>,
    in_flight: Family<QueueLabels, Gauge>,
    scheduled: Family<QueueLabels, Gauge>,
    workers_live: Gauge,
    watch_streams: Family<[(&'static str, &'static str); 1], Gauge>,
    sessions: Gauge,
    kinds: Bounded,
    queues: Bounded,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let m = Metrics {
        submitted: Family::default(),
        finished: Family::default(),
        depth: Family::default(),
        in_flight: Family::default(),
        scheduled: Family::default(),
        workers_live: Gauge::default(),
        watch_streams: Family::default(),
        sessions: Gauge::default(),
        kinds: Bounded::new(MAX_KINDS),
        queues: Bounded::new(MAX_QUEUES),
    };

    pfc_metrics::register(
        "pfc_jobs_submitted",
        "Jobs accepted by this core, by queue and kind",
        m.submitted.clone(),
    );
    pfc_metrics::register(
        "pfc_jobs_finished",
        "Job reports and cancels this core applied, by queue, kind and status (done, failed, retried, cancelled)",
        m.finished.clone(),
    );
    pfc_metrics::register(
        "pfc_queue_depth",
        "Jobs waiting for a worker, by queue (store-wide)",
        m.depth.clone(),
    );
    pfc_metrics::register(
        "pfc_jobs_in_flight",
        "Jobs leased by workers, by queue (store-wide)",
        m.in_flight.clone(),
    );
    pfc_metrics::register(
        "pfc_jobs_scheduled",
        "Jobs waiting for their run time or a retry, by queue (store-wide)",
        m.scheduled.clone(),
    );
    pfc_metrics::register(
        "pfc_workers_live",
        "Workers that sent a heartbeat recently (store-wide)",
        m.workers_live.clone(),
    );
    pfc_metrics::register(
        "pfc_jobs_watch_streams",
        "WatchJob and WatchJobs streams open on this core, by rpc",
        m.watch_streams.clone(),
    );
    pfc_metrics::register(
        "pfc_worker_sessions",
        "Worker streams (WorkerService.Work) connected to this core",
        m.sessions.clone(),
    );
    for rpc in ["WatchJob", "WatchJobs"] {
        let _ = m.watch_streams.get_or_create(&[("rpc", rpc)]);
    }
    for g in [&m.depth, &m.in_flight, &m.scheduled] {
        let _ = g.get_or_create(&[("queue", m.queues.get(DEFAULT_QUEUE))]);
    }
    m
});

/// Registers the core's families now, so the first scrape exports every one of them.
pub fn init() {
    LazyLock::force(&METRICS);
}

fn queue_label(queue: &str) -> String {
    METRICS.queues.get(if queue.is_empty() {
        DEFAULT_QUEUE
    } else {
        queue
    })
}

/// Counts one accepted job.
pub fn submitted(queue: &str, kind: &str) {
    let m = &*METRICS;
    m.submitted
        .get_or_create(&[("queue", queue_label(queue)), ("kind", m.kinds.get(kind))])
        .inc();
}

/// What the core knows about a leased job, for labelling its report.
#[derive(Debug)]
pub struct JobLabels {
    /// The job's queue.
    pub queue: String,
    /// The job's kind.
    pub kind: String,
    /// Deliveries allowed (tells a retried failure from a final one).
    pub max_attempts: u32,
}

/// Counts one finished job (or retried delivery) with `status`.
pub fn finished(labels: Option<&JobLabels>, status: &str) {
    let m = &*METRICS;
    let (queue, kind) = match labels {
        Some(l) => (queue_label(&l.queue), m.kinds.get(&l.kind)),
        None => (
            pfc_metrics::labels::OTHER.to_owned(),
            pfc_metrics::labels::OTHER.to_owned(),
        ),
    };
    m.finished
        .get_or_create(&[
            ("queue", queue),
            ("kind", kind),
            ("status", status.to_owned()),
        ])
        .inc();
}

/// Holds one on `pfc_jobs_watch_streams{rpc}` while a watch stream is open.
pub fn watch_stream(rpc: &'static str) -> GaugeGuard {
    GaugeGuard::new(METRICS.watch_streams.get_or_create(&[("rpc", rpc)]).clone())
}

/// Holds one on `pfc_worker_sessions` while a worker stream is connected.
pub fn worker_session() -> GaugeGuard {
    GaugeGuard::new(METRICS.sessions.clone())
}

/// Reads the store's gauges once (called every [`GAUGE_REFRESH`] by the core's background
/// duties). A failed read leaves the last values: the store's error counter and health say
/// it is down.
pub async fn refresh_gauges(store: &dyn JobStore) {
    let m = &*METRICS;
    if let Ok(queues) = store.queues().await {
        // queues past the label bound share `other`: add theirs up before setting it
        let mut sums: std::collections::HashMap<String, (u64, u64, u64)> = Default::default();
        for q in queues {
            let e = sums.entry(queue_label(&q.name)).or_default();
            e.0 += q.queued;
            e.1 += q.processing;
            e.2 += q.scheduled;
        }
        for (queue, (queued, processing, scheduled)) in sums {
            let l = [("queue", queue)];
            m.depth.get_or_create(&l).set(clamp(queued));
            m.in_flight.get_or_create(&l).set(clamp(processing));
            m.scheduled.get_or_create(&l).set(clamp(scheduled));
        }
    }
    if let Ok(s) = store.stats().await {
        m.workers_live.set(clamp(s.workers.len() as u64));
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
