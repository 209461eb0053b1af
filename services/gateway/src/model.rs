//! JSON shapes of the REST API, converted from the protobuf messages of `pfc.jobs.v1`.
//!
//! The `.proto` is the source of truth: these types only rename (lowercase statuses, RFC 3339
//! timestamps, `null` for unset optional fields) and never add behaviour.

use pfc_proto::jobs::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a job is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for its run time (a delayed job, or a retry in backoff).
    Scheduled,
    /// Waiting in the queue for a worker.
    Queued,
    /// Leased by a worker that is running it.
    Processing,
    /// Finished; `result` holds the output.
    Done,
    /// Gave up; `error` says why.
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

    /// The protobuf status (`None` for `UNSPECIFIED` or an unknown number).
    pub fn from_proto(value: i32) -> Option<Self> {
        Some(match pb::JobStatus::try_from(value).ok()? {
            pb::JobStatus::Unspecified => return None,
            pb::JobStatus::Scheduled => Status::Scheduled,
            pb::JobStatus::Queued => Status::Queued,
            pb::JobStatus::Processing => Status::Processing,
            pb::JobStatus::Done => Status::Done,
            pb::JobStatus::Failed => Status::Failed,
            pb::JobStatus::Cancelled => Status::Cancelled,
        })
    }

    /// The protobuf enum value.
    pub fn to_proto(self) -> pb::JobStatus {
        match self {
            Status::Scheduled => pb::JobStatus::Scheduled,
            Status::Queued => pb::JobStatus::Queued,
            Status::Processing => pb::JobStatus::Processing,
            Status::Done => pb::JobStatus::Done,
            Status::Failed => pb::JobStatus::Failed,
            Status::Cancelled => pb::JobStatus::Cancelled,
        }
    }

    /// The lowercase name used in JSON and query strings.
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

    /// Parses a lowercase name (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
    }
}

/// JSON of a status number; `unspecified` should never reach a client, but never panics.
fn status_json(value: i32) -> Status {
    // The core never stores UNSPECIFIED; treat it as the first state rather than failing.
    Status::from_proto(value).unwrap_or(Status::Queued)
}

/// RFC 3339 (UTC, milliseconds) of a protobuf timestamp.
pub fn rfc3339(ts: &prost_types::Timestamp) -> String {
    let ms = pfc_proto::timestamp_to_ms(ts).max(0) as u64;
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

fn opt_ts(ts: &Option<prost_types::Timestamp>) -> Option<String> {
    ts.as_ref().map(rfc3339)
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// One job and everything known about it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Job {
    /// Unique, time-ordered id (ULID).
    #[schema(example = "01JD3Q7Z8K4M2N6P9R1S5T7V9W")]
    pub id: String,
    /// Same as `id` (the origin API's field name).
    pub job_id: String,
    /// Processor that runs the job.
    #[schema(example = "uppercase")]
    pub kind: String,
    /// Queue the job lives in.
    pub queue: String,
    /// Current status.
    pub status: Status,
    /// Input text.
    #[schema(example = "bonjour le monde")]
    pub text: String,
    /// Output, set when `done`.
    #[schema(example = "BONJOUR LE MONDE")]
    pub result: Option<String>,
    /// Last error, set when a delivery failed.
    pub error: Option<String>,
    /// Deliveries so far.
    pub attempts: u32,
    /// Deliveries allowed before the job fails.
    pub max_attempts: u32,
    /// When the job was accepted (RFC 3339).
    pub created_at: Option<String>,
    /// When the job last changed.
    pub updated_at: Option<String>,
    /// When a scheduled job becomes due.
    pub run_at: Option<String>,
    /// When the current or last delivery started.
    pub started_at: Option<String>,
    /// When the job reached a terminal state.
    pub finished_at: Option<String>,
    /// Idempotency key given on submit.
    pub idempotency_key: Option<String>,
    /// Worker holding (or that last held) the job.
    pub worker_id: Option<String>,
    /// Incremented on every transition.
    pub version: u64,
}

impl From<pb::Job> for Job {
    fn from(j: pb::Job) -> Self {
        Job {
            job_id: j.id.clone(),
            id: j.id,
            kind: j.kind,
            queue: j.queue,
            status: status_json(j.status),
            text: j.text,
            result: j.result,
            error: j.error,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            created_at: opt_ts(&j.created_at),
            updated_at: opt_ts(&j.updated_at),
            run_at: opt_ts(&j.run_at),
            started_at: opt_ts(&j.started_at),
            finished_at: opt_ts(&j.finished_at),
            idempotency_key: non_empty(&j.idempotency_key),
            worker_id: non_empty(&j.worker_id),
            version: j.version,
        }
    }
}

/// One transition of one job (an `/api/v1/events` message).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobEvent {
    /// The job that changed.
    pub job_id: String,
    /// Its new status.
    pub status: Status,
    /// The job's version after the transition.
    pub version: u64,
    /// Deliveries so far.
    pub attempts: u32,
    /// Processor kind.
    pub kind: String,
    /// When the transition happened (RFC 3339).
    pub at: Option<String>,
    /// Error of a failed delivery.
    pub error: Option<String>,
    /// Worker involved.
    pub worker_id: Option<String>,
}

impl From<pb::JobEvent> for JobEvent {
    fn from(e: pb::JobEvent) -> Self {
        JobEvent {
            job_id: e.job_id,
            status: status_json(e.status),
            version: e.version,
            attempts: e.attempts,
            kind: e.kind,
            at: opt_ts(&e.at),
            error: non_empty(&e.error),
            worker_id: non_empty(&e.worker_id),
        }
    }
}

/// Origin-compatible submit body (`POST /jobs`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct OriginSubmit {
    /// Text to transform to uppercase: non-empty, at most the core's limit (64 KiB by default).
    #[schema(example = "bonjour le monde", min_length = 1)]
    pub text: String,
}

/// Origin-compatible submit answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OriginSubmitted {
    /// Id of the new job.
    pub job_id: String,
}

/// Origin-compatible job (`GET /jobs/{job_id}`), plus a few fields the origin lacked.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OriginJob {
    /// Job id.
    pub job_id: String,
    /// `scheduled|queued|processing|done|failed|cancelled`.
    pub status: Status,
    /// Output when done, else `null`.
    pub result: Option<String>,
    /// Error when failed, else `null`.
    pub error: Option<String>,
    /// Processor kind.
    pub kind: String,
}

/// Body of `POST /api/v1/jobs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    /// Input text: non-empty, at most the core's limit (64 KiB by default).
    #[schema(example = "bonjour le monde", min_length = 1)]
    pub text: String,
    /// Processor (see `GET /api/v1/kinds`); default `uppercase`.
    #[serde(default)]
    pub kind: Option<String>,
    /// A repeated submit with the same key returns the first job (also the `Idempotency-Key`
    /// header); at most 128 bytes.
    #[serde(default)]
    #[schema(max_length = 128)]
    pub idempotency_key: Option<String>,
    /// Delay before the job runs, in milliseconds (ignored when `run_at` is set); at most 30 days.
    #[serde(default, deserialize_with = "integral")]
    #[schema(maximum = 2_592_000_000_u64, example = 5000)]
    pub delay_ms: Option<u64>,
    /// Time to run at (RFC 3339, any offset); a past time runs now; at most 30 days ahead.
    #[serde(default)]
    #[schema(example = "2026-01-01T00:00:00Z", format = DateTime)]
    pub run_at: Option<String>,
    /// Deliveries allowed before the job fails, 1..=25; 0 or absent uses the default (3).
    #[serde(default, deserialize_with = "integral")]
    #[schema(maximum = 25)]
    pub max_attempts: Option<u32>,
}

/// An optional non-negative integer that also accepts an integral float (`10.0`), which JSON
/// Schema counts as an integer.
fn integral<'de, D, T>(de: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(de)? else {
        return Ok(None);
    };
    let v = match (n.as_u64(), n.as_f64()) {
        (Some(v), _) => v,
        (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 => f as u64,
        _ => {
            return Err(D::Error::custom(format!(
                "expected a non-negative integer, got {n}"
            )))
        }
    };
    T::try_from(v)
        .map(Some)
        .map_err(|_| D::Error::custom(format!("{v} is out of range")))
}

/// Answer of `POST /api/v1/jobs`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Submitted {
    /// Id of the job (the existing one for a repeated idempotency key).
    pub job_id: String,
    /// False when an idempotency key matched an existing job (then the status is 200, not 201).
    pub created: bool,
    /// The job as stored.
    pub job: Option<Job>,
}

/// One page of jobs, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobPage {
    /// The jobs.
    pub jobs: Vec<Job>,
    /// Pass as `page_token` for the next page; `null` on the last page.
    pub next_page_token: Option<String>,
    /// Number of jobs matching the filter.
    pub total_size: u64,
}

/// A live worker process.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Worker {
    /// Worker id.
    pub id: String,
    /// Jobs it runs at once.
    pub concurrency: u32,
    /// Jobs it holds now.
    pub in_flight: u32,
    /// Its last heartbeat (RFC 3339).
    pub last_seen: Option<String>,
}

/// A snapshot of the queue.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Stats {
    /// Jobs waiting for a worker (queue depth).
    pub queued: u64,
    /// Jobs waiting for their run time or a retry.
    pub scheduled: u64,
    /// Jobs leased by workers (in flight).
    pub processing: u64,
    /// Jobs finished since the store started.
    pub done_total: u64,
    /// Jobs failed for good since the store started.
    pub failed_total: u64,
    /// Jobs cancelled since the store started.
    pub cancelled_total: u64,
    /// Jobs accepted since the store started.
    pub submitted_total: u64,
    /// Deliveries that failed and were retried.
    pub retried_total: u64,
    /// Workers that sent a heartbeat recently.
    pub live_workers: u32,
    /// Those workers.
    pub workers: Vec<Worker>,
}

impl From<pb::GetStatsResponse> for Stats {
    fn from(s: pb::GetStatsResponse) -> Self {
        Stats {
            queued: s.queued,
            scheduled: s.scheduled,
            processing: s.processing,
            done_total: s.done_total,
            failed_total: s.failed_total,
            cancelled_total: s.cancelled_total,
            submitted_total: s.submitted_total,
            retried_total: s.retried_total,
            live_workers: s.live_workers,
            workers: s
                .workers
                .into_iter()
                .map(|w| Worker {
                    id: w.id,
                    concurrency: w.concurrency,
                    in_flight: w.in_flight,
                    last_seen: opt_ts(&w.last_seen),
                })
                .collect(),
        }
    }
}

/// One processor.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Kind {
    /// Name used in `kind`.
    #[schema(example = "uppercase")]
    pub name: String,
    /// What it does.
    pub description: String,
}

/// The processors a job can name.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Kinds {
    /// The processors.
    pub kinds: Vec<Kind>,
}

/// `{"status": "ok"}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` when the core cannot be reached (`/readyz`).
    #[schema(example = "ok")]
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every status name round-trips through its string and protobuf forms.
    #[test]
    fn status_names_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            assert_eq!(Status::from_proto(s.to_proto() as i32), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(Status::parse("DONE"), Some(Status::Done));
        assert_eq!(Status::parse("nope"), None);
        assert_eq!(Status::from_proto(0), None);
    }

    /// Integer fields accept integral floats and reject fractions, negatives and overflow.
    #[test]
    fn integral_numbers() {
        let ok: SubmitJob =
            serde_json::from_str(r#"{"text":"a","delay_ms":5.0,"max_attempts":3}"#).unwrap();
        assert_eq!((ok.delay_ms, ok.max_attempts), (Some(5), Some(3)));
        for bad in [
            r#"{"text":"a","delay_ms":1.5}"#,
            r#"{"text":"a","max_attempts":-1}"#,
            r#"{"text":"a","max_attempts":5000000000}"#,
        ] {
            assert!(serde_json::from_str::<SubmitJob>(bad).is_err(), "{bad}");
        }
    }

    /// Timestamps are RFC 3339 in UTC with milliseconds.
    #[test]
    fn timestamps_are_rfc3339() {
        let ts = pfc_proto::timestamp_from_ms(1_700_000_000_123);
        assert_eq!(rfc3339(&ts), "2023-11-14T22:13:20.123Z");
    }
}
