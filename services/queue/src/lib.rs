//! pfc's job store and reliable queue.
//!
//! One trait, [`JobStore`], with two implementations that pass the same contract tests:
//! [`RedisStore`] for deployments (any number of `pfc jobs` and `pfc worker` processes share
//! one Redis) and [`MemoryStore`] for the embedded `pfc dev` mode. The semantics — leases
//! renewed by heartbeats, redelivery of expired leases, retries with backoff, delayed jobs,
//! idempotent submit, retention — and the Redis layout are explained in `docs/design.md`.
//!
//! # Layout
//! - `model`: jobs, statuses, events, outcomes, stats, tunables.
//! - `queues`: named queues: the name rule, ids that carry their queue, [`QueueInfo`].
//! - `error`: [`StoreError`].
//! - `memory`: [`MemoryStore`].
//! - `redis_store`: [`RedisStore`] and its Lua scripts (`src/lua/*.lua`).
//! - `config`: [`StoreArgs`], the command-line/env settings that open a store (timed by
//!   `metered`: [`metered::Metered`] wraps every store it opens).
//! - `contract`: the behaviour both stores must have, as reusable async checks.

pub mod config;
pub mod contract;
pub mod error;
pub mod memory;
pub mod metered;
pub mod model;
pub mod queues;
pub mod redis_store;

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

pub use config::StoreArgs;
pub use error::StoreError;
pub use memory::MemoryStore;
pub use model::*;
pub use queues::*;
pub use redis_store::{Conn, RedisConnections, RedisMode, RedisStore};

/// Result alias for store calls.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The job store and queue: what the gRPC server and the workers need, nothing more.
///
/// Producer side (`submit`, `get`, `list`, `cancel`, `stats`, `subscribe`) is used by the
/// JobService; consumer side (`take`, `heartbeat`, `complete`, `release`) by workers.
/// Every state change is atomic and publishes a [`JobEvent`].
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Accepts a job: queued now, or scheduled when `run_at` is in the future. With an
    /// idempotency key that is already known, returns that job with `created = false`.
    async fn submit(&self, job: NewJob) -> Result<Submitted>;

    /// One job, or `None` when unknown or expired.
    async fn get(&self, id: &str) -> Result<Option<Job>>;

    /// A page of jobs, newest first.
    async fn list(&self, query: ListQuery) -> Result<Page>;

    /// Cancels a queued or scheduled job.
    async fn cancel(&self, id: &str) -> Result<Job>;

    /// Queue depth, in-flight work and counters summed over every queue, live workers.
    async fn stats(&self) -> Result<Stats>;

    /// Live transitions of all jobs. Lagging receivers lose the oldest events (a
    /// `RecvError::Lagged` means the same as [`Feed::Gap`]: re-read what you watch), so a
    /// slow watcher never slows the queue. [`Feed::Gap`] is sent whenever the store itself may
    /// have missed events (its event connection was re-established).
    fn subscribe(&self) -> broadcast::Receiver<Feed>;

    /// Leases up to `max` due jobs of `kinds` to `worker`, waiting up to `wait` when none is
    /// available. Each returned job is `Processing` with `attempts` and `delivery`
    /// incremented; the worker must heartbeat within the lease time or the job is delivered
    /// again. Jobs of other kinds are never handed to this worker.
    async fn take(
        &self,
        worker: &str,
        kinds: &[String],
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Job>> {
        self.take_from(worker, &[], kinds, max, wait).await
    }

    /// [`JobStore::take`] from the named `queues` only (empty: every queue). Queues are
    /// served round-robin from a random one, so a busy queue does not starve the others.
    async fn take_from(
        &self,
        worker: &str,
        queues: &[String],
        kinds: &[String],
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Job>>;

    /// Every queue that ever had a job (and the default queue), by name.
    async fn queues(&self) -> Result<Vec<QueueInfo>>;

    /// Pauses (`true`) or resumes a queue. A paused queue accepts submits and leases nothing;
    /// jobs in flight finish and report as usual; scheduled jobs and retries keep their due
    /// times. [`StoreError::QueueNotFound`] for a queue that never had a job.
    async fn set_paused(&self, queue: &str, paused: bool) -> Result<QueueInfo>;

    /// Sets a queue's limits (validated by the caller; 0 = none); the next take obeys them.
    /// [`StoreError::QueueNotFound`] for a queue that never had a job.
    async fn set_limits(&self, queue: &str, limits: QueueLimits) -> Result<QueueInfo>;

    /// Records the progress (0–100) of a job `worker` holds; false when it no longer holds
    /// that delivery. Watchers see it as a new version of the job.
    async fn progress(&self, worker: &str, lease: &LeaseRef, progress: u32) -> Result<bool>;

    /// Records the worker as live and renews the leases it holds. Returns the leases it no
    /// longer holds (expired and redelivered, or cancelled): the worker should drop them.
    async fn heartbeat(&self, worker: &WorkerInfo, leases: &[LeaseRef]) -> Result<Vec<LeaseRef>>;

    /// Applies worker reports (batched: one round trip for many jobs).
    async fn complete(&self, completions: &[Completion]) -> Result<Vec<CompletionResult>>;

    /// Gives leased jobs back (graceful shutdown): queued again at the front, not counted
    /// as a failure.
    async fn release(&self, worker: &str, leases: &[LeaseRef]) -> Result<()>;

    /// Ends the leases of a worker that is gone (its stream to the jobs core broke, or it
    /// went silent) now, as if they had expired: each job is queued again at the front with
    /// the delivery counted towards `max_attempts`, or FAILED when it was the last — so a job
    /// that crashes its worker every time still ends in the dead-letter state, only sooner
    /// than a lease. Leases the worker no longer holds are skipped.
    async fn abandon(&self, worker: &str, leases: &[LeaseRef]) -> Result<()>;

    /// Removes a stopping worker from the live set.
    async fn unregister_worker(&self, worker: &str) -> Result<()>;

    /// Housekeeping: promotes due scheduled jobs, redelivers expired leases, sweeps expired
    /// jobs from the indexes. `take` does it too; servers also call it on a timer so
    /// recovery does not depend on an idle worker.
    async fn maintain(&self) -> Result<()>;

    /// Checks the backend is reachable (health).
    async fn ping(&self) -> Result<()>;
}
