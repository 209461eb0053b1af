//! REST for named queues (`/api/v1/queues…`): their JSON shapes and handlers, each one
//! `JobService` call. The behaviour (names, limits, what pausing means) is the core's.

use axum::extract::{Path, State};
use axum::Json;
use pfc_proto::jobs::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// One named queue: what waits in it, what runs, what it has done.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Queue {
    /// Name, `[a-z0-9][a-z0-9._-]{0,63}`.
    #[schema(example = "default")]
    pub name: String,
    /// Jobs waiting for a worker (queue depth).
    pub queued: u64,
    /// Jobs waiting for their run time or a retry.
    pub scheduled: u64,
    /// Jobs leased by workers (in flight).
    pub processing: u64,
    /// Jobs accepted (monotonic counter).
    pub submitted_total: u64,
    /// Jobs finished (monotonic counter).
    pub done_total: u64,
    /// Jobs failed for good (monotonic counter).
    pub failed_total: u64,
    /// Jobs cancelled (monotonic counter).
    pub cancelled_total: u64,
    /// Deliveries that failed and were retried (monotonic counter).
    pub retried_total: u64,
    /// Paused: accepts submits, leases nothing.
    pub paused: bool,
    /// At most this many jobs of the queue processing at once; 0 = no limit.
    pub concurrency_limit: u32,
    /// At most this many job starts per `rate_period_ms`; 0 = no limit.
    pub rate_limit: u32,
    /// The rate limit's window in ms (0 without a rate limit).
    pub rate_period_ms: u64,
}

impl From<pb::Queue> for Queue {
    fn from(q: pb::Queue) -> Self {
        Queue {
            name: q.name,
            queued: q.queued,
            scheduled: q.scheduled,
            processing: q.processing,
            submitted_total: q.submitted_total,
            done_total: q.done_total,
            failed_total: q.failed_total,
            cancelled_total: q.cancelled_total,
            retried_total: q.retried_total,
            paused: q.paused,
            concurrency_limit: q.concurrency_limit,
            rate_limit: q.rate_limit,
            rate_period_ms: q.rate_period.map_or(0, |d| {
                (d.seconds.max(0) as u64) * 1000 + (d.nanos.max(0) as u64) / 1_000_000
            }),
        }
    }
}

/// Answer of `GET /api/v1/queues`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Queues {
    /// Every queue that ever had a job, and `default`, by name.
    pub queues: Vec<Queue>,
}

/// Every queue that ever had a job (and `default`), by name, with depth, in-flight work and
/// counters.
#[utoipa::path(
    get, path = "/api/v1/queues", tag = "queues",
    responses(
        (status = 200, description = "The queues", body = Queues),
        (status = 503, description = "Core unavailable", body = ErrorBody),
    )
)]
pub async fn list(State(st): State<AppState>) -> Result<Json<Queues>, ApiError> {
    let resp = st
        .jobs
        .clone()
        .list_queues(st.call(pb::ListQueuesRequest {}))
        .await?
        .into_inner();
    Ok(Json(Queues {
        queues: resp.queues.into_iter().map(Queue::from).collect(),
    }))
}

/// The queue a queue operation answered with (the core always sends one; a reply without is a
/// fault of the core, not of the caller).
fn answered(queue: Option<pb::Queue>, rpc: &str) -> Result<Json<Queue>, ApiError> {
    queue
        .map(|q| Json(Queue::from(q)))
        .ok_or_else(|| ApiError::Internal(format!("{rpc} answered without a queue")))
}

/// Pause a queue: it still accepts submits, leases nothing; jobs in flight finish and
/// scheduled jobs keep their due times.
#[utoipa::path(
    post, path = "/api/v1/queues/{name}/pause", tag = "queues",
    params(("name" = String, Path, description = "Queue name")),
    responses(
        (status = 200, description = "The queue, now paused", body = Queue),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 422, description = "Malformed queue name", body = ErrorBody),
        (status = 503, description = "Core unavailable", body = ErrorBody),
    )
)]
pub async fn pause(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Queue>, ApiError> {
    let resp = st
        .jobs
        .clone()
        .pause_queue(st.call(pb::PauseQueueRequest { name }))
        .await?
        .into_inner();
    answered(resp.queue, "PauseQueue")
}

/// Resume a paused queue: waiting workers are served at once.
#[utoipa::path(
    post, path = "/api/v1/queues/{name}/resume", tag = "queues",
    params(("name" = String, Path, description = "Queue name")),
    responses(
        (status = 200, description = "The queue, now running", body = Queue),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 422, description = "Malformed queue name", body = ErrorBody),
        (status = 503, description = "Core unavailable", body = ErrorBody),
    )
)]
pub async fn resume(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Queue>, ApiError> {
    let resp = st
        .jobs
        .clone()
        .resume_queue(st.call(pb::ResumeQueueRequest { name }))
        .await?
        .into_inner();
    answered(resp.queue, "ResumeQueue")
}

/// Body of `POST /api/v1/queues/{name}/limits`: every limit at once (absent or 0 = none).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// At most this many jobs of the queue processing at once, 0..=100000.
    #[serde(default)]
    #[schema(maximum = 100000, example = 2)]
    pub concurrency_limit: u32,
    /// At most this many job starts per `rate_period_ms`, 0..=1000000.
    #[serde(default)]
    #[schema(maximum = 1000000, example = 5)]
    pub rate_limit: u32,
    /// The rate limit's window in ms, 1..=3600000; required with a rate limit.
    #[serde(default)]
    #[schema(maximum = 3600000, example = 1000)]
    pub rate_period_ms: u64,
}

/// Set a queue's limits (enforced atomically by every take, across all workers and servers).
#[utoipa::path(
    post, path = "/api/v1/queues/{name}/limits", tag = "queues",
    params(("name" = String, Path, description = "Queue name")),
    request_body = Limits,
    responses(
        (status = 200, description = "The queue with its new limits", body = Queue),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "No such queue", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Malformed name or a limit out of range", body = ErrorBody),
        (status = 503, description = "Core unavailable", body = ErrorBody),
    )
)]
pub async fn limits(
    State(st): State<AppState>,
    Path(name): Path<String>,
    crate::rest::JsonBody(body): crate::rest::JsonBody<Limits>,
) -> Result<Json<Queue>, ApiError> {
    let period = body.rate_period_ms;
    let resp = st
        .jobs
        .clone()
        .update_queue(st.call(pb::UpdateQueueRequest {
            name,
            concurrency_limit: body.concurrency_limit,
            rate_limit: body.rate_limit,
            rate_period: (period > 0).then(|| prost_types::Duration {
                seconds: (period / 1000).min(i64::MAX as u64) as i64,
                nanos: ((period % 1000) * 1_000_000) as i32,
            }),
        }))
        .await?
        .into_inner();
    answered(resp.queue, "UpdateQueue")
}
