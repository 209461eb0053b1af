//! [`Metered`]: any [`JobStore`] with every call timed, for operators.
//!
//! - `pfc_store_operation_duration_seconds{backend,operation}`: histogram of each store call
//!   (for the Redis store, the round trips of that call: one script, or a pipeline);
//! - `pfc_store_errors_total{backend,operation}`: calls that failed.
//!
//! `operation` is the trait method (`submit`, `take`, …; a closed set), `backend` is `redis`
//! or `memory`. A wrapper rather than timers inside each store keeps both stores free of
//! metrics code and measures exactly what the callers wait for. `take` includes its
//! long-poll wait for work, so its latency is the wait, not Redis.

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pfc_metrics::prometheus_client::metrics::counter::Counter;
use pfc_metrics::prometheus_client::metrics::family::Family;
use pfc_metrics::HistogramFamily;
use tokio::sync::broadcast;

use crate::model::*;
use crate::{JobStore, QueueInfo, Result};

type Labels = [(&'static str, &'static str); 2];

struct Metrics {
    duration: HistogramFamily<Labels>,
    errors: Family<Labels, Counter>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let m = Metrics {
        duration: Family::new_with_constructor(pfc_metrics::latency_histogram),
        errors: Family::default(),
    };
    pfc_metrics::register(
        "pfc_store_operation_duration_seconds",
        "Duration of job store calls, by backend (redis, memory) and operation",
        m.duration.clone(),
    );
    pfc_metrics::register(
        "pfc_store_errors",
        "Job store calls that failed, by backend and operation",
        m.errors.clone(),
    );
    m
});

/// A store whose every call is timed into the process metrics.
pub struct Metered {
    inner: Arc<dyn JobStore>,
    backend: &'static str,
}

impl Metered {
    /// Wraps `inner`; `backend` labels its series (`redis`, `memory`).
    pub fn wrap(inner: Arc<dyn JobStore>, backend: &'static str) -> Arc<dyn JobStore> {
        LazyLock::force(&METRICS);
        Arc::new(Self { inner, backend })
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let start = Instant::now();
        let out = call.await;
        let labels = [("backend", self.backend), ("operation", operation)];
        METRICS
            .duration
            .get_or_create(&labels)
            .observe(start.elapsed().as_secs_f64());
        // created at 0 on the first call, so rates read 0 rather than "no data"
        let errors = METRICS.errors.get_or_create(&labels);
        if out.is_err() {
            errors.inc();
        }
        out
    }
}

#[async_trait]
impl JobStore for Metered {
    async fn submit(&self, job: NewJob) -> Result<Submitted> {
        self.timed("submit", self.inner.submit(job)).await
    }
    async fn get(&self, id: &str) -> Result<Option<Job>> {
        self.timed("get", self.inner.get(id)).await
    }
    async fn list(&self, query: ListQuery) -> Result<Page> {
        self.timed("list", self.inner.list(query)).await
    }
    async fn cancel(&self, id: &str) -> Result<Job> {
        self.timed("cancel", self.inner.cancel(id)).await
    }
    async fn stats(&self) -> Result<Stats> {
        self.timed("stats", self.inner.stats()).await
    }
    fn subscribe(&self) -> broadcast::Receiver<Feed> {
        self.inner.subscribe()
    }
    async fn take(
        &self,
        worker: &str,
        kinds: &[String],
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Job>> {
        self.timed("take", self.inner.take(worker, kinds, max, wait))
            .await
    }
    async fn take_from(
        &self,
        worker: &str,
        queues: &[String],
        kinds: &[String],
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Job>> {
        self.timed(
            "take",
            self.inner.take_from(worker, queues, kinds, max, wait),
        )
        .await
    }
    async fn queues(&self) -> Result<Vec<QueueInfo>> {
        self.timed("queues", self.inner.queues()).await
    }
    async fn set_limits(&self, queue: &str, limits: crate::QueueLimits) -> Result<QueueInfo> {
        self.timed("set_limits", self.inner.set_limits(queue, limits))
            .await
    }
    async fn set_paused(&self, queue: &str, paused: bool) -> Result<QueueInfo> {
        self.timed("set_paused", self.inner.set_paused(queue, paused))
            .await
    }
    async fn progress(&self, worker: &str, lease: &LeaseRef, progress: u32) -> Result<bool> {
        self.timed("progress", self.inner.progress(worker, lease, progress))
            .await
    }
    async fn heartbeat(&self, worker: &WorkerInfo, leases: &[LeaseRef]) -> Result<Vec<LeaseRef>> {
        self.timed("heartbeat", self.inner.heartbeat(worker, leases))
            .await
    }
    async fn complete(&self, completions: &[Completion]) -> Result<Vec<CompletionResult>> {
        self.timed("complete", self.inner.complete(completions))
            .await
    }
    async fn release(&self, worker: &str, leases: &[LeaseRef]) -> Result<()> {
        self.timed("release", self.inner.release(worker, leases))
            .await
    }
    async fn abandon(&self, worker: &str, leases: &[LeaseRef]) -> Result<()> {
        self.timed("abandon", self.inner.abandon(worker, leases))
            .await
    }
    async fn unregister_worker(&self, worker: &str) -> Result<()> {
        self.timed("unregister_worker", self.inner.unregister_worker(worker))
            .await
    }
    async fn maintain(&self) -> Result<()> {
        self.timed("maintain", self.inner.maintain()).await
    }
    async fn ping(&self) -> Result<()> {
        self.timed("ping", self.inner.ping()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    /// Calls through the wrapper are timed per operation, and the wrapped store still
    /// answers them.
    #[tokio::test]
    async fn times_each_call() {
        let store = Metered::wrap(Arc::new(MemoryStore::new(StoreConfig::default())), "memory");
        store.ping().await.unwrap();
        assert!(store.get("nope").await.unwrap().is_none());
        let text = pfc_metrics::render();
        assert!(
            text.contains(
                "pfc_store_operation_duration_seconds_count{backend=\"memory\",operation=\"get\"}"
            ),
            "{text}"
        );
    }
}
