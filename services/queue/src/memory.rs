//! In-memory [`JobStore`] for the embedded `pfc dev` mode and tests.
//!
//! Same semantics as the Redis store (the contract tests prove it), in one process: a mutex
//! around plain collections, a [`Notify`] to wake waiting takers, a broadcast channel for
//! events. Data lives as long as the process.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{broadcast, Notify};

use crate::model::*;
use crate::queues::*;
use crate::{JobStore, Result, StoreError};

/// In-memory job store.
pub struct MemoryStore {
    config: StoreConfig,
    inner: Mutex<Inner>,
    wake: Notify,
    events: broadcast::Sender<Feed>,
}

/// Width of one priority's band of ranks (as in `lua/prelude.lua`).
const BAND: i64 = 1 << 48;

/// An index entry: (ULID, job id), so ids of every queue sort by creation time.
type Ord = (String, String);

fn ord(id: &str) -> Ord {
    (sort_key(id).to_owned(), id.to_owned())
}

#[derive(Default)]
struct Inner {
    jobs: HashMap<String, Job>,
    /// (queue, kind) -> (rank, id) of the jobs ready to run: by priority, then FIFO (the
    /// Redis store's scores, see [`Inner::rank`])
    ready: HashMap<(String, String), BTreeSet<(i64, String)>>,
    /// sequence numbers of ready jobs: submits count up, jobs put back in front count down
    seq: (i64, i64),
    /// queue -> start times of recent deliveries (the rate limit's log)
    starts: HashMap<String, Vec<i64>>,
    /// every queue that had a job (and the default one), with its counters
    queues: BTreeMap<String, QueueInfo>,
    /// every kind ever submitted
    kinds: BTreeSet<String>,
    scheduled: BTreeSet<(i64, String)>,
    leases: BTreeSet<(i64, String)>,
    lease_of: HashMap<String, i64>,
    /// (queue, key) -> (job id, expires at): idempotency keys are per queue, as on Redis
    idem: HashMap<(String, String), (String, i64)>,
    /// all job ids, by creation
    all: BTreeSet<Ord>,
    by_status: HashMap<Status, BTreeSet<Ord>>,
    /// (expires at, job id) of terminal jobs
    expiry: BTreeSet<(i64, String)>,
    workers: HashMap<String, WorkerInfo>,
    /// Last time leases were kept (see [`Inner::tick`]).
    clock: Option<i64>,
}

impl MemoryStore {
    /// A new, empty store.
    pub fn new(config: StoreConfig) -> Self {
        let mut inner = Inner::default();
        inner.q(DEFAULT_QUEUE);
        Self {
            config,
            inner: Mutex::new(inner),
            wake: Notify::new(),
            events: broadcast::channel(4096).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock would be a bug in this file; the data is still
        // consistent per operation, so keep serving rather than poisoning every caller.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, job: &Job) {
        let _ = self.events.send(Feed::Event(JobEvent::of(job)));
    }
}

impl Inner {
    /// The counters of `queue` (created on first use).
    fn q(&mut self, queue: &str) -> &mut QueueInfo {
        self.queues
            .entry(queue.to_owned())
            .or_insert_with(|| QueueInfo {
                name: queue.to_owned(),
                ..Default::default()
            })
    }

    /// A ready job's rank, as the Redis store scores it: its priority's band, then FIFO (jobs
    /// put back in front first).
    fn rank(&mut self, job: &Job, front: bool) -> i64 {
        let base = i64::from(10 - job.priority) * BAND + BAND / 2;
        if front {
            self.seq.1 += 1;
            base - self.seq.1
        } else {
            self.seq.0 += 1;
            base + self.seq.0
        }
    }

    /// Puts a queued job in its (queue, kind) ready set; `front` for redeliveries.
    fn push_ready(&mut self, job: &Job, front: bool) {
        let rank = self.rank(job, front);
        self.ready
            .entry((job.queue.clone(), job.kind.clone()))
            .or_default()
            .insert((rank, job.id.clone()));
    }

    fn set_status(&mut self, id: &str, from: Status, to: Status) {
        if let Some(s) = self.by_status.get_mut(&from) {
            s.remove(&ord(id));
        }
        self.by_status.entry(to).or_default().insert(ord(id));
    }

    fn transition(&mut self, id: &str, to: Status, now: i64) -> Option<&mut Job> {
        let from = self.jobs.get(id)?.status;
        self.set_status(id, from, to);
        let job = self.jobs.get_mut(id)?;
        job.status = to;
        job.updated_at = now;
        job.version += 1;
        Some(job)
    }

    fn finish(&mut self, id: &str, to: Status, now: i64, retention: Duration) -> Option<Job> {
        let job = self.transition(id, to, now)?;
        job.finished_at = Some(now);
        let job = job.clone();
        let until = now + retention.as_millis() as i64;
        self.expiry.insert((until, id.to_owned()));
        // the idempotency key holds while the job is unfinished, then for the retention
        if let Some(key) = &job.idempotency_key {
            if let Some(e) = self.idem.get_mut(&(job.queue.clone(), key.clone())) {
                if e.0 == job.id {
                    e.1 = until;
                }
            }
        }
        Some(job)
    }

    /// The lease clock, as in the Redis store: when leases were not kept for longer than
    /// `gap` (the process was paused), every deadline moves forward by the pause.
    fn tick(&mut self, now: i64, gap: Duration, lease: Duration) {
        if let Some(last) = self.clock {
            let pause = now - last;
            if pause > gap.as_millis() as i64 && !self.leases.is_empty() {
                // the time lost, and at least a full lease from now (workers must reconnect)
                let floor = now + lease.as_millis() as i64;
                let leases = std::mem::take(&mut self.leases);
                for (deadline, id) in leases {
                    let d = (deadline + pause).max(floor);
                    self.lease_of.insert(id.clone(), d);
                    self.leases.insert((d, id));
                }
            }
        }
        if self.clock.is_none_or(|last| now > last) {
            self.clock = Some(now);
        }
    }

    /// True when `worker` holds delivery `delivery` of job `id`.
    fn holds(&self, id: &str, worker: &str, delivery: u64) -> bool {
        self.jobs.get(id).is_some_and(|j| {
            j.status == Status::Processing
                && j.delivery == delivery
                && j.worker_id.as_deref() == Some(worker)
        })
    }

    fn drop_lease(&mut self, id: &str) {
        if let Some(d) = self.lease_of.remove(id) {
            self.leases.remove(&(d, id.to_owned()));
        }
    }

    /// Promote due scheduled jobs, redeliver expired leases, expire old jobs.
    fn maintain(&mut self, config: &StoreConfig, now: i64) -> Vec<Job> {
        self.tick(now, config.clock_gap(), config.lease);
        let mut changed = Vec::new();
        while let Some((at, id)) = self.scheduled.first().cloned() {
            if at > now {
                break;
            }
            self.scheduled.pop_first();
            if let Some(job) = self.transition(&id, Status::Queued, now) {
                job.run_at = None;
                let job = job.clone();
                self.push_ready(&job, false);
                changed.push(job);
            }
        }
        while let Some((deadline, id)) = self.leases.first().cloned() {
            if deadline > now {
                break;
            }
            self.leases.pop_first();
            self.lease_of.remove(&id);
            let Some(job) = self.jobs.get(&id) else {
                continue;
            };
            if job.attempts >= job.max_attempts {
                let error = format!(
                    "lease expired after {} deliveries (worker lost)",
                    job.attempts
                );
                if let Some(job) = self.jobs.get_mut(&id) {
                    job.error = Some(error);
                }
                if let Some(job) = self.finish(&id, Status::Failed, now, config.retention) {
                    self.q(&job.queue).failed_total += 1;
                    changed.push(job);
                }
            } else if let Some(job) = self.transition(&id, Status::Queued, now) {
                job.error = Some("lease expired (worker lost); redelivered".into());
                let job = job.clone();
                self.push_ready(&job, true);
                changed.push(job);
            }
        }
        while let Some((at, id)) = self.expiry.first().cloned() {
            if at > now {
                break;
            }
            self.expiry.pop_first();
            if let Some(job) = self.jobs.remove(&id) {
                self.all.remove(&ord(&id));
                if let Some(s) = self.by_status.get_mut(&job.status) {
                    s.remove(&ord(&id));
                }
            }
        }
        self.idem.retain(|_, (_, exp)| *exp > now);
        let ttl = config.worker_ttl.as_millis() as i64;
        self.workers.retain(|_, w| w.last_seen + ttl > now);
        changed
    }
}

#[async_trait]
impl JobStore for MemoryStore {
    async fn submit(&self, new: NewJob) -> Result<Submitted> {
        let now = now_ms();
        let queue = queue_or_default(&new.queue).to_owned();
        let job = {
            let mut g = self.lock();
            if let Some(key) = &new.idempotency_key {
                if let Some((id, exp)) = g.idem.get(&(queue.clone(), key.clone())) {
                    if *exp > now {
                        if let Some(job) = g.jobs.get(id) {
                            return Ok(Submitted {
                                job: job.clone(),
                                created: false,
                            });
                        }
                    }
                }
            }
            let id = new_id_in(&queue);
            let scheduled = new.run_at.is_some_and(|t| t > now);
            let status = if scheduled {
                Status::Scheduled
            } else {
                Status::Queued
            };
            let job = Job {
                id: id.clone(),
                kind: new.kind,
                queue: queue.clone(),
                priority: new.priority.clamp(MIN_PRIORITY, MAX_PRIORITY),
                status,
                text: if new.payload.is_some() {
                    String::new()
                } else {
                    new.text
                },
                payload: new.payload,
                result: None,
                result_payload: None,
                progress: None,
                error: None,
                attempts: 0,
                max_attempts: new.max_attempts.max(1),
                delivery: 0,
                created_at: now,
                updated_at: now,
                run_at: if scheduled { new.run_at } else { None },
                started_at: None,
                finished_at: None,
                idempotency_key: new.idempotency_key.clone(),
                worker_id: None,
                version: 1,
                traceparent: new.traceparent,
            };
            if let Some(key) = new.idempotency_key {
                // held until the job finishes (then for the retention: see `finish`)
                g.idem.insert((queue.clone(), key), (id.clone(), i64::MAX));
            }
            g.all.insert(ord(&id));
            g.by_status.entry(status).or_default().insert(ord(&id));
            if scheduled {
                g.scheduled.insert((job.run_at.unwrap_or(now), id.clone()));
            } else {
                g.push_ready(&job, false);
            }
            g.q(&queue).submitted_total += 1;
            g.kinds.insert(job.kind.clone());
            g.jobs.insert(id, job.clone());
            job
        };
        self.emit(&job);
        self.wake.notify_one();
        Ok(Submitted { job, created: true })
    }

    async fn get(&self, id: &str) -> Result<Option<Job>> {
        Ok(self.lock().jobs.get(id).cloned())
    }

    async fn list(&self, q: ListQuery) -> Result<Page> {
        let g = self.lock();
        let empty = BTreeSet::new();
        let set = match q.status {
            Some(s) => g.by_status.get(&s).unwrap_or(&empty),
            None => &g.all,
        };
        let limit = q.limit.max(1);
        let iter: Box<dyn Iterator<Item = &Ord>> = match &q.before {
            Some(b) => Box::new(set.range(..ord(b)).rev()),
            None => Box::new(set.iter().rev()),
        };
        let queue = q.queue.as_deref();
        let mine = |(_, id): &&Ord| queue.is_none_or(|q| queue_of(id) == q);
        let jobs: Vec<Job> = iter
            .filter(mine)
            .take(limit + 1)
            .filter_map(|(_, id)| g.jobs.get(id).cloned())
            .collect();
        let (jobs, next) = if jobs.len() > limit {
            let page = jobs[..limit].to_vec();
            let next = page.last().map(|j| j.id.clone());
            (page, next)
        } else {
            (jobs, None)
        };
        let total = match queue {
            None => set.len(),
            Some(_) => set.iter().filter(mine).count(),
        };
        Ok(Page {
            jobs,
            next,
            total: total as u64,
        })
    }

    async fn cancel(&self, id: &str) -> Result<Job> {
        let now = now_ms();
        let job = {
            let mut g = self.lock();
            let job = g
                .jobs
                .get(id)
                .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
            let queue = job.queue.clone();
            match job.status {
                Status::Queued => {
                    // lazy, as in the Redis store: `take` skips ids that are not QUEUED
                }
                Status::Scheduled => {
                    let at = job.run_at.unwrap_or(0);
                    g.scheduled.remove(&(at, id.to_owned()));
                }
                status => {
                    return Err(StoreError::InvalidState {
                        id: id.to_owned(),
                        status,
                        action: "cancel",
                    })
                }
            }
            g.q(&queue).cancelled_total += 1;
            g.finish(id, Status::Cancelled, now, self.config.retention)
                .ok_or_else(|| StoreError::NotFound(id.to_owned()))?
        };
        self.emit(&job);
        Ok(job)
    }

    async fn stats(&self) -> Result<Stats> {
        let now = now_ms();
        let g = self.lock();
        let ttl = self.config.worker_ttl.as_millis() as i64;
        let mut workers: Vec<WorkerInfo> = g
            .workers
            .values()
            .filter(|w| w.last_seen + ttl > now)
            .cloned()
            .collect();
        workers.sort_by(|a, b| a.id.cmp(&b.id));
        let sum = |f: fn(&QueueInfo) -> u64| g.queues.values().map(f).sum();
        Ok(Stats {
            // the ready lists may hold lazily cancelled ids: count the status index
            queued: g
                .by_status
                .get(&Status::Queued)
                .map_or(0, |s| s.len() as u64),
            kinds: g.kinds.iter().cloned().collect(),
            scheduled: g.scheduled.len() as u64,
            processing: g.leases.len() as u64,
            workers,
            submitted_total: sum(|q| q.submitted_total),
            done_total: sum(|q| q.done_total),
            failed_total: sum(|q| q.failed_total),
            cancelled_total: sum(|q| q.cancelled_total),
            retried_total: sum(|q| q.retried_total),
        })
    }

    async fn set_limits(&self, queue: &str, limits: QueueLimits) -> Result<QueueInfo> {
        {
            let mut g = self.lock();
            let q = g
                .queues
                .get_mut(queue)
                .ok_or_else(|| StoreError::QueueNotFound(queue.to_owned()))?;
            q.limits = limits;
        }
        self.wake.notify_waiters();
        self.queues()
            .await?
            .into_iter()
            .find(|q| q.name == queue)
            .ok_or_else(|| StoreError::QueueNotFound(queue.to_owned()))
    }

    async fn set_paused(&self, queue: &str, paused: bool) -> Result<QueueInfo> {
        {
            let mut g = self.lock();
            let q = g
                .queues
                .get_mut(queue)
                .ok_or_else(|| StoreError::QueueNotFound(queue.to_owned()))?;
            q.paused = paused;
        }
        self.wake.notify_waiters();
        self.queues()
            .await?
            .into_iter()
            .find(|q| q.name == queue)
            .ok_or_else(|| StoreError::QueueNotFound(queue.to_owned()))
    }

    async fn queues(&self) -> Result<Vec<QueueInfo>> {
        let mut g = self.lock();
        g.q(DEFAULT_QUEUE);
        let mut out: BTreeMap<String, QueueInfo> = g.queues.clone();
        let mut bump = |id: &str, f: fn(&mut QueueInfo)| {
            if let Some(q) = out.get_mut(queue_of(id)) {
                f(q);
            }
        };
        for (_, id) in g.by_status.get(&Status::Queued).into_iter().flatten() {
            bump(id, |q| q.queued += 1);
        }
        for (_, id) in &g.scheduled {
            bump(id, |q| q.scheduled += 1);
        }
        for (_, id) in &g.leases {
            bump(id, |q| q.processing += 1);
        }
        Ok(out.into_values().collect())
    }

    fn subscribe(&self) -> broadcast::Receiver<Feed> {
        self.events.subscribe()
    }

    async fn take_from(
        &self,
        worker: &str,
        queues: &[String],
        kinds: &[String],
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Job>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.wake.notified();
            let now = now_ms();
            let (taken, changed, next_due) = {
                let mut g = self.lock();
                let changed = g.maintain(&self.config, now);
                let mut taken = Vec::new();
                // queue by queue from a random one, as the Redis store calls one script per
                // queue; within a queue the highest priority first, round-robin between kinds
                // whose next jobs share it
                let qs: Vec<String> = if queues.is_empty() {
                    g.queues.keys().cloned().collect()
                } else {
                    queues.to_vec()
                };
                let qstart = if qs.len() > 1 {
                    rand::random_range(0..qs.len())
                } else {
                    0
                };
                let mut order = Vec::new();
                for qi in 0..qs.len() {
                    order.push(qs[(qstart + qi) % qs.len()].clone());
                }
                let mut rate_due: Option<i64> = None;
                let mut rr = if kinds.len() > 1 {
                    rand::random_range(0..kinds.len())
                } else {
                    0
                };
                for q in order {
                    // a paused queue leases nothing (housekeeping above still ran); limits
                    // cap what it leases, as in the Redis take script
                    let info = g.queues.get(&q).cloned().unwrap_or_default();
                    let mut allowed = if info.paused { 0 } else { max };
                    let l = info.limits;
                    if l.concurrency > 0 {
                        let busy = g.leases.iter().filter(|(_, id)| queue_of(id) == q).count();
                        allowed = allowed.min((l.concurrency as usize).saturating_sub(busy));
                    }
                    let rated = l.rate > 0 && l.rate_period_ms > 0;
                    if rated {
                        let since = now - l.rate_period_ms as i64;
                        let log = g.starts.entry(q.clone()).or_default();
                        log.retain(|t| *t > since);
                        if log.len() >= l.rate as usize {
                            let free_at =
                                log.first().copied().unwrap_or(now) + l.rate_period_ms as i64;
                            rate_due = Some(rate_due.map_or(free_at, |d: i64| d.min(free_at)));
                        }
                        allowed = allowed.min((l.rate as usize).saturating_sub(log.len()));
                    }
                    let mut leased = 0;
                    while leased < allowed && taken.len() < max {
                        let band = |g: &Inner, k: &String| {
                            g.ready
                                .get(&(q.clone(), k.clone()))
                                .and_then(|s| s.first())
                                .map(|(r, _)| r.div_euclid(BAND))
                        };
                        let Some(best) = kinds.iter().filter_map(|k| band(&g, k)).min() else {
                            break;
                        };
                        let Some(pick) = (0..kinds.len())
                            .map(|k| (rr + k) % kinds.len())
                            .find(|&i| band(&g, &kinds[i]) == Some(best))
                        else {
                            break;
                        };
                        rr = pick + 1;
                        let list = (q.clone(), kinds[pick].clone());
                        let Some((_, id)) = g.ready.get_mut(&list).and_then(|s| s.pop_first())
                        else {
                            break;
                        };
                        if g.jobs.get(&id).is_none_or(|j| j.status != Status::Queued) {
                            continue; // cancelled while queued (lazy cancel)
                        }
                        let lease_until = now + self.config.lease.as_millis() as i64;
                        let Some(job) = g.transition(&id, Status::Processing, now) else {
                            continue;
                        };
                        job.attempts += 1;
                        job.delivery += 1;
                        job.started_at = Some(now);
                        job.progress = None;
                        job.worker_id = Some(worker.to_owned());
                        let job = job.clone();
                        g.leases.insert((lease_until, id.clone()));
                        g.lease_of.insert(id, lease_until);
                        taken.push(job);
                        leased += 1;
                        if rated {
                            g.starts.entry(q.clone()).or_default().push(now);
                        }
                    }
                }
                let next_due = g
                    .scheduled
                    .first()
                    .map(|(t, _)| *t)
                    .into_iter()
                    .chain(g.leases.first().map(|(t, _)| *t))
                    .chain(rate_due)
                    .min();
                (taken, changed, next_due)
            };
            for j in changed.iter().chain(taken.iter()) {
                self.emit(j);
            }
            if !taken.is_empty() {
                return Ok(taken);
            }
            let now_i = tokio::time::Instant::now();
            if now_i >= deadline {
                return Ok(taken);
            }
            // as in the Redis store: tick more often than the clock gap while waiting
            let mut sleep_until = deadline.min(now_i + self.config.clock_gap() / 2);
            if let Some(due) = next_due {
                let d = Duration::from_millis((due - now).max(1) as u64);
                sleep_until = sleep_until.min(now_i + d);
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(sleep_until) => {}
            }
        }
    }

    async fn heartbeat(&self, worker: &WorkerInfo, leases: &[LeaseRef]) -> Result<Vec<LeaseRef>> {
        let now = now_ms();
        let mut g = self.lock();
        g.tick(now, self.config.clock_gap(), self.config.lease);
        g.workers.insert(
            worker.id.clone(),
            WorkerInfo {
                last_seen: now,
                ..worker.clone()
            },
        );
        let mut lost = Vec::new();
        for l in leases {
            if g.holds(&l.job_id, &worker.id, l.delivery) {
                g.drop_lease(&l.job_id);
                let until = now + self.config.lease.as_millis() as i64;
                g.leases.insert((until, l.job_id.clone()));
                g.lease_of.insert(l.job_id.clone(), until);
            } else {
                lost.push(l.clone());
            }
        }
        Ok(lost)
    }

    async fn complete(&self, completions: &[Completion]) -> Result<Vec<CompletionResult>> {
        let now = now_ms();
        let mut out = Vec::with_capacity(completions.len());
        let mut changed = Vec::new();
        let mut woke = false;
        {
            let mut g = self.lock();
            for c in completions {
                if !g.holds(&c.job_id, &c.worker_id, c.delivery) {
                    // the same report applied before (a retry) is not stale
                    let again = g.jobs.get(&c.job_id).is_some_and(|j| {
                        j.delivery == c.delivery
                            && j.worker_id.as_deref() == Some(c.worker_id.as_str())
                            && matches!(j.status, Status::Done | Status::Failed | Status::Scheduled)
                    });
                    out.push(if again {
                        CompletionResult::Duplicate
                    } else {
                        CompletionResult::Stale
                    });
                    continue;
                }
                g.drop_lease(&c.job_id);
                let attempts = g.jobs[&c.job_id].attempts;
                let max = g.jobs[&c.job_id].max_attempts;
                let job = match &c.outcome {
                    Outcome::Done(_) | Outcome::DonePayload(_) => {
                        if let Some(j) = g.jobs.get_mut(&c.job_id) {
                            match &c.outcome {
                                Outcome::Done(r) => j.result = Some(r.clone()),
                                Outcome::DonePayload(p) => j.result_payload = Some(p.clone()),
                                Outcome::Failed { .. } => {}
                            }
                            j.error = None;
                        }
                        g.q(queue_of(&c.job_id)).done_total += 1;
                        g.finish(&c.job_id, Status::Done, now, self.config.retention)
                    }
                    Outcome::Failed { error, retryable } if *retryable && attempts < max => {
                        let at = now + self.config.backoff(attempts).as_millis() as i64;
                        g.q(queue_of(&c.job_id)).retried_total += 1;
                        g.scheduled.insert((at, c.job_id.clone()));
                        woke = true;
                        g.transition(&c.job_id, Status::Scheduled, now).map(|j| {
                            j.error = Some(error.clone());
                            j.run_at = Some(at);
                            j.clone()
                        })
                    }
                    Outcome::Failed { error, .. } => {
                        if let Some(j) = g.jobs.get_mut(&c.job_id) {
                            j.error = Some(error.clone());
                        }
                        g.q(queue_of(&c.job_id)).failed_total += 1;
                        g.finish(&c.job_id, Status::Failed, now, self.config.retention)
                    }
                };
                changed.extend(job);
                out.push(CompletionResult::Applied);
            }
        }
        for j in &changed {
            self.emit(j);
        }
        if woke {
            // a taker may be sleeping until a later due time; let it recompute
            self.wake.notify_waiters();
        }
        Ok(out)
    }

    async fn release(&self, worker: &str, leases: &[LeaseRef]) -> Result<()> {
        let now = now_ms();
        let mut changed = Vec::new();
        {
            let mut g = self.lock();
            for l in leases {
                if !g.holds(&l.job_id, worker, l.delivery) {
                    continue;
                }
                g.drop_lease(&l.job_id);
                if let Some(j) = g.transition(&l.job_id, Status::Queued, now) {
                    // the delivery did not really happen: don't let it count towards max_attempts
                    j.attempts = j.attempts.saturating_sub(1);
                    let j = j.clone();
                    g.push_ready(&j, true);
                    changed.push(j);
                }
            }
        }
        for j in &changed {
            self.emit(j);
        }
        self.wake.notify_waiters();
        Ok(())
    }

    async fn abandon(&self, worker: &str, leases: &[LeaseRef]) -> Result<()> {
        let now = now_ms();
        let mut changed = Vec::new();
        {
            let mut g = self.lock();
            for l in leases {
                if !g.holds(&l.job_id, worker, l.delivery) {
                    continue;
                }
                g.drop_lease(&l.job_id);
                let (attempts, max) = {
                    let j = &g.jobs[&l.job_id];
                    (j.attempts, j.max_attempts)
                };
                if attempts >= max {
                    if let Some(j) = g.jobs.get_mut(&l.job_id) {
                        j.error = Some(format!(
                            "lease expired after {attempts} deliveries (worker {worker} disconnected)"
                        ));
                    }
                    if let Some(j) = g.finish(&l.job_id, Status::Failed, now, self.config.retention)
                    {
                        g.q(queue_of(&l.job_id)).failed_total += 1;
                        changed.push(j);
                    }
                } else if let Some(j) = g.transition(&l.job_id, Status::Queued, now) {
                    j.error = Some(format!(
                        "lease expired (worker {worker} disconnected); redelivered"
                    ));
                    let j = j.clone();
                    g.push_ready(&j, true);
                    changed.push(j);
                }
            }
        }
        for j in &changed {
            self.emit(j);
        }
        self.wake.notify_waiters();
        Ok(())
    }

    async fn progress(&self, worker: &str, lease: &LeaseRef, progress: u32) -> Result<bool> {
        let job = {
            let mut g = self.lock();
            if !g.holds(&lease.job_id, worker, lease.delivery) {
                return Ok(false);
            }
            let Some(j) = g.jobs.get_mut(&lease.job_id) else {
                return Ok(false);
            };
            j.progress = Some(progress.min(100));
            j.updated_at = now_ms();
            j.version += 1;
            j.clone()
        };
        self.emit(&job);
        Ok(true)
    }

    async fn unregister_worker(&self, worker: &str) -> Result<()> {
        self.lock().workers.remove(worker);
        Ok(())
    }

    async fn maintain(&self) -> Result<()> {
        let changed = {
            let mut g = self.lock();
            g.maintain(&self.config, now_ms())
        };
        let requeued = changed.iter().any(|j| j.status == Status::Queued);
        for j in &changed {
            self.emit(j);
        }
        if requeued {
            self.wake.notify_waiters();
        }
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}
