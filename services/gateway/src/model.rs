//! JSON shapes of the REST API, converted from the protobuf messages of `pfc.jobs.v1`.
//!
//! The `.proto` is the source of truth: these types only rename (lowercase statuses, RFC 3339
//! timestamps, `null` for unset optional fields) and never add behaviour. Payloads and
//! results are shown as JSON: a JSON payload as the value itself (passed through byte for
//! byte, never re-encoded, so key order and number precision survive), other bytes as base64
//! beside their content type.

use crate::error::ErrorBody;
use base64::Engine as _;
use pfc_proto::jobs::v1 as pb;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

/// The content type of JSON payloads and results.
pub const JSON: &str = "application/json";

/// A JSON value kept as its original text.
pub type Json = Box<RawValue>;

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

/// True for a JSON content type (`application/json`, any case, any parameters).
pub fn is_json(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .eq_ignore_ascii_case(JSON)
}

/// A string as a JSON value.
fn json_string(s: &str) -> Json {
    // serializing a &str cannot fail
    serde_json::value::to_raw_value(s).expect("a string is JSON")
}

/// How bytes with a content type are shown: the JSON value itself for a JSON type, else
/// base64. Bytes labelled JSON that are not (never stored by the core, which validates)
/// are shown as base64 rather than breaking the response.
fn shown(bytes: Vec<u8>, content_type: &str) -> (Option<Json>, Option<String>) {
    if is_json(content_type) {
        if let Ok(text) = String::from_utf8(bytes.clone()) {
            if let Ok(v) = RawValue::from_string(text.trim().to_owned()) {
                return (Some(v), None);
            }
        }
    }
    (
        None,
        Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
    )
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
    /// Priority, -10..10: higher runs first within its queue.
    pub priority: i32,
    /// Current status.
    pub status: Status,
    /// Input text (empty for a job submitted with a payload).
    #[schema(example = "bonjour le monde")]
    pub text: String,
    /// Input of a job submitted with a JSON payload: the JSON value itself (any JSON value,
    /// `null` included: check `content_type`). `null` for text jobs and other content types.
    #[schema(value_type = Value, example = json!({"w": 64, "h": 64}))]
    pub payload: Option<Json>,
    /// Input of a job submitted with a payload of another content type, base64-encoded.
    #[schema(format = Byte)]
    pub payload_base64: Option<String>,
    /// Content type of the payload (`application/json` for `payload`); `null` for text jobs.
    #[schema(example = "application/json")]
    pub content_type: Option<String>,
    /// Output, set when `done`: a string for text jobs, the JSON value itself when the worker
    /// returned JSON (see `result_content_type`).
    #[schema(value_type = Value, example = "BONJOUR LE MONDE")]
    pub result: Option<Json>,
    /// Output of another content type, base64-encoded.
    #[schema(format = Byte)]
    pub result_base64: Option<String>,
    /// Content type of a payload result (`application/json` for JSON in `result`); `null` for
    /// text results.
    pub result_content_type: Option<String>,
    /// Progress the worker reported (0–100), if any.
    #[schema(maximum = 100)]
    pub progress: Option<u32>,
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
        let has_payload = !j.payload.is_empty() || !j.content_type.is_empty();
        let (payload, payload_base64) = if has_payload {
            shown(j.payload, &j.content_type)
        } else {
            (None, None)
        };
        let has_result_payload = !j.result_content_type.is_empty();
        let (result, result_base64) = match j.result {
            Some(text) => (Some(json_string(&text)), None),
            None if has_result_payload => shown(j.result_payload, &j.result_content_type),
            None => (None, None),
        };
        Job {
            job_id: j.id.clone(),
            id: j.id,
            kind: j.kind,
            queue: j.queue,
            priority: j.priority,
            status: status_json(j.status),
            text: j.text,
            payload,
            payload_base64,
            content_type: has_payload.then(|| non_empty(&j.content_type).unwrap_or(JSON.into())),
            result,
            result_base64,
            result_content_type: non_empty(&j.result_content_type),
            progress: j.progress,
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
    /// Progress of a running job (0–100), if reported.
    #[schema(maximum = 100)]
    pub progress: Option<u32>,
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
            progress: e.progress,
        }
    }
}

/// Data of a `resync` event on `/api/v1/events`: transitions may have been missed before it,
/// so re-list what you show (`GET /api/v1/jobs`), then keep applying `transition` events.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Resync {
    /// Why: `events_lost` (the server's event feed had a gap, e.g. its connection to Redis was
    /// re-established) or `client_slow` (this stream was read more slowly than jobs changed).
    #[schema(example = "events_lost")]
    pub reason: String,
}

impl From<pb::Resync> for Resync {
    fn from(r: pb::Resync) -> Self {
        let reason = match r.reason() {
            pb::ResyncReason::ClientSlow => "client_slow",
            pb::ResyncReason::EventsLost | pb::ResyncReason::Unspecified => "events_lost",
        };
        Resync {
            reason: reason.into(),
        }
    }
}

/// The data of one `/api/v1/events` message: a JobEvent (`event: transition`) or a Resync
/// (`event: resync`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum EventsData {
    /// `event: transition`.
    Transition(JobEvent),
    /// `event: resync`.
    Resync(Resync),
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

impl From<Job> for OriginJob {
    fn from(job: Job) -> Self {
        // The origin's `result` is a string: a JSON result is shown as its JSON text, other
        // bytes as base64 (the v1 job has them as a value and with their content type).
        let result = match (job.result, job.result_base64) {
            (Some(v), _) => match serde_json::from_str::<String>(v.get()) {
                Ok(text) => Some(text),
                Err(_) => Some(v.get().to_owned()),
            },
            (None, b64) => b64,
        };
        OriginJob {
            job_id: job.job_id,
            status: job.status,
            result,
            error: job.error,
            kind: job.kind,
        }
    }
}

/// Body of `POST /api/v1/jobs`: a job has exactly one of `text` (for text processors such as
/// the built-in ones), `payload` (any JSON value) or `payload_base64` (other bytes, with
/// `content_type`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(
    json!({"text": "bonjour le monde", "kind": "uppercase"}),
    json!({"kind": "resize", "payload": {"url": "https://example.com/a.png", "w": 64}}),
))]
pub struct SubmitJob {
    /// Input text: non-empty, at most the core's limit (64 KiB by default).
    #[serde(default)]
    #[schema(example = "bonjour le monde", min_length = 1)]
    pub text: Option<String>,
    /// Input as any JSON value (object, array, string, number, boolean or `null`), at most
    /// the core's payload limit (1 MiB by default); passed to the worker byte for byte.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Value>, example = json!({"w": 64, "h": 64}))]
    pub payload: Option<Json>,
    /// Input as bytes of another content type, base64-encoded (standard alphabet, padded).
    #[serde(default)]
    #[schema(format = Byte)]
    pub payload_base64: Option<String>,
    /// Content type of `payload_base64`, a MIME type such as `image/png`; default
    /// `application/octet-stream`.
    #[serde(default)]
    #[schema(max_length = 255, example = "image/png")]
    pub content_type: Option<String>,
    /// Kind of job, `[a-z0-9][a-z0-9._-]{0,63}`; default `uppercase`. Any well-formed kind is
    /// accepted: one no worker has declared yet waits queued until one does (see
    /// `GET /api/v1/kinds`).
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$", example = "uppercase")]
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
    /// Priority, -10..10 (default 0): within a queue, higher runs first, FIFO within one
    /// priority.
    #[serde(default)]
    #[schema(minimum = -10, maximum = 10)]
    pub priority: Option<i32>,
    /// Queue, `[a-z0-9][a-z0-9._-]{0,63}`; default `default`. Idempotency keys are per queue.
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$", example = "default")]
    pub queue: Option<String>,
}

/// A field that is present, `null` included (`"payload": null` is a JSON payload).
fn present<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<Json>, D::Error> {
    Json::deserialize(de).map(Some)
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

/// A batch of submits (`POST /api/v1/jobs:batch`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitJobs {
    /// The jobs, 1 to 1,000, each as the body of `POST /api/v1/jobs` (the `Idempotency-Key`
    /// header does not apply: give each job its own `idempotency_key`).
    #[schema(min_items = 1, max_items = 1000)]
    pub jobs: Vec<SubmitJob>,
}

/// One result per job of a batch, in request order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SubmittedBatch {
    /// The results.
    pub results: Vec<BatchResult>,
}

/// How one job of a batch went: submitted, or refused with the error `POST /api/v1/jobs`
/// would have answered for it alone.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum BatchResult {
    /// Accepted (or matched by its idempotency key).
    Submitted(Box<Submitted>),
    /// Refused.
    Error(ErrorBody),
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
    /// Kinds it handles.
    pub kinds: Vec<String>,
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
                    kinds: w.kinds,
                })
                .collect(),
        }
    }
}

/// One kind of job: built in, or declared by a live worker.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Kind {
    /// Name used in `kind`.
    #[schema(example = "uppercase")]
    pub name: String,
    /// What it does (built-in kinds; empty for kinds declared by workers).
    pub description: String,
    /// Built into pfc (run by `pfc worker`).
    pub builtin: bool,
    /// Live workers that declared this kind.
    pub workers: u32,
    /// Their total concurrency (jobs of this kind they can run at once, shared with their
    /// other kinds).
    pub concurrency: u32,
}

impl From<pb::Kind> for Kind {
    fn from(k: pb::Kind) -> Self {
        Kind {
            name: k.name,
            description: k.description,
            builtin: k.builtin,
            workers: k.workers,
            concurrency: k.concurrency,
        }
    }
}

/// The kinds a job can name: the built-in ones and every kind a live worker declared. Any
/// other well-formed kind is accepted too, and waits queued until a worker declares it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Kinds {
    /// The kinds.
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

    /// A JSON payload and a JSON result are shown as the values themselves, byte for byte
    /// (key order, big numbers); other bytes as base64; text jobs as before.
    #[test]
    fn payloads_are_shown_as_json() {
        let raw = r#"{"z": 1, "a": 123456789012345678901234567890}"#;
        let job = Job::from(pb::Job {
            id: "j".into(),
            payload: raw.as_bytes().to_vec(),
            content_type: JSON.into(),
            result_payload: b"[true, null]".to_vec(),
            result_content_type: JSON.into(),
            progress: Some(40),
            ..Default::default()
        });
        let v = serde_json::to_string(&job).unwrap();
        assert!(v.contains(&format!(r#""payload":{raw}"#)), "{v}");
        assert!(v.contains(r#""result":[true, null]"#), "{v}");
        let v: serde_json::Value = serde_json::from_str(&v).unwrap();
        assert_eq!(v["content_type"], JSON);
        assert_eq!(v["progress"], 40);
        assert_eq!(v["payload_base64"], serde_json::Value::Null);

        let job = Job::from(pb::Job {
            payload: vec![0, 159, 146, 150],
            content_type: "image/png".into(),
            result_payload: b"ok".to_vec(),
            result_content_type: "text/plain".into(),
            ..Default::default()
        });
        let v = serde_json::to_value(&job).unwrap();
        assert_eq!(v["payload"], serde_json::Value::Null);
        assert_eq!(v["payload_base64"], "AJ+Slg==");
        assert_eq!(v["content_type"], "image/png");
        assert_eq!(v["result_base64"], "b2s=");
        assert_eq!(v["result"], serde_json::Value::Null);

        let job = Job::from(pb::Job {
            text: "abc".into(),
            result: Some("ABC".into()),
            ..Default::default()
        });
        let v = serde_json::to_value(&job).unwrap();
        assert_eq!(
            (v["text"].clone(), v["result"].clone()),
            ("abc".into(), "ABC".into())
        );
        assert_eq!(v["content_type"], serde_json::Value::Null);
        assert_eq!(OriginJob::from(job).result.as_deref(), Some("ABC"));
    }

    /// `"payload": null` is a payload (the JSON value null); an absent one is not.
    #[test]
    fn null_payload_is_present() {
        let s: SubmitJob = serde_json::from_str(r#"{"payload": null}"#).unwrap();
        assert_eq!(
            s.payload.map(|p| p.get().to_owned()).as_deref(),
            Some("null")
        );
        let s: SubmitJob = serde_json::from_str(r#"{"text": "a"}"#).unwrap();
        assert!(s.payload.is_none());
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
