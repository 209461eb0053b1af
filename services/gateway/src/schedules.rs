//! REST for schedules (`/api/v1/schedules…`): their JSON shapes and handlers, each one
//! `pfc.jobs.v1.ScheduleService` call. The behaviour (cron and zone checks, exactly-once
//! ticks, pause semantics) is the core's (docs/design.md, "Schedules").

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use pfc_proto::jobs::v1 as pb;
use pfc_proto::jobs::v1::schedule_service_client::ScheduleServiceClient;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::model::{is_json, rfc3339, Status, SubmitJob};
use crate::rest::{payload_of, JsonBody};
use crate::AppState;

/// What to do with ticks missed during an outage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Fire the oldest missed tick once, then continue with the first tick after now.
    #[default]
    FireOnce,
    /// Fire nothing for a tick seen more than 5 s late.
    Skip,
}

/// A new schedule: `cron` (with an optional `time_zone`) or `every_ms`, and the job each
/// tick submits (as `POST /api/v1/jobs` takes it, without `idempotency_key`, `delay_ms` or
/// `run_at`: the scheduler owns those).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSchedule {
    /// Unique name, `[a-z0-9][a-z0-9._-]{0,63}`.
    #[schema(example = "nightly-report")]
    pub name: String,
    /// Cron expression: 5 fields (minute hour day-of-month month day-of-week) or 6 with
    /// seconds first.
    #[serde(default)]
    #[schema(example = "0 3 * * *")]
    pub cron: Option<String>,
    /// IANA time zone of `cron`; default UTC.
    #[serde(default)]
    #[schema(example = "Europe/Berlin")]
    pub time_zone: Option<String>,
    /// Fixed interval in milliseconds (1 s to 366 days), instead of `cron`.
    #[serde(default)]
    #[schema(minimum = 1000, example = 60000)]
    pub every_ms: Option<u64>,
    /// Missed ticks policy; default `fire_once`.
    #[serde(default)]
    pub catch_up: CatchUp,
    /// Create it paused.
    #[serde(default)]
    pub paused: bool,
    /// The job each tick submits.
    pub job: SubmitJob,
}

/// The job a schedule submits.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScheduleJob {
    /// Kind.
    pub kind: String,
    /// Queue.
    pub queue: String,
    /// Text input (empty for a payload).
    pub text: String,
    /// JSON payload, when the job has one.
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    /// Content type of a non-JSON payload.
    pub content_type: Option<String>,
    /// Deliveries allowed (0 = the server's default).
    pub max_attempts: u32,
    /// Priority.
    pub priority: i32,
}

/// A schedule and its state.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Schedule {
    /// Name.
    pub name: String,
    /// Cron expression, when it has one.
    pub cron: Option<String>,
    /// Time zone of the cron expression.
    pub time_zone: Option<String>,
    /// Fixed interval in milliseconds, when it has one.
    pub every_ms: Option<u64>,
    /// Missed ticks policy.
    pub catch_up: CatchUp,
    /// Paused: fires nothing.
    pub paused: bool,
    /// `api` or `config` (declared in the schedules file, applied at every start).
    pub source: String,
    /// The job each tick submits.
    pub job: ScheduleJob,
    /// Next tick (RFC 3339); absent while paused.
    pub next_fire_at: Option<String>,
    /// Last tick fired (RFC 3339), the time in its job's idempotency key.
    pub last_fire_at: Option<String>,
    /// The last tick's job.
    pub last_job_id: Option<String>,
    /// That job's status now (absent once it expired).
    pub last_job_status: Option<Status>,
    /// Why the last tick submitted no job.
    pub last_error: Option<String>,
    /// Creation time (RFC 3339).
    pub created_at: Option<String>,
}

/// Answer of `GET /api/v1/schedules`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Schedules {
    /// Every schedule, by name.
    pub schedules: Vec<Schedule>,
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl From<pb::Schedule> for Schedule {
    fn from(s: pb::Schedule) -> Self {
        let job = s.job.clone().unwrap_or_default();
        let json = is_json(&job.content_type) || job.content_type.is_empty();
        let payload = (!job.payload.is_empty() && json)
            .then(|| serde_json::from_slice(&job.payload).ok())
            .flatten();
        Schedule {
            catch_up: match s.catch_up() {
                pb::CatchUp::Skip => CatchUp::Skip,
                _ => CatchUp::FireOnce,
            },
            source: match s.source() {
                pb::ScheduleSource::Config => "config".into(),
                _ => "api".into(),
            },
            last_job_status: Status::from_proto(s.last_job_status),
            name: s.name,
            cron: non_empty(s.cron),
            time_zone: non_empty(s.time_zone),
            every_ms: s
                .every
                .map(|d| (d.seconds.max(0) as u64) * 1000 + (d.nanos.max(0) as u64) / 1_000_000),
            paused: s.paused,
            job: ScheduleJob {
                kind: job.kind,
                queue: job.queue,
                text: job.text,
                payload,
                content_type: (!json).then_some(job.content_type),
                max_attempts: job.max_attempts,
                priority: job.priority,
            },
            next_fire_at: s.next_fire_time.as_ref().map(rfc3339),
            last_fire_at: s.last_fire_time.as_ref().map(rfc3339),
            last_job_id: non_empty(s.last_job_id),
            last_error: non_empty(s.last_error),
            created_at: s.create_time.as_ref().map(rfc3339),
        }
    }
}

type Client = ScheduleServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        crate::access::Forward,
    >,
>;

impl AppState {
    /// A ScheduleService client on the jobs channel that forwards the caller's credential
    /// (the core's method table decides the scope: reads jobs:read, changes jobs:admin).
    fn schedules(&self) -> Client {
        ScheduleServiceClient::with_interceptor(self.jobs_channel.clone(), crate::access::Forward)
    }
}

/// The job template of a create body, checked for what the gateway can tell alone.
fn template(job: &SubmitJob) -> Result<pb::SubmitJobRequest, ApiError> {
    let refuse = |f: &str| {
        Err(ApiError::InvalidArgument(format!(
            "job.{f} must be absent: the scheduler sets the key to schedule:<name>:<tick-ms> \
             and runs each tick's job when it is due"
        )))
    };
    if job.idempotency_key.is_some() {
        return refuse("idempotency_key");
    }
    if job.delay_ms.is_some() {
        return refuse("delay_ms");
    }
    if job.run_at.is_some() {
        return refuse("run_at");
    }
    let (payload, content_type) = payload_of(job).map_err(|e| match e {
        ApiError::InvalidArgument(m) => ApiError::InvalidArgument(format!("job: {m}")),
        e => e,
    })?;
    Ok(pb::SubmitJobRequest {
        text: job.text.clone().unwrap_or_default(),
        kind: job.kind.clone().unwrap_or_default(),
        max_attempts: job.max_attempts.unwrap_or(0),
        queue: job.queue.clone().unwrap_or_default(),
        priority: job.priority.unwrap_or(0),
        payload,
        content_type,
        ..Default::default()
    })
}

/// Create a schedule.
///
/// Each tick submits the job once, however many jobs servers run. Invalid input is a 422
/// whose message starts with the field: `cron`, `time_zone`, `every`, `name`, `catch_up`,
/// `job.<field>`.
#[utoipa::path(
    post, path = "/api/v1/schedules", tag = "schedules",
    request_body = CreateSchedule,
    responses(
        (status = 201, description = "Created, with its first tick", body = Schedule),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "A schedule by that name exists", body = ErrorBody),
        (status = 413, description = "Body over the gateway's limit, or payload over the core's", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid field (cron, time_zone, every, name, job...), wrong JSON shape or unknown field", body = ErrorBody,
            example = json!({"error": {"code": "invalid_argument", "message": "time_zone: unknown time zone \"Mars/Olympus\"; use an IANA name such as \"UTC\", \"Europe/Berlin\" or \"America/New_York\""}})),
        (status = 503, description = "Core unavailable", body = ErrorBody),
    )
)]
pub async fn create(
    State(st): State<AppState>,
    JsonBody(body): JsonBody<CreateSchedule>,
) -> Result<impl IntoResponse, ApiError> {
    let every = body.every_ms.map(|ms| prost_types::Duration {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    });
    let schedule = pb::Schedule {
        name: body.name.clone(),
        cron: body.cron.clone().unwrap_or_default(),
        time_zone: body.time_zone.clone().unwrap_or_default(),
        every,
        job: Some(template(&body.job)?),
        catch_up: match body.catch_up {
            CatchUp::FireOnce => pb::CatchUp::FireOnce,
            CatchUp::Skip => pb::CatchUp::Skip,
        } as i32,
        paused: body.paused,
        ..Default::default()
    };
    let resp = st
        .schedules()
        .create_schedule(st.call(pb::CreateScheduleRequest {
            schedule: Some(schedule),
        }))
        .await?
        .into_inner();
    let s = resp
        .schedule
        .ok_or_else(|| ApiError::Internal("CreateSchedule answered without a schedule".into()))?;
    Ok((StatusCode::CREATED, Json(Schedule::from(s))))
}

/// Every schedule, by name, with its next and last fire and the last job's status.
#[utoipa::path(
    get, path = "/api/v1/schedules", tag = "schedules",
    responses(
        (status = 200, description = "The schedules", body = Schedules),
        (status = 503, description = "Core unavailable", body = ErrorBody),
    )
)]
pub async fn list(State(st): State<AppState>) -> Result<Json<Schedules>, ApiError> {
    let resp = st
        .schedules()
        .list_schedules(st.call(pb::ListSchedulesRequest {}))
        .await?
        .into_inner();
    Ok(Json(Schedules {
        schedules: resp.schedules.into_iter().map(Schedule::from).collect(),
    }))
}

fn one(s: Option<pb::Schedule>) -> Result<Json<Schedule>, ApiError> {
    s.map(|s| Json(Schedule::from(s)))
        .ok_or_else(|| ApiError::Internal("the core answered without a schedule".into()))
}

/// One schedule.
#[utoipa::path(
    get, path = "/api/v1/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "Schedule name")),
    responses(
        (status = 200, description = "The schedule", body = Schedule),
        (status = 404, description = "Unknown schedule", body = ErrorBody),
        (status = 503, description = "Core unavailable", body = ErrorBody),
    )
)]
pub async fn get(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Schedule>, ApiError> {
    let resp = st
        .schedules()
        .get_schedule(st.call(pb::GetScheduleRequest { name }))
        .await?
        .into_inner();
    one(resp.schedule)
}

async fn set_paused(st: &AppState, name: String, paused: bool) -> Result<Json<Schedule>, ApiError> {
    let resp = st
        .schedules()
        .update_schedule(st.call(pb::UpdateScheduleRequest {
            name,
            paused: Some(paused),
        }))
        .await?
        .into_inner();
    one(resp.schedule)
}

/// Pause a schedule: it fires nothing until resumed.
#[utoipa::path(
    post, path = "/api/v1/schedules/{name}/pause", tag = "schedules",
    params(("name" = String, Path, description = "Schedule name")),
    responses(
        (status = 200, description = "Paused", body = Schedule),
        (status = 404, description = "Unknown schedule", body = ErrorBody),
        (status = 503, description = "Core unavailable", body = ErrorBody),
    )
)]
pub async fn pause(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Schedule>, ApiError> {
    set_paused(&st, name, true).await
}

/// Resume a schedule: it continues with the first tick after now (ticks that passed while
/// paused are not fired).
#[utoipa::path(
    post, path = "/api/v1/schedules/{name}/resume", tag = "schedules",
    params(("name" = String, Path, description = "Schedule name")),
    responses(
        (status = 200, description = "Resumed", body = Schedule),
        (status = 404, description = "Unknown schedule", body = ErrorBody),
        (status = 503, description = "Core unavailable", body = ErrorBody),
    )
)]
pub async fn resume(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Schedule>, ApiError> {
    set_paused(&st, name, false).await
}

/// Delete a schedule (the jobs it fired stay).
#[utoipa::path(
    delete, path = "/api/v1/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "Schedule name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "Unknown schedule", body = ErrorBody),
        (status = 503, description = "Core unavailable", body = ErrorBody),
    )
)]
pub async fn delete(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.schedules()
        .delete_schedule(st.call(pb::DeleteScheduleRequest { name }))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
