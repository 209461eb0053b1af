//! REST handlers: the origin-compatible routes (`/jobs`, `/jobs/{job_id}`) and the versioned
//! API under `/api/v1/`. Each handler turns JSON into one `JobService` call and back; the
//! behaviour (validation, limits, idempotency) is the core's.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use pfc_proto::jobs::v1 as pb;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{ApiError, ErrorBody};
use crate::model::{
    is_json, BatchResult, Job, JobPage, Kind, Kinds, OriginJob, OriginSubmit, OriginSubmitted,
    Stats, Status, SubmitJob, SubmitJobs, Submitted, SubmittedBatch,
};
use crate::AppState;

/// A JSON body read with the gateway's size limit and its error format: a missing
/// content-type is accepted (as the origin's FastAPI did), any other non-JSON type is 415,
/// invalid JSON 400, valid JSON of the wrong shape 422, too large 413.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
            let essence = ct.split(';').next().unwrap_or_default().trim();
            if essence != "application/json" && !essence.ends_with("+json") {
                return Err(ApiError::UnsupportedMediaType);
            }
        }
        let limit = state.body_limit;
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|e| {
                let too_large = std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
                if too_large {
                    ApiError::PayloadTooLarge(format!("request body is larger than {limit} bytes"))
                } else {
                    ApiError::InvalidJson(format!("failed to read the request body: {e}"))
                }
            })?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = deserialize_classified(&mut de)?;
        de.end()
            .map_err(|e| ApiError::InvalidJson(format!("invalid JSON: {e}")))?;
        Ok(JsonBody(value))
    }
}

/// Deserializes, telling syntax errors (400) from shape errors (422).
fn deserialize_classified<T: DeserializeOwned>(
    de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'_>>,
) -> Result<T, ApiError> {
    T::deserialize(de).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::InvalidArgument(format!("invalid request: {e}"))
        }
        _ => ApiError::InvalidJson(format!("invalid JSON: {e}")),
    })
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::InvalidArgument(r.body_text())
    }
}

impl AppState {
    /// A request to the core with the REST deadline.
    pub(crate) fn call<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        req.set_timeout(self.request_timeout);
        req
    }
}

// ---------------------------------------------------------------- origin-compatible routes

/// Submit a job (origin-compatible): the text is uppercased.
#[utoipa::path(
    post, path = "/jobs", tag = "origin",
    request_body = OriginSubmit,
    responses(
        (status = 200, description = "Job accepted", body = OriginSubmitted),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Missing, empty or oversized text", body = ErrorBody),
        (status = 429, description = "Queue full", body = ErrorBody),
        (status = 503, description = "Core unavailable", body = ErrorBody),
    )
)]
pub async fn origin_submit(
    State(st): State<AppState>,
    JsonBody(body): JsonBody<OriginSubmit>,
) -> Result<Json<OriginSubmitted>, ApiError> {
    let resp = st
        .jobs
        .clone()
        .submit_job(st.call(pb::SubmitJobRequest {
            text: body.text,
            ..Default::default()
        }))
        .await?
        .into_inner();
    Ok(Json(OriginSubmitted {
        job_id: resp.job_id,
    }))
}

/// Get a job's status and result (origin-compatible).
#[utoipa::path(
    get, path = "/jobs/{job_id}", tag = "origin",
    params(("job_id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = OriginJob),
        (status = 404, description = "Unknown or expired id", body = ErrorBody),
        (status = 503, description = "Core unavailable", body = ErrorBody),
    )
)]
pub async fn origin_get(
    State(st): State<AppState>,
    Path(job_id): Path<String>,
) -> Result<Json<OriginJob>, ApiError> {
    let job = get_job(&st, &job_id).await?;
    Ok(Json(OriginJob::from(job)))
}

// ---------------------------------------------------------------- /api/v1

async fn get_job(st: &AppState, job_id: &str) -> Result<Job, ApiError> {
    let resp = st
        .jobs
        .clone()
        .get_job(st.call(pb::GetJobRequest {
            job_id: job_id.to_string(),
        }))
        .await
        .map_err(|s| ApiError::lookup(s, job_id))?
        .into_inner();
    resp.job
        .map(Job::from)
        .ok_or_else(|| ApiError::Internal("GetJob answered without a job".into()))
}

/// Longest `delay_ms` accepted: 30 days, the core's limit for `run_at`/`delay` (checked here
/// too, so a delay is refused even when `run_at` makes the core ignore it).
const MAX_DELAY_MS: u64 = 30 * 24 * 3600 * 1000;

/// The payload bytes and content type of a submit body (both empty for a text job), checked
/// for what the gateway can tell alone; the core checks the rest (JSON, size, kind).
pub(crate) fn payload_of(body: &SubmitJob) -> Result<(Vec<u8>, String), ApiError> {
    let invalid = |m: &str| Err(ApiError::InvalidArgument(m.into()));
    match (&body.payload, &body.payload_base64) {
        (Some(_), Some(_)) => invalid("send payload (JSON) or payload_base64 (bytes), not both"),
        (Some(_), None) if body.content_type.as_deref().is_some_and(|c| !is_json(c)) => {
            invalid("payload is JSON; send other content types as payload_base64 with content_type")
        }
        // the JSON text exactly as sent (the core validates it again)
        (Some(json), None) => Ok((json.get().as_bytes().to_vec(), String::new())),
        (None, Some(b64)) => {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| {
                    ApiError::InvalidArgument(format!("payload_base64 is not valid base64: {e}"))
                })?;
            if bytes.is_empty() {
                return invalid("payload_base64 must not be empty");
            }
            let ct = body.content_type.clone();
            Ok((
                bytes,
                ct.unwrap_or_else(|| "application/octet-stream".into()),
            ))
        }
        (None, None) if body.content_type.is_some() => {
            invalid("content_type describes payload_base64, which is missing")
        }
        (None, None) if body.text.is_none() => {
            invalid("a job needs text, a JSON payload or payload_base64")
        }
        (None, None) => Ok((Vec::new(), String::new())),
    }
}

/// Submit a job.
///
/// A job has `text` (the built-in text processors), or a `payload` of any JSON value, or
/// `payload_base64` bytes with a `content_type`. Any well-formed `kind` is accepted; one no
/// worker has declared yet waits queued. With an idempotency key (body field or
/// `Idempotency-Key` header), a repeated submit returns the first job with `created: false`
/// and status 200 instead of 201.
#[utoipa::path(
    post, path = "/api/v1/jobs", tag = "jobs",
    request_body = SubmitJob,
    params(("Idempotency-Key" = Option<String>, Header, description = "Idempotency key (the body field wins)")),
    responses(
        (status = 201, description = "Job created", body = Submitted),
        (status = 200, description = "Idempotency key matched an existing job", body = Submitted),
        (status = 400, description = "Malformed JSON (the body, or a `payload` that is not JSON)", body = ErrorBody,
            example = json!({"error": {"code": "invalid_json", "message": "invalid JSON: EOF while parsing an object at line 1 column 22"}})),
        (status = 413, description = "Body over the gateway's limit (`PFC_HTTP_BODY_LIMIT`), or payload over the core's (`PFC_MAX_PAYLOAD_BYTES`)", body = ErrorBody,
            example = json!({"error": {"code": "payload_too_large", "message": "payload too large: 2097152 bytes, the limit is 1048576 bytes"}})),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid field: neither or both of text and payload, empty or oversized text, malformed kind, payload for a built-in text kind, bad base64 or content type, bad run_at, unknown field", body = ErrorBody,
            example = json!({"error": {"code": "invalid_argument", "message": "a job has either text or a payload, not both"}})),
        (status = 429, description = "Queue full", body = ErrorBody),
        (status = 503, description = "Core unavailable", body = ErrorBody),
    )
)]
pub async fn submit(
    State(st): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SubmitJob>,
) -> Result<impl IntoResponse, ApiError> {
    let header_key = match headers.get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::InvalidArgument("Idempotency-Key must be ASCII".into()))?
                .to_string(),
        ),
        None => None,
    };
    let req = submit_request(body, header_key)?;
    let resp = st.jobs.clone().submit_job(st.call(req)).await?.into_inner();
    let status = if resp.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!("/api/v1/jobs/{}", resp.job_id);
    Ok((
        status,
        [(header::LOCATION, location)],
        Json(Submitted {
            job_id: resp.job_id,
            created: resp.created,
            job: resp.job.map(Job::from),
        }),
    ))
}

/// The core's request for one REST submit body (`header_key`: the `Idempotency-Key` header,
/// used when the body has no key). Shared by the single and the batch submit.
fn submit_request(
    body: SubmitJob,
    header_key: Option<String>,
) -> Result<pb::SubmitJobRequest, ApiError> {
    let run_at = match body.run_at.as_deref() {
        Some(s) => {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|e| ApiError::InvalidArgument(format!("run_at must be RFC 3339: {e}")))?;
            let ms = i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
            Some(pfc_proto::timestamp_from_ms(ms))
        }
        None => None,
    };
    if body.delay_ms.is_some_and(|ms| ms > MAX_DELAY_MS) {
        return Err(ApiError::InvalidArgument(
            "delay_ms must be at most 30 days (2592000000)".into(),
        ));
    }
    let (payload, content_type) = payload_of(&body)?;
    let delay = body.delay_ms.map(|ms| {
        let d = Duration::from_millis(ms);
        prost_types::Duration {
            seconds: d.as_secs() as i64,
            nanos: d.subsec_nanos() as i32,
        }
    });
    Ok(pb::SubmitJobRequest {
        text: body.text.unwrap_or_default(),
        payload,
        content_type,
        kind: body.kind.unwrap_or_default(),
        idempotency_key: body.idempotency_key.or(header_key).unwrap_or_default(),
        run_at,
        delay,
        max_attempts: body.max_attempts.unwrap_or(0),
        queue: body.queue.unwrap_or_default(),
        priority: body.priority.unwrap_or(0),
    })
}

/// Most jobs in one batch: the core's `SubmitJobs` limit (`pfc_jobs::service::MAX_BATCH`),
/// checked here too because a batch the gateway refuses entirely never reaches the core.
const MAX_BATCH: usize = 1000;

/// Submit many jobs at once (up to 1,000): one result per job, in order — the job as
/// `POST /api/v1/jobs` answers it, or the error that refused it. A bad job never refuses the
/// others; the whole call fails only when the batch itself is empty, too long or too large.
#[utoipa::path(
    post, path = "/api/v1/jobs:batch", tag = "jobs",
    request_body = SubmitJobs,
    responses(
        (status = 200, description = "One result per job, in request order", body = SubmittedBatch,
            example = json!({"results": [
                {"job_id": "01JABCDEFGHJKMNPQRSTVWXYZ0", "created": true, "job": null},
                {"error": {"code": "invalid_argument", "message": "kind must match [a-z0-9][a-z0-9._-]{0,63}"}}
            ]})),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Not a batch: `jobs` missing, empty or over 1,000 entries, or an entry that is not an object", body = ErrorBody),
        (status = 503, description = "Core unavailable", body = ErrorBody),
    )
)]
pub async fn submit_batch(
    State(st): State<AppState>,
    JsonBody(body): JsonBody<SubmitJobs>,
) -> Result<Json<SubmittedBatch>, ApiError> {
    if body.jobs.is_empty() || body.jobs.len() > MAX_BATCH {
        return Err(ApiError::InvalidArgument(format!(
            "jobs has {} entries; a batch has 1 to {MAX_BATCH}",
            body.jobs.len()
        )));
    }
    // Entries the gateway itself refuses (a bad run_at, bad base64) keep their place: only
    // the others go to the core, and the answers are merged back in order.
    let prepared: Vec<Result<pb::SubmitJobRequest, ApiError>> = body
        .jobs
        .into_iter()
        .map(|job| submit_request(job, None))
        .collect();
    let valid: Vec<pb::SubmitJobRequest> = prepared
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    let mut answers = if valid.is_empty() {
        Vec::new()
    } else {
        st.jobs
            .clone()
            .submit_jobs(st.call(pb::SubmitJobsRequest { jobs: valid }))
            .await?
            .into_inner()
            .results
    }
    .into_iter();
    let mut results = Vec::with_capacity(prepared.len());
    for p in prepared {
        results.push(match p {
            Err(e) => BatchResult::Error(e.body()),
            Ok(_) => match answers.next().and_then(|r| r.outcome) {
                Some(pb::submit_job_result::Outcome::Submitted(s)) => {
                    BatchResult::Submitted(Box::new(Submitted {
                        job_id: s.job_id,
                        created: s.created,
                        job: s.job.map(Job::from),
                    }))
                }
                Some(pb::submit_job_result::Outcome::Error(e)) => BatchResult::Error(
                    ApiError::from(tonic::Status::new(tonic::Code::from(e.code), e.message)).body(),
                ),
                None => BatchResult::Error(
                    ApiError::Internal("the core answered fewer results than jobs".into()).body(),
                ),
            },
        });
    }
    Ok(Json(SubmittedBatch { results }))
}

/// Get one job with its result or error.
#[utoipa::path(
    get, path = "/api/v1/jobs/{job_id}", tag = "jobs",
    params(("job_id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = Job),
        (status = 404, description = "Unknown or expired id", body = ErrorBody),
        (status = 503, description = "Core unavailable", body = ErrorBody),
    )
)]
pub async fn get(
    State(st): State<AppState>,
    Path(job_id): Path<String>,
) -> Result<Json<Job>, ApiError> {
    get_job(&st, &job_id).await.map(Json)
}

/// Query of `GET /api/v1/jobs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only jobs in this status (`scheduled|queued|processing|done|failed|cancelled`).
    #[param(value_type = Option<Status>)]
    pub status: Option<String>,
    /// Page size, 1..=200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub page_size: Option<u32>,
    /// `next_page_token` of the previous page.
    pub page_token: Option<String>,
    /// Only jobs of this queue; absent lists every queue.
    pub queue: Option<String>,
}

/// List jobs, newest first, optionally filtered by status.
#[utoipa::path(
    get, path = "/api/v1/jobs", tag = "jobs",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of jobs", body = JobPage),
        (status = 422, description = "Unknown status, bad page size or page token", body = ErrorBody),
        (status = 503, description = "Core unavailable", body = ErrorBody),
    )
)]
pub async fn list(
    State(st): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<JobPage>, ApiError> {
    let Query(q) = query?;
    let status = match q.status.as_deref().filter(|s| !s.is_empty() && *s != "all") {
        Some(s) => Status::parse(s)
            .ok_or_else(|| {
                ApiError::InvalidArgument(format!(
                    "unknown status {s:?}; expected scheduled, queued, processing, done, failed or cancelled"
                ))
            })?
            .to_proto(),
        None => pb::JobStatus::Unspecified,
    };
    if let Some(n) = q.page_size {
        if !(1..=200).contains(&n) {
            return Err(ApiError::InvalidArgument(
                "page_size must be between 1 and 200".into(),
            ));
        }
    }
    let resp = st
        .jobs
        .clone()
        .list_jobs(st.call(pb::ListJobsRequest {
            status: status as i32,
            page_size: q.page_size.unwrap_or(0),
            page_token: q.page_token.unwrap_or_default(),
            queue: q.queue.unwrap_or_default(),
        }))
        .await?
        .into_inner();
    Ok(Json(JobPage {
        jobs: resp.jobs.into_iter().map(Job::from).collect(),
        next_page_token: (!resp.next_page_token.is_empty()).then_some(resp.next_page_token),
        total_size: resp.total_size,
    }))
}

/// Cancel a queued or scheduled job.
#[utoipa::path(
    post, path = "/api/v1/jobs/{job_id}/cancel", tag = "jobs",
    params(("job_id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job, now cancelled", body = Job),
        (status = 404, description = "Unknown or expired id", body = ErrorBody),
        (status = 409, description = "The job is processing or finished", body = ErrorBody),
        (status = 503, description = "Core unavailable", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(st): State<AppState>,
    Path(job_id): Path<String>,
) -> Result<Json<Job>, ApiError> {
    let resp = st
        .jobs
        .clone()
        .cancel_job(st.call(pb::CancelJobRequest {
            job_id: job_id.clone(),
        }))
        .await
        .map_err(|s| ApiError::lookup(s, &job_id))?
        .into_inner();
    resp.job
        .map(|j| Json(Job::from(j)))
        .ok_or_else(|| ApiError::Internal("CancelJob answered without a job".into()))
}

/// Queue statistics: depth, in flight, counters, live workers.
#[utoipa::path(
    get, path = "/api/v1/stats", tag = "jobs",
    responses(
        (status = 200, description = "A snapshot of the queue", body = Stats),
        (status = 503, description = "Core unavailable", body = ErrorBody),
    )
)]
pub async fn stats(State(st): State<AppState>) -> Result<Json<Stats>, ApiError> {
    let resp = st
        .jobs
        .clone()
        .get_stats(st.call(pb::GetStatsRequest {}))
        .await?
        .into_inner();
    Ok(Json(resp.into()))
}

/// The kinds of job: the built-in processors and every kind a live worker declared, with the
/// number of live workers and their concurrency. A job may name any other well-formed kind
/// too; it waits queued until a worker declares it.
#[utoipa::path(
    get, path = "/api/v1/kinds", tag = "jobs",
    responses(
        (status = 200, description = "The known kinds", body = Kinds),
        (status = 503, description = "Core unavailable", body = ErrorBody),
    )
)]
pub async fn kinds(State(st): State<AppState>) -> Result<Json<Kinds>, ApiError> {
    let resp = st
        .jobs
        .clone()
        .list_kinds(st.call(pb::ListKindsRequest {}))
        .await?
        .into_inner();
    Ok(Json(Kinds {
        kinds: resp.kinds.into_iter().map(Kind::from).collect(),
    }))
}

/// Any other path under `/api/`: a JSON 404 (never the UI's index.html).
pub async fn api_not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

/// A known path with the wrong method.
pub async fn method_not_allowed() -> impl IntoResponse {
    let body = ErrorBody {
        error: crate::error::ErrorDetail {
            code: "method_not_allowed".into(),
            message: "method not allowed on this route".into(),
        },
    };
    (StatusCode::METHOD_NOT_ALLOWED, Json(body))
}
