//! The direct-Redis worker loop: leases from the store itself, no worker protocol. Kept only
//! for the comparison benchmark (hidden `pfc worker --direct-redis-url`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pfc_processors::{ProcessError, Registry};
use pfc_queue::{Completion, CompletionResult, Job, JobStore, LeaseRef, Outcome, WorkerInfo};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::WorkerArgs;

/// Leases held by this worker: job id → delivery number.
type Held = Arc<Mutex<HashMap<String, u64>>>;

/// The direct-Redis worker loop (the built-in worker before the worker protocol), kept only
/// for the benchmark that compares it with the protocol (`docs/benchmarks.md`).
pub struct DirectWorker {
    store: Arc<dyn JobStore>,
    registry: Registry,
    args: WorkerArgs,
    lease: Duration,
    id: String,
}

impl DirectWorker {
    /// A worker over `store` running the processors in `registry`. `lease` must match the
    /// store's lease: heartbeats go out every third of it.
    pub fn new(
        store: Arc<dyn JobStore>,
        registry: Registry,
        args: WorkerArgs,
        lease: Duration,
    ) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "worker".into());
        let id = format!("{host}-{:06x}", rand::random::<u32>() & 0xff_ffff);
        Self {
            store,
            registry,
            args,
            lease,
            id,
        }
    }

    /// This worker's id (host name and a random suffix).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs until `shutdown` resolves, then drains (see the crate docs).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let concurrency = self.args.concurrency.max(1);
        let held: Held = Arc::default();
        let slots = Arc::new(Semaphore::new(concurrency));
        let (done_tx, done_rx) = mpsc::unbounded_channel::<Completion>();
        let stop = pfc_runtime::Shutdown::new();
        stop.trigger_on(shutdown);
        tracing::info!(worker = %self.id, concurrency, "worker started");

        let completer = tokio::spawn(completer(self.store.clone(), held.clone(), done_rx));
        // the kinds this worker runs: every processor in its registry
        let kinds: Vec<String> = self.registry.iter().map(|p| p.name().to_owned()).collect();
        let hb_stop = pfc_runtime::Shutdown::new();
        let heartbeat = tokio::spawn(heartbeat(
            self.store.clone(),
            held.clone(),
            self.id.clone(),
            kinds.clone(),
            concurrency as u32,
            self.lease / 3,
            hb_stop.wait(),
        ));

        let mut tasks = JoinSet::new();
        let mut backoff = Duration::from_millis(100);
        while !stop.is_triggered() {
            // wait for a free slot, then lease as many jobs as there are free slots
            let first = tokio::select! {
                p = slots.clone().acquire_owned() => p.expect("semaphore is never closed"),
                _ = stop.wait() => break,
            };
            let free = slots.available_permits() + 1;
            // never cancel a take: Redis may have leased the batch already, and dropping the
            // reply would strand it until the leases expire (an attempt lost). A take returns
            // within its wait (500 ms) unless Redis is unreachable.
            let taken = self
                .store
                .take(&self.id, &kinds, free, Duration::from_millis(500))
                .await;
            let jobs = match taken {
                Ok(jobs) => {
                    backoff = Duration::from_millis(100);
                    jobs
                }
                Err(e) => {
                    tracing::warn!(error = %e, "failed to take jobs; retrying");
                    drop(first);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            let mut first = Some(first);
            for job in jobs {
                let permit = match first.take() {
                    Some(p) => p,
                    // take() never returns more than `free` jobs and only this loop acquires
                    None => slots
                        .clone()
                        .try_acquire_owned()
                        .expect("a slot per leased job"),
                };
                held.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(job.id.clone(), job.delivery);
                let done = done_tx.clone();
                let registry = self.registry.clone();
                let worker = self.id.clone();
                let timeout = self.args.job_timeout;
                tasks.spawn(async move {
                    let c = process(&registry, &worker, job, timeout).await;
                    let _ = done.send(c);
                    drop(permit);
                });
            }
            while tasks.try_join_next().is_some() {}
        }

        // Drain: running jobs get until the deadline to finish and report.
        tracing::info!(worker = %self.id, running = tasks.len(), "worker stopping; draining");
        let drained = tokio::time::timeout(self.args.shutdown_timeout, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = tasks.len(),
                "shutdown timeout: giving unfinished jobs back"
            );
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        drop(done_tx);
        let _ = tokio::time::timeout(Duration::from_secs(5), completer).await;
        hb_stop.trigger();
        let _ = heartbeat.await;
        let left: Vec<LeaseRef> = held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(job_id, delivery)| LeaseRef { job_id, delivery })
            .collect();
        if !left.is_empty() {
            match self.store.release(&self.id, &left).await {
                Ok(()) => tracing::info!(
                    released = left.len(),
                    "unfinished jobs given back to the queue"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "failed to give jobs back; their leases will expire")
                }
            }
        }
        let _ = self.store.unregister_worker(&self.id).await;
        tracing::info!(worker = %self.id, "worker stopped");
    }
}

async fn process(registry: &Registry, worker: &str, job: Job, timeout: Duration) -> Completion {
    let span = tracing::info_span!("job", job_id = %job.id, kind = %job.kind, attempt = job.attempts, delivery = job.delivery, worker = %worker);
    if let Some(tp) = &job.traceparent {
        pfc_telemetry::set_parent(&span, tp);
    }
    let outcome = async {
        let Some(p) = registry.get(&job.kind) else {
            return Outcome::Failed {
                error: format!("no processor for kind {:?}", job.kind),
                retryable: false,
            };
        };
        match tokio::time::timeout(timeout, p.run(&job.text)).await {
            Ok(Ok(result)) => Outcome::Done(result),
            Ok(Err(ProcessError::Retryable(error))) => {
                tracing::info!(%error, "job failed; will retry if attempts remain");
                Outcome::Failed {
                    error,
                    retryable: true,
                }
            }
            Ok(Err(ProcessError::Permanent(error))) => {
                tracing::info!(%error, "job failed permanently");
                Outcome::Failed {
                    error,
                    retryable: false,
                }
            }
            Err(_) => Outcome::Failed {
                error: format!("timed out after {timeout:?}"),
                retryable: true,
            },
        }
    }
    .instrument(span)
    .await;
    // one line per processor run, with the delivery's fencing token (the fault suite's history)
    let label = match &outcome {
        Outcome::Done(_) | Outcome::DonePayload(_) => "done",
        Outcome::Failed {
            retryable: true, ..
        } => "retry",
        Outcome::Failed { .. } => "fail",
    };
    tracing::info!(job_id = %job.id, attempt = job.attempts, delivery = job.delivery, worker = %worker, outcome = label, "job finished");
    Completion::of(&job, worker, outcome)
}

/// Reports completions in batches: whatever is waiting when a round trip starts goes in it.
async fn completer(
    store: Arc<dyn JobStore>,
    held: Held,
    mut rx: mpsc::UnboundedReceiver<Completion>,
) {
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        let mut backoff = Duration::from_millis(50);
        loop {
            match store.complete(&batch).await {
                Ok(results) => {
                    let mut h = held.lock().unwrap_or_else(|p| p.into_inner());
                    for (c, r) in batch.iter().zip(results) {
                        if h.get(&c.job_id) == Some(&c.delivery) {
                            h.remove(&c.job_id);
                        }
                        if r == CompletionResult::Stale {
                            tracing::warn!(job_id = %c.job_id, delivery = c.delivery, "report ignored: lease was lost");
                        }
                    }
                    break;
                }
                Err(e) => {
                    // keep the leases alive (heartbeat still sees them as held) and retry
                    tracing::warn!(error = %e, pending = batch.len(), "failed to report jobs; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        batch.clear();
    }
}

async fn heartbeat(
    store: Arc<dyn JobStore>,
    held: Held,
    id: String,
    kinds: Vec<String>,
    concurrency: u32,
    every: Duration,
    stop: impl Future<Output = ()>,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        let leases: Vec<LeaseRef> = held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| LeaseRef {
                job_id: k.clone(),
                delivery: *v,
            })
            .collect();
        let info = WorkerInfo {
            id: id.clone(),
            concurrency,
            in_flight: leases.len() as u32,
            kinds: kinds.clone(),
            last_seen: 0,
        };
        match store.heartbeat(&info, &leases).await {
            Ok(lost) => {
                if !lost.is_empty() {
                    let mut h = held.lock().unwrap_or_else(|p| p.into_inner());
                    for l in lost {
                        // a lease reported in the same instant as its completion is not lost:
                        // the completer already removed it
                        if h.get(&l.job_id) == Some(&l.delivery) {
                            tracing::warn!(job_id = %l.job_id, "lease lost (expired or redelivered)");
                            h.remove(&l.job_id);
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}
