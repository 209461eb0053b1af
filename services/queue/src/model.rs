//! The job model shared by both stores, the gRPC server and the worker.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where a job is in its lifecycle (see `docs/design.md` for the state machine).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Waiting for its run time: a delayed job or a retry in backoff.
    Scheduled,
    /// Waiting for a worker.
    Queued,
    /// Leased by a worker.
    Processing,
    /// Finished with a result.
    Done,
    /// Gave up; `error` says why. The dead-letter state.
    Failed,
    /// Cancelled before a worker took it.
    Cancelled,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 6] = [
        Status::Scheduled,
        Status::Queued,
        Status::Processing,
        Status::Done,
        Status::Failed,
        Status::Cancelled,
    ];

    /// The lowercase name used in Redis, REST and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Scheduled => "scheduled",
            Status::Queued => "queued",
            Status::Processing => "processing",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// Done, failed and cancelled jobs never change again (only expire).
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Done | Status::Failed | Status::Cancelled)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown status name.
#[derive(Debug, thiserror::Error)]
#[error("unknown job status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for Status {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// Lowest job priority. Priorities order the jobs of one queue (higher first, FIFO within a
/// priority); a small range keeps the Redis scores exact (`lua/prelude.lua`, `rank`).
pub const MIN_PRIORITY: i32 = -10;
/// Highest job priority.
pub const MAX_PRIORITY: i32 = 10;

/// Content type of JSON payloads and results.
pub const JSON: &str = "application/json";

/// Bytes with a content type: a job's input or result other than plain text (JSON by
/// default; any other type is passed through as bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    /// The bytes (UTF-8 JSON for [`JSON`]).
    pub bytes: Vec<u8>,
    /// MIME type, e.g. `application/json`.
    pub content_type: String,
}

impl Payload {
    /// A JSON payload.
    pub fn json(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            bytes: bytes.into(),
            content_type: JSON.into(),
        }
    }
}

/// A job and everything known about it. Times are Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// ULID: unique and ordered by creation time.
    pub id: String,
    /// Processor name.
    pub kind: String,
    /// Queue name.
    pub queue: String,
    /// Priority, [`MIN_PRIORITY`]..=[`MAX_PRIORITY`]: higher runs first within its queue.
    pub priority: i32,
    /// Current status.
    pub status: Status,
    /// Input, for text jobs (empty when the job has a [`Job::payload`]).
    pub text: String,
    /// Input other than plain text (JSON or bytes).
    pub payload: Option<Payload>,
    /// Output of a text job, when done.
    pub result: Option<String>,
    /// Output other than plain text, when done.
    pub result_payload: Option<Payload>,
    /// Progress reported by the worker running it (0–100), reset by each delivery.
    pub progress: Option<u32>,
    /// Last delivery's error.
    pub error: Option<String>,
    /// Deliveries so far that count towards `max_attempts` (a release refunds one).
    pub attempts: u32,
    /// Deliveries allowed.
    pub max_attempts: u32,
    /// Number of the current (or last) delivery: incremented by every lease and never
    /// reused, so together with the worker id it fences every report of that delivery.
    pub delivery: u64,
    /// Accepted at.
    pub created_at: i64,
    /// Last transition at.
    pub updated_at: i64,
    /// Due time of a scheduled job.
    pub run_at: Option<i64>,
    /// Start of the current or last delivery.
    pub started_at: Option<i64>,
    /// Reached a terminal state at.
    pub finished_at: Option<i64>,
    /// Idempotency key given on submit.
    pub idempotency_key: Option<String>,
    /// Worker holding (or that last held) the job.
    pub worker_id: Option<String>,
    /// Incremented by every transition.
    pub version: u64,
    /// W3C traceparent of the submitter's span.
    pub traceparent: Option<String>,
}

/// What a submit asks for (validated by the caller).
#[derive(Clone, Debug, Default)]
pub struct NewJob {
    /// Queue name (validated: [`crate::is_valid_queue`]); empty means the default queue.
    pub queue: String,
    /// Processor name.
    pub kind: String,
    /// Priority, [`MIN_PRIORITY`]..=[`MAX_PRIORITY`] (validated; 0 by default).
    pub priority: i32,
    /// Input, for text jobs.
    pub text: String,
    /// Input other than plain text; when set, `text` is ignored.
    pub payload: Option<Payload>,
    /// Optional idempotency key.
    pub idempotency_key: Option<String>,
    /// Run at (Unix ms); `None` or a past time runs now.
    pub run_at: Option<i64>,
    /// Deliveries allowed (≥ 1).
    pub max_attempts: u32,
    /// W3C traceparent to store with the job.
    pub traceparent: Option<String>,
}

/// Result of a submit.
#[derive(Clone, Debug)]
pub struct Submitted {
    /// The stored job (the existing one when an idempotency key matched).
    pub job: Job,
    /// False when an idempotency key matched an existing job.
    pub created: bool,
}

/// One transition, as pushed to watchers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobEvent {
    /// The job.
    pub job_id: String,
    /// New status.
    pub status: Status,
    /// Version after the transition.
    pub version: u64,
    /// Deliveries so far.
    pub attempts: u32,
    /// Processor.
    pub kind: String,
    /// When (Unix ms).
    pub at: i64,
    /// Error of a failed delivery.
    pub error: Option<String>,
    /// Worker involved.
    pub worker_id: Option<String>,
    /// The result, on the transition to `Done` (so a watcher needs no extra read): text, or
    /// JSON when `result_type` says so; absent when large or binary (re-read the job).
    pub result: Option<String>,
    /// Content type of `result` when it is not plain text.
    pub result_type: Option<String>,
    /// Progress of a running job (0–100).
    pub progress: Option<u32>,
}

/// What a store subscription delivers: transitions, and notice of possible gaps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Feed {
    /// One transition.
    Event(JobEvent),
    /// Transitions may have been missed (the event connection to Redis was re-established,
    /// or this receiver lagged): whoever watches jobs must re-read them.
    Gap,
}

impl JobEvent {
    /// The event describing `job`'s current state.
    pub fn of(job: &Job) -> Self {
        Self {
            job_id: job.id.clone(),
            status: job.status,
            version: job.version,
            attempts: job.attempts,
            kind: job.kind.clone(),
            at: job.updated_at,
            error: job.error.clone(),
            worker_id: job.worker_id.clone(),
            result: match (&job.result, &job.result_payload) {
                _ if job.status != Status::Done => None,
                (Some(r), _) => Some(r.clone()),
                (None, Some(p)) if p.content_type == JSON => {
                    String::from_utf8(p.bytes.clone()).ok()
                }
                _ => None,
            },
            result_type: job.result_payload.as_ref().map(|p| p.content_type.clone()),
            progress: job.progress,
        }
    }
}

/// How a delivery ended, reported by the worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Success with a text result.
    Done(String),
    /// Success with a JSON (or other) result.
    DonePayload(Payload),
    /// Failure; retried with backoff while attempts remain, unless `retryable` is false.
    Failed {
        /// What went wrong.
        error: String,
        /// False for permanent errors (bad input): fail at once.
        retryable: bool,
    },
}

/// A worker's report on one leased job.
#[derive(Clone, Debug)]
pub struct Completion {
    /// The job.
    pub job_id: String,
    /// `Job::attempts` when leased (sets the retry backoff).
    pub attempt: u32,
    /// `Job::delivery` when leased: with `worker_id`, the fencing token, so a worker whose
    /// lease expired (or that released the job) can't overwrite a newer delivery.
    pub delivery: u64,
    /// The worker.
    pub worker_id: String,
    /// How it ended.
    pub outcome: Outcome,
}

impl Completion {
    /// The report of `worker` on its delivery of `job`.
    pub fn of(job: &Job, worker: &str, outcome: Outcome) -> Self {
        Self {
            job_id: job.id.clone(),
            attempt: job.attempts,
            delivery: job.delivery,
            worker_id: worker.to_owned(),
            outcome,
        }
    }
}

/// What happened to a completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompletionResult {
    /// Applied: the job is done, failed, or scheduled for a retry.
    Applied,
    /// Ignored: the lease was lost (expired and redelivered, or the job is gone).
    Stale,
    /// This very report (same worker and delivery) was applied before: a retry after a lost
    /// reply. Nothing changed.
    Duplicate,
}

/// A lease a worker holds: job and delivery number.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseRef {
    /// The job.
    pub job_id: String,
    /// Its delivery number (`Job::delivery`).
    pub delivery: u64,
}

impl LeaseRef {
    /// The lease on `job`'s current delivery.
    pub fn of(job: &Job) -> Self {
        Self {
            job_id: job.id.clone(),
            delivery: job.delivery,
        }
    }
}

/// A live worker, as seen through its heartbeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Worker id.
    pub id: String,
    /// Concurrency.
    pub concurrency: u32,
    /// Jobs held at the last heartbeat.
    pub in_flight: u32,
    /// Kinds it handles.
    pub kinds: Vec<String>,
    /// Last heartbeat (Unix ms).
    pub last_seen: i64,
}

/// A snapshot of the queue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Waiting for a worker.
    pub queued: u64,
    /// Waiting for a run time.
    pub scheduled: u64,
    /// Leased.
    pub processing: u64,
    /// Counter: finished.
    pub done_total: u64,
    /// Counter: failed for good.
    pub failed_total: u64,
    /// Counter: cancelled.
    pub cancelled_total: u64,
    /// Counter: accepted.
    pub submitted_total: u64,
    /// Counter: deliveries retried.
    pub retried_total: u64,
    /// Workers seen recently.
    pub workers: Vec<WorkerInfo>,
    /// Every kind ever submitted or declared (for `ListKinds`).
    pub kinds: Vec<String>,
}

/// A page request of [`crate::JobStore::list`].
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// Only jobs of this queue; `None` lists every queue (merged, newest first).
    pub queue: Option<String>,
    /// Only this status.
    pub status: Option<Status>,
    /// Page size.
    pub limit: usize,
    /// Return jobs older than this id (the previous page's last id; ids of all queues
    /// compare by their ULID, [`crate::sort_key`]).
    pub before: Option<String>,
}

/// One page, newest first.
#[derive(Clone, Debug, Default)]
pub struct Page {
    /// The jobs.
    pub jobs: Vec<Job>,
    /// Id to pass as `before` for the next page.
    pub next: Option<String>,
    /// Jobs matching the filter (approximate while expired jobs are being swept).
    pub total: u64,
}

/// Tunables shared by both stores.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// How long finished jobs (and idempotency keys) are kept.
    pub retention: Duration,
    /// A lease not renewed for this long is expired and the job redelivered.
    pub lease: Duration,
    /// First retry delay; doubles each attempt.
    pub backoff_base: Duration,
    /// Retry delay cap.
    pub backoff_max: Duration,
    /// A worker without a heartbeat for this long is not live.
    pub worker_ttl: Duration,
}

impl StoreConfig {
    /// A pause in lease keeping longer than this (no heartbeat, take or housekeeping ran —
    /// Redis paused, restarted or unreachable) moves every lease deadline forward by the
    /// pause (`docs/design.md`, "The lease clock"). Normal gaps are a heartbeat interval
    /// (lease/3) or the housekeeping tick (500 ms), well below.
    pub fn clock_gap(&self) -> Duration {
        (self.lease / 2).max(Duration::from_secs(1))
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(3600),
            lease: Duration::from_secs(3),
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            worker_ttl: Duration::from_secs(5),
        }
    }
}

impl StoreConfig {
    /// Delay before retry number `attempt` (1-based): base × 2^(attempt-1), capped, ±20 % jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .backoff_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let capped = exp.min(self.backoff_max);
        let jitter = rand::random_range(0.8..1.2);
        capped.mul_f64(jitter)
    }
}

/// Current Unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new job id: a ULID, so ids sort by creation time (lists page by id, no extra index).
///
/// Monotonic within this process (ids made in the same millisecond still sort in creation
/// order); across processes, ids of the same millisecond sort arbitrarily.
pub fn new_job_id() -> String {
    static GEN: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let mut g = GEN.lock().unwrap_or_else(|p| p.into_inner());
    let gen = g.get_or_insert_with(ulid::Generator::new);
    // fails only when 2^80 ids are made in one millisecond
    gen.generate()
        .unwrap_or_else(|_| ulid::Ulid::new())
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Status names round-trip and only done/failed/cancelled are terminal.
    #[test]
    fn status_names() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
        }
        assert!("nope".parse::<Status>().is_err());
        let terminal: Vec<_> = Status::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, [Status::Done, Status::Failed, Status::Cancelled]);
    }

    /// Backoff doubles per attempt within ±20 % and never exceeds the cap (+20 %).
    #[test]
    fn backoff_grows_and_caps() {
        let c = StoreConfig {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            ..Default::default()
        };
        let b1 = c.backoff(1).as_millis();
        let b3 = c.backoff(3).as_millis();
        assert!((80..=120).contains(&b1), "{b1}");
        assert!((320..=480).contains(&b3), "{b3}");
        assert!(c.backoff(30).as_millis() <= 1200);
    }

    /// Job ids sort by creation time.
    #[test]
    fn ids_are_time_ordered() {
        let a = new_job_id();
        std::thread::sleep(Duration::from_millis(2));
        let b = new_job_id();
        assert!(a < b);
        assert_eq!(a.len(), 26);
    }
}
