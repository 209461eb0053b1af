//! Server-Sent Events: the core's server-streaming RPCs as `text/event-stream`.
//!
//! - `GET /api/v1/jobs/{job_id}/events`: `WatchJob`; one `job` event per transition (the first
//!   is the current state), each carrying the whole job; the stream ends after a terminal state.
//! - `GET /api/v1/events[?status=done,failed]`: `WatchJobs`; one `transition` event per
//!   transition of any job (optionally only transitions into the given statuses), and a
//!   `resync` event whenever the stream may have missed some (the client re-lists).
//!
//! Event ids are `"{job_id}:{version}"`. A stream that the core ends with an error sends one
//! `error` event with the usual error body, then closes. Streams also close when the gateway
//! starts shutting down, so draining never waits on an idle browser tab. A comment line is
//! sent every 15 s to keep proxies from closing quiet streams.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use futures::{Stream, StreamExt};
use pfc_proto::jobs::v1 as pb;

use crate::error::{ApiError, ErrorBody, ErrorDetail};
use crate::model::{EventsData, Job, JobEvent, Resync, Status};
use crate::AppState;

/// The SSE `error` event ending a stream: the JSON error body of the REST API (same code and
/// message as the HTTP mapping of `status`). Shared by the job and chat streams.
pub(crate) fn error_event(status: tonic::Status) -> Event {
    let err = ApiError::from(status);
    let (_, code) = err.status_and_code();
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.into(),
            message: err.to_string(),
        },
    };
    Event::default()
        .event("error")
        .data(serde_json::to_string(&body).unwrap_or_default())
}

fn json_event<T: serde::Serialize>(name: &str, id: String, value: &T) -> Event {
    // Serializing these plain structs cannot fail (no maps with non-string keys, no I/O).
    Event::default()
        .event(name)
        .id(id)
        .data(serde_json::to_string(value).unwrap_or_default())
}

/// A `resync` event: no id, so a reconnecting browser still resumes from the last transition.
fn resync_event(r: &Resync) -> Event {
    Event::default()
        .event("resync")
        .data(serde_json::to_string(r).unwrap_or_default())
}

/// Maps a gRPC stream to SSE events: items via `f`, an error as one `error` event, then the end.
fn to_events<T, F>(
    st: &AppState,
    stream: tonic::Streaming<T>,
    f: F,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static
where
    T: Send + 'static,
    F: Fn(T) -> Option<Event> + Send + 'static,
{
    let shutdown = st.shutdown.wait();
    stream
        .scan(false, move |failed, item| {
            let out = if *failed {
                None
            } else {
                match item {
                    Ok(msg) => Some(f(msg)),
                    Err(status) => {
                        *failed = true;
                        Some(Some(error_event(status)))
                    }
                }
            };
            futures::future::ready(out)
        })
        .filter_map(|e| futures::future::ready(e.map(Ok)))
        .take_until(shutdown)
}

/// The SSE response, counted in `pfc_gateway_sse_streams{stream}` while the stream lives.
pub(crate) fn sse<S>(name: &'static str, stream: S) -> impl IntoResponse
where
    S: Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    let open = crate::metrics::sse_stream(name);
    let stream = stream.map(move |e| {
        let _ = &open; // the guard lives (and counts) as long as the stream
        e
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Stream one job's transitions (Server-Sent Events).
///
/// Each `job` event's data is the whole job as JSON; the first event is the current state and
/// the stream ends after `done`, `failed` or `cancelled`.
#[utoipa::path(
    get, path = "/api/v1/jobs/{job_id}/events", tag = "events",
    params(("job_id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "`text/event-stream` of `job` events (data: Job)", content_type = "text/event-stream", body = Job),
        (status = 404, description = "Unknown or expired id", body = ErrorBody),
        (status = 503, description = "Core unavailable", body = ErrorBody),
    )
)]
pub async fn job_events(
    State(st): State<AppState>,
    Path(job_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let stream = st
        .jobs
        .clone()
        .watch_job(pb::WatchJobRequest {
            job_id: job_id.clone(),
        })
        .await
        .map_err(|s| ApiError::lookup(s, &job_id))?
        .into_inner();
    Ok(sse(
        "job",
        to_events(&st, stream, |m: pb::WatchJobResponse| {
            m.job.map(|j| {
                let job = Job::from(j);
                json_event("job", format!("{}:{}", job.id, job.version), &job)
            })
        }),
    ))
}

/// Query of `GET /api/v1/events`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only transitions into these statuses, comma-separated (e.g. `done,failed`); absent: all.
    #[param(example = "done,failed")]
    pub status: Option<String>,
}

/// Stream every job's transitions (Server-Sent Events), optionally only into some statuses.
///
/// Each `transition` event's data is a JobEvent as JSON. Only transitions that happen after
/// the subscription are sent (use `GET /api/v1/jobs` for the current state).
///
/// A `resync` event (data: `{"reason": "events_lost" | "client_slow"}`) means transitions may
/// have been missed before it — the server's event feed had a gap, or this client read too
/// slowly. Re-list what you show (`GET /api/v1/jobs`), then keep applying `transition` events.
#[utoipa::path(
    get, path = "/api/v1/events", tag = "events",
    params(EventsQuery),
    responses(
        (status = 200, description = "`text/event-stream` of `transition` events (data: JobEvent) and `resync` events (data: Resync: re-list, transitions may have been missed)", content_type = "text/event-stream", body = EventsData),
        (status = 422, description = "Unknown status in the filter", body = ErrorBody),
        (status = 503, description = "Core unavailable", body = ErrorBody),
    )
)]
pub async fn all_events(
    State(st): State<AppState>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(q) = query?;
    let mut statuses = Vec::new();
    for name in q.status.iter().flat_map(|s| s.split(',')) {
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        let status = Status::parse(name).ok_or_else(|| {
            ApiError::InvalidArgument(format!(
                "unknown status {name:?}; expected scheduled, queued, processing, done, failed or cancelled"
            ))
        })?;
        statuses.push(status.to_proto() as i32);
    }
    let stream = st
        .jobs
        .clone()
        .watch_jobs(pb::WatchJobsRequest { statuses })
        .await?
        .into_inner();
    Ok(sse(
        "jobs",
        to_events(&st, stream, |m: pb::WatchJobsResponse| {
            match (m.event, m.resync) {
                (Some(e), _) => {
                    let ev = JobEvent::from(e);
                    Some(json_event(
                        "transition",
                        format!("{}:{}", ev.job_id, ev.version),
                        &ev,
                    ))
                }
                (None, Some(r)) => Some(resync_event(&Resync::from(r))),
                (None, None) => None,
            }
        }),
    ))
}
